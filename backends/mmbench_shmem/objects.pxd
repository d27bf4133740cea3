# mmbench_shmem.objects — the structs of the shmem design (typed interface only).
#
# Object graph (one process, one private and one shared mapping):
#
#   mm_struct ── vmas[] (sorted by vm_start: the maple tree's in-order view)
#     │            │
#     │            ├─ vm_area_struct [vm_start, vm_end) ── vm_file ──► shmem_inode_info A (private)
#     │            │       shared_rb ∈ A.i_data.i_mmap                   │ i_data.i_pages: pgoff → pfn
#     │            │                                                     │ group ──► reflink_group G
#     │            └─ vm_area_struct ── vm_file ──► shmem_inode_info S (shared, no group)
#     └─ pgd (4-level page table: a cache of the files' pages, never the only copy)
#
#   reflink_group G: every private file cloned from the same origin (A and the
#   clones fork made from it).  Such files may hold the *same* frame at the
#   same offset; struct page's refcount counts the files holding a frame plus
#   the PTEs mapping it, so  files holding(pfn) = refcount - mapcount.
#
# Sizes accounted (bytes): the slab object size /proc/slabinfo reports on the
# Linux 6.18 host this was written on (objsize column) wherever the cache
# exists -- vm_area_struct 192, maple_node 256, shmem_inode_info 752
# (shmem_inode_cache; it embeds struct inode), filp 192 (the struct file behind
# each mapping), xa_node 584 (radix_tree_node), mm_struct 1600 -- and struct
# page 64, page tables 4096 per table.  reflink_group 32 is this design's own
# object (no kernel counterpart: a list head, a member count and a lock).

from libc.stdint cimport int64_t, uint64_t, uint32_t
from mmbench.blocks.itree cimport itnode_t
from mmbench.blocks.pagetable cimport pgtable_t
from mmbench.blocks.pagecache cimport address_space_t

cdef enum:
    VM_WRITE = 0x2               # kernel vm_flags values
    VM_SHARED = 0x8
    VM_HUGEPAGE = 0x20000000     # madvise(MADV_HUGEPAGE)
    VM_NOHUGEPAGE = 0x40000000   # madvise(MADV_NOHUGEPAGE)

cdef enum:
    HPAGE_PMD_ORDER = 9          # a PMD-sized folio: 512 pages, 2 MiB
    HPAGE_PMD_NR = 512

# huge= of the internal mount (shmem_sb_info.huge, mm/shmem.c SHMEM_HUGE_*)
cdef enum:
    SHMEM_HUGE_NEVER = 0
    SHMEM_HUGE_ALWAYS = 1
    SHMEM_HUGE_WITHIN_SIZE = 2
    SHMEM_HUGE_ADVISE = 3

cdef enum:
    SIZEOF_VM_AREA_STRUCT = 192
    SIZEOF_MAPLE_NODE = 256
    SIZEOF_SHMEM_INODE = 752
    SIZEOF_FILP = 192
    SIZEOF_XA_NODE = 584
    SIZEOF_MM_STRUCT = 1600
    SIZEOF_PAGE = 64
    SIZEOF_PT_TABLE = 4096
    SIZEOF_REFLINK_GROUP = 32

cdef struct shmem_inode_info
cdef struct mm_struct

cdef struct reflink_group:
    shmem_inode_info* head       # first member (list threaded through the inodes)
    int64_t nr_members

cdef struct shmem_inode_info:
    address_space_t i_data       # page cache: i_pages (pgoff -> pfn), i_mmap (VMAs), nrpages
    int64_t i_count              # VMAs holding this file (== i_data.i_mmap.count)
    uint64_t i_ino               # creation number, for messages and tests
    bint private                 # MAP_PRIVATE memory: reflink-cloned at fork
    reflink_group* group         # private files only
    shmem_inode_info* group_next # members of `group`
    shmem_inode_info* group_prev
    shmem_inode_info* sb_next    # every live inode (the super block's s_inodes)
    shmem_inode_info* sb_prev
    shmem_inode_info* fork_clone # scratch during one fork: this file's clone in the child
    mm_struct* owner_mm          # anon_file="per_mm": the mm whose address-indexed file this is
    int64_t xa_nodes_seen        # i_pages xa_nodes accounted (as the kernel counts them)
    int64_t nr_thps              # PMD-sized folios in i_pages (each one multi-index entry)
    uint64_t i_size              # file size in pages (huge=within_size reads it)
    int64_t check_mappers        # scratch of c_check: VMAs found holding this file

cdef struct vm_area_struct:
    itnode_t shared_rb           # FIRST field: node in vm_file's i_mmap, [vm_pgoff, last pgoff]
    uint64_t vm_start            # first vpn
    uint64_t vm_end              # one past the last vpn
    uint64_t vm_pgoff            # file offset of vm_start
    uint32_t vm_flags            # VM_WRITE | VM_SHARED | VM_HUGEPAGE | VM_NOHUGEPAGE
    shmem_inode_info* vm_file
    mm_struct* vm_mm

cdef struct mm_struct:
    int64_t pid
    pgtable_t pgd
    vm_area_struct** vmas        # sorted by vm_start, non-overlapping
    int64_t map_count            # live VMAs
    int64_t vmas_cap
    int64_t maple_nodes          # maple_node objects accounted for map_count VMAs
    int64_t pt_seen[4]           # page-table pages already accounted, per level
    int64_t mmap_cache           # index of the last VMA found (vmacache of old kernels; vmaset_find)
    shmem_inode_info* private_file   # anon_file="per_mm": this mm's file (pgoff = vpn), or NULL
    int64_t nr_huge_pmd          # PMD leaves mapping PMD-sized folios now

# offsetof(vm_area_struct, vm_start): where mmbench.blocks.vmaset reads a VMA's range
cdef inline size_t vma_span() noexcept nogil:
    return <size_t>&(<vm_area_struct*>NULL).vm_start

cdef inline uint64_t vma_pgoff_of(vm_area_struct* vma, uint64_t vpn) noexcept nogil:
    """linear_page_index: the file offset that backs `vpn`."""
    return vma.vm_pgoff + (vpn - vma.vm_start)
