"""Host calibration: the probe, the calibration file, estimate_ns, /proc readers.

The probe runs with tiny sizes here; the numbers it returns are checked for
sanity (positive, finite), never for speed.
"""
from __future__ import annotations

import json
import math
import os
import sys

import numpy as np
import pytest

import mmbench
from mmbench import errors, estimate as est, hostcheck

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the host probe measures a Linux kernel")


# ---------------------------------------------------------------- the probe
@linux_only
@pytest.mark.parametrize("name,call", [
    ("anon write", lambda P: P.anon_fault(16, 1, True, 2)),
    ("zero-page read", lambda P: P.anon_fault(16, 1, False, 2)),
    ("sparse write", lambda P: P.anon_fault(4, 512, True, 2)),
    ("vma first write", lambda P: P.islands_fault(8, 2)),
    ("cow copy", lambda P: P.cow(16, 1, 2)),
    ("cow reuse", lambda P: P.cow(16, 0, 2)),
    ("cow chain", lambda P: P.cow(16, 3, 2)),
    ("memfd miss", lambda P: P.memfd(16, "miss", 2)),
    ("memfd hit", lambda P: P.memfd(16, "hit", 2)),
    ("memfd read hit", lambda P: P.memfd(16, "read_hit", 2)),
    ("fork", lambda P: P.fork(16, 4, True, 2)),
    ("munmap", lambda P: P.munmap(16, False, 2)),
    ("munmap shared", lambda P: P.munmap(16, True, 2)),
    ("munmap vmas", lambda P: P.islands_munmap(8, True, 2)),
    ("fork chain", lambda P: P.fork_chain(4, 2, 2)),
    ("mprotect", lambda P: P.mprotect(True, 10, 2)),
    ("memset", lambda P: P.memops(False, 16, 2)),
    ("memcpy", lambda P: P.memops(True, 16, 2)),
    ("kmalloc", lambda P: P.kmalloc(512, 10, 2)),
    ("mremap", lambda P: P.mremap(16, 1, 2)),
    ("mremap whole tables", lambda P: P.mremap(1024, 0, 2)),
    ("munmap empty vmas", lambda P: P.islands_munmap(8, False, 2)),
    ("thp write fault", lambda P: P.thp_fault(1, True, 2)),
    ("thp read fault", lambda P: P.thp_fault(1, False, 2)),
    ("thp mprotect huge", lambda P: P.thp_cut(1, True, "mprotect", 2)),
    ("thp mprotect small", lambda P: P.thp_cut(1, False, "mprotect", 2)),
    ("thp munmap huge", lambda P: P.thp_cut(1, True, "munmap", 2)),
    ("thp dontneed huge", lambda P: P.thp_cut(1, True, "dontneed", 2)),
    ("thp mprotect huge shared", lambda P: P.thp_cut(1, True, "mprotect", 2, shared=True)),
    ("thp mprotect small shared", lambda P: P.thp_cut(1, False, "mprotect", 2, shared=True)),
    ("fork huge", lambda P: P.fork_huge(1, 2)),
    ("cow huge", lambda P: P.cow_huge(1, 2)),
    ("thp collapse", lambda P: P.thp_collapse(1, 2)),
    ("madvise dontneed", lambda P: P.madvise_dontneed(16, 2)),
    ("fork memfd", lambda P: P.fork_memfd(16, 2)),
    ("exit", lambda P: P.exit_process(16, 2)),
    ("mprotect split", lambda P: P.mprotect_split(10, 2)),
    ("mprotect split at the edge", lambda P: P.mprotect_split(10, 2, edge=True)),
])
def test_probe_returns_positive_samples(name, call):
    from mmbench.probe import _probe as P
    out = call(P)
    assert out.dtype == np.int64 and out.shape == (2,)
    assert (out > 0).all(), f"{name}: {out}"


@linux_only
@pytest.mark.parametrize("call", [
    lambda P: P.anon_fault(0),
    lambda P: P.anon_fault(-1),
    lambda P: P.anon_fault(True),
    lambda P: P.anon_fault(4, stride=0),
    lambda P: P.cow(4, depth=-1),
    lambda P: P.memfd(4, mode="nope"),
    lambda P: P.fork(nvmas=10 ** 9),
    lambda P: P.mprotect(pairs=0),
    lambda P: P.memops(bufpages=1.5),
    lambda P: P.anon_fault(4, reps=0),
    lambda P: P.kmalloc(0),
    lambda P: P.kmalloc(9000),
    lambda P: P.mremap(0),
    lambda P: P.mremap(16, shift=512),
    lambda P: P.exit_process(-1),
    lambda P: P.thp_fault(0),
    lambda P: P.thp_fault(10 ** 6),
    lambda P: P.thp_cut(1, what="split"),
    lambda P: P.fork_huge(-1),
    lambda P: P.cow_huge(1.5),
    lambda P: P.thp_collapse(0),
    lambda P: P.set_clock("tsc"),
])
def test_probe_rejects_bad_arguments(call):
    from mmbench.probe import _probe as P
    with pytest.raises(errors.InvalidArgument):
        call(P)


@linux_only
def test_exit_probe_runs_in_a_small_process():
    """The exit probe's child belongs to forkbase, not to the Python process: an exit
    of one page costs far less than tearing down a copy of this interpreter, and
    more pages cost more."""
    from mmbench import probe
    one = sorted(probe.exit_small(5, 1))[2]
    many = sorted(probe.exit_small(5, 4096))[2]
    assert 0 < one < many
    for bad in (0, -1, 1.5, True, 1 << 23):
        with pytest.raises(errors.InvalidArgument):
            probe.exit_small(1, bad)
    with pytest.raises(errors.InvalidArgument):
        probe.exit_small(0, 1)


@linux_only
def test_probe_samples_run_pinned_and_unpin_after():
    """Each calibration sample runs on one CPU (its forked children with it), and
    the process's CPU set is given back afterwards, also when the probe fails."""
    from mmbench import calibrate as cal
    before = os.sched_getaffinity(0)
    seen = cal._pinned(lambda: os.sched_getaffinity(0))
    assert len(seen) == 1 and seen <= before
    with pytest.raises(RuntimeError):
        cal._pinned(lambda: (_ for _ in ()).throw(RuntimeError("probe failed")))
    assert os.sched_getaffinity(0) == before


@linux_only
def test_probe_clock_is_cpu_by_default_and_switchable():
    """The CPU clock leaves out time spent waiting for a CPU: a child's exit is
    its own CPU time, not the wall time until the parent noticed."""
    from mmbench.probe import _probe as P
    assert P.get_clock() == "cpu"
    was = P.set_clock("wall")
    try:
        assert was == "cpu" and P.get_clock() == "wall"
        assert (P.exit_process(16, 2) > 0).all()
    finally:
        P.set_clock(was)
    assert P.get_clock() == "cpu"
    from mmbench import probe
    assert all(x > 0 for x in probe.fork_empty(2))


@linux_only
def test_probe_holders_release_cleanly():
    from mmbench.probe import _probe as P
    with P.Islands(8, touch=True) as isl:
        assert isl.base > 0
        with P.HeldChild() as child:
            assert child.pid > 0
    assert isl.base is None and child.pid is None
    isl.release()          # releasing twice is harmless


# ----------------------------------------------------------- estimate_ns
CAL = {"machine": {"hostname": "testhost"},
       "costs": {"trap": {"ns": 100.0}, "zero_fill": {"ns": 1000.0}, "copy": 2000.0,
                 "struct_alloc": {"ns": 50.0},
                 "vma": {"ns": 400.0}, "page_free": {"ns": 70.0}, "fork_base": {"ns": 9000.0}}}


def test_estimate_ns_arithmetic():
    counters = {"faults": 3, "pages_zeroed": 2, "pages_copied": 1, "rmap_visits": 5,
                "tlb_flushes": 0, "alloc:anon_vma": 2, "alloc:anon_vma_chain": 4,
                "free:anon_vma": 1, "alloc:vm_area_struct": 1, "alloc:pte_table": 7,
                "free:page": 4, "op:FORK": 1, "op:WRITE": 3}
    e = est.estimate_ns(counters, CAL)
    assert e["kind"] == "estimated" and e["calibration"] == "testhost"
    # lifetime prices: half at allocation, half at free (2 + 4 allocs + 1 free, x 25)
    assert e["breakdown"] == {"trap": 300.0, "zero_fill": 2000.0, "copy": 2000.0,
                              "struct_alloc": 175.0, "vma": 200.0,
                              "page_free": 280.0, "fork_base": 9000.0}
    assert e["events_ns"] == e["total_ns"] == 13955.0
    assert e["bookkeeping_ns"] is None
    # struct frees are inside the struct's price, page tables inside pt_pages_alloc
    # (not in this event dict), writes inside their faults
    assert e["uncosted"] == ["rmap_visits"]
    assert e["covered"] == ["alloc:pte_table", "op:WRITE"]
    # the model's own time is reported beside the estimate, never inside it
    with_book = est.estimate_ns(counters, CAL, measured_ns=720)
    assert with_book["total_ns"] == 13955.0 and with_book["bookkeeping_ns"] == 720.0


def test_huge_fault_prices_its_own_pages_and_unpriced_thp_events_show():
    """A huge zero-fill fault's 512 pages are inside thp_fault_alloc (not priced again
    as pages_zeroed); a THP event with no price in the calibration is listed as
    uncosted, never priced at 0 or through its parts."""
    cal = {"costs": dict(CAL["costs"], thp_fault_alloc={"ns": 50000.0})}
    counters = {"faults": 2, "pages_zeroed": 513, "thp_fault_alloc": 1, "thp_split_pmd": 1,
                "thp_collapse_alloc": 1, "thp_deferred_split_page": 2, "pt_pages_alloc": 0}
    e = est.estimate_ns(counters, cal)
    assert e["netted"] == {"pages_zeroed": 512}
    assert e["breakdown"] == {"trap": 200.0, "zero_fill": 1000.0, "thp_fault_alloc": 50000.0}
    assert e["uncosted"] == ["thp_collapse_alloc", "thp_deferred_split_page", "thp_split_pmd"]
    # without a thp_fault_alloc price the huge fault is unpriced, its pages are not
    # priced as 512 small zero-fills
    e = est.estimate_ns(counters, CAL)
    assert "thp_fault_alloc" in e["uncosted"] and e["breakdown"]["zero_fill"] == 1000.0
    for key in ("thp_fault_alloc", "thp_zero_page_map", "thp_split_pmd",
                "thp_deferred_split_page", "thp_collapse_alloc", "mremap_pages_moved"):
        assert est.cost_of(key) is not None, key
    assert est.cost_of("op:MUNMAP") == "munmap_call" and est.cost_of("op:MREMAP") == "mremap_call"
    assert est.cost_of("thp_fault_fallback") is None        # no probe provokes it: unpriced
    assert "thp_fault_fallback" in est.estimate_ns({"thp_fault_fallback": 1}, CAL)["uncosted"]


def test_estimate_without_calibration_says_so():
    e = est.estimate_ns({"faults": 3}, None, measured_ns=10)
    assert e["total_ns"] is None and e["reason"] == est.NO_CALIBRATION == "no calibration"


def test_every_counter_maps_to_at_most_one_cost():
    priced = [k for k in mmbench.COUNTER_NAMES if est.cost_of(k)]
    assert {"faults", "pages_zeroed", "pages_copied", "tlb_flushes", "pt_pages_alloc",
            "fork_ptes_copied", "pte_zaps", "fault_minor"} <= set(priced)
    assert est.cost_of("alloc:xa_node") == "struct_alloc"
    assert est.cost_of("free:xa_node") == "struct_alloc"  # half its lifetime price
    assert est.share("free:xa_node") == est.share("alloc:xa_node") == 0.5
    assert est.cost_of("free:page") == "page_free"
    assert est.cost_of("alloc:pte_table") is None      # priced through pt_pages_alloc
    assert est.cost_of("op:FORK") == "fork_base" and est.cost_of("op:READ") is None


def test_load_calibration_finds_this_hosts_newest_or_none(tmp_path, monkeypatch):
    """Only a calibration made on this host's hardware is found (mmbench.calibration_search)."""
    from mmbench import calibration_search
    monkeypatch.setenv("MMBENCH_RESULTS", str(tmp_path))
    monkeypatch.setenv("MMBENCH_DATA_DIR", str(tmp_path / "user"))
    monkeypatch.delenv("MMBENCH_CALIBRATION", raising=False)
    assert est.load_calibration() is None
    d = tmp_path / "calibration"
    d.mkdir()
    here = calibration_search.this_host()
    (d / "old.json").write_text(json.dumps({"costs": {"trap": 1}, "machine": dict(here, hostname="old")}))
    os.utime(d / "old.json", (1, 1))
    (d / "new.json").write_text(json.dumps({"costs": {"trap": 2}, "machine": dict(here, hostname="new")}))
    (d / "elsewhere.json").write_text(json.dumps({"costs": {"trap": 3}, "machine": {"hostname": "x"}}))
    assert est.load_calibration()["machine"]["hostname"] == "new"
    (d / "bad.json").write_text("{not json")
    with pytest.raises(errors.InvalidArgument):
        est.load_calibration(str(d / "bad.json"))
    (d / "other.json").write_text("[1, 2]")
    with pytest.raises(errors.InvalidArgument):
        est.load_calibration(str(d / "other.json"))


def test_events_of_a_machine_and_op_counts():
    tb = mmbench.TraceBuilder()
    p = tb.spawn(); tb.mmap(p, 0, 4); tb.write_range(p, 0, 4); c = tb.fork(p); tb.exit(c)
    trace = tb.build()
    m = mmbench.open("reference")
    m.replay(trace, timing=False)
    ev = est.events_of(m, trace)
    assert ev["op:WRITE"] == 4 and ev["op:FORK"] == 1 and ev["op:MMAP"] == 1
    assert est.op_counts(["fork", "FORK", "exit"]) == {"op:FORK": 2, "op:EXIT": 1}


# ------------------------------------------------- the fit of the newer prices (no timing)
def _published_figs():
    """The probe figures of the committed calibration, with the probes added since
    made up (round numbers, 45 samples each: the fit's arithmetic is on trial)."""
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "results" / "calibration" / "vm.json"
    figs = json.loads(path.read_text())["probes"]
    rng = np.random.default_rng(1)

    def fig(v):
        return {"median": float(v), "samples": list(v * rng.uniform(0.98, 1.02, 45))}
    xs = [64, 512, 1024, 2048, 4048, 4096, 8000]
    ks = [579.0, 608.0, 641.0, 700.0, 726.0, 882.0, 1009.0]
    figs["kmalloc"] = {"x": xs, "median": ks,
                       "samples": [list(k * rng.uniform(0.98, 1.02, 45)) for k in ks]}
    # the two probes made up above what the file's other prices leave, so that the
    # fitted split/merge and teardown prices are positive whatever host made the file
    from mmbench import calibrate as C
    figs["munmap_vma_touched"] = fig(1.0)
    figs["mprotect_edge_split"] = fig(1.0)
    c = C.fit(figs)
    figs["mprotect_edge_split"] = fig(round(c["syscall"]["ns"] + c["vma"]["ns"] / 2 + 300.0))
    figs["munmap_vma_touched"] = fig(round(
        figs["munmap_vma_empty"]["median"] + c["pte_zap"]["ns"] + c["page_free"]["ns"]
        + c["tlb_flush"]["ns"] + c["struct_alloc"]["ns"] + 400.0))
    return figs


def test_split_merge_and_munmap_teardown_prices_come_from_their_probes():
    from mmbench import calibrate as C
    figs = _published_figs()
    c = C.fit(figs)
    m = {k: v["median"] for k, v in figs.items() if "x" not in v}
    assert c["vma_modify"]["ns"] == pytest.approx(
        m["mprotect_edge_split"] - c["syscall"]["ns"] - c["vma"]["ns"] / 2, abs=0.1)
    assert c["munmap_vma"]["ns"] == pytest.approx(
        m["munmap_vma_touched"] - m["munmap_vma_empty"] - c["pte_zap"]["ns"] - c["page_free"]["ns"]
        - c["tlb_flush"]["ns"] - c["struct_alloc"]["ns"], abs=0.2)
    assert c["vma_modify"]["ns"] > 0 and c["munmap_vma"]["ns"] > 0
    # munmap_call still comes from the never-written VMAs alone
    assert c["munmap_call"]["ns"] == pytest.approx(m["munmap_vma_empty"] - c["vma"]["ns"] / 2,
                                                   abs=0.1)
    for name in ("vma_modify", "munmap_vma"):
        assert name in est.COSTS and "mprotect_split" not in c[name]["from"]
        assert "munmap_vmas" not in c[name]["from"]          # the held-out probe's name
    # a file from before these probes has neither price: its events stay uncosted
    old = {k: v for k, v in figs.items() if k not in ("munmap_vma_touched", "mprotect_edge_split")}
    assert not {"vma_modify", "munmap_vma"} & set(C.fit(old))


def test_kmalloc_curve_is_half_the_measured_cost_above_zero_bytes():
    from mmbench import calibrate as C
    figs = _published_figs()
    curve = C.fit(figs)["kmalloc_byte"]["curve"]
    xs, ks = figs["kmalloc"]["x"], figs["kmalloc"]["median"]
    k0 = ks[0] - (ks[1] - ks[0]) / (xs[1] - xs[0]) * xs[0]   # the first segment at 0 bytes
    assert curve["bytes"] == xs
    assert curve["ns"] == [round((k - k0) / 2, 1) for k in ks]
    # the held-out size is read off the curve between two measured sizes: the
    # estimate of msgsnd + msgrcv of 3,000 bytes less 64 is the interpolated host cost
    cal = {"costs": C.fit(figs)}
    model = C._estimate((C._msg_events(3000), C._msg_events(64)), cal)[0]
    k3000 = ks[3] + (3000 - 2048) / (4048 - 2048) * (ks[4] - ks[3])
    assert model == pytest.approx(k3000 - ks[0], abs=0.5)


def test_kmalloc_curve_and_new_prices_carry_bootstrap_intervals():
    from mmbench import calibrate as C
    costs = C.fit_with_intervals(_published_figs())
    cv = costs["kmalloc_byte"]["curve"]
    assert len(cv["low"]) == len(cv["high"]) == len(cv["ns"])
    assert all(lo <= n <= hi for lo, n, hi in zip(cv["low"], cv["ns"], cv["high"]))
    for name in ("vma_modify", "munmap_vma"):
        assert costs[name]["low"] <= costs[name]["ns"] <= costs[name]["high"], name
