# mmbench_shmem.devices — shmem with accelerators: device entries in the page cache.
#
# The design in its own words
# ---------------------------
# Under shmem every page of anonymous memory belongs to a file, and the page
# tables are only a cache of the files' page caches.  A page that moves to
# an accelerator therefore moves *in the page cache*: the file's i_pages slot
# at that offset names a device frame instead of a host frame (a device entry,
# the frame marked FR_DEVICE_PRIVATE), and no CPU page table may map it.
# Finding every CPU mapping is the file reverse map: unmap_mapping_range walks
# the file's i_mmap interval tree for the VMAs covering the offset and zaps
# their PTEs, telling each mapper's device mirrors first (mmu notifier).
#
#      VMA ─ vm_file ─► shmem inode ─ i_pages: pgoff ─► dpfn (device frame) ◄── dmirror: vpn → (dpfn, W)
#                        └ i_mmap ─► every VMA mapping pgoff: PTE zapped, notifier called
#
# A CPU fault on such an offset finds the device entry where it would find a
# swap entry (shmem_get_folio) and brings the page home before mapping it
# (counted as fault_device_return, one copy over the link).
#
# Reflink-shared frames.  A private file's frame may be held by several files
# of its reflink_group (fork clones).  Migration moves the shared frame *for
# every holder*: each file of the group holding that frame at that offset gets
# the device frame in its slot, each one's i_mmap is walked and its mappers
# unmapped.  Sharing is kept (no copy is made to migrate, the group still holds
# one frame), and copy-on-write stays where it was: a CPU write to the offset
# brings the page home for all holders, then break_reflink copies it for the
# writer as before.  A device *write* to a frame several files hold breaks the
# reflink on the CPU side first (the write fault hmm_range_fault would take),
# then migrates the writer's now exclusive copy.  The alternative — break the
# sharing before migrating — would copy a page that nobody wrote and leave the
# other holders on the host; it was rejected because migrating is not writing.
#
# Device access goes through the device's own page table (one dmirror per
# (process, device), mmbench.blocks.devmirror).  A miss, or a write to an
# entry without the write bit, is a device fault: the page (and, with option
# `device_fault_pages` = g > 1, the rest of its g-aligned block inside the
# VMA) migrates to the faulting device, the faulting page last, and the device
# maps every page it migrated, writable only if the VMA is writable and one
# file holds the frame (migrate() to a device maps the pages it moved too).
#
# Coherence: a device entry names exactly the frame the file holds at that
# offset.  The entry dies through the notifier wherever that could change:
# unmap_mapping_page (migration, eviction), zap_range (munmap, MADV_DONTNEED,
# exit), wrprotect_range (mprotect, fork's write-protect of private files),
# move_ptes (mremap).  break_reflink needs none: the frame it replaces is on
# the host, so no device maps it.
#
# Oversubscription: a device with no free frame sends its oldest page home
# (FIFO, devmirror's devmem_t) through the same move, found from the frame's
# owner (its file, or the reflink group: FR_DESIGN0 says which).
#
# Simplified relative to what a kernel would need
# * Linux page caches hold no device-private folios today; device-coherent
#   (MEMORY_DEVICE_COHERENT) folios can sit in a mapping, device-private ones
#   cannot.  The model assumes a page cache that accepts a device entry and a
#   shmem_get_folio that treats it like a swap entry (bring it home, then map).
# * Device to device goes through host memory (two copies).
# * A failed migration stops at a page boundary; pages already moved stay moved.

from libc.stdlib cimport free
from libc.string cimport memset
from libc.stdint cimport int64_t, uint64_t, int32_t, uint32_t

from mmbench.core cimport (MM_OK, MM_ESEGV, MM_EPROT, MM_ENOMEM, MM_EINVAL, C_FAULTS,
                           C_FAULT_DEVICE_RETURN, C_TLB_FLUSHES, C_RMAP_VISITS, C_I_MMAP_VISITS,
                           C_PAGES_TO_DEVICE, C_PAGES_TO_HOST, C_DEVICE_FAULTS, C_DEVICE_PTE_WRITES,
                           C_DEVICE_EVICTIONS, C_PAGECACHE_ADDS)
from mmbench.blocks.frames cimport (frame_t, pfn_t, NO_PFN, ZERO_PFN, MAX_NODES, FR_PAGECACHE,
                                    FR_DEVICE_PRIVATE, FR_DESIGN0, frame_alloc, frame_free,
                                    frame_node, frames_free_count)
from mmbench.blocks.pagetable cimport pt_node_t, pt_leaf, pt_find_leaf, pte_present
from mmbench.blocks.xarray cimport xa_store, xa_find
from mmbench.blocks.pagecache cimport mapping_lookup, mapping_add
from mmbench.blocks.itree cimport itnode_t, itree_first, itree_next
from mmbench.blocks.devmirror cimport (dmirror_t, notify_result_t, DPT_WRITE, dpte_pfn,
                                       mirror_get, mirrors_nodes, dmirror_map, dmirror_lookup,
                                       dev_mm_of, dev_mm_get, dev_mm_detach, dev_mm_notify,
                                       devmems_clear, devmems_init, devmems_destroy,
                                       devmem_frame_alloc, devmem_frame_free, devmem_oldest, devmem_has,
                                       devmem_del)
from mmbench.blocks.devside cimport (side_register, side_of, side_get, side_free, side_sync,
                                     side_destroy, side_dma, side_dma_flush, side_notify, side_map,
                                     side_transfers)
from mmbench_shmem.core cimport ShmemMachine, vm_fault
from mmbench_shmem.objects cimport VM_WRITE, VM_SHARED, vma_pgoff_of, reflink_group
from mmbench_shmem.vma cimport find_vma, range_fully_mapped
from mmbench_shmem.inode cimport frame_file_refs
from mmbench_shmem.core import COUNTERS as SHMEM_COUNTERS

from mmbench import errors as _errors
from mmbench.devices import device_fault_pages_option

cdef uint64_t PGOFF_MAX = <uint64_t>1 << 36

DEVICE_COUNTERS = SHMEM_COUNTERS + (
    "fault_device_return", "pages_to_device", "pages_to_host", "dma_bytes", "dma_transfers",
    "notifier_calls", "notifier_invalidated", "device_faults", "device_pte_writes",
    "device_tlb_invalidations", "device_evictions",
)

cdef enum:
    FR_OWNER_GROUP = FR_DESIGN0     # device frame: `owner` is a reflink_group, not an inode


cdef inline shmem_inode_info* first_holder(shmem_inode_info* f) noexcept nogil:
    """The files that may hold f's frames: its reflink group (private) or f alone."""
    return f.group.head if f.private else f


cdef inline shmem_inode_info* next_holder(shmem_inode_info* h) noexcept nogil:
    return h.group_next if h.private else NULL


cdef inline uint64_t file_entry_from(vm_area_struct* v, uint64_t vpn, uint64_t end,
                                     uint64_t* idx) noexcept nogil:
    """The first page-cache entry of v's file at the pages [vpn, end) of v map (its
    file offset in *idx), or 0."""
    return xa_find(&v.vm_file.i_data.i_pages, vma_pgoff_of(v, vpn), vma_pgoff_of(v, end - 1), idx)

cdef inline uint64_t file_entry_after(vm_area_struct* v, uint64_t end, uint64_t* idx) noexcept nogil:
    """The next entry after offset *idx among those of file_entry_from, or 0."""
    if idx[0] >= vma_pgoff_of(v, end - 1):
        return 0
    return xa_find(&v.vm_file.i_data.i_pages, idx[0] + 1, vma_pgoff_of(v, end - 1), idx)

cdef class ShmemDevMachine(ShmemMachine):
    """shmem with accelerators: device entries in the page cache, unmapped
    through i_mmap, brought home by the CPU fault (essay in devices.pyx)."""

    name = "shmem"
    description = ("anonymous memory as shmem files: page-cache xarray + i_mmap rmap; "
                   "private COW through reflink-style file clones; devices through "
                   "device entries in the page cache")
    option_defaults = dict(ShmemMachine.option_defaults, device_fault_pages=1)
    supports_devices = True
    counter_names = DEVICE_COUNTERS

    def __cinit__(self, *args, **kwargs):
        memset(&self.ds, 0, sizeof(self.ds))
        devmems_clear(self.devmem)

    def __init__(self, **kw):
        super().__init__(**kw)
        self.device_fault_pages = device_fault_pages_option(self.options)
        # struct page of device memory holding data (ZONE_DEVICE memmap), 64 B
        self.kc_devpage = self.slab_register("page (device)", 64)
        # the driver's per-(mm, device) mirror, sized as linux's (mmbench.blocks.devside)
        side_register(self, &self.ds, 584)          # radix_tree_node objsize here
        if devmems_init(self.devmem, &self.frames, self.ndevices) != 0:
            raise MemoryError()

    def __dealloc__(self):
        cdef int64_t pid
        if self.procs != NULL:
            for pid in range(1, self.next_pid):
                if self.procs[pid] != NULL:
                    self.exit_mmap(<mm_struct*>self.procs[pid])
                    self.procs[pid] = NULL
                    side_free(self, &self.ds, pid)
        side_destroy(&self.ds)
        devmems_destroy(self.devmem)

    # ================================================================ per-mm state, accounting
    def dma_transfers_each_way(self):
        """DMA transfers issued so far: {"to_device": n, "to_host": n} (exact)."""
        with self.held():
            return self._dma_transfers_each_way()

    def _dma_transfers_each_way(self):
        return side_transfers(&self.ds)

    # ================================================================ notifier, device page tables
    # ================================================================ device memory
    cdef bint is_device_pfn(self, pfn_t pfn) noexcept nogil:
        return self.ndevices > 0 and pfn != ZERO_PFN and pfn != NO_PFN \
            and <int64_t>pfn >= self.frames.node_base[1]

    cdef pfn_t device_page_alloc(self, int dev) noexcept nogil:
        """A frame of device `dev`; a full device first sends its oldest page home."""
        cdef pfn_t pfn, victim
        cdef frame_t* v
        cdef shmem_inode_info* f
        if frames_free_count(&self.frames, dev) == 0:
            victim = devmem_oldest(&self.devmem[dev])
            if victim == NO_PFN:
                return NO_PFN
            v = &self.frames.f[victim]
            if v.flags & FR_OWNER_GROUP:
                f = (<reflink_group*><size_t>v.owner).head
            else:
                f = <shmem_inode_info*><size_t>v.owner
            if self.move_frame(f, v.index, victim, 0) != MM_OK:
                return NO_PFN
            side_dma(self, &self.ds, 1, False)
            self.ctr[C_DEVICE_EVICTIONS] += 1
        pfn = devmem_frame_alloc(self.devmem, &self.frames, dev)
        if pfn != NO_PFN:
            self.kmem_alloc(self.kc_devpage)
        return pfn

    cdef void device_page_free(self, pfn_t pfn) noexcept nogil:
        devmem_frame_free(self.devmem, &self.frames, pfn)
        self.kmem_free(self.kc_devpage)

    # ================================================================ migration
    cdef int64_t unmap_mapping_page(self, shmem_inode_info* f, uint64_t pgoff) noexcept nogil:
        """unmap_mapping_range over one offset of one file: every VMA of its
        i_mmap covering pgoff loses its PTE there (zero-page PTEs included),
        its device mirrors told first.  Returns the PTEs zapped."""
        cdef itnode_t* it = itree_first(&f.i_data.i_mmap, pgoff, pgoff)
        cdef vm_area_struct* w
        cdef pt_node_t* t
        cdef uint64_t addr
        cdef int64_t n = 0
        self.ctr[C_I_MMAP_VISITS] += 1
        while it != NULL:
            w = <vm_area_struct*>it
            self.ctr[C_RMAP_VISITS] += 1
            addr = w.vm_start + (pgoff - w.vm_pgoff)
            side_notify(self, &self.ds, w.vm_mm.pid, addr, addr + 1, 0)
            t = pt_find_leaf(&w.vm_mm.pgd, addr)
            if t != NULL and t.e[addr & 511] != 0:
                self.zap_pte(t, addr)
                self.ctr[C_TLB_FLUSHES] += 1
                n += 1
            it = itree_next(it, pgoff, pgoff)
        return n

    cdef int move_frame(self, shmem_inode_info* f, uint64_t pgoff, pfn_t old, int node) noexcept nogil:
        """Move the frame `old` (held by f at pgoff) to `node` for every file
        holding it: take the new frame first (nothing changed on failure),
        unmap every holder's mappers, repoint every holder's slot, copy the
        descriptor, free the old frame.  The caller accounts the copy."""
        cdef pfn_t new
        cdef frame_t* o = &self.frames.f[old]
        cdef frame_t* d
        cdef shmem_inode_info* h
        cdef int32_t holders = 0
        if node == 0:
            if frames_free_count(&self.frames, 0) < 1:
                return MM_ENOMEM
            new = frame_alloc(&self.frames, 0)
            self.kmem_alloc(self.kc_page)
        else:
            new = self.device_page_alloc(node)
            if new == NO_PFN:
                return MM_ENOMEM
        h = first_holder(f)
        while h != NULL:
            if mapping_lookup(&h.i_data, pgoff) == old:
                self.unmap_mapping_page(h, pgoff)
                xa_store(&h.i_data.i_pages, pgoff, <uint64_t>new + 1)   # slot exists: no xa_node
                holders += 1
            h = next_holder(h)
        d = &self.frames.f[new]
        d.value = o.value
        d.owner = o.owner
        d.index = pgoff
        d.refcount = holders
        d.flags = FR_PAGECACHE
        if node != 0:
            d.flags |= FR_DEVICE_PRIVATE | (FR_OWNER_GROUP if f.private else 0)
            self.ctr[C_PAGES_TO_DEVICE] += 1
        else:
            self.ctr[C_PAGES_TO_HOST] += 1
        o.refcount -= holders                  # every PTE is gone: nobody holds it now
        if self.is_device_pfn(old):
            self.device_page_free(old)
        else:
            frame_free(&self.frames, old)
            self.kmem_free(self.kc_page)
        return MM_OK

    cdef int hole_to_device(self, shmem_inode_info* f, uint64_t pgoff, int dev) noexcept nogil:
        """A never-written offset is created on the device (no copy): a device
        frame enters the cache, zero-page PTEs over the hole go."""
        cdef pfn_t new = self.device_page_alloc(dev)
        cdef frame_t* d
        if new == NO_PFN:
            return MM_ENOMEM
        if mapping_add(&f.i_data, pgoff, new) != 0:
            self.sync_xa(f)
            self.device_page_free(new)
            return MM_ENOMEM
        self.sync_xa(f)
        d = &self.frames.f[new]
        d.owner = <uint64_t><size_t>(f.group if f.private else <void*>f)
        d.index = pgoff
        d.flags = FR_PAGECACHE | FR_DEVICE_PRIVATE | (FR_OWNER_GROUP if f.private else 0)
        self.unmap_mapping_page(f, pgoff)
        self.ctr[C_PAGECACHE_ADDS] += 1
        self.ctr[C_PAGES_TO_DEVICE] += 1
        return MM_OK

    cdef int migrate_file_page(self, shmem_inode_info* f, uint64_t pgoff, int node,
                               move_stats_t* ms) noexcept nogil:
        """Put f's page at pgoff on `node` (device to device through the host)."""
        cdef pfn_t pfn = mapping_lookup(&f.i_data, pgoff)
        cdef int cur, st
        if pfn == NO_PFN:
            return MM_OK if node == 0 else self.hole_to_device(f, pgoff, node)
        cur = frame_node(&self.frames, pfn)
        if cur == node:
            return MM_OK
        if cur != 0:
            st = self.move_frame(f, pgoff, pfn, 0)
            if st != MM_OK:
                return st
            ms.to_host += 1
            if node == 0:
                return MM_OK
            pfn = mapping_lookup(&f.i_data, pgoff)
        st = self.move_frame(f, pgoff, pfn, node)
        if st == MM_OK:
            ms.to_device += 1
        return st

    cdef int migrate_range(self, mm_struct* mm, uint64_t start, uint64_t end, int node,
                           move_stats_t* ms) noexcept nogil:
        """Every page of [start, end) (mapped) to `node`, VMA by VMA.  Home, only
        the pages in the file's page cache can move: they are found in its
        xarray, so the work is bounded by cached pages, not by the range."""
        cdef uint64_t vpn = start, e, idx = 0, x
        cdef vm_area_struct* v
        cdef int st
        while vpn < end:
            v = find_vma(mm, vpn)
            if v == NULL:
                return MM_EINVAL
            e = v.vm_end if v.vm_end < end else end
            if node == 0:
                x = file_entry_from(v, vpn, e, &idx)
                while x != 0:
                    st = self.migrate_file_page(v.vm_file, idx, 0, ms)
                    if st != MM_OK:
                        return st
                    x = file_entry_after(v, e, &idx)
                vpn = e
                continue
            while vpn < e:
                st = self.migrate_file_page(v.vm_file, vma_pgoff_of(v, vpn), node, ms)
                if st == MM_OK and node != 0:
                    st = self.device_map_page(mm, v, vpn, node)
                if st != MM_OK:
                    return st
                vpn += 1
        return MM_OK

    cdef int device_map_page(self, mm_struct* mm, vm_area_struct* v, uint64_t vpn, int dev) noexcept nogil:
        """The driver maps a page now on `dev`: writable only if the VMA is and
        one file holds the frame."""
        cdef pfn_t pfn = mapping_lookup(&v.vm_file.i_data, vma_pgoff_of(v, vpn))
        return side_map(self, &self.ds, mm.pid, dev, vpn, pfn,
                        (v.vm_flags & VM_WRITE) != 0 and frame_file_refs(&self.frames, pfn) == 1)

    cdef int64_t migrate_host_frames(self, mm_struct* mm, uint64_t start, uint64_t end,
                                     int node) noexcept nogil:
        """Host frames a migration of [start, end) to `node` may need at its peak
        (c_migrate refuses up front rather than stop halfway):
        => to the host: one per page now on a device (exact);
        => to a device: nothing if every page is there already, else one per
           eviction the device can suffer -- at most one per page of the range
           beyond its free frames, since a page of the range already there may
           be evicted by the others and come back -- plus one for a page that
           passes through the host on its way from another device."""
        cdef uint64_t vpn = start, e, idx = 0, x
        cdef vm_area_struct* v
        cdef pfn_t pfn
        cdef int64_t moving = 0, transit = 0, evictions
        cdef int cur
        evictions = <int64_t>(end - start) - frames_free_count(&self.frames, node) if node else 0
        if node and <int64_t>(end - start) > self.device_pages \
                and evictions > frames_free_count(&self.frames, 0):
            return evictions      # more pages than the device holds: some move, refused (O(1))
        while vpn < end:
            v = find_vma(mm, vpn)
            e = v.vm_end if v.vm_end < end else end
            if node == 0:         # home: the pages on a device, from the page cache (bounded)
                x = file_entry_from(v, vpn, e, &idx)
                while x != 0:
                    moving += frame_node(&self.frames, <pfn_t>(x - 1)) != 0
                    x = file_entry_after(v, e, &idx)
                vpn = e
                continue
            while vpn < e:
                pfn = mapping_lookup(&v.vm_file.i_data, vma_pgoff_of(v, vpn))
                cur = 0 if pfn == NO_PFN else frame_node(&self.frames, pfn)
                if node == 0:
                    moving += cur != 0
                elif pfn == NO_PFN or cur != node:
                    moving += 1
                    transit |= cur != 0
                vpn += 1
        if node == 0 or moving == 0:
            return moving
        evictions = <int64_t>(end - start) - frames_free_count(&self.frames, node)
        return (evictions if evictions > 0 else 0) + transit

    cdef int c_migrate(self, int64_t pid, int64_t vpn, int64_t npages, int node) noexcept nogil:
        cdef mm_struct* mm = <mm_struct*>self.proc_of(pid)
        cdef move_stats_t ms
        cdef int st
        if not range_fully_mapped(mm, vpn, vpn + npages):
            return MM_EINVAL
        if self.migrate_host_frames(mm, vpn, vpn + npages, node) > frames_free_count(&self.frames, 0):
            return MM_ENOMEM
        ms.to_device = 0
        ms.to_host = 0
        st = self.migrate_range(mm, vpn, vpn + npages, node, &ms)
        side_dma_flush(self, &self.ds, &ms)
        return st

    # ================================================================ CPU side
    cdef int handle_mm_fault(self, vm_fault* vmf) noexcept nogil:
        """A device entry where the PTE is none: bring the page home (for every
        file holding it), then the ordinary fault maps it."""
        cdef pfn_t pfn
        if not pte_present(vmf.orig_pte):
            pfn = mapping_lookup(&vmf.vma.vm_file.i_data, vmf.pgoff)
            if self.is_device_pfn(pfn):
                # the fault that follows may need a frame of its own (a private
                # write to a frame other files share): check both first
                if frames_free_count(&self.frames, 0) < 1 + (
                        vmf.write and not (vmf.vma.vm_flags & VM_SHARED)
                        and frame_file_refs(&self.frames, pfn) > 1):
                    return MM_ENOMEM
                if self.move_frame(vmf.vma.vm_file, vmf.pgoff, pfn, 0) != MM_OK:
                    return MM_ENOMEM
                side_dma(self, &self.ds, 1, False)
                self.ctr[C_FAULTS] += 1
                self.ctr[C_FAULT_DEVICE_RETURN] += 1
        return ShmemMachine.handle_mm_fault(self, vmf)

    cdef int64_t zap_range(self, mm_struct* mm, uint64_t start, uint64_t end) noexcept nogil:
        side_notify(self, &self.ds, mm.pid, start, end, 0)
        return ShmemMachine.zap_range(self, mm, start, end)

    cdef int64_t wrprotect_range(self, mm_struct* mm, uint64_t start, uint64_t end) noexcept nogil:
        side_notify(self, &self.ds, mm.pid, start, end, 0)
        return ShmemMachine.wrprotect_range(self, mm, start, end)

    cdef void move_ptes(self, mm_struct* mm, uint64_t old, uint64_t new, uint64_t n) noexcept nogil:
        side_notify(self, &self.ds, mm.pid, old, old + n, 0)
        ShmemMachine.move_ptes(self, mm, old, new, n)

    cdef void shmem_truncate(self, shmem_inode_info* inode, uint64_t start, uint64_t end) noexcept nogil:
        """Device frames this file holds alone leave device memory with it."""
        cdef uint64_t idx = 0, e
        cdef pfn_t pfn
        if self.caches[self.kc_devpage].active > 0 and end > start:
            e = xa_find(&inode.i_data.i_pages, start, end - 1, &idx)
            while e != 0:
                pfn = <pfn_t>(e - 1)
                if self.is_device_pfn(pfn) and self.frames.f[pfn].refcount == 1:
                    devmem_del(&self.devmem[frame_node(&self.frames, pfn)], pfn)
                    self.kmem_free(self.kc_devpage)    # mapping_truncate frees the frame
                if idx + 1 >= end:
                    break
                e = xa_find(&inode.i_data.i_pages, idx + 1, end - 1, &idx)
        ShmemMachine.shmem_truncate(self, inode, start, end)

    cdef int c_exit(self, int64_t pid) noexcept nogil:
        cdef int st = ShmemMachine.c_exit(self, pid)
        side_free(self, &self.ds, pid)
        return st

    # ================================================================ device access
    cdef int device_access(self, int dev, int64_t pid, int64_t vpn, bint write, uint64_t* val) noexcept nogil:
        cdef mm_struct* mm = <mm_struct*>self.proc_of(pid)
        cdef dev_mm_t* h = side_of(&self.ds, mm.pid)
        cdef vm_area_struct* v
        cdef uint64_t e = 0
        cdef int st
        if h != NULL and h.ms.dm[dev] != NULL:
            e = dmirror_lookup(h.ms.dm[dev], vpn)
        if e == 0 or (write and not (e & DPT_WRITE)):
            v = find_vma(mm, vpn)
            if v == NULL:
                return MM_ESEGV
            if write and not (v.vm_flags & VM_WRITE):
                return MM_EPROT
            st = self.device_fault(dev, mm, v, vpn, write)
            if st != MM_OK:
                return st
            e = dmirror_lookup(side_of(&self.ds, mm.pid).ms.dm[dev], vpn)
        if write:
            self.frames.f[dpte_pfn(e)].value = val[0]
        else:
            val[0] = self.frames.f[dpte_pfn(e)].value
        return MM_OK

    cdef int device_fault(self, int dev, mm_struct* mm, vm_area_struct* vma, uint64_t vpn,
                          bint write) noexcept nogil:
        """Migrate on fault: the block around vpn inside the VMA, vpn last; the
        device maps every page it migrated."""
        cdef shmem_inode_info* f = vma.vm_file
        cdef uint64_t pgoff = vma_pgoff_of(vma, vpn)
        cdef uint64_t g = <uint64_t>self.device_fault_pages
        cdef uint64_t bs = vpn & ~(g - 1), be = bs + g
        cdef pfn_t pfn = mapping_lookup(&f.i_data, pgoff)
        cdef move_stats_t ms
        cdef int st = MM_OK
        self.ctr[C_DEVICE_FAULTS] += 1
        if write and pfn != NO_PFN and frame_file_refs(&self.frames, pfn) > 1:
            st = self.fault_in(mm, vpn, True, &pfn)     # the CPU write fault breaks the reflink
            if st != MM_OK:
                return st
        ms.to_device = 0
        ms.to_host = 0
        bs = bs if bs > vma.vm_start else vma.vm_start
        be = be if be < vma.vm_end else vma.vm_end
        if bs < vpn:
            st = self.migrate_range(mm, bs, vpn, dev, &ms)
        if st == MM_OK and vpn + 1 < be:
            st = self.migrate_range(mm, vpn + 1, be, dev, &ms)
        if st == MM_OK:
            st = self.migrate_range(mm, vpn, vpn + 1, dev, &ms)
        side_dma_flush(self, &self.ds, &ms)
        return st

    cdef int c_device_read(self, int dev, int64_t pid, int64_t vpn, uint64_t* out) noexcept nogil:
        return self.device_access(dev, pid, vpn, False, out)

    cdef int c_device_write(self, int dev, int64_t pid, int64_t vpn, uint64_t value) noexcept nogil:
        return self.device_access(dev, pid, vpn, True, &value)

    # ================================================================ invariants
    cdef bint pfn_valid(self, pfn_t pfn) noexcept nogil:
        cdef int node
        if pfn == NO_PFN or pfn == ZERO_PFN:
            return False
        node = frame_node(&self.frames, pfn)
        return <int64_t>pfn < self.frames.node_base[node] + self.frames.node_bump[node]

    cdef int c_check(self) noexcept nogil:
        cdef int st = ShmemMachine.c_check(self)
        if st == MM_OK:
            st = self.check_devices()
        return st

    cdef int64_t check_frames_span(self) noexcept nogil:
        """The base checks run over host and device frames."""
        cdef int last = self.frames.nr_nodes - 1
        return self.frames.node_base[last] + self.frames.node_size[last]

    cdef int check_device_frames(self, int32_t* refs, int32_t* maps) noexcept nogil:
        """Device frames are held by files only (never mapped by a PTE) and are
        on their device's list."""
        cdef int d
        cdef int64_t pfn, used, total = 0
        cdef frame_t* f
        for d in range(1, self.ndevices + 1):
            used = 0
            for pfn in range(self.frames.node_base[d], self.frames.node_base[d] + self.frames.node_bump[d]):
                f = &self.frames.f[pfn]
                if f.refcount != refs[pfn] or maps[pfn] != 0 or f.mapcount != 0:
                    return self.check_fail("device frame counts differ from the files holding it")
                if refs[pfn] > 0:
                    used += 1
                    if not (f.flags & FR_DEVICE_PRIVATE) or not devmem_has(&self.devmem[d], <pfn_t>pfn):
                        return self.check_fail("device frame in a page cache not marked or not listed")
                elif devmem_has(&self.devmem[d], <pfn_t>pfn):
                    return self.check_fail("free device frame on the device's list")
            if used != self.frames.node_used[d] or used != self.devmem[d].nr:
                return self.check_fail("device frames in use differ from frames held (leak)")
            total += used
        if total != self.caches[self.kc_devpage].active:
            return self.check_fail("page (device) accounting differs from device frames in use")
        return MM_OK

    cdef int check_devices(self) noexcept nogil:
        cdef int64_t pid, nodes = 0, mirrors = 0
        cdef mm_struct* mm
        cdef dev_mm_t* h
        cdef int st
        for pid in range(1, self.next_pid):
            mm = <mm_struct*>self.procs[pid]
            h = side_of(&self.ds, mm.pid) if mm != NULL else NULL
            if h == NULL:
                continue
            if h.xa_acct != mirrors_nodes(&h.ms) or h.dm_acct != h.ms.nr:
                return self.check_fail("device page tables not accounted")
            nodes += h.xa_acct
            mirrors += h.dm_acct
            st = self.check_mirrors(mm)
            if st != MM_OK:
                return st
        if nodes != self.caches[self.ds.kc_dpt_xa].active or mirrors != self.caches[self.ds.kc_dmirror].active:
            return self.check_fail("dmirror accounting differs from live mirrors")
        return MM_OK

    cdef int check_mirrors(self, mm_struct* mm) noexcept nogil:
        """Coherence: a device entry names the frame the file holds at that
        offset, on that device, writable only if the VMA is and one file holds it."""
        cdef dev_mm_t* h = side_of(&self.ds, mm.pid)
        cdef dmirror_t* dm
        cdef vm_area_struct* v
        cdef uint64_t vpn = 0, e
        cdef pfn_t pfn
        cdef int d
        for d in range(1, self.ndevices + 1):
            dm = h.ms.dm[d]
            if dm == NULL:
                continue
            e = xa_find(&dm.pt, 0, PGOFF_MAX, &vpn)
            while e != 0:
                pfn = dpte_pfn(e)
                v = find_vma(mm, vpn)
                if v == NULL:
                    return self.check_fail("device entry outside every VMA")
                if mapping_lookup(&v.vm_file.i_data, vma_pgoff_of(v, vpn)) != pfn:
                    return self.check_fail("device entry names a frame the file does not hold")
                if frame_node(&self.frames, pfn) != d:
                    return self.check_fail("device entry names memory of another node")
                if (e & DPT_WRITE) and (not (v.vm_flags & VM_WRITE)
                                        or frame_file_refs(&self.frames, pfn) != 1):
                    return self.check_fail("writable device entry to a read-only or shared frame")
                e = xa_find(&dm.pt, vpn + 1, PGOFF_MAX, &vpn)
        return MM_OK

    # ================================================================ introspection
    def page_node(self, pid, vpn):
        """Where the page `pid` reaches at vpn lives: 0 host, d device, None a hole."""
        with self.held():
            return self._page_node(pid, vpn)

    def _page_node(self, pid, vpn):
        cdef mm_struct* mm = <mm_struct*>self.proc_of(self._pid(pid))
        cdef vm_area_struct* v = find_vma(mm, self._range(vpn)[0])
        cdef pfn_t pfn
        if v == NULL:
            raise _errors.SegmentationFault(f"pid {pid}: vpn {vpn} is not mapped")
        pfn = mapping_lookup(&v.vm_file.i_data, vma_pgoff_of(v, vpn))
        return None if pfn == NO_PFN else int(frame_node(&self.frames, pfn))
