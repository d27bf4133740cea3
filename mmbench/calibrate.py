"""Host calibration: measure the host kernel, fit one price per event, check it.

``mmbench calibrate`` answers "what would this cost on real hardware?" in
three steps, all recorded in <hostname>.json of the per-user data directory
(mmbench.calibration_search says where, and how `mmbench run` finds it again):

1. **Probe** (mmbench.probe, C): timed experiments on the host kernel, each
   repeated (medians, p25/p75, MAD) after warming memory: a VM pays a large
   one-time cost the first time the guest touches a frame, which would
   otherwise land in whichever probe runs first.

2. **Fit** (FIT): each event price is a difference of two probes that differ
   by exactly that event, e.g. ``zero_fill = anon write fault - zero-page read
   fault`` (both trap and install a PTE; only the write allocates and clears a
   frame).  The formulas are written next to each price in the file.

3. **Validate** (HELD_OUT): probes that took no part in the fit (COW after a
   chain of forks, fork of many touched VMAs, shared-memory faults) are
   replayed through the linux design; its event counts priced with the fit
   must reproduce the host's measurement.  The error in percent is stored next
   to the prices and printed.  Without the linux design the validation is
   recorded as skipped, with the reason.

The model side of every probe is a *twin*: the same steps as a trace (setup,
then the timed phase), so the event counts are the design's own.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import socket
import time

import numpy as np

from mmbench import errors
from mmbench import estimate as est
from mmbench import hostcheck

#: sizes and repeats; "quick" is for tests and smoke runs (its numbers are noisy)
PROFILES = {
    "full": dict(reps=15, pages=8192, sparse=512, islands=4096, fork_pages=(0, 8192, 32768),
                 fork_vmas=(0, 2048, 8192), depth=4, memops_pages=2048, pairs=1000,
                 warm_pages=1 << 18),
    "quick": dict(reps=3, pages=256, sparse=16, islands=128, fork_pages=(0, 1024),
                  fork_vmas=(0, 256), depth=2, memops_pages=256, pairs=50, warm_pages=4096),
}


# ----------------------------------------------------------------- 1. probe
#: the statistics every figure carries; `fit` and `validate` use one of
#: STATS (its name is recorded in the file)
STATS = ("median", "min")


def _stats(per_unit: np.ndarray) -> dict:
    med = float(np.median(per_unit))
    return {"median": med,
            "p25": float(np.percentile(per_unit, 25)),
            "p75": float(np.percentile(per_unit, 75)),
            "mad": float(np.median(np.abs(per_unit - med))),
            "min": float(per_unit.min()),
            "samples": [round(float(x), 1) for x in per_unit]}


def _figure(samples, units: int, unit: str, what: str) -> dict:
    fig = {"what": what, "unit": unit, "units_per_sample": units, "reps": len(samples)}
    fig.update(_stats(np.asarray(samples, dtype=float) / units))
    return fig


def _series(samples: dict, unit: str, what: str) -> dict:
    """{x: samples} -> statistics per x; `line` fits slope and intercept."""
    xs = sorted(samples)
    per_x = [_stats(np.asarray(samples[x], dtype=float)) for x in xs]
    out = {"what": what, "unit": unit, "x": xs}
    for key in ("median", "p25", "p75", "mad", "min", "samples"):
        out[key] = [s[key] for s in per_x]
    return out


def line(series: dict, stat: str) -> tuple[float, float]:
    """(slope, intercept) of a least-squares line through the per-x `stat`."""
    slope, intercept = np.polyfit(np.asarray(series["x"], float), np.asarray(series[stat]), 1)
    return float(slope), float(intercept)


def probe_table(p: dict) -> list[tuple]:
    """(name, one-sample thunk, units per sample, unit, what) of every probe."""
    from mmbench import probe
    from mmbench.probe import _probe as P
    n, d, isl = p["pages"], p["depth"], p["islands"]
    pg, vm, call, blk = "ns/page", "ns/VMA", "ns/call", "ns/4KiB"
    rows = [
        ("anon_write_fault", lambda: P.anon_fault(n, 1, True, 1), n, pg,
         "first write to a private anonymous page"),
        ("zero_page_read_fault", lambda: P.anon_fault(n, 1, False, 1), n, pg,
         "first read of a private anonymous page"),
        ("sparse_write_fault", lambda: P.anon_fault(p["sparse"], 512, True, 1), p["sparse"], pg,
         "first write, one page per 2 MiB (each fault allocates a PTE table)"),
        ("vma_first_write_fault", lambda: P.islands_fault(isl, 1), isl, pg,
         "first write to a fresh one-page VMA (the fault also prepares its anon_vma)"),
        ("cow_copy_fault", lambda: P.cow(n, 1, 1), n, pg, "write in a forked child to pages its parent maps"),
        ("cow_reuse_fault", lambda: P.cow(n, 0, 1), n, pg, "write after the only child exited (page reused)"),
        ("cow_chain_fault", lambda: P.cow(n, d, 1), n, pg,
         f"write in the last of a chain of {d} forks to pages all ancestors map"),
        ("memfd_miss_fault", lambda: P.memfd(n, "miss", 1), n, pg,
         "first write to a shared memfd page (page-cache miss)"),
        ("memfd_hit_fault", lambda: P.memfd(n, "hit", 1), n, pg,
         "write fault on a cached shared memfd page (hit)"),
        ("memfd_read_hit_fault", lambda: P.memfd(n, "read_hit", 1), n, pg,
         "read fault on cached shared memfd pages (fault-around maps neighbours)"),
        ("munmap_exclusive", lambda: P.munmap(n, False, 1), n, pg, "munmap of touched private pages (freed)"),
        ("munmap_shared", lambda: P.munmap(n, True, 1), n, pg, "munmap of pages a child still maps (not freed)"),
        ("mprotect_present", lambda: P.mprotect(True, p["pairs"], 1), 1, call,
         "mprotect of a one-page VMA whose page is present"),
        ("mprotect_empty", lambda: P.mprotect(False, p["pairs"], 1), 1, call,
         "mprotect of a one-page VMA with no page"),
        ("user_zero_4k", lambda: P.memops(False, p["memops_pages"], 1), p["memops_pages"], blk,
         "memset of 4 KiB in user space (warm buffer)"),
        ("user_copy_4k", lambda: P.memops(True, p["memops_pages"], 1), p["memops_pages"], blk,
         "memcpy of 4 KiB in user space (warm buffers)"),
    ]
    rows.append(("fork_empty", lambda: [float(np.median(probe.fork_empty(3)))], 1, "ns/fork",
                 "fork + exit + wait by a tiny C program (an almost empty address space)"))
    for x in p["fork_pages"]:
        rows.append((f"fork_pages@{x}", lambda x=x: P.fork(x, 0, False, 1), 1, "ns/fork", ""))
    for x in p["fork_vmas"]:
        rows.append((f"fork_vmas@{x}", lambda x=x: P.fork(0, x, False, 1), 1, "ns/fork", ""))
        rows.append((f"fork_touched_vmas@{x}", lambda x=x: P.fork(0, x, True, 1), 1, "ns/fork", ""))
        rows.append((f"fork_chain_vmas@{x}", lambda x=x: P.fork_chain(x, d, 1), 1, "ns/fork", ""))
    return rows


SERIES = {"fork_pages": "fork + exit + wait versus touched private pages",
          "fork_vmas": "fork + exit + wait versus one-page VMAs never touched",
          "fork_touched_vmas": "fork + exit + wait versus one-page VMAs, each written",
          "fork_chain_vmas": "fork + exit + wait versus written one-page VMAs, by the last "
                             "process of a chain of forks"}


def run_probes(profile: str = "full", log=lambda msg: None) -> dict:
    """Every host probe of `profile`: {name: figure}.

    The probes run round-robin, one sample each per round, so a burst of load
    from other processes lands on all of them alike rather than on one.
    """
    from mmbench.probe import _probe as P
    p = PROFILES[profile]
    log(f"warming {p['warm_pages']} pages")
    P.warm(p["warm_pages"])
    table = probe_table(p)
    samples = {row[0]: [] for row in table}
    for r in range(p["reps"]):
        log(f"round {r + 1}/{p['reps']}")
        for name, thunk, *_ in table:
            samples[name].append(float(thunk()[0]))
    figs = {}
    series = {k: {} for k in SERIES}
    for name, _, units, unit, what in table:
        base, _, x = name.partition("@")
        if x:
            series[base][int(x)] = samples[name]
        else:
            figs[name] = _figure(samples[name], units, unit, what)
    for k, s in series.items():
        figs[k] = _series(s, "ns/fork", SERIES[k])
    return figs


# ------------------------------------------------------------------- 2. fit
def fit(figs: dict, stat: str = "median") -> dict:
    """{cost name: {"ns", "from", "what"}} from the probe figures' `stat`
    (docs/calibration.md derives every formula)."""
    m = {k: v[stat] for k, v in figs.items() if "x" not in v}
    s = {k: line(v, stat) for k, v in figs.items() if "x" in v}
    c = {}

    def put(name, value, formula):
        c[name] = {"ns": round(max(float(value), 0.0), 1), "from": formula,
                   "what": est.COSTS[name][0]}
        if value < 0:           # noise larger than the event: price it at 0, say so
            c[name]["clamped_from"] = round(float(value), 1)

    put("trap", m["zero_page_read_fault"], "zero_page_read_fault")
    put("zero_fill", m["anon_write_fault"] - m["zero_page_read_fault"],
        "anon_write_fault - zero_page_read_fault")
    put("pt_page", m["sparse_write_fault"] - m["anon_write_fault"],
        "sparse_write_fault - anon_write_fault")
    put("tlb_flush", m["mprotect_present"] - m["mprotect_empty"], "mprotect_present - mprotect_empty")
    put("syscall", m["mprotect_empty"], "mprotect_empty")
    put("copy", m["cow_copy_fault"] - c["trap"]["ns"] - c["tlb_flush"]["ns"],
        "cow_copy_fault - trap - tlb_flush")
    put("pte_zap", m["munmap_shared"], "munmap_shared")
    put("page_free", m["munmap_exclusive"] - m["munmap_shared"], "munmap_exclusive - munmap_shared")
    put("page_cache_hit", m["memfd_hit_fault"] - c["trap"]["ns"], "memfd_hit_fault - trap")
    put("cow_reuse", m["cow_reuse_fault"] - c["trap"]["ns"], "cow_reuse_fault - trap")
    put("pagecache_add", m["memfd_miss_fault"] - c["trap"]["ns"] - c["zero_fill"]["ns"],
        "memfd_miss_fault - trap - zero_fill")
    put("fork_pte", s["fork_pages"][0] - c["pte_zap"]["ns"], "fork_pages.slope - pte_zap")
    put("vma", s["fork_vmas"][0], "fork_vmas.slope")
    put("struct_alloc", (s["fork_touched_vmas"][0] - s["fork_vmas"][0]
                         - c["fork_pte"]["ns"] - c["pte_zap"]["ns"] - c["pt_page"]["ns"] / 256) / 3,
        "(fork_touched_vmas.slope - fork_vmas.slope - fork_pte - pte_zap - pt_page / 256) / 3"
        "   [anon_vma_fork: 1 anon_vma + 2 anon_vma_chain, freed at exit]")
    put("fork_base", m["fork_empty"], "fork_empty")
    return c


# -------------------------------------------------------------- 3. validate
def _pid_after(setup) -> int:
    from mmbench.trace import Op
    t = setup.build()
    return 1 + int(np.isin(t["op"], [int(Op.SPAWN), int(Op.FORK)]).sum())


def twin(name: str, p: dict):
    """(setup builder, timed-phase function of a TraceBuilder, units) of the
    model workload that mirrors host probe `name`."""
    from mmbench.trace import TraceBuilder
    n = p["pages"]
    s = TraceBuilder()
    pid = s.spawn()
    if name == "cow_chain_fault":
        s.mmap(pid, 0, n)
        s.write_range(pid, 0, n)
        for _ in range(p["depth"]):
            pid = s.fork(pid)
        return s, lambda t: t.write_range(pid, 0, n), n
    if name == "cow_reuse_fault":
        s.mmap(pid, 0, n)
        s.write_range(pid, 0, n)
        s.exit(s.fork(pid))
        return s, lambda t: t.write_range(pid, 0, n, value=7), n
    if name in ("memfd_miss_fault", "memfd_hit_fault"):
        s.mmap(pid, 0, n, shared=True)
        if name == "memfd_hit_fault":       # the page cache is filled, a new mapper faults
            s.write_range(pid, 0, n)
            pid = s.fork(pid)
        return s, lambda t: t.write_range(pid, 0, n), n
    if name.startswith("fork_chain_vmas:"):
        v = int(name.split(":")[1])
        for i in range(v):
            s.mmap(pid, 2 * i, 1)
            s.write(pid, 2 * i, i + 1)
        for _ in range(p["depth"]):
            pid = s.fork(pid)

        def timed(t):
            c = t.fork(pid)
            t.exit(c)
        return s, timed, 1
    raise errors.InvalidArgument(f"no model twin for probe {name!r}")


def model_events(backend: str, name: str, p: dict) -> tuple[dict, float, int]:
    """(event counts of the timed phase, its measured model ns, units) for one twin."""
    import mmbench
    from mmbench.trace import TraceBuilder
    setup, timed, units = twin(name, p)
    m = mmbench.open(backend)
    m.replay(setup.build(), timing=False, frame=False)
    t = TraceBuilder(first_pid=_pid_after(setup))
    timed(t)
    trace = t.build()
    before = est.events_of(m)
    res = m.replay(trace, timing=True, frame=False)
    if (res["status"] != 0).any():
        raise errors.InvariantViolation(f"model twin of {name} failed on {backend}")
    ev = est.diff(est.events_of(m, trace), before)
    return ev, float(res["ns"].sum()), units


#: host probes no price was fitted from: the validation set
HELD_OUT = ("cow_chain_fault", "fork_chain_vmas")


def _held_out(figs: dict, stat: str) -> list[tuple[str, str, float]]:
    """(probe, twin spec, host ns per unit) of every held-out probe; a spec
    "a|b" means the difference of twins a and b per unit of x (a slope)."""
    out = [(k, k, figs[k][stat]) for k in ("cow_chain_fault",)]
    ser = figs["fork_chain_vmas"]
    v = max(ser["x"])
    out.append(("fork_chain_vmas", f"fork_chain_vmas:{v}|fork_chain_vmas:0", line(ser, stat)[0]))
    return out


#: per-unit event counts of the held-out probes as the host kernel's code
#: path takes them (docs/calibration.md derives each line).  They separate the
#: error of the prices from the error of a design's counts: with these counts,
#: only the prices can be wrong.
KERNEL_COUNTS = {
    # wp_page_copy: one fault, one page copied, ptep_clear_flush of the old PTE
    "cow_chain_fault": {"faults": 1, "pages_copied": 1, "tlb_flushes": 1},
    # shmem_fault on a hole: one fault, a new zeroed page-cache folio, an
    # xa_node per 64 pages
    "memfd_miss_fault": {"faults": 1, "pages_zeroed": 1, "pagecache_adds": 1, "alloc:xa_node": 1 / 64},
    # per written one-page VMA of the last process of a chain of `depth` forks
    # (filled in by kernel_counts): vm_area_dup; anon_vma_fork = anon_vma_clone
    # (one anon_vma_chain per link of the VMA's chain: depth + 1) + 1 anon_vma
    # + 1 anon_vma_chain; copy_pte_range (1 PTE; a PTE table per 256 VMAs two
    # pages apart); the child's exit zaps the PTE and frees what fork made
}


def kernel_counts(probe: str, depth: int) -> dict:
    if probe == "fork_chain_vmas":
        return {"alloc:vm_area_struct": 1, "alloc:anon_vma": 1, "alloc:anon_vma_chain": depth + 2,
                "fork_ptes_copied": 1, "pt_pages_alloc": 1 / 256, "pte_zaps": 1,
                "free:vm_area_struct": 1, "free:anon_vma": 1, "free:anon_vma_chain": depth + 2}
    return KERNEL_COUNTS[probe]


def kernel_counts_check(figs: dict, costs: dict, profile: str, stat: str = "median") -> dict:
    """The held-out probes priced with the kernel's own per-unit counts."""
    cal = {"costs": costs}
    rows = []
    for probe, _, host in _held_out(figs, stat):
        e = est.estimate_ns(kernel_counts(probe, PROFILES[profile]["depth"]), cal)["events_ns"]
        rows.append({"probe": probe, "host_ns": round(host, 1), "estimated_ns": round(e, 1),
                     "error_pct": round(100.0 * (e - host) / host, 1)})
    return {"what": "held-out probes priced with the host kernel's own event counts "
                    "(KERNEL_COUNTS): the error of the prices alone",
            "worst_abs_error_pct": max(abs(r["error_pct"]) for r in rows), "probes": rows}


def validate(figs: dict, costs: dict, profile: str, backend: str = "linux",
             stat: str = "median") -> dict:
    """Estimates of the held-out probes by `backend` against the host, in percent."""
    import mmbench
    if backend not in mmbench.backends():
        return {"status": "skipped", "backend": backend,
                "reason": f"the {backend} design is not installed here "
                          f"(installed: {', '.join(mmbench.backends())})"}
    p = PROFILES[profile]
    cal = {"costs": costs}
    rows = []
    for probe, spec, host in _held_out(figs, stat):
        parts = spec.split("|")
        ev, book, units = model_events(backend, parts[0], p)
        if len(parts) == 2:      # a slope: difference of two twins per unit of x
            ev0, book0, _ = model_events(backend, parts[1], p)
            units = int(parts[0].split(":")[1])
            ev, book = est.diff(ev, ev0), book - book0
        e = est.estimate_ns(ev, cal)
        model = e["events_ns"] / units
        rows.append({"probe": probe, "host_ns": round(host, 1), "estimated_ns": round(model, 1),
                     "error_pct": round(100.0 * (model - host) / host, 1),
                     "model_bookkeeping_ns": round(book / units, 1),
                     "breakdown_ns": {k: round(v / units, 1) for k, v in e["breakdown"].items()},
                     "uncosted": e["uncosted"]})
    worst = max(abs(r["error_pct"]) for r in rows)
    return {"status": "ok", "backend": backend, "target_pct": 25.0,
            "worst_abs_error_pct": worst, "within_target": worst <= 25.0, "probes": rows}


# ------------------------------------------------------------- structures
#: host experiments whose slab deltas are recorded by --structures
STRUCT_VMAS = {"full": 16000, "quick": 200}


def _median_delta(run, reps=5) -> dict:
    """Median over `reps` of live-object deltas (other processes add noise)."""
    deltas = []
    for _ in range(reps):
        before = hostcheck.live_structs()
        with run():
            after = hostcheck.live_structs()
        deltas.append({k: after[k] - before.get(k, 0) for k in after})
    return {k: int(np.median([d[k] for d in deltas])) for k in deltas[0]}


def structures(profile: str = "full", backend: str = "linux") -> dict:
    """Host struct sizes and slab/VmPTE deltas of two probe workloads."""
    from mmbench.probe import _probe as P
    avail = hostcheck.availability()
    if avail["slabinfo"] != "ok":
        return {"status": "unavailable", "reason": avail["slabinfo"], "availability": avail}
    v = STRUCT_VMAS[profile]
    out = {"status": "ok", "availability": avail, "sizes": hostcheck.struct_sizes(), "vmas": v}
    out["map_touched_vmas"] = _median_delta(lambda: P.Islands(v, touch=True))

    base = _median_delta(P.HeldChild)               # a child copies this process
    with P.Islands(v, touch=True):                  # ... and now the VMAs too
        forked = _median_delta(P.HeldChild)
    out["fork_of_touched_vmas"] = {k: forked[k] - base[k] for k in forked}
    out["fork_of_touched_vmas_note"] = ("structs a fork adds with the VMAs mapped, minus "
                                        "those it adds without them")
    if avail["status"] == "ok":
        before = hostcheck.read_status()["VmPTE"]
        with P.Islands(v, touch=True):
            out["map_touched_vmas_vmpte_kb"] = hostcheck.read_status()["VmPTE"] - before
    out["model"] = model_structures(backend, v)
    if out["model"]["status"] == "ok":
        out["comparison"] = compare_structures(out, out["model"])
    return out


def compare_structures(host: dict, model: dict) -> list[dict]:
    """Host slab deltas against the design's counts, per workload and struct
    (slab deltas are noisy by whole slabs: expect a few percent)."""
    rows = []
    for work in ("map_touched_vmas", "fork_of_touched_vmas"):
        for struct in ("vm_area_struct", "anon_vma", "anon_vma_chain"):
            h, mo = host[work].get(struct), model[work].get(struct)
            if h is None or mo is None:
                continue
            err = round(100.0 * (mo - h) / h, 1) if h else None
            rows.append({"workload": work, "struct": struct, "host": h, "model": mo,
                         "error_pct": err})
    h, mo = host.get("map_touched_vmas_vmpte_kb"), model.get("map_touched_vmas_page_table_kb")
    if h and mo is not None:
        rows.append({"workload": "map_touched_vmas", "struct": "page tables (kB, VmPTE)",
                     "host": h, "model": mo, "error_pct": round(100.0 * (mo - h) / h, 1)})
    return rows


PT_CACHES = ("pgd", "p4d_table", "pud_table", "pmd_table", "pte_table")


def model_structures(backend: str, v: int) -> dict:
    """The design's struct counts for the same two workloads, by host cache name."""
    import mmbench
    from mmbench.trace import TraceBuilder
    if backend not in mmbench.backends():
        return {"status": "skipped", "backend": backend,
                "reason": f"the {backend} design is not installed here"}
    m = mmbench.open(backend)
    names = {model: host for host, model in hostcheck.HOST_STRUCTS.items()}

    def live():
        return {names.get(k, k): c for k, (c, _) in m.metadata().items()}
    t = TraceBuilder()
    pid = t.spawn()
    m.replay(t.build(), timing=False)
    empty = live()

    def pt_kb():
        return sum(m.metadata().get(k, (0, 0))[1] for k in PT_CACHES) // 1024
    pt_empty = pt_kb()
    t = TraceBuilder(first_pid=pid + 1)
    for i in range(v):
        t.mmap(pid, 2 * i, 1)
        t.write(pid, 2 * i, i + 1)
    m.replay(t.build(), timing=False)
    mapped = live()
    pt_mapped = pt_kb() - pt_empty
    t = TraceBuilder(first_pid=pid + 1)
    t.fork(pid)
    m.replay(t.build(), timing=False)
    forked = live()
    return {"status": "ok", "backend": backend,
            "map_touched_vmas": {k: mapped[k] - empty.get(k, 0) for k in mapped},
            "fork_of_touched_vmas": {k: forked[k] - mapped.get(k, 0) for k in forked},
            "map_touched_vmas_page_table_kb": pt_mapped}


# ---------------------------------------------------------------- the file
def machine_info() -> dict:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {"hostname": socket.gethostname(), "kernel": platform.release(),
            "kernel_version": platform.version(), "arch": platform.machine(), "cpu": cpu,
            "cpus": os.cpu_count(), "page_size": os.sysconf("SC_PAGE_SIZE")}


def calibrate(profile: str = "full", structures_too: bool = False, backend: str = "linux",
              stat: str = "median", log=lambda msg: None) -> dict:
    """Probe, fit and validate; the calibration as a dict (see docs/calibration.md)."""
    from mmbench import probe
    if profile not in PROFILES:
        raise errors.InvalidArgument(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    if stat not in STATS:
        raise errors.InvalidArgument(f"stat must be one of {STATS}, got {stat!r}")
    ok, why = probe.available()
    if not ok:
        raise errors.NotSupported(why)
    t0 = time.monotonic()
    load_before = os.getloadavg()
    figs = run_probes(profile, log)
    load_after = os.getloadavg()
    costs = fit(figs, stat)
    log("validating against the model")
    val = validate(figs, costs, profile, backend, stat)
    cal = {"format": 1, "kind": "calibration", "profile": profile, "stat": stat,
           "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "machine": machine_info(),
           "load_average": {"before": [round(x, 2) for x in load_before],
                            "after": [round(x, 2) for x in load_after],
                            "note": "other work on the host slows every probe alike; "
                                    "prices from a loaded host are high"},
           "probes": figs, "costs": costs,
           "estimate": "estimated_ns = sum(count(event) x costs[cost_of(event)].ns) "
                       "(+ measured model bookkeeping); see mmbench.estimate.COSTS",
           "validation": val, "kernel_counts_check": kernel_counts_check(figs, costs, profile, stat)}
    from mmbench import results
    cal["provenance"] = results.provenance()    # commit, dirty tree, plugin versions, THP, cpufreq
    if structures_too:
        log("host structures")
        cal["structures"] = structures(profile, backend)
    cal["elapsed_s"] = round(time.monotonic() - t0, 1)
    return cal


def default_output() -> str:
    """The per-user data directory (mmbench.calibration_search: found from any directory)."""
    from mmbench import calibration_search
    return calibration_search.default_output()


def write(cal: dict, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(cal, f, indent=1)
    os.replace(tmp, path)
    return path


def summary(cal: dict) -> str:
    lines = [f"host {cal['machine']['hostname']}: {cal['machine']['cpu']}, "
             f"Linux {cal['machine']['kernel']} ({cal['profile']} profile, {cal['stat']} of "
             f"{PROFILES[cal['profile']]['reps']} rounds, {cal['elapsed_s']} s, "
             f"load average {cal['load_average']['before'][0]} -> {cal['load_average']['after'][0]})",
             "fitted costs (ns):"]
    for k, v in cal["costs"].items():
        lines.append(f"  {k:13s} {v['ns']:10.1f}   = {v['from']}")
    val = cal["validation"]
    if val["status"] != "ok":
        lines.append(f"validation: skipped — {val['reason']}")
    else:
        lines.append(f"validation ({val['backend']} design, probes not used in the fit):")
        for r in val["probes"]:
            lines.append(f"  {r['probe']:22s} host {r['host_ns']:10.1f}  estimated "
                         f"{r['estimated_ns']:10.1f}  error {r['error_pct']:+6.1f}%")
        lines.append(f"  worst |error| {val['worst_abs_error_pct']}% (target 25%)")
    kc = cal["kernel_counts_check"]
    lines.append("prices alone (held-out probes with the kernel's own event counts):")
    for r in kc["probes"]:
        lines.append(f"  {r['probe']:22s} host {r['host_ns']:10.1f}  estimated "
                     f"{r['estimated_ns']:10.1f}  error {r['error_pct']:+6.1f}%")
    st = cal.get("structures")
    if st is not None:
        if st["status"] != "ok":
            lines.append(f"structures: not recorded — {st['reason']}")
        else:
            lines.append(f"structures: sizes {st['sizes']}")
            lines.append(f"  {st['vmas']} touched one-page VMAs: {st['map_touched_vmas']}")
            lines.append(f"  fork of them (child): {st['fork_of_touched_vmas']}")
            mod = st["model"]
            if mod["status"] != "ok":
                lines.append(f"  model: skipped — {mod['reason']}")
            else:
                lines.append(f"  {mod['backend']} design, same VMAs: {mod['map_touched_vmas']}")
                lines.append(f"  {mod['backend']} design, fork of them: {mod['fork_of_touched_vmas']}")
                for r in st["comparison"]:
                    lines.append(f"  {r['workload']:22s} {r['struct']:24s} host {r['host']:7d}  "
                                 f"{mod['backend']} {r['model']:7d}  error {r['error_pct']:+.1f}%")
    return "\n".join(lines)


def register(app) -> None:
    import typer

    @app.command("calibrate")
    def calibrate_cmd(
        output: str = typer.Option(None, "--output", "-o", help="where to write the calibration "
                                   "(default: the per-user data directory, "
                                   "~/.local/share/mmbench/calibration/<hostname>.json)"),
        structures_: bool = typer.Option(False, "--structures", help="also record host struct "
                                         "sizes and slab deltas (needs /proc/slabinfo)"),
        quick: bool = typer.Option(False, "--quick", help="small, noisy run (tests, smoke)"),
        backend: str = typer.Option("linux", help="design validated against the host"),
        stat: str = typer.Option("median", help="statistic of the repeats the prices use: "
                                 "median, or min on a host busy with other work"),
        if_missing: bool = typer.Option(False, "--if-missing", help="do nothing when a calibration "
                                        "for this host is already found (see `mmbench run --help`)"),
    ) -> None:
        """Measure the host kernel and fit per-event costs for estimated host time."""
        from mmbench import calibration_search
        from mmbench.cli import check_backend, check_output, fail
        if stat not in STATS:
            fail(f"--stat must be one of {', '.join(STATS)}, got {stat!r}")
        check_backend(backend, "--backend")
        if output:
            check_output(output)
        path = output or default_output()
        if if_missing:
            found = calibration_search.find()
            if found:
                typer.echo(found.message)
                return
        cal = calibrate("quick" if quick else "full", structures_, backend, stat,
                        log=lambda m: typer.echo(f"  probe: {m}", err=True))
        path = write(cal, path)
        typer.echo(summary(cal))
        typer.echo(f"wrote {path}")
