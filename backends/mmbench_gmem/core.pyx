# mmbench_gmem.core — GMEM: a logical page table beside Linux's physical one.
#
# The design in its own words
# ---------------------------
# The GMEM RFC (Weixi Zhu, 2023) keeps Linux's VMAs and CPU page tables but
# adds, per process attached to a device (a gm_context on mm->gm_as), a
# `vm_object` (after FreeBSD's) whose xarray — the *logical page table* — maps
# every touched block of peer-shared memory to a `gm_mapping` telling where
# that block is right now:
#
#      mm ── vm_object ── xarray  vpn>>0 of the block → gm_mapping { flag, dev, mutex }   (48 B each)
#                                       │ NOMAP   nowhere yet: a fault allocates (CPU) or peer_maps (device)
#                                       │ CPU     host frames, mapped by the CPU page table
#                                       │ DEVICE  device frames, mapped by the device's own MMU (peer_map)
#      CPU page table ── PTE ── host frame         (only while the block's gm_mapping says CPU)
#      device MMU     ── pmap ── device frame      (only while it says DEVICE)
#      device memory  ── hnode ── gm_mapping per device page   (static, gm_dev_register_physmem)
#
# A block is in exactly one place (the RFC's COHERENT_EXCLUSIVE mode), so no
# notifier has to keep a device copy coherent with a CPU PTE: moving a block
# is an explicit transition of its gm_mapping under the mapping's mutex.
#
# Granularity (option granularity_pages; when not given, device_fault_pages,
# the device-fault block every device design takes, default 512): the RFC's device fault
# works in HPAGE_SIZE units - gm_dev_fault looks up *one* gm_mapping, zaps
# 2 MiB of CPU PTEs (zap_page_range_single) and peer_maps 2 MiB - and its CPU
# fault path for such memory is do_huge_pmd_anonymous_page, which creates one
# gm_mapping per 2 MiB (vm_object_mapping_create(haddr)).  So by default one
# gm_mapping covers an aligned 2 MiB block.  granularity_pages=1 is the
# order-0 path (do_anonymous_page: one gm_mapping per 4 KiB page, one page per
# device fault).  A machine whose device is smaller than a block uses the
# largest power of two that fits (a test-sized device; real devices hold GiBs).
#
#   device fault   gm_dev_fault(block): CPU → copy the resident pages over the
#                  link, zap the block's CPU PTEs (one TLB flush), peer_map the
#                  block; NOMAP → peer_map fresh device memory (no copy);
#                  DEVICE here → re-peer_map what the device page table lost
#                  (and give holes a page); DEVICE elsewhere → copy device to
#                  device (the RFC returns without moving: see below).  The
#                  device allocates a frame for every page of the block that
#                  lies in a peer-shared VMA (it maps 2 MiB); one DMA batch.
#   CPU fault      do_anonymous_page on a missing PTE looks the block's
#                  gm_mapping up (creating it NOMAP): DEVICE → gm_host_fault:
#                  the whole block comes home (gm_host_fault_locked copies
#                  HPAGE_SIZE), host frames mapped by PTEs, flag CPU; otherwise
#                  a zeroed frame — *also for reads*: the zero page is disabled
#                  for peer-shared memory.  Where thp allows it and a block is
#                  2 MiB, the first CPU fault of a NOMAP/CPU block takes the
#                  RFC's do_huge_pmd_anonymous_page path: linux's THP code maps a
#                  PMD-sized folio (reads too: no huge zero folio), block CPU.
#                  Otherwise 4 KiB frames, so a CPU block may have holes.  A
#                  DEVICE block always comes home by PTEs (simplified: the RFC's
#                  gm_host_fault_locked(vmf, order) would map the PMD).  Memory
#                  that is not peer-shared stays at 4 KiB with devices (linux's
#                  HMM paths walk PTE tables only).
#   prefetch       hmadvise_willneed(): WILLNEED on the blocks, then gm_dev_fault
#                  block by block (the model is synchronous, so WILLNEED lasts
#                  only while the block moves).
#   lifetime       gm_mappings are created on first touch and never freed while
#                  a peer-shared VMA covers their block (MADV_DONTNEED drops the
#                  pages, flag NOMAP when the whole block went); munmap frees
#                  them with the last VMA (free_gm_mappings), exit frees the object.
#   no device      gm_alloc_va_in_peer_devices fails without a device context
#                  (mm->gm_as): on a machine with devices=0 no memory is
#                  peer-shared and gmem is exactly the linux design (zero-page
#                  reads, no vm_object, no gm_mapping).
#
# What the RFC does not define — the project's own choices (labelled so in the
# docs and in the design's notes):
#   fork   the child must see a copy of every page, but a DEVICE block has no CPU
#          PTE for copy_page_range to share.  So fork first brings every DEVICE
#          block of the parent home (gm_host_fault, counted as pages_to_host),
#          then runs Linux's fork unchanged (COW on CPU PTEs), then gives the
#          child its own vm_object with a CPU gm_mapping per block it received.
#          A later device fault of either side copies *its* view to the device
#          (the zap drops only that side's reference), which breaks COW by itself.
#   mremap DEVICE blocks of the old and new ranges come home first, the PTEs move
#          as in Linux, the moved pages get CPU gm_mappings at their new blocks
#          and the old blocks' gm_mappings go with the old VMA.  Everything the
#          home-coming and the move can allocate is reserved before the first
#          block comes home (gm_mremap_reserve), so a refused mremap leaves
#          every block where it was.
#   mprotect  Linux's change_protection plus the notifier of the device side
#          drops the device mappings of the range (pmap_protect); the next device
#          access re-peer_maps the block with the new protection.
#   device to device  a DEVICE block faulted by another device is copied device
#          to device (the RFC's gm_dev_fault returns "already on a device").
# Shared (MAP_SHARED) mappings are not peer-shared in the RFC: they behave as in
# the linux design (remote device mapping kept coherent by the notifier).  With
# option peer_shared="marked", only VMAs mapped by mmap_peer_shared (flag
# VM_PEER_SHARED) are; other private memory is Linux + HMM, device-private
# PTEs included, so both mechanisms can live in one machine.
#
# Oversubscription: a full device evicts its oldest page (FIFO) and with it
# that page's whole block, back to host frames mapped by CPU PTEs, flag CPU.
# (The RFC parks evicted pages in gm_mapping->page for the next CPU fault to
# reuse; mapping them at once keeps every host frame reachable from a PTE and
# costs the same copy.)
#
# The simulator's storage (no kernel counterpart, no effect on any count): a
# gm_mapping is one 64-bit word kept in the logical page table's slot for its
# block — flag, device, and 1 + the number of the block's device-frame array
# in a handles table (core.pxd) — rather than a record of its own; the kernel's
# 48 B per gm_mapping are charged to its slab cache as before.  The code holds
# a gm_mapping by its slot's address, which stays put while the mapping lives.
#
# Structure: peer-shared memory; vm_object / logical page table; device
# memory of blocks and gm_mmu ops (peer_map = device page-table entries,
# peer_unmap); device fault; CPU fault; migration and prefetch; Linux paths
# that zap/unmap/fork/mremap; invariants.

from libc.stdlib cimport calloc, malloc, free
from libc.stdint cimport int64_t, uint64_t, int32_t, uint32_t

from mmbench.core cimport (MM_OK, MM_ESEGV, MM_EPROT, MM_ENOMEM, MM_EINVAL, VPN_BITS,
                           C_FAULT_DEVICE_RETURN, C_FAULT_ZERO_FILL, C_PAGES_ZEROED, C_PTE_WRITES,
                           C_TLB_FLUSHES, C_PTE_ZAPS, C_PAGES_TO_DEVICE, C_PAGES_TO_HOST, C_DEVICE_PTE_WRITES,
                           C_DEVICE_TLB_INVAL, C_GM_MAPPING_ALLOC, C_OBJECTS_ALLOC, C_OBJECTS_FREE,
                           C_XA_NODE_ALLOC, C_XA_NODE_FREE, C_DEVICE_EVICTIONS)
from mmbench.blocks.frames cimport (frame_t, pfn_t, NO_PFN, ZERO_PFN, FR_DESIGN1, frame_node,
                                    frames_free_count, frame_value)
from mmbench.blocks.pagetable cimport (pt_node_t, PTE_PRESENT, PTE_WRITE, PTE_SPECIAL, mk_pte, pte_pfn,
                                       pt_leaf, pt_find_leaf, pt_get, pt_set, pt_next, pt_free_range)
from mmbench.blocks.pmdwalk cimport pmd_leaf_next
from mmbench.blocks.xarray cimport (xa_init, xa_destroy, xa_store, xa_erase, xa_load_slot, xa_find_slot,
                                    xa_hint_ok)
from mmbench.blocks.handles cimport handles_init, handles_destroy, handles_take, handles_put, handles_live
from mmbench.blocks.devside cimport side_of, side_free, side_sync, side_dma
from mmbench.blocks.devmirror cimport (dmirror_t, dmirror_lookup, dmirror_invalidate, dpte_pfn, devmem_has,
                                       devmem_add, devmem_del, devmem_oldest, devmem_frame_alloc,
                                       devmem_frame_free, DPT_WRITE, pidtab_reserve, devmem_t)
from mmbench_linux.core cimport LinuxMachine
from mmbench_linux.maple cimport mt_trim
from mmbench_linux.mm cimport (mm_t, vma_t, vm_fault_t, VM_WRITE, VM_SHARED, VM_FAULT_DONE, VM_FAULT_OOM,
                               VM_FAULT_FALLBACK, FAULT_FLAG_WRITE, mm_pte_at,
                               VM_READ, VM_MAYREAD, VM_MAYWRITE, VM_ACCOUNT)
from mmbench_linux.hmm cimport LinuxHMMMachine, dev_mm_t
from mmbench_linux.hmm import HMM_COUNTERS

from mmbench import errors as _errors

cdef enum:
    FR_GM_DEVICE = FR_DESIGN1       # device frame of a gm block (owner = vm_object, index = vpn)
# a PTE slot a DEVICE page will come home to, held while mremap reserves (never present)
cdef uint64_t GM_PTE_HOLD = PTE_SPECIAL | ((<uint64_t>0x6d6d) << 48)

cdef uint64_t VPN_END = (<uint64_t>1) << VPN_BITS
cdef uint64_t NO_VPN = <uint64_t>-1

GMEM_COUNTERS = HMM_COUNTERS + ("gm_mapping_alloc",)

# struct hnode of the RFC's mm/gmem.c: id 4 (+4), struct gm_dev * 8, struct xarray 16 [computed]
HNODE_SIZE = 32


cdef inline uint64_t linear_index(vma_t* v, uint64_t vpn) noexcept nogil:
    return v.vm_pgoff + (vpn - v.vm_start)


def xa_dense_nodes(int64_t n):
    """xa_nodes of an xarray holding indices 0..n-1 (64 slots a node; one entry
    needs none: it lives in the head)."""
    cdef int64_t nodes = 0
    if n <= 1:
        return 0
    while True:
        n = (n + 63) // 64
        nodes += n
        if n == 1:
            return nodes


cdef inline gm_mapping_t* gm_next_device(vm_object_t* obj, uint64_t* pos, uint64_t end,
                                         uint64_t* idx) noexcept nogil:
    """The next DEVICE block's gm_mapping from *pos on (below end), its first vpn in
    *idx, *pos moved past it; NULL when there is none (or no object at all)."""
    cdef gm_mapping_t* gm
    if obj == NULL:
        return NULL
    while pos[0] < end:
        gm = xa_find_slot(&obj.logical_page_table, pos[0], end - 1, idx)
        if gm == NULL:
            return NULL
        pos[0] = idx[0] + 1
        if gm_flag(gm) & GM_PAGE_DEVICE:
            return gm
    return NULL

cdef class GmemMachine(LinuxHMMMachine):
    """GMEM RFC: Linux VMAs + CPU page tables, plus a per-process vm_object whose
    logical page table (xarray of 48-B gm_mappings, one per 2 MiB block) says
    where each block is."""

    name = "gmem"
    description = ("GMEM RFC: Linux VMAs/page tables + per-process vm_object logical page table "
                   "(gm_mapping per 2 MiB block, CPU xor DEVICE), 2 MiB device faults, zero page "
                   "disabled for peer-shared memory; no device: exactly linux")
    design_notes = ("gmem: the RFC defines no fork, mremap or mprotect of peer-shared memory, nor a device "
             "fault on a block another device holds; mmbench's choices: fork and mremap first bring "
             "device blocks home (counted as pages_to_host), mprotect drops the device mappings "
             "(re-peer_map on the next device access), a second device copies the block device to "
             "device.",
             "gmem: memory is peer-shared only on a machine with devices (a device context); with "
             "devices=0 gmem runs exactly as linux.",
             "gmem: one gm_mapping (48 B) per 2 MiB block (granularity_pages=512, the RFC's huge-page "
             "path; 1 = 4 KiB); device memory carries a static 48-B gm_mapping per device page "
             "(gm_dev_register_physmem).  CPU faults of peer-shared memory map a 2 MiB block with one "
             "PMD where thp allows it (granularity_pages=512), a block coming home from a device "
             "comes back by 4 KiB PTEs; memory that is not peer-shared stays at 4 KiB with devices "
             "(linux's HMM paths walk PTE tables only).")
    option_defaults = dict(LinuxHMMMachine.option_defaults, granularity_pages=None, peer_shared="all")
    supports_devices = True
    counter_names = GMEM_COUNTERS

    def __cinit__(self, *args, **kwargs):
        self.objs = NULL
        self.objs_cap = 0
        self.hnode_acct[0] = self.hnode_acct[1] = self.hnode_acct[2] = 0
        handles_init(&self.gm_frames, 0xFFFFFFFF)       # 1 + a number fits the word's 32 bits

    def __init__(self, **kw):
        super().__init__(**kw)
        g = self.options["granularity_pages"]
        if g is None:
            g = self.device_fault_pages                # already checked by LinuxHMMMachine
        if isinstance(g, bool) or not isinstance(g, int) or not (1 <= g <= 512) or (g & (g - 1)):
            raise _errors.InvalidArgument("granularity_pages must be a power of two in 1..512")
        while g > self.device_pages:                   # a device smaller than one block
            g >>= 1
        self.granularity = g
        ps = self.options["peer_shared"]
        if ps not in ("all", "marked"):
            raise _errors.InvalidArgument("peer_shared must be 'all' or 'marked'")
        self.all_peer_shared = ps == "all"
        if self.all_peer_shared and self.options["device_fault"] == "remote":
            raise _errors.NotSupported("gmem migrates peer-shared memory on device faults; it has no "
                                       "remote mode (device_fault='remote' needs peer_shared='marked')")
        # 2 MiB host mappings (the RFC's do_huge_pmd_anonymous_page path) where THP
        # applies: every private anonymous VMA without devices (exactly linux), and
        # peer-shared VMAs with devices when a block is the PMD size, so one
        # gm_mapping describes one PMD.  Other memory stays on linux's 4 KiB HMM paths.
        self.thp_pmd = self.ndevices == 0 or self.granularity == 512
        self.thp_mode = ("never", "madvise", "always").index(self.options["thp"]) if self.thp_pmd else 0
        if self.thp_pmd:
            self.folio_meta_init()
        self.kc_vm_object = self.slab_register("vm_object", 24)
        self.kc_lpt_xarray = self.slab_register("xarray (vm_object)", 16)
        self.kc_gm_mapping = self.slab_register("gm_mapping", 48)
        self.kc_lpt_xa = self.slab_register("xa_node (logical page table)", 576)
        # gm_dev_register_physmem: per device an hnode, a kvmalloc'd array of one
        # gm_mapping per device page, and the hnode->pages xarray indexing it
        self.kc_hnode = self.slab_register("hnode", HNODE_SIZE, False)
        self.kc_hnode_gm = self.slab_register("gm_mapping (device memory)", 48, False)
        self.kc_hnode_xa = self.slab_register("xa_node (hnode pages)", 576, False)
        self.kmem_sync(self.kc_hnode, &self.hnode_acct[0], self.ndevices)
        self.kmem_sync(self.kc_hnode_gm, &self.hnode_acct[1], self.ndevices * self.device_pages)
        self.kmem_sync(self.kc_hnode_xa, &self.hnode_acct[2],
                       self.ndevices * xa_dense_nodes(self.device_pages))

    def __dealloc__(self):
        cdef int64_t pid
        if self.procs != NULL:
            for pid in range(1, self.next_pid):
                if self.procs[pid] != NULL:
                    self.exit_mmap(<mm_t*>self.procs[pid])
                    self.procs[pid] = NULL
                    side_free(self, &self.ds, pid)
                    self.obj_free(pid)
        free(self.objs)
        self.objs = NULL
        handles_destroy(&self.gm_frames)

    # ================================================================ peer-shared memory
    cdef bint peer_shared(self, vma_t* v) noexcept nogil:
        """MAP_PRIVATE | MAP_PEER_SHARED on a machine with a device: every private
        anonymous VMA (peer_shared="all"), or those mapped with mmap_peer_shared."""
        return self.ndevices > 0 and v.vm_file == NULL \
            and (self.all_peer_shared or (v.vm_flags & VM_PEER_SHARED) != 0)

    cdef vma_t* peer_vma_from(self, mm_t* mm, uint64_t vpn, uint64_t end, uint64_t* s,
                              uint64_t* e) noexcept nogil:
        """The first peer-shared VMA overlapping [vpn, end) and the overlap [s, e); NULL if none."""
        cdef int64_t i
        cdef vma_t* v
        if vpn >= end:
            return NULL
        i = self.vma_index(mm, vpn)
        while i < mm.nr_vmas and mm.vmas[i].vm_start < end:
            v = mm.vmas[i]
            if self.peer_shared(v):
                s[0] = vpn if vpn > v.vm_start else v.vm_start
                e[0] = end if end < v.vm_end else v.vm_end
                return v
            i += 1
        return NULL

    cdef int64_t peer_pages(self, mm_t* mm, uint64_t b) noexcept nogil:
        """Pages of block b lying in peer-shared VMAs."""
        cdef uint64_t pos = b, s, e
        cdef int64_t n = 0
        while self.peer_vma_from(mm, pos, b + <uint64_t>self.granularity, &s, &e) != NULL:
            n += e - s
            pos = e
        return n

    def mmap_peer_shared(self, pid, vpn, npages, writable=True):
        """mmap(MAP_PRIVATE | MAP_PEER_SHARED): anonymous private memory managed by gmem.
        With peer_shared="marked" only such VMAs get gm_mappings; the rest of private
        memory is Linux + HMM (device-private entries).  Without a device it is a plain
        private mapping (no device context to allocate the range in)."""
        with self.held():
            return self._mmap_peer_shared(pid, vpn, npages, writable)

    def _mmap_peer_shared(self, pid, vpn, npages, writable=True):
        cdef mm_t* mm
        cdef int64_t i
        cdef uint64_t start, end, vm_flags = VM_READ | VM_MAYREAD | VM_MAYWRITE | VM_PEER_SHARED
        cdef int st
        if self.all_peer_shared or self.ndevices == 0:
            return self.mmap(pid, vpn, npages, False, writable)
        pid = self._pid(pid)
        vpn, npages = self._range(vpn, npages)
        if not isinstance(writable, bool):
            raise _errors.InvalidArgument(f"writable must be True or False, got {writable!r}")
        mm = <mm_t*>self.procs[pid]
        start = <uint64_t>vpn
        end = <uint64_t>(vpn + npages)
        i = self.vma_index(mm, start)
        if i < mm.nr_vmas and mm.vmas[i].vm_start < end:
            st = MM_EINVAL
        else:
            # the VMA is born peer-shared (MAP_PEER_SHARED is an mmap flag): it merges
            # only with peer-shared neighbours, and a refused mmap leaves nothing
            if writable:
                vm_flags |= VM_WRITE | VM_ACCOUNT
            st = self.mmap_private(mm, i, start, end, vm_flags)
            self.mt_sync(mm)
        self._fail(st, "mmap", pid, vpn, npages)

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
            gm = xa_find_slot(&obj.logical_page_table, start, NO_VPN, &idx)
            if gm == NULL:
                break
            self.gm_release_frames(obj.mm, idx, gm, idx, idx + <uint64_t>self.granularity)
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
        """vm_object_lookup: the gm_mapping of vpn's block, NULL if none."""
        cdef vm_object_t* obj = self.obj_of(mm)
        cdef gm_mapping_t* gm
        if obj == NULL:
            return NULL
        gm = xa_load_slot(&obj.logical_page_table, vpn & ~(<uint64_t>self.granularity - 1))
        return gm if gm != NULL and gm[0] != 0 else NULL

    cdef gm_mapping_t* gm_get(self, mm_t* mm, uint64_t vpn) noexcept nogil:
        """vm_object_mapping_create on first touch of vpn's block: zeroed, NOMAP."""
        cdef gm_mapping_t* gm = self.gm_lookup(mm, vpn)
        cdef vm_object_t* obj
        cdef uint64_t b = vpn & ~(<uint64_t>self.granularity - 1)
        if gm != NULL:
            return gm
        obj = self.obj_get(mm)
        if obj == NULL:
            return NULL
        if xa_store(&obj.logical_page_table, b, gm_word(GM_PAGE_NOMAP, 0, -1)) != 0:
            self.lpt_sync(obj)
            return NULL
        obj.nr_pages += 1
        self.kmem_alloc(self.kc_gm_mapping)
        self.ctr[C_GM_MAPPING_ALLOC] += 1
        self.lpt_sync(obj)
        return xa_load_slot(&obj.logical_page_table, b)       # the leaf xa_store walked to

    cdef void free_gm_mappings(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil:
        """VMAs over [start, end) are gone: the gm_mapping of every block no peer-shared
        VMA covers any more is freed (its device pages went with the zap)."""
        cdef vm_object_t* obj = self.obj_of(mm)
        cdef gm_mapping_t* gm
        cdef uint64_t idx = 0, g = <uint64_t>self.granularity
        if obj == NULL:
            return
        start &= ~(g - 1)
        while start < end:
            gm = xa_find_slot(&obj.logical_page_table, start, end - 1, &idx)
            if gm == NULL:
                break
            if self.peer_pages(mm, idx) == 0:
                self.gm_release_frames(mm, idx, gm, idx, idx + g)
                xa_erase(&obj.logical_page_table, idx)
                obj.nr_pages -= 1
                self.kmem_free(self.kc_gm_mapping)
            start = idx + 1
        self.lpt_sync(obj)

    cdef void unmap_gm_mappings_range(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil:
        """zap hook: device pages of [start, end) are dropped; a CPU block keeping no
        PTE outside the range becomes NOMAP (the caller is zapping the PTEs inside
        it).  The gm_mappings stay."""
        cdef vm_object_t* obj = self.obj_of(mm)
        cdef gm_mapping_t* gm
        cdef uint64_t idx = 0, g = <uint64_t>self.granularity, pos = start & ~(g - 1), s, e, vpn
        cdef bint left
        if obj == NULL:
            return
        while pos < end:
            gm = xa_find_slot(&obj.logical_page_table, pos, end - 1, &idx)
            if gm == NULL:
                break
            self.gm_release_frames(mm, idx, gm, start, end)
            if gm_flag(gm) & GM_PAGE_CPU:
                left = False
                pos = idx
                while not left and self.peer_vma_from(mm, pos, idx + g, &s, &e) != NULL:
                    for vpn in range(s, e):
                        if (vpn < start or vpn >= end) and mm_pte_at(mm, vpn) != 0:
                            left = True
                            break
                    pos = e
                if not left:
                    gm_set_flag(gm, GM_PAGE_NOMAP)
            pos = idx + 1

    cdef int gm_cpu_populate(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil:
        """A CPU gm_mapping for every block with a present PTE of peer-shared memory in
        [start, end) (pages that arrived by fork or mremap rather than by a fault; the
        callers brought every DEVICE block of the range home first)."""
        cdef uint64_t vpn = start, h = 0
        cdef pt_node_t* t
        while mm.nr_huge_pmd and pmd_leaf_next(&mm.pgd, h if h > start else start, end, &h) != NULL:
            if self.gm_cpu_mark(mm, h) != MM_OK:    # a PMD leaf fork copied (copy_huge_pmd)
                return MM_ENOMEM
            h += 512
        while True:
            t = pt_next(&mm.pgd, vpn, end, &vpn)
            if t == NULL:
                return MM_OK
            if self.gm_cpu_mark(mm, vpn) != MM_OK:
                return MM_ENOMEM
            vpn += 1

    cdef int gm_cpu_mark(self, mm_t* mm, uint64_t vpn) noexcept nogil:
        """vpn's block gets a CPU gm_mapping when its VMA is peer-shared: MM_OK, or
        MM_ENOMEM."""
        cdef vma_t* v = self.find_vma(mm, vpn)
        cdef gm_mapping_t* gm
        if v != NULL and self.peer_shared(v):
            gm = self.gm_get(mm, vpn)
            if gm == NULL:
                return MM_ENOMEM
            gm_set_flag(gm, GM_PAGE_CPU)
        return MM_OK

    # ================================================================ device memory of blocks, gm_mmu
    cdef pfn_t gm_frame_alloc(self, int dev, vm_object_t* obj, uint64_t vpn) noexcept nogil:
        """A device frame for page vpn of a block (the caller reserved room): the
        driver's device memory, described by its static hnode gm_mapping."""
        cdef pfn_t pfn = devmem_frame_alloc(self.devmem, &self.frames, dev)
        cdef frame_t* f
        if pfn != NO_PFN:
            f = &self.frames.f[pfn]
            f.owner = <uint64_t><size_t>obj
            f.index = vpn
            f.flags = FR_GM_DEVICE
        return pfn

    cdef void gm_release_frames(self, mm_t* mm, uint64_t b, gm_mapping_t* gm, uint64_t start,
                                uint64_t end) noexcept nogil:
        """Drop (no copy) the device pages of a DEVICE block lying in [start, end):
        peer_unmap, frames back to the device; the block turns NOMAP when none is left."""
        cdef uint64_t i, lo, hi
        cdef bint left = False
        cdef pfn_t* pages
        if not (gm_flag(gm) & GM_PAGE_DEVICE):
            return
        pages = gm_pages(&self.gm_frames, gm)
        lo = start if start > b else b
        hi = b + <uint64_t>self.granularity
        hi = end if end < hi else hi
        if lo < hi:
            self.peer_unmap(mm, gm_dev(gm), lo, hi)
        for i in range(<uint64_t>self.granularity):
            if pages[i] == NO_PFN:
                continue
            if lo <= b + i < hi:
                devmem_frame_free(self.devmem, &self.frames, pages[i])
                pages[i] = NO_PFN
            else:
                left = True
        if not left:
            handles_put(&self.gm_frames, gm_pages_nr(gm))
            free(pages)
            gm[0] = gm_word(GM_PAGE_NOMAP, 0, -1)

    cdef void gm_touch(self, gm_mapping_t* gm) noexcept nogil:
        """The block's frames become the newest of its device's FIFO (peer_map marks
        them hot), so that making room for the block never evicts the block."""
        cdef int64_t i
        cdef pfn_t* pages = gm_pages(&self.gm_frames, gm)
        cdef devmem_t* d = &self.devmem[gm_dev(gm)]
        for i in range(self.granularity):
            if pages[i] != NO_PFN:
                devmem_del(d, pages[i])
                devmem_add(d, pages[i])

    cdef int64_t gm_eviction_cost(self, int dev, int64_t need) noexcept nogil:
        """Host frames taken by evicting dev's oldest pages until `need` of its
        frames are free: a gm block goes home whole, so one victim may cost (and
        free) several frames.  -1 when the device cannot free that many."""
        cdef devmem_t* d = &self.devmem[dev]
        cdef int64_t k = need - frames_free_count(&self.frames, dev), cost = 0, nseen = 0, j, i
        cdef int64_t cap = k
        cdef int32_t at = d.head
        cdef frame_t* f
        cdef gm_mapping_t* gm
        cdef gm_mapping_t** seen
        cdef pfn_t* pages
        if k <= 0:
            return 0
        seen = <gm_mapping_t**>malloc(k * sizeof(gm_mapping_t*))
        if seen == NULL:
            return -1
        while k > 0 and at >= 0:
            f = &self.frames.f[d.base + at]
            at = d.next[at]
            if not (f.flags & FR_GM_DEVICE):
                k -= 1                           # one device-private page, one host frame
                cost += 1
                continue
            gm = self.gm_lookup((<vm_object_t*><size_t>f.owner).mm, f.index)
            for j in range(nseen):
                if seen[j] == gm:
                    break
            else:
                if nseen == cap:                 # every block frees its victim at least
                    break
                seen[nseen] = gm
                nseen += 1
                pages = gm_pages(&self.gm_frames, gm)
                for i in range(self.granularity):
                    if pages[i] != NO_PFN:
                        k -= 1
                        cost += 1
        free(seen)
        return cost if k <= 0 else -1

    cdef bint gm_can_make_room(self, int dev, int64_t need) noexcept nogil:
        cdef int64_t cost = self.gm_eviction_cost(dev, need)
        return cost >= 0 and cost <= frames_free_count(&self.frames, 0)

    cdef int device_reserve(self, int dev, int64_t n) noexcept nogil:
        """linux's check, with evictions that take whole gm blocks home."""
        return MM_OK if self.gm_can_make_room(dev, n) else MM_ENOMEM

    cdef int gm_device_reserve(self, int dev, int64_t need) noexcept nogil:
        """Room for `need` frames on dev: evict the oldest pages (with their
        blocks), once it is sure the host can take them all."""
        cdef pfn_t victim
        if not self.gm_can_make_room(dev, need):
            return MM_ENOMEM
        while frames_free_count(&self.frames, dev) < need:
            victim = devmem_oldest(&self.devmem[dev])
            if victim == NO_PFN or self.evict_device_page(victim) != MM_OK:
                return MM_ENOMEM
        return MM_OK

    cdef void peer_unmap(self, mm_t* mm, int dev, uint64_t start, uint64_t end) noexcept nogil:
        """mmu->peer_unmap: the device page-table entries of [start, end) go, with one
        device TLB invalidation."""
        cdef dev_mm_t* h = side_of(&self.ds, mm.pid)
        cdef int64_t nodes, n
        if h == NULL or h.ms.dm[dev] == NULL:
            return
        nodes = h.ms.dm[dev].pt.nr_nodes
        n = dmirror_invalidate(h.ms.dm[dev], start, end)
        if n:
            self.ctr[C_DEVICE_PTE_WRITES] += n
            self.ctr[C_DEVICE_TLB_INVAL] += 1
            if h.ms.dm[dev].pt.nr_nodes != nodes:
                side_sync(self, &self.ds, h)

    cdef int peer_map(self, mm_t* mm, uint64_t b, gm_mapping_t* gm) noexcept nogil:
        """mmu->peer_map of a DEVICE block: every page with a device frame gets its
        device page-table entry (writable as its VMA), unless it already has it."""
        cdef dev_mm_t* h
        cdef uint64_t i, e
        cdef vma_t* v
        cdef bint w
        cdef int st, dev = gm_dev(gm)
        cdef pfn_t* pages = gm_pages(&self.gm_frames, gm)
        for i in range(<uint64_t>self.granularity):
            if pages[i] == NO_PFN:
                continue
            v = self.find_vma(mm, b + i)
            w = (v.vm_flags & VM_WRITE) != 0
            h = side_of(&self.ds, mm.pid)
            e = dmirror_lookup(h.ms.dm[dev], b + i) if h != NULL and h.ms.dm[dev] != NULL else 0
            if e != 0 and dpte_pfn(e) == pages[i] and ((e & DPT_WRITE) != 0) == w:
                continue
            st = self.device_map(mm, dev, b + i, pages[i], w)
            if st != MM_OK:
                return st
        return MM_OK

    cdef int evict_device_page(self, pfn_t dpfn) noexcept nogil:
        """Oversubscription: the device's oldest page goes home with its whole block,
        mapped by CPU PTEs (a device-private page of non-peer-shared memory: as in linux)."""
        cdef frame_t* f = &self.frames.f[dpfn]
        cdef vm_object_t* obj
        cdef gm_mapping_t* gm
        cdef int64_t before = self.ctr[C_PAGES_TO_HOST]
        if not (f.flags & FR_GM_DEVICE):
            return LinuxHMMMachine.evict_device_page(self, dpfn)
        obj = <vm_object_t*><size_t>f.owner
        gm = self.gm_lookup(obj.mm, f.index)
        if self.gm_host_fault(obj.mm, f.index & ~(<uint64_t>self.granularity - 1), gm) != MM_OK:
            return MM_ENOMEM
        self.ctr[C_DEVICE_EVICTIONS] += self.ctr[C_PAGES_TO_HOST] - before
        return MM_OK

    # ================================================================ device fault (to the device)
    cdef int64_t gm_fill_block(self, int dev, mm_t* mm, uint64_t b, gm_mapping_t* gm,
                               pfn_t* pages, pfn_t* src) noexcept nogil:
        """Give every page of block b in a peer-shared VMA that has none a frame on dev,
        holding the page's data: from `src` (another device's frames), from the CPU
        frame (a CPU block: its PTEs are zapped afterwards), or zero.  Returns the
        pages copied over the link."""
        cdef uint64_t pos = b, s, e, vpn, pte
        cdef int64_t copies = 0
        cdef vm_object_t* obj = self.obj_of(mm)
        cdef pfn_t pfn
        while self.peer_vma_from(mm, pos, b + <uint64_t>self.granularity, &s, &e) != NULL:
            for vpn in range(s, e):
                if pages[vpn - b] != NO_PFN:
                    continue
                pfn = self.gm_frame_alloc(dev, obj, vpn)
                if src != NULL and src[vpn - b] != NO_PFN:
                    self.frames.f[pfn].value = self.frames.f[src[vpn - b]].value
                    copies += 1
                elif gm_flag(gm) & GM_PAGE_CPU:
                    pte = mm_pte_at(mm, vpn)             # a PMD leaf's page too
                    if pte & PTE_PRESENT:
                        self.frames.f[pfn].value = frame_value(&self.frames, pte_pfn(pte))
                        copies += 1
                pages[vpn - b] = pfn
                self.ctr[C_PAGES_TO_DEVICE] += 1
            pos = e
        return copies

    cdef int gm_dev_fault(self, int dev, mm_t* mm, uint64_t b) noexcept nogil:
        """gm_dev_fault over block b (see the essay): room on the device first (evicting
        other blocks), then the block's pages move in one DMA batch, the CPU PTEs of a
        CPU block go in one zap_page_range_single, and the block is peer_mapped."""
        cdef gm_mapping_t* gm = self.gm_lookup(mm, b)
        cdef uint64_t pos = b, s, e, vpn
        cdef int64_t need = 0, copies, zaps_before, nr
        cdef pfn_t* pages = NULL
        cdef pfn_t* src = NULL
        cdef bint here
        cdef int i
        here = gm != NULL and (gm_flag(gm) & GM_PAGE_DEVICE) != 0 and gm_dev(gm) == dev
        if here:
            pages = gm_pages(&self.gm_frames, gm)
        while self.peer_vma_from(mm, pos, b + <uint64_t>self.granularity, &s, &e) != NULL:
            for vpn in range(s, e):
                need += not here or pages[vpn - b] == NO_PFN
            pos = e
        if here:
            self.gm_touch(gm)
        if need and self.gm_device_reserve(dev, need) != MM_OK:
            return MM_ENOMEM
        if gm == NULL:                    # first touch: created once the device has room
            gm = self.gm_get(mm, b)
            if gm == NULL:
                return MM_ENOMEM
        if here:                          # read after the reserve (gm_touch kept the block from eviction)
            nr = gm_pages_nr(gm)
            pages = gm_pages(&self.gm_frames, gm)
        else:
            pages = <pfn_t*>malloc(self.granularity * sizeof(pfn_t))
            if pages == NULL:
                return MM_ENOMEM
            nr = handles_take(&self.gm_frames, pages)
            if nr < 0:
                free(pages)
                return MM_ENOMEM
            for i in range(self.granularity):
                pages[i] = NO_PFN
            src = gm_pages(&self.gm_frames, gm)                # DEVICE on another device
        copies = self.gm_fill_block(dev, mm, b, gm, pages, src)
        if src != NULL:                                        # device to device: the old copy goes
            self.gm_release_frames(mm, b, gm, b, b + <uint64_t>self.granularity)
        elif gm_flag(gm) & GM_PAGE_CPU:                        # zap_page_range_single(HPAGE_SIZE)
            zaps_before = self.ctr[C_PTE_ZAPS]
            pos = b
            while self.peer_vma_from(mm, pos, b + <uint64_t>self.granularity, &s, &e) != NULL:
                LinuxMachine.zap_pte_range(self, mm, s, e)
                pos = e
            if self.ctr[C_PTE_ZAPS] != zaps_before:
                self.ctr[C_TLB_FLUSHES] += 1
        side_dma(self, &self.ds, copies, True)
        gm[0] = gm_word(GM_PAGE_DEVICE, dev, nr)
        return self.peer_map(mm, b, gm)

    cdef int device_fault(self, int dev, mm_t* mm, vma_t* vma, uint64_t vpn, bint write) noexcept nogil:
        """Peer-shared memory: gm_dev_fault on the block; shared mappings and (with
        peer_shared="marked") unmarked memory: as in the linux design."""
        if not self.peer_shared(vma):
            return LinuxHMMMachine.device_fault(self, dev, mm, vma, vpn, write)
        return self.gm_dev_fault(dev, mm, vpn & ~(<uint64_t>self.granularity - 1))

    # ================================================================ CPU fault (to the host)
    cdef int gm_host_fault(self, mm_t* mm, uint64_t b, gm_mapping_t* gm) noexcept nogil:
        """gm_host_fault_locked over a DEVICE block: every device page comes home
        (host frame, copy back, rmap, CPU PTE), one peer_unmap of the block, one DMA
        batch; flag CPU.  ENOMEM (nothing changed) when host memory is short."""
        cdef uint64_t i, vpn
        cdef int64_t n = 0, nalloc
        cdef pt_node_t* t
        cdef pfn_t pfn
        cdef vma_t* v
        cdef pfn_t* pages = gm_pages(&self.gm_frames, gm)
        for i in range(<uint64_t>self.granularity):
            n += pages[i] != NO_PFN
        if n > frames_free_count(&self.frames, 0):
            return MM_ENOMEM
        for i in range(<uint64_t>self.granularity):
            if pages[i] == NO_PFN:
                continue
            vpn = b + i
            v = self.find_vma(mm, vpn)
            nalloc = 0
            t = pt_leaf(&mm.pgd, vpn, True, &nalloc)
            if nalloc:
                self.pt_sync(mm)
            if t == NULL or self.anon_vma_prepare(mm, v) != MM_OK:
                return MM_ENOMEM
            pfn = self.page_alloc()
            self.frames.f[pfn].value = self.frames.f[pages[i]].value
            self.folio_add_new_anon_rmap(pfn, v, linear_index(v, vpn))
            pt_set(t, vpn, mk_pte(pfn, PTE_PRESENT | (PTE_WRITE if (v.vm_flags & VM_WRITE) else 0)))
            self.ctr[C_PTE_WRITES] += 1
        self.ctr[C_PAGES_TO_HOST] += n
        side_dma(self, &self.ds, n, False)
        self.gm_release_frames(mm, b, gm, b, b + <uint64_t>self.granularity)
        gm_set_flag(gm, GM_PAGE_CPU)
        return MM_OK

    cdef int do_anonymous_page(self, vm_fault_t* vmf) noexcept nogil:
        """Peer-shared anonymous fault: the block's gm_mapping decides (see the essay)."""
        cdef uint64_t b = vmf.address & ~(<uint64_t>self.granularity - 1)
        cdef gm_mapping_t* gm
        cdef pfn_t pfn
        cdef uint64_t pte
        cdef int64_t need = 1
        cdef int64_t i
        cdef pfn_t* pages
        if not self.peer_shared(vmf.vma):
            return LinuxHMMMachine.do_anonymous_page(self, vmf)
        gm = self.gm_lookup(vmf.mm, vmf.address)
        if gm != NULL and gm_flag(gm) & GM_PAGE_DEVICE:
            pages = gm_pages(&self.gm_frames, gm)
            need = pages[vmf.address - b] == NO_PFN        # a hole: zero-filled after
            for i in range(self.granularity):
                need += pages[i] != NO_PFN
            if need > frames_free_count(&self.frames, 0) or self.gm_host_fault(vmf.mm, b, gm) != MM_OK:
                return VM_FAULT_OOM
            vmf.pte_table = pt_find_leaf(&vmf.mm.pgd, vmf.address)
            pte = mm_pte_at(vmf.mm, vmf.address)
            if pte != 0:
                vmf.pfn = pte_pfn(pte)
                vmf.kind = C_FAULT_DEVICE_RETURN
                return VM_FAULT_DONE
        if frames_free_count(&self.frames, 0) == 0:
            return VM_FAULT_OOM
        if self.pte_alloc(vmf) != VM_FAULT_DONE or self.anon_vma_prepare(vmf.mm, vmf.vma) != MM_OK:
            return VM_FAULT_OOM
        if gm == NULL:                                     # first touch of the block, once a
            gm = self.gm_get(vmf.mm, vmf.address)          # frame is sure (a failed fault
            if gm == NULL:                                 # leaves no gm_mapping behind)
                return VM_FAULT_OOM
        pfn = self.page_alloc()                            # zero page disabled: reads too
        self.ctr[C_PAGES_ZEROED] += 1
        self.folio_add_new_anon_rmap(pfn, vmf.vma, vmf.pgoff)
        self.set_pte_range(vmf, pfn, mk_pte(pfn, PTE_PRESENT | (PTE_WRITE if (vmf.vma.vm_flags & VM_WRITE) else 0)))
        gm_set_flag(gm, GM_PAGE_CPU)
        vmf.kind = C_FAULT_ZERO_FILL
        return VM_FAULT_DONE

    cdef bint thp_vma_allowable(self, vma_t* vma, uint64_t haddr) noexcept nogil:
        """With devices only peer-shared memory gets PMD mappings: the rest goes
        through linux's HMM paths, which walk PTE tables only."""
        if self.ndevices > 0 and not self.peer_shared(vma):
            return False
        return LinuxHMMMachine.thp_vma_allowable(self, vma, haddr)

    cdef int do_huge_pmd_anonymous_page(self, vm_fault_t* vmf) noexcept nogil:
        """The RFC's hook in do_huge_pmd_anonymous_page for peer-shared memory: the
        block's gm_mapping (created NOMAP); a DEVICE block falls back to the PTE
        level, whose gm_host_fault brings it home (by PTEs: simplified); otherwise
        a PMD-sized folio, for reads too (no huge zero folio: the zero page is
        disabled for peer-shared memory), and the block is CPU."""
        cdef gm_mapping_t* gm
        cdef int flags = vmf.flags, st
        if not self.peer_shared(vmf.vma):
            return LinuxHMMMachine.do_huge_pmd_anonymous_page(self, vmf)
        gm = self.gm_get(vmf.mm, vmf.address)
        if gm == NULL:
            return VM_FAULT_OOM
        if gm_flag(gm) & GM_PAGE_DEVICE:
            return VM_FAULT_FALLBACK
        vmf.flags = flags | FAULT_FLAG_WRITE
        st = LinuxHMMMachine.do_huge_pmd_anonymous_page(self, vmf)
        vmf.flags = flags
        if st == VM_FAULT_DONE:
            gm_set_flag(gm, GM_PAGE_CPU)
        return st

    # ================================================================ migration, prefetch
    cdef int64_t gm_count_device(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil:
        """Device pages of the DEVICE blocks overlapping [start, end)."""
        cdef vm_object_t* obj = self.obj_of(mm)
        cdef uint64_t idx = 0, pos = start & ~(<uint64_t>self.granularity - 1)
        cdef int64_t n = 0, i
        cdef gm_mapping_t* gm = gm_next_device(obj, &pos, end, &idx)
        cdef pfn_t* pages
        while gm != NULL:
            pages = gm_pages(&self.gm_frames, gm)
            for i in range(self.granularity):
                n += pages[i] != NO_PFN
            gm = gm_next_device(obj, &pos, end, &idx)
        return n

    cdef int gm_range_to_host(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil:
        """Every DEVICE block overlapping [start, end) comes home (gm_host_fault)."""
        cdef vm_object_t* obj = self.obj_of(mm)
        cdef gm_mapping_t* gm
        cdef uint64_t idx = 0, pos = start & ~(<uint64_t>self.granularity - 1)
        if obj == NULL:
            return MM_OK
        if self.gm_count_device(mm, start, end) > frames_free_count(&self.frames, 0):
            return MM_ENOMEM
        gm = gm_next_device(obj, &pos, end, &idx)
        while gm != NULL:
            if self.gm_host_fault(mm, idx, gm) != MM_OK:
                return MM_ENOMEM
            gm = gm_next_device(obj, &pos, end, &idx)
        return MM_OK

    cdef int gm_migrate_range(self, mm_t* mm, uint64_t start, uint64_t end, int dev) noexcept nogil:
        """gm_dev_fault over every block of the peer-shared parts of [start, end)."""
        cdef uint64_t g = <uint64_t>self.granularity, pos = start, s, e, blk
        cdef int st
        while self.peer_vma_from(mm, pos, end, &s, &e) != NULL:
            blk = s & ~(g - 1)
            while blk < e:
                st = self.gm_dev_fault(dev, mm, blk)
                if st != MM_OK:
                    return st
                blk += g
            pos = e
        return MM_OK

    cdef int migrate_vma_node(self, mm_t* mm, vma_t* v, uint64_t start, uint64_t end, int node) noexcept nogil:
        """c_migrate per VMA: peer-shared VMAs through the logical page table, the others as in linux."""
        if self.peer_shared(v):
            return self.gm_migrate_range(mm, start, end, node) if node > 0 else self.gm_range_to_host(mm, start, end)
        return LinuxHMMMachine.migrate_vma_node(self, mm, v, start, end, node)

    cdef int64_t migrate_home_need(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil:
        """Device-private pages of plain memory, plus the device pages of the DEVICE
        blocks the range overlaps (a block comes home whole)."""
        return LinuxHMMMachine.migrate_home_need(self, mm, start, end) + self.gm_count_device(mm, start, end)

    def hmadvise_willneed(self, pid, vpn, npages, dev):
        """hmadvise(MADV_WILLNEED) toward device `dev`: prefetch the range block by block."""
        with self.held():
            return self._hmadvise_willneed(pid, vpn, npages, dev)

    def _hmadvise_willneed(self, pid, vpn, npages, dev):
        cdef int st
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
            if gm != NULL and not (gm_flag(gm) & GM_PAGE_DEVICE):
                gm_set_flag(gm, gm_flag(gm) | GM_PAGE_WILLNEED)
        st = self.gm_migrate_range(mm, vpn, vpn + npages, dev)
        if st != MM_ENOMEM:                 # advice: blocks that found no room stay put
            self._raise(st)

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
        """DEVICE blocks come home, Linux forks, the child gets CPU gm_mappings."""
        cdef mm_t* oldmm = <mm_t*>self.proc_of(pid)
        cdef int st = self.gm_range_to_host(oldmm, 0, VPN_END)
        if st != MM_OK:
            return st
        st = LinuxHMMMachine.c_fork(self, pid, child_out)
        if st != MM_OK:
            return st
        return self.gm_cpu_populate(<mm_t*>self.proc_of(child_out[0]), 0, VPN_END)

    cdef int c_mremap(self, int64_t pid, int64_t old_vpn, int64_t npages, int64_t new_vpn) noexcept nogil:
        """DEVICE blocks of both ranges come home, the PTEs move as in Linux, CPU
        gm_mappings at the new blocks.  Everything that can run out of memory is
        reserved first (gm_mremap_reserve), so a refused move leaves every block
        where it was; then the blocks come home and the move runs, neither can fail."""
        cdef mm_t* mm = <mm_t*>self.proc_of(pid)
        cdef uint64_t old = <uint64_t>old_vpn, new = <uint64_t>new_vpn, n = <uint64_t>npages
        cdef int st = self.mremap_check(mm, old, n, new)
        if st != MM_OK:
            return st
        if self.gm_count_device(mm, old, old + n) + self.gm_count_device(mm, new, new + n) \
                > frames_free_count(&self.frames, 0):
            return MM_ENOMEM
        st = self.gm_mremap_reserve(mm, old, n, new)
        if st == MM_OK:
            st = self.gm_range_to_host(mm, old, old + n)
        if st == MM_OK:
            st = self.gm_range_to_host(mm, new, new + n)   # the blocks the pages land in
        if st == MM_OK:
            st = self.mremap_move(mm, old, n, new)
        self.spare_trim(64)
        mt_trim(&mm.mm_mt, 256)
        if st != MM_OK:                                     # defensive: reserved above
            return st
        self.free_gm_mappings(mm, old, old + n)
        return self.gm_cpu_populate(mm, new, new + n)    # finds every gm_mapping: cannot fail

    cdef int gm_mremap_reserve(self, mm_t* mm, uint64_t old, uint64_t n, uint64_t new) noexcept nogil:
        """Everything the home-coming and the move can allocate, before anything changes:
        the PTE tables the device pages of both ranges' DEVICE blocks come home to (each
        such slot holds GM_PTE_HOLD meanwhile, so the move's reservation and gm_premap
        count them as present), Linux's mremap_reserve, an anon_vma and an AVC for each
        VMA the home-coming may anon_vma_prepare, and the destination blocks'
        gm_mappings (gm_premap).  MM_ENOMEM with the machine as it was."""
        cdef int64_t ndev = self.gm_count_device(mm, old, old + n) + self.gm_count_device(mm, new, new + n)
        cdef uint64_t* made = NULL
        cdef int64_t nmade = 0, need_av = 0, k
        cdef int st = MM_OK
        if ndev:
            made = <uint64_t*>malloc(ndev * sizeof(uint64_t))
            if made == NULL:
                return MM_ENOMEM
            nmade = self.gm_home_tables(mm, old, old + n, made, 0, &need_av)
            if nmade >= 0:
                nmade = self.gm_home_tables(mm, new, new + n, made, nmade, &need_av)
            if nmade < 0:                       # the tables made are listed up to -nmade - 1
                nmade = -nmade - 1
                st = MM_ENOMEM
        if st == MM_OK:
            st = self.mremap_reserve(mm, old, n, new)
            if st == MM_OK:
                st = self.spare_reserve(self.vma_spare.nr, self.avc_spare.nr + need_av,
                                        self.av_spare.nr + need_av)
                if st == MM_OK:
                    st = self.gm_premap(mm, old, n, new)
                    if st != MM_OK:
                        self.free_gm_mappings(mm, new, new + n)   # those gm_premap made
                if st != MM_OK:
                    self.mremap_unreserve(mm, new, n)
        if ndev:
            self.gm_home_release(mm, old, old + n)
            self.gm_home_release(mm, new, new + n)
            if st != MM_OK:
                self.gm_home_tables_free(mm, made, nmade)
            free(made)
        return st

    cdef int64_t gm_home_tables(self, mm_t* mm, uint64_t start, uint64_t end, uint64_t* made,
                                int64_t nmade, int64_t* need_av) noexcept nogil:
        """The PTE table (and the tables above it) of every device page of the DEVICE
        blocks overlapping [start, end), its slot set to GM_PTE_HOLD; each page whose
        walk made tables is listed in made (vpn << 2 | tables made); need_av counts the
        VMAs without an anon_vma.  The new length of made, or -(length + 1) when out
        of memory."""
        cdef vm_object_t* obj = self.obj_of(mm)
        cdef uint64_t idx = 0, pos = start & ~(<uint64_t>self.granularity - 1), vpn
        cdef int64_t i, nalloc
        cdef pt_node_t* t
        cdef vma_t* v
        cdef vma_t* last = NULL
        cdef gm_mapping_t* gm = gm_next_device(obj, &pos, end, &idx)
        cdef pfn_t* pages
        while gm != NULL:
            pages = gm_pages(&self.gm_frames, gm)
            for i in range(self.granularity):
                if pages[i] == NO_PFN:
                    continue
                vpn = idx + <uint64_t>i
                nalloc = 0
                t = pt_leaf(&mm.pgd, vpn, True, &nalloc)
                if nalloc:
                    made[nmade] = (vpn << 2) | <uint64_t>nalloc
                    nmade += 1
                if t == NULL:
                    return -nmade - 1
                if t.e[vpn & 511] == 0:
                    pt_set(t, vpn, GM_PTE_HOLD)
                v = self.find_vma(mm, vpn)
                if v != NULL and v.anon_vma == NULL and v != last:
                    need_av[0] += 1
                    last = v
            gm = gm_next_device(obj, &pos, end, &idx)
        return nmade

    cdef void gm_home_release(self, mm_t* mm, uint64_t start, uint64_t end) noexcept nogil:
        """Clear the GM_PTE_HOLD slots gm_home_tables set in [start, end)'s blocks."""
        cdef uint64_t g = <uint64_t>self.granularity, vpn = start & ~(g - 1), stop
        cdef pt_node_t* t
        stop = (end + g - 1) & ~(g - 1)
        while True:
            t = pt_next(&mm.pgd, vpn, stop, &vpn)
            if t == NULL:
                break
            if t.e[vpn & 511] == GM_PTE_HOLD:
                pt_set(t, vpn, 0)
            vpn += 1
        self.pt_sync(mm)

    cdef void gm_home_tables_free(self, mm_t* mm, uint64_t* made, int64_t nmade) noexcept nogil:
        """Free the tables gm_home_tables made (all empty again): under the highest
        table a walk made, every table is new."""
        cdef uint64_t span, base
        cdef int64_t k
        for k in range(nmade):
            span = (<uint64_t>512) << (9 * ((made[k] & 3) - 1))
            base = (made[k] >> 2) & ~(span - 1)
            pt_free_range(&mm.pgd, base, base + span)
        mm.leaf_key = ~(<uint64_t>0)
        self.pt_sync(mm)

    cdef int gm_premap(self, mm_t* mm, uint64_t old, uint64_t n, uint64_t new) noexcept nogil:
        """A gm_mapping (NOMAP until the move) for every block of [new, new + n) that a
        present PTE of peer-shared memory in [old, old + n) will land in."""
        cdef uint64_t vpn = old
        cdef pt_node_t* t
        cdef vma_t* v
        while True:
            t = pt_next(&mm.pgd, vpn, old + n, &vpn)
            if t == NULL:
                return MM_OK
            v = self.find_vma(mm, vpn)
            if v != NULL and self.peer_shared(v) and self.gm_get(mm, new + (vpn - old)) == NULL:
                return MM_ENOMEM
            vpn += 1

    cdef int c_exit(self, int64_t pid) noexcept nogil:
        cdef int st = LinuxHMMMachine.c_exit(self, pid)
        self.obj_free(pid)
        return st

    # ================================================================ invariants
    cdef int check_devices(self) noexcept nogil:
        """Logical page tables vs CPU page tables, device frames vs their owners,
        accounting, device page tables."""
        cdef int64_t pid, ndev = 0, gms = 0, nobj = 0, xa = 0, ndevblk = 0
        cdef vm_object_t* obj
        for pid in range(1, self.objs_cap):
            obj = self.objs[pid]
            if obj == NULL:
                continue
            if self.ndevices == 0:
                return self.check_fail("vm_object on a machine without devices")
            if self.check_gmem(pid, &ndev, &ndevblk) != MM_OK:
                return MM_EINVAL
            nobj += 1
            gms += obj.nr_pages
            xa += obj.xa_acct
        if self.check_device_frames(ndev) != MM_OK:
            return MM_EINVAL
        if ndevblk != self.gm_frames.count:
            return self.check_fail("numbered frame arrays != DEVICE blocks")
        if gms != self.caches[self.kc_gm_mapping].active or nobj != self.caches[self.kc_vm_object].active \
                or xa != self.caches[self.kc_lpt_xa].active:
            return self.check_fail("gm_mapping / vm_object / xa_node caches != logical page tables")
        if self.caches[self.kc_hnode_gm].active != self.ndevices * self.device_pages \
                or self.caches[self.kc_hnode].active != self.ndevices:
            return self.check_fail("static device-memory gm_mappings != device pages")
        for pid in range(1, self.ds.cap):
            if self.ds.tab[pid] != NULL and self.check_mirrors(pid) != MM_OK:
                return MM_EINVAL
        return MM_OK

    cdef int check_device_frames(self, int64_t ngm) noexcept nogil:
        """Every device frame in use belongs to exactly one DEVICE block (`ngm` such
        pages exist), or is a device-private page named by as many PTEs as it has
        references (non-peer-shared memory, as in linux); all are on the FIFO."""
        cdef int64_t pfn, used = 0, owned = 0
        cdef int d
        cdef int32_t m
        cdef frame_t* f
        cdef gm_mapping_t* gm
        cdef pfn_t* pages
        cdef vm_object_t* obj
        for d in range(1, self.ndevices + 1):
            for pfn in range(self.frames.node_base[d], self.frames.node_base[d] + self.frames.node_bump[d]):
                f = &self.frames.f[pfn]
                m = self.chk_devmaps[pfn - self.frames.node_base[1]]
                if f.refcount <= 0:
                    if m != 0 or devmem_has(&self.devmem[d], <pfn_t>pfn):
                        return self.check_fail("free device frame mapped or on the device FIFO")
                    continue
                if not devmem_has(&self.devmem[d], <pfn_t>pfn):
                    return self.check_fail("device frame in use but not on the FIFO")
                if not (f.flags & FR_GM_DEVICE):
                    used += 1
                    if f.mapcount != m or f.refcount != m or m == 0:
                        return self.check_fail("device-private frame: mapcount/refcount != its PTEs")
                    continue
                owned += 1
                obj = <vm_object_t*><size_t>f.owner
                gm = self.gm_lookup(obj.mm, f.index)
                pages = gm_pages(&self.gm_frames, gm)
                if m != 0 or f.refcount != 1 or f.mapcount != 0 or pages == NULL \
                        or gm_dev(gm) != d or pages[f.index & (<uint64_t>self.granularity - 1)] != <pfn_t>pfn:
                    return self.check_fail("device frame not owned by exactly one page of a DEVICE block")
            if self.frames.node_used[d] != self.devmem[d].nr:
                return self.check_fail("device frames in use != FIFO length")
        if owned != ngm or used != self.caches[self.kc_devpage].active:
            return self.check_fail("gm device frames != DEVICE block pages, or device-private frames "
                                   "!= device struct page cache")
        return MM_OK

    cdef int check_gm(self, mm_t* mm, vm_object_t* obj, uint64_t b, gm_mapping_t* gm,
                      int64_t* ndev) noexcept nogil:
        """One gm_mapping: a block with peer-shared pages, one type; DEVICE: frames of
        its device at this block's pages, no CPU PTE; NOMAP: nothing resident."""
        cdef uint64_t t = gm_flag(gm) & GM_PAGE_TYPE_MASK, g = <uint64_t>self.granularity, i, pte
        cdef int64_t nr = gm_pages_nr(gm)
        cdef pfn_t* pages
        cdef vma_t* v
        if b & (g - 1) or self.peer_pages(mm, b) == 0:
            return self.check_fail("gm_mapping not at a block with peer-shared pages (not freed with its VMA)")
        if t != GM_PAGE_CPU and t != GM_PAGE_DEVICE and t != GM_PAGE_NOMAP:
            return self.check_fail("gm_mapping with no single type flag")
        if (t == GM_PAGE_DEVICE) != (nr >= 0) or (nr >= 0 and not handles_live(&self.gm_frames, nr)):
            return self.check_fail("device frame list on a block that is not DEVICE, or none on a DEVICE one")
        if t != GM_PAGE_DEVICE and gm_dev(gm) != 0:
            return self.check_fail("device named by a block that is not DEVICE")
        pages = gm_pages(&self.gm_frames, gm)
        for i in range(g):
            v = self.find_vma(mm, b + i)
            if v == NULL or not self.peer_shared(v):
                if pages != NULL and pages[i] != NO_PFN:
                    return self.check_fail("device frame for a page outside peer-shared memory")
                continue
            pte = mm_pte_at(mm, b + i)
            if pte != 0 and t != GM_PAGE_CPU:
                return self.check_fail("CPU PTE in a DEVICE or NOMAP block")
            if pages != NULL and pages[i] != NO_PFN:
                ndev[0] += 1
                if frame_node(&self.frames, pages[i]) != gm_dev(gm) or self.frames.f[pages[i]].index != b + i \
                        or self.frames.f[pages[i]].owner != <uint64_t><size_t>obj:
                    return self.check_fail("DEVICE block names a frame of another device or page")
        return MM_OK

    cdef int check_gmem(self, int64_t pid, int64_t* ndev, int64_t* ndevblk) noexcept nogil:
        cdef vm_object_t* obj = self.objs[pid]
        cdef mm_t* mm = <mm_t*>self.proc_of(pid)
        cdef gm_mapping_t* gm
        cdef uint64_t idx = 0, start = 0
        cdef vma_t* v
        cdef pt_node_t* tbl
        if mm == NULL or obj.mm != mm:
            return self.check_fail("vm_object of a dead process")
        if obj.xa_acct != obj.logical_page_table.nr_nodes or obj.nr_pages != obj.logical_page_table.nr_entries:
            return self.check_fail("vm_object nr_pages / xa_node accounting != its xarray")
        if not xa_hint_ok(&obj.logical_page_table):
            return self.check_fail("logical page table's walk hint is not its leaf")
        while True:
            gm = xa_find_slot(&obj.logical_page_table, start, NO_VPN, &idx)
            if gm == NULL:
                break
            if self.check_gm(mm, obj, idx, gm, ndev) != MM_OK:
                return MM_EINVAL
            ndevblk[0] += (gm_flag(gm) & GM_PAGE_DEVICE) != 0
            start = idx + 1
        start = 0
        while mm.nr_huge_pmd and pmd_leaf_next(&mm.pgd, start, VPN_END, &start) != NULL:
            v = self.find_vma(mm, start)                   # every PMD leaf: a CPU block
            if self.peer_shared(v):
                gm = self.gm_lookup(mm, start)
                if gm == NULL or gm_flag(gm) & GM_PAGE_TYPE_MASK != GM_PAGE_CPU:
                    return self.check_fail("PMD leaf of peer-shared memory without a CPU gm_mapping")
                if mm_pte_at(mm, start) & PTE_SPECIAL:
                    return self.check_fail("huge zero folio mapped although gmem disables it")
            start += 512
        start = 0
        while True:                                        # every resident CPU page: a CPU block
            tbl = pt_next(&mm.pgd, start, VPN_END, &start)
            if tbl == NULL:
                break
            v = self.find_vma(mm, start)
            if self.peer_shared(v):
                gm = self.gm_lookup(mm, start)
                if gm == NULL or gm_flag(gm) & GM_PAGE_TYPE_MASK != GM_PAGE_CPU:
                    return self.check_fail("present PTE of peer-shared memory without a CPU gm_mapping")
                if tbl.e[start & 511] & PTE_SPECIAL:
                    return self.check_fail("zero page mapped although gmem disables it")
            start += 1
        return MM_OK

    cdef int check_dpte(self, mm_t* mm, int dev, uint64_t vpn, uint64_t e) noexcept nogil:
        """A page of a DEVICE block is mapped only by its device and at its frame;
        anything else (shared mappings) must match the CPU PTE as in linux."""
        cdef vma_t* v = self.find_vma(mm, vpn)
        cdef gm_mapping_t* gm
        cdef pfn_t* pages
        if v == NULL:
            return self.check_fail("device page-table entry outside every VMA")
        if not self.peer_shared(v):
            return LinuxHMMMachine.check_dpte(self, mm, dev, vpn, e)
        gm = self.gm_lookup(mm, vpn)
        pages = gm_pages(&self.gm_frames, gm)
        if pages == NULL or gm_dev(gm) != dev or pages[vpn & (<uint64_t>self.granularity - 1)] != dpte_pfn(e):
            return self.check_fail("peer mapping of a page that is not DEVICE on that device")
        if (e & DPT_WRITE) and not (v.vm_flags & VM_WRITE):
            return self.check_fail("writable peer mapping in a read-only VMA")
        return MM_OK

    # ---------------------------------------------------------- Python extras
    def gm_state(self, pid, vpn):
        """The gm_mapping of the block of (pid, vpn): None (never touched, or not
        peer-shared memory) or (flags set, device)."""
        with self.held():
            return self._gm_state(pid, vpn)

    def _gm_state(self, pid, vpn):
        cdef int64_t p = self._pid(pid)
        cdef gm_mapping_t* gm
        cdef vma_t* vma
        v, _ = self._range(vpn)
        vma = self.find_vma(<mm_t*>self.procs[p], <uint64_t>v)
        if vma == NULL or not self.peer_shared(vma):
            return None
        gm = self.gm_lookup(<mm_t*>self.procs[p], <uint64_t>v)
        if gm == NULL:
            return None
        names = [n for b, n in ((GM_PAGE_CPU, "CPU"), (GM_PAGE_DEVICE, "DEVICE"), (GM_PAGE_NOMAP, "NOMAP"),
                                (GM_PAGE_WILLNEED, "WILLNEED")) if gm_flag(gm) & b]
        return ("|".join(names), int(gm_dev(gm)))

    @property
    def granularity_pages(self):
        """Pages per gm_mapping and per device fault on this machine."""
        return int(self.granularity)

    def page_node(self, pid, vpn):
        """Where the page at (pid, vpn) lives: 0 host, 1.. a device, None if not resident."""
        with self.held():
            return self._page_node(pid, vpn)

    def _page_node(self, pid, vpn):
        cdef int64_t p = self._pid(pid)
        cdef gm_mapping_t* gm
        cdef pfn_t* pages
        cdef uint64_t pte
        v, _ = self._range(vpn)
        gm = self.gm_lookup(<mm_t*>self.procs[p], <uint64_t>v)
        pages = gm_pages(&self.gm_frames, gm)
        if pages != NULL and pages[<uint64_t>v & (<uint64_t>self.granularity - 1)] != NO_PFN:
            return int(gm_dev(gm))
        pte = mm_pte_at(<mm_t*>self.procs[p], <uint64_t>v)
        if pte == 0 or (pte & PTE_SPECIAL):
            return None
        return int(frame_node(&self.frames, pte_pfn(pte)))
