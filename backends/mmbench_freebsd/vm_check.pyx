# vm_check — the invariants of the FreeBSD design, checked one family at a time.
#
#   maps      entries ordered, non-overlapping, list links and counts right,
#             each entry's range inside its object.
#   objects   ref_count == entries + shadows referencing it; shadow_count ==
#             shadow list length == objects backed by it; no object without a
#             reference; every resident page names its object and pindex, is
#             allocated, and the trie is well formed; the machine's pctrie
#             zone has exactly the nodes of the objects' tries live.
#   pmap      every present PTE maps exactly the page the entry's chain
#             resolves to; a writable PTE only for a writable, no-longer
#             NEEDS_COPY entry whose first object holds the page; one pv entry
#             per PTE, page mapcount == its pv list length; each pv list
#             (from the page's frame_t.aux, a reservation's pvh) ends, and
#             its head and every pv_next is the handle of an entry in use;
#             the entries on all lists are as many as the entries in use
#             (none lost, none on two lists); every pv_chunk holds its
#             number in md.pvc_tab, and numbers in use == chunks.
#   reserv    each reservation on its object's list, popcnt == popmap bits
#             (never 0), each populated index names a resident page that
#             names the reservation back (frame_field == its number + 1 in
#             vm.reserv_tab; at rv.pindex + i when still in that object); no
#             other page names a reservation (as many pages with a field != 0
#             as populated indices, each a number in use); numbers in use ==
#             reservations.
#   totals    frames in use == resident pages (no page both free and owned);
#             slab caches == live structures (one vmspace per live process).

from libc.stdint cimport int64_t, uint64_t, int32_t

from mmbench.blocks.frames cimport pfn_t, NO_PFN, frame_field
from mmbench.blocks.handles cimport handles_live, handles_get
from mmbench.blocks.itree cimport itree_verify
from mmbench.blocks.pagetable cimport pt_node_t, pt_next, pte_pfn, PTE_WRITE
from mmbench_freebsd.pctrie cimport pctrie_lookup_ge, pctrie_check, pctrie_zone_check
from mmbench_freebsd.vm cimport (vm_ctx_t, vm_map_t, vm_map_entry_t, vm_object_t, MAP_ENTRY_NEEDS_COPY, OBJ_ONEMAPPING, KC_ENTRY, KC_OBJECT,
                                 KC_PAGE, KC_PCTRIE, KC_PVCHUNK, KC_PGD, KC_VMSPACE, KC_RESERV, item_pfn,
                                 vm_reserv_t, VM_LEVEL_0_NPAGES,
                                 vm_map_entry_first, vm_map_entry_last, vm_map_entry_succ, vm_map_entry_pred)
from mmbench.blocks.pmap cimport PTE_PROMOTED, pvc_link_t
from mmbench.blocks.pmap_pvchunk cimport (pmap_t, pv_entry_t, pv_chunk_t, pv_head_t, pmap_pv_count,
                                          pc_of_list, pv_find, pv_next, pv_list, pv_list_first,
                                          pv_handle_valid)
from mmbench_freebsd.vm_fault cimport vm_map_resolve
from mmbench_freebsd.vm_map cimport vm_map_lookup_entry
from mmbench_freebsd.vm_reserv cimport vm_reserv_check, vm_reserv_from_page


cdef int check_map(vm_ctx_t* vm, vm_map_t* map, const char** why) noexcept nogil:
    cdef vm_map_entry_t* e = vm_map_entry_first(map)
    cdef vm_map_entry_t* prev = NULL
    cdef int64_t n = 0
    while e != NULL:
        if vm_map_entry_pred(e) != prev:
            why[0] = "vm_map: entry list links are broken"
            return -1
        if e.link.start >= e.link.end or (prev != NULL and prev.link.end > e.link.start):
            why[0] = "vm_map: entries overlap or are out of order"
            return -1
        if e.object != NULL:
            if e.offset < 0 or e.offset + (e.link.end - e.link.start) > e.object.size:
                why[0] = "vm_map: entry maps beyond its object"
                return -1
            e.object.check_refs += 1
            if e.object.check_map == NULL:
                e.object.check_map = <void*>map
            elif e.object.check_map != <void*>map:
                e.object.check_map = <void*>-1
        prev = e
        e = vm_map_entry_succ(e)
        n += 1
    if prev != vm_map_entry_last(map) or n != map.list.nentries:
        why[0] = "vm_map: entry count or last entry is wrong"
        return -1
    if itree_verify(&map.list.tree) != 0 or map.list.tree.count != n:
        why[0] = "vm_map: the entry search tree is broken"
        return -1
    e = vm_map_entry_first(map)
    while e != NULL:
        if e.link.node.start != <uint64_t>e.link.start or e.link.node.last != <uint64_t>(e.link.end - 1):
            why[0] = "vm_map: an entry's tree key disagrees with its range"
            return -1
        e = vm_map_entry_succ(e)
    return 0


cdef int check_object(vm_ctx_t* vm, vm_object_t* obj, int64_t* pages, int64_t* reserved,
                      const char** why) noexcept nogil:
    """One object; adds its resident pages to *pages, those that name a
    reservation (frame_field != 0) to *reserved."""
    cdef vm_object_t* s = obj.shadow_head
    cdef int32_t listed = 0
    cdef uint64_t* item
    cdef pfn_t pfn
    cdef int64_t n = 0
    while s != NULL:
        if s.backing_object != obj:
            why[0] = "vm_object: shadow list holds an object backed by another"
            return -1
        listed += 1
        s = s.shadow_next
    if listed != obj.shadow_count or listed != obj.check_shadows:
        why[0] = "vm_object: shadow_count disagrees with the shadows"
        return -1
    if obj.ref_count != obj.check_refs:
        why[0] = "vm_object: ref_count != entries + shadows referencing it"
        return -1
    if obj.ref_count <= 0:
        why[0] = "vm_object: live object without references (orphan)"
        return -1
    if (obj.flags & OBJ_ONEMAPPING) and (obj.shadow_count != 0 or obj.check_map == <void*>-1):
        why[0] = "vm_object: ONEMAPPING object shadowed or mapped by several processes"
        return -1
    if obj.backing_object != NULL and obj.backing_object_offset < 0:
        why[0] = "vm_object: negative backing_object_offset"
        return -1
    if pctrie_check(&obj.rtree, why) != 0:
        return -1
    item = pctrie_lookup_ge(&obj.rtree, 0)
    while item != NULL:
        pfn = item_pfn(vm, item)
        if vm.md.fr.f[pfn].owner != <uint64_t><size_t>obj or vm.md.fr.f[pfn].refcount != 1:
            why[0] = "vm_page: resident page does not belong to its object or is free"
            return -1
        if frame_field(&vm.md.fr.f[pfn]) != 0:
            if not handles_live(&vm.reserv_tab, <int64_t>frame_field(&vm.md.fr.f[pfn]) - 1):
                why[0] = "vm_page: names a reservation number not in use (frame_field)"
                return -1
            reserved[0] += 1
        n += 1
        item = pctrie_lookup_ge(&obj.rtree, item[0] + 1)
    pages[0] += n
    return 0


cdef int check_pte(vm_ctx_t* vm, vm_map_t* map, int64_t vpn, uint64_t pte, const char** why) noexcept nogil:
    cdef vm_map_entry_t* e = vm_map_lookup_entry(map, vpn)
    cdef pfn_t pfn = pte_pfn(pte)
    cdef int depth
    cdef pv_head_t* head
    cdef pv_entry_t prev
    cdef vm_reserv_t* rv
    cdef int64_t base
    if e == NULL:
        why[0] = "pmap: PTE outside every entry"
        return -1
    if vm_map_resolve(vm, e, vpn, &depth) != pfn:
        why[0] = "pmap: PTE maps a page other than the one the object chain holds"
        return -1
    if (pte & PTE_WRITE) and (not e.writable or (e.eflags & MAP_ENTRY_NEEDS_COPY)
                              or vm.md.fr.f[pfn].owner != <uint64_t><size_t>e.object):
        why[0] = "pmap: writable PTE to a page the entry may not write"
        return -1
    if pte & PTE_PROMOTED:                  # under a 2 MiB mapping: the pvh holds its pv
        rv = vm_reserv_from_page(vm, pfn)
        base = vpn & ~(<int64_t>VM_LEVEL_0_NPAGES - 1)
        if rv == NULL or rv.pages[vpn - base] != pfn:
            why[0] = "pmap: 2 MiB mapping of pages not consecutive in one reservation"
            return -1
        head = &rv.pvh
        vpn = base
    else:
        head = pv_list(&vm.md, pfn)
    if pv_find(&vm.md, head, &map.pmap, vpn, &prev) == 0:
        why[0] = "pmap: PTE without its pv entry"
        return -1
    return 0


cdef int check_chunks(vm_ctx_t* vm, pvc_link_t* l, pmap_t* pm, bint full,
                      const char** why) noexcept nogil:
    cdef pv_chunk_t* pc
    while l != NULL:
        pc = pc_of_list(l)
        if <pmap_t*>pc.pc_pmap != pm:
            why[0] = "pmap: pv_chunk of another pmap on the list"
            return -1
        if (not handles_live(&vm.md.pvc_tab, pc.pc_num)
                or handles_get(&vm.md.pvc_tab, pc.pc_num) != <void*>pc):
            why[0] = "pmap: pv_chunk without its number in pvc_tab (pc_num)"
            return -1
        if ((pc.pc_map[0] | pc.pc_map[1] | pc.pc_map[2]) == 0) != full:
            why[0] = "pmap: pv_chunk on the wrong list (full / with room)"
            return -1
        if l.next != NULL and l.next.prev != l:
            why[0] = "pmap: a pmap's pv_chunk list is badly linked"
            return -1
        l = l.next
    return 0


cdef int check_pmap(vm_ctx_t* vm, vm_map_t* map, int64_t* ptes, int64_t* pvs,
                    const char** why) noexcept nogil:
    cdef uint64_t vpn = 0
    cdef pt_node_t* t
    cdef int64_t n = 0, npromoted = 0
    while True:
        t = pt_next(&map.pmap.hdr.pt, vpn, <uint64_t>1 << 36, &vpn)
        if t == NULL:
            break
        if check_pte(vm, map, <int64_t>vpn, t.e[vpn & 511], why) != 0:
            return -1
        if t.e[vpn & 511] & PTE_PROMOTED:
            npromoted += 1
            if t.used != VM_LEVEL_0_NPAGES or (t.e[0] & PTE_WRITE) != (t.e[vpn & 511] & PTE_WRITE):
                why[0] = "pmap: 2 MiB mapping over a partial PTE page or mixed protection"
                return -1
        n += 1
        vpn += 1
    if npromoted % VM_LEVEL_0_NPAGES != 0:
        why[0] = "pmap: promoted PTEs not in whole 2 MiB blocks"
        return -1
    if (n != map.pmap.hdr.resident_count
            or n - npromoted + npromoted // VM_LEVEL_0_NPAGES != pmap_pv_count(&map.pmap)):
        why[0] = "pmap: resident count or pv entries disagree with the PTEs"
        return -1
    if check_chunks(vm, map.pmap.pm_pvchunk, &map.pmap, False, why) != 0:
        return -1
    if check_chunks(vm, map.pmap.pm_pvfull, &map.pmap, True, why) != 0:
        return -1
    ptes[0] += n
    pvs[0] += pmap_pv_count(&map.pmap)
    return 0


cdef int64_t pv_list_length(vm_ctx_t* vm, pv_head_t* head, int64_t pvs,
                            const char** why) noexcept nogil:
    """The entries on a pv list, -1 (why set) when it names an entry not in use
    (a stale handle) or is longer than the pvs entries in use (a cycle)."""
    cdef pv_entry_t pv = pv_list_first(head)
    cdef int64_t n = 0
    while pv != 0:
        if not pv_handle_valid(&vm.md, pv):
            why[0] = "pmap: pv list names no pv entry in use (a stale handle)"
            return -1
        n += 1
        if n > pvs:
            why[0] = "pmap: pv list does not end (longer than the pv entries in use)"
            return -1
        pv = pv_next(&vm.md, pv)
    return n

cdef int check_pv_lists(vm_ctx_t* vm, int64_t pvs, int64_t* mapped, const char** why) noexcept nogil:
    """Each page's mapcount is its pv entries (its own list, and its
    reservation's pvh); the lists hold every one of the pvs entries in use once."""
    cdef vm_object_t* obj = vm.objects
    cdef uint64_t* item
    cdef pfn_t pfn
    cdef vm_reserv_t* rv
    cdef int64_t n, k, onlist = 0
    while obj != NULL:
        item = pctrie_lookup_ge(&obj.rtree, 0)
        while item != NULL:
            pfn = item_pfn(vm, item)
            n = pv_list_length(vm, pv_list(&vm.md, pfn), pvs, why)
            if n < 0:
                return -1
            onlist += n
            rv = vm_reserv_from_page(vm, pfn)
            if rv != NULL:                  # each 2 MiB mapping of its reservation maps it
                k = pv_list_length(vm, &rv.pvh, pvs, why)
                if k < 0:
                    return -1
                n += k
            if n != vm.md.fr.f[pfn].mapcount:
                why[0] = "vm_page: mapcount != pv list length"
                return -1
            mapped[0] += n
            item = pctrie_lookup_ge(&obj.rtree, item[0] + 1)
        rv = obj.rvq
        while rv != NULL:                   # each pvh once
            k = pv_list_length(vm, &rv.pvh, pvs, why)
            if k < 0:
                return -1
            onlist += k
            rv = rv.objq_next
        obj = obj.all_next
    if onlist != pvs:
        why[0] = "pmap: pv entries on the pv lists != pv entries in use"
        return -1
    return 0


cdef int64_t list_length(pvc_link_t* l) noexcept nogil:
    cdef int64_t n = 0
    while l != NULL:
        n += 1
        l = l.next
    return n

cdef int64_t count_chunks(vm_map_t* map) noexcept nogil:
    return list_length(map.pmap.pm_pvchunk) + list_length(map.pmap.pm_pvfull)


cdef int check_totals(vm_ctx_t* vm, void** procs, int64_t nprocs, int64_t entries, int64_t pages,
                      int64_t nobj, const char** why) noexcept nogil:
    cdef int64_t nodes = 0, rvnodes = 0, chunks = 0, nmaps = 0
    cdef int64_t tables[4]
    cdef vm_object_t* obj = vm.objects
    cdef vm_map_t* map
    cdef int64_t pid
    cdef int lvl
    tables[0] = tables[1] = tables[2] = tables[3] = 0
    while obj != NULL:
        nodes += obj.rtree.nnodes
        rvnodes += obj.rvindex.nnodes
        obj = obj.all_next
    if pctrie_zone_check(&vm.pctrie_zone, nodes + rvnodes, why) != 0:
        return -1
    for pid in range(1, nprocs):
        map = <vm_map_t*>procs[pid]
        if map != NULL:
            nmaps += 1
            chunks += count_chunks(map)
            for lvl in range(4):
                tables[lvl] += map.pmap.hdr.pt.nr[lvl]
    cdef int64_t used = 0
    for lvl in range(vm.md.fr.nr_nodes):     # host pages and fictitious (device) pages
        used += vm.md.fr.node_used[lvl]
    if used != pages:
        why[0] = "frames in use != resident pages (a page is both free and owned, or lost)"
        return -1
    if (vm.md.kc[KC_PAGE].active != pages or vm.md.kc[KC_OBJECT].active != nobj
            or vm.md.kc[KC_ENTRY].active != entries or vm.md.kc[KC_PCTRIE].active != nodes
            or vm.md.kc[KC_PVCHUNK].active != chunks or vm.md.kc[KC_VMSPACE].active != nmaps):
        why[0] = "slab accounting disagrees with the live structures"
        return -1
    if vm.md.pvc_tab.count != chunks:
        why[0] = "pv_chunk numbers in use != pv_chunks"
        return -1
    for lvl in range(4):
        if vm.md.kc[KC_PGD + lvl].active != tables[lvl]:
            why[0] = "page-table accounting disagrees with the page tables"
            return -1
    return 0


cdef int vm_check_all(vm_ctx_t* vm, void** procs, int64_t nprocs, const char** why) noexcept nogil:
    cdef vm_object_t* obj = vm.objects
    cdef vm_map_t* map
    cdef int64_t pid, entries = 0, pages = 0, nobj = 0, ptes = 0, pvs = 0, mapped = 0, nrv = 0
    cdef int64_t npop = 0, reserved = 0
    while obj != NULL:                      # reset the scratch counters
        obj.check_refs = 0
        obj.check_shadows = 0
        obj.check_map = NULL
        obj = obj.all_next
    obj = vm.objects
    while obj != NULL:
        if obj.backing_object != NULL:
            obj.backing_object.check_refs += 1
            obj.backing_object.check_shadows += 1
        obj = obj.all_next
    for pid in range(1, nprocs):
        map = <vm_map_t*>procs[pid]
        if map != NULL:
            if check_map(vm, map, why) != 0:
                return -1
            entries += map.list.nentries
    obj = vm.objects
    while obj != NULL:
        if (check_object(vm, obj, &pages, &reserved, why) != 0
                or vm_reserv_check(vm, obj, &nrv, &npop, why) != 0):
            return -1
        nobj += 1
        obj = obj.all_next
    if nrv != vm.md.kc[KC_RESERV].active or nrv != vm.reserv_tab.count:
        why[0] = "vm_reserv cache or numbers in use != reservations on object lists"
        return -1
    if reserved != npop:
        why[0] = "vm_reserv: a page names a reservation that does not hold it (aux)"
        return -1
    if nobj != vm.nobjects:
        why[0] = "object list length != object count"
        return -1
    for pid in range(1, nprocs):
        map = <vm_map_t*>procs[pid]
        if map != NULL and check_pmap(vm, map, &ptes, &pvs, why) != 0:
            return -1
    if check_pv_lists(vm, pvs, &mapped, why) != 0:
        return -1
    if mapped != ptes:
        why[0] = "pv entries on pages != present PTEs"
        return -1
    return check_totals(vm, procs, nprocs, entries, pages, nobj, why)
