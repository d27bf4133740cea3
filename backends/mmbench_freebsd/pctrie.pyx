# Implementation of the path-compressed 16-ary trie; see pctrie.pxd.
from libc.stdlib cimport malloc, free
from libc.stdint cimport uint64_t, int64_t, uint16_t

cdef extern from *:
    int __builtin_clzll(unsigned long long) nogil
    int __builtin_ctz(unsigned int) nogil
    int __builtin_popcount(unsigned int) nogil


cdef inline int split_level(uint64_t a, uint64_t b) noexcept nogil:
    """Highest nibble where two different keys differ."""
    return (63 - __builtin_clzll(a ^ b)) // PCTRIE_WIDTH


cdef pctrie_node_t* node_new(uint64_t key, int clev, kmem_cache_t* kc) noexcept nogil:
    cdef pctrie_node_t* n = <pctrie_node_t*>malloc(sizeof(pctrie_node_t))
    cdef int sh = (clev + 1) * PCTRIE_WIDTH
    cdef int i
    if n == NULL:
        return NULL
    n.owner = 0 if sh >= 64 else (key >> sh) << sh
    n.popmap = 0
    n.clev = <uint8_t>clev
    for i in range(PCTRIE_COUNT):
        n.child[i] = 0
    kc.active += 1
    kc.allocs += 1
    return n

cdef inline void node_free(pctrie_node_t* n, kmem_cache_t* kc) noexcept nogil:
    free(n)
    kc.active -= 1
    kc.frees += 1

cdef inline uint64_t* leftmost(uint64_t p) noexcept nogil:
    cdef pctrie_node_t* n
    while not is_leaf(p):
        n = as_node(p)
        p = n.child[__builtin_ctz(n.popmap)]
    return leaf_item(p)


cdef inline pctrie_node_t* lookup_step(uint64_t p, uint64_t key, uint64_t** found) noexcept nogil:
    """One level of a lookup's descent at p (not 0): the node to go down through,
    or NULL when the search ends here (*found: key's item if p is its leaf, else NULL)."""
    cdef pctrie_node_t* n
    found[0] = NULL
    if is_leaf(p):
        if leaf_item(p)[0] == key:
            found[0] = leaf_item(p)
        return NULL
    n = as_node(p)
    return NULL if outside(n, key) else n


cdef uint64_t* pctrie_lookup(pctrie_t* t, uint64_t key) noexcept nogil:
    cdef uint64_t p = t.root
    cdef uint64_t* found
    cdef pctrie_node_t* n
    while p != 0:
        n = lookup_step(p, key, &found)
        if n == NULL:
            return found
        p = n.child[slot_of(key, n.clev)]
    return NULL


cdef uint64_t* pctrie_iter_lookup_walk(pctrie_t* t, uint64_t key, pctrie_iter_t* it) noexcept nogil:
    cdef uint64_t p = t.root
    cdef uint64_t* found
    cdef pctrie_node_t* n
    cdef int i
    it.node = NULL
    if t.hint != NULL and not outside(t.hint, key):
        p = <uint64_t><size_t>t.hint
    while p != 0:
        n = lookup_step(p, key, &found)
        if n == NULL:
            return found
        i = slot_of(key, n.clev)
        p = n.child[i]
        t.hint = n
        if p == 0:
            it.node = n
            it.slot = i
    return NULL


cdef uint64_t* pctrie_lookup_ge(pctrie_t* t, uint64_t key) noexcept nogil:
    # Descend towards `key`; remember each node and the slot taken so the walk
    # can resume at the next populated sibling when the subtree holds nothing
    # >= key.
    cdef pctrie_node_t* stack[17]
    cdef int slots[17]
    cdef int depth = 0
    cdef uint64_t p = t.root
    cdef pctrie_node_t* n
    cdef int i
    cdef unsigned int later
    while p != 0:
        if is_leaf(p):
            if leaf_item(p)[0] >= key:
                return leaf_item(p)
            break
        n = as_node(p)
        if outside(n, key):
            if n.owner > key:
                return leftmost(p)
            break
        i = slot_of(key, n.clev)
        stack[depth] = n
        slots[depth] = i
        depth += 1
        p = n.child[i]
    while depth > 0:
        depth -= 1
        n = stack[depth]
        later = n.popmap & ~((2u << slots[depth]) - 1)
        if later:
            return leftmost(n.child[__builtin_ctz(later)])
    return NULL


cdef int pctrie_insert(pctrie_t* t, uint64_t* item, kmem_cache_t* kc) noexcept nogil:
    cdef uint64_t key = item[0]
    cdef uint64_t* slot = &t.root
    cdef uint64_t p, other
    cdef pctrie_node_t* n
    cdef pctrie_node_t* fork = NULL
    cdef int i
    if t.root == 0:
        t.root = mk_leaf(item)
        t.count += 1
        return 0
    while True:
        p = slot[0]
        if is_leaf(p):
            other = leaf_item(p)[0]
            if other == key:
                return -2
            fork = node_new(key, split_level(key, other), kc)
            if fork == NULL:
                return -1
            node_put(fork, other, p)
            break
        n = as_node(p)
        if outside(n, key):
            fork = node_new(key, split_level(key, n.owner), kc)
            if fork == NULL:
                return -1
            node_put(fork, n.owner, p)
            break
        i = slot_of(key, n.clev)
        if n.child[i] == 0:
            node_put(n, key, mk_leaf(item))
            t.count += 1
            return 0
        slot = &n.child[i]
    node_put(fork, key, mk_leaf(item))
    slot[0] = <uint64_t><size_t>fork
    t.nnodes += 1
    t.count += 1
    return 0


cdef uint64_t* pctrie_remove(pctrie_t* t, uint64_t key, kmem_cache_t* kc) noexcept nogil:
    cdef uint64_t* parent_slot = &t.root
    cdef uint64_t p = t.root
    cdef uint64_t c
    cdef pctrie_node_t* n
    cdef uint64_t* item
    cdef int i
    t.hint = NULL                       # a node may go
    if p == 0:
        return NULL
    if is_leaf(p):
        if leaf_item(p)[0] != key:
            return NULL
        t.root = 0
        t.count -= 1
        return leaf_item(p)
    while True:
        n = as_node(p)
        if outside(n, key):
            return NULL
        i = slot_of(key, n.clev)
        c = n.child[i]
        if c == 0:
            return NULL
        if not is_leaf(c):
            parent_slot = &n.child[i]
            p = c
            continue
        item = leaf_item(c)
        if item[0] != key:
            return NULL
        n.child[i] = 0
        n.popmap &= <uint16_t>~(1 << i)
        t.count -= 1
        if __builtin_popcount(n.popmap) == 1:
            # a node with one child is not needed: splice the child up
            parent_slot[0] = n.child[__builtin_ctz(n.popmap)]
            node_free(n, kc)
            t.nnodes -= 1
        return item


cdef void reclaim_node(uint64_t p, kmem_cache_t* kc) noexcept nogil:
    cdef pctrie_node_t* n
    cdef int i
    if p == 0 or is_leaf(p):
        return
    n = as_node(p)
    for i in range(PCTRIE_COUNT):
        reclaim_node(n.child[i], kc)
    node_free(n, kc)

cdef void pctrie_reclaim(pctrie_t* t, kmem_cache_t* kc) noexcept nogil:
    reclaim_node(t.root, kc)
    pctrie_init(t)


cdef int check_node(uint64_t p, int64_t* leaves, int64_t* nodes, const char** why) noexcept nogil:
    cdef pctrie_node_t* n
    cdef pctrie_node_t* cn
    cdef uint64_t c, ckey
    cdef int i
    if is_leaf(p):
        leaves[0] += 1
        return 0
    n = as_node(p)
    nodes[0] += 1
    if __builtin_popcount(n.popmap) < 2:
        why[0] = "pctrie node with fewer than two children"
        return -1
    for i in range(PCTRIE_COUNT):
        c = n.child[i]
        if (c != 0) != ((n.popmap >> i) & 1):
            why[0] = "pctrie popmap disagrees with the children"
            return -1
        if c == 0:
            continue
        if is_leaf(c):
            ckey = leaf_item(c)[0]
        else:
            cn = as_node(c)
            if cn.clev >= n.clev:
                why[0] = "pctrie child node does not branch below its parent"
                return -1
            ckey = cn.owner
        if outside(n, ckey) or slot_of(ckey, n.clev) != i:
            why[0] = "pctrie key stored under the wrong prefix or slot"
            return -1
        if check_node(c, leaves, nodes, why) != 0:
            return -1
    return 0

cdef int pctrie_check(pctrie_t* t, const char** why) noexcept nogil:
    cdef int64_t leaves = 0, nodes = 0
    if t.root != 0 and check_node(t.root, &leaves, &nodes, why) != 0:
        return -1
    if leaves != t.count or nodes != t.nnodes:
        why[0] = "pctrie leaf or node count is wrong"
        return -1
    if t.hint != NULL and not hint_in_trie(t):
        why[0] = "pctrie lookup hint is not a node of the trie"
        return -1
    return 0

cdef bint hint_in_trie(pctrie_t* t) noexcept nogil:
    """The hint is reached from the root along its own prefix."""
    cdef uint64_t p = t.root
    cdef pctrie_node_t* n
    while p != 0 and not is_leaf(p):
        n = as_node(p)
        if n == t.hint:
            return True
        if outside(n, t.hint.owner) or n.clev <= t.hint.clev:
            return False
        p = n.child[slot_of(t.hint.owner, n.clev)]
    return False


# ------------------------------------------------------- a handle for tests
from libc.stdlib cimport calloc
from libc.string cimport memset

cdef class PctrieHandle:
    """A pctrie of plain keys, for testing the block from Python.

    Each key lives in its own 8-byte item (the trie stores item addresses)."""
    cdef pctrie_t t
    cdef kmem_cache_t kc
    cdef dict items                    # key -> item address (keeps them alive)

    def __cinit__(self):
        pctrie_init(&self.t)
        memset(&self.kc, 0, sizeof(kmem_cache_t))
        self.items = {}

    def __dealloc__(self):
        pctrie_reclaim(&self.t, &self.kc)
        for addr in self.items.values():
            free(<void*><size_t>addr)

    def insert(self, uint64_t key):
        """True when added, False when the key was present."""
        cdef uint64_t* item = <uint64_t*>malloc(sizeof(uint64_t))
        cdef int st
        if item == NULL:
            raise MemoryError()
        item[0] = key
        st = pctrie_insert(&self.t, item, &self.kc)
        if st != 0:
            free(item)
            if st == -1:
                raise MemoryError()
            return False
        self.items[key] = <size_t>item
        return True

    def remove(self, uint64_t key):
        cdef uint64_t* item = pctrie_remove(&self.t, key, &self.kc)
        if item == NULL:
            return False
        del self.items[key]
        free(item)
        return True

    def lookup(self, uint64_t key):
        return pctrie_lookup(&self.t, key) != NULL

    def lookup_ge(self, uint64_t key):
        cdef uint64_t* item = pctrie_lookup_ge(&self.t, key)
        return None if item == NULL else int(item[0])

    def check(self):
        cdef const char* why = NULL
        if pctrie_check(&self.t, &why) != 0:
            raise AssertionError(why.decode())
        if self.kc.active != self.t.nnodes:
            raise AssertionError("node accounting disagrees with the trie")

    @property
    def count(self):
        return int(self.t.count)

    @property
    def nodes(self):
        return int(self.t.nnodes)
