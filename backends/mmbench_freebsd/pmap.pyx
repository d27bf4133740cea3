# Implementation of the pmap layer; see pmap.pxd.
from libc.stdlib cimport free
from libc.string cimport memset
from libc.stdint cimport uint64_t, int64_t

from mmbench.core cimport (C_SUPERPAGE_PROMOTIONS, C_SUPERPAGE_DEMOTIONS, C_SUPERPAGE_P_FAILURES,
                           C_PTE_WRITES, C_PTE_ZAPS, C_TLB_FLUSHES, C_PT_PAGES_ALLOC,
                           C_PT_PAGES_FREE, C_PV_ENTRIES, C_RMAP_VISITS, C_MREMAP_PAGES_MOVED,
                           kmem_cache_sync)
from mmbench.blocks.frames cimport pfn_t
from mmbench.blocks.pagetable cimport (pgtable_t, pt_node_t, pt_init, pt_destroy, pt_leaf,
                                       pt_set, pt_next, pt_free_range, pt_reserve_move, pt_get, mk_pte, pte_pfn,
                                       pte_present, PTE_PRESENT, PTE_WRITE)
from mmbench_freebsd.vm cimport (vm_ctx_t, pmap_t, pv_entry_t, pv_chunk_t, vm_reserv_t, kc_alloc,
                                 kc_free, KC_PVCHUNK, KC_PGD, NPCPV, NPCM, PTE_PROMOTED,
                                 VM_LEVEL_0_NPAGES)

cdef extern from "stdlib.h":
    int posix_memalign(void** memptr, size_t alignment, size_t size) nogil

cdef extern from *:
    int __builtin_ctzll(unsigned long long) nogil
    int __builtin_popcountll(unsigned long long) nogil

# free-map of an empty chunk: 64 + 64 + 40 = 168 slots
cdef uint64_t PC_FREE[3]
PC_FREE[0] = 0xFFFFFFFFFFFFFFFFULL
PC_FREE[1] = 0xFFFFFFFFFFFFFFFFULL
PC_FREE[2] = (1ULL << (NPCPV - 128)) - 1


cdef void pmap_account_tables(vm_ctx_t* vm, pmap_t* pm) noexcept nogil:
    """Report page-table pages allocated or freed since the last call."""
    cdef int lvl
    for lvl in range(4):
        kmem_cache_sync(&vm.kc[KC_PGD + lvl], &pm.pt_accounted[lvl], pm.pt.nr[lvl])

cdef int pmap_pinit(vm_ctx_t* vm, pmap_t* pm, int64_t pid) noexcept nogil:
    memset(pm, 0, sizeof(pmap_t))
    pm.pid = pid
    if pt_init(&pm.pt) != 0:
        return -1
    pmap_account_tables(vm, pm)
    return 0

cdef void free_chunk_list(vm_ctx_t* vm, pv_chunk_t* pc) noexcept nogil:
    cdef pv_chunk_t* nx
    while pc != NULL:
        nx = pc.pc_next
        free(pc)
        kc_free(vm, KC_PVCHUNK)
        pc = nx

cdef void pmap_release(vm_ctx_t* vm, pmap_t* pm) noexcept nogil:
    free_chunk_list(vm, pm.pm_pvchunk)       # empty by now; freed for safety
    free_chunk_list(vm, pm.pm_pvfull)
    pm.pm_pvchunk = NULL
    pm.pm_pvfull = NULL
    pt_destroy(&pm.pt)
    pmap_account_tables(vm, pm)

cdef inline pv_chunk_t* pv_to_chunk(pv_entry_t* pv) noexcept nogil:
    return <pv_chunk_t*>(<size_t>pv & ~(<size_t>4095))

cdef pmap_t* pv_pmap(pv_entry_t* pv) noexcept nogil:
    return <pmap_t*>pv_to_chunk(pv).pc_pmap

cdef inline bint chunk_full(pv_chunk_t* pc) noexcept nogil:
    return (pc.pc_map[0] | pc.pc_map[1] | pc.pc_map[2]) == 0

cdef inline bint chunk_empty(pv_chunk_t* pc) noexcept nogil:
    return pc.pc_map[0] == PC_FREE[0] and pc.pc_map[1] == PC_FREE[1] and pc.pc_map[2] == PC_FREE[2]

cdef inline void chunk_unlink(pv_chunk_t** head, pv_chunk_t* pc) noexcept nogil:
    if pc.pc_prev != NULL:
        pc.pc_prev.pc_next = pc.pc_next
    else:
        head[0] = pc.pc_next
    if pc.pc_next != NULL:
        pc.pc_next.pc_prev = pc.pc_prev

cdef inline void chunk_push(pv_chunk_t** head, pv_chunk_t* pc) noexcept nogil:
    pc.pc_prev = NULL
    pc.pc_next = head[0]
    if head[0] != NULL:
        head[0].pc_prev = pc
    head[0] = pc

cdef pv_entry_t* get_pv_entry(vm_ctx_t* vm, pmap_t* pm) noexcept nogil:
    """Take a free pv entry from the pmap's first chunk, adding a chunk if full."""
    cdef pv_chunk_t* pc = pm.pm_pvchunk
    cdef void* mem = NULL
    cdef int w, bit
    if pc == NULL or chunk_full(pc):
        if posix_memalign(&mem, 4096, sizeof(pv_chunk_t)) != 0:
            return NULL
        pc = <pv_chunk_t*>mem
        pc.pc_pmap = <void*>pm
        pc.pc_map[0] = PC_FREE[0]
        pc.pc_map[1] = PC_FREE[1]
        pc.pc_map[2] = PC_FREE[2]
        chunk_push(&pm.pm_pvchunk, pc)
        kc_alloc(vm, KC_PVCHUNK)
    w = 0
    while pc.pc_map[w] == 0:
        w += 1
    bit = __builtin_ctzll(pc.pc_map[w])
    pc.pc_map[w] &= ~(1ULL << bit)
    if chunk_full(pc):
        chunk_unlink(&pm.pm_pvchunk, pc)
        chunk_push(&pm.pm_pvfull, pc)
    vm.ctr[C_PV_ENTRIES] += 1
    return &pc.pc_pventry[w * 64 + bit]

cdef void free_pv_entry(vm_ctx_t* vm, pmap_t* pm, pv_entry_t* pv) noexcept nogil:
    cdef pv_chunk_t* pc = pv_to_chunk(pv)
    cdef int idx = <int>(pv - &pc.pc_pventry[0])
    cdef bint was_full = chunk_full(pc)
    pc.pc_map[idx // 64] |= 1ULL << (idx % 64)
    if chunk_empty(pc):
        chunk_unlink(&pm.pm_pvchunk, pc)
        free(pc)
        kc_free(vm, KC_PVCHUNK)
    elif was_full:
        chunk_unlink(&pm.pm_pvfull, pc)
        chunk_push(&pm.pm_pvchunk, pc)

cdef inline void pv_link(vm_ctx_t* vm, pfn_t pfn, pv_entry_t* pv) noexcept nogil:
    pv.pv_prev = NULL
    pv.pv_next = vm.pv_head[pfn]
    if pv.pv_next != NULL:
        pv.pv_next.pv_prev = pv
    vm.pv_head[pfn] = pv
    vm.fr.f[pfn].mapcount += 1

cdef inline void pv_unlink(vm_ctx_t* vm, pfn_t pfn, pv_entry_t* pv) noexcept nogil:
    if pv.pv_prev != NULL:
        pv.pv_prev.pv_next = pv.pv_next
    else:
        vm.pv_head[pfn] = pv.pv_next
    if pv.pv_next != NULL:
        pv.pv_next.pv_prev = pv.pv_prev
    vm.fr.f[pfn].mapcount -= 1

cdef pv_entry_t* pv_find(vm_ctx_t* vm, pmap_t* pm, pfn_t pfn, int64_t vpn) noexcept nogil:
    cdef pv_entry_t* pv = vm.pv_head[pfn]
    while pv != NULL:
        if <int64_t>pv.pv_va == vpn and pv_pmap(pv) == pm:
            return pv
        pv = pv.pv_next
    return NULL

cdef void pv_remove(vm_ctx_t* vm, pmap_t* pm, pfn_t pfn, int64_t vpn) noexcept nogil:
    cdef pv_entry_t* pv = pv_find(vm, pm, pfn, vpn)
    if pv != NULL:
        pv_unlink(vm, pfn, pv)
        free_pv_entry(vm, pm, pv)


# ---------------------------------------------------------------- superpages
cdef inline void pvh_link(vm_reserv_t* rv, pv_entry_t* pv) noexcept nogil:
    pv.pv_prev = NULL
    pv.pv_next = rv.pvh
    if pv.pv_next != NULL:
        pv.pv_next.pv_prev = pv
    rv.pvh = pv

cdef inline void pvh_unlink(vm_reserv_t* rv, pv_entry_t* pv) noexcept nogil:
    if pv.pv_prev != NULL:
        pv.pv_prev.pv_next = pv.pv_next
    else:
        rv.pvh = pv.pv_next
    if pv.pv_next != NULL:
        pv.pv_next.pv_prev = pv.pv_prev

cdef inline vm_reserv_t* pde_reserv(vm_ctx_t* vm, pt_node_t* t) noexcept nogil:
    """The reservation a 2 MiB mapping maps (its first page's)."""
    return vm.reserv_of[pte_pfn(t.e[0])]

cdef pv_entry_t* pvh_find(vm_reserv_t* rv, pmap_t* pm, int64_t base) noexcept nogil:
    cdef pv_entry_t* pv = rv.pvh
    while pv != NULL:
        if <int64_t>pv.pv_va == base and pv_pmap(pv) == pm:
            return pv
        pv = pv.pv_next
    return NULL

cdef void pmap_promote_pde(vm_ctx_t* vm, pmap_t* pm, pt_node_t* t, int64_t vpn) noexcept nogil:
    """All 512 entries of t are valid and vpn's page's reservation is full."""
    cdef int64_t base = vpn & ~(<int64_t>VM_LEVEL_0_NPAGES - 1)
    cdef vm_reserv_t* rv = pde_reserv(vm, t)
    cdef uint64_t prot = t.e[0] & PTE_WRITE
    cdef pv_entry_t* pv
    cdef int64_t i
    if rv == NULL or rv.popcnt != VM_LEVEL_0_NPAGES:
        vm.ctr[C_SUPERPAGE_P_FAILURES] += 1
        return
    for i in range(VM_LEVEL_0_NPAGES):
        if (not pte_present(t.e[i]) or (t.e[i] & PTE_WRITE) != prot
                or pte_pfn(t.e[i]) != rv.pages[i]):
            vm.ctr[C_SUPERPAGE_P_FAILURES] += 1
            return
    pv = get_pv_entry(vm, pm)
    if pv == NULL:
        vm.ctr[C_SUPERPAGE_P_FAILURES] += 1
        return
    for i in range(VM_LEVEL_0_NPAGES):          # pmap_pv_promote_pde
        pv_remove(vm, pm, rv.pages[i], base + i)
        vm.fr.f[rv.pages[i]].mapcount += 1      # still mapped, now through the pvh
        t.e[i] |= PTE_PROMOTED
    pv.pv_va = <uint64_t>base
    pvh_link(rv, pv)
    vm.ctr[C_SUPERPAGE_PROMOTIONS] += 1
    vm.ctr[C_PTE_WRITES] += 1                   # the PDE
    vm.ctr[C_TLB_FLUSHES] += 1

cdef void pmap_remove_pde(vm_ctx_t* vm, pmap_t* pm, pt_node_t* t, int64_t base) noexcept nogil:
    """Unmap a whole 2 MiB mapping (its kept PTE page is emptied)."""
    cdef vm_reserv_t* rv = pde_reserv(vm, t)
    cdef pv_entry_t* pv = pvh_find(rv, pm, base)
    cdef int64_t i
    pvh_unlink(rv, pv)
    free_pv_entry(vm, pm, pv)
    for i in range(VM_LEVEL_0_NPAGES):
        vm.fr.f[pte_pfn(t.e[i])].mapcount -= 1
        pt_set(t, <uint64_t>(base + i), 0)
    pm.resident_count -= VM_LEVEL_0_NPAGES

cdef void pmap_demote_pde(vm_ctx_t* vm, pmap_t* pm, pt_node_t* t, int64_t vpn) noexcept nogil:
    cdef int64_t base = vpn & ~(<int64_t>VM_LEVEL_0_NPAGES - 1)
    cdef vm_reserv_t* rv = pde_reserv(vm, t)
    cdef pv_entry_t* pv = pvh_find(rv, pm, base)
    cdef pfn_t m
    cdef int64_t i
    pvh_unlink(rv, pv)                          # pmap_pv_demote_pde: it becomes page 0's
    for i in range(VM_LEVEL_0_NPAGES):
        t.e[i] &= ~(<uint64_t>PTE_PROMOTED)
        m = pte_pfn(t.e[i])
        if i > 0:
            pv = get_pv_entry(vm, pm)
        if pv == NULL:                          # no pv entry: that page loses its mapping
            vm.fr.f[m].mapcount -= 1            # (the kernel drops the whole 2 MiB one)
            pt_set(t, <uint64_t>(base + i), 0)
            pm.resident_count -= 1
            continue
        pv.pv_va = <uint64_t>(base + i)
        vm.fr.f[m].mapcount -= 1                # pv_link counts it again
        pv_link(vm, m, pv)
    vm.ctr[C_SUPERPAGE_DEMOTIONS] += 1
    vm.ctr[C_PTE_WRITES] += 1                   # the PDE (the kept PTE page is current)
    vm.ctr[C_TLB_FLUSHES] += 1

cdef void pmap_demote_reserv(vm_ctx_t* vm, vm_reserv_t* rv) noexcept nogil:
    cdef pmap_t* pm
    while rv.pvh != NULL:
        pm = pv_pmap(rv.pvh)
        pmap_demote_pde(vm, pm, pt_leaf(&pm.pt, rv.pvh.pv_va, False, NULL), <int64_t>rv.pvh.pv_va)

cdef void pmap_demote_range(vm_ctx_t* vm, pmap_t* pm, int64_t start, int64_t end) noexcept nogil:
    cdef uint64_t vpn = <uint64_t>start
    cdef pt_node_t* t
    while True:
        t = pt_next(&pm.pt, vpn, <uint64_t>end, &vpn)
        if t == NULL:
            break
        if t.e[vpn & 511] & PTE_PROMOTED:
            pmap_demote_pde(vm, pm, t, <int64_t>vpn)
        vpn = (vpn | 511) + 1

cdef int64_t pmap_superpages(pmap_t* pm) noexcept nogil:
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


cdef inline void pmap_try_promote(vm_ctx_t* vm, pmap_t* pm, pt_node_t* t, int64_t vpn,
                                  pfn_t pfn) noexcept nogil:
    """pmap_enter's test: the PTE page full, the page's reservation full."""
    cdef vm_reserv_t* rv
    if not vm.pg_ps_enabled or t.used != VM_LEVEL_0_NPAGES:
        return
    rv = vm.reserv_of[pfn]
    if rv != NULL and rv.popcnt == VM_LEVEL_0_NPAGES:
        pmap_promote_pde(vm, pm, t, vpn)


cdef int pmap_enter(vm_ctx_t* vm, pmap_t* pm, int64_t vpn, pfn_t pfn, bint writable,
                    pt_node_t* leaf) noexcept nogil:
    cdef int64_t nalloc = 0
    cdef pt_node_t* t = leaf
    cdef uint64_t old
    cdef pv_entry_t* pv
    if t == NULL:
        t = pt_leaf(&pm.pt, <uint64_t>vpn, True, &nalloc)
        if nalloc:
            vm.ctr[C_PT_PAGES_ALLOC] += nalloc
            pmap_account_tables(vm, pm)
        if t == NULL:
            return -1
    if t.e[vpn & 511] & PTE_PROMOTED:
        pmap_demote_pde(vm, pm, t, vpn)         # a 4 KiB change inside a 2 MiB mapping
    old = t.e[vpn & 511]
    vm.ctr[C_PTE_WRITES] += 1
    if pte_present(old):
        if pte_pfn(old) == pfn:                 # protection change only
            if not writable and (old & PTE_WRITE):
                vm.ctr[C_TLB_FLUSHES] += 1
            pt_set(t, <uint64_t>vpn, mk_pte(pfn, PTE_PRESENT | (PTE_WRITE if writable else 0)))
            pmap_try_promote(vm, pm, t, vpn, pfn)
            return 0
        pv_remove(vm, pm, pte_pfn(old), vpn)    # replaced by a new page (COW)
        pm.resident_count -= 1
        vm.ctr[C_TLB_FLUSHES] += 1
    pv = get_pv_entry(vm, pm)
    if pv == NULL:
        return -1
    pv.pv_va = <uint64_t>vpn
    pv_link(vm, pfn, pv)
    pt_set(t, <uint64_t>vpn, mk_pte(pfn, PTE_PRESENT | (PTE_WRITE if writable else 0)))
    pm.resident_count += 1
    pmap_try_promote(vm, pm, t, vpn, pfn)
    return 0


cdef int64_t pmap_remove(vm_ctx_t* vm, pmap_t* pm, int64_t start, int64_t end) noexcept nogil:
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
            base = <int64_t>vpn & ~(<int64_t>VM_LEVEL_0_NPAGES - 1)
            if base >= start and base + VM_LEVEL_0_NPAGES <= end:
                pmap_remove_pde(vm, pm, t, base)
                npde += 1
                vpn = <uint64_t>(base + VM_LEVEL_0_NPAGES)
                continue
            pmap_demote_pde(vm, pm, t, <int64_t>vpn)
            continue                            # now a 4 KiB entry (or gone)
        pv_remove(vm, pm, pte_pfn(pte), <int64_t>vpn)
        pt_set(t, vpn, 0)
        pm.resident_count -= 1
        n += 1
        vpn += 1
    if n or npde:
        vm.ctr[C_PTE_WRITES] += n + npde
        vm.ctr[C_PTE_ZAPS] += n + npde
        vm.ctr[C_TLB_FLUSHES] += 1
    return n + npde * VM_LEVEL_0_NPAGES


cdef int64_t pmap_protect(vm_ctx_t* vm, pmap_t* pm, int64_t start, int64_t end) noexcept nogil:
    cdef uint64_t vpn = <uint64_t>start
    cdef pt_node_t* t
    cdef int64_t n = 0, base, i
    while True:
        t = pt_next(&pm.pt, vpn, <uint64_t>end, &vpn)
        if t == NULL:
            break
        if t.e[vpn & 511] & PTE_PROMOTED:
            base = <int64_t>vpn & ~(<int64_t>VM_LEVEL_0_NPAGES - 1)
            if base >= start and base + VM_LEVEL_0_NPAGES <= end:
                if t.e[0] & PTE_WRITE:          # pmap_protect_pde: one PDE write
                    for i in range(VM_LEVEL_0_NPAGES):
                        t.e[i] &= ~(<uint64_t>PTE_WRITE)
                    n += 1
                vpn = <uint64_t>(base + VM_LEVEL_0_NPAGES)
                continue
            pmap_demote_pde(vm, pm, t, <int64_t>vpn)
        if t.e[vpn & 511] & PTE_WRITE:
            t.e[vpn & 511] &= ~(<uint64_t>PTE_WRITE)
            n += 1
        vpn += 1
    if n:
        vm.ctr[C_PTE_WRITES] += n
        vm.ctr[C_TLB_FLUSHES] += 1
    return n


cdef int64_t pmap_copy(vm_ctx_t* vm, pmap_t* dst, pmap_t* src, int64_t start, int64_t end) noexcept nogil:
    # The amd64 pmap copies the managed PTEs of the range (wired, modified and
    # accessed bits cleared, which the model does not keep); the parent's
    # private ranges were write-protected just before, so the child's copies
    # are read-only there and writable only for shared mappings.
    cdef uint64_t vpn = <uint64_t>start
    cdef pt_node_t* t
    cdef pt_node_t* d
    cdef pv_entry_t* pv
    cdef uint64_t pte
    cdef int64_t n = 0, nalloc = 0, base, i
    while True:
        t = pt_next(&src.pt, vpn, <uint64_t>end, &vpn)
        if t == NULL:
            break
        pte = t.e[vpn & 511]
        d = pt_leaf(&dst.pt, vpn, True, &nalloc)
        if d == NULL:
            break
        base = <int64_t>vpn & ~(<int64_t>VM_LEVEL_0_NPAGES - 1)
        if (pte & PTE_PROMOTED) and base >= start and base + VM_LEVEL_0_NPAGES <= end and d.used == 0:
            pv = get_pv_entry(vm, dst)          # the whole 2 MiB: one PDE, one pv entry
            if pv == NULL:
                break
            pv.pv_va = <uint64_t>base
            pvh_link(pde_reserv(vm, t), pv)
            for i in range(VM_LEVEL_0_NPAGES):
                pt_set(d, <uint64_t>(base + i), t.e[i])
                vm.fr.f[pte_pfn(t.e[i])].mapcount += 1
            dst.resident_count += VM_LEVEL_0_NPAGES
            n += 1
            vpn = <uint64_t>(base + VM_LEVEL_0_NPAGES)
            continue
        pte &= ~(<uint64_t>PTE_PROMOTED)        # part of a 2 MiB mapping: copied at 4 KiB
        if d.e[vpn & 511] == 0:
            pv = get_pv_entry(vm, dst)
            if pv == NULL:
                break
            pv.pv_va = vpn
            pv_link(vm, pte_pfn(pte), pv)
            pt_set(d, vpn, pte)
            dst.resident_count += 1
            n += 1
        vpn += 1
    if nalloc:
        vm.ctr[C_PT_PAGES_ALLOC] += nalloc
        pmap_account_tables(vm, dst)
    vm.ctr[C_PTE_WRITES] += n
    return n


cdef int64_t pmap_remove_all(vm_ctx_t* vm, pfn_t pfn) noexcept nogil:
    cdef pv_entry_t* pv
    cdef pmap_t* pm
    cdef pt_node_t* t
    cdef int64_t n = 0
    if vm.reserv_of[pfn] != NULL:
        pmap_demote_reserv(vm, vm.reserv_of[pfn])   # 2 MiB mappings of it first
    while vm.pv_head[pfn] != NULL:
        pv = vm.pv_head[pfn]
        pm = pv_pmap(pv)
        t = pt_leaf(&pm.pt, pv.pv_va, False, NULL)
        pt_set(t, pv.pv_va, 0)
        pm.resident_count -= 1
        pv_unlink(vm, pfn, pv)
        free_pv_entry(vm, pm, pv)
        n += 1
    vm.ctr[C_RMAP_VISITS] += n
    vm.ctr[C_PTE_WRITES] += n
    vm.ctr[C_PTE_ZAPS] += n
    vm.ctr[C_TLB_FLUSHES] += n
    return n


cdef int pmap_reserve_move(vm_ctx_t* vm, pmap_t* pm, int64_t start, int64_t end, int64_t delta,
                           int64_t floor, int64_t ceiling) noexcept nogil:
    """Allocate the destination tables pmap_move will fill, before anything moves;
    -1 (and the pmap as it was) when the host is out of memory."""
    cdef int64_t nalloc = 0
    if pt_reserve_move(&pm.pt, <uint64_t>start, <uint64_t>end, <uint64_t>(start + delta),
                       <uint64_t>floor, <uint64_t>ceiling, False, &nalloc) != 0:
        return -1
    vm.ctr[C_PT_PAGES_ALLOC] += nalloc
    pmap_account_tables(vm, pm)
    return 0


cdef int64_t pmap_move(vm_ctx_t* vm, pmap_t* pm, int64_t start, int64_t end, int64_t delta) noexcept nogil:
    # Collect-then-enter would need memory; the ranges do not overlap, so
    # moving one PTE at a time in address order is safe.
    cdef uint64_t vpn = <uint64_t>start
    cdef pt_node_t* t
    cdef pt_node_t* dst
    cdef uint64_t pte
    cdef pv_entry_t* pv
    cdef int64_t n = 0, nalloc = 0
    pmap_demote_range(vm, pm, start, end)       # moved at 4 KiB
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
        pv = pv_find(vm, pm, pte_pfn(pte), <int64_t>vpn)
        pv.pv_va = vpn + delta
        n += 1
        vpn += 1
    vm.ctr[C_PT_PAGES_ALLOC] += nalloc
    pmap_account_tables(vm, pm)
    if n:
        vm.ctr[C_PTE_WRITES] += 2 * n
        vm.ctr[C_PTE_ZAPS] += n
        vm.ctr[C_TLB_FLUSHES] += 1
        vm.ctr[C_MREMAP_PAGES_MOVED] += n
    return n


cdef void pmap_free_tables(vm_ctx_t* vm, pmap_t* pm, int64_t floor, int64_t ceiling) noexcept nogil:
    cdef int64_t freed = pt_free_range(&pm.pt, <uint64_t>floor, <uint64_t>ceiling)
    if freed:
        vm.ctr[C_PT_PAGES_FREE] += freed
        pmap_account_tables(vm, pm)


cdef uint64_t pmap_pte(pmap_t* pm, int64_t vpn) noexcept nogil:
    return pt_get(&pm.pt, <uint64_t>vpn)


cdef int64_t chunk_list_used(pv_chunk_t* pc) noexcept nogil:
    cdef int64_t used = 0
    while pc != NULL:
        used += NPCPV - (__builtin_popcountll(pc.pc_map[0]) + __builtin_popcountll(pc.pc_map[1])
                         + __builtin_popcountll(pc.pc_map[2]))
        pc = pc.pc_next
    return used

cdef int64_t pmap_pv_count(pmap_t* pm) noexcept nogil:
    return chunk_list_used(pm.pm_pvchunk) + chunk_list_used(pm.pm_pvfull)
