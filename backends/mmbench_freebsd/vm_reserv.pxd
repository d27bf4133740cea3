# vm_reserv — superpage reservations of anonymous objects.  See vm_reserv.pyx.
from libc.stdint cimport int64_t, uint32_t
from mmbench.blocks.handles cimport handles_get
from mmbench.blocks.frames cimport pfn_t, frame_field
from mmbench_freebsd.vm cimport vm_ctx_t, vm_object_t, vm_map_entry_t, vm_reserv_t

# The fault put frame `m` at `pindex` of `obj` (mapped at `vpn` through `entry`):
# take it into the reservation covering pindex, making one if the 2 MiB
# virtual block around vpn is eligible.  Returns the reservation or NULL.
cdef vm_reserv_t* vm_reserv_alloc_page(vm_ctx_t* vm, vm_object_t* obj, int64_t pindex,
                                       vm_map_entry_t* entry, int64_t vpn, pfn_t m) noexcept nogil
# The reservation whose populated index holds page m, or NULL: the one the
# page's frame descriptor names (its flags' field, frame_field = the number in
# vm.reserv_tab + 1, 0: none).
cdef inline vm_reserv_t* vm_reserv_from_page(vm_ctx_t* vm, pfn_t m) noexcept nogil:
    cdef uint32_t n = frame_field(&vm.md.fr.f[m])
    return NULL if n == 0 else <vm_reserv_t*>handles_get(&vm.reserv_tab, <int64_t>n - 1)
# The page is leaving its reservation (freed or replaced).
cdef void vm_reserv_free_page(vm_ctx_t* vm, pfn_t m) noexcept nogil
# vm_page_rename moved `m` from old_pindex of its object to new_pindex of new_obj.
cdef void vm_reserv_rename(vm_ctx_t* vm, pfn_t m, vm_object_t* new_obj, int64_t old_pindex,
                           int64_t new_pindex) noexcept nogil
# The object is going away: break the reservations it still holds (the caller
# demoted their 2 MiB mappings first: pmap_demote_reserv).
cdef void vm_reserv_break_all(vm_ctx_t* vm, vm_object_t* obj) noexcept nogil
# The reservation covering `pindex` of `obj`, or NULL.
cdef vm_reserv_t* vm_reserv_lookup(vm_object_t* obj, int64_t pindex) noexcept nogil
# Invariants of obj's reservations; adds the reservations found to *nrv and
# their populated pages to *npop.
cdef int vm_reserv_check(vm_ctx_t* vm, vm_object_t* obj, int64_t* nrv, int64_t* npop,
                         const char** why) noexcept nogil
