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
#
# Folios.  Every frame_alloc makes an order-0 folio; frame_alloc_contig makes
# one large folio of `nr` frames (folio_order says its order for each of its
# frames).  The block counts the large folios and the frames in them per node,
# which is what a memory map of dynamically allocated folio descriptors
# (memmap="memdesc", mmbench.memmap) charges.  A large folio ends as the
# kernel's split_huge_page ends one: folio_split makes each of its frames an
# order-0 folio; frame_free of a frame of a large folio splits it first (the
# frame block frees frame by frame, so a partly freed large folio is a split
# one -- designs that keep a folio whole until its last page goes free its
# frames only then).

from libc.stdint cimport int64_t, uint64_t, uint32_t, int32_t, uint8_t

ctypedef uint32_t pfn_t

cdef enum:
    NO_PFN = 0xFFFFFFFF
    ZERO_PFN = 0xFFFFFFFE        # the shared zero page: never allocated, reads as 0
    MAX_NODES = 17               # host + up to 16 accelerators

# frame flag bits (design-neutral meanings; designs may use FR_DESIGN0..3 freely,
# and the 20-bit field above them: frame_field / frame_set_field)
cdef enum:
    FR_ANON_EXCLUSIVE = 1 << 0   # PageAnonExclusive: only one mapper may own it
    FR_DEVICE_PRIVATE = 1 << 1   # frame is device memory mapped as device-private
    FR_PAGECACHE = 1 << 2        # frame belongs to a page cache / object
    FR_DESIGN0 = 1 << 8
    FR_DESIGN1 = 1 << 9
    FR_DESIGN2 = 1 << 10
    FR_DESIGN3 = 1 << 11
    FR_FIELD_SHIFT = 12          # flags bits 12..31: a design-defined number (freebsd: the
    FR_FIELD_MAX = (1 << 20) - 1 # page's reservation number + 1), at most FR_FIELD_MAX

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
    uint8_t* order                # folio order of the large folio holding each pfn (0: order-0 folio)
    int64_t node_large_folios[MAX_NODES]   # live folios of order > 0
    int64_t node_large_frames[MAX_NODES]   # frames in them

cdef int frames_init(frames_t* fr, int64_t ram_pages, int64_t ndevices, int64_t device_pages) except -1
cdef void frames_destroy(frames_t* fr) noexcept nogil

cdef inline int64_t frames_free_count(frames_t* fr, int node) noexcept nogil:
    return fr.node_size[node] - fr.node_used[node]

cdef inline uint32_t frame_field(frame_t* d) noexcept nogil:
    """The design's number in flags bits 12..31 (0 after frame_reset)."""
    return d.flags >> FR_FIELD_SHIFT

cdef inline void frame_set_field(frame_t* d, uint32_t v) noexcept nogil:
    """Store v (<= FR_FIELD_MAX) in flags bits 12..31; the flag bits below are kept."""
    d.flags = (d.flags & ((<uint32_t>1 << FR_FIELD_SHIFT) - 1)) | (v << FR_FIELD_SHIFT)

cdef inline void frame_reset(frame_t* d) noexcept nogil:
    """A freshly allocated frame: refcount 1, everything else 0."""
    d.value = 0
    d.owner = 0
    d.index = 0
    d.refcount = 1
    d.mapcount = 0
    d.flags = 0
    d.aux = 0

cdef inline pfn_t frame_alloc(frames_t* fr, int node) noexcept nogil:
    """Take a frame of `node` (refcount 1, mapcount 0, value 0); NO_PFN when the node is full."""
    cdef pfn_t pfn
    if fr.node_nfree[node] > 0:
        fr.node_nfree[node] -= 1
        pfn = fr.freelist[fr.node_base[node] + fr.node_nfree[node]]
    elif fr.node_bump[node] < fr.node_size[node]:
        pfn = <pfn_t>(fr.node_base[node] + fr.node_bump[node])
        fr.node_bump[node] += 1
    else:
        return NO_PFN
    fr.node_used[node] += 1
    frame_reset(&fr.f[pfn])
    return pfn

cdef inline uint8_t folio_order_of(int64_t nr) noexcept nogil:
    cdef uint8_t k = 0
    while (<int64_t>1 << k) < nr:
        k += 1
    return k

cdef inline pfn_t frame_alloc_contig(frames_t* fr, int node, int64_t nr) noexcept nogil:
    """Take `nr` (a power of two) contiguous frames whose first pfn is a multiple of
    `nr`, each set up as frame_alloc does; the first pfn, or NO_PFN.  Only never-used
    frames qualify (the bump region): this block keeps single frames on its free
    list and never coalesces them, so a freed run is not found again as one.
    Frames skipped to reach the alignment go to the free list."""
    cdef int64_t start = fr.node_base[node] + fr.node_bump[node]
    cdef int64_t first = (start + nr - 1) & ~(nr - 1)
    cdef int64_t p
    if first + nr > fr.node_base[node] + fr.node_size[node]:
        return NO_PFN
    for p in range(start, first):
        fr.freelist[fr.node_base[node] + fr.node_nfree[node]] = <pfn_t>p
        fr.node_nfree[node] += 1
    fr.node_bump[node] = first + nr - fr.node_base[node]
    fr.node_used[node] += nr
    if nr > 1:
        fr.node_large_folios[node] += 1
        fr.node_large_frames[node] += nr
    for p in range(first, first + nr):
        fr.order[p] = folio_order_of(nr)
        frame_reset(&fr.f[p])
    return <pfn_t>first

cdef inline int frame_node(frames_t* fr, pfn_t pfn) noexcept nogil:
    cdef int n = 0
    while n + 1 < fr.nr_nodes and <int64_t>pfn >= fr.node_base[n + 1]:
        n += 1
    return n

cdef inline int folio_order(frames_t* fr, pfn_t pfn) noexcept nogil:
    """Order of the folio holding pfn (0: a single frame)."""
    return fr.order[pfn]

cdef inline int64_t folio_split(frames_t* fr, pfn_t pfn) noexcept nogil:
    """split_huge_page to order 0: every frame of the large folio holding pfn
    becomes a folio of its own.  Returns the frames of the folio split (1 when
    pfn was already an order-0 folio: nothing to do)."""
    cdef int64_t nr = (<int64_t>1) << fr.order[pfn]
    cdef int64_t head = <int64_t>pfn & ~(nr - 1), p
    cdef int node
    if nr == 1:
        return 1
    node = frame_node(fr, pfn)
    for p in range(head, head + nr):
        fr.order[p] = 0
    fr.node_large_folios[node] -= 1
    fr.node_large_frames[node] -= nr
    return nr

cdef inline int64_t frames_folios(frames_t* fr, int node) noexcept nogil:
    """Folios of `node` alive now: one per order-0 frame, one per large folio."""
    return fr.node_used[node] - fr.node_large_frames[node] + fr.node_large_folios[node]

cdef inline void frame_free(frames_t* fr, pfn_t pfn) noexcept nogil:
    """Return a frame to its node's free list (caller dropped the last reference).
    A frame of a large folio splits that folio first (see folio_split)."""
    cdef int node = frame_node(fr, pfn)
    if fr.order[pfn]:
        folio_split(fr, pfn)
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
