# Implementation of the treap-balanced interval tree; see itree.pxd.
from libc.stdint cimport uint64_t, int64_t, uint32_t

cdef inline uint64_t sub_last(itnode_t* n) noexcept nogil:
    cdef uint64_t m = n.last
    if n.left != NULL and n.left.subtree_last > m:
        m = n.left.subtree_last
    if n.right != NULL and n.right.subtree_last > m:
        m = n.right.subtree_last
    return m

cdef inline void fix_up(itnode_t* n) noexcept nogil:
    while n != NULL:
        n.subtree_last = sub_last(n)
        n = n.parent

cdef inline void replace_child(itree_t* t, itnode_t* parent, itnode_t* old, itnode_t* new) noexcept nogil:
    if parent == NULL:
        t.root = new
    elif parent.left == old:
        parent.left = new
    else:
        parent.right = new
    if new != NULL:
        new.parent = parent

cdef void rotate_up(itree_t* t, itnode_t* n) noexcept nogil:
    # rotate n above its parent p
    cdef itnode_t* p = n.parent
    cdef itnode_t* g = p.parent
    if p.left == n:
        p.left = n.right
        if n.right != NULL:
            n.right.parent = p
        n.right = p
    else:
        p.right = n.left
        if n.left != NULL:
            n.left.parent = p
        n.left = p
    p.parent = n
    replace_child(t, g, p, n)
    p.subtree_last = sub_last(p)
    n.subtree_last = sub_last(n)

cdef void itree_init(itree_t* t) noexcept nogil:
    t.root = NULL
    t.count = 0
    t.seed = 0x9E3779B9

cdef inline uint32_t next_prio(itree_t* t) noexcept nogil:
    # xorshift32: deterministic, so runs are repeatable
    cdef uint32_t x = t.seed
    x ^= x << 13
    x ^= x >> 17
    x ^= x << 5
    t.seed = x
    return x

cdef void itree_insert(itree_t* t, itnode_t* n) noexcept nogil:
    cdef itnode_t* cur = t.root
    cdef itnode_t* parent = NULL
    n.left = NULL
    n.right = NULL
    n.subtree_last = n.last
    n.prio = next_prio(t)
    while cur != NULL:
        parent = cur
        if n.last > cur.subtree_last:
            cur.subtree_last = n.last
        cur = cur.left if n.start < cur.start else cur.right
    n.parent = parent
    if parent == NULL:
        t.root = n
    elif n.start < parent.start:
        parent.left = n
    else:
        parent.right = n
    while n.parent != NULL and n.parent.prio < n.prio:
        rotate_up(t, n)
    t.count += 1

cdef void itree_remove(itree_t* t, itnode_t* n) noexcept nogil:
    cdef itnode_t* c
    cdef itnode_t* p
    # rotate n down until it has at most one child
    while n.left != NULL and n.right != NULL:
        c = n.left if n.left.prio > n.right.prio else n.right
        rotate_up(t, c)
    c = n.left if n.left != NULL else n.right
    p = n.parent
    replace_child(t, p, n, c)
    fix_up(p)
    n.left = n.right = n.parent = NULL
    t.count -= 1

cdef void itree_update(itree_t* t, itnode_t* n, uint64_t start, uint64_t last) noexcept nogil:
    cdef uint64_t m
    n.start = start
    n.last = last
    while n != NULL:            # an ancestor's subtree_last depends on n's only
        m = sub_last(n)
        if m == n.subtree_last:
            break
        n.subtree_last = m
        n = n.parent

cdef itnode_t* subtree_search(itnode_t* n, uint64_t start, uint64_t last) noexcept nogil:
    while True:
        if n.left != NULL and start <= n.left.subtree_last:
            n = n.left
            continue
        if n.start <= last:
            if start <= n.last:
                return n
            if n.right != NULL:
                n = n.right
                if start <= n.subtree_last:
                    continue
        return NULL

cdef itnode_t* itree_first(itree_t* t, uint64_t start, uint64_t last) noexcept nogil:
    if t.root == NULL or t.root.subtree_last < start:
        return NULL
    return subtree_search(t.root, start, last)

cdef itnode_t* itree_next(itnode_t* n, uint64_t start, uint64_t last) noexcept nogil:
    cdef itnode_t* r = n.right
    cdef itnode_t* prev
    while True:
        if r != NULL and start <= r.subtree_last:
            return subtree_search(r, start, last)
        # climb until we arrive from a left child
        while True:
            prev = n
            n = n.parent
            if n == NULL:
                return NULL
            if n.left == prev:
                break
        if last < n.start:
            return NULL
        if start <= n.last:
            return n
        r = n.right

cdef int64_t verify(itnode_t* n, itnode_t* parent, uint64_t lo, uint64_t hi, int64_t* bad) noexcept nogil:
    # every start in this subtree must lie in [lo, hi] (the order of all ancestors)
    cdef int64_t c = 0
    if n == NULL:
        return 0
    if n.parent != parent or n.start < lo or n.start > hi:
        bad[0] = 1
    if n.left != NULL and n.left.prio > n.prio:
        bad[0] = 1
    if n.right != NULL and n.right.prio > n.prio:
        bad[0] = 1
    if n.subtree_last != sub_last(n) or n.last < n.start:
        bad[0] = 1
    c = 1 + verify(n.left, n, lo, n.start, bad) + verify(n.right, n, n.start, hi, bad)
    return c

cdef int itree_verify(itree_t* t) noexcept nogil:
    cdef int64_t bad = 0
    cdef int64_t c = verify(t.root, NULL, 0, <uint64_t>0xFFFFFFFFFFFFFFFF, &bad)
    if bad or c != t.count:
        return -1
    return 0
