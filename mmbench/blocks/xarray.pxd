# An xarray-like 64-ary radix tree (XA_CHUNK_SHIFT 6) mapping a 64-bit index
# to a non-zero 64-bit entry, with node accounting: every node is one xa_node.
# XA_NODE_BYTES is what a node costs as the host's slab reports it
# (radix_tree_node objsize in /proc/slabinfo: the 576-byte struct plus slab
# metadata), the rule every struct size in mmbench follows.  The tree grows in
# height as larger indices are stored and shrinks back; empty nodes are freed
# on erase.  Unlike the kernel,
# a lone entry at index 0 still lives in a node (one node per non-empty tree).
#
# The simulator's own shortcut (no kernel counterpart, no effect on any count):
# the tree remembers the last leaf a walk reached, and a walk for an index of
# that leaf's range goes straight to it.  Page caches and logical page tables
# are mostly walked in runs of neighbouring indices (first touch, fault-around,
# truncation), where this saves the walk from the root.  A leaf that is freed
# stops being the hint (node_free); a leaf's range never changes while it
# lives (the root grows above it and shrinks down to it).

from libc.stdint cimport int64_t, uint64_t, uint8_t

cdef enum:
    XA_CHUNK_SHIFT = 6
    XA_CHUNK_SIZE = 64
    XA_NODE_BYTES = 584       # /proc/slabinfo radix_tree_node objsize (struct: 576)

ctypedef struct xa_node_t:
    uint64_t slots[64]        # children (shift > 0) or entries (shift == 0)
    xa_node_t* parent
    uint8_t shift             # 0 for leaves
    uint8_t offset            # slot in parent
    uint8_t count             # non-empty slots

ctypedef struct xarray_t:
    xa_node_t* root
    int64_t nr_nodes          # live xa_nodes
    int64_t nr_entries        # non-zero entries
    int64_t node_allocs       # cumulative, for counters
    int64_t node_frees
    xa_node_t* hint           # the simulator's: the last leaf walked to (NULL: none)
    uint64_t hint_base        # its first index >> XA_CHUNK_SHIFT

cdef void xa_init(xarray_t* xa) noexcept nogil
cdef void xa_destroy(xarray_t* xa) noexcept nogil          # frees nodes, drops entries
cdef uint64_t xa_load(xarray_t* xa, uint64_t index) noexcept nogil   # 0 when empty
cdef int xa_store(xarray_t* xa, uint64_t index, uint64_t entry) noexcept nogil  # entry != 0; 0 or -1 (ENOMEM)
cdef uint64_t xa_erase(xarray_t* xa, uint64_t index) noexcept nogil  # old entry or 0
# Slot address of `index` (allocating the path when `alloc`), NULL if absent.
# Writing through it bypasses counts: use xa_store/xa_erase to add/remove entries.
cdef uint64_t* xa_slot(xarray_t* xa, uint64_t index) noexcept nogil
# First non-zero entry at index in [start, last]; 0 when none (index in *index_out).
cdef uint64_t xa_find(xarray_t* xa, uint64_t start, uint64_t last, uint64_t* index_out) noexcept nogil
# Slot addresses, for users that keep a record in the slot itself and edit it in
# place (writing another non-zero entry; only xa_store/xa_erase add or remove one).
# A slot holding an entry stays where it is until that entry is erased: a leaf is
# freed only when empty, and growing or shrinking the root never moves a leaf.
# xa_load_slot: `index`'s slot when its leaf exists (its entry may be 0), else
# NULL; allocates nothing.  xa_find_slot: xa_find answering the slot (NULL: none).
cdef uint64_t* xa_load_slot(xarray_t* xa, uint64_t index) noexcept nogil
cdef uint64_t* xa_find_slot(xarray_t* xa, uint64_t start, uint64_t last, uint64_t* index_out) noexcept nogil
# Make the empty `dst` a copy of `src`: same entries, nodes of its own (counted
# in dst's node_allocs), built node by node rather than entry by entry.
# 0, or -1 when a node allocation failed (dst is then empty again).
cdef int xa_clone(xarray_t* dst, xarray_t* src) noexcept nogil
# For check(): is the hint NULL or the live leaf of the tree holding hint_base's range?
cdef bint xa_hint_ok(xarray_t* xa) noexcept nogil
