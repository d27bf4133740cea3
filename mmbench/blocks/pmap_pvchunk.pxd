# pmap_pvchunk — FreeBSD amd64's pmap (sys/amd64/amd64/pmap.c), one
# implementation of the pmap interface of mmbench/blocks/pmap.pxd.
#
#   vm_page ─ md.pv_list ──▶ pv_entry ──▶ pv_entry …   every mapping one pv_entry
#   pmap ─ pm_pvchunk ──▶ pv_chunk (pc_pmap, free map, 168 pv_entry)
#   pv_entry ──(its handle / 168)──▶ its pv_chunk ──pc_pmap──▶ the pmap (PV_PMAP)
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
# The kernel's sizes, and the simulator's.  The kernel's pv_entry is 24 B
# (pv_va and the TAILQ link pv_next) and its pv_chunk one 4 KiB page (header,
# 168 entries).  Those are the numbers the model keeps: 168 entries a chunk,
# kc_pv charged 4 KiB when get_pv_entry adds a chunk and credited when
# free_pv_entry frees one, C_PV_ENTRIES per entry taken, the same chunk lists
# and pv list orders.  Only the simulator's own copy is packed tighter, one
# 64-bit word an entry in a chunk of PVC_BYTES (1400 B, not 4 KiB):
#
#   pv_chunk_t   pc_list 16 │ pc_pmap 8 │ pc_map[3] 24 │ pc_num 4, pad 4 │ pc_pventry[168] × 8
#   pv_word_t    63 ........ 36 │ 35 ........ 0
#                 pv_next handle │ pv_va (the virtual page, VPN_BITS)
#
# so a mapping costs the simulator 8.3 B of pv storage where a 24-B entry in
# a 4-KiB chunk cost 24.4 B.  (pc_list comes first, where the kernel has
# pc_pmap, so that the chunk of a list link is the link: pmap.pxd.)
#
# Entries are named by handles.  The kernel names an entry by its address
# (its pv_entry_t is a pointer; PV_PMAP masks it down to the 4 KiB chunk).
# The model's pv_entry_t is a 32-bit handle, 0 for none (NULL),
#
#     handle = pc_num * NPCPV + (the entry's slot in its chunk) + 1
#
# where pc_num is the chunk's number in ctx.pvc_tab, the table of live
# pv_chunks (mmbench.blocks.handles: taken when get_pv_entry adds a chunk,
# given back when free_pv_entry frees it, then reused).  The chunk of an
# entry is handles_get(pvc_tab, (handle - 1) / NPCPV), one table index, so
# chunks need no alignment and are carved exactly PVC_BYTES long.  The list
# link (pv_next) is the next entry's handle in the word's top 64 - VPN_BITS
# = 28 bits, so handles stay below 2^28: at most PVC_NUM_MAX chunks are alive
# at once (2^28 - 1 pv entries, 1 TiB of 4 KiB mappings).  Past that,
# get_pv_entry fails as when the host has no memory (handles_take answers
# -1), and its callers back out as they do then.
#
# Singly linked.  The kernel's TAILQ keeps a back link so that an entry can be
# unlinked in O(1) given the entry alone; but every removal there goes through
# pmap_pvh_remove, which first walks the list from its head to the entry of
# <pmap, va> (pmap_remove_pte's pmap_pvh_free, pmap_pv_demote_pde,
# pmap_remove_pde, and pmap_remove_all's, whose entry is the first).  The
# model removes the same way (pmap_pvh_remove): the walk (pv_find) remembers
# the entry before the one it finds and unlinks from it in O(1).  The entries
# visited are the kernel's, so nothing costs more than the TAILQ did; no
# operation of the model unlinks an entry it did not just find.  Entries are
# added at the head (pv_list_insert).
#
# Where the model keeps md.pv_list.  The kernel's lies in the vm_page (struct
# md_page).  The model's lies in the page's frame descriptor
# (mmbench.blocks.frames), in its 32-bit aux word, so the simulator keeps no
# per-page array of heads (8 B per frame before, docs/performance.md).  A
# head (pv_head_t) is the handle of the list's first entry, 0 for an empty
# list; the design's superpage lists (a reservation's pvh) use the same head
# type.  The design keeps the descriptor's other words (freebsd: object,
# pindex, and the reservation number in the flags' field).
from libc.stdint cimport uint64_t, int64_t, uint32_t
from mmbench.blocks.frames cimport pfn_t
from mmbench.blocks.handles cimport handles_get
from mmbench.core cimport C_PV_ENTRIES, VPN_BITS
from mmbench.blocks.pmap cimport pmap_ctx_t, pmap_hdr_t, pvc_link_t, pvc_of_link

cdef enum:
    NPCPV = 168                # pv entries per pv_chunk
    NPCM = 3                   # 64-bit free-map words per pv_chunk
    PV_CHUNK_BYTES = 4096      # the kernel's pv_chunk (what kc_pv charges)
    PVC_BYTES = 1400           # the simulator's (pv_chunk_t)
    PV_NEXT_SHIFT = VPN_BITS   # pv_next sits above pv_va in a pv_word_t
    PVC_NUM_MAX = 1597830      # chunk numbers stay below: (2^28 - 1) // NPCPV, so that
                               # every handle (at most PVC_NUM_MAX * NPCPV) fits pv_next

ctypedef uint32_t pv_entry_t   # an entry's handle (0: none), the kernel's pv_entry_t pointer
ctypedef pv_entry_t pv_head_t  # a pv list head (TAILQ_HEAD pv_list): its first entry
ctypedef uint64_t pv_word_t    # struct pv_entry: pv_va | pv_next << PV_NEXT_SHIFT

ctypedef struct pv_chunk_t:    # PVC_BYTES (the kernel's: 4096)
    pvc_link_t pc_list         # the pmap's chunk list (with room / full); first (pmap.pxd)
    void* pc_pmap              # the owning pmap_t
    uint64_t pc_map[3]         # 1 = free slot
    uint32_t pc_num            # simulator: its number in ctx.pvc_tab (names its entries),
    uint32_t pc_pad            # in the kernel's pc_lru, which the model does not keep
    pv_word_t pc_pventry[168]

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


# ------------------------------------------------------- an entry, by handle
cdef inline pv_chunk_t* pc_of_list(pvc_link_t* l) noexcept nogil:
    """The chunk on a pmap's chunk list at link l."""
    return <pv_chunk_t*>pvc_of_link(l)

cdef inline pv_chunk_t* pv_chunk(pmap_ctx_t* ctx, pv_entry_t pv) noexcept nogil:
    """The chunk holding entry pv (its chunk must be live)."""
    return <pv_chunk_t*>handles_get(&ctx.pvc_tab, (pv - 1) // NPCPV)

cdef inline pv_word_t* pv_word(pmap_ctx_t* ctx, pv_entry_t pv) noexcept nogil:
    return &pv_chunk(ctx, pv).pc_pventry[(pv - 1) % NPCPV]

cdef inline pv_entry_t pc_entry(pv_chunk_t* pc, int slot) noexcept nogil:
    """The handle of the entry in slot `slot` of chunk pc."""
    return pc.pc_num * <pv_entry_t>NPCPV + <pv_entry_t>slot + 1

cdef inline int64_t word_va(pv_word_t w) noexcept nogil:
    return <int64_t>(w & ((<uint64_t>1 << PV_NEXT_SHIFT) - 1))

cdef inline pv_entry_t word_next(pv_word_t w) noexcept nogil:
    return <pv_entry_t>(w >> PV_NEXT_SHIFT)

cdef inline pv_word_t mk_pv_word(int64_t va, pv_entry_t next) noexcept nogil:
    return <uint64_t>va | (<uint64_t>next << PV_NEXT_SHIFT)

cdef inline int64_t pv_va(pmap_ctx_t* ctx, pv_entry_t pv) noexcept nogil:
    """pv->pv_va: the virtual page of the mapping."""
    return word_va(pv_word(ctx, pv)[0])

cdef inline pv_entry_t pv_next(pmap_ctx_t* ctx, pv_entry_t pv) noexcept nogil:
    """TAILQ_NEXT(pv, pv_next): the entry after pv on its list (0: none)."""
    return word_next(pv_word(ctx, pv)[0])

cdef inline pmap_t* pv_pmap(pmap_ctx_t* ctx, pv_entry_t pv) noexcept nogil:
    """PV_PMAP: the pmap of the chunk holding pv."""
    return <pmap_t*>pv_chunk(ctx, pv).pc_pmap


# ------------------------------------------------------------ pv_chunks
# The pv primitives (for the design's 2 MiB mappings and its views).
# get_pv_entry: a free entry of the pmap's first chunk with room, a new chunk
# when there is none; 0: no memory (or no chunk number left, PVC_NUM_MAX).  The
# common case (a chunk with room) is inline; adding a chunk and moving a chunk
# that fills up to the full list are get_pv_entry_slow's.
cdef pv_entry_t get_pv_entry_slow(pmap_ctx_t* ctx, pmap_t* pm) noexcept nogil

cdef extern from *:
    int __builtin_ctzll(unsigned long long) nogil

cdef inline pv_entry_t get_pv_entry(pmap_ctx_t* ctx, pmap_t* pm) noexcept nogil:
    cdef pv_chunk_t* pc
    cdef uint64_t word
    cdef int w, bit
    if pm.pm_pvchunk == NULL:
        return get_pv_entry_slow(ctx, pm)
    pc = pc_of_list(pm.pm_pvchunk)
    w = 0 if pc.pc_map[0] else (1 if pc.pc_map[1] else 2)
    word = pc.pc_map[w]
    if word == 0 or ((word & (word - 1)) == 0 and
                     (pc.pc_map[0] != 0) + (pc.pc_map[1] != 0) + (pc.pc_map[2] != 0) == 1):
        return get_pv_entry_slow(ctx, pm)        # full, or its last entry: it moves lists
    bit = __builtin_ctzll(word)
    pc.pc_map[w] = word & ~(1ULL << bit)
    ctx.ctr[C_PV_ENTRIES] += 1
    return pc_entry(pc, w * 64 + bit)
# free_pv_entry: the entry's slot is free again; a chunk that was full goes
# back to the list with room, one left empty is freed (free_pv_entry_slow).
cdef void free_pv_entry_slow(pmap_ctx_t* ctx, pmap_t* pm, pv_chunk_t* pc, int idx) noexcept nogil

cdef inline bint chunk_full(pv_chunk_t* pc) noexcept nogil:
    return (pc.pc_map[0] | pc.pc_map[1] | pc.pc_map[2]) == 0

cdef inline bint chunk_empty(pv_chunk_t* pc) noexcept nogil:      # every slot free
    return (pc.pc_map[0] == 0xFFFFFFFFFFFFFFFFULL and pc.pc_map[1] == 0xFFFFFFFFFFFFFFFFULL
            and pc.pc_map[2] == (1ULL << (NPCPV - 128)) - 1)

cdef inline void free_pv_entry(pmap_ctx_t* ctx, pmap_t* pm, pv_entry_t pv) noexcept nogil:
    cdef pv_chunk_t* pc = pv_chunk(ctx, pv)
    cdef int idx = <int>((pv - 1) % NPCPV)
    if chunk_full(pc):
        free_pv_entry_slow(ctx, pm, pc, idx)
        return
    pc.pc_map[idx >> 6] |= 1ULL << (idx & 63)
    if chunk_empty(pc):
        pc.pc_map[idx >> 6] &= ~(1ULL << (idx & 63))
        free_pv_entry_slow(ctx, pm, pc, idx)


# ------------------------------------------------------------- pv lists
cdef inline pv_head_t* pv_list(pmap_ctx_t* ctx, pfn_t pfn) noexcept nogil:
    """The head of the page's pv list (md.pv_list): its frame descriptor's aux."""
    return &ctx.fr.f[pfn].aux

cdef inline pv_entry_t pv_list_first(pv_head_t* head) noexcept nogil:
    """TAILQ_FIRST: the list's first entry, 0 when it is empty."""
    return head[0]

cdef inline void pv_list_insert(pmap_ctx_t* ctx, pv_head_t* head, pv_entry_t pv,
                                int64_t va) noexcept nogil:
    """pv records the mapping at va and goes first on the list."""
    pv_word(ctx, pv)[0] = mk_pv_word(va, head[0])
    head[0] = pv

cdef inline pv_entry_t pv_find(pmap_ctx_t* ctx, pv_head_t* head, pmap_t* pm, int64_t va,
                               pv_entry_t* prev) noexcept nogil:
    """pmap_pvh_remove's search: the entry of <pm, va> on the list (0: none), and
    in *prev the entry before it (0: it is the first)."""
    cdef pv_entry_t pv = head[0]
    cdef pv_chunk_t* pc
    cdef pv_word_t w
    prev[0] = 0
    while pv != 0:
        pc = pv_chunk(ctx, pv)
        w = pc.pc_pventry[(pv - 1) % NPCPV]
        if word_va(w) == va and <pmap_t*>pc.pc_pmap == pm:
            return pv
        prev[0] = pv
        pv = word_next(w)
    return 0

cdef inline pv_entry_t pmap_pvh_remove(pmap_ctx_t* ctx, pv_head_t* head, pmap_t* pm,
                                       int64_t va) noexcept nogil:
    """Find the entry of <pm, va> and take it off the list (O(1) from the entry
    the search passed last); 0 when the list has none."""
    cdef pv_entry_t prev
    cdef pv_entry_t pv = pv_find(ctx, head, pm, va, &prev)
    cdef pv_entry_t nx
    cdef pv_word_t* w
    if pv != 0:
        nx = pv_next(ctx, pv)
        if prev == 0:
            head[0] = nx
        else:
            w = pv_word(ctx, prev)
            w[0] = mk_pv_word(word_va(w[0]), nx)
    return pv

# for check(): is h a handle of a live chunk's entry in use?
cdef bint pv_handle_valid(pmap_ctx_t* ctx, pv_entry_t h) noexcept nogil
