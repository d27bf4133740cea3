# mmbench_shmem.core — anonymous memory as shmem files, private memory as reflinks.
#
# THE DESIGN
#   "Why not go for shmem?" (Hildenbrand to the gmem RFC): a file already has a
#   tree of the pages it could map — its page cache — so anonymous memory needs
#   no structure of its own if it *is* a file.  Here every mmap creates a shmem
#   inode and the VMA maps it from file offset 0, as shmem_zero_setup does for
#   a shared anonymous mapping (the offset stays with the VMA across mremap).
#   The page tables are only a cache of the page caches: every frame a PTE maps
#   is in the VMA's file at the VMA's offset, so any PTE may be zapped at any
#   time and refaulted.
#
#   Which file, which offset (option anon_file) -- the trade-off of the anon
#   pgoff thread, between xarray depth and VMA merging:
#     "per_mapping" (default)  shmem_zero_setup: a new file per mmap, pgoff 0.
#                              Shallow i_pages (a one-page mapping needs no
#                              xa_node at all: the entry sits in xa_head), but
#                              neighbouring private mappings never merge, and
#                              fork clones one file per private mapping.
#     "per_mm"                 one private file per address space, indexed by
#                              address (pgoff = vpn): neighbours with the same
#                              flags merge into one VMA and fork clones one
#                              file, but i_pages is as deep as the addresses
#                              are high (6 levels near 2**35).  Offsets a
#                              moved VMA still maps are not reused: such an
#                              mmap gets a file of its own (pgoff = vpn).
#   Shared mappings are a new file at pgoff 0 under both.
#
#   Shared mappings are plain shmem: fork hands the child the same inode and
#   copies no page tables; the child refaults from the page cache (minor).
#
#   Private mappings must stay copy-on-write across fork.  They are private
#   files, and fork makes a *reflink clone* of each one for the child (the
#   direction Stoakes sketched: unify anon and file memory): a new inode in the
#   same reflink_group whose i_pages names the same frames at the same offsets.
#   A frame's refcount counts the files holding it plus the PTEs mapping it, so
#   files(pfn) = refcount - mapcount.  A write to a frame held by one file
#   reuses it; held by several, it breaks the reflink for the writer: copy the
#   frame, store the copy in the writer's i_pages slot, drop one file
#   reference on the original.  No anon_vma, no shadow objects, no chains.
#
# THE FAULT CASES (handle_mm_fault dispatches on VMA kind and PTE state)
#
#                        PTE none                      PTE present, read-only, write
#   shared  ─────────── shmem_fault_shared:            wp (mprotect made it writable):
#                        hole -> zero-fill into cache   set the write bit (WP_SHARED)
#                        hit  -> map (MINOR)
#   private, read ───── do_read_fault:
#                        hole -> shmem_fault(SGP_CACHE) allocates a zeroed
#                                page into the file (ZERO_FILL); option
#                                zero_page=True maps the zero page (ZERO_PAGE)
#                        hit  -> map, writable only if this file alone holds it (MINOR)
#   private, write ──── do_cow_fault:                  do_wp_page:
#                        hole -> zero-fill (ZERO_FILL)   zero page  -> zero-fill (ZERO_FILL)
#                        one file holds it -> (MINOR)    one file   -> reuse (COW_REUSE)
#                        several -> break_reflink        several    -> break_reflink (COW_COPY)
#
#   Reads of holes allocate into the page cache, private or shared, as
#   shmem_fault(SGP_CACHE) does: shmem has no zero page.  zero_page=True is the
#   "what if shmem had a zero page" variant (private holes only).
#
# HUGE= (large folios; the internal mount's policy, from the thp option)
#   Before the table above runs, the PMD level: a PMD leaf that allows the
#   access answers it; a write to a read-only leaf splits it (wp_huge_pmd:
#   shmem has no huge_fault) and the PTE level takes the fault.  Every
#   allocation in a hole goes through shmem_alloc_and_add_folio, which makes
#   a 512-page folio at the aligned index when huge= and the VMA allow it, and
#   every mapping through finish_fault, which maps a PMD-sized folio with one
#   PMD leaf (do_set_pmd) when the PMD is none and the VMA lines up:
#
#        fault ─► PMD leaf? ── ok ─► done      ── write to RO ─► split_huge_pmd ─┐
#          │                                                                      │
#          └──────────────── PTE level (table above) ◄────────────────────────────┘
#                              hole: shmem_alloc_and_add_folio (512 pages or 1)
#                              map:  finish_fault ─► do_set_pmd | PTEs of the folio | one PTE
#
#   File PMD leaves carry no deposited table and split by being cleared (the
#   folio stays whole); a truncation cutting a folio, or a reflink break in a
#   folio several files share, splits the folio (split_huge_page).
#
# COSTS, AS THEY FALL
#   fork, shared VMA : vm_area_struct + i_mmap insert; nothing per page.
#   fork, private VMA: one clone per private file (shmem_inode_info + file +
#                      a copy of i_pages: its xa_nodes, one frame reference per
#                      page), and the parent's writable PTEs write-protected.
#                      The child gets no page tables at all.
#   deferred         : the child's first touch of each page is a fault (minor on
#                      read, copy on write); the parent's first write to each
#                      page still shared copies it (reuse once the child copied
#                      its own or exited).  rmap of a private frame searches
#                      every file of its reflink_group (C_I_MMAP_VISITS).
#   munmap           : private files punch the unmapped offsets out (no one else
#                      can reach them); shared files keep their pages until the
#                      last VMA goes (like shmem: the file lives on).
#   mremap           : the VMA keeps its file and offset; only PTEs move
#                      (move_ptes), i_mmap is untouched (it is keyed by offset).
#
# SIMPLIFIED RELATIVE TO THE KERNEL
#   No swap, no fault-around, no dirty/accessed bits; folios are order 0 or
#   PMD-sized (no mTHP orders, no khugepaged, no move_huge_pmd: mremap splits),
#   and large folios only without devices; the maple tree is a sorted array whose node count is estimated
#   (vma.pyx).  i_pages is copied at fork rather than sharing xarray subtrees
#   (a subtree-sharing clone would make fork O(files) and move the node copies
#   to the first write under each shared subtree; not modelled).
#   i_pages is accounted as the kernel's xarray allocates it: an array whose
#   only entry is at index 0 needs no xa_node (the entry lives in xa_head),
#   and a PMD-sized folio is one multi-index entry needing no leaf node, while
#   the model's xarray block keeps one entry per index; sync_xa discounts both.
#
# CODE LAYOUT
#   objects.pxd  structs and sizes          vma.pyx    VMA set, i_mmap links, split/merge
#   inode.pyx    inodes, reflink groups, clone   huge.pxd  PMD-leaf tests (inline)
#   this file, section "huge=": policy, large-folio allocation, finish_fault,
#                do_set_pmd, PMD and folio splits
#   this file    accounting, PTE helpers, faults, contract ops, fork/exit, c_check

from libc.stdlib cimport calloc, malloc, free
from libc.stdint cimport int64_t, uint64_t, int32_t, uint32_t

from mmbench.core cimport MADV_DONTNEED, MADV_HUGEPAGE
from mmbench.core cimport (Machine, MM_OK, MM_ESEGV, MM_EPROT, MM_ENOMEM, MM_EINVAL,
                           MM_ENOTSUP, MAPF_SHARED, MAPF_WRITE, VPN_BITS,
                           C_FAULTS, C_FAULT_ZERO_PAGE, C_FAULT_ZERO_FILL, C_FAULT_COW_COPY,
                           C_FAULT_COW_REUSE, C_FAULT_MINOR, C_FAULT_WP_SHARED, C_PAGES_ZEROED, C_PAGECACHE_ADDS,
                           C_PAGES_COPIED, C_PTE_WRITES, C_PTE_ZAPS, C_TLB_FLUSHES,
                           C_PT_PAGES_ALLOC, C_PT_PAGES_FREE, C_RMAP_VISITS, C_VMA_MERGES,
                           C_VMA_SPLITS, C_OBJECTS_ALLOC, C_OBJECTS_FREE, C_XA_NODE_ALLOC,
                           C_XA_NODE_FREE, C_I_MMAP_VISITS, C_FORK_PTES_WRPROTECT,
                           C_REFLINK_CLONES, C_MREMAP_PAGES_MOVED, C_THP_FILE_ALLOC,
                           C_THP_FILE_FALLBACK, C_THP_FILE_MAPPED, C_THP_SPLIT_PMD,
                           C_THP_SPLIT_PAGE)
from mmbench.blocks.frames cimport (frames_t, frame_t, pfn_t, NO_PFN, ZERO_PFN, FR_PAGECACHE,
                                    frame_alloc, frame_free, frames_free_count, frame_alloc_contig,
                                    folio_order, folio_split)
from mmbench.blocks.pagetable cimport (pt_node_t, pt_init, pt_destroy, pt_leaf, pt_find_leaf,
                                       pt_next, pt_set, pt_free_range, pt_vmpte_bytes,
                                       pt_get as pt_get_pte, mk_pte, pte_pfn,
                                       pte_present, pte_write, PTE_PRESENT, PTE_WRITE,
                                       PTE_SPECIAL, LVL_PGD, PMD_PSE, pt_pmd_table, pt_set_pmd,
                                       pt_table_alloc, pt_table_free, pmd_leaf)
from mmbench.blocks.xarray cimport xarray_t, xa_store, xa_find, xa_hint_ok, XA_CHUNK_SIZE
from mmbench.blocks.pagecache cimport mapping_lookup, mapping_add, mapping_truncate, mapping_remove
from mmbench.blocks.itree cimport itnode_t, itree_first, itree_next, itree_verify
from mmbench_shmem.objects cimport (mm_struct, vm_area_struct, shmem_inode_info, reflink_group,
                                    vma_pgoff_of, VM_WRITE, VM_SHARED, VM_HUGEPAGE, VM_NOHUGEPAGE,
                                    SIZEOF_VM_AREA_STRUCT, SIZEOF_MAPLE_NODE, SIZEOF_SHMEM_INODE,
                                    SIZEOF_FILP, SIZEOF_XA_NODE, SIZEOF_PAGE, SIZEOF_PT_TABLE,
                                    SIZEOF_REFLINK_GROUP, SIZEOF_MM_STRUCT, HPAGE_PMD_NR,
                                    HPAGE_PMD_ORDER, SHMEM_HUGE_NEVER, SHMEM_HUGE_ALWAYS,
                                    SHMEM_HUGE_WITHIN_SIZE, SHMEM_HUGE_ADVISE)
from mmbench_shmem.huge cimport pmd_leaf_at, thp_vma_suitable
from mmbench.blocks.pmdleaf cimport pte_range_none
from mmbench.blocks.pmdwalk cimport pmd_leaf_next
from mmbench_shmem.vma cimport (vma_lower_bound, find_vma, range_fully_mapped, range_any_mapped,
                                vmas_reserve, vmas_insert, vmas_remove_at, vma_link_file,
                                vma_unlink_file, split_vma, try_merge_next, maple_nodes_for,
                                file_range_unmapped, range_move_check)
from mmbench_shmem.inode cimport (shmem_inode_alloc, shmem_inode_free, reflink_clone,
                                  frame_file_refs)
from mmbench import errors as _errors
from mmbench.hugepages import THP_DEFAULT, thp_option

cdef uint64_t PGOFF_MAX = <uint64_t>1 << VPN_BITS      # file offsets never exceed a VMA's span
cdef uint64_t VPN_END = <uint64_t>1 << VPN_BITS

COUNTERS = ("faults", "pagecache_adds", "fault_zero_page", "fault_zero_fill", "fault_cow_copy", "fault_cow_reuse",
            "fault_minor", "fault_wp_shared", "pages_zeroed", "pages_copied", "pte_writes",
            "pte_zaps", "tlb_flushes", "pt_pages_alloc", "pt_pages_free", "rmap_visits",
            "vma_merges", "vma_splits", "objects_alloc", "objects_free", "xa_node_alloc",
            "xa_node_free", "i_mmap_visits", "fork_ptes_wrprotect", "reflink_clones",
            "mremap_pages_moved", "thp_file_alloc", "thp_file_fallback", "thp_file_mapped",
            "thp_split_pmd", "thp_split_page")
HUGE_MODES = {"never": SHMEM_HUGE_NEVER, "always": SHMEM_HUGE_ALWAYS,
              "within_size": SHMEM_HUGE_WITHIN_SIZE, "advise": SHMEM_HUGE_ADVISE}


cdef inline uint64_t min_u64(uint64_t a, uint64_t b) noexcept nogil:
    return a if a < b else b


cdef inline int64_t xa_kernel_nodes(shmem_inode_info* f) noexcept nogil:
    """xa_nodes the kernel's xarray holds for the file's entries: a lone entry
    at index 0 is stored in xa_head itself (xas_expand needs no node for it),
    and a PMD-sized folio is one multi-index entry (8 slots of a shift-6 node),
    where the model keeps 512 entries in 8 leaf nodes of its own."""
    cdef xarray_t* xa = &f.i_data.i_pages
    if (xa.root != NULL and xa.root.shift == 0 and xa.root.count == 1
            and xa.root.slots[0] != 0):
        return xa.nr_nodes - 1
    return xa.nr_nodes - f.nr_thps * (HPAGE_PMD_NR // XA_CHUNK_SIZE)


cdef inline void unwind_new_tables(mm_struct* mm, uint64_t vpn, int64_t levels) noexcept nogil:
    """Free the `levels` deepest page tables on vpn's path, just allocated by a
    fault that then failed: they are empty, and the topmost spans 512**levels
    pages, all of them under new tables."""
    cdef uint64_t span
    if levels <= 0 or levels > 3:
        return
    span = (<uint64_t>1) << (9 * levels)
    pt_free_range(&mm.pgd, vpn & ~(span - 1), (vpn & ~(span - 1)) + span)


cdef class ShmemMachine(Machine):
    """Anonymous memory as shmem page-cache files; private memory copied on
    write through reflink clones of those files (see the essay in core.pyx)."""

    name = "shmem"
    description = ("anonymous memory as shmem files: page-cache xarray + i_mmap rmap; "
                   "private COW through reflink-style file clones")
    #: anon_file: "per_mapping" -- every mmap is a new file at pgoff 0 (shmem_zero_setup);
    #: "per_mm" -- private memory is one file per address space at pgoff = vpn
    #: (neighbours merge, i_pages as deep as the addresses are high).
    #: zero_page: False -- a read of a hole allocates a page (shmem_fault, SGP_CACHE);
    #: True -- private read holes map the shared zero page ("what if shmem had one").
    #: thp: mmbench.hugepages mode, read as the internal mount's huge= policy
    #: (shmem_enabled): "never" -> never, "madvise" -> advise, "always" -> always.
    #: huge: None (take it from thp) or the huge= value itself: "never", "always",
    #: "within_size" (huge only where the 2 MiB lies inside i_size) or "advise".
    option_defaults = {"anon_file": "per_mapping", "zero_page": False, "thp": THP_DEFAULT,
                       "huge": None}
    supports_devices = False
    huge_page_advice = True
    counter_names = COUNTERS

    def __cinit__(self, *args, **kwargs):
        self.s_inodes = NULL
        self.next_ino = 1
        self.nr_spare = 0

    def __init__(self, **kw):
        super().__init__(**kw)
        self.kc_vma = self.slab_register("vm_area_struct", SIZEOF_VM_AREA_STRUCT)
        self.kc_maple = self.slab_register("maple_node", SIZEOF_MAPLE_NODE)
        self.kc_inode = self.slab_register("shmem_inode_info", SIZEOF_SHMEM_INODE)
        self.kc_file = self.slab_register("file", SIZEOF_FILP)
        self.kc_group = self.slab_register("reflink_group", SIZEOF_REFLINK_GROUP)
        self.kc_xa = self.slab_register("xa_node", SIZEOF_XA_NODE)
        self.kc_page = self.slab_register("page", SIZEOF_PAGE)
        self.kc_mm = self.slab_register("mm_struct", SIZEOF_MM_STRUCT)
        if self.options["anon_file"] not in ("per_mapping", "per_mm"):
            raise _errors.InvalidArgument(
                f"anon_file must be 'per_mapping' or 'per_mm', got {self.options['anon_file']!r}")
        if not isinstance(self.options["zero_page"], bool):
            raise _errors.InvalidArgument("the zero_page option must be True or False")
        self.file_per_mm = self.options["anon_file"] == "per_mm"
        self.zero_page = self.options["zero_page"]
        self.huge = {"never": "never", "madvise": "advise", "always": "always"}[thp_option(self.options)]
        if self.options["huge"] is not None:
            if self.options["huge"] not in HUGE_MODES:
                raise _errors.InvalidArgument(
                    f"huge must be None or one of {', '.join(map(repr, HUGE_MODES))}, "
                    f"got {self.options['huge']!r}")
            self.huge = self.options["huge"]
        self.huge_mode = HUGE_MODES[self.huge]
        for lvl, nm in enumerate(("pgd", "pud_table", "pmd_table", "pte_table")):
            self.kc_pt[lvl] = self.slab_register(nm, SIZEOF_PT_TABLE)

    def __dealloc__(self):
        cdef int64_t pid
        cdef mm_struct* mm
        for pid in range(1, self.next_pid):
            mm = <mm_struct*>self.procs[pid] if self.procs != NULL else NULL
            if mm != NULL:
                self.exit_mmap(mm)
                self.procs[pid] = NULL
        while self.nr_spare > 0:
            self.nr_spare -= 1
            free(self.spare[self.nr_spare])

    # ================================================================ accounting
    cdef void sync_pt(self, mm_struct* mm) noexcept nogil:
        """Account page-table pages allocated/freed since the last sync."""
        cdef int lvl
        for lvl in range(4):
            self.kmem_sync_counted(self.kc_pt[lvl], &mm.pt_seen[lvl], mm.pgd.nr[lvl],
                                   C_PT_PAGES_ALLOC, C_PT_PAGES_FREE)

    cdef void sync_xa(self, shmem_inode_info* inode) noexcept nogil:
        """Account i_pages xa_nodes (as the kernel counts them, see
        xa_kernel_nodes) allocated/freed since the last sync."""
        cdef int64_t d = xa_kernel_nodes(inode) - inode.xa_nodes_seen
        if d > 0:
            self.caches[self.kc_xa].allocs += d
            self.ctr[C_XA_NODE_ALLOC] += d
        elif d < 0:
            self.caches[self.kc_xa].frees -= d
            self.ctr[C_XA_NODE_FREE] -= d
        self.caches[self.kc_xa].active += d
        inode.xa_nodes_seen += d

    cdef void sync_maple(self, mm_struct* mm) noexcept nogil:
        cdef int64_t want = maple_nodes_for(mm.map_count)
        while mm.maple_nodes < want:
            self.kmem_alloc(self.kc_maple)
            mm.maple_nodes += 1
        while mm.maple_nodes > want:
            self.kmem_free(self.kc_maple)
            mm.maple_nodes -= 1

    # ========================================================= frames and PTEs
    cdef pfn_t alloc_zeroed_frame(self) noexcept nogil:
        """A zeroed frame holding one reference (the page cache's).  The caller
        checked frames_free_count first."""
        cdef pfn_t pfn = frame_alloc(&self.frames, 0)
        self.kmem_alloc(self.kc_page)
        self.ctr[C_PAGES_ZEROED] += 1
        return pfn

    cdef void put_frame(self, pfn_t pfn) noexcept nogil:
        cdef frame_t* d = &self.frames.f[pfn]
        d.refcount -= 1
        if d.refcount == 0:
            frame_free(&self.frames, pfn)
            self.kmem_free(self.kc_page)

    cdef void set_pte(self, pt_node_t* t, uint64_t vpn, pfn_t pfn, bint writable) noexcept nogil:
        """Install a PTE for `pfn` in an empty slot; a real frame gains a mapping."""
        cdef uint64_t bits = PTE_PRESENT
        if pfn == ZERO_PFN:
            bits |= PTE_SPECIAL
        else:
            self.frames.f[pfn].refcount += 1
            self.frames.f[pfn].mapcount += 1
            if writable:
                bits |= PTE_WRITE
        pt_set(t, vpn, mk_pte(pfn, bits))
        self.ctr[C_PTE_WRITES] += 1

    cdef void pte_clear(self, pt_node_t* t, uint64_t vpn) noexcept nogil:
        """Clear one present PTE; the frame it mapped loses that mapping."""
        cdef uint64_t pte = t.e[vpn & 511]
        cdef pfn_t pfn = pte_pfn(pte)
        if not (pte & PTE_SPECIAL):
            self.frames.f[pfn].mapcount -= 1
            self.put_frame(pfn)
        pt_set(t, vpn, 0)
        self.ctr[C_PTE_WRITES] += 1

    cdef void zap_pte(self, pt_node_t* t, uint64_t vpn) noexcept nogil:
        self.pte_clear(t, vpn)
        self.ctr[C_PTE_ZAPS] += 1

    cdef int64_t zap_range(self, mm_struct* mm, uint64_t start, uint64_t end) noexcept nogil:
        """zap_page_range: clear every PTE in [start, end); returns how many
        (a PMD leaf counts one).  zap_pmd_range first: PMD leaves the range
        covers go whole, the ones it cuts are split (cleared: they refault)."""
        cdef uint64_t vpn = 0, tend
        cdef int64_t n = self.zap_huge_pmds(mm, start, end) if mm.nr_huge_pmd else 0
        cdef pt_node_t* t = pt_next(&mm.pgd, start, end, &vpn)
        while t != NULL:                      # one leaf table at a time
            tend = min_u64((vpn | 511) + 1, end)
            while vpn < tend:
                if t.e[vpn & 511] != 0:
                    self.zap_pte(t, vpn)
                    n += 1
                vpn += 1
            t = pt_next(&mm.pgd, tend, end, &vpn) if tend < end else NULL
        return n

    cdef int64_t wrprotect_range(self, mm_struct* mm, uint64_t start, uint64_t end) noexcept nogil:
        """Clear the write bit of every writable PTE in [start, end); a PMD leaf
        inside the range is write-protected whole (change_huge_pmd), one the
        range cuts is split (change_pmd_range)."""
        cdef uint64_t vpn = 0, tend, h = 0
        cdef int64_t n = 0
        cdef pt_node_t* pmd_t
        cdef pt_node_t* t
        if mm.nr_huge_pmd:
            pmd_t = pmd_leaf_next(&mm.pgd, start, end, &h)
            while pmd_t != NULL:
                if h < start or h + HPAGE_PMD_NR > end:
                    self.split_huge_pmd(mm, h)
                elif pmd_t.e[(h >> 9) & 511] & PTE_WRITE:
                    pmd_t.e[(h >> 9) & 511] &= ~(<uint64_t>PTE_WRITE)
                    n += 1
                pmd_t = pmd_leaf_next(&mm.pgd, h + HPAGE_PMD_NR, end, &h)
        t = pt_next(&mm.pgd, start, end, &vpn)
        while t != NULL:
            tend = min_u64((vpn | 511) + 1, end)
            while vpn < tend:
                if t.e[vpn & 511] & PTE_WRITE:
                    t.e[vpn & 511] &= ~(<uint64_t>PTE_WRITE)
                    n += 1
                vpn += 1
            t = pt_next(&mm.pgd, tend, end, &vpn) if tend < end else NULL
        self.ctr[C_PTE_WRITES] += n
        return n

    # ============================================================= page cache
    cdef int add_to_page_cache(self, shmem_inode_info* inode, uint64_t pgoff, pfn_t* out) noexcept nogil:
        """shmem_alloc_and_add_folio + clear_highpage: a zeroed frame at `pgoff`."""
        cdef pfn_t pfn
        cdef frame_t* d
        if frames_free_count(&self.frames, 0) < 1:
            return MM_ENOMEM
        pfn = self.alloc_zeroed_frame()
        if mapping_add(&inode.i_data, pgoff, pfn) != 0:
            self.sync_xa(inode)
            self.put_frame(pfn)
            return MM_ENOMEM
        self.ctr[C_PAGECACHE_ADDS] += 1
        self.sync_xa(inode)
        d = &self.frames.f[pfn]
        d.owner = <uint64_t><size_t>(inode.group if inode.private else <void*>inode)
        d.index = pgoff
        d.flags = FR_PAGECACHE
        out[0] = pfn
        return MM_OK

    cdef void shmem_truncate(self, shmem_inode_info* inode, uint64_t start, uint64_t end) noexcept nogil:
        """Punch [start, end) out of the file: its references go, frames no
        file and no PTE holds any more are freed.  A PMD-sized folio the range
        cuts is split first (truncate_inode_partial_folio: split_folio, which
        cannot fail here -- no pins, and the model's i_pages needs no new node),
        one it covers leaves whole."""
        cdef int64_t used
        cdef uint64_t idx = 0, e
        cdef pfn_t pfn
        if inode.nr_thps and end > start:
            self.truncate_partial_folio(inode, start)
            self.truncate_partial_folio(inode, end)
            e = xa_find(&inode.i_data.i_pages, start, end - 1, &idx)
            while e != 0 and inode.nr_thps:
                pfn = <pfn_t>(e - 1)
                if self.pfn_valid(pfn) and folio_order(&self.frames, pfn) == HPAGE_PMD_ORDER:
                    inode.nr_thps -= 1               # a whole folio leaves the file
                    idx += HPAGE_PMD_NR - 1
                if idx + 1 >= end:
                    break
                e = xa_find(&inode.i_data.i_pages, idx + 1, end - 1, &idx)
        used = self.frames.node_used[0]
        mapping_truncate(&inode.i_data, &self.frames, start, end)
        used -= self.frames.node_used[0]
        self.caches[self.kc_page].active -= used
        self.caches[self.kc_page].frees += used
        self.sync_xa(inode)


    # ====================================================== huge= (large folios)
    cdef bint shmem_huge_enabled(self, vm_area_struct* vma, uint64_t pgoff) noexcept nogil:
        """shmem_allowable_huge_orders for the PMD order: never under
        VM_NOHUGEPAGE (vma_thp_disabled); else the mount's huge=: always; within_size
        when the aligned 2 MiB ends inside i_size (shmem_get_orders_within_size),
        otherwise as advise; advise with VM_HUGEPAGE.  With devices the design
        stays at 4 KiB (its migration moves single pages)."""
        cdef uint64_t aligned_end
        if self.ndevices > 0 or (vma.vm_flags & VM_NOHUGEPAGE):
            return False
        if self.huge_mode == SHMEM_HUGE_ALWAYS:
            return True
        if self.huge_mode == SHMEM_HUGE_WITHIN_SIZE:
            aligned_end = (pgoff | (HPAGE_PMD_NR - 1)) + 1
            if vma.vm_file.i_size >= aligned_end:
                return True
        if self.huge_mode == SHMEM_HUGE_WITHIN_SIZE or self.huge_mode == SHMEM_HUGE_ADVISE:
            return (vma.vm_flags & VM_HUGEPAGE) != 0
        return False

    cdef int shmem_alloc_and_add_folio(self, vm_fault* vmf, pfn_t* out) noexcept nogil:
        """shmem_alloc_and_add_folio for a hole at vmf.pgoff: a PMD-sized folio
        when huge= allows it and it suits (shmem_suitable_orders: the 2 MiB lines
        up with a PMD inside the VMA, and no page of the aligned extent is in the
        cache -- nor, here, mapped by a zero-page PTE of this VMA), falling back
        to one page (thp_file_fallback) when no aligned free run of 512 frames
        is left.  The folio's 512 pages are zeroed and added at once."""
        cdef shmem_inode_info* inode = vmf.vma.vm_file
        cdef uint64_t haddr = vmf.vpn & ~(<uint64_t>(HPAGE_PMD_NR - 1))
        cdef uint64_t index = vmf.pgoff & ~(<uint64_t>(HPAGE_PMD_NR - 1)), idx = 0, k
        cdef pfn_t head
        cdef frame_t* d
        if (not self.shmem_huge_enabled(vmf.vma, vmf.pgoff) or not thp_vma_suitable(vmf.vma, haddr)
                or xa_find(&inode.i_data.i_pages, index, index + HPAGE_PMD_NR - 1, &idx) != 0
                or not pte_range_none(vmf.pte_table, haddr, HPAGE_PMD_NR)):
            return self.add_to_page_cache(inode, vmf.pgoff, out)
        head = frame_alloc_contig(&self.frames, 0, HPAGE_PMD_NR)
        if head == NO_PFN:
            self.ctr[C_THP_FILE_FALLBACK] += 1
            return self.add_to_page_cache(inode, vmf.pgoff, out)
        for k in range(HPAGE_PMD_NR):
            if mapping_add(&inode.i_data, index + k, head + <pfn_t>k) != 0:
                while k > 0:                  # xa_node allocation failed: undo
                    k -= 1
                    mapping_remove(&inode.i_data, index + k)
                for k in range(HPAGE_PMD_NR):
                    frame_free(&self.frames, head + <pfn_t>k)
                self.sync_xa(inode)
                return MM_ENOMEM
            self.kmem_alloc(self.kc_page)
            d = &self.frames.f[head + k]
            d.owner = <uint64_t><size_t>(inode.group if inode.private else <void*>inode)
            d.index = index + k
            d.flags = FR_PAGECACHE
        inode.nr_thps += 1
        self.sync_xa(inode)
        self.ctr[C_PAGES_ZEROED] += HPAGE_PMD_NR
        self.ctr[C_PAGECACHE_ADDS] += HPAGE_PMD_NR
        self.ctr[C_THP_FILE_ALLOC] += 1
        out[0] = head + <pfn_t>(vmf.pgoff - index)
        return MM_OK

    cdef void truncate_partial_folio(self, shmem_inode_info* inode, uint64_t idx) noexcept nogil:
        """A truncation edge at idx inside a PMD-sized folio splits it."""
        cdef pfn_t pfn
        if (idx & (HPAGE_PMD_NR - 1)) == 0 or idx >= PGOFF_MAX:
            return
        pfn = mapping_lookup(&inode.i_data, idx)
        if (pfn != NO_PFN and self.pfn_valid(pfn)
                and folio_order(&self.frames, pfn) == HPAGE_PMD_ORDER):
            self.split_huge_page(inode, idx)

    cdef void pmd_install(self, vm_fault* vmf) noexcept nogil:
        """pmd_install: the preallocated PTE table goes under the none PMD."""
        pt_set_pmd(vmf.pmd_table, vmf.vpn, <uint64_t><size_t>vmf.prealloc_pte)
        vmf.pte_table = vmf.prealloc_pte
        vmf.prealloc_pte = NULL

    cdef int finish_fault(self, vm_fault* vmf, pfn_t pfn, bint writable) noexcept nogil:
        """finish_fault: a PMD-sized folio with the PMD none is mapped by one
        PMD leaf when do_set_pmd takes it; otherwise PTEs: every page of a large
        folio when it lies inside the VMA and one PTE table whose entries there
        are none (set_pte_range of the whole folio), else the faulting page."""
        cdef int order = 0
        cdef uint64_t nr, first, k
        cdef pfn_t head
        vmf.pfn = pfn
        if pfn != ZERO_PFN:
            order = folio_order(&self.frames, pfn)
        if order == HPAGE_PMD_ORDER and vmf.pte_table == NULL and self.do_set_pmd(vmf, pfn, writable):
            return MM_OK
        if vmf.pte_table == NULL:
            self.pmd_install(vmf)
        if order > 0:
            nr = (<uint64_t>1) << order
            head = pfn & ~(<pfn_t>(nr - 1))
            first = vmf.vpn - (pfn - head)
            if (first >= vmf.vma.vm_start and first + nr <= vmf.vma.vm_end
                    and (first >> 9) == ((first + nr - 1) >> 9)
                    and pte_range_none(vmf.pte_table, first, nr)):
                for k in range(nr):
                    self.set_pte(vmf.pte_table, first + k, head + <pfn_t>k, writable)
                return MM_OK
        self.set_pte(vmf.pte_table, vmf.vpn, pfn, writable)
        return MM_OK

    cdef bint do_set_pmd(self, vm_fault* vmf, pfn_t pfn, bint writable) noexcept nogil:
        """do_set_pmd: map the whole folio with one PMD leaf unless the VMA
        refuses huge mappings (VM_NOHUGEPAGE) or the 2 MiB does not line up
        (thp_vma_suitable_order).  No PTE table is deposited (x86)."""
        cdef uint64_t haddr = vmf.vpn & ~(<uint64_t>(HPAGE_PMD_NR - 1)), k
        cdef pfn_t head = pfn & ~(<pfn_t>(HPAGE_PMD_NR - 1))
        cdef frame_t* d
        if (vmf.vma.vm_flags & VM_NOHUGEPAGE) or not thp_vma_suitable(vmf.vma, haddr):
            return False
        for k in range(HPAGE_PMD_NR):               # folio_add_file_rmap_pmd
            d = &self.frames.f[head + k]
            d.refcount += 1
            d.mapcount += 1
        pt_set_pmd(vmf.pmd_table, haddr,
                   mk_pte(head, PTE_PRESENT | PMD_PSE | (PTE_WRITE if writable else 0)))
        vmf.mm.nr_huge_pmd += 1
        self.ctr[C_PTE_WRITES] += 1
        self.ctr[C_THP_FILE_MAPPED] += 1
        return True

    cdef void pmd_clear(self, mm_struct* mm, uint64_t haddr) noexcept nogil:
        """Clear the PMD leaf at haddr: its 512 pages lose that mapping."""
        cdef pt_node_t* pmd_t = pt_pmd_table(&mm.pgd, haddr, False, NULL)
        cdef pfn_t head = pte_pfn(pmd_t.e[(haddr >> 9) & 511])
        cdef uint64_t k
        pt_set_pmd(pmd_t, haddr, 0)
        for k in range(HPAGE_PMD_NR):
            self.frames.f[head + k].mapcount -= 1
            self.put_frame(head + <pfn_t>k)
        mm.nr_huge_pmd -= 1
        self.ctr[C_PTE_WRITES] += 1

    cdef void split_huge_pmd(self, mm_struct* mm, uint64_t haddr) noexcept nogil:
        """__split_huge_pmd_locked for a file VMA: the leaf is cleared and
        flushed; the folio stays whole in the page cache and refaults by PTEs."""
        self.pmd_clear(mm, haddr)
        self.ctr[C_THP_SPLIT_PMD] += 1
        self.ctr[C_TLB_FLUSHES] += 1

    cdef int64_t zap_huge_pmds(self, mm_struct* mm, uint64_t start, uint64_t end) noexcept nogil:
        """zap_pmd_range's huge part: leaves inside [start, end) are zapped
        (zap_huge_pmd), leaves it cuts are split.  Returns the leaves zapped."""
        cdef uint64_t h = 0
        cdef int64_t n = 0
        while mm.nr_huge_pmd and pmd_leaf_next(&mm.pgd, start, end, &h) != NULL:
            if h >= start and h + HPAGE_PMD_NR <= end:
                self.pmd_clear(mm, h)
                self.ctr[C_PTE_ZAPS] += 1
                n += 1
            else:
                self.split_huge_pmd(mm, h)
            start = h + HPAGE_PMD_NR
        return n

    cdef void split_at_boundary(self, mm_struct* mm, uint64_t addr) noexcept nogil:
        """vma_adjust_trans_huge: a VMA split at addr splits the PMD leaf
        straddling addr."""
        cdef uint64_t haddr = addr & ~(<uint64_t>(HPAGE_PMD_NR - 1))
        if haddr != addr and pmd_leaf_at(mm, haddr):
            self.split_huge_pmd(mm, haddr)

    cdef void unmap_mapping_folio(self, shmem_inode_info* f, uint64_t first) noexcept nogil:
        """unmap_folio of the PMD-sized folio at file index `first`: every PTE
        and PMD of every VMA mapping [first, first + 512) of file f goes
        (try_to_unmap with TTU_SPLIT_HUGE_PMD; file folios are not remapped)."""
        cdef uint64_t last = first + HPAGE_PMD_NR - 1, lo, hi
        cdef itnode_t* it = itree_first(&f.i_data.i_mmap, first, last)
        cdef vm_area_struct* w
        while it != NULL:
            w = <vm_area_struct*>it
            lo = w.vm_start + ((first if first > w.vm_pgoff else w.vm_pgoff) - w.vm_pgoff)
            hi = w.vm_start + ((last if last < w.shared_rb.last else w.shared_rb.last) - w.vm_pgoff)
            if pmd_leaf_at(w.vm_mm, lo):            # TTU_SPLIT_HUGE_PMD
                self.split_huge_pmd(w.vm_mm, lo & ~(<uint64_t>(HPAGE_PMD_NR - 1)))
            if self.zap_range(w.vm_mm, lo, hi + 1):
                self.ctr[C_TLB_FLUSHES] += 1
            self.ctr[C_RMAP_VISITS] += 1
            it = itree_next(it, first, last)

    cdef void split_huge_page(self, shmem_inode_info* inode, uint64_t index) noexcept nogil:
        """split_huge_page of the PMD-sized folio holding `index` of `inode`:
        unmapped from every mapper of every file holding it (a private file's
        reflink group may share it), then every page is an order-0 folio of
        its own; the files' i_pages need the 8 leaf nodes the multi-index entry
        did without (thp_split_page)."""
        cdef uint64_t first = index & ~(<uint64_t>(HPAGE_PMD_NR - 1))
        cdef pfn_t head = mapping_lookup(&inode.i_data, first)
        cdef shmem_inode_info* f = inode.group.head if inode.private else inode
        while f != NULL:
            if f == inode or mapping_lookup(&f.i_data, first) == head:
                self.ctr[C_I_MMAP_VISITS] += 1
                self.unmap_mapping_folio(f, first)
                f.nr_thps -= 1
            f = f.group_next if inode.private else NULL
        folio_split(&self.frames, head)
        f = inode.group.head if inode.private else inode
        while f != NULL:
            self.sync_xa(f)
            f = f.group_next if inode.private else NULL
        self.ctr[C_THP_SPLIT_PAGE] += 1

    cdef shmem_inode_info* inode_new(self, bint private, shmem_inode_info* clone_of) noexcept nogil:
        cdef reflink_group* g = clone_of.group if clone_of != NULL else NULL
        cdef shmem_inode_info* inode = shmem_inode_alloc(&self.s_inodes, private, self.next_ino, g)
        if inode == NULL:
            return NULL
        self.next_ino += 1
        self.kmem_alloc(self.kc_inode)
        self.kmem_alloc(self.kc_file)
        self.ctr[C_OBJECTS_ALLOC] += 1
        if private and g == NULL:
            self.kmem_alloc(self.kc_group)
        return inode

    cdef void iput(self, shmem_inode_info* inode) noexcept nogil:
        """Evict a file no VMA holds any more: truncate it, free it."""
        if inode.i_count > 0:
            return
        self.shmem_truncate(inode, 0, PGOFF_MAX)
        if inode.owner_mm != NULL:
            inode.owner_mm.private_file = NULL
        self.kmem_free(self.kc_inode)
        self.kmem_free(self.kc_file)
        self.ctr[C_OBJECTS_FREE] += 1
        if shmem_inode_free(&self.s_inodes, inode):
            self.kmem_free(self.kc_group)

    # ==================================================================== VMAs
    cdef int vma_prealloc(self, mm_struct* mm) noexcept nogil:
        """Everything a split or merge may need, taken before anything changes."""
        cdef vm_area_struct* v
        if vmas_reserve(mm, NR_SPARE_VMAS) != 0:
            return MM_ENOMEM
        while self.nr_spare < NR_SPARE_VMAS:
            v = <vm_area_struct*>calloc(1, sizeof(vm_area_struct))
            if v == NULL:
                return MM_ENOMEM
            self.spare[self.nr_spare] = v
            self.nr_spare += 1
        return MM_OK

    cdef vm_area_struct* vma_take(self) noexcept nogil:
        self.nr_spare -= 1
        self.kmem_alloc(self.kc_vma)
        return self.spare[self.nr_spare]

    cdef void vma_put(self, vm_area_struct* vma) noexcept nogil:
        self.kmem_free(self.kc_vma)
        free(vma)

    cdef void split_at(self, mm_struct* mm, uint64_t addr) noexcept nogil:
        """Split the VMA straddling `addr` (if any) so that a VMA starts there."""
        cdef vm_area_struct* v = find_vma(mm, addr)
        if v == NULL or v.vm_start == addr:
            return
        if mm.nr_huge_pmd:
            self.split_at_boundary(mm, addr)
        split_vma(mm, v, self.vma_take(), addr)
        self.ctr[C_VMA_SPLITS] += 1

    cdef void merge_range(self, mm_struct* mm, uint64_t start, uint64_t end) noexcept nogil:
        """vma_merge over the VMAs touching [start, end) and their neighbours."""
        cdef int64_t i = vma_lower_bound(mm, start) - 1
        cdef vm_area_struct* gone
        if i < 0:
            i = 0
        while i + 1 < mm.map_count and mm.vmas[i].vm_start <= end:
            gone = try_merge_next(mm, i)
            if gone == NULL:
                i += 1
            else:
                self.vma_put(gone)
                self.ctr[C_VMA_MERGES] += 1

    cdef int64_t unmap_vma(self, mm_struct* mm, int64_t idx) noexcept nogil:
        """Remove vmas[idx] entirely: zap its PTEs, punch its offsets out of a
        private file (nobody else can reach them), drop the file reference.
        Returns the PTEs zapped (the caller flushes the TLB once)."""
        cdef vm_area_struct* v = mm.vmas[idx]
        cdef shmem_inode_info* inode = v.vm_file
        cdef int64_t zapped = self.zap_range(mm, v.vm_start, v.vm_end)
        if inode.private:
            self.shmem_truncate(inode, v.vm_pgoff, v.vm_pgoff + (v.vm_end - v.vm_start))
        vma_unlink_file(v)
        vmas_remove_at(mm, idx)
        self.vma_put(v)
        self.iput(inode)
        return zapped

    cdef void free_pgtables(self, mm_struct* mm, uint64_t start, uint64_t end) noexcept nogil:
        """Free page tables of the hole around [start, end) (floor..ceiling)."""
        cdef int64_t i = vma_lower_bound(mm, start)
        cdef uint64_t floor = mm.vmas[i - 1].vm_end if i > 0 else 0
        cdef uint64_t ceiling = mm.vmas[i].vm_start if i < mm.map_count else VPN_END
        pt_free_range(&mm.pgd, floor, ceiling)
        self.sync_pt(mm)

    # ================================================================== faults
    cdef int handle_mm_fault(self, vm_fault* vmf) noexcept nogil:
        """Dispatch one fault (the VMA allows the access); see the essay's table."""
        cdef int st
        cdef bint shared = (vmf.vma.vm_flags & VM_SHARED) != 0
        if not pte_present(vmf.orig_pte):
            if shared:
                st = self.shmem_fault_shared(vmf)
            elif vmf.write:
                st = self.do_cow_fault(vmf)
            else:
                st = self.do_read_fault(vmf)
        elif shared:                      # write to a PTE mprotect left read-only
            vmf.pte_table.e[vmf.vpn & 511] |= PTE_WRITE
            vmf.pfn = pte_pfn(vmf.orig_pte)
            self.ctr[C_FAULT_WP_SHARED] += 1
            self.ctr[C_PTE_WRITES] += 1
            st = MM_OK
        else:
            st = self.do_wp_page(vmf)
        if st == MM_OK:
            self.ctr[C_FAULTS] += 1
        return st

    cdef int shmem_fault_shared(self, vm_fault* vmf) noexcept nogil:
        cdef shmem_inode_info* inode = vmf.vma.vm_file
        cdef pfn_t pfn = mapping_lookup(&inode.i_data, vmf.pgoff)
        cdef int st
        if pfn == NO_PFN:
            st = self.shmem_alloc_and_add_folio(vmf, &pfn)
            if st != MM_OK:
                return st
            self.ctr[C_FAULT_ZERO_FILL] += 1
        else:
            self.ctr[C_FAULT_MINOR] += 1
        return self.finish_fault(vmf, pfn, (vmf.vma.vm_flags & VM_WRITE) != 0)

    cdef int do_read_fault(self, vm_fault* vmf) noexcept nogil:
        """Read of a private page: a hole is filled in the file as
        shmem_fault(SGP_CACHE) fills it (or maps the zero page with the
        zero_page option); a page is mapped writable only if this file alone
        holds it."""
        cdef pfn_t pfn = mapping_lookup(&vmf.vma.vm_file.i_data, vmf.pgoff)
        cdef bint writable
        cdef int st
        if pfn == NO_PFN and self.zero_page:
            self.ctr[C_FAULT_ZERO_PAGE] += 1
            return self.finish_fault(vmf, ZERO_PFN, False)
        if pfn == NO_PFN:
            st = self.shmem_alloc_and_add_folio(vmf, &pfn)
            if st != MM_OK:
                return st
            self.ctr[C_FAULT_ZERO_FILL] += 1
        else:
            self.ctr[C_FAULT_MINOR] += 1
        writable = (vmf.vma.vm_flags & VM_WRITE) != 0 and frame_file_refs(&self.frames, pfn) == 1
        return self.finish_fault(vmf, pfn, writable)

    cdef int do_cow_fault(self, vm_fault* vmf) noexcept nogil:
        cdef shmem_inode_info* inode = vmf.vma.vm_file
        cdef pfn_t pfn = mapping_lookup(&inode.i_data, vmf.pgoff)
        cdef int st
        if pfn == NO_PFN:
            st = self.shmem_alloc_and_add_folio(vmf, &pfn)
            if st != MM_OK:
                return st
            self.ctr[C_FAULT_ZERO_FILL] += 1
        elif frame_file_refs(&self.frames, pfn) > 1:
            return self.break_reflink(vmf, pfn)
        else:
            self.ctr[C_FAULT_MINOR] += 1
        return self.finish_fault(vmf, pfn, True)

    cdef int do_wp_page(self, vm_fault* vmf) noexcept nogil:
        """Write to a read-only PTE of a private VMA."""
        cdef pfn_t old = pte_pfn(vmf.orig_pte)
        cdef pfn_t pfn
        cdef int st
        if vmf.orig_pte & PTE_SPECIAL:                # the zero page: the file has a hole
            st = self.add_to_page_cache(vmf.vma.vm_file, vmf.pgoff, &pfn)
            if st != MM_OK:
                return st
            pt_set(vmf.pte_table, vmf.vpn, 0)
            self.set_pte(vmf.pte_table, vmf.vpn, pfn, True)
            self.ctr[C_TLB_FLUSHES] += 1
            self.ctr[C_FAULT_ZERO_FILL] += 1
            vmf.pfn = pfn
            return MM_OK
        if frame_file_refs(&self.frames, old) > 1:
            return self.break_reflink(vmf, old)
        vmf.pte_table.e[vmf.vpn & 511] |= PTE_WRITE   # wp_page_reuse
        self.ctr[C_PTE_WRITES] += 1
        self.ctr[C_FAULT_COW_REUSE] += 1
        vmf.pfn = old
        return MM_OK

    cdef int break_reflink(self, vm_fault* vmf, pfn_t old) noexcept nogil:
        """The writer's file gets its own copy of a frame other files share.

        High-level flow: take a free frame (fail before any change), copy the
        data, point the writer's i_pages slot at the copy (the slot exists, so
        no xa_node is allocated), drop the file's reference on the original,
        then replace the PTE (flushing the old translation if there was one)."""
        cdef shmem_inode_info* inode = vmf.vma.vm_file
        cdef pfn_t new
        cdef frame_t* d
        if frames_free_count(&self.frames, 0) < 1:
            return MM_ENOMEM
        if folio_order(&self.frames, old) == HPAGE_PMD_ORDER:
            # a page of a PMD-sized folio other files share: the writer's slot
            # can only name a page of its own once the folio is split (for
            # every file holding it); the split unmaps it here too
            self.split_huge_page(inode, vmf.pgoff)
            vmf.orig_pte = vmf.pte_table.e[vmf.vpn & 511] if vmf.pte_table != NULL else 0
        new = frame_alloc(&self.frames, 0)
        self.kmem_alloc(self.kc_page)
        d = &self.frames.f[new]
        d.value = self.frames.f[old].value
        d.owner = self.frames.f[old].owner
        d.index = vmf.pgoff
        d.flags = FR_PAGECACHE
        self.ctr[C_PAGES_COPIED] += 1
        xa_store(&inode.i_data.i_pages, vmf.pgoff, <uint64_t>new + 1)
        self.put_frame(old)
        if pte_present(vmf.orig_pte):             # ptep_clear_flush, then the new PTE
            self.pte_clear(vmf.pte_table, vmf.vpn)
            self.ctr[C_TLB_FLUSHES] += 1
        self.ctr[C_FAULT_COW_COPY] += 1
        return self.finish_fault(vmf, new, True)

    cdef int fault_in(self, mm_struct* mm, uint64_t vpn, bint write, pfn_t* out) noexcept nogil:
        """The access path shared by read and write: the frame backing `vpn`
        after any fault the access needs (ZERO_PFN for the zero page)."""
        cdef vm_fault vmf
        cdef int64_t nalloc = 0, levels
        cdef uint64_t e
        cdef int st
        vmf.vma = find_vma(mm, vpn)
        if vmf.vma == NULL:
            return MM_ESEGV
        if write and not (vmf.vma.vm_flags & VM_WRITE):
            return MM_EPROT
        if mm.nr_huge_pmd:
            e = pmd_leaf_at(mm, vpn)
            if e != 0:
                if not write or pte_write(e):
                    out[0] = pte_pfn(e) + <pfn_t>(vpn & (HPAGE_PMD_NR - 1))
                    return MM_OK
                # wp_huge_pmd: shmem has no huge_fault, so COW and write
                # notification happen at the PTE level: split the PMD
                self.split_huge_pmd(mm, vpn & ~(<uint64_t>(HPAGE_PMD_NR - 1)))
        vmf.pmd_table = pt_pmd_table(&mm.pgd, vpn, True, &nalloc)
        vmf.prealloc_pte = NULL
        if vmf.pmd_table != NULL and vmf.pmd_table.e[(vpn >> 9) & 511] == 0:
            vmf.prealloc_pte = pt_table_alloc(&mm.pgd)      # finish_fault installs it
            if vmf.prealloc_pte == NULL:
                vmf.pmd_table = NULL
        if vmf.pmd_table == NULL:
            unwind_new_tables(mm, vpn, nalloc + 1)   # the PMD entry is none here
            self.sync_pt(mm)
            return MM_ENOMEM
        # tables this fault made, counted from the PTE level: a failure frees them
        levels = nalloc + 1 if vmf.prealloc_pte != NULL else nalloc
        vmf.pte_table = <pt_node_t*><size_t>vmf.pmd_table.e[(vpn >> 9) & 511]
        vmf.orig_pte = vmf.pte_table.e[vpn & 511] if vmf.pte_table != NULL else 0
        if pte_present(vmf.orig_pte) and (not write or pte_write(vmf.orig_pte)):
            out[0] = pte_pfn(vmf.orig_pte)
            return MM_OK
        vmf.mm = mm
        vmf.vpn = vpn
        vmf.pgoff = vma_pgoff_of(vmf.vma, vpn)
        vmf.write = write
        st = self.handle_mm_fault(&vmf)
        if vmf.prealloc_pte != NULL:             # not needed: a PMD leaf, or a failure
            pt_table_free(&mm.pgd, vmf.prealloc_pte)
        if st != MM_OK:
            unwind_new_tables(mm, vpn, levels)   # a failed fault leaves no trace
        self.sync_pt(mm)
        out[0] = vmf.pfn
        return st

    # ============================================================ the contract
    cdef mm_struct* mm_alloc(self) noexcept nogil:
        cdef mm_struct* mm = <mm_struct*>calloc(1, sizeof(mm_struct))
        if mm == NULL:
            return NULL
        if pt_init(&mm.pgd) != 0:
            free(mm)
            return NULL
        self.kmem_alloc(self.kc_mm)
        self.sync_pt(mm)
        return mm

    cdef int c_spawn(self, int64_t* pid_out) noexcept nogil:
        cdef mm_struct* mm = self.mm_alloc()
        cdef int64_t pid
        if mm == NULL:
            return MM_ENOMEM
        pid = self.pid_install(mm)
        if pid < 0:
            self.exit_mmap(mm)
            return MM_ENOMEM
        mm.pid = pid
        pid_out[0] = pid
        return MM_OK

    cdef int c_mmap(self, int64_t pid, int64_t vpn, int64_t npages, uint64_t flags) noexcept nogil:
        cdef mm_struct* mm = <mm_struct*>self.proc_of(pid)
        cdef vm_area_struct* v
        cdef uint32_t vm_flags = ((VM_SHARED if flags & MAPF_SHARED else 0)
                                  | (VM_WRITE if flags & MAPF_WRITE else 0))
        if range_any_mapped(mm, vpn, vpn + npages):
            return MM_EINVAL
        if self.vma_prealloc(mm) != MM_OK:
            return MM_ENOMEM
        v = self.vma_take()
        if (vm_flags & VM_SHARED) or not self.file_per_mm:
            v.vm_file = self.inode_new(not (vm_flags & VM_SHARED), NULL)   # shmem_zero_setup
            v.vm_pgoff = 0
        else:
            v.vm_file = self.private_file_for(mm, vpn, npages)
            v.vm_pgoff = vpn
        if v.vm_file == NULL:
            self.spare[self.nr_spare] = v          # give it back unaccounted
            self.nr_spare += 1
            self.kmem_free(self.kc_vma)
            return MM_ENOMEM
        if v.vm_file.i_size < v.vm_pgoff + npages:    # shmem_zero_setup's size; per_mm: grows
            v.vm_file.i_size = v.vm_pgoff + npages
        v.vm_start = vpn
        v.vm_end = vpn + npages
        v.vm_flags = vm_flags
        v.vm_mm = mm
        vma_link_file(v)
        vmas_insert(mm, v)
        if self.file_per_mm:
            self.merge_range(mm, vpn, vpn + npages)   # same file, contiguous offsets
        self.sync_maple(mm)
        return MM_OK

    cdef shmem_inode_info* private_file_for(self, mm_struct* mm, uint64_t vpn, uint64_t npages) noexcept nogil:
        """anon_file="per_mm": the mm's address-indexed file, unless a moved
        VMA still maps offsets [vpn, vpn + npages) of it (then a file of the
        mapping's own).  NULL when out of memory."""
        cdef shmem_inode_info* f = mm.private_file
        if f != NULL and file_range_unmapped(f, vpn, vpn + npages - 1):
            return f
        f = self.inode_new(True, NULL)
        if f != NULL and mm.private_file == NULL:
            mm.private_file = f
            f.owner_mm = mm
        return f

    cdef int c_munmap(self, int64_t pid, int64_t vpn, int64_t npages) noexcept nogil:
        cdef mm_struct* mm = <mm_struct*>self.proc_of(pid)
        cdef uint64_t end = vpn + npages
        cdef int64_t i, zapped = 0
        if not range_any_mapped(mm, vpn, end):
            return MM_OK
        if self.vma_prealloc(mm) != MM_OK:
            return MM_ENOMEM
        self.split_at(mm, vpn)
        self.split_at(mm, end)
        i = vma_lower_bound(mm, vpn)
        while i < mm.map_count and mm.vmas[i].vm_start < end:
            zapped += self.unmap_vma(mm, i)
        if zapped:
            self.ctr[C_TLB_FLUSHES] += 1
        self.free_pgtables(mm, vpn, end)
        self.sync_maple(mm)
        return MM_OK

    cdef int c_mprotect(self, int64_t pid, int64_t vpn, int64_t npages, bint writable) noexcept nogil:
        cdef mm_struct* mm = <mm_struct*>self.proc_of(pid)
        cdef uint64_t end = vpn + npages
        cdef int64_t i
        cdef int64_t n = 0
        cdef vm_area_struct* v
        if not range_fully_mapped(mm, vpn, end):
            return MM_EINVAL
        if self.vma_prealloc(mm) != MM_OK:
            return MM_ENOMEM
        self.split_at(mm, vpn)
        self.split_at(mm, end)
        i = vma_lower_bound(mm, vpn)
        while i < mm.map_count and mm.vmas[i].vm_start < end:
            v = mm.vmas[i]
            if writable:
                v.vm_flags |= VM_WRITE        # PTEs stay read-only: the next write faults
            else:
                v.vm_flags &= ~(<uint32_t>VM_WRITE)
                n += self.wrprotect_range(mm, v.vm_start, v.vm_end)
            i += 1
        if n:
            self.ctr[C_TLB_FLUSHES] += 1
        self.merge_range(mm, vpn, end)
        self.sync_maple(mm)
        return MM_OK

    cdef int c_read(self, int64_t pid, int64_t vpn, uint64_t* out) noexcept nogil:
        cdef mm_struct* mm = <mm_struct*>self.proc_of(pid)
        cdef pfn_t pfn
        cdef int st = self.fault_in(mm, vpn, False, &pfn)
        if st == MM_OK:
            out[0] = 0 if pfn == ZERO_PFN else self.frames.f[pfn].value
        return st

    cdef int c_write(self, int64_t pid, int64_t vpn, uint64_t value) noexcept nogil:
        cdef mm_struct* mm = <mm_struct*>self.proc_of(pid)
        cdef pfn_t pfn
        cdef int st = self.fault_in(mm, vpn, True, &pfn)
        if st == MM_OK:
            self.frames.f[pfn].value = value
        return st

    cdef int c_madvise(self, int64_t pid, int64_t vpn, int64_t npages, int advice) noexcept nogil:
        """HUGEPAGE / NOHUGEPAGE set VM_HUGEPAGE / VM_NOHUGEPAGE (clearing the
        other) on the VMAs of the range, splitting at the range's edges only
        where a VMA's flags change and merging afterwards (madvise_update_vma).
        The flag is kept for the huge= advise policy; it moves VMA counts only."""
        cdef mm_struct* mm = <mm_struct*>self.proc_of(pid)
        cdef uint64_t end = vpn + npages
        cdef uint32_t set_f, clear_f
        cdef int64_t i
        cdef vm_area_struct* v
        cdef bint change = False
        if advice == MADV_DONTNEED:
            return self.c_madvise_dontneed(pid, vpn, npages)
        if not range_fully_mapped(mm, vpn, end):
            return MM_EINVAL
        if advice == MADV_HUGEPAGE:
            set_f, clear_f = VM_HUGEPAGE, VM_NOHUGEPAGE
        else:
            set_f, clear_f = VM_NOHUGEPAGE, VM_HUGEPAGE
        i = vma_lower_bound(mm, vpn)
        while i < mm.map_count and mm.vmas[i].vm_start < end:
            v = mm.vmas[i]
            if (v.vm_flags & ~clear_f) | set_f != v.vm_flags:
                change = True
                break
            i += 1
        if not change:
            return MM_OK
        if self.vma_prealloc(mm) != MM_OK:
            return MM_ENOMEM
        self.split_at(mm, vpn)
        self.split_at(mm, end)
        i = vma_lower_bound(mm, vpn)
        while i < mm.map_count and mm.vmas[i].vm_start < end:
            v = mm.vmas[i]
            v.vm_flags = (v.vm_flags & ~clear_f) | set_f
            i += 1
        self.merge_range(mm, vpn, end)
        self.sync_maple(mm)
        return MM_OK

    def notes(self):
        with self.held():
            return self._notes()

    def _notes(self):
        if self.ndevices > 0:
            return [f"internal tmpfs mounted huge={self.huge} (thp={self.options['thp']!r}), but with "
                    "devices every page is 4 KiB (migration moves single pages)", self.move_pages_note()]
        return [f"internal tmpfs mounted huge={self.huge} (thp={self.options['thp']!r}): PMD-sized "
                "(2 MiB) folios in the page cache where huge= allows them, mapped by one PMD "
                "when the VMA lines up (do_set_pmd); no mTHP orders, no khugepaged", self.move_pages_note()]

    cdef int c_madvise_dontneed(self, int64_t pid, int64_t vpn, int64_t npages) noexcept nogil:
        """Zap the range; private files also lose those offsets (read 0 again),
        shared files keep them (the data lives in the page cache)."""
        cdef mm_struct* mm = <mm_struct*>self.proc_of(pid)
        cdef uint64_t end = vpn + npages
        cdef uint64_t s, e
        cdef int64_t i, n = 0
        cdef vm_area_struct* v
        if not range_fully_mapped(mm, vpn, end):
            return MM_EINVAL
        i = vma_lower_bound(mm, vpn)
        while i < mm.map_count and mm.vmas[i].vm_start < end:
            v = mm.vmas[i]
            s = v.vm_start if v.vm_start > <uint64_t>vpn else vpn
            e = v.vm_end if v.vm_end < end else end
            n += self.zap_range(mm, s, e)
            if v.vm_file.private:
                self.shmem_truncate(v.vm_file, vma_pgoff_of(v, s), vma_pgoff_of(v, e))
            i += 1
        if n:
            self.ctr[C_TLB_FLUSHES] += 1
        return MM_OK

    cdef int c_mremap(self, int64_t pid, int64_t old_vpn, int64_t npages, int64_t new_vpn) noexcept nogil:
        """Move whole VMAs by `new - old`: file and offset stay, so i_mmap is
        untouched; present PTEs move (move_ptes) and nothing is copied."""
        cdef mm_struct* mm = <mm_struct*>self.proc_of(pid)
        cdef uint64_t old = old_vpn, new = new_vpn, n = npages
        cdef int64_t i0, i1, k, nmoved
        cdef vm_area_struct* moved[64]
        cdef vm_area_struct** mv = moved
        if new < old + n and old < new + n:
            return MM_EINVAL
        if not range_fully_mapped(mm, old, old + n):
            return MM_ESEGV
        if range_any_mapped(mm, new, new + n):
            return MM_EINVAL
        if self.vma_prealloc(mm) != MM_OK:
            return MM_ENOMEM
        self.split_at(mm, old)
        self.split_at(mm, old + n)
        i0 = vma_lower_bound(mm, old)
        i1 = vma_lower_bound(mm, old + n)
        nmoved = i1 - i0
        if nmoved > 64:
            mv = <vm_area_struct**>malloc(nmoved * sizeof(vm_area_struct*))
            if mv == NULL:          # splits are harmless to keep: merge them back
                self.merge_range(mm, old, old + n)
                self.sync_maple(mm)
                return MM_ENOMEM
        for k in range(nmoved):
            mv[k] = mm.vmas[i0]
            vmas_remove_at(mm, i0)
        for k in range(nmoved):
            mv[k].vm_start += new - old
            mv[k].vm_end += new - old
            vmas_insert(mm, mv[k])
        if mv != moved:
            free(mv)
        self.move_ptes(mm, old, new, n)
        self.free_pgtables(mm, old, old + n)
        self.merge_range(mm, old, old + n)
        self.merge_range(mm, new, new + n)
        self.sync_maple(mm)
        return MM_OK

    cdef void move_ptes(self, mm_struct* mm, uint64_t old, uint64_t new, uint64_t n) noexcept nogil:
        """move_ptes: each present PTE of [old, old+n) goes to the same place in
        [new, new+n), frame references unchanged.  Should a page-table page be
        unavailable the PTE is zapped instead: it refaults from the file."""
        cdef uint64_t vpn = 0, pte, h = 0
        cdef int64_t nalloc = 0, moved = 0
        cdef pt_node_t* dst
        cdef pt_node_t* t
        while mm.nr_huge_pmd and pmd_leaf_next(&mm.pgd, old, old + n, &h) != NULL:
            self.split_huge_pmd(mm, h)   # move_huge_pmd not modelled: the leaf refaults
        t = pt_next(&mm.pgd, old, old + n, &vpn)
        while t != NULL:
            dst = pt_leaf(&mm.pgd, vpn - old + new, True, &nalloc)
            if dst == NULL:
                self.zap_pte(t, vpn)
            else:
                pte = t.e[vpn & 511]
                pt_set(t, vpn, 0)
                pt_set(dst, vpn - old + new, pte)
                self.ctr[C_PTE_WRITES] += 2
            moved += 1
            t = pt_next(&mm.pgd, vpn + 1, old + n, &vpn)
        self.sync_pt(mm)
        if moved:
            self.ctr[C_TLB_FLUSHES] += 1
        self.ctr[C_MREMAP_PAGES_MOVED] += n

    cdef void fork_wrprotect(self, mm_struct* parent) noexcept nogil:
        """The parent's private frames are now held by two files: no PTE of
        the parent may keep writing them in place."""
        cdef int64_t i, n = 0
        cdef vm_area_struct* v
        for i in range(parent.map_count):
            v = parent.vmas[i]
            if v.vm_file.private:
                n += self.wrprotect_range(parent, v.vm_start, v.vm_end)
        self.ctr[C_FORK_PTES_WRPROTECT] += n
        if n:
            self.ctr[C_TLB_FLUSHES] += 1

    cdef shmem_inode_info* clone_for_child(self, shmem_inode_info* file) noexcept nogil:
        """The child's view of a parent's file: the file itself when shared,
        else its reflink clone (made once per file and fork).  NULL: no memory."""
        cdef shmem_inode_info* clone
        cdef int rc
        if not file.private:
            return file
        if file.fork_clone != NULL:
            return file.fork_clone
        clone = self.inode_new(True, file)
        if clone == NULL:
            return NULL
        file.fork_clone = clone            # dup_mmap evicts it if it stays unused
        rc = reflink_clone(file, clone, &self.frames)
        self.sync_xa(clone)
        self.ctr[C_REFLINK_CLONES] += 1
        return clone if rc == 0 else NULL

    cdef int dup_mmap(self, mm_struct* parent, mm_struct* child) noexcept nogil:
        """Give `child` a VMA per parent VMA: shared ones on the same file,
        private ones on the file's reflink clone.  No page table is copied."""
        cdef int64_t i
        cdef int st = MM_OK
        cdef vm_area_struct* v
        cdef vm_area_struct* d
        cdef shmem_inode_info* f
        if vmas_reserve(child, parent.map_count) != 0:
            return MM_ENOMEM
        for i in range(parent.map_count):
            v = parent.vmas[i]
            f = self.clone_for_child(v.vm_file)
            d = <vm_area_struct*>calloc(1, sizeof(vm_area_struct)) if f != NULL else NULL
            if d == NULL:
                st = MM_ENOMEM
                break
            self.kmem_alloc(self.kc_vma)
            d.vm_start = v.vm_start
            d.vm_end = v.vm_end
            d.vm_pgoff = v.vm_pgoff
            d.vm_flags = v.vm_flags
            d.vm_file = f
            d.vm_mm = child
            vma_link_file(d)
            child.vmas[child.map_count] = d       # parent order is already sorted
            child.map_count += 1
        if parent.private_file != NULL and parent.private_file.fork_clone != NULL:
            child.private_file = parent.private_file.fork_clone
            child.private_file.owner_mm = child
        for i in range(parent.map_count):
            f = parent.vmas[i].vm_file.fork_clone
            parent.vmas[i].vm_file.fork_clone = NULL
            if f != NULL and f.i_count == 0:      # a clone no child VMA took (failure)
                self.iput(f)
        self.sync_maple(child)
        return st

    cdef void exit_mmap(self, mm_struct* mm) noexcept nogil:
        cdef int64_t zapped = 0
        while mm.map_count > 0:
            zapped += self.unmap_vma(mm, mm.map_count - 1)
        if zapped:
            self.ctr[C_TLB_FLUSHES] += 1          # one flush of the whole mm
        pt_destroy(&mm.pgd)
        self.sync_pt(mm)
        self.sync_maple(mm)
        self.kmem_free(self.kc_mm)
        free(mm.vmas)
        free(mm)

    cdef int c_fork(self, int64_t pid, int64_t* child_out) noexcept nogil:
        cdef mm_struct* parent = <mm_struct*>self.proc_of(pid)
        cdef mm_struct* child = self.mm_alloc()
        cdef int64_t cpid
        if child == NULL:
            return MM_ENOMEM
        if self.dup_mmap(parent, child) != MM_OK:
            self.exit_mmap(child)
            return MM_ENOMEM
        cpid = self.pid_install(child)
        if cpid < 0:
            self.exit_mmap(child)
            return MM_ENOMEM
        child.pid = cpid
        self.fork_wrprotect(parent)
        child_out[0] = cpid
        return MM_OK

    cdef int c_exit(self, int64_t pid) noexcept nogil:
        self.exit_mmap(<mm_struct*>self.proc_of(pid))
        self.pid_release(pid)
        return MM_OK


    # ============================================================== invariants
    cdef bint pfn_valid(self, pfn_t pfn) noexcept nogil:
        """Can a page cache name this frame?  Host frames only here; a design
        that stores device frames in the page cache widens it."""
        return pfn < self.frames.node_bump[0]

    cdef int c_check(self) noexcept nogil:
        cdef int64_t pid, nmm = 0
        cdef mm_struct* mm
        cdef int st
        for pid in range(1, self.next_pid):
            mm = <mm_struct*>self.procs[pid]
            if mm != NULL:
                nmm += 1
                if mm.pid != pid:
                    return self.check_fail("mm_struct carries the wrong pid")
                if mm.private_file != NULL and (mm.private_file.owner_mm != mm
                                                or not mm.private_file.private):
                    return self.check_fail("the mm's private file is not a private file it owns")
                st = self.check_vmas(mm)
                if st != MM_OK:
                    return st
        if nmm != self.caches[self.kc_mm].active:
            return self.check_fail("mm_struct accounting differs from the live processes")
        st = self.check_inodes()
        if st != MM_OK:
            return st
        return self.check_frames()

    cdef int check_vmas(self, mm_struct* mm) noexcept nogil:
        """VMAs sorted and disjoint, linked in their file's i_mmap with the
        range they map; a private offset is mapped by one VMA only; accounting."""
        cdef int64_t i, lvl
        cdef vm_area_struct* v
        cdef itnode_t* it
        for i in range(mm.map_count):
            v = mm.vmas[i]
            if v.vm_start >= v.vm_end or v.vm_end > VPN_END:
                return self.check_fail("VMA with an empty or out-of-range span")
            if i > 0 and v.vm_start < mm.vmas[i - 1].vm_end:
                return self.check_fail("VMAs out of order or overlapping")
            if v.vm_mm != mm or v.vm_file == NULL:
                return self.check_fail("VMA with a wrong vm_mm or no vm_file")
            if (v.shared_rb.start != v.vm_pgoff
                    or v.shared_rb.last != v.vm_pgoff + (v.vm_end - v.vm_start) - 1):
                return self.check_fail("VMA's i_mmap key differs from the file range it maps")
            if v.vm_file.private == ((v.vm_flags & VM_SHARED) != 0):
                return self.check_fail("shared VMA on a private file or the reverse")
            if v.vm_file.fork_clone != NULL:
                return self.check_fail("fork_clone left set after a fork")
            v.vm_file.check_mappers += 1
            if v.vm_file.private:
                it = itree_first(&v.vm_file.i_data.i_mmap, v.shared_rb.start, v.shared_rb.last)
                if it != &v.shared_rb or itree_next(it, v.shared_rb.start, v.shared_rb.last) != NULL:
                    return self.check_fail("two VMAs map the same offset of a private file")
        if mm.maple_nodes != maple_nodes_for(mm.map_count):
            return self.check_fail("maple_node accounting differs from the VMA count")
        for lvl in range(4):
            if mm.pt_seen[lvl] != mm.pgd.nr[lvl]:
                return self.check_fail("page-table pages not accounted")
        if mm.pgd.nr[LVL_PGD] != 1:
            return self.check_fail("mm without exactly one pgd")
        return MM_OK

    cdef int check_inodes(self) noexcept nogil:
        """Per file: VMAs found == i_count == i_mmap.count > 0, i_mmap valid,
        nrpages == entries, xa_nodes accounted; groups consistent; totals."""
        cdef shmem_inode_info* f = self.s_inodes
        cdef shmem_inode_info* m
        cdef int64_t ninodes = 0, ngroups = 0, xa_nodes = 0, members
        while f != NULL:
            ninodes += 1
            xa_nodes += xa_kernel_nodes(f)
            if f.owner_mm != NULL and f.owner_mm.private_file != f:
                return self.check_fail("inode names an mm whose private file it is not")
            if f.check_mappers != f.i_count or f.i_count != f.i_data.i_mmap.count or f.i_count < 1:
                return self.check_fail("inode i_count differs from the VMAs mapping it (or is 0)")
            f.check_mappers = 0
            if itree_verify(&f.i_data.i_mmap) != 0:
                return self.check_fail("i_mmap interval tree is corrupt")
            if f.i_data.nrpages != f.i_data.i_pages.nr_entries:
                return self.check_fail("nrpages differs from the entries of i_pages")
            if f.xa_nodes_seen != xa_kernel_nodes(f):
                return self.check_fail("xa_node allocations not accounted")
            if not xa_hint_ok(&f.i_data.i_pages):
                return self.check_fail("i_pages' walk hint is not its leaf")
            if f.private != (f.group != NULL):
                return self.check_fail("private file without reflink group or the reverse")
            if f.group != NULL and f.group.head == f:
                ngroups += 1
                members = 0
                m = f
                while m != NULL:
                    if m.group != f.group:
                        return self.check_fail("reflink group list holds a foreign inode")
                    members += 1
                    m = m.group_next
                if members != f.group.nr_members:
                    return self.check_fail("reflink group member count is wrong")
            f = f.sb_next
        if ninodes != self.caches[self.kc_inode].active or ninodes != self.caches[self.kc_file].active:
            return self.check_fail("shmem_inode_info/file accounting differs from live inodes")
        if ngroups != self.caches[self.kc_group].active:
            return self.check_fail("reflink_group accounting differs from live groups")
        if xa_nodes != self.caches[self.kc_xa].active:
            return self.check_fail("xa_node accounting differs from the page caches")
        return MM_OK

    cdef int check_frames(self) noexcept nogil:
        """Page caches, PTEs and frame counts against each other, then the
        frames of the devices (none here; the device design adds them)."""
        cdef int64_t nf = self.check_frames_span()
        cdef int32_t* refs = <int32_t*>calloc(nf + 1, sizeof(int32_t))
        cdef int32_t* maps = <int32_t*>calloc(nf + 1, sizeof(int32_t))
        cdef int st
        if refs == NULL or maps == NULL:
            free(refs)
            free(maps)
            return self.check_fail("out of memory while checking")
        st = self.check_page_caches(refs)
        if st == MM_OK:
            st = self.check_ptes(refs, maps)
        if st == MM_OK:
            st = self.check_frame_counts(refs, maps)
        if st == MM_OK:
            st = self.check_device_frames(refs, maps)
        free(refs)
        free(maps)
        return st

    cdef int64_t check_frames_span(self) noexcept nogil:
        """Frames check_frames counts references for: the host frames handed out."""
        return self.frames.node_bump[0]

    cdef int check_device_frames(self, int32_t* refs, int32_t* maps) noexcept nogil:
        return MM_OK

    cdef int check_page_caches(self, int32_t* refs) noexcept nogil:
        """Every cached frame: allocated, marked page cache, at its index,
        owned by the file (shared) or its reflink group (private)."""
        cdef shmem_inode_info* f = self.s_inodes
        cdef uint64_t idx = 0, start, e, owner
        cdef int64_t thps
        cdef int order
        cdef pfn_t pfn
        cdef frame_t* d
        while f != NULL:
            owner = <uint64_t><size_t>(f.group if f.private else <void*>f)
            start = 0
            thps = 0
            e = xa_find(&f.i_data.i_pages, 0, PGOFF_MAX, &idx)
            while e != 0:
                pfn = <pfn_t>(e - 1)
                if not self.pfn_valid(pfn):
                    return self.check_fail("page cache names a frame never allocated")
                order = folio_order(&self.frames, pfn)
                if order != 0:
                    if order != HPAGE_PMD_ORDER or (pfn & (HPAGE_PMD_NR - 1)) != (idx & (HPAGE_PMD_NR - 1)):
                        return self.check_fail("large folio not PMD-sized or not at its aligned index")
                    if (idx & (HPAGE_PMD_NR - 1)) == 0:
                        thps += 1
                d = &self.frames.f[pfn]
                if d.refcount <= 0 or not (d.flags & FR_PAGECACHE):
                    return self.check_fail("page cache names a free frame")
                if d.index != idx or d.owner != owner:
                    return self.check_fail("frame index/owner differs from the file holding it")
                if f.private and itree_first(&f.i_data.i_mmap, idx, idx) == NULL:
                    return self.check_fail("private file holds a page no VMA can reach")
                refs[pfn] += 1
                e = xa_find(&f.i_data.i_pages, idx + 1, PGOFF_MAX, &idx)
            if thps != f.nr_thps:
                return self.check_fail("nr_thps differs from the PMD-sized folios in i_pages")
            f = f.sb_next
        return MM_OK

    cdef int check_ptes(self, int32_t* refs, int32_t* maps) noexcept nogil:
        """Every PTE lies in a VMA and maps what the VMA's file holds at that
        offset (the zero page only over a private hole, read-only)."""
        cdef int64_t pid
        cdef mm_struct* mm
        cdef uint64_t vpn = 0, pte
        cdef pt_node_t* t
        cdef vm_area_struct* v
        cdef pfn_t pfn
        for pid in range(1, self.next_pid):
            mm = <mm_struct*>self.procs[pid]
            if mm == NULL:
                continue
            if self.check_huge_pmds(mm, refs, maps) != MM_OK:
                return MM_EINVAL
            t = pt_next(&mm.pgd, 0, VPN_END, &vpn)
            while t != NULL:
                pte = t.e[vpn & 511]
                v = find_vma(mm, vpn)
                if v == NULL:
                    return self.check_fail("PTE outside every VMA")
                pfn = mapping_lookup(&v.vm_file.i_data, vma_pgoff_of(v, vpn))
                if pte & PTE_SPECIAL:
                    if pfn != NO_PFN or v.vm_file.private == 0 or pte_write(pte):
                        return self.check_fail("zero-page PTE where the file has a page")
                elif pte_pfn(pte) != pfn:
                    return self.check_fail("PTE maps a frame the file does not hold there")
                else:
                    refs[pfn] += 1
                    maps[pfn] += 1
                    if pte_write(pte) and not (v.vm_flags & VM_WRITE):
                        return self.check_fail("writable PTE in a read-only VMA")
                    if pte_write(pte) and frame_file_refs(&self.frames, pfn) != 1:
                        return self.check_fail("writable PTE to a frame several files share")
                t = pt_next(&mm.pgd, vpn + 1, VPN_END, &vpn)
        return MM_OK

    cdef int check_huge_pmds(self, mm_struct* mm, int32_t* refs, int32_t* maps) noexcept nogil:
        """Every PMD leaf: inside a VMA that may map it (thp_vma_suitable, no
        VM_NOHUGEPAGE), mapping the PMD-sized folio the file holds there, whole;
        writable only as a PTE would be; nr_huge_pmd counts them."""
        cdef uint64_t h = 0, e, k, pgoff
        cdef int64_t n = 0
        cdef pt_node_t* pmd_t = pmd_leaf_next(&mm.pgd, 0, VPN_END, &h)
        cdef vm_area_struct* v
        cdef pfn_t head
        while pmd_t != NULL:
            n += 1
            e = pmd_t.e[(h >> 9) & 511]
            v = find_vma(mm, h)
            if v == NULL or not thp_vma_suitable(v, h):     # (VM_NOHUGEPAGE set later keeps it)
                return self.check_fail("PMD leaf where no VMA may map 2 MiB")
            head = pte_pfn(e)
            pgoff = vma_pgoff_of(v, h)
            if (e & PTE_SPECIAL) or not (e & PMD_PSE) or not self.pfn_valid(head):
                return self.check_fail("PMD leaf that maps no page-cache folio")
            if folio_order(&self.frames, head) != HPAGE_PMD_ORDER:
                return self.check_fail("PMD leaf mapping a folio that is not PMD-sized")
            for k in range(HPAGE_PMD_NR):
                if mapping_lookup(&v.vm_file.i_data, pgoff + k) != head + <pfn_t>k:
                    return self.check_fail("PMD leaf maps pages the file does not hold there")
                refs[head + k] += 1
                maps[head + k] += 1
            if pte_write(e) and (not (v.vm_flags & VM_WRITE) or frame_file_refs(&self.frames, head) != 1):
                return self.check_fail("writable PMD leaf in a read-only VMA or over a shared folio")
            pmd_t = pmd_leaf_next(&mm.pgd, h + HPAGE_PMD_NR, VPN_END, &h)
        if n != mm.nr_huge_pmd:
            return self.check_fail("nr_huge_pmd differs from the PMD leaves mapped")
        return MM_OK

    cdef int check_frame_counts(self, int32_t* refs, int32_t* maps) noexcept nogil:
        cdef int64_t pfn, used = 0
        cdef frame_t* d
        for pfn in range(self.frames.node_bump[0]):
            d = &self.frames.f[pfn]
            if d.refcount != refs[pfn] or d.mapcount != maps[pfn]:
                return self.check_fail("frame refcount/mapcount differs from files + PTEs")
            if refs[pfn] > 0:
                used += 1
                if refs[pfn] == maps[pfn]:
                    return self.check_fail("mapped frame held by no file")
        if used != self.frames.node_used[0] or used != self.caches[self.kc_page].active:
            return self.check_fail("frames in use differ from frames held (leak)")
        return MM_OK

    cdef int move_range_status(self, int64_t pid, int64_t vpn, int64_t npages) noexcept:
        """The copying move_pages' range check, on the VMA set."""
        return range_move_check(<mm_struct*>self.procs[pid], <uint64_t>vpn, <uint64_t>(vpn + npages))

    # ============================================================ introspection
    def vmas(self, pid):
        """The VMAs of a process in address order: dicts with start, end, pgoff,
        writable, shared (mappings() and the generic move_pages read them)."""
        cdef mm_struct* mm = <mm_struct*>self.procs[self._pid(pid)]
        cdef vm_area_struct* v
        cdef int64_t i
        out = []
        for i in range(mm.map_count):
            v = mm.vmas[i]
            out.append({"start": int(v.vm_start), "end": int(v.vm_end), "pgoff": int(v.vm_pgoff),
                        "writable": bool(v.vm_flags & VM_WRITE), "shared": bool(v.vm_flags & VM_SHARED)})
        return out

    def rmap_walk(self, pid, vpn):
        """Reverse map of the frame `pid` reaches at `vpn`: walk the i_mmap of
        every file holding it (its reflink group for private memory).

        Returns [(pid, vpn, present)] for every VMA mapping that frame's
        offset in a file that holds it; ``present`` tells whether a PTE maps
        it now.  [] when the page is a hole (nothing to walk).  Counts one
        C_I_MMAP_VISITS per file searched, one C_RMAP_VISITS per VMA visited."""
        with self.held():
            return self._rmap_walk(pid, vpn)

    def _rmap_walk(self, pid, vpn):
        cdef mm_struct* mm
        cdef vm_area_struct* v
        cdef shmem_inode_info* f
        cdef uint64_t pgoff
        cdef pfn_t pfn
        pid = self._pid(pid)
        vpn, _ = self._range(vpn)
        mm = <mm_struct*>self.proc_of(pid)
        v = find_vma(mm, vpn)
        if v == NULL:
            raise _errors.SegmentationFault(f"pid {pid}: vpn {vpn} is not mapped")
        pgoff = vma_pgoff_of(v, vpn)
        pfn = mapping_lookup(&v.vm_file.i_data, pgoff)
        if pfn == NO_PFN:
            return []
        out = []
        f = v.vm_file.group.head if v.vm_file.private else v.vm_file
        while f != NULL:
            self.ctr[C_I_MMAP_VISITS] += 1
            if mapping_lookup(&f.i_data, pgoff) == pfn:
                out.extend(self._i_mmap_mappers(f, pgoff, pfn))
            f = f.group_next if f.private else NULL
        return sorted(out)

    cdef list _i_mmap_mappers(self, shmem_inode_info* f, uint64_t pgoff, pfn_t pfn):
        cdef itnode_t* it = itree_first(&f.i_data.i_mmap, pgoff, pgoff)
        cdef vm_area_struct* w
        cdef uint64_t addr, pte
        out = []
        while it != NULL:
            w = <vm_area_struct*>it
            self.ctr[C_RMAP_VISITS] += 1
            addr = w.vm_start + (pgoff - w.vm_pgoff)
            pte = pt_get_pte(&w.vm_mm.pgd, addr)
            out.append((int(w.vm_mm.pid), int(addr),
                        bool(pte_present(pte) and not (pte & PTE_SPECIAL) and pte_pfn(pte) == pfn)))
            it = itree_next(it, pgoff, pgoff)
        return out

    def page_table_bytes(self, pid):
        """VmPTE of `pid` as /proc/PID/status shows it (PUD+PMD+PTE tables)."""
        with self.held():
            return self._page_table_bytes(pid)

    def _page_table_bytes(self, pid):
        cdef mm_struct* mm = <mm_struct*>self.proc_of(self._pid(pid))
        return int(pt_vmpte_bytes(&mm.pgd))

    def file_info(self, pid, vpn):
        """{ino, private, nrpages, i_count, group_members} of the file behind vpn."""
        with self.held():
            return self._file_info(pid, vpn)

    def _file_info(self, pid, vpn):
        cdef mm_struct* mm = <mm_struct*>self.proc_of(self._pid(pid))
        cdef vm_area_struct* v = find_vma(mm, self._range(vpn)[0])
        if v == NULL:
            raise _errors.SegmentationFault(f"pid {pid}: vpn {vpn} is not mapped")
        return {"ino": int(v.vm_file.i_ino), "private": bool(v.vm_file.private),
                "nrpages": int(v.vm_file.i_data.nrpages), "i_count": int(v.vm_file.i_count),
                "xa_nodes": int(xa_kernel_nodes(v.vm_file)),
                "group_members": int(v.vm_file.group.nr_members) if v.vm_file.private else 1}

    def _corrupt(self, pid, vpn, what):
        """Tests only: break one invariant at (pid, vpn) so a test can see
        check() catch it.  `what`: "refcount", "nrpages", "i_count", "pte_write",
        "xa_account", "index"."""
        with self.held():
            return self._corrupt_locked(pid, vpn, what)

    def _corrupt_locked(self, pid, vpn, what):
        cdef mm_struct* mm = <mm_struct*>self.proc_of(self._pid(pid))
        cdef vm_area_struct* v = find_vma(mm, vpn)
        cdef pfn_t pfn
        cdef pt_node_t* t
        if v == NULL:
            raise _errors.SegmentationFault("not mapped")
        pfn = mapping_lookup(&v.vm_file.i_data, vma_pgoff_of(v, vpn))
        if what == "refcount" and pfn != NO_PFN:
            self.frames.f[pfn].refcount += 1
        elif what == "index" and pfn != NO_PFN:
            self.frames.f[pfn].index += 1
        elif what == "nrpages":
            v.vm_file.i_data.nrpages += 1
        elif what == "i_count":
            v.vm_file.i_count += 1
        elif what == "xa_account":
            self.caches[self.kc_xa].active += 1
        elif what == "pte_write":
            t = pt_find_leaf(&mm.pgd, vpn)
            if t == NULL or t.e[vpn & 511] == 0:
                raise _errors.InvalidArgument("no PTE there")
            t.e[vpn & 511] |= PTE_WRITE
        else:
            raise _errors.InvalidArgument(f"cannot corrupt {what!r} here")
