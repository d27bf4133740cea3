# pmap_pvchunk — FreeBSD amd64's pmap (sys/amd64/amd64/pmap.c), one
# implementation of the pmap interface of mmbench/blocks/pmap.pxd.
#
#   vm_page ─ md.pv_list ──▶ pv_entry ──▶ pv_entry …   every mapping one pv_entry
#   pmap ─ pm_pvchunk ──▶ pv_chunk (4 KiB, 4 KiB-aligned: pc_pmap, free map,
#                                   168 pv_entry)
#   pv_entry ──(address & ~4095)──▶ its pv_chunk ──pc_pmap──▶ the pmap (PV_PMAP)
#
# Each present 4 KiB PTE has exactly one pv_entry on its page's pv list; the
# entry records the virtual page, and the chunk holding it the pmap.  That list
# is the reverse map ("who maps this page": pmap_remove_all, rmap walks).  pv
# entries are carved out of per-pmap pv_chunks of 168 (get_pv_entry; chunks
# with a free entry and full ones on separate lists, so both allocation and
# free are O(1)); a chunk is freed when its last entry is (free_pv_entry).
# Unlike NetBSD's pmap (pmap_netbsd), no mapping is embedded in the page: a
# page mapped once already costs a pv_entry.
#
# 2 MiB mappings are the design's (FreeBSD's superpages: one pv_entry on the
# physical superpage's list, pmap_pv_promote_pde / pmap_pv_demote_pde); it
# builds them from get_pv_entry / free_pv_entry and the list operations below,
# and registers them in ctx.pde.
#
# Where the model keeps md.pv_list.  The kernel's lies in the vm_page (struct
# md_page).  The model's lies in the page's frame descriptor
# (mmbench.blocks.frames), in its 32-bit aux word, so the simulator keeps no
# per-page array of heads (8 B per frame before, docs/performance.md).  A
# head is a pv_head_t: 0 for an empty list, else the handle of the list's
# first entry,
#
#     handle = pc_num * NPCPV + (the entry's slot in its chunk) + 1
#
# where pc_num is the chunk's number in ctx.pvc_tab, the table of live
# pv_chunks (mmbench.blocks.handles: taken when get_pv_entry adds a chunk,
# given back when free_pv_entry frees it, then reused).  pv_entry_of turns a
# handle back into the entry (one table index), pv_handle an entry into its
# handle (its chunk is the 4 KiB page it lies in).  Handles fit 32 bits for up
# to PVC_NUM_MAX chunks alive at once (4.29e9 pv entries: more than memory
# holds).  The entries' own links stay pointers, as the kernel's TAILQ; the
# design's superpage lists (a reservation's pvh) use the same head type.
# The design keeps the descriptor's other words (freebsd: object, pindex, and
# the reservation number in the flags' field).
from libc.stdint cimport uint64_t, int64_t, uint32_t
from mmbench.blocks.frames cimport pfn_t
from mmbench.blocks.handles cimport handles_get
from mmbench.core cimport C_PV_ENTRIES
from mmbench.blocks.pmap cimport pmap_ctx_t, pmap_hdr_t, pvc_link_t, pvc_of

cdef enum:
    NPCPV = 168                # pv entries per pv_chunk
    NPCM = 3                   # 64-bit free-map words per pv_chunk
    PV_CHUNK_BYTES = 4096
    PVC_NUM_MAX = 25565281     # chunk numbers stay below: (2^32 - 1) // NPCPV, so that
                               # every handle (at most PVC_NUM_MAX * NPCPV) fits 32 bits

ctypedef uint32_t pv_head_t    # a pv list head: 0 empty, else its first entry's handle

ctypedef struct pv_entry_t:    # 24 bytes (the kernel's: pv_va + TAILQ_ENTRY pv_next)
    uint64_t pv_va             # virtual page of the mapping
    pv_entry_t* pv_next        # the page's pv list (md.pv_list / a superpage's pv_list)
    pv_entry_t* pv_prev

ctypedef struct pv_chunk_t:    # 4096 bytes, 4096-aligned: pv -> chunk -> pmap
    void* pc_pmap              # the owning pmap_t
    pvc_link_t pc_list         # the pmap's chunk list (with room / full)
    uint64_t pc_map[3]         # 1 = free slot
    uint32_t pc_num            # simulator: its number in ctx.pvc_tab (names its entries in
                               # pv list heads), in the kernel's pc_lru, unused here
    uint32_t pc_pad            # the rest of pc_lru (keeps the kernel layout)
    uint64_t pc_lru_prev
    pv_entry_t pc_pventry[168]

ctypedef struct pmap_t:
    pmap_hdr_t hdr             # page tables, resident count, pid (the generic side)
    pvc_link_t* pm_pvchunk     # chunks with a free entry (their pc_list)
    pvc_link_t* pm_pvfull      # chunks without (kept apart: O(1) either way)

# The implementation's part of the interface (pmap.pxd); enter, remove,
# protect, move and free_tables are the generic ones, called on &pm.hdr.
# (pmap_ctx_destroy is the block's, mmbench.blocks.pmap)
cdef int pmap_bootstrap(pmap_ctx_t* ctx, int64_t npages) noexcept nogil      # 0 / -1
cdef int pmap_pinit(pmap_ctx_t* ctx, pmap_t* pm, int64_t pid) noexcept nogil
cdef void pmap_release(pmap_ctx_t* ctx, pmap_t* pm) noexcept nogil
cdef int64_t pmap_pv_count(pmap_t* pm) noexcept nogil                   # pv entries in use

# The pv primitives (for the design's 2 MiB mappings and its views).
# get_pv_entry: a free entry of the pmap's first chunk with room, a new chunk
# when there is none; NULL: no memory.  The common case (a chunk with room)
# is inline; adding a chunk and moving a chunk that fills up to the full list
# are get_pv_entry_slow's.
cdef pv_entry_t* get_pv_entry_slow(pmap_ctx_t* ctx, pmap_t* pm) noexcept nogil

cdef extern from *:
    int __builtin_ctzll(unsigned long long) nogil

cdef inline pv_entry_t* get_pv_entry(pmap_ctx_t* ctx, pmap_t* pm) noexcept nogil:
    cdef pv_chunk_t* pc
    cdef uint64_t word
    cdef int w, bit
    if pm.pm_pvchunk == NULL:
        return get_pv_entry_slow(ctx, pm)
    pc = <pv_chunk_t*>pvc_of(pm.pm_pvchunk)
    w = 0 if pc.pc_map[0] else (1 if pc.pc_map[1] else 2)
    word = pc.pc_map[w]
    if word == 0 or ((word & (word - 1)) == 0 and
                     (pc.pc_map[0] != 0) + (pc.pc_map[1] != 0) + (pc.pc_map[2] != 0) == 1):
        return get_pv_entry_slow(ctx, pm)        # full, or its last entry: it moves lists
    bit = __builtin_ctzll(word)
    pc.pc_map[w] = word & ~(1ULL << bit)
    ctx.ctr[C_PV_ENTRIES] += 1
    return &pc.pc_pventry[w * 64 + bit]
# free_pv_entry: the entry's slot is free again; a chunk that was full goes
# back to the list with room, one left empty is freed (free_pv_entry_slow).
cdef void free_pv_entry_slow(pmap_ctx_t* ctx, pmap_t* pm, pv_entry_t* pv) noexcept nogil

cdef inline bint chunk_full(pv_chunk_t* pc) noexcept nogil:
    return (pc.pc_map[0] | pc.pc_map[1] | pc.pc_map[2]) == 0

cdef inline bint chunk_empty(pv_chunk_t* pc) noexcept nogil:      # every slot free
    return (pc.pc_map[0] == 0xFFFFFFFFFFFFFFFFULL and pc.pc_map[1] == 0xFFFFFFFFFFFFFFFFULL
            and pc.pc_map[2] == (1ULL << (NPCPV - 128)) - 1)

cdef inline void free_pv_entry(pmap_ctx_t* ctx, pmap_t* pm, pv_entry_t* pv) noexcept nogil:
    cdef pv_chunk_t* pc = <pv_chunk_t*>pvc_of(pv)
    cdef int idx = <int>(pv - &pc.pc_pventry[0])
    if chunk_full(pc):
        free_pv_entry_slow(ctx, pm, pv)
        return
    pc.pc_map[idx >> 6] |= 1ULL << (idx & 63)
    if chunk_empty(pc):
        pc.pc_map[idx >> 6] &= ~(1ULL << (idx & 63))
        free_pv_entry_slow(ctx, pm, pv)

cdef inline pv_entry_t* pv_find(pv_entry_t* pv, pmap_t* pm, int64_t va) noexcept nogil:
    """pmap_pvh_remove's search: the entry of <pm, va> on the list starting at pv."""
    while pv != NULL:
        if <int64_t>pv.pv_va == va and pv_pmap(pv) == pm:
            return pv
        pv = pv.pv_next
    return NULL

cdef inline pmap_t* pv_pmap(pv_entry_t* pv) noexcept nogil:
    """PV_PMAP: the pmap of the chunk holding pv."""
    return <pmap_t*>(<pv_chunk_t*>pvc_of(pv)).pc_pmap

cdef inline pv_entry_t* pv_entry_of(pmap_ctx_t* ctx, pv_head_t h) noexcept nogil:
    """The entry handle h names (NULL for 0); its chunk must be live."""
    if h == 0:
        return NULL
    h -= 1
    return &(<pv_chunk_t*>handles_get(&ctx.pvc_tab, h // NPCPV)).pc_pventry[h % NPCPV]

cdef inline pv_head_t pv_handle(pv_entry_t* pv) noexcept nogil:
    """The handle of pv (0 for NULL)."""
    cdef pv_chunk_t* pc
    if pv == NULL:
        return 0
    pc = <pv_chunk_t*>pvc_of(pv)
    return pc.pc_num * <pv_head_t>NPCPV + <pv_head_t>(pv - &pc.pc_pventry[0]) + 1

cdef inline pv_head_t* pv_list(pmap_ctx_t* ctx, pfn_t pfn) noexcept nogil:
    """The head of the page's pv list (md.pv_list): its frame descriptor's aux."""
    return &ctx.fr.f[pfn].aux

cdef inline pv_entry_t* pv_list_first(pmap_ctx_t* ctx, pv_head_t* head) noexcept nogil:
    """TAILQ_FIRST: the list's first entry, NULL when it is empty."""
    return pv_entry_of(ctx, head[0])

cdef inline void pv_list_insert(pmap_ctx_t* ctx, pv_head_t* head, pv_entry_t* pv) noexcept nogil:
    pv.pv_prev = NULL
    pv.pv_next = pv_entry_of(ctx, head[0])
    if pv.pv_next != NULL:
        pv.pv_next.pv_prev = pv
    head[0] = pv_handle(pv)

cdef inline void pv_list_remove(pv_head_t* head, pv_entry_t* pv) noexcept nogil:
    if pv.pv_prev != NULL:
        pv.pv_prev.pv_next = pv.pv_next
    else:
        head[0] = pv_handle(pv.pv_next)
    if pv.pv_next != NULL:
        pv.pv_next.pv_prev = pv.pv_prev

# for check(): is h 0 or the handle of an entry in use of a live chunk?
cdef bint pv_handle_valid(pmap_ctx_t* ctx, pv_head_t h) noexcept nogil
