"""Repeats in rounds (mmbench.rounds): every cell once, then every cell again …

A cell's repeats spread over the run, merged into the same records a cell's
back-to-back repeats gave; the results file, resuming and failures work per
round as they did per cell."""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import numpy as np

from mmbench import hostspeed, results, rounds, runner

BACKENDS = ["linux", "not-installed"]
WORKLOADS = ["seq_first_touch", "fork_grid", "dense"]


def _rec(metric, value, kind="measured", samples=None, note=""):
    r = {"family": "f", "workload": "w", "params": {}, "backend": "b", "metric": metric, "value": value,
         "unit": "ns", "kind": kind, "spread": None, "repeats": 1, "note": note}
    if kind == "measured":
        r["samples"] = samples or [value]
    return r


def exact(doc) -> dict:
    return {(r["backend"], r["workload"], results.params_label(r["params"]), r["metric"]):
            (r["value"], r["kind"], r["note"]) for r in doc["records"] if r["kind"] != "measured"}


def measured(doc) -> dict:
    return {(r["backend"], r["workload"], results.params_label(r["params"]), r["metric"]): r
            for r in doc["records"] if r["kind"] == "measured"}


# ------------------------------------------------------------------ merge
def test_merge_joins_samples_and_keeps_exact_values():
    a = [_rec("t.total_ns", 10.0), _rec("t.faults", 64, "exact"), _rec("t.estimated_ns", 5.0, "estimated")]
    b = [_rec("t.total_ns", 30.0), _rec("t.faults", 64, "exact"), _rec("t.estimated_ns", 5.0, "estimated")]
    c = [_rec("t.total_ns", 20.0), _rec("t.faults", 65, "exact"), _rec("t.estimated_ns", 5.0, "estimated")]
    m = rounds.merge(rounds.merge(rounds.merge(None, a), b), c)
    t = m[0]
    assert t["samples"] == [10.0, 30.0, 20.0] and t["value"] == 20.0 and t["repeats"] == 3
    assert t["spread"] == {"p25": 15.0, "p75": 25.0}
    assert m[1]["value"] == 64 and m[1]["note"] == rounds.DRIFT_NOTE      # repeat 0 shown, noted
    assert m[2]["value"] == 5.0 and [r["metric"] for r in m] == [r["metric"] for r in a]
    assert a[0]["samples"] == [10.0]                                     # inputs untouched
    for r in m:
        results._check_record(r, "merged")


def test_merge_into_changes_in_place_and_names_what_changed():
    a = [_rec("t.total_ns", 10.0), _rec("t.faults", 64, "exact"), _rec("t.estimated_ns", 5.0, "estimated")]
    b = [_rec("t.total_ns", 30.0), _rec("t.faults", 64, "exact"), _rec("t.estimated_ns", 5.0, "estimated"),
         _rec("t.new_ns", 7.0)]
    c = [_rec("t.total_ns", 20.0), _rec("t.faults", 65, "exact"), _rec("t.estimated_ns", 5.0, "estimated")]
    held = [dict(r) for r in a]
    assert rounds.merge_into(held, b) == [0, 3]        # the measured record, the metric only b has
    assert rounds.merge_into(held, c) == [0, 1]        # measured again; the exact one noted
    assert held == rounds.merge(rounds.merge(a, b), c)
    assert b[0]["samples"] == [30.0] and a[0]["samples"] == [10.0]       # rounds untouched
    bad = [_rec("*", None, "unsupported", note="error: Boom")]
    assert rounds.merge_into(held, bad) is None         # the cell is now the failure itself
    assert rounds.merge_into([dict(r) for r in bad], a) == []


def test_a_failed_round_makes_the_cell_its_failure():
    ok = [_rec("t.total_ns", 10.0)]
    bad = [_rec("*", None, "unsupported", note="error: Boom")]
    assert rounds.merge(ok, bad) == bad and rounds.merge(bad, ok) == bad
    assert rounds.failed(bad) and not rounds.failed(ok)


def test_order_is_round_major_and_skips_rounds_held():
    cells = ["a", "b", "c"]
    assert rounds.order(cells, 2) == [(0, "a"), (0, "b"), (0, "c"), (1, "a"), (1, "b"), (1, "c")]
    assert rounds.order(cells, 3, {"a": 3, "b": 1, "c": 0}.get) == [
        (0, "c"), (1, "b"), (1, "c"), (2, "b"), (2, "c")]


# ------------------------------------------------------------------ runs
def test_a_run_in_rounds_spreads_each_cells_repeats_over_the_run(tmp_path):
    seen = []
    doc = runner.run_suite("tiny", BACKENDS, WORKLOADS, repeats=3, output=tmp_path / "r.json",
                           progress=lambda i, n, what: seen.append(what))
    back = runner.run_suite("tiny", BACKENDS, WORKLOADS, repeats=3, interleave=False)
    # the same records as back-to-back repeats: exact ones equal, measured ones with 3 samples
    assert exact(doc) == exact(back) and len(exact(doc)) > 50
    assert measured(doc).keys() == measured(back).keys()
    assert all(r["repeats"] == 3 == len(r["samples"]) and r["value"] == np.median(r["samples"])
               for r in measured(doc).values())
    # measured in rounds: every linux cell once before any cell a second time; the design
    # that is not installed failed in round 0 and was not tried again
    ok = [c for c in doc["cells"] if c["status"] == "ok"]
    runs = [w for w in seen[1:-1] if w.startswith("linux")]
    assert len(runs) == 3 * len(ok) and len(set(runs[:len(ok)])) == len(ok) == len(set(runs))
    assert runs[:len(ok)] == runs[len(ok):2 * len(ok)]
    assert all(c["rounds"] == 3 for c in ok)
    failed = [c for c in doc["cells"] if c["status"] != "ok"]
    assert failed and all(c["rounds"] == 1 for c in failed)
    on_disk = results.load(tmp_path / "r.json")
    assert on_disk["run"]["complete"] and on_disk["run"]["interleave"]
    assert on_disk["run"]["sessions"][0]["repeats"] == "interleaved rounds"
    assert exact(on_disk) == exact(doc)
    # the host probe was timed through the run (mmbench.hostspeed), at least once
    hs = on_disk["host_speed"]
    assert hs["probe"] == hostspeed.PROBE and hs["samples_ns"] and all(x > 0 for x in hs["samples_ns"])


def test_a_cell_that_used_up_its_budget_gets_no_further_round(monkeypatch):
    monkeypatch.setitem(runner.BUDGET_S, "tiny", 0.0)
    doc = runner.run_suite("tiny", ["linux"], ["dense"], repeats=3)
    assert doc["run"]["complete"]
    assert all(c["rounds"] == 1 and c["stopped"] == "budget" for c in doc["cells"])
    assert all(r["repeats"] == 1 for r in measured(doc).values())


def test_the_file_holds_each_rounds_records_as_merged(tmp_path):
    """ResultsBook re-encodes only the records a round changed; what it writes is still
    the merged records, round after round (an exact record that drifted included)."""
    import json
    keys = ["a", "b"]
    doc = {"records": [], "cells": [], "run": {"sessions": [{}]}}
    book = runner.ResultsBook(doc, keys, tmp_path / "r.json", repeats=3)
    rounds_of = [[_rec("t", 10.0), _rec("n", 5, "exact")],
                 [_rec("t", 30.0), _rec("n", 5, "exact")],
                 [_rec("t", 20.0), _rec("n", 6, "exact"), _rec("new", 1, "exact")]]
    merged = None
    for recs in rounds_of:
        merged = rounds.merge(merged, recs)
        book.add_round(0, recs, "", {"wall_s": 0.1}, 0)
        book.flush(force=True)
        on_disk = json.loads((tmp_path / "r.json").read_text())["records"]
        assert on_disk == merged
    assert on_disk[0]["samples"] == [10.0, 30.0, 20.0] and on_disk[0]["value"] == 20.0
    assert on_disk[1]["value"] == 5 and on_disk[1]["note"].startswith(rounds.DRIFT_NOTE)


KILLER = textwrap.dedent("""
    import os, signal, sys
    from mmbench import runner
    out, after = sys.argv[1], int(sys.argv[2])
    def progress(done, total, what):
        if done >= after:                       # a kill, not an exception: nothing gets to clean up
            os.kill(os.getpid(), signal.SIGKILL)
    runner.run_suite("tiny", ["linux"], {workloads!r}, repeats=3, progress=progress, output=out)
""").format(workloads=WORKLOADS)


def test_a_run_killed_between_rounds_resumes_the_rounds_it_lacks(tmp_path):
    path = tmp_path / "killed.json"
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    whole = runner.run_suite("tiny", ["linux"], WORKLOADS, repeats=3)
    ncells = len(whole["cells"])
    # killed in the second round: every cell is in the file, most with one round
    p = subprocess.run([sys.executable, str(script), str(path), str(ncells + 2)], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == -signal.SIGKILL, p.stderr
    part = results.load(path)
    assert not part["run"]["complete"] and part["run"]["done"] == 0
    held = [c["rounds"] for c in part["cells"]]
    assert held and max(held) <= 2 and len(held) <= ncells
    assert all(len(measured_r["samples"]) == c_rounds for c_rounds, measured_r in
               ((next(c["rounds"] for c in part["cells"] if c["key"] == runner._rkey(r)), r)
                for r in part["records"] if r["kind"] == "measured"))
    doc = runner.run_suite(resume=path)
    assert doc["run"]["complete"] and doc["run"]["sessions"][-1]["cells"] == ncells
    assert all(c["rounds"] == 3 for c in doc["cells"])
    assert exact(doc) == exact(whole)
    assert all(len(r["samples"]) == 3 for r in measured(doc).values())
    assert measured(doc).keys() == measured(whole).keys()
