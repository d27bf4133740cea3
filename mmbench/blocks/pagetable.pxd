# A 4-level radix page table of 4 KiB tables (512 entries of 8 bytes each),
# the x86-64 layout with P4D folded into the PGD: PGD -> PUD -> PMD -> PTE.
# Tables are allocated on demand and freed when a range is emptied
# (free_pgtables).  `nr[level]` counts live tables per level so a design can
# report page-table bytes exactly as the kernel accounts them (VmPTE counts the
# PUD, PMD and PTE tables; the PGD comes with the mm).
#
# Entries are opaque 64-bit words to this block except that 0 means "none".
# The pte_* helpers give the encoding all CPU page tables in mmbench use.

from libc.stdint cimport int64_t, uint64_t, int32_t, uint32_t
from mmbench.blocks.frames cimport pfn_t

cdef enum:
    PT_ENTRIES = 512
    PT_LEVELS = 4
    LVL_PGD = 0
    LVL_PUD = 1
    LVL_PMD = 2
    LVL_PTE = 3

ctypedef struct pt_node_t:
    uint64_t e[512]       # child pointers (upper levels) or PTEs (leaf level)
    int32_t used          # non-zero entries, so empty tables can be freed

ctypedef struct pgtable_t:
    pt_node_t* pgd
    int64_t nr[4]         # live tables per level (nr[LVL_PGD] is 1 while the mm lives)

# PTE encoding ---------------------------------------------------------------
cdef enum:
    PTE_PRESENT = 1 << 0
    PTE_WRITE = 1 << 1
    PTE_SPECIAL = 1 << 2     # pte_special: the shared zero page
    PTE_DEVPRIV = 1 << 3     # non-present device-private entry (pfn = device frame)
    PTE_SOFT0 = 1 << 4       # design-defined software bits
    PTE_SOFT1 = 1 << 5
    PTE_PFN_SHIFT = 12

cdef inline uint64_t mk_pte(pfn_t pfn, uint64_t bits) noexcept nogil:
    return (<uint64_t>pfn << PTE_PFN_SHIFT) | bits

cdef inline pfn_t pte_pfn(uint64_t pte) noexcept nogil:
    return <pfn_t>(pte >> PTE_PFN_SHIFT)

cdef inline bint pte_present(uint64_t pte) noexcept nogil:
    return (pte & PTE_PRESENT) != 0

cdef inline bint pte_write(uint64_t pte) noexcept nogil:
    return (pte & PTE_WRITE) != 0

cdef int pt_init(pgtable_t* pt) noexcept nogil                  # 0, or -1 when out of memory
cdef void pt_destroy(pgtable_t* pt) noexcept nogil              # frees every table
cdef int64_t pt_bytes(pgtable_t* pt) noexcept nogil             # all tables, PGD included
cdef int64_t pt_vmpte_bytes(pgtable_t* pt) noexcept nogil       # what /proc/PID/status VmPTE shows

# Leaf table holding `vpn`; allocates missing tables when `alloc` (adds the
# number allocated to *nalloc).  NULL if absent (or allocation failed).
cdef pt_node_t* pt_leaf(pgtable_t* pt, uint64_t vpn, bint alloc, int64_t* nalloc) noexcept nogil

cdef inline uint64_t pt_get(pgtable_t* pt, uint64_t vpn) noexcept nogil:
    cdef pt_node_t* t = pt_leaf(pt, vpn, False, NULL)
    if t == NULL:
        return 0
    return t.e[vpn & 511]

cdef inline void pt_set(pt_node_t* t, uint64_t vpn, uint64_t pte) noexcept nogil:
    """Write one entry of leaf table `t`, keeping its use count."""
    cdef uint64_t* slot = &t.e[vpn & 511]
    if slot[0] == 0 and pte != 0:
        t.used += 1
    elif slot[0] != 0 and pte == 0:
        t.used -= 1
    slot[0] = pte

# Next non-zero PTE at or after `start`, before `end`; skips absent tables.
# Returns its leaf table (and the vpn in *vpn_out), or NULL when there is none.
cdef pt_node_t* pt_next(pgtable_t* pt, uint64_t start, uint64_t end, uint64_t* vpn_out) noexcept nogil

# free_pgtables: free every table that covers only [start, end) and is empty,
# walking upwards.  Returns the number of tables freed.
cdef int64_t pt_free_range(pgtable_t* pt, uint64_t start, uint64_t end) noexcept nogil

# Allocate every destination table a move of the entries of [start, end) to
# new_start needs, before anything moves (whole_tables: PTE tables that can
# move whole need only the tables above them); -1 (tables freed again over
# the destination hole [floor, ceiling)) when out of memory.
cdef int pt_reserve_move(pgtable_t* pt, uint64_t start, uint64_t end, uint64_t new_start,
                         uint64_t floor, uint64_t ceiling, bint whole_tables,
                         int64_t* nalloc) noexcept nogil
