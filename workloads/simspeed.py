"""The simulator's own speed and memory, per design (asv tracks them over commits).

Not a metric family of the comparison: these numbers describe mmbench, not the
designs' kernels, so a regression of the model shows in asv's history.

* ``Replay.time_replay``          one replay of 256K first-touch writes, end to
                                  end (validation, the nogil loop, the result)
* ``Replay.track_loop_ns_per_op`` the nogil loop alone, ns per op
* ``Replay.track_ops_per_s``      end-to-end replay throughput, ops/s
* ``Replay.track_overhead_ratio`` end to end / loop (validation and result
                                  building cost what remains above 1)
* ``Replay.track_frame_overhead_ratio`` the same for the default call, which
                                  returns a polars DataFrame (``frame=True``)
* ``Replay.track_loop_over_floor`` the loop against the C floor measured just
                                  before it in the same process
                                  (``mmbench.blocks.bench.bench_first_touch_floor``:
                                  a bare 4-level radix table and the frame block,
                                  the same 256K first-touch writes)
* ``SimMemory.track_bytes_per_page`` the simulator's resident memory per
                                  simulated resident page after first touch
                                  of 256K pages (RSS growth, heap trimmed)
* ``SimMemoryConfig.track_bytes_per_page`` the same for the configurations
                                  that change what a design stores per page
                                  (CONFIGS: freebsd without reservations, gmem
                                  with a device at 4 KiB granularity, …)

``python -m mmbench.workloads.simspeed DESIGN [option=value …]`` prints the memory
figure for one configuration (in a fresh process, as asv measures it).

Data generation is in ``setup`` (seeded, never timed); the backend is the
asv parameter; a design that is not installed is skipped.  Methods are in
docs/performance.md.
"""
from __future__ import annotations

import time

import numpy as np

from mmbench.trace import Op, TraceBuilder, page_ops

from ._asv import SkipNotImplemented, asv_backends

PAGES = 1 << 18                 # 256K pages (1 GiB of simulated memory)
M_MMAP_THRESHOLD = -3           # glibc mallopt parameter
BASE = 1 << 20


# configurations whose per-page storage differs from the design's default: "design option=value …"
CONFIGS = ["freebsd thp=never", "freebsd thp=always", "linux thp=always", "uvm amap_chunk=False",
           "gmem devices=1", "gmem devices=1 granularity_pages=1"]


def parse_config(words) -> tuple[str, dict]:
    """("freebsd", {"thp": "never"}) from ["freebsd", "thp=never"] (ints and booleans converted)."""
    def value(v):
        return {"True": True, "False": False}.get(v, int(v) if v.isdigit() else v)
    return words[0], {k: value(v) for k, v in (w.split("=", 1) for w in words[1:])}


def first_touch(backend, pages=PAGES, **options):
    """(machine with one process and one `pages`-page mapping, the trace writing each page once)."""
    import mmbench
    try:
        m = mmbench.open(backend, ram_pages=2 * pages + (1 << 16), **options)
    except Exception as e:       # not installed, broken plugin …
        raise NotImplementedError(f"{backend}: {type(e).__name__}: {e}") from None
    t = TraceBuilder()
    p = t.spawn()
    t.mmap(p, BASE, pages)
    m.replay(t.build(), timing=False, frame=False)
    v = np.arange(BASE, BASE + pages, dtype=np.int64)
    return m, page_ops(Op.WRITE, p, v, v.astype(np.uint64) + np.uint64(1))


class Replay:
    """Replay of first-touch writes: end to end against the loop."""
    params = [asv_backends()]
    param_names = ["backend"]
    number = 1              # a replay uses its machine up: fresh state per sample (setup)
    repeat = (3, 10, 20.0)
    warmup_time = 0.0
    timeout = 300

    def setup(self, backend):
        self.m, self.trace = first_touch(backend)
        self.m.replay(self.trace[:0])      # polars imported and warm: not part of a sample

    def time_replay(self, backend):
        self.m.replay(self.trace, timing=False, frame=False)

    def _measure(self, frame=False):
        """(end-to-end ns per op, loop ns per op) of one replay on the fresh machine."""
        m, trace = self.m, self.trace
        t0 = time.perf_counter_ns()
        m.replay(trace, timing=False, frame=frame)
        t1 = time.perf_counter_ns()
        return (t1 - t0) / len(trace), m.last_replay["elapsed_ns"] / len(trace)

    def track_loop_ns_per_op(self, backend):
        return self._measure()[1]
    track_loop_ns_per_op.unit = "ns/op"

    def track_ops_per_s(self, backend):
        return 1e9 / self._measure()[0]
    track_ops_per_s.unit = "ops/s"

    def track_overhead_ratio(self, backend):
        e2e, loop = self._measure()
        return e2e / loop
    track_overhead_ratio.unit = "end-to-end / loop"

    def track_frame_overhead_ratio(self, backend):
        e2e, loop = self._measure(frame=True)
        return e2e / loop
    track_frame_overhead_ratio.unit = "end-to-end / loop"

    def track_loop_over_floor(self, backend):
        from mmbench.blocks.bench import bench_first_touch_floor
        floor = bench_first_touch_floor(len(self.trace))
        return self._measure()[1] / floor
    track_loop_over_floor.unit = "loop / C floor"


def trim_malloc_threshold() -> None:
    """Big allocations as fresh zero-filled mappings (no dynamic threshold): a model's
    calloc'd arrays then count when touched, not when a recycled heap is cleared."""
    import ctypes
    try:
        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, 128 << 10)
    except (OSError, AttributeError):
        pass


def bytes_per_page(m, trace) -> float | None:
    """RSS growth of this process per frame the first-touch `trace` makes resident on m
    (None: no RSS reading or no frame accounted)."""
    from ._measure import rss_bytes
    used0 = m.frames_used(0)
    r0 = rss_bytes()
    out = m.replay(trace, timing=False, frame=False)
    del out
    r1 = rss_bytes()
    pages = m.frames_used(0) - used0
    if r0 is None or not pages:
        return None
    return (r1 - r0) / pages


class SimMemory:
    """The simulator's own memory per simulated resident page."""
    params = [asv_backends()]
    param_names = ["backend"]
    number = 1
    repeat = 1
    timeout = 300

    def setup(self, backend):
        trim_malloc_threshold()
        self.m, self.trace = first_touch(backend)

    def track_bytes_per_page(self, backend):
        b = bytes_per_page(self.m, self.trace)
        if b is None:
            raise SkipNotImplemented(f"{backend}: no RSS reading or no frames accounted")
        return b
    track_bytes_per_page.unit = "B/page"


class SimMemoryConfig(SimMemory):
    """SimMemory for the configurations of CONFIGS (a design not installed is skipped)."""
    params = [CONFIGS]
    param_names = ["config"]

    def setup(self, config):
        backend, options = parse_config(config.split())
        if backend not in asv_backends():
            raise SkipNotImplemented(f"{backend} is not benchmarked here")
        trim_malloc_threshold()
        self.m, self.trace = first_touch(backend, **options)


if __name__ == "__main__":
    import sys
    if len(sys.argv) < 2:
        sys.exit("usage: python -m mmbench.workloads.simspeed DESIGN [option=value ...]")
    name, opts = parse_config(sys.argv[1:])
    trim_malloc_threshold()
    machine, writes = first_touch(name, **opts)
    print(f"{' '.join(sys.argv[1:])}: {bytes_per_page(machine, writes):.2f} B/page")
