"""The engine's per-op clock (mmbench.clock): the TSC where it is a clock, its
calibration, and per-op times that are not quantized to a coarse clock step."""
import os

import numpy as np
import pytest

import mmbench
from mmbench import clock, errors
from mmbench.trace import TraceBuilder

TSC = clock.choose_mode()[0] != 0


def _nop_times(n=4000):
    m = mmbench.open("linux")
    t = TraceBuilder()
    t.nop(n)
    out = m.replay(t.build(), timing=True, frame=False)
    return out["ns"], m.last_replay


def test_mode_choice_follows_the_cpu_flags():
    assert clock.choose_mode({"constant_tsc", "nonstop_tsc", "rdtscp"}, "auto")[0] == 1
    assert clock.choose_mode({"constant_tsc", "nonstop_tsc"}, "auto")[0] == 2
    mode, why = clock.choose_mode({"constant_tsc"}, "auto")
    assert mode == 0 and "nonstop_tsc" in why
    assert clock.choose_mode({"constant_tsc", "nonstop_tsc", "rdtscp"}, "monotonic")[0] == 0
    with pytest.raises(errors.InvalidArgument):
        clock.choose_mode(set(), "sundial")


def test_info_is_recorded_with_resolution():
    info = clock.info()
    assert info["clock"] in clock.MODE_NAMES.values()
    assert info["resolution_ns"] > 0 and info["pair_overhead_ns"] >= 0
    if TSC:
        # a TSC ticks at least at 100 MHz and at most at 10 GHz
        assert 1e8 < info["tsc_hz"] < 1e10
        # the resolution is the counter's step, not one tick: every difference
        # of two reads is a whole number of steps
        step = info["tsc_step_ticks"]
        assert step >= 1 and info["resolution_ns"] == pytest.approx(step * 1e9 / info["tsc_hz"], rel=1e-3)
        assert (clock.pair_ticks(clock.mode(), 2001) % step == 0).all()


@pytest.mark.skipif(not TSC, reason="the CPU has no constant, nonstop TSC")
def test_tsc_frequency_agrees_with_monotonic():
    # two independent calibrations agree to 1 %, and ticks convert to the ns
    # that CLOCK_MONOTONIC saw over the same 20 ms
    r1, _ = clock.calibrate_tsc(clock.mode(), 0.01, 1)
    r2, _ = clock.calibrate_tsc(clock.mode(), 0.01, 1)
    assert abs(r1 - r2) / r1 < 0.01


def _fine_tsc():
    """Why the TSC cannot show finer per-op times than CLOCK_MONOTONIC here, or None."""
    if not TSC:
        return "the CPU has no constant, nonstop TSC"
    i = clock.info()
    if i["resolution_ns"] >= i["monotonic_step_ns"]:
        return (f"this CPU's TSC advances {i['tsc_step_ticks']} ticks ({i['resolution_ns']:.2f} ns) at a "
                f"time: no finer than CLOCK_MONOTONIC's {i['monotonic_step_ns']} ns step")
    return None


def _fault_times(n=4000):
    m = mmbench.open("linux")
    t = TraceBuilder()
    pid = t.spawn()
    t.mmap(pid, 0, n)
    t.write_range(pid, 0, n)
    out = m.replay(t.build(), timing=True, frame=False)
    return out["ns"][-n:], m.last_replay


@pytest.mark.skipif(_fine_tsc() is not None, reason=str(_fine_tsc()))
def test_per_op_times_resolve_steps_finer_than_the_coarse_clock():
    """First-touch writes (a few hundred ns each, varying): the times take values
    one TSC step apart, finer than CLOCK_MONOTONIC's step."""
    ns, last = _fault_times()
    assert ns.dtype == np.float64 and last["clock"].startswith("tsc")
    info = clock.info()
    levels = np.unique(np.round(ns[ns > 0], 3))
    gaps = np.diff(levels)
    assert gaps.size > 3
    assert gaps.min() == pytest.approx(info["resolution_ns"], rel=0.01)
    assert gaps.min() < info["monotonic_step_ns"]


def test_monotonic_fallback_still_times(monkeypatch):
    monkeypatch.setenv("MMBENCH_CLOCK", "monotonic")
    try:
        st = clock.reset()
        assert st["mode"] == 0 and st["ns_per_tick"] == 1.0
        assert st["resolution_ns"] == st["monotonic_step_ns"] > 0
        ns, last = _nop_times(200)
        assert last["clock"].startswith("clock_gettime") and (ns >= 0).all()
    finally:
        monkeypatch.delenv("MMBENCH_CLOCK")
        clock.reset()
