# mmbench_linux.fault — the fault path of the `linux` design.
#
# One context struct (vm_fault_t, mm.pxd), one driver (handle_mm_fault), and
# small phases that return a vm_fault_status; handle_pte_fault only dispatches.
# The cases, drawn in core.pyx's essay:
#   PTE none, private:  do_anonymous_page (read: zero page; write: new frame)
#   PTE RO, private:    do_wp_page -> wp_page_reuse | wp_page_copy
#   PTE none, shared:   do_fault (+ do_fault_around on reads) over the shmem cache
#   PTE RO, shared:     wp_page_shared
# Every phase is a cdef method: a design built on Linux overrides the ones it changes.
# The reverse-map walks (rmap_walk_anon, rmap_walk_file) live here too.

from libc.stdint cimport int64_t, uint64_t

from mmbench.core cimport (MM_OK, C_FAULTS, C_FAULT_ZERO_PAGE, C_FAULT_ZERO_FILL, C_FAULT_COW_COPY,
                           C_FAULT_COW_REUSE, C_FAULT_MINOR, C_FAULT_WP_SHARED, C_PAGES_ZEROED, C_PAGECACHE_ADDS,
                           C_PAGES_COPIED, C_PTE_WRITES, C_TLB_FLUSHES, C_RMAP_VISITS,
                           C_I_MMAP_VISITS)
from mmbench.blocks.frames cimport (frame_t, pfn_t, NO_PFN, ZERO_PFN, FR_ANON_EXCLUSIVE,
                                    FR_PAGECACHE, frame_alloc, frames_free_count)
from mmbench.blocks.pagetable cimport (PT_ENTRIES, PTE_PRESENT, PTE_WRITE, PTE_SPECIAL, mk_pte,
                                       pte_pfn, pt_leaf, pt_get, pt_set)
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
        cdef int st
        vmf.pgoff = linear_page_index(vmf.vma, vmf.address)
        vmf.kind = -1
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
        pfn = frame_alloc(&self.frames, 0)
        self.kmem_alloc(self.kc_page)
        self.ctr[C_PAGES_ZEROED] += 1
        self.folio_add_new_anon_rmap(pfn, vmf.vma, vmf.pgoff)
        self.set_pte_range(vmf, pfn, mk_pte(pfn, PTE_PRESENT | PTE_WRITE))
        vmf.kind = C_FAULT_ZERO_FILL
        return VM_FAULT_DONE

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
        vmf.address = addr

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
            if pte_pfn(pt_get(&vma.vm_mm.pgd, vpn)) == pfn and pt_get(&vma.vm_mm.pgd, vpn) != 0 and n < cap:
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
