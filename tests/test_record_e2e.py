"""End to end: record a small forking program on this host with perf, replay it everywhere.

Skipped, with the reason, only where perf cannot record tracepoints here (no
perf, no root).  The program (fixtures/record/forker.py) runs well under a
second; perf's own start and the conversion take a few more.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import mmbench
from mmbench import record, record_replay
from mmbench.cli import app

FIX = Path(__file__).parent / "fixtures" / "record"
WHY = record.perf_available()
DESIGNS = [b for b in mmbench.backends() if b != "reference"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    if WHY:
        pytest.skip(WHY)
    out = tmp_path_factory.mktemp("rec") / "forker.npz"
    prov = record.record([sys.executable, str(FIX / "forker.py")], out)
    return out, prov


def test_record_provenance(recorded):
    path, prov = recorded
    trace, p = record.load_recording(path)
    assert p == prov
    assert p["exit_status"] == 0 and p["kernel"] and p["thp"] in ("always", "madvise", "never")
    h = p["host"]
    assert h["process_forks"] == 3
    assert h["faults"] > 1000 and set(h["faults_by_kind"]) <= {"zero_fill", "zero_page", "cow",
                                                               "minor", "wp_shared", "present_read"}
    assert h["vmpte_peak_max_kb"] > 0
    assert (trace["op"] == mmbench.Op.FORK).sum() == 3


def test_replay_through_every_design(recorded):
    path, prov = recorded
    trace, prov = record.load_recording(path)
    res = record_replay.replay_all(trace, prov, DESIGNS)
    by = {r["design"]: r for r in res}
    for d in DESIGNS:
        assert "unsupported" not in by[d], by[d]
        assert by[d]["failed_ops"] == 0
        assert by[d]["forks"] == 3 and by[d]["peak_total"] > 0
    lin = by["linux"]
    rk = prov["host"]["faults_by_replay_kind"]
    assert lin["faults"] == sum(rk.values())
    text = record_replay.table(res, prov)
    assert "bias:" in text and "linux" in text


def test_cli_replay(recorded):
    path, _ = recorded
    r = CliRunner().invoke(app, ["replay", str(path), "-b", "linux", "-b", "freebsd"])
    assert r.exit_code == 0, r.output
    assert "freebsd" in r.output and "bias:" in r.output


def test_cli_errors_are_one_line(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["replay", str(tmp_path / "missing.npz")])
    assert r.exit_code == 2 and "Traceback" not in r.output
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    r = runner.invoke(app, ["replay", str(bad)])
    assert r.exit_code == 2 and "not an mmbench trace file" in r.output
    r = runner.invoke(app, ["record", "-o", str(tmp_path / "x.npz")])
    assert r.exit_code == 2 and "no command" in r.output
    r = runner.invoke(app, ["record", "-o", str(tmp_path / "x.npz"), "--", "/no/such/program"])
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_no_perf_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "perf is not installed" in record.perf_available()
    r = CliRunner().invoke(app, ["record", "-o", str(tmp_path / "x.npz"), "--", "/bin/true"])
    assert r.exit_code == 2 and "perf is not installed" in r.output


def test_a_crashing_program_is_recorded_with_a_note(tmp_path):
    if WHY:
        pytest.skip(WHY)
    out = tmp_path / "crash.npz"
    prov = record.record([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"],
                         out)
    assert prov["notes"]["the program was killed by signal 11; recorded up to its end"] == 1
    trace, _ = record.load_recording(out)
    m = mmbench.open("linux", ram_pages=1 << 18)
    assert not m.replay(trace, timing=False, frame=False)["status"].any()


def test_unwritable_output_is_one_line(tmp_path):
    r = CliRunner().invoke(app, ["record", "-o", str(tmp_path / "no" / "such" / "x.npz"), "--",
                                 "/bin/true"])
    assert r.exit_code == 2 and "not a writable directory" in r.output


def test_host_time_recorded(recorded):
    """Issue 14 item 5: the host's time in faults (perf's fault events) and forks, and the
    probes' overhead loop, are in the provenance and positive; --validate prints them."""
    path, prov = recorded
    h = prov["host"]
    ft = h["fault_time"]
    assert ft["timed"] > 1000 and ft["ns"] > 0
    assert all(v > 0 for v in ft["median_ns_by_replay_kind"].values())
    assert sum(ft["n_by_replay_kind"].values()) == ft["timed"] <= h["faults"]
    assert len(h["fork_copy_windows_ns"]) == 3 and all(w > 0 for w in h["fork_copy_windows_ns"])
    ov = prov["tracing_overhead"]
    assert ov is not None, prov["notes"]
    for k in ("fork_cpu_ns", "read_fault_ns", "write_fault_ns"):
        assert ov["untraced"][k] > 0 and ov["traced"][k] > 0
    assert ov["windows"]["fork_ns"] > 0 and ov["windows"]["read_fault_ns"] > 0
    ht = record_replay.host_time(prov)
    assert ht["fault_ns"] > 0 and ht["fork_ns"] > 0
    r = CliRunner().invoke(app, ["replay", str(path), "-b", "linux", "--validate"])
    assert r.exit_code == 0, r.output
    assert "host faults timed" in r.output and "probes (recordloop" in r.output
