"""Device migration in the shmem design (device entries in the page cache):
values never change, every mapper is unmapped through i_mmap, reflink-shared
frames move for every file holding them, the ping-pong numbers are the docs'."""
import pytest

import mmbench
from mmbench import devices

from devcheck import run_random


@pytest.mark.parametrize("seed", range(12))
def test_shmem_random_matches_reference(seed):
    m = run_random("shmem", seed)
    assert m.counter("pages_to_device") > 0 and m.counter("device_faults") > 0


@pytest.mark.parametrize("seed", range(3))
def test_shmem_random_2mib_device_faults(seed):
    run_random("shmem", 200 + seed, device_fault_pages=4)


def test_migrate_roundtrip_and_oversubscription():
    m = mmbench.open("shmem", devices=1, device_pages=64)
    p = m.spawn()
    m.mmap(p, 0, 100)
    for v in range(100):
        m.write(p, v, v + 1)
    m.migrate(p, 0, 100, 1)                  # 100 pages into 64 frames: 36 FIFO evictions
    m.check()
    c = m.counters()
    assert c["pages_to_device"] == 100 and c["device_evictions"] == 36 and c["pages_to_host"] == 36
    assert [m.page_node(p, v) for v in (0, 35, 36, 99)] == [0, 0, 1, 1]
    assert c["pte_zaps"] == 100 and c["i_mmap_visits"] == 136   # every move walks i_mmap
    assert all(m.read(p, v) == v + 1 for v in range(100))
    assert m.counter("fault_device_return") == 64
    m.exit(p)
    assert m.leaks() == []


def test_migration_unmaps_every_mapper_of_a_shared_file():
    m = mmbench.open("shmem", devices=1)
    p = m.spawn()
    m.mmap(p, 0, 4, shared=True)
    m.write(p, 2, 9)
    c = m.fork(p)
    assert m.read(c, 2) == 9                 # the child maps the page too
    before = m.counters()
    m.migrate(p, 2, 1, 1)
    d = {k: m.counter(k) - before[k] for k in ("pte_zaps", "rmap_visits", "i_mmap_visits")}
    assert d == {"pte_zaps": 2, "rmap_visits": 2, "i_mmap_visits": 1}
    assert m.page_node(c, 2) == 1
    m.check()
    assert m.read(c, 2) == 9 and m.page_node(p, 2) == 0
    assert m.counter("fault_device_return") == 1
    m.check()


def test_reflink_shared_frame_moves_for_every_holder():
    m = mmbench.open("shmem", devices=1)
    p = m.spawn()
    m.mmap(p, 0, 2)
    m.write(p, 0, 5)
    c = m.fork(p)                            # the child's file is a reflink clone
    m.migrate(p, 0, 1, 1)
    assert m.page_node(p, 0) == m.page_node(c, 0) == 1
    assert m.frames_used(1) == 1             # one frame, still shared by both files
    m.check()
    m.device_write(1, c, 0, 6)               # a device write breaks the reflink for the child
    assert (m.read(p, 0), m.read(c, 0)) == (5, 6)
    m.check()
    m.exit(c)
    m.exit(p)
    assert m.leaks() == []


def test_notifier_erases_device_entries_on_cpu_changes():
    m = mmbench.open("shmem", devices=1)
    p = m.spawn()
    m.mmap(p, 0, 4)
    m.device_write(1, p, 1, 3)
    calls = m.counter("notifier_calls")
    m.mprotect(p, 0, 4, False)               # wrprotect_range tells the device
    assert m.counter("notifier_calls") > calls and m.counter("notifier_invalidated") == 1
    assert m.device_read(1, p, 1) == 3
    m.check()


def test_pingpong_numbers():
    rep = devices.pingpong_report("shmem")
    c = rep["counts"]
    assert (c["device_faults"], c["pages_to_device"], c["pages_to_host"]) == (2048, 2048, 2048)
    assert (c["dma_transfers_to_device"], c["dma_transfers_to_host"]) == (2048, 2048)
    assert c["notifier_calls"] == 4096 and c["rmap_visits"] == 4096
    assert round(rep["to_device"]["gbps"], 2) == 3.85
    big = devices.pingpong_report("shmem", device_fault_pages=512)["counts"]
    assert (big["device_faults"], big["dma_transfers_to_device"]) == (4, 4)


@pytest.mark.parametrize("k", [1, 3])
def test_migration_with_other_mappers(k):
    """The docs' table: the parent populates 512 pages, forks k children,
    migrates the pages to the device; then every child reads every page."""
    m = mmbench.open("shmem", devices=1)
    p = m.spawn()
    m.mmap(p, 0, 512)
    for v in range(512):
        m.write(p, v, v + 1)
    kids = [m.fork(p) for _ in range(k)]
    b = m.counters()
    m.migrate(p, 0, 512, 1)
    a = m.counters()
    assert a["rmap_visits"] - b["rmap_visits"] == 512 * (k + 1)
    assert a["pte_zaps"] - b["pte_zaps"] == 512
    assert (m.frames_used(1), m.frames_used(0)) == (512, 0)
    assert all(m.read(c, v) == v + 1 for c in kids for v in range(512))
    z = m.counters()
    assert (z["pages_to_host"] - a["pages_to_host"], z["dma_transfers"] - a["dma_transfers"]) == (512, 512)
    assert z["rmap_visits"] - a["rmap_visits"] == 512 * (k + 1)
    m.check()
