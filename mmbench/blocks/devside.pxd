# devside: what every device design does with devmirror's results, once.
#
# devmirror keeps structure and reports what it did; a design then adds a
# notifier run to its counters, keeps its dmirror / device page-table caches
# equal to the mirrors that exist, and counts each copy over the link by
# direction.  Those three steps are the same in every design with devices, so
# they live here as inline helpers over the Machine (a header: no module).

from libc.stdint cimport int64_t
from mmbench.core cimport (Machine, C_NOTIFIER_CALLS, C_NOTIFIER_INVALIDATED, C_DEVICE_PTE_WRITES,
                           C_DEVICE_TLB_INVAL)
from mmbench.blocks.devmirror cimport dev_mm_t, notify_result_t, move_stats_t, mirrors_nodes


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
