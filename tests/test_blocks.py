"""The building blocks against plain Python models (through mmbench.blocks.bench).

Each test drives one block with a random operation sequence and, after every
operation, compares it with a dict/set model and runs the block's verify()
(parent links, counts, ordering, accounting).  Node and table counts are
compared with their exact expected values, derived from the model alone.
"""
import math
import os

import pytest
from hypothesis import given, settings, strategies as st

from mmbench import errors
from mmbench.blocks import bench

U64 = (1 << 64) - 1
VPN_LIMIT = 1 << 36
SETTINGS = settings(max_examples=int(os.environ.get("MMBENCH_BLOCKS_EXAMPLES", 60)), deadline=None)


# ---------------------------------------------------------------------- xarray
def xa_expected_nodes(keys):
    """Nodes of a minimal-height 64-ary tree holding `keys` (one node for a tree of index 0)."""
    if not keys:
        return 0
    height = 1
    while max(keys) >> (6 * height):
        height += 1
    return sum(len({k >> (6 * (lvl + 1)) for k in keys}) for lvl in range(height))


xa_index = st.one_of(st.integers(0, 300), st.integers(0, 1 << 20),
                     st.integers(U64 - 300, U64), st.integers(0, U64))
xa_ops = st.lists(st.one_of(
    st.tuples(st.just("store"), xa_index, st.integers(1, U64)),
    st.tuples(st.just("erase"), xa_index),
    st.tuples(st.just("store0"), xa_index),
    st.tuples(st.just("find"), xa_index, xa_index),
), max_size=60)


@SETTINGS
@given(xa_ops)
def test_xarray_matches_dict(ops):
    xa, model = bench.XArray(), {}
    for op in ops:
        if op[0] == "store":
            xa.store(op[1], op[2])
            model[op[1]] = op[2]
        elif op[0] == "store0":          # storing 0 erases
            xa.store(op[1], 0)
            model.pop(op[1], None)
        elif op[0] == "erase":
            assert xa.erase(op[1]) == model.pop(op[1], 0)
        else:
            lo, hi = op[1], op[2]
            hits = [k for k in model if lo <= k <= hi]
            want = (min(hits), model[min(hits)]) if hits else None
            assert xa.find(lo, hi) == want
        assert xa.verify() == []
        assert xa.nr_entries == len(model)
        assert xa.nr_nodes == xa_expected_nodes(list(model))
    for k, v in model.items():
        assert xa.load(k) == v
    for k in list(model):
        xa.erase(k)
    assert (xa.nr_nodes, xa.nr_entries, xa.height) == (0, 0, 0)
    assert xa.node_allocs == xa.node_frees


def test_xarray_grows_and_shrinks():
    xa = bench.XArray()
    xa.store(0, 1)
    assert (xa.height, xa.nr_nodes) == (1, 1)
    xa.store(64, 2)                      # second level: root + two leaves
    assert (xa.height, xa.nr_nodes) == (2, 3)
    xa.store(U64, 3)                     # full height: 64 bits / 6 per level
    assert xa.height == math.ceil(64 / 6)
    xa.erase(U64)
    assert (xa.height, xa.nr_nodes) == (2, 3)
    xa.erase(64)
    assert (xa.height, xa.nr_nodes) == (1, 1)
    assert xa.find(1, U64) is None and xa.find(0, 0) == (0, 1)
    assert xa.verify() == []


def test_xarray_slot_stays_while_its_entry_lives():
    """A slot's address holds while its entry lives, through growth and shrinking of
    the tree around it (the gmem design keeps its gm_mappings in the slots)."""
    xa = bench.XArray()
    assert xa.slot(5) == 0 and xa.find_slot(0, U64) is None
    xa.store(5, 1)
    at = xa.slot(5)
    assert at != 0 and xa.find_slot(0, U64) == (5, at)
    xa.edit(5, 7)
    assert xa.load(5) == 7 and xa.nr_entries == 1
    for k in (64, 1 << 20, U64, 6):      # new leaves, new roots above, a neighbour
        xa.store(k, 2)
        assert xa.slot(5) == at
    for k in (U64, 1 << 20, 64, 6):      # and back: the root shrinks down to 5's leaf
        xa.erase(k)
        assert xa.slot(5) == at
    assert (xa.height, xa.nr_nodes) == (1, 1)
    assert xa.slot(6) == at + 8 and xa.load(6) == 0        # an empty slot of a live leaf
    with pytest.raises(errors.InvalidArgument):
        xa.edit(6, 1)
    assert xa.verify() == []


def test_xarray_rejects_bad_arguments():
    xa = bench.XArray()
    for bad in (-1, 1 << 64, True, 1.5, "3", None):
        with pytest.raises(errors.InvalidArgument):
            xa.store(bad, 1)
        with pytest.raises(errors.InvalidArgument):
            xa.load(bad)


# ------------------------------------------------------------------- pagetable
class PtModel:
    """Which tables exist, derived from the entries and the free_range calls."""

    SHIFT = {1: 27, 2: 18, 3: 9}         # a level-L table covers vpn >> SHIFT[L]

    def __init__(self):
        self.pte = {}
        self.tables = {1: set(), 2: set(), 3: set()}

    def set(self, vpn, pte):
        if pte:
            for lvl, s in self.SHIFT.items():
                self.tables[lvl].add(vpn >> s)
            self.pte[vpn] = pte
        elif (vpn >> 9) in self.tables[3]:
            self.pte.pop(vpn, None)

    def free_range(self, start, end):
        freed = 0
        for lvl in (3, 2, 1):
            s = self.SHIFT[lvl]
            for p in sorted(self.tables[lvl]):
                lo, hi = p << s, (p + 1) << s
                if not (start <= lo and hi <= end):
                    continue
                if lvl == 3:
                    empty = not any(lo <= v < hi for v in self.pte)
                else:
                    cs = self.SHIFT[lvl + 1]
                    empty = not any((c << cs) >= lo and (c << cs) < hi for c in self.tables[lvl + 1])
                if empty:
                    self.tables[lvl].discard(p)
                    freed += 1
        return freed

    def nr(self):
        return (1, len(self.tables[1]), len(self.tables[2]), len(self.tables[3]))


pt_vpn = st.one_of(st.integers(0, 2000), st.integers(0, 1 << 20),
                   st.integers(VPN_LIMIT - 2000, VPN_LIMIT - 1), st.integers(0, VPN_LIMIT - 1))
pt_ops = st.lists(st.one_of(
    st.tuples(st.just("set"), pt_vpn, st.integers(1, U64)),
    st.tuples(st.just("clear"), pt_vpn),
    st.tuples(st.just("next"), pt_vpn, pt_vpn),
    st.tuples(st.just("free"), pt_vpn, pt_vpn),
    st.tuples(st.just("free_all")),
), max_size=50)


@SETTINGS
@given(pt_ops)
def test_pagetable_matches_model(ops):
    pt, model = bench.PageTable(), PtModel()
    for op in ops:
        if op[0] == "set":
            pt.set(op[1], op[2])
            model.set(op[1], op[2])
        elif op[0] == "clear":
            pt.set(op[1], 0)
            model.set(op[1], 0)
        elif op[0] == "next":
            lo, hi = sorted(op[1:])
            hits = [v for v in model.pte if lo <= v < hi]
            assert pt.next(lo, hi) == (min(hits) if hits else None)
        elif op[0] == "free":
            lo, hi = sorted(op[1:])
            assert pt.free_range(lo, hi) == model.free_range(lo, hi)
        else:
            for v in list(model.pte):
                pt.set(v, 0)
                model.set(v, 0)
            assert pt.free_range(0, VPN_LIMIT) == model.free_range(0, VPN_LIMIT)
            assert pt.nr == (1, 0, 0, 0)
        assert pt.verify() == []
        assert pt.nr == model.nr()
        assert pt.bytes == 4096 * sum(pt.nr)
        assert pt.vmpte_bytes == 4096 * sum(pt.nr[1:])
    for v, e in model.pte.items():
        assert pt.get(v) == e


def test_pagetable_counts_tables_per_level():
    pt = bench.PageTable()
    assert pt.set(0, 1) == 3                 # PUD, PMD and PTE table allocated
    assert pt.set(511, 1) == 0               # same leaf
    assert pt.set(512, 1) == 1               # a second PTE table under the same PMD
    assert pt.set(1 << 27, 1) == 3           # another PGD slot: a whole new path
    assert pt.nr == (1, 2, 2, 3)
    assert pt.next(1, 1 << 36) == 511
    assert pt.next(513, 1 << 36) == 1 << 27
    pt.set(0, 0)
    assert pt.free_range(0, 512) == 0        # 511 still there
    pt.set(511, 0)
    assert pt.free_range(0, 512) == 1        # the PTE table of [0, 512)
    assert pt.free_range(0, 1 << 27) == 0    # the PMD still holds the table of 512
    assert pt.nr == (1, 2, 2, 2)
    assert pt.verify() == []


def test_pagetable_rejects_bad_arguments():
    pt = bench.PageTable()
    for bad in (-1, VPN_LIMIT, True, None):
        with pytest.raises(errors.InvalidArgument):
            pt.set(bad, 1)
    with pytest.raises(errors.InvalidArgument):
        pt.next(0, VPN_LIMIT + 1)


# ----------------------------------------------------------------------- itree
bound = st.integers(0, 200) | st.integers(U64 - 50, U64)
it_ops = st.lists(st.one_of(
    st.tuples(st.just("insert"), st.integers(0, 63), bound, st.integers(0, 40)),
    st.tuples(st.just("remove"), st.integers(0, 63)),
    st.tuples(st.just("update"), st.integers(0, 63), bound, st.integers(0, 40)),
    st.tuples(st.just("query"), bound, bound),
), max_size=80)


@SETTINGS
@given(it_ops)
def test_itree_stabbing_matches_brute_force(ops):
    t, live = bench.ITree(64), {}
    for op in ops:
        if op[0] == "insert":
            _, i, start, w = op
            last = min(start + w, U64)
            if i in live:
                with pytest.raises(errors.InvalidArgument):
                    t.insert(i, start, last)
            else:
                t.insert(i, start, last)
                live[i] = (start, last)
        elif op[0] == "remove":
            if op[1] in live:
                t.remove(op[1])
                del live[op[1]]
            else:
                with pytest.raises(errors.InvalidArgument):
                    t.remove(op[1])
        elif op[0] == "update":
            _, i, start, w = op
            last = min(start + w, U64)
            keeps_order = i in live and not any(
                j != i and min(start, live[i][0]) <= s <= max(start, live[i][0]) for j, (s, _) in live.items())
            if keeps_order:
                t.update(i, start, last)
                live[i] = (start, last)
            else:
                with pytest.raises(errors.InvalidArgument):
                    t.update(i, start, last)
        else:
            lo, hi = sorted(op[1:])
            got = t.query(lo, hi)
            want = {i for i, (s, l) in live.items() if s <= hi and lo <= l}
            assert {i for _, _, i in got} == want and len(got) == len(want)
            assert [s for s, _, _ in got] == sorted(s for s, _, _ in got)
            assert all(live[i] == (s, l) for s, l, i in got)
        assert t.verify() == []
        assert t.count == len(live)


vs_ops = st.lists(st.one_of(
    st.tuples(st.just("insert"), st.integers(0, 31), st.integers(0, 120), st.integers(1, 12)),
    st.tuples(st.just("remove"), st.integers(0, 40), st.integers(0, 3)),
    st.tuples(st.just("find"), st.integers(0, 140)),
    st.tuples(st.just("range"), st.integers(0, 140), st.integers(0, 20)),
), max_size=80)


@SETTINGS
@given(vs_ops)
def test_vmaset_matches_sorted_list(ops):
    """blocks/vmaset (the VMA array linux and shmem share) against a sorted list."""
    s, model = bench.VmaSet(32), []                  # model: sorted [(start, end, id)]
    for op in ops:
        if op[0] == "insert":
            _, i, start, n = op
            clash = any(i == j or (a < start + n and start < b) for a, b, j in model)
            if clash:
                with pytest.raises(errors.InvalidArgument):
                    s.insert(i, start, start + n)
            else:
                s.insert(i, start, start + n)
                model = sorted(model + [(start, start + n, i)])
        elif op[0] == "remove":
            _, at, n = op
            if at + n > len(model):
                with pytest.raises(errors.InvalidArgument):
                    s.remove(at, n)
            else:
                s.remove(at, n)
                del model[at:at + n]
        elif op[0] == "find":
            vpn = op[1]
            want = [v for v in model if v[0] <= vpn < v[1]]
            assert s.find(vpn) == (want[0] if want else None)
            assert s.lower_bound(vpn) == sum(1 for v in model if v[1] <= vpn)
        else:
            _, start, n = op
            covered = {p for a, b, _ in model for p in range(a, b)}
            want = set(range(start, start + n))
            assert s.fully_mapped(start, start + n) == (want <= covered)
            assert s.any_mapped(start, start + n) == bool(want & covered)
        assert s.items() == model
        assert s.count == len(model)
        assert s.verify() == []


def test_vmaset_find_survives_a_stale_cache():
    """find's one-entry cache is checked before use: removals behind it never mislead it."""
    s = bench.VmaSet(8)
    for i in range(4):
        s.insert(i, 10 * i, 10 * i + 5)
    assert s.find(32) == (30, 35, 3)                # cache: position 3
    s.remove(0, 2)
    assert s.find(32) == (30, 35, 3)
    assert s.find(3) is None
    s.remove(0, 2)
    assert s.find(32) is None and s.items() == [] and s.verify() == []


def test_itree_stays_balanced():
    t = bench.ITree(4096)
    for i in range(4096):                       # sorted inserts: the worst case for a plain BST
        t.insert(i, i, i + 3)
    assert t.verify() == []
    assert t.depth <= 4 * math.log2(4096)
    for i in range(0, 4096, 2):
        t.remove(i)
    assert t.verify() == [] and t.count == 2048
    assert [x[2] for x in t.query(100, 104)] == [97, 99, 101, 103]   # [97, 100] reaches 100


# ---------------------------------------------------------------------- frames
@SETTINGS
@given(st.integers(1, 40), st.integers(0, 3), st.integers(1, 20),
       st.lists(st.tuples(st.booleans(), st.integers(0, 3), st.integers(0, 1000)), max_size=150))
def test_frames_allocator(ram, ndev, devpages, ops):
    fr = bench.Frames(ram, ndev, devpages)
    held = {n: [] for n in range(ndev + 1)}
    size = {n: (ram if n == 0 else devpages) for n in held}
    for is_alloc, node, pick in ops:
        node %= ndev + 1
        if is_alloc:
            p = fr.alloc(node)
            if len(held[node]) == size[node]:
                assert p is None
                continue
            lo, hi = fr.node_range(node)
            assert lo <= p < hi and fr.node_of(p) == node
            assert all(p not in h for h in held.values())
            assert fr.value(p) == 0 and fr.refcount(p) == 1
            fr.set_value(p, pick + 1)
            held[node].append(p)
        elif held[node]:
            p = held[node].pop(pick % len(held[node]))
            fr.free(p)
        for n in held:
            assert fr.used(n) == len(held[n])
            assert fr.free_count(n) == size[n] - len(held[n])
    with pytest.raises(errors.InvalidArgument):
        fr.free(ram + ndev * devpages + 5)


def test_frames_node_ranges_do_not_overlap():
    fr = bench.Frames(10, 3, 4)
    assert [fr.node_range(n) for n in range(4)] == [(0, 10), (10, 14), (14, 18), (18, 22)]


# --------------------------------------------------------------------- handles
@SETTINGS
@given(st.integers(0, 70), st.lists(st.tuples(st.booleans(), st.integers(0, 1000)), max_size=150))
def test_handles_number_live_objects(max_numbers, ops):
    h = bench.Handles(max_numbers)
    live, freed = {}, []              # number -> value; numbers given back, last on top
    for is_take, pick in ops:
        if is_take:
            n = h.take(pick)
            if len(live) == max_numbers:
                assert n is None
                continue
            # the number given back last, else the lowest never used
            assert n == (freed.pop() if freed else len(live) + len(freed))
            assert n not in live and 0 <= n < max_numbers
            live[n] = pick
        elif live:
            n = sorted(live)[pick % len(live)]
            h.put(n)
            del live[n]
            freed.append(n)
        assert all(h.get(k) == v for k, v in live.items())
        assert h.verify() == []
    with pytest.raises(errors.InvalidArgument):
        h.put(max_numbers + 3)


def test_handles_grow_by_doubling_up_to_max():
    h = bench.Handles(40)
    assert h.size == 0
    assert [h.take(i) for i in range(17)] == list(range(17)) and h.size == 32
    assert [h.take(i) for i in range(23)] == list(range(17, 40)) and h.size == 40
    assert h.take(0) is None and h.verify() == []


# ------------------------------------------------------------------- pagecache
pc_ops = st.lists(st.one_of(
    st.tuples(st.just("add"), st.integers(0, 5000), st.integers(0, U64)),
    st.tuples(st.just("remove"), st.integers(0, 5000)),
    st.tuples(st.just("truncate"), st.integers(0, 5000), st.integers(0, 5000)),
    st.tuples(st.just("mapper"), st.integers(0, 5000)),
), max_size=60)


@SETTINGS
@given(pc_ops)
def test_pagecache_matches_dict(ops):
    pc, cache, mapped = bench.PageCache(256), {}, []
    for op in ops:
        if op[0] == "add":
            if op[1] in cache:
                with pytest.raises(errors.InvalidArgument):
                    pc.add(op[1], op[2])
            else:
                cache[op[1]] = (pc.add(op[1], op[2]), op[2])
        elif op[0] == "remove":
            got = pc.remove(op[1])
            assert got == (cache.pop(op[1])[1] if op[1] in cache else None)
        elif op[0] == "mapper":          # a mapper holds the frame: truncation must not free it
            if op[1] in cache:
                pc.get(op[1])
                mapped.append(cache[op[1]][0])
        else:
            lo, hi = sorted(op[1:])
            gone = [k for k in cache if lo <= k < hi]
            assert pc.truncate(lo, hi) == len(gone)
            for k in gone:
                del cache[k]
        for k, (p, v) in cache.items():
            assert pc.lookup(k) == (p, v)
        assert pc.nrpages == len(cache)
        assert pc.nr_nodes == xa_expected_nodes(list(cache))
        assert pc.frames_used == len({p for p, _ in cache.values()} | set(mapped))
    for p in mapped:
        pc.put_frame(p)
    pc.truncate(0, 1 << 63)
    assert (pc.nrpages, pc.frames_used, pc.nr_nodes) == (0, 0, 0)


# -------------------------------------------------------------- microbenchmarks
@pytest.mark.parametrize("name", sorted(bench.BENCHMARKS))
def test_microbenchmarks_run_and_report_ns(name):
    ns = bench.BENCHMARKS[name](2000)
    assert isinstance(ns, float) and ns > 0 and math.isfinite(ns)


def test_microbenchmarks_reject_bad_arguments():
    with pytest.raises(errors.InvalidArgument):
        bench.bench_xarray_store(0)
    with pytest.raises(errors.InvalidArgument):
        bench.bench_xarray_store(10, pattern="zigzag")
    with pytest.raises(errors.InvalidArgument):
        bench.bench_pt_next(1 << 20, density=1 << 20)
    with pytest.raises(errors.InvalidArgument):
        bench.bench_first_touch_floor(1000, ram_pages=999)   # frames for fewer pages than touched


# ------------------------------------------------------------------ pv chunks
@SETTINGS
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 2), st.integers(0, 400), st.integers(0, 11)),
                max_size=300))
def test_pv_lists_keep_the_mappings_newest_first(ops):
    # pmap_pvchunk: each page's pv list holds its mappings, the newest first, and a
    # removal (found by pmap_pvh_remove's walk) keeps the others' order
    pv = bench.PvChunks(12, 3)
    lists = {}                        # pfn -> [(pmap, vpn)], newest first
    mapped = {}                       # (pmap, vpn) -> pfn
    for enter, pm, vpn, pfn in ops:
        if enter and (pm, vpn) not in mapped:
            assert pv.enter(pm, vpn, pfn)
            lists.setdefault(pfn, []).insert(0, (pm, vpn))
            mapped[(pm, vpn)] = pfn
        elif not enter and mapped:
            k = sorted(mapped)[vpn % len(mapped)]
            pv.remove(*k)
            lists[mapped.pop(k)].remove(k)
    assert all(pv.mappers(p) == lists.get(p, []) for p in range(12))
    assert pv.verify() == []
    assert pv.pv_entries >= len(mapped)


def test_pv_chunks_past_the_chunk_number_limit_fail_as_out_of_memory():
    # past PVC_NUM_MAX chunks (here lowered to 2) get_pv_entry fails as when the host
    # has no memory: nothing recorded, no chunk kept, pv_entries unchanged
    pv = bench.PvChunks(4, 1, max_chunks=2)
    assert all(pv.enter(0, v, v % 4) for v in range(2 * 168))
    assert (pv.chunks, pv.pv_entries) == (2, 336)
    before = [pv.mappers(p) for p in range(4)]
    assert not pv.enter(0, 1000, 1)
    assert (pv.chunks, pv.pv_entries) == (2, 336)
    assert [pv.mappers(p) for p in range(4)] == before and pv.verify() == []
    pv.remove(0, 5)                   # a slot free again: the next entry takes it
    assert pv.enter(0, 1000, 1) and pv.mappers(1)[0] == (0, 1000)
    assert (pv.chunks, pv.pv_entries) == (2, 337) and pv.verify() == []
    for v in range(168):              # a chunk emptied is freed, its number reusable
        if v != 5:
            pv.remove(0, v)
    pv.remove(0, 1000)
    assert pv.chunks == 1 and pv.verify() == []
