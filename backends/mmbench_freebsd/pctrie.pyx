# Implementation of the path-compressed 16-ary trie and its node zone; see pctrie.pxd.
from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memset
from libc.stdint cimport uint64_t, int64_t, uint32_t, uint16_t, uint8_t
from mmbench.blocks.handles cimport handles_live

cdef extern from *:
    int __builtin_clzll(unsigned long long) nogil
    int __builtin_ctzll(unsigned long long) nogil
    int __builtin_ctz(unsigned int) nogil
    int __builtin_popcount(unsigned int) nogil

# ------------------------------------------------------------------ the zone
cdef inline pctrie_node_t* zone_node(pctrie_zone_t* z, uint32_t num) noexcept nogil:
    return chunk_node(z.chunk, num)


cdef int pctrie_zone_init(pctrie_zone_t* z, int64_t cap) noexcept nogil:
    if cap > (<int64_t>1 << PCTRIE_NUM_BITS):
        cap = <int64_t>1 << PCTRIE_NUM_BITS
    z.chunk = NULL
    z.cap = 0
    z.bump = 1                     # number 0 is no node: the word 0 is the empty child
    z.free = 0
    z.live = 0
    if cap < 2:
        return 0
    z.chunk = <pctrie_node_t**>calloc((cap + PCTRIE_CHUNK - 1) >> PCTRIE_CHUNK_SHIFT,
                                      sizeof(pctrie_node_t*))
    if z.chunk == NULL:
        return -1
    z.cap = cap
    return 0

cdef void pctrie_zone_destroy(pctrie_zone_t* z) noexcept nogil:
    cdef int64_t c
    if z.chunk != NULL:
        for c in range((z.bump + PCTRIE_CHUNK - 1) >> PCTRIE_CHUNK_SHIFT):
            free(z.chunk[c])
        free(z.chunk)
    pctrie_zone_init(z, 0)


cdef pctrie_node_t* zone_take(pctrie_zone_t* z) noexcept nogil:
    """A node: the number given back last, else the next never handed out (its
    chunk taken from malloc when it is the chunk's first); NULL when every
    number is in use or the host has no memory."""
    cdef pctrie_node_t* n
    cdef int64_t c = z.bump >> PCTRIE_CHUNK_SHIFT
    if z.free != 0:
        n = zone_node(z, z.free)
        z.free = n.child[0]
    else:
        if z.bump >= z.cap:
            return NULL
        if z.chunk[c] == NULL:
            z.chunk[c] = <pctrie_node_t*>malloc(PCTRIE_CHUNK * sizeof(pctrie_node_t))
            if z.chunk[c] == NULL:
                return NULL
        n = zone_node(z, <uint32_t>z.bump)
        n.num = <uint32_t>z.bump
        z.bump += 1
    z.live += 1
    return n

cdef void zone_give(pctrie_zone_t* z, pctrie_node_t* n) noexcept nogil:
    """Give a node's number back (its memory stays the zone's)."""
    n.popmap = 0
    n.child[0] = z.free
    z.free = n.num
    z.live -= 1


cdef int pctrie_zone_check(pctrie_zone_t* z, int64_t nodes, const char** why) noexcept nogil:
    cdef int64_t nfree = 0
    cdef uint32_t f = z.free
    if z.bump < 1 or (z.cap > 0 and z.bump > z.cap):
        why[0] = "pctrie zone: numbers handed out beyond its cap"
        return -1
    while f != 0:
        if f >= z.bump or nfree >= z.bump:
            why[0] = "pctrie zone: free chain leaves the numbers handed out, or loops"
            return -1
        if zone_node(z, f).popmap != 0 or zone_node(z, f).num != f:
            why[0] = "pctrie zone: a free node has children, or is not its number's"
            return -1
        nfree += 1
        f = zone_node(z, f).child[0]
    if z.live + nfree != z.bump - 1:
        why[0] = "pctrie zone: live and free nodes are not every number handed out"
        return -1
    if nodes != z.live:
        why[0] = "pctrie zone: live nodes != the nodes of its tries"
        return -1
    return 0


# ------------------------------------------------------------------ the types
cdef void type_common(pctrie_type_t* ty, pctrie_zone_t* z) noexcept nogil:
    memset(ty, 0, sizeof(pctrie_type_t))
    ty.chunk = z.chunk
    ty.zone = z

cdef void pctrie_type_array(pctrie_type_t* ty, pctrie_zone_t* z, uint64_t* first,
                            size_t stride, int64_t nitems) noexcept nogil:
    cdef uint64_t odd
    cdef int i
    type_common(ty, z)
    ty.base = <char*>first
    ty.stride = stride
    ty.nitems = nitems
    ty.shift = __builtin_ctzll(stride)
    odd = stride >> ty.shift
    ty.inv = odd                   # odd * odd = 1 mod 8; each step doubles the bits
    for i in range(5):             # that are right (Newton): 3 -> 96 >= 64
        ty.inv *= 2 - odd * ty.inv

cdef void pctrie_type_table(pctrie_type_t* ty, pctrie_zone_t* z, handles_t* tab,
                            int64_t keyoff, int64_t numoff) noexcept nogil:
    type_common(ty, z)
    ty.tab = tab
    ty.keyoff = keyoff
    ty.numoff = numoff


# ------------------------------------------------------------------ nodes
cdef inline int split_level(uint64_t a, uint64_t b) noexcept nogil:
    """Highest nibble where two different keys differ."""
    return (63 - __builtin_clzll(a ^ b)) // PCTRIE_WIDTH


cdef pctrie_node_t* node_new(pctrie_type_t* ty, uint64_t key, int clev, kmem_cache_t* kc) noexcept nogil:
    cdef pctrie_node_t* n = zone_take(ty.zone)
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

cdef inline void node_free(pctrie_type_t* ty, pctrie_node_t* n, kmem_cache_t* kc) noexcept nogil:
    zone_give(ty.zone, n)
    kc.active -= 1
    kc.frees += 1

cdef inline uint64_t* leftmost(pctrie_type_t* ty, pctrie_word_t p) noexcept nogil:
    cdef pctrie_node_t* n
    while not is_leaf(p):
        n = as_node(ty, p)
        p = n.child[__builtin_ctz(n.popmap)]
    return leaf_item(ty, p)


# ------------------------------------------------------------------ lookups
cdef inline pctrie_node_t* lookup_step(pctrie_type_t* ty, pctrie_word_t p, uint64_t key,
                                       uint64_t** found) noexcept nogil:
    """One level of a lookup's descent at p (not 0): the node to go down through,
    or NULL when the search ends here (*found: key's item if p is its leaf, else NULL)."""
    cdef pctrie_node_t* n
    cdef uint64_t* item
    found[0] = NULL
    if is_leaf(p):
        item = leaf_item(ty, p)
        if item[0] == key:
            found[0] = item
        return NULL
    n = as_node(ty, p)
    return NULL if outside(n, key) else n


cdef uint64_t* pctrie_lookup(pctrie_t* t, uint64_t key) noexcept nogil:
    cdef pctrie_word_t p = t.root
    cdef uint64_t* found
    cdef pctrie_node_t* n
    while p != 0:
        n = lookup_step(t.type, p, key, &found)
        if n == NULL:
            return found
        p = n.child[slot_of(key, n.clev)]
    return NULL


cdef uint64_t* pctrie_iter_lookup_walk(pctrie_t* t, uint64_t key, pctrie_iter_t* it) noexcept nogil:
    cdef pctrie_word_t p = t.root
    cdef uint64_t* found
    cdef pctrie_node_t* n
    cdef int i
    it.node = NULL
    if t.hint != NULL and not outside(t.hint, key):
        p = node_word(t.hint)
    while p != 0:
        n = lookup_step(t.type, p, key, &found)
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
    cdef pctrie_type_t* ty = t.type
    cdef pctrie_word_t p = t.root
    cdef pctrie_node_t* n
    cdef uint64_t* item
    cdef int i
    cdef unsigned int later
    while p != 0:
        if is_leaf(p):
            item = leaf_item(ty, p)
            if item[0] >= key:
                return item
            break
        n = as_node(ty, p)
        if outside(n, key):
            if n.owner > key:
                return leftmost(ty, p)
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
            return leftmost(ty, n.child[__builtin_ctz(later)])
    return NULL


# ------------------------------------------------------------------ updates
cdef int pctrie_insert(pctrie_t* t, uint64_t* item, kmem_cache_t* kc) noexcept nogil:
    cdef pctrie_type_t* ty = t.type
    cdef uint64_t key = item[0]
    cdef pctrie_word_t leaf = mk_leaf(ty, item)
    cdef pctrie_word_t* slot = &t.root
    cdef pctrie_word_t p
    cdef uint64_t other
    cdef pctrie_node_t* n
    cdef pctrie_node_t* fork = NULL
    cdef int i
    if leaf == 0:
        return -1
    if t.root == 0:
        t.root = leaf
        t.count += 1
        return 0
    while True:
        p = slot[0]
        if is_leaf(p):
            other = leaf_item(ty, p)[0]
            if other == key:
                return -2
            fork = node_new(ty, key, split_level(key, other), kc)
            if fork == NULL:
                return -1
            node_put(fork, other, p)
            break
        n = as_node(ty, p)
        if outside(n, key):
            fork = node_new(ty, key, split_level(key, n.owner), kc)
            if fork == NULL:
                return -1
            node_put(fork, n.owner, p)
            break
        i = slot_of(key, n.clev)
        if n.child[i] == 0:
            node_put(n, key, leaf)
            t.count += 1
            return 0
        slot = &n.child[i]
    node_put(fork, key, leaf)
    slot[0] = node_word(fork)
    t.nnodes += 1
    t.count += 1
    return 0


cdef uint64_t* pctrie_remove(pctrie_t* t, uint64_t key, kmem_cache_t* kc) noexcept nogil:
    cdef pctrie_type_t* ty = t.type
    cdef pctrie_word_t* parent_slot = &t.root
    cdef pctrie_word_t p = t.root
    cdef pctrie_word_t c
    cdef pctrie_node_t* n
    cdef uint64_t* item
    cdef int i
    t.hint = NULL                       # a node may go
    if p == 0:
        return NULL
    if is_leaf(p):
        if leaf_item(ty, p)[0] != key:
            return NULL
        t.root = 0
        t.count -= 1
        return leaf_item(ty, p)
    while True:
        n = as_node(ty, p)
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
        item = leaf_item(ty, c)
        if item[0] != key:
            return NULL
        n.child[i] = 0
        n.popmap &= <uint16_t>~(1 << i)
        t.count -= 1
        if __builtin_popcount(n.popmap) == 1:
            # a node with one child is not needed: splice the child up
            parent_slot[0] = n.child[__builtin_ctz(n.popmap)]
            node_free(ty, n, kc)
            t.nnodes -= 1
        return item


cdef void reclaim_node(pctrie_type_t* ty, pctrie_word_t p, kmem_cache_t* kc) noexcept nogil:
    cdef pctrie_node_t* n
    cdef int i
    if p == 0 or is_leaf(p):
        return
    n = as_node(ty, p)
    for i in range(PCTRIE_COUNT):
        reclaim_node(ty, n.child[i], kc)
    node_free(ty, n, kc)

cdef void pctrie_reclaim(pctrie_t* t, kmem_cache_t* kc) noexcept nogil:
    reclaim_node(t.type, t.root, kc)
    pctrie_init(t, t.type)


# ------------------------------------------------------------------ invariants
cdef bint word_names_live(pctrie_type_t* ty, pctrie_word_t w) noexcept nogil:
    """A leaf names an item that exists and numbers back to it; a node word a
    number the zone handed out, whose node holds it (free ones have no
    children: pctrie_zone_check, check_node)."""
    cdef uint64_t n = w >> 1
    if not is_leaf(w):
        return 1 <= n < <uint64_t>ty.zone.bump and as_node(ty, w).num == n
    if ty.base != NULL:
        if n >= <uint64_t>ty.nitems:
            return False
    elif not handles_live(ty.tab, <int64_t>n):
        return False
    return mk_leaf(ty, leaf_item(ty, w)) == w


cdef int check_node(pctrie_type_t* ty, pctrie_word_t p, int64_t* leaves, int64_t* nodes,
                    const char** why) noexcept nogil:
    cdef pctrie_node_t* n
    cdef pctrie_node_t* cn
    cdef pctrie_word_t c
    cdef uint64_t ckey
    cdef int i
    if not word_names_live(ty, p):
        why[0] = "pctrie word names no live item (or does not number back) or no live node"
        return -1
    if is_leaf(p):
        leaves[0] += 1
        return 0
    n = as_node(ty, p)
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
        if check_node(ty, c, leaves, nodes, why) != 0:
            return -1
        if is_leaf(c):
            ckey = leaf_item(ty, c)[0]
        else:
            cn = as_node(ty, c)
            if cn.clev >= n.clev:
                why[0] = "pctrie child node does not branch below its parent"
                return -1
            ckey = cn.owner
        if outside(n, ckey) or slot_of(ckey, n.clev) != i:
            why[0] = "pctrie key stored under the wrong prefix or slot"
            return -1
    return 0

cdef int pctrie_check(pctrie_t* t, const char** why) noexcept nogil:
    cdef int64_t leaves = 0, nodes = 0
    if t.type == NULL or t.type.chunk != t.type.zone.chunk:
        why[0] = "pctrie without a type, or its type's nodes are not its zone's"
        return -1
    if t.root != 0 and check_node(t.type, t.root, &leaves, &nodes, why) != 0:
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
    cdef pctrie_word_t p = t.root
    cdef pctrie_node_t* n
    while p != 0 and not is_leaf(p):
        n = as_node(t.type, p)
        if n == t.hint:
            return True
        if outside(n, t.hint.owner) or n.clev <= t.hint.clev:
            return False
        p = n.child[slot_of(t.hint.owner, n.clev)]
    return False


# ------------------------------------------------------- a handle for tests
from mmbench.blocks.handles cimport handles_init, handles_destroy, handles_take, handles_put

ctypedef struct test_item_t:       # 24 bytes: a stride with an odd factor (3 << 3)
    uint64_t key
    uint32_t num                   # its number (numbered items)
    uint32_t pad
    uint64_t spare

cdef test_item_t _ti
cdef int64_t TI_NUMOFF = <int64_t>(<char*>&_ti.num - <char*>&_ti.key)


cdef class PctrieHandle:
    """A pctrie of plain keys, for testing the block from Python.

    Each key lives in its own test item.  numbered=False: the items are an
    array of `capacity` (item n is slot n); numbered=True: each is malloc'd
    and numbered in a handles table.  The zone has room for `zone_cap`
    nodes (default: one per item, which never runs out)."""
    cdef pctrie_zone_t zone
    cdef pctrie_type_t ty
    cdef pctrie_t t
    cdef kmem_cache_t kc
    cdef handles_t tab
    cdef test_item_t* array
    cdef list free_slots               # array: free item numbers
    cdef dict items                    # key -> item number

    def __cinit__(self, bint numbered=False, int64_t capacity=1 << 16, zone_cap=None):
        memset(&self.kc, 0, sizeof(kmem_cache_t))
        self.array = NULL
        handles_init(&self.tab, capacity)
        if pctrie_zone_init(&self.zone, capacity + 1 if zone_cap is None else zone_cap + 1) != 0:
            raise MemoryError()
        if numbered:
            pctrie_type_table(&self.ty, &self.zone, &self.tab, 0, TI_NUMOFF)
            self.free_slots = None
        else:
            self.array = <test_item_t*>calloc(capacity, sizeof(test_item_t))
            if self.array == NULL:
                raise MemoryError()
            pctrie_type_array(&self.ty, &self.zone, &self.array[0].key, sizeof(test_item_t), capacity)
            self.free_slots = list(range(capacity - 1, -1, -1))
        pctrie_init(&self.t, &self.ty)
        self.items = {}

    def __dealloc__(self):
        if self.t.type != NULL:
            pctrie_reclaim(&self.t, &self.kc)
        if self.array == NULL:
            for num in self.items.values():
                free(self._item(num))
        free(self.array)
        handles_destroy(&self.tab)
        pctrie_zone_destroy(&self.zone)

    cdef test_item_t* _item(self, int64_t num):
        if self.array != NULL:
            return &self.array[num]
        return <test_item_t*>self.tab.slot[num]

    cdef int64_t _new_item(self, uint64_t key) except -1:
        cdef test_item_t* it
        cdef int64_t num
        if self.array != NULL:
            if not self.free_slots:
                raise MemoryError()
            num = self.free_slots.pop()
        else:
            it = <test_item_t*>malloc(sizeof(test_item_t))
            num = handles_take(&self.tab, it) if it != NULL else -1
            if num < 0:
                free(it)
                raise MemoryError()
            it.num = <uint32_t>num
        self._item(num).key = key
        return num

    cdef void _drop_item(self, int64_t num):
        if self.array != NULL:
            self.free_slots.append(num)
        else:
            free(self._item(num))
            handles_put(&self.tab, num)

    def insert(self, uint64_t key):
        """True when added, False when the key was present."""
        cdef int64_t num = self._new_item(key)
        cdef int st = pctrie_insert(&self.t, &self._item(num).key, &self.kc)
        if st != 0:
            self._drop_item(num)
            if st == -1:
                raise MemoryError()
            return False
        self.items[key] = num
        return True

    def remove(self, uint64_t key):
        cdef uint64_t* item = pctrie_remove(&self.t, key, &self.kc)
        if item == NULL:
            return False
        self._drop_item(self.items.pop(key))
        return True

    def lookup(self, uint64_t key):
        return pctrie_lookup(&self.t, key) != NULL

    def lookup_ge(self, uint64_t key):
        cdef uint64_t* item = pctrie_lookup_ge(&self.t, key)
        return None if item == NULL else int(item[0])

    def check(self):
        cdef const char* why = NULL
        if pctrie_check(&self.t, &why) != 0 or pctrie_zone_check(&self.zone, self.t.nnodes, &why) != 0:
            raise AssertionError(why.decode())
        if self.kc.active != self.t.nnodes:
            raise AssertionError("node accounting disagrees with the trie")

    @property
    def count(self):
        return int(self.t.count)

    @property
    def nodes(self):
        return int(self.t.nnodes)

    @property
    def zone_numbers(self):
        """Node numbers the zone handed out so far (live or given back)."""
        return int(self.zone.bump - 1)
