# vm_fault — the page-fault handler of the FreeBSD design.
#
# A fault is a short driver over phases that fill one faultstate:
#
#   fault_lookup    vm_map_lookup: which object the fault starts in.  A write
#                   through a NEEDS_COPY entry must get the entry its own
#                   object first (a shadow), unless the entry holds the
#                   object's only reference, in which case it simply takes it.
#   fault_walk      vm_page_lookup in each object down the backing_object
#                   chain (chain steps counted, depth recorded).
#   fault_decide    what to do with what was found:
#                     FA_MAP       page is in the first object: map it
#                     FA_MAP_RO    read of a page found below: map it read-only
#                     FA_COPY      write of a page found below: copy it up
#                                  (vm_fault_cow; when the first object is
#                                  not ONEMAPPING, pmap_remove_all of the
#                                  original page first)
#                     FA_MOVE      ... unless the backing object has one
#                                  reference and one shadow: move the page up
#                                  (the COW page-move optimisation)
#                     FA_ZERO      found nowhere: zero-fill a page in the first
#                                  object (FreeBSD has no shared zero page, so
#                                  reads zero-fill too)
#   (frames checked here: a fault that needs one and finds none fails with
#    nothing changed)
#   fault_prepare   now mutate: allocate the entry's object, create the shadow,
#                   clear NEEDS_COPY
#   fault_resolve   carry out the action; pmap_enter the page.  A page
#                   allocated for the first object goes through
#                   vm_reserv_alloc_page (its 2 MiB reservation, made at the
#                   first fault of the block); pmap_enter may then promote.
#   fault_prefault  vm_fault_prefault: map up to 4 resident pages on each side
#                   read-only (order -1, +1, -2, +2 …; stop at the first page
#                   the chain does not hold), so neighbours need no fault.
#                   Not after FA_MAP: the kernel's soft fast path (page
#                   resident in the first object) does not prefault.
#
# Write protection of the mapping: a page is mapped writable only for an
# entry that is writable and no longer NEEDS_COPY, and only when the page
# lives in the entry's first object (pages found below are shared).

from libc.stdint cimport int64_t, uint64_t

from mmbench.core cimport (MM_OK, MM_ENOMEM, C_FAULTS, C_FAULT_ZERO_FILL, C_FAULT_COW_COPY,
                           C_FAULT_COW_REUSE, C_FAULT_MINOR, C_FAULT_WP_SHARED, C_PAGES_ZEROED,
                           C_PAGES_COPIED, C_CHAIN_STEPS, C_COW_PAGE_MOVES)
from mmbench.blocks.frames cimport pfn_t, NO_PFN, FR_DEVICE_PRIVATE, frame_alloc, frames_free_count
from mmbench.blocks.pagetable cimport pt_node_t, pt_leaf, pt_find_leaf, pte_present, pte_pfn
from mmbench_freebsd.vm cimport (vm_ctx_t, vm_map_t, vm_map_entry_t, vm_object_t, MAP_ENTRY_NEEDS_COPY,
                                 OBJ_ANON, OBJ_ONEMAPPING, VM_INHERIT_SHARE, CHAIN_HIST, entry_pindex)
from mmbench_freebsd.vm_object cimport (vm_object_allocate_anon, vm_object_shadow, vm_page_lookup,
                                        vm_page_rename, vm_page_iter_lookup,
                                        vm_page_iter_insert, vm_page_iter_peek)
from mmbench_freebsd.pctrie cimport pctrie_iter_t
from mmbench.blocks.pmap cimport pmap_enter
from mmbench_freebsd.pmap cimport pmap_remove_all
from mmbench_freebsd.vm_reserv cimport vm_reserv_alloc_page

cdef enum fault_action:
    FA_MAP
    FA_MAP_RO
    FA_COPY
    FA_MOVE
    FA_ZERO

ctypedef struct faultstate_t:
    # set by the caller
    vm_map_t* map
    vm_map_entry_t* entry
    int64_t vpn
    bint write
    pt_node_t* leaf           # vpn's PTE table, when the caller had it
    # fault_lookup
    bint shadow               # a shadow object will be put in front
    # fault_walk: where the page was found (object NULL: nowhere)
    vm_object_t* object
    int64_t pindex
    pfn_t m
    int depth                 # objects walked past
    pctrie_iter_t it          # where the first object's lookup ended
    bint took_object          # NEEDS_COPY cleared without a shadow (sole reference)
    # fault_decide
    fault_action action
    bint need_frame


cdef inline void fault_lookup(faultstate_t* fs) noexcept nogil:
    cdef vm_map_entry_t* e = fs.entry
    fs.shadow = (fs.write and (e.eflags & MAP_ENTRY_NEEDS_COPY) and e.object != NULL
                 and not (e.object.ref_count == 1 and (e.object.flags & OBJ_ANON)))

cdef inline void fault_walk(vm_ctx_t* vm, faultstate_t* fs) noexcept nogil:
    cdef vm_object_t* obj = fs.entry.object
    cdef int64_t pindex = entry_pindex(fs.entry, fs.vpn)
    fs.depth = 1 if fs.shadow else 0    # the new shadow will be the first, empty, object
    fs.m = NO_PFN
    fs.object = NULL
    fs.it.node = NULL
    while obj != NULL:
        if obj == fs.entry.object and not fs.shadow:
            fs.m = vm_page_iter_lookup(vm, obj, pindex, &fs.it)
        else:
            fs.m = vm_page_lookup(vm, obj, pindex)
        if fs.m != NO_PFN:
            fs.object = obj
            fs.pindex = pindex
            break
        if obj.backing_object == NULL:
            break
        pindex += obj.backing_object_offset
        obj = obj.backing_object
        fs.depth += 1

cdef inline void fault_decide(faultstate_t* fs) noexcept nogil:
    cdef vm_object_t* first = fs.entry.object
    if fs.object == NULL:
        fs.action = FA_ZERO
    elif fs.object == first and not fs.shadow:
        fs.action = FA_MAP
    elif not fs.write:
        fs.action = FA_MAP_RO
    elif (not fs.shadow and fs.depth == 1 and fs.object.ref_count == 1
          and fs.object.shadow_count == 1 and (fs.object.flags & OBJ_ANON)):
        fs.action = FA_MOVE
    else:
        fs.action = FA_COPY
    fs.need_frame = fs.action == FA_ZERO or fs.action == FA_COPY

cdef inline int fault_prepare(vm_ctx_t* vm, faultstate_t* fs) noexcept nogil:
    cdef vm_map_entry_t* e = fs.entry
    if e.object == NULL:
        e.object = vm_object_allocate_anon(vm, e.link.end - e.link.start)
        e.offset = 0
        if e.object == NULL:
            return MM_ENOMEM
    fs.took_object = False
    if fs.write and (e.eflags & MAP_ENTRY_NEEDS_COPY):
        if fs.shadow and vm_object_shadow(vm, e) != 0:
            return MM_ENOMEM
        fs.took_object = not fs.shadow
        e.eflags &= ~MAP_ENTRY_NEEDS_COPY
    return MM_OK

cdef inline void fault_count_map(vm_ctx_t* vm, faultstate_t* fs) noexcept nogil:
    """Which kind of fault mapped a page of the first object."""
    cdef uint64_t old = fs.leaf.e[fs.vpn & 511] if fs.leaf != NULL else 0
    if fs.took_object:                  # copy-on-write resolved by taking the object
        vm.md.ctr[C_FAULT_COW_REUSE] += 1
    elif fs.write and pte_present(old) and fs.entry.inheritance == VM_INHERIT_SHARE:
        vm.md.ctr[C_FAULT_WP_SHARED] += 1
    else:                               # a read, or a write upgrading a read-only PTE
        vm.md.ctr[C_FAULT_MINOR] += 1

cdef int fault_resolve(vm_ctx_t* vm, faultstate_t* fs, pfn_t* pfn_out) noexcept nogil:
    cdef vm_map_entry_t* e = fs.entry
    cdef int64_t first_pindex = entry_pindex(e, fs.vpn)
    cdef pfn_t m = fs.m
    cdef bint writable = e.writable and not (e.eflags & MAP_ENTRY_NEEDS_COPY)
    vm.md.ctr[C_FAULTS] += 1
    if fs.action == FA_ZERO or fs.action == FA_COPY:
        m = frame_alloc(vm.md.fr, 0)
        vm.md.fr.f[m].value = 0 if fs.action == FA_ZERO else vm.md.fr.f[fs.m].value
        # vm_page_alloc of an anonymous object goes through vm_reserv_alloc_page
        vm_reserv_alloc_page(vm, e.object, first_pindex, e, fs.vpn, m)
        # fs.it is the first object's lookup position (unset if that object
        # is new): its trie has not changed since fault_walk
        vm_page_iter_insert(vm, e.object, m, first_pindex, &fs.it)
        if fs.action == FA_ZERO:
            vm.md.ctr[C_FAULT_ZERO_FILL] += 1
            vm.md.ctr[C_PAGES_ZEROED] += 1
        else:
            vm.md.ctr[C_FAULT_COW_COPY] += 1
            vm.md.ctr[C_PAGES_COPIED] += 1
            if not (e.object.flags & OBJ_ONEMAPPING):
                # vm_fault_cow: a first object other address spaces may
                # map read/write loses every mapping of the original page
                pmap_remove_all(vm, fs.m)
    elif fs.action == FA_MOVE:
        vm_page_rename(vm, m, e.object, first_pindex)
        vm.md.ctr[C_FAULT_COW_REUSE] += 1
        vm.md.ctr[C_COW_PAGE_MOVES] += 1
    elif fs.action == FA_MAP_RO:
        writable = False
        vm.md.ctr[C_FAULT_MINOR] += 1
    else:
        fault_count_map(vm, fs)
    if pmap_enter(&vm.md, &fs.map.pmap.hdr, fs.vpn, m, writable, fs.leaf) != 0:
        return MM_ENOMEM
    pfn_out[0] = m
    return MM_OK


cdef int vm_fault(vm_ctx_t* vm, vm_map_t* map, vm_map_entry_t* entry, int64_t vpn,
                  bint write, pt_node_t* leaf, pfn_t* pfn_out) noexcept nogil:
    cdef faultstate_t fs
    cdef int st
    fs.map = map
    fs.entry = entry
    fs.vpn = vpn
    fs.write = write
    fs.leaf = leaf
    fault_lookup(&fs)
    fault_walk(vm, &fs)
    fault_decide(&fs)
    if fs.need_frame and frames_free_count(vm.md.fr, 0) <= 0:
        return MM_ENOMEM
    vm.md.ctr[C_CHAIN_STEPS] += fs.depth
    vm.depth_hist[fs.depth if fs.depth < CHAIN_HIST else CHAIN_HIST - 1] += 1
    st = fault_prepare(vm, &fs)
    if st != MM_OK:
        return st
    st = fault_resolve(vm, &fs, pfn_out)
    if st == MM_OK and vm.prefault and fs.action != FA_MAP:
        fault_prefault(vm, &fs)         # (the soft fast path of FA_MAP does not)
    return st


cdef int PREFAULT_ORDER[8]
PREFAULT_ORDER[:] = [-1, 1, -2, 2, -3, 3, -4, 4]

cdef pfn_t prefault_lookup(vm_ctx_t* vm, faultstate_t* fs, int64_t addr, int* depth) noexcept nogil:
    """vm_map_resolve for a neighbour: the first object's lookup starts where
    the fault's own lookup ended (nothing was removed from it since)."""
    cdef vm_object_t* obj = fs.entry.object
    cdef int64_t pindex = entry_pindex(fs.entry, addr)
    cdef pfn_t m = vm_page_iter_peek(vm, obj, pindex, &fs.it)
    depth[0] = 1
    while m == NO_PFN and obj.backing_object != NULL:
        pindex += obj.backing_object_offset
        obj = obj.backing_object
        m = vm_page_lookup(vm, obj, pindex)
        depth[0] += 1
    if m != NO_PFN:
        depth[0] -= 1
    return m


cdef void fault_prefault(vm_ctx_t* vm, faultstate_t* fs) noexcept nogil:
    """Map resident neighbours of the faulting page read-only (no fault counted)."""
    cdef vm_map_entry_t* e = fs.entry
    cdef pt_node_t* t
    cdef int64_t addr
    cdef int i, depth
    cdef pfn_t m
    for i in range(8):
        addr = fs.vpn + PREFAULT_ORDER[i]
        if addr < e.link.start or addr >= e.link.end:
            continue
        t = fs.leaf if fs.leaf != NULL and (addr >> 9) == (fs.vpn >> 9) else \
            pt_find_leaf(&fs.map.pmap.hdr.pt, <uint64_t>addr)
        if t == NULL or t.e[addr & 511] != 0:       # pmap_is_prefaultable
            continue
        m = prefault_lookup(vm, fs, addr, &depth)
        if m == NO_PFN:                              # walked to the end of the chain
            vm.md.ctr[C_CHAIN_STEPS] += depth - 1
            break
        vm.md.ctr[C_CHAIN_STEPS] += depth
        if vm.md.fr.f[m].flags & FR_DEVICE_PRIVATE:    # fictitious (device) page: never prefaulted
            break
        pmap_enter(&vm.md, &fs.map.pmap.hdr, addr, m, False, t)


cdef pfn_t vm_map_resolve(vm_ctx_t* vm, vm_map_entry_t* entry, int64_t vpn, int* depth_out) noexcept nogil:
    cdef vm_object_t* obj = entry.object
    cdef int64_t pindex = entry_pindex(entry, vpn)
    cdef pfn_t m
    depth_out[0] = 0
    while obj != NULL:
        m = vm_page_lookup(vm, obj, pindex)
        if m != NO_PFN:
            return m
        pindex += obj.backing_object_offset
        obj = obj.backing_object
        depth_out[0] += 1
    return NO_PFN
