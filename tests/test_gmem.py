"""The gmem design: agrees with the reference on random sequences with devices,
keeps its logical page table as the RFC does, and gives the documented numbers."""
import pytest

import mmbench
from mmbench import devices, errors

from devcheck import run_random, run_random_oom


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("granularity", [512, 1, 8])
def test_gmem_random_matches_reference(seed, granularity):
    run_random("gmem", seed, granularity_pages=granularity)


def test_gm_mapping_lifecycle():
    m = mmbench.open("gmem", devices=1)
    p = m.spawn()
    m.mmap(p, 0, 8)
    assert m.gm_state(p, 3) is None                  # created on first touch only
    assert m.read(p, 3) == 0
    assert m.gm_state(p, 3) == ("CPU", 0)            # zero page disabled: a real frame
    assert m.counter("fault_zero_fill") == 1 and m.metadata()["page"][0] == 1
    m.madvise_dontneed(p, 0, 8)
    assert m.gm_state(p, 3) == ("NOMAP", 0)          # never freed dynamically
    assert m.metadata()["gm_mapping"][0] == 1
    m.munmap(p, 0, 8)                                # free_gm_mappings with the VMA
    assert m.metadata()["gm_mapping"][0] == 0
    m.check()


def test_device_fault_moves_a_2mib_block_and_cpu_fault_one_page():
    m = mmbench.open("gmem", devices=1)
    p = m.spawn()
    m.mmap(p, 0, 1024)
    for v in range(1024):
        m.write(p, v, v)
    assert m.device_read(1, p, 700) == 700
    c = m.counters()
    assert c["device_faults"] == 1 and c["pages_to_device"] == 512 and c["dma_transfers"] == 1
    assert [m.page_node(p, v) for v in (511, 512, 1023)] == [0, 1, 1]
    assert m.gm_state(p, 600) == ("DEVICE", 1)
    assert m.read(p, 600) == 600                      # gm_host_fault_locked: one page home
    assert m.gm_state(p, 600) == ("CPU", 0) and m.page_node(p, 601) == 1
    assert m.counter("fault_device_return") == 1
    m.check()


def test_granularity_option():
    m = mmbench.open("gmem", devices=1, granularity_pages=1)
    p = m.spawn()
    m.mmap(p, 0, 16)
    m.device_write(1, p, 5, 9)
    assert m.counter("pages_to_device") == 1 and m.page_node(p, 4) is None
    with pytest.raises(errors.InvalidArgument):
        mmbench.open("gmem", devices=1, granularity_pages=3)


def test_fork_brings_device_pages_home_then_cow():
    m = mmbench.open("gmem", devices=1)
    p = m.spawn()
    m.mmap(p, 0, 4)
    m.write(p, 0, 1)
    m.device_write(1, p, 1, 2)                        # the block (4 pages) moves to the device
    assert m.page_node(p, 0) == 1
    c = m.fork(p)
    assert m.page_node(p, 0) == 0 and m.gm_state(c, 0) == ("CPU", 0)
    m.device_write(1, c, 0, 5)                        # the child's view moves; COW broken by the copy
    assert (m.read(p, 0), m.read(c, 0), m.read(p, 1), m.read(c, 1)) == (1, 5, 2, 2)
    m.check()
    m.exit(p)
    m.exit(c)
    assert m.leaks() == []


def test_hmadvise_willneed_and_migrate():
    m = mmbench.open("gmem", devices=2)
    p = m.spawn()
    m.mmap(p, 0, 1024)
    m.hmadvise_willneed(p, 0, 600, 2)
    assert m.page_node(p, 0) == 2 and m.page_node(p, 599) == 2 and m.page_node(p, 600) is None
    m.migrate(p, 0, 1024, 1)                          # device to device, then the rest
    assert m.counter("pages_to_device") == 600 + 1024
    m.migrate(p, 0, 1024, 0)
    assert m.frames_used(1) == 0 and m.frames_used(0) == 1024
    with pytest.raises(errors.InvalidArgument):
        m.hmadvise_willneed(p, 1000, 100, 1)
    m.check()


def test_oversubscription_evicts_oldest():
    m = mmbench.open("gmem", devices=1, device_pages=100)
    p = m.spawn()
    m.mmap(p, 0, 512)
    for v in range(512):
        m.write(p, v, v + 7)
    m.device_read(1, p, 300)                          # 512-page block into 100 frames
    assert m.frames_used(1) == 100 and m.counter("device_evictions") == 412
    assert m.page_node(p, 300) == 1                   # the faulting page is moved last
    assert all(m.read(p, v) == v + 7 for v in range(512))
    m.check()


def test_pingpong_gmem_numbers():
    """2 MiB, 4 rounds: one device fault per round moves the whole block in one
    transfer; the CPU brings pages home one fault (one transfer) at a time."""
    r = devices.pingpong_report("gmem", npages=512, rounds=4)
    c = r["counts"]
    assert c["pages_to_device"] == c["pages_to_host"] == 2048
    assert c["device_faults"] == 4 and c["fault_device_return"] == 2048
    assert c["dma_transfers_to_device"] == 4 and c["dma_transfers_to_host"] == 2048
    assert c["notifier_calls"] <= 1 and c["rmap_visits"] == 0
    assert r["to_device"]["gbps"] > 60 > 4 > r["to_host"]["gbps"]


def test_pingpong_linux_with_2mib_device_faults_matches_gmem_transfers():
    lin = devices.pingpong_report("linux", npages=512, rounds=4, device_fault_pages=512)["counts"]
    gm = devices.pingpong_report("gmem", npages=512, rounds=4)["counts"]
    for k in ("pages_to_device", "pages_to_host", "dma_transfers_to_device", "dma_transfers_to_host"):
        assert lin[k] == gm[k]
    assert lin["notifier_calls"] == 4 + 2048 and lin["rmap_visits"] == 0


def test_metadata_per_resident_page_gmem_above_linux():
    rows = {}
    for name in ("linux", "gmem"):
        m = mmbench.open(name, devices=1)
        p = m.spawn()
        m.mmap(p, 0, 4096)
        for v in range(4096):
            m.write(p, v, 1)
        rows[name] = sum(b for _, b in m.metadata().values())
    extra = (rows["gmem"] - rows["linux"]) / 4096
    assert 48 + 576 / 64 <= extra < 48 + 576 / 64 + 1     # gm_mapping + its xa_node share


def test_bookkeeping_throughput_small():
    r = devices.bookkeeping_throughput("gmem", npages=4096)
    assert r["pages_moved"] == 2 * 4096 and r["leaks"] == []


def test_gmem_out_of_memory_changes_no_value():
    ooms = sum(run_random_oom("gmem", seed, **{"granularity_pages": [512, 1, 8][seed % 3]}) for seed in range(20))
    assert ooms > 20                         # the sequences do run out of memory


def test_peer_shared_marked_ranges_only():
    """peer_shared="marked": only mmap_peer_shared memory has gm_mappings; the rest of
    private memory is Linux + HMM (device-private entries) in the same machine."""
    m = mmbench.open("gmem", devices=1, peer_shared="marked")
    p = m.spawn()
    m.mmap(p, 0, 8)
    m.mmap_peer_shared(p, 8, 8)
    assert len(m.vmas(p)) == 2                        # different flags: never merged
    assert m.read(p, 1) == 0 and m.gm_state(p, 1) is None     # zero page allowed here
    assert m.read(p, 9) == 0 and m.gm_state(p, 9) == ("CPU", 0)
    m.device_write(1, p, 2, 5)
    m.device_write(1, p, 10, 6)
    assert m.page_node(p, 2) == 1 and m.gm_state(p, 2) is None          # device-private PTE
    assert m.gm_state(p, 10) == ("DEVICE", 1)
    assert m.counter("pages_to_device") == 1 + 8      # one HMM page, one 8-page gmem block
    assert (m.read(p, 2), m.read(p, 10)) == (5, 6)
    m.check()
    with pytest.raises(errors.InvalidArgument):
        mmbench.open("gmem", peer_shared="some")


def test_marked_out_of_memory_changes_no_value():
    assert sum(run_random_oom("gmem", seed, peer_shared="marked") for seed in range(10)) > 10
