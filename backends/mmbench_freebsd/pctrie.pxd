# pctrie — a 16-ary path-compressed radix trie keyed by 64-bit indices.
#
# The building block FreeBSD uses for an object's resident pages (vm_radix
# over pctrie).  Four key bits per level (PCTRIE_WIDTH 4) give 16 children per
# node.  Path compression: a node exists only where at least two keys
# diverge; it records the key prefix it owns (`owner`) and the nibble it
# branches on (`clev`), so a lone key never costs a chain of one-child nodes.
#
# What the kernel stores.  A node is 144 bytes (owner 8, popmap 2, clev 1,
# pad, 16 child pointers of 8 bytes) from the pctrie user's UMA zone (for
# pages vm_radix_node_zone).  A child is NULL, a node pointer, or a leaf: a
# pointer with bit 0 set to the key *inside the stored item* (a vm_page's
# pindex), which PCTRIE_DEFINE(name, type, field, allocfn, freefn) turns back
# into the item by subtracting the field's offset.  The trie stores nothing
# but addresses.
#
# What the simulator stores.  The same trie, same shapes, with 32-bit
# children: a node here is 80 bytes (owner 8, popmap 2, clev 1, pad 1, 16
# words of 4 bytes, and its own number in the tail padding), about 5 bytes
# per resident page of a dense object where 64-bit children cost 10 (the
# simulator's memory per page, docs/performance.md).  A child word is
#
#     0                   empty
#     (item << 1) | 1     a leaf: the item numbered `item`
#     node << 1           the node numbered `node` (>= 1)
#
# and a pctrie_type_t -- the simulator's PCTRIE_DEFINE, fixed when the
# machine is made -- says how numbers become addresses:
#
#     items in an array   item n's key at base + n * stride       (the frame
#                         descriptors: n is the pfn, the key frame_t.index)
#     items in a table    item n's key at tab.slot[n] + keyoff, its number a
#                         uint32 at key + numoff   (reservations: n is rv.num
#                         in vm.reserv_tab, the key rv.rvkey)
#     nodes               node n is slot n % 512 of the zone's chunk n / 512
#
# The node zone.  Each machine has one (a machine serves one thread at a
# time, so its zone needs no lock; tries of two machines never share one).
# It hands out node numbers below `cap`, and takes its memory from malloc
# 512 nodes (40 KiB) at a time as numbers are first handed out, into a
# chunk table sized for `cap` when the zone is made, so nodes never move:
# the lookup hint and iterators keep plain node pointers, and only a walk
# turns a word into a node (a table index and a multiply).  Freed numbers
# are chained through child[0] and handed out again, last freed first; the
# chunks go back to malloc with the zone.  So a node costs its 80 bytes
# and no per-node malloc header.  (A reserved address range, node n at
# base + n * 80, saves the table index, but each new machine then faults
# in fresh pages where malloc hands back the memory the machines before it
# freed; the first-touch loop measured it slower.)
#
# Limits.  Numbers are 31 bits.  An item numbered 2^31 or more cannot be a
# leaf, and a zone grows no further than its cap: either way the insert
# fails with -1, as it does when the host has no memory, and the trie is
# unchanged.  A trie of n leaves has at most n - 1 nodes, so a zone whose
# cap is the number of items its tries can hold at once never runs out
# (FreeBSDMachine: every frame, and one reservation per frame).
#
# Why the kernel's accounting is unchanged.  Nodes are made and freed where
# the kernel makes and frees them (same shapes, same count), and each is
# charged PCTRIE_NODE_BYTES in the caller's kmem_cache_t -- the kernel's 144
# bytes, not the simulator's 80.
#
# Invariants (pctrie_check verifies them):
#   every node has >= 2 children and popmap has one bit per non-empty child;
#   every key below a node shares the node's prefix above nibble `clev`;
#   the number of leaves equals `count` and the number of nodes `nnodes`;
#   a leaf's item, numbered back, is the number in the leaf;
#   a child node's number is one the zone handed out, and the node's own;
#   the hint is a node of the trie.
# pctrie_zone_check: the zone's live nodes plus its free chain are every
# number it handed out.

from libc.stdint cimport uint64_t, int64_t, uint32_t, int32_t, uint16_t, uint8_t
from mmbench.core cimport kmem_cache_t
from mmbench.blocks.handles cimport handles_t

cdef enum:
    PCTRIE_WIDTH = 4
    PCTRIE_COUNT = 16
    PCTRIE_NODE_BYTES = 144        # the kernel's node: what the caller's kmem cache is charged
    PCTRIE_NUM_BITS = 31           # item and node numbers stay below 1 << 31
    PCTRIE_CHUNK_SHIFT = 9         # a zone takes nodes from malloc 512 at a time
    PCTRIE_CHUNK = 1 << 9

ctypedef uint32_t pctrie_word_t    # a child: 0, (item << 1) | 1, or node << 1

ctypedef struct pctrie_node_t:     # 80 bytes
    uint64_t owner                 # key prefix shared by everything below (low bits clear)
    uint16_t popmap                # bit i set <=> child[i] non-empty
    uint8_t clev                   # nibble this node branches on (0 = lowest four bits)
    pctrie_word_t child[16]        # free node: child[0] is the next free number (0: none)
    uint32_t num                   # its number in the zone

ctypedef struct pctrie_zone_t:     # one machine's nodes
    pctrie_node_t** chunk          # node n is chunk[n >> 9][n & 511]; NULL: not yet needed
    int64_t cap                    # numbers below cap (the table has room for them)
    int64_t bump                   # numbers in [1, bump) were handed out at least once
    pctrie_word_t free             # the last number given back (0: none); chained on
    int64_t live                   # nodes in use

ctypedef struct pctrie_type_t:     # the simulator's PCTRIE_DEFINE: numbers to addresses
    pctrie_node_t** chunk          # zone.chunk (copied: the walk's node is a load nearer)
    pctrie_zone_t* zone
    char* base                     # items in an array: item n's key at base + n * stride
    size_t stride                  #   (NULL: items in a table)
    int64_t nitems                 #   items in the array (pctrie_check's bound)
    int shift                      #   an item's number: ((key - base) >> shift) * inv
    uint64_t inv                   #   (exact division by stride = odd << shift)
    handles_t* tab                 # items in a table: item n's key at tab.slot[n] + keyoff,
    int64_t keyoff                 #   its number a uint32 at key + numoff
    int64_t numoff

# Where a lookup ended (the kernel's pctrie iterators remember their path the
# same way): the node and the empty child slot a missing key would go into, so
# an insert right after the lookup need not walk again.
ctypedef struct pctrie_iter_t:
    pctrie_node_t* node            # NULL: no usable position
    int slot

ctypedef struct pctrie_t:          # 32 bytes, as with 64-bit words
    pctrie_word_t root             # 0 (empty), a leaf, or a node
    int32_t count                  # leaves (below 2^31: each is a distinct item number)
    int32_t nnodes                 # nodes (fewer than leaves)
    pctrie_node_t* hint            # the simulator's shortcut: the deepest node the last
                                   # pctrie_iter_lookup reached (NULL after any removal)
    pctrie_type_t* type            # how its words name items and nodes

# The zone: room for `cap` node numbers, 0 excluded (0, or -1: no memory for
# its chunk table); give its memory back (every trie of the zone must be dead).
cdef int pctrie_zone_init(pctrie_zone_t* z, int64_t cap) noexcept nogil
cdef void pctrie_zone_destroy(pctrie_zone_t* z) noexcept nogil
# Its live count and free chain account for every number handed out, and
# `nodes` (the nodes of all its tries, counted by the caller) are live.
cdef int pctrie_zone_check(pctrie_zone_t* z, int64_t nodes, const char** why) noexcept nogil

# Types: `nitems` items in an array (`first` is item 0's key; stride a
# multiple of 8), or in a handles table (keyoff: the key's offset in the
# object, numoff: its uint32 number's offset from the key).
cdef void pctrie_type_array(pctrie_type_t* ty, pctrie_zone_t* z, uint64_t* first,
                            size_t stride, int64_t nitems) noexcept nogil
cdef void pctrie_type_table(pctrie_type_t* ty, pctrie_zone_t* z, handles_t* tab,
                            int64_t keyoff, int64_t numoff) noexcept nogil

cdef inline void pctrie_init(pctrie_t* t, pctrie_type_t* ty) noexcept nogil:
    t.root = 0
    t.hint = NULL
    t.count = 0
    t.nnodes = 0
    t.type = ty

# Child words and node slots (inline: the fault path's peek and insert use them).
cdef inline bint is_leaf(pctrie_word_t w) noexcept nogil:
    return (w & 1) != 0

cdef inline pctrie_node_t* chunk_node(pctrie_node_t** chunk, uint32_t n) noexcept nogil:
    """Node number n of a zone's chunk table."""
    return &chunk[n >> PCTRIE_CHUNK_SHIFT][n & (PCTRIE_CHUNK - 1)]

cdef inline pctrie_node_t* as_node(pctrie_type_t* ty, pctrie_word_t w) noexcept nogil:
    """The node of a node word (w = n << 1)."""
    return chunk_node(ty.chunk, w >> 1)

cdef inline pctrie_word_t node_word(pctrie_node_t* n) noexcept nogil:
    return n.num << 1

cdef inline uint64_t* leaf_item(pctrie_type_t* ty, pctrie_word_t w) noexcept nogil:
    """The key of the item a leaf word names."""
    cdef size_t n = w >> 1
    if ty.base != NULL:
        return <uint64_t*>(ty.base + n * ty.stride)
    return <uint64_t*>(<char*>ty.tab.slot[n] + ty.keyoff)

cdef inline uint64_t item_number(pctrie_type_t* ty, uint64_t* item) noexcept nogil:
    """The number of the item whose key is at `item`."""
    if ty.base != NULL:
        return (<uint64_t>(<char*>item - ty.base) >> ty.shift) * ty.inv
    return (<uint32_t*>(<char*>item + ty.numoff))[0]

cdef inline pctrie_word_t mk_leaf(pctrie_type_t* ty, uint64_t* item) noexcept nogil:
    """The leaf word naming the item whose key is at `item`; 0 (never a leaf)
    when its number does not fit PCTRIE_NUM_BITS."""
    cdef uint64_t n = item_number(ty, item)
    if n >> PCTRIE_NUM_BITS:
        return 0
    return <pctrie_word_t>((n << 1) | 1)

cdef inline int slot_of(uint64_t key, int clev) noexcept nogil:
    return <int>((key >> (clev * PCTRIE_WIDTH)) & (PCTRIE_COUNT - 1))

cdef inline bint outside(pctrie_node_t* n, uint64_t key) noexcept nogil:
    """True when `key` does not share the prefix `n` owns (the kernel's keybarr)."""
    cdef int sh = (n.clev + 1) * PCTRIE_WIDTH
    if sh >= 64:
        return False
    return (key >> sh) != (n.owner >> sh)

cdef inline void node_put(pctrie_node_t* n, uint64_t key, pctrie_word_t child) noexcept nogil:
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
    cdef pctrie_word_t c
    cdef uint64_t* item
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
            item = leaf_item(t.type, c)
            return item if item[0] == key else NULL
    return pctrie_iter_lookup_walk(t, key, it)
# Insert `item` at the position a pctrie_iter_lookup of its key just recorded
# (the trie must not have changed since); falls back to pctrie_insert.
cdef inline int pctrie_iter_insert(pctrie_t* t, pctrie_iter_t* it, uint64_t* item,
                                   kmem_cache_t* kc) noexcept nogil:
    cdef pctrie_node_t* n = it.node
    cdef pctrie_word_t leaf
    if n == NULL or n.child[it.slot] != 0 or outside(n, item[0]) or slot_of(item[0], n.clev) != it.slot:
        return pctrie_insert(t, item, kc)
    leaf = mk_leaf(t.type, item)
    if leaf == 0:
        return -1
    node_put(n, item[0], leaf)
    t.count += 1
    return 0
# Look `key` up starting at the node a recent pctrie_iter_lookup ended in (a
# neighbour of the key looked up): valid while nothing was removed since,
# because every key with a node's prefix lives below that node.
cdef inline uint64_t* pctrie_iter_peek(pctrie_t* t, pctrie_iter_t* it, uint64_t key) noexcept nogil:
    cdef pctrie_node_t* n = it.node
    cdef pctrie_word_t c
    cdef uint64_t* item
    if n == NULL or outside(n, key):
        return pctrie_lookup(t, key)
    c = n.child[slot_of(key, n.clev)]
    if c == 0:
        return NULL
    if is_leaf(c):
        item = leaf_item(t.type, c)
        return item if item[0] == key else NULL
    return pctrie_lookup(t, key)
# The item with the smallest key >= `key`, or NULL (in-order iteration).
cdef uint64_t* pctrie_lookup_ge(pctrie_t* t, uint64_t key) noexcept nogil
# Insert the item at `item` (its key is item[0]): 0, -1 when out of memory
# (or the item's number does not fit a leaf), -2 when the key is already present.
cdef int pctrie_insert(pctrie_t* t, uint64_t* item, kmem_cache_t* kc) noexcept nogil
# Remove the item with `key`; returns it, or NULL when absent.
cdef uint64_t* pctrie_remove(pctrie_t* t, uint64_t key, kmem_cache_t* kc) noexcept nogil
# Free every node (the items themselves are the caller's).
cdef void pctrie_reclaim(pctrie_t* t, kmem_cache_t* kc) noexcept nogil
# Verify the invariants above: 0, or -1 with a reason in *why.
cdef int pctrie_check(pctrie_t* t, const char** why) noexcept nogil
