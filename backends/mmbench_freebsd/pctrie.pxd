# pctrie — a 16-ary path-compressed radix trie keyed by 64-bit indices.
#
# The building block FreeBSD uses for an object's resident pages (vm_radix
# over pctrie).  Four key bits per level (PCTRIE_WIDTH 4) give 16 children per
# node, so a node's child pointers fit a cache line.  Path compression: a node
# exists only where at least two keys diverge; it records the key prefix it
# owns (`owner`) and the nibble it branches on (`clev`), so a lone key never
# costs a chain of one-child nodes.
#
# Leaves are tagged pointers (bit 0 set) to the 64-bit key *inside the stored
# item* — exactly as a kernel leaf points at a page's pindex field — so the
# trie stores nothing but the item's address.  Items must be 8-byte aligned.
#
# Invariants (pctrie_check verifies them):
#   every node has >= 2 children and popmap has one bit per non-empty child;
#   every key below a node shares the node's prefix above nibble `clev`;
#   the number of leaves equals `count` and the number of nodes `nnodes`.
#
# Node memory is accounted into a caller-supplied kmem_cache_t (one node is
# 144 bytes in the kernel: owner 8, popmap 2, clev 1, pad, 16 child pointers).

from libc.stdint cimport uint64_t, int64_t, uint16_t, uint8_t
from mmbench.core cimport kmem_cache_t

cdef enum:
    PCTRIE_WIDTH = 4
    PCTRIE_COUNT = 16
    PCTRIE_NODE_BYTES = 144

ctypedef struct pctrie_node_t:
    uint64_t owner            # key prefix shared by everything below (low bits clear)
    uint16_t popmap           # bit i set <=> child[i] non-empty
    uint8_t clev              # nibble this node branches on (0 = lowest four bits)
    uint64_t child[16]        # 0, a node pointer, or a leaf (item address | 1)

# Where a lookup ended (the kernel's pctrie iterators remember their path the
# same way): the node and the empty child slot a missing key would go into, so
# an insert right after the lookup need not walk again.
ctypedef struct pctrie_iter_t:
    pctrie_node_t* node       # NULL: no usable position
    int slot

ctypedef struct pctrie_t:
    uint64_t root             # 0 (empty), a leaf, or a node pointer
    int64_t count             # leaves
    int64_t nnodes            # nodes
    pctrie_node_t* hint       # the simulator's shortcut: the deepest node the last
                              # pctrie_iter_lookup reached (NULL after any removal)

cdef inline void pctrie_init(pctrie_t* t) noexcept nogil:
    t.root = 0
    t.hint = NULL
    t.count = 0
    t.nnodes = 0

# Tagged child words and node slots (inline: the fault path's peek and insert use them).
cdef inline bint is_leaf(uint64_t p) noexcept nogil:
    return (p & 1) != 0

cdef inline uint64_t* leaf_item(uint64_t p) noexcept nogil:
    return <uint64_t*><size_t>(p & ~(<uint64_t>1))

cdef inline uint64_t mk_leaf(uint64_t* item) noexcept nogil:
    return (<uint64_t><size_t>item) | 1

cdef inline pctrie_node_t* as_node(uint64_t p) noexcept nogil:
    return <pctrie_node_t*><size_t>p

cdef inline int slot_of(uint64_t key, int clev) noexcept nogil:
    return <int>((key >> (clev * PCTRIE_WIDTH)) & (PCTRIE_COUNT - 1))

cdef inline bint outside(pctrie_node_t* n, uint64_t key) noexcept nogil:
    """True when `key` does not share the prefix `n` owns (the kernel's keybarr)."""
    cdef int sh = (n.clev + 1) * PCTRIE_WIDTH
    if sh >= 64:
        return False
    return (key >> sh) != (n.owner >> sh)

cdef inline void node_put(pctrie_node_t* n, uint64_t key, uint64_t child) noexcept nogil:
    cdef int i = slot_of(key, n.clev)
    n.child[i] = child
    n.popmap |= <uint16_t>(1 << i)


# The item whose key is `key`, or NULL.
cdef uint64_t* pctrie_lookup(pctrie_t* t, uint64_t key) noexcept nogil
# Same, and on a miss record in *it where the key would be inserted.  The walk
# starts at t.hint when the key shares the hint node's prefix: every key with a
# node's prefix lives below that node, so the answer is the one a walk from the
# root gives, without the levels above (a run of faults through one object
# mostly stays under one node; the kernel's iterators keep their path alike).
# Removals clear the hint (they may free nodes); inserts keep it (they free none).
# (inline: the first step, at the hint node, which is where a run of faults
# ends; pctrie_iter_lookup_walk does the rest, and the whole walk otherwise)
cdef uint64_t* pctrie_iter_lookup_walk(pctrie_t* t, uint64_t key, pctrie_iter_t* it) noexcept nogil

cdef inline uint64_t* pctrie_iter_lookup(pctrie_t* t, uint64_t key, pctrie_iter_t* it) noexcept nogil:
    cdef pctrie_node_t* n = t.hint
    cdef uint64_t c
    cdef int i
    if n != NULL and not outside(n, key):
        i = slot_of(key, n.clev)
        c = n.child[i]
        if c == 0:
            it.node = n
            it.slot = i
            return NULL
        if is_leaf(c):
            it.node = NULL
            return leaf_item(c) if leaf_item(c)[0] == key else NULL
    return pctrie_iter_lookup_walk(t, key, it)
# Insert `item` at the position a pctrie_iter_lookup of its key just recorded
# (the trie must not have changed since); falls back to pctrie_insert.
cdef inline int pctrie_iter_insert(pctrie_t* t, pctrie_iter_t* it, uint64_t* item,
                                   kmem_cache_t* kc) noexcept nogil:
    cdef pctrie_node_t* n = it.node
    if n == NULL or n.child[it.slot] != 0 or outside(n, item[0]) or slot_of(item[0], n.clev) != it.slot:
        return pctrie_insert(t, item, kc)
    node_put(n, item[0], mk_leaf(item))
    t.count += 1
    return 0
# Look `key` up starting at the node a recent pctrie_iter_lookup ended in (a
# neighbour of the key looked up): valid while nothing was removed since,
# because every key with a node's prefix lives below that node.
cdef inline uint64_t* pctrie_iter_peek(pctrie_t* t, pctrie_iter_t* it, uint64_t key) noexcept nogil:
    cdef pctrie_node_t* n = it.node
    cdef uint64_t c
    if n == NULL or outside(n, key):
        return pctrie_lookup(t, key)
    c = n.child[slot_of(key, n.clev)]
    if c == 0:
        return NULL
    if is_leaf(c):
        return leaf_item(c) if leaf_item(c)[0] == key else NULL
    return pctrie_lookup(t, key)
# The item with the smallest key >= `key`, or NULL (in-order iteration).
cdef uint64_t* pctrie_lookup_ge(pctrie_t* t, uint64_t key) noexcept nogil
# Insert the item at `item` (its key is item[0]): 0, -1 when out of memory,
# -2 when the key is already present.
cdef int pctrie_insert(pctrie_t* t, uint64_t* item, kmem_cache_t* kc) noexcept nogil
# Remove the item with `key`; returns it, or NULL when absent.
cdef uint64_t* pctrie_remove(pctrie_t* t, uint64_t key, kmem_cache_t* kc) noexcept nogil
# Free every node (the items themselves are the caller's).
cdef void pctrie_reclaim(pctrie_t* t, kmem_cache_t* kc) noexcept nogil
# Verify the invariants above: 0, or -1 with a reason in *why.
cdef int pctrie_check(pctrie_t* t, const char** why) noexcept nogil
