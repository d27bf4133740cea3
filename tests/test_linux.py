"""Targeted tests of the linux design: the kernel rules, with exact counts."""
import pytest

import mmbench
from mmbench import errors
from mmbench.trace import TraceBuilder


def machine(**kw):
    kw.setdefault("ram_pages", 1 << 14)
    return mmbench.open("linux", **kw)


def count(m, name):
    return m.metadata()[name][0]


def objs(m):
    return {k: count(m, k) for k in ("vm_area_struct", "anon_vma", "anon_vma_chain", "page")}


def exit_all(m):
    for p in m.live_pids():
        m.exit(p)
        m.check()
    assert m.leaks() == []
    assert count(m, "pgd") == 0 and count(m, "maple_node") == 0


# ------------------------------------------------------------------ faults
def test_zero_page_read_then_write_copies_from_zero():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 8)
    assert m.read(p, 3) == 0
    c = m.counters()
    assert c["fault_zero_page"] == 1 and c["faults"] == 1
    assert count(m, "page") == 0 and count(m, "anon_vma") == 0      # no frame, no anon_vma
    m.write(p, 3, 42)                       # do_wp_page on the zero page -> wp_page_copy, zero-filled
    c = m.counters()
    assert c["fault_zero_fill"] == 1 and c["pages_zeroed"] == 1 and c["pages_copied"] == 0
    assert c["tlb_flushes"] == 1            # ptep_clear_flush of the zero-page PTE
    assert objs(m) == {"vm_area_struct": 1, "anon_vma": 1, "anon_vma_chain": 1, "page": 1}
    assert m.read(p, 3) == 42 and m.counters()["faults"] == 2        # no fault on a present PTE
    m.check()
    exit_all(m)


def test_first_write_allocates_anon_vma_once_and_page_tables():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 1024)
    for v in range(1024):
        m.write(p, v, v + 1)
    assert objs(m) == {"vm_area_struct": 1, "anon_vma": 1, "anon_vma_chain": 1, "page": 1024}
    assert m.pt_tables(p) == (1, 1, 1, 2)   # 1024 pages = 2 PTE tables
    assert m.vmpte_bytes(p) == 4 * 4096
    c = m.counters()
    assert c["fault_zero_fill"] == 1024 and c["anon_vma_alloc"] == 1 and c["pt_pages_alloc"] == 5
    m.check()
    exit_all(m)


def test_cow_copy_then_reuse_after_fork():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 4)
    for v in range(4):
        m.write(p, v, 100 + v)
    c = m.fork(p)
    k = m.counters()
    assert k["fork_ptes_copied"] == 4 and k["fork_ptes_wrprotect"] == 4
    assert objs(m) == {"vm_area_struct": 2, "anon_vma": 2, "anon_vma_chain": 3, "page": 4}
    m.write(c, 0, 7)                        # shared page, child not exclusive -> copy
    assert m.counters()["fault_cow_copy"] == 1 and m.counters()["pages_copied"] == 1
    m.write(p, 0, 8)                        # parent is the last mapper (refcount 1) -> reuse
    assert m.counters()["fault_cow_reuse"] == 1
    m.write(p, 1, 9)                        # still shared with the child -> copy
    assert m.counters()["fault_cow_copy"] == 2
    assert [m.read(p, v) for v in range(4)] == [8, 9, 102, 103]
    assert [m.read(c, v) for v in range(4)] == [7, 101, 102, 103]
    assert count(m, "page") == 6
    m.check()
    m.exit(p)
    m.check()
    m.write(c, 2, 1)                        # parent gone: frame exclusive to the child again
    assert m.counters()["fault_cow_reuse"] == 2
    exit_all(m)


def test_fork_copies_no_ptes_for_vma_without_anon_vma():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 8)
    for v in range(8):
        m.read(p, v)                        # zero-page PTEs only: no anon_vma
    c = m.fork(p)
    assert m.counters()["fork_ptes_copied"] == 0
    assert m.pt_tables(c) == (1, 0, 0, 0)   # child refaults
    assert m.read(c, 5) == 0
    assert m.counters()["fault_zero_page"] == 9
    exit_all(m)


def fork_chain(d, parents_exit, pages=4):
    """P0 maps and touches `pages`; each generation forks the previous one and touches
    every page; with `parents_exit` each parent exits after its fork."""
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, pages)
    for v in range(pages):
        m.write(p, v, v)
    for g in range(1, d + 1):
        c = m.fork(p)
        if parents_exit:
            m.exit(p)
        for v in range(pages):
            m.write(c, v, g * 1000 + v)
        m.check()
        p = c
    return m, p


@pytest.mark.parametrize("d", [0, 1, 2, 3, 5, 8])
def test_fork_chain_all_alive_quadratic_avcs(d):
    m, last = fork_chain(d, parents_exit=False)
    assert count(m, "vm_area_struct") == d + 1
    assert count(m, "anon_vma") == d + 1
    assert count(m, "anon_vma_chain") == (d + 1) * (d + 2) // 2     # gen g has a chain of g + 1
    assert m.vmas(last)[0]["chain"] == d + 1
    assert m.counters()["anon_vma_reuse"] == 0
    exit_all(m)


@pytest.mark.parametrize("d,anon_vmas,avcs,reuses", [(1, 2, 2, 0), (2, 3, 3, 0), (3, 3, 3, 1),
                                                     (5, 3, 3, 3), (8, 3, 3, 6)])
def test_fork_chain_parents_exit_reuses_anon_vma(d, anon_vmas, avcs, reuses):
    m, last = fork_chain(d, parents_exit=True)
    assert count(m, "anon_vma") == anon_vmas
    assert count(m, "anon_vma_chain") == avcs
    assert m.counters()["anon_vma_reuse"] == reuses
    assert [m.read(last, v) for v in range(4)] == [d * 1000 + v for v in range(4)]
    exit_all(m)


# ------------------------------------------------------------------ VMA merge / split
def test_merge_adjacent_private_mmaps():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 8)
    m.mmap(p, 8, 8)                         # merge after (pgoff = vpn keeps continuity)
    m.mmap(p, 20, 4)
    m.mmap(p, 16, 4)                        # fills the gap: prev, new and next become one
    assert [(v["start"], v["end"], v["pgoff"]) for v in m.vmas(p)] == [(0, 24, 0)]
    m.mmap(p, 24, 4, writable=False)        # different flags: no merge
    m.mmap(p, 28, 4, shared=True)           # a shmem file of its own: no merge
    assert len(m.vmas(p)) == 3
    assert count(m, "maple_node") == 1
    m.check()
    exit_all(m)


def test_split_clones_avcs_and_mprotect_back_merges():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 16)
    for v in range(16):
        m.write(p, v, v)
    m.mprotect(p, 4, 4, False)              # split in three
    assert [(v["start"], v["end"], v["writable"]) for v in m.vmas(p)] == \
        [(0, 4, True), (4, 8, False), (8, 16, True)]
    assert count(m, "anon_vma") == 1 and count(m, "anon_vma_chain") == 3
    assert m.counters()["vma_splits"] == 2
    with pytest.raises(errors.ProtectionFault):
        m.write(p, 5, 1)
    m.mprotect(p, 4, 4, True)               # same flags and anon_vma again: one VMA
    assert len(m.vmas(p)) == 1 and count(m, "anon_vma_chain") == 1
    m.write(p, 5, 55)                       # PTE restored writable (AnonExclusive): no fault
    assert m.counters()["fault_cow_reuse"] == 0
    m.munmap(p, 6, 2)                       # hole: split, one AVC each side
    assert len(m.vmas(p)) == 2 and count(m, "anon_vma_chain") == 2
    assert count(m, "page") == 14
    m.check()
    exit_all(m)


def test_fork_child_vma_does_not_merge_with_new_mapping():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 4)
    m.write(p, 0, 1)
    c = m.fork(p)
    m.mmap(c, 4, 4)                         # target is a fork child (chain of 2): no merge
    assert len(m.vmas(c)) == 2
    m.mmap(p, 4, 4)                         # the parent's VMA has a singular chain: merges
    assert len(m.vmas(p)) == 1
    m.check()
    exit_all(m)


def test_vm_account_blocks_merge_of_readonly_mapping_made_writable_after_faults():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 4, writable=False)         # no VM_ACCOUNT
    m.mprotect(p, 0, 4, True)               # gains VM_ACCOUNT
    m.mmap(p, 4, 4)                         # RW private: VM_ACCOUNT too -> merges
    assert len(m.vmas(p)) == 1
    m.check()
    exit_all(m)


# ------------------------------------------------------------------ unmap / page tables
def test_munmap_frees_page_tables_of_the_hole():
    m = machine()
    p = m.spawn()
    far = 1 << 27                           # another PUD entry (512 GiB apart)
    m.mmap(p, 0, 4)
    m.mmap(p, far, 4)
    m.write(p, 0, 1)
    m.write(p, far, 2)
    assert m.pt_tables(p) == (1, 2, 2, 2)
    m.munmap(p, far, 4)
    assert m.pt_tables(p) == (1, 1, 1, 1)
    m.munmap(p, 0, 4)
    assert m.pt_tables(p) == (1, 0, 0, 0)
    assert count(m, "page") == 0 and count(m, "anon_vma") == 0 and count(m, "anon_vma_chain") == 0
    m.check()
    exit_all(m)


def test_madvise_dontneed_private_zero_shared_kept():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 4)
    m.mmap(p, 8, 4, shared=True)
    m.write(p, 1, 5)
    m.write(p, 9, 6)
    m.madvise_dontneed(p, 0, 4)
    m.madvise_dontneed(p, 8, 4)
    assert m.read(p, 1) == 0 and m.read(p, 9) == 6
    assert count(m, "page") == 1            # the shmem page stays in the page cache
    with pytest.raises(errors.InvalidArgument):
        m.madvise_dontneed(p, 3, 3)         # 4 and 5 are a hole
    m.check()
    exit_all(m)


def test_mremap_moves_ptes_without_copying():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 16)
    for v in range(16):
        m.write(p, v, 10 + v)
    before = m.counters()
    m.mremap(p, 0, 8, 100)
    after = m.counters()
    assert after["mremap_pages_moved"] - before["mremap_pages_moved"] == 8
    assert after["pages_copied"] == before["pages_copied"] and after["faults"] == before["faults"]
    assert [m.read(p, 100 + v) for v in range(8)] == [10 + v for v in range(8)]
    vmas = [(v["start"], v["end"], v["pgoff"]) for v in m.vmas(p)]
    assert vmas == [(8, 16, 8), (100, 108, 0)]          # the moved VMA keeps its pgoff
    assert count(m, "anon_vma") == 1 and count(m, "anon_vma_chain") == 2
    assert m.rmap_walk(p, 100) == [(p, 100)]
    with pytest.raises(errors.SegmentationFault):
        m.mremap(p, 0, 4, 200)
    m.check()
    exit_all(m)


# ------------------------------------------------------------------ shared mappings, rmap
def test_shared_mapping_is_shmem_and_fork_copies_no_ptes():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 4, shared=True)
    m.write(p, 0, 11)
    assert m.counters()["fault_zero_fill"] == 1
    c = m.fork(p)
    assert m.counters()["fork_ptes_copied"] == 0 and m.pt_tables(c) == (1, 0, 0, 0)
    assert m.read(c, 0) == 11               # page-cache hit
    assert m.counters()["fault_minor"] == 1
    m.write(c, 1, 22)
    assert m.read(p, 1) == 22               # fault-around or a minor fault, same page
    assert count(m, "shmem_inode_info") == 1 and count(m, "anon_vma") == 0
    assert m.rmap_walk(p, 0) == [(p, 0), (c, 0)]
    assert m.counters()["i_mmap_visits"] == 2
    m.exit(p)
    assert m.read(c, 0) == 11
    m.check()
    exit_all(m)


def test_rmap_walk_after_fork_chain():
    m, last = fork_chain(3, parents_exit=False, pages=2)
    # the last generation copied every page; the original pages are P0's only
    assert m.rmap_walk(1, 0) == [(1, 0)]
    before = m.counters()["rmap_visits"]
    assert m.rmap_walk(last, 0) == [(last, 0)]
    assert m.counters()["rmap_visits"] - before == 1    # its own anon_vma holds one AVC
    m2 = machine()
    p = m2.spawn()
    m2.mmap(p, 0, 2)
    m2.write(p, 0, 1)
    kids = [m2.fork(p) for _ in range(3)]
    assert m2.rmap_walk(p, 0) == [(x, 0) for x in [p] + kids]
    assert m2.counters()["rmap_visits"] == 4
    assert m2.rmap_walk(p, 1) == []                     # nothing resident
    with pytest.raises(errors.SegmentationFault):
        m2.rmap_walk(p, 5)
    exit_all(m)
    exit_all(m2)


# ------------------------------------------------------------------ errors, OOM, replay
def test_out_of_memory_leaves_machine_unchanged():
    m = machine(ram_pages=4)
    p = m.spawn()
    m.mmap(p, 0, 8)
    m.mmap(p, 16, 2, shared=True)
    m.write(p, 17, 5)                       # a cached neighbour fault-around could map
    for v in range(3):
        m.write(p, v, v)
    m.madvise_dontneed(p, 16, 2)            # page stays cached, PTE gone
    snap = (m.metadata(), m.counters(), m.vmas(p))
    with pytest.raises(errors.OutOfMemory):
        m.write(p, 4, 1)
    with pytest.raises(errors.OutOfMemory):
        m.read(p, 16)                       # shmem read fault needs a page-cache frame
    assert m.metadata() == snap[0] and m.counters() == snap[1]      # fault-around did not run
    c = m.fork(p)
    with pytest.raises(errors.OutOfMemory):
        m.write(c, 0, 9)                    # COW copy needs a frame
    m.exit(c)
    assert (m.metadata(), m.vmas(p)) == (snap[0], snap[2])
    assert m.read(p, 5) == 0                # zero page needs no frame
    m.check()
    exit_all(m)


def test_errors_follow_the_reference_order():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 4, writable=False)
    with pytest.raises(errors.ProtectionFault):
        m.write(p, 0, 1)
    with pytest.raises(errors.SegmentationFault):
        m.read(p, 4)
    with pytest.raises(errors.InvalidArgument):
        m.mmap(p, 2, 4)
    with pytest.raises(errors.InvalidArgument):
        m.mprotect(p, 2, 4, True)
    with pytest.raises(errors.InvalidArgument):
        m.mremap(p, 0, 4, 2)                # overlap is checked before "mapped"
    m.migrate(p, 0, 1, 0)                   # "linux" has HMM: nothing on a device, nothing moves
    from mmbench_linux.core import LinuxMachine
    with pytest.raises(errors.NotSupported):
        LinuxMachine(devices=1)             # the core class alone has no devices
    with pytest.raises(errors.InvalidArgument):
        mmbench.open("linux", fault_around_pages=3)
    m.check()
    exit_all(m)


def test_replay_matches_python_calls():
    t = TraceBuilder()
    p = t.spawn()
    t.mmap(p, 0, 64)
    t.write_range(p, 0, 64)
    c = t.fork(p)
    t.write_range(c, 0, 64, step=2)
    t.read_range(p, 0, 64)
    m = machine()
    r = m.replay(t.build(), timing=False, frame=False)
    assert (r["status"] == 0).all()
    assert list(r["value"][-64:]) == list(m.replay(t.build()[-64:], timing=False, frame=False)["value"])
    assert m.counters()["fault_cow_copy"] == 32
    t2 = TraceBuilder(first_pid=m.next_free_pid)
    t2.migrate(p, 0, 1, 0)
    assert (m.replay(t2.build(), frame=False)["status"] == 0).all()
    m.check()
    exit_all(m)


def test_counter_names_are_the_shared_vocabulary():
    from mmbench.core import COUNTER_NAMES
    m = machine()
    assert set(m.counters()) <= set(COUNTER_NAMES)
    assert m.struct_sizes()["vm_area_struct"] == 192 and m.struct_sizes()["anon_vma"] == 104
    assert m.struct_sizes()["anon_vma_chain"] == 64 and m.struct_sizes()["maple_node"] == 256
    assert m.struct_sizes()["xa_node"] == 584            # radix_tree_node objsize in /proc/slabinfo


# ------------------------------------------------------------------ the maple tree's shape
def delta(m, f):
    a = m.counters()
    f()
    b = m.counters()
    return {k: b[k] - a[k] for k in b if b[k] != a[k]}


def test_maple_tree_splits_a_full_leaf():
    """16 slots fit one leaf; the 17th splits it (two leaves + a root)."""
    m = machine()
    p = m.spawn()
    for i in range(7):                      # gap, VMA, gap, ..., VMA, gap: 15 slots
        m.mmap(p, 10 + 2 * i, 1)
    assert count(m, "maple_node") == 1
    m.mmap(p, 24, 1)                        # 7 gaps + 8 VMAs - 1 + the last gap = 17: split
    assert count(m, "maple_node") == 3
    m.check()
    m.munmap(p, 0, 100)                     # everything: the tree is empty again
    assert count(m, "maple_node") == 0
    m.check()
    exit_all(m)


@pytest.mark.parametrize("order,nodes", [("ascending", 8439), ("random", 10512)])
def test_maple_tree_node_count_follows_insertion_order(order, nodes):
    """60,000 one-page VMAs one page apart (120,001 slots): appending fills leaves to
    16 through push-left (mas_push_data) and the no-NULL split rule; random order
    leaves them emptier.  The host measures ~8,330-8,530 and ~10,330-10,600
    (tests/test_linux_host.py); the earlier fill-factor formula gave 12,730 for both."""
    import random
    m = machine(ram_pages=1 << 10)
    p = m.spawn()
    idx = list(range(60000))
    if order == "random":
        random.Random(1).shuffle(idx)
    for i in idx:
        m.mmap(p, (1 << 28) + 2 * i, 1)
    got = count(m, "maple_node")
    assert abs(got - nodes) <= nodes // 50, got
    m.check()
    c = m.fork(p)                           # __mt_dup: node for node
    assert count(m, "maple_node") == 2 * got
    m.check()
    m.exit(c)
    exit_all(m)


def test_maple_tree_dense_adjacent_vmas_and_spanning_unmap():
    m = machine(ram_pages=1 << 10)
    p = m.spawn()
    for i in range(60000):                  # adjacent, alternating protection: no merge
        m.mmap(p, (1 << 28) + i, 1, writable=bool(i % 2))
    assert count(m, "maple_node") == 4503   # host ~4,480-4,880
    m.munmap(p, (1 << 28) + 1000, 50000)    # one NULL store spanning thousands of leaves
    assert len(m.vmas(p)) == 10000
    assert count(m, "maple_node") < 4503 * 10000 // 60000 + 20
    m.check()
    exit_all(m)


# ------------------------------------------------------------------ TLB flushes, page-table reclaim
def test_madvise_dontneed_flushes_once_per_call():
    m = machine()
    p = m.spawn()
    for i in range(64):                     # 64 VMAs (alternating protection), all touched
        m.mmap(p, 4096 + i, 1, writable=bool(i % 2))
        (m.write if i % 2 else m.read)(p, 4096 + i, *((1,) if i % 2 else ()))
    d = delta(m, lambda: m.madvise_dontneed(p, 4096, 64))
    assert d["tlb_flushes"] == 1 and d["pte_zaps"] == 64
    d = delta(m, lambda: m.munmap(p, 4096, 64))     # no PTE left, only tables to free
    assert d["tlb_flushes"] == 1 and d["pt_pages_free"] == 3
    assert delta(m, lambda: m.munmap(p, 4096, 64)).get("tlb_flushes", 0) == 0
    m.check()
    exit_all(m)


@pytest.mark.parametrize("reclaim", [True, False])
def test_pt_reclaim_frees_a_pte_table_zapped_whole(reclaim):
    m = machine(pt_reclaim=reclaim)
    p = m.spawn()
    m.mmap(p, 0, 1024)
    for v in range(1024):
        m.write(p, v, 1)
    d = delta(m, lambda: m.madvise_dontneed(p, 0, 512))          # one whole 2 MiB table
    assert d.get("pt_pages_free", 0) == (1 if reclaim else 0) and d["tlb_flushes"] == 1
    assert m.vmpte_bytes(p) == (3 if reclaim else 4) * 4096
    d = delta(m, lambda: m.madvise_dontneed(p, 512, 511))        # not the whole table
    assert d.get("pt_pages_free", 0) == 0
    assert m.read(p, 5) == 0 and m.read(p, 1023) == 1
    m.check()
    exit_all(m)
    with pytest.raises(errors.InvalidArgument):
        machine(pt_reclaim="yes")


# ------------------------------------------------------------------ fork copies every table
def test_fork_copies_empty_parent_tables():
    """copy_pte_range allocates the child's table for every parent table under a VMA
    that needs copying, also for a table that holds no PTE any more."""
    m = machine(pt_reclaim=False)
    p = m.spawn()
    m.mmap(p, 0, 1024)
    m.write(p, 0, 1)
    m.write(p, 512, 2)
    m.madvise_dontneed(p, 512, 1)           # the second PTE table is empty but stays
    assert m.pt_tables(p) == (1, 1, 1, 2)
    c = m.fork(p)
    assert m.pt_tables(c) == (1, 1, 1, 2) and m.vmpte_bytes(c) == 4 * 4096
    assert m.counters()["fork_ptes_copied"] == 1
    m.check()
    exit_all(m)


# ------------------------------------------------------------------ mremap moves PMD entries
def test_mremap_aligned_moves_whole_pte_tables():
    m = machine()
    p = m.spawn()
    m.mmap(p, 1 << 18, 1024)
    for v in range(1024):
        m.write(p, (1 << 18) + v, v)
    d = delta(m, lambda: m.mremap(p, 1 << 18, 1024, (1 << 18) + 4096))
    # move_normal_pmd twice: two PMD entries cleared and set, no table allocated or freed
    assert d["pte_writes"] == 4 and d["mremap_pages_moved"] == 1024 and d["tlb_flushes"] == 1
    assert "pt_pages_alloc" not in d and "pt_pages_free" not in d
    assert [m.read(p, (1 << 18) + 4096 + v) for v in (0, 511, 512, 1023)] == [0, 511, 512, 1023]
    m.check()
    d = delta(m, lambda: m.mremap(p, (1 << 18) + 4096, 1024, (1 << 18) + 3))   # not aligned
    assert d["pte_writes"] == 2 * 1024 and d["pt_pages_alloc"] == 3
    assert m.read(p, (1 << 18) + 3 + 700) == 700
    m.check()
    exit_all(m)


def test_a_read_fault_maps_its_cached_neighbours_and_counts_them():
    """do_fault_around: a read fault on a cached shared page maps the cached pages of its
    64 KiB window too; each beside the faulting one is a fault_around_pages (priced)."""
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 40, shared=True)
    for v in range(0, 40, 2):
        m.write(p, v, v + 1)              # every other page in the page cache
    c = m.fork(p)                         # fork copies no PTE of a shared mapping
    d = delta(m, lambda: m.read(c, 4))
    assert (d["faults"], d["fault_minor"], d["fault_around_pages"]) == (1, 1, 7)
    assert delta(m, lambda: m.read(c, 14)).get("faults", 0) == 0    # mapped by the window
    d = delta(m, lambda: m.read(c, 16))
    assert (d["faults"], d["fault_around_pages"]) == (1, 7)
    assert m.read(c, 16) == 17 and m.read(c, 4) == 5
    m.check()
    exit_all(m)
