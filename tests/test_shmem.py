"""Targeted tests of the shmem design: fault kinds, fork (shared and reflink),
munmap/mremap/madvise costs, rmap, out-of-memory atomicity, leaks, and a
comparison with a real memfd on this Linux host."""
import mmap as pymmap
import os
import sys

import pytest

import mmbench
from mmbench import errors
from mmbench.reference import ReferenceMachine
from mmbench_shmem import ShmemMachine


def machine(**kw):
    kw.setdefault("ram_pages", 1 << 14)
    return mmbench.open("shmem", **kw)


def delta(m, before):
    now = m.counters()
    return {k: now[k] - before[k] for k in now if now[k] != before[k]}


def test_registered_and_described():
    assert "shmem" in mmbench.backends()
    m = machine()
    assert isinstance(m, ShmemMachine)
    assert "reflink_clones" in type(m).counter_names
    assert m.struct_sizes()["xa_node"] == 584       # radix_tree_node objsize in /proc/slabinfo
    assert m.struct_sizes()["mm_struct"] == 1600
    assert m.struct_sizes()["vm_area_struct"] == 192
    assert m.struct_sizes()["page"] == 64
    with pytest.raises(errors.NotSupported):      # the base design has no devices;
        ShmemMachine(devices=1)
    assert type(mmbench.open("shmem", devices=1)).supports_devices   # the registered subclass has


def test_fault_kinds_private():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 4)
    c0 = m.counters()
    assert m.read(p, 0) == 0                      # hole: shmem_fault(SGP_CACHE) allocates
    assert delta(m, c0) == {"faults": 1, "fault_zero_fill": 1, "pagecache_adds": 1,
                            "pages_zeroed": 1, "pte_writes": 1, "pt_pages_alloc": 3}
    c0 = m.counters()
    m.write(p, 0, 5)                              # the file alone holds it: mapped writable
    assert delta(m, c0) == {}
    c0 = m.counters()
    m.write(p, 1, 6)                              # no PTE, hole -> zero-fill
    assert delta(m, c0)["fault_zero_fill"] == 1
    assert m.metadata()["page"] == (2, 128)
    assert m.file_info(p, 0)["nrpages"] == 2
    m.check()


def test_fault_kinds_private_with_a_zero_page():
    """zero_page=True: "what if shmem had a zero page" for private read holes."""
    m = machine(zero_page=True)
    p = m.spawn()
    m.mmap(p, 0, 4)
    c0 = m.counters()
    assert m.read(p, 0) == 0                      # hole, private: the zero page
    assert delta(m, c0) == {"faults": 1, "fault_zero_page": 1, "pte_writes": 1,
                            "pt_pages_alloc": 3}
    c0 = m.counters()
    m.write(p, 0, 5)                              # zero page -> frame in the file
    d = delta(m, c0)
    assert d["fault_zero_fill"] == 1 and d["pages_zeroed"] == 1 and d["tlb_flushes"] == 1
    c0 = m.counters()
    m.write(p, 1, 6)                              # no PTE, hole -> zero-fill
    assert delta(m, c0)["fault_zero_fill"] == 1
    c0 = m.counters()
    m.write(p, 1, 7)                              # writable PTE: no fault
    assert delta(m, c0) == {}
    assert m.metadata()["page"] == (2, 128)
    assert m.file_info(p, 0)["nrpages"] == 2
    m.check()


def test_fault_kinds_shared():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 4, shared=True)
    c0 = m.counters()
    assert m.read(p, 2) == 0                      # shmem_fault(SGP_CACHE): allocates
    assert delta(m, c0)["fault_zero_fill"] == 1
    m.mprotect(p, 0, 4, False)
    with pytest.raises(errors.ProtectionFault):
        m.write(p, 2, 1)
    m.mprotect(p, 0, 4, True)
    c0 = m.counters()
    m.write(p, 2, 9)                              # read-only PTE of a shared VMA
    assert delta(m, c0)["fault_wp_shared"] == 1
    assert m.read(p, 2) == 9
    m.check()


def test_fork_shared_copies_no_page_tables():
    n = 2048
    m = machine()
    p = m.spawn()
    m.mmap(p, 1 << 20, n, shared=True)
    for v in range(n):
        m.write(p, (1 << 20) + v, v + 1)
    frames = m.frames_used()
    c0 = m.counters()
    c = m.fork(p)
    d = delta(m, c0)
    assert m.page_table_bytes(c) == 0             # only the pgd, which VmPTE does not count
    assert d.get("reflink_clones", 0) == 0 and d.get("fork_ptes_wrprotect", 0) == 0
    assert d.get("pte_writes", 0) == 0 and d.get("xa_node_alloc", 0) == 0
    assert m.frames_used() == frames
    c0 = m.counters()
    for v in range(n):
        assert m.read(c, (1 << 20) + v) == v + 1
    d = delta(m, c0)
    assert d["fault_minor"] == n and d["faults"] == n and d.get("pages_copied", 0) == 0
    assert m.page_table_bytes(c) == m.page_table_bytes(p)
    m.write(c, 1 << 20, 77)                       # shared: both see it
    assert m.read(p, 1 << 20) == 77
    m.check()


def test_fork_private_is_a_reflink_clone():
    n = 256
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, n)
    for v in range(n):
        m.write(p, v, v + 1)
    frames, xa = m.frames_used(), m.metadata()["xa_node"][0]
    c0 = m.counters()
    c = m.fork(p)
    d = delta(m, c0)
    assert d["reflink_clones"] == 1
    assert d["fork_ptes_wrprotect"] == n           # the parent's PTEs lose the write bit
    assert m.frames_used() == frames               # frames shared, not copied
    assert m.metadata()["xa_node"][0] == 2 * xa    # the clone's own i_pages
    assert m.page_table_bytes(c) == 0
    info = m.file_info(c, 0)
    assert info["private"] and info["nrpages"] == n and info["group_members"] == 2
    c0 = m.counters()
    m.write(p, 3, 1000)                            # shared by two files: copy
    m.write(c, 4, 2000)                            # child: no PTE, shared frame: copy
    d = delta(m, c0)
    assert d["fault_cow_copy"] == 2 and d["pages_copied"] == 2
    assert (m.read(p, 3), m.read(c, 3), m.read(p, 4), m.read(c, 4)) == (1000, 4, 5, 2000)
    m.check()
    m.exit(c)                                      # child gone: the parent's frames are its own again
    c0 = m.counters()
    m.write(p, 5, 1)
    assert delta(m, c0)["fault_cow_reuse"] == 1
    assert m.frames_used() == n
    m.check()


def test_fork_chains_and_exits_in_any_order():
    for order in ([1, 2, 3], [3, 2, 1], [2, 1, 3], [2, 3, 1]):
        m = machine()
        p1 = m.spawn()
        m.mmap(p1, 0, 8)
        m.mmap(p1, 8, 8, shared=True)
        for v in range(16):
            m.write(p1, v, 100 + v)
        p2 = m.fork(p1)
        m.write(p2, 0, 200)
        p3 = m.fork(p2)
        m.write(p3, 1, 300)
        m.write(p1, 2, 400)
        m.write(p3, 9, 900)                        # shared with everybody
        expect = {p1: [100, 101, 400], p2: [200, 101, 102], p3: [200, 300, 102]}
        for pid, vals in expect.items():
            assert [m.read(pid, v) for v in range(3)] == vals
            assert m.read(pid, 9) == 900
        assert m.file_info(p3, 0)["group_members"] == 3
        for pid in order:
            m.exit(pid)
            m.check()
            for other in m.live_pids():
                assert [m.read(other, v) for v in range(3)] == expect[other]
        assert m.leaks() == []


def test_partial_munmap_makes_pages_unreachable():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 16)
    for v in range(16):
        m.write(p, v, v + 1)
    m.munmap(p, 4, 8)                              # punches offsets 4..11 out of the file
    assert m.frames_used() == 8
    assert m.file_info(p, 0)["nrpages"] == 8
    m.mmap(p, 4, 8)
    assert [m.read(p, v) for v in range(4, 12)] == [0] * 8
    assert m.read(p, 12) == 13
    m.check()
    m.mremap(p, 12, 4, 100)                        # then moving the tail keeps its data
    m.mremap(p, 100, 4, 12)
    assert m.read(p, 15) == 16
    m.check()


def test_mremap_moves_ptes_only():
    n = 1024
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, n)
    for v in range(n):
        m.write(p, v, v)
    frames = m.frames_used()
    c0 = m.counters()
    m.mremap(p, 0, n, 1 << 30)
    d = delta(m, c0)
    assert d["mremap_pages_moved"] == n
    assert d["pte_writes"] == 2 * n                # clear old + set new, per present PTE
    assert d["tlb_flushes"] == 1
    assert "pages_copied" not in d and "xa_node_alloc" not in d and "faults" not in d
    assert m.frames_used() == frames
    c0 = m.counters()
    assert all(m.read(p, (1 << 30) + v) == v for v in range(n))
    assert "faults" not in delta(m, c0)            # the PTEs moved with the pages
    with pytest.raises(errors.SegmentationFault):
        m.read(p, 0)
    m.check()


def test_madvise_dontneed_private_and_shared():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 4)
    m.mmap(p, 4, 4, shared=True)
    for v in range(8):
        m.write(p, v, 50 + v)
    m.madvise_dontneed(p, 0, 8)
    assert m.file_info(p, 0)["nrpages"] == 0 and m.file_info(p, 4)["nrpages"] == 4
    assert [m.read(p, v) for v in range(8)] == [0, 0, 0, 0, 54, 55, 56, 57]
    assert m.file_info(p, 0)["nrpages"] == 4      # the reads filled the holes again
    m.check()


def test_rmap_walk_visits_every_file_of_the_group():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 4, shared=True)
    m.mmap(p, 10, 4)
    m.write(p, 1, 1)
    m.write(p, 11, 2)
    c1 = m.fork(p)
    c2 = m.fork(p)
    m.read(c1, 1)
    c0 = m.counters()
    assert m.rmap_walk(p, 1) == [(p, 1, True), (c1, 1, True), (c2, 1, False)]
    assert delta(m, c0) == {"i_mmap_visits": 1, "rmap_visits": 3}
    m.mremap(c2, 10, 4, 20)
    c0 = m.counters()
    assert m.rmap_walk(p, 11) == [(p, 11, True), (c1, 11, False), (c2, 21, False)]
    assert delta(m, c0) == {"i_mmap_visits": 3, "rmap_visits": 3}
    m.write(c1, 11, 5)                             # c1 now has its own copy
    c0 = m.counters()
    assert m.rmap_walk(p, 11) == [(p, 11, True), (c2, 21, False)]
    assert m.rmap_walk(c1, 11) == [(c1, 11, True)]
    assert m.rmap_walk(p, 12) == []                # a hole: nothing to walk
    with pytest.raises(errors.SegmentationFault):
        m.rmap_walk(p, 40)
    m.check()


def test_out_of_memory_changes_nothing():
    m = machine(ram_pages=8)
    p = m.spawn()
    m.mmap(p, 0, 16)
    for v in range(8):
        m.write(p, v, v + 1)
    c = m.fork(p)
    before = (m.counters(), m.metadata(), m.frames_used())
    for op in (lambda: m.write(p, 8, 1), lambda: m.write(p, 0, 1), lambda: m.write(c, 0, 1),
               lambda: m.read(p, 8)):              # a read of a hole needs a frame too
        with pytest.raises(errors.OutOfMemory):
            op()
        m.check()
    assert (m.counters(), m.metadata(), m.frames_used()) == before
    m.exit(c)
    m.write(p, 0, 42)                              # reuse: no frame needed
    assert m.read(p, 0) == 42
    m.check()


def test_exit_releases_everything():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 600, shared=True)
    m.mmap(p, 1000, 600)
    for v in list(range(600)) + list(range(1000, 1600)):
        m.write(p, v, v)
    c = m.fork(p)
    m.write(c, 1000, 1)
    m.exit(p)
    assert m.read(c, 5) == 5 and m.read(c, 1001) == 1001
    m.exit(c)
    m.check()
    assert m.leaks() == []
    assert all(cnt == 0 for name, (cnt, _) in m.metadata().items())


def test_rmap_agrees_with_reference_sharing():
    """Random states: the rmap of a shared page is exactly the set of places the
    reference model shares its cell with; every mapper of a private frame
    reads the same value."""
    import random
    from test_shmem_random import _op, _apply
    for seed in range(30):
        rng = random.Random(seed)
        ref, m = ReferenceMachine(ram_pages=1 << 12), machine(ram_pages=1 << 12)
        pids = [ref.spawn()]
        m.spawn()
        for _ in range(150):
            if not pids:
                pids.append(ref.spawn())
                m.spawn()
            op = _op(rng, pids)
            want = _apply(ref, op)
            assert _apply(m, op) == want
            if op[0] == "fork" and want[0] == "ok":
                pids.append(want[1])
            elif op[0] == "exit" and want[0] == "ok":
                pids.remove(op[1])
        for pid in pids:
            for vpn, page in ref.procs_ref[pid].items():
                mappers = m.rmap_walk(pid, vpn)
                if not mappers:
                    continue
                assert (pid, vpn) in {(q, w) for q, w, _ in mappers}
                for q, w, _ in mappers:
                    assert m.read(q, w) == ref.read(pid, vpn)
                if page.shared:
                    same = {(q, w) for q in pids for w, pg in ref.procs_ref[q].items()
                            if pg.cell is page.cell}
                    assert {(q, w) for q, w, _ in mappers} == same
        m.check()


# ---------------------------------------------------------------- host check
def _vmpte_kb(pid="self"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmPTE:"):
                return int(line.split()[1])
    raise OSError("no VmPTE line")


def _host_shared_fork(npages):
    """On the host: touch `npages` of a MAP_SHARED memfd, fork; the child
    reports VmPTE right after fork and after touching every page."""
    page = pymmap.PAGESIZE
    fd = os.memfd_create("mmbench-shmem-test")
    try:
        os.ftruncate(fd, npages * page)
        buf = pymmap.mmap(fd, npages * page, pymmap.MAP_SHARED, pymmap.PROT_READ | pymmap.PROT_WRITE)
        for i in range(npages):
            buf[i * page] = 1
        parent_kb = _vmpte_kb()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:                               # child: report and leave at once
            try:
                before = _vmpte_kb()
                s = 0
                for i in range(npages):
                    s += buf[i * page]
                after = _vmpte_kb()
                os.write(w, f"{before} {after} {s}".encode())
            finally:
                os._exit(0)
        os.close(w)
        data = os.read(r, 200).decode().split()
        os.close(r)
        os.waitpid(pid, 0)
        buf.close()
        return parent_kb, int(data[0]), int(data[1]), int(data[2])
    finally:
        os.close(fd)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux (/proc, memfd_create)")
def test_host_memfd_fork_copies_no_page_tables():
    if not hasattr(os, "memfd_create") or not hasattr(os, "fork"):
        pytest.skip("os.memfd_create/os.fork unavailable")
    try:
        _vmpte_kb()
    except OSError:
        pytest.skip("/proc/self/status has no VmPTE")
    npages = 32768                                 # 128 MiB: 64 PTE tables = 256 KiB
    try:
        parent_kb, child_before, child_after, total = _host_shared_fork(npages)
    except OSError as e:
        pytest.skip(f"host probe failed: {e}")
    assert total == npages
    tables_kb = npages // 512 * 4
    # host: the child inherits none of the memfd's PTEs, and pays for them on touch
    assert child_after - child_before >= 0.9 * tables_kb
    assert child_before <= parent_kb - 0.9 * tables_kb
    # the model, same work
    m = machine(ram_pages=npages + 16)
    p = m.spawn()
    m.mmap(p, 1 << 24, npages, shared=True)
    for v in range(npages):
        m.write(p, (1 << 24) + v, 1)
    c = m.fork(p)
    assert m.page_table_bytes(c) == 0
    for v in range(npages):
        m.read(c, (1 << 24) + v)
    model_growth_kb = m.page_table_bytes(c) // 1024
    assert 0.9 * tables_kb <= model_growth_kb <= tables_kb + 16
    host_growth_kb = child_after - child_before
    assert abs(model_growth_kb - host_growth_kb) <= 0.25 * host_growth_kb


@pytest.mark.parametrize("what", ["refcount", "index", "nrpages", "i_count", "xa_account", "pte_write"])
def test_check_catches_broken_invariants(what):
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 4)
    m.write(p, 0, 1)
    m.fork(p)                                      # the parent's PTE is read-only now
    m.read(p, 0)
    m.check()
    m._corrupt(p, 0, what)
    with pytest.raises(errors.InvariantViolation):
        m.check()


def test_options_are_validated():
    for bad in ({"anon_file": "per_vma"}, {"anon_file": None}, {"zero_page": 1},
                {"zero_page": "yes"}, {"no_such_option": True}):
        with pytest.raises(errors.InvalidArgument):
            machine(**bad)
    assert machine().options["anon_file"] == "per_mapping"
    assert machine().options["zero_page"] is False


def test_mm_struct_is_charged_per_process():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 4)
    m.write(p, 0, 1)
    c = m.fork(p)
    m.fork(c)
    assert m.metadata()["mm_struct"] == (3, 3 * 1600)
    m.check()
    m.exit(c)
    m.check()
    assert m.metadata()["mm_struct"] == (2, 2 * 1600)
    for pid in m.live_pids():
        m.exit(pid)
    m.check()
    assert m.metadata()["mm_struct"] == (0, 0) and m.leaks() == []


def _one_page_mappings(m, base, n=100, gap=2):
    p = m.spawn()
    for i in range(n):
        m.mmap(p, base + gap * i, 1)
        m.write(p, base + gap * i, i + 1)
    m.check()
    return p


@pytest.mark.parametrize("base", [0, 1 << 20, 1 << 35])
def test_one_page_mappings_anywhere_cost_no_more_xa_nodes_than_near_zero(base):
    """Default (shmem_zero_setup): each mapping is a file at pgoff 0 whose
    only page sits in xa_head -- no xa_node, wherever the mapping is."""
    near_zero = machine()
    _one_page_mappings(near_zero, 0)
    anywhere = machine()
    _one_page_mappings(anywhere, base)
    assert anywhere.metadata()["xa_node"] == near_zero.metadata()["xa_node"] == (0, 0)
    assert anywhere.metadata()["shmem_inode_info"][0] == 100


def test_per_mm_file_trades_xarray_depth_for_merging():
    """anon_file="per_mm": one file indexed by address.  Far from 0 the
    xarray is deep (6 levels near 2**35); adjacent mappings merge into one
    VMA and fork clones one file instead of one per mapping."""
    high, low = machine(anon_file="per_mm"), machine(anon_file="per_mm")
    _one_page_mappings(high, 1 << 35)
    _one_page_mappings(low, 0)
    # 100 pages 2 apart: 4 leaves; near 0 one root above them, near 2**35
    # the path down from a 6-level root as well
    assert low.metadata()["xa_node"][0] == 4 + 1
    assert high.metadata()["xa_node"][0] == 4 + 5
    assert high.metadata()["shmem_inode_info"][0] == 1
    for m, per_mm in ((machine(), False), (machine(anon_file="per_mm"), True)):
        p = _one_page_mappings(m, 1000, gap=1)    # 100 adjacent one-page mappings
        assert m.metadata()["vm_area_struct"][0] == (1 if per_mm else 100)
        assert m.counters()["vma_merges"] == (99 if per_mm else 0)
        c0 = m.counters()["reflink_clones"]
        c = m.fork(p)
        assert m.counters()["reflink_clones"] - c0 == (1 if per_mm else 100)
        assert [m.read(c, 1000 + i) for i in range(100)] == list(range(1, 101))
        m.check()


def test_per_mm_file_after_mremap_does_not_reuse_moved_offsets():
    m = machine(anon_file="per_mm")
    p = m.spawn()
    m.mmap(p, 100, 10)
    m.mmap(p, 110, 10)                             # same file, contiguous offsets: merged
    assert m.metadata()["vm_area_struct"][0] == 1 and m.counters()["vma_merges"] == 1
    m.mmap(p, 120, 10, writable=False)             # other flags: same file, own VMA
    m.mmap(p, 130, 10, shared=True)                # shared: a file of its own at pgoff 0
    assert m.metadata()["shmem_inode_info"][0] == 2
    for v in range(100, 120):
        m.write(p, v, v)
    m.mremap(p, 100, 5, 200)                       # offsets 100..104 now live at 200
    m.mmap(p, 100, 5)                              # those offsets are taken: a new file
    assert m.file_info(p, 100)["ino"] != m.file_info(p, 105)["ino"]
    assert m.file_info(p, 105)["ino"] == m.file_info(p, 200)["ino"]
    assert [m.read(p, v) for v in (100, 105, 200, 204)] == [0, 105, 100, 104]
    m.check()
    c = m.fork(p)
    m.write(c, 105, 1)
    assert (m.read(p, 105), m.read(c, 105), m.read(c, 200)) == (105, 1, 100)
    m.munmap(p, 100, 40)
    m.munmap(p, 200, 5)                            # the mm's file goes with its last VMA
    m.check()
    m.mmap(p, 100, 2)                              # ... and a new one is made
    m.write(p, 101, 7)
    assert m.read(p, 101) == 7
    m.check()
    for pid in m.live_pids():
        m.exit(pid)
    assert m.leaks() == []


def test_default_private_mappings_are_separate_files_at_offset_zero():
    m = machine()
    p = m.spawn()
    m.mmap(p, 100, 10)
    m.mmap(p, 110, 10)                             # shmem_zero_setup: a file each, no merge
    assert m.metadata()["shmem_inode_info"][0] == 2 and m.counters()["vma_merges"] == 0
    m.write(p, 115, 1)
    m.mremap(p, 110, 10, 500)                      # the offset stays with the VMA
    assert m.read(p, 505) == 1 and m.file_info(p, 505)["nrpages"] == 1
    m.check()


@pytest.mark.parametrize("options", [{"anon_file": "per_mm"}, {"zero_page": True},
                                     {"anon_file": "per_mm", "zero_page": True}])
@pytest.mark.parametrize("seed", range(12))
def test_options_agree_with_reference(options, seed):
    """The design options change costs only: random operations read the same
    values and raise the same errors as the reference model; check() after
    every step, nothing leaks."""
    import random
    from test_shmem_random import _op, _apply
    rng = random.Random(seed)
    ref, m = ReferenceMachine(ram_pages=1 << 14), machine(**options)
    pids = [ref.spawn()]
    m.spawn()
    for step in range(300):
        if not pids:
            pids.append(ref.spawn())
            m.spawn()
        op = _op(rng, pids)
        want = _apply(ref, op)
        assert _apply(m, op) == want, f"seed {seed} step {step}: {op}"
        if op[0] == "fork" and want[0] == "ok":
            pids.append(want[1])
        elif op[0] == "exit" and want[0] == "ok":
            pids.remove(op[1])
        m.check()
    for p in pids:
        m.exit(p)
    m.check()
    assert m.leaks() == []


@pytest.mark.parametrize("options", [{"anon_file": "per_mm"}, {"zero_page": True}])
def test_options_pass_the_conformance_suite(options):
    from mmbench.conformance import run_conformance, default_settings
    run_conformance("shmem", default_settings(), options=options)
