# The page-table side of the pmap block, shared by every implementation; the
# pv side is called through ctx.pv, 2 MiB mappings through ctx.pde.  See pmap.pxd.
from posix.mman cimport mmap, munmap, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS, MAP_FAILED
from libc.string cimport memset
from libc.stdint cimport uint64_t, int64_t

from mmbench.core cimport (C_PTE_WRITES, C_PTE_ZAPS, C_TLB_FLUSHES, C_PT_PAGES_ALLOC, C_RMAP_VISITS,
                           C_PT_PAGES_FREE, C_MREMAP_PAGES_MOVED, kmem_cache_sync)
from mmbench.blocks.frames cimport pfn_t
from mmbench.blocks.handles cimport handles_init, handles_destroy, handles_take, handles_get
from mmbench.blocks.pagetable cimport (pgtable_t, pt_node_t, pt_init, pt_destroy, pt_leaf, pt_find_leaf,
                                       pt_set, pt_next, pt_free_range, pt_reserve_move, pt_get, mk_pte, pte_pfn,
                                       pte_present, PTE_PRESENT, PTE_WRITE)


cdef void pmap_account_tables(pmap_ctx_t* ctx, pmap_hdr_t* pm) noexcept nogil:
    """Report page-table pages allocated or freed since the last call."""
    cdef int lvl
    for lvl in range(4):
        kmem_cache_sync(&ctx.kc[ctx.kc_pgd + lvl], &pm.pt_accounted[lvl], pm.pt.nr[lvl])

cdef int pmap_ctx_init(pmap_ctx_t* ctx, int64_t npages, pmap_pv_ops_t pv,
                       int64_t pvc_bytes) noexcept nogil:
    ctx.npages = npages
    ctx.pv = pv
    ctx.pvc_bytes = pvc_bytes
    handles_init(&ctx.pmap_tab, 0)              # numbers only if the implementation asks
    handles_init(&ctx.pvc_tab, 0)
    handles_init(&ctx.pvc_slabs, PVC_SLABS_MAX)
    ctx.pvc_spare = NULL
    ctx.pvc_carve = NULL
    ctx.pvc_carve_left = 0
    return 0

cdef void pmap_ctx_destroy(pmap_ctx_t* ctx) noexcept nogil:
    cdef int64_t i
    handles_destroy(&ctx.pmap_tab)
    handles_destroy(&ctx.pvc_tab)
    for i in range(ctx.pvc_slabs.count):        # numbered in order, none ever given back
        munmap(handles_get(&ctx.pvc_slabs, i), PVC_SLAB_BYTES)
    handles_destroy(&ctx.pvc_slabs)
    ctx.pvc_spare = ctx.pvc_carve = NULL
    ctx.pvc_carve_left = 0

cdef int pvc_new_slab(pmap_ctx_t* ctx) noexcept nogil:
    """Map one more slab to carve containers from: 0, or -1 out of memory."""
    cdef void* slab = mmap(NULL, PVC_SLAB_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                           -1, 0)
    if slab == MAP_FAILED:
        return -1
    if handles_take(&ctx.pvc_slabs, slab) < 0:
        munmap(slab, PVC_SLAB_BYTES)
        return -1
    ctx.pvc_carve = <char*>slab
    ctx.pvc_carve_left = PVC_SLAB_BYTES // ctx.pvc_bytes
    return 0

cdef void* pvc_alloc(pmap_ctx_t* ctx) noexcept nogil:
    cdef void* mem = ctx.pvc_spare
    if mem != NULL:
        ctx.pvc_spare = (<void**>mem)[0]
    else:
        if ctx.pvc_carve_left == 0 and pvc_new_slab(ctx) != 0:
            return NULL
        mem = ctx.pvc_carve
        ctx.pvc_carve += ctx.pvc_bytes
        ctx.pvc_carve_left -= 1
    pmap_kc_alloc(ctx, ctx.kc_pv)
    return mem

cdef void pvc_free(pmap_ctx_t* ctx, void* c) noexcept nogil:
    (<void**>c)[0] = ctx.pvc_spare
    ctx.pvc_spare = c
    pmap_kc_free(ctx, ctx.kc_pv)

cdef void pvc_free_list(pmap_ctx_t* ctx, pvc_link_t** head) noexcept nogil:
    cdef pvc_link_t* l = head[0]
    cdef pvc_link_t* nx
    while l != NULL:
        nx = l.next
        pvc_free(ctx, pvc_of_link(l))
        l = nx
    head[0] = NULL

cdef int pmap_create(pmap_ctx_t* ctx, pmap_hdr_t* pm, size_t size, int64_t pid) noexcept nogil:
    memset(pm, 0, size)
    pm.pid = pid
    if pt_init(&pm.pt) != 0:
        return -1
    pmap_account_tables(ctx, pm)
    if ctx.kc_pmap >= 0:
        pmap_kc_alloc(ctx, ctx.kc_pmap)
    return 0

cdef void pmap_destroy(pmap_ctx_t* ctx, pmap_hdr_t* pm) noexcept nogil:
    pt_destroy(&pm.pt)
    pmap_account_tables(ctx, pm)
    if ctx.kc_pmap >= 0:
        pmap_kc_free(ctx, ctx.kc_pmap)


cdef inline uint64_t pte_for(pfn_t pfn, bint writable) noexcept nogil:
    return mk_pte(pfn, PTE_PRESENT | (PTE_WRITE if writable else 0))

cdef pt_node_t* pmap_leaf(pmap_ctx_t* ctx, pmap_hdr_t* pm, int64_t vpn) noexcept nogil:
    cdef int64_t nalloc = 0
    cdef pt_node_t* t = pt_leaf(&pm.pt, <uint64_t>vpn, True, &nalloc)
    if nalloc:
        ctx.ctr[C_PT_PAGES_ALLOC] += nalloc
        pmap_account_tables(ctx, pm)
    return t

cdef int pmap_enter(pmap_ctx_t* ctx, pmap_hdr_t* pm, int64_t vpn, pfn_t pfn, bint writable,
                    pt_node_t* leaf) noexcept nogil:
    cdef pt_node_t* t = leaf if leaf != NULL else pmap_leaf(ctx, pm, vpn)
    cdef uint64_t old
    if t == NULL:
        return -1
    if t.e[vpn & 511] & PTE_PROMOTED:
        ctx.pde.demote(ctx, pm, t, vpn)         # a 4 KiB change inside a 2 MiB mapping
    old = t.e[vpn & 511]
    ctx.ctr[C_PTE_WRITES] += 1
    if pte_present(old):
        if pte_pfn(old) == pfn:                 # same page: protection change only
            if not writable and (old & PTE_WRITE):
                ctx.ctr[C_TLB_FLUSHES] += 1
            pt_set(t, <uint64_t>vpn, pte_for(pfn, writable))
            if t.used == NPTEPG and ctx.pde.try_promote != NULL:    # a full PTE page may promote
                ctx.pde.try_promote(ctx, pm, t, vpn, pfn)
            return 0
        ctx.pv.pv_remove(ctx, pm, pte_pfn(old), vpn)   # replaced by a new page (COW)
        pt_set(t, <uint64_t>vpn, 0)
        pm.resident_count -= 1
        ctx.ctr[C_TLB_FLUSHES] += 1
    if ctx.pv.pv_enter(ctx, pm, pfn, vpn) != 0:
        return -1
    pt_set(t, <uint64_t>vpn, pte_for(pfn, writable))
    pm.resident_count += 1
    if t.used == NPTEPG and ctx.pde.try_promote != NULL:
        ctx.pde.try_promote(ctx, pm, t, vpn, pfn)
    return 0

cdef inline int64_t pde_base(uint64_t vpn) noexcept nogil:
    return <int64_t>vpn & ~(<int64_t>NPTEPG - 1)

cdef int64_t pmap_remove(pmap_ctx_t* ctx, pmap_hdr_t* pm, int64_t start, int64_t end) noexcept nogil:
    cdef uint64_t vpn = <uint64_t>start
    cdef pt_node_t* t
    cdef uint64_t pte
    cdef int64_t n = 0, npde = 0, base
    while True:
        t = pt_next(&pm.pt, vpn, <uint64_t>end, &vpn)
        if t == NULL:
            break
        pte = t.e[vpn & 511]
        if pte & PTE_PROMOTED:
            base = pde_base(vpn)
            if base >= start and base + NPTEPG <= end:
                ctx.pde.remove(ctx, pm, t, base)    # the whole 2 MiB: one PDE
                npde += 1
                vpn = <uint64_t>(base + NPTEPG)
                continue
            ctx.pde.demote(ctx, pm, t, <int64_t>vpn)
            continue                            # now a 4 KiB entry (or gone)
        ctx.pv.pv_remove(ctx, pm, pte_pfn(pte), <int64_t>vpn)
        pt_set(t, vpn, 0)
        pm.resident_count -= 1
        n += 1
        vpn += 1
    if n or npde:
        ctx.ctr[C_PTE_WRITES] += n + npde
        ctx.ctr[C_PTE_ZAPS] += n + npde
        ctx.ctr[C_TLB_FLUSHES] += 1
    return n + npde * NPTEPG

cdef int64_t pmap_protect(pmap_ctx_t* ctx, pmap_hdr_t* pm, int64_t start, int64_t end) noexcept nogil:
    cdef uint64_t vpn = <uint64_t>start
    cdef pt_node_t* t
    cdef int64_t n = 0, base, i
    while True:
        t = pt_next(&pm.pt, vpn, <uint64_t>end, &vpn)
        if t == NULL:
            break
        if t.e[vpn & 511] & PTE_PROMOTED:
            base = pde_base(vpn)
            if base >= start and base + NPTEPG <= end:
                if t.e[0] & PTE_WRITE:          # pmap_protect_pde: one PDE write
                    for i in range(NPTEPG):
                        t.e[i] &= ~(<uint64_t>PTE_WRITE)
                    n += 1
                vpn = <uint64_t>(base + NPTEPG)
                continue
            ctx.pde.demote(ctx, pm, t, <int64_t>vpn)
        if t.e[vpn & 511] & PTE_WRITE:
            t.e[vpn & 511] &= ~(<uint64_t>PTE_WRITE)
            n += 1
        vpn += 1
    if n:
        ctx.ctr[C_PTE_WRITES] += n
        ctx.ctr[C_TLB_FLUSHES] += 1
    return n

cdef int pmap_reserve_move(pmap_ctx_t* ctx, pmap_hdr_t* pm, int64_t start, int64_t end,
                           int64_t delta, int64_t floor, int64_t ceiling) noexcept nogil:
    """Allocate the destination tables pmap_move will fill, before anything moves;
    -1 (and the pmap as it was) when the host is out of memory."""
    cdef int64_t nalloc = 0
    if pt_reserve_move(&pm.pt, <uint64_t>start, <uint64_t>end, <uint64_t>(start + delta),
                       <uint64_t>floor, <uint64_t>ceiling, False, &nalloc) != 0:
        return -1
    ctx.ctr[C_PT_PAGES_ALLOC] += nalloc
    pmap_account_tables(ctx, pm)
    return 0

cdef int64_t pmap_move(pmap_ctx_t* ctx, pmap_hdr_t* pm, int64_t start, int64_t end,
                       int64_t delta) noexcept nogil:
    # the ranges do not overlap, so moving one PTE at a time in address order is safe
    cdef uint64_t vpn = <uint64_t>start
    cdef pt_node_t* t
    cdef pt_node_t* dst
    cdef uint64_t pte
    cdef int64_t n = 0, nalloc = 0
    if ctx.pde.demote != NULL:
        pmap_demote_range(ctx, pm, start, end)  # moved at 4 KiB
    while True:
        t = pt_next(&pm.pt, vpn, <uint64_t>end, &vpn)
        if t == NULL:
            break
        pte = t.e[vpn & 511]
        dst = pt_leaf(&pm.pt, vpn + delta, True, &nalloc)
        if dst == NULL:
            break
        pt_set(dst, vpn + delta, pte)
        pt_set(t, vpn, 0)
        ctx.pv.pv_move(ctx, pm, pte_pfn(pte), <int64_t>vpn, <int64_t>vpn + delta)
        n += 1
        vpn += 1
    ctx.ctr[C_PT_PAGES_ALLOC] += nalloc
    pmap_account_tables(ctx, pm)
    if n:
        ctx.ctr[C_PTE_WRITES] += 2 * n
        ctx.ctr[C_PTE_ZAPS] += n
        ctx.ctr[C_TLB_FLUSHES] += 1
        ctx.ctr[C_MREMAP_PAGES_MOVED] += n
    return n

cdef void pmap_free_tables(pmap_ctx_t* ctx, pmap_hdr_t* pm, int64_t floor, int64_t ceiling) noexcept nogil:
    cdef int64_t freed = pt_free_range(&pm.pt, <uint64_t>floor, <uint64_t>ceiling)
    if freed:
        ctx.ctr[C_PT_PAGES_FREE] += freed
        pmap_account_tables(ctx, pm)

cdef void pmap_zap(pmap_ctx_t* ctx, pmap_hdr_t* pm, pfn_t pfn, int64_t vpn) noexcept nogil:
    """Clear one PTE known to map pfn, and its pv record (counters: the caller)."""
    pt_set(pt_find_leaf(&pm.pt, <uint64_t>vpn), <uint64_t>vpn, 0)
    pm.resident_count -= 1
    ctx.pv.pv_remove(ctx, pm, pfn, vpn)

cdef int64_t pmap_remove_all(pmap_ctx_t* ctx, pfn_t pfn) noexcept nogil:
    """Unmap a page everywhere through its pv records (one TLB flush each)."""
    cdef pmap_hdr_t* pm
    cdef int64_t vpn, n = 0
    while ctx.pv.pv_first(ctx, pfn, &pm, &vpn):
        pmap_zap(ctx, pm, pfn, vpn)
        n += 1
    ctx.ctr[C_RMAP_VISITS] += n
    ctx.ctr[C_PTE_WRITES] += n
    ctx.ctr[C_PTE_ZAPS] += n
    ctx.ctr[C_TLB_FLUSHES] += n
    return n

cdef uint64_t pmap_pte(pmap_hdr_t* pm, int64_t vpn) noexcept nogil:
    return pt_get(&pm.pt, <uint64_t>vpn)

cdef void pmap_demote_range(pmap_ctx_t* ctx, pmap_hdr_t* pm, int64_t start, int64_t end) noexcept nogil:
    """Demote every 2 MiB mapping that [start, end) touches."""
    cdef uint64_t vpn = <uint64_t>start
    cdef pt_node_t* t
    while True:
        t = pt_next(&pm.pt, vpn, <uint64_t>end, &vpn)
        if t == NULL:
            break
        if t.e[vpn & 511] & PTE_PROMOTED:
            ctx.pde.demote(ctx, pm, t, <int64_t>vpn)
        vpn = (vpn | 511) + 1

cdef int64_t pmap_superpages(pmap_hdr_t* pm) noexcept nogil:
    cdef uint64_t vpn = 0
    cdef pt_node_t* t
    cdef int64_t n = 0
    while True:
        t = pt_next(&pm.pt, vpn, <uint64_t>1 << 36, &vpn)
        if t == NULL:
            break
        if t.e[vpn & 511] & PTE_PROMOTED:
            n += 1
        vpn = (vpn | 511) + 1
    return n
