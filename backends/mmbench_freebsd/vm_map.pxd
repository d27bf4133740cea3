# vm_map — a process's address space: entries ordered by address.  See vm_map.pyx.
from libc.stdint cimport int64_t
from mmbench_freebsd.vm cimport vm_ctx_t, vm_map_t, vm_map_entry_t

cdef vm_map_t* vmspace_alloc(vm_ctx_t* vm, int64_t pid) noexcept nogil     # NULL: no memory
cdef void vmspace_free(vm_ctx_t* vm, vm_map_t* map) noexcept nogil         # removes everything
cdef vm_map_entry_t* vm_map_lookup_entry(vm_map_t* map, int64_t vpn) noexcept nogil
cdef bint vm_map_range_free(vm_map_t* map, int64_t start, int64_t end) noexcept nogil
cdef bint vm_map_range_mapped(vm_map_t* map, int64_t start, int64_t end) noexcept nogil
cdef int vm_map_insert(vm_ctx_t* vm, vm_map_t* map, int64_t start, int64_t end,
                       bint shared, bint writable) noexcept nogil
cdef void vm_map_delete(vm_ctx_t* vm, vm_map_t* map, int64_t start, int64_t end) noexcept nogil
cdef void vm_map_protect(vm_ctx_t* vm, vm_map_t* map, int64_t start, int64_t end, bint writable) noexcept nogil
cdef int vmspace_fork(vm_ctx_t* vm, vm_map_t* src, vm_map_t* dst) noexcept nogil
cdef int vm_map_move(vm_ctx_t* vm, vm_map_t* map, int64_t start, int64_t end, int64_t new_start) noexcept nogil
cdef int vm_map_dontneed(vm_ctx_t* vm, vm_map_t* map, int64_t start, int64_t end) noexcept nogil
