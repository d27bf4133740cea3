# devmirror: the accelerator side of every device-migration design.
#
# An accelerator has its own MMU.  The driver keeps, per (process, device), a
# device page table mirroring the part of the address space the device uses
# — the model of lib/test_hmm.c's `struct dmirror`: an xarray keyed by vpn
# whose entries hold a pfn (host or device frame) and a write bit.  The
# driver learns about CPU-side changes through an mmu_interval_notifier
# registered over the whole address space: every invalidation of a vpn range
# erases the overlapping device entries (and costs a device TLB invalidation
# when it removed any).  A `mirror_set_t` is the list of notifiers registered
# on one mm: one dmirror per device that ever touched the mm.
#
#     mm ──mirror_set_t──► dm[1] ─ xarray vpn → (pfn, W)     (device 1's page table)
#                          dm[2] ─ xarray vpn → (pfn, W)     (device 2's page table)
#
# Device memory (`devmem_t`) is the machine's frames of node `dev`; frames in
# use are kept in allocation order so that, under oversubscription, a design
# can evict the device's oldest page back to host memory (FIFO: cheap,
# deterministic, and what a driver without access bits on device memory does).
#
# The block only keeps structure and returns what it did (`notify_result_t`);
# the design adds the numbers to its counters (C_NOTIFIER_CALLS,
# C_NOTIFIER_INVALIDATED, C_DEVICE_TLB_INVAL, C_DEVICE_PTE_WRITES).

from libc.stdint cimport int64_t, uint64_t, int32_t
from mmbench.blocks.frames cimport pfn_t, frames_t, MAX_NODES
from mmbench.blocks.xarray cimport xarray_t

# device page-table entry: (pfn << DPT_PFN_SHIFT) | DPT_VALID | DPT_WRITE
cdef enum:
    DPT_VALID = 1
    DPT_WRITE = 2
    DPT_PFN_SHIFT = 2

ctypedef struct dmirror_t:
    xarray_t pt               # vpn -> device PTE (never 0: DPT_VALID is set)
    int dev                   # the device (1..ndevices) this page table belongs to

ctypedef struct mirror_set_t:
    dmirror_t* dm[MAX_NODES]  # by device; NULL while the device never attached this mm
    int nr                    # registered notifiers (non-NULL dm[])

# What one migration did, for the caller's DMA accounting.
ctypedef struct move_stats_t:
    int64_t to_device              # pages copied host -> device
    int64_t to_host                # pages copied device -> host

ctypedef struct notify_result_t:
    int64_t calls             # notifier callbacks run (one per registered mirror)
    int64_t invalidated       # device entries erased
    int64_t tlb_inval         # device TLB invalidations (mirrors that erased something)

cdef inline uint64_t mk_dpte(pfn_t pfn, bint write) noexcept nogil:
    return (<uint64_t>pfn << DPT_PFN_SHIFT) | DPT_VALID | (DPT_WRITE if write else 0)

cdef inline pfn_t dpte_pfn(uint64_t e) noexcept nogil:
    return <pfn_t>(e >> DPT_PFN_SHIFT)

cdef void mirrors_init(mirror_set_t* ms) noexcept nogil
# Unregister every notifier and free every device page table (mm teardown);
# returns the device entries that were still present.
cdef int64_t mirrors_destroy(mirror_set_t* ms) noexcept nogil
# The mirror of `dev`, registering it on first use; NULL when out of memory.
cdef dmirror_t* mirror_get(mirror_set_t* ms, int dev) noexcept nogil
cdef int64_t mirrors_nodes(mirror_set_t* ms) noexcept nogil          # live xa_nodes, all mirrors
cdef int64_t mirrors_entries(mirror_set_t* ms) noexcept nogil        # live device PTEs, all mirrors

# Per-process device state of a design (its side table is indexed by pid):
# the notifiers registered on the process's address space, one dmirror per
# device that touched it, and what the design's caches hold for them.
ctypedef struct dev_mm_t:
    mirror_set_t ms
    int64_t xa_acct                # device page-table xa_nodes accounted
    int64_t dm_acct                # struct dmirror objects accounted

# The device side of one machine, the same in every design with devices: the
# per-pid states above (`tab`, `cap` slots, NULL while no device touched the
# process), the two caches they are accounted in, and the DMA transfers issued
# by direction.  devside.pxd has the operations on it.
ctypedef struct dev_side_t:
    dev_mm_t** tab
    int64_t cap
    int kc_dmirror                 # struct dmirror objects
    int kc_dpt_xa                  # device page-table xa_nodes
    int64_t xfer[2]                # DMA transfers issued: [0] to the devices, [1] to the host

# A side table by pid (`tab[0]`, `cap[0]` slots, NULL = none) grown on demand:
# make slot `pid` exist, growing the table to `want` slots (new ones NULL);
# 0, or -1 when out of memory (the table is unchanged).
cdef int pidtab_reserve(void*** tab, int64_t* cap, int64_t pid, int64_t want) noexcept nogil
# The state of `pid` in the table, created (no mirror yet) on first use; NULL
# when out of memory or pid <= 0.
cdef dev_mm_t* dev_mm_get(dev_mm_t*** tab, int64_t* cap, int64_t pid, int64_t want) noexcept nogil
# Take the state of `pid` out of the table with every notifier unregistered
# and every device page table freed (the caller accounts, then frees it); NULL
# when there is none.
cdef dev_mm_t* dev_mm_detach(dev_mm_t** tab, int64_t cap, int64_t pid) noexcept nogil
cdef inline dev_mm_t* dev_mm_of(dev_mm_t** tab, int64_t cap, int64_t pid) noexcept nogil:
    if pid <= 0 or pid >= cap:
        return NULL
    return tab[pid]
# mmu_notifier_invalidate over the mirrors of `h` (NULL: no device ever touched it).
cdef notify_result_t dev_mm_notify(dev_mm_t* h, uint64_t start, uint64_t end, int owner) noexcept nogil

# Device page table of one mirror.
cdef int dmirror_map(dmirror_t* dm, uint64_t vpn, pfn_t pfn, bint write) noexcept nogil  # 0 / -1 ENOMEM
cdef uint64_t dmirror_lookup(dmirror_t* dm, uint64_t vpn) noexcept nogil                # entry or 0
cdef int64_t dmirror_invalidate(dmirror_t* dm, uint64_t start, uint64_t end) noexcept nogil

# mmu_notifier_invalidate_range_start over [start, end): every registered
# mirror is called, except `owner` (a device migrating pages for itself, the
# MMU_NOTIFY_MIGRATE owner rule of dmirror); 0 = nobody is skipped.
cdef void mmu_notifier_invalidate(mirror_set_t* ms, uint64_t start, uint64_t end, int owner,
                                  notify_result_t* r) noexcept nogil

# Device memory in allocation order (eviction under oversubscription).
ctypedef struct devmem_t:
    int64_t base              # first pfn of the node
    int64_t size              # frames of the node
    int32_t* prev             # by pfn - base; -1 = none
    int32_t* next
    int32_t head              # oldest (first to evict), -1 when empty
    int32_t tail              # newest
    int64_t nr                # frames on the list

cdef int devmem_init(devmem_t* d, int64_t base, int64_t size) noexcept nogil    # 0 / -1 ENOMEM
cdef void devmem_destroy(devmem_t* d) noexcept nogil
cdef void devmem_add(devmem_t* d, pfn_t pfn) noexcept nogil                     # newest
cdef void devmem_del(devmem_t* d, pfn_t pfn) noexcept nogil
cdef pfn_t devmem_oldest(devmem_t* d) noexcept nogil                            # NO_PFN when empty
cdef bint devmem_has(devmem_t* d, pfn_t pfn) noexcept nogil

# The FIFOs of a machine's devices, by node (1..ndevices; slot 0 unused).
cdef void devmems_clear(devmem_t* d) noexcept nogil                 # all MAX_NODES empty, nothing held
cdef int devmems_init(devmem_t* d, frames_t* fr, int ndevices) noexcept nogil   # 0 / -1 ENOMEM
cdef void devmems_destroy(devmem_t* d) noexcept nogil
# A frame of device `dev` put on its FIFO as the newest (NO_PFN: the device is full).
cdef pfn_t devmem_frame_alloc(devmem_t* d, frames_t* fr, int dev) noexcept nogil
# A device frame off its device's FIFO and back to the allocator.
cdef void devmem_frame_free(devmem_t* d, frames_t* fr, pfn_t pfn) noexcept nogil
