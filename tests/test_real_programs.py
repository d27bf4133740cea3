"""The real_programs family (workloads/real_programs.py): the recorded corpus cut at
its forks, each fork carrying the host's VMA counts so that `mmbench run` prices a
fork as `mmbench replay` does."""
from pathlib import Path

import pytest

from mmbench import record_replay
from mmbench.registry import workloads
from mmbench.trace import Op
from mmbench.workloads import real_programs as rp
from mmbench.workloads._measure import load_calibration, measure

CAL = Path(__file__).resolve().parent.parent / "results" / "calibration" / "vm.json"


def test_each_fork_segment_carries_the_hosts_vma_counts():
    trace, prov = rp.load("pgbench")
    sc = rp.real_program("pgbench")
    forks = [s for s in sc.segments if s.name == "fork"]
    want = [tuple(v) for v in prov["host"]["fork_vmas"]]
    assert len(forks) == int((trace["op"] == Op.FORK).sum()) == len(want) > 0
    assert [s.host_fork for s in forks] == want


def test_run_and_replay_price_the_forks_alike():
    """The merged VMAs' fork work is in both: run's fork.estimated_ns is replay's."""
    cal, where = load_calibration(CAL)
    if cal is None:
        pytest.skip(f"no calibration: {where}")
    trace, prov = rp.load("pgbench")
    r = record_replay.replay_one(trace, "linux", cal, prov.get("notes", {}), prov.get("host"))
    assert r["fork_unmerged"]                       # the replay merged some of the host's VMAs
    recs = measure(workloads()["real_program"], {"program": "pgbench", "thp": "never"}, "linux",
                   repeats=1, calibration=cal)
    got = {x["metric"]: x["value"] for x in recs}
    assert got["fork.estimated_ns"] == pytest.approx(r["est_fork_ns"], rel=1e-9)
    bare = record_replay.replay_one(trace, "linux", cal, prov.get("notes", {}), None)
    assert got["fork.estimated_ns"] > bare["est_fork_ns"]
