# map — a process's address space as vm_map_entry's ordered by address, each
# with a vm_aref {ar_pageoff, ar_amap} to the anonymous layer.
#
# How the contract's operations act on entries (uvm_map.c, uvm_mmap.c):
#   mmap private   an entry COPYONWRITE|NEEDSCOPY with no amap: the first
#                  fault gives it one (amap_copy of "nothing" = a blank amap).
#   mmap shared    the amap is allocated at once (UVM_FLAG_OVERLAY), so every
#                  process that later shares the entry sees the same anons.
#   clip           a partial operation splits an entry; both halves keep the
#                  amap (amap_splitref: am_ref++, per-slot counts established).
#   munmap/exit    pmap_remove, then amap_unref of the entry's slot range.
#   fork           uvmspace_fork: shared entries share the amap (AMAP_SHARED,
#                  am_ref++); private entries share it too but both sides
#                  become NEEDSCOPY and the parent's PTEs are write-protected
#                  (pmap_protect).  No PTE is copied (pmap_copy is advisory).
#   amap_copy      (first fault after fork, here because it may clip) am_ref
#                  == 1: take the amap over; else a new amap with the same
#                  anons, an_ref++ each, the old amap loses a reference.
#                  No amap yet: an entry of UVM_AMAP_LARGE pages or more is
#                  clipped to the 16-page chunk around the fault, and then
#                  uvm_mapent_trymerge(UVM_MERGE_COPYING) tries to fold the
#                  entry into a neighbour that already has an amap of its own
#                  (amap_extend); only when that fails does it get a new
#                  amap.  Touching a mapping page by page therefore grows one
#                  amap chunk by chunk, until amap_extend refuses to
#                  reallocate an amap to UVM_AMAP_LARGE slots: then the next
#                  chunk starts a new amap (and entry), which grows in turn.
#   mremap         entries (aref unchanged) and PTEs move to the new range.
#   dontneed       private: the range's anons leave this entry's amap (an
#                  entry still NEEDSCOPY first lets go of the borrowed amap for
#                  the range and starts over without one); shared: only the
#                  PTEs go, the anons keep the data.
# uvm_map_enter merges a new mapping into a compatible neighbour (same etype,
# protection and inheritance): back into the entry ending at its start,
# forward into the one starting at its end, or both; a neighbour's amap must
# be unshared and is extended (amap_extend), two amaps are never joined.  A
# shared mapping merged this way needs no amap of its own.

from libc.stdlib cimport calloc, free
from libc.stdint cimport int64_t, uint64_t, uint32_t, uint8_t

from mmbench.blocks.itree cimport itree_init
from mmbench.blocks.maplist cimport (map_entry_link_t, map_list_t, maplist_link_after, maplist_unlink,
                                     maplist_set_range, maplist_first_ending_after,
                                     maplist_lookup,
                                     maplist_detach_run, maplist_attach_run)
from mmbench.core cimport (MM_ENOMEM, C_VMA_SPLITS, C_VMA_MERGES, C_FORK_PTES_WRPROTECT, C_AMAP_COPIES,
                           VPN_BITS)
from mmbench.blocks.pmap cimport (pmap_remove, pmap_protect, pmap_move, pmap_reserve_move,
                                  pmap_free_tables)
from mmbench.blocks.pmap_netbsd cimport pmap_pinit, pmap_release
from mmbench_uvm.uvm cimport (uvm_ctx_t, vm_map_t, vm_map_entry_t, vm_amap_t, vm_anon_t, NO_ANON,
                              UK_ENTRY, UK_VMSPACE, uk_alloc, uk_free, UVM_ET_COPYONWRITE, UVM_ET_NEEDSCOPY,
                              MAP_INHERIT_SHARE, MAP_INHERIT_COPY, AMAP_SHARED, UVM_AMAP_LARGE,
                              UVM_AMAP_CHUNK,
                              map_first, map_last, entry_next, entry_prev)
from mmbench_uvm.amap cimport (amap_alloc, amap_copy_anons, amap_ref, amap_unref, amap_splitref,
                               amap_pp_adjref, amap_unadd, uvm_anon_unref, amap_extend)

cdef int64_t VPN_END = (<int64_t>1) << VPN_BITS


# --------------------------------------------------------------- the vmspace
cdef vm_map_t* uvmspace_alloc(uvm_ctx_t* u, int64_t pid) noexcept nogil:
    """struct vmspace (charged with its vm_map) and its pmap (pmap_create)."""
    cdef vm_map_t* map = <vm_map_t*>calloc(1, sizeof(vm_map_t))
    if map == NULL:
        return NULL
    itree_init(&map.list.tree)
    if pmap_pinit(&u.md, &map.pmap, pid) != 0:
        free(map)
        return NULL
    uk_alloc(u, UK_VMSPACE, 1)
    return map

cdef void uvmspace_free(uvm_ctx_t* u, vm_map_t* map) noexcept nogil:
    uvm_unmap(u, map, 0, VPN_END)
    pmap_release(&u.md, &map.pmap)
    uk_free(u, UK_VMSPACE, 1)
    free(map)


# ------------------------------------------------------------------- entries
cdef vm_map_entry_t* entry_create(uvm_ctx_t* u) noexcept nogil:
    cdef vm_map_entry_t* e = <vm_map_entry_t*>calloc(1, sizeof(vm_map_entry_t))
    if e != NULL:
        uk_alloc(u, UK_ENTRY, 1)
    return e

cdef void entry_dispose(uvm_ctx_t* u, vm_map_entry_t* e) noexcept nogil:
    uk_free(u, UK_ENTRY, 1)
    free(e)

cdef void link_after(vm_map_t* map, vm_map_entry_t* after, vm_map_entry_t* e) noexcept nogil:
    """Insert e after `after` (NULL: at the front) on the list and in the tree."""
    maplist_link_after(&map.list, NULL if after == NULL else &after.link, &e.link)

cdef vm_map_entry_t* uvm_map_lookup_entry(vm_map_t* map, int64_t vpn) noexcept nogil:
    return <vm_map_entry_t*>maplist_lookup(&map.list, vpn, VPN_END)


# ------------------------------------------------------------------ clipping
cdef vm_map_entry_t* entry_split(uvm_ctx_t* u, vm_map_entry_t* e, int64_t vpn) noexcept nogil:
    """A copy of e for [vpn, e.end) sharing its amap (amap_splitref); NULL: no memory."""
    cdef vm_map_entry_t* c = entry_create(u)
    if c == NULL:
        return NULL
    c[0] = e[0]
    if e.aref.ar_amap != NULL and amap_splitref(u, &e.aref, &c.aref, vpn - e.link.start) != 0:
        entry_dispose(u, c)
        return NULL
    c.link.start = vpn
    u.md.ctr[C_VMA_SPLITS] += 1
    return c

cdef void uvm_map_clip_start(uvm_ctx_t* u, vm_map_t* map, vm_map_entry_t* e, int64_t vpn) noexcept nogil:
    """e keeps [vpn, end); a new entry takes [start, vpn)."""
    cdef vm_map_entry_t* left
    cdef int64_t start = e.link.start
    cdef int64_t pageoff = e.aref.ar_pageoff
    if vpn <= e.link.start or vpn >= e.link.end:
        return
    left = entry_split(u, e, vpn)         # a copy whose aref starts at vpn's slot ...
    if left == NULL:
        return
    e.aref.ar_pageoff = left.aref.ar_pageoff   # ... which e (the caller's pointer) takes,
    left.aref.ar_pageoff = pageoff             # while the copy becomes [start, vpn)
    left.link.start = start
    left.link.end = vpn
    maplist_set_range(&map.list, &e.link, vpn, e.link.end)
    link_after(map, entry_prev(e), left)

cdef void uvm_map_clip_end(uvm_ctx_t* u, vm_map_t* map, vm_map_entry_t* e, int64_t vpn) noexcept nogil:
    """e keeps [start, vpn); a new entry takes [vpn, end)."""
    cdef vm_map_entry_t* right
    if vpn <= e.link.start or vpn >= e.link.end:
        return
    right = entry_split(u, e, vpn)
    if right == NULL:
        return
    maplist_set_range(&map.list, &e.link, e.link.start, vpn)
    link_after(map, e, right)

cdef vm_map_entry_t* clip_range(uvm_ctx_t* u, vm_map_t* map, int64_t start, int64_t end) noexcept nogil:
    """Clip the entries at both ends of [start, end); returns the first inside."""
    cdef vm_map_entry_t* e = <vm_map_entry_t*>maplist_first_ending_after(&map.list, start, VPN_END)
    cdef vm_map_entry_t* last
    if e == NULL or e.link.start >= end:
        return NULL
    uvm_map_clip_start(u, map, e, start)
    last = e
    while entry_next(last) != NULL and entry_next(last).link.start < end:
        last = entry_next(last)
    uvm_map_clip_end(u, map, last, end)
    return e


# ------------------------------------------------------------------ merging
cdef bint mergeable_with(vm_map_entry_t* e, vm_map_entry_t* n) noexcept nogil:
    """UVM_ET_ISCOMPATIBLE for UVM_MERGE_COPYING: n has an amap of its own
    (COPYONWRITE without NEEDSCOPY, am_ref 1) and e's attributes."""
    return (n.aref.ar_amap != NULL and n.aref.ar_amap.am_ref == 1
            and n.etype == (e.etype & ~(<uint32_t>UVM_ET_NEEDSCOPY))
            and n.writable == e.writable and n.inheritance == e.inheritance)

cdef void absorb(uvm_ctx_t* u, vm_map_t* map, vm_map_entry_t* e, vm_map_entry_t* n,
                 int64_t start, int64_t end) noexcept nogil:
    """e (no amap) takes over neighbour n's (already extended) aref and range."""
    maplist_unlink(&map.list, &n.link)
    maplist_set_range(&map.list, &e.link, start, end)
    e.aref = n.aref
    e.etype &= ~(<uint32_t>UVM_ET_NEEDSCOPY)
    map.list.hint = &e.link
    entry_dispose(u, n)
    u.md.ctr[C_VMA_MERGES] += 1

cdef bint uvm_mapent_trymerge(uvm_ctx_t* u, vm_map_t* map, vm_map_entry_t* e) noexcept nogil:
    """The UVM_MERGE_COPYING case: e needs an amap; pull the next entry's amap
    back over e (amap_extend backwards), else push the previous entry's amap
    forward over e.  True when e was merged (and has an amap now)."""
    cdef vm_map_entry_t* n = entry_next(e)
    cdef vm_map_entry_t* p = entry_prev(e)
    cdef int64_t size = e.link.end - e.link.start
    if n != NULL and n.link.start == e.link.end and mergeable_with(e, n):
        if amap_extend(u, n, size, False) == 0:
            absorb(u, map, e, n, e.link.start, n.link.end)
            return True
    if p != NULL and p.link.end == e.link.start and mergeable_with(e, p):
        if amap_extend(u, p, size, True) == 0:
            absorb(u, map, e, p, p.link.start, e.link.end)
            return True
    return False


# ------------------------------------------------------------------ amap_copy
cdef int amap_copy(uvm_ctx_t* u, vm_map_t* map, vm_map_entry_t* e, int64_t vpn,
                   bint canchunk) noexcept nogil:
    cdef vm_amap_t* src = e.aref.ar_amap
    cdef vm_amap_t* amap
    cdef int64_t lo, hi
    if src == NULL:                                   # nothing to copy: a blank amap
        if canchunk and u.amap_chunk and e.link.end - e.link.start >= UVM_AMAP_LARGE:
            lo = (vpn // UVM_AMAP_CHUNK) * UVM_AMAP_CHUNK
            hi = lo + UVM_AMAP_CHUNK
            uvm_map_clip_start(u, map, e, lo)
            uvm_map_clip_end(u, map, e, hi)
        if uvm_mapent_trymerge(u, map, e):
            return 0
        amap = amap_alloc(u, e.link.end - e.link.start)
        if amap == NULL:
            return -1
        e.aref.ar_pageoff = 0
        e.aref.ar_amap = amap
    elif src.am_ref > 1:                              # shared with others: copy
        amap = amap_copy_anons(u, src, e.aref.ar_pageoff, e.link.end - e.link.start)
        if amap == NULL:
            return -1
        u.md.ctr[C_AMAP_COPIES] += 1
        src.am_ref -= 1
        if src.am_ref == 1:
            src.am_flags &= ~AMAP_SHARED
        if src.am_ppref != NULL:
            amap_pp_adjref(u, src, e.aref.ar_pageoff, e.link.end - e.link.start, -1)
        e.aref.ar_pageoff = 0
        e.aref.ar_amap = amap
    # (am_ref == 1: the amap is ours already; take it over)
    e.etype &= ~UVM_ET_NEEDSCOPY
    return 0


# --------------------------------------------------------------------- mmap
cdef inline bint enter_compatible(vm_map_entry_t* n, uint32_t etype, bint writable,
                                  uint8_t inheritance) noexcept nogil:
    """UVM_ET_ISCOMPATIBLE for a new anonymous mapping."""
    return n.etype == etype and n.writable == writable and n.inheritance == inheritance

cdef bint uvm_map_backmerge(uvm_ctx_t* u, vm_map_t* map, vm_map_entry_t* prev, int64_t end,
                            bint* nomerge) noexcept nogil:
    """prev grows over [prev.end, end), its amap (if any, unshared) extended
    forwards; *nomerge when amap_extend refused (no merge at all then)."""
    if prev.aref.ar_amap != NULL:
        if prev.aref.ar_amap.am_ref != 1:
            return False
        if amap_extend(u, prev, end - prev.link.end, True) != 0:
            nomerge[0] = True
            return False
    maplist_set_range(&map.list, &prev.link, prev.link.start, end)
    u.md.ctr[C_VMA_MERGES] += 1
    return True

cdef bint uvm_map_forwardmerge(uvm_ctx_t* u, vm_map_t* map, vm_map_entry_t* prev,
                               vm_map_entry_t* next, int64_t start) noexcept nogil:
    """Without prev: next grows back over [start, next.start).  With prev
    (already grown up to next): prev and next become one entry; two amaps are
    never merged."""
    cdef vm_amap_t* pa = prev.aref.ar_amap if prev != NULL else NULL
    cdef vm_amap_t* na = next.aref.ar_amap
    cdef int64_t nend = next.link.end
    if na != NULL and (na.am_ref != 1 or pa != NULL):
        return False
    if prev == NULL:
        if na != NULL and amap_extend(u, next, next.link.start - start, False) != 0:
            return False
        maplist_set_range(&map.list, &next.link, start, next.link.end)
        map.list.hint = &next.link
    else:
        if pa != NULL and amap_extend(u, prev, next.link.end - next.link.start, True) != 0:
            return False
        if na != NULL and amap_extend(u, next, prev.link.end - prev.link.start, False) != 0:
            return False
        maplist_unlink(&map.list, &next.link)
        maplist_set_range(&map.list, &prev.link, prev.link.start, nend)
        if na != NULL:
            prev.aref = next.aref
        entry_dispose(u, next)
    u.md.ctr[C_VMA_MERGES] += 1
    return True

cdef bint try_merge(uvm_ctx_t* u, vm_map_t* map, int64_t start, int64_t end,
                    bint shared, bint writable) noexcept nogil:
    """uvm_map_enter's merges: back into the entry ending at `start`, forward
    into the one starting at `end`, or both (the three become one)."""
    cdef uint32_t etype = 0 if shared else UVM_ET_COPYONWRITE | UVM_ET_NEEDSCOPY
    cdef uint8_t inh = MAP_INHERIT_SHARE if shared else MAP_INHERIT_COPY
    cdef vm_map_entry_t* cand = <vm_map_entry_t*>maplist_first_ending_after(&map.list, start - 1, VPN_END) if start > 0 else map_first(map)
    cdef vm_map_entry_t* prev = cand if cand != NULL and cand.link.end == start else NULL
    cdef vm_map_entry_t* next = entry_next(prev) if prev != NULL else cand
    cdef bint nomerge = False, merged = False
    if prev != NULL and enter_compatible(prev, etype, writable, inh):
        merged = uvm_map_backmerge(u, map, prev, end, &nomerge)
        if nomerge:
            return False
    if next != NULL and next.link.start == end and enter_compatible(next, etype, writable, inh):
        if uvm_map_forwardmerge(u, map, prev if merged else NULL, next, start):
            return True
    if merged:
        map.list.hint = &prev.link
    return merged

cdef int uvm_map_enter(uvm_ctx_t* u, vm_map_t* map, int64_t start, int64_t end,
                       bint shared, bint writable) noexcept nogil:
    cdef vm_map_entry_t* e
    cdef vm_map_entry_t* before
    if try_merge(u, map, start, end, shared, writable):
        return 0
    e = entry_create(u)
    if e == NULL:
        return -1
    e.link.start = start
    e.link.end = end
    e.writable = writable
    if shared:
        e.inheritance = MAP_INHERIT_SHARE
        e.aref.ar_amap = amap_alloc(u, end - start)      # UVM_FLAG_OVERLAY
        if e.aref.ar_amap == NULL:
            entry_dispose(u, e)
            return -1
    else:
        e.inheritance = MAP_INHERIT_COPY
        e.etype = UVM_ET_COPYONWRITE | UVM_ET_NEEDSCOPY
    before = <vm_map_entry_t*>maplist_first_ending_after(&map.list, start, VPN_END)
    link_after(map, map_last(map) if before == NULL else entry_prev(before), e)
    map.list.hint = &e.link
    return 0


# ------------------------------------------------------------------ deletion
cdef void entry_unref_amap(uvm_ctx_t* u, vm_map_entry_t* e) noexcept nogil:
    if e.aref.ar_amap != NULL:
        amap_unref(u, e.aref.ar_amap, e.aref.ar_pageoff, e.link.end - e.link.start)
        e.aref.ar_amap = NULL
        e.aref.ar_pageoff = 0

cdef void free_tables_around(uvm_ctx_t* u, vm_map_t* map, vm_map_entry_t* before,
                             vm_map_entry_t* after) noexcept nogil:
    pmap_free_tables(&u.md, &map.pmap.hdr, 0 if before == NULL else before.link.end,
                     VPN_END if after == NULL else after.link.start)

cdef void uvm_unmap(uvm_ctx_t* u, vm_map_t* map, int64_t start, int64_t end) noexcept nogil:
    cdef vm_map_entry_t* e = clip_range(u, map, start, end)
    cdef vm_map_entry_t* nx
    cdef vm_map_entry_t* before
    if e == NULL:
        return
    before = entry_prev(e)
    while e != NULL and e.link.start < end:
        nx = entry_next(e)
        pmap_remove(&u.md, &map.pmap.hdr, e.link.start, e.link.end)
        maplist_unlink(&map.list, &e.link)
        entry_unref_amap(u, e)
        entry_dispose(u, e)
        e = nx
    free_tables_around(u, map, before, e)


# --------------------------------------------------------------- protection
cdef void uvm_map_protect(uvm_ctx_t* u, vm_map_t* map, int64_t start, int64_t end,
                          bint writable) noexcept nogil:
    cdef vm_map_entry_t* e = clip_range(u, map, start, end)
    while e != NULL and e.link.start < end:
        if e.writable and not writable:
            pmap_protect(&u.md, &map.pmap.hdr, e.link.start, e.link.end)
        e.writable = writable
        e = entry_next(e)


# --------------------------------------------------------------------- fork
cdef int fork_share(uvm_ctx_t* u, vm_map_t* src, vm_map_entry_t* e) noexcept nogil:
    """MAP_INHERIT_SHARE: the amap must exist and be the entry's own first."""
    if e.etype & UVM_ET_NEEDSCOPY:
        if amap_copy(u, src, e, e.link.start, False) != 0:
            return -1
    if e.aref.ar_amap == NULL:
        e.aref.ar_amap = amap_alloc(u, e.link.end - e.link.start)
        e.aref.ar_pageoff = 0
        if e.aref.ar_amap == NULL:
            return -1
    return amap_ref(u, e.aref.ar_amap, e.aref.ar_pageoff, e.link.end - e.link.start, True)

cdef int fork_copy(uvm_ctx_t* u, vm_map_t* src, vm_map_entry_t* e) noexcept nogil:
    """MAP_INHERIT_COPY: both sides share the amap, both NEEDSCOPY; the
    parent's PTEs are write-protected unless they already are."""
    if e.aref.ar_amap != NULL:
        if amap_ref(u, e.aref.ar_amap, e.aref.ar_pageoff, e.link.end - e.link.start, False) != 0:
            return -1
    if not (e.etype & UVM_ET_NEEDSCOPY):
        if e.writable:
            u.md.ctr[C_FORK_PTES_WRPROTECT] += pmap_protect(&u.md, &src.pmap.hdr, e.link.start, e.link.end)
        e.etype |= UVM_ET_NEEDSCOPY
    return 0

cdef int uvmspace_fork(uvm_ctx_t* u, vm_map_t* src, vm_map_t* dst) noexcept nogil:
    """Copy every entry of src into the (empty) dst by its inheritance."""
    cdef vm_map_entry_t* e = map_first(src)
    cdef vm_map_entry_t* c
    cdef int st
    while e != NULL:
        c = entry_create(u)
        if c == NULL:
            return -1
        if e.inheritance == MAP_INHERIT_SHARE:
            st = fork_share(u, src, e)
        else:
            st = fork_copy(u, src, e)
        if st != 0:
            entry_dispose(u, c)
            return -1
        c[0] = e[0]
        link_after(dst, map_last(dst), c)
        e = entry_next(e)
    dst.list.hint = dst.list.first
    return 0


# ------------------------------------------------------------------- mremap
cdef void clip_undo(uvm_ctx_t* u, vm_map_t* map, vm_map_entry_t* keep, vm_map_entry_t* gone,
                    bint gone_first) noexcept nogil:
    """Merge back a clip the move made (a later step ran out of memory): `keep`
    takes `gone`'s range again; `gone`'s reference on the shared amap goes."""
    maplist_unlink(&map.list, &gone.link)
    if gone_first:
        keep.aref.ar_pageoff = gone.aref.ar_pageoff
        maplist_set_range(&map.list, &keep.link, gone.link.start, keep.link.end)
    else:
        maplist_set_range(&map.list, &keep.link, keep.link.start, gone.link.end)
    if gone.aref.ar_amap != NULL:
        gone.aref.ar_amap.am_ref -= 1    # keep still references it
    entry_dispose(u, gone)
    u.md.ctr[C_VMA_SPLITS] -= 1

cdef int uvm_map_move(uvm_ctx_t* u, vm_map_t* map, int64_t start, int64_t end,
                      int64_t new_start) noexcept nogil:
    """Move the (fully mapped) range to the free range at new_start.

    => every host allocation comes first, each undone if a later one fails:
       the destination page tables (pmap_reserve_move), then the entries the
       two clips need.  The move proper allocates nothing: it happens whole,
       or MM_ENOMEM leaves map and pmap as they were.
    """
    cdef int64_t delta = new_start - start
    cdef vm_map_entry_t* e
    cdef vm_map_entry_t* last
    cdef vm_map_entry_t* before
    cdef vm_map_entry_t* after = <vm_map_entry_t*>maplist_first_ending_after(&map.list, new_start, VPN_END)
    cdef map_entry_link_t* moved
    cdef int64_t floor, ceiling
    cdef bint clipped_start = False
    ceiling = VPN_END if after == NULL else after.link.start
    if after == NULL:
        floor = 0 if map_last(map) == NULL else map_last(map).link.end
    else:
        floor = 0 if entry_prev(after) == NULL else entry_prev(after).link.end
    if pmap_reserve_move(&u.md, &map.pmap.hdr, start, end, delta, floor, ceiling) != 0:
        return MM_ENOMEM
    e = <vm_map_entry_t*>maplist_first_ending_after(&map.list, start, VPN_END)
    if e.link.start < start:
        uvm_map_clip_start(u, map, e, start)
        if e.link.start != start:
            pmap_free_tables(&u.md, &map.pmap.hdr, floor, ceiling)
            return MM_ENOMEM
        clipped_start = True
    last = e
    while entry_next(last) != NULL and entry_next(last).link.start < end:
        last = entry_next(last)
    if last.link.end > end:
        uvm_map_clip_end(u, map, last, end)
        if last.link.end != end:
            if clipped_start:
                clip_undo(u, map, e, entry_prev(e), True)
            pmap_free_tables(&u.md, &map.pmap.hdr, floor, ceiling)
            return MM_ENOMEM
    before = entry_prev(e)
    moved = maplist_detach_run(&map.list, &e.link, end, delta)
    e = map_first(map) if before == NULL else entry_next(before)
    pmap_move(&u.md, &map.pmap.hdr, start, end, delta)
    free_tables_around(u, map, before, e)
    maplist_attach_run(&map.list, moved, new_start, VPN_END)
    return 0


# ------------------------------------------------------------------ dontneed
cdef void amap_drop_range(uvm_ctx_t* u, vm_map_entry_t* e, int64_t start, int64_t end) noexcept nogil:
    """The entry's own amap loses the anons of [start, end), a range inside the entry."""
    cdef int64_t off
    cdef vm_anon_t anon
    for off in range(start - e.link.start, end - e.link.start):
        anon = e.aref.ar_amap.am_anon[e.aref.ar_pageoff + off]
        if anon != NO_ANON:
            amap_unadd(&e.aref, off)
            uvm_anon_unref(u, anon)

cdef int uvm_map_dontneed(uvm_ctx_t* u, vm_map_t* map, int64_t start, int64_t end) noexcept nogil:
    """Drop the (fully mapped) range's pages; private pages then read 0.

    As uvm_map_clean(PGO_FREE) does, the walk goes entry by entry without
    clipping: an entry's own amap loses the anons of the part of the range it
    maps.  An entry still NEEDSCOPY borrows its amap (shared with the other
    side of a fork), so it cannot lose anons from it: that entry alone is
    clipped to the range and lets go of the amap there (it starts over with
    none, still NEEDSCOPY) -- the contract's zeros, where NetBSD's
    MADV_DONTNEED only deactivates."""
    cdef vm_map_entry_t* e = <vm_map_entry_t*>maplist_first_ending_after(&map.list, start, VPN_END)
    cdef int64_t s, t
    while e != NULL and e.link.start < end:
        s = start if start > e.link.start else e.link.start
        t = end if end < e.link.end else e.link.end
        if (e.inheritance == MAP_INHERIT_COPY and e.aref.ar_amap != NULL
                and e.etype & UVM_ET_NEEDSCOPY):
            e = clip_range(u, map, s, t)     # this entry only: [s, t) lies inside it
            pmap_remove(&u.md, &map.pmap.hdr, s, t)
            entry_unref_amap(u, e)
        else:
            pmap_remove(&u.md, &map.pmap.hdr, s, t)
            if e.inheritance == MAP_INHERIT_COPY and e.aref.ar_amap != NULL:
                amap_drop_range(u, e, s, t)
        e = entry_next(e)
    return 0
