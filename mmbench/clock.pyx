# mmbench.clock — choose, calibrate and describe the engine's per-op clock.
#
# See clock.pxd for the C side (the three clock modes).  This module decides
# once per process which mode the engine uses, calibrates the TSC frequency
# against CLOCK_MONOTONIC, measures the clock's resolution and the cost of a
# pair of reads, and converts raw ticks into nanoseconds after a replay.
#
#     choice     MMBENCH_CLOCK=auto (default) | tsc | monotonic
#                auto: the TSC when /proc/cpuinfo lists constant_tsc and
#                nonstop_tsc (rdtscp when listed, else lfence; rdtsc),
#                else CLOCK_MONOTONIC
#     frequency  ticks per ns from two tight (tsc, monotonic, tsc) triples
#                `CAL_SPAN_S` apart; three spans, median taken
#     resolution TSC: the step the counter advances by, the greatest common
#                divisor of the non-zero differences between successive
#                reads (one tick on most CPUs; some advance a slower reference
#                clock by many ticks at a time: 26 ticks = 10 ns was measured
#                on an AMD EPYC guest); monotonic: the smallest non-zero step
#                seen between successive reads (10 ns on some VMs, 1 ns elsewhere)
#     overhead   median ticks between two back-to-back reads: the engine
#                subtracts it from every op
#
# A value within 2x the resolution says little beyond "about that small";
# reports mark such values (mmbench.report).

cimport cython
from libc.stdint cimport int64_t
cimport numpy as cnp
import os
import numpy as np

cnp.import_array()

CAL_SPAN_S = 0.02
MODE_NAMES = {CLOCK_MODE_MONOTONIC: "clock_gettime(CLOCK_MONOTONIC)",
              CLOCK_MODE_RDTSCP: "tsc (rdtscp)",
              CLOCK_MODE_LFENCE_RDTSC: "tsc (lfence; rdtsc)"}

_state = None          # the chosen clock: filled by _setup() on first use


def cpu_flags() -> set:
    """The flags of the first CPU in /proc/cpuinfo (empty when unreadable)."""
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("flags"):
                    return set(ln.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def choose_mode(flags=None, request=None):
    """(mode, why) for the given CPU flags and MMBENCH_CLOCK request."""
    flags = cpu_flags() if flags is None else set(flags)
    request = (os.environ.get("MMBENCH_CLOCK", "auto") if request is None else request).lower()
    if request not in ("auto", "tsc", "monotonic"):
        from mmbench import errors
        raise errors.InvalidArgument(f"MMBENCH_CLOCK must be auto, tsc or monotonic, got {request!r}")
    if request == "monotonic":
        return CLOCK_MODE_MONOTONIC, "MMBENCH_CLOCK=monotonic"
    if not MMCLOCK_HAVE_TSC:
        return CLOCK_MODE_MONOTONIC, "not an x86 CPU: no TSC"
    missing = [f for f in ("constant_tsc", "nonstop_tsc") if f not in flags]
    if missing and request != "tsc":
        return CLOCK_MODE_MONOTONIC, f"the CPU lacks {' and '.join(missing)}: the TSC is not a clock here"
    mode = CLOCK_MODE_RDTSCP if "rdtscp" in flags else CLOCK_MODE_LFENCE_RDTSC
    return mode, ("constant and nonstop TSC" if not missing else "MMBENCH_CLOCK=tsc")


def read_ticks(int mode):
    """One read of the clock of `mode` (Python-level; for calibration and tests)."""
    return clock_ticks(mode)


@cython.boundscheck(False)
@cython.wraparound(False)
def pair_ticks(int mode, int reps=20001):
    """Ticks between `reps` back-to-back pairs of reads (numpy int64)."""
    cdef cnp.ndarray[int64_t] d = np.empty(max(reps, 1), dtype=np.int64)
    cdef int i
    cdef int64_t t0, t1
    with nogil:
        for i in range(d.shape[0]):
            t0 = clock_ticks(mode)
            t1 = clock_ticks(mode)
            d[i] = t1 - t0
    return d


def _triple(int mode):
    """(tsc, monotonic ns, width in ticks) of the tightest of 16 tsc-mono-tsc reads."""
    cdef int64_t a, m, b
    best = None
    for _ in range(16):
        a = clock_ticks(mode)
        m = mmclock_mono_ns()
        b = clock_ticks(mode)
        if best is None or b - a < best[2]:
            best = ((a + b) / 2.0, m, b - a)
    return best


def calibrate_tsc(int mode, double span_s=CAL_SPAN_S, int spans=3):
    """Ticks per ns of the TSC, timed against CLOCK_MONOTONIC (median of `spans`)."""
    cdef int64_t end
    rates = []
    for _ in range(spans):
        t0, m0, _w = _triple(mode)
        end = mmclock_mono_ns() + <int64_t>(span_s * 1e9)
        while mmclock_mono_ns() < end:
            pass
        t1, m1, _w = _triple(mode)
        rates.append((t1 - t0) / float(m1 - m0))
    return float(np.median(rates)), float(max(rates) - min(rates)) / float(np.median(rates))


@cython.boundscheck(False)
@cython.wraparound(False)
def tsc_step_ticks(int mode, int samples=20000):
    """The step the TSC advances by: the gcd of the non-zero differences
    between `samples` successive reads (1 where the counter ticks singly)."""
    cdef cnp.ndarray[int64_t] t = np.empty(max(samples, 2), dtype=np.int64)
    cdef int i
    with nogil:
        for i in range(t.shape[0]):
            t[i] = clock_ticks(mode)
    d = np.diff(t)
    d = d[d > 0]
    return int(np.gcd.reduce(d)) if d.size else 1


def monotonic_step_ns(int samples=20000):
    """The smallest non-zero step between successive CLOCK_MONOTONIC reads (ns)."""
    cdef int64_t prev = mmclock_mono_ns(), now, best = 1 << 40
    cdef int i
    for i in range(samples):
        now = mmclock_mono_ns()
        if now != prev and now - prev < best:
            best = now - prev
        prev = now
    return int(best)


def _setup():
    global _state
    mode, why = choose_mode()
    ns_per_tick, spread = 1.0, 0.0
    if mode != CLOCK_MODE_MONOTONIC:
        ticks_per_ns, spread = calibrate_tsc(mode)
        if not ticks_per_ns > 0:
            mode, why = CLOCK_MODE_MONOTONIC, "the TSC did not advance during calibration"
        else:
            ns_per_tick = 1.0 / ticks_per_ns
    overhead = int(np.median(pair_ticks(mode)))
    mono_step = monotonic_step_ns()
    step = tsc_step_ticks(mode) if mode != CLOCK_MODE_MONOTONIC else 1
    res = step * ns_per_tick if mode != CLOCK_MODE_MONOTONIC else float(mono_step)
    _state = {"mode": int(mode), "clock": MODE_NAMES[mode], "why": why,
              "ns_per_tick": ns_per_tick,
              "tsc_hz": None if mode == CLOCK_MODE_MONOTONIC else round(1e9 / ns_per_tick),
              "tsc_calibration_spread": None if mode == CLOCK_MODE_MONOTONIC else spread,
              "resolution_ns": res,
              "tsc_step_ticks": None if mode == CLOCK_MODE_MONOTONIC else step,
              "pair_overhead_ticks": overhead,
              "pair_overhead_ns": overhead * ns_per_tick,
              "monotonic_step_ns": mono_step}
    return _state


def state():
    """The chosen clock (computed once per process)."""
    return _state if _state is not None else _setup()


def info() -> dict:
    """What results files record about the clock: which, its resolution, its cost."""
    s = state()
    return {"clock": s["clock"], "why": s["why"], "resolution_ns": round(s["resolution_ns"], 4),
            "pair_overhead_ns": round(s["pair_overhead_ns"], 2),
            "tsc_hz": s["tsc_hz"], "tsc_step_ticks": s["tsc_step_ticks"],
            "monotonic_step_ns": s["monotonic_step_ns"]}


def mode():
    return state()["mode"]


def overhead_ticks(int reps=20001):
    """Median ticks of a back-to-back pair of reads, measured now."""
    return int(np.median(pair_ticks(state()["mode"], reps)))


def ticks_to_ns(ticks):
    """Raw ticks (numpy array or number) in ns as float64."""
    return np.asarray(ticks, dtype=np.float64) * state()["ns_per_tick"]


def reset(request=None):
    """Choose the clock again (tests: MMBENCH_CLOCK changed); returns state()."""
    global _state
    _state = None
    if request is not None:
        os.environ["MMBENCH_CLOCK"] = request
    return _setup()
