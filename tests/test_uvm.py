"""The UVM design: amap/anon reference counting, amap_copy, promotion, am_ppref."""
import random
import subprocess
import sys

import pytest

import mmbench
from mmbench import errors
from mmbench.reference import ReferenceMachine


@pytest.fixture
def m():
    return mmbench.open("uvm", ram_pages=1 << 12)


def all_exit(m):
    for pid in m.live_pids():
        m.exit(pid)
    m.check()
    assert all(count == 0 for count, _ in m.metadata().values()), m.metadata()


def ctr(m, key):
    return m.counters()[key]


def test_first_fault_after_fork_copies_the_amap_then_the_last_holder_takes_it(m):
    p = m.spawn()
    m.mmap(p, 0, 8)
    for v in range(4):
        m.write(p, v, 10 + v)
    c = m.fork(p)
    (pe,), (ce,) = m.entries(p), m.entries(c)
    assert pe["amap"] == ce["amap"] and "NEEDSCOPY" in pe["flags"] and "NEEDSCOPY" in ce["flags"]
    assert m.amaps()[pe["amap"]]["am_ref"] == 2
    assert m.read(c, 1) == 11                      # any fault of a NEEDSCOPY entry copies
    assert ctr(m, "amap_copies") == 1
    (ce,) = m.entries(c)
    assert ce["amap"] != pe["amap"] and "NEEDSCOPY" not in ce["flags"]
    assert all(m.anon_ref(c, v) == 2 for v in range(4))          # an_ref++ per anon
    m.write(p, 0, 99)                              # parent: am_ref 1 now -> take over
    assert ctr(m, "amap_copies") == 1
    assert m.entries(p)[0]["amap"] == pe["amap"] and "NEEDSCOPY" not in m.entries(p)[0]["flags"]
    m.check()
    all_exit(m)


def test_promote_when_shared_reuse_when_alone(m):
    p = m.spawn()
    m.mmap(p, 0, 4)
    m.write(p, 0, 1)
    c = m.fork(p)
    m.write(c, 0, 2)                               # an_ref 2 -> promote (copy)
    assert (ctr(m, "fault_cow_copy"), ctr(m, "pages_copied")) == (1, 1)
    assert m.anon_ref(c, 0) == 1 and m.anon_ref(p, 0) == 1
    m.write(p, 0, 3)                               # parent's anon is its alone now: reuse
    assert ctr(m, "fault_cow_reuse") == 1 and ctr(m, "fault_cow_copy") == 1
    assert (m.read(p, 0), m.read(c, 0)) == (3, 2)
    m.check()
    all_exit(m)


def test_fork_write_protects_the_parent_ptes_once(m):
    p = m.spawn()
    m.mmap(p, 0, 5)
    for v in range(5):
        m.write(p, v, v + 1)
    m.fork(p)
    assert ctr(m, "fork_ptes_wrprotect") == 5
    m.fork(p)                                      # still NEEDSCOPY: PTEs already read-only
    assert ctr(m, "fork_ptes_wrprotect") == 5
    m.check()
    all_exit(m)


def test_reference_counts_through_a_fork_tree(m):
    p = m.spawn()
    m.mmap(p, 0, 4)
    for v in range(4):
        m.write(p, v, v + 1)
    c1 = m.fork(p)
    c2 = m.fork(p)
    g = m.fork(c1)
    # one amap, four entries, four anons each referenced once (by its one slot)
    (a,) = m.amaps().values()
    assert a["am_ref"] == 4 and set(a["anon_refs"].values()) == {1}
    for pid in (c1, c2, g):
        assert m.read(pid, 0) == 1                 # three amap copies
    assert ctr(m, "amap_copies") == 3
    assert m.anon_ref(p, 0) == 4                   # four amaps hold every anon
    m.write(g, 0, 50)
    assert m.anon_ref(p, 0) == 3 and m.anon_ref(g, 0) == 1
    m.exit(c1)
    assert m.anon_ref(p, 0) == 2
    m.check()
    assert [m.read(x, 0) for x in (p, c2, g)] == [1, 1, 50]
    all_exit(m)


def test_partial_unmap_of_a_shared_amap_uses_ppref(m):
    p = m.spawn()
    m.mmap(p, 0, 10, shared=True)
    for v in range(10):
        m.write(p, v, v + 1)
    c = m.fork(p)
    (a,) = m.amaps().values()
    assert a["shared"] and a["am_ref"] == 2 and a["ppref"] is None
    m.munmap(c, 3, 3)                              # child lets go of slots 3..5
    (a,) = m.amaps().values()
    assert a["ppref"] == [2, 2, 2, 1, 1, 1, 2, 2, 2, 2] and a["nused"] == 10
    assert a["am_ref"] == 3                        # the child's entry is in two pieces
    m.check()
    m.munmap(p, 4, 1)                              # nobody covers slot 4 now: its anon goes
    (a,) = m.amaps().values()
    assert a["ppref"][4] == 0 and 4 not in a["anon_refs"] and a["nused"] == 9
    assert m.metadata()["vm_anon"][0] == 9
    m.write(c, 7, 70)
    assert m.read(p, 7) == 70 and m.read(p, 3) == 4
    m.check()
    assert m.metadata()["amap_slots"][1] == 10 * (16 + 4)
    all_exit(m)


def test_partial_unmap_of_a_private_amap_shared_after_fork(m):
    p = m.spawn()
    m.mmap(p, 0, 8)
    for v in range(8):
        m.write(p, v, v + 1)
    c = m.fork(p)
    m.munmap(c, 2, 3)                              # the amap stays shared: ppref
    (a,) = m.amaps().values()
    assert a["ppref"] == [2, 2, 1, 1, 1, 2, 2, 2] and a["nused"] == 8
    m.munmap(p, 2, 3)
    (a,) = m.amaps().values()
    assert a["nused"] == 5 and m.metadata()["vm_anon"][0] == 5
    m.check()
    assert [m.read(c, v) for v in (0, 1, 5, 6, 7)] == [1, 2, 6, 7, 8]
    all_exit(m)


def test_read_zero_fills_a_writable_anon(m):
    p = m.spawn()
    m.mmap(p, 0, 2)
    assert m.read(p, 0) == 0
    assert (ctr(m, "fault_zero_fill"), ctr(m, "pages_zeroed")) == (1, 1)
    assert "fault_zero_page" not in m.counters()   # UVM has no zero page for anon memory
    m.write(p, 0, 5)                               # mapped writable already: no fault
    assert ctr(m, "faults") == 1
    m.check()
    all_exit(m)


def test_first_touch_of_a_large_entry_gets_a_16_page_amap(m):
    p = m.spawn()
    m.mmap(p, 0, 1024)
    m.write(p, 500, 1)
    ents = m.entries(p)
    assert [(e["start"], e["end"]) for e in ents] == [(0, 496), (496, 512), (512, 1024)]
    assert [e["amap"] is not None for e in ents] == [False, True, False]
    (a,) = m.amaps().values()
    assert a["nslot"] == 16
    m.check()
    all_exit(m)


def test_unchunked_option_gives_one_amap_for_the_whole_entry():
    m = mmbench.open("uvm", ram_pages=64, amap_chunk=False)
    p = m.spawn()
    m.mmap(p, 0, 1024)
    m.write(p, 500, 1)
    assert len(m.entries(p)) == 1 and list(m.amaps().values())[0]["nslot"] == 1024
    all_exit(m)


def test_dontneed_private_reads_zero_and_frees_unshared_anons(m):
    p = m.spawn()
    m.mmap(p, 0, 4)
    for v in range(4):
        m.write(p, v, v + 1)
    c = m.fork(p)
    m.madvise_dontneed(c, 0, 2)                    # child still NEEDSCOPY: lets go of the amap
    assert [m.read(c, v) for v in range(4)] == [0, 0, 3, 4]
    assert [m.read(p, v) for v in range(4)] == [1, 2, 3, 4]
    m.madvise_dontneed(p, 0, 4)
    assert [m.read(p, v) for v in range(4)] == [0, 0, 0, 0]
    assert [m.read(c, v) for v in range(4)] == [0, 0, 3, 4]
    m.check()
    all_exit(m)


def test_dontneed_shared_keeps_the_data(m):
    p = m.spawn()
    m.mmap(p, 0, 2, shared=True)
    m.write(p, 1, 7)
    m.madvise_dontneed(p, 0, 2)
    assert m.read(p, 1) == 7
    all_exit(m)


def test_mremap_moves_entries_with_their_amap(m):
    p = m.spawn()
    m.mmap(p, 0, 4)
    for v in range(4):
        m.write(p, v, v + 1)
    c = m.fork(p)
    m.mremap(c, 1, 2, 100)
    assert [m.read(c, v) for v in (0, 100, 101, 3)] == [1, 2, 3, 4]
    assert ctr(m, "mremap_pages_moved") == 0       # the child had no PTEs yet
    m.write(c, 100, 9)
    assert m.read(p, 1) == 2
    m.check()
    all_exit(m)


def test_uvm_uses_the_pmap_block_not_the_freebsd_design():
    code = ("import sys, mmbench_uvm.core; "
            "print(sorted(m for m in sys.modules if m.startswith(('mmbench_freebsd', 'mmbench.blocks.pmap'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['mmbench.blocks.pmap', 'mmbench.blocks.pmap_netbsd']"


def test_out_of_memory_leaves_the_machine_unchanged():
    m = mmbench.open("uvm", ram_pages=2)
    p = m.spawn()
    m.mmap(p, 0, 4)
    m.write(p, 0, 1)
    m.write(p, 1, 2)
    c = m.fork(p)
    before = (m.amaps(), m.entries(c), m.counters())
    with pytest.raises(errors.OutOfMemory):
        m.write(c, 0, 5)                           # needs a copy, no frame left
    with pytest.raises(errors.OutOfMemory):
        m.read(p, 3)                               # needs a zero-fill
    assert (m.amaps(), m.entries(c), m.counters()) == before
    assert m.read(c, 1) == 2                       # minor faults need no frame
    m.check()
    all_exit(m)


# ------------------------------------------------------- against the reference
def random_ops(seed, n):
    rnd = random.Random(seed)
    for _ in range(n):
        k = rnd.random()
        vpn = rnd.randrange(0, 48)
        if k < 0.12:
            yield "mmap", (vpn, rnd.randrange(1, 12), rnd.random() < 0.3, rnd.random() < 0.85)
        elif k < 0.2:
            yield "munmap", (vpn, rnd.randrange(1, 10))
        elif k < 0.25:
            yield "mprotect", (vpn, rnd.randrange(1, 6), rnd.random() < 0.6)
        elif k < 0.5:
            yield "write", (vpn, rnd.randrange(1, 1 << 40))
        elif k < 0.7:
            yield "read", (vpn,)
        elif k < 0.78:
            yield "fork", ()
        elif k < 0.83:
            yield "exit", ()
        elif k < 0.9:
            yield "mremap", (vpn, rnd.randrange(1, 6), rnd.randrange(0, 64))
        else:
            yield "madvise_dontneed", (vpn, rnd.randrange(1, 6))


def outcome(machine, name, args):
    try:
        return "ok", getattr(machine, name)(*args)
    except errors.MMError as e:
        return type(e).__name__, None


def agree_with_reference(u, ops, rnd, max_live, check_every=1):
    """Run ops on u and a ReferenceMachine on random live pids: same outcomes,
    u.check() every `check_every` loads/stores and after every other op."""
    ref = ReferenceMachine()
    assert u.spawn() == ref.spawn()
    steps = 0
    for name, args in ops:
        live = u.live_pids()
        if not live:
            assert u.spawn() == ref.spawn()
            continue
        pid = rnd.choice(live)
        if name == "fork" and len(live) >= max_live:
            continue
        assert outcome(u, name, (pid,) + args) == outcome(ref, name, (pid,) + args), (name, args)
        steps += 1
        if steps % check_every == 0 or name not in ("read", "write"):
            u.check()
    u.check()
    all_exit(u)


@pytest.mark.parametrize("seed", range(10))
def test_agrees_with_reference_and_keeps_its_invariants(seed):
    u = mmbench.open("uvm", ram_pages=1 << 14, amap_chunk=seed % 2 == 0)
    agree_with_reference(u, random_ops(seed, 400), random.Random(seed + 1000), max_live=8)


@pytest.mark.parametrize("seed", range(4))
def test_out_of_memory_never_changes_state_under_random_ops(seed):
    u, ref = mmbench.open("uvm", ram_pages=6), ReferenceMachine()
    rnd = random.Random(seed + 2000)
    u.spawn(), ref.spawn()
    ooms = 0
    for name, args in random_ops(seed + 500, 600):
        live = u.live_pids()
        if not live:
            u.spawn(), ref.spawn()
            continue
        pid = rnd.choice(live)
        if name == "fork" and len(live) >= 6:
            continue
        before = (u.amaps(), {q: u.entries(q) for q in live}, u.metadata())
        got = outcome(u, name, (pid,) + args)
        if got[0] == "OutOfMemory":
            ooms += 1
            assert (u.amaps(), {q: u.entries(q) for q in live}, u.metadata()) == before
            continue
        assert got == outcome(ref, name, (pid,) + args), (name, args)
        u.check()
    assert ooms > 0
    all_exit(u)


def test_fork_chain_of_depth_16_has_no_chain():
    """64 pages written, 16 generations of fork each writing one page of its
    own: one amap per generation, every original anon shared by all 17, and
    the deepest process reaches any page in one slot lookup (one fault per
    page: fault-ahead off)."""
    m = mmbench.open("uvm", ram_pages=256, fault_ahead=False)
    pid = m.spawn()
    m.mmap(pid, 0, 81)
    for v in range(64):
        m.write(pid, v, v + 1)
    for level in range(16):
        pid = m.fork(pid)
        m.write(pid, 64 + level, level)
    md = m.metadata()
    # 81 slots are allocated as 82 (amap_roundup_slots: the int array in 8-byte units)
    assert md["vm_amap"] == (17, 17 * 80) and md["amap_slots"] == (17 * 82 * 16,) * 2
    assert md["vm_anon"][0] == 64 + 16 and ctr(m, "amap_copies") == 16
    assert m.anon_ref(pid, 0) == 17
    faults = ctr(m, "faults")
    assert [m.read(pid, v) for v in range(64)] == list(range(1, 65))
    assert ctr(m, "faults") - faults == 64 and ctr(m, "fault_minor") == 64
    m.check()
    all_exit(m)


# ------------------------------------------- chunking, trymerge, amap_extend
def spans(m, pid):
    return [(e["start"], e["end"]) for e in m.entries(pid)]


def test_writing_a_large_mapping_grows_amaps_until_amap_extend_refuses():
    """Each first touch chunks (16 pages) and uvm_mapent_trymerge folds the
    chunk into the previous entry's amap (amap_extend forwards) until the
    amap would need reallocating to UVM_AMAP_LARGE (256) slots: E2BIG, a new
    amap starts.  The last 240 pages are below 256 and get one amap whole."""
    m = mmbench.open("uvm", ram_pages=1 << 12)
    p = m.spawn()
    m.mmap(p, 0, 1024)
    for v in range(1024):
        m.write(p, v, v + 1)
    assert spans(m, p) == [(0, 240), (240, 480), (480, 720), (720, 784), (784, 1024)]
    amaps = m.amaps()
    assert sorted(a["nslot"] for a in amaps.values()) == [64, 240, 240, 240, 240]
    assert all(a["am_ref"] == 1 and a["ppref"] is None for a in amaps.values())
    assert ctr(m, "vma_merges") == 3 * (240 // 16 - 1) + (64 // 16 - 1)   # chunks folded in
    m.check()
    all_exit(m)


def test_writing_65536_pages_leaves_one_entry_per_240_pages():
    m = mmbench.open("uvm", ram_pages=1 << 17)
    p = m.spawn()
    m.mmap(p, 0, 65536)
    for v in range(65536):
        m.write(p, v, v)
    ents = m.entries(p)
    assert len(ents) == len(m.amaps()) == 274          # 4,082 before trymerge was modelled
    assert all(e["end"] - e["start"] <= 240 for e in ents)
    m.check()
    all_exit(m)


def test_descending_writes_pull_the_next_amap_backwards():
    m = mmbench.open("uvm", ram_pages=1 << 12)
    p = m.spawn()
    m.mmap(p, 0, 1024)
    for v in reversed(range(1024)):
        m.write(p, v, v + 1)
    assert spans(m, p) == [(0, 240), (240, 304), (304, 544), (544, 784), (784, 1024)]
    assert [m.read(p, v) for v in (0, 239, 240, 783, 1023)] == [1, 240, 241, 784, 1024]
    m.check()
    all_exit(m)


def test_sparse_touches_still_chunk():
    m = mmbench.open("uvm", ram_pages=1 << 12)
    p = m.spawn()
    m.mmap(p, 0, 1024)
    for v in (0, 100, 500):
        m.write(p, v, 1)
    assert [(e["start"], e["end"], e["amap"] is not None) for e in m.entries(p)] == [
        (0, 16, True), (16, 96, False), (96, 112, True), (112, 496, False),
        (496, 512, True), (512, 1024, False)]
    assert sorted(a["nslot"] for a in m.amaps().values()) == [16, 16, 16]
    m.check()
    all_exit(m)


def test_fork_and_the_child_s_writes_keep_the_entry_count():
    m = mmbench.open("uvm", ram_pages=1 << 12)
    p = m.spawn()
    m.mmap(p, 0, 1024)
    for v in range(1024):
        m.write(p, v, v + 1)
    before = spans(m, p)
    c = m.fork(p)
    for v in range(1024):
        m.write(c, v, 7)
    assert spans(m, p) == spans(m, c) == before        # amap_copy copies whole entries
    assert ctr(m, "amap_copies") == len(before)
    assert len(m.amaps()) == 2 * len(before)
    m.check()
    all_exit(m)


# -------------------------------------------------- the NetBSD x86 pmap
def test_a_page_mapped_once_costs_no_pv_entry():
    m = mmbench.open("uvm", ram_pages=1 << 10)
    p = m.spawn()
    m.mmap(p, 0, 100)
    for v in range(100):
        m.write(p, v, v)
    assert ctr(m, "pv_entries") == 0 and m.metadata()["pv_page"] == (0, 0)
    assert m.rmap_walk(p, 7) == [(p, 7)]
    all_exit(m)


def test_a_second_mapping_after_fork_costs_one_pv_entry():
    m = mmbench.open("uvm", ram_pages=1 << 10, fault_ahead=False)
    p = m.spawn()
    m.mmap(p, 0, 100)
    for v in range(100):
        m.write(p, v, v)
    c = m.fork(p)
    assert m.read(c, 5) == 5                        # the child maps the shared anon read-only
    assert ctr(m, "pv_entries") == 1
    assert m.metadata()["pv_page"] == (1, 4096)     # 63 pv_entry of 64 B per pv_page
    assert m.rmap_walk(c, 5) == [(p, 5), (c, 5)]
    m.munmap(p, 0, 100)                             # the embedded slot empties; the child's
    assert m.rmap_walk(c, 5) == [(c, 5)]            # mapping stays in its pv_entry
    m.check()
    m.exit(c)
    assert m.metadata()["pv_page"] == (0, 0)        # drained with its last entry
    all_exit(m)


def test_pv_pages_hold_63_entries():
    m = mmbench.open("uvm", ram_pages=1 << 10, fault_ahead=False)
    p = m.spawn()
    m.mmap(p, 0, 64)
    for v in range(64):
        m.write(p, v, v)
    c = m.fork(p)
    for v in range(64):
        m.read(c, v)
    assert ctr(m, "pv_entries") == 64 and m.metadata()["pv_page"] == (2, 8192)
    m.check()
    all_exit(m)


def test_vmspace_and_pmap_are_charged_per_process(m):
    p = m.spawn()
    assert m.metadata()["vmspace"] == (1, 344) and m.metadata()["pmap"] == (1, 448)
    m.fork(p)
    assert m.metadata()["vmspace"] == (2, 688) and m.metadata()["pmap"] == (2, 896)
    assert {"vmspace", "pmap", "pv_page"} <= set(m.per_process_structs())
    all_exit(m)


# ------------------------------------------------------------ fault-ahead
def child_reads(fault_ahead):
    m = mmbench.open("uvm", ram_pages=1 << 10, fault_ahead=fault_ahead)
    p = m.spawn()
    m.mmap(p, 0, 64)
    for v in range(64):
        m.write(p, v, v + 1)
    c = m.fork(p)
    faults = ctr(m, "faults")
    assert [m.read(c, v) for v in range(64)] == list(range(1, 65))
    return m, p, c, ctr(m, "faults") - faults


def test_fault_ahead_maps_resident_neighbours():
    m, p, c, faults = child_reads(True)
    assert faults == 13                  # pages 0, 5, 10 … 60: each maps up to 4 ahead
    assert ctr(m, "pv_entries") == 64    # every child mapping is a second mapping
    m.write(c, 1, 99)                    # a neighbour was mapped read-only: COW still happens
    assert (m.read(p, 1), m.read(c, 1)) == (2, 99) and ctr(m, "fault_cow_copy") == 1
    m.check()
    all_exit(m)


def test_fault_ahead_can_be_turned_off():
    m, p, c, faults = child_reads(False)
    assert faults == 64
    with pytest.raises(errors.InvalidArgument):
        mmbench.open("uvm", fault_ahead="yes")
    all_exit(m)


def test_fault_ahead_maps_behind_and_stays_inside_the_entry():
    m = mmbench.open("uvm", ram_pages=1 << 10)
    p = m.spawn()
    m.mmap(p, 0, 8)
    m.mmap(p, 8, 8, writable=False)      # a different entry right after
    for v in range(8):
        m.write(p, v, v + 1)
    c = m.fork(p)
    m.read(c, 5)                         # maps 2, 3, 4 behind and 6, 7 ahead (entry ends at 8)
    faults = ctr(m, "faults")
    assert [m.read(c, v) for v in (2, 3, 4, 6, 7)] == [3, 4, 5, 7, 8] and ctr(m, "faults") == faults
    m.read(c, 1)
    assert ctr(m, "faults") == faults + 1
    m.check()
    all_exit(m)


# ------------------------------------ large mappings against the reference
def random_large_ops(seed, n):
    rnd = random.Random(seed)
    for _ in range(n):
        k = rnd.random()
        vpn = rnd.randrange(0, 1600)
        if k < 0.08:
            yield "mmap", (rnd.randrange(0, 1200), rnd.randrange(16, 700), rnd.random() < 0.2,
                           rnd.random() < 0.9)
        elif k < 0.13:
            yield "munmap", (vpn, rnd.randrange(1, 200))
        elif k < 0.17:
            yield "mprotect", (vpn, rnd.randrange(1, 100), rnd.random() < 0.6)
        elif k < 0.55:
            base, step = rnd.randrange(0, 1600), rnd.choice((1, 1, -1, 3))
            for i in range(rnd.randrange(1, 60)):
                yield "write", (base + step * i, rnd.randrange(1, 1 << 40))
        elif k < 0.75:
            yield "read", (vpn,)
        elif k < 0.82:
            yield "fork", ()
        elif k < 0.86:
            yield "exit", ()
        elif k < 0.92:
            yield "mremap", (vpn, rnd.randrange(1, 64), rnd.randrange(0, 1700))
        else:
            yield "madvise_dontneed", (vpn, rnd.randrange(1, 64))


@pytest.mark.parametrize("seed", range(6))
def test_large_mappings_agree_with_reference_and_keep_invariants(seed):
    u = mmbench.open("uvm", ram_pages=1 << 15, fault_ahead=seed % 3 != 2)
    ops = ((name, args) for name, args in random_large_ops(seed, 500)
           if name != "write" or 0 <= args[0] < 1 << 20)
    agree_with_reference(u, ops, random.Random(seed + 3000), max_live=5, check_every=7)
    assert u.counters()["vma_merges"] > 0          # chunks were folded into neighbours


# ------------------------------------------------- uvm_map_enter's merges
def test_mmap_merges_back_forward_and_both(m):
    p = m.spawn()
    m.mmap(p, 10, 5)
    m.mmap(p, 0, 5)
    m.mmap(p, 5, 5)                                # fills the hole: the three become one
    assert spans(m, p) == [(0, 15)] and ctr(m, "vma_merges") == 2
    m.mmap(p, 15, 3, writable=False)               # other protection: no merge
    assert spans(m, p) == [(0, 15), (15, 18)]
    m.check()
    all_exit(m)


def test_shared_mmap_extends_an_unshared_amap_only(m):
    p = m.spawn()
    m.mmap(p, 0, 4, shared=True)
    m.write(p, 1, 11)
    m.mmap(p, 4, 4, shared=True)                   # amap_extend: no second amap
    assert spans(m, p) == [(0, 8)] and len(m.amaps()) == 1
    m.write(p, 6, 66)
    c = m.fork(p)                                  # the amap is shared now (am_ref 2) ...
    m.mmap(p, 8, 2, shared=True)                   # ... so a new mapping gets its own
    assert spans(m, p) == [(0, 8), (8, 10)] and len(m.amaps()) == 2
    assert [m.read(c, v) for v in (1, 6)] == [11, 66]
    m.check()
    all_exit(m)
