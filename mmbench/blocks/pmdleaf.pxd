# pmd_leaf_at, once: the PMD leaf (pmd_trans_huge entry) mapping a vpn in a
# page table built with mmbench.blocks.pagetable.  Every design that maps huge
# folios with PMD leaves (linux's anonymous THPs, shmem's page-cache folios)
# keeps a count of the leaves it has mapped, so that a process with none
# never walks the upper levels for them.  pte_range_none: whether a huge
# folio may be mapped over a PTE table's range (no PTE set there yet).

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

cdef inline bint pte_range_none(pt_node_t* t, uint64_t vpn, uint64_t nr) noexcept nogil:
    """pte_range_none: no PTE in [vpn, vpn + nr) of leaf table t (NULL: none at all)."""
    cdef uint64_t k
    if t == NULL:
        return True
    for k in range(nr):
        if t.e[(vpn + k) & 511] != 0:
            return False
    return True
