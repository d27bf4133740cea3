# amap — the anonymous layer of UVM: vm_amap (an array of anon pointers with a
# reference count) and vm_anon (one anonymous page with a reference count).
#
# Slot bookkeeping (as uvm_amap.h states it):
#   am_anon[X] != NO_ANON  <=>  X is in am_slots[0 .. am_nused)
#   am_slots[am_bckptr[X]] == X   for every used slot X
# so an amap can be walked by its used slots only (amap_wipeout) and a slot is
# added or removed in O(1) (the last used slot fills the hole).
#
# Partial references (am_ppref).  While every entry that references an amap
# covers all of it, am_ref says everything and am_ppref stays NULL.  The first
# reference to a part only (a clipped entry, a partial munmap) establishes
# per-slot counts: am_ppref[X] = entries covering slot X.  From then on a
# slot whose count drops to 0 is wiped at once (its anon reference dropped),
# so unmapping part of an amap shared by several entries frees the anons only
# that part held.  The kernel encodes am_ppref as runs; the model keeps one
# count per slot and accounts 4 bytes per slot, the size of the kernel's array.
#
# Sizes: an amap is allocated with am_maxslot = amap_roundup_slots(nslot)
# slots (kmem_roundup_size of the int array: 8-byte multiples, so an odd slot
# count gets one spare slot); amap_extend uses spare slots before it
# reallocates, and refuses (E2BIG) to reallocate an amap to UVM_AMAP_LARGE
# slots or more.
#
# Reference counting of anons: an_ref == amap slots holding the anon.  The last
# reference frees the anon and its page (uvm_anfree), unmapping the page
# wherever a PTE still maps it.  An anon is named by its page (uvm.pxd): the
# anon of a new page is made in place, and an_ref lives in the page's
# descriptor.

from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memmove, memset, memcpy
from libc.stdint cimport int64_t, int32_t

from mmbench.core cimport C_OBJECTS_ALLOC, C_OBJECTS_FREE, C_ANON_ALLOC
from mmbench.blocks.frames cimport pfn_t, frame_free
from mmbench.blocks.pmap cimport pmap_remove_all
from mmbench_uvm.uvm cimport (uvm_ctx_t, vm_amap_t, vm_anon_t, vm_aref_t, NO_ANON, AMAP_SHARED,
                              AMAP_SLOT_BYTES, AMAP_PPREF_BYTES, UK_AMAP, UK_ANON, UK_PAGE,
                              UK_SLOTS, UVM_AMAP_LARGE, E2BIG, vm_map_entry_t, uk_alloc, uk_free,
                              anon_of_page, an_page, an_ref)


# ------------------------------------------------------------------- anons
cdef vm_anon_t uvm_analloc(uvm_ctx_t* u, pfn_t pg) noexcept nogil:
    """=> pg was just allocated (frame_alloc).  The anon holding it, an_ref 1."""
    cdef vm_anon_t anon = anon_of_page(pg)
    an_ref(u, anon)[0] = 1
    uk_alloc(u, UK_ANON, 1)
    uk_alloc(u, UK_PAGE, 1)
    u.md.ctr[C_ANON_ALLOC] += 1
    return anon

cdef void uvm_anfree(uvm_ctx_t* u, vm_anon_t anon) noexcept nogil:
    """=> an_ref == 0; the page is unmapped everywhere, then freed (and the anon with it)."""
    cdef pfn_t pg = an_page(anon)
    if u.md.fr.f[pg].mapcount > 0:
        pmap_remove_all(&u.md, pg)
    frame_free(u.md.fr, pg)
    uk_free(u, UK_PAGE, 1)
    uk_free(u, UK_ANON, 1)

cdef void uvm_anon_unref(uvm_ctx_t* u, vm_anon_t anon) noexcept nogil:
    cdef int32_t* ref = an_ref(u, anon)
    ref[0] -= 1
    if ref[0] == 0:
        uvm_anfree(u, anon)


# -------------------------------------------------------------- allocation
cdef inline int64_t amap_bytes(vm_amap_t* amap) noexcept nogil:
    return amap.am_maxslot * (AMAP_SLOT_BYTES + (AMAP_PPREF_BYTES if amap.am_ppref != NULL else 0))

cdef inline int64_t amap_roundup_slots(int64_t slots) noexcept nogil:
    return ((slots * 4 + 7) & ~(<int64_t>7)) // 4

cdef vm_anon_t* amap_slot_arrays(int64_t maxslot, int32_t** slots, int32_t** bckptr) noexcept nogil:
    """am_anon (zeroed), am_slots and am_bckptr of maxslot slots in one
    allocation of the simulator's, am_anon first (freeing it frees all three);
    NULL: no memory.  The kernel allocates three arrays (kmem_alloc each);
    UK_SLOTS accounts their bytes, AMAP_SLOT_BYTES per slot, either way (the
    simulator's 12 bytes a slot are not what is reported)."""
    cdef vm_anon_t* anons = <vm_anon_t*>calloc(maxslot if maxslot > 0 else 1,
                                               sizeof(vm_anon_t) + 2 * sizeof(int32_t))
    if anons == NULL:
        return NULL
    slots[0] = <int32_t*>(anons + maxslot)       # (vm_anon_t and int32_t: 4 bytes each)
    bckptr[0] = slots[0] + maxslot
    return anons

cdef vm_amap_t* amap_alloc(uvm_ctx_t* u, int64_t nslot) noexcept nogil:
    """A blank amap of nslot slots, referenced once (amap_alloc1 + amap_list_insert)."""
    cdef vm_amap_t* amap = <vm_amap_t*>calloc(1, sizeof(vm_amap_t))
    cdef int64_t maxslot = amap_roundup_slots(nslot)
    if amap == NULL:
        return NULL
    amap.am_anon = amap_slot_arrays(maxslot, &amap.am_slots, &amap.am_bckptr)
    if amap.am_anon == NULL:
        free(amap)
        return NULL
    amap.am_ref = 1
    amap.am_maxslot = <int32_t>maxslot
    amap.am_nslot = <int32_t>nslot
    u.next_serial += 1
    amap.serial = u.next_serial
    amap.am_next = u.amaps
    if u.amaps != NULL:
        u.amaps.am_prev = amap
    u.amaps = amap
    u.namaps += 1
    uk_alloc(u, UK_AMAP, 1)
    uk_alloc(u, UK_SLOTS, amap_bytes(amap))
    u.md.ctr[C_OBJECTS_ALLOC] += 1
    return amap

cdef void amap_free(uvm_ctx_t* u, vm_amap_t* amap) noexcept nogil:
    """=> am_ref == 0 and no anon left."""
    uk_free(u, UK_SLOTS, amap_bytes(amap))
    uk_free(u, UK_AMAP, 1)
    u.md.ctr[C_OBJECTS_FREE] += 1
    if amap.am_prev != NULL:
        amap.am_prev.am_next = amap.am_next
    else:
        u.amaps = amap.am_next
    if amap.am_next != NULL:
        amap.am_next.am_prev = amap.am_prev
    u.namaps -= 1
    free(amap.am_anon)                           # and am_slots, am_bckptr with it
    free(amap.am_ppref)
    free(amap)

cdef void amap_wipeout(uvm_ctx_t* u, vm_amap_t* amap) noexcept nogil:
    """The last reference is gone: drop every anon (used slots only), free."""
    cdef int32_t i
    for i in range(amap.am_nused):
        uvm_anon_unref(u, amap.am_anon[amap.am_slots[i]])
        amap.am_anon[amap.am_slots[i]] = NO_ANON
    amap.am_nused = 0
    amap.am_ref = 0
    amap_free(u, amap)


# ------------------------------------------------------------ slot access
cdef void amap_unadd(vm_aref_t* aref, int64_t offset) noexcept nogil:
    """Empty a used slot (the caller drops the anon's reference)."""
    cdef vm_amap_t* amap = aref.ar_amap
    cdef int64_t slot = aref.ar_pageoff + offset
    cdef int32_t ptr = amap.am_bckptr[slot]
    cdef int32_t last = amap.am_slots[amap.am_nused - 1]
    amap.am_slots[ptr] = last
    amap.am_bckptr[last] = ptr
    amap.am_nused -= 1
    amap.am_anon[slot] = NO_ANON


# ----------------------------------------------------------- new amap copy
cdef vm_amap_t* amap_copy_anons(uvm_ctx_t* u, vm_amap_t* src, int64_t pageoff,
                                int64_t nslot) noexcept nogil:
    """amap_copy's copying half: a new amap whose slots point at src's anons
    in [pageoff, pageoff + nslot), an_ref++ per anon.  NULL: no memory."""
    cdef vm_amap_t* amap = amap_alloc(u, nslot)
    cdef int64_t i
    cdef vm_anon_t anon
    if amap == NULL:
        return NULL
    for i in range(nslot):
        anon = src.am_anon[pageoff + i]
        if anon != NO_ANON:
            amap.am_anon[i] = anon
            amap.am_bckptr[i] = amap.am_nused
            amap.am_slots[amap.am_nused] = <int32_t>i
            amap.am_nused += 1
            an_ref(u, anon)[0] += 1
    return amap


# ------------------------------------------------------------- references
cdef int amap_pp_establish(uvm_ctx_t* u, vm_amap_t* amap) noexcept nogil:
    """Start per-slot counts: every current reference covers every slot."""
    cdef int32_t i
    uk_free(u, UK_SLOTS, amap_bytes(amap))
    amap.am_ppref = <int32_t*>malloc(amap.am_maxslot * sizeof(int32_t))
    uk_alloc(u, UK_SLOTS, amap_bytes(amap))
    if amap.am_ppref == NULL:
        return -1
    for i in range(amap.am_maxslot):
        amap.am_ppref[i] = amap.am_ref
    return 0

cdef void amap_wiperange(uvm_ctx_t* u, vm_amap_t* amap, int64_t slot, int64_t n) noexcept nogil:
    """Drop the anons of slots nobody covers any more."""
    cdef int64_t s
    cdef vm_aref_t whole
    whole.ar_pageoff = 0
    whole.ar_amap = amap
    for s in range(slot, slot + n):
        if amap.am_anon[s] != NO_ANON:
            uvm_anon_unref(u, amap.am_anon[s])
            amap_unadd(&whole, s)

cdef void amap_pp_adjref(uvm_ctx_t* u, vm_amap_t* amap, int64_t curslot, int64_t slotlen,
                         int adjval) noexcept nogil:
    """am_ppref[curslot .. +slotlen) += adjval; slots reaching 0 are wiped."""
    cdef int64_t s
    for s in range(curslot, curslot + slotlen):
        amap.am_ppref[s] += adjval
        if amap.am_ppref[s] == 0:
            amap_wiperange(u, amap, s, 1)

cdef inline bint covers_all(vm_amap_t* amap, int64_t offset, int64_t length) noexcept nogil:
    return offset == 0 and length == amap.am_nslot

cdef int amap_ref(uvm_ctx_t* u, vm_amap_t* amap, int64_t offset, int64_t length,
                  bint shared) noexcept nogil:
    """One more entry references [offset, offset+length) of amap (fork)."""
    if amap.am_ppref == NULL and not covers_all(amap, offset, length):
        if amap_pp_establish(u, amap) != 0:
            return -1
    if amap.am_ppref != NULL:
        amap_pp_adjref(u, amap, offset, length, 1)
    amap.am_ref += 1
    if shared:
        amap.am_flags |= AMAP_SHARED
    return 0

cdef void amap_unref(uvm_ctx_t* u, vm_amap_t* amap, int64_t offset, int64_t length) noexcept nogil:
    """An entry covering [offset, offset+length) lets go of amap.

    => the last reference wipes the whole amap; otherwise the slots only this
       entry covered lose their anons (per-slot counts established if needed).
    """
    if amap.am_ref == 1:
        amap_wipeout(u, amap)
        return
    if amap.am_ppref == NULL and not covers_all(amap, offset, length):
        amap_pp_establish(u, amap)
    amap.am_ref -= 1
    if amap.am_ref == 1:
        amap.am_flags &= ~AMAP_SHARED
    if amap.am_ppref != NULL:
        amap_pp_adjref(u, amap, offset, length, -1)

cdef int amap_splitref(uvm_ctx_t* u, vm_aref_t* origref, vm_aref_t* splitref,
                       int64_t offset) noexcept nogil:
    """A clipped entry: splitref takes the part from `offset` on.  Each slot is
    still covered by one of the two, so only am_ref changes (after
    per-slot counts are established, since neither covers all now)."""
    cdef vm_amap_t* amap = origref.ar_amap
    if amap.am_ppref == NULL:
        if amap_pp_establish(u, amap) != 0:
            return -1
    splitref.ar_amap = amap
    splitref.ar_pageoff = origref.ar_pageoff + offset
    amap.am_ref += 1
    return 0


# ------------------------------------------------------------- amap_extend
cdef void pp_set(vm_amap_t* amap, int64_t slot, int64_t n, int32_t ref) noexcept nogil:
    cdef int64_t s
    for s in range(slot, slot + n):
        amap.am_ppref[s] = ref

cdef int amap_grow(uvm_ctx_t* u, vm_amap_t* amap, int64_t slotalloc, int64_t lo, int64_t n,
                   int64_t shift) noexcept nogil:
    """Case 3 of amap_extend: new arrays of slotalloc slots; the slots
    [lo, lo + n) (every used one among them) move up by `shift`.  0, or -1
    out of memory (amap unchanged)."""
    cdef int32_t* newsl
    cdef int32_t* newbck
    cdef vm_anon_t* newover = amap_slot_arrays(slotalloc, &newsl, &newbck)
    cdef int32_t* newppref = NULL
    cdef int32_t i
    if amap.am_ppref != NULL:
        newppref = <int32_t*>calloc(slotalloc, sizeof(int32_t))
    if newover == NULL or (amap.am_ppref != NULL and newppref == NULL):
        free(newover)
        free(newppref)
        return -1
    uk_free(u, UK_SLOTS, amap_bytes(amap))
    # the run [lo, lo + n) moves whole (its empty slots hold NO_ANON, and an
    # empty slot's back pointer is never read); am_slots keeps its order
    memcpy(newover + lo + shift, amap.am_anon + lo, n * sizeof(vm_anon_t))
    memcpy(newbck + lo + shift, amap.am_bckptr + lo, n * sizeof(int32_t))
    for i in range(amap.am_nused):
        newsl[i] = amap.am_slots[i] + <int32_t>shift
    if newppref != NULL:
        memcpy(newppref + lo + shift, amap.am_ppref + lo, n * sizeof(int32_t))
    free(amap.am_anon)                           # and the old am_slots, am_bckptr
    free(amap.am_ppref)
    amap.am_slots = newsl
    amap.am_bckptr = newbck
    amap.am_anon = newover
    amap.am_ppref = newppref
    amap.am_maxslot = <int32_t>slotalloc
    uk_alloc(u, UK_SLOTS, amap_bytes(amap))
    return 0

cdef void amap_slide(vm_amap_t* amap, int64_t slotoff, int64_t slotmapped,
                     int64_t slotspace) noexcept nogil:
    """Case 2 backwards: the used slots move up by slotspace - slotoff inside
    the existing arrays (only the entry's slots hold anons: am_ref is 1)."""
    cdef int64_t shift = slotspace - slotoff
    cdef int32_t i
    if shift == 0:
        return
    for i in range(amap.am_nused):
        amap.am_slots[i] += <int32_t>shift
    memmove(amap.am_anon + slotspace, amap.am_anon + slotoff, slotmapped * sizeof(vm_anon_t))
    memset(amap.am_anon + slotoff, 0, shift * sizeof(vm_anon_t))
    memmove(amap.am_bckptr + slotspace, amap.am_bckptr + slotoff, slotmapped * sizeof(int32_t))
    if amap.am_ppref != NULL:
        memmove(amap.am_ppref + slotspace, amap.am_ppref + slotoff, slotmapped * sizeof(int32_t))

cdef int amap_extend(uvm_ctx_t* u, vm_map_entry_t* e, int64_t slotadd, bint forwards) noexcept nogil:
    """Let entry e's amap (am_ref 1) also cover `slotadd` pages after its end
    (forwards) or before its start (backwards).

    => 0 (e.aref.ar_pageoff adjusted when backwards), E2BIG when the amap
       would need reallocating to UVM_AMAP_LARGE slots or more, -1 out of
       memory; on failure nothing changed.
    The three cases of the kernel: the slots are already there (1), the
    spare slots of am_maxslot suffice (2), new arrays (3).
    """
    cdef vm_amap_t* amap = e.aref.ar_amap
    cdef int64_t slotoff = e.aref.ar_pageoff
    cdef int64_t slotmapped = e.link.end - e.link.start
    cdef int64_t slotneed, slotalloc, slotspace, nslot = amap.am_nslot
    if forwards:
        slotneed = slotoff + slotmapped + slotadd
        if nslot >= slotneed:                                   # case 1
            if amap.am_ppref != NULL:
                amap_pp_adjref(u, amap, slotoff + slotmapped, slotadd, 1)
            return 0
        if amap.am_maxslot < slotneed:                          # case 3
            if slotneed >= UVM_AMAP_LARGE:
                return E2BIG
            if amap_grow(u, amap, amap_roundup_slots(slotneed), 0, nslot, 0) != 0:
                return -1
        if amap.am_ppref != NULL:                               # cases 2 and 3
            if slotoff + slotmapped < nslot:
                amap_pp_adjref(u, amap, slotoff + slotmapped, nslot - (slotoff + slotmapped), 1)
            pp_set(amap, nslot, slotneed - nslot, 1)
        amap.am_nslot = <int32_t>slotneed
        return 0
    slotneed = slotadd + slotmapped
    if slotadd - slotoff <= 0:                                  # case 1
        e.aref.ar_pageoff = slotoff - slotadd
        if amap.am_ppref != NULL:
            amap_pp_adjref(u, amap, slotoff - slotadd, slotadd, 1)
        return 0
    if amap.am_maxslot >= slotneed:                             # case 2
        slotalloc = amap.am_maxslot
    elif slotneed >= UVM_AMAP_LARGE:
        return E2BIG
    else:
        slotalloc = amap_roundup_slots(slotneed)
    if amap.am_ppref == NULL and slotalloc > slotneed:
        # slots below the new start stay unreferenced: the model keeps
        # per-slot counts exact from here on (the kernel may leave them off)
        if amap_pp_establish(u, amap) != 0:
            return -1
    slotspace = slotalloc - slotmapped
    if slotalloc == amap.am_maxslot:
        amap_slide(amap, slotoff, slotmapped, slotspace)
    elif amap_grow(u, amap, slotalloc, slotoff, slotmapped, slotspace - slotoff) != 0:
        return -1
    if amap.am_ppref != NULL:
        pp_set(amap, 0, slotspace - slotadd, 0)
        pp_set(amap, slotspace - slotadd, slotadd, 1)
    amap.am_nslot = <int32_t>slotalloc
    e.aref.ar_pageoff = slotspace - slotadd
    return 0
