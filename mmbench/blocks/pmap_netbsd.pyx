# Implementation of NetBSD x86's pmap; see pmap_netbsd.pxd (the design) and
# pmap.pxd (the interface).
from libc.string cimport memset
from libc.stdint cimport uint64_t, int64_t

from mmbench.core cimport C_PV_ENTRIES, VPN_BITS
from mmbench.blocks.frames cimport pfn_t, frame_t
from mmbench.blocks.handles cimport handles_init, handles_take, handles_put, handles_get
from mmbench.blocks.pagetable cimport pt_get, pte_pfn, pte_present
from mmbench.blocks.pmap cimport (pmap_ctx_t, pmap_hdr_t, pmap_pv_ops_t, pmap_kc_alloc, pmap_kc_free,
                                  pmap_ctx_init, pmap_create, pmap_destroy, pvc_link_t,
                                  pvc_of_link, pvc_push, pvc_unlink, pvc_alloc, pvc_free, pvc_free_list)

cdef extern from *:
    int __builtin_ctzll(unsigned long long) nogil

cdef uint64_t PVP_ALL_FREE = (1ULL << PVE_PER_PVP) - 1

assert sizeof(pv_entry_t) == PV_ENTRY_BYTES and sizeof(pv_page_t) == PV_PAGE_BYTES


# ------------------------------------------------------------ lifecycle
cdef int pmap_bootstrap(pmap_ctx_t* ctx, int64_t npages) noexcept nogil:
    cdef pmap_pv_ops_t pv
    pv.pv_enter = pmap_enter_pv
    pv.pv_remove = pmap_remove_pv
    pv.pv_move = pmap_move_pv
    pv.pv_first = pmap_first_pv
    if pmap_ctx_init(ctx, npages, pv, PV_PAGE_BYTES) != 0:   # pmap_page: in the frame descriptors
        return -1
    handles_init(&ctx.pmap_tab, PMAP_NUM_MAX)    # pm_num: the number pp_pte packs
    return 0

cdef int pmap_pinit(pmap_ctx_t* ctx, pmap_t* pm, int64_t pid) noexcept nogil:
    """pmap_create: the PDP and an empty pv state; struct pmap is charged."""
    cdef int64_t n = handles_take(&ctx.pmap_tab, <void*>pm)
    if n < 0:
        return -1
    if pmap_create(ctx, &pm.hdr, sizeof(pmap_t), pid) != 0:
        handles_put(&ctx.pmap_tab, n)
        return -1
    pm.pm_num = n
    return 0

cdef void pmap_release(pmap_ctx_t* ctx, pmap_t* pm) noexcept nogil:
    """pmap_destroy of a pmap whose mappings are gone (pv_pages drained already)."""
    pvc_free_list(ctx, &pm.pm_pvp_part)
    pvc_free_list(ctx, &pm.pm_pvp_empty)
    handles_put(&ctx.pmap_tab, pm.pm_num)
    pmap_destroy(ctx, &pm.hdr)


# ------------------------------------------- pmap_page, in the frame descriptor
cdef uint64_t PP_VA_MASK = (1ULL << VPN_BITS) - 1

cdef inline frame_t* pp_of(pmap_ctx_t* ctx, pfn_t pfn) noexcept nogil:
    """The descriptor holding the page's pmap_page (owner: pp_pvlist, index: pp_pte)."""
    return &ctx.fr.f[pfn]

cdef inline pv_entry_t* pp_pvlist(frame_t* pp) noexcept nogil:
    return <pv_entry_t*><size_t>pp.owner

cdef inline void pp_set_pvlist(frame_t* pp, pv_entry_t* pve) noexcept nogil:
    pp.owner = <uint64_t><size_t>pve

cdef inline uint64_t pp_pte_of(pmap_t* pm, int64_t vpn) noexcept nogil:
    """The embedded pv {pm, vpn} as pp_pte holds it."""
    return (<uint64_t>(pm.pm_num + 1) << VPN_BITS) | <uint64_t>vpn

cdef inline pmap_t* pp_pte_pmap(pmap_ctx_t* ctx, uint64_t pp_pte) noexcept nogil:
    return <pmap_t*>handles_get(&ctx.pmap_tab, <int64_t>(pp_pte >> VPN_BITS) - 1)

cdef inline int64_t pp_pte_va(uint64_t pp_pte) noexcept nogil:
    return <int64_t>(pp_pte & PP_VA_MASK)


# ---------------------------------------------------------- pv_pages
cdef inline pv_page_t* pve_page(pv_entry_t* pve) noexcept nogil:
    """The pv_page holding pve: the 4 KiB page it lies in (pv_pages are whole,
    4 KiB-aligned pages: pvc_alloc of PV_PAGE_BYTES)."""
    return <pv_page_t*>(<size_t>pve & ~(<size_t>PV_PAGE_BYTES - 1))

cdef pv_entry_t* pmap_alloc_pv(pmap_ctx_t* ctx, pmap_t* pm) noexcept nogil:
    """A free pv_entry from a partly used pv_page, or from a new pv_page."""
    cdef pv_page_t* pvp = NULL if pm.pm_pvp_part == NULL else <pv_page_t*>pvc_of_link(pm.pm_pvp_part)
    cdef int i
    if pvp == NULL:
        pvp = <pv_page_t*>pvc_alloc(ctx)
        if pvp == NULL:
            return NULL
        memset(pvp, 0, 64)
        pvp.pvp_pmap = <void*>pm
        pvp.pvp_nfree = PVE_PER_PVP
        pvp.pvp_free = PVP_ALL_FREE
        pvc_push(&pm.pm_pvp_part, &pvp.pvp_list)
    i = __builtin_ctzll(pvp.pvp_free)
    pvp.pvp_free &= ~(1ULL << i)
    pvp.pvp_nfree -= 1
    if pvp.pvp_nfree == 0:                     # part -> empty
        pvc_unlink(&pm.pm_pvp_part, &pvp.pvp_list)
        pvc_push(&pm.pm_pvp_empty, &pvp.pvp_list)
    ctx.ctr[C_PV_ENTRIES] += 1
    return &pvp.pvp_pve[i]

cdef void pmap_free_pv(pmap_ctx_t* ctx, pmap_t* pm, pv_entry_t* pve) noexcept nogil:
    """Back to its pv_page; a page with every entry free is drained at once."""
    cdef pv_page_t* pvp = pve_page(pve)
    cdef int i = <int>(pve - &pvp.pvp_pve[0])
    pvp.pvp_free |= 1ULL << i
    pvp.pvp_nfree += 1
    if pvp.pvp_nfree == 1:                     # empty -> part
        pvc_unlink(&pm.pm_pvp_empty, &pvp.pvp_list)
        pvc_push(&pm.pm_pvp_part, &pvp.pvp_list)
    if pvp.pvp_nfree == PVE_PER_PVP:           # all free: pmap_drain_pv
        pvc_unlink(&pm.pm_pvp_part, &pvp.pvp_list)
        pvc_free(ctx, pvp)


# ----------------------------------------------------------- pv lists
cdef inline pmap_t* pve_pmap(pv_entry_t* pve) noexcept nogil:
    return <pmap_t*>pve_page(pve).pvp_pmap

cdef int pmap_enter_pv(pmap_ctx_t* ctx, pmap_hdr_t* hdr, pfn_t pfn, int64_t vpn) noexcept nogil:
    """Track <pm, vpn> for the page: the embedded slot if free, else a pv_entry."""
    cdef pmap_t* pm = <pmap_t*>hdr
    cdef frame_t* pp = pp_of(ctx, pfn)
    cdef pv_entry_t* pve
    if pp.index == 0:
        pp.index = pp_pte_of(pm, vpn)
        pm.pm_embedded += 1
    else:
        pve = pmap_alloc_pv(ctx, pm)
        if pve == NULL:
            return -1
        pve.pve_va = <uint64_t>vpn
        pve.pve_pfn = pfn
        pve.pve_prev = NULL
        pve.pve_next = pp_pvlist(pp)
        if pve.pve_next != NULL:
            pve.pve_next.pve_prev = pve
        pp_set_pvlist(pp, pve)
    pp.mapcount += 1
    return 0

cdef pv_entry_t* pv_lookup(frame_t* pp, pmap_t* pm, int64_t vpn) noexcept nogil:
    cdef pv_entry_t* pve = pp_pvlist(pp)
    while pve != NULL:
        if <int64_t>pve.pve_va == vpn and pve_pmap(pve) == pm:
            return pve
        pve = pve.pve_next
    return NULL

cdef void pmap_remove_pv(pmap_ctx_t* ctx, pmap_hdr_t* hdr, pfn_t pfn, int64_t vpn) noexcept nogil:
    """Forget <pm, vpn>: clear the embedded slot, or unlink and free the pv_entry."""
    cdef pmap_t* pm = <pmap_t*>hdr
    cdef frame_t* pp = pp_of(ctx, pfn)
    cdef pv_entry_t* pve
    pp.mapcount -= 1
    if pp.index == pp_pte_of(pm, vpn):
        pp.index = 0
        pm.pm_embedded -= 1
        return
    pve = pv_lookup(pp, pm, vpn)
    if pve.pve_prev != NULL:
        pve.pve_prev.pve_next = pve.pve_next
    else:
        pp_set_pvlist(pp, pve.pve_next)
    if pve.pve_next != NULL:
        pve.pve_next.pve_prev = pve.pve_prev
    pmap_free_pv(ctx, pm, pve)

cdef void pmap_move_pv(pmap_ctx_t* ctx, pmap_hdr_t* hdr, pfn_t pfn, int64_t vpn,
                       int64_t nvpn) noexcept nogil:
    """The mapping <pm, vpn> of the page is now at nvpn (mremap)."""
    cdef pmap_t* pm = <pmap_t*>hdr
    cdef frame_t* pp = pp_of(ctx, pfn)
    if pp.index == pp_pte_of(pm, vpn):
        pp.index = pp_pte_of(pm, nvpn)
    else:
        pv_lookup(pp, pm, vpn).pve_va = <uint64_t>nvpn


# ------------------------------------------------- the implementation's API
cdef bint pmap_first_pv(pmap_ctx_t* ctx, pfn_t pfn, pmap_hdr_t** pm, int64_t* vpn) noexcept nogil:
    """pmap_pp_remove's order: the dynamic entries, then the embedded one."""
    cdef frame_t* pp = pp_of(ctx, pfn)
    cdef pv_entry_t* pve = pp_pvlist(pp)
    if pve != NULL:
        pm[0] = &pve_pmap(pve).hdr
        vpn[0] = <int64_t>pve.pve_va
        return True
    if pp.index != 0:
        pm[0] = &pp_pte_pmap(ctx, pp.index).hdr
        vpn[0] = pp_pte_va(pp.index)
        return True
    return False

cdef int64_t pvp_list_used(pvc_link_t* l) noexcept nogil:
    cdef int64_t used = 0
    while l != NULL:
        used += PVE_PER_PVP - (<pv_page_t*>pvc_of_link(l)).pvp_nfree
        l = l.next
    return used

cdef int64_t pmap_pv_dynamic(pmap_t* pm) noexcept nogil:
    return pvp_list_used(pm.pm_pvp_part) + pvp_list_used(pm.pm_pvp_empty)

cdef int64_t pmap_pv_count(pmap_t* pm) noexcept nogil:
    return pm.pm_embedded + pmap_pv_dynamic(pm)

cdef int64_t pmap_page_mappers(pmap_ctx_t* ctx, pfn_t pfn, int64_t* pids, int64_t* vpns,
                               int64_t max) noexcept nogil:
    """The page's mappings, embedded one first; returns how many (all of
    them, even past `max`, which bounds only what is written)."""
    cdef frame_t* pp = pp_of(ctx, pfn)
    cdef pv_entry_t* pve = pp_pvlist(pp)
    cdef int64_t n = 0
    if pp.index != 0:
        if n < max:
            pids[n] = pp_pte_pmap(ctx, pp.index).hdr.pid
            vpns[n] = pp_pte_va(pp.index)
        n += 1
    while pve != NULL:
        if n < max:
            pids[n] = pve_pmap(pve).hdr.pid
            vpns[n] = <int64_t>pve.pve_va
        n += 1
        pve = pve.pve_next
    return n


cdef bint maps(pmap_t* pm, int64_t vpn, pfn_t pfn) noexcept nogil:
    cdef uint64_t pte = pt_get(&pm.hdr.pt, <uint64_t>vpn)
    return pte_present(pte) and pte_pfn(pte) == pfn

cdef int pmap_check_page(pmap_ctx_t* ctx, pfn_t pfn, const char** why) noexcept nogil:
    cdef frame_t* pp = pp_of(ctx, pfn)
    cdef pv_entry_t* pve = pp_pvlist(pp)
    cdef int64_t n = 0
    if pp.index != 0:
        if not maps(pp_pte_pmap(ctx, pp.index), pp_pte_va(pp.index), pfn):
            why[0] = "pmap: the embedded pv names no PTE mapping the page"
            return -1
        n += 1
    while pve != NULL:
        if pve.pve_pfn != pfn or not maps(pve_pmap(pve), <int64_t>pve.pve_va, pfn):
            why[0] = "pmap: a pv_entry names no PTE mapping its page"
            return -1
        if pve.pve_next != NULL and pve.pve_next.pve_prev != pve:
            why[0] = "pmap: a page's pv list is badly linked"
            return -1
        n += 1
        pve = pve.pve_next
    if n != pp.mapcount:
        why[0] = "pmap: pv records of a page differ from its mapcount"
        return -1
    return 0
