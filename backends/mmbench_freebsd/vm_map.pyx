# vm_map — a process's address space as a list of vm_map_entry ordered by address.
#
# An entry maps [start, end) to `object` starting at pindex `offset`.  Private
# entries inherit by copy; a fork marks both sides MAP_ENTRY_COW and
# MAP_ENTRY_NEEDS_COPY, the latter until their first write (see vm_fault).  Shared entries
# inherit by sharing the object.  An entry's object is allocated lazily, on the
# first fault, on fork of a shared entry, or when the entry is clipped (so both
# halves keep seeing the same pages).
#
# Operations that touch part of an entry clip it first (vm_map_clip_start /
# _end): the piece becomes its own entry with an adjusted offset and its own
# reference on the object.  Deleting an entry (vm_map_entry_delete) is where
# the chain is tidied: a ONEMAPPING object first tries to collapse and drops the
# pages only this entry could see, then the reference is released.
#
# Entries are both on the address-ordered list (iteration) and in a balanced
# search tree (lookups, O(log n)): the kernel's tree is self-adjusting (splay),
# the model reuses mmbench's treap-balanced interval tree; a lookup first tries
# the last entry found.  A new mapping right after an entry with no flags
# (fresh anonymous memory: MAP_ENTRY_COW arrives with the first fork) and the
# same writability tries vm_object_coalesce (collapse first, then grow an
# object that shadows nothing and that no one else can see past the entry's
# end); with the same inheritance the entry grows, otherwise the new entry
# maps the grown object right after it.  Entries split by mprotect are not
# merged back (vm_map_simplify_entry).  mremap does not exist in FreeBSD;
# here it moves the entries (object and offset unchanged) and their PTEs to
# the new address.  madvise_dontneed is imposed by the contract (FreeBSD's
# MADV_DONTNEED only deactivates pages): see vm_map_dontneed.

from libc.stdlib cimport malloc, calloc, free
from libc.stdint cimport int64_t, uint64_t, uint8_t

from mmbench.blocks.itree cimport itree_init
from mmbench.blocks.maplist cimport (map_entry_link_t, map_list_t, maplist_link_after, maplist_unlink,
                                     maplist_set_range, maplist_first_ending_after,
                                     maplist_range_free, maplist_range_mapped,
                                     maplist_lookup,
                                     maplist_detach_run, maplist_attach_run)
from mmbench.core cimport (MM_ENOMEM, C_VMA_SPLITS, C_VMA_MERGES, C_FORK_PTES_WRPROTECT, C_FORK_PTES_COPIED,
                           VPN_BITS)
from mmbench_freebsd.vm cimport (vm_ctx_t, vm_map_t, vm_map_entry_t, vm_object_t, KC_ENTRY, KC_VMSPACE,
                                 kc_alloc, kc_free, MAP_ENTRY_COW, MAP_ENTRY_NEEDS_COPY,
                                 VM_INHERIT_SHARE, VM_INHERIT_COPY, OBJ_ANON, OBJ_ONEMAPPING,
                                 entry_pindex,
                                 vm_map_entry_first, vm_map_entry_last, vm_map_entry_succ, vm_map_entry_pred)
from mmbench_freebsd.vm_object cimport (vm_object_allocate_anon, vm_object_deallocate,
                                        vm_object_reference, vm_object_collapse, vm_object_split,
                                        vm_object_page_remove)
from mmbench.blocks.pmap cimport (pmap_remove, pmap_protect, pmap_move, pmap_reserve_move,
                                  pmap_free_tables)
from mmbench.blocks.pmap_pvchunk cimport pmap_pinit, pmap_release
from mmbench_freebsd.pmap cimport pmap_copy

cdef int64_t VPN_END = (<int64_t>1) << VPN_BITS


# --------------------------------------------------------------- the vmspace
cdef vm_map_t* vmspace_alloc(vm_ctx_t* vm, int64_t pid) noexcept nogil:
    """One struct vmspace (map + pmap, 584 B) and the pmap's top-level table."""
    cdef vm_map_t* map = <vm_map_t*>calloc(1, sizeof(vm_map_t))
    if map == NULL:
        return NULL
    itree_init(&map.list.tree)
    if pmap_pinit(&vm.md, &map.pmap, pid) != 0:
        free(map)
        return NULL
    kc_alloc(vm, KC_VMSPACE)
    return map

cdef void vmspace_free(vm_ctx_t* vm, vm_map_t* map) noexcept nogil:
    vm_map_delete(vm, map, 0, VPN_END)
    pmap_release(&vm.md, &map.pmap)
    kc_free(vm, KC_VMSPACE)
    free(map)


# ------------------------------------------------------------------- entries
cdef vm_map_entry_t* entry_create(vm_ctx_t* vm) noexcept nogil:
    cdef vm_map_entry_t* e = <vm_map_entry_t*>calloc(1, sizeof(vm_map_entry_t))
    if e != NULL:
        kc_alloc(vm, KC_ENTRY)
    return e

cdef void entry_dispose(vm_ctx_t* vm, vm_map_entry_t* e) noexcept nogil:
    kc_free(vm, KC_ENTRY)
    free(e)

cdef void link_after(vm_map_t* map, vm_map_entry_t* after, vm_map_entry_t* e) noexcept nogil:
    """Insert e after `after` (NULL: at the front) on the list and in the tree."""
    maplist_link_after(&map.list, NULL if after == NULL else &after.link, &e.link)

cdef vm_map_entry_t* vm_map_lookup_entry(vm_map_t* map, int64_t vpn) noexcept nogil:
    return <vm_map_entry_t*>maplist_lookup(&map.list, vpn, VPN_END)

cdef bint vm_map_range_free(vm_map_t* map, int64_t start, int64_t end) noexcept nogil:
    return maplist_range_free(&map.list, start, end, VPN_END)

cdef bint vm_map_range_mapped(vm_map_t* map, int64_t start, int64_t end) noexcept nogil:
    return maplist_range_mapped(&map.list, start, end, VPN_END)

cdef void entry_back(vm_ctx_t* vm, vm_map_entry_t* e) noexcept nogil:
    """Give an entry its object now (vm_map_entry_back)."""
    e.object = vm_object_allocate_anon(vm, e.link.end - e.link.start)
    e.offset = 0

cdef vm_map_entry_t* entry_clone(vm_ctx_t* vm, vm_map_entry_t* e) noexcept nogil:
    cdef vm_map_entry_t* c
    if e.object == NULL:
        entry_back(vm, e)
        if e.object == NULL:
            return NULL
    c = entry_create(vm)
    if c == NULL:
        return NULL
    c[0] = e[0]
    if c.object != NULL:
        vm_object_reference(c.object)
    vm.md.ctr[C_VMA_SPLITS] += 1
    return c

cdef void vm_map_clip_start(vm_ctx_t* vm, vm_map_t* map, vm_map_entry_t* e, int64_t vpn) noexcept nogil:
    """Split e at vpn; e keeps [vpn, end), a new entry takes [start, vpn)."""
    cdef vm_map_entry_t* left
    if vpn <= e.link.start or vpn >= e.link.end:
        return
    left = entry_clone(vm, e)
    if left == NULL:
        return
    left.link.end = vpn
    e.offset += vpn - e.link.start
    maplist_set_range(&map.list, &e.link, vpn, e.link.end)
    link_after(map, vm_map_entry_pred(e), left)

cdef void vm_map_clip_end(vm_ctx_t* vm, vm_map_t* map, vm_map_entry_t* e, int64_t vpn) noexcept nogil:
    """Split e at vpn; e keeps [start, vpn), a new entry takes [vpn, end)."""
    cdef vm_map_entry_t* right
    if vpn <= e.link.start or vpn >= e.link.end:
        return
    right = entry_clone(vm, e)
    if right == NULL:
        return
    right.offset += vpn - e.link.start
    right.link.start = vpn
    maplist_set_range(&map.list, &e.link, e.link.start, vpn)
    link_after(map, e, right)

cdef vm_map_entry_t* clip_range(vm_ctx_t* vm, vm_map_t* map, int64_t start, int64_t end) noexcept nogil:
    """Clip the entries at both ends of [start, end); returns the first inside."""
    cdef vm_map_entry_t* e = <vm_map_entry_t*>maplist_first_ending_after(&map.list, start, VPN_END)
    cdef vm_map_entry_t* last
    if e == NULL or e.link.start >= end:
        return NULL
    vm_map_clip_start(vm, map, e, start)
    last = e
    while vm_map_entry_succ(last) != NULL and vm_map_entry_succ(last).link.start < end:
        last = vm_map_entry_succ(last)
    vm_map_clip_end(vm, map, last, end)
    return e


cdef bint vm_object_coalesce(vm_ctx_t* vm, vm_map_entry_t* prev, int64_t npages) noexcept nogil:
    """Can prev's object take the npages that follow prev?  (Then it does.)

    => no object yet: trivially yes (the entry simply grows).
    => an anonymous object first tries to collapse its chain; it must then
       shadow nothing.
    => a shared object (ref_count > 1) only if it is ONEMAPPING or ends
       exactly where prev ends: no one else can see the new pindexes.
    => stale pages left in the new range by an earlier unmap are freed, so
       the new pages read 0; the object grows if needed.
    """
    cdef vm_object_t* obj = prev.object
    cdef int64_t next_pindex
    if obj == NULL:
        return True
    if not (obj.flags & OBJ_ANON):
        return False
    vm_object_collapse(vm, obj)
    if obj.backing_object != NULL:
        return False
    next_pindex = prev.offset + (prev.link.end - prev.link.start)
    if obj.ref_count > 1 and obj.size != next_pindex and not (obj.flags & OBJ_ONEMAPPING):
        return False
    if next_pindex < obj.size:
        vm_object_page_remove(vm, obj, next_pindex, next_pindex + npages)
    if next_pindex + npages > obj.size:
        obj.size = next_pindex + npages
    return True

cdef vm_map_entry_t* coalesce_prev(vm_ctx_t* vm, vm_map_t* map, int64_t start, int64_t npages,
                                   bint writable) noexcept nogil:
    """vm_map_insert's first step: the entry ending at `start` whose object
    could be extended over the new range (NULL if none).

    => same entry flags as a fresh anonymous entry (none: an entry forked or
       copied on write keeps MAP_ENTRY_COW and never coalesces), and the same
       swap charge (the model's stand-in: the same writability).
    """
    cdef vm_map_entry_t* prev = <vm_map_entry_t*>maplist_first_ending_after(&map.list, start - 1, VPN_END) if start > 0 else NULL
    if prev == NULL or prev.link.end != start or prev.eflags != 0 or prev.writable != writable:
        return NULL
    if not vm_object_coalesce(vm, prev, npages):
        return NULL
    return prev

cdef int vm_map_insert(vm_ctx_t* vm, vm_map_t* map, int64_t start, int64_t end,
                       bint shared, bint writable) noexcept nogil:
    """Map [start, end) with a fresh anonymous entry.

    => prev's object coalesced and prev has the same inheritance: prev just
       grows (counted as a merge).
    => coalesced but different inheritance: the new entry maps prev's object
       right after prev's range, with its own reference.
    """
    cdef uint8_t inheritance = VM_INHERIT_SHARE if shared else VM_INHERIT_COPY
    cdef vm_map_entry_t* prev = coalesce_prev(vm, map, start, end - start, writable)
    cdef vm_map_entry_t* e
    cdef vm_map_entry_t* before
    if prev != NULL and prev.inheritance == inheritance:
        maplist_set_range(&map.list, &prev.link, prev.link.start, end)
        map.list.hint = &prev.link
        vm.md.ctr[C_VMA_MERGES] += 1
        return 0
    e = entry_create(vm)
    if e == NULL:
        return -1
    e.link.start = start
    e.link.end = end
    e.writable = writable
    e.inheritance = inheritance
    e.eflags = 0                       # MAP_ENTRY_COW | NEEDS_COPY come with the first fork
    if prev != NULL and prev.object != NULL:
        e.object = prev.object
        e.offset = prev.offset + (prev.link.end - prev.link.start)
        vm_object_reference(e.object)
    before = <vm_map_entry_t*>maplist_first_ending_after(&map.list, start, VPN_END)
    link_after(map, vm_map_entry_last(map) if before == NULL else vm_map_entry_pred(before), e)
    map.list.hint = &e.link
    return 0


# ------------------------------------------------------------------ deletion
cdef void entry_release_object(vm_ctx_t* vm, vm_map_entry_t* e) noexcept nogil:
    """The entry stops referencing its object (vm_map_entry_delete's object part).

    => a ONEMAPPING object still referenced elsewhere first tries to collapse,
       then frees the pages only this entry saw (and is truncated if they were
       its tail).
    """
    cdef vm_object_t* obj = e.object
    cdef int64_t lo, hi
    if obj == NULL:
        return
    e.object = NULL
    if (obj.flags & OBJ_ANON) and obj.ref_count != 1 and (obj.flags & OBJ_ONEMAPPING):
        vm_object_collapse(vm, obj)
        lo = e.offset
        hi = e.offset + (e.link.end - e.link.start)
        vm_object_page_remove(vm, obj, lo, hi)
        if hi >= obj.size and lo < obj.size:
            obj.size = lo
    vm_object_deallocate(vm, obj)

cdef void free_tables_around(vm_ctx_t* vm, vm_map_t* map, vm_map_entry_t* before,
                             vm_map_entry_t* after) noexcept nogil:
    pmap_free_tables(&vm.md, &map.pmap.hdr, 0 if before == NULL else before.link.end,
                     VPN_END if after == NULL else after.link.start)

cdef void vm_map_delete(vm_ctx_t* vm, vm_map_t* map, int64_t start, int64_t end) noexcept nogil:
    cdef vm_map_entry_t* e = clip_range(vm, map, start, end)
    cdef vm_map_entry_t* nx
    cdef vm_map_entry_t* before
    if e == NULL:
        return
    before = vm_map_entry_pred(e)
    while e != NULL and e.link.start < end:
        nx = vm_map_entry_succ(e)
        pmap_remove(&vm.md, &map.pmap.hdr, e.link.start, e.link.end)
        maplist_unlink(&map.list, &e.link)
        entry_release_object(vm, e)
        entry_dispose(vm, e)
        e = nx
    free_tables_around(vm, map, before, e)


# --------------------------------------------------------------- protection
cdef void vm_map_protect(vm_ctx_t* vm, vm_map_t* map, int64_t start, int64_t end, bint writable) noexcept nogil:
    cdef vm_map_entry_t* e = clip_range(vm, map, start, end)
    while e != NULL and e.link.start < end:
        if e.writable and not writable:
            pmap_protect(&vm.md, &map.pmap.hdr, e.link.start, e.link.end)
        e.writable = writable
        e = vm_map_entry_succ(e)


# --------------------------------------------------------------------- fork
cdef int copy_private_entry(vm_ctx_t* vm, vm_map_t* src, vm_map_entry_t* e,
                            vm_map_entry_t* c) noexcept nogil:
    """vm_map_copy_entry: both sides become COW | NEEDS_COPY on one object."""
    cdef vm_object_t* obj
    if not (e.eflags & MAP_ENTRY_NEEDS_COPY) and e.writable:
        vm.md.ctr[C_FORK_PTES_WRPROTECT] += pmap_protect(&vm.md, &src.pmap.hdr, e.link.start, e.link.end)
    if e.object == NULL:
        c.object = NULL
        c.offset = 0
        return 0
    vm_object_collapse(vm, e.object)
    if e.object.flags & OBJ_ONEMAPPING:
        vm_object_split(vm, e)
    obj = e.object
    vm_object_reference(obj)
    obj.flags &= ~OBJ_ONEMAPPING
    e.eflags |= MAP_ENTRY_COW | MAP_ENTRY_NEEDS_COPY
    c.eflags = e.eflags
    c.object = obj
    c.offset = e.offset
    return 0

cdef int vmspace_fork(vm_ctx_t* vm, vm_map_t* src, vm_map_t* dst) noexcept nogil:
    """Copy every entry of src into the (empty) dst by its inheritance."""
    cdef vm_map_entry_t* e = vm_map_entry_first(src)
    cdef vm_map_entry_t* c
    while e != NULL:
        c = entry_create(vm)
        if c == NULL:
            return -1
        c[0] = e[0]
        if e.inheritance == VM_INHERIT_SHARE:
            if e.object == NULL:
                entry_back(vm, e)
                if e.object == NULL:
                    entry_dispose(vm, c)
                    return -1
            e.object.flags &= ~OBJ_ONEMAPPING
            vm_object_reference(e.object)
            c.object = e.object
        else:
            copy_private_entry(vm, src, e, c)
        link_after(dst, vm_map_entry_last(dst), c)
        if vm.pmap_copy:
            vm.md.ctr[C_FORK_PTES_COPIED] += pmap_copy(vm, &dst.pmap, &src.pmap, e.link.start, e.link.end)
        e = vm_map_entry_succ(e)
    dst.list.hint = dst.list.first
    return 0


# ------------------------------------------------------------------- mremap
cdef void clip_undo(vm_ctx_t* vm, vm_map_t* map, vm_map_entry_t* keep, vm_map_entry_t* gone,
                    bint gone_first) noexcept nogil:
    """Merge back a clip the move made (a later step ran out of memory): `keep`
    takes `gone`'s range again and `gone` (a clone holding one more reference
    on the same object) is freed."""
    maplist_unlink(&map.list, &gone.link)
    if gone_first:
        keep.offset = gone.offset
        maplist_set_range(&map.list, &keep.link, gone.link.start, keep.link.end)
    else:
        maplist_set_range(&map.list, &keep.link, keep.link.start, gone.link.end)
    if gone.object != NULL:
        gone.object.ref_count -= 1       # keep still holds a reference: nothing else changes
    entry_dispose(vm, gone)
    vm.md.ctr[C_VMA_SPLITS] -= 1

cdef int clip_checked(vm_ctx_t* vm, vm_map_t* map, vm_map_entry_t* e, int64_t vpn,
                      bint at_start) noexcept nogil:
    """vm_map_clip_start / _end that reports failure and leaves e as it was
    (also the object entry_back may have given it)."""
    cdef bint had_object = e.object != NULL
    cdef int64_t offset = e.offset
    cdef vm_object_t* obj
    if vpn <= e.link.start or vpn >= e.link.end:
        return 0
    if at_start:
        vm_map_clip_start(vm, map, e, vpn)
        if e.link.start == vpn:
            return 0
    else:
        vm_map_clip_end(vm, map, e, vpn)
        if e.link.end == vpn:
            return 0
    if not had_object and e.object != NULL:
        obj = e.object
        e.object = NULL
        e.offset = offset
        vm_object_deallocate(vm, obj)    # fresh, empty, referenced by e alone
    return -1

cdef int vm_map_move(vm_ctx_t* vm, vm_map_t* map, int64_t start, int64_t end, int64_t new_start) noexcept nogil:
    """Move the (fully mapped) range to the free range at new_start.

    => every host allocation comes first, each undone if a later one fails:
       the destination page tables (pmap_reserve_move), then the entries the
       two clips need.  The move proper allocates nothing, so it either
       happens whole or MM_ENOMEM leaves the map and pmap as they were.
    """
    cdef int64_t delta = new_start - start
    cdef vm_map_entry_t* e
    cdef vm_map_entry_t* last
    cdef vm_map_entry_t* before
    cdef vm_map_entry_t* m
    cdef vm_map_entry_t* after = <vm_map_entry_t*>maplist_first_ending_after(&map.list, new_start, VPN_END)
    cdef map_entry_link_t* moved
    cdef int64_t floor, ceiling
    cdef bint clipped_start = False
    # the hole around the destination (where reserved tables are freed on failure)
    ceiling = VPN_END if after == NULL else after.link.start
    if after == NULL:
        floor = 0 if vm_map_entry_last(map) == NULL else vm_map_entry_last(map).link.end
    else:
        floor = 0 if vm_map_entry_pred(after) == NULL else vm_map_entry_pred(after).link.end
    if pmap_reserve_move(&vm.md, &map.pmap.hdr, start, end, delta, floor, ceiling) != 0:
        return MM_ENOMEM
    e = <vm_map_entry_t*>maplist_first_ending_after(&map.list, start, VPN_END)
    if e.link.start < start:
        if clip_checked(vm, map, e, start, True) != 0:
            pmap_free_tables(&vm.md, &map.pmap.hdr, floor, ceiling)
            return MM_ENOMEM
        clipped_start = True
    last = e
    while vm_map_entry_succ(last) != NULL and vm_map_entry_succ(last).link.start < end:
        last = vm_map_entry_succ(last)
    if clip_checked(vm, map, last, end, False) != 0:
        if clipped_start:
            clip_undo(vm, map, e, vm_map_entry_pred(e), True)
        pmap_free_tables(&vm.md, &map.pmap.hdr, floor, ceiling)
        return MM_ENOMEM
    before = vm_map_entry_pred(e)
    m = e
    while m != NULL and m.link.start < end:
        # FreeBSD has no mremap: ONEMAPPING objects there map their pindexes
        # linearly with addresses, which vm_object_coalesce relies on.  An
        # object another entry also maps stops being ONEMAPPING once one of
        # its entries moves.
        if m.object != NULL and m.object.ref_count > 1:
            m.object.flags &= ~OBJ_ONEMAPPING
        m = vm_map_entry_succ(m)
    moved = maplist_detach_run(&map.list, &e.link, end, delta)
    e = vm_map_entry_first(map) if before == NULL else vm_map_entry_succ(before)
    pmap_move(&vm.md, &map.pmap.hdr, start, end, delta)
    free_tables_around(vm, map, before, e)
    maplist_attach_run(&map.list, moved, new_start, VPN_END)
    return 0


# ------------------------------------------------------------------ dontneed
cdef int vm_map_dontneed(vm_ctx_t* vm, vm_map_t* map, int64_t start, int64_t end) noexcept nogil:
    """madvise_dontneed as the contract defines it (private pages read 0 next).

    FreeBSD's own MADV_DONTNEED only deactivates pages; this is what the
    kernel's MADV_FREE path (vm_map_madvise + vm_object_madvise) does when
    the page daemon reclaims the freed pages at once, plus pmap_remove:
    => the map is not modified (no clipping) where MADV_FREE applies.
    => every entry: pmap_remove of its part of the range.
    => shared entries keep their pages (the object holds the data).
    => private entry, anonymous ONEMAPPING object shadowing nothing
       (vm_object_advice_applies): its pages in the range are freed.
    => private entry whose object MADV_FREE skips (a backing object: freeing
       would "rewind time" to the shadow's creation; or not ONEMAPPING): the
       range becomes fresh anonymous memory as mmap(MAP_FIXED) would make it
       -- the entry is clipped to the range and gives up its object through
       vm_map_entry_delete's path (which may collapse).
    """
    cdef vm_map_entry_t* e = <vm_map_entry_t*>maplist_first_ending_after(&map.list, start, VPN_END)
    cdef vm_map_entry_t* nx
    cdef vm_object_t* obj
    cdef int64_t s, t
    while e != NULL and e.link.start < end:
        s = e.link.start if e.link.start > start else start
        t = e.link.end if e.link.end < end else end
        nx = vm_map_entry_succ(e)
        pmap_remove(&vm.md, &map.pmap.hdr, s, t)
        obj = e.object
        if e.inheritance == VM_INHERIT_COPY and obj != NULL:
            if (obj.backing_object == NULL and (obj.flags & OBJ_ANON)
                    and (obj.flags & OBJ_ONEMAPPING)):
                vm_object_page_remove(vm, obj, entry_pindex(e, s), entry_pindex(e, t))
            else:
                vm_map_clip_start(vm, map, e, s)
                vm_map_clip_end(vm, map, e, t)
                entry_release_object(vm, e)
                e.offset = 0
                e.eflags = 0              # fresh anonymous memory: no COW, no NEEDS_COPY
                nx = vm_map_entry_succ(e)
        e = nx
    return 0
