# Implementation of the frame allocator; see frames.pxd for the design.
from libc.stdlib cimport calloc, free
from libc.stdint cimport uint8_t

cdef int frames_init(frames_t* fr, int64_t ram_pages, int64_t ndevices, int64_t device_pages) except -1:
    cdef int64_t total = ram_pages + ndevices * device_pages
    cdef int n
    if ndevices + 1 > MAX_NODES:
        raise ValueError(f"at most {MAX_NODES - 1} devices")
    if total >= <int64_t>ZERO_PFN:
        raise ValueError("too many frames for a 32-bit pfn")
    fr.f = <frame_t*>calloc(total if total > 0 else 1, sizeof(frame_t))
    fr.freelist = <pfn_t*>calloc(total if total > 0 else 1, sizeof(pfn_t))
    fr.order = <uint8_t*>calloc(total if total > 0 else 1, sizeof(uint8_t))
    if fr.f == NULL or fr.freelist == NULL or fr.order == NULL:
        frames_destroy(fr)
        raise MemoryError("cannot allocate frame descriptors")
    fr.nr_nodes = ndevices + 1
    for n in range(MAX_NODES):
        fr.node_base[n] = 0
        fr.node_size[n] = 0
        fr.node_bump[n] = 0
        fr.node_nfree[n] = 0
        fr.node_used[n] = 0
        fr.node_large_folios[n] = 0
        fr.node_large_frames[n] = 0
    fr.node_size[0] = ram_pages
    for n in range(1, ndevices + 1):
        fr.node_base[n] = ram_pages + (n - 1) * device_pages
        fr.node_size[n] = device_pages
    return 0

cdef void frames_destroy(frames_t* fr) noexcept nogil:
    free(fr.f)
    free(fr.freelist)
    free(fr.order)
    fr.f = NULL
    fr.freelist = NULL
    fr.order = NULL
