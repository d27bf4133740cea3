# pmd_leaf_at, once: the PMD leaf (pmd_trans_huge entry) mapping a vpn in a
# page table built with mmbench.blocks.pagetable.  Every design that maps huge
# folios with PMD leaves (linux's anonymous THPs, shmem's page-cache folios)
# keeps a count of the leaves it has mapped, so that a process with none
# never walks the upper levels for them.

from libc.stdint cimport int64_t, uint64_t
from mmbench.blocks.pagetable cimport pgtable_t, pt_node_t, pt_pmd_table, pmd_leaf

cdef inline uint64_t pmd_leaf_lookup(pgtable_t* pgd, int64_t nr_huge_pmd, uint64_t vpn) noexcept nogil:
    """The PMD leaf mapping vpn, or 0 (nr_huge_pmd: the leaves mapped in pgd)."""
    cdef pt_node_t* t
    cdef uint64_t e
    if nr_huge_pmd == 0:
        return 0
    t = pt_pmd_table(pgd, vpn, False, NULL)
    if t == NULL:
        return 0
    e = t.e[(vpn >> 9) & 511]
    return e if pmd_leaf(e) else 0
