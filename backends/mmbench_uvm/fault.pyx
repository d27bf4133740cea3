# fault — the page-fault handler of the UVM design (uvm_fault.c).
#
# Anonymous memory has two layers and the fault looks at most one slot:
#
#        entry ──aref──▶ amap ──am_anon[slot]──▶ anon ──an_page──▶ page
#                 (upper layer: anons)           (no lower object: anonymous
#                                                 memory has no uvm_object)
#
# A fault is a short driver over phases that fill one faultctx:
#
#   fault_decide    (writes need_frame, action) look at the slot before
#                   anything changes and say what will happen:
#                     FA_ZERO     no anon: zero-fill a new anon.  UVM has no
#                                 shared zero page for anonymous memory, so a
#                                 read zero-fills too (uvm_fault_lower:
#                                 promote a "don't care" page to a new anon)
#                                 and maps it writable when the entry is.
#                     FA_PROMOTE  write, anon shared (an_ref > 1, or it will
#                                 be once a NEEDSCOPY entry copies its amap):
#                                 new anon + page copy; an_ref-- on the old.
#                     FA_REUSE    write, anon ours alone (an_ref == 1): map
#                                 it writable in place.
#                     FA_MAP      read of an existing anon: map it, read-only
#                                 while the anon is shared.
#                   A fault that needs a frame and finds none fails here.
#   fault_check     NEEDSCOPY: amap_copy now — on any fault, read or write,
#                   since anonymous memory has no object below
#                   (uvm_fault_check: "cow_now || uvm_obj == NULL").
#   fault_upper / fault_zerofill   carry the action out; pmap_enter the page.
#   fault_neighbors (uvm_fault_upper_lookup's neighbour loop, uvmadvice for
#                   MADV_NORMAL) map the resident anons of up to 3 pages
#                   behind and 4 ahead of the fault, inside the entry, where
#                   no PTE is yet: read-only while the anon is shared
#                   (an_ref > 1), else with the entry's protection.  Counted
#                   only as PTE writes and pv entries: it saves later faults.
#                   Option fault_ahead=False turns it off (MADV_RANDOM).
#
# Fault kinds counted: fault_zero_fill, fault_cow_copy (promote),
# fault_cow_reuse (write to a read-only PTE of an anon we own alone),
# fault_wp_shared (the same on a shared entry, e.g. after mprotect),
# fault_minor (the anon exists and only the PTE was missing).

from libc.stdint cimport int64_t, uint64_t

from mmbench.core cimport (MM_OK, MM_ENOMEM, C_FAULTS, C_FAULT_ZERO_FILL, C_FAULT_COW_COPY,
                           C_FAULT_COW_REUSE, C_FAULT_MINOR, C_FAULT_WP_SHARED, C_PAGES_ZEROED,
                           C_PAGES_COPIED)
from mmbench.blocks.frames cimport pfn_t, NO_PFN, frame_alloc, frames_free_count
from mmbench.blocks.pagetable cimport pt_node_t, pte_present
from mmbench.blocks.pmap cimport pmap_enter, pmap_pte
from mmbench_uvm.uvm cimport (uvm_ctx_t, vm_map_t, vm_map_entry_t, vm_amap_t, vm_anon_t, NO_ANON,
                              an_page, an_ref, UVM_ET_NEEDSCOPY, UVM_ET_COPYONWRITE, entry_slot,
                              UVM_ADV_NORMAL_NBACK, UVM_ADV_NORMAL_NFORW)
from mmbench_uvm.amap cimport uvm_analloc, uvm_anon_unref, amap_lookup, amap_add
from mmbench_uvm.map cimport amap_copy

cdef enum fault_action:
    FA_ZERO
    FA_PROMOTE
    FA_REUSE
    FA_MAP

ctypedef struct faultctx_t:
    # set by the caller
    vm_map_t* map
    vm_map_entry_t* entry     # may be clipped by amap_copy; still holds vpn
    int64_t vpn
    bint write
    pt_node_t* leaf           # vpn's PTE table, when the caller had it
    # fault_decide
    fault_action action
    bint need_frame
    bint pte_was_present      # a read-only PTE was there (reuse vs minor)
    # fault_upper / fault_zerofill
    pfn_t pg


cdef void fault_decide(uvm_ctx_t* u, faultctx_t* f) noexcept nogil:
    cdef vm_map_entry_t* e = f.entry
    cdef vm_amap_t* amap = e.aref.ar_amap
    cdef vm_anon_t anon = NO_ANON
    cdef bint will_share
    if amap != NULL:
        anon = amap.am_anon[entry_slot(e, f.vpn)]
    if anon == NO_ANON:
        f.action = FA_ZERO
    elif not f.write:
        f.action = FA_MAP
    else:
        # amap_copy of a NEEDSCOPY entry whose amap others reference raises an_ref
        will_share = (e.etype & UVM_ET_NEEDSCOPY) != 0 and amap.am_ref > 1
        f.action = FA_PROMOTE if (an_ref(u, anon)[0] > 1 or will_share) else FA_REUSE
    f.need_frame = f.action == FA_ZERO or f.action == FA_PROMOTE
    f.pte_was_present = f.leaf != NULL and pte_present(f.leaf.e[f.vpn & 511])

cdef int fault_check(uvm_ctx_t* u, faultctx_t* f) noexcept nogil:
    if f.entry.etype & UVM_ET_NEEDSCOPY:
        if amap_copy(u, f.map, f.entry, f.vpn, True) != 0:
            return MM_ENOMEM
    return MM_OK

cdef vm_anon_t fault_anon_alloc(uvm_ctx_t* u, faultctx_t* f) noexcept nogil:
    """A new page (in f.pg) and the anon holding it (uvm_fault checked for a free frame)."""
    f.pg = frame_alloc(u.md.fr, 0)
    return uvm_analloc(u, f.pg)

cdef int fault_zerofill(uvm_ctx_t* u, faultctx_t* f) noexcept nogil:
    cdef vm_map_entry_t* e = f.entry
    cdef vm_anon_t anon = fault_anon_alloc(u, f)
    amap_add(&e.aref, f.vpn - e.link.start, anon, False)
    u.md.ctr[C_FAULT_ZERO_FILL] += 1
    u.md.ctr[C_PAGES_ZEROED] += 1
    return MM_OK if pmap_enter(&u.md, &f.map.pmap.hdr, f.vpn, f.pg, e.writable, f.leaf) == 0 else MM_ENOMEM

cdef int fault_promote(uvm_ctx_t* u, faultctx_t* f, vm_anon_t oanon) noexcept nogil:
    """uvmfault_promote: a private copy of a shared anon replaces it in our slot."""
    cdef vm_map_entry_t* e = f.entry
    cdef vm_anon_t anon = fault_anon_alloc(u, f)
    u.md.fr.f[f.pg].value = u.md.fr.f[an_page(oanon)].value
    uvm_anon_unref(u, oanon)                     # an_ref > 1: the old page lives on
    amap_add(&e.aref, f.vpn - e.link.start, anon, True)
    u.md.ctr[C_FAULT_COW_COPY] += 1
    u.md.ctr[C_PAGES_COPIED] += 1
    return MM_OK if pmap_enter(&u.md, &f.map.pmap.hdr, f.vpn, f.pg, True, f.leaf) == 0 else MM_ENOMEM

cdef int fault_upper(uvm_ctx_t* u, faultctx_t* f) noexcept nogil:
    """The slot holds an anon (uvm_fault_upper)."""
    cdef vm_map_entry_t* e = f.entry
    cdef vm_anon_t anon = amap_lookup(&e.aref, f.vpn - e.link.start)
    cdef bint writable
    if f.action == FA_PROMOTE:
        return fault_promote(u, f, anon)
    f.pg = an_page(anon)
    if f.action == FA_REUSE and f.pte_was_present:
        u.md.ctr[C_FAULT_COW_REUSE if e.etype & UVM_ET_COPYONWRITE else C_FAULT_WP_SHARED] += 1
    else:
        u.md.ctr[C_FAULT_MINOR] += 1
    writable = e.writable and an_ref(u, anon)[0] == 1
    return MM_OK if pmap_enter(&u.md, &f.map.pmap.hdr, f.vpn, f.pg, writable, f.leaf) == 0 else MM_ENOMEM

cdef void fault_neighbors(uvm_ctx_t* u, faultctx_t* f) noexcept nogil:
    """Map the resident anons around the fault that have no PTE yet."""
    cdef vm_map_entry_t* e = f.entry
    cdef int64_t lo = f.vpn - UVM_ADV_NORMAL_NBACK
    cdef int64_t hi = f.vpn + UVM_ADV_NORMAL_NFORW + 1
    cdef int64_t v
    cdef vm_anon_t anon
    cdef pt_node_t* t
    cdef uint64_t pte
    if e.aref.ar_amap == NULL:
        return
    if lo < e.link.start:
        lo = e.link.start
    if hi > e.link.end:
        hi = e.link.end
    for v in range(lo, hi):
        if v == f.vpn:
            continue
        anon = amap_lookup(&e.aref, v - e.link.start)
        if anon == NO_ANON:
            continue
        # a neighbour in the fault's own PTE page is read there, not walked to
        t = f.leaf if f.leaf != NULL and (v >> 9) == (f.vpn >> 9) else NULL
        pte = t.e[v & 511] if t != NULL else pmap_pte(&f.map.pmap.hdr, v)
        if pte_present(pte):
            continue
        # PMAP_CANFAIL: a neighbour that cannot be entered is simply left out
        pmap_enter(&u.md, &f.map.pmap.hdr, v, an_page(anon), e.writable and an_ref(u, anon)[0] == 1, t)

cdef int uvm_fault(uvm_ctx_t* u, vm_map_t* map, vm_map_entry_t* e, int64_t vpn, bint write,
                   pt_node_t* leaf, pfn_t* pfn) noexcept nogil:
    cdef faultctx_t f
    cdef int st
    f.map = map
    f.entry = e
    f.vpn = vpn
    f.write = write
    f.leaf = leaf
    fault_decide(u, &f)
    if f.need_frame and frames_free_count(u.md.fr, 0) == 0:
        return MM_ENOMEM
    st = fault_check(u, &f)
    if st != MM_OK:
        return st
    u.md.ctr[C_FAULTS] += 1
    if u.fault_ahead:
        fault_neighbors(u, &f)
    if f.action == FA_ZERO:
        st = fault_zerofill(u, &f)
    else:
        st = fault_upper(u, &f)
    pfn[0] = f.pg
    return st
