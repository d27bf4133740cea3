# check — the invariants of the UVM design, one family at a time.
#
#   maps     entries ordered, non-overlapping, links, tree and counts right;
#            private entries are COPYONWRITE, shared ones have an amap; an
#            aref's range lies inside its amap.
#   amaps    am_ref == entries referencing the amap; am_ppref[X] == entries
#            covering slot X (without am_ppref every reference covers all
#            slots); a slot nobody covers holds no anon; a private entry that
#            is no longer NEEDSCOPY is the only entry covering its slots;
#            AMAP_SHARED only while am_ref > 1;
#            am_slots[am_bckptr[X]] == X for used slots, am_nused == anons held.
#   anons    an_ref == amap slots holding the anon; its page is allocated.
#   pmap     every present PTE maps the anon page its entry's slot holds; a
#            writable PTE only for a writable, non-NEEDSCOPY entry and an
#            anon with an_ref == 1; page mapcount == PTEs mapping it;
#            mappings the pv layer tracks (embedded + pv_entry) == present PTEs;
#            every pv record of a page names a PTE that maps the page.
#   totals   frames in use == live anons (one page each); caches == live structs.
#
# An anon is named by its page (uvm.pxd), so what check counts per anon
# (slots holding it, PTEs mapping it) goes into two scratch arrays indexed by
# frame number, allocated for the check only.

from libc.stdlib cimport calloc, free
from libc.stdint cimport int64_t, uint64_t, int32_t

from mmbench.blocks.itree cimport itree_verify
from mmbench.blocks.frames cimport pfn_t
from mmbench.blocks.pagetable cimport pt_node_t, pt_next, pte_pfn, PTE_WRITE
from mmbench.blocks.pmap_netbsd cimport pmap_pv_count, pmap_check_page
from mmbench_uvm.uvm cimport (uvm_ctx_t, vm_map_t, vm_map_entry_t, vm_amap_t, vm_anon_t, NO_ANON,
                              an_page, an_ref,
                              UVM_ET_COPYONWRITE, UVM_ET_NEEDSCOPY, MAP_INHERIT_COPY, AMAP_SHARED,
                              AMAP_SLOT_BYTES, AMAP_PPREF_BYTES, UK_ENTRY, UK_AMAP, UK_ANON,
                              UK_PAGE, UK_SLOTS, entry_slot,
                              map_first, map_last, entry_next, entry_prev)
from mmbench_uvm.map cimport uvm_map_lookup_entry


cdef int check_map(vm_map_t* map, const char** why) noexcept nogil:
    cdef vm_map_entry_t* e = map_first(map)
    cdef vm_map_entry_t* prev = NULL
    cdef vm_amap_t* amap
    cdef int64_t n = 0
    while e != NULL:
        if entry_prev(e) != prev or e.link.start >= e.link.end or (prev != NULL and prev.link.end > e.link.start):
            why[0] = "vm_map: entries overlap, are out of order or badly linked"
            return -1
        if <int64_t>e.link.node.start != e.link.start or <int64_t>e.link.node.last != e.link.end - 1:
            why[0] = "vm_map: tree keys differ from the entry range"
            return -1
        if (e.inheritance == MAP_INHERIT_COPY) != ((e.etype & UVM_ET_COPYONWRITE) != 0):
            why[0] = "vm_map_entry: COPYONWRITE must mark exactly the private entries"
            return -1
        amap = e.aref.ar_amap
        if e.inheritance != MAP_INHERIT_COPY and (amap == NULL or e.etype & UVM_ET_NEEDSCOPY):
            why[0] = "vm_map_entry: a shared entry needs its amap and is never NEEDSCOPY"
            return -1
        if amap == NULL and not (e.etype & UVM_ET_NEEDSCOPY):
            why[0] = "vm_map_entry: an entry without amap must be NEEDSCOPY"
            return -1
        if amap != NULL and (e.aref.ar_pageoff < 0 or e.aref.ar_pageoff + (e.link.end - e.link.start) > amap.am_nslot):
            why[0] = "vm_aref: the entry's slots lie outside its amap"
            return -1
        prev = e
        n += 1
        e = entry_next(e)
    if prev != map_last(map) or n != map.list.nentries or map.list.tree.count != n or itree_verify(&map.list.tree) != 0:
        why[0] = "vm_map: list end, entry count or search tree wrong"
        return -1
    return 0


cdef void count_entry_refs(vm_map_t* map) noexcept nogil:
    """check_refs / check_cover of each amap += this map's references."""
    cdef vm_map_entry_t* e = map_first(map)
    cdef int64_t s
    while e != NULL:
        if e.aref.ar_amap != NULL:
            e.aref.ar_amap.check_refs += 1
            for s in range(e.aref.ar_pageoff, e.aref.ar_pageoff + (e.link.end - e.link.start)):
                e.aref.ar_amap.check_cover[s] += 1
        e = entry_next(e)

cdef int check_exclusive(vm_map_t* map, const char** why) noexcept nogil:
    """A private entry past its first fault owns its slots alone."""
    cdef vm_map_entry_t* e = map_first(map)
    cdef int64_t s
    while e != NULL:
        if e.aref.ar_amap != NULL and e.inheritance == MAP_INHERIT_COPY \
                and not (e.etype & UVM_ET_NEEDSCOPY):
            for s in range(e.aref.ar_pageoff, e.aref.ar_pageoff + (e.link.end - e.link.start)):
                if e.aref.ar_amap.check_cover[s] != 1:
                    why[0] = "vm_amap: a private non-NEEDSCOPY entry shares its slots"
                    return -1
        e = entry_next(e)
    return 0

cdef int check_slots(vm_amap_t* amap, const char** why) noexcept nogil:
    cdef int32_t i, x, nused = 0
    for x in range(amap.am_nslot):
        if amap.am_anon[x] != NO_ANON:
            nused += 1
            if amap.am_bckptr[x] < 0 or amap.am_bckptr[x] >= amap.am_nused \
                    or amap.am_slots[amap.am_bckptr[x]] != x:
                why[0] = "vm_amap: am_slots[am_bckptr[X]] != X for a used slot"
                return -1
    if nused != amap.am_nused:
        why[0] = "vm_amap: am_nused differs from the anons held"
        return -1
    for i in range(amap.am_nused):
        if amap.am_anon[amap.am_slots[i]] == NO_ANON:
            why[0] = "vm_amap: am_slots lists an empty slot"
            return -1
    return 0

cdef int check_refs(vm_amap_t* amap, const char** why) noexcept nogil:
    cdef int32_t x
    if amap.am_ref < 1 or amap.am_ref != amap.check_refs:
        why[0] = "vm_amap: am_ref differs from the entries referencing it"
        return -1
    if (amap.am_flags & AMAP_SHARED) and amap.am_ref < 2:
        why[0] = "vm_amap: AMAP_SHARED with a single reference"
        return -1
    for x in range(amap.am_nslot):
        if amap.am_ppref != NULL and amap.am_ppref[x] != amap.check_cover[x]:
            why[0] = "vm_amap: am_ppref differs from the entries covering the slot"
            return -1
        if amap.am_ppref == NULL and amap.check_cover[x] != amap.am_ref:
            why[0] = "vm_amap: a partial reference without am_ppref"
            return -1
        if amap.check_cover[x] == 0 and amap.am_anon[x] != NO_ANON:
            why[0] = "vm_amap: an anon in a slot no entry covers"
            return -1
    return 0

cdef int check_anons(uvm_ctx_t* u, int32_t* refs, int64_t nframes, const char** why) noexcept nogil:
    """refs[pg]: scratch, zeroed (slots holding the anon of page pg)."""
    cdef vm_amap_t* amap
    cdef pfn_t pg
    cdef int32_t i
    cdef int64_t nanons = 0
    cdef int phase
    for phase in range(2):
        amap = u.amaps
        while amap != NULL:
            for i in range(amap.am_nused):
                pg = an_page(amap.am_anon[amap.am_slots[i]])
                if <int64_t>pg >= nframes or u.md.fr.f[pg].refcount != 1:
                    why[0] = "vm_anon: its page is free"
                    return -1
                if phase == 0:
                    refs[pg] += 1
                elif refs[pg] >= 0:
                    if refs[pg] != an_ref(u, amap.am_anon[amap.am_slots[i]])[0]:
                        why[0] = "vm_anon: an_ref differs from the amap slots holding it"
                        return -1
                    refs[pg] = -1                     # counted once
                    nanons += 1
            amap = amap.am_next
    if nanons != u.md.kc[UK_ANON].active or nanons != u.md.kc[UK_PAGE].active:
        why[0] = "vm_anon: live anons differ from those reachable from amaps (leak)"
        return -1
    if nanons != u.md.fr.node_used[0]:
        why[0] = "frames: pages in use differ from live anons"
        return -1
    return 0


cdef int check_pmap(uvm_ctx_t* u, vm_map_t* map, int32_t* maps, const char** why) noexcept nogil:
    """maps[pg] += the PTEs of map mapping page pg."""
    cdef uint64_t vpn = 0
    cdef pt_node_t* t
    cdef uint64_t pte
    cdef vm_map_entry_t* e
    cdef vm_anon_t anon
    cdef int64_t n = 0
    while True:
        t = pt_next(&map.pmap.hdr.pt, vpn, <uint64_t>1 << 36, &vpn)
        if t == NULL:
            break
        pte = t.e[vpn & 511]
        e = uvm_map_lookup_entry(map, <int64_t>vpn)
        anon = NO_ANON
        if e != NULL and e.aref.ar_amap != NULL:
            anon = e.aref.ar_amap.am_anon[entry_slot(e, <int64_t>vpn)]
        if anon == NO_ANON or an_page(anon) != pte_pfn(pte):
            why[0] = "pmap: a PTE maps a page other than its slot's anon page"
            return -1
        if (pte & PTE_WRITE) and (not e.writable or e.etype & UVM_ET_NEEDSCOPY or an_ref(u, anon)[0] != 1):
            why[0] = "pmap: a writable PTE for a read-only, NEEDSCOPY or shared anon"
            return -1
        maps[an_page(anon)] += 1
        n += 1
        vpn += 1
    if n != map.pmap.hdr.resident_count or pmap_pv_count(&map.pmap) != n:
        why[0] = "pmap: present PTEs, resident count and tracked pv mappings disagree"
        return -1
    return 0

cdef int check_mapcounts(uvm_ctx_t* u, int32_t* maps, const char** why) noexcept nogil:
    """maps[pg]: the PTEs found mapping page pg (check_pmap)."""
    cdef vm_amap_t* amap = u.amaps
    cdef pfn_t pg
    cdef int32_t i
    while amap != NULL:
        for i in range(amap.am_nused):
            pg = an_page(amap.am_anon[amap.am_slots[i]])
            if maps[pg] != u.md.fr.f[pg].mapcount:
                why[0] = "vm_page: mapcount differs from the PTEs mapping it"
                return -1
            elif pmap_check_page(&u.md, pg, why) != 0:
                return -1
        amap = amap.am_next
    return 0


cdef int check_totals(uvm_ctx_t* u, int64_t nentries, const char** why) noexcept nogil:
    cdef vm_amap_t* amap = u.amaps
    cdef int64_t n = 0, nbytes = 0
    while amap != NULL:
        n += 1
        nbytes += amap.am_maxslot * (AMAP_SLOT_BYTES + (AMAP_PPREF_BYTES if amap.am_ppref != NULL else 0))
        amap = amap.am_next
    if n != u.namaps or n != u.md.kc[UK_AMAP].active or nbytes != u.md.kc[UK_SLOTS].active:
        why[0] = "caches: vm_amap / amap_slots differ from the live amaps"
        return -1
    if nentries != u.md.kc[UK_ENTRY].active:
        why[0] = "caches: vm_map_entry differs from the live entries"
        return -1
    return 0


cdef int check_amaps(uvm_ctx_t* u, void** procs, int64_t nprocs, const char** why) noexcept nogil:
    cdef vm_amap_t* amap = u.amaps
    cdef int64_t pid
    cdef int st = 0
    while amap != NULL:
        amap.check_refs = 0
        amap.check_cover = <int32_t*>calloc(amap.am_nslot + 1, sizeof(int32_t))
        amap = amap.am_next
    for pid in range(1, nprocs):
        if procs[pid] != NULL:
            count_entry_refs(<vm_map_t*>procs[pid])
    amap = u.amaps
    while st == 0 and amap != NULL:
        st = check_slots(amap, why)
        if st == 0:
            st = check_refs(amap, why)
        amap = amap.am_next
    for pid in range(1, nprocs):
        if st == 0 and procs[pid] != NULL:
            st = check_exclusive(<vm_map_t*>procs[pid], why)
    amap = u.amaps
    while amap != NULL:
        free(amap.check_cover)
        amap.check_cover = NULL
        amap = amap.am_next
    return st


cdef int check_anons_and_pmaps(uvm_ctx_t* u, void** procs, int64_t nprocs, int32_t* refs,
                               int32_t* maps, int64_t nframes, const char** why) noexcept nogil:
    cdef int64_t pid
    if check_anons(u, refs, nframes, why) != 0:
        return -1
    for pid in range(1, nprocs):
        if procs[pid] != NULL and check_pmap(u, <vm_map_t*>procs[pid], maps, why) != 0:
            return -1
    return check_mapcounts(u, maps, why)

cdef int uvm_check_all(uvm_ctx_t* u, void** procs, int64_t nprocs, const char** why) noexcept nogil:
    cdef int64_t pid, nentries = 0
    cdef int64_t nframes = u.md.fr.node_base[0] + u.md.fr.node_bump[0]   # pfns used so far
    cdef int32_t* refs
    cdef int st
    for pid in range(1, nprocs):
        if procs[pid] != NULL:
            if check_map(<vm_map_t*>procs[pid], why) != 0:
                return -1
            nentries += (<vm_map_t*>procs[pid]).list.nentries
    if check_amaps(u, procs, nprocs, why) != 0:
        return -1
    refs = <int32_t*>calloc(2 * nframes + 1, sizeof(int32_t))   # refs, then maps
    if refs == NULL:
        why[0] = "check: no memory for its scratch arrays"
        return -1
    st = check_anons_and_pmaps(u, procs, nprocs, refs, refs + nframes, nframes, why)
    free(refs)
    if st != 0:
        return -1
    return check_totals(u, nentries, why)
