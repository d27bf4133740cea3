# The contract layer of a map-entry design; see mapentry.pxd.
from libc.stdint cimport int64_t, uint64_t

from mmbench.core cimport (Machine, MM_OK, MM_ESEGV, MM_EPROT, MM_ENOMEM, MM_EINVAL, MM_ENOTSUP,
                           MADV_DONTNEED, VPN_BITS)
from mmbench.blocks.frames cimport pfn_t
from mmbench.blocks.pagetable cimport pgtable_t, pt_node_t, pt_leaf, pt_find_leaf, pte_present, pte_write, pte_pfn
from mmbench.blocks.maplist cimport (map_list_t, map_entry_link_t, maplist_lookup, maplist_range_free,
                                     maplist_range_mapped, maplist_mremap_check)

cdef int64_t VPN_END = (<int64_t>1) << VPN_BITS


cdef class MapEntryMachine(Machine):
    """A design made of vm_map entries above a pmap (see mapentry.pxd): the
    contract's operations as one walk, the design's mechanism in its hooks."""

    # --------------------------------------------------------- move_pages
    cdef int move_range_status(self, int64_t pid, int64_t vpn, int64_t npages) noexcept:
        """The copying move_pages' range check, on the map's entries."""
        cdef map_list_t* map = self.me_map(pid)
        cdef map_entry_link_t* e = maplist_lookup(map, vpn, VPN_END)
        cdef int64_t at = vpn
        cdef int st = MM_OK
        while at < vpn + npages:
            if e == NULL or e.start > at:
                return MM_ESEGV
            if self.me_entry_shared(e) or not self.me_entry_writable(e):
                st = MM_EINVAL
            at = e.end
            e = e.next
        return st

    # ------------------------------------------------------- processes
    cdef int64_t me_new_process(self, map_list_t** map_out) noexcept nogil:
        """A new vmspace under the next pid: the pid, or -1 out of memory (nothing changed)."""
        cdef map_list_t* map = self.me_vmspace_alloc(self.next_pid)
        cdef int64_t pid
        if map == NULL:
            return -1
        pid = self.pid_install(map)
        if pid < 0:
            self.me_vmspace_free(map)
            return -1
        map_out[0] = map
        return pid

    cdef int c_spawn(self, int64_t* pid_out) noexcept nogil:
        cdef map_list_t* map
        cdef int64_t pid = self.me_new_process(&map)
        if pid < 0:
            return MM_ENOMEM
        pid_out[0] = pid
        return MM_OK

    cdef int c_fork(self, int64_t pid, int64_t* child_out) noexcept nogil:
        cdef map_list_t* dst
        cdef int64_t child = self.me_new_process(&dst)
        if child < 0:
            return MM_ENOMEM
        if self.me_vmspace_fork(self.me_map(pid), dst) != 0:     # host out of memory
            self.me_vmspace_free(dst)
            self.pid_release(child)
            self.next_pid -= 1
            return MM_ENOMEM
        child_out[0] = child
        return MM_OK

    cdef int c_exit(self, int64_t pid) noexcept nogil:
        self.me_vmspace_free(self.me_map(pid))
        self.pid_release(pid)
        return MM_OK

    # --------------------------------------------------------- mappings
    cdef int c_mmap(self, int64_t pid, int64_t vpn, int64_t npages, uint64_t flags) noexcept nogil:
        cdef map_list_t* map = self.me_map(pid)
        if not maplist_range_free(map, vpn, vpn + npages, VPN_END):
            return MM_EINVAL
        if self.me_map_insert(map, vpn, vpn + npages, (flags & 1) != 0, (flags & 2) != 0) != 0:
            return MM_ENOMEM
        return MM_OK

    cdef int c_munmap(self, int64_t pid, int64_t vpn, int64_t npages) noexcept nogil:
        self.me_map_delete(self.me_map(pid), vpn, vpn + npages)
        return MM_OK

    cdef int c_mprotect(self, int64_t pid, int64_t vpn, int64_t npages, bint writable) noexcept nogil:
        cdef map_list_t* map = self.me_map(pid)
        if not maplist_range_mapped(map, vpn, vpn + npages, VPN_END):
            return MM_EINVAL
        self.me_map_protect(map, vpn, vpn + npages, writable)
        return MM_OK

    cdef int c_mremap(self, int64_t pid, int64_t old_vpn, int64_t npages, int64_t new_vpn) noexcept nogil:
        cdef map_list_t* map = self.me_map(pid)
        cdef int st = maplist_mremap_check(map, old_vpn, npages, new_vpn)
        if st != MM_OK:
            return st
        return self.me_map_move(map, old_vpn, old_vpn + npages, new_vpn)

    cdef int c_madvise_dontneed(self, int64_t pid, int64_t vpn, int64_t npages) noexcept nogil:
        cdef map_list_t* map = self.me_map(pid)
        if not maplist_range_mapped(map, vpn, vpn + npages, VPN_END):
            return MM_EINVAL
        return self.me_map_dontneed(map, vpn, vpn + npages)

    cdef int c_madvise(self, int64_t pid, int64_t vpn, int64_t npages, int advice) noexcept nogil:
        # the BSDs' madvise has no HUGEPAGE / NOHUGEPAGE: accepted for the
        # contract over a mapped range, without effect on the map
        if advice == MADV_DONTNEED:
            return self.c_madvise_dontneed(pid, vpn, npages)
        if not maplist_range_mapped(self.me_map(pid), vpn, vpn + npages, VPN_END):
            return MM_EINVAL
        return MM_OK

    # ------------------------------------------------------ loads, stores
    cdef int me_fault_at(self, map_list_t* map, int64_t vpn, bint write, pt_node_t* leaf,
                         pfn_t* pfn_out) noexcept nogil:
        """The PTE does not allow the access: the entry (SEGV without one, PROT for a
        write to a read-only one), then the design's fault."""
        cdef map_entry_link_t* e = maplist_lookup(map, vpn, VPN_END)
        if e == NULL:
            return MM_ESEGV
        if write and not self.me_entry_writable(e):
            return MM_EPROT
        return self.me_fault(map, e, vpn, write, leaf, pfn_out)

    cdef int c_read(self, int64_t pid, int64_t vpn, uint64_t* out) noexcept nogil:
        cdef map_list_t* map = self.me_map(pid)
        cdef pt_node_t* leaf = pt_find_leaf(self.me_pgtable(map), <uint64_t>vpn)
        cdef uint64_t pte = leaf.e[vpn & 511] if leaf != NULL else 0
        cdef pfn_t pfn
        cdef int st
        if pte_present(pte):
            out[0] = self.frames.f[pte_pfn(pte)].value
            return MM_OK
        st = self.me_fault_at(map, vpn, False, leaf, &pfn)
        if st == MM_OK:
            out[0] = self.frames.f[pfn].value
        return st

    cdef int c_write(self, int64_t pid, int64_t vpn, uint64_t value) noexcept nogil:
        cdef map_list_t* map = self.me_map(pid)
        cdef pt_node_t* leaf = pt_find_leaf(self.me_pgtable(map), <uint64_t>vpn)
        cdef uint64_t pte = leaf.e[vpn & 511] if leaf != NULL else 0
        cdef pfn_t pfn
        cdef int st
        if pte_present(pte) and pte_write(pte):
            self.frames.f[pte_pfn(pte)].value = value
            return MM_OK
        st = self.me_fault_at(map, vpn, True, leaf, &pfn)
        if st == MM_OK:
            self.frames.f[pfn].value = value
        return st

    # ----------------------------------------------- the design's hooks
    cdef map_list_t* me_vmspace_alloc(self, int64_t pid) noexcept nogil:
        return NULL

    cdef void me_vmspace_free(self, map_list_t* map) noexcept nogil:
        pass

    cdef int me_vmspace_fork(self, map_list_t* src, map_list_t* dst) noexcept nogil:
        return -1

    cdef int me_map_insert(self, map_list_t* map, int64_t start, int64_t end, bint shared,
                           bint writable) noexcept nogil:
        return -1

    cdef void me_map_delete(self, map_list_t* map, int64_t start, int64_t end) noexcept nogil:
        pass

    cdef void me_map_protect(self, map_list_t* map, int64_t start, int64_t end,
                             bint writable) noexcept nogil:
        pass

    cdef int me_map_move(self, map_list_t* map, int64_t start, int64_t end,
                         int64_t new_start) noexcept nogil:
        return MM_ENOTSUP

    cdef int me_map_dontneed(self, map_list_t* map, int64_t start, int64_t end) noexcept nogil:
        return MM_ENOTSUP

    cdef pgtable_t* me_pgtable(self, map_list_t* map) noexcept nogil:
        return NULL

    cdef bint me_entry_writable(self, map_entry_link_t* e) noexcept nogil:
        return False

    cdef bint me_entry_shared(self, map_entry_link_t* e) noexcept nogil:
        return False

    cdef int me_fault(self, map_list_t* map, map_entry_link_t* e, int64_t vpn, bint write,
                      pt_node_t* leaf, pfn_t* pfn_out) noexcept nogil:
        return MM_ENOTSUP
