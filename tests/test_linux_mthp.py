"""linux large anonymous folios beyond the PMD THP: anon mTHP (alloc_anon_folio), the
deferred split queue and its shrinker, move_huge_pmd in mremap, khugepaged collapse."""
import random

import pytest

import mmbench
from mmbench import Advice, errors
from mmbench.conformance import default_settings, run_conformance
from mmbench.reference import ReferenceMachine

HP = 512


def delta(m, before, *names):
    c = m.counters()
    return tuple(c[n] - before[n] for n in names)


def machine(thp="always", mthp_sizes=(16, 64), ram_pages=1 << 14, **kw):
    return mmbench.open("linux", thp=thp, mthp_sizes=mthp_sizes, ram_pages=ram_pages, **kw)


# ---------------------------------------------------------------- options
@pytest.mark.parametrize("bad", [(8,), (2048,), (48,), ("64",), (True,), 2048, "64k", "", None, 64.0])
def test_mthp_sizes_must_be_a_tuple_of_sub_pmd_powers_of_two(bad):
    with pytest.raises(errors.InvalidArgument):
        mmbench.open("linux", mthp_sizes=bad, ram_pages=1 << 10)


def test_mthp_sizes_from_the_command_line():
    # mmbench -O mthp_sizes=64 gives an int, -O mthp_sizes=16,64 a string
    assert "(64,)" in " ".join(mmbench.open("linux", thp="always", mthp_sizes=64, ram_pages=1 << 10).notes())
    m = mmbench.open("linux", thp="always", mthp_sizes="16,64", ram_pages=1 << 10)
    p = m.spawn()
    m.mmap(p, 0, 16, writable=True)
    m.write(p, 0, 1)
    assert m.counters()["mthp_anon_fault_alloc"] == 1 and m.frames_used() == 16


@pytest.mark.parametrize("opt", [{"deferred_split_shrinker": 1}, {"khugepaged": "yes"},
                                 {"khugepaged_max_ptes_none": 512}, {"khugepaged_max_ptes_shared": -1}])
def test_other_options_are_validated(opt):
    with pytest.raises(errors.InvalidArgument):
        mmbench.open("linux", ram_pages=1 << 10, **opt)


def test_no_mthp_by_default():
    m = mmbench.open("linux", thp="always", ram_pages=1 << 12)
    assert m.options["mthp_sizes"] == ()
    p = m.spawn()
    m.mmap(p, 0, 100, writable=True)
    c0 = m.counters()
    m.write(p, 5, 1)
    assert delta(m, c0, "faults", "pages_zeroed", "mthp_anon_fault_alloc") == (1, 1, 0)


# ---------------------------------------------------------------- alloc_anon_folio
def test_write_maps_the_highest_enabled_order_at_once():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 100, writable=True)
    c0 = m.counters()
    m.write(p, 21, 7)                            # 64 kB folio over [16, 32)
    assert delta(m, c0, "faults", "fault_zero_fill", "mthp_anon_fault_alloc", "pages_zeroed",
                 "pte_writes") == (1, 1, 1, 16, 16)
    assert m.frames_used() == 16 and m.rss_kb(p) == 64
    c1 = m.counters()
    for v in range(16, 32):                      # the other 15 pages are mapped already
        m.write(p, v, v)
    assert delta(m, c1, "faults") == (0,)
    assert m.read(p, 20) == 20
    m.check()
    m.exit(p)
    assert m.leaks() == []


def test_order_falls_back_where_ptes_are_set_or_the_vma_ends():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 100, writable=True)
    assert m.read(p, 0) == 0                     # a zero-page PTE in [0, 16): 64 kB not possible
    c0 = m.counters()
    m.write(p, 6, 1)                             # 16 kB folio [4, 8)
    assert delta(m, c0, "mthp_anon_fault_alloc", "pages_zeroed") == (1, 4)
    m.write(p, 97, 1)                            # [96, 100): 64 kB would cross the VMA end
    assert delta(m, c0, "mthp_anon_fault_alloc", "pages_zeroed") == (2, 8)
    m.mmap(p, 200, 3, writable=True)             # no 16 kB range fits at all: order 0
    m.write(p, 201, 1)
    assert delta(m, c0, "mthp_anon_fault_alloc", "pages_zeroed", "faults") == (2, 9, 3)
    m.check()


def test_mthp_follows_thp_mode_and_advice():
    m = machine(thp="madvise")
    p = m.spawn()
    m.mmap(p, 0, 64, writable=True)
    m.mmap(p, 64, 64, writable=True)
    m.madvise(p, 64, 64, Advice.HUGEPAGE)
    c0 = m.counters()
    m.write(p, 0, 1)
    m.write(p, 64, 1)
    assert delta(m, c0, "mthp_anon_fault_alloc", "pages_zeroed") == (1, 17)
    n = machine(thp="never")
    q = n.spawn()
    n.mmap(q, 0, 64, writable=True)
    n.write(q, 0, 1)
    assert n.counters()["mthp_anon_fault_alloc"] == 0


def test_no_aligned_run_left_counts_a_fallback_per_order():
    m = machine(ram_pages=40)
    p = m.spawn()
    m.mmap(p, 0, 64, writable=True)
    m.write(p, 0, 1)                             # frames 0..15
    m.write(p, 16, 1)                            # frames 16..31
    c0 = m.counters()
    m.write(p, 32, 1)                            # 8 never-used frames left: 64 kB fails, 16 kB fits
    assert delta(m, c0, "mthp_anon_fault_fallback", "mthp_anon_fault_alloc", "pages_zeroed") == (1, 1, 4)
    m.check()


# ---------------------------------------------------------------- COW of PTE-mapped large folios
def test_cow_of_a_shared_large_folio_copies_only_the_faulting_page():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 64, writable=True)
    m.write(p, 0, 1)
    q = m.fork(p)
    c0 = m.counters()
    m.write(q, 3, 30)
    assert delta(m, c0, "faults", "fault_cow_copy", "pages_copied", "mthp_anon_fault_alloc") == (1, 1, 1, 0)
    # parent: the folio is still mapped by the child too (shared across mms): copy
    m.write(p, 4, 40)
    assert delta(m, c0, "fault_cow_copy", "fault_cow_reuse") == (2, 0)
    m.exit(q)
    c1 = m.counters()
    # now only the parent maps it (15 pages): reuse in place, page by page
    m.write(p, 5, 50)
    assert delta(m, c1, "fault_cow_reuse", "pages_copied") == (1, 0)
    assert [m.read(p, v) for v in (0, 3, 4, 5)] == [1, 0, 40, 50]
    m.check()
    m.exit(p)
    assert m.leaks() == []


def test_a_large_folio_mapped_once_is_copied_from_not_reused():
    # __wp_can_reuse_large_anon_folio: large mapcount <= 1 -> copy, so the folio can go
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 16, writable=True)
    m.write(p, 0, 1)
    q = m.fork(p)
    m.munmap(p, 0, 16)
    m.munmap(q, 1, 15)
    c0 = m.counters()
    m.write(q, 0, 2)                             # page 0: the folio's only mapping left
    assert delta(m, c0, "fault_cow_copy", "fault_cow_reuse") == (1, 0)
    assert m.frames_used() == 1                  # the old folio was freed with its last page
    m.check()


# ---------------------------------------------------------------- the deferred split queue
def test_partial_munmap_of_an_mthp_defers_the_split():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 64, writable=True)
    for v in range(16):
        m.write(p, v, v + 1)                     # one 64 kB folio, every page holding data
    c0 = m.counters()
    m.munmap(p, 0, 8)
    assert delta(m, c0, "mthp_split_deferred", "thp_deferred_split_page", "mthp_split") == (1, 0, 0)
    assert m.split_queue_len == 1
    assert m.rss_kb(p) == 32 and m.frames_used() == 16    # unmapped pages stay allocated
    m.munmap(p, 8, 2)                                     # queued once
    assert delta(m, c0, "mthp_split_deferred") == (1,)
    m.check()
    assert m.shrink_deferred_split() == 1
    assert delta(m, c0, "mthp_split", "thp_split_page") == (1, 0)
    assert m.split_queue_len == 0 and m.frames_used() == 6
    assert m.read(p, 12) == 13 and m.rss_kb(p) == 24
    m.check()
    m.exit(p)
    assert m.leaks() == []


def test_split_maps_zero_filled_pages_to_the_zero_page():
    # remap_page(RMP_USE_SHARED_ZEROPAGE): a mapped page holding only zeros is not kept
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 16, writable=True)
    m.write(p, 0, 1)
    m.write(p, 15, 0)                            # written, but zero-filled
    q = m.fork(p)                                # pages mapped twice: both PTEs change
    m.munmap(p, 0, 1)
    m.munmap(q, 0, 1)
    assert m.frames_used() == 16 and m.rss_kb(p) == m.rss_kb(q) == 60
    assert m.shrink_deferred_split() == 1
    assert m.frames_used() == 0 and m.rss_kb(p) == m.rss_kb(q) == 0
    assert m.read(q, 15) == 0
    c0 = m.counters()
    m.write(p, 14, 3)                            # a write to the zero page: a new 4 kB page
    assert delta(m, c0, "fault_zero_fill", "pages_zeroed") == (1, 1)
    m.check()
    m.exit(p)
    m.exit(q)
    assert m.leaks() == []


def test_pmd_thp_is_queued_at_fault_and_split_only_when_partially_mapped():
    m = machine(mthp_sizes=())
    p = m.spawn()
    m.mmap(p, 0, 2 * HP, writable=True)
    for v in range(0, 2 * HP, 2):
        m.write(p, v, 1)                         # half the pages hold data, half only zeros
    assert m.split_queue_len == 2                # map_anon_folio_pmd_nopf: not partially mapped
    c0 = m.counters()
    m.madvise(p, 10, 20, Advice.DONTNEED)
    assert delta(m, c0, "thp_split_pmd", "thp_deferred_split_page", "mthp_split_deferred") == (1, 1, 1)
    assert m.frames_used() == 2 * HP
    m.check()
    assert m.shrink_deferred_split() == 1
    assert delta(m, c0, "thp_split_page", "mthp_split") == (1, 1)
    # the 20 unmapped pages are freed, and the 246 zero-filled ones left in the split THP
    assert m.split_queue_len == 0 and m.frames_used() == 2 * HP - 20 - (HP - 20) // 2
    assert m.anon_huge_kb(p) == 2048             # the other THP stays PMD-mapped
    m.check()
    m.munmap(p, 0, 2 * HP)
    assert m.frames_used() == 0
    m.check()


def test_whole_unmap_frees_a_folio_without_queueing_it():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, HP + 64, writable=True)
    m.write(p, 0, 1)
    m.write(p, HP, 1)
    c0 = m.counters()
    m.munmap(p, 0, HP + 16)                      # whole PMD folio + the whole 64 kB folio
    assert delta(m, c0, "thp_deferred_split_page", "mthp_split_deferred") == (0, 0)
    assert m.split_queue_len == 0 and m.frames_used() == 0
    m.check()


def test_underused_thp_is_split_only_below_max_ptes_none_511():
    for none, splits in ((511, 0), (400, 1)):
        m = machine(mthp_sizes=(), khugepaged_max_ptes_none=none)
        p = m.spawn()
        m.mmap(p, 0, HP, writable=True)
        for v in range(100):
            m.write(p, v, v + 1)                 # 412 pages hold only zeros
        q = m.fork(p)                            # both PMD-mapped: the split finds both
        c0 = m.counters()
        assert m.shrink_deferred_split() == splits
        assert delta(m, c0, "thp_underused_split_page", "thp_split_page", "thp_split_pmd") == \
            (splits, splits, 2 * splits)
        assert m.split_queue_len == 0
        assert m.frames_used() == (HP if not splits else 100)     # zero-filled pages -> zero page
        assert [m.read(q, v) for v in (0, 99, 100, 511)] == [1, 100, 0, 0]
        m.check()
        m.exit(q)
        m.exit(p)
        assert m.leaks() == []


def test_cow_copy_can_leave_a_folio_partially_mapped():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 16, writable=True)
    m.write(p, 0, 1)
    q = m.fork(p)
    m.munmap(p, 4, 4)                            # pages 4..7 now mapped by the child only
    c0 = m.counters()
    m.write(q, 5, 9)                             # copied: page 5 is mapped nowhere any more
    assert delta(m, c0, "mthp_split_deferred", "fault_cow_copy") == (1, 1)
    m.check()


def test_shrinker_option_splits_right_away():
    m = machine(deferred_split_shrinker=True)
    p = m.spawn()
    m.mmap(p, 0, HP, writable=True)
    for v in range(HP):
        m.write(p, v, 1)
    c0 = m.counters()
    m.munmap(p, 0, 100)
    assert delta(m, c0, "thp_deferred_split_page", "thp_split_page") == (1, 1)
    assert m.split_queue_len == 0 and m.frames_used() == HP - 100
    m.check()


# ---------------------------------------------------------------- move_huge_pmd
def test_aligned_mremap_moves_the_pmd_and_its_deposited_table():
    m = machine(mthp_sizes=())
    p = m.spawn()
    m.mmap(p, 0, HP, writable=True)
    m.write(p, 7, 70)
    pt = m.pt_tables(p)
    c0 = m.counters()
    m.mremap(p, 0, HP, 8 * HP)
    assert delta(m, c0, "thp_split_pmd", "mremap_pages_moved", "pte_writes", "faults") == (0, HP, 2, 0)
    assert m.anon_huge_kb(p) == 2048 and m.pt_tables(p) == pt
    assert m.read(p, 8 * HP + 7) == 70
    m.check()
    # unaligned destination: split, then PTE moves
    c1 = m.counters()
    m.mremap(p, 8 * HP, HP, 16 * HP + 3)
    assert delta(m, c1, "thp_split_pmd") == (1,)
    assert m.read(p, 16 * HP + 3 + 7) == 70
    m.check()
    m.exit(p)
    assert m.leaks() == []


# ---------------------------------------------------------------- khugepaged
def test_khugepaged_is_off_by_default():
    m = machine()
    p = m.spawn()
    with pytest.raises(errors.InvalidArgument):
        m.khugepaged_scan(p)


def test_khugepaged_collapses_a_sparse_range_into_a_pmd():
    m = machine(mthp_sizes=(16,), khugepaged=True)
    p = m.spawn()
    m.mmap(p, 0, 2 * HP, writable=True)
    m.madvise(p, 0, 2 * HP, Advice.NOHUGEPAGE)   # fault at 4 kB / 16 kB first
    for v in range(0, HP, 5):
        m.write(p, v, v + 1)
    assert m.read(p, HP + 1) == 0                # a zero-page PTE in the second range
    assert m.khugepaged_scan(p) == 0             # VM_NOHUGEPAGE: not eligible
    m.madvise(p, 0, 2 * HP, Advice.HUGEPAGE)
    pt, used = m.vmpte_bytes(p), m.frames_used()
    c0 = m.counters()
    assert m.khugepaged_scan(p) == 1             # the zero-page-only table is not writable
    assert delta(m, c0, "thp_collapse_alloc", "khugepaged_pages_scanned", "pages_copied") == (1, 2 * HP, used)
    assert m.vmpte_bytes(p) == pt                # the old PTE table is now the deposit
    assert m.anon_huge_kb(p) == 2048 and m.frames_used() == HP
    assert [m.read(p, v) for v in (0, 1, 5, 510)] == [1, 0, 6, 511]
    c1 = m.counters()
    m.write(p, 3, 9)                             # mapped writable by the PMD: no fault
    assert delta(m, c1, "faults") == (0,)
    m.check()
    m.exit(p)
    assert m.leaks() == []


def test_khugepaged_limits_none_and_shared_ptes():
    m = machine(mthp_sizes=(), khugepaged=True, khugepaged_max_ptes_none=500,
                khugepaged_max_ptes_shared=3)
    p = m.spawn()
    m.mmap(p, 0, 2 * HP, writable=True)
    m.madvise(p, 0, 2 * HP, Advice.NOHUGEPAGE)
    for v in range(2):
        m.write(p, v, 1)                         # 510 empty PTEs > 500 (2 shared <= 3)
    for v in range(HP, 2 * HP):
        m.write(p, v, 1)
    q = m.fork(p)                                # every page now shared
    m.madvise(p, 0, 2 * HP, Advice.HUGEPAGE)
    c0 = m.counters()
    assert m.khugepaged_scan(p) == 0
    assert delta(m, c0, "thp_scan_exceed_none_pte", "thp_scan_exceed_share_pte") == (1, 1)
    m.exit(q)
    assert m.khugepaged_scan(p) == 0             # fork write-protected every PTE: SCAN_PAGE_RO
    m.write(p, HP + 7, 2)                        # reuse makes one PTE writable
    assert m.khugepaged_scan(p) == 1
    assert m.read(p, HP + 7) == 2 and m.read(p, HP + 8) == 1
    m.check()


# ---------------------------------------------------------------- against the reference
@pytest.mark.parametrize("options", [
    {"thp": "always", "mthp_sizes": (16, 64, 256)},
    {"thp": "always", "mthp_sizes": (32,), "deferred_split_shrinker": True},
])
def test_conformance_with_mthp(options):
    run_conformance(type(mmbench.open("linux", ram_pages=16)), default_settings(max_examples=10,
                    stateful_step_count=30), devices=0, vpn_span=2048, max_npages=16, options=options)


@pytest.mark.parametrize("seed", range(4))
def test_random_large_folio_ops_match_the_reference(seed):
    """Seeded random operations with mTHP, PMD THPs, the shrinker and khugepaged against
    the reference model: same results and values, check() after every step, no leaks."""
    rnd = random.Random(seed)
    m = machine(mthp_sizes=(16, 64, 512), ram_pages=1 << 15, khugepaged=True)
    ref = ReferenceMachine(ram_pages=1 << 15)
    procs = [(m.spawn(), ref.spawn())]
    m.mmap(procs[0][0], 0, 4 * HP, writable=True)
    ref.mmap(procs[0][1], 0, 4 * HP, writable=True)

    def on_both(p, r, call):
        out = []
        for mach, pid in ((m, p), (ref, r)):
            try:
                out.append(call(mach, pid))
            except errors.MMError as e:
                out.append(type(e).__name__)
        return out

    for step in range(150):
        k = rnd.randrange(len(procs))
        p, r = procs[k]
        v = rnd.randrange(6 * HP)
        if rnd.random() < 0.3:
            v &= ~(HP - 1)
        n = rnd.choice([1, 5, 16, 100, HP])
        op = rnd.choice(["write", "write", "write", "read", "fork", "munmap", "dontneed", "mremap",
                         "mmap", "exit", "shrink", "khugepaged"])
        if op == "write":
            got = on_both(p, r, lambda mach, pid: mach.write(pid, v, step + 1))
        elif op == "read":
            got = on_both(p, r, lambda mach, pid: mach.read(pid, v))
        elif op == "munmap":
            got = on_both(p, r, lambda mach, pid: mach.munmap(pid, v, n))
        elif op == "dontneed":
            got = on_both(p, r, lambda mach, pid: mach.madvise(pid, v, n, Advice.DONTNEED))
        elif op == "mremap":
            dst = 8 * HP + (v if rnd.random() < 0.5 else v + 3)
            got = on_both(p, r, lambda mach, pid: mach.mremap(pid, v, n, dst))
        elif op == "mmap":
            got = on_both(p, r, lambda mach, pid: mach.mmap(pid, v, n, writable=True))
        elif op == "shrink":
            m.shrink_deferred_split()
            got = [None, None]
        elif op == "khugepaged":
            m.khugepaged_scan(p)
            got = [None, None]
        elif op == "fork":
            if len(procs) >= 4:
                continue
            procs.append((m.fork(p), ref.fork(r)))
            got = [None, None]
        else:
            if len(procs) == 1:
                continue
            got = [m.exit(p), ref.exit(r)]
            procs.pop(k)
        assert got[0] == got[1], (seed, step, op, v, n, got)
        m.check()
    for p, r in procs:
        for v in range(0, 10 * HP, 37):
            got = on_both(p, r, lambda mach, pid: mach.read(pid, v))
            assert got[0] == got[1], (seed, "final read", v, got)
        m.exit(p)
    m.check()
    assert m.split_queue_len == 0
    assert m.leaks() == []
