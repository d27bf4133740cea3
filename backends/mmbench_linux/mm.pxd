# mmbench_linux.mm — the typed state of the `linux` design and its first layer.
#
# The state of one simulated Linux mm: per process an mm_struct (page tables +
# the ordered VMA set), per VMA a vm_area_struct, and the anonymous reverse map
# (anon_vma + anon_vma_chain).  Shared anonymous mappings hang off a shmem-like
# file (page cache + i_mmap).  The design essay opens core.pyx.
#
# The class is built in three layers, one module each (a Cython class cannot
# span files):  LinuxMM (mm.pyx: accounting, VMA set, split/merge, anon_vma)
#   <- LinuxFault (fault.pyx: the fault path, rmap walks)
#   <- LinuxMachine (core.pyx: fork, unmap, mprotect, mremap, the contract, c_check).
# A design built on Linux (gmem) cimports LinuxMachine from mmbench_linux.core and
# these types from here, and overrides the phases it changes.

from libc.stdint cimport int64_t, uint64_t, int32_t, uint32_t
from mmbench.core cimport Machine
from mmbench.blocks.frames cimport pfn_t, frame_t, FR_DESIGN0, FR_DESIGN2, FR_DESIGN3
from mmbench.blocks.pagetable cimport (pgtable_t, pt_node_t, pt_leaf, pt_find_leaf, pt_get, pt_pmd_table, pmd_leaf, mk_pte,
                                       pte_pfn, PMD_PSE, PTE_SPECIAL, PTE_PFN_SHIFT)
from mmbench.blocks.pmdleaf cimport pmd_leaf_lookup
from mmbench.blocks.spares cimport spares_t, spares_fill, spares_take, spares_trim
from mmbench.blocks.itree cimport itnode_t, itree_t
from mmbench.blocks.pagecache cimport address_space_t
from mmbench_linux.maple cimport maple_tree_t

# vm_flags bits (values of include/linux/mm.h) ----------------------------------
cdef enum:
    VM_READ = 0x1
    VM_WRITE = 0x2
    VM_SHARED = 0x8
    VM_MAYREAD = 0x10
    VM_MAYWRITE = 0x20
    VM_MAYSHARE = 0x80
    VM_ACCOUNT = 0x100000          # private writable memory charged to overcommit
    VM_HUGEPAGE = 0x20000000       # madvise(MADV_HUGEPAGE)
    VM_NOHUGEPAGE = 0x40000000     # madvise(MADV_NOHUGEPAGE)
    VM_ACCESS_FLAGS = 0x7          # VM_READ | VM_WRITE | VM_EXEC

# FAULT_FLAG_* (the subset the model needs) -------------------------------------
cdef enum:
    FAULT_FLAG_WRITE = 0x1

# Status of a fault phase.  Errors reuse the contract's MM_E* values so a
# phase's status can be returned from a c_* method unchanged.
cdef enum vm_fault_status:
    VM_FAULT_DONE = 0              # the PTE now allows the access
    VM_FAULT_SIGSEGV = -1          # no VMA (MM_ESEGV)
    VM_FAULT_ACCESS = -2           # access_error: write to a read-only VMA (MM_EPROT)
    VM_FAULT_OOM = -4              # no free frame / no memory for a table (MM_ENOMEM)
    VM_FAULT_FALLBACK = 1          # the PMD level did not resolve it: go on at the PTE level

cdef struct anon_vma_t
cdef struct avc_t
cdef struct vma_t
cdef struct mm_t
cdef struct shmem_t

# struct anon_vma (104 B in slabinfo).  Lives while its interval tree holds an
# AVC or a descendant anon_vma holds a reference on it (root only).
cdef struct anon_vma_t:
    anon_vma_t* root               # family root (self for a root)
    anon_vma_t* parent             # anon_vma of the VMA this was forked from (self for a root)
    int64_t refcount               # 1 + live descendants (root), 1 otherwise
    int64_t num_children           # anon_vmas whose parent is this one (a root counts itself)
    int64_t num_active_vmas        # VMAs whose vma->anon_vma is this one
    itree_t rb_root                # AVCs, keyed by the VMA's [vm_pgoff, vm_pgoff + pages - 1]
    # scratch of c_check (simulator only); chk_seen: mark of the last check pass here
    int64_t chk_seen, chk_active, chk_children, chk_refs

# struct anon_vma_chain (64 B): links one VMA to one anon_vma.
cdef struct avc_t:
    itnode_t rb                    # node in anon_vma->rb_root (first: itnode_t* == avc_t*)
    vma_t* vma
    anon_vma_t* anon_vma
    avc_t* same_vma                # next AVC of the same VMA (newest first, its own anon_vma at the head)

# struct vm_area_struct (192 B).
cdef struct vma_t:
    itnode_t shared_rb             # node in vm_file's i_mmap (first: itnode_t* == vma_t*)
    uint64_t vm_start              # first vpn
    uint64_t vm_end                # vpn after the last
    uint64_t vm_pgoff              # private anon: vm_start at mmap time; shared: file page offset
    uint64_t vm_flags
    mm_t* vm_mm
    anon_vma_t* anon_vma           # set by the first write fault (anon_vma_prepare) or fork
    avc_t* anon_vma_chain          # head of the same_vma list
    int64_t nr_avc                 # list length (1 = singular; > 1 = a fork child)
    shmem_t* vm_file               # shared mappings: the shmem object (shmem_zero_setup)
    void* vm_private_data          # free for designs built on this one (copied by vm_area_dup)

# struct mm_struct: page tables + the VMA set, ordered by address.  The kernel
# keeps VMAs in a maple tree; the model looks VMAs up in a sorted array of
# pointers (the block mmbench.blocks.vmaset over vmas / nr_vmas / cap_vmas) and replays every store of the kernel on a simulated maple tree
# (maple.pyx) whose nodes are the maple_node objects accounted.
cdef struct mm_t:
    int64_t pid
    pgtable_t pgd
    vma_t** vmas                   # sorted by vm_start, non-overlapping
    int64_t nr_vmas
    int64_t cap_vmas
    int64_t mmap_cache             # index of the last VMA found (simulator shortcut, not modelled)
    uint64_t leaf_key              # vpn >> 9 of leaf_cache, or ~0 (simulator shortcut: a one-entry
    pt_node_t* leaf_cache          #   "TLB" of PTE tables; dropped whenever tables are freed)
    int64_t pt_acct[4]             # page tables accounted in the caches, per level
    maple_tree_t mm_mt             # the maple tree's shape: leaves hold the VMAs and the gaps
    int64_t maple_nodes            # maple_node objects accounted for this tree
    int64_t rss_anon               # MM_ANONPAGES
    int64_t rss_shmem              # MM_SHMEMPAGES
    int64_t nr_huge_pmd            # PMD leaves (THPs and the huge zero folio) mapped now
    void* design_private           # free for designs built on this one (gmem: the per-process
                                   #   vm_object); NULL in linux, never touched by it

# A shmem inode behind a shared anonymous mapping (shmem_zero_setup).
cdef struct shmem_t:
    address_space_t mapping        # page cache + i_mmap
    int64_t refcount               # VMAs referring to the file (get_file per VMA)
    int64_t xa_acct                # xa_nodes accounted in the xa_node cache
    int64_t chk                    # scratch of c_check (simulator only)

# The fault context: one per fault, filled phase by phase.
ctypedef struct vm_fault_t:
    # set by the caller, the "CPU" (c_read / c_write / a design's device path):
    # the access, the VMA it found and checked (access_error), its page-table walk
    mm_t* mm
    uint64_t address               # faulting vpn
    uint32_t flags                 # FAULT_FLAG_*
    vma_t* vma
    pt_node_t* pte_table           # leaf table of address; NULL until pte_alloc
    uint64_t orig_pte              # the PTE the access saw
    uint64_t orig_pmd              # the PMD leaf the access saw (handle_pmd_fault)
    # set by handle_mm_fault
    uint64_t pgoff                 # linear_page_index(vma, address)
    # set by the handler that resolved the fault
    pfn_t pfn                      # frame now mapped (ZERO_PFN for the zero page)
    int kind                       # C_FAULT_* counter charged



cdef enum:
    FR_ANON = FR_DESIGN0            # PageAnon: frame->owner is an anon_vma
    FR_LARGE = FR_DESIGN2           # page of a large anon folio: frame->aux is the folio order and
                                    #   the head is pfn & ~(nr - 1) (folios are naturally aligned)
    FR_PARTIAL = FR_DESIGN3         # head only: PG_partially_mapped (set by deferred_split_folio)
    MTHP_MIN_ORDER = 2              # smallest anon mTHP order (16 kB): order 1 has no _deferred_list
    HPAGE_PMD_ORDER = 9
    FAULT_AROUND_PAGES = 16         # fault_around_bytes 64 KiB
    HPAGE_PMD_NR = 512              # pages under one PMD entry (2 MiB)

# What the model keeps per large folio beyond its pages' descriptors (struct folio's
# _nr_pages_mapped and _deferred_list), indexed by head pfn >> MTHP_MIN_ORDER.
ctypedef struct folio_meta_t:
    int32_t nr_live                # pages of the folio still referenced (mapped somewhere)
    int32_t ds_slot                # 1 + its position on the deferred split queue; 0: not queued

# /sys/kernel/mm/transparent_hugepage/enabled, from the design option thp
cdef enum:
    THP_NEVER = 0
    THP_MADVISE = 1
    THP_ALWAYS = 2


# offsetof(vma_t, vm_start): where mmbench.blocks.vmaset reads a VMA's range
cdef inline size_t vma_span() noexcept nogil:
    return <size_t>&(<vma_t*>NULL).vm_start


cdef inline uint64_t vma_pages(vma_t* v) noexcept nogil:
    return v.vm_end - v.vm_start


cdef inline uint64_t linear_page_index(vma_t* v, uint64_t vpn) noexcept nogil:
    return v.vm_pgoff + (vpn - v.vm_start)


cdef inline uint64_t pmd_leaf_at(mm_t* mm, uint64_t vpn) noexcept nogil:
    """The PMD leaf mapping vpn, or 0."""
    return pmd_leaf_lookup(&mm.pgd, mm.nr_huge_pmd, vpn)


cdef inline uint64_t pmd_subpage_pte(uint64_t pmd, uint64_t vpn) noexcept nogil:
    """The PTE a split would write for vpn under PMD leaf `pmd`."""
    if pmd & PTE_SPECIAL:
        return pmd & ~(<uint64_t>PMD_PSE)
    return mk_pte(pte_pfn(pmd) + <pfn_t>(vpn & 511), pmd & ((1 << PTE_PFN_SHIFT) - 1) & ~(<uint64_t>PMD_PSE))


cdef inline uint64_t mm_pte_at(mm_t* mm, uint64_t vpn) noexcept nogil:
    """The PTE mapping vpn, or what a PMD leaf maps there (as a 4 KiB PTE); 0 if none."""
    cdef uint64_t e = pmd_leaf_at(mm, vpn)
    if e != 0:
        return pmd_subpage_pte(e, vpn)
    return pt_get(&mm.pgd, vpn)


cdef inline pt_node_t* pte_lookup(mm_t* mm, uint64_t vpn) noexcept nogil:
    """The PTE table holding vpn, through the one-entry leaf cache."""
    cdef pt_node_t* t
    if mm.leaf_key == (vpn >> 9):
        return mm.leaf_cache
    t = pt_find_leaf(&mm.pgd, vpn)
    if t != NULL:
        mm.leaf_key = vpn >> 9
        mm.leaf_cache = t
    return t


cdef inline int folio_order(frame_t* f) noexcept nogil:
    """Order of the folio a page belongs to (0: a small folio)."""
    return <int>f.aux if f.flags & FR_LARGE else 0


cdef inline pfn_t folio_head(frame_t* fr, pfn_t pfn) noexcept nogil:
    """First pfn of the folio holding pfn (naturally aligned)."""
    if fr[pfn].flags & FR_LARGE:
        return pfn & ~((<pfn_t>1 << fr[pfn].aux) - 1)
    return pfn


# maple_node objects of the tree holding mm's VMAs and the gaps between them.
cdef inline int64_t mt_nodes(mm_t* mm) noexcept nogil:
    return mm.mm_mt.nr_nodes


cdef class LinuxMM(Machine):
    # slab caches (indices into Machine.caches)
    cdef int kc_mm, kc_vma, kc_maple, kc_anon_vma, kc_avc, kc_page, kc_shmem, kc_xa
    cdef int kc_pt[4]
    cdef int fault_around_pages    # do_fault_around window (16 = 64 KiB)
    cdef bint pt_reclaim           # CONFIG_PT_RECLAIM: MADV_DONTNEED frees PTE tables it empties whole
    cdef int thp_mode              # THP_NEVER / THP_MADVISE / THP_ALWAYS (option thp)
    cdef readonly bint thp_pmd     # PMD-mapped THPs modelled here (design in thp_designs, no devices)
    cdef uint32_t mthp_orders      # bit k: anon mTHP order k enabled (option mthp_sizes; "inherit")
    cdef bint ds_shrinker          # option deferred_split_shrinker: run the shrinker after each call
    cdef bint khugepaged           # option khugepaged: m.khugepaged_scan() allowed
    cdef int max_ptes_none         # khugepaged/max_ptes_none (511)
    cdef int max_ptes_shared       # khugepaged/max_ptes_shared (256)
    # large folios and the deferred split queue (the kernel's deferred_split_lru, one node)
    cdef folio_meta_t* fmeta       # per large-folio head (calloc'd: untouched entries cost nothing)
    cdef pfn_t* ds_queue           # heads of the queued folios (order of the list irrelevant here)
    cdef int64_t ds_len, ds_cap
    cdef int64_t ds_partial        # queued folios that are partially mapped
    # what-ifs from the mailing-list threads (docs/what-ifs.md); the defaults are today's kernel
    cdef readonly bint anon_pgoff_zero      # option anon_pgoff="zero": do_mmap gives anon VMAs pgoff 0
    cdef readonly bint mremap_relocate_anon # option mremap_relocate_anon: mremap re-indexes exclusive folios
    cdef readonly bint move_native          # move_pages moves PTEs (design in move_designs, no devices)
    # objects set aside before a multi-step operation (mremap) changes anything, so that
    # no step after the first can run out of memory (preallocation as mas_preallocate
    # does for maple nodes); not accounted until taken, freed beyond SPARE_KEEP after
    cdef spares_t vma_spare        # VMAs, AVCs and anon_vmas set aside (blocks/spares)
    cdef spares_t avc_spare
    cdef spares_t av_spare

    # --- transparent huge pages: may vma map the 2 MiB range at haddr with one PMD?
    cdef bint thp_vma_allowable(self, vma_t* vma, uint64_t haddr) noexcept nogil
    cdef bint thp_vma_allowed(self, vma_t* vma) noexcept nogil
    cdef void split_huge_pmd(self, mm_t* mm, uint64_t haddr) noexcept nogil

    # --- large folios (any order > 0) and the deferred split queue
    cdef pfn_t folio_alloc_large(self, int order) noexcept nogil
    cdef void folio_add_new_anon_rmap_large(self, pfn_t head, int order, vma_t* vma,
                                            uint64_t addr) noexcept nogil
    cdef void folio_put_refs(self, pfn_t pfn, int64_t nr) noexcept nogil
    cdef void folio_free_large(self, pfn_t head) noexcept nogil
    cdef int folio_meta_init(self) except -1
    cdef void deferred_split_folio(self, pfn_t head, bint partially_mapped) noexcept nogil
    cdef void folio_unqueue_deferred_split(self, pfn_t head) noexcept nogil

    # --- accounting helpers
    cdef void pt_sync(self, mm_t* mm) noexcept nogil
    cdef void mt_sync(self, mm_t* mm) noexcept nogil
    cdef int vma_iter_store(self, mm_t* mm, vma_t* vma) noexcept nogil
    cdef int vma_iter_clear(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil
    cdef void xa_sync(self, shmem_t* f) noexcept nogil
    cdef pfn_t page_alloc(self) noexcept nogil
    cdef void page_put(self, pfn_t pfn) noexcept nogil

    # --- VMA set (mm_t.vmas)
    cdef int64_t vma_index(self, mm_t* mm, uint64_t vpn) noexcept nogil
    cdef vma_t* find_vma(self, mm_t* mm, uint64_t vpn) noexcept nogil
    cdef bint range_mapped(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil
    cdef int vma_link(self, mm_t* mm, vma_t* vma) noexcept nogil
    cdef void vma_unlink_at(self, mm_t* mm, int64_t i) noexcept nogil
    cdef vma_t* vm_area_alloc(self, mm_t* mm) noexcept nogil
    cdef int spare_reserve(self, int64_t nvma, int64_t navc, int64_t nav) noexcept nogil
    cdef void spare_trim(self, int64_t keep) noexcept nogil
    cdef vma_t* vm_area_dup(self, vma_t* src) noexcept nogil
    cdef void vma_set_range(self, vma_t* vma, uint64_t start, uint64_t end, uint64_t pgoff) noexcept nogil
    cdef void vma_file_link(self, vma_t* vma) noexcept nogil
    cdef void vma_file_unlink(self, vma_t* vma) noexcept nogil
    cdef void remove_vma(self, vma_t* vma) noexcept nogil
    cdef int vma_link_reserve(self, mm_t* mm, int64_t more) noexcept nogil
    cdef int split_vma(self, mm_t* mm, int64_t i, uint64_t addr) noexcept nogil
    cdef bint vma_is_fork_child(self, vma_t* vma) noexcept nogil
    cdef bint anon_compatible_merge(self, vma_t* a, vma_t* b) noexcept nogil
    cdef bint can_merge(self, vma_t* a, vma_t* b) noexcept nogil
    cdef void count_merge_fail(self, vma_t* prev, vma_t* nxt, vma_t* proto, bint left, bint right) noexcept nogil
    cdef int vma_absorb(self, mm_t* mm, int64_t i) noexcept nogil
    cdef int vma_try_merge_at(self, mm_t* mm, int64_t i) noexcept nogil

    # --- anon_vma / rmap
    cdef anon_vma_t* anon_vma_alloc(self) noexcept nogil
    cdef avc_t* avc_alloc(self) noexcept nogil
    cdef void anon_vma_chain_link(self, vma_t* vma, avc_t* avc, anon_vma_t* av) noexcept nogil
    cdef anon_vma_t* find_mergeable_anon_vma(self, mm_t* mm, vma_t* vma) noexcept nogil
    cdef int anon_vma_prepare(self, mm_t* mm, vma_t* vma) noexcept nogil
    cdef int anon_vma_clone(self, vma_t* dst, vma_t* src, bint fork) noexcept nogil
    cdef int anon_vma_fork(self, vma_t* vma, vma_t* pvma) noexcept nogil
    cdef void unlink_anon_vmas(self, vma_t* vma) noexcept nogil
    cdef void put_anon_vma(self, anon_vma_t* av) noexcept nogil
    cdef void folio_add_new_anon_rmap(self, pfn_t pfn, vma_t* vma, uint64_t pgoff) noexcept nogil

