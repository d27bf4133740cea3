"""Device migration in the linux (HMM) design: values never change, device page
tables stay coherent, the ping-pong and bookkeeping numbers are what the docs say."""
import pytest

import mmbench
from mmbench import devices, errors

from devcheck import run_random, run_random_oom


@pytest.mark.parametrize("seed", range(12))
def test_linux_hmm_random_matches_reference(seed):
    run_random("linux", seed)


@pytest.mark.parametrize("seed", range(4))
def test_linux_hmm_remote_mode_matches_reference(seed):
    run_random("linux", 100 + seed, device_fault="remote")


def test_migrate_roundtrip_and_oversubscription():
    m = mmbench.open("linux", devices=1, device_pages=64)
    p = m.spawn()
    m.mmap(p, 0, 100)
    for v in range(100):
        m.write(p, v, v + 1)
    m.migrate(p, 0, 100, 1)                  # 100 pages into 64 frames: 36 FIFO evictions
    m.check()
    c = m.counters()
    assert c["pages_to_device"] == 100 and c["device_evictions"] == 36 and c["pages_to_host"] == 36
    assert m.frames_used(1) == 64
    assert [m.page_node(p, v) for v in (0, 35, 36, 99)] == [0, 0, 1, 1]   # the oldest went home
    assert all(m.read(p, v) == v + 1 for v in range(100))
    assert c["dma_bytes"] == (100 + 36) * 4096
    m.check()
    m.exit(p)
    assert m.leaks() == []


def test_cpu_fault_on_device_private_entry_migrates_to_ram():
    m = mmbench.open("linux", devices=1)
    p = m.spawn()
    m.mmap(p, 0, 4)
    m.write(p, 1, 5)
    m.migrate(p, 0, 4, 1)
    assert m.page_node(p, 1) == 1 and m.device_entries(p, 1)[1] == (1, True)
    assert m.read(p, 1) == 5
    assert m.page_node(p, 1) == 0
    assert m.counter("fault_device_return") == 1
    assert 1 not in m.device_entries(p, 1)   # the notifier erased the device's entry
    m.check()


def test_fork_write_protects_device_private_entries():
    m = mmbench.open("linux", devices=1)
    p = m.spawn()
    m.mmap(p, 0, 2)
    m.device_write(1, p, 0, 7)               # migrate on device fault
    assert m.page_node(p, 0) == 1
    c = m.fork(p)
    assert m.device_entries(p, 1) == {}      # fork's PROTECTION notifier invalidated it
    m.device_write(1, p, 0, 8)               # device write: page home, COW, back to device
    assert (m.read(p, 0), m.read(c, 0)) == (8, 7)
    m.check()


def test_shared_mapping_is_mapped_remotely():
    m = mmbench.open("linux", devices=1)
    p = m.spawn()
    m.mmap(p, 0, 2, shared=True)
    m.write(p, 0, 3)
    assert m.device_read(1, p, 0) == 3
    assert m.page_node(p, 0) == 0 and m.device_entries(p, 1)[0] == (0, True)
    m.migrate(p, 0, 2, 1)                    # shmem pages are not migrated by migrate_vma
    assert m.page_node(p, 0) == 0
    m.check()


def test_errors():
    m = mmbench.open("linux", devices=1)
    p = m.spawn()
    m.mmap(p, 0, 2, writable=False)
    with pytest.raises(errors.SegmentationFault):
        m.device_read(1, p, 5)
    with pytest.raises(errors.ProtectionFault):
        m.device_write(1, p, 0, 1)
    with pytest.raises(errors.InvalidArgument):
        m.migrate(p, 0, 3, 1)
    with pytest.raises(errors.InvalidArgument):
        mmbench.open("linux", devices=1, device_fault="teleport")


def test_device_fault_defaults_to_2mib_migrate_on_fault():
    m = mmbench.open("linux", devices=1)
    assert (m.options["device_fault"], m.options["device_fault_pages"]) == ("migrate", 512)


def test_pingpong_linux_migrate_2mib():
    """Default (SVM-driver style): the first device write of a round migrates the whole
    2 MiB block in one transfer; the first CPU write brings the block home the same way."""
    r = devices.pingpong_report("linux", npages=512, rounds=4)
    c = r["counts"]
    assert c["pages_to_device"] == 4 * 512 and c["pages_to_host"] == 4 * 512
    assert c["device_faults"] == 4 and c["fault_device_return"] == 4
    assert r["to_device"]["transfers"] == 4 and r["to_host"]["transfers"] == 4
    # one notifier call per migration each way; the one home erases the 512 device entries
    assert c["notifier_calls"] == 8 and c["notifier_invalidated"] == 4 * 512
    assert c["rmap_visits"] == 0             # one mapper: the collected PTE is enough
    assert r["to_device"]["gbps"] > 50       # 2 MiB per transfer amortises the latency


def test_pingpong_linux_migrate_one_page():
    """device_fault_pages=1: every device write migrates one page (one fault, one 4 KiB
    transfer), every CPU write brings one page home (as dmirror_devmem_fault does)."""
    r = devices.pingpong_report("linux", npages=512, rounds=4, device_fault_pages=1)
    c = r["counts"]
    assert c["pages_to_device"] == 4 * 512 and c["pages_to_host"] == 4 * 512
    assert c["device_faults"] == 4 * 512 and c["fault_device_return"] == 4 * 512
    assert c["dma_transfers"] == 8 * 512
    assert c["notifier_calls"] == 8 * 512 and c["notifier_invalidated"] == 4 * 512
    assert r["to_device"]["gbps"] < 4.0      # latency-bound: one 4 KiB transfer per fault


def test_pingpong_linux_remote_dmirror():
    """device_fault="remote" (lib/test_hmm.c): hmm_range_fault maps 32 host pages per
    device fault, nothing migrates, and the CPU never faults on device memory."""
    r = devices.pingpong_report("linux", npages=512, rounds=4, device_fault="remote")
    c = r["counts"]
    assert c["device_faults"] == 512 // 32
    assert c["pages_to_device"] == c["pages_to_host"] == c["dma_transfers"] == 0
    assert c["fault_device_return"] == 0


def test_remote_device_fault_maps_a_32_page_window():
    m = mmbench.open("linux", devices=1, device_fault="remote")
    p = m.spawn()
    m.mmap(p, 0, 100)
    m.write(p, 40, 9)
    assert m.device_read(1, p, 40) == 9
    ents = m.device_entries(p, 1)
    assert sorted(ents) == list(range(32, 64))           # the aligned window [32, 64)
    assert ents[40] == (0, True) and ents[33] == (0, False)   # host page; zero page, read-only
    assert m.counter("device_faults") == 1 and m.counter("pages_to_device") == 0
    m.device_write(1, p, 70, 5)                          # REQ_WRITE: all of [64, 96) write-faulted
    ents = m.device_entries(p, 1)
    assert all(ents[v] == (0, True) for v in range(64, 96)) and 96 not in ents
    assert m.counter("device_faults") == 2
    assert m.read(p, 70) == 5 and m.read(p, 71) == 0
    m.check()
    m.migrate(p, 0, 100, 1)                              # explicit migrate still moves pages
    assert m.page_node(p, 40) == 1 and m.counter("pages_to_device") == 100
    assert m.read(p, 40) == 9 and m.page_node(p, 40) == 0 and m.page_node(p, 41) == 1   # one page home
    m.check()


def test_migrate_collect_counts_ptep_clear_flush():
    """migrate_vma_collect_pmd: each AnonExclusive PTE is cleared with ptep_clear_flush,
    then one flush_tlb_range for the PTE table; a page shared after fork is cleared
    without a flush, its other mapper by try_to_migrate (ptep_clear_flush)."""
    m = mmbench.open("linux", devices=1)
    p = m.spawn()
    m.mmap(p, 0, 8)
    for v in range(8):
        m.write(p, v, v + 1)
    before = m.counters()
    m.migrate(p, 0, 8, 1)
    d = {k: m.counter(k) - before[k] for k in before}
    assert d["pte_zaps"] == 8 and d["tlb_flushes"] == 8 + 1
    q = mmbench.open("linux", devices=1)
    p = q.spawn()
    q.mmap(p, 0, 4)
    for v in range(4):
        q.write(p, v, v + 1)
    c = q.fork(p)
    before = q.counters()
    q.migrate(p, 0, 4, 1)                    # shared with the child: both mappers move
    d = {k: q.counter(k) - before[k] for k in before}
    assert d["pte_zaps"] == 8 and d["tlb_flushes"] == 4 + 1   # child's 4 + one range flush
    assert q.page_node(c, 2) == 1 and q.read(c, 2) == 3
    q.check()


def test_bookkeeping_throughput_small():
    r = devices.bookkeeping_throughput("linux", npages=4096)
    assert r["pages_moved"] == 2 * 4096 and r["leaks"] == []
    assert r["transfer"]["counts"]["dma_transfers"] == 2 * 4096 // 512


@pytest.mark.parametrize("name,opts", [("linux", {}), ("linux", {"device_fault_pages": 512}),
                                       ("gmem", {}), ("gmem", {"granularity_pages": 1})])
def test_replay_with_device_ops_matches_reference(name, opts):
    """The nogil engine path: statuses and values of a trace with migrations, device
    accesses, forks and faults equal the reference model's."""
    import numpy as np
    from mmbench.reference import ReferenceMachine
    t = mmbench.TraceBuilder()
    p = t.spawn()
    t.mmap(p, 0, 600)
    t.mmap(p, 700, 8, shared=True)
    t.write_range(p, 0, 600, step=3)
    t.migrate(p, 0, 300, 1)
    for v in range(0, 600, 7):
        t.device_write(2, p, v, v + 11)
    c = t.fork(p)
    t.device_write(1, c, 5, 99)
    t.device_write(1, p, 701, 5)
    t.migrate(p, 100, 500, 2)
    t.read_range(p, 0, 600)
    t.read_range(c, 0, 600)
    t.read(c, 701)
    t.device_read(2, p, 900)                  # SegmentationFault, recorded
    t.madvise_dontneed(c, 0, 600)
    t.read_range(c, 0, 20)
    t.exit(c)
    t.exit(p)
    tr = t.build()
    m = mmbench.open(name, devices=2, device_pages=200, **opts)
    ref = ReferenceMachine(devices=2, device_pages=200)
    got, want = m.replay(tr, timing=False, frame=False), ref.replay(tr, timing=False, frame=False)
    assert np.array_equal(got["status"], want["status"])
    assert np.array_equal(got["value"], want["value"])
    assert m.leaks() == []


def test_migration_with_other_mappers():
    """A page shared with a fork child migrates for both: try_to_migrate walks the rmap,
    the child's PTE becomes device-private too and its CPU access brings the page home.
    (One page per fault, so that the child's device read moves only page 64.)"""
    m = mmbench.open("linux", devices=1, device_fault_pages=1)
    p = m.spawn()
    m.mmap(p, 0, 65)
    for v in range(65):
        m.write(p, v, v + 1)
    c = m.fork(p)
    m.device_read(1, c, 64, )                # the child's device registers its mirror
    m.migrate(c, 60, 1, 0)                   # (and has nothing of 0..63 mapped)
    visits = m.counter("rmap_visits")
    m.migrate(p, 0, 64, 1)
    assert m.page_node(c, 5) == 1 and m.counter("rmap_visits") - visits == 2 * 64
    assert m.frames_used(1) == 65            # one device page per shared page
    assert set(m.device_entries(c, 1)) == {64}   # nothing stale in the child's mirror
    assert m.read(c, 5) == 6 and m.page_node(p, 5) == 0    # home for both mappers
    m.write(p, 5, 7)
    assert (m.read(p, 5), m.read(c, 5)) == (7, 6)
    m.check()


@pytest.mark.parametrize("name", ["linux", "shmem", "freebsd"])
def test_out_of_memory_changes_no_value(name):
    ooms = sum(run_random_oom(name, seed, **{"device_fault_pages": [1, 8][seed % 2]}) for seed in range(20))
    assert ooms >= 10                        # the sequences do run out of memory


@pytest.mark.parametrize("name,opts", [(n, o) for n in ("linux", "shmem", "freebsd")
                                       for o in ({}, {"device_fault_pages": 8})]
                         + [("gmem", {}), ("gmem", {"granularity_pages": 4, "peer_shared": "marked"})])
def test_shared_conformance_suite_oversubscribed(name, opts):
    """The project's conformance state machine with 4 frames per device (evictions)."""
    from hypothesis import settings
    from hypothesis.stateful import run_state_machine_as_test
    from mmbench.conformance import conformance_machine
    run_state_machine_as_test(conformance_machine(name, device_pages=4, options=opts),
                              settings=settings(max_examples=25, stateful_step_count=30, deadline=None))
