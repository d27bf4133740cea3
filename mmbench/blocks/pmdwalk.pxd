# Walk the PMD leaves (pmd_trans_huge entries) of a page table built with
# mmbench.blocks.pagetable, touching only tables that exist: what a design
# with huge mappings needs to zap, split, copy or check them over a range
# without visiting every 2 MiB block of it.

from libc.stdint cimport uint64_t
from mmbench.blocks.pagetable cimport pgtable_t, pt_node_t, pmd_leaf

cdef inline pt_node_t* pmd_leaf_next(pgtable_t* pt, uint64_t start, uint64_t end,
                                     uint64_t* haddr_out) noexcept nogil:
    """The PMD table holding the first PMD leaf whose 2 MiB block starts in
    [start & ~511, end); its first vpn in *haddr_out.  NULL when there is none."""
    cdef uint64_t vpn = start & ~(<uint64_t>511)
    cdef uint64_t pud_span = (<uint64_t>1) << 27, pmd_span = (<uint64_t>1) << 18
    cdef pt_node_t* pud
    cdef pt_node_t* pmd
    if pt.pgd == NULL:
        return NULL
    while vpn < end:
        pud = <pt_node_t*><size_t>pt.pgd.e[(vpn >> 27) & 511]
        if pud == NULL:
            vpn = (vpn | (pud_span - 1)) + 1
            continue
        pmd = <pt_node_t*><size_t>pud.e[(vpn >> 18) & 511]
        if pmd == NULL:
            vpn = (vpn | (pmd_span - 1)) + 1
            continue
        while vpn < end:
            if pmd_leaf(pmd.e[(vpn >> 9) & 511]):
                haddr_out[0] = vpn
                return pmd
            vpn += 512
            if (vpn & (pmd_span - 1)) == 0:
                break
    return NULL
