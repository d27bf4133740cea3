"""`mmbench run` at scale: Dask workers, atomic per-cell results, kill and resume."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from mmbench import errors, results, runner
from mmbench.cli import app

# a small slice of the tiny profile: every family, two designs, about 20 cells
BACKENDS = ["linux", "reference"]
WORKLOADS = ["seq_first_touch", "cow_after_fork", "fork_grid", "deferred", "dense", "fork_family",
             "bulk_roundtrip"]


def exact(doc) -> dict:
    """{(cell, metric): value} of the exact and unsupported records: what must not change."""
    out = {}
    for r in doc["records"]:
        if r["kind"] in ("exact", "unsupported"):
            key = (r["backend"], r["workload"], results.params_label(r["params"]), r["metric"])
            assert key not in out, key
            out[key] = (r["value"], r["kind"], r["note"] if r["kind"] == "unsupported" else "")
    return out


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    path = tmp_path_factory.mktemp("serial") / "serial.json"
    doc = runner.run_suite("tiny", BACKENDS, WORKLOADS, output=path)
    return path, doc


def test_serial_run_writes_a_complete_resumable_file(serial):
    path, doc = serial
    on_disk = results.load(path)
    assert on_disk["run"]["complete"] and on_disk["run"]["done"] == on_disk["run"]["planned"]
    assert len(on_disk["cells"]) == on_disk["run"]["planned"] == len({c["key"] for c in on_disk["cells"]})
    assert on_disk["run"]["sessions"][0]["mode"] == "serial"
    assert exact(on_disk) == exact(doc) and len(exact(doc)) > 100
    # every cell's records are there, and each cell says how it ran
    keys = {runner._rkey(r) for r in on_disk["records"]}
    assert keys == {c["key"] for c in on_disk["cells"]}
    assert all(c["status"] in ("ok", "unsupported") and c["how"]["wall_s"] >= 0 for c in on_disk["cells"])


def test_two_dask_workers_give_the_serial_exact_metrics(serial, tmp_path):
    path = tmp_path / "dask.json"
    doc = runner.run_suite("tiny", BACKENDS, WORKLOADS, output=path, workers=2, repeats=2)
    assert exact(doc) == exact(serial[1])
    # the repeats in rounds on the cluster too: each cell measured twice, merged
    assert all(c["rounds"] == 2 for c in doc["cells"] if c["status"] == "ok")
    assert all(len(r["samples"]) == 2 for r in doc["records"] if r["kind"] == "measured")
    assert doc["host_speed"]["samples_ns"]          # the host probe, timed on the workers
    on_disk = results.load(path)
    assert exact(on_disk) == exact(serial[1])
    # records come in plan order whatever order the cells finished in
    assert [c["key"] for c in on_disk["cells"]] == [c["key"] for c in serial[1]["cells"]]
    sess = on_disk["run"]["sessions"][-1]
    assert sess["mode"] == "local-cluster" and sess["workers"] == 2 and sess["cells"] == len(on_disk["cells"])
    hows = [c["how"] for c in on_disk["cells"]]
    assert all(h["exclusive"] and isinstance(h["cpu"], int) for h in hows)
    assert len({h["worker"] for h in hows}) >= 1 and all(h["pinned"] for h in hows)


KILLER = textwrap.dedent("""
    import os, signal, sys
    from mmbench import runner
    out, after = sys.argv[1], int(sys.argv[2])
    def progress(done, total, what):
        if done >= after:                       # a kill, not an exception: nothing gets to clean up
            os.kill(os.getpid(), signal.SIGKILL)
    runner.run_suite("tiny", {backends!r}, {workloads!r}, progress=progress, output=out)
""").format(backends=BACKENDS, workloads=WORKLOADS)


def test_a_killed_run_leaves_a_valid_file_and_resumes_to_the_same_exact_metrics(serial, tmp_path):
    path = tmp_path / "killed.json"
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    p = subprocess.run([sys.executable, str(script), str(path), "7"], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == -signal.SIGKILL, p.stderr
    part = results.load(path)                     # valid JSON, valid schema
    # the file is rewritten at most every 20 writes' time (ResultsBook.WRITE_SHARE): a kill
    # loses the cells of that last interval, never the file
    kept = part["run"]["done"]
    assert not part["run"]["complete"] and 1 <= kept <= 7 and kept == len(part["cells"])
    assert {runner._rkey(r) for r in part["records"]} == {c["key"] for c in part["cells"]}
    assert not list(tmp_path.glob(".*.tmp")) or True   # a stray temporary file is harmless
    # resume: only the missing cells run (in one session), and the result equals an uninterrupted run
    r = CliRunner().invoke(app, ["run", "--resume", str(path)])
    assert r.exit_code == 0, r.output
    done = results.load(path)
    assert done["run"]["complete"]
    assert exact(done) == exact(serial[1])
    sessions = done["run"]["sessions"]
    assert len(sessions) == 2 and sessions[1]["cells"] == done["run"]["planned"] - kept
    assert {c["session"] for c in done["cells"][:kept]} <= {0, 1}
    # resuming a complete file runs nothing
    doc = runner.run_suite(resume=path)
    assert doc["run"]["sessions"][-1]["cells"] == 0 and exact(doc) == exact(serial[1])


def test_resume_refuses_conflicting_settings_and_foreign_files(serial, tmp_path):
    r = CliRunner().invoke(app, ["run", "--resume", str(serial[0]), "-b", "linux"])
    assert r.exit_code == 2 and "takes the profile" in r.output
    r = CliRunner().invoke(app, ["run", "--resume", str(tmp_path / "none.json")])
    assert r.exit_code == 2 and "no such file" in r.output
    old = results.load(serial[0])
    for k in ("run", "cells"):
        old.pop(k)
    results.save(tmp_path / "old.json", old)
    with pytest.raises(errors.InvalidArgument, match="not written by a resumable"):
        runner.run_suite(resume=tmp_path / "old.json")
    r = CliRunner().invoke(app, ["run", "--workers", "0", "-b", "reference"])
    assert r.exit_code == 2 and "--workers" in r.output


def test_a_cell_that_kills_its_worker_is_recorded_with_its_error(tmp_path):
    """A worker dying mid-cell (a crash in a design's C code) costs that cell only."""
    import cloudpickle
    from mmbench.parallel import Cluster
    cloudpickle.register_pickle_by_value(sys.modules[__name__])   # workers cannot import this file
    wl = runner.select_workloads(["dense"])[0]
    p = wl.points("tiny")[0]
    cells = [(0, wl, p, "reference", 1.0), (1, wl, p, "reference", 1.0)]
    with Cluster(workers=1) as cl:
        got = sorted(cl.map_cells(cells, 1, None, 1.0, task=_die_on_cell_one), key=lambda r: r["index"])
    assert got[0]["status"] == "ok" and got[0]["records"]
    assert got[1]["status"] == "error" and got[1]["records"] is None and got[1]["error"]


def test_a_cell_waiting_beside_a_crash_is_run_again_and_kept(tmp_path):
    """The worker holds its next cell while it runs one (QUEUE_DEPTH); when the running
    cell kills it, the waiting ones are run again alone and keep their records."""
    import cloudpickle
    from mmbench.parallel import QUEUE_DEPTH, Cluster
    assert QUEUE_DEPTH >= 2
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    wl = runner.select_workloads(["dense"])[0]
    p = wl.points("tiny")[0]
    cells = [(i, wl, p, "reference", 1.0) for i in range(4)]
    with Cluster(workers=1) as cl:
        got = sorted(cl.map_cells(cells, 1, None, 1.0, task=_die_on_cell_one), key=lambda r: r["index"])
    assert [r["index"] for r in got] == [0, 1, 2, 3]
    assert [r["status"] for r in got] == ["ok", "error", "ok", "ok"]
    assert got[1]["records"] is None and "Killed" in got[1]["error"]
    assert all(r["records"] for r in got if r["index"] != 1)


def _die_on_cell_one(index, *args):
    from mmbench.parallel import run_cell
    if index == 1:
        os._exit(3)
    return run_cell(index, *args)


def test_large_profile_runs_only_the_workloads_that_declare_it():
    cells = runner.plan(runner.select_workloads(None), ["linux"], "large")
    assert cells and {w.name for w, _, _ in cells} == {"process_lifecycle"}
    assert all(p["pages"] == 1 << 22 for _, p, _ in cells)          # 16 GiB processes
    assert runner.PROFILES["large"] == 1


def test_cells_go_to_an_existing_cluster_by_its_address(serial, tmp_path):
    """--scheduler ADDRESS: the same run on a cluster mmbench did not start."""
    import logging

    from distributed import LocalCluster
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster:
        doc = runner.run_suite("tiny", ["reference"], ["dense", "fork_grid"], output=tmp_path / "s.json",
                               scheduler=cluster.scheduler_address)
    sess = doc["run"]["sessions"][-1]
    assert sess["mode"] == "scheduler" and sess["how"]["scheduler"] == cluster.scheduler_address
    want = {k: v for k, v in exact(serial[1]).items() if k[0] == "reference" and k[1] in ("dense", "fork_grid")}
    assert exact(doc) == want and want


def test_short_cells_are_grouped_into_one_task(monkeypatch):
    """take_group: cells measured short go together up to the limit, a long one alone;
    a cell not measured yet counts as UNKNOWN_SHARE of the limit."""
    from mmbench import parallel
    cells = [(i, None, {}, "reference", 1.0) for i in range(9)]
    took = {0: 0.1, 1: 0.1, 2: 0.2, 4: 0.6}

    def groups():
        it = iter(cells)
        return [[c[0] for c in g] for g in iter(lambda: parallel.take_group(it, took, 0.5), [])]
    monkeypatch.setattr(parallel, "UNKNOWN_SHARE", 0.5)
    assert groups() == [[0, 1, 2, 3], [4], [5, 6], [7, 8]]
    monkeypatch.setattr(parallel, "UNKNOWN_SHARE", 0.25)
    assert groups() == [[0, 1, 2, 3], [4], [5, 6, 7, 8]]
    # the first round of a run: nothing measured yet, 1 / UNKNOWN_SHARE cells per task
    monkeypatch.undo()
    it = iter(cells)
    first = [len(g) for g in iter(lambda: parallel.take_group(it, {}, 0.5), [])]
    per = round(1 / parallel.UNKNOWN_SHARE)
    assert first == [per] * (len(cells) // per) + ([len(cells) % per] if len(cells) % per else [])


def test_work_left_follows_the_stream_and_shrinks_the_last_groups():
    """WorkLeft: the estimated seconds still to measure, kept as cells leave the stream
    and get measured; the group limit falls below BATCH_S only once the work left
    would not fill every task slot."""
    from mmbench import parallel
    cells = [(i, None, {}, "reference", 1.0) for i in range(4)]
    order = cells + cells                                  # two rounds
    work = parallel.WorkLeft(order)
    unknown = parallel.UNKNOWN_SHARE * parallel.BATCH_S
    assert abs(work.left - 8 * unknown) < 1e-9
    for c in cells:                                        # round one taken, then measured
        work.taken(c)
    for c in cells:
        work.measured(c[0], 0.3)
    assert abs(work.left - 4 * 0.3) < 1e-9 and work.took == {i: 0.3 for i in range(4)}
    assert work.group_limit(1) == min(parallel.BATCH_S, 1.2)  # 1.2 s left, one slot
    assert abs(work.group_limit(6) - 0.2) < 1e-9               # six slots share 1.2 s
    work.measured(0, 0.3 + 6 * parallel.BATCH_S)                # cell 0 turned out long
    assert work.group_limit(6) == parallel.BATCH_S
    work.measured(0, 0.3)
    for c in cells:
        work.taken(c)
    assert abs(work.left) < 1e-9 and work.group_limit(6) == parallel.MIN_GROUP_S


def test_rounds_on_a_cluster_group_short_cells_and_lose_none():
    """Two rounds of four tiny cells on one worker: every round of every cell comes back
    once, and the second round goes in fewer tasks than cells."""
    from mmbench.parallel import Cluster
    wl = runner.select_workloads(["dense"])[0]
    p = wl.points("tiny")[0]
    cells = [(i, wl, p, "reference", 1.0) for i in range(4)]
    with Cluster(workers=1) as cl:
        got = [r for b in cl.map_cell_batches(cells + cells, 1, None, 1.0, ordered=True) for r in b]
    assert sorted(r["index"] for r in got) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert all(r["status"] == "ok" and r["records"] for r in got)
    assert all(r["how"]["wall_s"] < 0.5 for r in got)       # tiny cells: short enough to group
    assert cl.tasks < 8                      # tiny cells: pairs in round one, grouped in round two
