# mmbench_linux.fault — the fault path of the `linux` design.
#
# One context struct (vm_fault_t, mm.pxd), one driver (handle_mm_fault), and
# small phases that return a vm_fault_status; handle_pte_fault only dispatches.
# The cases, drawn in core.pyx's essay:
#   PMD none/leaf:      handle_pmd_fault -> do_huge_pmd_anonymous_page | do_huge_pmd_wp_page
#   PTE none, private:  do_anonymous_page (read: zero page; write: alloc_anon_folio's
#                       mTHP order, else a new frame)
#   PTE RO, private:    do_wp_page -> wp_page_reuse | wp_page_copy
#   PTE none, shared:   do_fault (+ do_fault_around on reads) over the shmem cache
#   PTE RO, shared:     wp_page_shared
# Every phase is a cdef method: a design built on Linux overrides the ones it changes.
# The reverse-map walks (rmap_walk_anon, rmap_walk_file) live here too, and so does
# the deferred split shrinker (split_folio needs the rmap to remap zero pages).

from libc.stdint cimport int64_t, uint64_t, uint32_t
from libc.stdlib cimport malloc, free

from mmbench.core cimport (MM_OK, C_FAULTS, C_FAULT_ZERO_PAGE, C_FAULT_ZERO_FILL, C_FAULT_COW_COPY,
                           C_FAULT_COW_REUSE, C_FAULT_MINOR, C_FAULT_WP_SHARED, C_PAGES_ZEROED, C_PAGECACHE_ADDS,
                           C_PAGES_COPIED, C_PTE_WRITES, C_TLB_FLUSHES, C_RMAP_VISITS,
                           C_I_MMAP_VISITS, C_THP_FAULT_ALLOC, C_THP_FAULT_FALLBACK, C_THP_ZERO_PAGE_MAP,
                           C_MTHP_ANON_FAULT_ALLOC, C_MTHP_ANON_FAULT_FALLBACK, C_THP_SPLIT_PAGE,
                           C_MTHP_SPLIT, C_THP_UNDERUSED_SPLIT_PAGE, C_FAULT_AROUND_PAGES)
from mmbench.blocks.frames cimport (frame_t, pfn_t, NO_PFN, ZERO_PFN, FR_ANON_EXCLUSIVE,
                                    FR_PAGECACHE, frame_alloc, frames_free_count, frame_alloc_contig,
                                    frame_free)
from mmbench.blocks.pmdleaf cimport pte_range_none
from mmbench.blocks.pagetable cimport (PT_ENTRIES, PTE_PRESENT, PTE_WRITE, PTE_SPECIAL, mk_pte,
                                       pte_pfn, pt_leaf, pt_find_leaf, pt_get, pt_set, pt_pmd_table, pt_table_alloc,
                                       pt_table_free, pt_deposit, pt_set_pmd, pmd_leaf, PMD_PSE)
from mmbench.blocks.itree cimport itnode_t, itree_first, itree_next
from mmbench.blocks.pagecache cimport mapping_lookup, mapping_add
from mmbench.blocks.xarray cimport xa_find

from mmbench_linux.mm cimport *



cdef class LinuxFault(LinuxMM):
    """The fault path and the reverse-map walks of the linux design."""

    # ================================================================ the fault path
    cdef int handle_mm_fault(self, vm_fault_t* vmf) noexcept nogil:
        """Driver: the caller (the "CPU") found the VMA, checked access and walked the
        page table (vmf.pte_table, vmf.orig_pte); dispatch, then account the fault."""
        cdef int st = VM_FAULT_FALLBACK
        vmf.pgoff = linear_page_index(vmf.vma, vmf.address)
        vmf.kind = -1
        if vmf.pte_table == NULL and vmf.vma.vm_file == NULL:
            st = self.handle_pmd_fault(vmf)
            if st == VM_FAULT_FALLBACK:          # a split may have made the PTE table
                vmf.pte_table = pte_lookup(vmf.mm, vmf.address)
                vmf.orig_pte = vmf.pte_table.e[vmf.address & 511] if vmf.pte_table != NULL else 0
        if st == VM_FAULT_FALLBACK:
            st = self.handle_pte_fault(vmf)
        if st == VM_FAULT_DONE and vmf.kind >= 0:
            self.ctr[C_FAULTS] += 1
            self.ctr[vmf.kind] += 1
        return st

    cdef int handle_pte_fault(self, vm_fault_t* vmf) noexcept nogil:
        """Dispatch only: missing PTE, non-present entry, write to a read-only PTE, or spurious."""
        if vmf.orig_pte == 0:
            if vmf.vma.vm_file == NULL:
                return self.do_anonymous_page(vmf)
            return self.do_fault(vmf)
        if not (vmf.orig_pte & PTE_PRESENT):
            return self.do_swap_page(vmf)
        if (vmf.flags & FAULT_FLAG_WRITE) and not (vmf.orig_pte & PTE_WRITE):
            return self.do_wp_page(vmf)
        vmf.pfn = pte_pfn(vmf.orig_pte)
        return VM_FAULT_DONE

    # ---------------------------------------------------------------- the PMD level (THP)
    cdef int handle_pmd_fault(self, vm_fault_t* vmf) noexcept nogil:
        """The PMD part of __handle_mm_fault for an anonymous private VMA with no PTE
        table at the address: none and THP allowed -> do_huge_pmd_anonymous_page; a
        leaf -> do_huge_pmd_wp_page on a write it does not allow, else spurious.
        VM_FAULT_FALLBACK sends the fault on to the PTE level."""
        cdef uint64_t e = pmd_leaf_at(vmf.mm, vmf.address)
        cdef pt_node_t* pmd_t
        if e == 0:
            if not self.thp_vma_allowable(vmf.vma, vmf.address & ~(<uint64_t>(HPAGE_PMD_NR - 1))):
                return VM_FAULT_FALLBACK
            pmd_t = pt_pmd_table(&vmf.mm.pgd, vmf.address, False, NULL)
            if pmd_t != NULL and pmd_t.e[(vmf.address >> 9) & 511] != 0:
                return VM_FAULT_FALLBACK         # a PTE table is there (pmd not none)
            return self.do_huge_pmd_anonymous_page(vmf)
        vmf.orig_pmd = e
        if (vmf.flags & FAULT_FLAG_WRITE) and not (e & PTE_WRITE):
            return self.do_huge_pmd_wp_page(vmf)
        vmf.pfn = pte_pfn(pmd_subpage_pte(e, vmf.address))
        return VM_FAULT_DONE

    cdef int do_huge_pmd_anonymous_page(self, vm_fault_t* vmf) noexcept nogil:
        """Read: map the huge zero folio.  Write: anon_vma_prepare, a PMD-sized folio
        (falling back to 4 KiB pages when none is free: thp_fault_fallback), 512 pages
        zeroed, the PTE table preallocated and deposited (pte_alloc_one, counted like
        any PTE table), the PMD leaf set.  Frames: 512 contiguous, aligned frames, one
        descriptor each (a folio of 512 pages)."""
        cdef mm_t* mm = vmf.mm
        cdef uint64_t haddr = vmf.address & ~(<uint64_t>(HPAGE_PMD_NR - 1)), k
        cdef int64_t n = 0
        cdef pt_node_t* pmd_t
        cdef pt_node_t* pgtable
        cdef pfn_t head = NO_PFN
        cdef bint write = (vmf.flags & FAULT_FLAG_WRITE) != 0
        if write:
            if vmf.vma.anon_vma == NULL and self.anon_vma_prepare(mm, vmf.vma) != MM_OK:
                return VM_FAULT_OOM
            head = self.folio_alloc_large(HPAGE_PMD_ORDER)
            if head == NO_PFN:
                self.ctr[C_THP_FAULT_FALLBACK] += 1
                self.ctr[C_MTHP_ANON_FAULT_FALLBACK] += 1
                return VM_FAULT_FALLBACK
        pgtable = pt_table_alloc(&mm.pgd)
        pmd_t = pt_pmd_table(&mm.pgd, haddr, True, &n) if pgtable != NULL else NULL
        if pmd_t == NULL:
            if pgtable != NULL:
                pt_table_free(&mm.pgd, pgtable)
            if head != NO_PFN:
                for k in range(HPAGE_PMD_NR):
                    frame_free(&self.frames, head + <pfn_t>k)
                    self.kmem_free(self.kc_page)
            self.pt_sync(mm)
            return VM_FAULT_OOM
        pt_deposit(pmd_t, pgtable)
        mm.nr_huge_pmd += 1
        self.ctr[C_PTE_WRITES] += 1
        if not write:
            pt_set_pmd(pmd_t, haddr, mk_pte(ZERO_PFN, PTE_PRESENT | PTE_SPECIAL | PMD_PSE))
            self.pt_sync(mm)
            self.ctr[C_THP_ZERO_PAGE_MAP] += 1
            vmf.pfn = ZERO_PFN
            vmf.kind = C_FAULT_ZERO_PAGE
            return VM_FAULT_DONE
        self.folio_add_new_anon_rmap_large(head, HPAGE_PMD_ORDER, vmf.vma, haddr)
        self.deferred_split_folio(head, False)   # map_anon_folio_pmd_nopf: queued, not partially mapped
        self.ctr[C_PAGES_ZEROED] += HPAGE_PMD_NR
        pt_set_pmd(pmd_t, haddr, mk_pte(head, PTE_PRESENT | PTE_WRITE | PMD_PSE))
        self.pt_sync(mm)
        self.ctr[C_THP_FAULT_ALLOC] += 1
        self.ctr[C_MTHP_ANON_FAULT_ALLOC] += 1
        vmf.pfn = head + <pfn_t>(vmf.address & (HPAGE_PMD_NR - 1))
        vmf.kind = C_FAULT_ZERO_FILL
        return VM_FAULT_DONE

    cdef int do_huge_pmd_wp_page(self, vm_fault_t* vmf) noexcept nogil:
        """Write to a write-protected PMD leaf: reuse the folio when it is exclusive
        (PageAnonExclusive, or only this mapping holds it: folio_move_anon_rmap), else
        split the PMD and let the PTE level copy the one 4 KiB page (the huge zero
        folio is always split)."""
        cdef uint64_t e = vmf.orig_pmd, haddr = vmf.address & ~(<uint64_t>(HPAGE_PMD_NR - 1)), k
        cdef pfn_t head = pte_pfn(e)
        cdef frame_t* fr = self.frames.f
        cdef pt_node_t* pmd_t
        cdef bint excl
        if not (e & PTE_SPECIAL):
            excl = (fr[head].flags & FR_ANON_EXCLUSIVE) != 0
            if not excl:
                excl = True
                for k in range(HPAGE_PMD_NR):
                    if fr[head + k].refcount != 1:
                        excl = False
                        break
                if excl:
                    for k in range(HPAGE_PMD_NR):
                        fr[head + k].owner = <uint64_t><size_t>vmf.vma.anon_vma
                        fr[head + k].flags |= FR_ANON_EXCLUSIVE
            if excl:
                pmd_t = pt_pmd_table(&vmf.mm.pgd, haddr, False, NULL)
                pmd_t.e[(haddr >> 9) & 511] = e | PTE_WRITE
                self.ctr[C_PTE_WRITES] += 1
                vmf.pfn = head + <pfn_t>(vmf.address & (HPAGE_PMD_NR - 1))
                vmf.kind = C_FAULT_COW_REUSE
                return VM_FAULT_DONE
        self.split_huge_pmd(vmf.mm, haddr)
        return VM_FAULT_FALLBACK

    cdef int pte_alloc(self, vm_fault_t* vmf) noexcept nogil:
        cdef int64_t n = 0
        if vmf.pte_table != NULL:
            return VM_FAULT_DONE
        vmf.pte_table = pt_leaf(&vmf.mm.pgd, vmf.address, True, &n)
        if n:
            self.pt_sync(vmf.mm)
        return VM_FAULT_DONE if vmf.pte_table != NULL else VM_FAULT_OOM

    cdef void set_pte_range(self, vm_fault_t* vmf, pfn_t pfn, uint64_t pte) noexcept nogil:
        pt_set(vmf.pte_table, vmf.address, pte)
        vmf.pfn = pfn
        self.ctr[C_PTE_WRITES] += 1

    cdef int do_anonymous_page(self, vm_fault_t* vmf) noexcept nogil:
        """Read: the shared zero page.  Write: anon_vma_prepare + a new zeroed exclusive frame."""
        cdef pfn_t pfn
        if not (vmf.flags & FAULT_FLAG_WRITE):
            if self.pte_alloc(vmf) != VM_FAULT_DONE:
                return VM_FAULT_OOM
            self.set_pte_range(vmf, ZERO_PFN, mk_pte(ZERO_PFN, PTE_PRESENT | PTE_SPECIAL))
            vmf.kind = C_FAULT_ZERO_PAGE
            return VM_FAULT_DONE
        if frames_free_count(&self.frames, 0) == 0:
            return VM_FAULT_OOM
        if vmf.pte_table == NULL and self.pte_alloc(vmf) != VM_FAULT_DONE:
            return VM_FAULT_OOM
        if vmf.vma.anon_vma == NULL and self.anon_vma_prepare(vmf.mm, vmf.vma) != MM_OK:
            return VM_FAULT_OOM
        if self.mthp_orders and self.alloc_anon_folio(vmf) == VM_FAULT_DONE:
            return VM_FAULT_DONE
        pfn = frame_alloc(&self.frames, 0)
        self.kmem_alloc(self.kc_page)
        self.ctr[C_PAGES_ZEROED] += 1
        self.folio_add_new_anon_rmap(pfn, vmf.vma, vmf.pgoff)
        self.set_pte_range(vmf, pfn, mk_pte(pfn, PTE_PRESENT | PTE_WRITE))
        vmf.kind = C_FAULT_ZERO_FILL
        return VM_FAULT_DONE

    cdef int alloc_anon_folio(self, vm_fault_t* vmf) noexcept nogil:
        """alloc_anon_folio + the large-folio part of do_anonymous_page: of the enabled
        mTHP orders whose aligned range lies inside the VMA (thp_vma_suitable_orders),
        start at the highest whose PTEs are all none, then allocate from there down
        (each failed order counts mthp_anon_fault_fallback).  Success maps every page
        of the folio writable at once (set_ptes): one fault, nr pages zeroed,
        mthp_anon_fault_alloc.  VM_FAULT_FALLBACK: take an order-0 page."""
        cdef vma_t* vma = vmf.vma
        cdef uint32_t orders
        cdef int order
        cdef uint64_t nr, addr, k
        cdef pfn_t head = NO_PFN
        if not self.thp_vma_allowed(vma):
            return VM_FAULT_FALLBACK
        orders = self.mthp_orders
        order = HPAGE_PMD_ORDER - 1
        while order >= MTHP_MIN_ORDER:                  # find the highest usable order
            if orders & (1u << order):
                nr = (<uint64_t>1) << order
                addr = vmf.address & ~(nr - 1)
                if addr >= vma.vm_start and addr + nr <= vma.vm_end and \
                        pte_range_none(vmf.pte_table, addr, nr):
                    break
                orders &= ~(1u << order)
            order -= 1
        while order >= MTHP_MIN_ORDER:                  # allocate it, or the next enabled one below
            if orders & (1u << order):
                head = self.folio_alloc_large(order)
                if head != NO_PFN:
                    break
                self.ctr[C_MTHP_ANON_FAULT_FALLBACK] += 1
            order -= 1
        if head == NO_PFN:
            return VM_FAULT_FALLBACK
        nr = (<uint64_t>1) << order
        addr = vmf.address & ~(nr - 1)
        self.folio_add_new_anon_rmap_large(head, order, vma, addr)
        for k in range(nr):
            pt_set(vmf.pte_table, addr + k, mk_pte(head + <pfn_t>k, PTE_PRESENT | PTE_WRITE))
        self.ctr[C_PTE_WRITES] += nr
        self.ctr[C_PAGES_ZEROED] += nr
        self.ctr[C_MTHP_ANON_FAULT_ALLOC] += 1
        vmf.pfn = head + <pfn_t>(vmf.address - addr)
        vmf.kind = C_FAULT_ZERO_FILL
        return VM_FAULT_DONE

    cdef bint wp_can_reuse_large_anon_folio(self, vm_fault_t* vmf, pfn_t pfn) noexcept nogil:
        """__wp_can_reuse_large_anon_folio: a PTE-mapped page of a large folio is reused
        when the folio is mapped more than once in all and only by this mm (the
        kernel's FOLIO_MM_IDS_SHARED bit clear); with one mapping left the folio is
        copied from, so it can be freed.  The model finds this mm's mappings through
        the faulting VMA (a folio's pages lie at their linear addresses in it)."""
        cdef frame_t* fr = self.frames.f
        cdef pfn_t head = folio_head(fr, pfn)
        cdef int64_t nr = (<int64_t>1) << fr[pfn].aux, k, total = 0, mine = 0
        cdef vma_t* vma = vmf.vma
        cdef uint64_t vpn, pte, pmd = 0, blk = <uint64_t>-1
        cdef pt_node_t* t = NULL
        for k in range(nr):
            if fr[head + k].mapcount == 0:
                continue
            total += fr[head + k].mapcount
            vpn = vma.vm_start + (fr[head + k].index - vma.vm_pgoff)
            if fr[head + k].index >= vma.vm_pgoff and vpn < vma.vm_end:
                if (vpn >> 9) != blk:            # mm_pte_at, walked once per 2 MiB block
                    blk = vpn >> 9
                    pmd = pmd_leaf_at(vmf.mm, vpn)
                    t = pt_find_leaf(&vmf.mm.pgd, vpn) if pmd == 0 else NULL
                if pmd != 0:
                    pte = pmd_subpage_pte(pmd, vpn)
                else:
                    pte = t.e[vpn & 511] if t != NULL else 0
                if (pte & PTE_PRESENT) and not (pte & PTE_SPECIAL) and pte_pfn(pte) == head + <pfn_t>k:
                    mine += 1
        return total > 1 and mine == total

    cdef int do_wp_page(self, vm_fault_t* vmf) noexcept nogil:
        """Write to a read-only PTE of a writable VMA: reuse the frame or copy it."""
        cdef pfn_t pfn = pte_pfn(vmf.orig_pte)
        cdef frame_t* f
        if vmf.vma.vm_flags & VM_SHARED:
            return self.wp_page_shared(vmf)
        if vmf.orig_pte & PTE_SPECIAL:
            return self.wp_page_copy(vmf)
        f = &self.frames.f[pfn]
        if f.flags & FR_ANON_EXCLUSIVE:
            return self.wp_page_reuse(vmf)
        if f.flags & FR_LARGE:                   # PTE-mapped page of a large folio
            if self.wp_can_reuse_large_anon_folio(vmf, pfn):
                f.flags |= FR_ANON_EXCLUSIVE     # SetPageAnonExclusive (this page only)
                return self.wp_page_reuse(vmf)
            return self.wp_page_copy(vmf)
        if f.refcount == 1:                      # wp_can_reuse_anon_folio
            f.owner = <uint64_t><size_t>vmf.vma.anon_vma     # folio_move_anon_rmap
            f.flags |= FR_ANON_EXCLUSIVE
            return self.wp_page_reuse(vmf)
        return self.wp_page_copy(vmf)

    cdef int wp_page_reuse(self, vm_fault_t* vmf) noexcept nogil:
        self.set_pte_range(vmf, pte_pfn(vmf.orig_pte), vmf.orig_pte | PTE_WRITE)
        vmf.kind = C_FAULT_COW_REUSE
        return VM_FAULT_DONE

    cdef int wp_page_copy(self, vm_fault_t* vmf) noexcept nogil:
        """New exclusive frame (zeroed when the old PTE was the zero page, else a copy);
        the old PTE is cleared and flushed before the new one is set, then the old
        frame loses this mapping."""
        cdef pfn_t old = pte_pfn(vmf.orig_pte)
        cdef pfn_t new
        cdef bint from_zero = (vmf.orig_pte & PTE_SPECIAL) != 0
        if frames_free_count(&self.frames, 0) == 0:
            return VM_FAULT_OOM
        if self.anon_vma_prepare(vmf.mm, vmf.vma) != MM_OK:
            return VM_FAULT_OOM
        new = self.page_alloc()
        if from_zero:
            self.ctr[C_PAGES_ZEROED] += 1
            vmf.kind = C_FAULT_ZERO_FILL
        else:
            self.frames.f[new].value = self.frames.f[old].value
            self.ctr[C_PAGES_COPIED] += 1
            vmf.kind = C_FAULT_COW_COPY
        self.ctr[C_TLB_FLUSHES] += 1             # ptep_clear_flush
        self.folio_add_new_anon_rmap(new, vmf.vma, vmf.pgoff)
        self.set_pte_range(vmf, new, mk_pte(new, PTE_PRESENT | PTE_WRITE))
        if not from_zero:                        # folio_remove_rmap_pte + put
            self.frames.f[old].mapcount -= 1
            vmf.mm.rss_anon -= 1
            self.page_put(old)
        return VM_FAULT_DONE

    cdef int wp_page_shared(self, vm_fault_t* vmf) noexcept nogil:
        self.set_pte_range(vmf, pte_pfn(vmf.orig_pte), vmf.orig_pte | PTE_WRITE)
        vmf.kind = C_FAULT_WP_SHARED
        return VM_FAULT_DONE

    cdef int do_swap_page(self, vm_fault_t* vmf) noexcept nogil:
        """A non-present entry that is not none (swap, migration or device-private).  The
        linux design creates none; the HMM layer overrides this (migrate_to_ram)."""
        return VM_FAULT_SIGSEGV

    cdef int do_fault(self, vm_fault_t* vmf) noexcept nogil:
        """Shared (shmem) mapping, PTE missing: fault-around on reads, then shmem_fault."""
        cdef shmem_t* file = vmf.vma.vm_file
        cdef pfn_t pfn
        cdef frame_t* f
        pfn = mapping_lookup(&file.mapping, vmf.pgoff)
        if pfn == NO_PFN and frames_free_count(&self.frames, 0) == 0:
            return VM_FAULT_OOM                  # before fault-around: fail without a change
        if not (vmf.flags & FAULT_FLAG_WRITE) and self.fault_around_pages > 1:
            self.do_fault_around(vmf)
            if vmf.pte_table != NULL and vmf.pte_table.e[vmf.address & 511] != 0:
                vmf.pfn = pte_pfn(vmf.pte_table.e[vmf.address & 511])
                vmf.kind = C_FAULT_MINOR
                return VM_FAULT_DONE
        vmf.kind = C_FAULT_MINOR
        if pfn == NO_PFN:
            if self.pte_alloc(vmf) != VM_FAULT_DONE:
                return VM_FAULT_OOM
            pfn = self.page_alloc()
            if mapping_add(&file.mapping, vmf.pgoff, pfn) != 0:
                self.page_put(pfn)
                return VM_FAULT_OOM
            self.ctr[C_PAGECACHE_ADDS] += 1
            self.xa_sync(file)
            f = &self.frames.f[pfn]
            f.flags = FR_PAGECACHE
            f.owner = <uint64_t><size_t>file
            f.index = vmf.pgoff
            self.ctr[C_PAGES_ZEROED] += 1
            vmf.kind = C_FAULT_ZERO_FILL
        elif self.pte_alloc(vmf) != VM_FAULT_DONE:
            return VM_FAULT_OOM
        map_file_pte(self, vmf, pfn)
        return VM_FAULT_DONE

    cdef void do_fault_around(self, vm_fault_t* vmf) noexcept nogil:
        """Map the cached pages of the aligned window around a read fault (filemap_map_pages)."""
        cdef uint64_t n = <uint64_t>self.fault_around_pages
        cdef uint64_t pte_off = vmf.address & 511
        cdef uint64_t vma_off = vmf.address - vmf.vma.vm_start
        cdef uint64_t lo = pte_off & ~(n - 1)
        cdef uint64_t frm, to, idx = 0, v, addr
        cdef pfn_t pfn
        if pte_off - (vma_off if vma_off < pte_off else pte_off) > lo:
            lo = pte_off - (vma_off if vma_off < pte_off else pte_off)
        frm = lo
        to = frm + n
        if to > PT_ENTRIES:
            to = PT_ENTRIES
        if to > pte_off + vma_pages(vmf.vma) - vma_off:
            to = pte_off + vma_pages(vmf.vma) - vma_off
        if xa_find(&vmf.vma.vm_file.mapping.i_pages, vmf.pgoff + frm - pte_off,
                   vmf.pgoff + to - 1 - pte_off, &idx) == 0:
            return
        if self.pte_alloc(vmf) != VM_FAULT_DONE:
            return
        addr = vmf.address
        for v in range(frm, to):
            vmf.address = addr - pte_off + v
            if vmf.pte_table.e[v] != 0:
                continue
            pfn = mapping_lookup(&vmf.vma.vm_file.mapping, vmf.pgoff + v - pte_off)
            if pfn != NO_PFN:
                map_file_pte(self, vmf, pfn)
                if v != pte_off:
                    self.ctr[C_FAULT_AROUND_PAGES] += 1
        vmf.address = addr

    # ================================================================ splitting large folios
    cdef void split_folio(self, pfn_t head) noexcept nogil:
        """split_folio to order 0 of an anon folio no PMD maps (a partially mapped one
        cannot be: a PMD maps every page; an underused one had its PMDs split).  unmap_folio / remap_page rewrite each mapping PTE (two
        writes) under one batched TLB flush; a mapped page that holds only zeros is
        mapped to the shared zero page instead (RMP_USE_SHARED_ZEROPAGE:
        try_to_map_unused_to_zeropage, through an rmap walk).  Pages left unmapped
        are freed, the others become small folios.  thp_split_page (PMD size),
        mthp_split."""
        cdef int order = self.frames.f[head].aux
        cdef int64_t nr = (<int64_t>1) << order, k, maps = 0
        cdef frame_t* f
        self.folio_unqueue_deferred_split(head)
        for k in range(nr):
            f = &self.frames.f[head + k]
            f.flags &= ~(<uint32_t>FR_LARGE)
            f.aux = 0
            maps += f.mapcount
            if f.refcount > 0 and f.value == 0:
                self.remap_to_zeropage(head + <pfn_t>k)
            if f.refcount == 0:
                frame_free(&self.frames, head + <pfn_t>k)
                self.kmem_free(self.kc_page)
        self.fmeta[head >> MTHP_MIN_ORDER].nr_live = 0
        self.ctr[C_PTE_WRITES] += 2 * maps
        self.ctr[C_TLB_FLUSHES] += 1
        if order == HPAGE_PMD_ORDER:
            self.ctr[C_THP_SPLIT_PAGE] += 1
        self.ctr[C_MTHP_SPLIT] += 1

    cdef void remap_to_zeropage(self, pfn_t pfn) noexcept nogil:
        """try_to_map_unused_to_zeropage for every PTE mapping a zero-filled page: a
        read-only zero-page PTE instead, MM_ANONPAGES - 1, the page's mapping and
        reference dropped (the split frees it when none is left)."""
        cdef frame_t* f = &self.frames.f[pfn]
        cdef int64_t cap = f.mapcount, n, k
        cdef int64_t* buf = <int64_t*>malloc(2 * cap * sizeof(int64_t) + 16)
        cdef mm_t* mm
        cdef pt_node_t* t
        if buf == NULL:
            return                  # no memory to walk: the page stays mapped (still correct)
        n = self.rmap_walk_anon(pfn, buf, cap)
        for k in range(n):
            mm = <mm_t*>self.procs[buf[2 * k]]
            t = pte_lookup(mm, <uint64_t>buf[2 * k + 1])
            t.e[<uint64_t>buf[2 * k + 1] & 511] = mk_pte(ZERO_PFN, PTE_PRESENT | PTE_SPECIAL)
            mm.rss_anon -= 1
            f.mapcount -= 1
            f.refcount -= 1
        free(buf)
        if f.mapcount == 0:
            f.flags &= ~(<uint32_t>FR_ANON_EXCLUSIVE)

    cdef int64_t deferred_split_scan(self) noexcept nogil:
        """The deferred split shrinker over the whole queue: every folio is taken off;
        a partially mapped one is split (its unmapped pages freed); one that is not is
        split only when thp_underused (more than max_ptes_none zero-filled pages:
        never with the default 511), after its PMD mappings are split (unmap_folio's
        TTU_SPLIT_HUGE_PMD); the others leave the queue whole.  Returns the folios
        split."""
        cdef int64_t split = 0
        cdef pfn_t head
        while self.ds_len > 0:
            head = self.ds_queue[self.ds_len - 1]
            if self.frames.f[head].flags & FR_PARTIAL:
                self.split_folio(head)
                split += 1
            elif self.thp_underused(head):
                self.unmap_folio_pmds(head)
                self.split_folio(head)
                self.ctr[C_THP_UNDERUSED_SPLIT_PAGE] += 1
                split += 1
            else:
                self.folio_unqueue_deferred_split(head)
        return split

    cdef bint thp_underused(self, pfn_t head) noexcept nogil:
        """thp_underused: more than max_ptes_none of the folio's pages hold only zeros
        (false at once when max_ptes_none is 511)."""
        cdef int64_t nr = (<int64_t>1) << self.frames.f[head].aux, k, zero = 0, filled = 0
        if self.max_ptes_none == HPAGE_PMD_NR - 1:
            return False
        for k in range(nr):
            if self.frames.f[head + k].value == 0:
                zero += 1
                if zero > self.max_ptes_none:
                    return True
            else:
                filled += 1
                if filled >= HPAGE_PMD_NR - self.max_ptes_none:
                    return False
        return False

    cdef void unmap_folio_pmds(self, pfn_t head) noexcept nogil:
        """The PMD part of unmap_folio: split every PMD leaf mapping the folio (found
        by an rmap walk of its head page)."""
        cdef int64_t cap = self.frames.f[head].mapcount, n, k
        cdef int64_t* buf = <int64_t*>malloc(2 * cap * sizeof(int64_t) + 16)
        cdef mm_t* mm
        if buf == NULL:
            return
        n = self.rmap_walk_anon(head, buf, cap)
        for k in range(n):
            mm = <mm_t*>self.procs[buf[2 * k]]
            if pmd_leaf_at(mm, <uint64_t>buf[2 * k + 1]):
                self.split_huge_pmd(mm, <uint64_t>buf[2 * k + 1])
        free(buf)

    # ================================================================ rmap walks
    cdef int64_t rmap_walk_anon(self, pfn_t pfn, int64_t* out, int64_t cap) noexcept nogil:
        """Visit every AVC of folio->mapping whose range holds folio->index; report the
        (pid, vpn) pairs whose PTE really maps the frame.  Returns the count found."""
        cdef frame_t* f = &self.frames.f[pfn]
        cdef anon_vma_t* av = <anon_vma_t*><size_t>f.owner
        cdef itnode_t* node = itree_first(&av.rb_root, f.index, f.index)
        cdef vma_t* vma
        cdef uint64_t vpn
        cdef int64_t n = 0
        while node != NULL:
            vma = (<avc_t*>node).vma
            self.ctr[C_RMAP_VISITS] += 1
            vpn = vma.vm_start + (f.index - vma.vm_pgoff)
            if pte_pfn(mm_pte_at(vma.vm_mm, vpn)) == pfn and mm_pte_at(vma.vm_mm, vpn) != 0 and n < cap:
                out[2 * n] = vma.vm_mm.pid
                out[2 * n + 1] = <int64_t>vpn
                n += 1
            node = itree_next(node, f.index, f.index)
        return n

    cdef int64_t rmap_walk_file(self, pfn_t pfn, int64_t* out, int64_t cap) noexcept nogil:
        cdef frame_t* f = &self.frames.f[pfn]
        cdef shmem_t* file = <shmem_t*><size_t>f.owner
        cdef itnode_t* node = itree_first(&file.mapping.i_mmap, f.index, f.index)
        cdef vma_t* vma
        cdef uint64_t vpn
        cdef int64_t n = 0
        while node != NULL:
            vma = <vma_t*>node
            self.ctr[C_RMAP_VISITS] += 1
            self.ctr[C_I_MMAP_VISITS] += 1
            vpn = vma.vm_start + (f.index - vma.vm_pgoff)
            if pte_pfn(pt_get(&vma.vm_mm.pgd, vpn)) == pfn and pt_get(&vma.vm_mm.pgd, vpn) != 0 and n < cap:
                out[2 * n] = vma.vm_mm.pid
                out[2 * n + 1] = <int64_t>vpn
                n += 1
            node = itree_next(node, f.index, f.index)
        return n


cdef inline void map_file_pte(LinuxFault m, vm_fault_t* vmf, pfn_t pfn) noexcept nogil:
    """set_pte_range for a page-cache frame: shared writable VMAs map it writable."""
    cdef frame_t* f = &m.frames.f[pfn]
    cdef uint64_t bits = PTE_PRESENT
    if vmf.vma.vm_flags & VM_WRITE:
        bits |= PTE_WRITE
    f.refcount += 1
    f.mapcount += 1
    vmf.mm.rss_shmem += 1
    m.set_pte_range(vmf, pfn, mk_pte(pfn, bits))
