# mmbench_linux.mm — the address-space half of the `linux` design: slab
# accounting, the ordered VMA set with split and merge, and the anonymous
# reverse map (anon_vma, anon_vma_chain).  The fault path (fault.pyx) and the
# operations (core.pyx) build on LinuxMM; the design essay opens core.pyx.
#
# The rules kept here:
#   * VMAs are sorted, non-overlapping; a private anonymous VMA's vm_pgoff is its
#     vm_start at mmap time and moves with splits (linear_page_index is stable).
#   * Two VMAs merge when adjacent with equal vm_flags, the same file, continuous
#     pgoff and compatible anon_vmas (is_mergeable_anon_vma).
#   * Every AVC of a VMA sits in its anon_vma's interval tree keyed by the VMA's
#     [vm_pgoff, vm_pgoff + pages - 1]; vma_set_range re-keys them.
#   * anon_vma life: freed when its tree empties (its parent loses a child); a
#     root also waits for its descendants (refcount).
#   * A large anon folio (FR_LARGE, order in frame->aux) is freed whole with its
#     last referenced page; while some pages are unmapped and others mapped it is
#     on the deferred split queue, flagged partially mapped (FR_PARTIAL on the head).

from libc.stdlib cimport calloc, realloc, free
from libc.stdint cimport int64_t, uint64_t, int32_t, uint32_t

from mmbench.core cimport (Machine, MM_OK, MM_ENOMEM, VPN_BITS, C_PT_PAGES_ALLOC, C_PT_PAGES_FREE,
                           C_VMA_MERGES, C_VMA_SPLITS, C_OBJECTS_ALLOC, C_OBJECTS_FREE,
                           C_ANON_VMA_ALLOC, C_AVC_ALLOC, C_ANON_VMA_REUSE, C_XA_NODE_ALLOC,
                           C_XA_NODE_FREE, C_VMA_MERGE_FAILS)
from mmbench.blocks.frames cimport (frame_t, pfn_t, NO_PFN, FR_ANON_EXCLUSIVE, frame_alloc,
                                    frame_free, frame_alloc_contig)
from mmbench.blocks.pagetable cimport (PT_ENTRIES, LVL_PGD, LVL_PUD, LVL_PMD, LVL_PTE, pt_withdraw,
                                       pt_set_pmd)
from mmbench.core cimport (C_THP_SPLIT_PMD, C_THP_SPLIT_PMD_EXCLUSIVE, C_PTE_WRITES, C_TLB_FLUSHES, C_THP_DEFERRED_SPLIT_PAGE,
                           C_MTHP_SPLIT_DEFERRED)
from mmbench.blocks.itree cimport itree_init, itree_insert, itree_remove
from mmbench.blocks.pagecache cimport mapping_truncate
from mmbench.blocks.xarray cimport xa_destroy, XA_NODE_BYTES
from mmbench_linux.maple cimport mt_store
from mmbench.blocks.vmaset cimport (vmaset_lower_bound, vmaset_find, vmaset_fully_mapped, vmaset_reserve,
                                    vmaset_insert, vmaset_remove, vmaset_move_check)

from mmbench import errors as _errors

cdef uint64_t VPN_END = (<uint64_t>1) << VPN_BITS


cdef bint vma_movable(void* v) noexcept nogil:
    """A VMA move_pages may take pages from or put pages in: private and writable."""
    return ((<vma_t*>v).vm_flags & (VM_WRITE | VM_SHARED)) == VM_WRITE


cdef inline bint anon_vma_compatible(vma_t* a, vma_t* b) noexcept nogil:
    """May b reuse a's anon_vma (or vice versa)?  Adjacent, same file, flags equal up
    to access bits, and b's pgoff continuing a's."""
    return (a.vm_end == b.vm_start and a.vm_file == b.vm_file
            and ((a.vm_flags ^ b.vm_flags) & ~(<uint64_t>VM_ACCESS_FLAGS)) == 0
            and b.vm_pgoff == a.vm_pgoff + (b.vm_start - a.vm_start))


MTHP_SIZES_KB = (16, 32, 64, 128, 256, 512, 1024)


def mthp_orders_option(sizes):
    """The bit set of anon mTHP orders for the option mthp_sizes: a tuple (or list) of
    sizes in kB among 16..1024, powers of two (the hugepages-<size>kB directories below
    the PMD size); from the command line also one size or "16,64".  Anything else is
    InvalidArgument."""
    if isinstance(sizes, str) and sizes.replace(",", "").replace(" ", "").isdigit():
        sizes = tuple(int(t) for t in sizes.replace(",", " ").split())
    elif isinstance(sizes, int) and not isinstance(sizes, bool):
        sizes = (sizes,)
    if not isinstance(sizes, (tuple, list)):
        raise _errors.InvalidArgument(f"mthp_sizes must be a tuple of sizes in kB among {MTHP_SIZES_KB}")
    bits = 0
    for kb in sizes:
        if isinstance(kb, bool) or not isinstance(kb, int) or kb not in MTHP_SIZES_KB:
            raise _errors.InvalidArgument(f"mthp_sizes: {kb!r} is not one of {MTHP_SIZES_KB} (kB)")
        bits |= 1 << ((kb // 4).bit_length() - 1)
    return bits


cdef class LinuxMM(Machine):
    """VMA set, slab accounting and anon_vma reverse map of the linux design."""

    # Designs whose every page-table walk knows PMD leaves: only these map THPs
    # (a design built on linux adds its name once its own paths handle them).
    thp_designs = ("linux",)
    move_designs = ("linux",)

    def __init__(self, **kw):
        super().__init__(**kw)
        fa = self.options["fault_around_pages"]
        if isinstance(fa, bool) or not isinstance(fa, int) or not (1 <= fa <= PT_ENTRIES) or (fa & (fa - 1)):
            raise _errors.InvalidArgument("fault_around_pages must be a power of two in 1..512")
        self.fault_around_pages = fa
        pr = self.options["pt_reclaim"]
        if not isinstance(pr, bool):
            raise _errors.InvalidArgument("pt_reclaim must be True or False")
        self.pt_reclaim = pr
        self.thp_mode = ("never", "madvise", "always").index(self.options["thp"])  # validated by Machine
        ap = self.options.get("anon_pgoff", "address")
        if ap not in ("address", "zero"):
            raise _errors.InvalidArgument(f"anon_pgoff must be 'address' or 'zero', got {ap!r}")
        self.anon_pgoff_zero = ap == "zero"
        ra = self.options.get("mremap_relocate_anon", False)
        if not isinstance(ra, bool):
            raise _errors.InvalidArgument("mremap_relocate_anon must be True or False")
        self.mremap_relocate_anon = ra
        self.thp_pmd = type(self).name in self.thp_designs and self.ndevices == 0
        # move_pages moves PTEs only where nothing else mirrors them (no device page
        # tables, no design state kept beside the PTEs, as gmem's vm_object)
        self.move_native = type(self).name in self.move_designs and self.ndevices == 0
        if not self.thp_pmd:
            # device paths (hmm.pyx) and designs built on linux walk PTE tables only
            self.thp_mode = THP_NEVER
        self.mthp_orders = mthp_orders_option(self.options.get("mthp_sizes", ()))
        for key in ("deferred_split_shrinker", "khugepaged"):
            if not isinstance(self.options.get(key, False), bool):
                raise _errors.InvalidArgument(f"{key} must be True or False")
        self.ds_shrinker = self.options.get("deferred_split_shrinker", False)
        self.khugepaged = self.options.get("khugepaged", False)
        for key, top in (("khugepaged_max_ptes_none", HPAGE_PMD_NR - 1),
                         ("khugepaged_max_ptes_shared", HPAGE_PMD_NR - 1)):
            val = self.options.get(key, 0)
            if isinstance(val, bool) or not isinstance(val, int) or not (0 <= val <= top):
                raise _errors.InvalidArgument(f"{key} must be an integer in 0..{top}")
        self.max_ptes_none = self.options.get("khugepaged_max_ptes_none", HPAGE_PMD_NR - 1)
        self.max_ptes_shared = self.options.get("khugepaged_max_ptes_shared", HPAGE_PMD_NR // 2)
        if self.thp_pmd:
            self.folio_meta_init()
        # struct sizes: the slab object size /proc/slabinfo reports on the host
        self.kc_vma = self.slab_register("vm_area_struct", 192)
        self.kc_maple = self.slab_register("maple_node", 256)
        self.kc_anon_vma = self.slab_register("anon_vma", 104)
        self.kc_avc = self.slab_register("anon_vma_chain", 64)
        self.kc_pt[LVL_PGD] = self.slab_register("pgd", 4096)
        self.kc_pt[LVL_PUD] = self.slab_register("pud_table", 4096)
        self.kc_pt[LVL_PMD] = self.slab_register("pmd_table", 4096)
        self.kc_pt[LVL_PTE] = self.slab_register("pte_table", 4096)
        self.kc_page = self.slab_register("page", 64)
        self.kc_shmem = self.slab_register("shmem_inode_info", 752)   # shmem_inode_cache objsize here
        self.kc_xa = self.slab_register("xa_node", XA_NODE_BYTES)    # radix_tree_node objsize
        self.kc_mm = self.slab_register("mm_struct", 1600)           # mm_struct objsize here

    def __dealloc__(self):
        free(self.fmeta)
        free(self.ds_queue)
        self.spare_trim(0)

    # ================================================================ accounting
    cdef void pt_sync(self, mm_t* mm) noexcept nogil:
        """Bring the page-table caches in step with mm's live tables."""
        cdef int l
        for l in range(4):
            self.kmem_sync_counted(self.kc_pt[l], &mm.pt_acct[l], mm.pgd.nr[l],
                                   C_PT_PAGES_ALLOC, C_PT_PAGES_FREE)

    cdef void mt_sync(self, mm_t* mm) noexcept nogil:
        self.kmem_sync(self.kc_maple, &mm.maple_nodes, mt_nodes(mm))

    cdef int vma_iter_store(self, mm_t* mm, vma_t* vma) noexcept nogil:
        """vma_iter_store: the VMA's range now maps to it in mm_mt."""
        if mt_store(&mm.mm_mt, vma.vm_start, vma.vm_end - 1, vma) != 0:
            return MM_ENOMEM
        return MM_OK

    cdef int vma_iter_clear(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil:
        """vma_iter_clear: [start, end) becomes a gap in mm_mt."""
        if mt_store(&mm.mm_mt, start, end - 1, NULL) != 0:
            return MM_ENOMEM
        return MM_OK

    cdef void xa_sync(self, shmem_t* f) noexcept nogil:
        self.kmem_sync_counted(self.kc_xa, &f.xa_acct, f.mapping.i_pages.nr_nodes,
                               C_XA_NODE_ALLOC, C_XA_NODE_FREE)

    cdef pfn_t page_alloc(self) noexcept nogil:
        cdef pfn_t pfn = frame_alloc(&self.frames, 0)
        if pfn != NO_PFN:
            self.kmem_alloc(self.kc_page)
        return pfn

    cdef void page_put(self, pfn_t pfn) noexcept nogil:
        cdef frame_t* f = &self.frames.f[pfn]
        if f.flags & FR_LARGE:
            self.folio_put_refs(pfn, 1)
            return
        f.refcount -= 1
        if f.refcount == 0:
            frame_free(&self.frames, pfn)
            self.kmem_free(self.kc_page)

    # ================================================================ the VMA set
    cdef int64_t vma_index(self, mm_t* mm, uint64_t vpn) noexcept nogil:
        """Index of the first VMA ending above `vpn` (nr_vmas if none)."""
        return vmaset_lower_bound(<void**>mm.vmas, mm.nr_vmas, vma_span(), vpn)

    cdef vma_t* find_vma(self, mm_t* mm, uint64_t vpn) noexcept nogil:
        """The VMA containing `vpn`, or NULL."""
        cdef int64_t i = vmaset_find(<void**>mm.vmas, mm.nr_vmas, vma_span(), &mm.mmap_cache, vpn)
        return mm.vmas[i] if i >= 0 else NULL

    cdef bint range_mapped(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil:
        return vmaset_fully_mapped(<void**>mm.vmas, mm.nr_vmas, vma_span(), start, end)

    cdef int move_range_status(self, int64_t pid, int64_t vpn, int64_t npages) noexcept:
        """The copying move_pages' range check, on the VMA set."""
        cdef mm_t* mm = <mm_t*>self.proc_of(pid)
        return vmaset_move_check(<void**>mm.vmas, mm.nr_vmas, vma_span(), <uint64_t>vpn,
                                 <uint64_t>(vpn + npages), vma_movable)

    cdef int vma_link(self, mm_t* mm, vma_t* vma) noexcept nogil:
        """Insert `vma` into mm's ordered set (vma_iter_store)."""
        if self.vma_link_reserve(mm, 1) != MM_OK:
            return MM_ENOMEM
        vmaset_insert(<void**>mm.vmas, &mm.nr_vmas, vma_span(), vma)
        vma.vm_mm = mm
        return MM_OK

    cdef void vma_unlink_at(self, mm_t* mm, int64_t i) noexcept nogil:
        vmaset_remove(<void**>mm.vmas, &mm.nr_vmas, i, 1)
        mm.mmap_cache = 0

    cdef vma_t* vm_area_alloc(self, mm_t* mm) noexcept nogil:
        cdef vma_t* v = <vma_t*>spares_take(&self.vma_spare, sizeof(vma_t))
        if v != NULL:
            v.vm_mm = mm
            self.kmem_alloc(self.kc_vma)
        return v

    cdef int spare_reserve(self, int64_t nvma, int64_t navc, int64_t nav) noexcept nogil:
        """Set aside at least nvma VMAs, navc AVCs and nav anon_vmas (raw memory, not
        accounted) for vm_area_alloc, avc_alloc / anon_vma_clone and anon_vma_alloc to
        take first.  MM_ENOMEM when the host has no memory (what was set aside stays:
        it is invisible and freed by spare_trim)."""
        if (spares_fill(&self.vma_spare, nvma, sizeof(vma_t)) != 0
                or spares_fill(&self.avc_spare, navc, sizeof(avc_t)) != 0
                or spares_fill(&self.av_spare, nav, sizeof(anon_vma_t)) != 0):
            return MM_ENOMEM
        return MM_OK

    cdef void spare_trim(self, int64_t keep) noexcept nogil:
        """Free what spare_reserve set aside beyond `keep` of each kind."""
        spares_trim(&self.vma_spare, keep)
        spares_trim(&self.avc_spare, keep)
        spares_trim(&self.av_spare, keep)

    cdef vma_t* vm_area_dup(self, vma_t* src) noexcept nogil:
        """A copy of `src` sharing its anon_vma pointer, with no AVCs and no file link yet."""
        cdef vma_t* v = self.vm_area_alloc(src.vm_mm)
        if v != NULL:
            v.vm_start = src.vm_start
            v.vm_end = src.vm_end
            v.vm_pgoff = src.vm_pgoff
            v.vm_flags = src.vm_flags
            v.anon_vma = src.anon_vma
            v.vm_file = src.vm_file
            v.vm_private_data = src.vm_private_data
        return v

    cdef void vma_set_range(self, vma_t* vma, uint64_t start, uint64_t end, uint64_t pgoff) noexcept nogil:
        """Change a VMA's range, re-keying its AVCs and its i_mmap node (vma_adjust)."""
        cdef avc_t* avc = vma.anon_vma_chain
        while avc != NULL:
            itree_remove(&avc.anon_vma.rb_root, &avc.rb)
            avc = avc.same_vma
        if vma.vm_file != NULL:
            itree_remove(&vma.vm_file.mapping.i_mmap, &vma.shared_rb)
        vma.vm_start = start
        vma.vm_end = end
        vma.vm_pgoff = pgoff
        avc = vma.anon_vma_chain
        while avc != NULL:
            avc.rb.start = pgoff
            avc.rb.last = pgoff + (end - start) - 1
            itree_insert(&avc.anon_vma.rb_root, &avc.rb)
            avc = avc.same_vma
        if vma.vm_file != NULL:
            vma.shared_rb.start = pgoff
            vma.shared_rb.last = pgoff + (end - start) - 1
            itree_insert(&vma.vm_file.mapping.i_mmap, &vma.shared_rb)

    cdef void vma_file_link(self, vma_t* vma) noexcept nogil:
        """get_file + vma_link_file: insert a shared VMA into its file's i_mmap."""
        if vma.vm_file == NULL:
            return
        vma.shared_rb.start = vma.vm_pgoff
        vma.shared_rb.last = vma.vm_pgoff + vma_pages(vma) - 1
        itree_insert(&vma.vm_file.mapping.i_mmap, &vma.shared_rb)
        vma.vm_file.refcount += 1

    cdef void vma_file_unlink(self, vma_t* vma) noexcept nogil:
        """unlink_file_vma + fput; the last put evicts the inode (truncates its cache)."""
        cdef shmem_t* f = vma.vm_file
        cdef int64_t before
        if f == NULL:
            return
        itree_remove(&f.mapping.i_mmap, &vma.shared_rb)
        vma.vm_file = NULL
        f.refcount -= 1
        if f.refcount > 0:
            return
        before = self.frames.node_used[0]
        mapping_truncate(&f.mapping, &self.frames, 0, VPN_END)
        self.caches[self.kc_page].active -= before - self.frames.node_used[0]
        self.caches[self.kc_page].frees += before - self.frames.node_used[0]
        self.xa_sync(f)
        xa_destroy(&f.mapping.i_pages)
        self.kmem_free(self.kc_shmem)
        self.ctr[C_OBJECTS_FREE] += 1
        free(f)

    cdef void remove_vma(self, vma_t* vma) noexcept nogil:
        """Free a VMA already taken out of its mm (after its PTEs were zapped)."""
        self.unlink_anon_vmas(vma)
        self.vma_file_unlink(vma)
        self.kmem_free(self.kc_vma)
        free(vma)

    # ================================================================ THP eligibility
    cdef bint thp_vma_allowable(self, vma_t* vma, uint64_t haddr) noexcept nogil:
        """thp_vma_allowable_order + thp_vma_suitable_order for the PMD order: an
        anonymous private VMA (shared ones are shmem, not THP's anon path), not
        VM_NOHUGEPAGE, the mode "always" or "madvise" with VM_HUGEPAGE, and the
        whole aligned 2 MiB range at haddr inside the VMA (no pgoff alignment for
        anonymous VMAs)."""
        if not self.thp_vma_allowed(vma):
            return False
        return (haddr & (HPAGE_PMD_NR - 1)) == 0 and haddr >= vma.vm_start and haddr + HPAGE_PMD_NR <= vma.vm_end

    cdef bint thp_vma_allowed(self, vma_t* vma) noexcept nogil:
        """__thp_vma_allowable_orders without the size checks: may vma take large anon
        folios at all (every enabled size follows `thp` as the per-size "inherit")?"""
        if vma.vm_file != NULL or (vma.vm_flags & VM_NOHUGEPAGE) or self.thp_mode == THP_NEVER:
            return False
        return self.thp_mode == THP_ALWAYS or (vma.vm_flags & VM_HUGEPAGE) != 0

    cdef void split_huge_pmd(self, mm_t* mm, uint64_t haddr) noexcept nogil:
        """__split_huge_pmd_locked: the PMD leaf at haddr (if any) becomes the PTE table
        deposited for it, filled with 512 PTEs of the same protection (the huge zero
        folio: 512 zero-page PTEs).  The folio is not split: its pages keep their
        mapping and reference, one per PTE now (the model keeps them per page all
        along).  One TLB flush (pmdp_invalidate).  A folio still AnonExclusive (never
        shared by a fork) passes that to each of its 512 pages (folio_add_anon_rmap_ptes
        with RMAP_EXCLUSIVE): counted apart, its extra cost is priced apart."""
        cdef pt_node_t* pmd_t = pt_pmd_table(&mm.pgd, haddr, False, NULL)
        cdef pt_node_t* pte_t
        cdef uint64_t e, k
        if pmd_t == NULL:
            return
        e = pmd_t.e[(haddr >> 9) & 511]
        if not pmd_leaf(e):
            return
        haddr &= ~(<uint64_t>(HPAGE_PMD_NR - 1))
        pte_t = pt_withdraw(pmd_t)
        for k in range(HPAGE_PMD_NR):
            pte_t.e[k] = pmd_subpage_pte(e, haddr + k)
        pte_t.used = HPAGE_PMD_NR
        pmd_t.e[(haddr >> 9) & 511] = <uint64_t><size_t>pte_t     # pmd_populate
        mm.nr_huge_pmd -= 1
        self.ctr[C_THP_SPLIT_PMD] += 1
        if not (e & PTE_SPECIAL) and (self.frames.f[pte_pfn(e)].flags & FR_ANON_EXCLUSIVE):
            self.ctr[C_THP_SPLIT_PMD_EXCLUSIVE] += 1
        self.ctr[C_PTE_WRITES] += HPAGE_PMD_NR + 1
        self.ctr[C_TLB_FLUSHES] += 1

    # ================================================================ large folios, deferred split
    # A large folio is 2^order naturally aligned frames, one descriptor each (FR_LARGE,
    # aux = order); each page keeps its own reference and mapping count, whose sum is
    # what the kernel keeps per folio.  A page whose last mapping goes does not free
    # its frame: the folio is freed as a whole with its last page (folio_put), and a
    # folio left with some pages mapped and some not is "partially mapped" and goes on
    # the deferred split queue (__folio_remove_rmap -> deferred_split_folio).  Only the
    # shrinker (deferred_split_scan) splits it and frees the unmapped pages.

    cdef pfn_t folio_alloc_large(self, int order) noexcept nogil:
        """vma_alloc_folio(order): 2^order contiguous aligned frames (never-used ones:
        the frame block has no buddy coalescing), a struct page each; NO_PFN if none."""
        cdef int64_t nr = (<int64_t>1) << order, k
        cdef pfn_t head = frame_alloc_contig(&self.frames, 0, nr)
        if head == NO_PFN:
            return NO_PFN
        for k in range(nr):
            self.kmem_alloc(self.kc_page)
        return head

    cdef void folio_add_new_anon_rmap_large(self, pfn_t head, int order, vma_t* vma,
                                            uint64_t addr) noexcept nogil:
        """folio_add_new_anon_rmap(RMAP_EXCLUSIVE) for a folio mapped at addr: every page
        exclusive, mapped once, index linear_page_index(addr + k)."""
        cdef int64_t nr = (<int64_t>1) << order, k
        cdef frame_t* f
        for k in range(nr):
            self.folio_add_new_anon_rmap(head + <pfn_t>k, vma, linear_page_index(vma, addr + <uint64_t>k))
            f = &self.frames.f[head + k]
            f.flags |= FR_LARGE
            f.aux = <uint32_t>order
        self.fmeta[head >> MTHP_MIN_ORDER].nr_live = <int32_t>nr
        self.fmeta[head >> MTHP_MIN_ORDER].ds_slot = 0

    cdef void folio_put_refs(self, pfn_t pfn, int64_t nr) noexcept nogil:
        """Drop one reference on each of the nr pages at pfn (one folio; the caller
        already dropped their mappings: folio_remove_rmap_ptes + folio_put_refs).  A
        large folio whose last page goes is freed whole; one that still has mapped
        pages after some became unmapped is queued partially mapped."""
        cdef frame_t* fr = self.frames.f
        cdef pfn_t head
        cdef int64_t k, dead = 0
        cdef folio_meta_t* meta
        if not (fr[pfn].flags & FR_LARGE):
            for k in range(nr):
                self.page_put(pfn + <pfn_t>k)
            return
        head = folio_head(fr, pfn)
        for k in range(nr):
            fr[pfn + k].refcount -= 1
            if fr[pfn + k].refcount == 0:
                dead += 1
        if dead == 0:
            return
        meta = &self.fmeta[head >> MTHP_MIN_ORDER]
        meta.nr_live -= <int32_t>dead
        if meta.nr_live == 0:
            self.folio_free_large(head)
        else:
            self.deferred_split_folio(head, True)

    cdef void folio_free_large(self, pfn_t head) noexcept nogil:
        """The folio's last reference went: unqueue it, free every frame."""
        cdef int64_t nr = (<int64_t>1) << self.frames.f[head].aux, k
        self.folio_unqueue_deferred_split(head)
        for k in range(nr):
            self.frames.f[head + k].aux = 0
            frame_free(&self.frames, head + <pfn_t>k)
            self.kmem_free(self.kc_page)

    cdef int folio_meta_init(self) except -1:
        """The per-large-folio records (calloc'd: untouched entries cost nothing); a
        design that turns THPs on after LinuxMM.__init__ (gmem with PMD-sized blocks)
        calls it too."""
        if self.fmeta == NULL:
            self.fmeta = <folio_meta_t*>calloc((self.ram_pages >> MTHP_MIN_ORDER) + 1, sizeof(folio_meta_t))
            if self.fmeta == NULL:
                raise MemoryError()
        return 0

    cdef void deferred_split_folio(self, pfn_t head, bint partially_mapped) noexcept nogil:
        """deferred_split_folio: queue the folio (once); partially_mapped sets
        PG_partially_mapped and counts thp_deferred_split_page (PMD size) and
        mthp_split_deferred the first time.  Order-1 folios are never queued."""
        cdef frame_t* f = &self.frames.f[head]
        cdef folio_meta_t* meta = &self.fmeta[head >> MTHP_MIN_ORDER]
        cdef pfn_t* q
        if f.aux < MTHP_MIN_ORDER:
            return
        if partially_mapped and not (f.flags & FR_PARTIAL):
            f.flags |= FR_PARTIAL
            self.ds_partial += 1
            if f.aux == HPAGE_PMD_ORDER:
                self.ctr[C_THP_DEFERRED_SPLIT_PAGE] += 1
            self.ctr[C_MTHP_SPLIT_DEFERRED] += 1
        if meta.ds_slot != 0:
            return
        if self.ds_len == self.ds_cap:
            q = <pfn_t*>realloc(self.ds_queue, (self.ds_cap * 2 + 64) * sizeof(pfn_t))
            if q == NULL:
                return              # not queued: the shrinker will not see it (as a failed list_lru add)
            self.ds_queue = q
            self.ds_cap = self.ds_cap * 2 + 64
        self.ds_queue[self.ds_len] = head
        self.ds_len += 1
        meta.ds_slot = <int32_t>self.ds_len

    cdef void folio_unqueue_deferred_split(self, pfn_t head) noexcept nogil:
        """Take the folio off the queue (swap with the last entry) and clear
        PG_partially_mapped."""
        cdef folio_meta_t* meta = &self.fmeta[head >> MTHP_MIN_ORDER]
        cdef frame_t* f = &self.frames.f[head]
        cdef int64_t i = meta.ds_slot - 1
        cdef pfn_t last
        if f.flags & FR_PARTIAL:
            f.flags &= ~(<uint32_t>FR_PARTIAL)
            self.ds_partial -= 1
        if meta.ds_slot == 0:
            return
        self.ds_len -= 1
        last = self.ds_queue[self.ds_len]
        self.ds_queue[i] = last
        self.fmeta[last >> MTHP_MIN_ORDER].ds_slot = <int32_t>(i + 1)
        meta.ds_slot = 0

    cdef int split_vma(self, mm_t* mm, int64_t i, uint64_t addr) noexcept nogil:
        """__split_vma: vmas[i] keeps [start, addr), a new VMA takes [addr, end)."""
        cdef vma_t* vma = mm.vmas[i]
        cdef vma_t* new
        cdef int st
        if self.vma_link_reserve(mm, 1) != MM_OK:     # make vma_link below infallible
            return MM_ENOMEM
        new = self.vm_area_dup(vma)
        if new == NULL:
            return MM_ENOMEM
        if mm.nr_huge_pmd and (addr & (HPAGE_PMD_NR - 1)):
            self.split_huge_pmd(mm, addr)       # vma_adjust_trans_huge: no leaf spans two VMAs
        new.vm_start = addr
        new.vm_pgoff = linear_page_index(vma, addr)
        st = self.anon_vma_clone(new, vma, False)
        if st != MM_OK:
            self.kmem_free(self.kc_vma)
            free(new)
            return st
        self.vma_set_range(vma, vma.vm_start, addr, vma.vm_pgoff)
        self.vma_file_link(new)
        self.vma_link(mm, new)
        self.vma_iter_store(mm, new)             # vma_complete stores the new part
        self.ctr[C_VMA_SPLITS] += 1
        return MM_OK

    cdef int vma_link_reserve(self, mm_t* mm, int64_t more) noexcept nogil:
        """Room for `more` more VMAs in mm's set."""
        if vmaset_reserve(<void***>&mm.vmas, &mm.cap_vmas, mm.nr_vmas + more) != 0:
            return MM_ENOMEM
        return MM_OK

    cdef bint vma_is_fork_child(self, vma_t* vma) noexcept nogil:
        """An anon_vma whose chain is not singular: the VMA shares pages with relatives."""
        return vma.anon_vma != NULL and vma.nr_avc > 1

    cdef bint anon_compatible_merge(self, vma_t* a, vma_t* b) noexcept nogil:
        """is_mergeable_anon_vma: identical anon_vmas, or one side has none and the
        other is not a fork child (merging would otherwise widen a shared chain)."""
        if a.anon_vma == b.anon_vma:
            return True
        if a.anon_vma == NULL:
            return not self.vma_is_fork_child(b)
        if b.anon_vma == NULL:
            return not self.vma_is_fork_child(a)
        return False

    cdef bint can_merge(self, vma_t* a, vma_t* b) noexcept nogil:
        """May `a` and the VMA `b` right after it become one VMA?"""
        return (a.vm_end == b.vm_start and a.vm_flags == b.vm_flags and a.vm_file == b.vm_file
                and a.vm_pgoff + vma_pages(a) == b.vm_pgoff and self.anon_compatible_merge(a, b))

    cdef void count_merge_fail(self, vma_t* prev, vma_t* nxt, vma_t* proto, bint left, bint right) noexcept nogil:
        """vma_merge_fails: each neighbour `proto` touches with the same flags and file that
        it does not merge with (the pgoffs do not continue, or the anon_vmas disagree)."""
        if prev != NULL and not left and prev.vm_end == proto.vm_start \
                and prev.vm_flags == proto.vm_flags and prev.vm_file == proto.vm_file:
            self.ctr[C_VMA_MERGE_FAILS] += 1
        if nxt != NULL and not right and nxt.vm_start == proto.vm_end \
                and nxt.vm_flags == proto.vm_flags and nxt.vm_file == proto.vm_file:
            self.ctr[C_VMA_MERGE_FAILS] += 1

    cdef int vma_absorb(self, mm_t* mm, int64_t i) noexcept nogil:
        """Merge vmas[i+1] into vmas[i] (dup_anon_vma when only the right one has an anon_vma)."""
        cdef vma_t* a = mm.vmas[i]
        cdef vma_t* b = mm.vmas[i + 1]
        cdef int st
        if a.anon_vma == NULL and b.anon_vma != NULL:
            a.anon_vma = b.anon_vma
            st = self.anon_vma_clone(a, b, False)
            if st != MM_OK:
                a.anon_vma = NULL
                return st
        self.vma_unlink_at(mm, i + 1)
        self.vma_set_range(a, a.vm_start, b.vm_end, a.vm_pgoff)
        self.vma_iter_store(mm, a)               # commit_merge: one store over both
        self.remove_vma(b)
        self.ctr[C_VMA_MERGES] += 1
        return MM_OK

    cdef int vma_try_merge_at(self, mm_t* mm, int64_t i) noexcept nogil:
        """Merge vmas[i] with its neighbours where the rules allow; returns its new index."""
        if i > 0 and self.can_merge(mm.vmas[i - 1], mm.vmas[i]):
            if self.vma_absorb(mm, i - 1) == MM_OK:
                i -= 1
        if i + 1 < mm.nr_vmas and self.can_merge(mm.vmas[i], mm.vmas[i + 1]):
            self.vma_absorb(mm, i)
        return <int>i

    # ================================================================ anon_vma / AVC
    cdef anon_vma_t* anon_vma_alloc(self) noexcept nogil:
        cdef anon_vma_t* av = <anon_vma_t*>spares_take(&self.av_spare, sizeof(anon_vma_t))
        if av == NULL:
            return NULL
        av.root = av
        av.parent = av
        av.refcount = 1
        itree_init(&av.rb_root)
        self.kmem_alloc(self.kc_anon_vma)
        self.ctr[C_ANON_VMA_ALLOC] += 1
        self.ctr[C_OBJECTS_ALLOC] += 1
        return av

    cdef avc_t* avc_alloc(self) noexcept nogil:
        cdef avc_t* avc = <avc_t*>spares_take(&self.avc_spare, sizeof(avc_t))
        if avc != NULL:
            self.kmem_alloc(self.kc_avc)
            self.ctr[C_AVC_ALLOC] += 1
        return avc

    cdef void anon_vma_chain_link(self, vma_t* vma, avc_t* avc, anon_vma_t* av) noexcept nogil:
        """Link at the head of the VMA's chain and into the anon_vma's interval tree."""
        avc.vma = vma
        avc.anon_vma = av
        avc.rb.start = vma.vm_pgoff
        avc.rb.last = vma.vm_pgoff + vma_pages(vma) - 1
        itree_insert(&av.rb_root, &avc.rb)
        avc.same_vma = vma.anon_vma_chain
        vma.anon_vma_chain = avc
        vma.nr_avc += 1

    cdef anon_vma_t* find_mergeable_anon_vma(self, mm_t* mm, vma_t* vma) noexcept nogil:
        """An adjacent, compatible VMA's anon_vma with a singular chain (next first, then prev)."""
        cdef int64_t i = self.vma_index(mm, vma.vm_start)
        cdef vma_t* o
        if i + 1 < mm.nr_vmas:
            o = mm.vmas[i + 1]
            if anon_vma_compatible(vma, o) and o.anon_vma != NULL and o.nr_avc == 1:
                return o.anon_vma
        if i > 0:
            o = mm.vmas[i - 1]
            if anon_vma_compatible(o, vma) and o.anon_vma != NULL and o.nr_avc == 1:
                return o.anon_vma
        return NULL

    cdef int anon_vma_prepare(self, mm_t* mm, vma_t* vma) noexcept nogil:
        """__anon_vma_prepare: give a VMA its anon_vma on its first anonymous page."""
        cdef avc_t* avc
        cdef anon_vma_t* av
        if vma.anon_vma != NULL:
            return MM_OK
        avc = self.avc_alloc()
        if avc == NULL:
            return MM_ENOMEM
        av = self.find_mergeable_anon_vma(mm, vma)
        if av == NULL:
            av = self.anon_vma_alloc()
            if av == NULL:
                self.kmem_free(self.kc_avc)
                free(avc)
                return MM_ENOMEM
            av.num_children += 1                 # a new root counts itself
        vma.anon_vma = av
        self.anon_vma_chain_link(vma, avc, av)
        av.num_active_vmas += 1
        return MM_OK

    cdef int anon_vma_clone(self, vma_t* dst, vma_t* src, bint fork) noexcept nogil:
        """One AVC in `dst` per anon_vma on `src`'s chain, same order.  On fork
        (dst.anon_vma NULL) the oldest ancestor with no active VMA and at most one
        child is reused as dst's anon_vma."""
        cdef avc_t* pavc
        cdef avc_t* avc
        cdef avc_t* head = NULL
        cdef avc_t* tail = NULL
        cdef avc_t* pool = NULL            # the n AVCs, linked by same_vma until used
        cdef int64_t n = src.nr_avc, k
        cdef anon_vma_t* reuse = NULL
        if n == 0:
            return MM_OK
        for k in range(n):                 # the spares first (spare_reserve), then calloc
            avc = <avc_t*>spares_take(&self.avc_spare, sizeof(avc_t))
            if avc == NULL:
                while pool != NULL:
                    avc = pool
                    pool = avc.same_vma
                    free(avc)
                return MM_ENOMEM
            avc.same_vma = pool
            pool = avc
        pavc = src.anon_vma_chain
        while pavc != NULL:
            avc = pool
            pool = avc.same_vma
            avc.same_vma = NULL
            self.kmem_alloc(self.kc_avc)
            self.ctr[C_AVC_ALLOC] += 1
            avc.vma = dst
            avc.anon_vma = pavc.anon_vma
            avc.rb.start = dst.vm_pgoff
            avc.rb.last = dst.vm_pgoff + vma_pages(dst) - 1
            itree_insert(&pavc.anon_vma.rb_root, &avc.rb)
            if tail == NULL:
                head = avc
            else:
                tail.same_vma = avc
            tail = avc
            if fork and pavc.anon_vma.num_children < 2 and pavc.anon_vma.num_active_vmas == 0:
                reuse = pavc.anon_vma            # the last in head order is the oldest
            pavc = pavc.same_vma
        tail.same_vma = dst.anon_vma_chain
        dst.anon_vma_chain = head
        dst.nr_avc += n
        if fork and reuse != NULL:
            dst.anon_vma = reuse
            self.ctr[C_ANON_VMA_REUSE] += 1
        if dst.anon_vma != NULL:
            dst.anon_vma.num_active_vmas += 1
        return MM_OK

    cdef int anon_vma_fork(self, vma_t* vma, vma_t* pvma) noexcept nogil:
        """Attach a child VMA to its parent's anon_vmas, and to a new anon_vma of its own
        unless an idle ancestor can be reused."""
        cdef anon_vma_t* av
        cdef avc_t* avc
        cdef int st
        vma.anon_vma = NULL
        if pvma.anon_vma == NULL:
            return MM_OK
        av = <anon_vma_t*>calloc(1, sizeof(anon_vma_t))      # preallocated as the kernel does
        avc = <avc_t*>calloc(1, sizeof(avc_t))
        if av == NULL or avc == NULL:
            free(av)
            free(avc)
            return MM_ENOMEM
        st = self.anon_vma_clone(vma, pvma, True)
        if st != MM_OK or vma.anon_vma != NULL:
            free(av)
            free(avc)
            return st
        self.kmem_alloc(self.kc_anon_vma)
        self.ctr[C_ANON_VMA_ALLOC] += 1
        self.ctr[C_OBJECTS_ALLOC] += 1
        self.kmem_alloc(self.kc_avc)
        self.ctr[C_AVC_ALLOC] += 1
        itree_init(&av.rb_root)
        av.refcount = 1
        av.num_active_vmas = 1
        av.root = pvma.anon_vma.root
        av.parent = pvma.anon_vma
        av.root.refcount += 1                    # get_anon_vma(root)
        vma.anon_vma = av
        self.anon_vma_chain_link(vma, avc, av)
        av.parent.num_children += 1
        return MM_OK

    cdef void unlink_anon_vmas(self, vma_t* vma) noexcept nogil:
        """Take a dying VMA off every anon_vma; free anon_vmas left with empty trees."""
        cdef avc_t* avc = vma.anon_vma_chain
        cdef avc_t* nxt
        cdef avc_t* empty = NULL
        cdef anon_vma_t* av
        while avc != NULL:
            nxt = avc.same_vma
            av = avc.anon_vma
            itree_remove(&av.rb_root, &avc.rb)
            if av.rb_root.count == 0:
                av.parent.num_children -= 1
                avc.same_vma = empty
                empty = avc
            else:
                self.kmem_free(self.kc_avc)
                free(avc)
            avc = nxt
        if vma.anon_vma != NULL:
            vma.anon_vma.num_active_vmas -= 1
            vma.anon_vma = NULL
        vma.anon_vma_chain = NULL
        vma.nr_avc = 0
        while empty != NULL:
            nxt = empty.same_vma
            self.put_anon_vma(empty.anon_vma)
            self.kmem_free(self.kc_avc)
            free(empty)
            empty = nxt

    cdef void put_anon_vma(self, anon_vma_t* av) noexcept nogil:
        cdef anon_vma_t* root = av.root
        av.refcount -= 1
        if av.refcount > 0:
            return
        free(av)
        self.kmem_free(self.kc_anon_vma)
        self.ctr[C_OBJECTS_FREE] += 1
        if root != av:
            self.put_anon_vma(root)

    cdef void folio_add_new_anon_rmap(self, pfn_t pfn, vma_t* vma, uint64_t pgoff) noexcept nogil:
        """mapping = the VMA's anon_vma, index = linear_page_index, one PTE, exclusive."""
        cdef frame_t* f = &self.frames.f[pfn]
        f.owner = <uint64_t><size_t>vma.anon_vma
        f.index = pgoff
        f.mapcount = 1
        f.flags = FR_ANON | FR_ANON_EXCLUSIVE
        vma.vm_mm.rss_anon += 1
