# A 4-level radix page table of 4 KiB tables (512 entries of 8 bytes each),
# the x86-64 layout with P4D folded into the PGD: PGD -> PUD -> PMD -> PTE.
# Tables are allocated on demand and freed when a range is emptied
# (free_pgtables).  `nr[level]` counts live tables per level so a design can
# report page-table bytes exactly as the kernel accounts them (VmPTE counts the
# PUD, PMD and PTE tables; the PGD comes with the mm).
#
# Entries are opaque 64-bit words to this block except that 0 means "none".
# The pte_* helpers give the encoding all CPU page tables in mmbench use.
#
# PMD leaves (transparent huge pages): a PMD-level entry is either a pointer
# to a PTE table or, with PTE_PRESENT set, a leaf mapping 512 pages at once
# (pmd_trans_huge).  Table pointers are calloc'd, so bit 0 of a pointer is
# always clear and PTE_PRESENT alone tells the two apart; a leaf also carries
# PMD_PSE (x86 _PAGE_PSE).  The walks of this block never descend into a
# leaf: pt_leaf returns NULL under one, pt_next skips its 512 pages, the
# free paths keep it.  A PMD table also holds the PTE tables deposited for
# its leaves (pgtable_trans_huge_deposit / _withdraw): allocated tables,
# counted in nr[LVL_PTE] like the kernel's mm_inc_nr_ptes, kept on a list
# through `deposit`.  Designs without huge pages never make a leaf.

from libc.stdint cimport int64_t, uint64_t, int32_t, uint32_t
from mmbench.blocks.frames cimport pfn_t

cdef enum:
    PT_ENTRIES = 512
    PT_LEVELS = 4
    LVL_PGD = 0
    LVL_PUD = 1
    LVL_PMD = 2
    LVL_PTE = 3

cdef struct pt_node_t:
    uint64_t e[512]       # child pointers (upper levels) or PTEs (leaf level); PMD leaves
    int32_t used          # non-zero entries, so empty tables can be freed
    pt_node_t* deposit    # PMD table: first deposited PTE table; deposited table: the next one

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
    PMD_PSE = 1 << 7         # PMD leaf (pmd_trans_huge), always with PTE_PRESENT
    PTE_PFN_SHIFT = 12

cdef inline uint64_t mk_pte(pfn_t pfn, uint64_t bits) noexcept nogil:
    return (<uint64_t>pfn << PTE_PFN_SHIFT) | bits

cdef inline pfn_t pte_pfn(uint64_t pte) noexcept nogil:
    return <pfn_t>(pte >> PTE_PFN_SHIFT)

cdef inline bint pte_present(uint64_t pte) noexcept nogil:
    return (pte & PTE_PRESENT) != 0

cdef inline bint pte_write(uint64_t pte) noexcept nogil:
    return (pte & PTE_WRITE) != 0

cdef inline bint pmd_leaf(uint64_t e) noexcept nogil:
    """Is this PMD-level entry a huge leaf (not a pointer to a PTE table)?"""
    return (e & PTE_PRESENT) != 0

cdef int pt_init(pgtable_t* pt) noexcept nogil                  # 0, or -1 when out of memory
cdef void pt_destroy(pgtable_t* pt) noexcept nogil              # frees every table
cdef int64_t pt_bytes(pgtable_t* pt) noexcept nogil             # all tables, PGD included
cdef int64_t pt_vmpte_bytes(pgtable_t* pt) noexcept nogil       # what /proc/PID/status VmPTE shows

# Leaf table holding `vpn`; allocates missing tables when `alloc` (adds the
# number allocated to *nalloc).  NULL if absent (or allocation failed).
cdef pt_node_t* pt_leaf(pgtable_t* pt, uint64_t vpn, bint alloc, int64_t* nalloc) noexcept nogil

# pt_leaf without allocating, as three unrolled steps (the lookup of every
# load and store that finds its PTE present): vpn's PTE table, or NULL when a
# table is missing or a PMD leaf maps vpn.
cdef inline pt_node_t* pt_find_leaf(pgtable_t* pt, uint64_t vpn) noexcept nogil:
    cdef pt_node_t* t = pt.pgd
    cdef uint64_t e
    if t == NULL:
        return NULL
    t = <pt_node_t*><size_t>t.e[(vpn >> 27) & 511]          # PGD -> PUD table
    if t == NULL:
        return NULL
    t = <pt_node_t*><size_t>t.e[(vpn >> 18) & 511]          # PUD -> PMD table
    if t == NULL:
        return NULL
    e = t.e[(vpn >> 9) & 511]                                # PMD -> PTE table
    if pmd_leaf(e):
        return NULL
    return <pt_node_t*><size_t>e

cdef inline uint64_t pt_get(pgtable_t* pt, uint64_t vpn) noexcept nogil:
    cdef pt_node_t* t = pt_find_leaf(pt, vpn)
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

# --- PMD leaves --------------------------------------------------------------
# The PMD table whose entry maps vpn (allocating the PUD/PMD path when `alloc`;
# adds the tables made to *nalloc).  Its entry is t.e[(vpn >> 9) & 511].
cdef pt_node_t* pt_pmd_table(pgtable_t* pt, uint64_t vpn, bint alloc, int64_t* nalloc) noexcept nogil

cdef inline void pt_set_pmd(pt_node_t* pmd_t, uint64_t vpn, uint64_t e) noexcept nogil:
    """Write the PMD entry for vpn in PMD table `pmd_t`, keeping its use count."""
    cdef uint64_t* slot = &pmd_t.e[(vpn >> 9) & 511]
    if slot[0] == 0 and e != 0:
        pmd_t.used += 1
    elif slot[0] != 0 and e == 0:
        pmd_t.used -= 1
    slot[0] = e

# A new empty PTE table (counted in nr[LVL_PTE]); NULL when out of memory.
cdef pt_node_t* pt_table_alloc(pgtable_t* pt) noexcept nogil
# Free an empty PTE table made by pt_table_alloc or withdrawn.
cdef void pt_table_free(pgtable_t* pt, pt_node_t* t) noexcept nogil
# pgtable_trans_huge_deposit / _withdraw on PMD table pmd_t.
cdef inline void pt_deposit(pt_node_t* pmd_t, pt_node_t* pte_t) noexcept nogil:
    pte_t.deposit = pmd_t.deposit
    pmd_t.deposit = pte_t

cdef inline pt_node_t* pt_withdraw(pt_node_t* pmd_t) noexcept nogil:
    cdef pt_node_t* t = pmd_t.deposit
    if t != NULL:
        pmd_t.deposit = t.deposit
        t.deposit = NULL
    return t

# Allocate every destination table a move of the entries of [start, end) to
# new_start needs, before anything moves (whole_tables: PTE tables that can
# move whole need only the tables above them); -1 (tables freed again over
# the destination hole [floor, ceiling)) when out of memory.
cdef int pt_reserve_move(pgtable_t* pt, uint64_t start, uint64_t end, uint64_t new_start,
                         uint64_t floor, uint64_t ceiling, bint whole_tables,
                         int64_t* nalloc) noexcept nogil
