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
from libc.stdint cimport uint64_t, int64_t
from mmbench.blocks.frames cimport pfn_t
from mmbench.blocks.pmap cimport pmap_ctx_t, pmap_hdr_t, pvc_link_t, pvc_of

cdef enum:
    NPCPV = 168                # pv entries per pv_chunk
    NPCM = 3                   # 64-bit free-map words per pv_chunk
    PV_CHUNK_BYTES = 4096

ctypedef struct pv_entry_t:    # 24 bytes (the kernel's: pv_va + TAILQ_ENTRY pv_next)
    uint64_t pv_va             # virtual page of the mapping
    pv_entry_t* pv_next        # the page's pv list (md.pv_list / a superpage's pv_list)
    pv_entry_t* pv_prev

ctypedef struct pv_chunk_t:    # 4096 bytes, 4096-aligned: pv -> chunk -> pmap
    void* pc_pmap              # the owning pmap_t
    pvc_link_t pc_list         # the pmap's chunk list (with room / full)
    uint64_t pc_map[3]         # 1 = free slot
    uint64_t pc_lru[2]         # (unused here; keeps the kernel layout)
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
cdef pv_entry_t* get_pv_entry(pmap_ctx_t* ctx, pmap_t* pm) noexcept nogil   # NULL: no memory
cdef void free_pv_entry(pmap_ctx_t* ctx, pmap_t* pm, pv_entry_t* pv) noexcept nogil
cdef pv_entry_t* pv_find(pv_entry_t* head, pmap_t* pm, int64_t va) noexcept nogil

cdef inline pmap_t* pv_pmap(pv_entry_t* pv) noexcept nogil:
    """PV_PMAP: the pmap of the chunk holding pv."""
    return <pmap_t*>(<pv_chunk_t*>pvc_of(pv)).pc_pmap

cdef inline pv_entry_t** pv_list(pmap_ctx_t* ctx, pfn_t pfn) noexcept nogil:
    """The head of the page's pv list (md.pv_list)."""
    return &(<pv_entry_t**>ctx.pv_heads)[pfn]

cdef inline void pv_list_insert(pv_entry_t** head, pv_entry_t* pv) noexcept nogil:
    pv.pv_prev = NULL
    pv.pv_next = head[0]
    if pv.pv_next != NULL:
        pv.pv_next.pv_prev = pv
    head[0] = pv

cdef inline void pv_list_remove(pv_entry_t** head, pv_entry_t* pv) noexcept nogil:
    if pv.pv_prev != NULL:
        pv.pv_prev.pv_next = pv.pv_next
    else:
        head[0] = pv.pv_next
    if pv.pv_next != NULL:
        pv.pv_next.pv_prev = pv.pv_prev
