"""A synthetic results document for the publishing tests (never real numbers).

It follows the results schema (schema 1) and the metric naming of the
workloads suite (``<segment>.median_ns``, ``metadata.total_bytes``,
``to_device.GBps`` …) so every table and chart of a report has data, and it
contains each case the report must handle honestly: exact, measured (with and
without a spread), estimated, a design without accelerators (unsupported), a
workload no design could run, and measured values whose spreads overlap.

    python tests/report_fixture.py out.json      # write one to look at
"""
from __future__ import annotations

import json
import random
import sys

BACKENDS = ("linux", "freebsd", "shmem", "gmem", "uvm")
# a per-design factor so the designs differ in a stable, recognisable way
_FACTOR = {"linux": 1.0, "freebsd": 1.6, "shmem": 0.8, "gmem": 2.3, "uvm": 1.2}
NO_DEVICES = {"uvm"}


def rec(family, workload, params, backend, metric, value, unit, kind, spread=None, repeats=1, note=""):
    return {"family": family, "workload": workload, "params": dict(params), "backend": backend,
            "metric": metric, "value": value, "unit": unit, "kind": kind, "spread": spread,
            "repeats": repeats, "note": note}


def measured(rng, family, workload, params, backend, metric, centre, width=0.08, unit="ns"):
    """A measured median with a p25–p75 spread of about ±width."""
    v = centre * (1 + rng.uniform(-0.02, 0.02))
    spread = {"p25": v * (1 - width), "p75": v * (1 + width)}
    return rec(family, workload, params, backend, metric, v, unit, "measured", spread, 5)


def unsupported(family, workload, params, backend, why):
    return rec(family, workload, params, backend, "*", None, "", "unsupported", note=why)


def fault_latency(rng, b):
    f, out = _FACTOR[b], []
    cases = [("seq_first_touch", {"fault_kind": "zero_fill"}, ("write",), 900),
             ("read_then_write", {"fault_kind": "zero_page"}, ("read", "write"), 500),
             ("cow_after_fork", {"fault_kind": "cow_copy", "writer": "parent"}, ("write",), 1500),
             ("cow_after_fork", {"fault_kind": "cow_copy", "writer": "child"}, ("write",), 1600),
             ("shared_minor", {"fault_kind": "minor"}, ("read",), 300)]
    for wl, extra, segs, base in cases:
        for pages in (64, 4096):
            p = {"pages": pages, **extra}
            for seg in segs:
                # shmem and linux: overlapping spreads on the zero-fill case (not significant)
                c = base * (1.0 if (b == "shmem" and wl == "seq_first_touch") else f)
                out.append(measured(rng, "fault_latency", wl, p, b, f"{seg}.median_ns", c, 0.1))
                out.append(measured(rng, "fault_latency", wl, p, b, f"{seg}.p99_ns", 4 * c, 0.2))
                out.append(rec("fault_latency", wl, p, b, f"{seg}.faults", pages, "events", "exact"))
                out.append(rec("fault_latency", wl, p, b, f"{seg}.estimated_ns_per_page",
                               c * 1.7 + 250, "ns", "estimated", note="fixture"))
            out.append(rec("fault_latency", wl, p, b, "metadata.total_bytes",
                           int(pages * 8 * f) + 4096 * 4, "B", "exact"))
    return out


def fork_cost(rng, b):
    f, out = _FACTOR[b], []
    for pages in (64, 1024, 16384):
        for depth in (1, 2, 4):
            for vmas in (1, 16):
                p = {"pages": pages, "vmas": vmas, "depth": depth, "seed": 3}
                per_page = 8.0 if b != "freebsd" else 1.5   # a design that defers the copy
                c = f * (2000 + pages * per_page * (1 + 0.3 * (depth - 1)) + 400 * vmas)
                out.append(measured(rng, "fork_cost", "fork_grid", p, b, "fork.median_ns", c))
                out.append(measured(rng, "fork_cost", "fork_grid", p, b, "fork.total_ns", c * depth))
                out.append(rec("fork_cost", "fork_grid", p, b, "fork.ns_per_page", c / pages, "ns",
                               "measured", None, 1, "one repeat: no spread"))
                out.append(rec("fork_cost", "fork_grid", p, b, "fork.pte_writes", pages * depth,
                               "events", "exact"))
    return out


def metadata_memory(rng, b):
    f, out = _FACTOR[b], []
    shapes = {"dense": {"pages": 16384}, "sparse": {"touched": 1024},
              "many_small_vmas": {"vmas": 2048, "vma_pages": 2}}
    per_page = {"dense": 9, "sparse": 4200, "many_small_vmas": 180}
    for wl, p in shapes.items():
        n = next(iter(p.values()))
        total = int(n * per_page[wl] * f)
        out += [rec("metadata_memory", wl, p, b, "metadata.total_bytes", total, "B", "exact"),
                rec("metadata_memory", wl, p, b, "metadata.bytes_per_resident_page", total / n,
                    "B/page", "exact"),
                rec("metadata_memory", wl, p, b, "metadata.pte_table.bytes", 4096 * (n // 512 + 1),
                    "B", "exact")]
    for depth in (1, 2, 4, 8):
        for shape in ("chain", "tree"):
            p = {"depth": depth, "shape": shape, "pages": 1024, "seed": 6}
            grow = 1.9 if b == "freebsd" else 1.25
            total = int(1024 * 12 * f * grow ** depth * (1.3 if shape == "tree" else 1))
            out += [rec("metadata_memory", "fork_family", p, b, "metadata.total_bytes", total, "B", "exact"),
                    rec("metadata_memory", "fork_family", p, b, "metadata.bytes_per_resident_page",
                        total / 1024, "B/page", "exact")]
    return out


def device_migration(rng, b):
    out = []
    for transfer in (1, 16, 512):
        p = {"pages": 4096, "transfer": transfer}
        if b in NO_DEVICES:
            out.append(unsupported("device_migration", "bulk_roundtrip", p, b,
                                   "the design has no accelerators"))
            continue
        g = 50 / (1 + 16 / transfer) / _FACTOR[b]
        for seg in ("to_device", "to_host"):
            v = g * (0.9 if seg == "to_host" else 1.0)
            out.append(rec("device_migration", "bulk_roundtrip", p, b, f"{seg}.GBps", v, "GB/s",
                           "estimated", {"p25": v * 0.95, "p75": v * 1.05}, 5, "link model"))
            out.append(measured(rng, "device_migration", "bulk_roundtrip", p, b, f"{seg}.total_ns",
                                4096 / transfer * 900 * _FACTOR[b]))
    out.append(unsupported("device_migration", "oversubscribe", {"ratio": 2}, b,
                           "fixture: no design models eviction here"))
    return out


def real_programs(rng, b):
    """A recorded program's replay (mmbench.workloads.real_programs): faults and fork cost."""
    p = {"program": "fixture"}
    return [rec("real_programs", "real_program", p, b, "run.faults", int(1000 * _FACTOR[b]), "events",
                "exact"),
            rec("real_programs", "real_program", p, b, "fork.fork_ptes_copied", 500, "events", "exact"),
            rec("real_programs", "real_program", p, b, "metadata.total_bytes",
                int(65536 * _FACTOR[b]), "B", "exact")]


def vma_layout(rng, b):
    """The what-ifs family: linux variants beside the default, other designs refuse them."""
    out = []
    for variant, vmas in (("default", 16), ("anon_pgoff_zero", 111), ("relocate_anon", 16)):
        p = {"arenas": 16, "cycles": 64, "variant": variant}
        if b not in ("linux", "gmem") and variant != "default":
            out.append(unsupported("vma_layout", "arena_holes", p, b,
                                   f"InvalidArgument: unknown option(s) for the {b!r} design"))
            continue
        out += [rec("vma_layout", "arena_holes", p, b, "metadata.vm_area_struct.count", vmas, "objects", "exact"),
                rec("vma_layout", "arena_holes", p, b, "metadata.total_bytes", 160000 + 300 * vmas, "B",
                    "exact"),
                measured(rng, "vma_layout", "arena_holes", p, b, "churn.ns_per_cycle", 1500 * _FACTOR[b])]
        if vmas > 16:
            out.append(rec("vma_layout", "arena_holes", p, b, "churn.vma_merge_fails", vmas - 16, "events",
                           "exact"))
    return out


def make_doc(seed: int = 0, backends=BACKENDS, commit="0123456789abcdef0123456789abcdef01234567",
             families=("fault_latency", "fork_cost", "metadata_memory", "device_migration",
                       "real_programs", "vma_layout")) -> dict:
    rng = random.Random(seed)
    gen = {"fault_latency": fault_latency, "fork_cost": fork_cost,
           "metadata_memory": metadata_memory, "device_migration": device_migration,
           "real_programs": real_programs, "vma_layout": vma_layout}
    records = [r for fam in families for b in backends for r in gen[fam](rng, b)]
    return {"schema": 1,
            "machine": {"hostname": "fixture-host", "cpu": "Fixture CPU @ 3.0GHz", "cores": 2,
                        "kernel": "6.1.0-fixture", "os": "Linux", "python": "3.11.2",
                        "numpy": "2.0.0", "mmbench": "0.1.0"},
            "commit": commit, "created": "2026-11-23T18:00:00+00:00", "profile": "quick",
            "calibration": None, "notes": ["synthetic fixture for the publishing tests"],
            "records": records}


def write_asv(root):
    """Two commits of asv results (asv's format 2) for one machine under `root`."""
    m = root / "fixture-host"
    m.mkdir(parents=True)
    (m / "machine.json").write_text(json.dumps({"machine": "fixture-host", "version": 1}))
    (root / "benchmarks.json").write_text(json.dumps({
        "fork_cost.ForkGrid.time_segment": {"unit": "seconds", "param_names": ["backend"]},
        "fault_latency.SeqFirstTouch.track_estimated_ns": {"unit": "ns (estimated)", "param_names": []},
        "metadata_memory.Dense.track_metadata_bytes": {"unit": "bytes"},
        "version": 2}))
    cols = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a",
            "stats_ci_99_b", "stats_q_25", "stats_q_75"]
    for i, sha in enumerate(("a" * 40, "b" * 40)):
        data = {"commit_hash": sha, "env_name": "existing-py", "date": 1700000000000 + i,
                "params": {"machine": "fixture-host"}, "python": "3.11", "requirements": {},
                "env_vars": {}, "result_columns": cols, "durations": {}, "version": 2,
                "results": {
                    "fork_cost.ForkGrid.time_segment": [
                        [1e-3 * (1 + i), 2e-3, None], [["'linux'", "'gmem'", "'uvm'"]], "v", 0, 1.0,
                        None, None, [0.9e-3, 1.9e-3, None], [1.1e-3, 2.1e-3, None]],
                    "fault_latency.SeqFirstTouch.track_estimated_ns": [[950.0 + i], [], "v"],
                    "metadata_memory.Dense.track_metadata_bytes": [[147456 + i * 4096], [], "v"]}}
        (m / f"{sha[:8]}-existing-py.json").write_text(json.dumps(data))


def write(path, **kw) -> str:
    with open(path, "w") as f:
        json.dump(make_doc(**kw), f, indent=1)
    return str(path)


if __name__ == "__main__":
    write(sys.argv[1] if len(sys.argv) > 1 else "fixture-results.json")
