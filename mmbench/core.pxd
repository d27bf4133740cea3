# mmbench.core — the typed contract every design implements.
#
# A design is a `cdef class` deriving from `Machine`.  The engine (Machine.replay)
# validates a whole trace in Python, then runs it in one `nogil` loop that
# dispatches to the design through the `c_*` methods below (a C vtable call).
# Every `c_*` method returns MM_OK or one negative status (MM_E*); it must leave
# the machine unchanged when it returns an error.  The public Python methods of
# the contract (spawn, mmap, …) validate their arguments, call the same `c_*`
# method and turn a status into an exception from mmbench.errors.
#
# Arguments reaching a `c_*` method are already validated by the framework:
#   pid is alive, 0 <= vpn, 1 <= npages, vpn + npages <= VPN_LIMIT,
#   0 <= node <= ndevices, 1 <= dev <= ndevices.
# Everything else (is the range mapped? writable? frames left?) is the design's.

from libc.stdint cimport int64_t, uint64_t, int32_t, uint32_t, uint8_t, uint16_t
from mmbench.blocks.frames cimport frames_t, pfn_t

# status codes ------------------------------------------------------------
cdef enum:
    MM_OK = 0
    MM_ESEGV = -1        # SegmentationFault: no mapping
    MM_EPROT = -2        # ProtectionFault: write to a read-only mapping
    MM_ENOPROC = -3      # NoSuchProcess
    MM_ENOMEM = -4       # OutOfMemory: no free frame (host or device)
    MM_EINVAL = -5       # InvalidArgument
    MM_ENOTSUP = -6      # NotSupported: the design has no such mechanism
    MM_EPYTHON = -7      # a Python-level backend raised; the exception is kept
    MM_EBUSY = -8        # PageBusy: move_pages met a page shared copy-on-write (kernel -EBUSY)

# op codes (same numbers as mmbench.Op) -------------------------------------
cdef enum:
    OP_SPAWN = 0
    OP_MMAP = 1
    OP_MUNMAP = 2
    OP_MPROTECT = 3
    OP_READ = 4
    OP_WRITE = 5
    OP_FORK = 6
    OP_EXIT = 7
    OP_MREMAP = 8
    OP_MADVISE_DONTNEED = 9
    OP_MIGRATE = 10
    OP_DEVICE_READ = 11
    OP_DEVICE_WRITE = 12
    OP_NOP = 13          # does nothing: measures the engine's own dispatch cost
    OP_MADVISE = 14      # madvise(pid, vpn, npages, advice): arg = the advice (MADV_*)
    OP_MOVE_PAGES = 15   # move_pages(pid, src_vpn=vpn, dst_vpn=arg, npages) (UFFDIO_MOVE)
    NR_OPS = 16

# madvise advice carried in a trace's `arg` (Linux's MADV_* numbers; mmbench.Advice)
cdef enum:
    MADV_DONTNEED = 4
    MADV_HUGEPAGE = 14
    MADV_NOHUGEPAGE = 15

# mmap flag bits carried in a trace's `arg` ------------------------------------
cdef enum:
    MAPF_SHARED = 1
    MAPF_WRITE = 2

cdef enum:
    VPN_BITS = 36                    # 48-bit virtual addresses, 4 KiB pages
    MAX_CACHES = 48                  # struct kinds a design may account
    PAGE_SIZE = 4096

# VPN_LIMIT (Python: mmbench.VPN_LIMIT) is 1 << VPN_BITS

# counters: one shared vocabulary; a key means the same thing in every design --
cdef enum:  # Counter ids
    C_FAULTS = 0            # every CPU fault the design took (sum of the kinds)
    C_FAULT_ZERO_PAGE       # read fault mapped the shared zero page
    C_FAULT_ZERO_FILL       # fault allocated and zeroed a new frame
    C_FAULT_COW_COPY        # write fault copied a shared frame
    C_FAULT_COW_REUSE       # write fault reused an exclusive frame in place
    C_FAULT_MINOR           # fault mapped a frame already in a cache/object/page cache
    C_FAULT_DEVICE_RETURN   # CPU fault brought a page back from a device
    C_FAULT_WP_SHARED       # write fault on a read-only PTE of a shared mapping
    C_PAGES_ZEROED
    C_PAGES_COPIED
    C_PTE_WRITES            # CPU page-table entries written (set, changed or cleared)
    C_PTE_ZAPS              # present CPU PTEs cleared (munmap, exit, dontneed, migration)
    C_TLB_FLUSHES           # TLB flush operations (a range flush counts once)
    C_PT_PAGES_ALLOC        # page-table pages allocated
    C_PT_PAGES_FREE
    C_RMAP_VISITS           # mappings visited by reverse-map walks
    C_CHAIN_STEPS           # backing-object / shadow chain steps during faults
    C_VMA_MERGES
    C_VMA_SPLITS
    C_OBJECTS_ALLOC         # design objects created (anon_vma, vm_object, inode, amap …)
    C_OBJECTS_FREE
    C_ANON_VMA_ALLOC
    C_AVC_ALLOC
    C_ANON_VMA_REUSE        # fork reused an ancestor anon_vma
    C_SHADOW_OBJECTS        # vm_object_shadow created a shadow
    C_COLLAPSES
    C_BYPASSES
    C_COW_PAGE_MOVES        # FreeBSD COW optimisation: page moved up instead of copied
    C_PV_ENTRIES
    C_XA_NODE_ALLOC
    C_XA_NODE_FREE
    C_I_MMAP_VISITS
    C_AMAP_COPIES
    C_ANON_ALLOC
    C_GM_MAPPING_ALLOC
    C_FORK_PTES_COPIED      # PTEs copied into a child by fork
    C_FORK_PTES_WRPROTECT   # PTEs write-protected by fork
    C_PAGES_TO_DEVICE
    C_PAGES_TO_HOST
    C_DMA_BYTES
    C_DMA_TRANSFERS
    C_NOTIFIER_CALLS
    C_NOTIFIER_INVALIDATED  # device page-table entries removed by notifiers
    C_DEVICE_FAULTS
    C_DEVICE_PTE_WRITES
    C_DEVICE_TLB_INVAL
    C_DEVICE_EVICTIONS      # device frames reclaimed to host under oversubscription
    C_REFLINK_CLONES        # shmem: private file clones made by fork
    C_MREMAP_PAGES_MOVED    # pages moved by mremap without copying data
    C_PAGECACHE_ADDS        # new frames inserted into a page cache (shmem_add_to_page_cache)
    # linux THP (vmstat thp_* events)
    C_THP_FAULT_ALLOC       # thp_fault_alloc: a fault mapped a new PMD-sized folio
    C_THP_FAULT_FALLBACK    # thp_fault_fallback: an eligible fault found no huge folio
    C_THP_SPLIT_PMD         # thp_split_pmd: a PMD mapping became 512 PTEs
    C_THP_ZERO_PAGE_MAP     # read fault mapped the huge zero folio with one PMD
    C_RESERV_ALLOC          # freebsd: superpage reservations made (vm_reserv_alloc_page)
    C_RESERV_FREED          # freebsd: reservations freed with their last page (vm.reserv.freed)
    C_RESERV_BROKEN         # freebsd: reservations broken by their object's death (vm.reserv.broken)
    C_RESERV_PAGES          # freebsd: pages populated from a reservation
    C_SUPERPAGE_PROMOTIONS  # freebsd: pmap_promote_pde successes (vm.pmap.pde.promotions)
    C_SUPERPAGE_DEMOTIONS   # freebsd: pmap_demote_pde (vm.pmap.pde.demotions)
    C_SUPERPAGE_P_FAILURES  # freebsd: promotion attempts that failed (vm.pmap.pde.p_failures)
    # linux mTHP, deferred split, khugepaged (vmstat thp_* events; mthp_* are the per-size
    # /sys/kernel/mm/transparent_hugepage/hugepages-<size>kB/stats summed over the sizes, PMD included)
    C_MTHP_ANON_FAULT_ALLOC     # mthp anon_fault_alloc: a fault mapped a new large anon folio (any order > 0)
    C_MTHP_ANON_FAULT_FALLBACK  # mthp anon_fault_fallback: a large-folio allocation of one order failed
    C_THP_DEFERRED_SPLIT_PAGE   # thp_deferred_split_page: a PMD-sized folio became partially mapped
    C_THP_SPLIT_PAGE            # thp_split_page: a PMD-sized folio (anon or page cache) was split into small folios
    C_MTHP_SPLIT_DEFERRED       # mthp split_deferred: a large folio (any order) became partially mapped
    C_MTHP_SPLIT                # mthp split: a large folio (any order) was split
    C_THP_COLLAPSE_ALLOC        # thp_collapse_alloc: khugepaged allocated a PMD folio to collapse into
    C_THP_SCAN_EXCEED_NONE_PTE  # thp_scan_exceed_none_pte: collapse refused, too many empty PTEs
    C_THP_SCAN_EXCEED_SHARE_PTE # thp_scan_exceed_share_pte: collapse refused, too many shared pages
    C_KHUGEPAGED_PAGES_SCANNED  # khugepaged scan progress in pages (HPAGE_PMD_NR per PMD range looked at)
    C_THP_FILE_ALLOC        # thp_file_alloc: a PMD-sized folio allocated into a page cache
    C_THP_FILE_FALLBACK     # thp_file_fallback: an eligible page-cache allocation got no huge folio
    C_THP_FILE_MAPPED       # thp_file_mapped: a page-cache folio mapped with one PMD (do_set_pmd)
    C_VMA_MERGE_FAILS       # a new or moved VMA met an adjacent neighbour of the same kind (flags,
                            #   file) and they stayed two VMAs (pgoff or anon_vma rules refused)
    C_MOVE_PAGES_MOVED      # move_pages: pages moved without copying (PTE + folio index/mapping)
    C_MOVE_PAGES_COPIED     # move_pages: pages whose data was copied (no move mechanism)
    C_ANON_RELOCATE_FOLIOS  # linux what-if mremap_relocate_anon: folios re-indexed by the walk
    C_THP_COPY_PMD              # linux: copy_huge_pmd gave a fork child a huge PMD of a folio (mmbench's
                                #   name, priced by calibration thp_copy_pmd; the zero folio not counted)
    C_THP_UNDERUSED_SPLIT_PAGE  # thp_underused_split_page: the shrinker split a THP with > max_ptes_none zero pages
    C_THP_SPLIT_PMD_EXCLUSIVE   # linux: of thp_split_pmd, splits of an AnonExclusive folio (RMAP_EXCLUSIVE marks its 512 pages)
    C_FAULT_AROUND_PAGES        # linux: pages do_fault_around mapped beside the faulting one
    NR_COUNTERS

ctypedef struct kmem_cache_t:
    char name[32]
    int64_t objsize          # bytes per object, the real kernel size
    int64_t active           # live objects
    int64_t allocs
    int64_t frees
    bint per_process         # must be back at zero after every process exited

# Delta accounting: `now` objects exist, `accounted[0]` of them are already in
# cache `c`; count the difference as allocations (or frees) and remember `now`.
# Returns the difference (> 0 allocated, < 0 freed) for the caller's counters.
cdef inline int64_t kmem_cache_sync(kmem_cache_t* c, int64_t* accounted, int64_t now) noexcept nogil:
    cdef int64_t d = now - accounted[0]
    c.active += d
    if d > 0:
        c.allocs += d
    else:
        c.frees -= d
    accounted[0] = now
    return d

# one trace record (matches mmbench.TRACE_DTYPE) ------------------------------
ctypedef packed struct trace_rec_t:
    uint8_t op
    uint8_t dev
    uint16_t _pad
    int32_t pid
    int64_t vpn
    int64_t npages
    uint64_t arg

cdef class Machine:
    cdef readonly int64_t ram_pages
    cdef readonly int ndevices
    cdef readonly int64_t device_pages
    cdef frames_t frames                 # host frames then each device's frames
    cdef uint64_t ctr[NR_COUNTERS]
    cdef kmem_cache_t caches[MAX_CACHES]
    cdef int ncaches
    # process table: pid -> design's per-process struct (NULL = dead/never)
    cdef void** procs
    cdef int64_t nprocs_cap
    cdef int64_t next_pid
    cdef int64_t live_procs
    # link model of the accelerators (pages per DMA transfer)
    cdef int64_t dma_batch_pages
    cdef object pending_exc              # exception raised by a Python-level backend
    cdef readonly dict options
    # one caller at a time (issue #20): the thread using the machine now and how deeply
    # (a design's hooks may call public methods again on the same thread); `live` is
    # set once Machine.__init__ succeeded, and every public method refuses a machine
    # without it (a subclass that skipped __init__) or a second __init__
    cdef unsigned long busy_owner
    cdef int busy_depth
    cdef bint live
    cdef public dict link                # the accelerator link model in use
    cdef public dict last_replay         # details of the last replay

    # --- building-block helpers for designs (all nogil, no Python objects)
    cdef int slab_register(self, str name, int64_t objsize, bint per_process=*) except -1
    cdef inline void kmem_alloc(self, int cache) noexcept nogil:
        self.caches[cache].active += 1
        self.caches[cache].allocs += 1
    cdef inline void kmem_free(self, int cache) noexcept nogil:
        self.caches[cache].active -= 1
        self.caches[cache].frees += 1
    cdef inline int64_t kmem_sync(self, int cache, int64_t* accounted, int64_t now) noexcept nogil:
        return kmem_cache_sync(&self.caches[cache], accounted, now)
    # kmem_sync that also adds the difference to counter c_alloc (or c_free)
    cdef inline void kmem_sync_counted(self, int cache, int64_t* accounted, int64_t now,
                                       int c_alloc, int c_free) noexcept nogil:
        cdef int64_t d = kmem_cache_sync(&self.caches[cache], accounted, now)
        if d > 0:
            self.ctr[c_alloc] += d
        elif d < 0:
            self.ctr[c_free] += -d
    cdef int64_t pid_install(self, void* proc) noexcept nogil        # -> new pid or MM_ENOMEM
    cdef void pid_release(self, int64_t pid) noexcept nogil
    cdef inline void* proc_of(self, int64_t pid) noexcept nogil:
        if pid <= 0 or pid >= self.next_pid:
            return NULL
        return self.procs[pid]
    cdef void dma_account(self, int64_t npages) noexcept nogil      # one copy over the link

    # --- the contract at C level (override these in a design)
    cdef int c_spawn(self, int64_t* pid_out) noexcept nogil
    cdef int c_mmap(self, int64_t pid, int64_t vpn, int64_t npages, uint64_t flags) noexcept nogil
    cdef int c_munmap(self, int64_t pid, int64_t vpn, int64_t npages) noexcept nogil
    cdef int c_mprotect(self, int64_t pid, int64_t vpn, int64_t npages, bint writable) noexcept nogil
    cdef int c_read(self, int64_t pid, int64_t vpn, uint64_t* out) noexcept nogil
    cdef int c_write(self, int64_t pid, int64_t vpn, uint64_t value) noexcept nogil
    cdef int c_fork(self, int64_t pid, int64_t* child_out) noexcept nogil
    cdef int c_exit(self, int64_t pid) noexcept nogil
    cdef int c_mremap(self, int64_t pid, int64_t old_vpn, int64_t npages, int64_t new_vpn) noexcept nogil
    cdef int c_madvise_dontneed(self, int64_t pid, int64_t vpn, int64_t npages) noexcept nogil
    # madvise with any advice; default: DONTNEED -> c_madvise_dontneed, huge-page
    # advice -> a Python backend's do_madvise (else MM_ENOTSUP: the design must
    # say whether the range is mapped, the base cannot)
    cdef int c_madvise(self, int64_t pid, int64_t vpn, int64_t npages, int advice) noexcept nogil
    cdef int c_migrate(self, int64_t pid, int64_t vpn, int64_t npages, int node) noexcept nogil
    cdef int c_device_read(self, int dev, int64_t pid, int64_t vpn, uint64_t* out) noexcept nogil
    cdef int c_device_write(self, int dev, int64_t pid, int64_t vpn, uint64_t value) noexcept nogil
    # move_pages (UFFDIO_MOVE): default = the generic copying fallback (move_pages_copy),
    # or a Python backend's do_move_pages
    cdef int c_move_pages(self, int64_t pid, int64_t src, int64_t dst, int64_t npages) noexcept nogil
    cdef int move_pages_copy(self, int64_t pid, int64_t src, int64_t dst, int64_t npages) noexcept
    # move_pages's check of one range: MM_ESEGV (a page unmapped), MM_EINVAL (a page
    # shared or read-only) or MM_OK; default through mappings(), a design overrides it
    # with its own lookup (a Python call per move would be most of a move's time)
    cdef int move_range_status(self, int64_t pid, int64_t vpn, int64_t npages) noexcept
    cdef int c_nop(self) noexcept nogil        # does nothing: the engine's dispatch cost
    cdef int c_check(self) noexcept nogil      # MM_OK, or MM_EINVAL with self.check_msg set
    cdef char check_msg[256]
    cdef int check_fail(self, const char* msg) noexcept nogil

    cdef int enter(self) except -1              # take the machine (public method entry)
    cdef inline void leave(self) noexcept:
        self.busy_depth -= 1
    cdef int _py(self, int hook, tuple args, uint64_t* out) noexcept

    # --- the engine
    cdef int dispatch(self, const trace_rec_t* r, uint64_t* out) noexcept nogil
