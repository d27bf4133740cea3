# map — a process's vm_map: entries ordered by address, each with its aref.  See map.pyx.
from libc.stdint cimport int64_t
from mmbench_uvm.uvm cimport uvm_ctx_t, vm_map_t, vm_map_entry_t

cdef vm_map_t* uvmspace_alloc(uvm_ctx_t* u, int64_t pid) noexcept nogil     # NULL: no memory
cdef void uvmspace_free(uvm_ctx_t* u, vm_map_t* map) noexcept nogil         # removes everything
cdef vm_map_entry_t* uvm_map_lookup_entry(vm_map_t* map, int64_t vpn) noexcept nogil
cdef int uvm_map_enter(uvm_ctx_t* u, vm_map_t* map, int64_t start, int64_t end,
                       bint shared, bint writable) noexcept nogil
cdef void uvm_unmap(uvm_ctx_t* u, vm_map_t* map, int64_t start, int64_t end) noexcept nogil
cdef void uvm_map_protect(uvm_ctx_t* u, vm_map_t* map, int64_t start, int64_t end,
                          bint writable) noexcept nogil
cdef int uvmspace_fork(uvm_ctx_t* u, vm_map_t* src, vm_map_t* dst) noexcept nogil
cdef int uvm_map_move(uvm_ctx_t* u, vm_map_t* map, int64_t start, int64_t end,
                      int64_t new_start) noexcept nogil
cdef int uvm_map_dontneed(uvm_ctx_t* u, vm_map_t* map, int64_t start, int64_t end) noexcept nogil
# Clear NEEDSCOPY: give the entry an amap of its own (may clip it to a chunk
# around vpn when canchunk).  0, or -1 out of memory (entry unchanged).
cdef int amap_copy(uvm_ctx_t* u, vm_map_t* map, vm_map_entry_t* e, int64_t vpn,
                   bint canchunk) noexcept nogil
