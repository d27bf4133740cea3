# vm_object — anonymous memory objects and their shadow chains.
#
# The design (FreeBSD sys/vm, after Mach): memory is held by objects, not by
# mappings.  A private mapping that has been forked does not copy anything;
# both processes keep mapping the same object and mark their entries
# NEEDS_COPY.  The first write through such an entry gives it a *shadow*: a new,
# empty object whose backing_object is the old one.  Pages written from then on
# land in the shadow; everything else is still found by walking down the
# backing_object chain.
#
#        parent entry          child entry                after both wrote:
#             \                   /                       S_parent   S_child
#              ▼                 ▼                              \    /
#              object A  (ref 2, NEEDS_COPY on both)              A  (ref 2, shadow_count 2)
#
# Chains grow with every fork-and-write generation.  Two operations shorten
# them, both in vm_object_collapse(object):
#
#   collapse   the backing object B is referenced only by `object`
#              (B.ref_count == 1): B's pages move up into `object` (those
#              `object` already has, or that lie outside its window, are freed),
#              `object` inherits B's backing link, B is destroyed.
#   bypass     B is still shared, but `object` already has its own copy of
#              every page B holds inside `object`'s window ("all shadowed"):
#              `object` links past B to B's backing object and drops its
#              reference to B.
#
# They are attempted where FreeBSD attempts them: when an entry is deleted
# (munmap, exit: vm_map_entry_delete), at fork before an object is shared
# (vm_map_copy_entry), and when dropping a reference leaves an object whose
# only remaining reference is one shadow (vm_object_deallocate).
#
# vm_object_split (at fork) gives a clipped entry an object of exactly its own
# range, so a child does not share pages the parent's other entries use.
#
# Pages: a vm_page is a frame descriptor; obj.rtree maps pindex -> page.
# Invariants (checked by FreeBSDMachine.c_check):
#   ref_count == entries referencing + shadows referencing;
#   shadow_count == length of the shadow list == objects whose backing is us;
#   resident pages: frame.owner == object and frame.index == pindex.
#
# Simplified relative to the kernel: no swap (so "all shadowed" looks at
# resident pages only), no locking, busy states or paging-in-progress, no memq
# list (in-order walks use the trie), object size is not shrunk except by the
# truncation vm_map_entry_delete performs.

from libc.stdlib cimport calloc, free
from libc.stdint cimport uint64_t, int64_t

from mmbench.core cimport (C_OBJECTS_ALLOC, C_OBJECTS_FREE, C_SHADOW_OBJECTS, C_COLLAPSES,
                           C_BYPASSES)
from mmbench.blocks.frames cimport pfn_t, NO_PFN, frame_free
from mmbench_freebsd.pctrie cimport (pctrie_init, pctrie_lookup, pctrie_lookup_ge, pctrie_insert,
                                     pctrie_remove, pctrie_reclaim, pctrie_iter_t,
                                     pctrie_iter_lookup, pctrie_iter_insert, pctrie_iter_peek)
from mmbench_freebsd.vm cimport (vm_ctx_t, vm_object_t, vm_map_entry_t, OBJ_ANON, OBJ_ONEMAPPING,
                                 OBJ_DEAD, KC_OBJECT, KC_PAGE, KC_PCTRIE, kc_alloc, kc_free,
                                 item_pfn, vm_reserv_t)
from mmbench_freebsd.pmap cimport pmap_remove_all, pmap_demote_reserv
from mmbench_freebsd.vm_reserv cimport vm_reserv_free_page, vm_reserv_rename, vm_reserv_break_all


# ------------------------------------------------------------------ objects
cdef vm_object_t* vm_object_allocate_anon(vm_ctx_t* vm, int64_t size) noexcept nogil:
    cdef vm_object_t* obj = <vm_object_t*>calloc(1, sizeof(vm_object_t))
    if obj == NULL:
        return NULL
    pctrie_init(&obj.rtree, &vm.page_trie)
    pctrie_init(&obj.rvindex, &vm.reserv_trie)
    obj.size = size
    obj.ref_count = 1
    obj.flags = OBJ_ANON | OBJ_ONEMAPPING
    vm.next_serial += 1
    obj.serial = vm.next_serial
    obj.all_next = vm.objects
    if vm.objects != NULL:
        vm.objects.all_prev = obj
    vm.objects = obj
    vm.nobjects += 1
    kc_alloc(vm, KC_OBJECT)
    vm.md.ctr[C_OBJECTS_ALLOC] += 1
    return obj

cdef void vm_object_destroy(vm_ctx_t* vm, vm_object_t* obj) noexcept nogil:
    cdef vm_reserv_t* rv = obj.rvq
    while rv != NULL:                       # their 2 MiB mappings go back to 4 KiB
        pmap_demote_reserv(vm, rv)
        rv = rv.objq_next
    vm_reserv_break_all(vm, obj)
    if obj.all_prev != NULL:
        obj.all_prev.all_next = obj.all_next
    else:
        vm.objects = obj.all_next
    if obj.all_next != NULL:
        obj.all_next.all_prev = obj.all_prev
    vm.nobjects -= 1
    kc_free(vm, KC_OBJECT)
    vm.md.ctr[C_OBJECTS_FREE] += 1
    free(obj)

cdef void backing_insert(vm_object_t* obj, vm_object_t* backing) noexcept nogil:
    """Link `obj` into `backing`'s shadow list (the reference is the caller's)."""
    obj.backing_object = backing
    obj.shadow_prev = NULL
    obj.shadow_next = backing.shadow_head
    if backing.shadow_head != NULL:
        backing.shadow_head.shadow_prev = obj
    backing.shadow_head = obj
    backing.shadow_count += 1

cdef void backing_remove(vm_object_t* obj) noexcept nogil:
    cdef vm_object_t* backing = obj.backing_object
    if obj.shadow_prev != NULL:
        obj.shadow_prev.shadow_next = obj.shadow_next
    else:
        backing.shadow_head = obj.shadow_next
    if obj.shadow_next != NULL:
        obj.shadow_next.shadow_prev = obj.shadow_prev
    obj.shadow_next = NULL
    obj.shadow_prev = NULL
    backing.shadow_count -= 1
    obj.backing_object = NULL


# -------------------------------------------------------------------- pages
cdef pfn_t vm_page_lookup(vm_ctx_t* vm, vm_object_t* obj, int64_t pindex) noexcept nogil:
    cdef uint64_t* item = pctrie_lookup(&obj.rtree, <uint64_t>pindex)
    if item == NULL:
        return NO_PFN
    return item_pfn(vm, item)

cdef int vm_page_insert(vm_ctx_t* vm, vm_object_t* obj, pfn_t pfn, int64_t pindex) noexcept nogil:
    cdef pctrie_iter_t it
    it.node = NULL
    return vm_page_iter_insert(vm, obj, pfn, pindex, &it)

cdef void vm_page_rename(vm_ctx_t* vm, pfn_t pfn, vm_object_t* new_obj, int64_t new_pindex) noexcept nogil:
    cdef vm_object_t* old = <vm_object_t*><size_t>vm.md.fr.f[pfn].owner
    vm_reserv_rename(vm, pfn, new_obj, <int64_t>vm.md.fr.f[pfn].index, new_pindex)
    pctrie_remove(&old.rtree, vm.md.fr.f[pfn].index, &vm.md.kc[KC_PCTRIE])
    vm.md.fr.f[pfn].owner = <uint64_t><size_t>new_obj
    vm.md.fr.f[pfn].index = <uint64_t>new_pindex
    pctrie_insert(&new_obj.rtree, &vm.md.fr.f[pfn].index, &vm.md.kc[KC_PCTRIE])

cdef void vm_page_free(vm_ctx_t* vm, pfn_t pfn) noexcept nogil:
    """Unmap the page everywhere, take it out of its object and free the frame."""
    cdef vm_object_t* obj = <vm_object_t*><size_t>vm.md.fr.f[pfn].owner
    if vm.md.fr.f[pfn].mapcount:
        pmap_remove_all(vm, pfn)
    pctrie_remove(&obj.rtree, vm.md.fr.f[pfn].index, &vm.md.kc[KC_PCTRIE])
    kc_free(vm, KC_PAGE)
    vm_reserv_free_page(vm, pfn)
    frame_free(vm.md.fr, pfn)

cdef void vm_object_page_remove(vm_ctx_t* vm, vm_object_t* obj, int64_t start, int64_t end) noexcept nogil:
    """Free the object's pages with pindex in [start, end)."""
    cdef uint64_t* item = pctrie_lookup_ge(&obj.rtree, <uint64_t>start)
    cdef int64_t pindex
    while item != NULL and <int64_t>item[0] < end:
        pindex = <int64_t>item[0]
        vm_page_free(vm, item_pfn(vm, item))
        item = pctrie_lookup_ge(&obj.rtree, <uint64_t>(pindex + 1))

cdef void vm_object_terminate(vm_ctx_t* vm, vm_object_t* obj) noexcept nogil:
    cdef uint64_t* item = pctrie_lookup_ge(&obj.rtree, 0)
    cdef pfn_t pfn
    obj.flags |= OBJ_DEAD
    while item != NULL:
        pfn = item_pfn(vm, item)
        item = pctrie_lookup_ge(&obj.rtree, item[0] + 1)
        if vm.md.fr.f[pfn].mapcount:
            pmap_remove_all(vm, pfn)
        kc_free(vm, KC_PAGE)
        vm_reserv_free_page(vm, pfn)
        frame_free(vm.md.fr, pfn)
    pctrie_reclaim(&obj.rtree, &vm.md.kc[KC_PCTRIE])
    vm_object_destroy(vm, obj)


# ---------------------------------------------------------------- references
cdef void vm_object_deallocate(vm_ctx_t* vm, vm_object_t* obj) noexcept nogil:
    """Drop one reference; terminate objects that lose their last one.

    => when the only reference left is one shadow, try to collapse that
       shadow into this object (vm_object_deallocate_anon).
    => the reference a terminated object held on its backing object is
       dropped in the same loop (no recursion down the chain).
    """
    cdef vm_object_t* backing
    while obj != NULL:
        obj.ref_count -= 1
        if obj.ref_count > 0:
            if obj.ref_count > 1 or obj.shadow_count == 0:
                if obj.ref_count == 1 and (obj.flags & OBJ_ANON):
                    obj.flags |= OBJ_ONEMAPPING
                return
            vm_object_collapse(vm, obj.shadow_head)
            return
        backing = obj.backing_object
        if backing != NULL:
            backing_remove(obj)
        vm_object_terminate(vm, obj)
        obj = backing


# ------------------------------------------------------------------- shadows
cdef int vm_object_shadow(vm_ctx_t* vm, vm_map_entry_t* entry) noexcept nogil:
    """Give `entry` a fresh object in front of its current one (NEEDS_COPY write).

    => no shadow when the entry is the source's only reference: it may
       write into the source directly.
    => the entry's reference moves to the shadow, which holds one on the
       source: the source's ref_count does not change.
    """
    cdef vm_object_t* source = entry.object
    cdef vm_object_t* result
    if source != NULL and source.ref_count == 1 and (source.flags & OBJ_ANON):
        return 0
    result = vm_object_allocate_anon(vm, entry.link.end - entry.link.start)
    if result == NULL:
        return -1
    if source != NULL:
        result.backing_object_offset = entry.offset
        backing_insert(result, source)
        source.flags &= ~OBJ_ONEMAPPING     # its pages are now seen through another object
    entry.object = result
    entry.offset = 0
    vm.md.ctr[C_SHADOW_OBJECTS] += 1
    return 0


cdef void vm_object_split(vm_ctx_t* vm, vm_map_entry_t* entry) noexcept nogil:
    """Give a clipped entry an object of exactly its own range (before fork).

    => only for a ONEMAPPING anonymous object with more than one reference
       (the other references are this process's other clipped entries).
    => the entry's pages move to the new object; the new object takes a
       reference on the original's backing object at the matching offset.
    """
    cdef vm_object_t* orig = entry.object
    cdef vm_object_t* new_obj
    cdef int64_t size = entry.link.end - entry.link.start
    cdef int64_t start = entry.offset
    cdef uint64_t* item
    cdef int64_t pindex
    if not (orig.flags & OBJ_ANON) or orig.ref_count <= 1:
        return
    new_obj = vm_object_allocate_anon(vm, size)
    if new_obj == NULL:
        return
    if orig.backing_object != NULL:
        new_obj.backing_object_offset = orig.backing_object_offset + start
        backing_insert(new_obj, orig.backing_object)
        orig.backing_object.ref_count += 1
    item = pctrie_lookup_ge(&orig.rtree, <uint64_t>start)
    while item != NULL and <int64_t>item[0] < start + size:
        pindex = <int64_t>item[0]
        vm_page_rename(vm, item_pfn(vm, item), new_obj, pindex - start)
        item = pctrie_lookup_ge(&orig.rtree, <uint64_t>(pindex + 1))
    entry.object = new_obj
    entry.offset = 0
    vm_object_deallocate(vm, orig)


# ---------------------------------------------------------- collapse, bypass
cdef void collapse_scan(vm_ctx_t* vm, vm_object_t* obj, vm_object_t* backing) noexcept nogil:
    """Move the backing object's pages up; free the ones obj cannot see or shadows."""
    cdef int64_t off = obj.backing_object_offset
    cdef uint64_t* item = pctrie_lookup_ge(&backing.rtree, 0)
    cdef int64_t pindex, new_pindex
    cdef pfn_t pfn
    while item != NULL:
        pindex = <int64_t>item[0]
        pfn = item_pfn(vm, item)
        new_pindex = pindex - off
        if new_pindex < 0 or new_pindex >= obj.size or vm_page_lookup(vm, obj, new_pindex) != NO_PFN:
            vm_page_free(vm, pfn)
        else:
            vm_page_rename(vm, pfn, obj, new_pindex)
        item = pctrie_lookup_ge(&backing.rtree, <uint64_t>(pindex + 1))

cdef bint all_shadowed(vm_ctx_t* vm, vm_object_t* obj, vm_object_t* backing) noexcept nogil:
    """Does obj hold its own page for every backing page inside its window?"""
    cdef int64_t off = obj.backing_object_offset
    cdef uint64_t* item = pctrie_lookup_ge(&backing.rtree, <uint64_t>off)
    while item != NULL and <int64_t>item[0] < off + obj.size:
        if vm_page_lookup(vm, obj, <int64_t>item[0] - off) == NO_PFN:
            return False
        item = pctrie_lookup_ge(&backing.rtree, item[0] + 1)
    return True

cdef void collapse_into(vm_ctx_t* vm, vm_object_t* obj, vm_object_t* backing) noexcept nogil:
    """Full collapse: backing (referenced by obj alone) is absorbed by obj."""
    cdef vm_object_t* next_backing = backing.backing_object
    collapse_scan(vm, obj, backing)
    backing_remove(obj)
    if next_backing != NULL:
        # backing's reference on next_backing becomes obj's
        backing_remove(backing)
        obj.backing_object_offset += backing.backing_object_offset
        backing_insert(obj, next_backing)
    else:
        obj.backing_object_offset = 0
    backing.ref_count = 0
    vm_object_terminate(vm, backing)
    vm.md.ctr[C_COLLAPSES] += 1

cdef void bypass(vm_ctx_t* vm, vm_object_t* obj, vm_object_t* backing) noexcept nogil:
    """obj links past backing (which it shadows completely) to backing's backing."""
    cdef vm_object_t* next_backing = backing.backing_object
    backing_remove(obj)
    if next_backing != NULL:
        next_backing.ref_count += 1
        next_backing.flags &= ~OBJ_ONEMAPPING
        obj.backing_object_offset += backing.backing_object_offset
        backing_insert(obj, next_backing)
    else:
        obj.backing_object_offset = 0
    backing.ref_count -= 1            # still > 0: it was shared
    vm.md.ctr[C_BYPASSES] += 1

cdef void vm_object_collapse(vm_ctx_t* vm, vm_object_t* obj) noexcept nogil:
    """Shorten obj's chain for as long as collapse or bypass applies."""
    cdef vm_object_t* backing
    while True:
        backing = obj.backing_object
        if backing == NULL or not (backing.flags & OBJ_ANON) or (obj.flags & OBJ_DEAD):
            return
        if backing.ref_count == 1:
            collapse_into(vm, obj, backing)
        elif all_shadowed(vm, obj, backing):
            bypass(vm, obj, backing)
        else:
            return
