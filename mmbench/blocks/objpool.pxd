# objpool — fixed-size objects carved out of page-sized chunks (the simulator's
# own allocator, not a modelled kernel structure).
#
# A design that allocates one small record per simulated page (uvm's vm_anon)
# pays, with malloc, the allocator's per-chunk header and its minimum chunk
# (32 B for a 16-byte record) and a library call per fault.  A pool hands out
# records of one size from chunks of OBJPOOL_CHUNK bytes: a free record is
# pushed on an intrusive LIFO list (its first 8 bytes), a chunk is never given
# back before objpool_destroy.  What the kernel's allocator would charge is
# accounted separately, by the design's slab caches (kmem_cache_t); this block
# changes only what the simulator's own process uses.
#
# objpool_alloc returns a zero-filled record, as calloc did, or NULL when no
# chunk can be had.  Records are 8-byte aligned.
from libc.stdlib cimport malloc, free
from libc.string cimport memset
from libc.stdint cimport int64_t

cdef enum:
    OBJPOOL_CHUNK = 16384      # bytes per chunk, the chunk link included

ctypedef struct objpool_t:
    size_t objsize             # >= 8, multiple of 8
    void* freelist             # free records, linked through their first word
    void* chunks               # chunks, linked through their first word
    int64_t nlive              # records handed out and not freed
    int64_t nchunks

cdef inline void objpool_init(objpool_t* p, size_t objsize) noexcept nogil:
    p.objsize = (objsize + 7) & ~(<size_t>7)
    if p.objsize < 8:
        p.objsize = 8
    p.freelist = NULL
    p.chunks = NULL
    p.nlive = 0
    p.nchunks = 0

cdef inline int objpool_grow(objpool_t* p) noexcept nogil:
    cdef char* c = <char*>malloc(OBJPOOL_CHUNK)
    cdef size_t off = 8
    cdef void* head = p.freelist
    if c == NULL:
        return -1
    (<void**>c)[0] = p.chunks
    p.chunks = c
    p.nchunks += 1
    # thread the records so that the lowest address is handed out first
    off = 8 + ((OBJPOOL_CHUNK - 8) // p.objsize - 1) * p.objsize
    while off >= 8:
        (<void**>(c + off))[0] = head
        head = c + off
        if off < 8 + p.objsize:
            break
        off -= p.objsize
    p.freelist = head
    return 0

cdef inline void* objpool_alloc(objpool_t* p) noexcept nogil:
    cdef void* o
    if p.freelist == NULL and objpool_grow(p) != 0:
        return NULL
    o = p.freelist
    p.freelist = (<void**>o)[0]
    memset(o, 0, p.objsize)
    p.nlive += 1
    return o

cdef inline void objpool_free(objpool_t* p, void* o) noexcept nogil:
    (<void**>o)[0] = p.freelist
    p.freelist = o
    p.nlive -= 1

cdef inline void objpool_destroy(objpool_t* p) noexcept nogil:
    cdef void* c = p.chunks
    cdef void* nxt
    while c != NULL:
        nxt = (<void**>c)[0]
        free(c)
        c = nxt
    p.chunks = NULL
    p.freelist = NULL
    p.nlive = 0
    p.nchunks = 0
