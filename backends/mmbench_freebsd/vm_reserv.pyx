# vm_reserv — superpage reservations (sys/vm/vm_reserv.c), for anonymous objects.
#
# With vm.pmap.pg_ps_enabled, the first page a fault allocates for an index of
# an anonymous object whose 2 MiB virtual block lies inside the map entry
# makes a reservation: the object indices [first, first + 512) with
#     first = pindex - (vpn mod 512)
# (the kernel gets the same alignment from the object's pg_color, which mmap
# sets so that object offsets line up with 2 MiB virtual boundaries).  Later
# faults on indices of that range take their page from the reservation
# (vm_reserv_alloc_page finds it; here by walking the object's reservation
# list, the kernel goes through the neighbouring resident pages).  A
# reservation is refused when a resident page of the range belongs to no
# reservation, or when the range overlaps another reservation of the object.
#
#   populated    popcnt / popmap: which of the 512 indices hold a page
#   freed        the last populated page left: the reservation is freed
#                (vm.reserv.freed)
#   broken       the object died while the reservation still had pages in
#                other objects (after vm_reserv_rename): the pages stay as
#                ordinary pages, the rest of the reservation is released
#                (vm_reserv_break_all, vm.reserv.broken)
#   renamed      vm_page_rename of a page whose reservation belongs to the
#                page's old object moves the whole reservation to the new
#                object, its pindex shifted by the rename (vm_reserv_rename);
#                pages of the range still in the old object keep it.  The
#                kernel renames whether or not the range fits the new object:
#                vm_object_split of a clipped entry at offset 300 moves a
#                reservation [0, 512) of the old object to [-300, 212) of the
#                new one (the kernel's unsigned pindex wraps, and its tests are
#                modular: vm_reserv_has_pindex).  The model's signed pindex
#                goes below 0 instead; the range always reaches index 0, since
#                the renamed page lands at an index >= 0 of it.
#
# Simplified (documented in docs/fidelity.md): mmbench's frame block hands
# out single frames, so the 512 frames are not physically contiguous and are
# not withheld from the free pool; each populated page takes an ordinary
# frame when the fault needs it.  A FreeBSD kernel short of memory breaks
# partially populated reservations (vm_reserv_reclaim_inactive) rather than
# failing, so "unpopulated frames are free" matches the kernel at shortage.
# The bookkeeping is charged: one struct vm_reserv (160 B on amd64: mtx 32,
# partpopq 16, objq 16, object, pindex, pages 8 each, popcnt 2, domain 1,
# inpartpopq 1, lasttick 4, popmap 64) per reservation in use, in the
# "vm_reserv" cache.  (The kernel preallocates vm_reserv_array, one per
# physical 2 MiB; charging per reservation in use is the simplification.)
#
# A page's reservation (vm_reserv_from_page).  The kernel computes it from the
# page's physical address, &vm_reserv_array[pa >> 21].  The model's 512 frames
# are not physically contiguous, so it keeps the reservation's number in the
# frame descriptor instead: each live reservation has a number in a table of
# live reservations (vm.reserv_tab, mmbench.blocks.handles), and every page
# of its popmap holds that number + 1 in the 20-bit field of its flags
# (frame_field, bits 12..31; 0: in no reservation; the descriptor's aux word
# holds the page's pv list head), set when vm_reserv_alloc_page populates the
# index, cleared when the page leaves (vm_reserv_free_page,
# vm_reserv_break_all).  The lookup is one table index, whatever
# vm_reserv_rename did to the page's object and pindex, and costs no
# per-frame pointer (the simulator's memory per resident page,
# docs/performance.md).  The field caps the reservations alive at once at
# FR_FIELD_MAX - 1 (about a million, 2 TiB of fully populated ones); past
# that a new reservation is refused and its page stays an ordinary page, as
# when the host has no memory for one.  The page's index in the reservation is where its
# object and pindex put it while it is still there, otherwise found by a scan
# of the populated indices (reserv_index_of: pages left behind by a rename).

from libc.stdlib cimport malloc, free
from libc.stdint cimport int64_t, uint64_t, uint32_t

from mmbench.core cimport C_RESERV_ALLOC, C_RESERV_FREED, C_RESERV_BROKEN, C_RESERV_PAGES
from mmbench.blocks.frames cimport frame_t, pfn_t, NO_PFN, frame_field, frame_set_field
from mmbench.blocks.handles cimport handles_take, handles_put, handles_get
from mmbench_freebsd.vm cimport (vm_ctx_t, vm_object_t, vm_map_entry_t, vm_reserv_t, kc_alloc,
                                 kc_free, KC_RESERV, OBJ_ANON, VM_LEVEL_0_NPAGES, NPOPMAP)
from mmbench_freebsd.pctrie cimport pctrie_lookup_ge, pctrie_insert, pctrie_remove, pctrie_reclaim, pctrie_check
from mmbench.core cimport kmem_cache_t

cdef extern from *:
    int __builtin_popcountll(unsigned long long) nogil


cdef inline bint popmap_is_set(vm_reserv_t* rv, int64_t i) noexcept nogil:
    return (rv.popmap[i >> 6] >> (i & 63)) & 1


# The simulator's index of an object's reservations (obj.rvindex, a pctrie
# keyed by the index after each range, rv.rvkey = rv.pindex + 512, items
# &rv.rvkey, each named in the trie by its number rv.num in vm.reserv_tab,
# so a reservation leaves the index before it gives its number back; the
# key is >= 1 where pindex may be below 0 after a rename):
# reservations of one object never overlap, so the one holding pindex, if
# any, is the first whose range ends after pindex.  It replaces walks of the
# whole rvq list (quadratic in the reservations of an object); rvq keeps its
# order, which the model reports through (vm_reserv_break_all).  Its nodes
# are the simulator's, not the kernel's: they are counted in a cache no
# report shows.
cdef kmem_cache_t rvindex_kc
cdef vm_reserv_t _rv_layout
cdef size_t RV_KEY_OFF = <size_t>&_rv_layout.rvkey - <size_t>&_rv_layout

cdef inline void rvlist_link(vm_object_t* obj, vm_reserv_t* rv) noexcept nogil:
    rv.objq_prev = NULL
    rv.objq_next = obj.rvq
    if obj.rvq != NULL:
        obj.rvq.objq_prev = rv
    obj.rvq = rv

cdef inline void rvlist_unlink(vm_object_t* obj, vm_reserv_t* rv) noexcept nogil:
    if rv.objq_prev != NULL:
        rv.objq_prev.objq_next = rv.objq_next
    else:
        obj.rvq = rv.objq_next
    if rv.objq_next != NULL:
        rv.objq_next.objq_prev = rv.objq_prev

cdef inline void objq_insert(vm_object_t* obj, vm_reserv_t* rv) noexcept nogil:
    cdef vm_reserv_t* o
    rv.object = obj
    rvlist_link(obj, rv)
    if obj.rvindex_lost:
        return
    # a reservation renamed into this object may overlap one it holds: the
    # index then no longer answers as the list does, and is given up
    rv.rvkey = <uint64_t>(rv.pindex + VM_LEVEL_0_NPAGES)
    o = rv_indexed_after(obj, rv.pindex)
    if ((o != NULL and o.pindex < rv.pindex + VM_LEVEL_0_NPAGES)
            or pctrie_insert(&obj.rvindex, &rv.rvkey, &rvindex_kc) != 0):
        obj.rvindex_lost = True


cdef inline void objq_remove(vm_reserv_t* rv) noexcept nogil:
    rvlist_unlink(rv.object, rv)
    if not rv.object.rvindex_lost:
        pctrie_remove(&rv.object.rvindex, rv.rvkey, &rvindex_kc)
    rv.object = NULL


cdef inline vm_reserv_t* rv_indexed_after(vm_object_t* obj, int64_t pindex) noexcept nogil:
    """The reservation of obj whose range ends first after `pindex` (the one
    holding pindex if any holds it), or NULL."""
    cdef uint64_t* item = pctrie_lookup_ge(&obj.rvindex, <uint64_t>(pindex + 1 if pindex >= 0 else 0))
    if item == NULL:
        return NULL
    return <vm_reserv_t*>(<char*>item - RV_KEY_OFF)


cdef vm_reserv_t* vm_reserv_lookup(vm_object_t* obj, int64_t pindex) noexcept nogil:
    """The list is kept most recently used first, so a run of faults through
    one block finds its reservation at the head (the kernel reaches it in
    O(1) through the neighbouring page, mpred); elsewhere the index finds it."""
    cdef vm_reserv_t* rv = obj.rvq
    if rv != NULL and rv.pindex <= pindex < rv.pindex + VM_LEVEL_0_NPAGES:
        return rv
    if obj.rvindex_lost:
        while rv != NULL and not (rv.pindex <= pindex < rv.pindex + VM_LEVEL_0_NPAGES):
            rv = rv.objq_next
    else:
        rv = rv_indexed_after(obj, pindex)
        if rv != NULL and not (rv.pindex <= pindex):
            rv = NULL
    if rv != NULL and rv != obj.rvq:
        rvlist_unlink(obj, rv)
        rvlist_link(obj, rv)
    return rv


# ------------------------------------------------ a page's index in its reservation
cdef inline bint reserv_holds(vm_reserv_t* rv, int64_t i, pfn_t m) noexcept nogil:
    return 0 <= i < VM_LEVEL_0_NPAGES and popmap_is_set(rv, i) and rv.pages[i] == m

cdef int64_t reserv_index_of(vm_ctx_t* vm, vm_reserv_t* rv, pfn_t m) noexcept nogil:
    """The populated index of rv holding page m (of rv: vm_reserv_from_page): its
    pindex's place in rv while it is in rv's object, else found by a scan."""
    cdef frame_t* f = &vm.md.fr.f[m]
    cdef int64_t i = <int64_t>f.index - rv.pindex
    if <vm_object_t*><size_t>f.owner == rv.object and reserv_holds(rv, i, m):
        return i
    for i in range(VM_LEVEL_0_NPAGES):      # left behind by vm_reserv_rename
        if popmap_is_set(rv, i) and rv.pages[i] == m:
            return i
    return -1


cdef bint range_eligible(vm_ctx_t* vm, vm_object_t* obj, int64_t first,
                         vm_map_entry_t* entry, int64_t vpn) noexcept nogil:
    """May [first, first + 512) of obj get a new reservation?"""
    cdef int64_t va_first = vpn - (vpn & (VM_LEVEL_0_NPAGES - 1))
    cdef vm_reserv_t* rv = obj.rvq
    cdef uint64_t* item
    if first < 0 or va_first < entry.link.start or va_first + VM_LEVEL_0_NPAGES > entry.link.end:
        return False
    if obj.rvindex_lost:
        while rv != NULL:                   # overlaps another reservation
            if rv.pindex < first + VM_LEVEL_0_NPAGES and first < rv.pindex + VM_LEVEL_0_NPAGES:
                return False
            rv = rv.objq_next
    else:                                   # the first one ending after first
        rv = rv_indexed_after(obj, first)
        if rv != NULL and rv.pindex < first + VM_LEVEL_0_NPAGES:
            return False
    # a resident page of the range that belongs to no reservation
    item = pctrie_lookup_ge(&obj.rtree, <uint64_t>first)
    return item == NULL or <int64_t>item[0] >= first + VM_LEVEL_0_NPAGES


cdef vm_reserv_t* vm_reserv_alloc_page(vm_ctx_t* vm, vm_object_t* obj, int64_t pindex,
                                       vm_map_entry_t* entry, int64_t vpn, pfn_t m) noexcept nogil:
    cdef vm_reserv_t* rv
    cdef int64_t first, i, n
    if not vm.pg_ps_enabled or not (obj.flags & OBJ_ANON):
        return NULL
    rv = obj.rvq                            # a run of faults: the head (vm_reserv_lookup's
    if rv == NULL or not (rv.pindex <= pindex < rv.pindex + VM_LEVEL_0_NPAGES):    # first test)
        rv = vm_reserv_lookup(obj, pindex)
    if rv == NULL:
        first = pindex - (vpn & (VM_LEVEL_0_NPAGES - 1))
        if not range_eligible(vm, obj, first, entry, vpn):
            return NULL
        rv = <vm_reserv_t*>malloc(sizeof(vm_reserv_t))
        n = handles_take(&vm.reserv_tab, rv) if rv != NULL else -1
        if n < 0:
            free(rv)
            return NULL                     # the page stays an ordinary page
        rv.num = <uint32_t>n
        rv.pindex = first
        rv.popcnt = 0
        rv.pvh = 0
        for i in range(NPOPMAP):
            rv.popmap[i] = 0
        objq_insert(obj, rv)
        kc_alloc(vm, KC_RESERV)
        vm.md.ctr[C_RESERV_ALLOC] += 1
    i = pindex - rv.pindex
    if popmap_is_set(rv, i):                # index held by a page left in the old object
        return NULL
    rv.popmap[i >> 6] |= 1ULL << (i & 63)
    rv.popcnt += 1
    rv.pages[i] = m
    frame_set_field(&vm.md.fr.f[m], rv.num + 1)     # vm_reserv_from_page finds rv
    vm.md.ctr[C_RESERV_PAGES] += 1
    return rv


cdef void reserv_release(vm_ctx_t* vm, vm_reserv_t* rv) noexcept nogil:
    objq_remove(rv)                         # first: the index names rv by its number
    handles_put(&vm.reserv_tab, rv.num)
    kc_free(vm, KC_RESERV)
    free(rv)


cdef void vm_reserv_free_page(vm_ctx_t* vm, pfn_t m) noexcept nogil:
    cdef vm_reserv_t* rv = vm_reserv_from_page(vm, m)
    cdef int64_t i
    if rv == NULL:
        return
    i = reserv_index_of(vm, rv, m)
    frame_set_field(&vm.md.fr.f[m], 0)
    rv.popmap[i >> 6] &= ~(1ULL << (i & 63))
    rv.popcnt -= 1
    if rv.popcnt == 0:
        reserv_release(vm, rv)
        vm.md.ctr[C_RESERV_FREED] += 1


cdef void vm_reserv_rename(vm_ctx_t* vm, pfn_t m, vm_object_t* new_obj, int64_t old_pindex,
                           int64_t new_pindex) noexcept nogil:
    cdef vm_reserv_t* rv = vm_reserv_from_page(vm, m)
    cdef vm_object_t* old = <vm_object_t*><size_t>vm.md.fr.f[m].owner
    if rv == NULL or rv.object != old or new_obj == old:
        return
    objq_remove(rv)                         # the pages keep naming it (frame_field)
    rv.pindex -= old_pindex - new_pindex    # may go below 0 (see "renamed" above)
    objq_insert(new_obj, rv)


cdef void vm_reserv_break_all(vm_ctx_t* vm, vm_object_t* obj) noexcept nogil:
    cdef vm_reserv_t* rv
    cdef int64_t i
    while obj.rvq != NULL:
        rv = obj.rvq
        for i in range(VM_LEVEL_0_NPAGES):
            if popmap_is_set(rv, i):
                frame_set_field(&vm.md.fr.f[rv.pages[i]], 0)
        reserv_release(vm, rv)
        vm.md.ctr[C_RESERV_BROKEN] += 1
    pctrie_reclaim(&obj.rvindex, &rvindex_kc)   # no reservation left: the index starts afresh
    obj.rvindex_lost = False


cdef int vm_reserv_check(vm_ctx_t* vm, vm_object_t* obj, int64_t* nrv, int64_t* npop,
                         const char** why) noexcept nogil:
    """obj's reservations.  Each populated page names its reservation (frame_field
    = rv.num + 1, and rv is number rv.num of vm.reserv_tab); that no other page
    names one is vm_check's count: as many resident pages name a reservation as
    there are populated indices (*npop)."""
    cdef vm_reserv_t* rv = obj.rvq
    cdef vm_reserv_t* prev = NULL
    cdef int64_t i, n, nidx = 0
    cdef pfn_t m
    while rv != NULL:
        if rv.object != obj or rv.objq_prev != prev:
            why[0] = "vm_reserv: reservation list of an object is inconsistent"
            return -1
        n = 0
        for i in range(NPOPMAP):
            n += __builtin_popcountll(rv.popmap[i])
        if rv.pvh != 0 and n != VM_LEVEL_0_NPAGES:
            why[0] = "vm_reserv: 2 MiB mapping of a reservation not fully populated"
            return -1
        if n != rv.popcnt or n <= 0 or n > VM_LEVEL_0_NPAGES:
            why[0] = "vm_reserv: popcnt disagrees with popmap, or empty reservation kept"
            return -1
        if (rv.pindex <= -VM_LEVEL_0_NPAGES
                or (rv.objq_next != NULL and rv.objq_next.object != obj)):
            why[0] = "vm_reserv: range not reaching index 0 (pindex), or bad list link"
            return -1
        for i in range(VM_LEVEL_0_NPAGES):
            if popmap_is_set(rv, i):
                m = rv.pages[i]
                if vm.md.fr.f[m].refcount != 1 or vm.md.fr.f[m].owner == 0:
                    why[0] = "vm_reserv: populated index without its resident page"
                    return -1
                if (frame_field(&vm.md.fr.f[m]) != rv.num + 1 or rv.num >= vm.reserv_tab.len
                        or handles_get(&vm.reserv_tab, rv.num) != <void*>rv):
                    why[0] = "vm_reserv: a populated page does not name its reservation (frame_field)"
                    return -1
                if (<vm_object_t*><size_t>vm.md.fr.f[m].owner == obj
                        and <int64_t>vm.md.fr.f[m].index != rv.pindex + i):
                    why[0] = "vm_reserv: page of the reservation's object at the wrong index"
                    return -1
        if not obj.rvindex_lost and (rv.rvkey != <uint64_t>(rv.pindex + VM_LEVEL_0_NPAGES)
                                     or rv_indexed_after(obj, rv.pindex) != rv):
            why[0] = "vm_reserv: the object's reservation index does not find a reservation"
            return -1
        nrv[0] += 1
        npop[0] += n
        nidx += 1
        prev = rv
        rv = rv.objq_next
    if not obj.rvindex_lost and (obj.rvindex.count != nidx or pctrie_check(&obj.rvindex, why) != 0):
        why[0] = "vm_reserv: the object's reservation index disagrees with its list"
        return -1
    return 0
