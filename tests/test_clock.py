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
        assert info["resolution_ns"] < 10


@pytest.mark.skipif(not TSC, reason="the CPU has no constant, nonstop TSC")
def test_tsc_frequency_agrees_with_monotonic():
    # two independent calibrations agree to 1 %, and ticks convert to the ns
    # that CLOCK_MONOTONIC saw over the same 20 ms
    r1, _ = clock.calibrate_tsc(clock.mode(), 0.01, 1)
    r2, _ = clock.calibrate_tsc(clock.mode(), 0.01, 1)
    assert abs(r1 - r2) / r1 < 0.01


@pytest.mark.skipif(not TSC, reason="the CPU has no constant, nonstop TSC")
def test_trivial_op_times_are_not_quantized_to_the_coarse_step():
    ns, last = _nop_times()
    assert ns.dtype == np.float64 and last["clock"].startswith("tsc")
    step = max(clock.info()["monotonic_step_ns"], 10)
    on_grid = np.isclose(np.mod(ns, step), 0) | np.isclose(np.mod(ns, step), step)
    # with a clock that steps in `step` ns every value would sit on the grid
    assert on_grid.mean() < 0.5
    # and the values take many distinct levels below one coarse step
    assert len(np.unique(np.round(ns[ns < step], 3))) > 3


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
