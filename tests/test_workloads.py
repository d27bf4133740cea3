"""Every workload builds a valid trace and runs on the reference model at tiny sizes."""
from __future__ import annotations

import numpy as np
import pytest

import mmbench
from mmbench.trace import Op, validate_trace
from mmbench.workloads import _common, _measure
from mmbench.registry import workloads as catalogue

CAT = catalogue()
POINTS = [(w, p) for w in CAT.values() for p in w.points("tiny")]
IDS = [f"{w.name}[{'-'.join(f'{k}={v}' for k, v in sorted(p.items()))}]" for w, p in POINTS]


def test_catalogue_covers_the_four_families():
    fams = {w.family for w in CAT.values()}
    assert fams == set(_common.FAMILIES)
    for w in CAT.values():
        assert "Stands for" in " ".join(w.doc.split()), f"{w.name}: the docstring must say which real workload it stands for"
        for prof in _common.PROFILES:
            assert w.points(prof), f"{w.name} has no parameters in profile {prof}"


@pytest.mark.parametrize("wl,params", POINTS, ids=IDS)
def test_scenario_is_a_valid_trace(wl, params):
    sc = wl.scenario(**params)
    whole = np.concatenate([s.trace for s in sc.segments])
    validate_trace(whole)                      # pids, ranges, ops, devices: all well formed
    assert sc.segments[0].name == "setup" and not sc.segments[0].timed
    if wl.family == "metadata_memory":     # a state, measured at the end (a step may be timed)
        assert sc.segments[-1].snapshot
    else:
        assert sc.timed_segments(), f"{wl.name} times nothing"
    for seg in sc.timed_segments():
        ops = set(seg.trace["op"].tolist())
        assert set(seg.ops) <= ops, f"{wl.name}.{seg.name} reports ops it never runs"
    assert (Op.MIGRATE in whole["op"] or Op.DEVICE_WRITE in whole["op"]) == wl.needs_devices


@pytest.mark.parametrize("wl,params", POINTS, ids=IDS)
def test_runs_on_reference_and_agrees_with_it(wl, params):
    """Replaying the whole scenario per op on the reference model never fails."""
    sc = wl.scenario(**params)
    kw = sc.machine.kwargs()
    for name, _ in sc.machine.options:     # design options (a device-fault variant): no semantics
        kw.pop(name)
    m = mmbench.open("reference", **kw)
    for seg in sc.segments:
        out = m.replay(seg.trace, timing=seg.timing == "per_op", frame=False)
        assert len(out["status"]) == len(seg.trace)
        assert not out["status"].any(), f"{wl.name}.{seg.name}: an op failed on the reference model"
    m.check()


def test_traces_are_seeded_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path))
    _common._scenario.cache_clear()
    w = CAT["random_first_touch"]
    a = w.scenario(pages=64, seed=1)
    files = list(tmp_path.glob("random_first_touch-*.npz"))
    assert len(files) == 1
    _common._scenario.cache_clear()
    b = w.scenario(pages=64, seed=1)           # from the disk cache
    assert np.array_equal(a.segments[1].trace, b.segments[1].trace)
    c = w.func(pages=64, seed=1)               # regenerated: the same trace
    assert np.array_equal(a.segments[1].trace, c.segments[1].trace)
    d = w.func(pages=64, seed=2)
    assert not np.array_equal(a.segments[1].trace["vpn"], d.segments[1].trace["vpn"])
    files[0].write_bytes(b"not a zip")         # a corrupt cache entry is regenerated
    _common._scenario.cache_clear()
    e = w.scenario(pages=64, seed=1)
    assert np.array_equal(a.segments[1].trace, e.segments[1].trace)


def test_measure_records_kinds_on_reference():
    w = CAT["cow_after_fork"]
    recs = _measure.measure(w, {"pages": 64, "writer": "parent"}, "reference", repeats=3)
    by = {r["metric"]: r for r in recs}
    med = by["write.median_ns"]
    assert med["kind"] == "measured" and med["unit"] == "ns" and med["repeats"] == 3
    assert med["value"] > 0 and med["spread"]["p25"] <= med["spread"]["p75"]
    assert by["write.p99_ns"]["value"] >= med["value"]
    # the reference model accounts no structs: metadata is unsupported there, never 0
    assert by["metadata.total_bytes"]["kind"] == "unsupported"
    assert by["metadata.total_bytes"]["value"] is None


def test_missing_backend_is_unsupported_not_dropped():
    w = CAT["seq_first_touch"]
    recs = _measure.measure(w, {"pages": 64}, "no-such-design", repeats=1)
    assert len(recs) == 1
    (r,) = recs
    assert r["kind"] == "unsupported" and r["value"] is None and "no-such-design" in r["note"]


def test_device_workload_on_a_design_without_devices_is_unsupported(monkeypatch):
    ref = mmbench.registry.load("reference")

    class NoDevices(ref):
        name = "nodev"
        supports_devices = False

    monkeypatch.setattr(mmbench.registry, "load", lambda name, quiet=False: NoDevices)
    recs = _measure.measure(CAT["bulk_roundtrip"], {"pages": 256, "transfer": 256}, "nodev", repeats=1)
    assert [r["kind"] for r in recs] == ["unsupported"]
    assert "accelerator" in recs[0]["note"]


def test_failed_op_is_unsupported_with_its_reason():
    """An op a design fails (here: WRITEs out of frames) makes the run unsupported, with the reason."""
    from mmbench.workloads._measure import Unavailable, replay_segment

    class OutOfFrames:
        def __init__(self, m):
            self.m = m

        def replay(self, trace, **kw):
            out = self.m.replay(trace, **kw)
            out["status"][trace["op"] == Op.WRITE] = -4
            return out

    sc = CAT["seq_first_touch"].scenario(pages=64)
    m = OutOfFrames(mmbench.open("reference", **sc.machine.kwargs()))
    replay_segment(m, sc.segments[0], timing=False)
    with pytest.raises(Unavailable, match="OutOfMemory: WRITE failed"):
        replay_segment(m, sc.segments[1], timing=False)


def test_engine_dispatch_is_measurable():
    from mmbench.workloads.blocks import dispatch_ns
    ns = dispatch_ns("reference", nops=1 << 16)
    assert 0 < ns < 10_000


def test_estimates_are_recorded_when_a_calibration_exists(monkeypatch):
    """With mmbench.estimate and a calibration, each timed segment gets an estimated record."""
    import sys
    import types
    seen = {}
    fake = types.ModuleType("mmbench.estimate")
    fake.load_calibration = lambda path=None: {"costs": {"trap": 100.0}, "path": "cal.json"}

    def estimate_ns(counters, calibration, measured_ns=None, **design_and_link):
        seen.update(counters)
        return {"total_ns": 7.0 * counters.get("op:WRITE", 0), "bookkeeping_ns": measured_ns,
                "uncosted": []}
    fake.estimate_ns = estimate_ns
    monkeypatch.setitem(sys.modules, "mmbench.estimate", fake)
    monkeypatch.setattr(mmbench, "estimate", fake, raising=False)
    from mmbench import calibration_search
    monkeypatch.setattr(calibration_search, "find", lambda path=None: calibration_search.Found(
        fake.load_calibration(), "cal.json", "--calibration", "calibration: cal.json"))
    cal, where = _measure.load_calibration()
    assert where == "cal.json"
    recs = _measure.measure(CAT["seq_first_touch"], {"pages": 64}, "reference", repeats=1, calibration=cal)
    est = [r for r in recs if r["kind"] == "estimated"]
    by = {r["metric"]: r["value"] for r in est}
    assert set(by) == {"write.estimated_ns", "write.estimated_ns_per_page"}
    # counts x prices only: the model's own time (write.total_ns) is not in the estimate
    assert by["write.estimated_ns"] == pytest.approx(7.0 * 64)
    assert by["write.estimated_ns_per_page"] == pytest.approx(by["write.estimated_ns"] / 64)
    assert seen["op:WRITE"] == 64


def test_no_calibration_is_said_not_guessed(monkeypatch, tmp_path):
    monkeypatch.setenv("MMBENCH_RESULTS", str(tmp_path))       # no calibration files there
    cal, why = _measure.load_calibration()
    if cal is None:
        assert why.startswith("no calibration")


def test_a_crashing_design_is_recorded_not_fatal(monkeypatch):
    ref = mmbench.registry.load("reference")

    class Crashy(ref):
        name = "crashy"

        def do_write(self, pid, vpn, value):
            raise RuntimeError("bug in the design")

    monkeypatch.setattr(mmbench.registry, "load", lambda name, quiet=False: Crashy)
    with pytest.warns(RuntimeWarning, match="bug in the design"):
        recs = _measure.measure(CAT["seq_first_touch"], {"pages": 64}, "crashy", repeats=1)
    assert [(r["kind"], r["value"]) for r in recs] == [("unsupported", None)]
    assert recs[0]["note"].startswith("error: RuntimeError")
