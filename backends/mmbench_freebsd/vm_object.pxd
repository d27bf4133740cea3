# vm_object — anonymous memory objects, their pages, shadow chains and the
# two ways FreeBSD shortens a chain (collapse, bypass).  See vm_object.pyx.
from libc.stdint cimport uint64_t, int64_t
from mmbench.blocks.frames cimport pfn_t, NO_PFN
from mmbench_freebsd.pctrie cimport pctrie_iter_t, pctrie_iter_lookup, pctrie_iter_peek, pctrie_iter_insert
from mmbench_freebsd.vm cimport vm_ctx_t, vm_object_t, vm_map_entry_t, item_pfn, kc_alloc, KC_PCTRIE, KC_PAGE

cdef vm_object_t* vm_object_allocate_anon(vm_ctx_t* vm, int64_t size) noexcept nogil
cdef void vm_object_deallocate(vm_ctx_t* vm, vm_object_t* obj) noexcept nogil
cdef int vm_object_shadow(vm_ctx_t* vm, vm_map_entry_t* entry) noexcept nogil    # 0 / -1
cdef void vm_object_split(vm_ctx_t* vm, vm_map_entry_t* entry) noexcept nogil
cdef void vm_object_collapse(vm_ctx_t* vm, vm_object_t* obj) noexcept nogil
cdef void vm_object_page_remove(vm_ctx_t* vm, vm_object_t* obj, int64_t start, int64_t end) noexcept nogil

cdef pfn_t vm_page_lookup(vm_ctx_t* vm, vm_object_t* obj, int64_t pindex) noexcept nogil
cdef int vm_page_insert(vm_ctx_t* vm, vm_object_t* obj, pfn_t pfn, int64_t pindex) noexcept nogil
# The same two, remembering the trie position between them (fault path).
cdef inline pfn_t vm_page_iter_lookup(vm_ctx_t* vm, vm_object_t* obj, int64_t pindex,
                                     pctrie_iter_t* it) noexcept nogil:
    cdef uint64_t* item = pctrie_iter_lookup(&obj.rtree, <uint64_t>pindex, it)
    return NO_PFN if item == NULL else item_pfn(vm, item)

cdef inline pfn_t vm_page_iter_peek(vm_ctx_t* vm, vm_object_t* obj, int64_t pindex,
                                   pctrie_iter_t* it) noexcept nogil:
    cdef uint64_t* item = pctrie_iter_peek(&obj.rtree, it, <uint64_t>pindex)
    return NO_PFN if item == NULL else item_pfn(vm, item)

cdef inline int vm_page_iter_insert(vm_ctx_t* vm, vm_object_t* obj, pfn_t pfn, int64_t pindex,
                                    pctrie_iter_t* it) noexcept nogil:
    cdef int st
    vm.md.fr.f[pfn].owner = <uint64_t><size_t>obj
    vm.md.fr.f[pfn].index = <uint64_t>pindex
    st = pctrie_iter_insert(&obj.rtree, it, &vm.md.fr.f[pfn].index, &vm.md.kc[KC_PCTRIE])
    if st == 0:
        kc_alloc(vm, KC_PAGE)
    return st
cdef void vm_page_rename(vm_ctx_t* vm, pfn_t pfn, vm_object_t* new_obj, int64_t new_pindex) noexcept nogil
cdef void vm_page_free(vm_ctx_t* vm, pfn_t pfn) noexcept nogil

cdef inline void vm_object_reference(vm_object_t* obj) noexcept nogil:
    obj.ref_count += 1
