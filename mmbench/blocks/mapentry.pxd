# mapentry — the contract layer of a map-entry design, once.
#
# The BSD designs (freebsd: vm_map + vm_object chains; uvm: vm_map + amaps)
# share the shape of their address space: a vm_map of entries ordered by
# address (mmbench/blocks/maplist: map_list_t, map_entry_link_t) above a pmap
# (mmbench/blocks/pmap).  What the contract asks of them is the same walk in
# both: check the range against the map, then call the map operation; on a
# load or store, use the PTE when it allows the access, else look up the entry
# and fault.  MapEntryMachine does that walk; a design subclasses it and
# supplies its mechanism through the hooks below (its map operations under
# their kernel names: vm_map_insert / uvm_map_enter, vm_fault / uvm_fault …).
#
#   contract        MapEntryMachine                    the design's hook
#   spawn           new vmspace, pid installed          me_vmspace_alloc
#   fork            new vmspace, then fork into it      me_vmspace_fork
#   exit            vmspace freed                       me_vmspace_free
#   mmap            range free?  then insert            me_map_insert
#   munmap          delete (an unmapped hole is fine)   me_map_delete
#   mprotect        range mapped?  then protect         me_map_protect
#   mremap          maplist_mremap_check, then move     me_map_move
#   madvise         DONTNEED: range mapped? dontneed    me_map_dontneed
#                   HUGEPAGE/NOHUGEPAGE: range mapped? nothing (the BSDs
#                   have no per-range huge-page advice)
#   move_pages      the copying fallback; its range     me_entry_shared,
#                   check walks the entries             me_entry_writable
#   read / write    PTE allows it: load / store;        me_pgtable (the pmap's
#                   else entry (SEGV without one,        page table)
#                   PROT for a write to a read-only     me_entry_writable
#                   one), then fault                    me_fault
#
# A design's vm_map_t embeds `map_list_t list` as its first member and its
# vm_map_entry_t embeds `map_entry_link_t link` as its first member, so the
# pointers the hooks receive are the design's own structs (the first member
# sits at offset 0).  Invariants (c_check) and the Python-level views stay
# with each design.

from libc.stdint cimport int64_t, uint64_t
from mmbench.core cimport Machine
from mmbench.blocks.frames cimport pfn_t
from mmbench.blocks.pagetable cimport pgtable_t, pt_node_t
from mmbench.blocks.maplist cimport map_list_t, map_entry_link_t

cdef class MapEntryMachine(Machine):
    cdef inline map_list_t* me_map(self, int64_t pid) noexcept nogil:
        return <map_list_t*>self.proc_of(pid)
    cdef int64_t me_new_process(self, map_list_t** map_out) noexcept nogil
    cdef int me_fault_at(self, map_list_t* map, int64_t vpn, bint write, pt_node_t* leaf,
                         pfn_t* pfn_out) noexcept nogil

    # --- the design's mechanism (override every one)
    # a vmspace: its map and its pmap (NULL out of memory)
    cdef map_list_t* me_vmspace_alloc(self, int64_t pid) noexcept nogil
    cdef void me_vmspace_free(self, map_list_t* map) noexcept nogil        # every entry too
    # fork src into the fresh dst: 0, or -1 out of memory (dst is then freed by the caller)
    cdef int me_vmspace_fork(self, map_list_t* src, map_list_t* dst) noexcept nogil
    # an anonymous entry over the free range [start, end): 0, or -1 out of memory
    cdef int me_map_insert(self, map_list_t* map, int64_t start, int64_t end, bint shared,
                           bint writable) noexcept nogil
    cdef void me_map_delete(self, map_list_t* map, int64_t start, int64_t end) noexcept nogil
    # the mapped range [start, end) becomes writable or read-only
    cdef void me_map_protect(self, map_list_t* map, int64_t start, int64_t end,
                             bint writable) noexcept nogil
    # checked mremap: an MM_* status (MM_ENOMEM leaves the map as it was)
    cdef int me_map_move(self, map_list_t* map, int64_t start, int64_t end,
                         int64_t new_start) noexcept nogil
    # the mapped range [start, end) drops its pages: an MM_* status
    cdef int me_map_dontneed(self, map_list_t* map, int64_t start, int64_t end) noexcept nogil
    cdef pgtable_t* me_pgtable(self, map_list_t* map) noexcept nogil
    cdef bint me_entry_writable(self, map_entry_link_t* e) noexcept nogil
    cdef bint me_entry_shared(self, map_entry_link_t* e) noexcept nogil    # inherited shared
    # resolve a fault at vpn inside entry e (leaf: vpn's PTE table if it exists):
    # an MM_* status, and the page now mapped there in pfn_out
    cdef int me_fault(self, map_list_t* map, map_entry_link_t* e, int64_t vpn, bint write,
                      pt_node_t* leaf, pfn_t* pfn_out) noexcept nogil
