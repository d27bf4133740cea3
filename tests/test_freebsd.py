"""The FreeBSD design: shadow chains, collapse, bypass, pmap/pv, and agreement
with the reference model.  check() runs after every step that changes state."""
import random

import pytest

import mmbench
from mmbench import errors
from mmbench.reference import ReferenceMachine


@pytest.fixture
def m():
    return mmbench.open("freebsd", ram_pages=1 << 14)


def chain(m, pid, vpn=0):
    """Serials of the objects behind (pid, vpn), top first."""
    objs = m.objects()
    ent = next(e for e in m.entries(pid) if e["start"] <= vpn < e["end"])
    out, s = [], ent["object"]
    while s is not None:
        out.append(s)
        s = objs[s]["backing"]
    return out


def all_exit(m):
    for pid in m.live_pids():
        m.exit(pid)
        m.check()
    assert m.leaks() == []
    assert m.objects() == {}


# --------------------------------------------------------------- the article
def layered(m):
    """Object A (P1's pages) -> B (P2's writes) -> C1 (P2) / C2 (P3)."""
    p1 = m.spawn()
    m.mmap(p1, 0, 8)
    for v in range(8):
        m.write(p1, v, 100 + v)
    p2 = m.fork(p1)
    for v in range(4):
        m.write(p2, v, 200 + v)
    p3 = m.fork(p2)
    return p1, p2, p3


def test_design_article_layering_and_collapse(m):
    p1, p2, p3 = layered(m)
    m.write(p2, 0, 300)
    m.write(p3, 1, 301)
    m.check()
    a = chain(m, p1)[0]
    c1, b, a2 = chain(m, p2)
    c2, b2, _ = chain(m, p3)
    assert a == a2 and b == b2 and c1 != c2
    objs = m.objects()
    assert objs[a]["ref_count"] == 2 and objs[a]["shadow_count"] == 1      # P1's entry + B
    assert objs[b]["ref_count"] == 2 and objs[b]["shadow_count"] == 2      # C1 + C2
    assert objs[b]["resident"] == 4 and objs[a]["resident"] == 8
    assert m.counter("shadow_objects") == 3 and m.counter("collapses") == 0
    # the child exits: B is left with one shadow, C1, and collapses into it
    m.exit(p3)
    m.check()
    assert m.counter("collapses") == 1
    assert chain(m, p2) == [c1, a]
    assert m.objects()[c1]["resident"] == 4           # B's pages moved up, C1's own kept
    assert [m.read(p2, v) for v in range(8)] == [300, 201, 202, 203, 104, 105, 106, 107]
    assert [m.read(p1, v) for v in range(8)] == [100 + v for v in range(8)]
    all_exit(m)


def test_design_article_all_shadowed_bypass(m):
    p1, p2, p3 = layered(m)
    for v in range(4):                                  # C1 copies every page of B
        m.write(p2, v, 300 + v)
    m.write(p3, 1, 301)
    c1, b, a = chain(m, p2)
    assert m.counter("bypasses") == 0
    p4 = m.fork(p2)                                     # fork collapses the source first
    m.check()
    assert m.counter("bypasses") == 1 and m.counter("collapses") == 0
    assert chain(m, p2) == [c1, a] and chain(m, p4) == [c1, a]
    assert chain(m, p3)[1:] == [b, a]                   # B lives on for P3 only
    assert m.objects()[b]["ref_count"] == 1
    assert [m.read(p4, v) for v in range(5)] == [300, 301, 302, 303, 104]
    assert [m.read(p3, v) for v in range(3)] == [200, 301, 202]
    all_exit(m)


# ------------------------------------------------------------- fork server
def fork_server(m, children, pages=64, writes=8, parent_writes=False):
    """A parent forks short-lived children that write and exit; returns the
    parent's chain length and the live object count after each child."""
    p = m.spawn()
    m.mmap(p, 0, pages)
    for v in range(pages):
        m.write(p, v, v + 1)
    lengths, objects = [], []
    for i in range(children):
        c = m.fork(p)
        for k in range(writes):
            m.write(c, (i * 7 + k) % pages, 1000 + i)
        if parent_writes:
            m.write(p, (i * 3) % pages, 2000 + i)
        m.exit(c)
        m.check()
        lengths.append(m.chain_length(p, 0))
        objects.append(len(m.objects()))
    return p, lengths, objects


@pytest.mark.parametrize("parent_writes", [False, True])
def test_fork_server_chains_stay_bounded(m, parent_writes):
    p, lengths, objects = fork_server(m, 40, parent_writes=parent_writes)
    assert max(lengths) == 1 and max(objects) == 1
    if parent_writes:          # the parent's shadow absorbed the original object each time
        assert m.counter("collapses") == 40
    all_exit(m)


def test_fork_server_values(m):
    p, _, _ = fork_server(m, 10, parent_writes=True)
    ref = ReferenceMachine()
    rp = ref.spawn()
    ref.mmap(rp, 0, 64)
    for v in range(64):
        ref.write(rp, v, v + 1)
    for i in range(10):
        ref.write(rp, (i * 3) % 64, 2000 + i)
    assert [m.read(p, v) for v in range(64)] == [ref.read(rp, v) for v in range(64)]
    all_exit(m)


# ------------------------------------------------------------ fork chains
def test_fork_chain_depth_16():
    m = mmbench.open("freebsd", ram_pages=1 << 14, pmap_copy=False, prefault=False)
    pids = [m.spawn()]
    m.mmap(pids[0], 0, 32)
    m.write(pids[0], 0, 1)
    for level in range(1, 17):
        child = m.fork(pids[-1])
        m.write(child, level, level + 1)                # every level writes one page
        pids.append(child)
        m.check()
    for level, pid in enumerate(pids):
        assert m.chain_length(pid, 0) == level + 1     # one shadow per generation
    deepest = pids[-1]
    steps = m.counter("chain_steps")
    assert m.read(deepest, 0) == 1                      # found 16 objects down
    assert m.counter("chain_steps") - steps == 16
    assert [m.read(deepest, v) for v in range(17)] == [1] + [v + 1 for v in range(1, 17)]
    hist = m.chain_depth_histogram()
    assert max(hist) == 16
    all_exit(m)


# ----------------------------------------------------------- COW details
def test_parent_shadow_absorbs_the_object_when_the_child_exits(m):
    p = m.spawn()
    m.mmap(p, 0, 4)
    m.write(p, 0, 7)
    c = m.fork(p)
    m.write(c, 1, 8)          # child shadows A
    m.write(p, 2, 9)          # parent shadows A: A has two shadows
    assert m.chain_length(p, 0) == 2
    m.exit(c)                 # A is left with one reference (parent's shadow): collapse
    m.check()
    assert m.counter("collapses") == 1 and m.chain_length(p, 0) == 1
    assert [m.read(p, v) for v in range(4)] == [7, 0, 9, 0]
    all_exit(m)


def test_cow_page_move_when_backing_has_one_reference_and_one_shadow(m):
    p1, p2, p3 = layered(m)
    for v in range(4):
        m.write(p2, v, 300 + v)
    m.write(p3, 1, 301)
    m.fork(p2)                                  # bypass: B keeps only P3's shadow
    c2, b, _ = chain(m, p3)
    assert m.objects()[b]["ref_count"] == 1 and m.objects()[b]["shadow_count"] == 1
    copies = m.counter("pages_copied")
    m.write(p3, 2, 555)                         # B's page moves up into C2
    assert m.counter("cow_page_moves") == 1 and m.counter("pages_copied") == copies
    assert m.objects()[b]["resident"] == 3 and m.objects()[c2]["resident"] == 2
    assert m.read(p3, 2) == 555 and m.read(p3, 3) == 203
    m.check()
    all_exit(m)


def test_write_after_sibling_exit_takes_object_without_shadow(m):
    p = m.spawn()
    m.mmap(p, 0, 4)
    m.write(p, 0, 1)
    c = m.fork(p)
    m.exit(c)
    before = m.counter("shadow_objects")
    m.write(p, 0, 2)          # ref_count 1: vm_object_shadow is skipped
    assert m.counter("shadow_objects") == before
    assert m.counter("fault_cow_reuse") == 1
    m.check()
    all_exit(m)


@pytest.mark.parametrize("pmap_copy", [False, True])
def test_read_zero_fills_and_maps_read_only_below(pmap_copy):
    m = mmbench.open("freebsd", ram_pages=1 << 10, pmap_copy=pmap_copy)
    p = m.spawn()
    m.mmap(p, 0, 4)
    assert m.read(p, 0) == 0
    assert m.counter("fault_zero_fill") == 1 and m.counter("pages_zeroed") == 1
    m.write(p, 1, 5)
    c = m.fork(p)
    assert m.counter("fork_ptes_copied") == (2 if pmap_copy else 0)
    assert m.read(c, 1) == 5
    assert m.counter("fault_minor") == (0 if pmap_copy else 1)   # else a PTE hit
    assert m.rmap_walk(c, 1) == [(p, 1), (c, 1)]      # one frame, two mappers
    m.check()
    all_exit(m)


def test_rmap_walk_lists_every_mapper(m):
    p = m.spawn()
    m.mmap(p, 0, 4)
    m.write(p, 2, 5)
    c1 = m.fork(p)
    c2 = m.fork(p)
    assert m.read(c1, 2) == 5 and m.read(c2, 2) == 5
    visits = m.counter("rmap_visits")
    assert m.rmap_walk(p, 2) == [(p, 2), (c1, 2), (c2, 2)]
    assert m.counter("rmap_visits") == visits + 3
    m.write(c1, 2, 6)
    assert m.rmap_walk(c1, 2) == [(c1, 2)]
    assert m.rmap_walk(p, 2) == [(p, 2), (c2, 2)]
    all_exit(m)


def test_fork_write_protects_parent(m):
    p = m.spawn()
    m.mmap(p, 0, 8)
    for v in range(8):
        m.write(p, v, v)
    m.fork(p)
    assert m.counter("fork_ptes_wrprotect") == 8
    m.fork(p)                                  # already NEEDS_COPY: nothing to protect
    assert m.counter("fork_ptes_wrprotect") == 8
    all_exit(m)


def test_shared_mapping_is_one_object(m):
    p = m.spawn()
    m.mmap(p, 0, 4, shared=True)
    c = m.fork(p)
    m.write(c, 1, 9)
    assert m.read(p, 1) == 9
    assert chain(m, p) == chain(m, c) and len(chain(m, p)) == 1
    m.exit(p)
    assert m.read(c, 1) == 9
    all_exit(m)


# ------------------------------------------------------------- madvise
def test_dontneed_private_does_not_resurrect_backing_page(m):
    p = m.spawn()
    m.mmap(p, 0, 4)
    m.write(p, 0, 1)
    c = m.fork(p)
    m.write(c, 1, 2)                          # child: shadow -> A (A holds page 0 = 1)
    m.madvise_dontneed(c, 0, 4)
    m.check()
    assert [m.read(c, v) for v in range(4)] == [0, 0, 0, 0]
    assert m.read(p, 0) == 1
    all_exit(m)


def test_dontneed_keeps_shared_data(m):
    p = m.spawn()
    m.mmap(p, 0, 4, shared=True)
    m.write(p, 0, 3)
    m.madvise_dontneed(p, 0, 4)
    assert m.read(p, 0) == 3
    all_exit(m)


def test_mremap_moves_entries_and_ptes(m):
    p = m.spawn()
    m.mmap(p, 0, 8)
    for v in range(8):
        m.write(p, v, v + 10)
    c = m.fork(p)
    m.mremap(c, 2, 4, 100)
    m.check()
    assert [m.read(c, 100 + i) for i in range(4)] == [12, 13, 14, 15]
    with pytest.raises(errors.SegmentationFault):
        m.read(c, 3)
    assert m.counter("mremap_pages_moved") == 4       # PTEs pmap_copy gave the child
    m.mremap(p, 0, 8, 512)
    assert m.counter("mremap_pages_moved") == 12
    assert [m.read(p, 512 + v) for v in range(8)] == [v + 10 for v in range(8)]
    m.check()
    all_exit(m)


# ------------------------------------------------------ failures, leaks
def snapshot(m):
    return (m.objects(), {p: m.entries(p) for p in m.live_pids()}, m.frames_used(), m.metadata())


def test_out_of_memory_leaves_machine_unchanged():
    m = mmbench.open("freebsd", ram_pages=4)
    p = m.spawn()
    m.mmap(p, 0, 8)
    for v in range(4):
        m.write(p, v, v + 1)
    c = m.fork(p)
    before = snapshot(m)
    with pytest.raises(errors.OutOfMemory):
        m.write(c, 0, 9)                      # needs a shadow and a copy
    with pytest.raises(errors.OutOfMemory):
        m.read(p, 5)                          # zero-fill needs a frame too
    assert snapshot(m) == before
    m.check()
    assert m.read(c, 0) == 1                  # a page found below needs no frame
    all_exit(m)


def test_options_are_validated():
    for opt in ("pmap_copy", "prefault"):
        with pytest.raises(errors.InvalidArgument):
            mmbench.open("freebsd", **{opt: "yes"})


def test_prefault_maps_resident_neighbours_read_only():
    m = mmbench.open("freebsd", ram_pages=1 << 10, pmap_copy=False)
    p = m.spawn()
    m.mmap(p, 0, 16)
    for v in range(10):                     # pages 0..9 resident, 10.. not
        m.write(p, v, v + 1)
    c = m.fork(p)
    m.write(c, 0, 100)                      # shadow; prefaults 1..4 from below
    faults = m.counter("faults")
    assert [m.read(c, v) for v in (1, 2, 3, 4)] == [2, 3, 4, 5]
    assert m.counter("faults") == faults
    assert m.read(c, 7) == 8                # found below: maps 6, 8, 5, 9; stops at 10
    assert m.counter("faults") == faults + 1
    assert [m.read(c, v) for v in (5, 6, 8, 9)] == [6, 7, 9, 10]
    assert m.counter("faults") == faults + 1
    m.write(c, 5, 0)                        # prefaulted read-only: a COW fault
    assert m.counter("fault_cow_copy") == 2 and m.read(p, 5) == 6
    faults = m.counter("faults")
    assert m.read(p, 12) == 0               # zero-fill in p; neighbours 11, 13 absent
    assert m.read(p, 11) == 0 and m.counter("faults") == faults + 2
    m.check()
    all_exit(m)


def test_fork_copies_ptes_read_only_for_private_writable_for_shared(m):
    p = m.spawn()
    m.mmap(p, 0, 2)
    m.mmap(p, 10, 2, shared=True)
    for v in (0, 1, 10, 11):
        m.write(p, v, v + 1)
    c = m.fork(p)
    assert m.counter("fork_ptes_copied") == 4
    faults = m.counter("faults")
    assert [m.read(c, v) for v in (0, 1, 10, 11)] == [1, 2, 11, 12]
    m.write(c, 10, 7)                                # shared: writable PTE, no fault
    assert m.counter("faults") == faults and m.read(p, 10) == 7
    m.write(c, 0, 9)                                 # private: read-only PTE, COW fault
    assert m.counter("fault_cow_copy") == 1 and m.read(p, 0) == 1
    m.check()
    all_exit(m)


def test_errors_match_reference_order(m):
    p = m.spawn()
    m.mmap(p, 0, 4, writable=False)
    with pytest.raises(errors.ProtectionFault):
        m.write(p, 0, 1)
    with pytest.raises(errors.SegmentationFault):
        m.read(p, 4)
    with pytest.raises(errors.InvalidArgument):
        m.mmap(p, 3, 2)
    with pytest.raises(errors.InvalidArgument):
        m.mprotect(p, 2, 4, True)
    with pytest.raises(errors.InvalidArgument):
        m.mremap(p, 0, 4, 2)                  # overlap is checked first
    with pytest.raises(errors.SegmentationFault):
        m.mremap(p, 2, 4, 100)
    m.mmap(p, 100, 1)
    with pytest.raises(errors.InvalidArgument):
        m.mremap(p, 0, 4, 98)
    with pytest.raises(errors.InvalidArgument):
        m.madvise_dontneed(p, 3, 2)
    with pytest.raises(errors.InvalidArgument):   # devices: see test_devices_freebsd.py
        m.migrate(p, 200, 1, 0)
    m.check()
    all_exit(m)


def test_sparse_pages_and_partial_unmaps_keep_the_trie_sound(m):
    rnd = random.Random(7)
    p = m.spawn()
    m.mmap(p, 0, 1 << 12)
    vpns = rnd.sample(range(1 << 12), 300)
    for v in vpns:
        m.write(p, v, v)
    m.check()
    m.munmap(p, 1000, 1000)
    m.mprotect(p, 3000, 50, False)
    m.check()
    assert all(m.read(p, v) == v for v in vpns if not 1000 <= v < 2000)
    assert m.metadata()["pctrie_node"][0] > 0
    all_exit(m)


# -------------------------------------------- randomized vs the reference
def random_ops(seed, nops):
    rnd = random.Random(seed)
    for _ in range(nops):
        op = rnd.random()
        v, n = rnd.randrange(0, 40), rnd.randrange(1, 12)
        if op < 0.12:
            yield "mmap", (v, n, rnd.random() < 0.25, rnd.random() < 0.85)
        elif op < 0.18:
            yield "munmap", (v, n)
        elif op < 0.22:
            yield "mprotect", (v, n, rnd.random() < 0.6)
        elif op < 0.50:
            yield "write", (v, rnd.randrange(1, 1 << 64))
        elif op < 0.70:
            yield "read", (v,)
        elif op < 0.79:
            yield "fork", ()
        elif op < 0.85:
            yield "exit", ()
        elif op < 0.92:
            yield "mremap", (v, n, rnd.randrange(0, 50))
        else:
            yield "madvise_dontneed", (v, n)


def outcome(machine, name, args):
    try:
        return "ok", getattr(machine, name)(*args)
    except errors.MMError as e:
        return type(e).__name__, None


@pytest.mark.parametrize("options", [{}, {"pmap_copy": False}, {"prefault": False}])
@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_reference(seed, options):
    fb, ref = mmbench.open("freebsd", ram_pages=1 << 14, **options), ReferenceMachine()
    rnd = random.Random(seed + 1000)
    assert fb.spawn() == ref.spawn()
    for name, args in random_ops(seed, 400):
        live = fb.live_pids()
        if not live:
            assert fb.spawn() == ref.spawn()
            continue
        pid = rnd.choice(live)
        if name == "fork" and len(live) >= 8:
            continue
        assert outcome(fb, name, (pid,) + args) == outcome(ref, name, (pid,) + args), (name, args)
        fb.check()
    all_exit(fb)


@pytest.mark.parametrize("seed", range(6))
def test_out_of_memory_never_changes_state_under_random_ops(seed):
    """With 12 frames many faults fail: each failure leaves everything as it
    was, and every other outcome still agrees with the reference."""
    fb, ref = mmbench.open("freebsd", ram_pages=12), ReferenceMachine()
    rnd = random.Random(seed + 2000)
    fb.spawn(), ref.spawn()
    ooms = 0
    for name, args in random_ops(seed + 500, 300):
        live = fb.live_pids()
        if not live:
            fb.spawn(), ref.spawn()
            continue
        pid = rnd.choice(live)
        if name == "fork" and len(live) >= 6:
            continue
        before = snapshot(fb)
        got = outcome(fb, name, (pid,) + args)
        if got[0] == "OutOfMemory":
            ooms += 1
            assert snapshot(fb) == before
            continue
        assert got == outcome(ref, name, (pid,) + args), (name, args)
        fb.check()
    assert ooms > 0
    all_exit(fb)


def test_adjacent_mmap_extends_the_entry_and_its_object(m):
    p = m.spawn()
    m.mmap(p, 0, 4)
    m.write(p, 1, 5)
    m.mmap(p, 4, 4)
    assert m.counter("vma_merges") == 1
    assert len(m.entries(p)) == 1 and m.objects()[chain(m, p)[0]]["size"] == 8
    m.write(p, 6, 7)
    assert [m.read(p, v) for v in (1, 5, 6)] == [5, 0, 7]
    m.mmap(p, 8, 2, writable=False)          # other protection: a new entry
    assert len(m.entries(p)) == 2
    m.check()
    all_exit(m)


@pytest.mark.parametrize("lifetime", [1, 4, 8])
def test_fork_server_chain_is_bounded_by_live_children(lifetime):
    """With children living for `lifetime` forks and a writing parent, the
    parent's chain is as long as the number of live children, never longer:
    each child's exit collapses one level (exact counts)."""
    from mmbench_freebsd.measure import fork_server
    r = fork_server(children=60, pages=64, writes=4, parent_writes=True, lifetime=lifetime)
    assert r["max_parent_chain"] == lifetime
    assert r["collapses"] == 60 - (lifetime - 1)
    assert r["live_objects"] == 2 * lifetime - 1


@pytest.mark.parametrize("seed", range(4))
def test_replay_agrees_with_reference(seed):
    """The nogil replay loop gives the reference's statuses and values."""
    from mmbench.trace import TraceBuilder
    rnd = random.Random(seed + 3000)
    t = TraceBuilder()
    alive = {t.spawn()}
    for name, args in random_ops(seed + 3000, 300):
        pid = rnd.choice(sorted(alive))
        if name == "fork":
            if len(alive) < 8:
                alive.add(t.fork(pid))
        elif name == "exit":
            if len(alive) > 1:
                t.exit(pid)
                alive.discard(pid)
        else:
            getattr(t, name)(pid, *args)
    trace = t.build()
    fb = mmbench.open("freebsd", ram_pages=1 << 14)
    a = fb.replay(trace, timing=False, frame=False)
    b = ReferenceMachine().replay(trace, timing=False, frame=False)
    assert (a["status"] == b["status"]).all() and (a["value"] == b["value"]).all()
    fb.check()


# ------------------------------------------------- fidelity (issue 12: 8, 9, 10)
def test_vmspace_is_charged_per_process_and_freed_at_exit(m):
    """struct vmspace (vm_map + amd64 pmap, 584 B) per live process."""
    p = m.spawn()
    assert m.metadata()["vmspace"] == (1, 584)
    m.mmap(p, 0, 4)
    m.write(p, 0, 1)
    c = m.fork(p)
    g = m.fork(c)
    assert m.metadata()["vmspace"] == (3, 3 * 584)
    m.check()
    m.exit(c)
    m.check()
    assert m.metadata()["vmspace"] == (2, 2 * 584)
    all_exit(m)
    assert m.metadata()["vmspace"] == (0, 0)
    assert g not in m.live_pids()


def test_dontneed_on_a_private_object_frees_pages_without_clipping(m):
    """MADV_FREE's case: an anonymous ONEMAPPING object shadowing nothing
    loses the pages; the map is not modified."""
    p = m.spawn()
    m.mmap(p, 0, 8)
    for v in range(8):
        m.write(p, v, 10 + v)
    used = m.frames_used()
    m.madvise_dontneed(p, 2, 3)
    m.check()
    assert len(m.entries(p)) == 1 and m.counter("vma_splits") == 0
    assert m.frames_used() == used - 3
    assert [m.read(p, v) for v in range(8)] == [10, 11, 0, 0, 0, 15, 16, 17]
    m.check()
    all_exit(m)


def test_dontneed_over_a_shadow_chain_gives_the_range_fresh_memory(m):
    """MADV_FREE skips an object with a backing object: the contract's zeros
    come from a MAP_FIXED-like fresh range (clipped, no object, no COW)."""
    p = m.spawn()
    m.mmap(p, 0, 8)
    for v in range(8):
        m.write(p, v, 10 + v)
    c = m.fork(p)
    m.write(c, 0, 99)                        # c: shadow -> original object
    m.madvise_dontneed(c, 2, 3)
    m.check()
    ents = m.entries(c)
    assert [(e["start"], e["end"]) for e in ents] == [(0, 2), (2, 5), (5, 8)]
    assert ents[1]["object"] is None and ents[1]["flags"] == []
    assert [m.read(c, v) for v in range(8)] == [99, 11, 0, 0, 0, 15, 16, 17]
    assert [m.read(p, v) for v in range(8)] == [10 + v for v in range(8)]
    m.check()
    all_exit(m)


def test_coalesce_grows_an_object_shared_by_clipped_entries(m):
    """vm_object_coalesce: ref_count > 1 is fine for a ONEMAPPING object;
    stale pindexes are emptied and the entry grows over the new range."""
    p = m.spawn()
    m.mmap(p, 0, 8)
    for v in range(8):
        m.write(p, v, 1 + v)
    m.mprotect(p, 4, 4, False)               # two entries, one object (ref 2)
    m.munmap(p, 2, 2)
    merges = m.counter("vma_merges")
    m.mmap(p, 2, 2)
    m.check()
    assert m.counter("vma_merges") == merges + 1
    ents = m.entries(p)
    assert [(e["start"], e["end"]) for e in ents] == [(0, 4), (4, 8)]
    assert ents[0]["object"] == ents[1]["object"] and len(m.objects()) == 1
    assert [m.read(p, v) for v in range(8)] == [1, 2, 0, 0, 5, 6, 7, 8]
    m.check()
    all_exit(m)


def test_coalesced_object_is_shared_by_an_entry_of_other_inheritance(m):
    """vm_map_insert: the object is extended, the entry cannot be (shared vs
    private), so a new entry maps the object after prev's range."""
    p = m.spawn()
    m.mmap(p, 0, 4)
    m.write(p, 0, 1)
    m.mmap(p, 4, 4, shared=True)
    m.check()
    ents = m.entries(p)
    assert len(ents) == 2 and ents[0]["object"] == ents[1]["object"]
    assert ents[1]["offset"] == 4 and ents[1]["shared"]
    m.write(p, 5, 5)
    c = m.fork(p)
    m.check()
    m.write(c, 6, 6)                          # shared: p sees it
    m.write(p, 1, 7)                          # private: c does not
    m.check()
    assert (m.read(p, 6), m.read(c, 5), m.read(c, 1), m.read(p, 1)) == (6, 5, 0, 7)
    m.check()
    all_exit(m)


def test_cow_copy_into_a_shared_first_object_unmaps_the_original_everywhere(m):
    """vm_fault_cow's copy path: the first object is not ONEMAPPING, so
    pmap_remove_all drops every mapping of the original page."""
    p = m.spawn()
    m.mmap(p, 0, 4)
    for v in range(4):
        m.write(p, v, 10 + v)
    c1 = m.fork(p)                           # c1 maps the original pages (pmap_copy)
    m.write(p, 0, 20)                        # p: shadow S holding page 0
    c2 = m.fork(p)                           # S shared by p and c2: not ONEMAPPING
    for v in range(4):
        m.write(c2, v, 30 + v)
    m.fork(c2)                               # collapse at fork bypasses S: S ref 1
    m.check()
    top = chain(m, p)[0]
    assert m.objects()[top]["ref_count"] == 1 and not m.objects()[top]["onemapping"]
    assert (c1, 1) in m.rmap_walk(c1, 1)
    zaps = m.counter("pte_zaps")
    m.write(p, 1, 21)                        # copy of a page found below S
    m.check()
    assert m.rmap_walk(c1, 1) == []          # c1's mapping of the original is gone
    assert m.counter("pte_zaps") > zaps
    assert m.read(c1, 1) == 11 and m.read(p, 1) == 21
    m.check()
    all_exit(m)


# ------------------------------------------------ built from the shared blocks
def test_freebsd_is_built_from_the_blocks_not_from_another_design():
    import subprocess
    import sys
    code = ("import sys, mmbench_freebsd.core; print(sorted(m for m in sys.modules if m.startswith("
            "('mmbench_uvm', 'mmbench.blocks.pmap', 'mmbench.blocks.mapentry'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['mmbench.blocks.mapentry', 'mmbench.blocks.pmap', 'mmbench.blocks.pmap_pvchunk']"
    from mmbench.blocks.mapentry import MapEntryMachine
    assert issubclass(type(mmbench.open("freebsd")), MapEntryMachine)
    assert issubclass(type(mmbench.open("uvm")), MapEntryMachine)


def test_pv_chunks_hold_168_entries_and_a_page_mapped_once_costs_one():
    # FreeBSD's pv side (mmbench.blocks.pmap_pvchunk): no mapping is embedded in
    # the page (NetBSD's pmap_netbsd embeds the first), chunks are freed empty
    m = mmbench.open("freebsd", ram_pages=1 << 12, thp="never", prefault=False)
    p = m.spawn()
    m.mmap(p, 0, 200)
    for v in range(168):
        m.write(p, v, v)
    assert m.counters()["pv_entries"] == 168 and m.metadata()["pv_chunk"] == (1, 4096)
    m.write(p, 168, 1)
    assert m.metadata()["pv_chunk"] == (2, 8192)
    m.munmap(p, 100, 100)                       # the second chunk's only entry goes
    assert m.metadata()["pv_chunk"] == (1, 4096)
    m.check()
    m.exit(p)
    assert m.metadata()["pv_chunk"] == (0, 0)


def test_pv_list_heads_name_entries_of_numbered_chunks_across_pmaps():
    # a page's pv list head is its frame descriptor's aux word, the handle of the
    # first entry (chunk number * 168 + slot + 1): lists that run through the
    # chunks of several pmaps, chunks freed and their numbers reused, 2 MiB
    # mappings (a reservation's pvh) copied at fork, all checked by check()
    for thp in ("never", "always"):
        m = mmbench.open("freebsd", ram_pages=1 << 13, thp=thp, prefault=False)
        p = m.spawn()
        m.mmap(p, 0, 1024)
        for v in range(1024):
            m.write(p, v, v + 1)
        m.check()
        c1 = m.fork(p)
        c2 = m.fork(p)
        m.check()
        assert sorted(m.rmap_walk(c2, 5)) == sorted([(p, 5), (c1, 5), (c2, 5)])
        m.munmap(c1, 0, 600)                    # c1's first chunks drained and freed
        m.check()
        m.exit(c1)
        c3 = m.spawn()                          # takes the numbers given back
        m.mmap(c3, 0, 400)
        for v in range(400):
            m.write(c3, v, 7)
        m.write(c2, 3, 9)                       # COW: c2's entry leaves the shared page's list
        m.check()
        assert sorted(m.rmap_walk(p, 3)) == [(p, 3)]
        assert m.read(c2, 3) == 9 and m.read(p, 3) == 4
        for q in (p, c2, c3):
            m.exit(q)
        m.check()
        assert m.metadata()["pv_chunk"] == (0, 0)
