# mmbench_linux.maple — the shape of a VMA maple tree, simulated node by node.
#
# Linux keeps an mm's VMAs in a maple tree (lib/maple_tree.c): a B-tree of
# ranges whose leaves (maple_leaf_64) hold 16 slots and whose internal nodes,
# in a tree with MT_FLAGS_ALLOC_RANGE as mm_mt is, are maple_arange_64 with 10
# slots.  Every range of the index space is a slot: a VMA, or the gap (NULL)
# between two VMAs, so a VMA followed by a gap costs two slots.  How full the
# nodes are is not a constant: it follows how the kernel stores, splits (with
# its "push left / push right" into a sibling), rebalances and combines nodes
# across a spanning store.  This module replays those rules on a tree of node
# descriptors whose leaf slots carry the VMA pointers, so the maple_node count
# of a process is the count the kernel's algorithm reaches on the same history.
#
# The VMA set itself stays in mm_t.vmas (a sorted array); the tree is kept in
# step by one mt_store per kernel store (vma_iter_store / vma_iter_clear), and
# check() verifies that its leaves list exactly the VMAs and the gaps.

from libc.stdint cimport int64_t, uint64_t

cdef enum:
    MAPLE_RANGE64_SLOTS = 16       # maple_leaf_64 / maple_range_64
    MAPLE_ARANGE64_SLOTS = 10      # maple_arange_64: internal nodes of an allocation-range tree
    MT_MIN_LEAF = 6                # mt_min_slots[maple_leaf_64] = 16 / 2 - 2
    MT_MIN_ARANGE = 4              # mt_min_slots[maple_arange_64] = 10 / 2 - 1
    MT_BIG = 56                    # maple_big_node capacity (a store + up to two neighbours)

ctypedef struct mt_node_t:
    mt_node_t* parent              # NULL for the root
    uint64_t min                   # first index the node covers
    uint64_t max                   # last index the node covers (== pivot[nr - 1])
    uint64_t pivot[16]             # inclusive end of each slot
    void* slot[16]                 # leaf: the entry (NULL = gap); internal: the child node
    int nr                         # slots in use
    bint leaf

ctypedef struct maple_tree_t:
    mt_node_t* root                # NULL: empty tree
    int64_t nr_nodes               # live maple_node objects
    int height                     # levels (0 when empty)
    mt_node_t* spare               # preallocated nodes (mas_preallocate), linked by parent
    int64_t nr_spare

cdef void mt_init(maple_tree_t* mt) noexcept nogil
cdef void mt_destroy(maple_tree_t* mt) noexcept nogil
# Store `entry` (NULL = erase) over [index, last]; 0, or -1 when no node could be
# preallocated (the tree is then unchanged).
cdef int mt_store(maple_tree_t* mt, uint64_t index, uint64_t last, void* entry) noexcept nogil
# mas_preallocate: keep `need` spare nodes so the next stores cannot fail; -1: no memory
cdef int mt_reserve(maple_tree_t* mt, int64_t need) noexcept nogil
# free spare nodes beyond `keep` (after a reservation larger than usual)
cdef void mt_trim(maple_tree_t* mt, int64_t keep) noexcept nogil
# __mt_dup: dst becomes a node-for-node copy of src whose non-NULL leaf slots are
# entries[0], entries[1], ... in index order.  0, or -1 when out of memory (dst empty).
cdef int mt_dup(maple_tree_t* dst, maple_tree_t* src, void** entries) noexcept nogil
# Structural invariants (0 when they hold, else a code > 0), and the leaf slots in
# index order: entries, first indices; returns the number of slots (or -1 when cap is short).
cdef int mt_validate(maple_tree_t* mt) noexcept nogil
cdef int64_t mt_slots_in_order(maple_tree_t* mt, void** ent, uint64_t* first, int64_t cap) noexcept nogil
