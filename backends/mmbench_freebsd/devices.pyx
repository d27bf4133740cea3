# mmbench_freebsd.devices — FreeBSD with accelerators: fictitious pages in the object.
#
# The design in its own words
# ---------------------------
# FreeBSD keeps a page's identity in its vm_object: the object's radix trie
# maps pindex → vm_page, and the pmap is only a cache of those pages, each
# mapping recorded by a pv entry on the page.  Device memory joins the same
# way device pagers (OBJT_DEVICE / OBJT_MGTDEVICE) bring it into the VM: as
# *fictitious* vm_pages (PG_FICTITIOUS, registered with
# vm_phys_fictitious_reg_range) whose physical address is device memory.
# Migrating an anonymous page replaces it, at the same pindex of the same
# object, by a fictitious page — vm_page_replace — after pmap_remove_all has
# removed every CPU mapping through the page's pv list (the reverse map:
# rmap_visits, pte_zaps).  The object, its shadows and the chain do not
# change, so a page living in a *backing* object shared by several shadows is
# still found by every chain walk.
#
#      vm_map_entry ─► shadow ─► backing vm_object ─ rtree: pindex ─► vm_page (PG_FICTITIOUS, device pa)
#                                                                        ▲ device pv list
#      device page table (dmirror): vpn ─► (device pa, W) ──────────────┘ (pid, vpn) per mapping
#
# A fictitious page is never entered in a CPU pmap.  A CPU access that finds
# one in the chain (the fault's chain walk, done first by vm_map_resolve)
# brings it home *in place*: a host page replaces it in the object that holds
# it, then the ordinary fault runs — so a COW write to a page of a backing
# object first brings it home into the backing object, then copies it up into
# the shadow (or moves it, the COW page-move optimisation) exactly as for a
# page that never left.  Collapse and bypass move fictitious pages between
# objects like any page; the trie does not care where the page lives.
#
# The device's own mappings are recorded like pv entries: a list per device
# page of (pid, vpn) device page-table entries; moving a page off the device
# walks it and erases every entry still naming the page.  FreeBSD has no mmu
# notifier; where the map changes under a device mapping (munmap, mprotect,
# MADV_DONTNEED, mremap, fork's write-protect, exit) the model erases the
# device entries of the range at the contract operation, counted as notifier
# calls as in the other designs (the hook a real implementation would need in
# pmap_remove / pmap_protect).
#
# Device access goes through the device page table; a miss, or a write to an
# entry without the write bit, is a device fault: if the CPU side could not
# make the access (a hole, or a write that needs copy-on-write) the ordinary
# vm_fault runs first, as hmm_range_fault would; then the page the chain
# resolves to migrates to the device, and the device maps it writable only if
# the CPU could (entry writable, no NEEDS_COPY, page in the entry's first
# object).  Option `device_fault_pages` = g > 1 moves the resolved pages of
# vpn's g-aligned block inside the entry too (vpn last), each mapped.
# migrate(pid, vpn, n, node) moves the resolved pages (and a device maps them);
# a pindex no object holds yet has nothing to move and stays a hole.
#
# Oversubscription: a full device sends its oldest page home (FIFO, devmirror's
# devmem_t).  Pages the VM frees on its own (exit, collapse, MADV_DONTNEED)
# leave the list lazily: the eviction skips frames no object holds, and a
# reused frame is re-queued as the newest.
#
# Simplified relative to what a kernel would need
# * FreeBSD has no migrate_to_ram: a pager for anonymous memory whose pages
#   can be fictitious, and a fault path that asks the driver to bring a page
#   home, are both new.  vm_fault_prefault must skip fictitious pages
#   (the FREEBSD-HOOK commit).
# * Device to device goes through host memory (two copies).
# * A failed migration stops at a page boundary; pages already moved stay moved.

from libc.stdlib cimport calloc, malloc, realloc, free, qsort
from libc.string cimport memset
from libc.stdint cimport int64_t, uint64_t, uint32_t

from mmbench.core cimport (MM_OK, MM_ESEGV, MM_EPROT, MM_ENOMEM, MM_EINVAL, VPN_BITS, C_FAULTS,
                           C_FAULT_DEVICE_RETURN, C_RMAP_VISITS, C_PAGES_TO_DEVICE, C_PAGES_TO_HOST,
                           C_DEVICE_FAULTS, C_DEVICE_PTE_WRITES, C_DEVICE_TLB_INVAL,
                           C_DEVICE_EVICTIONS)
from mmbench.blocks.frames cimport (frame_t, pfn_t, NO_PFN, MAX_NODES, FR_DEVICE_PRIVATE, frame_alloc,
                                    frame_free, frame_node, frames_free_count)
from mmbench.blocks.pagetable cimport pte_present, pte_write
from mmbench.blocks.xarray cimport xa_find
from mmbench.blocks.devmirror cimport (dmirror_t, dev_mm_t, notify_result_t, DPT_WRITE, dpte_pfn, mk_dpte,
                                       mirror_get, mirrors_nodes, dmirror_map, dmirror_lookup,
                                       dmirror_invalidate, dev_mm_of, dev_mm_get, dev_mm_detach,
                                       dev_mm_notify, devmems_clear, devmems_init, devmems_destroy,
                                       devmem_add, devmem_del, devmem_oldest, devmem_has)
from mmbench.blocks.mapentry cimport MapEntryMachine
from mmbench.blocks.devside cimport (side_register, notify_count, side_of, side_get, side_free,
                                     side_sync, side_destroy, side_dma, side_dma_flush, side_notify,
                                     side_map, side_transfers)
from mmbench_freebsd.vm cimport (vm_object_t, vm_reserv_t, KC_PCTRIE, MAP_ENTRY_NEEDS_COPY,
                                 VM_INHERIT_SHARE)
from mmbench_freebsd.pctrie cimport pctrie_insert, pctrie_remove, pctrie_lookup_ge
from mmbench.blocks.pmap cimport pmap_pte, pmap_ctx_destroy
from mmbench.blocks.pmap_pvchunk cimport pv_list, pmap_bootstrap
from mmbench_freebsd.pmap cimport pmap_remove_all
from mmbench_freebsd.vm_map cimport vm_map_lookup_entry, vm_map_range_mapped, vm_map_range_free
from mmbench_freebsd.vm cimport vm_map_entry_succ
from mmbench_freebsd.vm_fault cimport vm_fault, vm_map_resolve
from mmbench_freebsd.vm_object cimport vm_page_lookup
from mmbench_freebsd.vm_reserv cimport vm_reserv_free_page
from mmbench_freebsd.core import FreeBSDMachine as _Base

from mmbench import errors as _errors
from mmbench.devices import device_fault_pages_option

cdef int64_t VPN_END = (<int64_t>1) << VPN_BITS

DEVICE_COUNTERS = _Base.counter_names + (
    "fault_device_return", "pages_to_device", "pages_to_host", "dma_bytes", "dma_transfers",
    "notifier_calls", "notifier_invalidated", "device_faults", "device_pte_writes",
    "device_tlb_invalidations", "device_evictions",
)


cdef inline bint cpu_may_write(vm_map_entry_t* e, frame_t* page) noexcept nogil:
    """A page may be written through `e` in place: the entry is writable, owns
    its object (no NEEDS_COPY) and the page lives in that first object."""
    return (e.writable and not (e.eflags & MAP_ENTRY_NEEDS_COPY)
            and page.owner == <uint64_t><size_t>e.object)


cdef class FreeBSDDevMachine(FreeBSDMachine):
    """FreeBSD with accelerators: fictitious device pages replace anonymous
    pages in their vm_object (essay in devices.pyx)."""

    name = "freebsd"
    description = ("FreeBSD VM: vm_map entries, vm_object shadow chains (lazy shadowing, "
                   "collapse, bypass), pctrie of pages, pmap with pv_entry reverse map; "
                   "devices through fictitious pages in the object")
    option_defaults = dict(_Base.option_defaults, device_fault_pages=1)
    supports_devices = True
    counter_names = DEVICE_COUNTERS

    def __cinit__(self, *args, **kwargs):
        memset(&self.ds, 0, sizeof(self.ds))
        self.dev_pv = NULL
        self.dev_pfn_count = 0
        devmems_clear(self.devmem)

    def __init__(self, **kw):
        cdef int last, st
        cdef int64_t total
        super().__init__(**kw)
        self.device_fault_pages = device_fault_pages_option(self.options)
        # pv list heads for every frame: fictitious pages have a vm_page (and
        # an empty pv list) like host pages
        last = self.frames.nr_nodes - 1
        total = self.frames.node_base[last] + self.frames.node_size[last]
        pmap_ctx_destroy(&self.vm.md)
        st = pmap_bootstrap(&self.vm.md, total)
        self.dev_pfn_base = self.ram_pages
        self.dev_pfn_count = total - self.ram_pages
        self.dev_pv = <dev_pv_t**>calloc(self.dev_pfn_count + 1, sizeof(dev_pv_t*))
        if st != 0 or self.dev_pv == NULL:
            raise MemoryError()
        if devmems_init(self.devmem, &self.frames, self.ndevices) != 0:
            raise MemoryError()
        # the driver's per-(process, device) page table, sized as linux's dmirror
        side_register(self, &self.ds, 584)          # radix_tree_node objsize here

    def __dealloc__(self):
        cdef int64_t i
        for i in range(1, self.ds.cap):
            side_free(self, &self.ds, i)
        side_destroy(&self.ds)
        if self.dev_pv != NULL:
            for i in range(self.dev_pfn_count):
                self.dev_pv_clear(<pfn_t>(self.dev_pfn_base + i))
            free(self.dev_pv)
            self.dev_pv = NULL
        devmems_destroy(self.devmem)

    # ================================================================ per-process state
    def dma_transfers_each_way(self):
        """DMA transfers issued so far: {"to_device": n, "to_host": n} (exact)."""
        with self.held():
            return self._dma_transfers_each_way()

    def _dma_transfers_each_way(self):
        return side_transfers(&self.ds)

    # ================================================================ device page tables
    cdef void dev_invalidate(self, int64_t pid, int64_t start, int64_t end) noexcept nogil:
        """Erase the device entries of [start, end) of `pid` (the notifier a
        pmap_remove / pmap_protect would call)."""
        side_notify(self, &self.ds, pid, <uint64_t>start, <uint64_t>end, 0)

    cdef int device_map(self, int64_t pid, int dev, int64_t vpn, pfn_t pfn, bint write) noexcept nogil:
        """Enter the page in the device's page table and on its device pv list."""
        cdef dev_pv_t* pv = <dev_pv_t*>malloc(sizeof(dev_pv_t))
        if pv == NULL:
            return MM_ENOMEM
        if side_map(self, &self.ds, pid, dev, <uint64_t>vpn, pfn, write) != MM_OK:
            free(pv)
            return MM_ENOMEM
        pv.pid = pid
        pv.vpn = vpn
        pv.next = self.dev_pv[pfn - self.dev_pfn_base]
        self.dev_pv[pfn - self.dev_pfn_base] = pv
        return MM_OK

    cdef void dev_pv_clear(self, pfn_t pfn) noexcept nogil:
        cdef dev_pv_t* pv = self.dev_pv[pfn - self.dev_pfn_base]
        cdef dev_pv_t* nx
        while pv != NULL:
            nx = pv.next
            free(pv)
            pv = nx
        self.dev_pv[pfn - self.dev_pfn_base] = NULL

    cdef int64_t dev_remove_all(self, pfn_t pfn) noexcept nogil:
        """pmap_remove_all for the device: erase every device entry that still
        names the page (entries the notifier already erased are skipped)."""
        cdef dev_pv_t* pv = self.dev_pv[pfn - self.dev_pfn_base]
        cdef dev_mm_t* h
        cdef dmirror_t* dm
        cdef uint64_t e
        cdef int dev = frame_node(&self.frames, pfn)
        cdef int64_t n = 0
        while pv != NULL:
            self.ctr[C_RMAP_VISITS] += 1
            h = side_of(&self.ds, pv.pid)
            dm = h.ms.dm[dev] if h != NULL else NULL
            e = dmirror_lookup(dm, <uint64_t>pv.vpn) if dm != NULL else 0
            if e != 0 and dpte_pfn(e) == pfn:
                dmirror_invalidate(dm, <uint64_t>pv.vpn, <uint64_t>pv.vpn + 1)
                side_sync(self, &self.ds, h)
                n += 1
            pv = pv.next
        self.dev_pv_clear(pfn)
        self.ctr[C_DEVICE_PTE_WRITES] += n
        self.ctr[C_DEVICE_TLB_INVAL] += n
        return n

    # ================================================================ device memory
    cdef bint is_device_pfn(self, pfn_t pfn) noexcept nogil:
        return pfn != NO_PFN and <int64_t>pfn >= self.dev_pfn_base \
            and <int64_t>pfn < self.dev_pfn_base + self.dev_pfn_count

    cdef pfn_t device_page_alloc(self, int dev) noexcept nogil:
        """A fictitious page of device `dev`; a full device first sends its
        oldest page home."""
        cdef pfn_t pfn, victim
        if frames_free_count(&self.frames, dev) == 0:
            victim = devmem_oldest(&self.devmem[dev])
            while victim != NO_PFN and self.frames.f[victim].refcount == 0:
                devmem_del(&self.devmem[dev], victim)      # freed by the VM meanwhile
                victim = devmem_oldest(&self.devmem[dev])
            if victim == NO_PFN or self.vm_page_migrate(victim, 0) != MM_OK:
                return NO_PFN
            side_dma(self, &self.ds, 1, False)
            self.ctr[C_DEVICE_EVICTIONS] += 1
        pfn = frame_alloc(&self.frames, dev)
        if pfn == NO_PFN:
            return NO_PFN
        if devmem_has(&self.devmem[dev], pfn):             # a frame the VM freed, back in use
            devmem_del(&self.devmem[dev], pfn)
        devmem_add(&self.devmem[dev], pfn)
        self.dev_pv_clear(pfn)           # device pv entries left by a page the VM freed
        self.frames.f[pfn].flags = FR_DEVICE_PRIVATE
        return pfn

    # ================================================================ migration
    cdef int vm_page_migrate(self, pfn_t old, int node) noexcept nogil:
        """vm_page_replace of `old` by a page of `node`, at the same pindex of
        the same object: CPU mappings removed through the pv list (host page)
        or the device entries through the device pv list (fictitious page)."""
        cdef frame_t* o = &self.frames.f[old]
        cdef vm_object_t* obj = <vm_object_t*><size_t>o.owner
        cdef frame_t* d
        cdef pfn_t new
        if node == 0:
            if frames_free_count(&self.frames, 0) < 1:
                return MM_ENOMEM
            new = frame_alloc(&self.frames, 0)
        else:
            new = self.device_page_alloc(node)
            if new == NO_PFN:
                return MM_ENOMEM
        d = &self.frames.f[new]
        d.value = o.value
        d.owner = o.owner
        d.index = o.index
        pctrie_remove(&obj.rtree, o.index, &self.vm.md.kc[KC_PCTRIE])
        if pctrie_insert(&obj.rtree, &d.index, &self.vm.md.kc[KC_PCTRIE]) != 0:
            pctrie_insert(&obj.rtree, &o.index, &self.vm.md.kc[KC_PCTRIE])   # the slot just freed
            frame_free(&self.frames, new)
            return MM_ENOMEM
        if self.is_device_pfn(old):
            self.dev_remove_all(old)
            devmem_del(&self.devmem[frame_node(&self.frames, old)], old)
            self.ctr[C_PAGES_TO_HOST] += 1
        else:
            if o.mapcount:
                pmap_remove_all(&self.vm, old)
            self.ctr[C_PAGES_TO_DEVICE] += 1
        vm_reserv_free_page(&self.vm, old)     # vm_page_replace: the new page is not reserved
        frame_free(&self.frames, old)
        return MM_OK

    cdef int migrate_page(self, pfn_t pfn, int node, move_stats_t* ms) noexcept nogil:
        """Move a resident page to `node` (device to device through the host)."""
        cdef int cur = frame_node(&self.frames, pfn)
        cdef vm_object_t* obj
        cdef int64_t pindex
        cdef int st
        if cur == node:
            return MM_OK
        if cur != 0:
            obj = <vm_object_t*><size_t>self.frames.f[pfn].owner
            pindex = <int64_t>self.frames.f[pfn].index
            st = self.vm_page_migrate(pfn, 0)
            if st != MM_OK:
                return st
            ms.to_host += 1
            if node == 0:
                return MM_OK
            pfn = vm_page_lookup(&self.vm, obj, pindex)
        st = self.vm_page_migrate(pfn, node)
        if st == MM_OK:
            ms.to_device += 1
        return st

    cdef int migrate_map_range(self, vm_map_t* map, int64_t start, int64_t end, int node,
                               move_stats_t* ms) noexcept nogil:
        """Move the page each vpn of [start, end) resolves to (mapped range;
        holes stay holes); a device maps the pages it received.  The vpns that
        can resolve to a page are gathered from the resident pages of each
        entry's object chain first, so the work is bounded by resident pages,
        not by the size of the range (a 2**36-page mapping holding two pages is
        two moves); they are then taken in address order."""
        cdef vm_map_entry_t* e
        cdef int64_t v, k, n = 0
        cdef int depth, st = MM_OK
        cdef pfn_t pfn
        cdef int64_t* cand = NULL
        if resident_vpns(map, start, end, &cand, &n) != 0:
            return MM_ENOMEM
        for k in range(n):
            v = cand[k]
            if k > 0 and v == cand[k - 1]:
                continue                            # a vpn shadowed along its chain
            e = vm_map_lookup_entry(map, v)
            pfn = vm_map_resolve(&self.vm, e, v, &depth)
            if pfn == NO_PFN:
                continue
            st = self.migrate_page(pfn, node, ms)
            if st == MM_OK and node != 0:
                pfn = vm_map_resolve(&self.vm, e, v, &depth)
                st = self.device_map(map.pmap.hdr.pid, node, v, pfn, cpu_may_write(e, &self.frames.f[pfn]))
            if st != MM_OK:
                break
        free(cand)
        return st

    cdef int c_migrate(self, int64_t pid, int64_t vpn, int64_t npages, int node) noexcept nogil:
        cdef vm_map_t* map = self.map_of(pid)
        cdef move_stats_t ms
        cdef int64_t need
        cdef int st
        if not vm_map_range_mapped(map, vpn, vpn + npages):
            return MM_EINVAL
        # home: every fictitious page of the range needs a host frame; count
        # them first, so a migrate that cannot finish changes nothing
        if node == 0:
            need = self.migrate_home_need(map, vpn, vpn + npages)
            if need < 0 or need > frames_free_count(&self.frames, 0):
                return MM_ENOMEM
        ms.to_device = 0
        ms.to_host = 0
        st = self.migrate_map_range(map, vpn, vpn + npages, node, &ms)
        side_dma_flush(self, &self.ds, &ms)
        if st == MM_ENOMEM and node > 0:
            return MM_OK      # to a device: a page that found no frame stays where it is
        return st

    cdef int64_t migrate_home_need(self, vm_map_t* map, int64_t start, int64_t end) noexcept nogil:
        """Host frames a migrate of [start, end) home needs: the fictitious
        pages its vpns resolve to (-1: out of memory while looking)."""
        cdef int64_t* cand = NULL
        cdef int64_t k, n = 0, need = 0
        cdef int depth
        cdef pfn_t pfn
        if resident_vpns(map, start, end, &cand, &n) != 0:
            return -1
        for k in range(n):
            if k > 0 and cand[k] == cand[k - 1]:
                continue
            pfn = vm_map_resolve(&self.vm, vm_map_lookup_entry(map, cand[k]), cand[k], &depth)
            need += self.is_device_pfn(pfn)
        free(cand)
        return need

    # ================================================================ CPU side
    cdef int fault_device_return(self, vm_map_t* map, int64_t vpn, bint write) noexcept nogil:
        """Before the CPU fault: a fictitious page in the chain comes home in
        place (into the object holding it)."""
        cdef uint64_t pte
        cdef vm_map_entry_t* e
        cdef pfn_t pfn
        cdef int depth, d
        # A fictitious page is an allocated device frame: while no device
        # frame is allocated, no chain holds one and there is nothing to look
        # up (the model's shortcut; the kernel finds out from the page itself)
        for d in range(1, self.ndevices + 1):
            if self.frames.node_used[d]:
                break
        else:
            return MM_OK
        pte = pmap_pte(&map.pmap.hdr, vpn)
        if pte_present(pte) and (not write or pte_write(pte)):
            return MM_OK
        e = vm_map_lookup_entry(map, vpn)
        if e == NULL or (write and not e.writable):
            return MM_OK                     # the base reports the error
        pfn = vm_map_resolve(&self.vm, e, vpn, &depth)
        if not self.is_device_pfn(pfn):
            return MM_OK
        # a write that will copy the page once it is home needs the copy's
        # frame too: make sure of both before the page moves
        if write and not cpu_may_write(e, &self.frames.f[pfn]) \
                and frames_free_count(&self.frames, 0) < 2:
            return MM_ENOMEM
        if self.vm_page_migrate(pfn, 0) != MM_OK:
            return MM_ENOMEM
        side_dma(self, &self.ds, 1, False)
        self.ctr[C_FAULTS] += 1
        self.ctr[C_FAULT_DEVICE_RETURN] += 1
        return MM_OK

    cdef int c_read(self, int64_t pid, int64_t vpn, uint64_t* out) noexcept nogil:
        cdef int st
        if self.ndevices:               # (without accelerators no page is fictitious)
            st = self.fault_device_return(self.map_of(pid), vpn, False)
            if st != MM_OK:
                return st
        return MapEntryMachine.c_read(self, pid, vpn, out)

    cdef int c_write(self, int64_t pid, int64_t vpn, uint64_t value) noexcept nogil:
        cdef int st
        if self.ndevices:               # (without accelerators no page is fictitious)
            st = self.fault_device_return(self.map_of(pid), vpn, True)
            if st != MM_OK:
                return st
        return MapEntryMachine.c_write(self, pid, vpn, value)

    # map changes that can leave a device entry stale: erase the range first
    cdef int c_munmap(self, int64_t pid, int64_t vpn, int64_t npages) noexcept nogil:
        self.dev_invalidate(pid, vpn, vpn + npages)
        return MapEntryMachine.c_munmap(self, pid, vpn, npages)

    cdef int c_mprotect(self, int64_t pid, int64_t vpn, int64_t npages, bint writable) noexcept nogil:
        if not writable and vm_map_range_mapped(self.map_of(pid), vpn, vpn + npages):
            self.dev_invalidate(pid, vpn, vpn + npages)
        return MapEntryMachine.c_mprotect(self, pid, vpn, npages, writable)

    cdef int c_madvise_dontneed(self, int64_t pid, int64_t vpn, int64_t npages) noexcept nogil:
        if vm_map_range_mapped(self.map_of(pid), vpn, vpn + npages):
            self.dev_invalidate(pid, vpn, vpn + npages)
        return MapEntryMachine.c_madvise_dontneed(self, pid, vpn, npages)

    cdef int c_mremap(self, int64_t pid, int64_t old_vpn, int64_t npages, int64_t new_vpn) noexcept nogil:
        # The device entries of the old range go once the move has happened:
        # the same end state as invalidating first (the device tables are apart
        # from the pmap), and a move refused for lack of memory keeps them.
        cdef int st = MapEntryMachine.c_mremap(self, pid, old_vpn, npages, new_vpn)
        if st == MM_OK:
            self.dev_invalidate(pid, old_vpn, old_vpn + npages)
        return st

    cdef int c_fork(self, int64_t pid, int64_t* child_out) noexcept nogil:
        self.dev_invalidate(pid, 0, VPN_END)      # NEEDS_COPY: no entry may stay writable
        return MapEntryMachine.c_fork(self, pid, child_out)

    cdef int c_exit(self, int64_t pid) noexcept nogil:
        self.dev_invalidate(pid, 0, VPN_END)
        side_free(self, &self.ds, pid)
        return MapEntryMachine.c_exit(self, pid)

    # ================================================================ device access
    cdef int device_access(self, int dev, int64_t pid, int64_t vpn, bint write, uint64_t* val) noexcept nogil:
        cdef vm_map_t* map = self.map_of(pid)
        cdef dev_mm_t* h = side_of(&self.ds, pid)
        cdef vm_map_entry_t* e
        cdef uint64_t ent = 0
        cdef pfn_t pfn
        cdef int st, depth
        if h != NULL and h.ms.dm[dev] != NULL:
            ent = dmirror_lookup(h.ms.dm[dev], <uint64_t>vpn)
        if ent == 0 or (write and not (ent & DPT_WRITE)):
            e = vm_map_lookup_entry(map, vpn)
            if e == NULL:
                return MM_ESEGV
            if write and not e.writable:
                return MM_EPROT
            st = self.device_fault(dev, map, e, vpn, write)
            if st != MM_OK:
                return st
            h = side_of(&self.ds, pid)
            ent = dmirror_lookup(h.ms.dm[dev], <uint64_t>vpn) if h != NULL and h.ms.dm[dev] != NULL else 0
            if ent == 0:
                # the block could not move (device and host full): the access
                # goes over the link to the page where the CPU fault left it
                pfn = vm_map_resolve(&self.vm, vm_map_lookup_entry(map, vpn), vpn, &depth)
                ent = mk_dpte(pfn, write)
        if write:
            self.frames.f[dpte_pfn(ent)].value = val[0]
        else:
            val[0] = self.frames.f[dpte_pfn(ent)].value
        return MM_OK

    cdef int device_fault(self, int dev, vm_map_t* map, vm_map_entry_t* e, int64_t vpn,
                          bint write) noexcept nogil:
        """The CPU-side fault if the access needs one, then migrate the pages
        the chain resolves to in vpn's aligned block inside the entry (vpn
        last) and map them in the device page table."""
        cdef move_stats_t ms
        cdef int depth, st = MM_OK
        cdef int64_t g = self.device_fault_pages
        cdef int64_t bs = vpn & ~(g - 1), be = (vpn & ~(g - 1)) + g
        cdef pfn_t pfn = vm_map_resolve(&self.vm, e, vpn, &depth)
        self.ctr[C_DEVICE_FAULTS] += 1
        if pfn == NO_PFN or (write and not cpu_may_write(e, &self.frames.f[pfn])):
            st = self.fault_device_return(map, vpn, write)
            if st == MM_OK:
                st = vm_fault(&self.vm, map, e, vpn, write, NULL, &pfn)
            if st != MM_OK:
                return st
            e = vm_map_lookup_entry(map, vpn)
        ms.to_device = 0
        ms.to_host = 0
        bs = bs if bs > e.link.start else e.link.start
        be = be if be < e.link.end else e.link.end
        if bs < vpn:
            st = self.migrate_map_range(map, bs, vpn, dev, &ms)
        if st == MM_OK and vpn + 1 < be:
            st = self.migrate_map_range(map, vpn + 1, be, dev, &ms)
        if st == MM_OK:
            st = self.migrate_map_range(map, vpn, vpn + 1, dev, &ms)
        side_dma_flush(self, &self.ds, &ms)
        # out of frames for the block: what moved stays moved, and the access
        # is served remotely from the page the CPU fault made usable (the
        # fallback to system memory a driver takes when migration fails)
        return MM_OK if st == MM_ENOMEM else st

    cdef int c_device_read(self, int dev, int64_t pid, int64_t vpn, uint64_t* out) noexcept nogil:
        return self.device_access(dev, pid, vpn, False, out)

    cdef int c_device_write(self, int dev, int64_t pid, int64_t vpn, uint64_t value) noexcept nogil:
        return self.device_access(dev, pid, vpn, True, &value)

    # ================================================================ invariants
    cdef int c_check(self) noexcept nogil:
        cdef int st = FreeBSDMachine.c_check(self)
        if st == MM_OK:
            st = self.check_device_pages()
        if st == MM_OK:
            st = self.check_devices()
        return st

    cdef int check_device_pages(self) noexcept nogil:
        """A fictitious page: marked, in an object, never mapped by a CPU pmap."""
        cdef int d
        cdef int64_t p
        cdef frame_t* f
        for d in range(1, self.ndevices + 1):
            for p in range(self.frames.node_base[d], self.frames.node_base[d] + self.frames.node_bump[d]):
                f = &self.frames.f[p]
                if f.refcount == 0:
                    continue
                if not (f.flags & FR_DEVICE_PRIVATE) or f.owner == 0:
                    return self.check_fail("device page not fictitious or in no object")
                if f.mapcount != 0 or pv_list(&self.vm.md, p)[0] != 0:
                    return self.check_fail("fictitious page mapped by a CPU pmap")
                if not devmem_has(&self.devmem[d], <pfn_t>p):
                    return self.check_fail("device page missing from its device's eviction list")
        return MM_OK

    cdef int check_devices(self) noexcept nogil:
        cdef int64_t pid, nodes = 0, mirrors = 0
        cdef dev_mm_t* h
        cdef int st
        for pid in range(1, self.ds.cap):
            h = self.ds.tab[pid]
            if h == NULL:
                continue
            if self.map_of(pid) == NULL:
                return self.check_fail("device page tables of a dead process")
            if h.xa_acct != mirrors_nodes(&h.ms) or h.dm_acct != h.ms.nr:
                return self.check_fail("device page tables not accounted")
            nodes += h.xa_acct
            mirrors += h.dm_acct
            st = self.check_mirrors(self.map_of(pid), h)
            if st != MM_OK:
                return st
        if nodes != self.caches[self.ds.kc_dpt_xa].active or mirrors != self.caches[self.ds.kc_dmirror].active:
            return self.check_fail("dmirror accounting differs from live device page tables")
        return MM_OK

    cdef int check_mirrors(self, vm_map_t* map, dev_mm_t* h) noexcept nogil:
        """Coherence: a device entry names the page the chain resolves to, a
        fictitious page of that device, writable only if the CPU could write it."""
        cdef dmirror_t* dm
        cdef vm_map_entry_t* e
        cdef uint64_t vpn = 0, ent
        cdef pfn_t pfn
        cdef int d, depth
        for d in range(1, self.ndevices + 1):
            dm = h.ms.dm[d]
            if dm == NULL:
                continue
            ent = xa_find(&dm.pt, 0, <uint64_t>VPN_END, &vpn)
            while ent != 0:
                pfn = dpte_pfn(ent)
                e = vm_map_lookup_entry(map, <int64_t>vpn)
                if e == NULL:
                    return self.check_fail("device entry outside every map entry")
                if vm_map_resolve(&self.vm, e, <int64_t>vpn, &depth) != pfn:
                    return self.check_fail("device entry names a page the chain does not resolve to")
                if frame_node(&self.frames, pfn) != d:
                    return self.check_fail("device entry names memory of another node")
                if (ent & DPT_WRITE) and not cpu_may_write(e, &self.frames.f[pfn]):
                    return self.check_fail("writable device entry the CPU could not write")
                ent = xa_find(&dm.pt, vpn + 1, <uint64_t>VPN_END, &vpn)
        return MM_OK

    # ================================================================ introspection
    def page_node(self, pid, vpn):
        """Where the page `pid` reaches at vpn lives: 0 host, d device, None nowhere yet."""
        with self.held():
            return self._page_node(pid, vpn)

    def _page_node(self, pid, vpn):
        cdef vm_map_entry_t* e = vm_map_lookup_entry(self.map_of(self._pid(pid)), self._range(vpn)[0])
        cdef int depth
        cdef pfn_t pfn
        if e == NULL:
            raise _errors.SegmentationFault(f"pid {pid}: vpn {vpn} is not mapped")
        pfn = vm_map_resolve(&self.vm, e, vpn, &depth)
        return None if pfn == NO_PFN else int(frame_node(&self.frames, pfn))


cdef int cmp_int64(const void* a, const void* b) noexcept nogil:
    cdef int64_t x = (<const int64_t*>a)[0], y = (<const int64_t*>b)[0]
    return (x > y) - (x < y)


cdef int resident_vpns(vm_map_t* map, int64_t start, int64_t end, int64_t** out, int64_t* n) noexcept nogil:
    """The vpns of [start, end) (every page mapped) at which some object of their
    entry's chain holds a resident page, sorted (a vpn can appear once per object
    holding it).  -1 when out of memory (nothing allocated then)."""
    cdef vm_map_entry_t* e = vm_map_lookup_entry(map, start)
    cdef vm_object_t* obj
    cdef int64_t s, t, off, cap = 0, cnt = 0
    cdef uint64_t key
    cdef uint64_t* item
    cdef int64_t* buf = NULL
    cdef int64_t* nb
    while e != NULL and e.link.start < end:
        s = e.link.start if e.link.start > start else start
        t = e.link.end if e.link.end < end else end
        obj = e.object
        off = e.offset - e.link.start                    # pindex in obj = vpn + off
        while obj != NULL:
            key = <uint64_t>(s + off)
            while True:
                item = pctrie_lookup_ge(&obj.rtree, key)
                if item == NULL or <int64_t>item[0] >= t + off:
                    break
                if cnt == cap:
                    cap = cap * 2 if cap else 64
                    nb = <int64_t*>realloc(buf, cap * sizeof(int64_t))
                    if nb == NULL:
                        free(buf)
                        return -1
                    buf = nb
                buf[cnt] = <int64_t>item[0] - off
                cnt += 1
                key = item[0] + 1
            off += obj.backing_object_offset
            obj = obj.backing_object
        e = vm_map_entry_succ(e)
    if cnt:
        qsort(buf, cnt, sizeof(int64_t), cmp_int64)
    out[0] = buf
    n[0] = cnt
    return 0
