# Implementation of the page-cache address_space; see pagecache.pxd.
from libc.stdint cimport int64_t, uint64_t
from mmbench.blocks.frames cimport frames_t, pfn_t, NO_PFN, frame_free
from mmbench.blocks.xarray cimport xa_init, xa_load, xa_store, xa_erase, xa_find
from mmbench.blocks.itree cimport itree_init

cdef void mapping_init(address_space_t* as_) noexcept nogil:
    xa_init(&as_.i_pages)
    itree_init(&as_.i_mmap)
    as_.nrpages = 0

cdef pfn_t mapping_lookup(address_space_t* as_, uint64_t index) noexcept nogil:
    cdef uint64_t e = xa_load(&as_.i_pages, index)
    return <pfn_t>(e - 1) if e != 0 else NO_PFN

cdef int mapping_add(address_space_t* as_, uint64_t index, pfn_t pfn) noexcept nogil:
    cdef bint hole = xa_load(&as_.i_pages, index) == 0
    if xa_store(&as_.i_pages, index, <uint64_t>pfn + 1) != 0:
        return -1
    if hole:                 # replacing a cached frame does not add a page
        as_.nrpages += 1
    return 0

cdef pfn_t mapping_remove(address_space_t* as_, uint64_t index) noexcept nogil:
    cdef uint64_t e = xa_erase(&as_.i_pages, index)
    if e == 0:
        return NO_PFN
    as_.nrpages -= 1
    return <pfn_t>(e - 1)

cdef int64_t mapping_truncate(address_space_t* as_, frames_t* fr, uint64_t start, uint64_t end) noexcept nogil:
    cdef uint64_t idx = 0
    cdef uint64_t e
    cdef pfn_t pfn
    cdef int64_t n = 0
    if end <= start:
        return 0
    while True:
        e = xa_find(&as_.i_pages, start, end - 1, &idx)
        if e == 0:
            break
        pfn = <pfn_t>(e - 1)
        xa_erase(&as_.i_pages, idx)
        as_.nrpages -= 1
        fr.f[pfn].refcount -= 1
        if fr.f[pfn].refcount == 0:
            frame_free(fr, pfn)
        n += 1
        start = idx + 1
    return n
