# vm — the data structures of the FreeBSD design, shared by its modules.
#
#   vm_map (one per process)            vm_object                     vm_page
#   ┌──────────────────────┐            ┌───────────────────────┐      (the frame
#   │ entries, by address  │──object──▶ │ rtree: pindex → page  │─────▶ descriptor,
#   │ [start,end) offset   │            │ ref_count shadow_count│       pindex in
#   │ eflags COW|NEEDS_COPY│            │ backing_object ───────┼──┐    frame.index)
#   │ inheritance          │            └───────────────────────┘  │
#   └──────────────────────┘                                       ▼
#   pmap: 4-level page table + pv_chunks          the object it shadows (offset)
#   (mmbench.blocks.pmap + pmap_pvchunk)
#   pv_entry (pmap, va) on the page's pv list = the reverse map
#
# A vm_page is the frame descriptor of mmbench.blocks.frames: `owner` is the
# vm_object, `index` the pindex (the trie's key: the kernel's leaf points at
# it, the simulator's names the page by pfn, pctrie.pxd), `mapcount` the number of pv entries, `aux` the head of its pv list
# (md.pv_list, a 32-bit pv handle: pmap_pvchunk.pxd), and the flags' field
# (frame_field, bits 12..31) the number + 1 of the reservation it belongs to,
# 0 for none (vm_reserv_from_page, vm_reserv.pyx).  Its 104 bytes are
# accounted in the "vm_page" cache.
#
# Every module works on a vm_ctx_t: frames, counters, slab caches and the
# global object list of one machine (pointers into FreeBSDMachine).

from libc.stdint cimport uint64_t, int64_t, uint32_t, int32_t, uint8_t
from mmbench.blocks.frames cimport frame_t, pfn_t
from mmbench.blocks.handles cimport handles_t
from mmbench.blocks.pmap cimport pmap_ctx_t
from mmbench.blocks.pmap_pvchunk cimport pmap_t, pv_head_t
from mmbench.blocks.maplist cimport map_entry_link_t, map_list_t
from mmbench_freebsd.pctrie cimport pctrie_t, pctrie_zone_t, pctrie_type_t

cdef enum:  # vm_object flags
    OBJ_ANON = 1 << 0          # anonymous (swap-backed) memory
    OBJ_ONEMAPPING = 1 << 1    # every page is mapped at most once, by one entry range
    OBJ_DEAD = 1 << 2

cdef enum:  # vm_map_entry eflags
    MAP_ENTRY_COW = 1 << 0
    MAP_ENTRY_NEEDS_COPY = 1 << 1

cdef enum:  # inheritance at fork
    VM_INHERIT_SHARE = 0
    VM_INHERIT_COPY = 1

cdef enum:  # slab caches, registered in this order by FreeBSDMachine
    KC_ENTRY = 0               # vm_map_entry   96 B
    KC_OBJECT                  # vm_object     264 B
    KC_PAGE                    # vm_page       104 B
    KC_PCTRIE                  # pctrie_node   144 B
    KC_PVCHUNK                 # pv_chunk     4096 B
    KC_PGD                     # page-table pages, 4096 B each
    KC_PUD
    KC_PMD
    KC_PTE
    KC_VMSPACE                 # vmspace       584 B (embeds vm_map and the amd64 pmap)
    KC_RESERV                  # vm_reserv     160 B (one per reservation in use)
    NR_KC

cdef enum:
    CHAIN_HIST = 64            # chain-depth histogram buckets (last one: >= 63)

ctypedef struct vm_reserv_t

ctypedef struct vm_object_t:
    pctrie_t rtree                     # resident pages by pindex
    vm_object_t* backing_object        # the object this one shadows, or NULL
    int64_t backing_object_offset      # pindex here + offset = pindex there
    int64_t size                       # pages
    int32_t ref_count                  # entries + shadows referencing this object
    int32_t shadow_count               # objects whose backing_object is this one
    uint32_t flags
    vm_object_t* shadow_head           # list of shadows (LIST_HEAD shadow_head)
    vm_object_t* shadow_next           # our link in backing_object's shadow list
    vm_object_t* shadow_prev
    vm_object_t* all_next              # every live object (for check and leaks)
    vm_object_t* all_prev
    uint64_t serial                    # stable name for diagrams: 1, 2, 3 …
    int32_t check_refs                 # scratch for c_check: references found
    int32_t check_shadows              # scratch for c_check: shadows found
    void* check_map                    # scratch for c_check: the map of its entries (or -1: several)
    vm_reserv_t* rvq                   # the object's reservations (LIST_HEAD rvq)
    pctrie_t rvindex                   # simulator: the same reservations by rvkey (the
                                       # kernel finds one from a neighbouring page, mpred)
    bint rvindex_lost                  # simulator: an index insert failed (no memory):
                                       # lookups walk rvq instead

cdef enum:
    VM_LEVEL_0_ORDER = 9       # a reservation is 2^9 pages = one 2 MiB superpage
    VM_LEVEL_0_NPAGES = 512
    NPOPMAP = 8                # 64-bit words of the population map

ctypedef struct vm_map_entry_t:
    map_entry_link_t link              # first: tree node, address-ordered list, [start, end) in
                                       # pages (mmbench.blocks.maplist; vm_map_entry_succ below)
    vm_object_t* object                # NULL until the first fault
    int64_t offset                     # pindex of `start` in object
    uint32_t eflags                    # MAP_ENTRY_COW | MAP_ENTRY_NEEDS_COPY
    uint8_t writable                   # protection (read is implied)
    uint8_t inheritance                # VM_INHERIT_COPY (private) / _SHARE

ctypedef struct vm_reserv_t:           # see vm_reserv.pyx
    vm_reserv_t* objq_next             # the object's reservation list
    vm_reserv_t* objq_prev
    vm_object_t* object                # containing object
    int64_t pindex                     # first object index it covers
    int32_t popcnt                     # pages populated
    uint64_t popmap[8]                 # which of the 512 are
    pv_head_t pvh                      # 2 MiB mappings of the reservation (pa_to_pvh: the
                                       # pv list of the physical superpage it stands for;
                                       # 0: none)
    pfn_t pages[512]                   # simulator: the frame of each populated index
    uint32_t num                       # simulator: its number in vm.reserv_tab; each
                                       # populated page's frame_field holds num + 1
    uint64_t rvkey                     # simulator: its key in the object's rvindex, the
                                       # index after its range, pindex + 512 (>= 1: see
                                       # vm_reserv_rename for pindex < 0)

ctypedef struct vm_map_t:              # a vmspace: the map and its pmap (one KC_VMSPACE object)
    map_list_t list                    # first: the entries by address, their tree, the hint
    pmap_t pmap

ctypedef struct vm_ctx_t:
    pmap_ctx_t md                      # first: the pmap block's context (the machine's frames
                                       # md.fr, counters md.ctr (C_* ids), caches md.kc (KC_*
                                       # ids), the pv chunk numbers); pmap.pyx relies on the place
    handles_t reserv_tab               # simulator: the live reservations by number
                                       # (vm_reserv_from_page: frame_field - 1)
    bint pg_ps_enabled                 # vm.pmap.pg_ps_enabled: reservations are made
    vm_object_t* objects               # all live objects
    int64_t nobjects
    uint64_t next_serial
    uint64_t depth_hist[64]            # faults by chain depth walked
    bint pmap_copy                     # fork copies the parent's PTEs (amd64), or not
    bint prefault                      # faults also map resident neighbours (vm_fault_prefault)
    pctrie_zone_t pctrie_zone          # simulator: the nodes of every trie of the machine
    pctrie_type_t page_trie            # simulator: obj.rtree's items, the frame descriptors
                                       # by pfn (key: their index)
    pctrie_type_t reserv_trie          # simulator: obj.rvindex's items, the reservations of
                                       # reserv_tab by number (key: rvkey)

cdef inline void kc_alloc(vm_ctx_t* vm, int c) noexcept nogil:
    vm.md.kc[c].active += 1
    vm.md.kc[c].allocs += 1

cdef inline void kc_free(vm_ctx_t* vm, int c) noexcept nogil:
    vm.md.kc[c].active -= 1
    vm.md.kc[c].frees += 1

cdef inline frame_t* vm_page(vm_ctx_t* vm, pfn_t pfn) noexcept nogil:
    return &vm.md.fr.f[pfn]

cdef inline pfn_t item_pfn(vm_ctx_t* vm, uint64_t* item) noexcept nogil:
    """The pfn whose descriptor's `index` field the trie leaf points at."""
    return <pfn_t>((<char*>item - <char*>&vm.md.fr.f[0].index) // sizeof(frame_t))

cdef inline int64_t entry_pindex(vm_map_entry_t* e, int64_t vpn) noexcept nogil:
    return e.offset + (vpn - e.link.start)

# The entries in address order (FreeBSD's vm_map_entry_first / _succ / _pred):
# an entry's link is its first member, so the link's neighbours are entries.
cdef inline vm_map_entry_t* vm_map_entry_first(vm_map_t* map) noexcept nogil:
    return <vm_map_entry_t*>map.list.first

cdef inline vm_map_entry_t* vm_map_entry_last(vm_map_t* map) noexcept nogil:
    return <vm_map_entry_t*>map.list.last

cdef inline vm_map_entry_t* vm_map_entry_succ(vm_map_entry_t* e) noexcept nogil:
    return <vm_map_entry_t*>e.link.next

cdef inline vm_map_entry_t* vm_map_entry_pred(vm_map_entry_t* e) noexcept nogil:
    return <vm_map_entry_t*>e.link.prev
