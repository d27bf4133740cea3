# FreeBSDMachine — the FreeBSD VM design (vm_map + vm_object shadow chains +
# pmap/pv_entry) behind the mmbench contract.
#
# Where each part lives:
#   vm.pxd        the structs: vm_map_entry, vm_object, vm_reserv, the context
#   pctrie        the 16-ary path-compressed trie of an object's resident pages
#   vm_object     objects, pages, shadow, split, collapse, bypass, deallocate
#   vm_map        entries: insert, clip, delete, protect, fork, mremap, dontneed
#   vm_fault      the fault handler (lookup, chain walk, copy / move / zero-fill)
#   pmap          FreeBSD's part of the pmap: superpage promotion / demotion
#                 (pmap_promote_pde, pmap_demote_pde) and pmap_copy; the rest
#                 is the pmap block (mmbench.blocks.pmap: page tables) with its
#                 pv_chunk implementation (mmbench.blocks.pmap_pvchunk: pv
#                 entries, the reverse map)
#   vm_reserv     2 MiB reservations of anonymous objects (vm.pmap.pg_ps_enabled,
#                 i.e. thp != "never"), 160 B each in KC_RESERV
#   vm_check      the invariants
#   core (here)   the design's hooks under the contract layer every map-entry
#                 design shares (mmbench.blocks.mapentry: argument checks in the
#                 reference model's order, the PTE fast path of read/write), and
#                 the Python-level views (object graph, chain-depth histogram,
#                 reverse-map walks).
#
# The contract's operations map onto FreeBSD as follows:
#   mmap      vm_map_insert of an entry with no object yet
#   munmap    vm_map_delete (clip, pmap_remove, vm_map_entry_delete)
#   mprotect  vm_map_protect (pmap_protect when write is taken away)
#   read      PTE present: load; else vm_fault (read)
#   write     writable PTE: store; else vm_fault (write)
#   fork      vmspace_fork (NEEDS_COPY, pmap_protect of the parent, pmap_copy)
#   exit      vmspace_free (every entry deleted, page tables released)
#   mremap    entries and PTEs moved (FreeBSD has no mremap)
#   madvise   imposed by the contract (private pages read 0 next): MADV_FREE
#             with immediate reclaim + pmap_remove, see vm_map_dontneed
#   (each process also holds one struct vmspace, 584 B: KC_VMSPACE)
# Accelerators are not modelled yet (supports_devices = False).

from libc.stdlib cimport calloc, free
from libc.stdint cimport int64_t, uint64_t

from mmbench.core cimport MADV_DONTNEED
from mmbench.core cimport (Machine, MM_OK, MM_ESEGV, MM_EPROT, MM_ENOMEM, MM_EINVAL, MM_ENOTSUP,
                           C_RMAP_VISITS)
from mmbench.blocks.maplist cimport map_list_t, map_entry_link_t
from mmbench.blocks.mapentry cimport MapEntryMachine
from mmbench.blocks.frames cimport frames_t, frame_t, pfn_t, NO_PFN, FR_FIELD_MAX
from mmbench.blocks.pagetable cimport pgtable_t, pt_node_t, pte_present, pte_pfn
from mmbench_freebsd.vm cimport (vm_ctx_t, vm_reserv_t, vm_map_t, vm_map_entry_t, vm_object_t,
                                 KC_ENTRY, KC_OBJECT, KC_PAGE, KC_PCTRIE, KC_PVCHUNK, KC_PGD,
                                 KC_PUD, KC_PMD, KC_PTE, CHAIN_HIST, MAP_ENTRY_COW,
                                 MAP_ENTRY_NEEDS_COPY, OBJ_ONEMAPPING, VM_INHERIT_SHARE,
                                 vm_map_entry_first, vm_map_entry_succ)
from mmbench_freebsd.vm_map cimport (vmspace_alloc, vmspace_free, vm_map_lookup_entry, vm_map_insert,
                                     vm_map_delete, vm_map_protect, vmspace_fork, vm_map_move,
                                     vm_map_dontneed)
from mmbench_freebsd.vm_fault cimport vm_fault, vm_map_resolve
from mmbench_freebsd.vm_check cimport vm_check_all
from mmbench.blocks.pmap cimport pmap_ctx_t, pmap_pte, pmap_superpages, pmap_ctx_destroy
from mmbench.blocks.pmap_pvchunk cimport (pv_entry_t, pv_head_t, pv_pmap, pv_va, pv_next, pv_list,
                                          pv_list_first, pmap_bootstrap)
from mmbench_freebsd.pmap cimport pmap_pde_init
from mmbench_freebsd.vm_reserv cimport vm_reserv_from_page
from mmbench.blocks.handles cimport handles_init, handles_destroy
from mmbench_freebsd.pctrie cimport (pctrie_zone_init, pctrie_zone_destroy, pctrie_type_array,
                                     pctrie_type_table)

from mmbench import errors as _errors
from mmbench.hugepages import THP_DEFAULT, thp_option

# (cache name, kernel struct size in bytes), in KC_* order.  vmspace: struct
# vmspace of sys/vm/vm_map.h on amd64 = struct vm_map 184 (its header entry 96,
# the sx lock 32, counters, root, pmap pointer, anon_loc, busy) + 88 bytes of
# segment fields and vm_refcnt + struct pmap 312 (sys/amd64/include/pmap.h:
# pm_mtx 32, four pointers/cr3 words 32, pm_pvchunk 16, pm_active cpuset_t of
# MAXCPU = 1024 bits 128, pm_type, pm_stats 16, pm_root, pm_eptgen, pm_eptsmr,
# pm_flags, pm_pcidp, pm_pkru rangeset 40) = 584 (computed; one per process,
# allocated by vmspace_alloc from the VMSPACE zone).
_CACHES = (("vm_map_entry", 96), ("vm_object", 264), ("vm_page", 104), ("pctrie_node", 144),
           ("pv_chunk", 4096), ("pgd", 4096), ("pud_table", 4096), ("pmd_table", 4096),
           ("pte_table", 4096), ("vmspace", 584), ("vm_reserv", 160))


cdef int64_t pv_walk(pmap_ctx_t* md, pv_head_t* head, int64_t offset, list out):
    """Append (pid, va + offset) for each entry of a pv list; the entries visited."""
    cdef pv_entry_t pv = pv_list_first(head)
    cdef int64_t n = 0
    while pv != 0:
        out.append((int(pv_pmap(md, pv).hdr.pid), int(pv_va(md, pv) + offset)))
        n += 1
        pv = pv_next(md, pv)
    return n


cdef int vm_tries_init(vm_ctx_t* vm, frames_t* fr) except -1:
    """The node zone of the machine's tries and their two item types (pctrie.pxd):
    object pages by pfn, reservations by number.  A trie of n items has at most
    n - 1 nodes, so room for a node per frame and per reservation (each holds a
    page, and fewer than FR_FIELD_MAX are alive) is never exhausted."""
    cdef int64_t nframes = fr.node_base[fr.nr_nodes - 1] + fr.node_size[fr.nr_nodes - 1]
    cdef vm_reserv_t rv
    pctrie_zone_destroy(&vm.pctrie_zone)
    if pctrie_zone_init(&vm.pctrie_zone, 1 + nframes + min(nframes, FR_FIELD_MAX)) != 0:
        raise MemoryError("no memory for the pctrie node table")
    pctrie_type_array(&vm.page_trie, &vm.pctrie_zone, &fr.f[0].index, sizeof(frame_t), nframes)
    pctrie_type_table(&vm.reserv_trie, &vm.pctrie_zone, &vm.reserv_tab,
                      <char*>&rv.rvkey - <char*>&rv, <char*>&rv.num - <char*>&rv.rvkey)
    return 0


cdef class FreeBSDMachine(MapEntryMachine):
    """FreeBSD VM: vm_map entries, vm_object shadow chains with collapse and
    bypass, pages in a per-object radix trie, pmap with pv entries."""

    name = "freebsd"
    description = ("FreeBSD VM: vm_map entries, vm_object shadow chains (lazy shadowing, "
                   "collapse, bypass), pctrie of pages, pmap with pv_entry reverse map")
    #: pmap_copy: fork copies the parent's PTEs into the child as the amd64 pmap
    #: does (read-only for private ranges); False: the child starts with no
    #: mappings and refaults (pmap_copy is advisory; several pmaps leave it empty).
    #: prefault: a fault also maps up to 4 resident pages on each side read-only
    #: (vm_fault_prefault); False: every page is faulted on its own.
    #: thp: mmbench.hugepages mode; "never" is vm.pmap.pg_ps_enabled=0, "madvise"
    #: and "always" are pg_ps_enabled=1 (FreeBSD's own policy: no per-range
    #: advice, every superpage-eligible object range gets a reservation).
    option_defaults = {"pmap_copy": True, "prefault": True, "thp": THP_DEFAULT}
    memmap_struct = "vm_page"     # the per-frame descriptor memmap="memdesc" replaces
    supports_devices = False
    huge_page_advice = True
    counter_names = (
        "faults", "fault_zero_fill", "fault_cow_copy", "fault_cow_reuse", "fault_minor",
        "fault_wp_shared", "pages_zeroed", "pages_copied", "pte_writes", "pte_zaps",
        "tlb_flushes", "pt_pages_alloc", "pt_pages_free", "rmap_visits", "chain_steps",
        "vma_splits", "vma_merges", "objects_alloc", "objects_free", "shadow_objects", "collapses",
        "bypasses", "cow_page_moves", "pv_entries", "fork_ptes_copied", "fork_ptes_wrprotect",
        "mremap_pages_moved", "reserv_alloc", "reserv_freed", "reserv_broken", "reserv_pages",
        "superpage_promotions", "superpage_demotions", "superpage_p_failures")

    def __init__(self, **kw):
        super().__init__(**kw)
        for i, (cname, size) in enumerate(_CACHES):
            if self.slab_register(cname, size) != i:      # KC_* ids are positions
                raise RuntimeError("slab caches registered out of KC_* order")
        self.vm.md.fr = &self.frames
        self.vm.md.ctr = &self.ctr[0]
        self.vm.md.kc = &self.caches[0]
        self.vm.md.kc_pgd = KC_PGD
        self.vm.md.kc_pv = KC_PVCHUNK
        self.vm.md.kc_pmap = -1             # struct pmap is inside struct vmspace (KC_VMSPACE)
        handles_init(&self.vm.reserv_tab, FR_FIELD_MAX - 1)   # number + 1 fits frame_field
        vm_tries_init(&self.vm, &self.frames)
        if pmap_bootstrap(&self.vm.md, self.ram_pages) != 0:
            raise MemoryError("no memory for the pmap")
        self.vm.objects = NULL
        self.vm.nobjects = 0
        self.vm.next_serial = 0
        for opt in ("pmap_copy", "prefault"):
            if not isinstance(self.options[opt], bool):
                raise _errors.InvalidArgument(f"the {opt} option must be True or False")
        self.pg_ps_enabled = thp_option(self.options) != "never"
        self.vm.pg_ps_enabled = self.pg_ps_enabled
        pmap_pde_init(&self.vm)
        self.vm.pmap_copy = self.options["pmap_copy"]
        self.vm.prefault = self.options["prefault"]
        for i in range(CHAIN_HIST):
            self.vm.depth_hist[i] = 0

    def __dealloc__(self):
        cdef int64_t pid
        if self.vm.md.kc == NULL:
            return
        for pid in range(1, self.next_pid):
            if self.procs != NULL and self.procs[pid] != NULL:
                vmspace_free(&self.vm, <vm_map_t*>self.procs[pid])
                self.procs[pid] = NULL
        pmap_ctx_destroy(&self.vm.md)
        handles_destroy(&self.vm.reserv_tab)
        pctrie_zone_destroy(&self.vm.pctrie_zone)

    # --------------------------------- the mechanism (mmbench.blocks.mapentry)
    # The contract's walk is MapEntryMachine's; these name the design's map
    # operations.  A map_list_t* here is the `list` a vm_map_t starts with, a
    # map_entry_link_t* the `link` a vm_map_entry_t starts with.
    cdef map_list_t* me_vmspace_alloc(self, int64_t pid) noexcept nogil:
        cdef vm_map_t* map = vmspace_alloc(&self.vm, pid)
        return NULL if map == NULL else &map.list

    cdef void me_vmspace_free(self, map_list_t* map) noexcept nogil:
        vmspace_free(&self.vm, <vm_map_t*>map)

    cdef int me_vmspace_fork(self, map_list_t* src, map_list_t* dst) noexcept nogil:
        return vmspace_fork(&self.vm, <vm_map_t*>src, <vm_map_t*>dst)

    cdef int me_map_insert(self, map_list_t* map, int64_t start, int64_t end, bint shared,
                           bint writable) noexcept nogil:
        return vm_map_insert(&self.vm, <vm_map_t*>map, start, end, shared, writable)

    cdef void me_map_delete(self, map_list_t* map, int64_t start, int64_t end) noexcept nogil:
        vm_map_delete(&self.vm, <vm_map_t*>map, start, end)

    cdef void me_map_protect(self, map_list_t* map, int64_t start, int64_t end,
                             bint writable) noexcept nogil:
        vm_map_protect(&self.vm, <vm_map_t*>map, start, end, writable)

    cdef int me_map_move(self, map_list_t* map, int64_t start, int64_t end,
                         int64_t new_start) noexcept nogil:
        return vm_map_move(&self.vm, <vm_map_t*>map, start, end, new_start)

    cdef int me_map_dontneed(self, map_list_t* map, int64_t start, int64_t end) noexcept nogil:
        return vm_map_dontneed(&self.vm, <vm_map_t*>map, start, end)

    cdef pgtable_t* me_pgtable(self, map_list_t* map) noexcept nogil:
        return &(<vm_map_t*>map).pmap.hdr.pt

    cdef bint me_entry_writable(self, map_entry_link_t* e) noexcept nogil:
        return (<vm_map_entry_t*>e).writable

    cdef bint me_entry_shared(self, map_entry_link_t* e) noexcept nogil:
        return (<vm_map_entry_t*>e).inheritance == VM_INHERIT_SHARE

    cdef int me_fault(self, map_list_t* map, map_entry_link_t* e, int64_t vpn, bint write,
                      pt_node_t* leaf, pfn_t* pfn_out) noexcept nogil:
        return vm_fault(&self.vm, <vm_map_t*>map, <vm_map_entry_t*>e, vpn, write, leaf, pfn_out)

    def notes(self):
        with self.held():
            return self._notes()

    def _notes(self):
        mode = "on" if self.pg_ps_enabled else "off (thp='never')"
        return [f"vm.pmap.pg_ps_enabled {mode}; thp='madvise' and 'always' both mean FreeBSD's own "
                "policy (no per-range advice: madvise HUGEPAGE/NOHUGEPAGE are accepted and ignored)",
                ("superpages: anonymous objects get 2 MiB reservations (vm_reserv) and fully "
                 "populated, uniformly protected 512-page blocks are promoted to one 2 MiB mapping "
                 "(pmap_promote_pde), demoted on partial change (pmap_demote_pde)"
                 if self.pg_ps_enabled else "superpages off: every mapping runs at 4 KiB"),
                self.move_pages_note()]

    def superpages(self, pid):
        """2 MiB mappings (promoted PDEs) in the pmap of `pid`."""
        with self.held():
            pid = self._pid(pid)
            return int(pmap_superpages(&self.map_of(pid).pmap.hdr))

    # ------------------------------------------------------ loads, stores


    # -------------------------------------------------------- invariants
    cdef int c_check(self) noexcept nogil:
        cdef const char* why = NULL
        if vm_check_all(&self.vm, self.procs, self.next_pid, &why) != 0:
            return self.check_fail(why)
        return MM_OK

    # ------------------------------------------------- design-level views
    def chain_depth_histogram(self):
        """{objects walked past: faults} over every fault so far (exact)."""
        with self.held():
            return {d: int(self.vm.depth_hist[d]) for d in range(CHAIN_HIST) if self.vm.depth_hist[d]}

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
        cdef vm_reserv_t* rv
        out = []
        if not pte_present(pte):
            return out
        self.ctr[C_RMAP_VISITS] += pv_walk(&self.vm.md, pv_list(&self.vm.md, pte_pfn(pte)), 0, out)
        rv = vm_reserv_from_page(&self.vm, pte_pfn(pte))
        if rv != NULL:                      # 2 MiB mappings: the pvh list of its reservation
            idx = [i for i in range(512) if rv.pages[i] == pte_pfn(pte)
                   and (rv.popmap[i >> 6] >> (i & 63)) & 1][0]
            self.ctr[C_RMAP_VISITS] += pv_walk(&self.vm.md, &rv.pvh, idx, out)
        return sorted(out)

    def chain_length(self, pid, vpn):
        """Objects in the chain behind `vpn` of `pid` (0: no object yet)."""
        with self.held():
            return self._chain_length(pid, vpn)

    def _chain_length(self, pid, vpn):
        pid = self._pid(pid)
        vpn, _ = self._range(vpn)
        cdef vm_map_entry_t* e = vm_map_lookup_entry(self.map_of(pid), vpn)
        cdef vm_object_t* obj
        cdef int n = 0
        if e == NULL:
            raise _errors.SegmentationFault(f"pid {pid}: vpn {vpn} is not mapped")
        obj = e.object
        while obj != NULL:
            n += 1
            obj = obj.backing_object
        return n

    def objects(self):
        """Every live vm_object: {serial: {...}} (the object graph)."""
        with self.held():
            return self._objects()

    def _objects(self):
        cdef vm_object_t* obj = self.vm.objects
        out = {}
        while obj != NULL:
            out[int(obj.serial)] = {
                "ref_count": int(obj.ref_count), "shadow_count": int(obj.shadow_count),
                "backing": int(obj.backing_object.serial) if obj.backing_object != NULL else None,
                "backing_offset": int(obj.backing_object_offset), "size": int(obj.size),
                "resident": int(obj.rtree.count), "onemapping": bool(obj.flags & OBJ_ONEMAPPING)}
            obj = obj.all_next
        return dict(sorted(out.items()))

    def entries(self, pid):
        """The entries of `pid`'s map: [{start, end, object, offset, flags}, …]."""
        with self.held():
            return self._entries(pid)

    def _entries(self, pid):
        pid = self._pid(pid)
        cdef vm_map_entry_t* e = vm_map_entry_first(self.map_of(pid))
        out = []
        while e != NULL:
            flags = []
            if e.eflags & MAP_ENTRY_COW:
                flags.append("COW")
            if e.eflags & MAP_ENTRY_NEEDS_COPY:
                flags.append("NEEDS_COPY")
            out.append({"start": int(e.link.start), "end": int(e.link.end),
                        "object": int(e.object.serial) if e.object != NULL else None,
                        "offset": int(e.offset), "flags": flags, "writable": bool(e.writable),
                        "shared": e.inheritance == VM_INHERIT_SHARE})
            e = vm_map_entry_succ(e)
        return out

    def object_graph(self):
        """ASCII drawing of every process's entries and the object chains behind them."""
        with self.held():
            return self._object_graph()

    def _object_graph(self):
        objs = self.objects()
        lines = []
        for pid in self.live_pids():
            for ent in self.entries(pid):
                chain, s = [], ent["object"]
                while s is not None:
                    o = objs[s]
                    chain.append(f"obj{s}(ref {o['ref_count']}, shadows {o['shadow_count']}, "
                                 f"pages {o['resident']})")
                    s = o["backing"]
                flags = "|".join(ent["flags"]) or "-"
                lines.append(f"pid {pid} [{ent['start']},{ent['end']}) {flags}: "
                             + (" -> ".join(chain) or "no object yet"))
        return "\n".join(lines)
