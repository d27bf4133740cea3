# mmbench_gmem.core — the typed interface of the `gmem` design.
#
# gmem = Linux VMAs and CPU page tables (mmbench_linux) + one vm_object per
# process whose logical page table maps every touched block (2 MiB by default)
# of peer-shared memory to a gm_mapping saying where the block is: nowhere yet
# (NOMAP), in host frames mapped by the CPU page table (CPU), or in one
# device's memory (DEVICE), never both.  Memory is peer-shared only on a
# machine with devices (a device context).  The device side (device memory, device page tables,
# FIFO eviction) is reused from mmbench_linux.hmm.  See core.pyx.

from libc.stdint cimport int64_t, uint64_t, uint32_t
from mmbench.blocks.frames cimport pfn_t
from mmbench.blocks.xarray cimport xarray_t
from mmbench.blocks.handles cimport handles_t, handles_get
from mmbench.blocks.pagetable cimport pt_node_t
from mmbench_linux.mm cimport mm_t, vma_t, vm_fault_t
from mmbench_linux.hmm cimport LinuxHMMMachine

# vm_flags bit of MAP_PEER_SHARED VMAs: a high bit (56) that no flag of the linux
# design uses (its madvise flags VM_HUGEPAGE / VM_NOHUGEPAGE sit at bits 29 and 30,
# so a low bit would be cleared or faked by madvise).  VMAs with and without it
# never merge because their flags differ.
from libc.stdint cimport uint64_t
cdef extern from *:
    """
    #define MMBENCH_VM_PEER_SHARED (1ULL << 56)
    """
    const uint64_t VM_PEER_SHARED "MMBENCH_VM_PEER_SHARED"

# gm_mapping flags (include/linux/gmem.h of the RFC)
cdef enum:
    GM_PAGE_CPU = 0x10
    GM_PAGE_DEVICE = 0x20
    GM_PAGE_NOMAP = 0x40
    GM_PAGE_WILLNEED = 0x80
    GM_PAGE_TYPE_MASK = 0x70

# struct gm_mapping (48 B in the kernel: flag, page/dev/pfn union, struct mutex).
# One per granularity block of peer-shared memory, keyed by the block's first
# vpn (va >> PAGE_SHIFT of the 2 MiB-aligned address on the RFC's huge-page
# path).  The model keeps, for a DEVICE block, the device frame of each page
# of the block: the driver's own record of the device memory it peer_mapped
# (a simulator array, not kernel memory).  The mutex is accounted in the 48 B
# and never contended (the model is single-threaded).
#
# The simulator stores a gm_mapping as one 64-bit word, in the logical page
# table's own slot for the block (no record of its own; the kernel's 48 B are
# still charged to kc_gm_mapping per gm_mapping):
#
#   bits  0..7   flag   GM_PAGE_*; one type bit is always set, so the word is
#                       never 0 (0 is an empty slot)
#   bits  8..31  dev    GM_PAGE_DEVICE: the device holding the block
#   bits 32..63  pages  0: no frame array; else 1 + the array's number in
#                       GmemMachine.gm_frames (a handles table)
#
# A gm_mapping_t* is the address of that slot (xa_load_slot): it stays valid
# while the gm_mapping lives, whatever else the table gains or loses, and the
# fields are read and written in place through the accessors below.
ctypedef uint64_t gm_mapping_t

cdef enum:
    GM_DEV_SHIFT = 8
    GM_PAGES_SHIFT = 32

cdef inline uint64_t gm_word(uint32_t flag, int dev, int64_t pages_nr) noexcept nogil:
    """A gm_mapping: flag, device, frame array number (-1: none)."""
    return flag | (<uint64_t>dev << GM_DEV_SHIFT) | (<uint64_t>(pages_nr + 1) << GM_PAGES_SHIFT)

cdef inline uint32_t gm_flag(gm_mapping_t* gm) noexcept nogil:
    return <uint32_t>(gm[0] & 0xff)

cdef inline void gm_set_flag(gm_mapping_t* gm, uint32_t flag) noexcept nogil:
    gm[0] = (gm[0] & ~(<uint64_t>0xff)) | flag

cdef inline int gm_dev(gm_mapping_t* gm) noexcept nogil:
    return <int>((gm[0] >> GM_DEV_SHIFT) & 0xffffff)

cdef inline int64_t gm_pages_nr(gm_mapping_t* gm) noexcept nogil:
    """The number of the block's frame array in gm_frames; -1: none."""
    return <int64_t>(gm[0] >> GM_PAGES_SHIFT) - 1

cdef inline pfn_t* gm_pages(handles_t* gm_frames, gm_mapping_t* gm) noexcept nogil:
    """GM_PAGE_DEVICE: the frame of each page of the block (NO_PFN: a hole); else,
    or for no gm_mapping (NULL), NULL."""
    cdef int64_t nr
    if gm == NULL:
        return NULL
    nr = gm_pages_nr(gm)
    return <pfn_t*>handles_get(gm_frames, nr) if nr >= 0 else NULL

# struct vm_object (24 B) + its kmalloc'd xarray (16 B): one per mm.
ctypedef struct vm_object_t:
    xarray_t logical_page_table    # block's first vpn -> its gm_mapping (the word itself)
    int64_t nr_pages               # gm_mappings in the table
    int64_t xa_acct                # xa_nodes accounted
    mm_t* mm                       # owner (the kernel's mm->vm_obj back-pointer)


cdef class GmemMachine(LinuxHMMMachine):
    cdef vm_object_t** objs        # by pid; NULL until the first gm_mapping
    cdef int64_t objs_cap
    cdef int64_t granularity       # pages per gm_mapping and per device fault (512 = HPAGE_SIZE)
    cdef int kc_vm_object, kc_lpt_xarray, kc_gm_mapping, kc_lpt_xa
    cdef int kc_hnode, kc_hnode_gm, kc_hnode_xa   # gm_dev_register_physmem, static per device
    cdef int64_t hnode_acct[3]
    cdef bint all_peer_shared      # option peer_shared="all" (else only mmap_peer_shared VMAs)
    cdef handles_t gm_frames       # DEVICE blocks' frame arrays (granularity pfns each), numbered

    # --- peer-shared memory
    cdef bint peer_shared(self, vma_t* v) noexcept nogil
    cdef vma_t* peer_vma_from(self, mm_t* mm, uint64_t vpn, uint64_t end, uint64_t* s,
                              uint64_t* e) noexcept nogil
    cdef int64_t peer_pages(self, mm_t* mm, uint64_t b) noexcept nogil

    # --- vm_object and the logical page table
    cdef vm_object_t* obj_of(self, mm_t* mm) noexcept nogil
    cdef vm_object_t* obj_get(self, mm_t* mm) noexcept nogil
    cdef void obj_free(self, int64_t pid) noexcept nogil
    cdef void lpt_sync(self, vm_object_t* obj) noexcept nogil
    cdef gm_mapping_t* gm_lookup(self, mm_t* mm, uint64_t vpn) noexcept nogil
    cdef gm_mapping_t* gm_get(self, mm_t* mm, uint64_t vpn) noexcept nogil
    cdef void free_gm_mappings(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil
    cdef void unmap_gm_mappings_range(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil
    cdef int gm_cpu_populate(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil
    cdef int gm_cpu_mark(self, mm_t* mm, uint64_t vpn) noexcept nogil
    cdef int gm_premap(self, mm_t* mm, uint64_t old, uint64_t n, uint64_t new) noexcept nogil
    cdef int64_t gm_home_tables(self, mm_t* mm, uint64_t start, uint64_t end, uint64_t* made,
                                int64_t nmade, int64_t* need_av) noexcept nogil
    cdef void gm_home_release(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil
    cdef void gm_home_tables_free(self, mm_t* mm, uint64_t* made, int64_t nmade) noexcept nogil
    cdef int gm_mremap_reserve(self, mm_t* mm, uint64_t old, uint64_t n, uint64_t new) noexcept nogil
    cdef int64_t migrate_home_need(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil

    # --- device memory of gm blocks, the device side (gm_mmu ops)
    cdef pfn_t gm_frame_alloc(self, int dev, vm_object_t* obj, uint64_t vpn) noexcept nogil
    cdef void gm_release_frames(self, mm_t* mm, uint64_t b, gm_mapping_t* gm, uint64_t start,
                                uint64_t end) noexcept nogil
    cdef void gm_touch(self, gm_mapping_t* gm) noexcept nogil
    cdef int64_t gm_eviction_cost(self, int dev, int64_t need) noexcept nogil
    cdef bint gm_can_make_room(self, int dev, int64_t need) noexcept nogil
    cdef int device_reserve(self, int dev, int64_t n) noexcept nogil
    cdef int gm_device_reserve(self, int dev, int64_t need) noexcept nogil
    cdef void peer_unmap(self, mm_t* mm, int dev, uint64_t start, uint64_t end) noexcept nogil
    cdef int peer_map(self, mm_t* mm, uint64_t b, gm_mapping_t* gm) noexcept nogil

    # --- migration
    cdef int gm_dev_fault(self, int dev, mm_t* mm, uint64_t b) noexcept nogil
    cdef int64_t gm_fill_block(self, int dev, mm_t* mm, uint64_t b, gm_mapping_t* gm,
                               pfn_t* pages, pfn_t* src) noexcept nogil
    cdef int gm_host_fault(self, mm_t* mm, uint64_t b, gm_mapping_t* gm) noexcept nogil
    cdef int gm_range_to_host(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil
    cdef int gm_migrate_range(self, mm_t* mm, uint64_t start, uint64_t end, int dev) noexcept nogil
    cdef int64_t gm_count_device(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil

    # --- invariants
    cdef int check_gmem(self, int64_t pid, int64_t* ndev, int64_t* ndevblk) noexcept nogil
    cdef int check_gm(self, mm_t* mm, vm_object_t* obj, uint64_t b, gm_mapping_t* gm,
                      int64_t* ndev) noexcept nogil
    cdef int check_device_frames(self, int64_t ngm) noexcept nogil
