# Implementation of FreeBSD amd64's pmap; see pmap_pvchunk.pxd (the design)
# and pmap.pxd (the interface).
from libc.stdint cimport uint64_t, int64_t, uint32_t

from mmbench.core cimport C_PV_ENTRIES
from mmbench.blocks.frames cimport pfn_t
from mmbench.blocks.handles cimport handles_init, handles_take, handles_put, handles_live, handles_get
from mmbench.blocks.pmap cimport (pmap_ctx_t, pmap_hdr_t, pmap_pv_ops_t, pmap_kc_alloc, pmap_kc_free,
                                  pmap_ctx_init, pmap_create, pmap_destroy, pvc_link_t,
                                  pvc_push, pvc_unlink, pvc_alloc, pvc_free, pvc_free_list)

cdef extern from *:
    int __builtin_popcountll(unsigned long long) nogil

assert sizeof(pv_chunk_t) == PVC_BYTES and PVC_BYTES <= PV_CHUNK_BYTES
assert (<uint64_t>PVC_NUM_MAX * NPCPV < (1ULL << (64 - PV_NEXT_SHIFT))
        and <uint64_t>(PVC_NUM_MAX + 1) * NPCPV >= (1ULL << (64 - PV_NEXT_SHIFT)))

# free-map of an empty chunk: 64 + 64 + 40 = 168 slots
cdef uint64_t PC_FREE[3]
PC_FREE[0] = 0xFFFFFFFFFFFFFFFFULL
PC_FREE[1] = 0xFFFFFFFFFFFFFFFFULL
PC_FREE[2] = (1ULL << (NPCPV - 128)) - 1


# ------------------------------------------------------------ lifecycle
cdef int pmap_bootstrap(pmap_ctx_t* ctx, int64_t npages) noexcept nogil:
    cdef pmap_pv_ops_t pv
    pv.pv_enter = pmap_enter_pv
    pv.pv_remove = pmap_remove_pv
    pv.pv_move = pmap_move_pv
    pv.pv_first = pmap_first_pv
    if pmap_ctx_init(ctx, npages, pv, PVC_BYTES) != 0:   # md.pv_list: in the frame descriptors
        return -1
    handles_init(&ctx.pvc_tab, PVC_NUM_MAX)      # pc_num: the number pv handles carry
    return 0

cdef int pmap_pinit(pmap_ctx_t* ctx, pmap_t* pm, int64_t pid) noexcept nogil:
    return pmap_create(ctx, &pm.hdr, sizeof(pmap_t), pid)

cdef void pmap_release(pmap_ctx_t* ctx, pmap_t* pm) noexcept nogil:
    chunks_release(ctx, pm.pm_pvchunk)       # empty by now; freed for safety
    chunks_release(ctx, pm.pm_pvfull)
    pvc_free_list(ctx, &pm.pm_pvchunk)
    pvc_free_list(ctx, &pm.pm_pvfull)
    pmap_destroy(ctx, &pm.hdr)

cdef void chunks_release(pmap_ctx_t* ctx, pvc_link_t* l) noexcept nogil:
    """Give back the numbers of the chunks on a list."""
    while l != NULL:
        handles_put(&ctx.pvc_tab, pc_of_list(l).pc_num)
        l = l.next


# ---------------------------------------------------------- pv_chunks
cdef pv_entry_t get_pv_entry_slow(pmap_ctx_t* ctx, pmap_t* pm) noexcept nogil:
    """Take a free pv entry from the pmap's first chunk, adding a chunk if full."""
    cdef pv_chunk_t* pc = NULL if pm.pm_pvchunk == NULL else pc_of_list(pm.pm_pvchunk)
    cdef int w, bit
    cdef int64_t num
    if pc == NULL or chunk_full(pc):
        pc = <pv_chunk_t*>pvc_alloc(ctx)
        if pc == NULL:
            return 0
        num = handles_take(&ctx.pvc_tab, pc)
        if num < 0:                          # no number (PVC_NUM_MAX, or the host has no memory)
            pvc_free(ctx, pc)
            return 0
        pc.pc_num = <uint32_t>num
        pc.pc_pmap = <void*>pm
        pc.pc_map[0] = PC_FREE[0]
        pc.pc_map[1] = PC_FREE[1]
        pc.pc_map[2] = PC_FREE[2]
        pvc_push(&pm.pm_pvchunk, &pc.pc_list)
    w = 0
    while pc.pc_map[w] == 0:
        w += 1
    bit = __builtin_ctzll(pc.pc_map[w])
    pc.pc_map[w] &= ~(1ULL << bit)
    if chunk_full(pc):
        pvc_unlink(&pm.pm_pvchunk, &pc.pc_list)
        pvc_push(&pm.pm_pvfull, &pc.pc_list)
    ctx.ctr[C_PV_ENTRIES] += 1
    return pc_entry(pc, w * 64 + bit)

cdef void free_pv_entry_slow(pmap_ctx_t* ctx, pmap_t* pm, pv_chunk_t* pc, int idx) noexcept nogil:
    """free_pv_entry of slot idx of pc when the chunk moves lists: it was full,
    or it is empty now (then it goes back, with its number)."""
    cdef bint was_full = chunk_full(pc)
    pc.pc_map[idx // 64] |= 1ULL << (idx % 64)
    if chunk_empty(pc):
        pvc_unlink(&pm.pm_pvchunk, &pc.pc_list)
        handles_put(&ctx.pvc_tab, pc.pc_num)
        pvc_free(ctx, pc)
    elif was_full:
        pvc_unlink(&pm.pm_pvfull, &pc.pc_list)
        pvc_push(&pm.pm_pvchunk, &pc.pc_list)

# ----------------------------------------------------------- the pv side
cdef int pmap_enter_pv(pmap_ctx_t* ctx, pmap_hdr_t* hdr, pfn_t pfn, int64_t vpn) noexcept nogil:
    cdef pv_entry_t pv = get_pv_entry(ctx, <pmap_t*>hdr)
    if pv == 0:
        return -1
    pv_list_insert(ctx, pv_list(ctx, pfn), pv, vpn)
    ctx.fr.f[pfn].mapcount += 1
    return 0

cdef void pmap_remove_pv(pmap_ctx_t* ctx, pmap_hdr_t* hdr, pfn_t pfn, int64_t vpn) noexcept nogil:
    cdef pmap_t* pm = <pmap_t*>hdr
    cdef pv_entry_t pv = pmap_pvh_remove(ctx, pv_list(ctx, pfn), pm, vpn)
    if pv != 0:
        ctx.fr.f[pfn].mapcount -= 1
        free_pv_entry(ctx, pm, pv)

cdef void pmap_move_pv(pmap_ctx_t* ctx, pmap_hdr_t* hdr, pfn_t pfn, int64_t vpn,
                       int64_t nvpn) noexcept nogil:
    """The mapping moved (mremap): its entry keeps its place on the list."""
    cdef pv_entry_t prev
    cdef pv_word_t* w = pv_word(ctx, pv_find(ctx, pv_list(ctx, pfn), <pmap_t*>hdr, vpn, &prev))
    w[0] = mk_pv_word(nvpn, word_next(w[0]))


# ------------------------------------------------- the implementation's API
cdef bint pmap_first_pv(pmap_ctx_t* ctx, pfn_t pfn, pmap_hdr_t** pm, int64_t* vpn) noexcept nogil:
    """The head of the page's pv list (pmap_remove_all's order)."""
    cdef pv_entry_t pv = pv_list_first(pv_list(ctx, pfn))
    if pv == 0:
        return False
    pm[0] = &pv_pmap(ctx, pv).hdr
    vpn[0] = pv_va(ctx, pv)
    return True

cdef int64_t chunk_list_used(pvc_link_t* l) noexcept nogil:
    cdef int64_t used = 0
    cdef pv_chunk_t* pc
    while l != NULL:
        pc = pc_of_list(l)
        used += NPCPV - (__builtin_popcountll(pc.pc_map[0]) + __builtin_popcountll(pc.pc_map[1])
                         + __builtin_popcountll(pc.pc_map[2]))
        l = l.next
    return used

cdef int64_t pmap_pv_count(pmap_t* pm) noexcept nogil:
    return chunk_list_used(pm.pm_pvchunk) + chunk_list_used(pm.pm_pvfull)

cdef bint pv_handle_valid(pmap_ctx_t* ctx, pv_entry_t h) noexcept nogil:
    cdef int64_t num, slot
    cdef pv_chunk_t* pc
    if h == 0:
        return False
    num = (<int64_t>h - 1) // NPCPV
    slot = (<int64_t>h - 1) % NPCPV
    if not handles_live(&ctx.pvc_tab, num):
        return False
    pc = <pv_chunk_t*>handles_get(&ctx.pvc_tab, num)
    return pc.pc_num == num and not ((pc.pc_map[slot // 64] >> (slot % 64)) & 1)
