# mmbench_shmem.devices — the typed interface of shmem with accelerators.
#
# ShmemDevMachine is the `shmem` design plus device memory: a page of a file
# can live in device memory, the file's i_pages slot then names the device
# frame (a device entry in the page cache), every CPU mapping of that file
# offset is gone (unmapped through i_mmap), and a CPU fault on the offset
# brings the page home.  See devices.pyx for the design essay.

from libc.stdint cimport int64_t, uint64_t, int32_t
from mmbench.blocks.frames cimport pfn_t, MAX_NODES
from mmbench.blocks.devmirror cimport dev_mm_t, dev_side_t, devmem_t, move_stats_t
from mmbench_shmem.core cimport ShmemMachine
from mmbench_shmem.objects cimport mm_struct, vm_area_struct, shmem_inode_info

cdef class ShmemDevMachine(ShmemMachine):
    cdef dev_side_t ds             # per-pid notifiers and device page tables, their caches, DMA by direction
    cdef devmem_t devmem[MAX_NODES]    # per device: frames in use, oldest first
    cdef int kc_devpage
    cdef int64_t device_fault_pages    # aligned block a device fault migrates

    # --- device memory
    cdef bint is_device_pfn(self, pfn_t pfn) noexcept nogil
    cdef pfn_t device_page_alloc(self, int dev) noexcept nogil
    cdef void device_page_free(self, pfn_t pfn) noexcept nogil

    # --- migration through the page cache
    cdef int64_t unmap_mapping_page(self, shmem_inode_info* f, uint64_t pgoff) noexcept nogil
    cdef int move_frame(self, shmem_inode_info* f, uint64_t pgoff, pfn_t old, int node) noexcept nogil
    cdef int hole_to_device(self, shmem_inode_info* f, uint64_t pgoff, int dev) noexcept nogil
    cdef int migrate_file_page(self, shmem_inode_info* f, uint64_t pgoff, int node,
                               move_stats_t* ms) noexcept nogil
    cdef int device_map_page(self, mm_struct* mm, vm_area_struct* v, uint64_t vpn, int dev) noexcept nogil
    cdef int64_t migrate_host_frames(self, mm_struct* mm, uint64_t start, uint64_t end,
                                     int node) noexcept nogil
    cdef int migrate_range(self, mm_struct* mm, uint64_t start, uint64_t end, int node,
                           move_stats_t* ms) noexcept nogil

    # --- device access
    cdef int device_access(self, int dev, int64_t pid, int64_t vpn, bint write, uint64_t* val) noexcept nogil
    cdef int device_fault(self, int dev, mm_struct* mm, vm_area_struct* vma, uint64_t vpn,
                          bint write) noexcept nogil

    # --- invariants
    cdef int check_devices(self) noexcept nogil
    cdef int check_mirrors(self, mm_struct* mm) noexcept nogil
