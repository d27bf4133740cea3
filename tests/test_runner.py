"""`mmbench run` -> results file -> `mmbench compare`, end to end, and the results schema."""
from __future__ import annotations

import copy
import json
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mmbench import errors, results, runner
from mmbench.cli import app

CLI = CliRunner()


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    """One tiny run on the reference model (the command line refuses unknown designs: test_cli)."""
    out = tmp_path_factory.mktemp("res") / "tiny.json"
    r = CLI.invoke(app, ["run", "--profile", "tiny", "-b", "reference",
                         "-w", "seq_first_touch", "-w", "fork_*", "-w", "dense", "-w", "bulk_roundtrip",
                         "--output", str(out)])
    assert r.exit_code == 0, r.output
    return out


def test_run_writes_a_valid_results_file(tiny_results):
    doc = results.load(tiny_results)
    assert doc["schema"] == results.SCHEMA and doc["profile"] == "tiny"
    assert doc["machine"]["python"] and doc["created"]
    recs = doc["records"]
    fams = {r["family"] for r in recs}
    assert fams == {"fault_latency", "fork_cost", "metadata_memory", "device_migration"}
    kinds = {r["kind"] for r in recs if r["backend"] == "reference"}
    assert {"measured", "unsupported"} <= kinds
    # every measured number has a positive value and its repeats
    for r in recs:
        if r["kind"] == "measured":
            assert r["value"] >= 0 and r["repeats"] >= 1 and r["unit"]


def test_missing_backend_is_recorded_for_every_combination():
    """Through the Python API a design that is not installed is recorded, never dropped."""
    doc = runner.run_suite("tiny", ["reference", "not-installed"], ["seq_first_touch", "dense"])
    ref = {(r["workload"], results.params_label(r["params"])) for r in doc["records"]
           if r["backend"] == "reference"}
    missing = [r for r in doc["records"] if r["backend"] == "not-installed"]
    assert {(r["workload"], results.params_label(r["params"])) for r in missing} == ref
    assert all(r["kind"] == "unsupported" and r["value"] is None for r in missing)
    assert all("not-installed" in r["note"] for r in missing)


def test_compare_one_file_is_a_table(tiny_results):
    r = CLI.invoke(app, ["compare", str(tiny_results)])
    assert r.exit_code == 0, r.output
    head = r.output.splitlines()[0]
    assert "reference" in head
    assert "seq_first_touch" in r.output and "write.median_ns [ns]" in r.output
    assert "unsupported" in r.output        # bulk_roundtrip: the reference model has no devices here
    # a measured value is marked as measured, and unsupported is never shown as 0
    row = next(line for line in r.output.splitlines() if "write.median_ns" in line)
    assert re.search(r"\d m$", row.rstrip()), row


def test_compare_two_files_shows_ratios(tiny_results, tmp_path):
    doc = results.load(tiny_results)
    other = copy.deepcopy(doc)
    for r in other["records"]:
        if r["metric"] == "write.median_ns" and r["backend"] == "reference":
            r["value"] = r["value"] * 2
    p2 = tmp_path / "b.json"
    results.save(p2, other)
    r = CLI.invoke(app, ["compare", str(tiny_results), str(p2), "-m", "write.median_ns"])
    assert r.exit_code == 0, r.output
    assert "write.median_ns" in r.output or "median_ns" in r.output
    assert "seq_first_touch" in r.output
    text = runner.compare_two(doc, other, ("write.median_ns",))
    line = next(x for x in text.splitlines() if "median" in x and "reference" in x)
    # one repeat a side: the ratio is shown, but no change can be called without repeats
    assert "2.00" in line and "not tested" in line and "| changed" not in text
    assert "No differences" in runner.compare_two(doc, doc) or "0 changed" in runner.compare_two(doc, doc)


@pytest.mark.parametrize("args,msg", [
    (["run", "--profile", "huge"], "unknown profile"),
    (["run", "-b", "reference", "-w", "no_such_workload"], "no workload matches"),
    (["compare", "/no/such/file.json"], "no such file"),
])
def test_bad_arguments_fail_with_one_line(args, msg):
    r = CLI.invoke(app, args)
    assert r.exit_code == 2
    assert msg in r.output
    assert "Traceback" not in r.output


def test_compare_rejects_a_file_that_is_not_results(tmp_path):
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"hello": 1}))
    r = CLI.invoke(app, ["compare", str(p)])
    assert r.exit_code == 2 and "not an mmbench results file" in r.output
    p.write_text("{not json")
    r = CLI.invoke(app, ["compare", str(p)])
    assert r.exit_code == 2 and "not JSON" in r.output


def test_default_backends_leave_out_the_reference():
    assert "reference" not in runner.default_backends()


def test_validate_rejects_unsupported_as_zero():
    r = results.record("fault_latency", "w", {}, "x", "m", 1.0, "ns", "measured")
    bad = dict(r, kind="unsupported", value=0)
    doc = {"schema": 1, "machine": {}, "commit": None, "created": "", "profile": "tiny",
           "calibration": None, "records": [bad]}
    with pytest.raises(errors.InvalidArgument, match="null exactly when"):
        results.validate(doc)
    with pytest.raises(errors.InvalidArgument):
        results.record("f", "w", {}, "x", "m", float("nan"), "ns", "measured")
    with pytest.raises(errors.InvalidArgument, match="kind"):
        results.record("f", "w", {}, "x", "m", 1, "ns", "guessed")


def test_to_frame(tiny_results):
    df = results.to_frame(results.load(tiny_results))
    assert {"family", "workload", "params", "backend", "metric", "value", "unit", "kind"} <= set(df.columns)
    assert df.filter(df["kind"] == "unsupported")["value"].null_count() == \
        df.filter(df["kind"] == "unsupported").height


def test_console_script_entry_point(tiny_results):
    r = subprocess.run([sys.executable, "-m", "mmbench.cli", "compare", str(tiny_results), "-m", "*.median_ns"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "seq_first_touch" in r.stdout
