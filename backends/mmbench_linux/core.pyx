# mmbench_linux.core — Linux anonymous memory: anon_vma + anon_vma_chain + 4-level page tables.
#
# The design in its own words
# ---------------------------
# Linux keeps no per-process "object" for anonymous memory.  A page is found
# through the CPU page table (forward map) and, for reclaim or migration,
# through its anon_vma (reverse map): folio->mapping points at an anon_vma and
# folio->index is the page's linear index (vm_pgoff-based), so every VMA that
# may map the page is found by an interval query on that anon_vma's tree of
# anon_vma_chains.  fork gives the child VMA one AVC per ancestor anon_vma
# (so a chain of d nested forks costs O(d^2) AVCs) and, unless it can reuse an
# idle ancestor, a new anon_vma of its own; pages are shared read-only and
# copied on the first write by whichever side is not their exclusive owner.
#
#      mm_struct ── maple tree ──> vm_area_struct ──anon_vma_chain list──> AVC ── AVC ── AVC
#         │                              │ anon_vma                         │      │      │
#         pgd─pud─pmd─pte ──> struct page│                                  v      v      v
#                              mapping ──┴──────────────────────────────> anon_vma (own, parent, root)
#                              index = linear_page_index                     rb_root: interval tree of AVCs
#
# Fault cases (handle_pte_fault dispatches on the PTE and the access):
#
#      PTE none,    private, read   -> do_anonymous_page: map the shared zero page (no frame, no anon_vma)
#      PTE none,    private, write  -> do_anonymous_page: anon_vma_prepare, new zeroed frame, exclusive
#      PTE RO,      private, write  -> do_wp_page: zero page        -> wp_page_copy (zero-fill)
#                                                  exclusive / ref 1 -> wp_page_reuse (make writable)
#                                                  shared           -> wp_page_copy (copy, flush TLB)
#      PTE none,    shared (shmem)  -> do_fault: page-cache hit (minor) or new zeroed page-cache frame;
#                                      read faults map cached neighbours too (do_fault_around, 64 KiB)
#      PTE RO,      shared, write   -> wp_page_shared (no COW)
#      non-present entry            -> do_swap_page (none exist here: the hook for HMM entries)
#
# Transparent huge pages (option thp; handle_pmd_fault runs first when no PTE
# table covers the address of an anonymous private VMA):
#
#      PMD none, THP allowed, write -> do_huge_pmd_anonymous_page: 512-page folio, one PMD leaf,
#                                      a PTE table preallocated and deposited under the PMD
#      PMD none, THP allowed, read  -> do_huge_pmd_anonymous_page: the huge zero folio
#      PMD leaf RO, write           -> do_huge_pmd_wp_page: exclusive -> reuse (make writable)
#                                      shared or huge zero -> split_huge_pmd, then the PTE cases
#      otherwise                    -> the PTE cases above (VM_FAULT_FALLBACK)
#
#   A leaf lies inside one VMA (split_vma splits it first: vma_adjust_trans_huge);
#   zap, mprotect and fork take whole leaves as one entry and split cut ones;
#   mremap moves a leaf whole when old and new are 2 MiB-aligned over it
#   (move_huge_pmd, the deposited table moves along) and splits it otherwise.
#   The deposited table is what a split turns the PMD into, and it is counted in
#   VmPTE as on the host.
#
# Large folios (mm.pyx; option mthp_sizes adds anon mTHP orders below the PMD):
#
#      PTE none, write, mTHP allowed -> alloc_anon_folio: the highest enabled order whose aligned
#                                      range is inside the VMA and all PTE-none, falling back
#                                      order by order, then 4 KiB; every PTE set in one fault
#      PTE RO on a large folio      -> do_wp_page: reuse when the folio is mapped more than once
#                                      and only by this mm (__wp_can_reuse_large_anon_folio),
#                                      else copy the one 4 KiB page
#
#      folio (2^order frames) --some pages unmapped, some mapped--> deferred split queue
#            (PMD THPs join it unsplit at fault and collapse: underused candidates)
#      m.shrink_deferred_split() / option deferred_split_shrinker -> split_folio: unmapped pages
#            freed, zero-filled mapped pages remapped to the zero page, the rest small folios
#            (a folio not partially mapped only when underused: > max_ptes_none zero pages)
#      m.khugepaged_scan(pid) (option khugepaged) -> collapse_huge_page: a PTE table with at most
#            max_ptes_none empty and max_ptes_shared shared entries becomes a PMD folio; the
#            emptied PTE table is the deposit
#
# Structure of the package (three layers, one module each; a Cython class
# cannot span files):
#   maple.pyx   the VMA maple tree's shape: the kernel's store / split / push /
#               rebalance rules replayed on node descriptors (maple_node counts)
#   mm.pxd      the types: mm_t, vma_t, anon_vma_t, avc_t, shmem_t, vm_fault_t
#   mm.pyx      LinuxMM: slab accounting, the VMA set (blocks/vmaset, a sorted array for lookups,
#               each change also stored in the maple tree as the kernel stores it),
#               split and merge, anon_vma / AVC (prepare, clone, fork, unlink)
#   fault.pyx   LinuxFault(LinuxMM): one context struct, one driver, small phases;
#               the rmap walks
#   core.pyx    LinuxMachine(LinuxFault), this file: 1. fork (dup_mmap,
#               copy_page_range)  2. unmap, mprotect, mremap, exit  2b. khugepaged
#               3. the contract (c_*) and Python extras  5. what-ifs and move_pages
#               4. invariants (c_check)
#
# Simplified relative to the kernel, and why
# * A large folio (mTHP or PMD THP) comes only from never-used frames (the
#   frame block has no buddy coalescing), else the fault falls back order by
#   order.  Each page keeps its own reference and mapping count (their sums are
#   the kernel's folio counts).  The deferred split shrinker runs only when asked
#   (a host without memory pressure), over the whole queue.  khugepaged runs only when
#   asked, over one process at a time, and treats every mapped page as young.
#   THPs are built only for the linux design without devices
#   (LinuxMM.thp_designs): the HMM device paths walk PTE tables only.
# * VMAs are looked up in a sorted array (blocks/vmaset); the maple tree is kept as a shape
#   only (maple.pyx): its leaves hold the VMA pointers and gaps, and it changes
#   store by store as the kernel's does, so maple_node counts follow the
#   insertion history (append fills leaves, random order leaves them emptier).
# * mprotect splits first and merges afterwards; the kernel merges a partial
#   range into a neighbour directly (vma_merge_existing_range).  Final VMAs,
#   anon_vmas and AVCs are the same; only transient split/merge counts differ.
# * mremap may move a range made of several VMAs (as the kernel allows since
#   2025 for MREMAP_FIXED moves, Stoakes' multi-VMA move); each piece is
#   moved with copy_vma + move_page_tables.  The kernel accepts a move left
#   partly done when a later piece runs out of memory; the contract does not,
#   so mremap_reserve first sets aside what every piece can allocate (spare
#   VMAs and AVCs, maple nodes, the vmas array, the destination tables) and
#   no piece can fail after another moved.
#   The moved VMA keeps its vm_pgoff (unless it never had an anon_vma: then
#   pgoff = new address, as copy_vma does), so folio->index and folio->mapping
#   stay valid and no page is copied; what is copied is metadata: a new
#   vm_area_struct and a clone of its AVC chain.  Because pgoff is kept, a moved
#   VMA can rarely merge with its new neighbours (the mremap problem).
# * What-ifs (section 5; docs/what-ifs.md), off by default: anon_pgoff="zero"
#   gives new anonymous VMAs pgoff 0 (Xu's experiment: merges needing pgoff
#   continuity are lost); mremap_relocate_anon re-indexes the folios of a moved
#   VMA whose anon_vma and folios are its own, so it can merge where it lands.
# * move_pages (UFFDIO_MOVE, section 5) moves AnonExclusive folios' PTEs and
#   rewrites folio->mapping/index; it checks every page before moving any (the
#   kernel moves page by page and returns a short count on -EBUSY/-EEXIST).
# * MADV_DONTNEED frees a PTE table it covers whole (CONFIG_PT_RECLAIM, option
#   pt_reclaim, on by default as on this host); other emptied tables stay.
# * TLB flushes: one per mmu_gather (munmap, MADV_DONTNEED, exit), when it cleared a
#   PTE or freed a table; one per mremap that moved something (the kernel flushes
#   per moved PMD and per batch of PTEs).
# * No swap, no KSM, no pinned pages; fork never copies eagerly.
# * anon_vma_fork preallocates its anon_vma + AVC like the kernel; the model
#   only accounts them (slab, counters) when they are kept.

from libc.stdlib cimport calloc, malloc, free
from libc.string cimport memset, memmove
from libc.stdint cimport int64_t, uint64_t, int32_t, uint32_t

from mmbench.core cimport MADV_DONTNEED, MADV_HUGEPAGE, MADV_NOHUGEPAGE
from mmbench.core cimport (MM_OK, MM_ESEGV, MM_EPROT, MM_ENOMEM, MM_EINVAL, MM_ENOTSUP,
                           MAPF_SHARED, MAPF_WRITE, VPN_BITS, C_PTE_WRITES, C_PTE_ZAPS,
                           C_TLB_FLUSHES, C_VMA_MERGES, C_OBJECTS_ALLOC, C_FORK_PTES_COPIED,
                           C_FORK_PTES_WRPROTECT, C_MREMAP_PAGES_MOVED, C_VMA_SPLITS,
                           C_PAGES_COPIED, C_PAGES_ZEROED, C_THP_COLLAPSE_ALLOC,
                           C_THP_SCAN_EXCEED_NONE_PTE, C_THP_SCAN_EXCEED_SHARE_PTE,
                           C_KHUGEPAGED_PAGES_SCANNED, C_THP_COPY_PMD, MM_EBUSY,
                           C_MOVE_PAGES_MOVED, C_ANON_RELOCATE_FOLIOS)
from mmbench.blocks.pagetable cimport (pt_pmd_table, pt_table_alloc, pt_table_free, pt_deposit, pt_withdraw,
                                       pt_set_pmd, pmd_leaf, mk_pte, PMD_PSE)
from mmbench.blocks.frames cimport (frame_t, pfn_t, NO_PFN, ZERO_PFN, FR_ANON_EXCLUSIVE, FR_PAGECACHE,
                                    frame_value)
from mmbench.blocks.pagetable cimport (pgtable_t, pt_node_t, PT_ENTRIES, LVL_PGD, LVL_PMD, LVL_PTE, PTE_PRESENT, PTE_WRITE,
                                       PTE_SPECIAL, pte_pfn, pt_init, pt_destroy, pt_leaf, pt_find_leaf, pt_get,
                                       pt_set, pt_next, pt_free_range, pt_vmpte_bytes,
                                       pt_reserve_move)
from mmbench.blocks.itree cimport itree_verify
from mmbench.blocks.vmaset cimport vmaset_remove
from mmbench.blocks.pagecache cimport mapping_init, mapping_lookup
from mmbench.blocks.xarray cimport xa_hint_ok

from mmbench_linux.mm cimport *
from mmbench_linux.maple cimport (mt_init, mt_destroy, mt_dup, mt_validate, mt_slots_in_order,
                                  mt_reserve, mt_trim)

from mmbench import errors as _errors

cdef uint64_t VPN_END = (<uint64_t>1) << VPN_BITS
cdef enum:
    SPARE_KEEP = 64          # VMAs / AVCs / anon_vmas kept aside between mremaps
    MT_SPARE_KEEP = 256      # maple nodes kept aside per mm between mremaps

cdef extern from *:
    """
    /* a number no earlier check() of any machine used (anon_vma pass marks) */
    static long long mmbench_linux_check_epoch = 0;
    static inline long long check_epoch_next(void) {
        return __atomic_add_fetch(&mmbench_linux_check_epoch, 1, __ATOMIC_RELAXED);
    }
    """
    long long check_epoch_next() noexcept nogil

# mt_validate's codes, as check() reports them
cdef const char* MT_INVALID[11]
MT_INVALID[:] = [b"maple tree malformed", b"maple node: bad slot count or max",
                 b"maple leaves at different depths", b"maple pivots not increasing",
                 b"maple leaf with adjacent NULL slots", b"maple child bounds or parent link wrong",
                 b"maple subtree malformed", b"maple leaf ends on NULL before ULONG_MAX",
                 b"maple node min above its first pivot", b"maple node count != nodes reachable",
                 b"maple root does not span the index space"]

LINUX_COUNTERS = (
    "faults", "pagecache_adds", "fault_zero_page", "fault_zero_fill", "fault_cow_copy", "fault_cow_reuse",
    "fault_minor", "fault_wp_shared", "pages_zeroed", "pages_copied", "pte_writes", "pte_zaps",
    "tlb_flushes", "pt_pages_alloc", "pt_pages_free", "rmap_visits", "i_mmap_visits",
    "vma_merges", "vma_splits", "objects_alloc", "objects_free", "anon_vma_alloc", "avc_alloc",
    "anon_vma_reuse", "xa_node_alloc", "xa_node_free", "fork_ptes_copied", "fork_ptes_wrprotect",
    "mremap_pages_moved", "thp_fault_alloc", "thp_fault_fallback", "thp_split_pmd", "thp_zero_page_map",
    "mthp_anon_fault_alloc", "mthp_anon_fault_fallback", "thp_deferred_split_page", "thp_split_page",
    "mthp_split_deferred", "mthp_split", "thp_collapse_alloc", "thp_scan_exceed_none_pte",
    "thp_scan_exceed_share_pte", "khugepaged_pages_scanned", "thp_copy_pmd", "thp_underused_split_page",
    "thp_split_pmd_exclusive", "fault_around_pages",
    "vma_merge_fails", "move_pages_moved", "move_pages_copied", "anon_relocate_folios",
)



cdef class LinuxMachine(LinuxFault):
    """Linux anonymous memory: anon_vma + anon_vma_chain rmap, 4-level page tables,
    zero page, COW reuse/copy, VMA merge/split, shmem-backed shared mappings."""

    name = "linux"
    description = "Linux: anon_vma + anon_vma_chain reverse map, 4-level page tables, zero page, COW"
    option_defaults = {"fault_around_pages": FAULT_AROUND_PAGES, "pt_reclaim": True,
                       # anon mTHP sizes in kB (hugepages-<size>kB/enabled = inherit); none by default
                       "mthp_sizes": (),
                       # run the deferred split shrinker after each call (memory pressure); off
                       "deferred_split_shrinker": False,
                       # allow m.khugepaged_scan(pid), and its tunables (khugepaged/max_ptes_*)
                       "khugepaged": False, "khugepaged_max_ptes_none": HPAGE_PMD_NR - 1,
                       "khugepaged_max_ptes_shared": HPAGE_PMD_NR // 2,
                       # what-ifs (docs/what-ifs.md); the defaults are today's kernel
                       "anon_pgoff": "address", "mremap_relocate_anon": False}
    supports_devices = False
    huge_page_advice = True
    counter_names = LINUX_COUNTERS

    def __dealloc__(self):
        cdef int64_t pid
        cdef mm_t* mm
        if self.procs == NULL:
            return
        for pid in range(1, self.next_pid):
            mm = <mm_t*>self.procs[pid]
            if mm != NULL:
                self.exit_mmap(mm)
                self.procs[pid] = NULL

    # ================================================================ 1. fork
    cdef int dup_mmap(self, mm_t* mm, mm_t* oldmm) noexcept nogil:
        """Copy every VMA; anon_vma_fork; copy PTEs only where the VMA has an anon_vma."""
        cdef int64_t i
        cdef vma_t* pvma
        cdef vma_t* tmp
        cdef int st
        mm.vmas = <vma_t**>malloc((oldmm.nr_vmas if oldmm.nr_vmas else 1) * sizeof(vma_t*))
        if mm.vmas == NULL:
            return MM_ENOMEM
        mm.cap_vmas = oldmm.nr_vmas if oldmm.nr_vmas else 1
        for i in range(oldmm.nr_vmas):
            pvma = oldmm.vmas[i]
            tmp = self.vm_area_dup(pvma)
            if tmp == NULL:
                return MM_ENOMEM
            tmp.vm_mm = mm
            st = self.anon_vma_fork(tmp, pvma)
            if st != MM_OK:
                self.kmem_free(self.kc_vma)
                free(tmp)
                return st
            self.vma_file_link(tmp)
            mm.vmas[mm.nr_vmas] = tmp
            mm.nr_vmas += 1
            if pvma.anon_vma != NULL:            # vma_needs_copy
                st = self.copy_page_range(mm, tmp, oldmm, pvma)
                if st != MM_OK:
                    return st
        # __mt_dup: the child's tree is the parent's, node for node
        if mt_dup(&mm.mm_mt, &oldmm.mm_mt, <void**>mm.vmas) != 0:
            return MM_ENOMEM
        self.mt_sync(mm)
        self.ctr[C_TLB_FLUSHES] += 1             # flush_tlb_mm(oldmm)
        return MM_OK

    cdef int copy_page_range(self, mm_t* dst_mm, vma_t* dst, mm_t* src_mm, vma_t* src) noexcept nogil:
        """copy_p4d_range .. copy_pte_range: the child gets a table for every table the
        parent has under the VMA, empty ones included (pud_alloc / pmd_alloc /
        pte_alloc run before the entries are looked at).  Every present PTE is shared
        with the child, write-protected on both sides (COW); the frames lose
        PageAnonExclusive and gain a mapping and a reference."""
        cdef int64_t cnt[2]
        cdef int st
        cnt[0] = 0
        cnt[1] = 0
        st = self.copy_table_range(dst_mm, src_mm, src_mm.pgd.pgd, LVL_PGD, 0,
                                   src.vm_start, src.vm_end, cnt)
        self.pt_sync(dst_mm)
        self.ctr[C_FORK_PTES_COPIED] += cnt[0]
        self.ctr[C_FORK_PTES_WRPROTECT] += cnt[1]
        self.ctr[C_PTE_WRITES] += cnt[0] + cnt[1]
        return st

    cdef int copy_table_range(self, mm_t* dst_mm, mm_t* src_mm, pt_node_t* t, int level, uint64_t base,
                              uint64_t start, uint64_t end, int64_t* cnt) noexcept nogil:
        """One level of copy_page_range below table `t` (covering vpns from `base`)."""
        cdef uint64_t span = (<uint64_t>1) << (9 * (LVL_PTE - level))     # pages per entry of t
        cdef uint64_t lo, hi, e0, v
        cdef int i, i0, i1
        cdef pt_node_t* child
        cdef pt_node_t* dt
        lo = start if start > base else base
        i0 = <int>((lo - base) // span)
        i1 = <int>((end - base + span - 1) // span)
        if i1 > PT_ENTRIES:
            i1 = PT_ENTRIES
        for i in range(i0, i1):
            e0 = base + <uint64_t>i * span
            if level == LVL_PMD and pmd_leaf(t.e[i]):
                if self.copy_huge_pmd(dst_mm, src_mm, t, e0, cnt) != MM_OK:
                    return MM_ENOMEM
                continue
            child = <pt_node_t*><size_t>t.e[i]
            if child == NULL:
                continue
            if level + 1 < LVL_PTE:
                if self.copy_table_range(dst_mm, src_mm, child, level + 1, e0, start, end, cnt) != MM_OK:
                    return MM_ENOMEM
                if table_at(&dst_mm.pgd, e0 if e0 > start else start, level + 1) == NULL:
                    # nothing below in range: the child allocates the twin of this table
                    # all the same; the pagetable block allocates whole paths, so build
                    # one and free what lies below this table again
                    v = e0 if e0 > start else start
                    if pt_leaf(&dst_mm.pgd, v, True, NULL) == NULL:
                        return MM_ENOMEM
                    v &= ~(span // PT_ENTRIES - 1)
                    pt_free_range(&dst_mm.pgd, v, v + span // PT_ENTRIES)
                continue
            hi = e0 + span
            v = e0 if e0 > start else start
            dt = pt_leaf(&dst_mm.pgd, v, True, NULL)
            if dt == NULL:
                return MM_ENOMEM
            self.copy_pte_range(dt, child, v & 511, ((end if end < hi else hi) - 1) & 511, dst_mm, cnt)
        return MM_OK

    cdef int copy_huge_pmd(self, mm_t* dst_mm, mm_t* src_mm, pt_node_t* pmd_t, uint64_t haddr,
                           int64_t* cnt) noexcept nogil:
        """copy_huge_pmd: the child gets a PTE table deposited and the same PMD leaf,
        write-protected on both sides; the folio gains a mapping and a reference per
        page and loses PageAnonExclusive (folio_try_dup_anon_rmap_pmd).  The huge zero
        folio is shared as it is.  A leaf always lies inside one VMA (split_vma splits
        it otherwise), so it is copied whole."""
        cdef uint64_t e = pmd_t.e[(haddr >> 9) & 511], k
        cdef pt_node_t* dpmd
        cdef pt_node_t* pgtable = pt_table_alloc(&dst_mm.pgd)
        cdef frame_t* f
        if pgtable == NULL:
            return MM_ENOMEM
        dpmd = pt_pmd_table(&dst_mm.pgd, haddr, True, NULL)
        if dpmd == NULL:
            pt_table_free(&dst_mm.pgd, pgtable)
            return MM_ENOMEM
        pt_deposit(dpmd, pgtable)
        if not (e & PTE_SPECIAL):
            for k in range(HPAGE_PMD_NR):
                f = &self.frames.f[pte_pfn(e) + <pfn_t>k]
                f.mapcount += 1
                f.refcount += 1
                f.flags &= ~(<uint32_t>FR_ANON_EXCLUSIVE)
            dst_mm.rss_anon += HPAGE_PMD_NR
            self.ctr[C_THP_COPY_PMD] += 1
            if e & PTE_WRITE:
                e &= ~(<uint64_t>PTE_WRITE)
                pmd_t.e[(haddr >> 9) & 511] = e
                cnt[1] += 1
        pt_set_pmd(dpmd, haddr, e)
        dst_mm.nr_huge_pmd += 1
        cnt[0] += 1
        return MM_OK

    cdef void copy_pte_range(self, pt_node_t* dt, pt_node_t* t, uint64_t i0, uint64_t i1, mm_t* dst_mm,
                             int64_t* cnt) noexcept nogil:
        """Share PTEs [i0, i1] of table t with the child's table dt."""
        cdef uint64_t v, pte
        cdef frame_t* f
        cdef frame_t* fr = self.frames.f
        for v in range(i0, i1 + 1):
            pte = t.e[v]
            if pte == 0:
                continue
            if not (pte & PTE_SPECIAL):
                f = &fr[pte_pfn(pte)]
                f.mapcount += 1
                f.refcount += 1
                f.flags &= ~(<uint32_t>FR_ANON_EXCLUSIVE)
                dst_mm.rss_anon += 1
                if pte & PTE_WRITE:
                    pte &= ~(<uint64_t>PTE_WRITE)
                    t.e[v] = pte
                    cnt[1] += 1
            dt.e[v] = pte
            dt.used += 1
            cnt[0] += 1

    # ================================================================ 2. unmap, mprotect, mremap, exit
    cdef int64_t zap_pte_range(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil:
        """Clear every PTE in [start, end); frames lose a mapping and a reference."""
        cdef uint64_t vpn = start, pte, h
        cdef pt_node_t* t
        cdef frame_t* f
        cdef int64_t n = 0, nb
        if mm.nr_huge_pmd:                       # zap_pmd_range: whole leaves go, cut ones split
            h = start & ~(<uint64_t>(HPAGE_PMD_NR - 1))
            while h < end and mm.nr_huge_pmd:
                if pmd_leaf_at(mm, h):
                    if h >= start and h + HPAGE_PMD_NR <= end:
                        n += self.zap_huge_pmd(mm, h)
                    else:
                        self.split_huge_pmd(mm, h)
                h += HPAGE_PMD_NR
        while True:
            t = pt_next(&mm.pgd, vpn, end, &vpn)
            if t == NULL:
                break
            pte = t.e[vpn & 511]
            pt_set(t, vpn, 0)
            n += 1
            if not (pte & PTE_SPECIAL):
                f = &self.frames.f[pte_pfn(pte)]
                if f.flags & FR_LARGE:           # zap_present_ptes: one batch per folio
                    nb = self.zap_folio_batch(mm, t, vpn, end, pte_pfn(pte))
                    n += nb - 1
                    vpn += <uint64_t>nb
                    continue
                f.mapcount -= 1
                if f.flags & FR_PAGECACHE:
                    mm.rss_shmem -= 1
                else:
                    mm.rss_anon -= 1
                self.page_put(pte_pfn(pte))
            vpn += 1
        self.ctr[C_PTE_ZAPS] += n
        self.ctr[C_PTE_WRITES] += n
        return n

    cdef int64_t zap_folio_batch(self, mm_t* mm, pt_node_t* t, uint64_t vpn, uint64_t end,
                                 pfn_t pfn) noexcept nogil:
        """folio_pte_batch + folio_remove_rmap_ptes + folio_put_refs: the PTE at vpn (already
        cleared) and the following ones of the same table and range that map the next
        pages of the same large folio go in one batch, so a folio zapped whole is freed
        whole and one zapped in part is queued once.  Returns the PTEs in the batch."""
        cdef frame_t* fr = self.frames.f
        cdef pfn_t end_pfn = folio_head(fr, pfn) + (<pfn_t>1 << fr[pfn].aux)
        cdef int64_t nb = 1, k
        cdef uint64_t e
        while vpn + <uint64_t>nb < end and ((vpn + <uint64_t>nb) & 511) != 0 and pfn + <pfn_t>nb < end_pfn:
            e = t.e[(vpn + <uint64_t>nb) & 511]
            if not (e & PTE_PRESENT) or (e & PTE_SPECIAL) or pte_pfn(e) != pfn + <pfn_t>nb:
                break
            pt_set(t, vpn + <uint64_t>nb, 0)
            nb += 1
        for k in range(nb):
            fr[pfn + k].mapcount -= 1
        mm.rss_anon -= nb
        self.folio_put_refs(pfn, nb)
        return nb

    cdef int64_t zap_huge_pmd(self, mm_t* mm, uint64_t haddr) noexcept nogil:
        """zap_huge_pmd: clear the leaf, free the deposited table (zap_deposited_table),
        drop the folio's mapping and references (the folio is freed with the last).
        Returns the entries cleared (1), which zap_pte_range counts in pte_zaps."""
        cdef pt_node_t* pmd_t = pt_pmd_table(&mm.pgd, haddr, False, NULL)
        cdef uint64_t e = pmd_t.e[(haddr >> 9) & 511], k
        cdef pfn_t head = pte_pfn(e)
        pt_set_pmd(pmd_t, haddr, 0)
        pt_table_free(&mm.pgd, pt_withdraw(pmd_t))
        mm.nr_huge_pmd -= 1
        self.pt_sync(mm)
        if not (e & PTE_SPECIAL):
            for k in range(HPAGE_PMD_NR):
                self.frames.f[head + k].mapcount -= 1
            mm.rss_anon -= HPAGE_PMD_NR
            self.folio_put_refs(head, HPAGE_PMD_NR)
        return 1                                 # one entry cleared: the caller counts it

    cdef int64_t free_pgtables(self, mm_t* mm, uint64_t floor, uint64_t ceiling) noexcept nogil:
        """Free the empty tables whose span lies in [floor, ceiling); returns how many."""
        cdef int64_t n
        mm.leaf_key = ~(<uint64_t>0)
        if self.pt_keep_start < self.pt_keep_end and floor < self.pt_keep_end \
                and self.pt_keep_start < ceiling:
            # an mremap piece's munmap: the tables reserved for the pieces still to
            # move stay (the kernel frees them and move_page_tables allocates again)
            n = pt_free_range(&mm.pgd, floor, self.pt_keep_start) if floor < self.pt_keep_start else 0
            if self.pt_keep_end < ceiling:
                n += pt_free_range(&mm.pgd, self.pt_keep_end, ceiling)
        else:
            n = pt_free_range(&mm.pgd, floor, ceiling)
        self.pt_sync(mm)
        return n

    cdef int do_munmap(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil:
        """Split at the edges, zap, free the page tables of the hole, remove the VMAs."""
        cdef int64_t i = self.vma_index(mm, start), j, k
        cdef int64_t zapped = 0
        cdef uint64_t floor, ceiling
        if i >= mm.nr_vmas or mm.vmas[i].vm_start >= end:
            return MM_OK
        if mm.vmas[i].vm_start < start:
            if self.split_vma(mm, i, start) != MM_OK:
                return MM_ENOMEM
            i += 1
        j = self.vma_index(mm, end - 1)
        if j < mm.nr_vmas and mm.vmas[j].vm_start < end and mm.vmas[j].vm_end > end:
            if self.split_vma(mm, j, end) != MM_OK:
                return MM_ENOMEM
        j = i
        while j < mm.nr_vmas and mm.vmas[j].vm_start < end:
            zapped += self.zap_pte_range(mm, mm.vmas[j].vm_start, mm.vmas[j].vm_end)
            j += 1
        floor = mm.vmas[i - 1].vm_end if i > 0 else 0
        ceiling = mm.vmas[j].vm_start if j < mm.nr_vmas else VPN_END
        # unmap_region: one mmu_gather; tlb_finish_mmu flushes once when it cleared
        # a PTE or freed a table
        if self.free_pgtables(mm, floor, ceiling) or zapped:
            self.ctr[C_TLB_FLUSHES] += 1
        self.vma_iter_clear(mm, mm.vmas[i].vm_start, mm.vmas[j - 1].vm_end)
        for k in range(i, j):
            self.remove_vma(mm.vmas[k])
        vmaset_remove(<void**>mm.vmas, &mm.nr_vmas, i, j - i)
        mm.mmap_cache = 0
        self.mt_sync(mm)
        return MM_OK

    cdef int change_protection(self, mm_t* mm, vma_t* vma) noexcept nogil:
        """Apply the VMA's protection to its PTEs: clear write, or restore it where no
        fault is needed (shared pages; private pages that are AnonExclusive)."""
        cdef uint64_t vpn = vma.vm_start, pte, npte
        cdef pt_node_t* t
        cdef bint writable = (vma.vm_flags & VM_WRITE) != 0
        cdef bint shared = (vma.vm_flags & VM_SHARED) != 0
        cdef int64_t n = 0
        cdef uint64_t h
        cdef pt_node_t* pmd_t
        if mm.nr_huge_pmd:                       # change_huge_pmd on whole leaves
            h = (vma.vm_start + HPAGE_PMD_NR - 1) & ~(<uint64_t>(HPAGE_PMD_NR - 1))
            while h + HPAGE_PMD_NR <= vma.vm_end:
                pte = pmd_leaf_at(mm, h)
                if pte:
                    npte = pte & ~(<uint64_t>PTE_WRITE)
                    if writable and not (pte & PTE_SPECIAL) and (
                            self.frames.f[pte_pfn(pte)].flags & FR_ANON_EXCLUSIVE):
                        npte = pte | PTE_WRITE
                    if npte != pte:
                        pmd_t = pt_pmd_table(&mm.pgd, h, False, NULL)
                        pmd_t.e[(h >> 9) & 511] = npte
                        n += 1
                h += HPAGE_PMD_NR
        while True:
            t = pt_next(&mm.pgd, vpn, vma.vm_end, &vpn)
            if t == NULL:
                break
            pte = t.e[vpn & 511]
            npte = pte & ~(<uint64_t>PTE_WRITE)
            if writable and not (pte & PTE_SPECIAL) and (
                    shared or (self.frames.f[pte_pfn(pte)].flags & FR_ANON_EXCLUSIVE)):
                npte = pte | PTE_WRITE
            if npte != pte:
                t.e[vpn & 511] = npte
                n += 1
            vpn += 1
        self.ctr[C_PTE_WRITES] += n
        if n:
            self.ctr[C_TLB_FLUSHES] += 1
        return <int>n

    cdef void unsplit(self, mm_t* mm, uint64_t old, uint64_t n, bint split_first,
                      bint split_last) noexcept nogil:
        """Merge back the VMAs mremap split at old and old + n before its first
        move failed (same anon_vma and chain on both sides: cannot fail once
        the maple nodes are reserved); the counters forget the splits."""
        if split_last and self.vma_absorb(mm, self.vma_index(mm, old + n - 1)) == MM_OK:
            self.ctr[C_VMA_SPLITS] -= 1
            self.ctr[C_VMA_MERGES] -= 1
        if split_first and self.vma_absorb(mm, self.vma_index(mm, old - 1)) == MM_OK:
            self.ctr[C_VMA_SPLITS] -= 1
            self.ctr[C_VMA_MERGES] -= 1
        self.mt_sync(mm)

    cdef int reserve_move_tables(self, mm_t* mm, uint64_t old, uint64_t n, uint64_t new) noexcept nogil:
        """Before mremap changes anything, allocate the destination page tables
        move_page_tables will need, VMA piece by VMA piece (a PTE table the
        piece covers whole at the same 2 MiB phase moves as a table and needs
        only the tables above it).  MM_ENOMEM with the page tables as they were
        when the host is out of memory.  move_vma asks again for its piece (an
        earlier piece's munmap may have freed a reserved table that was still
        empty when the destination lies just below the old range)."""
        cdef int64_t i = self.vma_index(mm, new)
        cdef uint64_t floor = mm.vmas[i - 1].vm_end if i > 0 else 0
        cdef uint64_t ceiling = mm.vmas[i].vm_start if i < mm.nr_vmas else VPN_END
        cdef uint64_t s, e
        cdef int64_t made = 0
        cdef int st = MM_OK
        i = self.vma_index(mm, old)
        while i < mm.nr_vmas and mm.vmas[i].vm_start < old + n:
            s = mm.vmas[i].vm_start if mm.vmas[i].vm_start > old else old
            e = mm.vmas[i].vm_end if mm.vmas[i].vm_end < old + n else old + n
            if pt_reserve_move(&mm.pgd, s, e, new + (s - old), floor, ceiling, True, &made) != 0:
                st = MM_ENOMEM
                break
            if mm.nr_huge_pmd and self.reserve_huge_pmd_moves(mm, s, e, new + (s - old), &made) != 0:
                pt_free_range(&mm.pgd, floor, ceiling)
                st = MM_ENOMEM
                break
            i += 1
        mm.leaf_key = ~(<uint64_t>0)
        self.pt_sync(mm)
        return st

    cdef int move_vma(self, mm_t* mm, int64_t i, uint64_t new_start) noexcept nogil:
        """copy_vma (merge at the destination or a new VMA with a cloned AVC chain),
        move_page_tables, then unmap the old range."""
        cdef vma_t* vma = mm.vmas[i]
        cdef vma_t proto
        cdef vma_t* new
        cdef uint64_t old_start = vma.vm_start, old_end = vma.vm_end
        cdef uint64_t n = old_end - old_start, new_end = new_start + n
        cdef int st
        memset(&proto, 0, sizeof(vma_t))
        proto.vm_start = new_start
        proto.vm_end = new_end
        proto.vm_flags = vma.vm_flags
        proto.vm_file = vma.vm_file
        proto.anon_vma = vma.anon_vma
        proto.nr_avc = vma.nr_avc
        proto.vm_pgoff = vma.vm_pgoff
        if vma.vm_file == NULL and vma.anon_vma == NULL:
            proto.vm_pgoff = new_start           # never faulted: pgoff follows the address
        if self.reserve_move_tables(mm, old_start, n, new_start) != MM_OK:
            return MM_ENOMEM
        if self.mremap_relocate_anon and self.relocate_anon_vma(mm, vma, new_start, n):
            proto.vm_pgoff = vma.vm_pgoff        # what-if: the VMA now looks mapped at new_start
            proto.anon_vma = vma.anon_vma
        st = self.copy_vma(mm, vma, &proto, &new)
        if st != MM_OK:
            return st
        self.move_page_tables(mm, old_start, old_end, new_start)
        return self.do_munmap(mm, old_start, old_end)

    cdef int copy_vma(self, mm_t* mm, vma_t* vma, vma_t* proto, vma_t** out) noexcept nogil:
        cdef int64_t k = self.vma_index(mm, proto.vm_start)
        cdef vma_t* prev = mm.vmas[k - 1] if k > 0 and mm.vmas[k - 1] != vma else NULL
        cdef vma_t* nxt = mm.vmas[k] if k < mm.nr_vmas and mm.vmas[k] != vma else NULL
        cdef vma_t* new
        cdef int st
        cdef bint left = prev != NULL and self.can_merge(prev, proto)
        cdef bint right = nxt != NULL and self.can_merge(proto, nxt)
        self.count_merge_fail(prev, nxt, proto, left, right)
        if left:
            if prev.anon_vma == NULL and vma.anon_vma != NULL:
                prev.anon_vma = vma.anon_vma
                if self.anon_vma_clone(prev, vma, False) != MM_OK:
                    prev.anon_vma = NULL
                    return MM_ENOMEM
            self.vma_set_range(prev, prev.vm_start, proto.vm_end, prev.vm_pgoff)
            self.ctr[C_VMA_MERGES] += 1
            out[0] = prev
            if nxt != NULL and self.can_merge(prev, nxt):
                return self.vma_absorb(mm, k - 1)         # stores prev..next once
            return self.vma_iter_store(mm, prev)
        if right:
            if nxt.anon_vma == NULL and vma.anon_vma != NULL:
                nxt.anon_vma = vma.anon_vma
                if self.anon_vma_clone(nxt, vma, False) != MM_OK:
                    nxt.anon_vma = NULL
                    return MM_ENOMEM
            self.vma_set_range(nxt, proto.vm_start, nxt.vm_end, proto.vm_pgoff)
            self.ctr[C_VMA_MERGES] += 1
            out[0] = nxt
            return self.vma_iter_store(mm, nxt)
        if self.vma_link_reserve(mm, 1) != MM_OK:
            return MM_ENOMEM
        new = self.vm_area_dup(vma)
        if new == NULL:
            return MM_ENOMEM
        new.vm_start = proto.vm_start
        new.vm_end = proto.vm_end
        new.vm_pgoff = proto.vm_pgoff
        st = self.anon_vma_clone(new, vma, False)
        if st != MM_OK:
            self.kmem_free(self.kc_vma)
            free(new)
            return st
        self.vma_file_link(new)
        self.vma_link(mm, new)
        out[0] = new
        return self.vma_iter_store(mm, new)

    cdef void move_page_tables(self, mm_t* mm, uint64_t start, uint64_t end, uint64_t new_start) noexcept nogil:
        """Move each PTE; folio->index and ->mapping stay valid because vm_pgoff moved along.
        Where old and new addresses are both 2 MiB-aligned over a whole PTE table,
        move_normal_pmd moves the table itself: one PMD entry, no table allocated."""
        cdef uint64_t vpn = start, pte, tbase
        cdef pt_node_t* t
        cdef pt_node_t* dt
        cdef int64_t moved = 0, writes = 0, nalloc = 0
        cdef bint same_phase = ((start ^ new_start) & 511) == 0
        if mm.nr_huge_pmd:                       # move_huge_pmd where old and new are aligned
            tbase = start & ~(<uint64_t>(HPAGE_PMD_NR - 1))      # over the whole leaf, else split
            while tbase < end:
                if pmd_leaf_at(mm, tbase):
                    if same_phase and tbase >= start and tbase + HPAGE_PMD_NR <= end and \
                            self.move_huge_pmd(mm, tbase, new_start + (tbase - start)):
                        moved += HPAGE_PMD_NR
                        writes += 2                  # pmdp_huge_get_and_clear + set_pmd_at
                    else:
                        self.split_huge_pmd(mm, tbase)
                tbase += HPAGE_PMD_NR
        while True:
            t = pt_next(&mm.pgd, vpn, end, &vpn)
            if t == NULL:
                break
            tbase = vpn & ~(<uint64_t>511)
            if same_phase and tbase >= start and tbase + 512 <= end:
                if self.move_normal_pmd(mm, tbase, new_start + (tbase - start)):
                    moved += t.used
                    writes += 2                  # pmdp_get_and_clear + set_pmd_at
                    vpn = tbase + 512
                    continue
            pte = t.e[vpn & 511]
            dt = pt_leaf(&mm.pgd, new_start + (vpn - start), True, &nalloc)
            if dt == NULL:          # reserve_move_tables made every table the move needs;
                break               # defensive only (nothing was moved for this page)
            pt_set(t, vpn, 0)
            pt_set(dt, new_start + (vpn - start), pte)
            moved += 1
            writes += 2
            vpn += 1
        self.pt_sync(mm)
        self.ctr[C_MREMAP_PAGES_MOVED] += moved
        self.ctr[C_PTE_WRITES] += writes
        if moved:
            self.ctr[C_TLB_FLUSHES] += 1

    cdef bint move_huge_pmd(self, mm_t* mm, uint64_t old, uint64_t new) noexcept nogil:
        """move_huge_pmd: the PMD leaf at `old` moves to the PMD entry of `new` (which
        must be none), its deposited PTE table with it (pgtable_trans_huge_withdraw +
        _deposit); the folio is untouched.  False leaves the leaf where it was."""
        cdef pt_node_t* spmd = pt_pmd_table(&mm.pgd, old, False, NULL)
        cdef pt_node_t* dpmd = pt_pmd_table(&mm.pgd, new, True, NULL)
        cdef uint64_t e
        if spmd == NULL or dpmd == NULL or dpmd.e[(new >> 9) & 511] != 0:
            return False
        e = spmd.e[(old >> 9) & 511]
        pt_set_pmd(spmd, old, 0)
        pt_set_pmd(dpmd, new, e)
        pt_deposit(dpmd, pt_withdraw(spmd))
        mm.leaf_key = ~(<uint64_t>0)
        return True

    cdef int reserve_huge_pmd_moves(self, mm_t* mm, uint64_t s, uint64_t e, uint64_t dst,
                                    int64_t* made) noexcept nogil:
        """reserve_move_tables' part for the PMD leaves of [s, e) moving to dst: a leaf
        move_huge_pmd will move needs the destination's PMD table; a leaf that will be
        split needs the PTE tables its pages in range land in.  -1 when out of memory."""
        cdef uint64_t h = s & ~(<uint64_t>(HPAGE_PMD_NR - 1)), d
        cdef bint same_phase = ((s ^ dst) & 511) == 0
        while h < e:
            if pmd_leaf_at(mm, h):
                d = dst + (h - s) if h >= s else dst
                if same_phase and h >= s and h + HPAGE_PMD_NR <= e:
                    if pt_pmd_table(&mm.pgd, d, True, made) == NULL:
                        return -1
                elif pt_leaf(&mm.pgd, d, True, made) == NULL or \
                        pt_leaf(&mm.pgd, dst + ((h + HPAGE_PMD_NR if h + HPAGE_PMD_NR < e else e) - 1 - s),
                                True, made) == NULL:
                    return -1
            h += HPAGE_PMD_NR
        return 0

    cdef bint move_normal_pmd(self, mm_t* mm, uint64_t old, uint64_t new) noexcept nogil:
        """Hand the PTE table of the 2 MiB at `old` to the empty PMD entry of `new`
        (alloc_new_pmd builds the upper tables); False when `new` already has a table."""
        cdef pt_node_t* spmd = table_at(&mm.pgd, old, LVL_PMD)
        cdef pt_node_t* dpmd = table_at(&mm.pgd, new, LVL_PMD)
        cdef pt_node_t* leaf
        cdef int si = <int>((old >> 9) & 511), di = <int>((new >> 9) & 511)
        if dpmd == NULL:
            # the block allocates whole paths: take one and drop its PTE table
            if pt_leaf(&mm.pgd, new, True, NULL) == NULL:
                return False
            dpmd = table_at(&mm.pgd, new, LVL_PMD)
            leaf = <pt_node_t*><size_t>dpmd.e[di]
            free(leaf)
            dpmd.e[di] = 0
            dpmd.used -= 1
            mm.pgd.nr[LVL_PTE] -= 1
        elif dpmd.e[di] != 0:
            return False
        dpmd.e[di] = spmd.e[si]
        dpmd.used += 1
        spmd.e[si] = 0
        spmd.used -= 1
        mm.leaf_key = ~(<uint64_t>0)
        return True

    cdef void exit_mmap(self, mm_t* mm) noexcept nogil:
        cdef int64_t i, zapped = 0
        for i in range(mm.nr_vmas):
            zapped += self.zap_pte_range(mm, mm.vmas[i].vm_start, mm.vmas[i].vm_end)
        if zapped:
            self.ctr[C_TLB_FLUSHES] += 1
        self.free_pgtables(mm, 0, VPN_END)
        for i in range(mm.nr_vmas):
            self.remove_vma(mm.vmas[i])
        mm.nr_vmas = 0
        mt_destroy(&mm.mm_mt)
        self.mt_sync(mm)
        mm.leaf_key = ~(<uint64_t>0)
        pt_destroy(&mm.pgd)
        self.pt_sync(mm)
        free(mm.vmas)
        self.kmem_free(self.kc_mm)
        free(mm)

    # ================================================================ 2b. khugepaged
    cdef int64_t khugepaged_scan_mm(self, mm_t* mm) noexcept nogil:
        """khugepaged_scan_mm_slot over the whole mm at once: every VMA khugepaged may
        collapse (THP allowed, an anon_vma already), every aligned 2 MiB inside it
        (HPAGE_PMD_NR pages of scan progress each): hpage_collapse_scan_pmd, then
        collapse_huge_page.  Stops when no PMD folio can be allocated
        (thp_collapse_alloc_failed ends the pass).  Returns the ranges collapsed."""
        cdef int64_t i = 0, n = 0
        cdef vma_t* v
        cdef uint64_t h
        while i < mm.nr_vmas:
            v = mm.vmas[i]
            i += 1
            if not self.thp_vma_allowed(v) or v.anon_vma == NULL:
                continue
            h = (v.vm_start + HPAGE_PMD_NR - 1) & ~(<uint64_t>(HPAGE_PMD_NR - 1))
            while h + HPAGE_PMD_NR <= v.vm_end:
                self.ctr[C_KHUGEPAGED_PAGES_SCANNED] += HPAGE_PMD_NR
                if self.hpage_collapse_scan_pmd(mm, h):
                    if self.collapse_huge_page(mm, v, h) != MM_OK:
                        return n
                    n += 1
                h += HPAGE_PMD_NR
        return n

    cdef bint hpage_collapse_scan_pmd(self, mm_t* mm, uint64_t h) noexcept nogil:
        """May the PTE table at h become one PMD folio?  Not when the PMD is none or
        already a leaf, when more than max_ptes_none entries are none or the zero page
        (thp_scan_exceed_none_pte), when more than max_ptes_shared pages are mapped
        elsewhere too (thp_scan_exceed_share_pte), or when no PTE is writable
        (SCAN_PAGE_RO).  Every mapped page counts as referenced (no accessed bits)."""
        cdef pt_node_t* pmd_t = pt_pmd_table(&mm.pgd, h, False, NULL)
        cdef pt_node_t* t
        cdef uint64_t e, pte
        cdef int k, none = 0, shared = 0
        cdef bint writable = False
        if pmd_t == NULL:
            return False
        e = pmd_t.e[(h >> 9) & 511]
        if e == 0 or pmd_leaf(e):
            return False
        t = <pt_node_t*><size_t>e
        for k in range(PT_ENTRIES):
            pte = t.e[k]
            if pte == 0 or (pte & PTE_SPECIAL):
                none += 1
                if none > self.max_ptes_none:
                    self.ctr[C_THP_SCAN_EXCEED_NONE_PTE] += 1
                    return False
                continue
            if self.frames.f[pte_pfn(pte)].mapcount > 1:      # folio_maybe_mapped_shared
                shared += 1
                if shared > self.max_ptes_shared:
                    self.ctr[C_THP_SCAN_EXCEED_SHARE_PTE] += 1
                    return False
            if pte & PTE_WRITE:
                writable = True
        return writable

    cdef int collapse_huge_page(self, mm_t* mm, vma_t* vma, uint64_t h) noexcept nogil:
        """collapse_huge_page: a new PMD folio (thp_collapse_alloc), the PMD cleared and
        flushed (pmdp_collapse_flush), every page copied into it (none and zero-page
        entries zeroed), the old pages released folio by folio
        (__collapse_huge_page_copy_succeeded), the emptied PTE table deposited under
        the new PMD leaf (writable when the VMA is), the folio queued not partially
        mapped (map_anon_folio_pmd_nopf).  MM_ENOMEM: no folio, nothing changed."""
        cdef pfn_t head = self.folio_alloc_large(HPAGE_PMD_ORDER)
        cdef pt_node_t* pmd_t
        cdef pt_node_t* t
        cdef uint64_t pte, k = 0, bits = PTE_PRESENT | PMD_PSE
        cdef int64_t cleared = 0, nb
        cdef frame_t* fr = self.frames.f
        if head == NO_PFN:
            return MM_ENOMEM
        self.ctr[C_THP_COLLAPSE_ALLOC] += 1
        pmd_t = pt_pmd_table(&mm.pgd, h, False, NULL)
        t = <pt_node_t*><size_t>pmd_t.e[(h >> 9) & 511]
        self.ctr[C_TLB_FLUSHES] += 1
        for k in range(HPAGE_PMD_NR):
            pte = t.e[k]
            if pte != 0 and not (pte & PTE_SPECIAL):
                fr[head + k].value = fr[pte_pfn(pte)].value
                self.ctr[C_PAGES_COPIED] += 1
            else:
                self.ctr[C_PAGES_ZEROED] += 1
        k = 0
        while k < HPAGE_PMD_NR:
            pte = t.e[k]
            if pte == 0:
                k += 1
                continue
            pt_set(t, h + k, 0)
            if pte & PTE_SPECIAL:
                cleared += 1
                k += 1
                continue
            if fr[pte_pfn(pte)].flags & FR_LARGE:
                nb = self.zap_folio_batch(mm, t, h + k, h + HPAGE_PMD_NR, pte_pfn(pte))
                cleared += nb
                k += <uint64_t>nb
                continue
            fr[pte_pfn(pte)].mapcount -= 1
            mm.rss_anon -= 1
            self.page_put(pte_pfn(pte))
            cleared += 1
            k += 1
        self.folio_add_new_anon_rmap_large(head, HPAGE_PMD_ORDER, vma, h)
        self.deferred_split_folio(head, False)
        if vma.vm_flags & VM_WRITE:
            bits |= PTE_WRITE
        pt_set_pmd(pmd_t, h, 0)
        pt_deposit(pmd_t, t)
        pt_set_pmd(pmd_t, h, mk_pte(head, bits))
        mm.nr_huge_pmd += 1
        mm.leaf_key = ~(<uint64_t>0)
        self.ctr[C_PTE_WRITES] += cleared + 2
        return MM_OK

    cdef void deferred_split_shrinker_maybe(self) noexcept nogil:
        """With the option deferred_split_shrinker (a host under memory pressure), the
        shrinker runs after each call that may have queued a partially mapped folio."""
        if self.ds_shrinker and self.ds_partial:
            self.deferred_split_scan()

    # ================================================================ 3. the contract
    cdef int c_spawn(self, int64_t* pid_out) noexcept nogil:
        cdef mm_t* mm = mm_alloc()
        cdef int64_t pid
        if mm == NULL:
            return MM_ENOMEM
        self.kmem_alloc(self.kc_mm)
        self.pt_sync(mm)
        pid = self.pid_install(mm)
        if pid < 0:
            self.exit_mmap(mm)
            return <int>pid
        mm.pid = pid
        pid_out[0] = pid
        return MM_OK

    cdef int c_mmap(self, int64_t pid, int64_t vpn, int64_t npages, uint64_t flags) noexcept nogil:
        cdef mm_t* mm = <mm_t*>self.proc_of(pid)
        cdef uint64_t start = <uint64_t>vpn, end = <uint64_t>(vpn + npages)
        cdef int64_t i = self.vma_index(mm, start)
        cdef uint64_t vm_flags = VM_READ | VM_MAYREAD | VM_MAYWRITE
        cdef int st
        if i < mm.nr_vmas and mm.vmas[i].vm_start < end:
            return MM_EINVAL
        if flags & MAPF_WRITE:
            vm_flags |= VM_WRITE
        if flags & MAPF_SHARED:
            vm_flags |= VM_SHARED | VM_MAYSHARE
            st = self.mmap_shared(mm, start, end, vm_flags)
        else:
            if flags & MAPF_WRITE:
                vm_flags |= VM_ACCOUNT
            st = self.mmap_private(mm, i, start, end, vm_flags)
        self.mt_sync(mm)
        return st

    cdef int mmap_private(self, mm_t* mm, int64_t i, uint64_t start, uint64_t end, uint64_t vm_flags) noexcept nogil:
        """vma_merge_new_range with do_mmap's pgoff (the address; 0 with anon_pgoff="zero",
        Xu's experiment), else a new VMA.  The merge rules are the same either way: a
        neighbour merges only when the pgoffs continue (and the anon_vmas agree)."""
        cdef vma_t proto
        cdef vma_t* v
        cdef bint left, right
        memset(&proto, 0, sizeof(vma_t))
        proto.vm_start = start
        proto.vm_end = end
        proto.vm_pgoff = 0 if self.anon_pgoff_zero else start
        proto.vm_flags = vm_flags
        left = i > 0 and self.can_merge(mm.vmas[i - 1], &proto)
        right = i < mm.nr_vmas and self.can_merge(&proto, mm.vmas[i])
        self.count_merge_fail(mm.vmas[i - 1] if i > 0 else NULL,
                              mm.vmas[i] if i < mm.nr_vmas else NULL, &proto, left, right)
        if left:
            v = mm.vmas[i - 1]
            self.vma_set_range(v, v.vm_start, end, v.vm_pgoff)
            self.ctr[C_VMA_MERGES] += 1
            if right and self.can_merge(v, mm.vmas[i]):
                return self.vma_absorb(mm, i - 1)          # stores prev..next once
            return self.vma_iter_store(mm, v)
        if right:
            v = mm.vmas[i]
            self.vma_set_range(v, start, v.vm_end, proto.vm_pgoff)
            self.ctr[C_VMA_MERGES] += 1
            return self.vma_iter_store(mm, v)
        if self.vma_link_reserve(mm, 1) != MM_OK:
            return MM_ENOMEM
        v = self.vm_area_alloc(mm)
        if v == NULL:
            return MM_ENOMEM
        v.vm_start = start
        v.vm_end = end
        v.vm_pgoff = proto.vm_pgoff
        v.vm_flags = vm_flags
        self.vma_link(mm, v)
        return self.vma_iter_store(mm, v)

    cdef int mmap_shared(self, mm_t* mm, uint64_t start, uint64_t end, uint64_t vm_flags) noexcept nogil:
        """shmem_zero_setup: a new shmem file behind the mapping, pgoff 0."""
        cdef shmem_t* f
        cdef vma_t* v
        if self.vma_link_reserve(mm, 1) != MM_OK:
            return MM_ENOMEM
        f = <shmem_t*>calloc(1, sizeof(shmem_t))
        v = self.vm_area_alloc(mm)
        if f == NULL or v == NULL:
            free(f)
            if v != NULL:
                self.kmem_free(self.kc_vma)
                free(v)
            return MM_ENOMEM
        mapping_init(&f.mapping)
        self.kmem_alloc(self.kc_shmem)
        self.ctr[C_OBJECTS_ALLOC] += 1
        v.vm_start = start
        v.vm_end = end
        v.vm_pgoff = 0
        v.vm_flags = vm_flags
        v.vm_file = f
        self.vma_file_link(v)
        self.vma_link(mm, v)
        return self.vma_iter_store(mm, v)

    cdef int c_munmap(self, int64_t pid, int64_t vpn, int64_t npages) noexcept nogil:
        cdef int st = self.do_munmap(<mm_t*>self.proc_of(pid), <uint64_t>vpn, <uint64_t>(vpn + npages))
        self.deferred_split_shrinker_maybe()
        return st

    cdef int64_t split_vma_to(self, mm_t* mm, int64_t i, uint64_t pos, uint64_t end) noexcept nogil:
        """Split VMA i (which holds pos) at pos and at end so that the part of it inside
        [pos, end) is a VMA of its own; its new index, or -1 when out of memory."""
        cdef vma_t* v = mm.vmas[i]
        if v.vm_start < pos:
            if self.split_vma(mm, i, pos) != MM_OK:
                return -1
            i += 1
        v = mm.vmas[i]
        if v.vm_end > end and self.split_vma(mm, i, end) != MM_OK:
            return -1
        return i

    cdef int c_mprotect(self, int64_t pid, int64_t vpn, int64_t npages, bint writable) noexcept nogil:
        """mprotect_fixup per VMA: split to the range, new flags, change_protection, merge."""
        cdef mm_t* mm = <mm_t*>self.proc_of(pid)
        cdef uint64_t pos = <uint64_t>vpn, end = <uint64_t>(vpn + npages), newflags, next_pos
        cdef int64_t i
        cdef vma_t* v
        if not self.range_mapped(mm, pos, end):
            return MM_EINVAL
        while pos < end:
            i = self.vma_index(mm, pos)
            v = mm.vmas[i]
            newflags = mprotect_flags(v, writable)
            if newflags == v.vm_flags:
                pos = v.vm_end
                continue
            i = self.split_vma_to(mm, i, pos, end)
            if i < 0:
                return MM_ENOMEM
            v = mm.vmas[i]
            v.vm_flags = newflags
            self.change_protection(mm, v)
            next_pos = v.vm_end
            self.vma_try_merge_at(mm, i)
            pos = next_pos
        self.mt_sync(mm)
        return MM_OK

    cdef int c_read(self, int64_t pid, int64_t vpn, uint64_t* out) noexcept nogil:
        cdef mm_t* mm = <mm_t*>self.proc_of(pid)
        cdef vma_t* vma = self.find_vma(mm, <uint64_t>vpn)
        cdef pt_node_t* t
        cdef uint64_t pte
        cdef vm_fault_t vmf
        cdef int st
        if vma == NULL:
            return MM_ESEGV
        t = pte_lookup(mm, <uint64_t>vpn)
        if t != NULL:
            pte = t.e[vpn & 511]
            if pte & PTE_PRESENT:
                out[0] = frame_value(&self.frames, pte_pfn(pte))
                return MM_OK
        else:
            pte = pmd_leaf_at(mm, <uint64_t>vpn)
            if pte:
                out[0] = frame_value(&self.frames, pte_pfn(pmd_subpage_pte(pte, <uint64_t>vpn)))
                return MM_OK
        vmf.mm = mm
        vmf.address = <uint64_t>vpn
        vmf.flags = 0
        vmf.vma = vma
        vmf.pte_table = t
        vmf.orig_pte = t.e[vpn & 511] if t != NULL else 0
        st = self.handle_mm_fault(&vmf)
        if st != VM_FAULT_DONE:
            return st
        out[0] = frame_value(&self.frames, vmf.pfn)
        return MM_OK

    cdef int c_write(self, int64_t pid, int64_t vpn, uint64_t value) noexcept nogil:
        cdef mm_t* mm = <mm_t*>self.proc_of(pid)
        cdef vma_t* vma = self.find_vma(mm, <uint64_t>vpn)
        cdef pt_node_t* t
        cdef uint64_t pte
        cdef vm_fault_t vmf
        cdef int st
        if vma == NULL:
            return MM_ESEGV
        if not (vma.vm_flags & VM_WRITE):
            return MM_EPROT
        t = pte_lookup(mm, <uint64_t>vpn)
        if t != NULL:
            pte = t.e[vpn & 511]
            if (pte & (PTE_PRESENT | PTE_WRITE)) == (PTE_PRESENT | PTE_WRITE):
                self.frames.f[pte_pfn(pte)].value = value
                return MM_OK
        else:
            pte = pmd_leaf_at(mm, <uint64_t>vpn)
            if pte & PTE_WRITE:
                self.frames.f[pte_pfn(pmd_subpage_pte(pte, <uint64_t>vpn))].value = value
                return MM_OK
        vmf.mm = mm
        vmf.address = <uint64_t>vpn
        vmf.flags = FAULT_FLAG_WRITE
        vmf.vma = vma
        vmf.pte_table = t
        vmf.orig_pte = t.e[vpn & 511] if t != NULL else 0
        st = self.handle_mm_fault(&vmf)
        if st != VM_FAULT_DONE:
            return st
        self.frames.f[vmf.pfn].value = value
        self.deferred_split_shrinker_maybe()     # a COW copy may leave a folio partially mapped
        return MM_OK

    cdef int c_fork(self, int64_t pid, int64_t* child_out) noexcept nogil:
        cdef mm_t* oldmm = <mm_t*>self.proc_of(pid)
        cdef mm_t* mm = mm_alloc()
        cdef int64_t child
        cdef int st
        if mm == NULL:
            return MM_ENOMEM
        self.kmem_alloc(self.kc_mm)
        self.pt_sync(mm)
        st = self.dup_mmap(mm, oldmm)
        if st == MM_OK:
            child = self.pid_install(mm)
            st = <int>child if child < 0 else MM_OK
        if st != MM_OK:
            self.exit_mmap(mm)
            return st
        mm.pid = child
        child_out[0] = child
        return MM_OK

    cdef int c_exit(self, int64_t pid) noexcept nogil:
        self.exit_mmap(<mm_t*>self.proc_of(pid))
        self.pid_release(pid)
        self.deferred_split_shrinker_maybe()
        return MM_OK

    cdef int c_mremap(self, int64_t pid, int64_t old_vpn, int64_t npages, int64_t new_vpn) noexcept nogil:
        """Move [old, old+n) to [new, new+n) VMA by VMA (see the essay for what is copied):
        the checks, mremap_reserve (everything every piece needs), mremap_move."""
        cdef mm_t* mm = <mm_t*>self.proc_of(pid)
        cdef uint64_t old = <uint64_t>old_vpn, new = <uint64_t>new_vpn, n = <uint64_t>npages
        cdef int st = self.mremap_check(mm, old, n, new)
        if st != MM_OK:
            return st
        st = self.mremap_reserve(mm, old, n, new)
        if st == MM_OK:
            st = self.mremap_move(mm, old, n, new)
        self.spare_trim(SPARE_KEEP)
        mt_trim(&mm.mm_mt, MT_SPARE_KEEP)
        return st

    cdef int mremap_check(self, mm_t* mm, uint64_t old, uint64_t n, uint64_t new) noexcept nogil:
        """mremap's checks, in the reference model's order: the ranges overlap (EINVAL),
        the source is not all mapped (SEGV), the destination is not free (EINVAL).
        MM_OK: the move may go ahead."""
        cdef int64_t i
        if new < old + n and old < new + n:
            return MM_EINVAL
        if not self.range_mapped(mm, old, old + n):
            return MM_ESEGV
        i = self.vma_index(mm, new)
        if i < mm.nr_vmas and mm.vmas[i].vm_start < new + n:
            return MM_EINVAL
        return MM_OK

    cdef int mremap_reserve(self, mm_t* mm, uint64_t old, uint64_t n, uint64_t new) noexcept nogil:
        """Before mremap changes anything, set aside what every piece of the move can
        allocate, so that no piece fails after an earlier one moved (all or nothing;
        the kernel's multi-VMA move can stop part-way).  Per piece at most three VMAs
        (cutting it out of a merged neighbour on both sides, copy_vma) each with a
        chain no longer than the longest of the pieces and the VMAs they can merge with,
        one AVC for mremap_relocate_anon, four maple stores (two cuts, copy_vma, the
        munmap); plus the two splits at the ends and their undo; the vmas array;
        and the destination page tables (reserve_move_tables).  MM_ENOMEM with the
        machine unchanged (what was set aside is not accounted)."""
        cdef int64_t i = self.vma_index(mm, old), k, pieces = 0, chain = 0, nvma, stores, hb, x
        cdef int64_t nb[4]
        while i < mm.nr_vmas and mm.vmas[i].vm_start < old + n:
            pieces += 1
            if mm.vmas[i].nr_avc > chain:
                chain = mm.vmas[i].nr_avc
            i += 1
        k = self.vma_index(mm, old)
        nb[0] = k - 1                       # the neighbours a piece can merge with
        nb[1] = k + pieces
        nb[2] = self.vma_index(mm, new) - 1
        nb[3] = nb[2] + 1
        for x in range(4):
            i = nb[x]
            if 0 <= i < mm.nr_vmas and mm.vmas[i].nr_avc > chain:
                chain = mm.vmas[i].nr_avc
        nvma = 3 * pieces + 2
        # mas_preallocate: each store needs at most 3 * height + 8 nodes; the VMAs the
        # move can add may raise the tree by a level per factor of 8
        hb = mm.mm_mt.height + 2
        x = nvma
        while x >= 16:
            x >>= 3
            hb += 1
        stores = 4 * pieces + 4
        if mt_reserve(&mm.mm_mt, stores * (3 * hb + 8)) != 0:
            return MM_ENOMEM
        if self.spare_reserve(nvma, nvma * chain + pieces, 0) != MM_OK:
            return MM_ENOMEM
        if self.vma_link_reserve(mm, nvma) != MM_OK:
            return MM_ENOMEM
        return self.reserve_move_tables(mm, old, n, new)

    cdef void mremap_unreserve(self, mm_t* mm, uint64_t new, uint64_t n) noexcept nogil:
        """Give back the destination tables mremap_reserve made (the hole around [new,
        new + n) holds no VMA: its empty tables are those) and the spares, when the
        caller refuses the move after reserving (gmem)."""
        cdef int64_t i = self.vma_index(mm, new)
        cdef uint64_t floor = mm.vmas[i - 1].vm_end if i > 0 else 0
        cdef uint64_t ceiling = mm.vmas[i].vm_start if i < mm.nr_vmas else VPN_END
        mm.leaf_key = ~(<uint64_t>0)
        pt_free_range(&mm.pgd, floor, ceiling)
        self.pt_sync(mm)
        self.spare_trim(SPARE_KEEP)
        mt_trim(&mm.mm_mt, MT_SPARE_KEEP)

    cdef int mremap_move(self, mm_t* mm, uint64_t old, uint64_t n, uint64_t new) noexcept nogil:
        """The move itself, after mremap_reserve: split at both ends, then move_vma piece
        by piece.  The failure paths are defensive only (the reservation covers every
        allocation); a failing first piece undoes the splits."""
        cdef uint64_t pos, piece_end
        cdef int64_t i, j
        cdef int st = MM_OK
        cdef bint split_first, split_last
        i = self.vma_index(mm, old)
        split_first = mm.vmas[i].vm_start < old
        if split_first and self.split_vma(mm, i, old) != MM_OK:
            self.mremap_unreserve(mm, new, n)
            return MM_ENOMEM
        j = self.vma_index(mm, old + n - 1)
        split_last = mm.vmas[j].vm_end > old + n
        if split_last and self.split_vma(mm, j, old + n) != MM_OK:
            self.unsplit(mm, old, n, split_first, False)
            self.mremap_unreserve(mm, new, n)
            return MM_ENOMEM
        self.pt_keep_start = new              # a piece's munmap keeps the tables reserved
        self.pt_keep_end = new + n            # for the pieces after it
        pos = old
        while pos < old + n:
            # a moved piece may have merged with a neighbour that is still in the
            # old range: cut the next piece out of it again
            i = self.vma_index(mm, pos)
            if mm.vmas[i].vm_start < pos:
                if self.split_vma(mm, i, pos) != MM_OK:
                    st = MM_ENOMEM
                    break
                i += 1
            if mm.vmas[i].vm_end > old + n and self.split_vma(mm, i, old + n) != MM_OK:
                st = MM_ENOMEM
                break
            piece_end = mm.vmas[i].vm_end
            st = self.move_vma(mm, i, new + (pos - old))
            if st != MM_OK:
                if pos == old:      # nothing moved yet (move_vma changes nothing when it
                    self.unsplit(mm, old, n, split_first, split_last)   # fails): undo the splits
                break
            pos = piece_end
        self.pt_keep_start = self.pt_keep_end = 0
        self.mt_sync(mm)
        if st == MM_OK:
            self.deferred_split_shrinker_maybe()
        return st

    cdef int c_madvise(self, int64_t pid, int64_t vpn, int64_t npages, int advice) noexcept nogil:
        """DONTNEED zaps; HUGEPAGE / NOHUGEPAGE go through madvise_update_vma per VMA
        (hugepage_madvise: set one flag, clear the other): a VMA whose flags do not
        change is left alone, one that changes is split to the range (as mprotect
        here) and merged again with equal neighbours."""
        cdef mm_t* mm = <mm_t*>self.proc_of(pid)
        cdef uint64_t pos = <uint64_t>vpn, end = <uint64_t>(vpn + npages), newflags, next_pos
        cdef uint64_t set_f, clear_f
        cdef int64_t i
        cdef vma_t* v
        if advice == MADV_DONTNEED:
            return self.c_madvise_dontneed(pid, vpn, npages)
        if advice == MADV_HUGEPAGE:
            set_f, clear_f = VM_HUGEPAGE, VM_NOHUGEPAGE
        elif advice == MADV_NOHUGEPAGE:
            set_f, clear_f = VM_NOHUGEPAGE, VM_HUGEPAGE
        else:
            return MM_EINVAL
        if not self.range_mapped(mm, pos, end):
            return MM_EINVAL
        while pos < end:
            i = self.vma_index(mm, pos)
            v = mm.vmas[i]
            newflags = (v.vm_flags & ~clear_f) | set_f
            if newflags == v.vm_flags:
                pos = v.vm_end
                continue
            i = self.split_vma_to(mm, i, pos, end)
            if i < 0:
                return MM_ENOMEM
            v = mm.vmas[i]
            v.vm_flags = newflags
            next_pos = v.vm_end
            self.vma_try_merge_at(mm, i)
            pos = next_pos
        self.mt_sync(mm)
        return MM_OK

    cdef int c_madvise_dontneed(self, int64_t pid, int64_t vpn, int64_t npages) noexcept nogil:
        """madvise_dontneed_free: zap the range VMA by VMA under one mmu_gather (one TLB
        flush per call); private pages then read 0.  With pt_reclaim (CONFIG_PT_RECLAIM)
        a PTE table the zap covers whole is freed with it."""
        cdef mm_t* mm = <mm_t*>self.proc_of(pid)
        cdef uint64_t pos = <uint64_t>vpn, end = <uint64_t>(vpn + npages), e
        cdef int64_t i, zapped = 0, freed = 0
        if not self.range_mapped(mm, pos, end):
            return MM_EINVAL
        i = self.vma_index(mm, pos)
        while pos < end:
            e = mm.vmas[i].vm_end if mm.vmas[i].vm_end < end else end
            zapped += self.zap_pte_range(mm, pos, e)
            if self.pt_reclaim:
                freed += self.reclaim_pt(mm, pos, e)
            pos = e
            i += 1
        if zapped or freed:
            self.ctr[C_TLB_FLUSHES] += 1
        self.deferred_split_shrinker_maybe()
        return MM_OK

    cdef int64_t reclaim_pt(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil:
        """try_to_free_pte: free each PTE table whose whole 2 MiB [start, end) covers
        (the zap emptied it); upper tables stay.  Returns the tables freed."""
        cdef uint64_t v = (start + 511) & ~(<uint64_t>511)
        cdef int64_t n = 0
        cdef pt_node_t* t
        while v + 512 <= end:
            t = pt_find_leaf(&mm.pgd, v)
            if t != NULL and t.used == 0:
                mm.leaf_key = ~(<uint64_t>0)
                n += pt_free_range(&mm.pgd, v, v + 512)    # the PTE table only
            v += 512
        if n:
            self.pt_sync(mm)
        return n

    # ---------------------------------------------------------- Python extras
    def rmap_walk(self, pid, vpn):
        """rmap_walk_anon (or the file rmap for a shared page) of the frame mapped at
        (pid, vpn): the sorted list of (pid, vpn) that map it.  [] when nothing is
        resident there (never touched, or the zero page).  Counts rmap_visits."""
        with self.held():
            return self._rmap_walk(pid, vpn)

    def _rmap_walk(self, pid, vpn):
        cdef int64_t p = self._pid(pid)
        cdef int64_t v
        cdef mm_t* mm = <mm_t*>self.procs[p]
        cdef uint64_t pte
        cdef pfn_t pfn
        cdef int64_t cap, n, k
        cdef int64_t* buf
        v, _ = self._range(vpn)
        if self.find_vma(mm, <uint64_t>v) == NULL:
            raise _errors.SegmentationFault(f"pid {p}: vpn {v} is not mapped")
        pte = mm_pte_at(mm, <uint64_t>v)
        if not (pte & PTE_PRESENT) or (pte & PTE_SPECIAL):
            return []
        pfn = pte_pfn(pte)
        cap = self.frames.f[pfn].mapcount
        buf = <int64_t*>malloc(2 * cap * sizeof(int64_t) + 16)
        if buf == NULL:
            raise MemoryError()
        if self.frames.f[pfn].flags & FR_PAGECACHE:
            n = self.rmap_walk_file(pfn, buf, cap)
        else:
            n = self.rmap_walk_anon(pfn, buf, cap)
        out = []
        for k in range(n):
            out.append((int(buf[2 * k]), int(buf[2 * k + 1])))
        free(buf)
        return sorted(out)

    def notes(self):
        with self.held():
            return self._notes()

    def _notes(self):
        return list(type(self).design_notes) + self.thp_notes() + [self.move_pages_note()]

    def move_pages_note(self):
        if self.move_native:
            return ("move_pages moves without copying, as UFFDIO_MOVE (mm/userfaultfd.c): each "
                    "AnonExclusive folio's PTE moves and the folio gets the destination's anon_vma "
                    "and index; a folio shared since a fork is refused (PageBusy, -EBUSY)")
        why = ("device page tables mirror the PTEs here" if self.ndevices else
               f"the {type(self).name!r} design keeps state beside the PTEs that a PTE move would miss")
        return (f"move_pages copies through the generic fallback ({why}): the design's own write "
                "per non-zero page, then MADV_DONTNEED on the source")

    def thp_notes(self):
        """How this machine backs anonymous memory with huge pages (one line)."""
        with self.held():
            return self._thp_notes()

    def _thp_notes(self):
        if not self.thp_pmd:
            why = ("with devices the HMM paths walk PTE tables only" if self.ndevices
                   else f"the {type(self).name!r} design's own paths walk PTE tables only")
            return [f"huge pages are not modelled here ({why}): runs at 4 KiB (thp={self.options['thp']!r} "
                    "has no effect); MADV_HUGEPAGE / MADV_NOHUGEPAGE still set VM_HUGEPAGE / VM_NOHUGEPAGE"]
        if self.thp_mode == THP_NEVER:
            return ["thp='never' (/sys/kernel/mm/transparent_hugepage/enabled): runs at 4 KiB"]
        sizes = tuple(4 << o for o in range(MTHP_MIN_ORDER, HPAGE_PMD_ORDER) if (self.mthp_orders >> o) & 1)
        return [f"thp={self.options['thp']!r} is /sys/kernel/mm/transparent_hugepage/enabled; "
                "anonymous private THPs: a first fault on an eligible aligned 2 MiB maps a PMD "
                "(a 512-page folio on write, the huge zero folio on read) with a deposited PTE "
                "table; partial unmap/mprotect/dontneed split the PMD, mremap moves aligned "
                "PMDs whole and splits the others; COW after fork splits and copies 4 KiB; "
                + (f"anon mTHP sizes {sizes} kB follow the same mode (per-size 'inherit'); "
                   if sizes else "no anon mTHP sizes enabled (mthp_sizes=(), the kernel's default); ")
                + "partially unmapped large folios wait on the deferred split queue "
                + ("and the shrinker runs after each call; " if self.ds_shrinker
                   else "until m.shrink_deferred_split() (no memory pressure); ")
                + ("khugepaged collapses on m.khugepaged_scan(pid); " if self.khugepaged
                   else "no khugepaged (option khugepaged=False); ")
                + "no buddy coalescing (a large folio comes from never-used frames, else fallback)"]

    def vmas(self, pid):
        """The VMAs of a process: dicts with start, end, pgoff, writable, shared,
        anon_vma (an opaque id or None), chain (its AVC count), hugepage and
        nohugepage (VM_HUGEPAGE / VM_NOHUGEPAGE)."""
        with self.held():
            return self._vmas(pid)

    def _vmas(self, pid):
        cdef mm_t* mm = <mm_t*>self.procs[self._pid(pid)]
        cdef vma_t* v
        cdef int64_t i
        out = []
        for i in range(mm.nr_vmas):
            v = mm.vmas[i]
            out.append({"start": int(v.vm_start), "end": int(v.vm_end), "pgoff": int(v.vm_pgoff),
                        "writable": bool(v.vm_flags & VM_WRITE), "shared": bool(v.vm_flags & VM_SHARED),
                        "anon_vma": (int(<size_t>v.anon_vma) if v.anon_vma != NULL else None),
                        "chain": int(v.nr_avc), "hugepage": bool(v.vm_flags & VM_HUGEPAGE),
                        "nohugepage": bool(v.vm_flags & VM_NOHUGEPAGE)})
        return out

    def anon_huge_kb(self, pid):
        """AnonHugePages of /proc/PID/smaps summed over the process: kB of anonymous
        memory mapped by PMD leaves (the huge zero folio is not anonymous)."""
        with self.held():
            return self._anon_huge_kb(pid)

    def _anon_huge_kb(self, pid):
        cdef mm_t* mm = <mm_t*>self.procs[self._pid(pid)]
        cdef uint64_t h = 0, e
        cdef int64_t n = 0
        cdef vma_t* v
        cdef int64_t i
        for i in range(mm.nr_vmas):
            v = mm.vmas[i]
            h = (v.vm_start + HPAGE_PMD_NR - 1) & ~(<uint64_t>(HPAGE_PMD_NR - 1))
            while h + HPAGE_PMD_NR <= v.vm_end and mm.nr_huge_pmd:
                e = pmd_leaf_at(mm, h)
                if e and not (e & PTE_SPECIAL):
                    n += 1
                h += HPAGE_PMD_NR
        return int(n * HPAGE_PMD_NR * 4)

    def rss_kb(self, pid):
        """VmRSS of /proc/PID/status in kB (MM_ANONPAGES + MM_SHMEMPAGES): pages mapped
        now.  Unmapped pages of a partially mapped large folio are not in it although
        their frames stay allocated (frames_used) until the folio is split or freed."""
        cdef mm_t* mm = <mm_t*>self.procs[self._pid(pid)]
        return int((mm.rss_anon + mm.rss_shmem) * 4)

    @property
    def split_queue_len(self):
        """Folios on the deferred split queue (deferred_split_count): PMD THPs since their
        fault or collapse, and large folios that became partially mapped."""
        return int(self.ds_len)

    def shrink_deferred_split(self):
        """Run the deferred split shrinker over the whole queue (what memory pressure
        does on the host): partially mapped folios are split and their unmapped pages
        freed (thp_split_page, mthp_split), the other folios leave the queue whole.
        Returns the folios split."""
        return int(self.deferred_split_scan())

    def khugepaged_scan(self, pid):
        """One khugepaged pass over a process (option khugepaged=True): collapse every
        eligible 2 MiB-aligned range of a VMA with an anon_vma whose PTE table holds at
        most khugepaged_max_ptes_none empty entries and at most
        khugepaged_max_ptes_shared pages mapped elsewhere too, into a PMD-mapped THP.
        Returns the ranges collapsed.  Values never change."""
        cdef int64_t p = self._pid(pid)
        if not self.khugepaged:
            raise _errors.InvalidArgument("khugepaged is off in this machine: open it with khugepaged=True")
        if not self.thp_pmd:
            return 0
        return int(self.khugepaged_scan_mm(<mm_t*>self.procs[p]))

    def vmpte_bytes(self, pid):
        """Page-table bytes as /proc/PID/status VmPTE shows them (PUD+PMD+PTE tables)."""
        with self.held():
            return self._vmpte_bytes(pid)

    def _vmpte_bytes(self, pid):
        cdef mm_t* mm = <mm_t*>self.procs[self._pid(pid)]
        return int(pt_vmpte_bytes(&mm.pgd))

    def pt_tables(self, pid):
        """Live page tables of a process per level: (pgd, pud, pmd, pte)."""
        with self.held():
            return self._pt_tables(pid)

    def _pt_tables(self, pid):
        cdef mm_t* mm = <mm_t*>self.procs[self._pid(pid)]
        return (int(mm.pgd.nr[0]), int(mm.pgd.nr[1]), int(mm.pgd.nr[2]), int(mm.pgd.nr[3]))

    # ================================================================ 5. what-ifs and page moves
    # Variants the mailing-list threads argue about (docs/what-ifs.md) and UFFDIO_MOVE.
    # anon_pgoff="zero" lives in mmap_private (do_mmap's pgoff); the merge rules are
    # the same ones for every variant (can_merge, anon_compatible_merge).

    cdef bint relocate_anon_vma(self, mm_t* mm, vma_t* vma, uint64_t new_start, uint64_t n) noexcept nogil:
        """mremap_relocate_anon: before vma moves to new_start, give it the pgoff a VMA
        mapped there would have -- continuing a same-kind neighbour at the destination
        when there is one -- and re-index every folio it maps to match (folio->index;
        folio->mapping too when it adopts that neighbour's anon_vma), so that copy_vma
        can merge it.  Requires: private anonymous; its anon_vma serves it alone (a
        single-entry chain, no other VMA, no forked descendants); no PMD leaf in the
        range; every mapped folio AnonExclusive, mapped once, on that anon_vma.
        Cost: one walk over the moved PTEs (anon_relocate_folios per folio).  Returns
        False, changing nothing, when a requirement fails."""
        cdef anon_vma_t* av = vma.anon_vma
        cdef anon_vma_t* target = av
        cdef vma_t* nb = NULL
        cdef avc_t* avc = NULL
        cdef int64_t k = self.vma_index(mm, new_start)
        cdef uint64_t new_pgoff, vpn, pte, h
        cdef pt_node_t* t
        cdef frame_t* f
        cdef int64_t walked = 0
        if vma.vm_file != NULL or av == NULL or vma.nr_avc != 1 or av.num_active_vmas != 1 \
                or av.rb_root.count != 1 or av.refcount != 1 or av.num_children != 1:
            return False
        if mm.nr_huge_pmd:
            h = vma.vm_start & ~(<uint64_t>(HPAGE_PMD_NR - 1))
            while h < vma.vm_end:
                if pmd_leaf_at(mm, h):
                    return False
                h += HPAGE_PMD_NR
        vpn = vma.vm_start
        while True:                              # the check pass: nothing changes yet
            t = pt_next(&mm.pgd, vpn, vma.vm_end, &vpn)
            if t == NULL:
                break
            pte = t.e[vpn & 511]
            if not (pte & PTE_PRESENT):
                return False
            if not (pte & PTE_SPECIAL):
                f = &self.frames.f[pte_pfn(pte)]
                if not (f.flags & FR_ANON_EXCLUSIVE) or f.mapcount != 1 or f.owner != <uint64_t><size_t>av:
                    return False
            vpn += 1
        # the pgoff: continue the neighbour at the destination (prev first), else do_mmap's
        if k > 0 and mm.vmas[k - 1] != vma and mm.vmas[k - 1].vm_end == new_start \
                and mm.vmas[k - 1].vm_flags == vma.vm_flags and mm.vmas[k - 1].vm_file == NULL:
            nb = mm.vmas[k - 1]
            new_pgoff = nb.vm_pgoff + vma_pages(nb)
        elif k < mm.nr_vmas and mm.vmas[k] != vma and mm.vmas[k].vm_start == new_start + n \
                and mm.vmas[k].vm_flags == vma.vm_flags and mm.vmas[k].vm_file == NULL \
                and mm.vmas[k].vm_pgoff >= n:
            nb = mm.vmas[k]
            new_pgoff = nb.vm_pgoff - n
        else:
            new_pgoff = 0 if self.anon_pgoff_zero else new_start
        if nb != NULL and nb.anon_vma != NULL and nb.nr_avc == 1:
            target = nb.anon_vma                 # adopt it: the two can then merge
            avc = self.avc_alloc()
            if avc == NULL:
                return False
        vpn = vma.vm_start
        while True:                              # the update pass
            t = pt_next(&mm.pgd, vpn, vma.vm_end, &vpn)
            if t == NULL:
                break
            pte = t.e[vpn & 511]
            if not (pte & PTE_SPECIAL):
                f = &self.frames.f[pte_pfn(pte)]
                f.index = new_pgoff + (vpn - vma.vm_start)
                f.owner = <uint64_t><size_t>target
                walked += 1
            vpn += 1
        if target != av:
            self.unlink_anon_vmas(vma)           # av served this VMA alone: it is freed
            vma.vm_pgoff = new_pgoff
            vma.anon_vma = target
            self.anon_vma_chain_link(vma, avc, target)
            target.num_active_vmas += 1
        else:
            self.vma_set_range(vma, vma.vm_start, vma.vm_end, new_pgoff)
        self.ctr[C_ANON_RELOCATE_FOLIOS] += walked
        return True

    cdef int c_move_pages(self, int64_t pid, int64_t src, int64_t dst, int64_t npages) noexcept nogil:
        """move_pages (mm/userfaultfd.c, UFFDIO_MOVE): move each exclusive anonymous
        folio's PTE from src to dst and re-point the folio (folio_move_anon_rmap:
        mapping = the destination VMA's anon_vma; index = linear_page_index there);
        no data is copied.  Zero-page PTEs move as they are (move_zeropage_pte),
        holes stay holes.  A folio that is not AnonExclusive (shared since a fork)
        refuses the whole call with MM_EBUSY before anything changed (the kernel
        moves page by page and returns the bytes moved before the -EBUSY).  With
        devices, device page tables mirror these PTEs: the move goes through the
        copying fallback, whose writes and zaps notify them (and designs built on
        linux, move_native False, keep state beside the PTEs: the fallback too)."""
        cdef mm_t* mm = <mm_t*>self.proc_of(pid)
        cdef uint64_t s = <uint64_t>src, d = <uint64_t>dst, n = <uint64_t>npages
        cdef int st
        if d < s + n and s < d + n:
            return MM_EINVAL
        if not self.range_mapped(mm, s, s + n) or not self.range_mapped(mm, d, d + n):
            return MM_ESEGV
        if not self.move_pages_areas_ok(mm, s, n) or not self.move_pages_areas_ok(mm, d, n):
            return MM_EINVAL                     # validate_move_areas
        if not self.move_native:
            with gil:
                return self.move_pages_copy(pid, src, dst, npages)
        st = self.move_pages_check(mm, s, d, n)
        if st != MM_OK:
            return st
        return self.move_pages_ptes(mm, s, d, n)

    cdef bint move_pages_areas_ok(self, mm_t* mm, uint64_t start, uint64_t n) noexcept nogil:
        """Every VMA over [start, start + n) private, anonymous and writable."""
        cdef int64_t i = self.vma_index(mm, start)
        while i < mm.nr_vmas and mm.vmas[i].vm_start < start + n:
            if mm.vmas[i].vm_file != NULL or not (mm.vmas[i].vm_flags & VM_WRITE):
                return False
            i += 1
        return True

    cdef int move_pages_check(self, mm_t* mm, uint64_t s, uint64_t d, uint64_t n) noexcept nogil:
        """The per-page checks, before anything changes: a destination page holding a
        non-zero value is -EEXIST (MM_EINVAL: a zero-valued one is dropped, the
        contract cannot tell it from a hole); a source folio that is not
        AnonExclusive is -EBUSY."""
        cdef uint64_t i, pte
        for i in range(n):
            pte = mm_pte_at(mm, d + i)
            if (pte & PTE_PRESENT) and frame_value(&self.frames, pte_pfn(pte)) != 0:
                return MM_EINVAL
        for i in range(n):
            pte = mm_pte_at(mm, s + i)
            if (pte & PTE_PRESENT) and not (pte & PTE_SPECIAL) and \
                    not (self.frames.f[pte_pfn(pte)].flags & FR_ANON_EXCLUSIVE):
                return MM_EBUSY
        return MM_OK

    cdef int move_pages_ptes(self, mm_t* mm, uint64_t s, uint64_t d, uint64_t n) noexcept nogil:
        """The move itself, once checked: anon_vma_prepare the destination VMAs
        (find_vma_and_prepare_anon), split PMD leaves over both ranges (the model
        never moves a whole PMD: move_pages_huge_pmd is not modelled), reserve the
        destination tables, drop what the destination held (zero-valued), then
        move each PTE and re-point its folio.  MM_ENOMEM before the first PTE
        moved leaves every value as it was."""
        cdef int64_t i = self.vma_index(mm, d), moved = 0, zero_moved = 0, made = 0
        cdef uint64_t vpn = s, pte, h, dv
        cdef int k
        cdef pt_node_t* t
        cdef pt_node_t* dt
        cdef vma_t* dvma
        cdef frame_t* f
        while i < mm.nr_vmas and mm.vmas[i].vm_start < d + n:
            if self.anon_vma_prepare(mm, mm.vmas[i]) != MM_OK:
                return MM_ENOMEM
            i += 1
        for k in range(2):
            h = s if k == 0 else d
            dv = h & ~(<uint64_t>(HPAGE_PMD_NR - 1))
            while mm.nr_huge_pmd and dv < h + n:
                self.split_huge_pmd(mm, dv)
                dv += HPAGE_PMD_NR
        # a page of a large folio does not move alone: move_pages_pte splits the folio
        # first (split_folio), so every moved page is a small folio of its own
        while True:
            t = pt_next(&mm.pgd, vpn, s + n, &vpn)
            if t == NULL:
                break
            pte = t.e[vpn & 511]
            if not (pte & PTE_SPECIAL) and self.frames.f[pte_pfn(pte)].flags & FR_LARGE:
                self.split_folio(folio_head(self.frames.f, pte_pfn(pte)))
            vpn += 1
        vpn = s
        if pt_reserve_move(&mm.pgd, s, s + n, d, d, d, False, &made) != 0:
            self.pt_sync(mm)
            return MM_ENOMEM
        self.zap_pte_range(mm, d, d + n)         # zero-valued folios or zero-page PTEs only
        while True:
            t = pt_next(&mm.pgd, vpn, s + n, &vpn)
            if t == NULL:
                break
            pte = t.e[vpn & 511]
            dv = d + (vpn - s)
            dt = pt_leaf(&mm.pgd, dv, True, &made)
            if dt == NULL:                       # reserved above: defensive only
                break
            pt_set(t, vpn, 0)
            if pte & PTE_SPECIAL:
                pt_set(dt, dv, pte)              # move_zeropage_pte
                zero_moved += 1
            else:
                dvma = self.find_vma(mm, dv)
                f = &self.frames.f[pte_pfn(pte)]
                f.owner = <uint64_t><size_t>dvma.anon_vma        # folio_move_anon_rmap
                f.index = linear_page_index(dvma, dv)
                pt_set(dt, dv, mk_pte(pte_pfn(pte), PTE_PRESENT | PTE_WRITE))
                moved += 1
            vpn += 1
        mm.leaf_key = ~(<uint64_t>0)
        self.pt_sync(mm)
        self.ctr[C_MOVE_PAGES_MOVED] += moved
        self.ctr[C_PTE_WRITES] += 2 * (moved + zero_moved)
        if moved + zero_moved:
            self.ctr[C_TLB_FLUSHES] += 1         # flush_tlb_range over the source
        return MM_OK

    # ================================================================ 4. invariants
    cdef int c_check(self) noexcept nogil:
        """Every invariant of the design; the first violation is reported."""
        cdef int64_t nfr = self.frames.node_bump[0], pid, nmm = 0
        cdef int32_t* maps = <int32_t*>calloc(nfr + 1, sizeof(int32_t))
        cdef mm_t* mm
        cdef int64_t tot[6]
        cdef int st = MM_OK
        cdef int l
        cdef frame_t* f
        if maps == NULL:
            return self.check_fail("out of memory while checking")
        memset(tot, 0, sizeof(tot))
        for pid in range(1, self.next_pid):
            mm = <mm_t*>self.procs[pid]
            if mm == NULL:
                continue
            st = self.check_mm(mm, maps)
            if st != MM_OK:
                break
            tot[0] += mm.nr_vmas
            tot[1] += mm.maple_nodes
            nmm += 1
            for l in range(4):
                if mm.pt_acct[l] != mm.pgd.nr[l]:
                    st = self.check_fail("page-table accounting out of step with the tables")
                tot[2 + l] += mm.pgd.nr[l]
        if st == MM_OK:
            st = self.check_frames(maps, nfr)
        free(maps)
        if st != MM_OK:
            return st
        if nmm != self.caches[self.kc_mm].active:
            return self.check_fail("mm_struct cache != live processes")
        if tot[0] != self.caches[self.kc_vma].active:
            return self.check_fail("vm_area_struct cache != number of VMAs")
        if tot[1] != self.caches[self.kc_maple].active:
            return self.check_fail("maple_node cache != sum of the trees' nodes")
        for l in range(4):
            if tot[2 + l] != self.caches[self.kc_pt[l]].active:
                return self.check_fail("page-table cache != live tables")
        return self.check_objects()

    cdef int check_mm(self, mm_t* mm, int32_t* maps) noexcept nogil:
        cdef int64_t i, nt[4]
        cdef vma_t* v
        cdef uint64_t vpn = 0, pte
        cdef pt_node_t* t
        cdef frame_t* f
        if mm.maple_nodes != mt_nodes(mm):
            return self.check_fail("maple_node count != the tree's nodes")
        if self.check_maple(mm) != MM_OK:
            return MM_EINVAL
        for i in range(mm.nr_vmas):
            v = mm.vmas[i]
            if v.vm_start >= v.vm_end or v.vm_end > VPN_END:
                return self.check_fail("VMA with an empty or out-of-range span")
            if i > 0 and mm.vmas[i - 1].vm_end > v.vm_start:
                return self.check_fail("VMAs out of order or overlapping")
            if self.check_vma(mm, v) != MM_OK:
                return MM_EINVAL
        memset(nt, 0, sizeof(nt))
        nt[0] = 0
        if mm.pgd.pgd == NULL or check_table(mm.pgd.pgd, 0, nt) != 0:
            return self.check_fail("page-table use count != non-zero entries (or deposits != PMD leaves)")
        if self.check_pmd_leaves(mm, maps) != MM_OK:
            return MM_EINVAL
        for i in range(4):
            if nt[i] != mm.pgd.nr[i]:
                return self.check_fail("pgtable nr[] != tables reachable from the PGD")
        while True:
            t = pt_next(&mm.pgd, vpn, VPN_END, &vpn)
            if t == NULL:
                break
            pte = t.e[vpn & 511]
            v = self.find_vma(mm, vpn)
            if v == NULL:
                return self.check_fail("PTE outside every VMA")
            if self.check_pte(v, vpn, pte, maps) != MM_OK:
                return MM_EINVAL
            vpn += 1
        return MM_OK

    cdef int check_pmd_leaves(self, mm_t* mm, int32_t* maps) noexcept nogil:
        """Every PMD leaf lies inside one anonymous private VMA, maps an aligned run
        of frames (or the huge zero folio), and each of its pages passes the PTE
        checks; their number is mm.nr_huge_pmd."""
        cdef pt_node_t* pud
        cdef pt_node_t* pmd
        cdef int i, j, k
        cdef uint64_t e, h, sub
        cdef int64_t n = 0
        cdef vma_t* v
        if mm.pgd.pgd == NULL:
            return MM_OK
        for i in range(PT_ENTRIES):
            pud = <pt_node_t*><size_t>mm.pgd.pgd.e[i]
            if pud == NULL:
                continue
            for j in range(PT_ENTRIES):
                pmd = <pt_node_t*><size_t>pud.e[j]
                if pmd == NULL:
                    continue
                for k in range(PT_ENTRIES):
                    e = pmd.e[k]
                    if not pmd_leaf(e):
                        continue
                    n += 1
                    h = ((<uint64_t>i * PT_ENTRIES + <uint64_t>j) * PT_ENTRIES + <uint64_t>k) * HPAGE_PMD_NR
                    v = self.find_vma(mm, h)
                    if v == NULL or v.vm_start > h or v.vm_end < h + HPAGE_PMD_NR or v.vm_file != NULL:
                        return self.check_fail("PMD leaf not inside one anonymous private VMA")
                    if not (e & PTE_SPECIAL) and (pte_pfn(e) & (HPAGE_PMD_NR - 1)) != 0:
                        return self.check_fail("PMD leaf maps an unaligned frame")
                    for sub in range(HPAGE_PMD_NR):
                        if self.check_pte(v, h + sub, pmd_subpage_pte(e, h + sub), maps) != MM_OK:
                            return MM_EINVAL
        if n != mm.nr_huge_pmd:
            return self.check_fail("mm nr_huge_pmd != PMD leaves in the tables")
        return MM_OK

    cdef int check_maple(self, mm_t* mm) noexcept nogil:
        """mm_mt is a well-formed maple tree whose leaf slots are exactly the VMAs, in
        order, with one NULL slot for each gap between them."""
        cdef int64_t cap = 2 * mm.nr_vmas + 2, n, k, v = 0
        cdef void** ent
        cdef uint64_t* first
        cdef uint64_t pos = 0
        cdef int st = mt_validate(&mm.mm_mt)
        if st != 0:
            return self.check_fail(MT_INVALID[st if st < 11 else 0])
        ent = <void**>malloc(cap * sizeof(void*))
        first = <uint64_t*>malloc(cap * sizeof(uint64_t))
        if ent == NULL or first == NULL:
            free(ent)
            free(first)
            return self.check_fail("out of memory while checking")
        n = mt_slots_in_order(&mm.mm_mt, ent, first, cap)
        st = MM_OK
        if n < 0 or (mm.nr_vmas == 0) != (n == 0):
            st = self.check_fail("maple tree slots != VMAs and gaps")
        for k in range(n if st == MM_OK else 0):
            if ent[k] == NULL:
                if v < mm.nr_vmas and first[k] != (mm.vmas[v - 1].vm_end if v > 0 else 0):
                    st = self.check_fail("maple tree gap slot does not start where a VMA ends")
                    break
                continue
            if v >= mm.nr_vmas or ent[k] != <void*>mm.vmas[v] or first[k] != mm.vmas[v].vm_start or \
                    (k + 1 < n and first[k + 1] != mm.vmas[v].vm_end):
                st = self.check_fail("maple tree slot != the VMA at its index")
                break
            v += 1
        if st == MM_OK and v != mm.nr_vmas:
            st = self.check_fail("maple tree holds fewer VMAs than the mm")
        free(ent)
        free(first)
        return st

    cdef int check_pte(self, vma_t* v, uint64_t vpn, uint64_t pte, int32_t* maps) noexcept nogil:
        cdef frame_t* f
        cdef pfn_t pfn = pte_pfn(pte)
        cdef avc_t* avc
        if not (pte & PTE_PRESENT):
            return self.check_fail("non-present PTE in a design without swap/devices")
        if (pte & PTE_WRITE) and not (v.vm_flags & VM_WRITE):
            return self.check_fail("writable PTE in a read-only VMA")
        if pte & PTE_SPECIAL:
            if pfn != ZERO_PFN or (pte & PTE_WRITE) or (v.vm_flags & VM_SHARED):
                return self.check_fail("bad zero-page PTE")
            return MM_OK
        if pfn >= self.frames.node_bump[0]:
            return self.check_fail("PTE maps a frame never allocated")
        f = &self.frames.f[pfn]
        maps[pfn] += 1
        if v.vm_flags & VM_SHARED:
            if not (f.flags & FR_PAGECACHE) or f.owner != <uint64_t><size_t>v.vm_file \
                    or f.index != linear_page_index(v, vpn):
                return self.check_fail("shared PTE does not map its file's page at its offset")
            return MM_OK
        if not (f.flags & FR_ANON) or f.index != linear_page_index(v, vpn):
            return self.check_fail("anon page index != linear_page_index")
        if (pte & PTE_WRITE) and not (f.flags & FR_ANON_EXCLUSIVE):
            return self.check_fail("writable PTE on a page that is not AnonExclusive")
        avc = v.anon_vma_chain
        while avc != NULL and <uint64_t><size_t>avc.anon_vma != f.owner:
            avc = avc.same_vma
        if avc == NULL:
            return self.check_fail("folio->mapping is not on the mapping VMA's anon_vma chain")
        return MM_OK

    cdef int check_vma(self, mm_t* mm, vma_t* v) noexcept nogil:
        cdef avc_t* avc = v.anon_vma_chain
        cdef int64_t n = 0
        cdef bint own = False
        if v.vm_mm != mm:
            return self.check_fail("vma->vm_mm is not its mm")
        if (v.vm_file != NULL) != ((v.vm_flags & VM_SHARED) != 0) or (v.vm_file != NULL and v.anon_vma != NULL):
            return self.check_fail("shared VMA without file, or with an anon_vma")
        while avc != NULL:
            n += 1
            if avc.vma != v or avc.rb.start != v.vm_pgoff or avc.rb.last != v.vm_pgoff + vma_pages(v) - 1:
                return self.check_fail("AVC not keyed by its VMA's pgoff range")
            if avc.anon_vma == v.anon_vma:
                own = True
            avc = avc.same_vma
        if n != v.nr_avc or (v.anon_vma != NULL and not own) or (v.anon_vma == NULL and n != 0):
            return self.check_fail("anon_vma_chain inconsistent with vma->anon_vma")
        if v.vm_file != NULL and (v.shared_rb.start != v.vm_pgoff or v.shared_rb.last != v.vm_pgoff + vma_pages(v) - 1):
            return self.check_fail("i_mmap node not keyed by the VMA's file range")
        return MM_OK

    cdef int check_frames(self, int32_t* maps, int64_t nfr) noexcept nogil:
        cdef int64_t pfn, inuse = 0
        cdef frame_t* f
        for pfn in range(nfr):
            f = &self.frames.f[pfn]
            if f.refcount <= 0:
                if maps[pfn] != 0:
                    return self.check_fail("PTE maps a free frame")
                if f.flags & FR_LARGE:           # unmapped page of a live large folio
                    inuse += 1
                continue
            inuse += 1
            if f.mapcount != maps[pfn]:
                return self.check_fail("frame mapcount != PTEs mapping it")
            if f.flags & FR_PAGECACHE:
                if f.refcount != f.mapcount + 1 or \
                        mapping_lookup(&(<shmem_t*><size_t>f.owner).mapping, f.index) != <pfn_t>pfn:
                    return self.check_fail("page-cache frame: refcount != mapcount + 1 or not in its cache")
            elif f.refcount != f.mapcount or f.mapcount == 0:
                return self.check_fail("anon frame: refcount != mapcount, or unmapped and not freed")
            elif (f.flags & FR_ANON_EXCLUSIVE) and f.mapcount != 1:
                return self.check_fail("AnonExclusive frame mapped more than once")
        if inuse != self.frames.node_used[0] or inuse != self.caches[self.kc_page].active:
            return self.check_fail("frames in use != struct page cache != allocator count")
        return self.check_folios(nfr)

    cdef int check_folios(self, int64_t nfr) noexcept nogil:
        """Large folios: 2^order aligned pages of one order, consecutive indexes, at
        least one page referenced and nr_live counting them; partially mapped (some
        pages unmapped) <=> PG_partially_mapped <=> queued as such; the queue holds
        distinct large heads whose slots point back at them."""
        cdef int64_t pfn = 0, nr, k, live, npartial = 0
        cdef frame_t* fr = self.frames.f
        cdef folio_meta_t* meta
        while pfn < nfr:
            if not (fr[pfn].flags & FR_LARGE):
                pfn += 1
                continue
            nr = (<int64_t>1) << fr[pfn].aux
            if fr[pfn].aux < 1 or fr[pfn].aux > HPAGE_PMD_ORDER or (pfn & (nr - 1)) or pfn + nr > nfr:
                return self.check_fail("large folio: bad order or unaligned head")
            live = 0
            for k in range(nr):
                if not (fr[pfn + k].flags & FR_LARGE) or fr[pfn + k].aux != fr[pfn].aux or \
                        not (fr[pfn + k].flags & FR_ANON) or fr[pfn + k].index != fr[pfn].index + <uint64_t>k:
                    return self.check_fail("large folio: pages of mixed order, kind or index")
                if k and (fr[pfn + k].flags & FR_PARTIAL):
                    return self.check_fail("large folio: PG_partially_mapped on a tail page")
                live += fr[pfn + k].refcount > 0
            meta = &self.fmeta[pfn >> MTHP_MIN_ORDER]
            if live == 0 or live != meta.nr_live:
                return self.check_fail("large folio: nr_live != pages referenced (or none left)")
            if (live < nr) != ((fr[pfn].flags & FR_PARTIAL) != 0):
                return self.check_fail("large folio: partially mapped != PG_partially_mapped")
            if (fr[pfn].flags & FR_PARTIAL) and meta.ds_slot == 0:
                return self.check_fail("partially mapped folio not on the deferred split queue")
            npartial += (fr[pfn].flags & FR_PARTIAL) != 0
            pfn += nr
        for k in range(self.ds_len):
            pfn = self.ds_queue[k]
            if pfn >= nfr or not (fr[pfn].flags & FR_LARGE) or (pfn & ((1 << fr[pfn].aux) - 1)) or \
                    self.fmeta[pfn >> MTHP_MIN_ORDER].ds_slot != k + 1:
                return self.check_fail("deferred split queue entry is not a queued large folio head")
        if npartial != self.ds_partial:
            return self.check_fail("partially mapped folios != the queue's count")
        return MM_OK

    cdef int check_objects(self) noexcept nogil:
        """anon_vma / AVC / shmem bookkeeping, from an enumeration of all VMAs."""
        cdef int64_t pid, i, navc = 0, nav = 0, nfile = 0, xa = 0
        cdef mm_t* mm
        cdef vma_t* v
        cdef avc_t* avc
        cdef anon_vma_t* av
        cdef shmem_t* f
        cdef int pass_, st
        cdef int64_t epoch = check_epoch_next()
        # pass 0 clears the scratch fields, pass 1 counts, pass 2 verifies; anon_vmas
        # carry the mark (epoch, pass) of the last pass that visited them (check_anon_vma)
        for pass_ in range(3):
            for pid in range(1, self.next_pid):
                mm = <mm_t*>self.procs[pid]
                if mm == NULL:
                    continue
                for i in range(mm.nr_vmas):
                    v = mm.vmas[i]
                    f = v.vm_file
                    if f != NULL:
                        if pass_ == 0:
                            f.chk = 0
                        elif pass_ == 1:
                            if f.chk == 0:
                                nfile += 1
                                xa += f.xa_acct
                                if (f.xa_acct != f.mapping.i_pages.nr_nodes or itree_verify(&f.mapping.i_mmap) != 0
                                        or not xa_hint_ok(&f.mapping.i_pages)):
                                    return self.check_fail("shmem file: xa_node accounting, walk hint or i_mmap tree broken")
                            f.chk += 1
                        elif f.chk != f.refcount or f.mapping.i_mmap.count != f.refcount:
                            return self.check_fail("shmem refcount != VMAs mapping the file")
                    avc = v.anon_vma_chain
                    while avc != NULL:
                        navc += pass_ == 1
                        st = self.check_anon_vma(avc.anon_vma, epoch * 3 + pass_ + 1, pass_, &nav)
                        if st != MM_OK:
                            return st
                        avc = avc.same_vma
                    if pass_ == 1 and v.anon_vma != NULL:
                        v.anon_vma.chk_active += 1
        if navc != self.caches[self.kc_avc].active:
            return self.check_fail("anon_vma_chain cache != AVCs on VMA chains")
        if nav != self.caches[self.kc_anon_vma].active:
            return self.check_fail("anon_vma cache != anon_vmas reachable from VMAs")
        if nfile != self.caches[self.kc_shmem].active or xa != self.caches[self.kc_xa].active:
            return self.check_fail("shmem_inode_info / xa_node caches != live files / nodes")
        return MM_OK

    cdef int check_anon_vma(self, anon_vma_t* av, int64_t mark, int pass_, int64_t* nav) noexcept nogil:
        """Scratch-clear an anon_vma and its ancestors (pass 0), count them (pass 1),
        then verify them (pass 2).  Each anon_vma is visited once per pass: the walk up
        the parent chain stops at one this pass already marked (its ancestors were
        marked with it), so a check costs the AVCs plus the anon_vmas, not AVCs times
        chain depth (a fork chain of depth d has d AVCs per VMA and d ancestors each)."""
        cdef anon_vma_t* a = av
        while a.chk_seen != mark:
            if pass_ == 0:
                a.chk_active = 0
                a.chk_children = 0
                a.chk_refs = 0
            elif pass_ == 1:
                nav[0] += 1
                if a.rb_root.count > 0 and a.parent != a:
                    a.parent.chk_children += 1
                if a.rb_root.count > 0 and a.parent == a:
                    a.chk_children += 1
                a.chk_refs += 1 if (a.root != a or a.rb_root.count > 0) else 0
                if a.root != a:
                    a.root.chk_refs += 1
                if itree_verify(&a.rb_root) != 0:
                    return self.check_fail("anon_vma interval tree broken")
            else:
                if a.chk_active != a.num_active_vmas:
                    return self.check_fail("anon_vma num_active_vmas != VMAs using it")
                if a.chk_children != a.num_children:
                    return self.check_fail("anon_vma num_children != live children")
                if a.chk_refs != a.refcount:
                    return self.check_fail("anon_vma refcount != 1 + live descendants")
                if a.root.root != a.root:
                    return self.check_fail("anon_vma root is not a root")
                if a.root != a and a.rb_root.count == 0:
                    return self.check_fail("non-root anon_vma alive with an empty tree")
            a.chk_seen = mark
            if a.parent == a:
                break
            a = a.parent
        if av.root.chk_seen != mark:          # a root off the parent chain (never, today)
            return self.check_anon_vma(av.root, mark, pass_, nav)
        return MM_OK

# ---------------------------------------------------------------- helpers


# ---------------------------------------------------------------- helpers
cdef inline uint64_t mprotect_flags(vma_t* v, bint writable) noexcept nogil:
    """New vm_flags for mprotect: VM_ACCOUNT is charged when a private mapping becomes
    writable, and dropped when it becomes read-only before it ever had an anon_vma."""
    cdef uint64_t fl = v.vm_flags
    if writable:
        fl |= VM_WRITE
        if not (fl & VM_SHARED):
            fl |= VM_ACCOUNT
    else:
        fl &= ~(<uint64_t>VM_WRITE)
        if not (fl & VM_SHARED) and v.anon_vma == NULL:
            fl &= ~(<uint64_t>VM_ACCOUNT)
    return fl


cdef mm_t* mm_alloc() noexcept nogil:
    cdef mm_t* mm = <mm_t*>calloc(1, sizeof(mm_t))
    if mm == NULL:
        return NULL
    if pt_init(&mm.pgd) != 0:
        free(mm)
        return NULL
    mm.leaf_key = ~(<uint64_t>0)
    mt_init(&mm.mm_mt)
    return mm


cdef pt_node_t* table_at(pgtable_t* pt, uint64_t vpn, int level) noexcept nogil:
    """The table of `level` whose span holds vpn, or NULL (no allocation)."""
    cdef pt_node_t* t = pt.pgd
    cdef int l
    for l in range(level):
        if t == NULL:
            return NULL
        t = <pt_node_t*><size_t>t.e[(vpn >> (9 * (LVL_PTE - l))) & 511]
    return t


cdef int check_table(pt_node_t* t, int level, int64_t* nt) noexcept nogil:
    """Use counts equal non-zero entries at every level; counts tables per level
    (deposited PTE tables included: one per PMD leaf of a PMD table)."""
    cdef int i, used = 0, leaves = 0, deposited = 0
    cdef pt_node_t* d
    nt[level] += 1
    for i in range(PT_ENTRIES):
        if t.e[i] != 0:
            used += 1
            if level == LVL_PMD and pmd_leaf(t.e[i]):
                leaves += 1
                continue
            if level < LVL_PTE and check_table(<pt_node_t*><size_t>t.e[i], level + 1, nt) != 0:
                return -1
    d = t.deposit
    while d != NULL:
        if d.used != 0:
            return -1
        deposited += 1
        d = d.deposit
    nt[LVL_PTE] += deposited
    if deposited != leaves:
        return -1
    return 0 if used == t.used else -1
