# spares: objects set aside before an operation that must not fail half-way.
#
# A kernel operation that cannot be undone once it has started (mremap moving
# several VMAs, a fork's anon_vma_clone) allocates what it may need first: the
# maple tree's mas_preallocate, vma_iter_prealloc.  A design here does the
# same with a spares list per object type: raw, unaccounted memory taken by
# the allocation paths before they ask the host, so that an OutOfMemory can
# only come before the first change (the errors.py contract).  The first word
# of each spare links to the next; a spare is zeroed when it is taken.

from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memset
from libc.stdint cimport int64_t


ctypedef struct spares_t:
    void* head                     # the first spare; its first word is the next one
    int64_t nr                     # how many are set aside


cdef inline int spares_fill(spares_t* s, int64_t want, size_t size) noexcept nogil:
    """Set aside spares of `size` bytes until there are `want`: 0, or -1 when the host
    has no memory (those already set aside stay)."""
    cdef void* p
    while s.nr < want:
        p = malloc(size if size >= sizeof(void*) else sizeof(void*))
        if p == NULL:
            return -1
        (<void**>p)[0] = s.head
        s.head = p
        s.nr += 1
    return 0


cdef inline void* spares_take(spares_t* s, size_t size) noexcept nogil:
    """`size` zeroed bytes: a spare if one is set aside, else from the host (NULL when
    it has none)."""
    cdef void* p = s.head
    if p == NULL:
        return calloc(1, size)
    s.head = (<void**>p)[0]
    s.nr -= 1
    memset(p, 0, size)
    return p


cdef inline void spares_trim(spares_t* s, int64_t keep) noexcept nogil:
    """Give back the spares beyond `keep`."""
    cdef void* p
    while s.nr > keep:
        p = s.head
        s.head = (<void**>p)[0]
        s.nr -= 1
        free(p)
