"""Device migration in the freebsd design (fictitious pages in the vm_object):
values never change, CPU mappings go through the pv lists, a device page in a
backing object is found by the chain walk and copied up on a COW write, the
ping-pong numbers are the docs'."""
import pytest

import mmbench
from mmbench import devices

from devcheck import run_random


@pytest.mark.parametrize("seed", range(12))
def test_freebsd_random_matches_reference(seed):
    m = run_random("freebsd", seed)
    assert m.counter("pages_to_device") > 0 and m.counter("device_faults") > 0


@pytest.mark.parametrize("seed", range(3))
def test_freebsd_random_block_device_faults(seed):
    run_random("freebsd", 300 + seed, device_fault_pages=4)


@pytest.mark.parametrize("seed", range(3))
def test_freebsd_random_without_prefault_or_pmap_copy(seed):
    run_random("freebsd", 400 + seed, prefault=False, pmap_copy=False)


def test_migrate_roundtrip_and_oversubscription():
    m = mmbench.open("freebsd", devices=1, device_pages=64)
    p = m.spawn()
    m.mmap(p, 0, 100)
    for v in range(100):
        m.write(p, v, v + 1)
    m.migrate(p, 0, 100, 1)                  # 100 pages into 64 frames: 36 FIFO evictions
    m.check()
    c = m.counters()
    assert c["pages_to_device"] == 100 and c["device_evictions"] == 36 and c["pages_to_host"] == 36
    assert [m.page_node(p, v) for v in (0, 35, 36, 99)] == [0, 0, 1, 1]
    assert c["pte_zaps"] == 100               # pmap_remove_all of each host page
    assert all(m.read(p, v) == v + 1 for v in range(100))
    assert m.counter("fault_device_return") == 64
    m.exit(p)
    assert m.leaks() == []


def test_migration_unmaps_every_mapper_through_pv_entries():
    m = mmbench.open("freebsd", devices=1)
    p = m.spawn()
    m.mmap(p, 0, 4)
    m.write(p, 2, 9)
    c = m.fork(p)                            # pmap_copy: the child maps the page too
    assert len(m.rmap_walk(p, 2)) == 2
    before = m.counters()
    m.migrate(p, 2, 1, 1)
    assert m.counter("pte_zaps") - before["pte_zaps"] == 2
    assert m.page_node(c, 2) == 1            # one page, in the shared backing object
    m.check()


def test_cow_write_to_a_device_page_in_a_backing_object():
    m = mmbench.open("freebsd", devices=1)
    p = m.spawn()
    m.mmap(p, 0, 2)
    m.write(p, 0, 5)
    c = m.fork(p)
    m.write(p, 1, 1)                         # the parent now has a shadow over the backing object
    m.migrate(c, 0, 1, 1)                    # the backing object's page goes to the device
    assert m.page_node(p, 0) == m.page_node(c, 0) == 1
    m.check()
    m.write(c, 0, 6)                         # home into the backing object, then copied up
    assert (m.read(p, 0), m.read(c, 0)) == (5, 6)
    assert m.counter("fault_device_return") == 1 and m.counter("fault_cow_copy") >= 1
    m.check()
    m.exit(c)
    m.exit(p)
    assert m.leaks() == []


def test_fork_invalidates_writable_device_entries():
    m = mmbench.open("freebsd", devices=1)
    p = m.spawn()
    m.mmap(p, 0, 2)
    m.device_write(1, p, 0, 7)
    c = m.fork(p)
    m.device_write(1, p, 0, 8)               # device fault: home, COW copy, back to the device
    assert (m.read(p, 0), m.read(c, 0)) == (8, 7)
    m.check()


def test_pingpong_numbers():
    rep = devices.pingpong_report("freebsd")
    c = rep["counts"]
    assert (c["device_faults"], c["pages_to_device"], c["pages_to_host"]) == (2048, 2048, 2048)
    assert (c["dma_transfers_to_device"], c["dma_transfers_to_host"]) == (2048, 2048)
    assert c["notifier_calls"] == 1 and c["rmap_visits"] == 4096     # pv lists, no notifier
    assert round(rep["to_device"]["gbps"], 2) == 3.85
    big = devices.pingpong_report("freebsd", device_fault_pages=512)["counts"]
    assert (big["device_faults"], big["dma_transfers_to_device"]) == (4, 4)


@pytest.mark.parametrize("k", [1, 3])
def test_migration_with_other_mappers(k):
    """The docs' table: the parent populates 512 pages, forks k children,
    migrates the pages to the device; then every child reads every page."""
    m = mmbench.open("freebsd", devices=1)
    p = m.spawn()
    m.mmap(p, 0, 512)
    for v in range(512):
        m.write(p, v, v + 1)
    kids = [m.fork(p) for _ in range(k)]
    b = m.counters()
    m.migrate(p, 0, 512, 1)
    a = m.counters()
    assert a["rmap_visits"] - b["rmap_visits"] == 512 * (k + 1)
    assert a["pte_zaps"] - b["pte_zaps"] == 512 * (k + 1)
    assert (m.frames_used(1), m.frames_used(0)) == (512, 0)
    assert all(m.read(c, v) == v + 1 for c in kids for v in range(512))
    z = m.counters()
    assert (z["pages_to_host"] - a["pages_to_host"], z["dma_transfers"] - a["dma_transfers"]) == (512, 512)
    assert z["rmap_visits"] - a["rmap_visits"] == 512
    m.check()



RAM = 24


def _host_left_with(m, p, free, top):
    """Write fresh pages from `top` until `free` host frames are left."""
    while RAM - m.frames_used(0) > free:
        m.write(p, top, 100 + top)
        top += 1
    return top


def _device_full():
    """Pages 0 and 1 on the full 2-frame device, pages 2.. on the host."""
    m = mmbench.open("freebsd", devices=1, device_pages=2, ram_pages=RAM)
    p = m.spawn()
    m.mmap(p, 0, 64)
    m.write(p, 0, 10)
    m.write(p, 1, 11)
    m.migrate(p, 0, 2, 1)
    assert m.frames_used(1) == 2
    return m, p


def test_migrate_home_short_of_frames_changes_nothing():
    """Two fictitious pages need two host frames: with one free the migrate is
    refused before the first page moves."""
    from mmbench.conformance import _oom_footprint
    m, p = _device_full()
    _host_left_with(m, p, 1, 2)
    before = _oom_footprint(m)
    with pytest.raises(mmbench.errors.OutOfMemory):
        m.migrate(p, 0, 2, 0)
    assert _oom_footprint(m) == before
    assert [m.page_node(p, v) for v in (0, 1)] == [1, 1]
    m.check()
    assert [m.device_read(1, p, v) for v in (0, 1)] == [10, 11]


def test_device_access_that_cannot_migrate_is_served_remotely():
    """Device full and the CPU fault takes the last host frame: the eviction the
    migration needs has nowhere to go, so the access uses the host page over
    the link instead of failing after the fault."""
    m, p = _device_full()
    top = _host_left_with(m, p, 1, 2)
    m.device_write(1, p, top, 77)                 # faults the last frame in, stays on the host
    assert m.page_node(p, top) == 0 and m.frames_used(0) == RAM
    assert m.device_read(1, p, top) == 77 and m.read(p, top) == 77
    m.check()
    m.exit(p)
    assert m.leaks() == []
