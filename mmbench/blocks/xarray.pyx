# Implementation of the 64-ary xarray; see xarray.pxd.
from libc.stdlib cimport calloc, free
from libc.stdint cimport uint64_t, int64_t

cdef inline uint64_t node_span(xa_node_t* n) noexcept nogil:
    # indices covered by the whole node
    return (<uint64_t>1) << (n.shift + XA_CHUNK_SHIFT) if n.shift + XA_CHUNK_SHIFT < 64 else 0

cdef inline uint64_t max_index(xarray_t* xa) noexcept nogil:
    if xa.root == NULL:
        return 0
    if xa.root.shift + XA_CHUNK_SHIFT >= 64:
        return <uint64_t>0xFFFFFFFFFFFFFFFF
    return ((<uint64_t>1) << (xa.root.shift + XA_CHUNK_SHIFT)) - 1

cdef xa_node_t* node_new(xarray_t* xa, int shift, xa_node_t* parent, int offset) noexcept nogil:
    cdef xa_node_t* n = <xa_node_t*>calloc(1, sizeof(xa_node_t))
    if n == NULL:
        return NULL
    n.shift = shift
    n.parent = parent
    n.offset = offset
    xa.nr_nodes += 1
    xa.node_allocs += 1
    return n

cdef void node_free(xarray_t* xa, xa_node_t* n) noexcept nogil:
    if n == xa.hint:
        xa.hint = NULL
    xa.nr_nodes -= 1
    xa.node_frees += 1
    free(n)

cdef void xa_init(xarray_t* xa) noexcept nogil:
    xa.root = NULL
    xa.nr_nodes = 0
    xa.nr_entries = 0
    xa.node_allocs = 0
    xa.node_frees = 0
    xa.hint = NULL

cdef void destroy_node(xarray_t* xa, xa_node_t* n) noexcept nogil:
    cdef int i
    if n.shift > 0:
        for i in range(XA_CHUNK_SIZE):
            if n.slots[i] != 0:
                destroy_node(xa, <xa_node_t*><size_t>n.slots[i])
    node_free(xa, n)

cdef void xa_destroy(xarray_t* xa) noexcept nogil:
    if xa.root != NULL:
        destroy_node(xa, xa.root)
    xa.root = NULL
    xa.hint = NULL
    xa.nr_entries = 0

cdef void prune(xarray_t* xa, xa_node_t* n) noexcept nogil:
    # free empty nodes upwards, then shrink the root while it has one child at slot 0
    cdef xa_node_t* parent
    cdef xa_node_t* child
    while n != NULL and n.count == 0:
        parent = n.parent
        if parent == NULL:
            xa.root = NULL
        else:
            parent.slots[n.offset] = 0
            parent.count -= 1
        node_free(xa, n)
        n = parent
    while xa.root != NULL and xa.root.shift > 0 and xa.root.count == 1 and xa.root.slots[0] != 0:
        child = <xa_node_t*><size_t>xa.root.slots[0]
        node_free(xa, xa.root)
        child.parent = NULL
        xa.root = child

cdef uint64_t* xa_walk(xarray_t* xa, uint64_t index, bint alloc) noexcept nogil:
    cdef xa_node_t* n
    cdef xa_node_t* child
    cdef xa_node_t* top
    cdef int off
    if xa.hint != NULL and (index >> XA_CHUNK_SHIFT) == xa.hint_base:
        return &xa.hint.slots[index & (XA_CHUNK_SIZE - 1)]
    if xa.root == NULL:
        if not alloc:
            return NULL
        xa.root = node_new(xa, 0, NULL, 0)
        if xa.root == NULL:
            return NULL
    while index > max_index(xa):
        if not alloc:
            return NULL
        # grow: a new root above the old one
        top = node_new(xa, xa.root.shift + XA_CHUNK_SHIFT, NULL, 0)
        if top == NULL:
            return NULL
        if xa.root.count > 0:
            top.slots[0] = <uint64_t><size_t>xa.root
            top.count = 1
            xa.root.parent = top
            xa.root.offset = 0
        else:
            node_free(xa, xa.root)
        xa.root = top
    n = xa.root
    while n.shift > 0:
        off = <int>((index >> n.shift) & (XA_CHUNK_SIZE - 1))
        child = <xa_node_t*><size_t>n.slots[off]
        if child == NULL:
            if not alloc:
                return NULL
            child = node_new(xa, n.shift - XA_CHUNK_SHIFT, n, off)
            if child == NULL:
                prune(xa, n)     # free the part of the path made by this call
                return NULL
            n.slots[off] = <uint64_t><size_t>child
            n.count += 1
        n = child
    xa.hint = n
    xa.hint_base = index >> XA_CHUNK_SHIFT
    return &n.slots[index & (XA_CHUNK_SIZE - 1)]

cdef uint64_t xa_load(xarray_t* xa, uint64_t index) noexcept nogil:
    cdef uint64_t* s = xa_walk(xa, index, False)
    return s[0] if s != NULL else 0

cdef uint64_t* xa_slot(xarray_t* xa, uint64_t index) noexcept nogil:
    return xa_walk(xa, index, True)

cdef uint64_t* xa_load_slot(xarray_t* xa, uint64_t index) noexcept nogil:
    return xa_walk(xa, index, False)

cdef inline xa_node_t* leaf_of(uint64_t* slot, uint64_t index) noexcept nogil:
    return <xa_node_t*>(<char*>(slot - (index & (XA_CHUNK_SIZE - 1))) - 0)

cdef int xa_store(xarray_t* xa, uint64_t index, uint64_t entry) noexcept nogil:
    cdef uint64_t* s = xa_walk(xa, index, True)
    cdef xa_node_t* leaf
    if s == NULL:
        if xa.root != NULL:
            prune(xa, xa.root)   # undo a grown but still empty root
        return -1
    leaf = leaf_of(s, index)
    if s[0] == 0:
        leaf.count += 1
        xa.nr_entries += 1
    s[0] = entry
    if entry == 0:      # storing 0 erases
        leaf.count -= 1
        xa.nr_entries -= 1
        prune(xa, leaf)
    return 0

cdef uint64_t xa_erase(xarray_t* xa, uint64_t index) noexcept nogil:
    cdef uint64_t* s = xa_walk(xa, index, False)
    cdef uint64_t old
    cdef xa_node_t* leaf
    if s == NULL or s[0] == 0:
        return 0
    old = s[0]
    s[0] = 0
    leaf = leaf_of(s, index)
    leaf.count -= 1
    xa.nr_entries -= 1
    prune(xa, leaf)
    return old

cdef uint64_t* find_in(xa_node_t* n, uint64_t base, uint64_t start, uint64_t last,
                       uint64_t* index_out) noexcept nogil:
    cdef int i, i0
    cdef uint64_t step = (<uint64_t>1) << n.shift
    cdef uint64_t lo
    cdef uint64_t* s
    if start > base:
        i0 = <int>((start - base) >> n.shift)
    else:
        i0 = 0
    for i in range(i0, XA_CHUNK_SIZE):
        lo = base + <uint64_t>i * step
        if lo > last:
            return NULL
        if n.slots[i] == 0:
            continue
        if n.shift == 0:
            index_out[0] = lo
            return &n.slots[i]
        s = find_in(<xa_node_t*><size_t>n.slots[i], lo, start, last, index_out)
        if s != NULL:
            return s
    return NULL

cdef uint64_t* xa_find_slot(xarray_t* xa, uint64_t start, uint64_t last, uint64_t* index_out) noexcept nogil:
    if xa.root == NULL or start > max_index(xa) or start > last:
        return NULL
    return find_in(xa.root, 0, start, last, index_out)

cdef uint64_t xa_find(xarray_t* xa, uint64_t start, uint64_t last, uint64_t* index_out) noexcept nogil:
    cdef uint64_t* s = xa_find_slot(xa, start, last, index_out)
    return s[0] if s != NULL else 0

cdef xa_node_t* clone_node(xarray_t* dst, xa_node_t* s, xa_node_t* parent) noexcept nogil:
    cdef xa_node_t* n = node_new(dst, s.shift, parent, s.offset)
    cdef xa_node_t* c
    cdef int i
    if n == NULL:
        return NULL
    n.count = s.count
    if s.shift == 0:
        for i in range(XA_CHUNK_SIZE):
            n.slots[i] = s.slots[i]
        return n
    for i in range(XA_CHUNK_SIZE):
        if s.slots[i] != 0:
            c = clone_node(dst, <xa_node_t*><size_t>s.slots[i], n)
            if c == NULL:
                destroy_node(dst, n)     # frees the children cloned so far
                return NULL
            n.slots[i] = <uint64_t><size_t>c
    return n

cdef int xa_clone(xarray_t* dst, xarray_t* src) noexcept nogil:
    if src.root == NULL:
        return 0
    dst.root = clone_node(dst, src.root, NULL)
    if dst.root == NULL:
        return -1
    dst.nr_entries = src.nr_entries
    return 0

cdef bint xa_hint_ok(xarray_t* xa) noexcept nogil:
    cdef xa_node_t* n = xa.root
    cdef uint64_t index = xa.hint_base << XA_CHUNK_SHIFT
    if xa.hint == NULL:
        return True
    if n == NULL or index > max_index(xa) or (index >> XA_CHUNK_SHIFT) != xa.hint_base:
        return False
    while n != NULL and n.shift > 0:
        n = <xa_node_t*><size_t>n.slots[(index >> n.shift) & (XA_CHUNK_SIZE - 1)]
    return n == xa.hint
