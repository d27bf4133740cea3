# UVMMachine — NetBSD UVM's anonymous memory (Cranor): vm_map entries, a
# two-level amap/anon layer instead of object chains, and NetBSD x86's pmap
# (first pv embedded in the page), behind the mmbench contract.
#
# The design in its own terms.  Mach and 4.4BSD (and FreeBSD after them) make
# copy-on-write out of objects: each fork-then-write puts a shadow object in
# front of the old one and a fault walks the chain down to the page, so chains
# grow with fork depth and need collapse and bypass to stay short.  UVM keeps
# two levels and no chain: an entry's anonymous pages hang off an amap, an
# array of references to anons, and each anon holds one page.  Sharing is
# reference counting instead of chaining: am_ref counts the entries using an
# amap, an_ref the amap slots using an anon.
#
#   pid 1 entry ─┐                      ┌──▶ anon(an_ref 2) ──▶ page A
#   (NEEDSCOPY)  ├──▶ amap (am_ref 2) ──┤
#   pid 2 entry ─┘                      └──▶ anon(an_ref 1) ──▶ page B
#
#   after pid 2 faults: amap_copy → pid 2 gets its own amap, same anon
#   pointers, an_ref++ each; a write to a shared anon promotes a private copy.
#
# Where each part lives:
#   uvm.pxd    the structs: vm_map_entry + vm_aref, vm_amap, vm_anon (named by
#              its page, an_ref in the page's descriptor), context
#   amap       amaps and anons: alloc, add/unadd, ref/unref, per-page refs
#              (am_ppref), splitref, the copying half of amap_copy
#   map        entries: enter, clip, unmap, protect, fork, mremap, dontneed,
#              amap_copy (it may clip the entry into a 16-page chunk, then
#              uvm_mapent_trymerge folds it into a neighbour's amap)
#   fault      the fault handler (decide, amap_copy, fault-ahead of
#              resident neighbours, zero-fill / promote / map)
#   check      the invariants
#   pmap       mmbench.blocks.pmap_netbsd (the pmap block's NetBSD x86
#              implementation: pv of a singly-mapped page embedded in it)
#   core       the design's hooks under the contract layer every map-entry
#              design shares (mmbench.blocks.mapentry: argument checks in the
#              reference model's order, the PTE fast path of read/write), and
#              the Python-level views.
#
# The contract's operations map onto UVM as follows:
#   mmap      uvm_map_enter (private: COPYONWRITE|NEEDSCOPY, no amap yet;
#             shared: amap now)
#   munmap    uvm_unmap (clip, pmap_remove, amap_unref of the range)
#   mprotect  uvm_map_protect (pmap_protect when write is taken away)
#   read      PTE present: load; else uvm_fault (read)
#   write     writable PTE: store; else uvm_fault (write)
#   fork      uvmspace_fork (NEEDSCOPY on both sides, pmap_protect of the parent)
#   exit      uvmspace_free
#   mremap    entries and PTEs moved (NetBSD's mremap moves entries too)
#   madvise   see map.pyx (private pages must read 0 afterwards)
#
# Simplified relative to the kernel, and why: no swap (an anon always has its
# page: mmbench has no memory pressure on the host; so the model stores an
# anon as its page, see uvm.pxd); no locks; am_ppref is one
# count per slot rather than run-length encoded (same bytes accounted, the
# kernel's array is one int per slot either way); no loans, no wiring.
# Accelerators are not modelled (supports_devices = False: the framework
# refuses migrate and device_* before they reach the design).

from libc.stdlib cimport calloc, malloc, free
from libc.stdint cimport int64_t, uint64_t, int32_t

from mmbench.core cimport MADV_DONTNEED
from mmbench.core cimport (Machine, MM_OK, MM_ESEGV, MM_EPROT, MM_ENOMEM, MM_EINVAL,
                           C_RMAP_VISITS)
from mmbench.blocks.maplist cimport map_list_t, map_entry_link_t
from mmbench.blocks.mapentry cimport MapEntryMachine
from mmbench.blocks.frames cimport pfn_t
from mmbench.blocks.pagetable cimport pgtable_t, pt_node_t, pte_present, pte_pfn
from mmbench.blocks.pmap cimport pmap_pte
from mmbench.blocks.pmap cimport pmap_ctx_destroy
from mmbench.blocks.pmap_netbsd cimport pmap_page_mappers, pmap_bootstrap, PV_PAGE_BYTES, PMAP_BYTES
from mmbench_uvm.uvm cimport (uvm_ctx_t, vm_map_t, vm_map_entry_t, vm_amap_t, vm_anon_t, NO_ANON, an_ref,
                              UVM_ET_COPYONWRITE, UVM_ET_NEEDSCOPY, MAP_INHERIT_SHARE, AMAP_SHARED,
                              UK_PVPAGE, UK_PGD, UK_PMAP, NR_UK,
                              map_first, entry_next)
from mmbench_uvm.map cimport (uvmspace_alloc, uvmspace_free, uvm_map_lookup_entry, uvm_map_enter, uvm_unmap,
                              uvm_map_protect, uvmspace_fork, uvm_map_move, uvm_map_dontneed)
from mmbench_uvm.fault cimport uvm_fault
from mmbench_uvm.check cimport uvm_check_all

from mmbench import errors as _errors
from mmbench.hugepages import THP_DEFAULT, thp_option

# (cache name, bytes per object, per process), in UK_* order.  Sizes for NetBSD
# amd64 from its headers (docs/backends/uvm.md shows the arithmetic); vm_page
# is an estimate; amap_slots counts bytes.
_CACHES = (("vm_map_entry", 128, True), ("vm_amap", 80, True), ("vm_page", 128, True),
           ("vm_anon", 32, True), ("pv_page", PV_PAGE_BYTES, True), ("pgd", 4096, True),
           ("pud_table", 4096, True), ("pmd_table", 4096, True), ("pte_table", 4096, True),
           ("amap_slots", 1, True), ("vmspace", 344, True), ("pmap", PMAP_BYTES, True))


cdef class UVMMachine(MapEntryMachine):
    """NetBSD UVM: vm_map entries with amap/anon two-level anonymous memory
    (amap_copy on NEEDSCOPY, anon promotion), NetBSD x86 pmap (first pv embedded)."""

    name = "uvm"
    description = ("NetBSD UVM: vm_map entries, two-level amap/anon anonymous memory "
                   "(reference counts instead of shadow chains), NetBSD x86 pmap (first pv embedded)")
    #: amap_chunk: first-touch amaps of entries of 256+ pages start as 16-page
    #: chunks (amap_copy's canchunk); False: one amap for the whole entry.
    #: fault_ahead: a fault also maps up to 3 resident anons behind and 4 ahead
    #: (uvmadvice for MADV_NORMAL); False: every page faults on its own.
    #: thp: accepted (mmbench.hugepages) but without effect: NetBSD has no
    #: anonymous superpages, so every mode runs at 4 KiB (said in notes()).
    option_defaults = {"amap_chunk": True, "fault_ahead": True, "thp": THP_DEFAULT}
    memmap_struct = "vm_page"     # the per-frame descriptor memmap="memdesc" replaces
    supports_devices = False
    huge_page_advice = True
    counter_names = (
        "faults", "fault_zero_fill", "fault_cow_copy", "fault_cow_reuse", "fault_minor",
        "fault_wp_shared", "pages_zeroed", "pages_copied", "pte_writes", "pte_zaps",
        "tlb_flushes", "pt_pages_alloc", "pt_pages_free", "rmap_visits", "vma_splits",
        "vma_merges", "objects_alloc", "objects_free", "amap_copies", "anon_alloc", "pv_entries",
        "fork_ptes_wrprotect", "mremap_pages_moved")

    def __init__(self, **kw):
        super().__init__(**kw)
        for i, (cname, size, per_process) in enumerate(_CACHES):
            assert self.slab_register(cname, size, per_process) == i
        assert self.ncaches == NR_UK
        self.u.md.fr = &self.frames
        self.u.md.ctr = &self.ctr[0]
        self.u.md.kc = &self.caches[0]
        self.u.md.kc_pgd = UK_PGD
        self.u.md.kc_pv = UK_PVPAGE
        self.u.md.kc_pmap = UK_PMAP
        if pmap_bootstrap(&self.u.md, self.ram_pages) != 0:
            raise MemoryError("no memory for the pv list heads")
        self.u.amaps = NULL
        self.u.namaps = 0
        self.u.next_serial = 0
        for opt in ("amap_chunk", "fault_ahead"):
            if not isinstance(self.options[opt], bool):
                raise _errors.InvalidArgument(f"uvm option {opt} must be True or False")
        self.u.amap_chunk = self.options["amap_chunk"]
        self.u.fault_ahead = self.options["fault_ahead"]
        self.thp = thp_option(self.options)

    def __dealloc__(self):
        cdef int64_t pid
        if self.u.md.kc == NULL:
            return
        for pid in range(1, self.next_pid):
            if self.procs != NULL and self.procs[pid] != NULL:
                uvmspace_free(&self.u, <vm_map_t*>self.procs[pid])
                self.procs[pid] = NULL
        pmap_ctx_destroy(&self.u.md)

    # --------------------------------- the mechanism (mmbench.blocks.mapentry)
    # The contract's walk is MapEntryMachine's; these name the design's map
    # operations.  A map_list_t* here is the `list` a vm_map_t starts with, a
    # map_entry_link_t* the `link` a vm_map_entry_t starts with.
    cdef map_list_t* me_vmspace_alloc(self, int64_t pid) noexcept nogil:
        cdef vm_map_t* map = uvmspace_alloc(&self.u, pid)
        return NULL if map == NULL else &map.list

    cdef void me_vmspace_free(self, map_list_t* map) noexcept nogil:
        uvmspace_free(&self.u, <vm_map_t*>map)

    cdef int me_vmspace_fork(self, map_list_t* src, map_list_t* dst) noexcept nogil:
        return uvmspace_fork(&self.u, <vm_map_t*>src, <vm_map_t*>dst)

    cdef int me_map_insert(self, map_list_t* map, int64_t start, int64_t end, bint shared,
                           bint writable) noexcept nogil:
        return uvm_map_enter(&self.u, <vm_map_t*>map, start, end, shared, writable)

    cdef void me_map_delete(self, map_list_t* map, int64_t start, int64_t end) noexcept nogil:
        uvm_unmap(&self.u, <vm_map_t*>map, start, end)

    cdef void me_map_protect(self, map_list_t* map, int64_t start, int64_t end,
                             bint writable) noexcept nogil:
        uvm_map_protect(&self.u, <vm_map_t*>map, start, end, writable)

    cdef int me_map_move(self, map_list_t* map, int64_t start, int64_t end,
                         int64_t new_start) noexcept nogil:
        return uvm_map_move(&self.u, <vm_map_t*>map, start, end, new_start)

    cdef int me_map_dontneed(self, map_list_t* map, int64_t start, int64_t end) noexcept nogil:
        return uvm_map_dontneed(&self.u, <vm_map_t*>map, start, end)

    cdef pgtable_t* me_pgtable(self, map_list_t* map) noexcept nogil:
        return &(<vm_map_t*>map).pmap.hdr.pt

    cdef bint me_entry_writable(self, map_entry_link_t* e) noexcept nogil:
        return (<vm_map_entry_t*>e).writable

    cdef bint me_entry_shared(self, map_entry_link_t* e) noexcept nogil:
        return (<vm_map_entry_t*>e).inheritance == MAP_INHERIT_SHARE

    cdef int me_fault(self, map_list_t* map, map_entry_link_t* e, int64_t vpn, bint write,
                      pt_node_t* leaf, pfn_t* pfn_out) noexcept nogil:
        return uvm_fault(&self.u, <vm_map_t*>map, <vm_map_entry_t*>e, vpn, write, leaf, pfn_out)

    def notes(self):
        with self.held():
            return self._notes()

    def _notes(self):
        return [f"NetBSD has no anonymous superpages: runs at 4 KiB (thp={self.thp!r} has no effect; "
                "madvise HUGEPAGE/NOHUGEPAGE are accepted and ignored)", self.move_pages_note()]

    # -------------------------------------------------------- invariants
    cdef int c_check(self) noexcept nogil:
        cdef const char* why = NULL
        if uvm_check_all(&self.u, self.procs, self.next_pid, &why) != 0:
            return self.check_fail(why)
        return MM_OK

    # ------------------------------------------------- design-level views
    def amaps(self):
        """Every live amap: {serial: {am_ref, shared, nslot, nused, ppref, anon_refs}}.
        `ppref` is the per-slot list or None; `anon_refs` maps slot -> an_ref."""
        with self.held():
            return self._amaps()

    def _amaps(self):
        cdef vm_amap_t* amap = self.u.amaps
        cdef int32_t x
        out = {}
        while amap != NULL:
            out[int(amap.serial)] = {
                "am_ref": int(amap.am_ref), "shared": bool(amap.am_flags & AMAP_SHARED),
                "nslot": int(amap.am_nslot), "nused": int(amap.am_nused),
                "ppref": ([int(amap.am_ppref[x]) for x in range(amap.am_nslot)]
                          if amap.am_ppref != NULL else None),
                "anon_refs": {int(x): int(an_ref(&self.u, amap.am_anon[x])[0])
                              for x in range(amap.am_nslot) if amap.am_anon[x] != NO_ANON}}
            amap = amap.am_next
        return dict(sorted(out.items()))

    def entries(self, pid):
        """The entries of `pid`'s map: [{start, end, amap, pageoff, flags, …}, …]."""
        with self.held():
            return self._entries(pid)

    def _entries(self, pid):
        pid = self._pid(pid)
        cdef vm_map_entry_t* e = map_first(self.map_of(pid))
        out = []
        while e != NULL:
            flags = []
            if e.etype & UVM_ET_COPYONWRITE:
                flags.append("COPYONWRITE")
            if e.etype & UVM_ET_NEEDSCOPY:
                flags.append("NEEDSCOPY")
            out.append({"start": int(e.link.start), "end": int(e.link.end),
                        "amap": int(e.aref.ar_amap.serial) if e.aref.ar_amap != NULL else None,
                        "pageoff": int(e.aref.ar_pageoff), "flags": flags,
                        "writable": bool(e.writable), "shared": e.inheritance == MAP_INHERIT_SHARE})
            e = entry_next(e)
        return out

    def anon_ref(self, pid, vpn):
        """an_ref of the anon behind `vpn` of `pid` (0: no anon there yet)."""
        with self.held():
            return self._anon_ref(pid, vpn)

    def _anon_ref(self, pid, vpn):
        pid = self._pid(pid)
        vpn, _ = self._range(vpn)
        cdef vm_map_entry_t* e = uvm_map_lookup_entry(self.map_of(pid), vpn)
        cdef vm_anon_t anon
        if e == NULL:
            raise _errors.SegmentationFault(f"pid {pid}: vpn {vpn} is not mapped")
        if e.aref.ar_amap == NULL:
            return 0
        anon = e.aref.ar_amap.am_anon[e.aref.ar_pageoff + (vpn - e.link.start)]
        return 0 if anon == NO_ANON else int(an_ref(&self.u, anon)[0])

    def rmap_walk(self, pid, vpn):
        """The mappers of the page `pid` maps at `vpn`: [(pid, vpn), …] from its
        pv list ([] when no page is mapped there).  Counts rmap_visits."""
        with self.held():
            return self._rmap_walk(pid, vpn)

    def _rmap_walk(self, pid, vpn):
        pid = self._pid(pid)
        vpn, _ = self._range(vpn)
        cdef vm_map_t* map = self.map_of(pid)
        cdef uint64_t pte = pmap_pte(&map.pmap.hdr, vpn)
        cdef int64_t n, i
        cdef int64_t* pids
        cdef int64_t* vpns
        if not pte_present(pte):
            return []
        n = pmap_page_mappers(&self.u.md, pte_pfn(pte), NULL, NULL, 0)
        pids = <int64_t*>malloc(n * sizeof(int64_t))
        vpns = <int64_t*>malloc(n * sizeof(int64_t))
        try:
            if pids == NULL or vpns == NULL:
                raise MemoryError()
            pmap_page_mappers(&self.u.md, pte_pfn(pte), pids, vpns, n)
            self.ctr[C_RMAP_VISITS] += n
            return sorted((int(pids[i]), int(vpns[i])) for i in range(n))
        finally:
            free(pids)
            free(vpns)
