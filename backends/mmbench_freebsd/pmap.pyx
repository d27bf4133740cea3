# FreeBSD's part of the pmap: superpages and pmap_copy; see pmap.pxd.
from libc.stdint cimport uint64_t, int64_t

from mmbench.core cimport (C_SUPERPAGE_PROMOTIONS, C_SUPERPAGE_DEMOTIONS, C_SUPERPAGE_P_FAILURES,
                           C_PTE_WRITES, C_TLB_FLUSHES, C_PT_PAGES_ALLOC)
from mmbench.blocks.frames cimport pfn_t
from mmbench.blocks.pagetable cimport pt_node_t, pt_leaf, pt_find_leaf, pt_set, pt_next, pte_pfn, pte_present, PTE_WRITE
from mmbench.blocks.pmap cimport (pmap_ctx_t, pmap_hdr_t, pmap_account_tables, PTE_PROMOTED,
                                  pmap_remove_all as pmap_remove_all_4k)
from mmbench.blocks.pmap_pvchunk cimport (pmap_t, pv_entry_t, get_pv_entry, free_pv_entry, pv_va,
                                          pv_pmap, pv_list, pv_list_first, pv_list_insert,
                                          pmap_pvh_remove)
from mmbench_freebsd.vm cimport vm_ctx_t, vm_reserv_t, VM_LEVEL_0_NPAGES
from mmbench_freebsd.vm_reserv cimport vm_reserv_from_page


# The hooks get the block's context, the first member of vm_ctx_t, and the
# generic pmap header, the first member of pmap_t.
cdef inline vm_ctx_t* vm_of(pmap_ctx_t* ctx) noexcept nogil:
    return <vm_ctx_t*>ctx

cdef inline vm_reserv_t* pde_reserv(vm_ctx_t* vm, pt_node_t* t) noexcept nogil:
    """The reservation a 2 MiB mapping maps (its first page's)."""
    return vm_reserv_from_page(vm, pte_pfn(t.e[0]))

cdef inline void pv_link(vm_ctx_t* vm, pfn_t pfn, pv_entry_t pv, int64_t va) noexcept nogil:
    pv_list_insert(&vm.md, pv_list(&vm.md, pfn), pv, va)
    vm.md.fr.f[pfn].mapcount += 1


# ---------------------------------------------------------------- superpages
cdef void pmap_promote_pde(pmap_ctx_t* ctx, pmap_hdr_t* hdr, pt_node_t* t, int64_t vpn) noexcept nogil:
    """All 512 entries of t are valid and vpn's page's reservation is full."""
    cdef vm_ctx_t* vm = vm_of(ctx)
    cdef pmap_t* pm = <pmap_t*>hdr
    cdef int64_t base = vpn & ~(<int64_t>VM_LEVEL_0_NPAGES - 1)
    cdef vm_reserv_t* rv = pde_reserv(vm, t)
    cdef uint64_t prot = t.e[0] & PTE_WRITE
    cdef pv_entry_t pv
    cdef int64_t i
    if rv == NULL or rv.popcnt != VM_LEVEL_0_NPAGES:
        ctx.ctr[C_SUPERPAGE_P_FAILURES] += 1
        return
    for i in range(VM_LEVEL_0_NPAGES):
        if (not pte_present(t.e[i]) or (t.e[i] & PTE_WRITE) != prot
                or pte_pfn(t.e[i]) != rv.pages[i]):
            ctx.ctr[C_SUPERPAGE_P_FAILURES] += 1
            return
    pv = get_pv_entry(ctx, pm)
    if pv == 0:
        ctx.ctr[C_SUPERPAGE_P_FAILURES] += 1
        return
    for i in range(VM_LEVEL_0_NPAGES):          # pmap_pv_promote_pde
        ctx.pv.pv_remove(ctx, hdr, rv.pages[i], base + i)
        ctx.fr.f[rv.pages[i]].mapcount += 1     # still mapped, now through the pvh
        t.e[i] |= PTE_PROMOTED
    pv_list_insert(ctx, &rv.pvh, pv, base)
    ctx.ctr[C_SUPERPAGE_PROMOTIONS] += 1
    ctx.ctr[C_PTE_WRITES] += 1                  # the PDE
    ctx.ctr[C_TLB_FLUSHES] += 1

cdef void pmap_try_promote(pmap_ctx_t* ctx, pmap_hdr_t* hdr, pt_node_t* t, int64_t vpn,
                           pfn_t pfn) noexcept nogil:
    """pmap_enter's test: the PTE page full, the page's reservation full."""
    cdef vm_ctx_t* vm = vm_of(ctx)
    cdef vm_reserv_t* rv
    if not vm.pg_ps_enabled or t.used != VM_LEVEL_0_NPAGES:
        return
    rv = vm_reserv_from_page(vm, pfn)
    if rv != NULL and rv.popcnt == VM_LEVEL_0_NPAGES:
        pmap_promote_pde(ctx, hdr, t, vpn)

cdef void pmap_remove_pde(pmap_ctx_t* ctx, pmap_hdr_t* hdr, pt_node_t* t, int64_t base) noexcept nogil:
    """Unmap a whole 2 MiB mapping (its kept PTE page is emptied)."""
    cdef vm_reserv_t* rv = pde_reserv(vm_of(ctx), t)
    cdef pmap_t* pm = <pmap_t*>hdr
    cdef pv_entry_t pv = pmap_pvh_remove(ctx, &rv.pvh, pm, base)
    cdef int64_t i
    free_pv_entry(ctx, pm, pv)
    for i in range(VM_LEVEL_0_NPAGES):
        ctx.fr.f[pte_pfn(t.e[i])].mapcount -= 1
        pt_set(t, <uint64_t>(base + i), 0)
    hdr.resident_count -= VM_LEVEL_0_NPAGES

cdef void pmap_demote_pde(pmap_ctx_t* ctx, pmap_hdr_t* hdr, pt_node_t* t, int64_t vpn) noexcept nogil:
    cdef vm_ctx_t* vm = vm_of(ctx)
    cdef pmap_t* pm = <pmap_t*>hdr
    cdef int64_t base = vpn & ~(<int64_t>VM_LEVEL_0_NPAGES - 1)
    cdef vm_reserv_t* rv = pde_reserv(vm, t)
    cdef pv_entry_t pv
    cdef pfn_t m
    cdef int64_t i
    pv = pmap_pvh_remove(ctx, &rv.pvh, pm, base)    # pmap_pv_demote_pde: it becomes page 0's
    for i in range(VM_LEVEL_0_NPAGES):
        t.e[i] &= ~(<uint64_t>PTE_PROMOTED)
        m = pte_pfn(t.e[i])
        if i > 0:
            pv = get_pv_entry(ctx, pm)
        if pv == 0:                             # no pv entry: that page loses its mapping
            ctx.fr.f[m].mapcount -= 1           # (the kernel drops the whole 2 MiB one)
            pt_set(t, <uint64_t>(base + i), 0)
            hdr.resident_count -= 1
            continue
        ctx.fr.f[m].mapcount -= 1               # pv_link counts it again
        pv_link(vm, m, pv, base + i)
    ctx.ctr[C_SUPERPAGE_DEMOTIONS] += 1
    ctx.ctr[C_PTE_WRITES] += 1                  # the PDE (the kept PTE page is current)
    ctx.ctr[C_TLB_FLUSHES] += 1

cdef void pmap_pde_init(vm_ctx_t* vm) noexcept nogil:
    vm.md.pde.demote = pmap_demote_pde
    vm.md.pde.remove = pmap_remove_pde
    vm.md.pde.try_promote = pmap_try_promote

cdef void pmap_demote_reserv(vm_ctx_t* vm, vm_reserv_t* rv) noexcept nogil:
    cdef pmap_t* pm
    cdef pv_entry_t pv
    cdef int64_t va
    while rv.pvh != 0:
        pv = pv_list_first(&rv.pvh)
        pm = pv_pmap(&vm.md, pv)
        va = pv_va(&vm.md, pv)
        pmap_demote_pde(&vm.md, &pm.hdr, pt_find_leaf(&pm.hdr.pt, <uint64_t>va), va)

cdef int64_t pmap_remove_all(vm_ctx_t* vm, pfn_t pfn) noexcept nogil:
    cdef vm_reserv_t* rv = vm_reserv_from_page(vm, pfn)
    if rv != NULL:
        pmap_demote_reserv(vm, rv)              # 2 MiB mappings of it first
    return pmap_remove_all_4k(&vm.md, pfn)


# ------------------------------------------------------------------ pmap_copy
cdef int64_t pmap_copy(vm_ctx_t* vm, pmap_t* dst, pmap_t* src, int64_t start, int64_t end) noexcept nogil:
    # The amd64 pmap copies the managed PTEs of the range (wired, modified and
    # accessed bits cleared, which the model does not keep); the parent's
    # private ranges were write-protected just before, so the child's copies
    # are read-only there and writable only for shared mappings.
    cdef uint64_t vpn = <uint64_t>start
    cdef pt_node_t* t
    cdef pt_node_t* d
    cdef pv_entry_t pv
    cdef uint64_t pte
    cdef int64_t n = 0, nalloc = 0, base, i
    while True:
        t = pt_next(&src.hdr.pt, vpn, <uint64_t>end, &vpn)
        if t == NULL:
            break
        pte = t.e[vpn & 511]
        d = pt_leaf(&dst.hdr.pt, vpn, True, &nalloc)
        if d == NULL:
            break
        base = <int64_t>vpn & ~(<int64_t>VM_LEVEL_0_NPAGES - 1)
        if (pte & PTE_PROMOTED) and base >= start and base + VM_LEVEL_0_NPAGES <= end and d.used == 0:
            pv = get_pv_entry(&vm.md, dst)      # the whole 2 MiB: one PDE, one pv entry
            if pv == 0:
                break
            pv_list_insert(&vm.md, &pde_reserv(vm, t).pvh, pv, base)
            for i in range(VM_LEVEL_0_NPAGES):
                pt_set(d, <uint64_t>(base + i), t.e[i])
                vm.md.fr.f[pte_pfn(t.e[i])].mapcount += 1
            dst.hdr.resident_count += VM_LEVEL_0_NPAGES
            n += 1
            vpn = <uint64_t>(base + VM_LEVEL_0_NPAGES)
            continue
        pte &= ~(<uint64_t>PTE_PROMOTED)        # part of a 2 MiB mapping: copied at 4 KiB
        if d.e[vpn & 511] == 0:
            pv = get_pv_entry(&vm.md, dst)
            if pv == 0:
                break
            pv_link(vm, pte_pfn(pte), pv, <int64_t>vpn)
            pt_set(d, vpn, pte)
            dst.hdr.resident_count += 1
            n += 1
        vpn += 1
    if nalloc:
        vm.md.ctr[C_PT_PAGES_ALLOC] += nalloc
        pmap_account_tables(&vm.md, &dst.hdr)
    vm.md.ctr[C_PTE_WRITES] += n
    return n
