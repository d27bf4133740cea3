# uvm — the data structures of the UVM design, shared by its modules.
#
#   vmspace (one per process)          vm_amap (anonymous map)          vm_anon
#   ┌────────────────────────┐        ┌───────────────────────────┐   ┌─────────┐
#   │ entry [start,end)      │ aref   │ am_ref  am_flags(SHARED)  │   │ an_ref  │
#   │ etype COPYONWRITE|     │──────▶ │ am_anon[slot] ────────────┼──▶│ an_page │──▶ frame
#   │       NEEDSCOPY        │pageoff │ am_slots / am_bckptr      │   └─────────┘
#   │ inheritance            │        │ am_ppref[slot] (optional) │   (one anon per page;
#   └────────────────────────┘        └───────────────────────────┘    shared by amaps
#   pmap: NetBSD x86's (mmbench.blocks.pmap_netbsd): 4-level tables,   through an_ref)
#   the first pv of a page embedded in its vm_page, further ones in
#   per-pmap pv_pages.
#
# Two levels only: an entry's page is found in one lookup,
# am_anon[ar_pageoff + (vpn - start)], never by walking a chain.  Sharing after
# fork is expressed by reference counts: am_ref counts the entries pointing at
# an amap, an_ref the amap slots pointing at an anon.
#
# How the model stores an anon.  In the model an anon always has its page (no
# swap), takes a fresh one when it is made (uvm_analloc) and frees it with
# itself (uvm_anfree), and a page belongs to one anon at most: the anon and
# its page live and die together.  So the model names an anon by its page and
# keeps the anon's one field, an_ref, in the page's frame descriptor
# (mmbench.blocks.frames, the `aux` word); the simulator stores no vm_anon of
# its own.  A vm_anon_t is the page's frame number + 1, so that an empty amap
# slot holds 0 (NO_ANON), and an amap slot costs the simulator 4 + 4 + 4
# bytes, not the kernel's 4 + 4 + 8 (AMAP_SLOT_BYTES, which UK_SLOTS
# accounts).  UK_ANON still accounts a 32-byte struct vm_anon per anon.  The
# descriptor's `owner` and `index` words hold the page's pmap_page (the pmap
# block's; see pmap_netbsd.pxd).
#
# UVM's context embeds the pmap block's context (`md`, the machine-dependent
# part); the caches the pmap charges are named in it by index.

from libc.stdint cimport uint64_t, int64_t, uint32_t, int32_t, uint8_t
from mmbench.blocks.frames cimport pfn_t
from mmbench.blocks.maplist cimport map_entry_link_t, map_list_t
from mmbench.blocks.pmap cimport pmap_ctx_t
from mmbench.blocks.pmap_netbsd cimport pmap_t

cdef enum:  # vm_map_entry etype
    UVM_ET_COPYONWRITE = 1 << 0    # private: writes go to anons of this entry's own amap
    UVM_ET_NEEDSCOPY = 1 << 1      # the amap (or its absence) is not yet this entry's own

cdef enum:  # inheritance at fork
    MAP_INHERIT_SHARE = 0
    MAP_INHERIT_COPY = 1

cdef enum:  # am_flags
    AMAP_SHARED = 1 << 0           # mapped by shared entries of several maps

cdef enum:
    UVM_AMAP_LARGE = 256           # first-touch amaps of entries this big are chunked into
    UVM_AMAP_CHUNK = 16            # 16-page pieces (amap_copy's canchunk); amap_extend
                                   # never grows an amap to UVM_AMAP_LARGE slots (E2BIG)
    AMAP_SLOT_BYTES = 16           # am_slots + am_bckptr (int each) + am_anon (pointer)
    AMAP_PPREF_BYTES = 4           # am_ppref, once established
    E2BIG = 7                      # amap_extend: the amap would be too large

cdef enum:  # uvmadvice[UVM_ADV_NORMAL]: fault-ahead window
    UVM_ADV_NORMAL_NBACK = 3       # resident anons mapped behind the fault ...
    UVM_ADV_NORMAL_NFORW = 4       # ... and ahead of it

cdef enum:  # slab caches, registered in this order by UVMMachine
    UK_ENTRY = 0                   # vm_map_entry
    UK_AMAP = 1                    # vm_amap header
    UK_PAGE = 2                    # vm_page
    UK_ANON = 3                    # vm_anon
    UK_PVPAGE = 4                  # pv_page (pmap: 63 pv_entry of 64 B)
    UK_PGD = 5                     # page-table pages (pmap), PGD..PTE consecutive
    UK_PUD = 6
    UK_PMD = 7
    UK_PTE = 8
    UK_SLOTS = 9                   # amap slot arrays, in bytes (object size 1)
    UK_VMSPACE = 10                # struct vmspace (with its vm_map)
    UK_PMAP = 11                   # struct pmap
    NR_UK

ctypedef uint32_t vm_anon_t        # an anon: its page's frame number + 1 (see above)

cdef enum:
    NO_ANON = 0                    # an empty amap slot

ctypedef struct vm_amap_t:
    int32_t am_ref                 # entries referencing this amap
    uint32_t am_flags              # AMAP_SHARED
    int32_t am_maxslot             # slots allocated
    int32_t am_nslot               # slots in use by the mapping
    int32_t am_nused               # slots holding an anon
    int32_t* am_slots              # [am_nused]: the used slots, packed
    int32_t* am_bckptr             # [slot]: index of slot in am_slots
    vm_anon_t* am_anon             # [slot]: the anon, or NO_ANON
    int32_t* am_ppref              # [slot]: entries covering the slot; NULL = all cover all
    vm_amap_t* am_next             # am_list: every live amap (check, leaks, views)
    vm_amap_t* am_prev
    uint64_t serial                # stable name for views: 1, 2, 3 …
    int32_t check_refs             # scratch for c_check: entries found
    int32_t* check_cover           # scratch for c_check: entries covering each slot

ctypedef struct vm_aref_t:
    int64_t ar_pageoff             # slot of the entry's first page
    vm_amap_t* ar_amap             # NULL until the first fault (private) / mmap (shared)

ctypedef struct vm_map_entry_t:
    map_entry_link_t link          # first: tree node, address-ordered list, [start, end) in
                                   # pages (mmbench.blocks.maplist; entry_next below)
    vm_aref_t aref
    uint32_t etype                 # UVM_ET_COPYONWRITE | UVM_ET_NEEDSCOPY
    uint8_t writable               # protection (read is implied)
    uint8_t inheritance            # MAP_INHERIT_COPY (private) / _SHARE

ctypedef struct vm_map_t:          # a vmspace: the map and its pmap
    map_list_t list                # first: the entries by address, their tree, the hint
    pmap_t pmap

ctypedef struct uvm_ctx_t:
    pmap_ctx_t md                  # the pmap block's context: frames, counters, caches, pv heads
    vm_amap_t* amaps               # every live amap
    int64_t namaps
    uint64_t next_serial
    bint amap_chunk                # chunk first-touch amaps of large entries (UVM default)
    bint fault_ahead               # map resident neighbours on a fault (uvmadvice, default)

cdef inline void uk_alloc(uvm_ctx_t* u, int c, int64_t n) noexcept nogil:
    u.md.kc[c].active += n
    u.md.kc[c].allocs += n

cdef inline void uk_free(uvm_ctx_t* u, int c, int64_t n) noexcept nogil:
    u.md.kc[c].active -= n
    u.md.kc[c].frees += n

cdef inline vm_anon_t anon_of_page(pfn_t pg) noexcept nogil:
    return <vm_anon_t>(pg + 1)

cdef inline pfn_t an_page(vm_anon_t anon) noexcept nogil:
    """anon->an_page: the page the anon holds."""
    return <pfn_t>(anon - 1)

cdef inline int32_t* an_ref(uvm_ctx_t* u, vm_anon_t anon) noexcept nogil:
    """&anon->an_ref: the amap slots holding the anon (its page descriptor's aux)."""
    return <int32_t*>&u.md.fr.f[anon - 1].aux

cdef inline int64_t entry_slot(vm_map_entry_t* e, int64_t vpn) noexcept nogil:
    return e.aref.ar_pageoff + (vpn - e.link.start)

# The entries in address order (NetBSD: map->header.next, entry->next / ->prev):
# an entry's link is its first member, so the link's neighbours are entries.
cdef inline vm_map_entry_t* map_first(vm_map_t* map) noexcept nogil:
    return <vm_map_entry_t*>map.list.first

cdef inline vm_map_entry_t* map_last(vm_map_t* map) noexcept nogil:
    return <vm_map_entry_t*>map.list.last

cdef inline vm_map_entry_t* entry_next(vm_map_entry_t* e) noexcept nogil:
    return <vm_map_entry_t*>e.link.next

cdef inline vm_map_entry_t* entry_prev(vm_map_entry_t* e) noexcept nogil:
    return <vm_map_entry_t*>e.link.prev
