"""Huge pages in the contract: madvise advice, the thp option, notes, and the
conformance suite with thp="always" over huge-page-sized mappings."""
import numpy as np
import pytest

import mmbench
from mmbench import Advice, Op, errors
from mmbench.conformance import default_settings, run_conformance
from mmbench.hugepages import THP_MODES
from mmbench.reference import ReferenceMachine
from mmbench.trace import TraceBuilder, validate_trace

THP_DESIGNS = ["freebsd", "shmem", "uvm"]


def test_advice_values_are_linux_madv_numbers():
    assert (int(Advice.DONTNEED), int(Advice.HUGEPAGE), int(Advice.NOHUGEPAGE)) == (4, 14, 15)
    assert Op.MADVISE == Op.NOP + 1          # appended after the existing op codes


@pytest.mark.parametrize("bad", [0, 3, 5, 16, -1, 1 << 40])
def test_unknown_advice_is_invalid(bad):
    m = ReferenceMachine()
    p = m.spawn()
    m.mmap(p, 0, 4)
    with pytest.raises(errors.InvalidArgument):
        m.madvise(p, 0, 4, bad)
    t = TraceBuilder()
    q = t.spawn()
    t.mmap(q, 0, 4)
    tr = t.build()
    rec = np.zeros(1, dtype=tr.dtype)
    rec["op"], rec["pid"], rec["vpn"], rec["npages"] = int(Op.MADVISE), q, 0, 4
    rec["arg"] = np.uint64(bad & ((1 << 64) - 1))
    with pytest.raises(errors.InvalidArgument):
        validate_trace(np.concatenate([tr, rec]))


@pytest.mark.parametrize("name", THP_DESIGNS + ["reference"])
def test_advice_keeps_values_and_needs_a_mapped_range(name):
    m = mmbench.open(name, ram_pages=1 << 14)
    p = m.spawn()
    m.mmap(p, 0, 1024)
    for v in (0, 511, 512, 1023):
        m.write(p, v, v + 1)
    before = m.metadata(), m.frames_used()
    for advice in (Advice.HUGEPAGE, Advice.NOHUGEPAGE):
        m.madvise(p, 0, 1024, advice)
        m.madvise(p, 100, 700, advice)
        with pytest.raises(errors.InvalidArgument):
            m.madvise(p, 1000, 100, advice)       # runs past the mapping
        with pytest.raises(errors.InvalidArgument):
            m.madvise(p, 4096, 1, advice)         # nothing mapped there
    assert (m.metadata(), m.frames_used()) == before
    assert [m.read(p, v) for v in (0, 511, 512, 1023)] == [1, 512, 513, 1024]
    m.madvise(p, 0, 1024, Advice.DONTNEED)       # the shorthand's meaning
    assert m.read(p, 511) == 0
    m.exit(p)
    m.check()
    assert m.leaks() == []


@pytest.mark.parametrize("name", THP_DESIGNS)
@pytest.mark.parametrize("mode", THP_MODES)
def test_thp_modes_accepted_and_explained(name, mode):
    m = mmbench.open(name, ram_pages=1 << 12, thp=mode)
    assert m.options["thp"] == mode
    notes = m.notes()
    assert notes and all(isinstance(n, str) and n for n in notes)


@pytest.mark.parametrize("name", THP_DESIGNS)
@pytest.mark.parametrize("bad", ["sometimes", "", "ALWAYS", None, 1, True])
def test_unknown_thp_mode_is_invalid(name, bad):
    with pytest.raises(errors.InvalidArgument):
        mmbench.open(name, ram_pages=1 << 12, thp=bad)


def test_thp_default_is_madvise():
    for name in THP_DESIGNS:
        assert mmbench.open(name, ram_pages=1 << 12).options["thp"] == "madvise"


def test_uvm_says_it_has_no_superpages():
    notes = mmbench.open("uvm", ram_pages=1 << 12, thp="always").notes()
    assert any("NetBSD has no anonymous superpages: runs at 4 KiB" in n for n in notes)


def test_freebsd_thp_maps_onto_pg_ps_enabled():
    assert mmbench.open("freebsd", ram_pages=1 << 12, thp="never").pg_ps_enabled is False
    for mode in ("madvise", "always"):
        assert mmbench.open("freebsd", ram_pages=1 << 12, thp=mode).pg_ps_enabled is True


def test_shmem_thp_maps_onto_huge_mount_option():
    got = {mode: mmbench.open("shmem", ram_pages=1 << 12, thp=mode).huge for mode in THP_MODES}
    assert got == {"never": "never", "madvise": "advise", "always": "always"}


def test_design_without_advice_says_not_supported():
    # the base default cannot tell whether a range is mapped: a design that
    # does not implement huge-page advice refuses it (DONTNEED still works)
    class NoAdvice(ReferenceMachine):
        name = "no-advice"
        huge_page_advice = False
        do_madvise = None
    m = NoAdvice()
    p = m.spawn()
    m.mmap(p, 0, 2)
    m.write(p, 0, 5)
    with pytest.raises(errors.NotSupported):
        m.madvise(p, 0, 2, Advice.HUGEPAGE)
    m.madvise(p, 0, 2, Advice.DONTNEED)
    assert m.read(p, 0) == 0


def test_replay_of_advice_matches_per_op():
    t = TraceBuilder()
    p = t.spawn()
    t.mmap(p, 0, 1024)
    t.write_range(p, 0, 1024)
    t.madvise(p, 0, 1024, Advice.HUGEPAGE)
    t.madvise(p, 512, 1024, Advice.NOHUGEPAGE)      # past the end: InvalidArgument
    t.madvise(p, 0, 10, Advice.DONTNEED)
    t.read(p, 5)
    t.read(p, 600)
    t.exit(p)
    tr = t.build()
    for name in THP_DESIGNS + ["reference"]:
        r = mmbench.open(name, ram_pages=1 << 14, **({"thp": "always"} if name != "reference" else {}))
        out = r.replay(tr, timing=False, frame=False)
        st, val = out["status"], out["value"]
        assert list(st[-6:]) == [0, -5, 0, 0, 0, 0], name
        assert val[-3] == 0 and val[-2] != 0, name


@pytest.mark.parametrize("name", THP_DESIGNS + ["reference"])
def test_conformance_thp_always_huge_ranges(name):
    opts = {} if name == "reference" else {"thp": "always"}
    run_conformance(name, default_settings(max_examples=8, stateful_step_count=25),
                    vpn_span=1024, max_npages=16, options=opts)


@pytest.mark.parametrize("name", ["flat"])       # gmem: tests/test_gmem_thp.py
def test_every_design_accepts_thp_and_says_when_it_runs_at_4k(name):
    for mode in THP_MODES:
        m = mmbench.open(name, ram_pages=1 << 12, thp=mode)
        assert m.options["thp"] == mode
        assert any("runs at 4 KiB" in n for n in m.notes())
    with pytest.raises(errors.InvalidArgument):
        mmbench.open(name, ram_pages=1 << 12, thp="sometimes")


def test_shmem_advice_sets_vm_hugepage_splitting_only_where_flags_change():
    m = mmbench.open("shmem", ram_pages=1 << 14)
    p = m.spawn()
    m.mmap(p, 0, 1024)
    m.write(p, 150, 9)
    vmas = lambda: m.metadata()["vm_area_struct"][0]
    assert vmas() == 1
    s0 = m.counter("vma_splits")
    m.madvise(p, 100, 100, Advice.HUGEPAGE)          # VM_HUGEPAGE on [100, 200): two splits
    assert vmas() == 3 and m.counter("vma_splits") == s0 + 2
    m.madvise(p, 120, 50, Advice.HUGEPAGE)           # nothing changes: no split
    assert vmas() == 3 and m.counter("vma_splits") == s0 + 2
    m.madvise(p, 0, 1024, Advice.NOHUGEPAGE)         # one flag everywhere: merged back
    assert vmas() == 1
    m.check()
    assert m.read(p, 150) == 9
    c = m.fork(p)                                    # the flag travels with the VMA
    m.madvise(c, 0, 1024, Advice.NOHUGEPAGE)
    assert m.metadata()["vm_area_struct"][0] == 2
    m.exit(c)
    m.exit(p)
    m.check()
    assert m.leaks() == []
