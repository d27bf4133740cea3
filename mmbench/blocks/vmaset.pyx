# Implementation of the VMA set; see vmaset.pxd.

from libc.stdlib cimport realloc
from libc.string cimport memmove
from libc.stdint cimport int64_t, uint64_t

from mmbench.core cimport MM_OK, MM_EINVAL, MM_ESEGV


cdef int vmaset_move_check(void** vmas, int64_t nr, size_t span, uint64_t start, uint64_t end,
                           vma_test_t movable) noexcept nogil:
    cdef int64_t i = vmaset_lower_bound(vmas, nr, span, start)
    cdef uint64_t at = start
    cdef vma_span_t* s
    cdef int bad = MM_OK
    while at < end:
        if i >= nr:
            return MM_ESEGV
        s = vma_span(vmas[i], span)
        if s.vm_start > at:
            return MM_ESEGV
        if not movable(vmas[i]):
            bad = MM_EINVAL
        at = s.vm_end
        i += 1
    return bad


cdef bint _any_vma(void* vma) noexcept nogil:
    return True


cdef bint vmaset_fully_mapped(void** vmas, int64_t nr, size_t span, uint64_t start,
                            uint64_t end) noexcept nogil:
    return vmaset_move_check(vmas, nr, span, start, end, _any_vma) == MM_OK


cdef bint vmaset_any_mapped(void** vmas, int64_t nr, size_t span, uint64_t start,
                          uint64_t end) noexcept nogil:
    cdef int64_t i
    if start >= end:                # an empty range holds no vpn
        return False
    i = vmaset_lower_bound(vmas, nr, span, start)
    return i < nr and vma_span(vmas[i], span).vm_start < end


cdef int vmaset_reserve(void*** vmas, int64_t* cap, int64_t need) noexcept nogil:
    cdef int64_t c = cap[0]
    cdef void** p
    if need <= c:
        return 0
    while c < need:
        c = c * 2 if c else 8
    p = <void**>realloc(vmas[0], c * sizeof(void*))
    if p == NULL:
        return -1
    vmas[0] = p
    cap[0] = c
    return 0


cdef void vmaset_insert(void** vmas, int64_t* nr, size_t span, void* vma) noexcept nogil:
    cdef int64_t i = vmaset_lower_bound(vmas, nr[0], span, vma_span(vma, span).vm_start)
    memmove(&vmas[i + 1], &vmas[i], (nr[0] - i) * sizeof(void*))
    vmas[i] = vma
    nr[0] += 1


cdef void vmaset_remove(void** vmas, int64_t* nr, int64_t idx, int64_t count) noexcept nogil:
    memmove(&vmas[idx], &vmas[idx + count], (nr[0] - idx - count) * sizeof(void*))
    nr[0] -= count
