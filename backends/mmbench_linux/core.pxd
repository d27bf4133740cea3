# mmbench_linux.core — the `linux` design's public class (see mm.pxd for the layers).
#
# A design built on Linux subclasses LinuxMachine:
#     from mmbench_linux.core cimport LinuxMachine
#     from mmbench_linux.mm cimport vm_fault_t, vma_t, mm_t, anon_vma_t, VM_FAULT_DONE, ...

from libc.stdint cimport int64_t, uint64_t, int32_t
from mmbench.blocks.pagetable cimport pt_node_t
from mmbench.blocks.frames cimport pfn_t
from mmbench_linux.mm cimport mm_t, vma_t, anon_vma_t
from mmbench_linux.fault cimport LinuxFault


cdef class LinuxMachine(LinuxFault):
    # mremap under way: the destination [pt_keep_start, pt_keep_end) not yet moved to,
    # whose reserved tables a piece's munmap must not free (empty when equal)
    cdef uint64_t pt_keep_start, pt_keep_end
    # --- fork
    cdef int64_t split_vma_to(self, mm_t* mm, int64_t i, uint64_t pos, uint64_t end) noexcept nogil
    cdef int dup_mmap(self, mm_t* mm, mm_t* oldmm) noexcept nogil
    cdef int copy_page_range(self, mm_t* dst_mm, vma_t* dst, mm_t* src_mm, vma_t* src) noexcept nogil
    cdef int copy_table_range(self, mm_t* dst_mm, mm_t* src_mm, pt_node_t* t, int level, uint64_t base,
                              uint64_t start, uint64_t end, int64_t* cnt) noexcept nogil
    cdef int copy_huge_pmd(self, mm_t* dst_mm, mm_t* src_mm, pt_node_t* pmd_t, uint64_t haddr,
                           int64_t* cnt) noexcept nogil
    cdef void copy_pte_range(self, pt_node_t* dt, pt_node_t* t, uint64_t i0, uint64_t i1, mm_t* dst_mm,
                             int64_t* cnt) noexcept nogil

    # --- unmap / exit
    cdef int64_t zap_pte_range(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil
    cdef int64_t zap_huge_pmd(self, mm_t* mm, uint64_t haddr) noexcept nogil
    cdef int64_t zap_folio_batch(self, mm_t* mm, pt_node_t* t, uint64_t vpn, uint64_t end,
                                 pfn_t pfn) noexcept nogil
    cdef int64_t free_pgtables(self, mm_t* mm, uint64_t floor, uint64_t ceiling) noexcept nogil
    cdef int64_t reclaim_pt(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil
    cdef int do_munmap(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil
    cdef int change_protection(self, mm_t* mm, vma_t* vma) noexcept nogil
    cdef int mmap_private(self, mm_t* mm, int64_t i, uint64_t start, uint64_t end, uint64_t vm_flags) noexcept nogil
    cdef int mmap_shared(self, mm_t* mm, uint64_t start, uint64_t end, uint64_t vm_flags) noexcept nogil
    cdef void unsplit(self, mm_t* mm, uint64_t old, uint64_t n, bint split_first,
                      bint split_last) noexcept nogil
    cdef int reserve_move_tables(self, mm_t* mm, uint64_t old, uint64_t n, uint64_t new) noexcept nogil
    cdef int mremap_check(self, mm_t* mm, uint64_t old, uint64_t n, uint64_t new) noexcept nogil
    cdef int mremap_reserve(self, mm_t* mm, uint64_t old, uint64_t n, uint64_t new) noexcept nogil
    cdef void mremap_unreserve(self, mm_t* mm, uint64_t new, uint64_t n) noexcept nogil
    cdef int mremap_move(self, mm_t* mm, uint64_t old, uint64_t n, uint64_t new) noexcept nogil
    cdef int move_vma(self, mm_t* mm, int64_t i, uint64_t new_start) noexcept nogil
    cdef int copy_vma(self, mm_t* mm, vma_t* vma, vma_t* proto, vma_t** out) noexcept nogil
    cdef void move_page_tables(self, mm_t* mm, uint64_t start, uint64_t end, uint64_t new_start) noexcept nogil
    cdef bint move_normal_pmd(self, mm_t* mm, uint64_t old, uint64_t new) noexcept nogil
    cdef bint move_huge_pmd(self, mm_t* mm, uint64_t old, uint64_t new) noexcept nogil
    cdef int reserve_huge_pmd_moves(self, mm_t* mm, uint64_t s, uint64_t e, uint64_t dst,
                                    int64_t* made) noexcept nogil
    cdef void exit_mmap(self, mm_t* mm) noexcept nogil

    # --- what-ifs (docs/what-ifs.md) and move_pages (UFFDIO_MOVE)
    cdef bint relocate_anon_vma(self, mm_t* mm, vma_t* vma, uint64_t new_start, uint64_t n) noexcept nogil
    cdef bint move_pages_areas_ok(self, mm_t* mm, uint64_t start, uint64_t n) noexcept nogil
    cdef int move_pages_check(self, mm_t* mm, uint64_t s, uint64_t d, uint64_t n) noexcept nogil
    cdef int move_pages_ptes(self, mm_t* mm, uint64_t s, uint64_t d, uint64_t n) noexcept nogil


    # --- khugepaged
    cdef int64_t khugepaged_scan_mm(self, mm_t* mm) noexcept nogil
    cdef bint hpage_collapse_scan_pmd(self, mm_t* mm, uint64_t h) noexcept nogil
    cdef int collapse_huge_page(self, mm_t* mm, vma_t* vma, uint64_t h) noexcept nogil
    cdef void deferred_split_shrinker_maybe(self) noexcept nogil

    # --- invariants
    cdef int check_mm(self, mm_t* mm, int32_t* maps) noexcept nogil
    cdef int check_pmd_leaves(self, mm_t* mm, int32_t* maps) noexcept nogil
    cdef int check_vma(self, mm_t* mm, vma_t* vma) noexcept nogil
    cdef int check_maple(self, mm_t* mm) noexcept nogil
    cdef int check_pte(self, vma_t* v, uint64_t vpn, uint64_t pte, int32_t* maps) noexcept nogil
    cdef int check_frames(self, int32_t* maps, int64_t nfr) noexcept nogil
    cdef int check_folios(self, int64_t nfr) noexcept nogil
    cdef int check_objects(self) noexcept nogil
    cdef int check_anon_vma(self, anon_vma_t* av, int64_t mark, int pass_, int64_t* nav) noexcept nogil
