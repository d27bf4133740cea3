# An address_space: the page cache of one file (a shmem inode, the object
# behind a shared anonymous mapping).  Frames are indexed by file page offset in
# an xarray (`i_pages`, xa_node accounting), and the VMAs mapping the file hang
# in the `i_mmap` interval tree keyed by the file range they map — the file
# reverse map.  The frames belong to the page cache: it holds one reference on
# each (frame refcount), mappers add their own.

from libc.stdint cimport int64_t, uint64_t
from mmbench.blocks.frames cimport frames_t, pfn_t
from mmbench.blocks.xarray cimport xarray_t
from mmbench.blocks.itree cimport itree_t

ctypedef struct address_space_t:
    xarray_t i_pages       # page offset -> pfn + 1
    itree_t i_mmap         # mappers, keyed by [pgoff, pgoff + npages - 1]
    int64_t nrpages        # frames in the cache

cdef void mapping_init(address_space_t* as_) noexcept nogil
cdef pfn_t mapping_lookup(address_space_t* as_, uint64_t index) noexcept nogil   # NO_PFN if a hole
cdef int mapping_add(address_space_t* as_, uint64_t index, pfn_t pfn) noexcept nogil  # 0 / -1 (ENOMEM)
cdef pfn_t mapping_remove(address_space_t* as_, uint64_t index) noexcept nogil   # the frame or NO_PFN
# Drop every cached frame in [start, end): the cache's reference is put and
# frames whose refcount falls to 0 are freed.  Returns frames removed.
cdef int64_t mapping_truncate(address_space_t* as_, frames_t* fr, uint64_t start, uint64_t end) noexcept nogil
