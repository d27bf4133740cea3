"""The command line for a newcomer: every mistake is one line and exit status 2, options from
the command line reach the workloads and designs, and compare exports plain numbers."""
from __future__ import annotations

import os
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mmbench import results
from mmbench.cli import app

CLI = CliRunner()


def run(*args):
    return CLI.invoke(app, [str(a) for a in args])


def one_line_error(r, *words):
    """Exit 2, one `mmbench: error:` line naming `words`, no traceback."""
    assert r.exit_code == 2, r.output
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("mmbench: error: "), r.output
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny run of two designs with a design option and overridden workload parameters."""
    out = tmp_path_factory.mktemp("cli") / "tiny.json"
    r = run("run", "--profile", "tiny", "-b", "linux", "-b", "reference", "-w", "fork_grid",
            "-w", "dense", "-p", "pages=96", "-o", out)
    assert r.exit_code == 0, r.output
    return out


# ------------------------------------------------------------ 2. silent mistakes are errors
def test_run_unknown_design_names_the_known_ones(tmp_path):
    line = one_line_error(run("run", "-b", "nosuch", "-o", tmp_path / "x.json"), "'nosuch'", "linux",
                          "reference")
    assert "known designs" in line
    assert not (tmp_path / "x.json").exists()


def test_calibrate_unknown_backend():
    one_line_error(run("calibrate", "--backend", "nosuch", "--quick"), "'nosuch'", "known designs")


def test_calibrate_output_into_a_missing_directory(tmp_path):
    one_line_error(run("calibrate", "--quick", "-o", tmp_path / "no" / "cal.json"), "does not exist")


def test_run_output_into_a_missing_directory(tmp_path):
    one_line_error(run("run", "--profile", "tiny", "-b", "reference", "-w", "dense",
                       "-o", tmp_path / "missing" / "r.json"), "does not exist")
    assert not (tmp_path / "missing").exists()


def test_compare_unknown_format(tiny):
    one_line_error(run("compare", tiny, "--format", "nosuch"), "'nosuch'", "csv", "parquet")


def test_compare_metric_glob_that_matches_nothing(tiny):
    one_line_error(run("compare", tiny, "-m", "no_such_metric*"), "'no_such_metric*'", "matches no metric")
    one_line_error(run("compare", tiny, tiny, "-m", "*.median_ns", "-m", "zzz"), "'zzz'")


def test_compare_negative_threshold(tiny):
    one_line_error(run("compare", tiny, tiny, "--threshold", "-1"), "--threshold", "-1")


def test_compare_output_into_a_missing_directory(tiny, tmp_path):
    one_line_error(run("compare", tiny, "--format", "csv", "-o", tmp_path / "no" / "x.csv"), "does not exist")


def test_compare_parquet_needs_a_file(tiny):
    one_line_error(run("compare", tiny, "--format", "parquet"), "--output")


def test_errors_from_the_console_script_are_one_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "mmbench.cli", "run", "-b", "nosuch"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().count("\n") == 0 and "unknown design 'nosuch'" in p.stderr


# ------------------------------------------------------------ 4. parameters and options
def test_param_overrides_reach_every_parameter_set(tiny):
    doc = results.load(tiny)
    pages = {r["params"]["pages"] for r in doc["records"]}
    assert pages == {96}
    grid = {(r["params"]["depth"], r["params"]["vmas"]) for r in doc["records"] if r["workload"] == "fork_grid"}
    assert len(grid) > 1                        # the profile's other parameters still vary


def test_fork_grid_with_pages_and_depth(tmp_path):
    out = tmp_path / "g.json"
    r = run("run", "--profile", "tiny", "-b", "reference", "-w", "fork_grid", "-p", "pages=128",
            "-p", "depth=4", "-o", out)
    assert r.exit_code == 0, r.output
    ps = {results.params_label(x["params"]) for x in results.load(out)["records"]}
    assert ps and all("depth=4" in p and "pages=128" in p for p in ps)


@pytest.mark.parametrize("args,words", [
    (["-w", "fork_grid", "-p", "nosuch=1"], ["fork_grid", "'nosuch'", "pages"]),
    (["-w", "fork_grid", "-p", "pages=-5"], ["pages", "≥ 1"]),
    (["-w", "fork_grid", "-p", "pages=many"], ["pages", "integer"]),
    (["-w", "fork_family", "-p", "shape=blob"], ["shape", "chain", "tree"]),
    (["-w", "dense", "-p", "pages"], ["NAME=VALUE"]),
    (["-w", "dense", "-p", "pages=1", "-p", "pages=2"], ["twice"]),
])
def test_bad_workload_parameters(tmp_path, args, words):
    one_line_error(run("run", "--profile", "tiny", "-b", "reference", *args, "-o", tmp_path / "x.json"), *words)


def test_design_options(tmp_path):
    out = tmp_path / "o.json"
    r = run("run", "--profile", "tiny", "-b", "linux", "-w", "seq_first_touch", "-O", "fault_around_pages=1",
            "-o", out)
    assert r.exit_code == 0, r.output
    doc = results.load(out)
    assert doc["design_options"] == {"fault_around_pages": 1}
    assert any("fault_around_pages=1" in n for n in doc["notes"])
    one_line_error(run("run", "--profile", "tiny", "-b", "linux", "-w", "dense", "-O", "nosuch=1",
                       "-o", out), "'linux'", "'nosuch'", "fault_around_pages")
    one_line_error(run("run", "--profile", "tiny", "-b", "linux", "-w", "dense", "-O", "device_fault=bogus",
                       "-o", out), "'linux'")


# ------------------------------------------------------------ 5. export
def test_csv_and_tsv_carry_plain_numbers(tiny):
    for fmt, sep in (("csv", ","), ("tsv", "\t")):
        r = run("compare", tiny, "--format", fmt)
        assert r.exit_code == 0, r.output
        lines = r.output.splitlines()
        head = lines[0].split(sep)
        assert head[:8] == ["family", "workload", "params", "backend", "metric", "unit", "kind", "value"]
        rows = [dict(zip(head, x.split(sep))) for x in lines[1:]]
        assert len(rows) == len(results.load(tiny)["records"])
        for row in rows:
            v = row["value"]
            assert v == v.strip() and "," not in v and " " not in v
            if row["kind"] == "unsupported":
                assert v == ""
            else:
                float(v)
        big = [row for row in rows if row["value"] and float(row["value"]) >= 1000]
        assert big, "expected some values ≥ 1000 to check for thousands separators"


def test_json_and_parquet(tiny, tmp_path):
    r = run("compare", tiny, "--format", "json", "-m", "metadata.*")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert rows and all(x["metric"].startswith("metadata.") for x in rows)
    assert all(isinstance(x["value"], (int, float)) or x["value"] is None for x in rows)
    pq = tmp_path / "x.parquet"
    r = run("compare", tiny, "--format", "parquet", "-o", pq)
    assert r.exit_code == 0, r.output
    import polars as pl
    df = pl.read_parquet(pq)
    assert df.height == len(results.load(tiny)["records"]) and df["value"].dtype.is_numeric()


@pytest.mark.parametrize("fmt", ["markdown", "github"])
def test_markdown(tiny, fmt):
    r = run("compare", tiny, "--format", fmt)
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[1].startswith("|--") and "| fork_grid" in r.output


def test_two_files_export_ratios(tiny, tmp_path):
    doc = results.load(tiny)
    for rec in doc["records"]:
        if rec["metric"] == "metadata.total_bytes" and rec["value"] is not None:
            rec["value"] = rec["value"] * 2
    b = tmp_path / "b.json"
    results.save(b, doc)
    r = run("compare", tiny, b, "--format", "csv", "-m", "metadata.total_bytes")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    head = lines[0].split(",")
    assert head == ["family", "workload", "params", "backend", "metric", "unit", "kind_a", "a", "kind_b", "b",
                    "ratio", "status"]
    rows = [dict(zip(head, x.split(","))) for x in lines[1:]]
    numeric = [x for x in rows if x["kind_a"] == "exact"]
    assert numeric and all(x["ratio"] == "2" and x["status"] == "changed" for x in numeric)


def test_unsupported_metadata_is_never_zero(tiny):
    """The reference model accounts no structs: its metadata is unsupported, in every format."""
    r = run("compare", tiny, "-m", "metadata.bytes_per_resident_page")
    row = next(x for x in r.output.splitlines() if "dense" in x)
    assert "unsupported" in row
    rows = json.loads(run("compare", tiny, "--format", "json", "-m", "metadata.*").output)
    ref = [x for x in rows if x["backend"] == "reference"]
    assert ref and all(x["kind"] == "unsupported" and x["value"] is None for x in ref)


# ------------------------------------------------------------ 6. provenance
def test_results_record_provenance(tiny):
    doc = json.loads(tiny.read_text())
    m = doc["machine"]
    assert set(m["thp"]) == {"enabled", "defrag"}
    assert "cpufreq" in m and isinstance(m["loadavg_5_15"], list)
    assert "dirty" in doc and (doc["commit"] is None or isinstance(doc["dirty"], bool))
    assert doc["plugins"]["linux"]["distribution"] == "mmbench" and doc["plugins"]["linux"]["version"]


# ------------------------------------------------------------ 1. the headline on the terminal
def test_report_prints_the_headline_tables(tiny, tmp_path):
    out = tmp_path / "rep"
    r = run("report", tiny, "--out", out, "--asv", tmp_path / "none")
    assert r.exit_code == 0, r.output
    assert "metadata bytes per resident page" in r.output and "fork cost" in r.output
    assert "linux (baseline)" in r.output
    assert r.output.rstrip().endswith(f"({len(list(out.iterdir()))} files)")
    assert f"full report: {out / 'README.md'}" in r.output


def test_importing_mmbench_first_keeps_openblas_to_one_thread():
    """numpy's OpenBLAS thread busy-waits at import on the core a measured cell may
    need; mmbench, imported first, asks for one thread unless the caller set a number."""
    import subprocess
    import sys
    code = ("import os, mmbench, numpy; print(os.environ['OPENBLAS_NUM_THREADS'], "
            "len(os.listdir('/proc/self/task')) if os.path.isdir('/proc/self/task') else 1)")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] == "1" and int(out[1]) == 1
    env["OPENBLAS_NUM_THREADS"] = "2"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] == "2"
