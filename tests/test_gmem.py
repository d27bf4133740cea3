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


def test_no_device_is_linux():
    """Without a device context nothing is peer-shared: reads of untouched memory map
    the zero page and no vm_object or gm_mapping exists (gm_alloc_va_in_peer_devices
    fails with -ENODEV)."""
    m = mmbench.open("gmem", devices=0)
    lin = mmbench.open("linux", devices=0)
    for x in (m, lin):
        p = x.spawn()
        x.mmap(p, 0, 256)
        assert all(x.read(p, v) == 0 for v in range(256))
        x.write(p, 3, 7)
        x.check()
    assert m.counter("gm_mapping_alloc") == 0 and m.counters() == {**lin.counters(), "gm_mapping_alloc": 0}
    md = m.metadata()
    assert md["page"][0] == 1 and md["gm_mapping"][0] == 0 and md["vm_object"][0] == 0
    assert md["gm_mapping (device memory)"][0] == 0
    assert {k: v for k, v in md.items() if v[0]} == {k: v for k, v in lin.metadata().items() if v[0]}
    assert m.gm_state(1, 3) is None
    m.mmap_peer_shared(1, 512, 4)                     # no device context: a plain mapping
    assert m.read(1, 513) == 0 and m.gm_state(1, 513) is None
    m.check()


def test_gm_mapping_per_2mib_block():
    """The huge-page path: one gm_mapping covers an aligned 2 MiB block."""
    m = mmbench.open("gmem", devices=1)
    p = m.spawn()
    m.mmap(p, 0, 1536)
    for v in range(0, 1536, 7):
        m.read(p, v)
    md = m.metadata()
    assert md["gm_mapping"] == (3, 3 * 48) and m.counter("gm_mapping_alloc") == 3
    assert md["page"][0] == len(range(0, 1536, 7))   # zero page disabled: a frame per read
    q = mmbench.open("gmem", devices=1, granularity_pages=1)   # the 4 KiB option
    p = q.spawn()
    q.mmap(p, 0, 64)
    for v in range(64):
        q.read(p, v)
    assert q.metadata()["gm_mapping"][0] == 64
    q.check()


def test_device_memory_gm_mappings_are_static():
    """gm_dev_register_physmem: a 48-B gm_mapping per device page from the start, in an
    hnode's xarray; they are no leak and do not change with use."""
    m = mmbench.open("gmem", devices=2, device_pages=4096)
    md = m.metadata()
    assert md["gm_mapping (device memory)"] == (2 * 4096, 2 * 4096 * 48)
    assert md["hnode"][0] == 2 and md["xa_node (hnode pages)"][0] == 2 * (64 + 1)
    p = m.spawn()
    m.mmap(p, 0, 600)
    m.migrate(p, 0, 600, 1)
    assert m.metadata()["gm_mapping (device memory)"][0] == 2 * 4096
    m.check()
    m.exit(p)
    assert m.leaks() == []


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
    m.munmap(p, 0, 4)                                # the block still has a VMA: kept
    assert m.metadata()["gm_mapping"][0] == 1
    m.munmap(p, 4, 4)                                # free_gm_mappings with the last VMA
    assert m.metadata()["gm_mapping"][0] == 0
    m.check()


def test_device_fault_and_cpu_fault_move_2mib_blocks():
    m = mmbench.open("gmem", devices=1)
    p = m.spawn()
    m.mmap(p, 0, 1024)
    for v in range(1024):
        m.write(p, v, v)
    before = m.counters()
    assert m.device_read(1, p, 700) == 700
    c = {k: m.counter(k) - before[k] for k in before}
    assert c["device_faults"] == 1 and c["pages_to_device"] == 512 and c["dma_transfers"] == 1
    assert c["pte_zaps"] == 512 and c["tlb_flushes"] == 1          # one zap_page_range_single
    assert [m.page_node(p, v) for v in (511, 512, 1023)] == [0, 1, 1]
    assert m.gm_state(p, 600) == ("DEVICE", 1)
    assert m.read(p, 600) == 600                      # gm_host_fault_locked: the block home
    assert m.gm_state(p, 600) == ("CPU", 0) and m.page_node(p, 601) == 0
    assert m.counter("fault_device_return") == 1 and m.counter("pages_to_host") == 512
    assert all(m.read(p, v) == v for v in range(512, 1024))
    assert m.counter("fault_device_return") == 1      # the rest came with the block
    m.check()


def test_granularity_option():
    m = mmbench.open("gmem", devices=1, granularity_pages=1)
    p = m.spawn()
    m.mmap(p, 0, 16)
    m.device_write(1, p, 5, 9)
    assert m.counter("pages_to_device") == 1 and m.page_node(p, 4) is None
    with pytest.raises(errors.InvalidArgument):
        mmbench.open("gmem", devices=1, granularity_pages=3)
    assert mmbench.open("gmem", devices=1, device_pages=100).granularity_pages == 64


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
    m.hmadvise_willneed(p, 0, 600, 2)                 # whole blocks: [0, 1024)
    assert m.page_node(p, 0) == 2 and m.page_node(p, 1023) == 2
    m.migrate(p, 0, 1024, 1)                          # device to device
    assert m.counter("pages_to_device") == 2 * 1024 and m.frames_used(2) == 0
    m.migrate(p, 0, 1024, 0)
    assert m.frames_used(1) == 0 and m.frames_used(0) == 1024
    with pytest.raises(errors.InvalidArgument):
        m.hmadvise_willneed(p, 1000, 100, 1)
    m.check()


def test_oversubscription_evicts_oldest_block():
    m = mmbench.open("gmem", devices=1, device_pages=1024)
    p = m.spawn()
    m.mmap(p, 0, 1536)
    for v in range(1536):
        m.write(p, v, v + 7)
    for v in (0, 512, 1024):                          # three blocks into two blocks of room
        m.device_read(1, p, v)
    assert m.frames_used(1) == 1024 and m.counter("device_evictions") == 512
    assert [m.page_node(p, v) for v in (0, 512, 1024)] == [0, 1, 1]   # the oldest went home
    assert all(m.read(p, v) == v + 7 for v in range(1536))
    m.check()


def test_pingpong_gmem_numbers():
    """2 MiB, 4 rounds: one device fault per round moves the whole block in one
    transfer, one CPU fault brings it home the same way."""
    r = devices.pingpong_report("gmem", npages=512, rounds=4)
    c = r["counts"]
    assert c["pages_to_device"] == c["pages_to_host"] == 2048
    assert c["device_faults"] == 4 and c["fault_device_return"] == 4
    assert c["dma_transfers_to_device"] == 4 and c["dma_transfers_to_host"] == 4
    assert c["notifier_calls"] <= 1 and c["rmap_visits"] == 0
    assert r["to_device"]["gbps"] > 60 and r["to_host"]["gbps"] > 60


def test_pingpong_linux_default_matches_gmem_transfers():
    """Side by side at the same granularity: the same pages and transfers each way;
    linux pays a notifier call per migration, gmem none."""
    lin = devices.pingpong_report("linux", npages=512, rounds=4)["counts"]
    gm = devices.pingpong_report("gmem", npages=512, rounds=4)["counts"]
    for k in ("pages_to_device", "pages_to_host", "dma_transfers_to_device", "dma_transfers_to_host",
              "device_faults", "fault_device_return"):
        assert lin[k] == gm[k]
    assert lin["notifier_calls"] == 8 and lin["rmap_visits"] == 0


def test_metadata_per_resident_page_gmem_above_linux():
    rows = {}
    for name in ("linux", "gmem"):
        m = mmbench.open(name, devices=1)
        p = m.spawn()
        m.mmap(p, 0, 4096)
        for v in range(4096):
            m.write(p, v, 1)
        rows[name] = {k: b for k, (_, b) in m.metadata().items()}
    static = sum(rows["gmem"][k] for k in ("hnode", "gm_mapping (device memory)", "xa_node (hnode pages)"))
    assert static == 48 * (1 << 16) + 32 + 576 * (1024 + 16 + 1)
    extra = sum(rows["gmem"].values()) - static - sum(rows["linux"].values())
    # 8 gm_mappings (one per 2 MiB) keyed by va >> PAGE_SHIFT: 512 apart, each in its own
    # leaf xa_node, plus the root; the vm_object and its xarray
    assert extra == 8 * 48 + 9 * 576 + 24 + 16


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
    assert m.counter("pages_to_device") == 8 + 8      # HMM migrates [0, 8), gmem its 8 pages
    assert (m.read(p, 2), m.read(p, 10)) == (5, 6)
    m.check()
    with pytest.raises(errors.InvalidArgument):
        mmbench.open("gmem", peer_shared="some")


def test_marked_out_of_memory_changes_no_value():
    assert sum(run_random_oom("gmem", seed, peer_shared="marked") for seed in range(10)) > 10


def test_design_notes_reach_the_results():
    """What the RFC leaves open is labelled as mmbench's choice in the results notes."""
    from mmbench.runner import design_notes
    notes = design_notes(["gmem", "linux"])
    assert any("RFC defines no fork, mremap or mprotect" in n for n in notes)
    assert any("devices=0" in n for n in notes)
    assert any("lib/test_hmm.c" in n and "2 MiB" in n for n in notes)
