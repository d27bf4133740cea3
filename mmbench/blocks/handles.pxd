# handles: a numbered table of live objects, so that a narrow field can name
# an object by a small number where a pointer would take 64 bits.
#
# A design takes a number for an object when it makes the object
# (handles_take), reads the object back from the number (handles_get, one
# array index) and gives the number back when the object goes (handles_put);
# numbers are reused, the last one given back first.  The free numbers are
# chained through their own slots:
#
#   slot[n]   the object numbered n (a pointer: even), or, when n is free,
#             ((the next free number + 1) << 1) | 1  (odd, so never an object)
#   free      the first free number, -1: none
#
# The table starts at HANDLES_FIRST slots when the first number is taken and
# grows by doubling, up to `max` numbers (the width of the field the numbers
# go into); handles_take answers -1 when every number below max is in use or
# the host has no memory.  It never shrinks.  Objects must be at least
# 2-aligned (anything malloc returns is).
#
# Users: pmap_netbsd (a pmap's number in the embedded pv of its pages,
# pm_num: pmap_netbsd.pxd), pmap_pvchunk (a pv_chunk's number in the handles
# naming its entries, in list heads and links, pc_num: pmap_pvchunk.pxd) and freebsd's vm_reserv
# (a reservation's number in the frame descriptor of each of its pages:
# vm_reserv.pyx, and in the leaves of its object's reservation index:
# pctrie.pxd), gmem (a DEVICE block's frame array, named in the gm_mapping word
# kept in its logical page table slot: mmbench_gmem/core.pxd); pmap.pyx also keeps the slabs its pv containers are carved
# from in one, only to unmap them all at the end.  The table is the simulator's memory, not the kernel's: no
# slab cache charges it.

from libc.stdlib cimport realloc, free
from libc.stdint cimport int64_t


ctypedef struct handles_t:
    void** slot                    # by number: the object, or a link of the free chain
    int64_t len                    # slots allocated
    int64_t free                   # first free number (-1: none)
    int64_t max                    # numbers are below max
    int64_t count                  # numbers in use

cdef enum:
    HANDLES_FIRST = 16             # slots of the first allocation


cdef inline void handles_init(handles_t* h, int64_t max) noexcept nogil:
    """An empty table whose numbers stay below `max` (0: none can be taken).
    Allocates nothing."""
    h.slot = NULL
    h.len = 0
    h.free = -1
    h.max = max
    h.count = 0


cdef inline void handles_destroy(handles_t* h) noexcept nogil:
    """Free the table (not the objects); it is empty and usable again after."""
    free(h.slot)
    handles_init(h, h.max)


cdef inline void* handles_free_link(int64_t next) noexcept nogil:
    """The slot of a free number, chained to the free number `next` (-1: none)."""
    return <void*>(<size_t>(((next + 1) << 1) | 1))


cdef inline int handles_grow(handles_t* h) noexcept nogil:
    """Double the table (at most max slots), its new numbers chained free in
    order; 0, or -1 when it is full or the host has no memory."""
    cdef int64_t nlen = HANDLES_FIRST if h.len == 0 else 2 * h.len, i
    cdef void** tab
    if nlen > h.max:
        nlen = h.max
    if nlen <= h.len:
        return -1
    tab = <void**>realloc(h.slot, nlen * sizeof(void*))
    if tab == NULL:
        return -1
    for i in range(h.len, nlen):            # chained i -> i + 1, the last to none
        tab[i] = handles_free_link(i + 1 if i + 1 < nlen else -1)
    h.free = h.len
    h.slot = tab
    h.len = nlen
    return 0


cdef inline int64_t handles_take(handles_t* h, void* obj) noexcept nogil:
    """A number for `obj` (the free number given back last); -1: none."""
    cdef int64_t n
    if h.free < 0 and handles_grow(h) != 0:
        return -1
    n = h.free
    h.free = <int64_t>(<size_t>h.slot[n] >> 1) - 1
    h.slot[n] = obj
    h.count += 1
    return n


cdef inline void handles_put(handles_t* h, int64_t n) noexcept nogil:
    """Give number n back (its object is going away)."""
    h.slot[n] = handles_free_link(h.free)
    h.free = n
    h.count -= 1


cdef inline void* handles_get(handles_t* h, int64_t n) noexcept nogil:
    """The object numbered n (n must be in use)."""
    return h.slot[n]


cdef inline bint handles_live(handles_t* h, int64_t n) noexcept nogil:
    """Is n a number in use?  (for invariant checks)"""
    return 0 <= n < h.len and not (<size_t>h.slot[n] & 1)
