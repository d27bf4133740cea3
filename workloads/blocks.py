"""Building blocks and the engine itself, as asv benchmarks.

* ``EngineDispatch``: a trace of NOP ops replayed with the clock off.  NOP is
  handled by the base class's ``c_nop``, so the loop measures the engine's
  per-op dispatch (record fetch, op switch, one C vtable call) on any design
  whose class derives from the Cython ``Machine`` — the reference model too,
  since its Python ``do_*`` methods are never reached for a NOP.  Target:
  under 10 ns per op.  ``track_dispatch_ns`` is the engine's own elapsed time
  per op (measured); ``time_replay`` is asv's wall time of the same replay
  (trace validation included).
* ``BlockBench``: every ``bench_*`` function of ``mmbench.blocks.bench`` (the
  frame allocator, page table, xarray, interval tree microbenchmarks), when
  that module exists in the commit under test; each is called with
  ``n = BLOCK_N`` operations (its own default access pattern) and returns ns
  per operation.
"""
from __future__ import annotations

import functools

import numpy as np

from ._asv import asv_backends

NOPS = 1 << 20
BLOCK_N = 1 << 16        # operations per block microbenchmark call


@functools.lru_cache(maxsize=1)
def _nop_trace():
    from mmbench.trace import TRACE_DTYPE, Op
    t = np.zeros(NOPS, dtype=TRACE_DTYPE)
    t["op"] = int(Op.NOP)
    return t


def dispatch_ns(backend: str, nops: int = NOPS) -> float:
    """Engine dispatch cost per op on `backend` (ns, clock off, elapsed of the nogil loop)."""
    import mmbench
    m = mmbench.open(backend, ram_pages=1024)
    trace = _nop_trace()[:nops]
    m.replay(trace, timing=False, frame=False)
    return m.last_replay["elapsed_ns"] / max(1, m.last_replay["ops"])


class EngineDispatch:
    params = [asv_backends()]
    param_names = ["backend"]
    repeat = (3, 10, 5.0)
    number = 1

    def setup(self, backend):
        import warnings
        import mmbench
        from mmbench.trace import Op
        if not hasattr(Op, "NOP"):
            raise NotImplementedError("this commit's engine has no NOP op")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if backend not in mmbench.backends():
                raise NotImplementedError(f"backend {backend!r} is not installed in this commit")
        self.m = mmbench.open(backend, ram_pages=1024)
        self.trace = _nop_trace()

    def time_replay(self, backend):
        self.m.replay(self.trace, timing=False, frame=False)

    def track_dispatch_ns(self, backend):
        return min(dispatch_ns(backend) for _ in range(7))   # the least disturbed of 7 runs
    track_dispatch_ns.unit = "ns/op (measured)"


def _block_benches() -> list[str]:
    try:
        from mmbench.blocks import bench
    except ImportError:
        return ["(none)"]
    names = sorted(n for n in dir(bench) if n.startswith("bench_") and callable(getattr(bench, n)))
    return names or ["(none)"]


class BlockBench:
    params = [_block_benches()]
    param_names = ["block"]

    def setup(self, block):
        try:
            from mmbench.blocks import bench
        except ImportError:
            raise NotImplementedError("mmbench.blocks.bench is not in this commit") from None
        self.fn = getattr(bench, block, None)
        if self.fn is None:
            raise NotImplementedError(f"mmbench.blocks.bench has no {block}")

    def track_ns_per_op(self, block):
        v = self.fn(BLOCK_N)
        if isinstance(v, dict):
            v = v.get("ns_per_op", v.get("ns"))
        if v is None:
            raise NotImplementedError(f"{block} returned no ns/op")
        return float(v)
    track_ns_per_op.unit = "ns/op (measured)"
