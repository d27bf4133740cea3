# Implementation of NetBSD x86's pmap; see pmap_netbsd.pxd (the design) and
# pmap.pxd (the interface).
from libc.string cimport memset
from libc.stdint cimport uint64_t, int64_t

from mmbench.core cimport C_PV_ENTRIES
from mmbench.blocks.frames cimport pfn_t
from mmbench.blocks.pagetable cimport pt_get, pte_pfn, pte_present
from mmbench.blocks.pmap cimport (pmap_ctx_t, pmap_hdr_t, pmap_pv_ops_t, pmap_kc_alloc, pmap_kc_free,
                                  pmap_ctx_init, pmap_create, pmap_destroy, pvc_link_t,
                                  pvc_of, pvc_push, pvc_unlink, pvc_alloc, pvc_free, pvc_free_list)

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
    return pmap_ctx_init(ctx, npages, sizeof(pmap_page_t), pv)

cdef inline pmap_page_t* pp_of(pmap_ctx_t* ctx, pfn_t pfn) noexcept nogil:
    return &(<pmap_page_t*>ctx.pv_heads)[pfn]

cdef int pmap_pinit(pmap_ctx_t* ctx, pmap_t* pm, int64_t pid) noexcept nogil:
    """pmap_create: the PDP and an empty pv state; struct pmap is charged."""
    return pmap_create(ctx, &pm.hdr, sizeof(pmap_t), pid)

cdef void pmap_release(pmap_ctx_t* ctx, pmap_t* pm) noexcept nogil:
    """pmap_destroy of a pmap whose mappings are gone (pv_pages drained already)."""
    pvc_free_list(ctx, &pm.pm_pvp_part)
    pvc_free_list(ctx, &pm.pm_pvp_empty)
    pmap_destroy(ctx, &pm.hdr)


# ---------------------------------------------------------- pv_pages
cdef inline pv_page_t* pve_page(pv_entry_t* pve) noexcept nogil:
    return <pv_page_t*>pvc_of(pve)

cdef pv_entry_t* pmap_alloc_pv(pmap_ctx_t* ctx, pmap_t* pm) noexcept nogil:
    """A free pv_entry from a partly used pv_page, or from a new pv_page."""
    cdef pv_page_t* pvp = NULL if pm.pm_pvp_part == NULL else <pv_page_t*>pvc_of(pm.pm_pvp_part)
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
    cdef pmap_page_t* pp = pp_of(ctx, pfn)
    cdef pv_entry_t* pve
    if pp.pte_pmap == NULL:
        pp.pte_pmap = <void*>pm
        pp.pte_va = <uint64_t>vpn
        pm.pm_embedded += 1
    else:
        pve = pmap_alloc_pv(ctx, pm)
        if pve == NULL:
            return -1
        pve.pve_va = <uint64_t>vpn
        pve.pve_pfn = pfn
        pve.pve_prev = NULL
        pve.pve_next = pp.pp_pvlist
        if pve.pve_next != NULL:
            pve.pve_next.pve_prev = pve
        pp.pp_pvlist = pve
    ctx.fr.f[pfn].mapcount += 1
    return 0

cdef pv_entry_t* pv_lookup(pmap_page_t* pp, pmap_t* pm, int64_t vpn) noexcept nogil:
    cdef pv_entry_t* pve = pp.pp_pvlist
    while pve != NULL:
        if <int64_t>pve.pve_va == vpn and pve_pmap(pve) == pm:
            return pve
        pve = pve.pve_next
    return NULL

cdef void pmap_remove_pv(pmap_ctx_t* ctx, pmap_hdr_t* hdr, pfn_t pfn, int64_t vpn) noexcept nogil:
    """Forget <pm, vpn>: clear the embedded slot, or unlink and free the pv_entry."""
    cdef pmap_t* pm = <pmap_t*>hdr
    cdef pmap_page_t* pp = pp_of(ctx, pfn)
    cdef pv_entry_t* pve
    ctx.fr.f[pfn].mapcount -= 1
    if pp.pte_pmap == <void*>pm and <int64_t>pp.pte_va == vpn:
        pp.pte_pmap = NULL
        pp.pte_va = 0
        pm.pm_embedded -= 1
        return
    pve = pv_lookup(pp, pm, vpn)
    if pve.pve_prev != NULL:
        pve.pve_prev.pve_next = pve.pve_next
    else:
        pp.pp_pvlist = pve.pve_next
    if pve.pve_next != NULL:
        pve.pve_next.pve_prev = pve.pve_prev
    pmap_free_pv(ctx, pm, pve)

cdef void pmap_move_pv(pmap_ctx_t* ctx, pmap_hdr_t* hdr, pfn_t pfn, int64_t vpn,
                       int64_t nvpn) noexcept nogil:
    """The mapping <pm, vpn> of the page is now at nvpn (mremap)."""
    cdef pmap_t* pm = <pmap_t*>hdr
    cdef pmap_page_t* pp = pp_of(ctx, pfn)
    if pp.pte_pmap == <void*>pm and <int64_t>pp.pte_va == vpn:
        pp.pte_va = <uint64_t>nvpn
    else:
        pv_lookup(pp, pm, vpn).pve_va = <uint64_t>nvpn


# ------------------------------------------------- the implementation's API
cdef bint pmap_first_pv(pmap_ctx_t* ctx, pfn_t pfn, pmap_hdr_t** pm, int64_t* vpn) noexcept nogil:
    """pmap_pp_remove's order: the dynamic entries, then the embedded one."""
    cdef pmap_page_t* pp = pp_of(ctx, pfn)
    if pp.pp_pvlist != NULL:
        pm[0] = &pve_pmap(pp.pp_pvlist).hdr
        vpn[0] = <int64_t>pp.pp_pvlist.pve_va
        return True
    if pp.pte_pmap != NULL:
        pm[0] = &(<pmap_t*>pp.pte_pmap).hdr
        vpn[0] = <int64_t>pp.pte_va
        return True
    return False

cdef int64_t pvp_list_used(pvc_link_t* l) noexcept nogil:
    cdef int64_t used = 0
    while l != NULL:
        used += PVE_PER_PVP - (<pv_page_t*>pvc_of(l)).pvp_nfree
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
    cdef pmap_page_t* pp = pp_of(ctx, pfn)
    cdef pv_entry_t* pve = pp.pp_pvlist
    cdef int64_t n = 0
    if pp.pte_pmap != NULL:
        if n < max:
            pids[n] = (<pmap_t*>pp.pte_pmap).hdr.pid
            vpns[n] = <int64_t>pp.pte_va
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
    cdef pmap_page_t* pp = pp_of(ctx, pfn)
    cdef pv_entry_t* pve = pp.pp_pvlist
    cdef int64_t n = 0
    if pp.pte_pmap != NULL:
        if not maps(<pmap_t*>pp.pte_pmap, <int64_t>pp.pte_va, pfn):
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
    if n != ctx.fr.f[pfn].mapcount:
        why[0] = "pmap: pv records of a page differ from its mapcount"
        return -1
    return 0
