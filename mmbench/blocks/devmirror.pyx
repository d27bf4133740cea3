# Implementation of the device mirror and device-memory FIFO; see devmirror.pxd.
from libc.stdlib cimport calloc, malloc, free
from libc.string cimport memset
from libc.stdlib cimport realloc
from libc.stdint cimport int64_t, uint64_t, int32_t
from mmbench.blocks.frames cimport NO_PFN, frame_alloc, frame_free, frame_node
from mmbench.blocks.xarray cimport xa_init, xa_destroy, xa_load, xa_store, xa_erase, xa_find


cdef void mirrors_init(mirror_set_t* ms) noexcept nogil:
    cdef int i
    for i in range(MAX_NODES):
        ms.dm[i] = NULL
    ms.nr = 0


cdef int64_t mirrors_destroy(mirror_set_t* ms) noexcept nogil:
    cdef int i
    cdef int64_t dropped = 0
    for i in range(MAX_NODES):
        if ms.dm[i] != NULL:
            dropped += ms.dm[i].pt.nr_entries
            xa_destroy(&ms.dm[i].pt)
            free(ms.dm[i])
            ms.dm[i] = NULL
    ms.nr = 0
    return dropped


cdef dmirror_t* mirror_get(mirror_set_t* ms, int dev) noexcept nogil:
    cdef dmirror_t* dm = ms.dm[dev]
    if dm != NULL:
        return dm
    dm = <dmirror_t*>malloc(sizeof(dmirror_t))
    if dm == NULL:
        return NULL
    xa_init(&dm.pt)
    dm.dev = dev
    ms.dm[dev] = dm
    ms.nr += 1
    return dm


cdef int64_t mirrors_nodes(mirror_set_t* ms) noexcept nogil:
    cdef int i
    cdef int64_t n = 0
    for i in range(MAX_NODES):
        if ms.dm[i] != NULL:
            n += ms.dm[i].pt.nr_nodes
    return n


cdef int64_t mirrors_entries(mirror_set_t* ms) noexcept nogil:
    cdef int i
    cdef int64_t n = 0
    for i in range(MAX_NODES):
        if ms.dm[i] != NULL:
            n += ms.dm[i].pt.nr_entries
    return n


# ------------------------------------------------------------ per-process side table
cdef int pidtab_reserve(void*** tab, int64_t* cap, int64_t pid, int64_t want) noexcept nogil:
    cdef void** p
    if pid < cap[0]:
        return 0
    if want <= pid:
        want = pid + 1
    p = <void**>realloc(tab[0], want * sizeof(void*))
    if p == NULL:
        return -1
    memset(p + cap[0], 0, (want - cap[0]) * sizeof(void*))
    tab[0] = p
    cap[0] = want
    return 0


cdef dev_mm_t* dev_mm_get(dev_mm_t*** tab, int64_t* cap, int64_t pid, int64_t want) noexcept nogil:
    cdef dev_mm_t* h = dev_mm_of(tab[0], cap[0], pid)
    if h != NULL or pid <= 0:
        return h
    if pidtab_reserve(<void***>tab, cap, pid, want) != 0:
        return NULL
    h = <dev_mm_t*>calloc(1, sizeof(dev_mm_t))
    if h == NULL:
        return NULL
    mirrors_init(&h.ms)
    tab[0][pid] = h
    return h


cdef dev_mm_t* dev_mm_detach(dev_mm_t** tab, int64_t cap, int64_t pid) noexcept nogil:
    cdef dev_mm_t* h = dev_mm_of(tab, cap, pid)
    if h == NULL:
        return NULL
    mirrors_destroy(&h.ms)
    tab[pid] = NULL
    return h


cdef notify_result_t dev_mm_notify(dev_mm_t* h, uint64_t start, uint64_t end, int owner) noexcept nogil:
    cdef notify_result_t r
    r.calls = 0
    r.invalidated = 0
    r.tlb_inval = 0
    if h != NULL:
        mmu_notifier_invalidate(&h.ms, start, end, owner, &r)
    return r


cdef int dmirror_map(dmirror_t* dm, uint64_t vpn, pfn_t pfn, bint write) noexcept nogil:
    return xa_store(&dm.pt, vpn, mk_dpte(pfn, write))


cdef uint64_t dmirror_lookup(dmirror_t* dm, uint64_t vpn) noexcept nogil:
    return xa_load(&dm.pt, vpn)


cdef int64_t dmirror_invalidate(dmirror_t* dm, uint64_t start, uint64_t end) noexcept nogil:
    """dmirror_do_update: erase every device entry in [start, end)."""
    cdef int64_t n = 0
    cdef uint64_t idx = 0
    if dm.pt.nr_entries == 0 or end <= start:
        return 0
    if end - start == 1:
        return 1 if xa_erase(&dm.pt, start) != 0 else 0
    while dm.pt.nr_entries > 0 and xa_find(&dm.pt, start, end - 1, &idx) != 0:
        xa_erase(&dm.pt, idx)
        n += 1
        start = idx + 1
    return n


cdef void mmu_notifier_invalidate(mirror_set_t* ms, uint64_t start, uint64_t end, int owner,
                                  notify_result_t* r) noexcept nogil:
    cdef int i
    cdef int64_t n
    if ms.nr == 0:
        return
    for i in range(1, MAX_NODES):
        if ms.dm[i] == NULL:
            continue
        r.calls += 1
        if i == owner:
            continue
        n = dmirror_invalidate(ms.dm[i], start, end)
        if n:
            r.invalidated += n
            r.tlb_inval += 1


# ------------------------------------------------------------ device memory FIFO
cdef int devmem_init(devmem_t* d, int64_t base, int64_t size) noexcept nogil:
    cdef int64_t i
    d.base = base
    d.size = size
    d.head = -1
    d.tail = -1
    d.nr = 0
    d.prev = <int32_t*>malloc((size if size > 0 else 1) * sizeof(int32_t))
    d.next = <int32_t*>malloc((size if size > 0 else 1) * sizeof(int32_t))
    if d.prev == NULL or d.next == NULL:
        devmem_destroy(d)
        return -1
    for i in range(size):
        d.prev[i] = -2          # -2: not on the list
        d.next[i] = -2
    return 0


cdef void devmem_destroy(devmem_t* d) noexcept nogil:
    free(d.prev)
    free(d.next)
    d.prev = NULL
    d.next = NULL
    d.nr = 0
    d.head = -1
    d.tail = -1


cdef bint devmem_has(devmem_t* d, pfn_t pfn) noexcept nogil:
    cdef int64_t i = <int64_t>pfn - d.base
    return 0 <= i < d.size and d.prev[i] != -2


cdef void devmem_add(devmem_t* d, pfn_t pfn) noexcept nogil:
    cdef int32_t i = <int32_t>(<int64_t>pfn - d.base)
    d.prev[i] = d.tail
    d.next[i] = -1
    if d.tail >= 0:
        d.next[d.tail] = i
    else:
        d.head = i
    d.tail = i
    d.nr += 1


cdef void devmem_del(devmem_t* d, pfn_t pfn) noexcept nogil:
    cdef int32_t i = <int32_t>(<int64_t>pfn - d.base)
    cdef int32_t p = d.prev[i]
    cdef int32_t n = d.next[i]
    if p >= 0:
        d.next[p] = n
    else:
        d.head = n
    if n >= 0:
        d.prev[n] = p
    else:
        d.tail = p
    d.prev[i] = -2
    d.next[i] = -2
    d.nr -= 1


cdef pfn_t devmem_oldest(devmem_t* d) noexcept nogil:
    if d.head < 0:
        return NO_PFN
    return <pfn_t>(d.base + d.head)


cdef void devmems_clear(devmem_t* d) noexcept nogil:
    cdef int i
    for i in range(MAX_NODES):
        memset(&d[i], 0, sizeof(devmem_t))
        d[i].head = -1
        d[i].tail = -1


cdef int devmems_init(devmem_t* d, frames_t* fr, int ndevices) noexcept nogil:
    cdef int i
    for i in range(1, ndevices + 1):
        if devmem_init(&d[i], fr.node_base[i], fr.node_size[i]) != 0:
            return -1
    return 0


cdef void devmems_destroy(devmem_t* d) noexcept nogil:
    cdef int i
    for i in range(MAX_NODES):
        devmem_destroy(&d[i])


cdef pfn_t devmem_frame_alloc(devmem_t* d, frames_t* fr, int dev) noexcept nogil:
    cdef pfn_t pfn = frame_alloc(fr, dev)
    if pfn != NO_PFN:
        devmem_add(&d[dev], pfn)
    return pfn


cdef void devmem_frame_free(devmem_t* d, frames_t* fr, pfn_t pfn) noexcept nogil:
    devmem_del(&d[frame_node(fr, pfn)], pfn)
    frame_free(fr, pfn)
