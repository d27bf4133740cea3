# devside: what every device design does with devmirror's results, once.
#
# devmirror keeps structure and reports what it did; a design then adds a
# notifier run to its counters, keeps its dmirror / device page-table caches
# equal to the mirrors that exist, and counts each copy over the link by
# direction.  Those three steps are the same in every design with devices, so
# they live here as inline helpers over the Machine (a header: no module),
# together with the per-pid bookkeeping of a `dev_side_t` (side_of / side_get /
# side_free / side_sync / side_dma): a design holds one dev_side_t and calls
# these, it writes no wrappers of its own.

from libc.stdint cimport int64_t
from libc.stdlib cimport free
from mmbench.core cimport (Machine, MM_OK, MM_ENOMEM, C_NOTIFIER_CALLS, C_NOTIFIER_INVALIDATED, C_DEVICE_PTE_WRITES,
                           C_DEVICE_TLB_INVAL)
from libc.stdint cimport uint64_t
from mmbench.blocks.frames cimport pfn_t
from mmbench.blocks.devmirror cimport (dev_mm_t, dev_side_t, dmirror_t, notify_result_t, move_stats_t,
                                      mirrors_nodes, mirror_get, dmirror_map, dev_mm_of, dev_mm_get,
                                      dev_mm_detach, dev_mm_notify)


cdef inline bint notify_count(Machine m, notify_result_t* r) noexcept nogil:
    """Add one notifier run to m's counters; True when device entries went
    (the caller then re-syncs its device caches)."""
    m.ctr[C_NOTIFIER_CALLS] += r.calls
    m.ctr[C_NOTIFIER_INVALIDATED] += r.invalidated
    m.ctr[C_DEVICE_PTE_WRITES] += r.invalidated
    m.ctr[C_DEVICE_TLB_INVAL] += r.tlb_inval
    return r.invalidated != 0


cdef inline void dev_mm_sync(Machine m, dev_mm_t* h, int kc_dpt_xa, int kc_dmirror) noexcept nogil:
    """Keep the device page-table xa_node and dmirror caches equal to what exists."""
    m.kmem_sync(kc_dpt_xa, &h.xa_acct, mirrors_nodes(&h.ms))
    m.kmem_sync(kc_dmirror, &h.dm_acct, h.ms.nr)


cdef inline void dma_count(Machine m, int64_t* xfer, int64_t npages, bint to_device) noexcept nogil:
    """One copy of npages over the link (Machine.dma_account), its transfers
    remembered by direction: xfer[0] to the devices, xfer[1] to the host."""
    if npages <= 0:
        return
    m.dma_account(npages)
    xfer[0 if to_device else 1] += (npages + m.dma_batch_pages - 1) // m.dma_batch_pages


cdef inline void dma_flush_stats(Machine m, int64_t* xfer, move_stats_t* ms) noexcept nogil:
    """Issue the copies a migration collected (to the host first), then reset them."""
    dma_count(m, xfer, ms.to_host, False)
    dma_count(m, xfer, ms.to_device, True)
    ms.to_host = 0
    ms.to_device = 0


# ---------------------------------------------------------------- dev_side_t
cdef inline int side_register(Machine m, dev_side_t* s, int64_t xa_node_bytes) except -1:
    """Register the side's two slab caches on m (at the design's place in its
    cache order): struct dmirror of lib/test_hmm.c, 152 B [computed,
    approximate: mdevice 8, xarray 16, mmu_interval_notifier 88 (interval_tree_node
    48, ops 8, mm 8, hlist_node 16, invalidate_seq 8), struct mutex 32, flags 8],
    and the device page tables' xa_nodes, `xa_node_bytes` each (the design's
    xa_node / radix_tree_node object size)."""
    s.kc_dmirror = m.slab_register("dmirror", 152)
    s.kc_dpt_xa = m.slab_register("dmirror xa_node", xa_node_bytes)
    return 0


cdef inline dev_mm_t* side_of(dev_side_t* s, int64_t pid) noexcept nogil:
    """The device state of `pid`, or NULL while no device touched it."""
    return dev_mm_of(s.tab, s.cap, pid)


cdef inline dev_mm_t* side_get(Machine m, dev_side_t* s, int64_t pid) noexcept nogil:
    """The device state of `pid`, created (no notifier yet) on its first device
    use; NULL when out of memory."""
    return dev_mm_get(&s.tab, &s.cap, pid, m.next_pid + 64)


cdef inline void side_sync(Machine m, dev_side_t* s, dev_mm_t* h) noexcept nogil:
    """Keep the dmirror and device page-table caches equal to what exists."""
    dev_mm_sync(m, h, s.kc_dpt_xa, s.kc_dmirror)


cdef inline void side_free(Machine m, dev_side_t* s, int64_t pid) noexcept nogil:
    """Process teardown: unregister its notifiers, free its device page tables."""
    cdef dev_mm_t* h = dev_mm_detach(s.tab, s.cap, pid)
    if h != NULL:
        side_sync(m, s, h)
        free(h)


cdef inline void side_destroy(dev_side_t* s) noexcept nogil:
    """Free the table itself (machine teardown, after side_free of every pid)."""
    free(s.tab)
    s.tab = NULL
    s.cap = 0


cdef inline void side_dma(Machine m, dev_side_t* s, int64_t npages, bint to_device) noexcept nogil:
    dma_count(m, s.xfer, npages, to_device)


cdef inline void side_dma_flush(Machine m, dev_side_t* s, move_stats_t* ms) noexcept nogil:
    dma_flush_stats(m, s.xfer, ms)


cdef inline void side_notify(Machine m, dev_side_t* s, int64_t pid, uint64_t start, uint64_t end,
                             int owner) noexcept nogil:
    """mmu_notifier_invalidate_range_start over [start, end) of `pid`'s address
    space (`owner`: the device migrating for itself, skipped; 0 = none)."""
    cdef dev_mm_t* h = side_of(s, pid)
    cdef notify_result_t r = dev_mm_notify(h, start, end, owner)
    if notify_count(m, &r):
        side_sync(m, s, h)


cdef inline int side_map(Machine m, dev_side_t* s, int64_t pid, int dev, uint64_t vpn, pfn_t pfn,
                         bint write) noexcept nogil:
    """The driver writes one entry of device `dev`'s page table for `pid`
    (dmirror_do_fault), registering its notifier on first use: MM_OK, or
    MM_ENOMEM (what was allocated stays accounted)."""
    cdef dev_mm_t* h = side_get(m, s, pid)
    cdef dmirror_t* dm
    cdef int64_t nodes
    if h == NULL:
        return MM_ENOMEM
    dm = h.ms.dm[dev]
    if dm == NULL:
        dm = mirror_get(&h.ms, dev)
        side_sync(m, s, h)
        if dm == NULL:
            return MM_ENOMEM
    nodes = dm.pt.nr_nodes
    if dmirror_map(dm, vpn, pfn, write) != 0:
        side_sync(m, s, h)
        return MM_ENOMEM
    m.ctr[C_DEVICE_PTE_WRITES] += 1
    if dm.pt.nr_nodes != nodes:                   # the common case allocates nothing
        side_sync(m, s, h)
    return MM_OK


cdef inline dict side_transfers(dev_side_t* s):
    """DMA transfers issued so far: {"to_device": n, "to_host": n} (exact)."""
    return {"to_device": int(s.xfer[0]), "to_host": int(s.xfer[1])}
