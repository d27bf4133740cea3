# mmbench_linux.fault — the fault path of the `linux` design (see mm.pxd for the layers).

from libc.stdint cimport int64_t, uint64_t
from mmbench.blocks.frames cimport pfn_t
from mmbench_linux.mm cimport LinuxMM, vm_fault_t


cdef class LinuxFault(LinuxMM):
    # --- fault path: driver and phases (override to hook a design in)
    cdef int handle_mm_fault(self, vm_fault_t* vmf) noexcept nogil
    cdef int handle_pte_fault(self, vm_fault_t* vmf) noexcept nogil
    cdef int handle_pmd_fault(self, vm_fault_t* vmf) noexcept nogil
    cdef int do_huge_pmd_anonymous_page(self, vm_fault_t* vmf) noexcept nogil
    cdef int do_huge_pmd_wp_page(self, vm_fault_t* vmf) noexcept nogil
    cdef int pte_alloc(self, vm_fault_t* vmf) noexcept nogil
    cdef int do_anonymous_page(self, vm_fault_t* vmf) noexcept nogil
    cdef int alloc_anon_folio(self, vm_fault_t* vmf) noexcept nogil
    cdef int do_wp_page(self, vm_fault_t* vmf) noexcept nogil
    cdef bint wp_can_reuse_large_anon_folio(self, vm_fault_t* vmf, pfn_t pfn) noexcept nogil
    cdef int wp_page_reuse(self, vm_fault_t* vmf) noexcept nogil
    cdef int wp_page_copy(self, vm_fault_t* vmf) noexcept nogil
    cdef int wp_page_shared(self, vm_fault_t* vmf) noexcept nogil
    cdef int do_swap_page(self, vm_fault_t* vmf) noexcept nogil
    cdef int do_fault(self, vm_fault_t* vmf) noexcept nogil
    cdef void do_fault_around(self, vm_fault_t* vmf) noexcept nogil
    cdef void set_pte_range(self, vm_fault_t* vmf, pfn_t pfn, uint64_t pte) noexcept nogil


    # --- splitting large folios (the deferred split shrinker)
    cdef void split_folio(self, pfn_t head) noexcept nogil
    cdef void remap_to_zeropage(self, pfn_t pfn) noexcept nogil
    cdef int64_t deferred_split_scan(self) noexcept nogil
    cdef bint thp_underused(self, pfn_t head) noexcept nogil
    cdef void unmap_folio_pmds(self, pfn_t head) noexcept nogil

    # --- rmap walk
    cdef int64_t rmap_walk_anon(self, pfn_t pfn, int64_t* out, int64_t cap) noexcept nogil
    cdef int64_t rmap_walk_file(self, pfn_t pfn, int64_t* out, int64_t cap) noexcept nogil

