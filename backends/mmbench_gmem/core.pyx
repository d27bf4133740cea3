# mmbench_gmem.core — GMEM: a logical page table beside Linux's physical one.
#
# The design in its own words
# ---------------------------
# The GMEM RFC (Weixi Zhu, 2023) keeps Linux's VMAs and CPU page tables but
# adds, per process, a `vm_object` (after FreeBSD's) whose xarray — the
# *logical page table* — maps every touched virtual page of peer-shared memory
# to a `gm_mapping` telling where that page is right now:
#
#      mm ── vm_object ── xarray vpn → gm_mapping { flag, dev / pfn, mutex }   (48 B each)
#                                       │ NOMAP   nowhere yet: a fault allocates (CPU) or peer_maps (device)
#                                       │ CPU     host frame, mapped by the CPU page table
#                                       │ DEVICE  device frame, mapped by the device's own MMU (peer_map)
#      CPU page table ── PTE ── host frame         (present only while the gm_mapping says CPU)
#      device MMU     ── pmap ── device frame      (present only while the gm_mapping says DEVICE)
#
# A page is in exactly one place (the RFC's COHERENT_EXCLUSIVE mode), so no
# notifier has to keep a device copy coherent with a CPU PTE: moving a page is
# an explicit transition of its gm_mapping under the mapping's mutex.
#
#   device fault   gm_dev_fault: for each page of the 2 MiB-aligned block around
#                  the fault (option granularity_pages; 512 = HPAGE_SIZE as in
#                  the RFC, 1 = 4 KiB): CPU → zap the CPU PTE, copy the frame
#                  over the link, peer_map; NOMAP → peer_map a fresh device page
#                  (no copy); DEVICE on this device → already there.  The whole
#                  block is one DMA batch.
#   CPU fault      do_anonymous_page on a missing PTE looks the gm_mapping up
#                  (creating it NOMAP): DEVICE → gm_host_fault_locked (new host
#                  frame, copy back, peer_unmap, flag CPU); otherwise a zeroed
#                  frame — *also for reads*: the zero page is disabled, because
#                  a device-bound page must own a frame.  Order-0 faults bring
#                  back 4 KiB each (the RFC's THP path would bring 2 MiB).
#   prefetch       hmadvise_willneed(): WILLNEED on the range, then gm_dev_fault
#                  block by block (the model is synchronous, so WILLNEED lasts
#                  only while the block moves).
#   lifetime       gm_mappings are created on first touch and never freed while
#                  the VMA lives (MADV_DONTNEED drops the page, flag NOMAP);
#                  munmap frees them (free_gm_mappings), exit frees the object.
#
# fork and mremap — the RFC does not define them.  What a merged version
# needs, and what this model does:
#   fork   the child must see a copy of every page, but a DEVICE page has no CPU
#          PTE for copy_page_range to share.  So fork first brings every DEVICE
#          page of the parent home (gm_host_fault, counted as pages_to_host),
#          then runs Linux's fork unchanged (COW on CPU PTEs), then gives the
#          child its own vm_object with a CPU gm_mapping per PTE it received.
#          A later device fault of either side copies *its* view to the device
#          (zap drops only that side's reference), which breaks COW by itself.
#   mremap DEVICE pages of the old range come home first, the PTEs move as in
#          Linux, the moved pages get CPU gm_mappings at their new addresses and
#          the old range's gm_mappings are freed with the old VMA.
#   mprotect  Linux's change_protection plus the notifier of the device side
#          drops the device mappings of the range (pmap_protect); the next device
#          access re-peer_maps with the new protection.
# Shared (MAP_SHARED) mappings are not peer-shared in the RFC: they behave as in
# the linux design (remote device mapping kept coherent by the notifier).  With
# option peer_shared="marked", only VMAs mapped by mmap_peer_shared (flag
# VM_PEER_SHARED) are; other private memory is Linux + HMM, device-private
# PTEs included, so both mechanisms can live in one machine.
#
# Oversubscription: a full device evicts its oldest page (FIFO) back to a host
# frame mapped by the CPU PTE, flag CPU.  (The RFC parks evicted pages in
# gm_mapping->page for the next CPU fault to reuse; mapping them at once keeps
# every host frame reachable from a PTE and costs the same copy.)
#
# Structure: vm_object / logical page table; gm_mmu ops (peer_map = device
# page-table entry, peer_unmap); device fault; CPU fault; migration and
# prefetch; Linux paths that zap/unmap/fork/mremap; invariants.

from libc.stdlib cimport calloc, malloc, free
from libc.stdint cimport int64_t, uint64_t, int32_t, uint32_t

from mmbench.core cimport (MM_OK, MM_ESEGV, MM_EPROT, MM_ENOMEM, MM_EINVAL, VPN_BITS,
                           C_FAULT_DEVICE_RETURN, C_FAULT_ZERO_FILL, C_PAGES_ZEROED, C_PTE_WRITES,
                           C_TLB_FLUSHES, C_PTE_ZAPS, C_PAGES_TO_DEVICE, C_PAGES_TO_HOST, C_DEVICE_PTE_WRITES,
                           C_DEVICE_TLB_INVAL, C_GM_MAPPING_ALLOC, C_OBJECTS_ALLOC, C_OBJECTS_FREE,
                           C_XA_NODE_ALLOC, C_XA_NODE_FREE)
from mmbench.blocks.frames cimport (frame_t, pfn_t, NO_PFN, FR_DESIGN1, frame_node, frames_free_count)
from mmbench.blocks.pagetable cimport (pt_node_t, PT_ENTRIES, PTE_PRESENT, PTE_WRITE, PTE_SPECIAL, mk_pte, pte_pfn,
                                       pt_leaf, pt_get, pt_set, pt_next)
from mmbench.blocks.xarray cimport xa_init, xa_destroy, xa_load, xa_store, xa_erase, xa_find
from mmbench.blocks.devmirror cimport (dmirror_t, dmirror_lookup, dmirror_invalidate, dpte_pfn, devmem_has,
                                       DPT_WRITE, pidtab_reserve)
from mmbench_linux.core cimport LinuxMachine
from mmbench_linux.mm cimport mm_t, vma_t, vm_fault_t, VM_WRITE, VM_SHARED, VM_FAULT_DONE, VM_FAULT_OOM
from mmbench_linux.hmm cimport LinuxHMMMachine, dev_mm_t
from mmbench_linux.hmm import HMM_COUNTERS

from mmbench import errors as _errors

cdef enum:
    FR_GM_DEVICE = FR_DESIGN1       # device frame owned by a gm_mapping (owner = vm_object, index = vpn)

cdef uint64_t VPN_END = (<uint64_t>1) << VPN_BITS
cdef uint64_t NO_VPN = <uint64_t>-1

GMEM_COUNTERS = HMM_COUNTERS + ("gm_mapping_alloc",)


cdef inline uint64_t linear_index(vma_t* v, uint64_t vpn) noexcept nogil:
    return v.vm_pgoff + (vpn - v.vm_start)




cdef class GmemMachine(LinuxHMMMachine):
    """GMEM RFC: Linux VMAs + CPU page tables, plus a per-process vm_object whose
    logical page table (xarray of 48-B gm_mappings) says where each page is."""

    name = "gmem"
    description = ("GMEM RFC: Linux VMAs/page tables + per-process vm_object logical page table "
                   "(gm_mapping per page, CPU xor DEVICE), 2 MiB device faults, zero page disabled")
    option_defaults = dict(LinuxHMMMachine.option_defaults, granularity_pages=512, peer_shared="all")
    supports_devices = True
    counter_names = GMEM_COUNTERS

    def __cinit__(self, *args, **kwargs):
        self.objs = NULL
        self.objs_cap = 0

    def __init__(self, **kw):
        super().__init__(**kw)
        g = self.options["granularity_pages"]
        if isinstance(g, bool) or not isinstance(g, int) or not (1 <= g <= 512) or (g & (g - 1)):
            raise _errors.InvalidArgument("granularity_pages must be a power of two in 1..512")
        self.granularity = g
        ps = self.options["peer_shared"]
        if ps not in ("all", "marked"):
            raise _errors.InvalidArgument("peer_shared must be 'all' or 'marked'")
        self.all_peer_shared = ps == "all"
        self.kc_vm_object = self.slab_register("vm_object", 24)
        self.kc_lpt_xarray = self.slab_register("xarray (vm_object)", 16)
        self.kc_gm_mapping = self.slab_register("gm_mapping", 48)
        self.kc_lpt_xa = self.slab_register("xa_node (logical page table)", 576)

    def __dealloc__(self):
        cdef int64_t pid
        if self.procs != NULL:
            for pid in range(1, self.next_pid):
                if self.procs[pid] != NULL:
                    self.exit_mmap(<mm_t*>self.procs[pid])
                    self.procs[pid] = NULL
                    self.hmm_free(pid)
                    self.obj_free(pid)
        free(self.objs)
        self.objs = NULL

    # ================================================================ peer-shared memory
    cdef bint peer_shared(self, vma_t* v) noexcept nogil:
        """MAP_PRIVATE | MAP_PEER_SHARED: every private anonymous VMA (peer_shared="all"),
        or those mapped with mmap_peer_shared (peer_shared="marked")."""
        return v.vm_file == NULL and (self.all_peer_shared or (v.vm_flags & VM_PEER_SHARED) != 0)

    def mmap_peer_shared(self, pid, vpn, npages, writable=True):
        """mmap(MAP_PRIVATE | MAP_PEER_SHARED): anonymous private memory managed by gmem.
        With peer_shared="marked" only such VMAs get gm_mappings; the rest of private
        memory is Linux + HMM (device-private entries)."""
        cdef mm_t* mm
        cdef int64_t i
        cdef uint64_t start, end
        self.mmap(pid, vpn, npages, False, writable)
        if self.all_peer_shared:
            return
        mm = <mm_t*>self.procs[pid]
        start = <uint64_t>vpn
        end = <uint64_t>(vpn + npages)
        i = self.vma_index(mm, start)
        if mm.vmas[i].vm_start < start:            # merged into a left neighbour: cut it out
            self._raise(self.split_vma(mm, i, start))
            i += 1
        if mm.vmas[i].vm_end > end:
            self._raise(self.split_vma(mm, i, end))
        mm.vmas[i].vm_flags |= VM_PEER_SHARED
        self.vma_try_merge_at(mm, i)
        if i > 0:
            self.vma_try_merge_at(mm, i - 1)
        self.mt_sync(mm)

    # ================================================================ vm_object, logical page table
    cdef vm_object_t* obj_of(self, mm_t* mm) noexcept nogil:
        if mm.pid <= 0 or mm.pid >= self.objs_cap:
            return NULL
        return self.objs[mm.pid]

    cdef vm_object_t* obj_get(self, mm_t* mm) noexcept nogil:
        cdef vm_object_t* obj = self.obj_of(mm)
        if obj != NULL or mm.pid <= 0:
            return obj
        if pidtab_reserve(<void***>&self.objs, &self.objs_cap, mm.pid, self.next_pid + 64) != 0:
            return NULL
        obj = <vm_object_t*>calloc(1, sizeof(vm_object_t))
        if obj == NULL:
            return NULL
        xa_init(&obj.logical_page_table)
        obj.mm = mm
        self.objs[mm.pid] = obj
        self.kmem_alloc(self.kc_vm_object)
        self.kmem_alloc(self.kc_lpt_xarray)
        self.ctr[C_OBJECTS_ALLOC] += 1
        return obj

    cdef void obj_free(self, int64_t pid) noexcept nogil:
        """The process is gone: every gm_mapping and the object go (device frames too)."""
        cdef vm_object_t* obj
        cdef gm_mapping_t* gm
        cdef uint64_t idx = 0, start = 0
        if pid <= 0 or pid >= self.objs_cap or self.objs[pid] == NULL:
            return
        obj = self.objs[pid]
        while True:
            gm = <gm_mapping_t*><size_t>xa_find(&obj.logical_page_table, start, NO_VPN, &idx)
            if gm == NULL:
                break
            if gm.flag & GM_PAGE_DEVICE:
                self.device_page_free(gm.pfn)
            free(gm)
            self.kmem_free(self.kc_gm_mapping)
            start = idx + 1
        xa_destroy(&obj.logical_page_table)
        self.lpt_sync(obj)
        free(obj)
        self.objs[pid] = NULL
        self.kmem_free(self.kc_vm_object)
        self.kmem_free(self.kc_lpt_xarray)
        self.ctr[C_OBJECTS_FREE] += 1

    cdef void lpt_sync(self, vm_object_t* obj) noexcept nogil:
        self.kmem_sync_counted(self.kc_lpt_xa, &obj.xa_acct, obj.logical_page_table.nr_nodes,
                               C_XA_NODE_ALLOC, C_XA_NODE_FREE)

    cdef gm_mapping_t* gm_lookup(self, mm_t* mm, uint64_t vpn) noexcept nogil:
        cdef vm_object_t* obj = self.obj_of(mm)
        if obj == NULL:
            return NULL
        return <gm_mapping_t*><size_t>xa_load(&obj.logical_page_table, vpn)

    cdef gm_mapping_t* gm_get(self, mm_t* mm, uint64_t vpn) noexcept nogil:
        """alloc_gm_mapping on first touch: zeroed, NOMAP."""
        cdef gm_mapping_t* gm = self.gm_lookup(mm, vpn)
        cdef vm_object_t* obj
        if gm != NULL:
            return gm
        obj = self.obj_get(mm)
        if obj == NULL:
            return NULL
        gm = <gm_mapping_t*>calloc(1, sizeof(gm_mapping_t))
        if gm == NULL:
            return NULL
        gm.flag = GM_PAGE_NOMAP
        if xa_store(&obj.logical_page_table, vpn, <uint64_t><size_t>gm) != 0:
            free(gm)
            self.lpt_sync(obj)
            return NULL
        obj.nr_pages += 1
        self.kmem_alloc(self.kc_gm_mapping)
        self.ctr[C_GM_MAPPING_ALLOC] += 1
        self.lpt_sync(obj)
        return gm

    cdef void free_gm_mappings(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil:
        """The VMA over [start, end) is gone: its gm_mappings are freed."""
        cdef vm_object_t* obj = self.obj_of(mm)
        cdef gm_mapping_t* gm
        cdef uint64_t idx = 0
        if obj == NULL:
            return
        while start < end:
            gm = <gm_mapping_t*><size_t>xa_find(&obj.logical_page_table, start, end - 1, &idx)
            if gm == NULL:
                break
            self.gm_page_release(mm, idx, gm)
            xa_erase(&obj.logical_page_table, idx)
            free(gm)
            obj.nr_pages -= 1
            self.kmem_free(self.kc_gm_mapping)
            start = idx + 1
        self.lpt_sync(obj)

    cdef void unmap_gm_mappings_range(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil:
        """zap hook: device pages of the range are dropped, every mapping becomes NOMAP
        (the CPU PTEs are being zapped by the caller).  The gm_mappings stay."""
        cdef vm_object_t* obj = self.obj_of(mm)
        cdef gm_mapping_t* gm
        cdef uint64_t idx = 0
        if obj == NULL:
            return
        while start < end:
            gm = <gm_mapping_t*><size_t>xa_find(&obj.logical_page_table, start, end - 1, &idx)
            if gm == NULL:
                break
            self.gm_page_release(mm, idx, gm)
            gm.flag = GM_PAGE_NOMAP
            start = idx + 1

    cdef int gm_cpu_populate(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil:
        """A CPU gm_mapping for every present PTE of peer-shared memory in [start, end)
        (pages that arrived by fork or mremap rather than by a fault).

        The walk is the simulator's, not the design's: it scans each PTE table
        found once (no descent from the top per page) and looks the VMA up once
        per VMA, so what fork pays per page is gmem's own work — allocating the
        gm_mapping and storing it in the logical page table."""
        cdef uint64_t vpn = start, tend
        cdef pt_node_t* t
        cdef vma_t* v = NULL
        cdef gm_mapping_t* gm
        while True:
            t = pt_next(&mm.pgd, vpn, end, &vpn)
            if t == NULL:
                return MM_OK
            tend = (vpn | <uint64_t>(PT_ENTRIES - 1)) + 1      # the rest of this PTE table
            if tend > end:
                tend = end
            while vpn < tend:
                if t.e[vpn & <uint64_t>(PT_ENTRIES - 1)] != 0:
                    if v == NULL or vpn < v.vm_start or vpn >= v.vm_end:
                        v = self.find_vma(mm, vpn)
                    if v != NULL and self.peer_shared(v):
                        gm = self.gm_get(mm, vpn)
                        if gm == NULL:
                            return MM_ENOMEM
                        gm.flag = GM_PAGE_CPU
                vpn += 1

    # ================================================================ gm_mmu: the device side
    cdef void peer_unmap(self, mm_t* mm, int dev, uint64_t vpn) noexcept nogil:
        """mmu->peer_unmap: the device page-table entry goes, with a device TLB invalidation."""
        cdef dev_mm_t* h = self.hmm_of(mm)
        cdef int64_t nodes
        if h == NULL or h.ms.dm[dev] == NULL:
            return
        nodes = h.ms.dm[dev].pt.nr_nodes
        if dmirror_invalidate(h.ms.dm[dev], vpn, vpn + 1):
            self.ctr[C_DEVICE_PTE_WRITES] += 1
            self.ctr[C_DEVICE_TLB_INVAL] += 1
            if h.ms.dm[dev].pt.nr_nodes != nodes:
                self.dpt_sync(h)

    cdef void gm_page_release(self, mm_t* mm, uint64_t vpn, gm_mapping_t* gm) noexcept nogil:
        """Drop a DEVICE page (no copy): peer_unmap and free the device frame."""
        if gm.flag & GM_PAGE_DEVICE:
            self.peer_unmap(mm, gm.dev, vpn)
            self.device_page_free(gm.pfn)
            gm.flag = GM_PAGE_NOMAP
            gm.dev = 0
            gm.pfn = 0

    cdef int evict_device_page(self, pfn_t dpfn) noexcept nogil:
        """Oversubscription: the device's oldest page goes home, mapped by its CPU PTE
        (a device-private page of non-peer-shared memory: as in the linux design)."""
        cdef frame_t* f = &self.frames.f[dpfn]
        cdef vm_object_t* obj
        cdef gm_mapping_t* gm
        cdef vma_t* vma
        if not (f.flags & FR_GM_DEVICE):
            return LinuxHMMMachine.evict_device_page(self, dpfn)
        obj = <vm_object_t*><size_t>f.owner
        gm = <gm_mapping_t*><size_t>xa_load(&obj.logical_page_table, f.index)
        vma = self.find_vma(obj.mm, f.index)
        if self.gm_host_fault_locked(obj.mm, vma, f.index, gm) == NO_PFN:
            return MM_ENOMEM
        self.dma_dir(1, False)
        return MM_OK

    # ================================================================ device fault (to the device)
    cdef int gm_move_in(self, int dev, mm_t* mm, vma_t* vma, uint64_t vpn, gm_mapping_t* gm,
                        int64_t* copies, bint zap_later) noexcept nogil:
        """One page of a device fault, under gm_mapping->lock: a device frame, the data
        (from the CPU frame, another device, or none for NOMAP), peer_map, flag DEVICE."""
        cdef pfn_t dpfn = self.device_page_alloc(dev)
        cdef frame_t* d
        cdef uint64_t pte
        if dpfn == NO_PFN:
            return MM_ENOMEM
        d = &self.frames.f[dpfn]
        if gm.flag & GM_PAGE_DEVICE:                       # another device's copy
            d.value = self.frames.f[gm.pfn].value
            self.gm_page_release(mm, vpn, gm)
            copies[0] += 1
        elif gm.flag & GM_PAGE_CPU:                        # copy; the caller zaps the CPU PTE
            pte = pt_get(&mm.pgd, vpn)
            d.value = self.frames.f[pte_pfn(pte)].value
            if not zap_later:
                LinuxMachine.zap_pte_range(self, mm, vpn, vpn + 1)
            copies[0] += 1
        d.owner = <uint64_t><size_t>self.obj_of(mm)
        d.index = vpn
        d.flags = FR_GM_DEVICE
        gm.flag = GM_PAGE_DEVICE
        gm.dev = dev
        gm.pfn = dpfn
        self.ctr[C_PAGES_TO_DEVICE] += 1
        return self.device_map(mm, dev, vpn, dpfn, (vma.vm_flags & VM_WRITE) != 0)

    cdef int gm_dev_fault_page(self, int dev, mm_t* mm, vma_t* vma, uint64_t vpn, int64_t* copies,
                               bint zap_later) noexcept nogil:
        cdef gm_mapping_t* gm = self.gm_get(mm, vpn)
        cdef dev_mm_t* h
        if gm == NULL:
            return MM_ENOMEM
        if (gm.flag & GM_PAGE_DEVICE) and gm.dev == dev:   # resident: re-peer_map if it was dropped
            h = self.hmm_of(mm)
            if h != NULL and h.ms.dm[dev] != NULL and dmirror_lookup(h.ms.dm[dev], vpn) != 0:
                return MM_OK
            return self.device_map(mm, dev, vpn, gm.pfn, (vma.vm_flags & VM_WRITE) != 0)
        return self.gm_move_in(dev, mm, vma, vpn, gm, copies, zap_later)

    cdef int gm_dev_fault(self, int dev, mm_t* mm, vma_t* vma, uint64_t start, uint64_t end,
                          uint64_t fault_vpn) noexcept nogil:
        """gm_dev_fault over [start, end) of one peer-shared VMA, the faulting page last
        (so eviction inside the block never takes it); one DMA batch.  When the device
        has room for the block (no eviction can map a page of it again), the CPU PTEs
        of the block are zapped in one zap_page_range_single after the copies."""
        cdef uint64_t vpn
        cdef int64_t need = 0, copies = 0, zaps_before = self.ctr[C_PTE_ZAPS]
        cdef gm_mapping_t* gm
        cdef int st = MM_OK
        cdef bint zap_later
        for vpn in range(start, end):
            gm = self.gm_lookup(mm, vpn)
            if gm == NULL or not (gm.flag & GM_PAGE_DEVICE) or gm.dev != dev:
                need += 1
        if need and self.device_reserve(dev, need) != MM_OK:
            return MM_ENOMEM
        zap_later = need <= frames_free_count(&self.frames, dev)
        for vpn in range(start, end):
            if vpn != fault_vpn:
                st = self.gm_dev_fault_page(dev, mm, vma, vpn, &copies, zap_later)
                if st != MM_OK:
                    break
        if st == MM_OK and start <= fault_vpn < end:
            st = self.gm_dev_fault_page(dev, mm, vma, fault_vpn, &copies, zap_later)
        if zap_later and st == MM_OK:
            LinuxMachine.zap_pte_range(self, mm, start, end)   # only the moved CPU pages had PTEs
        elif zap_later:                                        # stopped half-way: the moved ones only
            for vpn in range(start, end):
                gm = self.gm_lookup(mm, vpn)
                if gm != NULL and (gm.flag & GM_PAGE_DEVICE) and pt_get(&mm.pgd, vpn) != 0:
                    LinuxMachine.zap_pte_range(self, mm, vpn, vpn + 1)
        self.dma_dir(copies, True)
        if self.ctr[C_PTE_ZAPS] != zaps_before:         # one flush for the block's zapped PTEs
            self.ctr[C_TLB_FLUSHES] += 1
        return st

    cdef int device_fault(self, int dev, mm_t* mm, vma_t* vma, uint64_t vpn, bint write) noexcept nogil:
        """Peer-shared memory: gm_dev_fault on the granularity-aligned block; shared
        mappings: as in the linux design."""
        cdef uint64_t g = <uint64_t>self.granularity
        cdef uint64_t s = vpn & ~(g - 1), e = s + g
        if not self.peer_shared(vma):
            return LinuxHMMMachine.device_fault(self, dev, mm, vma, vpn, write)
        if s < vma.vm_start:
            s = vma.vm_start
        if e > vma.vm_end:
            e = vma.vm_end
        return self.gm_dev_fault(dev, mm, vma, s, e, vpn)

    # ================================================================ CPU fault (to the host)
    cdef pfn_t gm_host_fault_locked(self, mm_t* mm, vma_t* vma, uint64_t vpn, gm_mapping_t* gm) noexcept nogil:
        """A DEVICE page comes home: new host frame, copy back (peer_unmap with copy),
        rmap, CPU PTE, flag CPU.  NO_PFN when out of host memory."""
        cdef int64_t n = 0
        cdef pt_node_t* t
        cdef pfn_t pfn
        if frames_free_count(&self.frames, 0) == 0:
            return NO_PFN
        t = pt_leaf(&mm.pgd, vpn, True, &n)
        if n:
            self.pt_sync(mm)
        if t == NULL or self.anon_vma_prepare(mm, vma) != MM_OK:
            return NO_PFN
        pfn = self.page_alloc()
        self.frames.f[pfn].value = self.frames.f[gm.pfn].value
        self.folio_add_new_anon_rmap(pfn, vma, linear_index(vma, vpn))
        pt_set(t, vpn, mk_pte(pfn, PTE_PRESENT | (PTE_WRITE if (vma.vm_flags & VM_WRITE) else 0)))
        self.ctr[C_PTE_WRITES] += 1
        self.gm_page_release(mm, vpn, gm)
        gm.flag = GM_PAGE_CPU
        self.ctr[C_PAGES_TO_HOST] += 1
        return pfn

    cdef int do_anonymous_page(self, vm_fault_t* vmf) noexcept nogil:
        """Peer-shared anonymous fault: the gm_mapping decides (see the essay)."""
        cdef gm_mapping_t* gm
        cdef pfn_t pfn
        if not self.peer_shared(vmf.vma):
            return LinuxHMMMachine.do_anonymous_page(self, vmf)
        gm = self.gm_get(vmf.mm, vmf.address)
        if gm == NULL or frames_free_count(&self.frames, 0) == 0:
            return VM_FAULT_OOM
        if gm.flag & GM_PAGE_DEVICE:
            pfn = self.gm_host_fault_locked(vmf.mm, vmf.vma, vmf.address, gm)
            if pfn == NO_PFN:
                return VM_FAULT_OOM
            self.dma_dir(1, False)
            vmf.pfn = pfn
            vmf.kind = C_FAULT_DEVICE_RETURN
            return VM_FAULT_DONE
        if self.pte_alloc(vmf) != VM_FAULT_DONE or self.anon_vma_prepare(vmf.mm, vmf.vma) != MM_OK:
            return VM_FAULT_OOM
        pfn = self.page_alloc()                            # zero page disabled: reads too
        self.ctr[C_PAGES_ZEROED] += 1
        self.folio_add_new_anon_rmap(pfn, vmf.vma, vmf.pgoff)
        self.set_pte_range(vmf, pfn, mk_pte(pfn, PTE_PRESENT | (PTE_WRITE if (vmf.vma.vm_flags & VM_WRITE) else 0)))
        gm.flag = GM_PAGE_CPU
        vmf.kind = C_FAULT_ZERO_FILL
        return VM_FAULT_DONE

    # ================================================================ migration, prefetch
    cdef int64_t gm_count_device(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil:
        cdef vm_object_t* obj = self.obj_of(mm)
        cdef gm_mapping_t* gm
        cdef uint64_t idx = 0
        cdef int64_t n = 0
        if obj == NULL:
            return 0
        while start < end:
            gm = <gm_mapping_t*><size_t>xa_find(&obj.logical_page_table, start, end - 1, &idx)
            if gm == NULL:
                break
            n += (gm.flag & GM_PAGE_DEVICE) != 0
            start = idx + 1
        return n

    cdef bint device_frames_in_use(self) noexcept nogil:
        """Whether any device frame is allocated: every DEVICE gm_mapping owns one
        (check_device_frames), so without any the logical page tables hold none."""
        cdef int node
        for node in range(1, self.frames.nr_nodes):
            if self.frames.node_used[node] != 0:
                return True
        return False

    cdef int gm_range_to_host(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil:
        """Every DEVICE page of [start, end) comes home; one DMA batch per 2 MiB block."""
        cdef vm_object_t* obj = self.obj_of(mm)
        cdef gm_mapping_t* gm
        cdef uint64_t idx = 0, block = NO_VPN
        cdef int64_t batch = 0
        if obj == NULL or not self.device_frames_in_use():
            return MM_OK                # no DEVICE gm_mapping anywhere: nothing to walk for
        if self.gm_count_device(mm, start, end) > frames_free_count(&self.frames, 0):
            return MM_ENOMEM
        while start < end:
            gm = <gm_mapping_t*><size_t>xa_find(&obj.logical_page_table, start, end - 1, &idx)
            if gm == NULL:
                break
            if gm.flag & GM_PAGE_DEVICE:
                if (idx >> 9) != block:
                    self.dma_dir(batch, False)
                    batch = 0
                    block = idx >> 9
                if self.gm_host_fault_locked(mm, self.find_vma(mm, idx), idx, gm) == NO_PFN:
                    self.dma_dir(batch, False)
                    return MM_ENOMEM
                batch += 1
            start = idx + 1
        self.dma_dir(batch, False)
        return MM_OK

    cdef int gm_migrate_range(self, mm_t* mm, uint64_t start, uint64_t end, int dev) noexcept nogil:
        """gm_dev_fault over every granularity block of the peer-shared parts of the range."""
        cdef uint64_t pos = start, e, bs, be
        cdef uint64_t g = <uint64_t>self.granularity
        cdef vma_t* v
        cdef int st
        while pos < end:
            v = self.find_vma(mm, pos)
            e = v.vm_end if v.vm_end < end else end
            bs = pos
            while self.peer_shared(v) and bs < e:
                be = (bs & ~(g - 1)) + g
                if be > e:
                    be = e
                st = self.gm_dev_fault(dev, mm, v, bs, be, NO_VPN)
                if st != MM_OK:
                    return st
                bs = be
            pos = e
        return MM_OK

    cdef int migrate_vma_node(self, mm_t* mm, vma_t* v, uint64_t start, uint64_t end, int node) noexcept nogil:
        """c_migrate per VMA: peer-shared VMAs through the logical page table, the others as in linux."""
        if self.peer_shared(v):
            return self.gm_migrate_range(mm, start, end, node) if node > 0 else self.gm_range_to_host(mm, start, end)
        return LinuxHMMMachine.migrate_vma_node(self, mm, v, start, end, node)

    def hmadvise_willneed(self, pid, vpn, npages, dev):
        """hmadvise(MADV_WILLNEED) toward device `dev`: prefetch the range block by block."""
        cdef mm_t* mm
        cdef uint64_t v
        cdef gm_mapping_t* gm
        dev = self._dev(dev)
        pid = self._pid(pid)
        vpn, npages = self._range(vpn, npages)
        mm = <mm_t*>self.procs[pid]
        if not self.range_mapped(mm, vpn, vpn + npages):
            raise _errors.InvalidArgument("hmadvise over unmapped pages")
        for v in range(<uint64_t>vpn, <uint64_t>(vpn + npages)):
            gm = self.gm_lookup(mm, v)
            if gm != NULL and not (gm.flag & GM_PAGE_DEVICE):
                gm.flag |= GM_PAGE_WILLNEED
        self._raise(self.gm_migrate_range(mm, vpn, vpn + npages, dev))

    # ================================================================ Linux paths
    cdef int64_t zap_pte_range(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil:
        self.unmap_gm_mappings_range(mm, start, end)
        return LinuxHMMMachine.zap_pte_range(self, mm, start, end)

    cdef int do_munmap(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil:
        cdef int st = LinuxHMMMachine.do_munmap(self, mm, start, end)
        if st == MM_OK:
            self.free_gm_mappings(mm, start, end)          # vm_area_free -> free_gm_mappings
        return st

    cdef int c_fork(self, int64_t pid, int64_t* child_out) noexcept nogil:
        """DEVICE pages come home, Linux forks, the child gets CPU gm_mappings."""
        cdef mm_t* oldmm = <mm_t*>self.proc_of(pid)
        cdef int st = self.gm_range_to_host(oldmm, 0, VPN_END)
        if st != MM_OK:
            return st
        st = LinuxHMMMachine.c_fork(self, pid, child_out)
        if st != MM_OK:
            return st
        return self.gm_cpu_populate(<mm_t*>self.proc_of(child_out[0]), 0, VPN_END)

    cdef int c_mremap(self, int64_t pid, int64_t old_vpn, int64_t npages, int64_t new_vpn) noexcept nogil:
        cdef mm_t* mm = <mm_t*>self.proc_of(pid)
        cdef uint64_t old = <uint64_t>old_vpn, new = <uint64_t>new_vpn, n = <uint64_t>npages
        cdef int64_t i
        cdef int st
        if new < old + n and old < new + n:
            return MM_EINVAL
        if not self.range_mapped(mm, old, old + n):
            return MM_ESEGV
        i = self.vma_index(mm, new)
        if i < mm.nr_vmas and mm.vmas[i].vm_start < new + n:
            return MM_EINVAL
        st = self.gm_range_to_host(mm, old, old + n)
        if st != MM_OK:
            return st
        st = LinuxHMMMachine.c_mremap(self, pid, old_vpn, npages, new_vpn)
        if st != MM_OK:
            return st
        return self.gm_cpu_populate(mm, new, new + n)

    cdef int c_exit(self, int64_t pid) noexcept nogil:
        cdef int st = LinuxHMMMachine.c_exit(self, pid)
        self.obj_free(pid)
        return st

    # ================================================================ invariants
    cdef int check_devices(self) noexcept nogil:
        """Logical page tables vs CPU page tables, device frames vs their owners,
        accounting, device page tables."""
        cdef int64_t pid, ndev = 0, gms = 0, nobj = 0, xa = 0
        cdef vm_object_t* obj
        for pid in range(1, self.objs_cap):
            obj = self.objs[pid]
            if obj == NULL:
                continue
            if self.check_gmem(pid, &ndev) != MM_OK:
                return MM_EINVAL
            nobj += 1
            gms += obj.nr_pages
            xa += obj.xa_acct
        if self.check_device_frames(ndev) != MM_OK:
            return MM_EINVAL
        if gms != self.caches[self.kc_gm_mapping].active or nobj != self.caches[self.kc_vm_object].active \
                or xa != self.caches[self.kc_lpt_xa].active:
            return self.check_fail("gm_mapping / vm_object / xa_node caches != logical page tables")
        for pid in range(1, self.hside_cap):
            if self.hside[pid] != NULL and self.check_mirrors(pid) != MM_OK:
                return MM_EINVAL
        return MM_OK

    cdef int check_device_frames(self, int64_t ngm) noexcept nogil:
        """Every device frame in use is owned by exactly one DEVICE gm_mapping (`ngm` of
        them exist), or is a device-private page named by as many PTEs as it has
        references (non-peer-shared memory, as in linux); all are on the FIFO."""
        cdef int64_t pfn, used = 0, owned = 0
        cdef int d
        cdef int32_t m
        cdef frame_t* f
        cdef gm_mapping_t* gm
        for d in range(1, self.ndevices + 1):
            for pfn in range(self.frames.node_base[d], self.frames.node_base[d] + self.frames.node_bump[d]):
                f = &self.frames.f[pfn]
                m = self.chk_devmaps[pfn - self.frames.node_base[1]]
                if f.refcount <= 0:
                    if m != 0 or devmem_has(&self.devmem[d], <pfn_t>pfn):
                        return self.check_fail("free device frame mapped or on the device FIFO")
                    continue
                used += 1
                if not devmem_has(&self.devmem[d], <pfn_t>pfn):
                    return self.check_fail("device frame in use but not on the FIFO")
                if not (f.flags & FR_GM_DEVICE):
                    if f.mapcount != m or f.refcount != m or m == 0:
                        return self.check_fail("device-private frame: mapcount/refcount != its PTEs")
                    continue
                owned += 1
                gm = <gm_mapping_t*><size_t>xa_load(&(<vm_object_t*><size_t>f.owner).logical_page_table, f.index)
                if m != 0 or f.refcount != 1 or f.mapcount != 0 or gm == NULL or gm.pfn != <pfn_t>pfn:
                    return self.check_fail("device frame not owned by exactly one DEVICE gm_mapping")
            if self.frames.node_used[d] != self.devmem[d].nr:
                return self.check_fail("device frames in use != FIFO length")
        if owned != ngm or used != self.caches[self.kc_devpage].active:
            return self.check_fail("gm device frames != DEVICE gm_mappings, or frames != device page cache")
        return MM_OK

    cdef int check_gmem(self, int64_t pid, int64_t* ndev) noexcept nogil:
        cdef vm_object_t* obj = self.objs[pid]
        cdef mm_t* mm = <mm_t*>self.proc_of(pid)
        cdef gm_mapping_t* gm
        cdef uint64_t idx = 0, start = 0, pte, t
        cdef vma_t* v
        cdef int64_t n = 0
        cdef pt_node_t* tbl
        if mm == NULL or obj.mm != mm:
            return self.check_fail("vm_object of a dead process")
        if obj.xa_acct != obj.logical_page_table.nr_nodes or obj.nr_pages != obj.logical_page_table.nr_entries:
            return self.check_fail("vm_object nr_pages / xa_node accounting != its xarray")
        while True:
            gm = <gm_mapping_t*><size_t>xa_find(&obj.logical_page_table, start, NO_VPN, &idx)
            if gm == NULL:
                break
            n += 1
            t = gm.flag & GM_PAGE_TYPE_MASK
            v = self.find_vma(mm, idx)
            pte = pt_get(&mm.pgd, idx)
            if v == NULL or not self.peer_shared(v):
                return self.check_fail("gm_mapping outside every peer-shared VMA (not freed with its VMA)")
            if t != GM_PAGE_CPU and t != GM_PAGE_DEVICE and t != GM_PAGE_NOMAP:
                return self.check_fail("gm_mapping with no single type flag")
            if (t == GM_PAGE_CPU) != (pte != 0):
                return self.check_fail("CPU gm_mapping without a PTE, or a PTE on a DEVICE/NOMAP page")
            if t == GM_PAGE_DEVICE:
                ndev[0] += 1
                if frame_node(&self.frames, gm.pfn) != gm.dev or self.frames.f[gm.pfn].index != idx \
                        or self.frames.f[gm.pfn].owner != <uint64_t><size_t>obj:
                    return self.check_fail("DEVICE gm_mapping names a frame of another device or page")
            start = idx + 1
        start = 0
        while True:                                        # every resident CPU page has its gm_mapping
            tbl = pt_next(&mm.pgd, start, VPN_END, &start)
            if tbl == NULL:
                break
            v = self.find_vma(mm, start)
            if self.peer_shared(v):
                gm = <gm_mapping_t*><size_t>xa_load(&obj.logical_page_table, start)
                if gm == NULL or gm.flag & GM_PAGE_TYPE_MASK != GM_PAGE_CPU:
                    return self.check_fail("present PTE of peer-shared memory without a CPU gm_mapping")
                if tbl.e[start & 511] & PTE_SPECIAL:
                    return self.check_fail("zero page mapped although gmem disables it")
            start += 1
        return MM_OK

    cdef int check_dpte(self, mm_t* mm, int dev, uint64_t vpn, uint64_t e) noexcept nogil:
        """A DEVICE page is mapped only by its device and at its frame; anything
        else (shared mappings) must match the CPU PTE as in linux."""
        cdef vma_t* v = self.find_vma(mm, vpn)
        cdef gm_mapping_t* gm
        if v == NULL:
            return self.check_fail("device page-table entry outside every VMA")
        if not self.peer_shared(v):
            return LinuxHMMMachine.check_dpte(self, mm, dev, vpn, e)
        gm = self.gm_lookup(mm, vpn)
        if gm == NULL or not (gm.flag & GM_PAGE_DEVICE) or gm.dev != dev or gm.pfn != dpte_pfn(e):
            return self.check_fail("peer mapping of a page that is not DEVICE on that device")
        if (e & DPT_WRITE) and not (v.vm_flags & VM_WRITE):
            return self.check_fail("writable peer mapping in a read-only VMA")
        return MM_OK

    # ---------------------------------------------------------- Python extras
    def gm_state(self, pid, vpn):
        """The gm_mapping of (pid, vpn): None (never touched) or (flags set, device)."""
        cdef int64_t p = self._pid(pid)
        cdef gm_mapping_t* gm
        v, _ = self._range(vpn)
        gm = self.gm_lookup(<mm_t*>self.procs[p], <uint64_t>v)
        if gm == NULL:
            return None
        names = [n for b, n in ((GM_PAGE_CPU, "CPU"), (GM_PAGE_DEVICE, "DEVICE"), (GM_PAGE_NOMAP, "NOMAP"),
                                (GM_PAGE_WILLNEED, "WILLNEED")) if gm.flag & b]
        return ("|".join(names), int(gm.dev))

    def page_node(self, pid, vpn):
        """Where the page at (pid, vpn) lives: 0 host, 1.. a device, None if not resident."""
        cdef int64_t p = self._pid(pid)
        cdef gm_mapping_t* gm
        cdef uint64_t pte
        v, _ = self._range(vpn)
        gm = self.gm_lookup(<mm_t*>self.procs[p], <uint64_t>v)
        if gm != NULL and gm.flag & GM_PAGE_DEVICE:
            return int(gm.dev)
        pte = pt_get(&(<mm_t*>self.procs[p]).pgd, <uint64_t>v)
        if pte == 0 or (pte & PTE_SPECIAL):
            return None
        return int(frame_node(&self.frames, pte_pfn(pte)))
