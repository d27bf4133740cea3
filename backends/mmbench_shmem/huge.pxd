# mmbench_shmem.huge — helpers for PMD mappings of page-cache folios (huge=).
#
# A PMD-sized folio of a shmem file is mapped with one PMD leaf when the VMA
# covers the whole aligned 2 MiB and maps the file at a congruent offset
# (thp_vma_suitable_order), and the PMD is none (do_set_pmd).  File PMD leaves
# carry no deposited PTE table on x86 (arch_needs_pgtable_deposit() is false),
# and splitting one just clears it (__split_huge_pmd_locked for a file VMA):
# the pages refault through the PTE level.

from libc.stdint cimport int64_t, uint64_t
from mmbench.blocks.pagetable cimport pgtable_t, pt_node_t, pt_pmd_table, pmd_leaf
from mmbench.blocks.pmdleaf cimport pmd_leaf_lookup, pte_range_none
from mmbench_shmem.objects cimport mm_struct, vm_area_struct, HPAGE_PMD_NR

cdef inline uint64_t pmd_leaf_at(mm_struct* mm, uint64_t vpn) noexcept nogil:
    """The PMD leaf mapping vpn, or 0."""
    return pmd_leaf_lookup(&mm.pgd, mm.nr_huge_pmd, vpn)

cdef inline bint thp_vma_suitable(vm_area_struct* v, uint64_t haddr) noexcept nogil:
    """thp_vma_suitable_order(PMD_ORDER): the aligned 2 MiB at haddr lies in the
    VMA, and the VMA maps the file at an offset congruent to its address
    modulo 512 pages (so a PMD-sized folio lines up with a PMD)."""
    return (haddr >= v.vm_start and haddr + HPAGE_PMD_NR <= v.vm_end
            and ((v.vm_start - v.vm_pgoff) & (HPAGE_PMD_NR - 1)) == 0)
