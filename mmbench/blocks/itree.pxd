# An intrusive interval tree: the structure behind anon_vma->rb_root and
# address_space->i_mmap.  Nodes are embedded in the design's own structs
# (anon_vma_chain, vm_area_struct …) and ordered by `start`; each node keeps
# `subtree_last`, the largest `last` below it, so a stabbing query visits only
# subtrees that can overlap (O(log n + k)).  Balanced as a treap (random
# priorities) instead of a red-black tree: same asymptotics, a third the code.

from libc.stdint cimport int64_t, uint64_t, uint32_t

ctypedef struct itnode_t:
    itnode_t* left
    itnode_t* right
    itnode_t* parent
    uint64_t start            # first index covered (inclusive)
    uint64_t last             # last index covered (inclusive)
    uint64_t subtree_last
    uint32_t prio

ctypedef struct itree_t:
    itnode_t* root
    int64_t count
    uint32_t seed

cdef void itree_init(itree_t* t) noexcept nogil
cdef void itree_insert(itree_t* t, itnode_t* n) noexcept nogil   # n.start/n.last set by caller
cdef void itree_remove(itree_t* t, itnode_t* n) noexcept nogil
# Give a node of the tree the range [start, last] in place.  The caller
# guarantees that `start` keeps the node between its neighbours in start order
# (an entry growing or shrinking without passing another: clip, merge);
# the same tree as remove + insert, without the rebalancing.
cdef void itree_update(itree_t* t, itnode_t* n, uint64_t start, uint64_t last) noexcept nogil
# Stabbing query: nodes overlapping [start, last], in start order.
cdef itnode_t* itree_first(itree_t* t, uint64_t start, uint64_t last) noexcept nogil
cdef itnode_t* itree_next(itnode_t* n, uint64_t start, uint64_t last) noexcept nogil
# Invariant check (BST order, heap order, subtree_last, parent links, count): 0 or -1.
cdef int itree_verify(itree_t* t) noexcept nogil
