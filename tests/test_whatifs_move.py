"""move_pages (UFFDIO_MOVE): the contract operation, linux's zero-copy move, the
generic copying fallback, replay, and conformance of linux's native path.

(The conformance suite over every registered design, tests/test_conformance.py,
runs linux with devices, where move_pages takes the copying fallback; the runs
here open linux without devices so that its own move runs.)
"""
import numpy as np
import pytest

import mmbench
from mmbench import errors
from mmbench.conformance import conformance_machine, default_settings
from mmbench.reference import ReferenceMachine
from mmbench.trace import Op, TraceBuilder, validate_trace
from hypothesis.stateful import run_state_machine_as_test

ALL = mmbench.backends()


def machine(name, **kw):
    return mmbench.open(name, ram_pages=1 << 14, **kw)


def has_move_pages(name):
    """A design without move_pages of its own and without a mappings view (the
    example plugin) reports move_pages unsupported, saying why."""
    m = machine(name)
    p = m.spawn()
    m.mmap(p, 0, 2)
    try:
        m.move_pages(p, 0, 1, 1)
    except errors.NotSupported as e:
        assert "lists no mappings" in str(e)
        return False
    return True


BACKENDS = [n for n in ALL if has_move_pages(n)]


def test_only_the_example_plugin_lacks_move_pages():
    assert sorted(set(ALL) - set(BACKENDS)) == (["flat"] if "flat" in ALL else [])


def gc_heap(m):
    """One process: a from-space at 0..16 with three objects, an empty to-space at 64..80."""
    p = m.spawn()
    m.mmap(p, 0, 16)
    m.mmap(p, 64, 16)
    for v, x in ((1, 11), (2, 12), (9, 19)):
        m.write(p, v, x)
    return p


@pytest.mark.parametrize("name", BACKENDS)
def test_move_pages_values(name):
    m = machine(name)
    p = gc_heap(m)
    m.move_pages(p, 0, 64, 16)
    assert [m.read(p, v) for v in (65, 66, 73, 64)] == [11, 12, 19, 0]
    assert [m.read(p, v) for v in range(16)] == [0] * 16          # the source reads 0, still mapped
    m.write(p, 1, 5)
    assert m.read(p, 65) == 11
    m.check()
    m.exit(p)
    assert m.leaks() == []


def test_linux_moves_folios_without_copying():
    m = machine("linux")
    p = gc_heap(m)
    used, copied = m.frames_used(), m.counter("pages_copied")
    m.move_pages(p, 0, 64, 16)
    m.check()                          # folio->index / ->mapping match the destination VMA
    assert m.frames_used() == used and m.counter("pages_copied") == copied
    assert m.counter("move_pages_moved") == 3 and m.counter("move_pages_copied") == 0
    assert m.rmap_walk(p, 65) == [(p, 65)]
    assert any("without copying" in n for n in m.notes())


@pytest.mark.parametrize("name", [n for n in BACKENDS if n not in ("linux", "reference")])
def test_other_designs_copy_and_say_so(name):
    m = machine(name)
    p = gc_heap(m)
    m.move_pages(p, 0, 64, 16)
    assert m.counter("move_pages_copied") == 3 and m.counter("move_pages_moved") == 0
    assert any(n.startswith("move_pages copies") for n in m.notes())


def test_linux_with_devices_copies():
    m = mmbench.open("linux", ram_pages=1 << 14, devices=1, device_pages=1 << 10)
    p = gc_heap(m)
    m.migrate(p, 0, 4, 1)
    m.move_pages(p, 0, 64, 16)
    assert m.counter("move_pages_copied") == 3 and m.read(p, 65) == 11
    m.check()


def test_linux_refuses_inherited_pages_with_pagebusy():
    m = machine("linux")
    ref = ReferenceMachine(ram_pages=1 << 14)
    for x in (m, ref):
        p = gc_heap(x)
        c = x.fork(p)
    assert ref.move_pages_may_busy(p, 0, 64, 16)
    meta, used = m.metadata(), m.frames_used()
    with pytest.raises(errors.PageBusy, match="-EBUSY"):
        m.move_pages(p, 0, 64, 16)
    assert m.metadata() == meta and m.frames_used() == used and m.read(p, 1) == 11
    # the child writes its copies: those are its own now and move
    for v in (1, 2, 9):
        m.write(c, v, v)
    m.move_pages(c, 0, 64, 16)
    assert m.read(c, 65) == 1 and m.read(p, 1) == 11 and m.counter("move_pages_moved") == 3
    m.check()
    # the parent's pages: still not AnonExclusive after the child left, until written
    m.exit(c)
    with pytest.raises(errors.PageBusy):
        m.move_pages(p, 0, 64, 16)
    for v in (1, 2, 9):
        m.write(p, v, m.read(p, v))
    m.move_pages(p, 0, 64, 16)
    assert m.read(p, 73) == 19
    m.exit(p)
    assert m.leaks() == []


@pytest.mark.parametrize("name", BACKENDS)
def test_move_pages_refusals(name):
    m = machine(name)
    p = gc_heap(m)
    m.mmap(p, 32, 4, shared=True)
    m.mmap(p, 40, 4, writable=False)
    with pytest.raises(errors.InvalidArgument, match="overlaps"):
        m.move_pages(p, 0, 8, 16)
    with pytest.raises(errors.SegmentationFault, match="0x10"):
        m.move_pages(p, 0, 100, 20)          # vpn 16.. is not mapped
    with pytest.raises(errors.SegmentationFault):
        m.move_pages(p, 0, 200, 4)
    for src, dst in ((32, 64), (64, 32), (40, 64), (0, 40)):
        with pytest.raises(errors.InvalidArgument, match="private and writable"):
            m.move_pages(p, src, dst, 4)
    m.write(p, 70, 1)
    with pytest.raises(errors.InvalidArgument, match="hold nothing"):
        m.move_pages(p, 0, 64, 16)            # the destination holds data (-EEXIST)
    with pytest.raises(errors.InvalidArgument):
        m.move_pages(p, 0, 64, 0)
    with pytest.raises(errors.NoSuchProcess):
        m.move_pages(99, 0, 64, 1)
    assert [m.read(p, v) for v in (1, 2, 9, 70)] == [11, 12, 19, 1]
    m.check()


def test_move_pages_over_a_huge_page_splits_it():
    m = mmbench.open("linux", ram_pages=1 << 14, thp="always")
    p = m.spawn()
    m.mmap(p, 0, 1024)
    m.write(p, 5, 55)                          # a 2 MiB folio at 0..512
    assert m.counters()["thp_fault_alloc"] == 1
    m.mmap(p, 2048, 16)
    m.move_pages(p, 0, 2048, 16)
    assert m.read(p, 2053) == 55 and m.read(p, 5) == 0
    assert m.counters()["thp_split_pmd"] >= 1
    m.check()
    m.exit(p)
    assert m.leaks() == []


# ------------------------------------------------------------- traces
def gc_trace():
    t = TraceBuilder()
    p = t.spawn()
    t.mmap(p, 0, 16)
    t.mmap(p, 64, 16)
    t.write(p, 1, 11)
    t.write(p, 9, 19)
    t.move_pages(p, 0, 64, 16)
    t.read(p, 65)
    t.move_pages(p, 64, 0, 32)                 # refused: 80.. unmapped
    c = t.fork(p)
    t.move_pages(p, 64, 0, 16)                 # inherited: PageBusy on linux, copied elsewhere
    t.read(p, 1)
    t.exit(c)
    t.exit(p)
    return t.build()


@pytest.mark.parametrize("name", BACKENDS)
def test_replay_matches_the_public_method(name):
    trace = gc_trace()
    r = machine(name).replay(trace, timing=False, frame=False)
    m = machine(name)
    status = []
    for rec in trace:
        op = Op(int(rec["op"]))
        try:
            if op == Op.MOVE_PAGES:
                m.move_pages(int(rec["pid"]), int(rec["vpn"]), int(rec["arg"]), int(rec["npages"]))
            elif op == Op.READ:
                assert m.read(int(rec["pid"]), int(rec["vpn"])) in (11, 0)
            else:
                getattr(TraceBuilder, op.name.lower())     # every op here has a builder method
                {Op.SPAWN: lambda: m.spawn(), Op.FORK: lambda: m.fork(int(rec["pid"])),
                 Op.EXIT: lambda: m.exit(int(rec["pid"])),
                 Op.MMAP: lambda: m.mmap(int(rec["pid"]), int(rec["vpn"]), int(rec["npages"])),
                 Op.WRITE: lambda: m.write(int(rec["pid"]), int(rec["vpn"]), int(rec["arg"]))}[op]()
            status.append(0)
        except errors.MMError as e:
            status.append(errors.STATUS_OF[type(e)])
    assert list(r["status"]) == status
    assert status[7] == errors.STATUS_OF[errors.SegmentationFault]
    busy = errors.STATUS_OF[errors.PageBusy]
    assert status[9] == (busy if name == "linux" else 0)
    assert int(r["value"][6]) == 11


def test_trace_validation_of_move_pages():
    t = TraceBuilder()
    p = t.spawn()
    t.move_pages(p, 0, (1 << 36) - 1, 2)     # the destination ends beyond the address space
    with pytest.raises(errors.InvalidArgument, match="MOVE_PAGES"):
        validate_trace(t.build())
    assert Op.MOVE_PAGES == max(Op)           # appended at the end: older traces keep their codes


# ------------------------------------------------------------- conformance of the native move
@pytest.mark.parametrize("options", [{}, {"anon_pgoff": "zero", "mremap_relocate_anon": True},
                                     {"mremap_relocate_anon": True}])
def test_linux_native_conformance(options):
    run_state_machine_as_test(conformance_machine("linux", devices=0, options=options),
                              settings=default_settings(max_examples=25))


def test_linux_native_conformance_huge_pages():
    run_state_machine_as_test(
        conformance_machine("linux", devices=0, vpn_span=2048, max_npages=600,
                            options={"thp": "always", "mremap_relocate_anon": True}),
        settings=default_settings(max_examples=4, stateful_step_count=25))
