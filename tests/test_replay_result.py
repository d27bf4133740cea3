"""What replay returns: columns built when asked for, a zero-copy polars frame, one validation pass."""
from __future__ import annotations

import numpy as np
import pytest

import mmbench
from mmbench import errors
from mmbench.trace import TRACE_DTYPE, Op, TraceBuilder, page_ops


def _trace(n=1000):
    t = TraceBuilder()
    p = t.spawn()
    t.mmap(p, 0, n)
    v = np.arange(n, dtype=np.int64)
    t.extend(page_ops(Op.WRITE, p, v, v.astype(np.uint64) + 7))
    t.extend(page_ops(Op.READ, p, v[:10]))
    return t.build()


@pytest.mark.parametrize("backend", ["linux", "reference"])
def test_result_columns_match_the_trace_and_the_frame(backend):
    tr = _trace()
    m = mmbench.open(backend, ram_pages=4096)
    res = m.replay(tr, timing=True, frame=False)
    assert set(res) == {"op", "pid", "vpn", "npages", "arg", "dev", "status", "value", "ns"}
    assert len(res["status"]) == len(tr) and not res["status"].any()
    assert list(res["value"][-10:]) == list(range(7, 17))              # the reads see the writes
    for f in ("op", "pid", "vpn", "npages", "arg", "dev"):
        np.testing.assert_array_equal(res[f], tr[f])
    cols = res.columns()
    assert all(c.flags.c_contiguous for c in cols.values())
    df = res.frame()
    assert df.columns == list(cols) and df.height == len(tr)
    np.testing.assert_array_equal(df["value"].to_numpy(), res["value"])
    np.testing.assert_array_equal(df["vpn"].to_numpy(), tr["vpn"])
    # the columns are what polars wraps without copying (what frame() relies on)
    import polars as pl
    wrapped = pl.DataFrame(cols)
    assert wrapped["vpn"].to_numpy().ctypes.data == cols["vpn"].ctypes.data
    with pytest.raises(KeyError):
        res["nosuch"]


def test_a_stopped_replay_returns_the_ops_that_ran():
    tr = _trace(16)
    tr = np.concatenate([tr[:5], page_ops(Op.WRITE, 1, [1 << 30]), tr[5:]])   # unmapped: SEGV
    m = mmbench.open("linux", ram_pages=4096)
    res = m.replay(tr, timing=False, stop_on_error=True, frame=False)
    assert len(res["status"]) == 6 == len(res["vpn"]) and res["status"][-1] != 0
    assert "ns" not in res


@pytest.mark.parametrize("field,value,exc", [
    ("op", 200, errors.InvalidArgument), ("npages", 2, errors.InvalidArgument),
    ("vpn", -1, errors.InvalidArgument), ("pid", 9, errors.NoSuchProcess)])
def test_the_first_bad_record_is_named_and_nothing_runs(field, value, exc):
    tr = _trace(32)
    tr[20][field] = value
    m = mmbench.open("linux", ram_pages=4096)
    with pytest.raises(exc, match="record 20"):
        m.replay(tr)
    assert m.live_pids() == [] and m.frames_used() == 0


@pytest.mark.parametrize("n", [1, 2, 3, 1000, 1001])
@pytest.mark.parametrize("timing", [False, True])
def test_the_default_frame_equals_the_columns_route(n, timing):
    # frame=True de-interleaves the trace's fields in the validation pass (two records
    # at a time, then the odd one); it must give the frame the result's own columns give
    tr = _trace(n)[:n + 2]                        # spawn, mmap, then n writes (odd or even)
    tr["dev"][2:] = 5                             # ignored by writes; the frame shows it
    df = mmbench.open("linux", ram_pages=4096).replay(tr, timing=timing)
    res = mmbench.open("linux", ram_pages=4096).replay(tr, timing=timing, frame=False)
    want = res.frame()
    assert df.columns == want.columns and df.height == len(tr)
    for c in df.columns:
        if c != "ns":
            np.testing.assert_array_equal(df[c].to_numpy(), want[c].to_numpy())
    for f in ("op", "pid", "vpn", "npages", "arg", "dev"):
        np.testing.assert_array_equal(df[f].to_numpy(), tr[f])
        assert df[f].dtype == want[f].dtype


def test_a_stopped_replay_frame_holds_the_ops_that_ran():
    tr = _trace(16)
    tr = np.concatenate([tr[:5], page_ops(Op.WRITE, 1, [1 << 30]), tr[5:]])   # unmapped: SEGV
    df = mmbench.open("linux", ram_pages=4096).replay(tr, timing=False, stop_on_error=True)
    assert df.height == 6 and df["status"][-1] != 0
    np.testing.assert_array_equal(df["vpn"].to_numpy(), tr["vpn"][:6])


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 1001])
def test_the_field_columns_of_any_records(n):
    # the de-interleave (trace_columns; replay's validation pass uses the same code)
    # on arbitrary bytes: every field of every record lands in its column
    from mmbench._tracecheck import trace_columns
    rng = np.random.default_rng(n)
    tr = rng.integers(0, 256, size=n * TRACE_DTYPE.itemsize, dtype=np.uint8).view(TRACE_DTYPE)
    cols = trace_columns(tr, n)
    assert list(cols) == ["op", "pid", "vpn", "npages", "arg", "dev"]
    for f, c in cols.items():
        assert c.dtype == tr.dtype[f] and c.flags.c_contiguous
        np.testing.assert_array_equal(c, tr[f])
