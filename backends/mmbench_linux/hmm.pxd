# mmbench_linux.hmm — the typed interface of Linux + HMM (device-private memory).
#
# LinuxHMMMachine is the `linux` design with accelerators: migrate_vma_setup /
# migrate_vma_pages / migrate_vma_finalize move anonymous pages into device
# memory behind device-private PTE entries, a CPU fault on such an entry runs
# the device's migrate_to_ram, and every device keeps a dmirror-like page table
# kept coherent through mmu_interval_notifier invalidations.  See hmm.pyx for
# the design essay.  gmem derives from this class (it reuses the device side:
# device memory, device page tables, eviction, the notifier plumbing).

from libc.stdint cimport int64_t, uint64_t, int32_t
from mmbench.blocks.frames cimport pfn_t, MAX_NODES
from mmbench.blocks.pagetable cimport pt_node_t
from mmbench.blocks.devmirror cimport dev_mm_t, dev_side_t, devmem_t
from mmbench_linux.core cimport LinuxMachine
from mmbench_linux.mm cimport mm_t, vma_t, vm_fault_t

# How a device fault resolves (option `device_fault`).
cdef enum:
    DEVFAULT_MIGRATE = 0           # migrate on fault by an aligned range (SVM drivers: amdgpu 2 MiB)
    DEVFAULT_REMOTE = 1            # map host pages remotely, 32 per hmm_range_fault (lib/test_hmm.c)


cdef class LinuxHMMMachine(LinuxMachine):
    cdef dev_side_t ds             # per-pid notifiers and device page tables, their caches, DMA by direction
    cdef devmem_t devmem[MAX_NODES]    # per device: frames in use, oldest first
    cdef int kc_devpage
    cdef int device_fault_mode
    cdef int64_t device_fault_pages    # aligned block a migrating fault moves, each way
    cdef int32_t* chk_devmaps      # scratch of c_check: device-private PTEs per device frame

    # --- notifier and device page tables
    cdef void mmu_notify(self, mm_t* mm, uint64_t start, uint64_t end, int owner) noexcept nogil
    cdef int device_map(self, mm_t* mm, int dev, uint64_t vpn, pfn_t pfn, bint write) noexcept nogil

    # --- device memory (oversubscription)
    cdef pfn_t device_page_alloc(self, int dev) noexcept nogil
    cdef void device_page_free(self, pfn_t pfn) noexcept nogil
    cdef int device_reserve(self, int dev, int64_t n) noexcept nogil
    cdef int evict_device_page(self, pfn_t pfn) noexcept nogil
    cdef bint is_device_pfn(self, pfn_t pfn) noexcept nogil

    # --- migration
    cdef int migrate_vma_to_device(self, mm_t* mm, vma_t* vma, uint64_t start, uint64_t end, int dev) noexcept nogil
    cdef int migrate_chunk_to_device(self, mm_t* mm, vma_t* vma, uint64_t cs, uint64_t ce, int dev) noexcept nogil
    cdef int migrate_one_to_device(self, mm_t* mm, vma_t* vma, pt_node_t* t, uint64_t vpn, int dev,
                                   int64_t* copies, int64_t* zaps) noexcept nogil
    cdef void migrate_collect_flush(self, int64_t unmapped) noexcept nogil
    cdef bint devpriv_of(self, uint64_t pte, int dev) noexcept nogil
    cdef int migrate_vma_to_ram(self, mm_t* mm, vma_t* vma, uint64_t start, uint64_t end, int dev) noexcept nogil
    cdef int migrate_vma_node(self, mm_t* mm, vma_t* v, uint64_t start, uint64_t end, int node) noexcept nogil
    cdef int64_t migrate_home_need(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil
    cdef int migrate_to_ram(self, pfn_t dpfn, mm_t* mm, uint64_t vpn) noexcept nogil
    cdef int64_t rmap_replace(self, pfn_t old, pfn_t new, uint64_t kind, mm_t* mm, uint64_t vpn) noexcept nogil

    # --- device access
    cdef int device_access(self, int dev, int64_t pid, int64_t vpn, bint write, uint64_t* val) noexcept nogil
    cdef int device_fault(self, int dev, mm_t* mm, vma_t* vma, uint64_t vpn, bint write) noexcept nogil
    cdef int hmm_range_fault(self, int dev, mm_t* mm, vma_t* vma, uint64_t start, uint64_t end,
                             uint64_t want, bint write) noexcept nogil
    cdef int hmm_fault_one(self, int dev, mm_t* mm, vma_t* vma, uint64_t vpn, bint write) noexcept nogil
    cdef int hmm_map_one(self, int dev, mm_t* mm, uint64_t vpn) noexcept nogil
    cdef int cpu_fault(self, mm_t* mm, vma_t* vma, uint64_t vpn, bint write) noexcept nogil

    # --- invariants
    cdef int check_devices(self) noexcept nogil
    cdef int check_mirrors(self, int64_t pid) noexcept nogil
    cdef int check_dpte(self, mm_t* mm, int dev, uint64_t vpn, uint64_t e) noexcept nogil
