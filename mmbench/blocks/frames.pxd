# Frame allocator with per-frame descriptors (a struct page, reduced to what
# the models read).  Frames of every memory node live in one pfn space:
# host RAM is pfn [0, ram_pages), device d is
# [node_base[d], node_base[d] + device_pages).  Free frames are kept on a
# per-node LIFO free list, never-used frames come from a bump pointer, so
# creating a machine with millions of frames costs nothing until they are used
# (the descriptor array is calloc'd and stays untouched).
#
# The descriptor is the *simulator's* state; the bytes a design reports for
# its frame metadata (struct page 64 B, vm_page 104 B …) are accounted by the
# design through its slab caches, not by sizeof(frame_t).

from libc.stdint cimport int64_t, uint64_t, uint32_t, int32_t

ctypedef uint32_t pfn_t

cdef enum:
    NO_PFN = 0xFFFFFFFF
    ZERO_PFN = 0xFFFFFFFE        # the shared zero page: never allocated, reads as 0
    MAX_NODES = 17               # host + up to 16 accelerators

# frame flag bits (design-neutral meanings; designs may use FR_DESIGN0..3 freely)
cdef enum:
    FR_ANON_EXCLUSIVE = 1 << 0   # PageAnonExclusive: only one mapper may own it
    FR_DEVICE_PRIVATE = 1 << 1   # frame is device memory mapped as device-private
    FR_PAGECACHE = 1 << 2        # frame belongs to a page cache / object
    FR_DESIGN0 = 1 << 8
    FR_DESIGN1 = 1 << 9
    FR_DESIGN2 = 1 << 10
    FR_DESIGN3 = 1 << 11

ctypedef struct frame_t:
    uint64_t value        # the 64-bit token the simulated page holds
    uint64_t owner        # design-defined: anon_vma*, vm_object*, inode* … (mapping)
    uint64_t index        # design-defined: folio->index / pindex / page-cache index
    int32_t refcount
    int32_t mapcount      # number of PTEs mapping it
    uint32_t flags
    uint32_t aux          # design-defined (e.g. owning device page-table handle)

ctypedef struct frames_t:
    frame_t* f                    # descriptors for every pfn of every node
    pfn_t* freelist               # LIFO stack per node, stored at node_base offsets
    int64_t nr_nodes
    int64_t node_base[MAX_NODES]
    int64_t node_size[MAX_NODES]
    int64_t node_bump[MAX_NODES]  # frames below base+bump were used at least once
    int64_t node_nfree[MAX_NODES] # entries on the free list
    int64_t node_used[MAX_NODES]  # frames allocated now

cdef int frames_init(frames_t* fr, int64_t ram_pages, int64_t ndevices, int64_t device_pages) except -1
cdef void frames_destroy(frames_t* fr) noexcept nogil

cdef inline int64_t frames_free_count(frames_t* fr, int node) noexcept nogil:
    return fr.node_size[node] - fr.node_used[node]

cdef inline pfn_t frame_alloc(frames_t* fr, int node) noexcept nogil:
    """Take a frame of `node` (refcount 1, mapcount 0, value 0); NO_PFN when the node is full."""
    cdef pfn_t pfn
    cdef frame_t* d
    if fr.node_nfree[node] > 0:
        fr.node_nfree[node] -= 1
        pfn = fr.freelist[fr.node_base[node] + fr.node_nfree[node]]
    elif fr.node_bump[node] < fr.node_size[node]:
        pfn = <pfn_t>(fr.node_base[node] + fr.node_bump[node])
        fr.node_bump[node] += 1
    else:
        return NO_PFN
    fr.node_used[node] += 1
    d = &fr.f[pfn]
    d.value = 0
    d.owner = 0
    d.index = 0
    d.refcount = 1
    d.mapcount = 0
    d.flags = 0
    d.aux = 0
    return pfn

cdef inline pfn_t frame_alloc_contig(frames_t* fr, int node, int64_t nr) noexcept nogil:
    """Take `nr` (a power of two) contiguous frames whose first pfn is a multiple of
    `nr`, each set up as frame_alloc does; the first pfn, or NO_PFN.  Only never-used
    frames qualify (the bump region): this block keeps single frames on its free
    list and never coalesces them, so a freed run is not found again as one.
    Frames skipped to reach the alignment go to the free list."""
    cdef int64_t start = fr.node_base[node] + fr.node_bump[node]
    cdef int64_t first = (start + nr - 1) & ~(nr - 1)
    cdef int64_t p
    cdef frame_t* d
    if first + nr > fr.node_base[node] + fr.node_size[node]:
        return NO_PFN
    for p in range(start, first):
        fr.freelist[fr.node_base[node] + fr.node_nfree[node]] = <pfn_t>p
        fr.node_nfree[node] += 1
    fr.node_bump[node] = first + nr - fr.node_base[node]
    fr.node_used[node] += nr
    for p in range(first, first + nr):
        d = &fr.f[p]
        d.value = 0
        d.owner = 0
        d.index = 0
        d.refcount = 1
        d.mapcount = 0
        d.flags = 0
        d.aux = 0
    return <pfn_t>first

cdef inline int frame_node(frames_t* fr, pfn_t pfn) noexcept nogil:
    cdef int n = 0
    while n + 1 < fr.nr_nodes and <int64_t>pfn >= fr.node_base[n + 1]:
        n += 1
    return n

cdef inline void frame_free(frames_t* fr, pfn_t pfn) noexcept nogil:
    """Return a frame to its node's free list (caller dropped the last reference)."""
    cdef int node = frame_node(fr, pfn)
    fr.f[pfn].refcount = 0
    fr.f[pfn].mapcount = 0
    fr.f[pfn].flags = 0
    fr.freelist[fr.node_base[node] + fr.node_nfree[node]] = pfn
    fr.node_nfree[node] += 1
    fr.node_used[node] -= 1

cdef inline frame_t* frame_of(frames_t* fr, pfn_t pfn) noexcept nogil:
    return &fr.f[pfn]

cdef inline uint64_t frame_value(frames_t* fr, pfn_t pfn) noexcept nogil:
    if pfn == ZERO_PFN:
        return 0
    return fr.f[pfn].value
