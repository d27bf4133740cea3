# mmbench_linux.maple — node occupancy of the VMA maple tree (see maple.pxd).
#
# The rules replayed (lib/maple_tree.c, the big-node write path):
#   * mas_wr_store_type: a store that stays inside one leaf rewrites it when the
#     result holds 7..16 slots (node store; count-neutral), splits it above 16
#     (wr_split_store) and rebalances it at 6 or fewer (wr_rebalance; not the root).
#     A NULL store absorbs the NULL slots around it (mas_wr_extend_null); a NULL
#     may not end a leaf unless it reaches ULONG_MAX, so such a store spans.
#   * mas_split: before splitting a full node, push into the left sibling, else the
#     right one (mas_push_data), when both fit in 2 * slots - 2 (- 1 for a leaf,
#     - 1 more for the node ending at ULONG_MAX); the pushed-into node keeps
#     slots - 2 + 1 entries.  Otherwise split at the middle (mab_calc_split; a
#     third node when the data needs it), never ending a leaf on a NULL
#     (mab_no_null_split), and insert the new node into the parent, upwards.
#   * mas_rebalance / mas_wr_spanning_store -> mas_spanning_rebalance: the left
#     leaf's head, the new range and the right leaf's tail are combined; nodes in
#     between are destroyed; a combination of `min_slots` or fewer pulls in the
#     next node at its level (or the previous one); the result is cut into one to
#     three nodes and the parents are combined the same way, level by level,
#     until one node holds the result; a root with one child gives way to it.
#   * __mt_dup copies the tree node for node.
# Not replayed: which nodes are freshly allocated for RCU (a node store replaces
# its node by a new one; the count is the same) and the exact slot offsets the
# kernel's helpers use off by one in rare corners; the leaf contents, hence
# every split decision, are the kernel's.

from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from libc.stdint cimport int64_t, uint64_t

cdef uint64_t MT_MAX = <uint64_t>0xFFFFFFFFFFFFFFFF


ctypedef struct big_t:             # struct maple_big_node
    uint64_t pivot[MT_BIG]
    void* slot[MT_BIG]
    int n


# ---------------------------------------------------------------- nodes
cdef inline int node_slots(bint leaf) noexcept nogil:
    return MAPLE_RANGE64_SLOTS if leaf else MAPLE_ARANGE64_SLOTS


cdef inline int node_min(bint leaf) noexcept nogil:
    return MT_MIN_LEAF if leaf else MT_MIN_ARANGE


cdef inline uint64_t slot_start(mt_node_t* n, int i) noexcept nogil:
    return n.min if i == 0 else n.pivot[i - 1] + 1


cdef int mt_reserve(maple_tree_t* mt, int64_t need) noexcept nogil:
    cdef mt_node_t* n
    while mt.nr_spare < need:
        n = <mt_node_t*>malloc(sizeof(mt_node_t))
        if n == NULL:
            return -1
        n.parent = mt.spare
        mt.spare = n
        mt.nr_spare += 1
    return 0


cdef void mt_trim(maple_tree_t* mt, int64_t keep) noexcept nogil:
    cdef mt_node_t* n
    while mt.nr_spare > keep:
        n = mt.spare
        mt.spare = n.parent
        mt.nr_spare -= 1
        free(n)


cdef mt_node_t* node_new(maple_tree_t* mt, bint leaf) noexcept nogil:
    """mas_pop_node: always succeeds after mt_reserve."""
    cdef mt_node_t* n = mt.spare
    mt.spare = n.parent
    mt.nr_spare -= 1
    n.parent = NULL
    n.nr = 0
    n.leaf = leaf
    mt.nr_nodes += 1
    return n


cdef void node_free(maple_tree_t* mt, mt_node_t* n) noexcept nogil:
    mt.nr_nodes -= 1
    if mt.nr_spare < 64:
        n.parent = mt.spare
        mt.spare = n
        mt.nr_spare += 1
    else:
        free(n)


cdef void subtree_free(maple_tree_t* mt, mt_node_t* n) noexcept nogil:
    cdef int i
    if not n.leaf:
        for i in range(n.nr):
            subtree_free(mt, <mt_node_t*>n.slot[i])
    node_free(mt, n)


cdef int pos_in_parent(mt_node_t* n) noexcept nogil:
    cdef mt_node_t* p = n.parent
    cdef int i
    for i in range(p.nr):
        if p.slot[i] == <void*>n:
            return i
    return -1


cdef void fill_node(mt_node_t* n, big_t* b, int a, int z, uint64_t mn) noexcept nogil:
    """mab_mas_cp: slots a..z of the big node become n's content, from index mn."""
    cdef int i
    n.nr = z - a + 1
    memcpy(n.pivot, &b.pivot[a], n.nr * sizeof(uint64_t))
    memcpy(n.slot, &b.slot[a], n.nr * sizeof(void*))
    n.min = mn
    n.max = b.pivot[z]
    if not n.leaf:
        for i in range(n.nr):
            (<mt_node_t*>n.slot[i]).parent = n


cdef inline void big_add(big_t* b, uint64_t piv, void* s) noexcept nogil:
    b.pivot[b.n] = piv
    b.slot[b.n] = s
    b.n += 1


cdef void big_copy(big_t* b, mt_node_t* n, int a, int z) noexcept nogil:
    """Append n's slots a..z-1."""
    cdef int i
    for i in range(a, z):
        big_add(b, n.pivot[i], n.slot[i])


cdef void big_splice(big_t* up, mt_node_t* pl, int il, mt_node_t** nodes, int k, mt_node_t* pr,
                     int ir) noexcept nogil:
    """up = pl's slots before il, then the k new nodes, then pr's slots after ir
    (the parent level once nodes replace pl.slot[il] .. pr.slot[ir])."""
    cdef int j
    up.n = 0
    big_copy(up, pl, 0, il)
    for j in range(k):
        big_add(up, nodes[j].max, nodes[j])
    big_copy(up, pr, ir + 1, pr.nr)


cdef mt_node_t* sibling_at_level(mt_node_t* n, bint right) noexcept nogil:
    """The node right of n (right) or left of it at its level (any parent), or NULL."""
    cdef int depth = 0, i
    cdef mt_node_t* p = n
    while p.parent != NULL:
        i = pos_in_parent(p)
        p = p.parent
        depth += 1
        if (i + 1 < p.nr) if right else (i > 0):
            p = <mt_node_t*>p.slot[i + 1 if right else i - 1]
            depth -= 1
            while depth > 0:
                p = <mt_node_t*>p.slot[0 if right else p.nr - 1]
                depth -= 1
            return p
    return NULL


cdef mt_node_t* next_at_level(mt_node_t* n) noexcept nogil:
    """The node right of n at its level (any parent), or NULL."""
    return sibling_at_level(n, True)


cdef mt_node_t* prev_at_level(mt_node_t* n) noexcept nogil:
    return sibling_at_level(n, False)


cdef mt_node_t* leaf_of(maple_tree_t* mt, uint64_t index, int* off) noexcept nogil:
    """Walk down to the leaf slot holding index."""
    cdef mt_node_t* n = mt.root
    cdef int i
    while True:
        i = 0
        while n.pivot[i] < index:
            i += 1
        if n.leaf:
            off[0] = i
            return n
        n = <mt_node_t*>n.slot[i]


# ---------------------------------------------------------------- split points
cdef int no_null_split(big_t* b, int split, int slots, bint leaf) noexcept nogil:
    """mab_no_null_split: a leaf may not end on a NULL slot."""
    if b.slot[split] == NULL:
        if split < slots - 1 and (b.n - 1 - split) > node_min(leaf):
            split += 1
        else:
            split -= 1
    return split


cdef int make_nodes(maple_tree_t* mt, big_t* b, bint leaf, uint64_t mn, mt_node_t** out) noexcept nogil:
    """mas_mab_to_node + mab_calc_split: cut the big node into 1..3 new nodes."""
    cdef int slots = node_slots(leaf), b_end = b.n - 1, split, mid = 0, k
    if b.n <= slots:
        out[0] = node_new(mt, leaf)
        fill_node(out[0], b, 0, b_end, mn)
        return 1
    split = b_end // 2
    if b_end >= 2 * slots or (b.slot[split] == NULL and b_end >= 2 * slots - 1):
        split = b_end // 3                   # the 3-way split
        mid = 2 * split
    split = no_null_split(b, split, slots, leaf)
    if mid:
        mid = no_null_split(b, mid, slots, leaf)
    out[0] = node_new(mt, leaf)
    fill_node(out[0], b, 0, split, mn)
    k = 1
    if mid:
        out[1] = node_new(mt, leaf)
        fill_node(out[1], b, split + 1, mid, b.pivot[split] + 1)
        split = mid
        k = 2
    out[k] = node_new(mt, leaf)
    fill_node(out[k], b, split + 1, b_end, b.pivot[split] + 1)
    return k + 1


cdef void new_root_above(maple_tree_t* mt, mt_node_t** nodes, int k) noexcept nogil:
    cdef mt_node_t* r = node_new(mt, False)
    cdef int i
    r.nr = k
    for i in range(k):
        r.slot[i] = nodes[i]
        r.pivot[i] = nodes[i].max
        nodes[i].parent = r
    r.min = nodes[0].min
    r.max = nodes[k - 1].max
    mt.root = r
    mt.height += 1


cdef void write_in_place(mt_node_t* n, big_t* b) noexcept nogil:
    """A node store: the node is rewritten (replaced under RCU: count-neutral)."""
    fill_node(n, b, 0, b.n - 1, n.min)


# ---------------------------------------------------------------- split (mas_split)
cdef bint push_data(maple_tree_t* mt, mt_node_t* n, big_t* b, bint left) noexcept nogil:
    """mas_push_data: share the overflow with a sibling of the same parent."""
    cdef mt_node_t* p = n.parent
    cdef int i = pos_in_parent(n), slots = node_slots(n.leaf), space, total, split, si
    cdef mt_node_t* sib
    cdef mt_node_t* a
    cdef mt_node_t* z
    cdef big_t c
    if left:
        if i == 0:
            return False
        si = i - 1
    else:
        if i + 1 >= p.nr:
            return False
        si = i + 1
    sib = <mt_node_t*>p.slot[si]
    total = (b.n - 1) + (sib.nr - 1)
    space = 2 * slots - 2
    if n.leaf:
        space -= 1
    if n.max == MT_MAX:
        space -= 1
    if total >= space:
        return False
    c.n = 0
    if left:
        big_copy(&c, sib, 0, sib.nr)
        memcpy(&c.pivot[c.n], b.pivot, b.n * sizeof(uint64_t))
        memcpy(&c.slot[c.n], b.slot, b.n * sizeof(void*))
        c.n += b.n
        split = slots - 2
    else:
        memcpy(c.pivot, b.pivot, b.n * sizeof(uint64_t))
        memcpy(c.slot, b.slot, b.n * sizeof(void*))
        c.n = b.n
        big_copy(&c, sib, 0, sib.nr)
        split = total - (slots - 2)
    split = no_null_split(&c, split, slots, n.leaf)
    a = node_new(mt, n.leaf)
    z = node_new(mt, n.leaf)
    fill_node(a, &c, 0, split, sib.min if left else n.min)
    fill_node(z, &c, split + 1, c.n - 1, c.pivot[split] + 1)
    si = si if left else i                  # first of the two parent slots
    p.slot[si] = a
    p.pivot[si] = a.max
    p.slot[si + 1] = z
    p.pivot[si + 1] = z.max
    a.parent = p
    z.parent = p
    node_free(mt, sib)
    node_free(mt, n)
    return True


cdef void split_store(maple_tree_t* mt, mt_node_t* n, big_t* b) noexcept nogil:
    """mas_split: the node overflows; push, or split and carry one slot upwards."""
    cdef mt_node_t* nodes[3]
    cdef mt_node_t* p
    cdef big_t up
    cdef int k, i, j
    while True:
        if b.n <= node_slots(n.leaf):
            write_in_place(n, b)
            return
        if n.parent == NULL:
            k = make_nodes(mt, b, n.leaf, n.min, nodes)
            node_free(mt, n)
            new_root_above(mt, nodes, k)
            return
        if push_data(mt, n, b, True) or push_data(mt, n, b, False):
            return
        k = make_nodes(mt, b, n.leaf, n.min, nodes)
        p = n.parent
        i = pos_in_parent(n)
        big_splice(&up, p, i, nodes, k, p, i)
        node_free(mt, n)
        n = p
        memcpy(b, &up, sizeof(big_t))


# ---------------------------------------------------------------- spanning rebalance
cdef void free_above(maple_tree_t* mt, mt_node_t* n, int depth, int target, mt_node_t* l,
                     mt_node_t* r) noexcept nogil:
    """Free the old tree above level `target` (depth from the root); at that level
    l and r lose only themselves (their children were moved or freed)."""
    cdef int i
    if depth == target:
        if n == l or n == r:
            node_free(mt, n)
        else:
            subtree_free(mt, n)
        return
    for i in range(n.nr):
        free_above(mt, <mt_node_t*>n.slot[i], depth + 1, target, l, r)
    node_free(mt, n)


cdef void span_rebalance(maple_tree_t* mt, mt_node_t* l, mt_node_t* r, big_t* b) noexcept nogil:
    """mas_spanning_rebalance: the run of nodes l..r of one level is replaced by b."""
    cdef mt_node_t* nodes[3]
    cdef mt_node_t* pl
    cdef mt_node_t* pr
    cdef mt_node_t* nb
    cdef big_t up
    cdef int k, il, ir, j, lvl = 0
    cdef bint whole
    cdef uint64_t mn
    while True:
        whole = l.min == 0 and r.max == MT_MAX
        if whole and not l.leaf and b.n == 1:
            # everything hangs below one node: it becomes the root
            nb = <mt_node_t*>b.slot[0]
            free_above(mt, mt.root, 0, mt.height - 1 - lvl, l, r)
            nb.parent = NULL
            mt.root = nb
            mt.height = lvl
            return
        if not whole and b.n <= node_min(l.leaf):
            # mast_spanning_rebalance: take in the next node of this level, else the previous
            # (the end given up keeps no slots: its content is in b, and it is freed
            # alone when the level above drops it)
            nb = next_at_level(r)
            if nb != NULL:
                big_copy(b, nb, 0, nb.nr)
                if r != l:
                    r.nr = 0
                r = nb
            else:
                nb = prev_at_level(l)
                memcpy(&up, b, sizeof(big_t))
                b.n = 0
                big_copy(b, nb, 0, nb.nr)
                memcpy(&b.pivot[b.n], up.pivot, up.n * sizeof(uint64_t))
                memcpy(&b.slot[b.n], up.slot, up.n * sizeof(void*))
                b.n += up.n
                if l != r:
                    l.nr = 0
                l = nb
        mn = l.min
        k = make_nodes(mt, b, l.leaf, mn, nodes)
        if l.parent == NULL:                 # l is the root (and r == l)
            node_free(mt, l)
            if k == 1:
                nodes[0].parent = NULL
                mt.root = nodes[0]
            else:
                new_root_above(mt, nodes, k)
            return
        pl = l.parent
        pr = r.parent
        il = pos_in_parent(l)
        ir = pos_in_parent(r)
        big_splice(&up, pl, il, nodes, k, pr, ir)
        if pl == pr:
            for j in range(il + 1, ir):
                subtree_free(mt, <mt_node_t*>pl.slot[j])
        else:
            for j in range(il + 1, pl.nr):
                subtree_free(mt, <mt_node_t*>pl.slot[j])
            for j in range(ir):
                subtree_free(mt, <mt_node_t*>pr.slot[j])
        node_free(mt, l)
        if r != l:
            node_free(mt, r)
        lvl += 1
        if pl == pr and up.n <= MAPLE_ARANGE64_SLOTS and (up.n > MT_MIN_ARANGE or pl.parent == NULL):
            if pl.parent == NULL and up.n == 1:
                nodes[0].parent = NULL
                mt.root = nodes[0]
                mt.height = lvl
                node_free(mt, pl)
                return
            write_in_place(pl, &up)
            return
        l = pl
        r = pr
        memcpy(b, &up, sizeof(big_t))


# ---------------------------------------------------------------- the store
cdef void mt_init(maple_tree_t* mt) noexcept nogil:
    mt.root = NULL
    mt.nr_nodes = 0
    mt.height = 0
    mt.spare = NULL
    mt.nr_spare = 0


cdef void mt_destroy(maple_tree_t* mt) noexcept nogil:
    cdef mt_node_t* n
    if mt.root != NULL:
        subtree_free(mt, mt.root)
        mt.root = NULL
    mt.height = 0
    while mt.spare != NULL:
        n = mt.spare
        mt.spare = n.parent
        free(n)
    mt.nr_spare = 0


cdef void set_single_root(maple_tree_t* mt, uint64_t index, uint64_t last, void* entry) noexcept nogil:
    """mas_root_expand / mas_new_root: one leaf holding [0, index) NULL, the entry, (last, MAX] NULL."""
    cdef mt_node_t* n = node_new(mt, True)
    n.min = 0
    n.max = MT_MAX
    if index > 0:
        n.pivot[n.nr] = index - 1
        n.slot[n.nr] = NULL
        n.nr += 1
    n.pivot[n.nr] = last
    n.slot[n.nr] = entry
    n.nr += 1
    if last != MT_MAX:
        n.pivot[n.nr] = MT_MAX
        n.slot[n.nr] = NULL
        n.nr += 1
    mt.root = n
    mt.height = 1


cdef int mt_store(maple_tree_t* mt, uint64_t index, uint64_t last, void* entry) noexcept nogil:
    cdef mt_node_t* l
    cdef mt_node_t* r
    cdef int oi, ri, cs
    cdef uint64_t s0
    cdef big_t b
    if mt_reserve(mt, 3 * mt.height + 8) != 0:
        return -1
    if mt.root == NULL:
        if entry != NULL:
            set_single_root(mt, index, last, entry)
        return 0
    l = leaf_of(mt, index, &oi)
    if entry == NULL:                        # mas_wr_extend_null, left side
        if l.slot[oi] == NULL:
            index = slot_start(l, oi)
        if index == slot_start(l, oi) and oi > 0 and l.slot[oi - 1] == NULL:
            oi -= 1
            index = slot_start(l, oi)
    r = leaf_of(mt, last, &ri)
    cs = ri if r.pivot[ri] > last else ri + 1
    if entry == NULL:                        # right side; a NULL may not end a leaf
        if cs == r.nr and r.max != MT_MAX:
            r = next_at_level(r)
            cs = 0
        if cs < r.nr and r.slot[cs] == NULL:
            last = r.pivot[cs]
            cs += 1
    if l == r and cs == oi + 1 and index == slot_start(l, oi) and last == l.pivot[oi]:
        l.slot[oi] = entry                   # wr_exact_fit: the slot is rewritten in place
        return 0
    if index == 0 and last == MT_MAX:        # wr_new_root
        subtree_free(mt, mt.root)
        mt.root = NULL
        mt.height = 0
        if entry != NULL:
            set_single_root(mt, 0, MT_MAX, entry)
        return 0
    # mas_store_b_node: head of l, the part of the slot before index, the entry,
    # the rest of r from the slot after last
    b.n = 0
    big_copy(&b, l, 0, oi)
    s0 = slot_start(l, oi)
    if s0 < index:
        big_add(&b, index - 1, l.slot[oi])
    big_add(&b, last, entry)
    big_copy(&b, r, cs, r.nr)
    if l != r:
        span_rebalance(mt, l, r, &b)         # wr_spanning_store
    elif b.n > MAPLE_RANGE64_SLOTS:
        split_store(mt, l, &b)               # wr_split_store
    elif b.n <= MT_MIN_LEAF and l.parent != NULL:
        # wr_rebalance (mas_rebalance): with the next sibling, else the previous one
        ri = pos_in_parent(l)
        if ri + 1 < l.parent.nr:
            r = <mt_node_t*>l.parent.slot[ri + 1]
            big_copy(&b, r, 0, r.nr)
            span_rebalance(mt, l, r, &b)
        else:
            r = <mt_node_t*>l.parent.slot[ri - 1]
            span_rebalance_prev(mt, r, l, &b)
    else:
        write_in_place(l, &b)                # exact fit, slot store, node store
    return 0


cdef void span_rebalance_prev(maple_tree_t* mt, mt_node_t* prev, mt_node_t* n, big_t* b) noexcept nogil:
    cdef big_t c
    c.n = 0
    big_copy(&c, prev, 0, prev.nr)
    memcpy(&c.pivot[c.n], b.pivot, b.n * sizeof(uint64_t))
    memcpy(&c.slot[c.n], b.slot, b.n * sizeof(void*))
    c.n += b.n
    span_rebalance(mt, prev, n, &c)


# ---------------------------------------------------------------- fork, checks
cdef mt_node_t* dup_node(maple_tree_t* dst, mt_node_t* s, mt_node_t* parent, void** entries,
                         int64_t* k) noexcept nogil:
    cdef mt_node_t* n = <mt_node_t*>malloc(sizeof(mt_node_t))
    cdef int i
    if n == NULL:
        return NULL
    dst.nr_nodes += 1
    memcpy(n, s, sizeof(mt_node_t))
    n.parent = parent
    for i in range(s.nr):
        if s.leaf:
            if s.slot[i] != NULL:
                n.slot[i] = entries[k[0]]
                k[0] += 1
        else:
            n.slot[i] = dup_node(dst, <mt_node_t*>s.slot[i], n, entries, k)
            if n.slot[i] == NULL:
                n.nr = i
                return NULL
    return n


cdef int mt_dup(maple_tree_t* dst, maple_tree_t* src, void** entries) noexcept nogil:
    cdef int64_t k = 0
    mt_destroy(dst)
    mt_init(dst)
    if src.root == NULL:
        return 0
    dst.root = dup_node(dst, src.root, NULL, entries, &k)
    dst.height = src.height
    if dst.root == NULL or dst.nr_nodes != src.nr_nodes:
        mt_destroy(dst)          # (a partial copy: free what was made)
        mt_init(dst)
        return -1
    return 0


cdef int validate_node(mt_node_t* n, int depth, int height, int64_t* count) noexcept nogil:
    cdef int i
    cdef mt_node_t* c
    count[0] += 1
    if n.nr < 1 or n.nr > node_slots(n.leaf) or n.pivot[n.nr - 1] != n.max:
        return 1
    if n.leaf != (depth == height - 1):
        return 2
    for i in range(n.nr):
        if i > 0 and n.pivot[i] <= n.pivot[i - 1]:
            return 3
        if n.leaf:
            if i > 0 and n.slot[i] == NULL and n.slot[i - 1] == NULL:
                return 4
        else:
            c = <mt_node_t*>n.slot[i]
            if c.parent != n or c.min != slot_start(n, i) or c.max != n.pivot[i]:
                return 5
            i = validate_node(c, depth + 1, height, count)      # (i is not used again)
            if i != 0:
                return i
    if n.leaf and n.slot[n.nr - 1] == NULL and n.max != MT_MAX:
        return 7
    if n.min > n.pivot[0]:
        return 8
    return 0


cdef int mt_validate(maple_tree_t* mt) noexcept nogil:
    """0, or: 1 bad slot count or max, 2 leaves at different depths, 3 pivots not
    increasing, 4 adjacent NULLs, 5 child bounds or parent link, 7 a leaf ending on
    NULL before ULONG_MAX, 8 bad min, 9 node count, 10 root bounds."""
    cdef int64_t count = 0
    cdef int st
    if mt.root == NULL:
        return 0 if mt.nr_nodes == 0 and mt.height == 0 else 9
    if mt.root.min != 0 or mt.root.max != MT_MAX or mt.root.parent != NULL:
        return 10
    st = validate_node(mt.root, 0, mt.height, &count)
    if st != 0:
        return st
    return 0 if count == mt.nr_nodes else 9


cdef int64_t collect(mt_node_t* n, void** ent, uint64_t* first, int64_t k, int64_t cap) noexcept nogil:
    cdef int i
    for i in range(n.nr):
        if n.leaf:
            if k >= cap:
                return -1
            ent[k] = n.slot[i]
            first[k] = slot_start(n, i)
            k += 1
        else:
            k = collect(<mt_node_t*>n.slot[i], ent, first, k, cap)
            if k < 0:
                return -1
    return k


cdef int64_t mt_slots_in_order(maple_tree_t* mt, void** ent, uint64_t* first, int64_t cap) noexcept nogil:
    if mt.root == NULL:
        return 0
    return collect(mt.root, ent, first, 0, cap)
