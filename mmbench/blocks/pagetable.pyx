# Implementation of the 4-level radix page table; see pagetable.pxd.
from libc.stdlib cimport calloc, free
from libc.stdint cimport uint64_t, int64_t

cdef inline int idx_at(uint64_t vpn, int level) noexcept nogil:
    return <int>((vpn >> (9 * (3 - level))) & 511)

cdef inline pt_node_t* attach_table(pgtable_t* pt, pt_node_t* t, int i, int level,
                                    int64_t* nalloc) noexcept nogil:
    # A new empty table as entry i of `t` (a table at `level`), counted in
    # pt.nr and *nalloc; NULL when out of memory (then nothing changes).
    cdef pt_node_t* child = <pt_node_t*>calloc(1, sizeof(pt_node_t))
    if child != NULL:
        t.e[i] = <uint64_t><size_t>child
        t.used += 1
        pt.nr[level + 1] += 1
        if nalloc != NULL:
            nalloc[0] += 1
    return child

cdef int pt_init(pgtable_t* pt) noexcept nogil:
    cdef int i
    for i in range(4):
        pt.nr[i] = 0
    pt.pgd = <pt_node_t*>calloc(1, sizeof(pt_node_t))
    if pt.pgd == NULL:
        return -1
    pt.nr[LVL_PGD] = 1
    return 0

cdef void free_subtree(pgtable_t* pt, pt_node_t* t, int level) noexcept nogil:
    cdef int i
    cdef pt_node_t* d
    if level < LVL_PTE:
        for i in range(PT_ENTRIES):
            if t.e[i] != 0 and not (level == LVL_PMD and pmd_leaf(t.e[i])):
                free_subtree(pt, <pt_node_t*><size_t>t.e[i], level + 1)
    d = pt_withdraw(t)
    while d != NULL:                     # deposited tables go with their PMD table
        pt_table_free(pt, d)
        d = pt_withdraw(t)
    pt.nr[level] -= 1
    free(t)

cdef void pt_destroy(pgtable_t* pt) noexcept nogil:
    if pt.pgd != NULL:
        free_subtree(pt, pt.pgd, LVL_PGD)
        pt.pgd = NULL

cdef int64_t pt_bytes(pgtable_t* pt) noexcept nogil:
    return (pt.nr[0] + pt.nr[1] + pt.nr[2] + pt.nr[3]) * 4096

cdef int64_t pt_vmpte_bytes(pgtable_t* pt) noexcept nogil:
    return (pt.nr[1] + pt.nr[2] + pt.nr[3]) * 4096

cdef pt_node_t* pt_leaf(pgtable_t* pt, uint64_t vpn, bint alloc, int64_t* nalloc) noexcept nogil:
    cdef pt_node_t* t = pt.pgd
    cdef pt_node_t* child
    cdef pt_node_t* first_parent = NULL     # where this call attached its first new table
    cdef int level, i, first_level = 0
    if t == NULL:
        return NULL
    for level in range(LVL_PGD, LVL_PTE):
        i = idx_at(vpn, level)
        if level == LVL_PMD and pmd_leaf(t.e[i]):
            return NULL                  # a PMD leaf: no PTE table (split it first)
        child = <pt_node_t*><size_t>t.e[i]
        if child == NULL and alloc:
            child = attach_table(pt, t, i, level, nalloc)
            if child != NULL and first_parent == NULL:
                first_parent = t
                first_level = level
        if child == NULL:
            if first_parent != NULL:    # out of memory: undo the tables made here
                i = idx_at(vpn, first_level)
                if nalloc != NULL:
                    nalloc[0] -= level - first_level
                free_subtree(pt, <pt_node_t*><size_t>first_parent.e[i], first_level + 1)
                first_parent.e[i] = 0
                first_parent.used -= 1
            return NULL
        t = child
    return t

cdef pt_node_t* pt_next(pgtable_t* pt, uint64_t start, uint64_t end, uint64_t* vpn_out) noexcept nogil:
    # iterative descent with "skip the rest of this subtree" on absent tables
    cdef uint64_t vpn = start
    cdef uint64_t span
    cdef pt_node_t* t
    cdef pt_node_t* child
    cdef int level, i
    if end > (<uint64_t>1) << 36:
        end = (<uint64_t>1) << 36    # beyond the 4 levels the indices would wrap
    while vpn < end:
        t = pt.pgd
        if t == NULL:
            return NULL
        level = LVL_PGD
        while level < LVL_PTE:
            i = idx_at(vpn, level)
            if level == LVL_PMD and pmd_leaf(t.e[i]):
                break                    # PMD leaves hold no PTEs
            child = <pt_node_t*><size_t>t.e[i]
            if child == NULL or child.used == 0:
                break
            t = child
            level += 1
        if level < LVL_PTE:
            span = (<uint64_t>1) << (9 * (3 - level))      # pages under one entry of t
            vpn = (vpn & ~(span - 1)) + span
            continue
        i = idx_at(vpn, LVL_PTE)
        while i < PT_ENTRIES and vpn < end:
            if t.e[i] != 0:
                vpn_out[0] = vpn
                return t
            i += 1
            vpn += 1
    return NULL

cdef int64_t free_level(pgtable_t* pt, pt_node_t* t, int level, uint64_t base,
                        uint64_t start, uint64_t end) noexcept nogil:
    # Frees empty children of `t` whose whole span lies in [start, end).
    cdef int64_t freed = 0
    cdef uint64_t span = (<uint64_t>1) << (9 * (3 - level))   # pages per entry of t
    cdef uint64_t lo, hi
    cdef int i, i0, i1
    cdef pt_node_t* child
    if end <= base:
        return 0
    lo = start if start > base else base
    i0 = <int>((lo - base) // span)
    hi = end - base
    i1 = <int>((hi + span - 1) // span)
    if i1 > PT_ENTRIES:
        i1 = PT_ENTRIES
    for i in range(i0, i1):
        if level == LVL_PMD and pmd_leaf(t.e[i]):
            continue                     # a live huge mapping
        child = <pt_node_t*><size_t>t.e[i]
        if child == NULL:
            continue
        if level + 1 < LVL_PTE:
            freed += free_level(pt, child, level + 1, base + i * span, start, end)
        if (child.used == 0 and child.deposit == NULL and base + i * span >= start
                and base + (i + 1) * span <= end):
            free(child)
            t.e[i] = 0
            t.used -= 1
            pt.nr[level + 1] -= 1
            freed += 1
    return freed

cdef int64_t pt_free_range(pgtable_t* pt, uint64_t start, uint64_t end) noexcept nogil:
    if pt.pgd == NULL or end <= start:
        return 0
    # A table may be freed when no mapping remains anywhere in its span; the
    # caller passes the widest hole around the unmapped range (like the
    # floor/ceiling of free_pgtables).
    return free_level(pt, pt.pgd, LVL_PGD, 0, start, end)


cdef pt_node_t* pt_pmd_table(pgtable_t* pt, uint64_t vpn, bint alloc, int64_t* nalloc) noexcept nogil:
    cdef pt_node_t* t = pt.pgd
    cdef pt_node_t* child
    cdef int level, i
    if t == NULL:
        return NULL
    for level in range(LVL_PGD, LVL_PMD):
        i = idx_at(vpn, level)
        child = <pt_node_t*><size_t>t.e[i]
        if child == NULL and alloc:
            child = attach_table(pt, t, i, level, nalloc)
        if child == NULL:                # absent, or out of memory: tables made above
            return NULL                  # stay (empty; free_pgtables takes them)
        t = child
    return t


cdef pt_node_t* pt_table_alloc(pgtable_t* pt) noexcept nogil:
    cdef pt_node_t* t = <pt_node_t*>calloc(1, sizeof(pt_node_t))
    if t != NULL:
        pt.nr[LVL_PTE] += 1
    return t


cdef void pt_table_free(pgtable_t* pt, pt_node_t* t) noexcept nogil:
    pt.nr[LVL_PTE] -= 1
    free(t)


cdef int reserve_upper(pgtable_t* pt, uint64_t vpn, int64_t* made) noexcept nogil:
    # The PUD and PMD tables above `vpn` (not its PTE table); -1: out of memory.
    return 0 if pt_pmd_table(pt, vpn, True, made) != NULL else -1

cdef int pt_reserve_move(pgtable_t* pt, uint64_t start, uint64_t end, uint64_t new_start,
                         uint64_t floor, uint64_t ceiling, bint whole_tables,
                         int64_t* nalloc) noexcept nogil:
    # Before a move changes anything: make every destination table a present
    # entry of [start, end) will need, so the move itself cannot run out of
    # memory halfway.  With whole_tables, a source PTE table that lies wholly
    # in the range at the same offset in its 2 MiB as the destination will be
    # moved as a table (move_normal_pmd): only the tables above it are made.
    # On failure the (empty) tables made here are freed again -- the caller
    # passes [floor, ceiling), the hole around the destination -- and -1 is
    # returned with *nalloc unchanged.
    cdef uint64_t vpn = start, dst, step, tbase
    cdef int64_t made = 0
    cdef pt_node_t* t
    cdef bint same_phase = ((start ^ new_start) & 511) == 0
    while True:
        t = pt_next(pt, vpn, end, &vpn)
        if t == NULL:
            break
        dst = new_start + (vpn - start)
        tbase = vpn & ~(<uint64_t>511)
        if whole_tables and same_phase and tbase >= start and tbase + 512 <= end:
            if reserve_upper(pt, dst, &made) != 0:
                pt_free_range(pt, floor, ceiling)
                return -1
            vpn = tbase + 512
            continue
        if pt_leaf(pt, dst, True, &made) == NULL:
            pt_free_range(pt, floor, ceiling)
            return -1
        # the next PTE that could need another table: the end of this
        # destination table or of this source table, whichever is first
        step = 512 - (dst & 511)
        if 512 - (vpn & 511) < step:
            step = 512 - (vpn & 511)
        vpn += step
    if nalloc != NULL:
        nalloc[0] += made
    return 0
