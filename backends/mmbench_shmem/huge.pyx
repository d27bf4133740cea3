# Implementation of the PMD-leaf walk; see huge.pxd.
from libc.stdint cimport uint64_t

cdef pt_node_t* pmd_leaf_next(pgtable_t* pt, uint64_t start, uint64_t end,
                              uint64_t* haddr_out) noexcept nogil:
    cdef uint64_t vpn = start & ~(<uint64_t>(HPAGE_PMD_NR - 1))
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
            vpn += HPAGE_PMD_NR
            if (vpn & (pmd_span - 1)) == 0:
                break
    return NULL
