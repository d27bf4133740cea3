# mmbench_shmem.core — ShmemMachine: the design's state and its C-level phases.
from libc.stdint cimport int64_t, uint64_t, int32_t
from mmbench.core cimport Machine
from mmbench.blocks.frames cimport pfn_t
from mmbench.blocks.pagetable cimport pt_node_t
from mmbench_shmem.objects cimport mm_struct, vm_area_struct, shmem_inode_info

cdef enum:
    NR_SPARE_VMAS = 2            # __split_vma needs at most two new VMAs per operation

# One fault, from lookup to the PTE installed.  The driver (handle_mm_fault)
# fills the first group; the handlers fill `pfn`.
ctypedef struct vm_fault:
    # --- set by the driver
    mm_struct* mm
    vm_area_struct* vma
    uint64_t vpn
    uint64_t pgoff               # file offset backing vpn
    bint write
    pt_node_t* pmd_table         # PMD table holding vpn's entry (allocated)
    pt_node_t* pte_table         # leaf table holding vpn, NULL while the PMD is none
    pt_node_t* prealloc_pte      # PTE table taken before the fault, installed by finish_fault
    uint64_t orig_pte            # PTE before the fault (0: none)
    # --- set by the handler
    pfn_t pfn                    # frame mapped now (ZERO_PFN for the zero page)

cdef class ShmemMachine(Machine):
    cdef shmem_inode_info* s_inodes         # every live inode
    cdef uint64_t next_ino
    cdef vm_area_struct* spare[NR_SPARE_VMAS]
    cdef int nr_spare
    # slab cache ids
    cdef int kc_vma, kc_maple, kc_inode, kc_file, kc_group, kc_xa, kc_page, kc_mm
    # design options (see ShmemMachine.option_defaults)
    cdef bint file_per_mm        # anon_file="per_mm": one private file per mm, pgoff = vpn
    cdef bint zero_page          # private read holes map the shared zero page
    cdef readonly str huge       # huge= of the internal mount, from the thp option
    cdef int huge_mode           # the same as SHMEM_HUGE_*
    cdef int kc_pt[4]

    # accounting
    cdef void sync_pt(self, mm_struct* mm) noexcept nogil
    cdef void sync_xa(self, shmem_inode_info* inode) noexcept nogil
    cdef void sync_maple(self, mm_struct* mm) noexcept nogil
    # frames and PTEs
    cdef pfn_t alloc_zeroed_frame(self) noexcept nogil
    cdef void put_frame(self, pfn_t pfn) noexcept nogil
    cdef void set_pte(self, pt_node_t* t, uint64_t vpn, pfn_t pfn, bint writable) noexcept nogil
    cdef void pte_clear(self, pt_node_t* t, uint64_t vpn) noexcept nogil
    cdef void zap_pte(self, pt_node_t* t, uint64_t vpn) noexcept nogil
    cdef int64_t zap_range(self, mm_struct* mm, uint64_t start, uint64_t end) noexcept nogil
    cdef int64_t wrprotect_range(self, mm_struct* mm, uint64_t start, uint64_t end) noexcept nogil
    # page cache
    cdef int add_to_page_cache(self, shmem_inode_info* inode, uint64_t pgoff, pfn_t* out) noexcept nogil
    cdef void shmem_truncate(self, shmem_inode_info* inode, uint64_t start, uint64_t end) noexcept nogil
    cdef shmem_inode_info* inode_new(self, bint private, shmem_inode_info* clone_of) noexcept nogil
    cdef void iput(self, shmem_inode_info* inode) noexcept nogil
    # VMAs
    cdef int vma_prealloc(self, mm_struct* mm) noexcept nogil
    cdef vm_area_struct* vma_take(self) noexcept nogil
    cdef void vma_put(self, vm_area_struct* vma) noexcept nogil
    cdef void split_at(self, mm_struct* mm, uint64_t addr) noexcept nogil
    cdef void merge_range(self, mm_struct* mm, uint64_t start, uint64_t end) noexcept nogil
    cdef int64_t unmap_vma(self, mm_struct* mm, int64_t idx) noexcept nogil
    cdef void free_pgtables(self, mm_struct* mm, uint64_t start, uint64_t end) noexcept nogil
    # large folios and PMD mappings (huge=)
    cdef bint shmem_huge_enabled(self, vm_area_struct* vma, uint64_t pgoff) noexcept nogil
    cdef int shmem_alloc_and_add_folio(self, vm_fault* vmf, pfn_t* out) noexcept nogil
    cdef int finish_fault(self, vm_fault* vmf, pfn_t pfn, bint writable) noexcept nogil
    cdef bint do_set_pmd(self, vm_fault* vmf, pfn_t pfn, bint writable) noexcept nogil
    cdef void pmd_install(self, vm_fault* vmf) noexcept nogil
    cdef void pmd_clear(self, mm_struct* mm, uint64_t haddr) noexcept nogil
    cdef void split_huge_pmd(self, mm_struct* mm, uint64_t haddr) noexcept nogil
    cdef int64_t zap_huge_pmds(self, mm_struct* mm, uint64_t start, uint64_t end) noexcept nogil
    cdef void split_huge_page(self, shmem_inode_info* inode, uint64_t index) noexcept nogil
    cdef void truncate_partial_folio(self, shmem_inode_info* inode, uint64_t idx) noexcept nogil
    cdef void unmap_mapping_folio(self, shmem_inode_info* f, uint64_t first) noexcept nogil
    cdef void split_at_boundary(self, mm_struct* mm, uint64_t addr) noexcept nogil
    cdef int check_huge_pmds(self, mm_struct* mm, int32_t* refs, int32_t* maps) noexcept nogil
    # faults
    cdef int handle_mm_fault(self, vm_fault* vmf) noexcept nogil
    cdef int shmem_fault_shared(self, vm_fault* vmf) noexcept nogil
    cdef int do_read_fault(self, vm_fault* vmf) noexcept nogil
    cdef shmem_inode_info* private_file_for(self, mm_struct* mm, uint64_t vpn, uint64_t npages) noexcept nogil
    cdef int do_cow_fault(self, vm_fault* vmf) noexcept nogil
    cdef int do_wp_page(self, vm_fault* vmf) noexcept nogil
    cdef int break_reflink(self, vm_fault* vmf, pfn_t old) noexcept nogil
    cdef int fault_in(self, mm_struct* mm, uint64_t vpn, bint write, pfn_t* out) noexcept nogil
    # fork / exit
    cdef mm_struct* mm_alloc(self) noexcept nogil
    cdef void exit_mmap(self, mm_struct* mm) noexcept nogil
    cdef int dup_mmap(self, mm_struct* parent, mm_struct* child) noexcept nogil
    cdef shmem_inode_info* clone_for_child(self, shmem_inode_info* file) noexcept nogil
    cdef void fork_wrprotect(self, mm_struct* parent) noexcept nogil
    cdef void move_ptes(self, mm_struct* mm, uint64_t old, uint64_t new, uint64_t n) noexcept nogil
    # invariants
    cdef bint pfn_valid(self, pfn_t pfn) noexcept nogil   # may a page cache name pfn?
    cdef int check_vmas(self, mm_struct* mm) noexcept nogil
    cdef int check_inodes(self) noexcept nogil
    cdef int check_frames(self) noexcept nogil
    cdef int64_t check_frames_span(self) noexcept nogil
    cdef int check_device_frames(self, int32_t* refs, int32_t* maps) noexcept nogil
    cdef int check_page_caches(self, int32_t* refs) noexcept nogil
    cdef int check_ptes(self, int32_t* refs, int32_t* maps) noexcept nogil
    cdef int check_frame_counts(self, int32_t* refs, int32_t* maps) noexcept nogil
    cdef list _i_mmap_mappers(self, shmem_inode_info* f, uint64_t pgoff, pfn_t pfn)
