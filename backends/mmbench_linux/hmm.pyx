# mmbench_linux.hmm — Linux + HMM: device-private memory behind the CPU page table.
#
# The design in its own words
# ---------------------------
# Linux keeps the location of an anonymous page in the CPU page table, even
# when the page lives in accelerator memory.  migrate_vma_setup() collects the
# pages of a range *within one VMA*, replaces their PTEs with migration entries
# (telling every registered mmu notifier first) and hands them to the driver;
# the driver allocates device pages and copies the data over its link;
# migrate_vma_pages()/finalize() install *device-private* entries: non-present
# PTEs naming the device frame, with a write bit.  The device frame keeps the
# folio's anon_vma and index, so the reverse map still finds every mapper.
# A CPU access to such an entry faults; do_swap_page() sees the device-private
# entry and calls the device's migrate_to_ram(), which copies the page back,
# puts a normal PTE in every mapper, and the access is retried (possibly
# taking the COW write fault afterwards).
#
#      CPU page table                 device memory               device page table (dmirror)
#      vpn ── devpriv(dpfn, W) ─────► dpfn  mapping=anon_vma ◄── xarray vpn → (dpfn, W)
#                                            index=pgoff
#      every CPU PTE change ── mmu_notifier_invalidate_range ──► xa_erase(range) + device TLB flush
#
# A device access goes through the device's own page table first; a miss is a
# device fault.  Option `device_fault` says how a driver resolves it:
#   "migrate" (default): migrate on fault by range, as GPU drivers with shared
#       virtual memory do (amdgpu's SVM: svm_migrate_to_vram over the prange
#       granularity, 2 MiB by default).  The access the device needs is made
#       possible on the CPU side first (a write breaks COW), then the aligned
#       block of `device_fault_pages` pages around the fault (default 512 =
#       2 MiB, clipped to the VMA) goes through migrate_vma_setup/pages/
#       finalize to the faulting device.  A CPU fault on a device-private entry
#       brings the same aligned block home (svm_migrate_to_ram).  With
#       device_fault_pages=1 both directions move one page per fault: a driver
#       migrating page by page, like lib/test_hmm.c's CPU fault handler
#       (dmirror_devmem_fault migrates the one faulting page).
#   "remote": lib/test_hmm.c's dmirror.  A device fault runs hmm_range_fault
#       (dmirror_range_fault) over the aligned 32-page window around the fault
#       (dmirror faults its ranges 32 pages per call): every page of the window
#       is faulted in on the CPU side with the access requested
#       (HMM_PFN_REQ_FAULT, | REQ_WRITE for a store), then every page is mapped
#       in the device page table (dmirror_do_fault) - host pages are used
#       remotely over the link, never migrated.  Pages move to the device only
#       on an explicit migrate (dmirror_migrate_to_device); a CPU fault on one
#       brings that one page home (dmirror_devmem_fault).
# Pages that cannot be migrated — shmem pages of MAP_SHARED mappings
# (migrate_vma only takes anonymous memory) — are mapped remotely in either
# mode.  An anonymous page shared with fork children migrates for all of them
# (try_to_migrate walks the rmap; every mapper gets a device-private entry).
#
# Oversubscription: a device with no free frame evicts its oldest page (FIFO,
# mmbench.blocks.devmirror) through migrate_to_ram — the path a driver's
# eviction (migrate_device_range) takes — counting device_evictions.
#
# Structure: side state (per-pid notifier list) and accounting; device memory;
# migration to the device (collect → notify → copy → device-private PTEs);
# migration to RAM (rmap walk over all mappers); CPU fault (do_swap_page);
# device access; hooks on the Linux paths that change PTEs (zap, COW, fork,
# mprotect, mremap) to fire the notifier; invariants.
#
# Simplified relative to the kernel, and why
# * No migration entries are kept between phases: the whole migration runs
#   under the model's one lock, so they are counted (a PTE write) but never
#   observed.  A failed migration (out of device and host memory) stops at a
#   page boundary: every page is either fully moved or untouched, so values
#   never change, but the pages already moved stay moved.
# * A device access that runs short of memory changes nothing (the contract):
#   the page asked for is faulted and mapped first, the rest of a "remote"
#   window only while memory lasts (hmm_range_fault would fail the whole
#   range after faulting part of it); a block that cannot migrate to the
#   device is used where it is, as amdgpu's svm_range_restore_pages falls back
#   to system memory when svm_migrate_to_vram fails.
# * Device-to-device migration goes through host memory (migrate_to_ram, then
#   migrate to the new device); the kernel's SELECT_DEVICE_PRIVATE path would
#   copy device to device.
# * Migrating back to host memory notifies the owning device like any other
#   mirror (the kernel skips the owner's callback and the driver erases its
#   own entries); the same entries disappear, counted once.

from libc.stdlib cimport calloc, malloc, free
from libc.string cimport memset
from libc.stdint cimport int64_t, uint64_t, int32_t, uint32_t

from mmbench.core cimport (MM_OK, MM_ESEGV, MM_EPROT, MM_ENOMEM, MM_EINVAL, C_FAULTS,
                           C_FAULT_DEVICE_RETURN, C_PTE_WRITES, C_PTE_ZAPS, C_TLB_FLUSHES,
                           C_PAGES_TO_DEVICE, C_PAGES_TO_HOST, C_DEVICE_FAULTS, C_DEVICE_PTE_WRITES,
                           C_DEVICE_EVICTIONS)
from mmbench.blocks.frames cimport (frame_t, pfn_t, NO_PFN, ZERO_PFN, MAX_NODES, FR_ANON_EXCLUSIVE,
                                    FR_DEVICE_PRIVATE, FR_DESIGN0, frame_node, frames_free_count,
                                    frame_value)
from mmbench.blocks.pagetable cimport (pt_node_t, PTE_PRESENT, PTE_WRITE, PTE_SPECIAL, PTE_DEVPRIV,
                                       mk_pte, pte_pfn, pt_leaf, pt_find_leaf, pt_get, pt_set, pt_next)
from mmbench.blocks.xarray cimport xa_find
from mmbench.blocks.devmirror cimport (dmirror_t, dev_mm_t, notify_result_t, DPT_WRITE, dpte_pfn,
                                       mirror_get, mirrors_nodes, dmirror_map, dmirror_lookup,
                                       dev_mm_of, dev_mm_get, dev_mm_detach, dev_mm_notify,
                                       devmems_clear, devmems_init, devmems_destroy,
                                       devmem_frame_alloc, devmem_frame_free, devmem_oldest, devmem_has)
from mmbench.blocks.devside cimport (side_register, notify_count, side_of, side_get, side_free,
                                     side_sync, side_destroy, side_dma, side_notify, side_map,
                                     side_transfers)
from mmbench_linux.core cimport LinuxMachine
from mmbench_linux.mm cimport (mm_t, vma_t, avc_t, vm_fault_t, VM_WRITE, VM_SHARED, FAULT_FLAG_WRITE,
                               VM_FAULT_DONE, VM_FAULT_OOM, FR_ANON)
from mmbench_linux.core import LINUX_COUNTERS

from mmbench import errors as _errors
from mmbench.devices import device_fault_pages_option

cdef enum:
    RMAP_STACK = 32                 # mappers handled without a malloc
    HMM_RANGE_PAGES = 32            # dmirror_fault: pages per hmm_range_fault call (pfns[32])

HMM_COUNTERS = LINUX_COUNTERS + (
    "fault_device_return", "pages_to_device", "pages_to_host", "dma_bytes", "dma_transfers",
    "notifier_calls", "notifier_invalidated", "device_faults", "device_pte_writes",
    "device_tlb_invalidations", "device_evictions",
)


cdef inline uint64_t linear_index(vma_t* v, uint64_t vpn) noexcept nogil:
    return v.vm_pgoff + (vpn - v.vm_start)


cdef inline bint migratable(frame_t* f, uint64_t pte) noexcept nogil:
    """migrate_vma_collect: a hole or the zero page (a new device page), or an
    anonymous host page with no reference besides its mappings (the pin check
    of migrate_device_unmap); pages of other processes' mappings move along."""
    if pte == 0 or (pte & PTE_SPECIAL):
        return True
    if not (pte & PTE_PRESENT):
        return False                # already device-private
    return (f.flags & FR_ANON) != 0 and f.refcount == f.mapcount


cdef class LinuxHMMMachine(LinuxMachine):
    """Linux with accelerators: HMM device-private migration, dmirror device page
    tables kept coherent by mmu interval notifiers."""

    name = "linux"
    description = ("Linux: anon_vma + anon_vma_chain reverse map, 4-level page tables, zero page, "
                   "COW; devices through HMM (device-private PTEs, migrate_to_ram, notifiers)")
    option_defaults = dict(LinuxMachine.option_defaults, device_fault="migrate", device_fault_pages=512)
    design_notes = ("linux: a device fault migrates the aligned 2 MiB block around it, and a CPU fault "
             "on device memory brings that block home, as GPU drivers with shared virtual memory "
             "do (amdgpu's SVM granularity); device_fault_pages=1 moves one page per fault; "
             "device_fault='remote' is lib/test_hmm.c's dmirror: host pages mapped remotely, 32 per "
             "hmm_range_fault, pages move only on an explicit migrate.",)
    supports_devices = True
    counter_names = HMM_COUNTERS

    def __cinit__(self, *args, **kwargs):
        memset(&self.ds, 0, sizeof(self.ds))
        self.chk_devmaps = NULL
        devmems_clear(self.devmem)

    def __init__(self, **kw):
        super().__init__(**kw)
        mode = self.options["device_fault"]
        if mode not in ("migrate", "remote"):
            raise _errors.InvalidArgument("device_fault must be 'migrate' or 'remote'")
        self.device_fault_mode = 0 if mode == "migrate" else 1
        self.device_fault_pages = device_fault_pages_option(self.options)
        # struct page of device memory in use (the ZONE_DEVICE memmap exists for all
        # device memory; the model counts the pages holding data, 64 B each)
        self.kc_devpage = self.slab_register("page (device)", 64)
        # struct dmirror of lib/test_hmm.c and its page table's xa_nodes (devside.pxd)
        side_register(self, &self.ds, 576)
        if devmems_init(self.devmem, &self.frames, self.ndevices) != 0:
            raise MemoryError()

    def __dealloc__(self):
        cdef int64_t pid
        if self.procs != NULL:
            for pid in range(1, self.next_pid):
                if self.procs[pid] != NULL:
                    self.exit_mmap(<mm_t*>self.procs[pid])
                    self.procs[pid] = NULL
                    side_free(self, &self.ds, pid)
        side_destroy(&self.ds)
        devmems_destroy(self.devmem)

    # ================================================================ side state, accounting
    # ================================================================ notifier, device page tables
    cdef void mmu_notify(self, mm_t* mm, uint64_t start, uint64_t end, int owner) noexcept nogil:
        """mmu_notifier_invalidate_range_start over [start, end) of mm."""
        side_notify(self, &self.ds, mm.pid, start, end, owner)

    cdef int device_map(self, mm_t* mm, int dev, uint64_t vpn, pfn_t pfn, bint write) noexcept nogil:
        """The driver writes one entry of its page table (pmap_enter / dmirror_do_fault)."""
        return side_map(self, &self.ds, mm.pid, dev, vpn, pfn, write)

    # ================================================================ device memory
    cdef bint is_device_pfn(self, pfn_t pfn) noexcept nogil:
        return self.ndevices > 0 and pfn != ZERO_PFN and pfn != NO_PFN \
            and <int64_t>pfn >= self.frames.node_base[1]

    cdef int device_reserve(self, int dev, int64_t n) noexcept nogil:
        """Can `n` device frames be had, evicting the oldest pages to host if needed?"""
        cdef int64_t need = n - frames_free_count(&self.frames, dev)
        if need > 0 and need > frames_free_count(&self.frames, 0):
            return MM_ENOMEM
        return MM_OK

    cdef pfn_t device_page_alloc(self, int dev) noexcept nogil:
        """A frame of device `dev`; a full device first evicts its oldest page."""
        cdef pfn_t pfn, victim
        if frames_free_count(&self.frames, dev) == 0:
            victim = devmem_oldest(&self.devmem[dev])
            if victim == NO_PFN or self.evict_device_page(victim) != MM_OK:
                return NO_PFN
        pfn = devmem_frame_alloc(self.devmem, &self.frames, dev)
        if pfn != NO_PFN:
            self.kmem_alloc(self.kc_devpage)
        return pfn

    cdef void device_page_free(self, pfn_t pfn) noexcept nogil:
        devmem_frame_free(self.devmem, &self.frames, pfn)
        self.kmem_free(self.kc_devpage)

    cdef int evict_device_page(self, pfn_t pfn) noexcept nogil:
        """Driver eviction (migrate_device_range): the page goes home to every mapper
        (counted in device_evictions, one per device frame reclaimed)."""
        cdef int st = self.migrate_to_ram(pfn, NULL, 0)
        if st == MM_OK:
            side_dma(self, &self.ds, 1, False)
            self.ctr[C_DEVICE_EVICTIONS] += 1
        return st

    def dma_transfers_each_way(self):
        """DMA transfers issued so far: {"to_device": n, "to_host": n} (exact)."""
        with self.held():
            return self._dma_transfers_each_way()

    def _dma_transfers_each_way(self):
        return side_transfers(&self.ds)

    cdef void page_put(self, pfn_t pfn) noexcept nogil:
        cdef frame_t* f
        if self.is_device_pfn(pfn):
            f = &self.frames.f[pfn]
            f.refcount -= 1
            if f.refcount == 0:
                self.device_page_free(pfn)
            return
        LinuxMachine.page_put(self, pfn)

    # ================================================================ migration to the device
    cdef int migrate_vma_to_device(self, mm_t* mm, vma_t* vma, uint64_t start, uint64_t end, int dev) noexcept nogil:
        """migrate_vma_setup/pages/finalize over [start, end) of one VMA, one PTE table
        (PTRS_PER_PTE pages, dmirror's chunk) at a time."""
        cdef uint64_t cs = start, ce
        cdef int st
        if vma.vm_file != NULL:
            return MM_OK                  # shmem pages are never device-private
        while cs < end:
            ce = (cs | 511) + 1
            if ce > end:
                ce = end
            st = self.migrate_chunk_to_device(mm, vma, cs, ce, dev)
            if st != MM_OK:
                return st
            cs = ce
        return MM_OK

    cdef int migrate_chunk_to_device(self, mm_t* mm, vma_t* vma, uint64_t cs, uint64_t ce, int dev) noexcept nogil:
        """Collect, notify, then per page: device frame, copy, device-private PTE, map."""
        cdef pt_node_t* t = pt_find_leaf(&mm.pgd, cs)
        cdef uint64_t vpn, pte
        cdef int64_t n = 0, holes = 0, copies = 0, zaps = 0, nalloc = 0, unmapped = 0
        cdef frame_t* fr = self.frames.f
        for vpn in range(cs, ce):
            pte = t.e[vpn & 511] if t != NULL else 0
            if migratable(&fr[pte_pfn(pte)] if (pte & PTE_PRESENT) and not (pte & PTE_SPECIAL) else NULL, pte):
                n += 1
                if not (pte & PTE_PRESENT) or (pte & PTE_SPECIAL):
                    holes += 1
        if n == 0:
            return MM_OK
        if self.device_reserve(dev, n) != MM_OK:
            return MM_ENOMEM
        if holes:
            if self.anon_vma_prepare(mm, vma) != MM_OK:
                return MM_ENOMEM
            t = pt_leaf(&mm.pgd, cs, True, &nalloc)
            if nalloc:
                self.pt_sync(mm)
            if t == NULL:
                return MM_ENOMEM
        self.mmu_notify(mm, cs, ce, dev)              # MMU_NOTIFY_MIGRATE, owner = dev
        for vpn in range(cs, ce):
            pte = t.e[vpn & 511]
            if not migratable(&fr[pte_pfn(pte)] if (pte & PTE_PRESENT) and not (pte & PTE_SPECIAL) else NULL, pte):
                continue
            if self.migrate_one_to_device(mm, vma, t, vpn, dev, &copies, &unmapped) != MM_OK:
                self.migrate_collect_flush(unmapped)
                side_dma(self, &self.ds, copies, True)
                return MM_ENOMEM
        self.migrate_collect_flush(unmapped)
        side_dma(self, &self.ds, copies, True)
        return MM_OK

    cdef void migrate_collect_flush(self, int64_t unmapped) noexcept nogil:
        """migrate_vma_collect_pmd's closing flush_tlb_range, when it unmapped a present PTE."""
        if unmapped:
            self.ctr[C_TLB_FLUSHES] += 1

    cdef int migrate_one_to_device(self, mm_t* mm, vma_t* vma, pt_node_t* t, uint64_t vpn, int dev,
                                   int64_t* copies, int64_t* unmapped) noexcept nogil:
        """One page: collect (an AnonExclusive PTE is cleared with ptep_clear_flush,
        a shared one with ptep_get_and_clear, the other mappers by try_to_migrate),
        copy, device-private PTE, device page-table entry.  A hole needs no copy; the
        zero page is replaced by migrate_vma_insert_page's ptep_clear_flush."""
        cdef uint64_t pte
        cdef pfn_t dpfn = self.device_page_alloc(dev), hpfn
        cdef frame_t* d
        cdef frame_t* h
        cdef uint64_t wbit
        if dpfn == NO_PFN:
            return MM_ENOMEM
        pte = t.e[vpn & 511]                          # eviction may have run: read it now
        d = &self.frames.f[dpfn]
        if pte == 0 or (pte & PTE_SPECIAL):           # migrate_vma_insert_page
            self.folio_add_new_anon_rmap(dpfn, vma, linear_index(vma, vpn))
            wbit = PTE_WRITE if (vma.vm_flags & VM_WRITE) else 0
            if pte != 0:                              # the zero page: ptep_clear_flush
                self.ctr[C_PTE_ZAPS] += 1
                self.ctr[C_TLB_FLUSHES] += 1
            self.ctr[C_PTE_WRITES] += 1
        else:                                         # copy, then the host folio goes
            hpfn = pte_pfn(pte)
            h = &self.frames.f[hpfn]
            d.value = h.value
            d.owner = h.owner
            d.index = h.index
            d.flags = h.flags
            d.mapcount = h.mapcount
            d.refcount = h.refcount
            wbit = pte & PTE_WRITE
            if h.flags & FR_ANON_EXCLUSIVE:           # ptep_clear_flush
                self.ctr[C_TLB_FLUSHES] += 1
            if h.mapcount > 1 and self.rmap_replace(hpfn, dpfn, PTE_DEVPRIV, mm, vpn) < 0:
                d.mapcount = 0                        # try_to_migrate could not run: undo
                d.refcount = 1
                self.page_put(dpfn)
                return MM_ENOMEM
            h.mapcount = 0
            h.refcount = 1
            LinuxMachine.page_put(self, hpfn)
            copies[0] += 1
            unmapped[0] += 1
            self.ctr[C_PTE_ZAPS] += 1
            self.ctr[C_PTE_WRITES] += 2               # migration entry, then device-private entry
        d.flags |= FR_DEVICE_PRIVATE
        pt_set(t, vpn, mk_pte(dpfn, PTE_DEVPRIV | wbit))
        self.ctr[C_PAGES_TO_DEVICE] += 1
        return self.device_map(mm, dev, vpn, dpfn, wbit != 0)   # dmirror_migrate_finalize_and_map

    # ================================================================ migration to RAM
    cdef int64_t rmap_replace(self, pfn_t old, pfn_t new, uint64_t kind, mm_t* mm, uint64_t vpn) noexcept nogil:
        """try_to_migrate + remove_migration_ptes: every PTE naming `old` (found by
        rmap_walk_anon) now names `new` as `kind` (PTE_PRESENT or PTE_DEVPRIV), keeping
        its write bit; each mapper is notified.  (mm, vpn) is the PTE the caller
        collected itself: skipped here.  Returns the PTEs replaced, -1 out of memory."""
        cdef int64_t stackbuf[2 * RMAP_STACK]
        cdef int64_t* buf = stackbuf
        cdef int64_t n, k, cap = self.frames.f[old].mapcount
        cdef mm_t* m2
        cdef pt_node_t* t
        cdef uint64_t v2, pte
        if cap > RMAP_STACK:
            buf = <int64_t*>malloc(2 * cap * sizeof(int64_t))
            if buf == NULL:
                return -1
        n = self.rmap_walk_anon(old, buf, cap)
        for k in range(n):
            m2 = <mm_t*>self.procs[buf[2 * k]]
            v2 = <uint64_t>buf[2 * k + 1]
            if m2 == mm and v2 == vpn:
                continue
            self.mmu_notify(m2, v2, v2 + 1, 0)
            t = pt_find_leaf(&m2.pgd, v2)
            pte = t.e[v2 & 511]
            pt_set(t, v2, mk_pte(new, kind | (pte & PTE_WRITE)))
            self.ctr[C_PTE_WRITES] += 2               # migration entry, then the new entry
            if pte & PTE_PRESENT:                     # try_to_migrate_one: ptep_clear_flush
                self.ctr[C_PTE_ZAPS] += 1
                self.ctr[C_TLB_FLUSHES] += 1
        if buf != stackbuf:
            free(buf)
        return n

    cdef int migrate_to_ram(self, pfn_t dpfn, mm_t* mm, uint64_t vpn) noexcept nogil:
        """The device page goes home: a host frame takes its data, mapping and index.
        (mm, vpn) is the PTE the caller collected (migrate_vma_setup on the faulting
        or migrating range, already notified): it is replaced directly; any other
        mapper — all of them for an eviction (mm NULL) — is found through the rmap."""
        cdef frame_t* d = &self.frames.f[dpfn]
        cdef frame_t* h
        cdef pfn_t hpfn
        cdef pt_node_t* t
        if frames_free_count(&self.frames, 0) == 0:
            return MM_ENOMEM
        hpfn = self.page_alloc()
        h = &self.frames.f[hpfn]
        h.value = d.value
        h.owner = d.owner
        h.index = d.index
        h.flags = d.flags & ~(<uint32_t>FR_DEVICE_PRIVATE)
        h.mapcount = d.mapcount
        h.refcount = d.refcount
        if mm == NULL or d.mapcount > 1:
            if self.rmap_replace(dpfn, hpfn, PTE_PRESENT, mm, vpn) < 0:
                h.mapcount = 0
                h.refcount = 1
                self.page_put(hpfn)
                return MM_ENOMEM
        if mm != NULL:
            t = pt_find_leaf(&mm.pgd, vpn)
            pt_set(t, vpn, mk_pte(hpfn, PTE_PRESENT | (t.e[vpn & 511] & PTE_WRITE)))
            self.ctr[C_PTE_WRITES] += 2
        d.mapcount = 0
        d.refcount = 0
        self.device_page_free(dpfn)
        self.ctr[C_PAGES_TO_HOST] += 1
        return MM_OK

    cdef bint devpriv_of(self, uint64_t pte, int dev) noexcept nogil:
        """A device-private entry of device `dev` (0: of any device)."""
        return (pte & PTE_DEVPRIV) != 0 and (dev == 0 or frame_node(&self.frames, pte_pfn(pte)) == dev)

    cdef int migrate_vma_to_ram(self, mm_t* mm, vma_t* vma, uint64_t start, uint64_t end, int dev) noexcept nogil:
        """Every device-private page of [start, end) (of device `dev`, 0 = any: the
        pgmap_owner filter of MIGRATE_VMA_SELECT_DEVICE_PRIVATE) goes home; one
        notification for the range, one DMA batch per PTE table."""
        cdef uint64_t vpn = start, tend = 0
        cdef pt_node_t* t
        cdef int64_t need = 0, batch = 0
        while True:                                   # count first: fail before any change
            t = pt_next(&mm.pgd, vpn, end, &vpn)
            if t == NULL:
                break
            need += self.devpriv_of(t.e[vpn & 511], dev)
            vpn += 1
        if need == 0:
            return MM_OK
        if need > frames_free_count(&self.frames, 0):
            return MM_ENOMEM
        self.mmu_notify(mm, start, end, 0)
        vpn = start
        while True:
            t = pt_next(&mm.pgd, vpn, end, &vpn)
            if t == NULL:
                break
            if vpn >= tend:
                side_dma(self, &self.ds, batch, False)
                batch = 0
                tend = (vpn | 511) + 1
            if self.devpriv_of(t.e[vpn & 511], dev):
                self.migrate_to_ram(pte_pfn(t.e[vpn & 511]), mm, vpn)
                batch += 1
            vpn += 1
        side_dma(self, &self.ds, batch, False)
        return MM_OK

    # ================================================================ CPU fault on a device page
    cdef int do_swap_page(self, vm_fault_t* vmf) noexcept nogil:
        """Device-private entry: pgmap->ops->migrate_to_ram, then retry the access
        (which may still need the write fault: COW or reuse).  The driver migrates
        the aligned block of device_fault_pages around the fault (clipped to the
        VMA) in "migrate" mode - svm_migrate_to_ram's granularity - and the one
        faulting page in "remote" mode (dmirror_devmem_fault)."""
        cdef uint64_t g = <uint64_t>self.device_fault_pages if self.device_fault_mode == DEVFAULT_MIGRATE else 1
        cdef uint64_t s = vmf.address & ~(g - 1), e = s + g, vpn
        cdef int dev = frame_node(&self.frames, pte_pfn(vmf.orig_pte))
        cdef int64_t need = 0
        cdef pt_node_t* t
        if s < vmf.vma.vm_start:
            s = vmf.vma.vm_start
        if e > vmf.vma.vm_end:
            e = vmf.vma.vm_end
        # a write that will copy the page once it is home (a COW-shared page) needs a
        # second frame: fail before anything moves, so a failed fault changes nothing
        if (vmf.flags & FAULT_FLAG_WRITE) and not (vmf.orig_pte & PTE_WRITE) \
                and self.frames.f[pte_pfn(vmf.orig_pte)].mapcount > 1:
            vpn = s
            while True:
                t = pt_next(&vmf.mm.pgd, vpn, e, &vpn)
                if t == NULL:
                    break
                need += self.devpriv_of(t.e[vpn & 511], dev)
                vpn += 1
            if need + 1 > frames_free_count(&self.frames, 0):
                return VM_FAULT_OOM
        if self.migrate_vma_to_ram(vmf.mm, vmf.vma, s, e, dev) != MM_OK:
            return VM_FAULT_OOM
        self.ctr[C_FAULTS] += 1
        self.ctr[C_FAULT_DEVICE_RETURN] += 1
        vmf.orig_pte = vmf.pte_table.e[vmf.address & 511]
        return LinuxMachine.handle_pte_fault(self, vmf)

    # ================================================================ Linux paths that change PTEs
    cdef int64_t zap_pte_range(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil:
        self.mmu_notify(mm, start, end, 0)            # MMU_NOTIFY_UNMAP / CLEAR
        return LinuxMachine.zap_pte_range(self, mm, start, end)

    cdef int wp_page_copy(self, vm_fault_t* vmf) noexcept nogil:
        # the kernel allocates the new folio before mmu_notifier_invalidate_range_start:
        # a copy that cannot get a frame fails without touching the device page tables
        if frames_free_count(&self.frames, 0) == 0:
            return VM_FAULT_OOM
        self.mmu_notify(vmf.mm, vmf.address, vmf.address + 1, 0)
        return LinuxMachine.wp_page_copy(self, vmf)

    cdef int copy_page_range(self, mm_t* dst_mm, vma_t* dst, mm_t* src_mm, vma_t* src) noexcept nogil:
        if src.vm_file == NULL:                       # is_cow_mapping: PROTECTION_PAGE
            self.mmu_notify(src_mm, src.vm_start, src.vm_end, 0)
        return LinuxMachine.copy_page_range(self, dst_mm, dst, src_mm, src)

    cdef int change_protection(self, mm_t* mm, vma_t* vma) noexcept nogil:
        self.mmu_notify(mm, vma.vm_start, vma.vm_end, 0)
        return LinuxMachine.change_protection(self, mm, vma)

    cdef void move_page_tables(self, mm_t* mm, uint64_t start, uint64_t end, uint64_t new_start) noexcept nogil:
        self.mmu_notify(mm, start, end, 0)
        LinuxMachine.move_page_tables(self, mm, start, end, new_start)

    # ================================================================ device access
    cdef int cpu_fault(self, mm_t* mm, vma_t* vma, uint64_t vpn, bint write) noexcept nogil:
        """hmm_range_fault's handle_mm_fault: make the CPU PTE allow the access."""
        cdef vm_fault_t vmf
        vmf.mm = mm
        vmf.address = vpn
        vmf.flags = FAULT_FLAG_WRITE if write else 0
        vmf.vma = vma
        vmf.pte_table = pt_find_leaf(&mm.pgd, vpn)
        vmf.orig_pte = vmf.pte_table.e[vpn & 511] if vmf.pte_table != NULL else 0
        return self.handle_mm_fault(&vmf)

    cdef int device_fault(self, int dev, mm_t* mm, vma_t* vma, uint64_t vpn, bint write) noexcept nogil:
        """A device page-table miss: migrate the block around it (default) or map the
        32-page window around it remotely (dmirror)."""
        cdef uint64_t pte = pt_get(&mm.pgd, vpn)
        cdef uint64_t g = <uint64_t>self.device_fault_pages
        cdef uint64_t s = vpn & ~(g - 1), e = s + g
        cdef int st = MM_OK
        cdef dev_mm_t* h
        if self.device_fault_mode == DEVFAULT_REMOTE or vma.vm_file != NULL:
            s = vpn & ~(<uint64_t>HMM_RANGE_PAGES - 1)
            return self.hmm_range_fault(dev, mm, vma, s if s > vma.vm_start else vma.vm_start,
                                        min(s + HMM_RANGE_PAGES, vma.vm_end), vpn, write)
        if (pte & PTE_DEVPRIV) and frame_node(&self.frames, pte_pfn(pte)) != dev:
            st = self.cpu_fault(mm, vma, vpn, write)  # another device's page comes home first
        elif write and not (pte & PTE_WRITE):
            st = self.cpu_fault(mm, vma, vpn, True)   # break COW before migrating
        if st != MM_OK:
            return st
        s = s if s > vma.vm_start else vma.vm_start
        e = e if e < vma.vm_end else vma.vm_end
        st = self.migrate_vma_to_device(mm, vma, s, e, dev)
        if st != MM_OK and st != MM_ENOMEM:
            return st
        # out of device (and host) frames for the block: the driver falls back to
        # system memory (amdgpu's SVM maps the range where it is when svm_migrate_to_vram
        # fails); pages already moved stay moved, and the faulting page is used remotely
        h = side_of(&self.ds, mm.pid)
        if h != NULL and h.ms.dm[dev] != NULL and dmirror_lookup(h.ms.dm[dev], vpn) != 0:
            return MM_OK
        return self.hmm_range_fault(dev, mm, vma, vpn, vpn + 1, vpn, write)   # not migratable: remote

    cdef int hmm_range_fault(self, int dev, mm_t* mm, vma_t* vma, uint64_t start, uint64_t end,
                             uint64_t want, bint write) noexcept nogil:
        """dmirror_range_fault: one hmm_range_fault call with HMM_PFN_REQ_FAULT
        (| HMM_PFN_REQ_WRITE) over [start, end) of one VMA - every page the device
        cannot yet use with this access is faulted in by handle_mm_fault (a page
        private to another device comes home; this device's own private pages are
        returned as they are) - then dmirror_do_fault maps every page.
        The page the device asked for (`want`) is faulted and mapped first, and only
        its failure fails the access; the rest of the window is faulted and mapped
        while memory lasts (the kernel fails the whole range after faulting part of
        it; here a failed access changes nothing)."""
        cdef uint64_t vpn
        cdef int st = self.hmm_fault_one(dev, mm, vma, want, write)
        if st != MM_OK:
            return st
        st = self.hmm_map_one(dev, mm, want)
        if st != MM_OK:
            return st
        for vpn in range(start, end):
            if vpn != want and (self.hmm_fault_one(dev, mm, vma, vpn, write) != MM_OK
                                or self.hmm_map_one(dev, mm, vpn) != MM_OK):
                break
        return MM_OK

    cdef int hmm_map_one(self, int dev, mm_t* mm, uint64_t vpn) noexcept nogil:
        """dmirror_do_fault for one page the CPU side now allows."""
        cdef uint64_t pte = pt_get(&mm.pgd, vpn)
        return self.device_map(mm, dev, vpn, pte_pfn(pte), (pte & PTE_WRITE) != 0)

    cdef int hmm_fault_one(self, int dev, mm_t* mm, vma_t* vma, uint64_t vpn, bint write) noexcept nogil:
        """HMM_PFN_REQ_FAULT for one page: handle_mm_fault unless the device can use it as is."""
        cdef uint64_t pte = pt_get(&mm.pgd, vpn)
        if pte == 0 or (write and not (pte & PTE_WRITE)) \
                or ((pte & PTE_DEVPRIV) and frame_node(&self.frames, pte_pfn(pte)) != dev):
            return self.cpu_fault(mm, vma, vpn, write)
        return MM_OK

    cdef int device_access(self, int dev, int64_t pid, int64_t vpn, bint write, uint64_t* val) noexcept nogil:
        """Device load/store: its page table first, a device fault on a miss."""
        cdef mm_t* mm = <mm_t*>self.proc_of(pid)
        cdef vma_t* vma = self.find_vma(mm, <uint64_t>vpn)
        cdef dev_mm_t* h
        cdef uint64_t e = 0
        cdef int st
        if vma == NULL:
            return MM_ESEGV
        if write and not (vma.vm_flags & VM_WRITE):
            return MM_EPROT
        h = side_of(&self.ds, mm.pid)
        if h != NULL and h.ms.dm[dev] != NULL:
            e = dmirror_lookup(h.ms.dm[dev], <uint64_t>vpn)
        if e == 0 or (write and not (e & DPT_WRITE)):
            self.ctr[C_DEVICE_FAULTS] += 1
            st = self.device_fault(dev, mm, vma, <uint64_t>vpn, write)
            if st != MM_OK:
                return st
            h = side_of(&self.ds, mm.pid)
            e = dmirror_lookup(h.ms.dm[dev], <uint64_t>vpn)
        if write:
            self.frames.f[dpte_pfn(e)].value = val[0]
        else:
            val[0] = frame_value(&self.frames, dpte_pfn(e))
        return MM_OK

    # ================================================================ the contract
    cdef int c_device_read(self, int dev, int64_t pid, int64_t vpn, uint64_t* out) noexcept nogil:
        return self.device_access(dev, pid, vpn, False, out)

    cdef int c_device_write(self, int dev, int64_t pid, int64_t vpn, uint64_t value) noexcept nogil:
        return self.device_access(dev, pid, vpn, True, &value)

    cdef int c_migrate(self, int64_t pid, int64_t vpn, int64_t npages, int node) noexcept nogil:
        """migrate_vma per VMA of the range (every page must be mapped)."""
        cdef mm_t* mm = <mm_t*>self.proc_of(pid)
        cdef uint64_t pos = <uint64_t>vpn, end = <uint64_t>(vpn + npages), e
        cdef vma_t* v
        cdef int st
        if not self.range_mapped(mm, pos, end):
            return MM_EINVAL
        # home: every device page of the range needs a host frame; count them all
        # first, so a migrate that cannot finish changes nothing
        if node == 0 and self.migrate_home_need(mm, pos, end) > frames_free_count(&self.frames, 0):
            return MM_ENOMEM
        while pos < end:
            v = self.find_vma(mm, pos)
            e = v.vm_end if v.vm_end < end else end
            st = self.migrate_vma_node(mm, v, pos, e, node)
            if st == MM_ENOMEM and node > 0:
                # to a device: what found no frame stays where it is, as migrate_vma
                # leaves a page whose destination the driver could not allocate
                return MM_OK
            if st != MM_OK:
                return st
            pos = e
        return MM_OK

    cdef int64_t migrate_home_need(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil:
        """Host frames a migrate of [start, end) home needs: its device-private PTEs."""
        cdef uint64_t vpn = start
        cdef pt_node_t* t
        cdef int64_t need = 0
        while True:
            t = pt_next(&mm.pgd, vpn, end, &vpn)
            if t == NULL:
                return need
            need += self.devpriv_of(t.e[vpn & 511], 0)
            vpn += 1

    cdef int migrate_vma_node(self, mm_t* mm, vma_t* v, uint64_t start, uint64_t end, int node) noexcept nogil:
        """[start, end) of one VMA to `node` (0: host memory)."""
        if node > 0:
            return self.migrate_vma_to_device(mm, v, start, end, node)
        return self.migrate_vma_to_ram(mm, v, start, end, 0)

    cdef int c_exit(self, int64_t pid) noexcept nogil:
        cdef int st = LinuxMachine.c_exit(self, pid)
        side_free(self, &self.ds, pid)
        return st

    # ================================================================ invariants
    cdef int c_check(self) noexcept nogil:
        cdef int64_t ndev = self.frames.node_base[self.ndevices] + self.frames.node_size[self.ndevices] \
            - self.frames.node_base[1] if self.ndevices else 0
        cdef int st
        self.chk_devmaps = <int32_t*>calloc(ndev + 1, sizeof(int32_t))
        if self.chk_devmaps == NULL:
            return self.check_fail("out of memory while checking")
        st = LinuxMachine.c_check(self)
        if st == MM_OK:
            st = self.check_devices()
        free(self.chk_devmaps)
        self.chk_devmaps = NULL
        return st

    cdef int check_pte(self, vma_t* v, uint64_t vpn, uint64_t pte, int32_t* maps) noexcept nogil:
        cdef pfn_t pfn = pte_pfn(pte)
        cdef frame_t* f
        cdef avc_t* avc
        if not (pte & PTE_DEVPRIV):
            return LinuxMachine.check_pte(self, v, vpn, pte, maps)
        if (pte & PTE_PRESENT) or not self.is_device_pfn(pfn) or self.frames.f[pfn].refcount <= 0:
            return self.check_fail("device-private PTE does not name a live device frame")
        f = &self.frames.f[pfn]
        if v.vm_flags & VM_SHARED or not (f.flags & FR_DEVICE_PRIVATE) or not (f.flags & FR_ANON):
            return self.check_fail("device-private PTE in a shared VMA or on a non-anon frame")
        if f.index != linear_index(v, vpn):
            return self.check_fail("device page index != linear_page_index")
        if (pte & PTE_WRITE) and (not (v.vm_flags & VM_WRITE) or not (f.flags & FR_ANON_EXCLUSIVE)):
            return self.check_fail("writable device-private entry on a read-only VMA or shared page")
        avc = v.anon_vma_chain
        while avc != NULL and <uint64_t><size_t>avc.anon_vma != f.owner:
            avc = avc.same_vma
        if avc == NULL:
            return self.check_fail("device page's anon_vma is not on the VMA's chain")
        self.chk_devmaps[pfn - self.frames.node_base[1]] += 1
        return MM_OK

    cdef int check_devices(self) noexcept nogil:
        """Device frames vs device-private PTEs; device page tables vs CPU PTEs."""
        cdef int d
        cdef int64_t pfn, used, total = 0, pid
        cdef frame_t* f
        cdef int32_t m
        for d in range(1, self.ndevices + 1):
            used = 0
            for pfn in range(self.frames.node_base[d], self.frames.node_base[d] + self.frames.node_bump[d]):
                f = &self.frames.f[pfn]
                m = self.chk_devmaps[pfn - self.frames.node_base[1]]
                if f.refcount <= 0:
                    if m != 0 or devmem_has(&self.devmem[d], <pfn_t>pfn):
                        return self.check_fail("free device frame still mapped or on the device FIFO")
                    continue
                used += 1
                if f.mapcount != m or f.refcount != m or not devmem_has(&self.devmem[d], <pfn_t>pfn):
                    return self.check_fail("device frame: mapcount/refcount != device-private PTEs, or off the FIFO")
            if used != self.frames.node_used[d] or used != self.devmem[d].nr:
                return self.check_fail("device frames in use != allocator count != FIFO length")
            total += used
        if total != self.caches[self.kc_devpage].active:
            return self.check_fail("device struct page cache != device frames in use")
        for pid in range(1, self.ds.cap):
            if self.ds.tab[pid] != NULL and self.check_mirrors(pid) != MM_OK:
                return MM_EINVAL
        return MM_OK

    cdef int check_mirrors(self, int64_t pid) noexcept nogil:
        """Coherence: a device entry maps exactly the frame the CPU PTE names, and is
        writable only if the PTE is; accounting equals the trees."""
        cdef dev_mm_t* h = self.ds.tab[pid]
        cdef mm_t* mm = <mm_t*>self.proc_of(pid)
        cdef int d
        cdef uint64_t idx, e, start
        if mm == NULL:
            return self.check_fail("device page tables of a dead process")
        if h.xa_acct != mirrors_nodes(&h.ms) or h.dm_acct != h.ms.nr:
            return self.check_fail("dmirror accounting != device page tables")
        for d in range(1, MAX_NODES):
            if h.ms.dm[d] == NULL:
                continue
            start = 0
            while True:
                e = xa_find(&h.ms.dm[d].pt, start, <uint64_t>-1, &idx)
                if e == 0:
                    break
                if self.check_dpte(mm, d, idx, e) != MM_OK:
                    return MM_EINVAL
                start = idx + 1
        return MM_OK

    cdef int check_dpte(self, mm_t* mm, int dev, uint64_t vpn, uint64_t e) noexcept nogil:
        """One entry of device `dev`'s page table names the frame of the CPU PTE,
        writable only if the PTE is."""
        cdef uint64_t pte = pt_get(&mm.pgd, vpn)
        if pte == 0 or pte_pfn(pte) != dpte_pfn(e) or ((e & DPT_WRITE) and not (pte & PTE_WRITE)):
            return self.check_fail("device page table entry out of step with the CPU PTE")
        return MM_OK

    # ---------------------------------------------------------- Python extras
    def device_entries(self, pid, dev):
        """Entries in device `dev`'s page table for process `pid`: {vpn: (node, writable)}."""
        with self.held():
            return self._device_entries(pid, dev)

    def _device_entries(self, pid, dev):
        cdef int64_t p = self._pid(pid)
        cdef dev_mm_t* h
        cdef uint64_t idx = 0, e, start = 0
        dev = self._dev(dev)
        h = side_of(&self.ds, (<mm_t*>self.procs[p]).pid)
        out = {}
        if h == NULL or h.ms.dm[dev] == NULL:
            return out
        while True:
            e = xa_find(&h.ms.dm[dev].pt, start, <uint64_t>-1, &idx)
            if e == 0:
                break
            out[int(idx)] = (frame_node(&self.frames, dpte_pfn(e)) if dpte_pfn(e) != ZERO_PFN else 0,
                             bool(e & DPT_WRITE))
            start = idx + 1
        return out

    def page_node(self, pid, vpn):
        """Where the page at (pid, vpn) lives: 0 host, 1.. a device, None if not resident."""
        with self.held():
            return self._page_node(pid, vpn)

    def _page_node(self, pid, vpn):
        cdef int64_t p = self._pid(pid)
        cdef uint64_t pte
        v, _ = self._range(vpn)
        pte = pt_get(&(<mm_t*>self.procs[p]).pgd, <uint64_t>v)
        if pte == 0 or (pte & PTE_SPECIAL):
            return None
        return int(frame_node(&self.frames, pte_pfn(pte)))
