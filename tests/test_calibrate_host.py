"""`mmbench calibrate` end to end (quick profile) and its graceful degradation."""
from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

import mmbench
from mmbench import calibrate as cal_mod, errors, estimate as est, hostcheck

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the host probe measures a Linux kernel")


@pytest.fixture(scope="module")
def quick_cal():
    return cal_mod.calibrate("quick")


def test_quick_calibration_is_complete(quick_cal, tmp_path):
    cal = quick_cal
    assert cal["kind"] == "calibration" and cal["profile"] == "quick"
    for key in ("hostname", "kernel", "cpu"):
        assert cal["machine"][key]
    assert set(cal["costs"]) == set(est.COSTS)
    for name, c in cal["costs"].items():
        assert c["ns"] >= 0 and c["from"] and c["what"], name
    for name, fig in cal["probes"].items():
        med = fig["median"]
        assert all(m > 0 for m in (med if isinstance(med, list) else [med])), name
        if not isinstance(med, list):
            assert fig["p25"] <= med <= fig["p75"] and fig["reps"] == len(fig["samples"])
    val = cal["validation"]
    assert val["status"] in ("ok", "skipped")
    if val["status"] == "skipped":
        assert "not installed" in val["reason"]
    else:
        assert {r["probe"] for r in val["probes"]} == set(cal_mod.HELD_OUT)
        assert len(cal_mod.HELD_OUT) >= 10
        assert val["cross_validation"]["status"] == "ok"
    assert cal["stability"]["rounds"] >= 3 and isinstance(cal["stability"]["stable"], bool)
    path = cal_mod.write(cal, str(tmp_path / "c" / "host.json"))
    loaded = est.load_calibration(path)
    assert loaded["costs"] == json.loads(json.dumps(cal["costs"]))
    e = est.estimate_ns({"faults": 10, "pages_zeroed": 10}, loaded)
    assert e["total_ns"] > 0 and set(e["breakdown"]) == {"trap", "zero_fill"}


def test_held_out_probes_are_not_in_the_fit(quick_cal):
    formulas = " ".join(c["from"] for c in quick_cal["costs"].values())
    for probe in cal_mod.HELD_OUT:
        assert probe not in formulas
    # and the fit gives the same prices without them
    figs = {k: v for k, v in quick_cal["probes"].items()
            if not k.startswith("held:") and k not in cal_mod.HELD_OUT}
    assert cal_mod.fit(figs) == cal_mod.fit(quick_cal["probes"])


def test_summary_prints_every_held_out_probe_and_the_worst_error(quick_cal):
    text = cal_mod.summary(quick_cal)
    if quick_cal["validation"]["status"] != "ok":
        pytest.skip("the linux design is not installed")
    for probe in cal_mod.HELD_OUT:
        assert f"  {probe} " in text
    assert "worst |error|" in text and "leave-one-round-out" in text and "stability:" in text


def test_new_twins_run_on_the_reference_design():
    p = cal_mod.PROFILES["quick"]
    for probe, (_what, tw, _host) in cal_mod.HELD_OUT_SPEC.items():
        a, b, units = tw(p)
        ev, book = cal_mod.twin_events("reference", a, b, units, p)
        # a pair of the kernel's counts (kmalloc_sized) is priced as est(a) - est(b)
        pair = isinstance(ev, tuple) and len(ev) == 2 and all(isinstance(e, dict) for e in ev)
        assert units >= 1 and (isinstance(ev, dict) or pair) and book is not None, probe


def test_twins_run_on_the_reference_design():
    p = cal_mod.PROFILES["quick"]
    ev, book, units = cal_mod.model_events("reference", "cow_chain_fault", p)
    assert units == p["pages"] and ev["op:WRITE"] == p["pages"] and book >= 0
    for name in ("cow_chain_fault", "memfd_miss_fault", "cow_reuse_fault"):
        ev, _, units = cal_mod.model_events("reference", name, p)
        assert units == p["pages"] and ev["op:WRITE"] == p["pages"], name
    ev, _, units = cal_mod.model_events("reference", "fork_chain_vmas:5", p)
    assert units == 1 and ev["op:FORK"] == 1 and ev["op:EXIT"] == 1 and "op:MMAP" not in ev
    with pytest.raises(errors.InvalidArgument):
        cal_mod.twin("no_such_probe", p)


def test_validation_without_the_design_is_skipped(quick_cal):
    v = cal_mod.validate(quick_cal["probes"], quick_cal["costs"], "quick", backend="no-such-design")
    assert v["status"] == "skipped" and "no-such-design" in v["reason"]


@pytest.mark.skipif("linux" not in mmbench.backends(), reason="the linux design is not installed")
def test_linux_validation_reports_errors(quick_cal):
    v = quick_cal["validation"]
    assert v["status"] == "ok"
    for r in v["probes"]:
        # >= 0: a quick run may clamp a noisy price to 0, and a shared-memory fork copies
        # no PTE at all (fork_memfd is about 0 by design)
        assert r["estimated_ns"] >= 0 and isinstance(r["error_pct"], float)


def test_cli_writes_file_and_degrades_without_proc(tmp_path, monkeypatch):
    from mmbench.cli import app
    monkeypatch.setattr(hostcheck, "SLABINFO", str(tmp_path / "no-slabinfo"))
    monkeypatch.setattr(hostcheck, "PROC", str(tmp_path / "no-proc"))
    out = tmp_path / "cal.json"
    res = CliRunner().invoke(app, ["calibrate", "--quick", "--structures", "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    assert "structures: not recorded" in res.output and "does not exist" in res.output
    cal = json.loads(out.read_text())
    assert cal["structures"]["status"] == "unavailable"


def test_fork_empty_is_cheaper_than_forking_python(quick_cal):
    from mmbench import probe
    assert all(ns > 0 for ns in probe.fork_empty(2))
    assert cal_mod.PROFILES["quick"]["reps"] == len(quick_cal["probes"]["fork_empty"]["samples"])
    with pytest.raises(errors.InvalidArgument):
        probe.fork_empty(0)


def test_structures_when_readable():
    if hostcheck.availability()["slabinfo"] != "ok":
        pytest.skip("/proc/slabinfo is not readable here (needs root)")
    st = cal_mod.structures("quick")
    assert st["status"] == "ok"
    assert st["sizes"]["vm_area_struct"] > 0 and st["sizes"]["anon_vma_chain"] > 0
    assert set(st["map_touched_vmas"]) == set(st["sizes"])
