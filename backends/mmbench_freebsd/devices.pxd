# mmbench_freebsd.devices — the typed interface of FreeBSD with accelerators.
#
# FreeBSDDevMachine is the `freebsd` design plus device memory: a page of an
# anonymous vm_object can be replaced, at its pindex, by a fictitious vm_page
# whose physical address is device memory; every CPU mapping of the host page
# is removed through its pv entries first; a CPU fault that finds a
# fictitious page in the chain brings it home in place.  See devices.pyx.

from libc.stdint cimport int64_t, uint64_t, uint32_t
from mmbench.blocks.frames cimport pfn_t, MAX_NODES
from mmbench.blocks.devmirror cimport dev_mm_t, dev_side_t, devmem_t, move_stats_t
from mmbench_freebsd.core cimport FreeBSDMachine
from mmbench_freebsd.vm cimport vm_map_t, vm_map_entry_t

# A device mapping of a fictitious page: the device's pv entry.  The device is
# the page's own node; (pid, vpn) names the device page-table entry.
ctypedef struct dev_pv_t:
    int64_t pid
    int64_t vpn
    dev_pv_t* next


cdef class FreeBSDDevMachine(FreeBSDMachine):
    cdef dev_side_t ds             # per-pid notifiers and device page tables, their caches, DMA by direction
    cdef dev_pv_t** dev_pv         # by pfn - first device pfn: the page's device mappings
    cdef int64_t dev_pfn_base
    cdef int64_t dev_pfn_count
    cdef devmem_t devmem[MAX_NODES]    # per device: frames allocated, oldest first (lazily pruned)
    cdef int64_t device_fault_pages    # aligned block a device fault migrates

    # --- device page tables
    cdef void dev_invalidate(self, int64_t pid, int64_t start, int64_t end) noexcept nogil
    cdef int device_map(self, int64_t pid, int dev, int64_t vpn, pfn_t pfn, bint write) noexcept nogil
    cdef void dev_pv_clear(self, pfn_t pfn) noexcept nogil
    cdef int64_t dev_remove_all(self, pfn_t pfn) noexcept nogil

    # --- device memory
    cdef bint is_device_pfn(self, pfn_t pfn) noexcept nogil
    cdef pfn_t device_page_alloc(self, int dev) noexcept nogil

    # --- migration
    cdef int vm_page_migrate(self, pfn_t old, int node) noexcept nogil
    cdef int migrate_page(self, pfn_t pfn, int node, move_stats_t* ms) noexcept nogil
    cdef int migrate_map_range(self, vm_map_t* map, int64_t start, int64_t end, int node,
                               move_stats_t* ms) noexcept nogil
    cdef int fault_device_return(self, vm_map_t* map, int64_t vpn, bint write) noexcept nogil

    # --- device access
    cdef int64_t migrate_home_need(self, vm_map_t* map, int64_t start, int64_t end) noexcept nogil
    cdef int device_access(self, int dev, int64_t pid, int64_t vpn, bint write, uint64_t* val) noexcept nogil
    cdef int device_fault(self, int dev, vm_map_t* map, vm_map_entry_t* e, int64_t vpn, bint write) noexcept nogil

    # --- invariants
    cdef int check_devices(self) noexcept nogil
    cdef int check_mirrors(self, vm_map_t* map, dev_mm_t* h) noexcept nogil
    cdef int check_device_pages(self) noexcept nogil
