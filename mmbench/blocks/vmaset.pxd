# vmaset: the set of VMAs of one address space, in address order.
#
# The kernel keeps an mm's VMAs in a maple tree (mm->mm_mt) and walks it with
# vma_iter / find_vma.  A design here keeps the same in-order view as a sorted
# array of pointers to its own VMA structs, non-overlapping, binary-searched;
# what the maple tree costs is accounted by the design (linux replays the
# stores on maple.pyx, shmem estimates the node count).
#
#     vmas ─► [ vma* | vma* | vma* | ... ]      nr used, cap allocated
#                │
#                └─► design's VMA struct ... { vm_start, vm_end } ...
#                                              ^ at byte `span` of the struct
#
# The block does not know a design's VMA type: it reads each VMA's
# [vm_start, vm_end) through a `vma_span_t` found `span` bytes into the struct
# (the design passes offsetof(its VMA, vm_start): vm_start and vm_end must be
# adjacent, in that order).  The lookups are inline so that a constant `span`
# folds away.
#
# find_vma keeps a one-entry cache of the last index found (the vmacache of
# old kernels; a simulator shortcut, no metric depends on it): any index is
# safe, the cache is checked against the VMA's range before it is trusted.

from libc.stdint cimport int64_t, uint64_t

# The [vm_start, vm_end) pair, in vpns, as it sits inside a design's VMA.
ctypedef struct vma_span_t:
    uint64_t vm_start              # first vpn
    uint64_t vm_end                # vpn after the last


cdef inline vma_span_t* vma_span(void* vma, size_t span) noexcept nogil:
    return <vma_span_t*>((<char*>vma) + span)


cdef inline int64_t vmaset_lower_bound(void** vmas, int64_t nr, size_t span, uint64_t vpn) noexcept nogil:
    """Index of the first VMA ending above `vpn` (nr if none): the VMA holding
    vpn, or the first one after it."""
    cdef int64_t lo = 0, hi = nr, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if vma_span(vmas[mid], span).vm_end <= vpn:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef inline int64_t vmaset_find(void** vmas, int64_t nr, size_t span, int64_t* cache,
                              uint64_t vpn) noexcept nogil:
    """find_vma proper (vma_lookup): the index of the VMA containing `vpn`, or -1."""
    cdef int64_t i = cache[0]
    cdef vma_span_t* s
    if 0 <= i < nr:
        s = vma_span(vmas[i], span)
        if s.vm_start <= vpn < s.vm_end:
            return i
    i = vmaset_lower_bound(vmas, nr, span, vpn)
    if i < nr and vma_span(vmas[i], span).vm_start <= vpn:
        cache[0] = i
        return i
    return -1


# Every vpn of [start, end) lies in some VMA.
cdef bint vmaset_fully_mapped(void** vmas, int64_t nr, size_t span, uint64_t start,
                            uint64_t end) noexcept nogil
# Some vpn of [start, end) lies in a VMA.
cdef bint vmaset_any_mapped(void** vmas, int64_t nr, size_t span, uint64_t start,
                          uint64_t end) noexcept nogil
# move_pages's check of [start, end) (a design's move_range_status): MM_ESEGV when
# a vpn of it lies in no VMA, else MM_EINVAL when a VMA over it fails `movable`
# (shared or read-only), else MM_OK.
ctypedef bint (*vma_test_t)(void* vma) noexcept nogil
cdef int vmaset_move_check(void** vmas, int64_t nr, size_t span, uint64_t start, uint64_t end,
                           vma_test_t movable) noexcept nogil
# Make room for `need` VMAs in the array (doubling from 8): 0, or -1 when out of
# memory (the array is unchanged).
cdef int vmaset_reserve(void*** vmas, int64_t* cap, int64_t need) noexcept nogil
# Insert `vma` at its place by vm_start; room must be reserved.
cdef void vmaset_insert(void** vmas, int64_t* nr, size_t span, void* vma) noexcept nogil
# Take the `count` VMAs at [idx, idx + count) out of the array (they are not freed).
cdef void vmaset_remove(void** vmas, int64_t* nr, int64_t idx, int64_t count) noexcept nogil
