"""shmem huge=: PMD-sized folios in the page cache and PMD mappings of them.

The design's internal mount takes huge= from the thp option (or the design
option ``huge``); faults allocate a 512-page folio at the first fault in an
eligible aligned range of a file and map it with one PMD leaf when the VMA
lines up (do_set_pmd); PMD leaves are split by clearing them (file VMAs), and a
truncation or a reflink break inside a folio splits the folio (split_huge_page).
"""
import random

import pytest

import mmbench
from mmbench import Advice, errors

HP = 512


def _open(**kw):
    kw.setdefault("ram_pages", 1 << 15)
    return mmbench.open("shmem", **kw)


def _c(m, *names):
    c = m.counters()
    return {n: c[n] for n in names}


@pytest.mark.parametrize("shared", [False, True])
def test_aligned_2mib_write_is_one_fault_one_folio_one_pmd(shared):
    m = _open(thp="always")
    p = m.spawn()
    m.mmap(p, HP, HP, shared=shared)
    m.write(p, HP + 7, 1)
    assert _c(m, "faults", "thp_file_alloc", "thp_file_mapped", "pages_zeroed") == {
        "faults": 1, "thp_file_alloc": 1, "thp_file_mapped": 1, "pages_zeroed": HP}
    for v in range(HP, 2 * HP):                 # the rest of the 2 MiB takes no fault
        m.write(p, v, v)
    assert m.counters()["faults"] == 1
    # a file PMD carries no deposited table (x86): PUD + PMD tables only
    assert m.page_table_bytes(p) == 2 * 4096
    # one multi-index entry in the kernel's i_pages: a single xa_node
    assert m.file_info(p, HP)["xa_nodes"] == 1
    assert m.metadata()["xa_node"] == (1, 584)
    m.check()
    m.exit(p)
    assert m.leaks() == []


def test_thp_never_and_advise_follow_huge_mount_option():
    m = _open(thp="never")
    p = m.spawn()
    m.mmap(p, 0, HP)
    m.madvise(p, 0, HP, Advice.HUGEPAGE)
    m.write(p, 0, 1)
    assert m.counters()["thp_file_alloc"] == 0          # huge=never: whatever the advice
    m = _open(thp="madvise")
    p = m.spawn()
    m.mmap(p, 0, 2 * HP)
    m.write(p, 0, 1)
    assert m.counters()["thp_file_alloc"] == 0          # huge=advise without VM_HUGEPAGE
    m.madvise(p, HP, HP, Advice.HUGEPAGE)
    m.write(p, HP, 1)
    assert _c(m, "thp_file_alloc", "thp_file_mapped", "faults") == {
        "thp_file_alloc": 1, "thp_file_mapped": 1, "faults": 2}
    m.check()


def test_nohugepage_and_unaligned_ranges_stay_at_4k():
    m = _open(thp="always")
    p = m.spawn()
    m.mmap(p, 0, HP)
    m.madvise(p, 0, HP, Advice.NOHUGEPAGE)
    m.write(p, 0, 1)
    m.mmap(p, 4 * HP + 100, HP)           # file offset 0 at vpn 4*HP+100: never lines up
    m.write(p, 5 * HP, 1)
    m.mmap(p, 8 * HP, HP - 1)             # the aligned 2 MiB does not fit in the VMA
    m.write(p, 8 * HP, 1)
    assert _c(m, "thp_file_alloc", "faults") == {"thp_file_alloc": 0, "faults": 3}
    m.check()


def test_within_size_needs_the_folio_inside_i_size():
    m = _open(huge="within_size")
    assert m.huge == "within_size"
    p = m.spawn()
    m.mmap(p, 0, 2 * HP - 10, shared=True)       # i_size: 1014 pages
    m.write(p, 0, 1)                             # [0, 512) inside i_size: huge
    m.write(p, HP, 1)                            # [512, 1024) ends beyond it: 4 KiB
    assert m.counters()["thp_file_alloc"] == 1
    with pytest.raises(errors.InvalidArgument):
        _open(huge="sometimes")
    m.check()


def test_shared_partial_munmap_splits_only_the_pmd():
    m = _open(thp="always")
    p = m.spawn()
    m.mmap(p, 0, HP, shared=True)
    m.write(p, 0, 5)
    m.munmap(p, 0, 16)                           # __split_vma splits the PMD leaf
    assert _c(m, "thp_split_pmd", "thp_split_page") == {"thp_split_pmd": 1, "thp_split_page": 0}
    f0 = m.counters()["faults"]
    assert m.read(p, 16) == 0
    assert m.read(p, 17) == 0                    # PTE-mapped page by page: not inside the VMA
    assert m.counters()["faults"] == f0 + 2
    m.check()


def test_private_partial_munmap_splits_the_folio():
    m = _open(thp="always")
    p = m.spawn()
    m.mmap(p, 0, HP)
    for v in range(0, HP, 64):
        m.write(p, v, v + 1)
    m.munmap(p, 0, 16)                           # a private file punches the offsets out
    assert _c(m, "thp_split_pmd", "thp_split_page") == {"thp_split_pmd": 1, "thp_split_page": 1}
    assert m.file_info(p, 16)["nrpages"] == HP - 16
    assert m.read(p, 64) == 65
    m.check()
    assert m.metadata()["xa_node"][0] == 1 + 8   # the multi-index entry is 8 leaves now


def test_dontneed_on_shared_refaults_the_pmd():
    m = _open(thp="always")
    p = m.spawn()
    m.mmap(p, 0, HP, shared=True)
    m.write(p, 3, 9)
    m.madvise(p, 0, 8, Advice.DONTNEED)
    assert m.counters()["thp_split_pmd"] == 1
    assert m.read(p, 3) == 9                     # the page cache keeps shared data
    assert _c(m, "thp_file_mapped", "faults") == {"thp_file_mapped": 2, "faults": 2}
    m.check()


def test_fork_shared_copies_nothing_and_child_faults_one_pmd():
    m = _open(thp="always")
    p = m.spawn()
    m.mmap(p, 0, HP, shared=True)
    m.write(p, 0, 1)
    c = m.fork(p)
    assert m.counters()["fork_ptes_wrprotect"] == 0
    assert m.page_table_bytes(c) == 0
    for v in range(0, HP, 32):
        m.read(c, v)
    assert _c(m, "faults", "thp_file_mapped") == {"faults": 2, "thp_file_mapped": 2}
    m.check()


def test_private_fork_write_splits_the_shared_folio_and_copies_one_page():
    m = _open(thp="always")
    p = m.spawn()
    m.mmap(p, 0, HP)
    m.write(p, 0, 1)
    c = m.fork(p)
    assert m.counters()["fork_ptes_wrprotect"] == 1          # one PMD write-protected
    m.write(c, 10, 2)
    assert _c(m, "pages_copied", "thp_split_page") == {"pages_copied": 1, "thp_split_page": 1}
    assert m.read(p, 10) == 0 and m.read(c, 10) == 2 and m.read(c, 0) == 1
    m.check()
    m.exit(c)
    m.write(p, 11, 3)                                        # alone again: reuse
    assert m.counters()["pages_copied"] == 1
    m.check()


def test_fork_then_parent_write_after_child_exit_reuses_the_pmd():
    m = _open(thp="always")
    p = m.spawn()
    m.mmap(p, 0, HP)
    m.write(p, 0, 1)
    c = m.fork(p)
    m.exit(c)
    m.write(p, 1, 2)               # wp_huge_pmd splits, the fault maps the folio again writable
    assert _c(m, "thp_split_pmd", "thp_file_mapped", "pages_copied", "thp_split_page") == {
        "thp_split_pmd": 1, "thp_file_mapped": 2, "pages_copied": 0, "thp_split_page": 0}
    m.check()


def test_no_aligned_frames_falls_back_to_4k():
    m = _open(thp="always", ram_pages=HP + 100)
    p = m.spawn()
    m.mmap(p, 0, 2 * HP, shared=True)
    m.write(p, 0, 1)                       # takes the one aligned run
    m.write(p, HP, 1)                      # none left: thp_file_fallback, one page
    assert _c(m, "thp_file_alloc", "thp_file_fallback") == {"thp_file_alloc": 1, "thp_file_fallback": 1}
    m.check()


@pytest.mark.parametrize("seed", range(6))
def test_random_huge_ranges_match_the_reference(seed):
    """Seeded random operations over 2 MiB-aligned ranges, thp="always", shared and
    private mappings, against the reference model: same results and values,
    check() after every step, no leaks at the end."""
    from mmbench.reference import ReferenceMachine
    rnd = random.Random(seed)
    opts = [{}, {"anon_file": "per_mm"}, {"zero_page": True}][seed % 3]
    m = _open(thp="always", **opts)
    ref = ReferenceMachine(ram_pages=1 << 15)
    procs = [(m.spawn(), ref.spawn())]
    for mach, pid in ((m, procs[0][0]), (ref, procs[0][1])):
        mach.mmap(pid, 0, 4 * HP, writable=True)
        mach.mmap(pid, 4 * HP, 4 * HP, shared=True, writable=True)

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
        v = rnd.randrange(12 * HP)
        if rnd.random() < 0.5:
            v &= ~(HP - 1)
        n = rnd.choice([1, 10, 100, HP, 2 * HP])
        w = rnd.random() < 0.5
        op = rnd.choice(["write", "write", "write", "read", "read", "fork", "munmap", "mprotect",
                         "dontneed", "mremap", "mmap", "exit"])
        if op == "write":
            got = on_both(p, r, lambda mach, pid: mach.write(pid, v, step + 1))
        elif op == "read":
            got = on_both(p, r, lambda mach, pid: mach.read(pid, v))
        elif op == "munmap":
            got = on_both(p, r, lambda mach, pid: mach.munmap(pid, v, n))
        elif op == "mprotect":
            got = on_both(p, r, lambda mach, pid: mach.mprotect(pid, v, n, w))
        elif op == "dontneed":
            got = on_both(p, r, lambda mach, pid: mach.madvise(pid, v, n, Advice.DONTNEED))
        elif op == "mremap":
            got = on_both(p, r, lambda mach, pid: mach.mremap(pid, v, n, 16 * HP + v))
        elif op == "mmap":
            got = on_both(p, r, lambda mach, pid: mach.mmap(pid, v, n, shared=w, writable=True))
        elif op == "fork":
            if len(procs) >= 4:
                continue
            got = [m.fork(p), ref.fork(r)]
            procs.append(tuple(got))
            got = [None, None]
        else:
            if len(procs) == 1:
                continue
            got = [m.exit(p), ref.exit(r)]
            procs.pop(k)
        assert got[0] == got[1], (seed, step, op, v, n, got)
        m.check()
    c = m.counters()
    assert c["thp_file_alloc"] > 0 and c["thp_file_mapped"] > 0 and c["thp_split_pmd"] > 0
    for p, _ in procs:
        m.exit(p)
    m.check()
    assert m.leaks() == []


def test_conformance_with_huge_always_and_memdesc():
    from mmbench.conformance import default_settings, run_conformance
    run_conformance("shmem", default_settings(max_examples=10, stateful_step_count=30),
                    vpn_span=2048, max_npages=16, options={"thp": "always", "memmap": "memdesc"})
