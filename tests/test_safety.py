"""Issue #20, framework level: nothing crashes, nothing is lost.

Every case that could crash the interpreter runs in a subprocess (a crash is a
failed test, not a dead test run) and loops over every registered design
(`mmbench.backends()`): concurrent use of one machine, a FORK failing inside a
replay, lifecycle misuse (a second __init__, a subclass that skips __init__).
The cheap argument checks (link numbers, trace dtypes, zip bombs, the
reference's huge ranges) run in-process.
"""
import math
import os
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

import mmbench
from mmbench import errors
from mmbench.trace import TRACE_DTYPE, Op, TraceBuilder


def run_isolated(body, timeout=120):
    """Run `body` (Python source) in a fresh interpreter; fail on a crash or an error."""
    src = "import mmbench, numpy as np, threading, sys\nfrom mmbench import errors\n" + textwrap.dedent(body)
    p = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ))
    assert p.returncode == 0, (f"exit status {p.returncode} (negative: killed by signal)\n"
                               f"stdout:\n{p.stdout[-3000:]}\nstderr:\n{p.stderr[-3000:]}")
    return p.stdout


def test_concurrent_calls_during_replay_get_busy_or_succeed():
    out = run_isolated("""
        for name in mmbench.backends():
            m = mmbench.open(name, ram_pages=1 << 15)
            pid = m.spawn()
            m.mmap(pid, 0, 256)
            tb = mmbench.TraceBuilder(first_pid=m.next_free_pid)
            n_ops = 20000 if name in ("reference", "flat") else 200000
            vp = np.arange(n_ops, dtype=np.int64) % 256
            tb.extend(mmbench.trace.page_ops(mmbench.Op.WRITE, pid, vp, vp + 1))
            c = tb.fork(pid)
            tb.write(c, 3, 99)
            tb.exit(c)
            trace = tb.build()
            outcome = {}
            def run():
                try:
                    outcome["res"] = m.replay(trace, frame=False)
                except BaseException as e:   # noqa: BLE001 - reported below
                    outcome["exc"] = e
            busy = ok = 0
            for attempt in range(5):
                t = threading.Thread(target=run)
                t.start()
                calls = [lambda: m.replay(trace[:10], frame=False), lambda: m.spawn(),
                         lambda: m.write(pid, 1, 5), lambda: m.fork(pid), lambda: m.check(),
                         lambda: m.live_pids(), lambda: m.mappings(pid), lambda: m.metadata(),
                         lambda: m.counters(), lambda: m.munmap(pid, 300, 4), lambda: m.read(pid, 2)]
                k = 0
                while t.is_alive():
                    try:
                        r = calls[k % len(calls)]()
                        if k % len(calls) == 3:
                            m.exit(r)
                        ok += 1
                    except errors.MachineBusy:
                        busy += 1
                    except errors.NotSupported:
                        ok += 1
                    k += 1
                t.join()
                assert "exc" not in outcome, (name, repr(outcome.get("exc")))
                st = outcome["res"]["status"]
                assert (st == 0).all(), (name, np.unique(st))
                if busy:
                    break
            m.check()
            assert busy > 0, f"{name}: no call met the running replay"
            for p in m.live_pids():
                m.exit(p)
            assert m.leaks() == [], (name, m.leaks())
            print(name, "busy", busy, "ok", ok)
    """)
    assert "linux" in out


def test_second_replay_from_other_thread_is_refused():
    run_isolated("""
        for name in mmbench.backends():
            m = mmbench.open(name, ram_pages=1 << 12)
            pid = m.spawn()
            m.mmap(pid, 0, 16)
            n = 20000 if name in ("reference", "flat") else 400000
            vp = np.arange(n, dtype=np.int64) % 16
            trace = mmbench.trace.page_ops(mmbench.Op.READ, pid, vp)
            started, seen = threading.Event(), []
            def second():
                started.wait()
                while not seen:
                    try:
                        m.replay(trace[:100], frame=False)
                    except errors.MachineBusy as e:
                        seen.append(e)
                        return
            t = threading.Thread(target=second)
            t.start()
            for _ in range(20):
                started.set()
                m.replay(trace, frame=False)
                if seen:
                    break
            seen.append(None)
            t.join()
            assert isinstance(seen[0], errors.MachineBusy), (name, seen)
            m.check()
    """)


def test_failed_fork_inside_replay_stops_it():
    # The engine path, the same for every design: a Python design whose fork fails.
    run_isolated("""
        from mmbench.reference import ReferenceMachine
        class NoFork(ReferenceMachine):
            name = "nofork"
            def do_fork(self, pid, child):
                raise errors.OutOfMemory("no frame for the child's page tables")
        m = NoFork(ram_pages=64)
        tb = mmbench.TraceBuilder()
        p = tb.spawn(); tb.mmap(p, 0, 4); tb.write(p, 0, 7)
        c = tb.fork(p)
        tb.write(c, 0, 8); tb.read(c, 0); tb.exit(c)
        q = tb.spawn(); tb.mmap(q, 0, 1)
        res = m.replay(tb.build(), frame=False)
        st = list(res["status"])
        assert st == [0, 0, 0, -4], st
        assert "FORK failed" in m.last_replay["stopped"], m.last_replay
        assert m.live_pids() == [1]
        m.check()
        assert m.read(1, 0) == 7
    """)
    # Every design, out of frames: fork must fail (or succeed), never crash.
    run_isolated("""
        for name in mmbench.backends():
            m = mmbench.open(name, ram_pages=40)
            tb = mmbench.TraceBuilder()
            p = tb.spawn()
            tb.mmap(p, 0, 64)
            for v in range(64):
                tb.write(p, v, v + 1)
            kids = []
            for _ in range(6):
                kids.append(tb.fork(p))
            for c in kids:
                tb.write(c, 1, 5); tb.read(c, 2); tb.mremap(c, 0, 4, 200)
                tb.munmap(c, 8, 4)
            for c in kids:
                tb.exit(c)
            res = m.replay(tb.build(), frame=False)
            st = np.asarray(res["status"])
            m.check()
            if "stopped" in m.last_replay:
                assert st[-1] != 0
            for q in m.live_pids():
                m.exit(q)
            m.check()
            print(name, m.last_replay.get("stopped", "ran to the end"), np.unique(st))
    """)


def test_init_twice_and_skipped_init_are_refused():
    run_isolated("""
        for name in mmbench.backends():
            m = mmbench.open(name, ram_pages=1 << 10)
            pid = m.spawn()
            m.mmap(pid, 0, 8)
            m.write(pid, 1, 42)
            try:
                m.__init__(ram_pages=1 << 10)
            except errors.InvalidArgument as e:
                assert "already initialised" in str(e)
            else:
                raise AssertionError(f"{name}: second __init__ accepted")
            assert m.read(pid, 1) == 42
            m.check()
            m.exit(pid)
            assert m.leaks() == []

            cls = type(m)
            Skip = type("Skip" + cls.__name__, (cls,), {"__init__": lambda self, *a, **k: None})
            s = Skip()
            for call in (s.spawn, s.check, s.live_pids, lambda: s.replay(np.zeros(0, mmbench.TRACE_DTYPE)),
                         lambda: s.mmap(1, 0, 1), lambda: s.fork(1),
                         # a Python design's own metadata() override is its business
                         *([s.metadata] if cls.metadata is mmbench.Machine.metadata else [])):
                try:
                    call()
                except errors.InvalidArgument as e:
                    assert "never initialised" in str(e), (name, str(e))
                else:
                    raise AssertionError(f"{name}: uninitialised machine accepted a call")
            print(name, "ok")
    """)


@pytest.mark.parametrize("bad", [(1e19, 1.0, 512), (math.inf, 1.0, 512), (63.0, math.inf, 512),
                                 (63.0, 1.0, 1e19), (63.0, 1.0, math.inf), (math.nan, 1.0, 512),
                                 (63.0, -1.0, 512), (0.0, 1.0, 512)])
def test_link_numbers_out_of_range_are_invalid_argument(bad):
    with pytest.raises(errors.InvalidArgument):
        mmbench.open("linux", ram_pages=64, link=bad)


def test_link_in_range_is_accepted():
    m = mmbench.open("linux", ram_pages=64, link=(1e5, 0.0, 1 << 20))
    assert m.link == {"gbps": 1e5, "latency_us": 0.0, "batch_pages": 1 << 20}


def test_trace_subarray_field_is_invalid_argument():
    dt = np.dtype([("op", "u1", (2,)), ("pid", "i4"), ("vpn", "i8"), ("npages", "i8"), ("arg", "u8")])
    with pytest.raises(errors.InvalidArgument, match="subarray"):
        mmbench.trace.validate_trace(np.zeros(3, dt))
    m = mmbench.open("linux", ram_pages=64)
    with pytest.raises(errors.InvalidArgument):
        m.replay(np.zeros(3, dt))
    m.check()


def _bomb(path, nbytes):
    """A .npz whose 'trace' member inflates to `nbytes` of zero records."""
    n = nbytes // TRACE_DTYPE.itemsize
    header = np.lib.format.header_data_from_array_1_0(np.zeros(0, TRACE_DTYPE))
    header["shape"] = (n,)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("trace.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, header)
            chunk = bytes(1 << 20)
            left = n * TRACE_DTYPE.itemsize
            while left:
                f.write(chunk[:min(left, len(chunk))])
                left -= min(left, len(chunk))


def test_zip_bomb_is_refused_before_inflating(tmp_path):
    path = tmp_path / "bomb.npz"
    _bomb(path, 64 << 20)                      # 64 MiB of records, ~64 KiB on disk
    assert path.stat().st_size < (1 << 20)
    t0 = time.process_time()
    with pytest.raises(errors.InvalidArgument, match="limit"):
        mmbench.load_trace(path, max_bytes=16 << 20)
    assert time.process_time() - t0 < 5        # refused from the directory, nothing inflated
    assert len(mmbench.load_trace(path)) == (64 << 20) // TRACE_DTYPE.itemsize   # default limit: 1 GiB


def test_load_limit_override_and_validation(tmp_path):
    tb = TraceBuilder()
    p = tb.spawn()
    tb.mmap(p, 0, 4)
    path = tmp_path / "t.npz"
    mmbench.save_trace(path, tb.build())
    assert len(mmbench.load_trace(path)) == 2
    with pytest.raises(errors.InvalidArgument):
        mmbench.load_trace(path, max_bytes=10)
    for bad in (-1, 1.5, True, "1"):
        with pytest.raises(errors.InvalidArgument):
            mmbench.load_trace(path, max_bytes=bad)
    assert mmbench.trace.MAX_TRACE_BYTES == 1 << 30


def test_reference_work_is_bounded_by_mapped_pages():
    run_isolated("""
        from mmbench.reference import ReferenceMachine
        import time
        m = ReferenceMachine(ram_pages=64, devices=1, device_pages=64)
        p = m.spawn()
        m.mmap(p, 5, 10)
        m.write(p, 6, 3)
        big = mmbench.VPN_LIMIT
        t0 = time.process_time()
        for call in (lambda: m.migrate(p, 0, big, 1), lambda: m.mprotect(p, 0, big, False),
                     lambda: m.madvise_dontneed(p, 0, big), lambda: m.madvise(p, 0, big, mmbench.Advice.HUGEPAGE)):
            try:
                call()
            except errors.InvalidArgument:
                pass
            else:
                raise AssertionError("accepted a range with unmapped pages")
        try:
            m.mremap(p, 0, big // 2, big // 2)
        except errors.SegmentationFault:
            pass
        try:
            m.mmap(p, 0, big)
        except errors.InvalidArgument:
            pass
        assert m.read(p, 6) == 3
        m.munmap(p, 0, big)
        assert m.mappings(p) == []
        assert time.process_time() - t0 < 10, time.process_time() - t0
        m.check()
    """, timeout=60)


def test_same_thread_may_reenter_but_not_nest_a_replay():
    from mmbench.reference import ReferenceMachine

    class Reentrant(ReferenceMachine):
        name = "reentrant"
        seen = []

        def do_write(self, pid, vpn, value):
            self.seen.append((self.live_pids(), self.read(pid, vpn)))   # public calls from a hook
            if value == 99:
                try:
                    self.replay(np.zeros(0, TRACE_DTYPE), frame=False)
                except errors.MachineBusy as e:
                    self.seen.append(str(e))
            super().do_write(pid, vpn, value)

    m = Reentrant(ram_pages=64)
    tb = TraceBuilder()
    p = tb.spawn()
    tb.mmap(p, 0, 2)
    tb.write(p, 0, 5)
    tb.write(p, 1, 99)
    res = m.replay(tb.build(), frame=False)
    assert list(res["status"]) == [0, 0, 0, 0]
    assert m.seen[0] == ([1], 0) and m.seen[1] == ([1], 0)
    assert "inside another call" in m.seen[2]
    m.write(1, 0, 6)                                # the machine was given back
    assert m.read(1, 0) == 6
    m.check()


# Design-specific views and extra operations, with the arguments each takes ("P": a live
# pid, "V": a mapped vpn); a design lists only those it has.
VIEW_CALLS = [("notes", ()), ("thp_notes", ()), ("rmap_walk", ("P", "V")), ("vmas", ("P",)),
              ("entries", ("P",)), ("anon_huge_kb", ("P",)), ("vmpte_bytes", ("P",)),
              ("pt_tables", ("P",)), ("device_entries", ("P", 1)), ("page_node", ("P", "V")),
              ("dma_transfers_each_way", ()), ("superpages", ("P",)), ("chain_depth_histogram", ()),
              ("chain_length", ("P", "V")), ("objects", ()), ("object_graph", ()),
              ("page_table_bytes", ("P",)), ("file_info", ("P", "V")), ("amaps", ()),
              ("anon_ref", ("P", "V")), ("gm_state", ("P", "V")), ("hmadvise_willneed", ("P", "V", 1, 1)),
              ("mmap_peer_shared", ("P", 900, 2))]


def test_design_views_are_guarded_during_replay():
    """Every design-specific view or extra operation called from other threads while a
    replay runs gets MachineBusy or a consistent answer, never a crash; this is the
    stress test of the issue: several threads, one machine, check() at the end."""
    out = run_isolated("""
        VIEW_CALLS = %r
        for name in mmbench.backends():
            cls = type(mmbench.open(name, ram_pages=64))
            kw = dict(devices=1, device_pages=256) if cls.supports_devices else {}
            m = mmbench.open(name, ram_pages=1 << 15, **kw)
            pid = m.spawn()
            m.mmap(pid, 0, 256)
            m.write(pid, 1, 7)
            views = []
            for meth, args in VIEW_CALLS:
                if hasattr(m, meth):
                    args = tuple(pid if a == "P" else 1 if a == "V" else a for a in args)
                    views.append((meth, args))
            tb = mmbench.TraceBuilder(first_pid=m.next_free_pid)
            n_ops = 20000 if name in ("reference", "flat") else 300000
            vp = np.arange(n_ops, dtype=np.int64) %% 256
            tb.extend(mmbench.trace.page_ops(mmbench.Op.WRITE, pid, vp, vp + 1))
            c = tb.fork(pid)
            tb.write(c, 3, 99)
            tb.exit(c)
            trace = tb.build()
            tally = {"busy": 0, "ok": 0, "other": 0}
            stop = threading.Event()
            lock = threading.Lock()
            def hammer(k):
                calls = [lambda: m.read(pid, 2), lambda: m.metadata(), lambda: m.counters(),
                         lambda: m.check(), lambda: m.live_pids()]
                calls += [(lambda f=getattr(m, meth), a=args: f(*a)) for meth, args in views]
                i = k
                while not stop.is_set():
                    try:
                        calls[i %% len(calls)]()
                        key = "ok"
                    except errors.MachineBusy:
                        key = "busy"
                    except errors.MMError:
                        key = "other"       # e.g. mmap_peer_shared over its own mapping
                    with lock:
                        tally[key] += 1
                    i += 1
            threads = [threading.Thread(target=hammer, args=(k,), daemon=True) for k in range(3)]
            for t in threads:
                t.start()
            replays = refused = 0
            try:
                while replays < 5 and not (replays and tally["busy"]):
                    try:
                        res = m.replay(trace, frame=False)
                    except errors.MachineBusy:    # a view or check() of a hammer holds it
                        refused += 1
                        continue
                    replays += 1
                    assert (np.asarray(res["status"]) == 0).all(), (name, np.unique(res["status"]))
            finally:
                stop.set()
                for t in threads:
                    t.join()
            m.check()
            assert tally["busy"] > 0, (name, tally)
            for meth, args in views:      # every view still answers once the machine is free
                try:
                    getattr(m, meth)(*args)
                except errors.MMError as e:
                    assert not isinstance(e, errors.MachineBusy), (name, meth)
            for p in m.live_pids():
                m.exit(p)
            m.check()
            assert m.leaks() == [], (name, m.leaks())
            print(name, len(views), "views", tally, "replays", replays, "refused", refused)
    """ % (VIEW_CALLS,), timeout=300)
    assert "linux" in out and "gmem" in out


def test_held_guards_a_plugin_view():
    """Machine.held() is how a design's own view takes the machine (nested: allowed)."""
    from mmbench.reference import ReferenceMachine

    class Viewing(ReferenceMachine):
        name = "viewing"

        def pages(self, pid):
            with self.held():
                return len(self.mappings(pid))

    m = Viewing(ram_pages=64)
    p = m.spawn()
    m.mmap(p, 0, 4)
    assert m.pages(p) == 1
    m.replay(np.zeros(0, TRACE_DTYPE), frame=False)
    assert m.pages(p) == 1
    Skip = type("Skip", (Viewing,), {"__init__": lambda self, *a, **k: None})
    with pytest.raises(errors.InvalidArgument, match="never initialised"):
        Skip().pages(1)


def test_linux_check_on_a_deep_fork_chain():
    """check() visits each anon_vma once per pass (linear in the AVCs, not AVCs x depth):
    a fork chain 1500 deep checks in about a second here (it took minutes before)."""
    run_isolated("""
        m = mmbench.open("linux", ram_pages=1 << 14)
        p = m.spawn()
        m.mmap(p, 0, 4)
        for v in range(4):
            m.write(p, v, v + 1)
        chain = [p]
        for k in range(1500):
            c = m.fork(chain[-1])
            m.write(c, k % 4, k)
            chain.append(c)
        m.check()
        assert m.read(chain[-1], 1) == 1497 and m.read(chain[0], 1) == 2
        meta = m.metadata()
        assert meta["anon_vma"][0] == 1501 and meta["anon_vma_chain"][0] == 1501 * 1502 // 2
        for q in chain[::2]:                 # every other link goes: parents die under children
            m.exit(q)
        m.check()
        for q in m.live_pids():
            m.exit(q)
        m.check()
        assert m.leaks() == []
    """, timeout=300)


def test_every_design_bounds_work_by_resident_pages():
    """Issue #20 item 7: a 2**36-page mapping holding two pages: migrate both ways,
    mprotect, madvise, fork, check and munmap cost what is resident, not the range (the
    child is killed by the timeout if one of them walks 2**36 pages: minutes)."""
    out = run_isolated("""
        for name in mmbench.backends():
            cls = type(mmbench.open(name, ram_pages=64))
            if name in ("reference", "flat"):
                continue                       # the reference has its own test above
            kw = dict(devices=1, device_pages=64) if cls.supports_devices else {}
            m = mmbench.open(name, ram_pages=256, **kw)
            p = m.spawn()
            big = mmbench.VPN_LIMIT - 16
            m.mmap(p, 8, big)
            m.write(p, 9, 3)
            m.write(p, big - 5, 4)
            calls = [lambda: m.mprotect(p, 8, big, False), lambda: m.madvise(p, 8, big, mmbench.Advice.HUGEPAGE),
                     lambda: m.exit(m.fork(p)), lambda: m.check()]
            if kw:
                calls = [lambda: m.migrate(p, 8, big, 1), lambda: m.migrate(p, 8, big, 0)] + calls
            for call in calls:
                try:
                    call()
                except errors.OutOfMemory:     # e.g. a device cannot take 2**36 pages
                    pass
                m.check()
            assert m.read(p, 9) == 3 and m.read(p, big - 5) == 4, name
            m.madvise_dontneed(p, 8, big)
            assert m.read(p, 9) == 0
            m.munmap(p, 0, mmbench.VPN_LIMIT)
            try:
                m.read(p, 9)
                raise AssertionError((name, "still mapped"))
            except errors.SegmentationFault:
                pass
            m.exit(p)
            assert m.leaks() == [], (name, m.leaks())
            print(name, "ok")
    """, timeout=120)
    assert "freebsd ok" in out and "shmem ok" in out
