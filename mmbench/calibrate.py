"""Host calibration: measure the host kernel, fit one price per event, check it.

``mmbench calibrate`` answers "what would this cost on real hardware?" in
three steps, all recorded in <hostname>.json of the per-user data directory
(mmbench.calibration_search says where, and how `mmbench run` finds it again):

1. **Probe** (mmbench.probe, C): timed experiments on the host kernel, each
   repeated (medians, p25/p75, MAD) in interleaved rounds of a new random
   order, after warming memory: a VM pays a large one-time cost the first
   time the guest touches a frame, which would otherwise land in whichever
   probe runs first.  The probes time the CPU time of the work (the timing
   thread's, plus a reaped child's), so another process holding a CPU does
   not inflate a price (PROBE_CLOCKS).

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
import functools
import json
import os
import platform
import time

import numpy as np

from mmbench import errors
from mmbench import estimate as est
from mmbench import hostcheck

#: sizes and repeats; "quick" is for tests and smoke runs (its numbers are noisy)
PROFILES = {
    "full": dict(reps=15, pages=8192, sparse=512, islands=4096, fork_pages=(0, 8192, 32768),
                 fork_vmas=(0, 2048, 8192), depth=4, fit_depth=2, memops_pages=2048, pairs=1000,
                 warm_pages=1 << 18, kmalloc_sizes=(64, 512, 1024, 1536, 2048, 4048, 4096, 8000),
                 kmalloc_calls=500,
                 free_pages=32768, mremap_pages=(1024, 8192), huge=64, fork_huge=(0, 64, 256),
                 held_pages=4096, held_fork_pages=65536, held_vmas=4096, held_islands=2048,
                 held_exit_pages=65536, held_free_pages=16384, held_huge=128, held_kmalloc=3000,
                 sparse_stride=16, min_reps=15, max_reps=45, stable_spread=0.05),
    "quick": dict(reps=3, pages=256, sparse=16, islands=128, fork_pages=(0, 1024),
                  fork_vmas=(0, 256), depth=2, fit_depth=1, memops_pages=256, pairs=50,
                  warm_pages=4096,
                  kmalloc_sizes=(64, 8000), kmalloc_calls=50,
                  free_pages=256, mremap_pages=(64, 512), huge=2, fork_huge=(0, 4),
                  held_pages=256, held_fork_pages=512, held_vmas=128, held_islands=64,
                  held_exit_pages=256, held_free_pages=128, held_huge=2, held_kmalloc=1000,
                  sparse_stride=16, min_reps=3, max_reps=3, stable_spread=1.0),
}
#: forks per sample of the forkbase probes (the sample is their median): a fork of a
#: small process is short enough that one slow fork (a page table from a block the
#: VM handed back) moves a median of 3 by 10 %
FORKBASE_REPS = 7
#: exits per sample of the exit probes (the sample is their median), timed in children
#: of forkbase: a child of the Python process would also tear down its copy of that
#: process, whose size changes from round to round (0.2 to 0.8 ms on its own)
EXIT_REPS = 5
FAULT_AROUND_PAGES = hostcheck.FAULT_AROUND_PAGES
#: the clock every probe times with (mmbench.probe._probe.set_clock): "cpu", the CPU
#: time of the work (the default: another process holding a CPU does not count), or "wall"
PROBE_CLOCKS = ("cpu", "wall")
PROBE_CLOCK_WHAT = {
    "cpu": "CPU time of the timed phase (CLOCK_THREAD_CPUTIME_ID of the timing thread, plus "
           "wait4's rusage of a child reaped inside the phase): waiting for a CPU that "
           "another process holds is not counted",
    "wall": "CLOCK_MONOTONIC around the timed phase (includes waiting for a CPU)"}


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
    n, d, isl, fp_, hg = p["pages"], p["depth"], p["islands"], p["free_pages"], p["huge"]
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
        ("munmap_exclusive", lambda: P.munmap(fp_, False, 1), fp_, pg,
         "munmap of touched private pages (freed)"),
        ("munmap_shared", lambda: P.munmap(fp_, True, 1), fp_, pg,
         "munmap of pages a child still maps (not freed)"),
        ("munmap_vma_empty", lambda: P.islands_munmap(isl, False, 1), isl, vm,
         "munmap of one never-touched one-page VMA per call"),
        ("munmap_vma_touched", lambda: P.islands_munmap(isl, True, 1), isl, vm,
         "munmap of one written one-page VMA per call (its anon_vma, chain and page go)"),
        ("mprotect_present", lambda: P.mprotect(True, p["pairs"], 1), 1, call,
         "mprotect of a one-page VMA whose page is present"),
        ("mprotect_empty", lambda: P.mprotect(False, p["pairs"], 1), 1, call,
         "mprotect of a one-page VMA with no page"),
        ("mprotect_edge_split", lambda: P.mprotect_split(p["pairs"], 1, edge=True), 1, call,
         "mprotect of the first page of a two-page VMA between guard pages: one split, "
         "then one merge back"),
        ("user_zero_4k", lambda: P.memops(False, p["memops_pages"], 1), p["memops_pages"], blk,
         "memset of 4 KiB in user space (warm buffer)"),
        ("user_copy_4k", lambda: P.memops(True, p["memops_pages"], 1), p["memops_pages"], blk,
         "memcpy of 4 KiB in user space (warm buffers)"),
    ]
    hp = "ns/2MiB"
    rows += [
        ("thp_write_fault", lambda: P.thp_fault(hg, True, 1), hg, hp,
         "first write to a 2 MiB-aligned MADV_HUGEPAGE range (a new huge folio)"),
        ("thp_read_fault", lambda: P.thp_fault(hg, False, 1), hg, hp,
         "first read of a 2 MiB-aligned MADV_HUGEPAGE range (the huge zero page)"),
        ("thp_mprotect_huge", lambda: P.thp_cut(hg, True, "mprotect", 1), hg, hp,
         "mprotect of one 4 KiB page of a huge-mapped 2 MiB range (the PMD splits)"),
        ("thp_mprotect_small", lambda: P.thp_cut(hg, False, "mprotect", 1), hg, hp,
         "the same mprotect in a 2 MiB range mapped with 4 KiB pages"),
        ("thp_mprotect_huge_shared", lambda: P.thp_cut(hg, True, "mprotect", 1, shared=True), hg, hp,
         "the huge mprotect while a forked child maps the range (the folio is not "
         "AnonExclusive: the split a COW after fork takes)"),
        ("thp_mprotect_small_shared", lambda: P.thp_cut(hg, False, "mprotect", 1, shared=True),
         hg, hp, "the 4 KiB mprotect while a forked child maps the range"),
        ("thp_munmap_huge", lambda: P.thp_cut(hg, True, "munmap", 1), hg, hp,
         "munmap of one 4 KiB page of a huge-mapped 2 MiB range (split, deferred split)"),
        ("thp_munmap_small", lambda: P.thp_cut(hg, False, "munmap", 1), hg, hp,
         "the same munmap in a 2 MiB range mapped with 4 KiB pages"),
        ("thp_collapse", lambda: P.thp_collapse(hg, 1), hg, hp,
         "madvise(MADV_COLLAPSE) of a 2 MiB range written as 4 KiB pages"),
    ]
    for x in p["mremap_pages"]:
        rows.append((f"mremap_pages@{x}", lambda x=x: P.mremap(x, 1, 1), 1, "ns/call", ""))
    for x in p["fork_huge"]:            # forkbase: a small process, so the slope is clean
        rows.append((f"fork_huge@{x}", lambda x=x: [float(np.median(probe.fork_empty(FORKBASE_REPS, x)))], 1,
                     "ns/fork", ""))
    rows.append(("fork_empty", lambda: [float(np.median(probe.fork_empty(FORKBASE_REPS)))], 1, "ns/fork",
                 "fork + exit + wait by a tiny C program (an almost empty address space)"))
    for x in p["fork_pages"]:
        rows.append((f"fork_pages@{x}", lambda x=x: P.fork(x, 0, False, 1), 1, "ns/fork", ""))
    for x in p["fork_vmas"]:
        rows.append((f"fork_vmas@{x}", lambda x=x: P.fork(0, x, False, 1), 1, "ns/fork", ""))
        rows.append((f"fork_touched_vmas@{x}", lambda x=x: P.fork(0, x, True, 1), 1, "ns/fork", ""))
        rows.append((f"fork_chain_vmas@{x}", lambda x=x: P.fork_chain(x, d, 1), 1, "ns/fork", ""))
        rows.append((f"fork_chain_short_vmas@{x}", lambda x=x: P.fork_chain(x, p["fit_depth"], 1),
                     1, "ns/fork", ""))
    for x in p["kmalloc_sizes"]:
        rows.append((f"kmalloc@{x}", lambda x=x: P.kmalloc(x, p["kmalloc_calls"], 1), 1, "ns/call", ""))
    # held-out probes: validation only, no price is fitted from them
    h, hv, hi, fp = p["held_pages"], p["held_vmas"], p["held_islands"], p["held_fork_pages"]
    rows += [
        ("held:sparse_touch", lambda: P.anon_fault(h, p["sparse_stride"], True, 1), h, pg,
         f"first write, one page every {p['sparse_stride']} (a PTE table per "
         f"{512 // p['sparse_stride']} faults)"),
        ("held:munmap_vmas", lambda: P.islands_munmap(hi, True, 1), hi, vm,
         "munmap of written one-page VMAs, one call each"),
        ("held:mremap", lambda: P.mremap(h, 1, 1), h, pg,
         "mremap of touched pages to an address one page off the old one's 2 MiB phase"),
        ("held:munmap_pages", lambda: P.munmap(p["held_free_pages"], False, 1), p["held_free_pages"],
         pg, "munmap of touched private pages (a size not in the fit)"),
        (f"held:fork_huge@{p['held_huge']}",
         lambda: [float(np.median(probe.fork_empty(FORKBASE_REPS, p["held_huge"])))], 1, "ns/fork", ""),
        ("held:cow_huge", lambda: P.cow_huge(p["held_huge"], 1), p["held_huge"], hp,
         "a forked child's first write to each huge page its parent maps (split + 4 KiB copy)"),
        ("held:madvise_dontneed", lambda: P.madvise_dontneed(p["held_free_pages"], 1),
         p["held_free_pages"], pg,
         "madvise(MADV_DONTNEED) of touched private pages"),
        ("held:mprotect_split", lambda: P.mprotect_split(p["pairs"], 1), 1, call,
         "mprotect that splits a VMA in three (or merges it back)"),
        ("held:exit@1", lambda: [float(np.median(probe.exit_small(EXIT_REPS, 1)))], 1, "ns/exit",
         "exit of a child of a tiny C program (forkbase) holding one written page"),
        (f"held:exit@{p['held_exit_pages']}",
         lambda: [float(np.median(probe.exit_small(EXIT_REPS, p["held_exit_pages"])))], 1,
         "ns/exit", "exit of a child of forkbase holding that many written private pages"),
        (f"held:fork_touched@{fp}", lambda: P.fork(fp, 0, False, 1), 1, "ns/fork", ""),
        (f"held:fork_vmas@{hv}", lambda: P.fork(0, hv, False, 1), 1, "ns/fork", ""),
        (f"held:fork_memfd@{fp}", lambda: P.fork_memfd(fp, 1), 1, "ns/fork", ""),
        # the same kinds of work as some fit probes, at sizes the fit does not use
        ("held:cow_reuse", lambda: P.cow(h, 0, 1), h, pg,
         "write after the only child exited (page reused), a size not in the fit"),
        ("held:memfd_miss", lambda: P.memfd(h, "miss", 1), h, pg,
         "first write to a shared memfd page, a size not in the fit"),
        ("held:memfd_hit", lambda: P.memfd(h, "hit", 1), h, pg,
         "write fault on a cached shared memfd page, a size not in the fit"),
        ("held:memfd_read_hit", lambda: P.memfd(h, "read_hit", 1), h, pg,
         "read of cached shared memfd pages, a size not in the fit (fault-around)"),
        ("held:thp_write_fault", lambda: P.thp_fault(p["held_huge"], True, 1), p["held_huge"], hp,
         "first write to 2 MiB-aligned MADV_HUGEPAGE ranges, a count not in the fit"),
        ("held:thp_read_fault", lambda: P.thp_fault(p["held_huge"], False, 1), p["held_huge"], hp,
         "first read of 2 MiB-aligned MADV_HUGEPAGE ranges, a count not in the fit"),
        ("held:thp_dontneed", lambda: P.thp_cut(p["held_huge"], True, "dontneed", 1),
         p["held_huge"], hp, "madvise(MADV_DONTNEED) of one 4 KiB page of each huge-mapped "
         "2 MiB range (an exclusive PMD split, a deferred split)"),
        ("held:thp_collapse", lambda: P.thp_collapse(p["held_huge"], 1), p["held_huge"], hp,
         "MADV_COLLAPSE of 2 MiB ranges written as 4 KiB pages, a count not in the fit"),
        (f"held:kmalloc@{p['held_kmalloc']}",
         lambda: P.kmalloc(p["held_kmalloc"], p["kmalloc_calls"], 1), 1, "ns/call",
         "msgsnd + msgrcv of one message of a size not in the fit"),
    ]
    return rows


SERIES_UNIT = {"kmalloc": "ns/call", "mremap_pages": "ns/call"}
#: series timed by the last process of a chain of forks: the profile key of its depth
#: (recorded in the figure as "depth")
SERIES_DEPTH = {"fork_chain_vmas": "depth", "fork_chain_short_vmas": "fit_depth"}
SERIES = {"kmalloc": "msgsnd + msgrcv of one System V message versus its bytes: a kmalloc "
                     "of that size, the bytes copied in and out, a kfree","fork_pages": "fork + exit + wait versus touched private pages",
          "fork_vmas": "fork + exit + wait versus one-page VMAs never touched",
          "fork_huge": "fork + exit + wait by forkbase (a small C program) versus the written "
                       "huge pages it holds",
          "mremap_pages": "mremap of touched pages from a 2 MiB boundary to one page past "
                          "another (every PTE moves) versus pages",
          "fork_touched_vmas": "fork + exit + wait versus one-page VMAs, each written",
          "fork_chain_vmas": "fork + exit + wait versus written one-page VMAs, by the last "
                             "process of a chain of forks (held out)",
          "fork_chain_short_vmas": "fork + exit + wait versus written one-page VMAs, by the "
                                   "last process of a shorter chain of forks (fit_depth: 2 "
                                   "in the full profile; prices avc_clone)"}


@functools.lru_cache(maxsize=1)
def _sched_getcpu():
    """libc's sched_getcpu, None where there is none."""
    import ctypes
    try:
        return ctypes.CDLL(None, use_errno=True).sched_getcpu
    except (OSError, AttributeError):
        return None


def _current_cpu() -> int | None:
    """The CPU this thread runs on (sched_getcpu), None where it cannot be asked."""
    getcpu = _sched_getcpu()
    cpu = getcpu() if getcpu is not None else -1
    return cpu if cpu >= 0 else None


def _pinned(thunk):
    """`thunk()` with this process pinned to the CPU it is on (children inherit the
    pin): a probe's forked child then works on the CPU, and in the cache, its parent
    filled, as the probes timed in one process do.  Unpinned, a child woken on the
    other CPU of an idle host paid cold misses on the parent's struct pages (a
    shared THP's split, 512 of them: 7.8 against 10.5 us, the two modes of one
    quiet calibration's held:cow_huge)."""
    import os
    cpu = _current_cpu()
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return thunk()
    mask = os.sched_getaffinity(0)
    if cpu not in mask:
        return thunk()
    os.sched_setaffinity(0, {cpu})
    try:
        return thunk()
    finally:
        os.sched_setaffinity(0, mask)


def run_probes(profile: str = "full", log=lambda msg: None) -> dict:
    """Every host probe of `profile`: {name: figure}.

    The probes run round-robin, one sample each per round, in a new random order
    every round, so a burst of load from other processes, or what one probe leaves
    behind, lands on all of them alike rather than on one.
    """
    from mmbench.probe import _probe as P
    p = PROFILES[profile]
    log(f"warming {p['warm_pages']} pages, as 4 KiB and as huge pages")
    P.warm(p["warm_pages"])
    P.warm_huge(p["warm_pages"])
    table = probe_table(p)
    samples = {row[0]: [] for row in table}
    units_of = {row[0]: row[2] for row in table}
    vm = {row[0]: [] for row in table if _is_thp(row[0])}
    rounds, stable = 0, None
    rng = np.random.default_rng(0)
    while True:
        rounds += 1
        log(f"round {rounds}")
        # a new order every round: what one probe leaves behind (a compaction, a
        # khugepaged scan, freed blocks the VM hands back) lands on a different
        # probe each time, as noise the medians absorb, not as a bias of one probe
        for i in rng.permutation(len(table)):
            name, thunk = table[i][0], table[i][1]
            if name in vm:
                before = thp_vmstat()
                samples[name].append(float(_pinned(thunk)[0]))
                after = thp_vmstat()
                vm[name].append({k: (after[k] - before.get(k, 0)) / units_of[name] for k in after})
            else:
                samples[name].append(float(_pinned(thunk)[0]))
        if rounds < max(p["reps"], p.get("min_reps", 0)):
            continue
        spread = {k: _rel_spread(v) for k, v in samples.items()}
        worst = max(spread, key=spread.get)
        stable = spread[worst] <= p.get("stable_spread", 1.0)
        if stable or rounds >= p.get("max_reps", p["reps"]):
            break
        log(f"  not yet stable: the median of {worst} is known to ±{spread[worst]:.1%} "
            f"(wanted {p['stable_spread']:.0%}); another round")
    figs = {}
    series = {k: {} for k in SERIES}
    for name, _, units, unit, what in table:
        base, _, x = name.partition("@")
        if x and base in series:
            series[base][int(x)] = samples[name]
        else:
            figs[name] = _figure(samples[name], units, unit, what)
    for k, s in series.items():
        figs[k] = _series(s, SERIES_UNIT.get(k, "ns/fork"), SERIES[k])
    for k, key in SERIES_DEPTH.items():     # the chains' depths: the fit divides by one
        if k in figs:
            figs[k]["depth"] = p[key]
    for name, deltas in vm.items():
        if name in figs and deltas and deltas[0]:
            figs[name]["host_vmstat_per_unit"] = {
                k: round(float(np.median([d.get(k, 0) for d in deltas])), 3)
                for k in sorted(deltas[0]) if any(d.get(k, 0) for d in deltas)}
    spread = {k: round(_rel_spread(v), 3) for k, v in samples.items()}
    worst = max(spread, key=spread.get)
    figs["_stability"] = {"rounds": rounds, "stable": bool(stable), "target": p.get("stable_spread"),
                          "worst_probe": worst, "worst_spread": spread[worst],
                          "what": "relative standard error of every probe's median over the "
                                  "rounds (IQR-based); rounds are added until the worst is at "
                                  "most the target, or max_reps rounds ran"}
    return figs


def _is_thp(name: str) -> bool:
    return name.startswith(("thp_", "held:thp_", "held:fork_huge", "held:cow_huge"))


def thp_vmstat() -> dict:
    """The host's thp_* event counters (/proc/vmstat), {} where unreadable: each
    huge-page probe records the events it provoked per unit, so the file shows
    that a "huge fault" was one (thp_fault_alloc 1.0), a split split, etc."""
    try:
        with open("/proc/vmstat") as f:
            return {k: int(v) for k, v in (ln.split() for ln in f) if k.startswith("thp_")}
    except (OSError, ValueError):
        return {}


def _rel_spread(v) -> float:
    """Relative standard error of the median of samples `v`: (IQR / 1.349) x 1.2533 /
    sqrt(n) / median, robust to the outliers a busy host throws in.  It shrinks as
    rounds are added, so "repeat until it is small" ends when the median is pinned."""
    v = np.asarray(v, float)
    med = float(np.median(v))
    if med <= 0 or len(v) < 2:
        return 0.0
    iqr = float(np.percentile(v, 75) - np.percentile(v, 25))
    return iqr / 1.349 * 1.2533 / np.sqrt(len(v)) / med


# ------------------------------------------------------------------- 2. fit
def fit(figs: dict, stat: str = "median") -> dict:
    """{cost name: {"ns", "from", "what"}} from the probe figures' `stat`
    (docs/calibration.md derives every formula)."""
    m = {k: v[stat] for k, v in figs.items() if "x" not in v and stat in v}
    s = {k: line(v, stat) for k, v in figs.items() if "x" in v}
    thp_units = figs.get("thp_write_fault", {}).get("units_per_sample", 1)
    c = {}

    def put(name, value, formula):
        c[name] = {"ns": _round(max(float(value), 0.0)), "from": formula,
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
    if "memfd_read_hit_fault" in m:
        put("fault_around_page", (FAULT_AROUND_PAGES * m["memfd_read_hit_fault"] - c["trap"]["ns"]
                                  - c["page_cache_hit"]["ns"]) / (FAULT_AROUND_PAGES - 1),
            f"({FAULT_AROUND_PAGES} x memfd_read_hit_fault - trap - page_cache_hit) / "
            f"{FAULT_AROUND_PAGES - 1}   [the probe reads every cached page; one read fault in "
            f"{FAULT_AROUND_PAGES} maps its 64 KiB window: the faulting page and "
            f"{FAULT_AROUND_PAGES - 1} more]")
    put("pagecache_add", m["memfd_miss_fault"] - c["trap"]["ns"] - c["zero_fill"]["ns"],
        "memfd_miss_fault - trap - zero_fill")
    put("fork_pte", s["fork_pages"][0] - c["pte_zap"]["ns"], "fork_pages.slope - pte_zap")
    put("vma", s["fork_vmas"][0], "fork_vmas.slope")
    # what fork + exit adds per VMA once it is written: its PTE copied and zapped, and
    # anon_vma_fork's structs: 1 anon_vma + its own chain + 1 chain cloned into the
    # parent's anon_vma (anon_vma_clone), all freed at exit
    structs = (s["fork_touched_vmas"][0] - s["fork_vmas"][0] - c["fork_pte"]["ns"]
               - c["pte_zap"]["ns"] - c["pt_page"]["ns"] / 256)
    touched = ("fork_touched_vmas.slope - fork_vmas.slope - fork_pte - pte_zap - "
               "pt_page / 256")
    k = figs.get("fork_chain_short_vmas", {}).get("depth")
    if "fork_chain_short_vmas" in s and k:
        # each process more in the chain above the forking one puts one more anon_vma
        # on its VMA's chain, so its fork clones one more chain per VMA (and its
        # child's exit unlinks one more): the slope's growth over fork_touched_vmas
        # is k cloned chains
        put("avc_clone", (s["fork_chain_short_vmas"][0] - s["fork_touched_vmas"][0]) / k,
            f"(fork_chain_short_vmas.slope - fork_touched_vmas.slope) / {k}   [the last "
            f"process of a chain of k = {k} forks has k anon_vmas more on each VMA's chain "
            "than the probe process: anon_vma_clone links k chains more per VMA into "
            "ancestors' anon_vmas, and unlink_anon_vmas removes them at exit]")
        put("struct_alloc", (structs - c["avc_clone"]["ns"]) / 2,
            f"({touched} - avc_clone) / 2   [anon_vma_fork: 1 anon_vma + its own "
            "anon_vma_chain, freed at exit; the chain cloned into the parent's anon_vma is "
            "avc_clone]")
    else:               # a file from before the chain fit: every chain a struct_alloc
        put("struct_alloc", structs / 3,
            f"({touched}) / 3   [anon_vma_fork: 1 anon_vma + 2 anon_vma_chain, freed at exit]")
    put("fork_base", m["fork_empty"], "fork_empty")
    half = est.LIFETIME_SHARE
    if "mprotect_edge_split" in m:
        put("vma_modify", m["mprotect_edge_split"] - c["syscall"]["ns"]
            - half * c["vma"]["ns"],
            "mprotect_edge_split - syscall - vma / 2   [each call splits the VMA in two or "
            "merges it back: one call's tree update; the VMA made or freed pays its half "
            "of vma]")
    if "munmap_vma_empty" in m:
        put("munmap_call", m["munmap_vma_empty"] - est.LIFETIME_SHARE * c["vma"]["ns"],
            "munmap_vma_empty - vma / 2   [a munmap call: the VMA tree update, the unmap "
            "and free_pgtables walk, the TLB gather; the freed VMA pays its half of vma]")
    if "munmap_vma_touched" in m and "munmap_vma_empty" in m:
        put("munmap_vma", m["munmap_vma_touched"] - m["munmap_vma_empty"] - c["pte_zap"]["ns"]
            - c["page_free"]["ns"] - c["tlb_flush"]["ns"] - 2 * half * c["struct_alloc"]["ns"],
            "munmap_vma_touched - munmap_vma_empty - pte_zap - page_free - tlb_flush - "
            "struct_alloc   [a written one-page VMA's munmap beyond an empty one's: its PTE, "
            "page and flush, and half the lifetimes of its anon_vma and anon_vma_chain, "
            "as fork + exit price them; the rest is munmap's own teardown]")
    if "mremap_pages" in s:
        slope, icpt = s["mremap_pages"]
        put("pte_move", slope - c["pt_page"]["ns"] / 512,
            "mremap_pages.slope - pt_page / 512   [move_ptes: one PTE cleared and set at the "
            "new address; the destination gets a PTE table per 512 pages]")
        put("mremap_call", icpt - c["vma"]["ns"] - c["tlb_flush"]["ns"],
            "mremap_pages.intercept - vma - tlb_flush   [a mremap call: copy_vma makes the new "
            "VMA and the old one is unmapped (a VMA lifetime), one flush of the moved range]")
    if "thp_write_fault" in m:
        hg = thp_units
        put("thp_fault_alloc", m["thp_write_fault"] - c["trap"]["ns"] - c["pt_page"]["ns"]
            - c["struct_alloc"]["ns"] / hg,
            f"thp_write_fault - trap - pt_page - struct_alloc / {hg}   [do_huge_pmd_anonymous_page: "
            "allocate a PMD-sized folio, clear its 2 MiB, map it with one PMD; the deposited "
            f"PTE table is pt_page, the mapping's anon_vma is shared by its {hg} faults]")
        put("thp_zero_page_map", m["thp_read_fault"] - c["trap"]["ns"] - c["pt_page"]["ns"],
            "thp_read_fault - trap - pt_page   [map the huge zero folio with one PMD, beyond "
            "the trap and the deposited PTE table]")
        split_excl = m["thp_mprotect_huge"] - m["thp_mprotect_small"] - c["tlb_flush"]["ns"]
        if "thp_mprotect_huge_shared" in m:
            put("thp_split_pmd", m["thp_mprotect_huge_shared"] - m["thp_mprotect_small_shared"]
                - c["tlb_flush"]["ns"],
                "thp_mprotect_huge_shared - thp_mprotect_small_shared - tlb_flush   "
                "[__split_huge_pmd of a folio a forked child maps too: the deposited table "
                "takes 512 PTEs, the folio's mapcounts move to the pages; pmdp_invalidate's "
                "flush is priced by tlb_flush]")
            put("thp_split_exclusive", split_excl - c["thp_split_pmd"]["ns"],
                "thp_mprotect_huge - thp_mprotect_small - tlb_flush - thp_split_pmd   [the "
                "same split of an AnonExclusive folio: RMAP_EXCLUSIVE marks each of its 512 "
                "pages AnonExclusive]")
        else:                           # a file from before the shared probes
            put("thp_split_pmd", split_excl, "thp_mprotect_huge - thp_mprotect_small - tlb_flush")
        excl = c.get("thp_split_exclusive", {"ns": 0.0})["ns"]
        put("thp_deferred_split_page", m["thp_munmap_huge"] - m["thp_munmap_small"]
            - c["thp_split_pmd"]["ns"] - excl - c["tlb_flush"]["ns"] + c["page_free"]["ns"],
            "thp_munmap_huge - thp_munmap_small - thp_split_pmd - thp_split_exclusive - tlb_flush "
            "+ page_free   "
            "[deferred_split_folio queues the partly mapped folio; the 4 KiB run frees its "
            "page, the huge one frees nothing yet]")
        if "fork_huge" in s:
            put("thp_copy_pmd", s["fork_huge"][0] - c["fork_pte"]["ns"] - c["pte_zap"]["ns"],
                "fork_huge.slope - fork_pte - pte_zap   [copy_huge_pmd: the PMD entry, the PTE "
                "table allocated and deposited for the child (not priced again as pt_page), the "
                "folio's subpages visited; zap_huge_pmd at the child's exit]")
        put("thp_collapse_alloc", m["thp_collapse"],
            "thp_collapse   [all of MADV_COLLAPSE for one 2 MiB range: allocate the huge folio, "
            "copy the 512 pages in, free them, install the PMD]")
    if "kmalloc" in s:
        put("kmalloc_byte", s["kmalloc"][0] / 2,
            "kmalloc.slope / 2   [the message is copied in and out; an allocation that is "
            "initialised passes over its bytes once]")
        c["kmalloc_byte"]["curve"] = kmalloc_curve(figs["kmalloc"], stat)
    return c


def kmalloc_curve(series: dict, stat: str) -> dict:
    """The size-dependent part of one allocation at each measured size: (kmalloc(x) -
    kmalloc(0)) / 2, kmalloc(0) the first segment extrapolated to 0 bytes (the message
    is copied in and out: half is the allocation and one pass over its bytes).  The
    host's cost is not linear in the size (steep to ~1.5 KiB, nearly flat to 4 KiB, a
    second allocation above 4,048 bytes), so the estimator reads this curve at a
    cache's mean allocation size (estimate.per_byte) instead of a line's slope."""
    xs = [float(x) for x in series["x"]]
    ys = [float(y) for y in series[stat]]
    if len(xs) > 1 and xs[1] > xs[0]:
        y0 = ys[0] - (ys[1] - ys[0]) / (xs[1] - xs[0]) * xs[0]
    else:
        y0 = ys[0]
    return {"bytes": [int(x) for x in xs], "ns": [round(max((y - y0) / 2, 0.0), 1) for y in ys],
            "what": "ns of one allocation's size-dependent part at each measured size: "
                    "(kmalloc(bytes) - kmalloc(0)) / 2, linear between the sizes"}


def _round(v: float) -> float:
    """0.1 ns for prices of whole events; four decimals for sub-ns ones (per byte)."""
    return round(v, 1) if abs(v) >= 10 else round(v, 4)


def _resampled(figs: dict, idx: np.ndarray, stat: str) -> dict:
    """The figures with `stat` recomputed over rounds `idx` (a bootstrap replicate)."""
    fn = np.median if stat == "median" else np.min
    out = {}
    for k, v in figs.items():
        if "samples" not in v:
            continue
        if "x" in v:
            out[k] = {"x": v["x"], stat: [float(fn(np.asarray(sm)[idx])) for sm in v["samples"]]}
            if "depth" in v:
                out[k]["depth"] = v["depth"]
        else:
            out[k] = {stat: float(fn(np.asarray(v["samples"])[idx])),
                      "units_per_sample": v.get("units_per_sample", 1)}
    return out


def intervals(figs: dict, stat: str = "median", n: int = 300, seed: int = 0,
              level: float = 0.90) -> dict:
    """{cost: (low, high)}: the `level` bootstrap interval of every fitted price.

    The rounds are resampled jointly (a round ran every probe once, so a burst
    of load stays together), the prices refitted, and the percentiles taken."""
    reps = min(len(v["samples"]) if "x" not in v else min(len(sm) for sm in v["samples"])
               for v in figs.values() if "samples" in v)
    rng = np.random.default_rng(seed)
    draws: dict[str, list] = {}
    curves: dict[str, list] = {}
    for _ in range(n):
        idx = rng.integers(0, reps, reps)
        for name, c in fit(_resampled(figs, idx, stat), stat).items():
            draws.setdefault(name, []).append(c["ns"])
            if "curve" in c:
                curves.setdefault(name, []).append(c["curve"]["ns"])
    q = (100 * (1 - level) / 2, 100 * (1 + level) / 2)
    out = {k: (float(np.percentile(v, q[0])), float(np.percentile(v, q[1]))) for k, v in draws.items()}
    for k, v in curves.items():             # a curve's interval, size by size
        a = np.asarray(v, float)
        out[f"{k}.curve"] = (np.percentile(a, q[0], axis=0).tolist(),
                             np.percentile(a, q[1], axis=0).tolist())
    return out


def fit_with_intervals(figs: dict, stat: str = "median") -> dict:
    """fit() plus each price's bootstrap interval as "low" / "high"."""
    costs = fit(figs, stat)
    for name, (lo, hi) in intervals(figs, stat).items():
        base, _, part = name.partition(".")
        if part == "curve" and "curve" in costs.get(base, {}):
            cv = costs[base]["curve"]
            cv["low"] = [round(min(a, b), 1) for a, b in zip(lo, cv["ns"])]
            cv["high"] = [round(max(a, b), 1) for a, b in zip(hi, cv["ns"])]
        elif name in costs:
            costs[name]["low"] = _round(min(lo, costs[name]["ns"]))
            costs[name]["high"] = _round(max(hi, costs[name]["ns"]))
    return costs


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
    base, _, arg = name.partition(":")
    if base in ("cow_reuse_fault", "memfd_miss_fault", "memfd_hit_fault", "memfd_read_hit_fault"):
        n = int(arg) if arg else n
    if base == "cow_reuse_fault":
        s.mmap(pid, 0, n)
        s.write_range(pid, 0, n)
        s.exit(s.fork(pid))
        return s, lambda t: t.write_range(pid, 0, n, value=7), n
    if base in ("memfd_miss_fault", "memfd_hit_fault", "memfd_read_hit_fault"):
        s.mmap(pid, 0, n, shared=True)
        if base != "memfd_miss_fault":       # the page cache is filled, a new mapper faults
            s.write_range(pid, 0, n)
            pid = s.fork(pid)
        if base == "memfd_read_hit_fault":   # one read per page, fault-around maps the rest
            return s, lambda t: t.read_range(pid, 0, n), n
        return s, lambda t: t.write_range(pid, 0, n), n
    k = int(arg) if arg else 0
    if base == "fork_chain_vmas" and arg:
        v = k
        for i in range(v):
            s.mmap(pid, 2 * i, 1)
            s.write(pid, 2 * i, i + 1)
        for _ in range(p["depth"]):
            pid = s.fork(pid)

        def timed(t):
            c = t.fork(pid)
            t.exit(c)
        return s, timed, 1
    h = p.get("held_pages", n)
    if base in ("fork_pages", "fork_vmas", "fork_memfd"):
        if base == "fork_pages" and k:
            s.mmap(pid, 0, k)
            s.write_range(pid, 0, k)
        elif base == "fork_memfd" and k:
            s.mmap(pid, 0, k, shared=True)
            s.write_range(pid, 0, k)
        elif base == "fork_vmas":
            for i in range(k):
                s.mmap(pid, 2 * i, 1)

        def timed(t):
            t.exit(t.fork(pid))
        return s, timed, 1
    if base == "exit":
        s.mmap(pid, 0, k)
        s.write_range(pid, 0, k)
        return s, lambda t: t.exit(pid), 1
    if base == "sparse_touch":
        st = p["sparse_stride"]
        s.mmap(pid, 0, h * st)
        return s, lambda t: t.write_range(pid, 0, h * st, step=st), h
    if base in ("munmap_vmas", "islands_fault"):
        v = p["held_islands"] if base == "munmap_vmas" else p["islands"]
        for i in range(v):
            s.mmap(pid, 2 * i, 1)
            if base == "munmap_vmas":
                s.write(pid, 2 * i, i + 1)

        def timed(t):
            for i in range(v):
                (t.munmap(pid, 2 * i, 1) if base == "munmap_vmas" else t.write(pid, 2 * i, i + 1))
        return s, timed, v
    if base in ("mremap", "madvise_dontneed", "munmap_pages"):
        k = h if base == "mremap" else p["held_free_pages"]
        s.mmap(pid, 0, k)
        s.write_range(pid, 0, k)
        if base == "mremap":            # as the host probe: one page off the 2 MiB phase
            return s, lambda t: t.mremap(pid, 0, k, (1 << 20) + 1), k
        if base == "munmap_pages":
            return s, lambda t: t.munmap(pid, 0, k), k
        return s, lambda t: t.madvise_dontneed(pid, 0, k), k
    if base in ("thp_write_fault", "thp_read_fault"):
        from mmbench import Advice
        hg = p["held_huge"]
        s.mmap(pid, 0, 512 * hg)
        s.madvise(pid, 0, 512 * hg, Advice.HUGEPAGE)
        if base == "thp_write_fault":
            return s, lambda t: t.write_range(pid, 0, 512 * hg, step=512), hg
        return s, lambda t: t.read_range(pid, 0, 512 * hg, step=512), hg
    if base in ("fork_huge", "cow_huge", "thp_dontneed"):
        from mmbench import Advice
        hg = p["held_huge"]
        s.mmap(pid, 0, 512 * hg)
        s.madvise(pid, 0, 512 * hg, Advice.HUGEPAGE)
        s.write_range(pid, 0, 512 * hg, step=512)
        if base == "thp_dontneed":      # as the host probe: the page at offset 256 of each
            return s, lambda t: [t.madvise_dontneed(pid, 512 * i + 256, 1) for i in range(hg)], hg
        if base == "cow_huge":
            child = s.fork(pid)
            return s, lambda t: t.write_range(child, 0, 512 * hg, step=512, value=7), hg

        def timed(t):
            t.exit(t.fork(pid))
        return s, timed, 1
    if base == "mprotect_split":
        s.mmap(pid, 0, 3)

        def timed(t):
            t.mprotect(pid, 1, 1, False)
            t.mprotect(pid, 1, 1, True)
        return s, timed, 2
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


#: host probes no price was fitted from: the validation set.  Each entry:
#: probe -> (what it exercises, model twin, twin subtracted or None,
#:           host ns per unit from the figures, units of the twin difference)
def _v(figs, name, stat):
    return figs[name][stat]


def _x0(figs, series, stat):
    """The value of a series at x = 0 (the fork of the probe process itself)."""
    ser = figs[series]
    return ser[stat][list(ser["x"]).index(0)]


def _held(what: str, twin: str, units, key: str | None = None) -> tuple:
    """A held-out probe whose host figure is the value `key` (default "held:<twin>")
    and whose twin is `twin` alone, over `units` (a profile key, or a number)."""
    key = f"held:{twin}" if key is None else key
    return (what,
            lambda p: (twin, None, p[units] if isinstance(units, str) else units),
            lambda f, s, p: _v(f, key, s))


def _held_per_unit(what: str, twin: str, base: str, param: str, held: str, x0: str) -> tuple:
    """A held-out probe timed at N = p[param] units less the x = 0 point of series
    `x0`, per unit; its twin is "<twin>:N" less `base`."""
    return (what,
            lambda p: (f"{twin}:{p[param]}", base, p[param]),
            lambda f, s, p: (_v(f, f"held:{held}@{p[param]}", s) - _x0(f, x0, s)) / p[param])


HELD_OUT_SPEC = {
    "cow_chain_fault": _held("COW deep in a fork chain: trap + copy + tlb_flush",
                             "cow_chain_fault", "pages", key="cow_chain_fault"),
    "fork_chain_vmas": ("fork of written VMAs of a chain's last process: vma + struct_alloc "
                        "x 2 + avc_clone x (depth + 1) + fork_pte + pte_zap (a fit without "
                        "avc_clone: struct_alloc x (depth + 3))",
                        lambda p: (f"fork_chain_vmas:{max(p['fork_vmas'])}", "fork_chain_vmas:0",
                                   max(p["fork_vmas"])),
                        lambda f, s, p: line(f["fork_chain_vmas"], s)[0]),
    "fork_touched_pages": _held_per_unit("fork of N touched pages (size not in the fit): fork_pte "
                                         "+ pte_zap + pt_page",
                                         "fork_pages", "fork_pages:0", "held_fork_pages",
                                         "fork_touched", "fork_pages"),
    "fork_untouched_vmas": _held_per_unit("fork of M untouched VMAs (count not in the fit): vma",
                                          "fork_vmas", "fork_vmas:0", "held_vmas",
                                          "fork_vmas", "fork_vmas"),
    "fork_memfd": _held_per_unit("fork of written shared memfd pages, per page: no PTE is copied "
                                 "(error relative to a private fork's cost per page)",
                                 "fork_memfd", "fork_pages:0", "held_fork_pages",
                                 "fork_memfd", "fork_pages"),
    "munmap_vmas": _held("munmap of written one-page VMAs: munmap_call + munmap_vma + vma + "
                         "structs + pte_zap + page_free + tlb_flush", "munmap_vmas",
                         "held_islands"),
    "mremap_populated": _held("mremap of a populated range, one page off its 2 MiB phase: "
                              "mremap_call + vma + pte_move + pt_page + tlb_flush",
                              "mremap", "held_pages"),
    "munmap_pages": _held("munmap of K touched pages (a size not in the fit): munmap_call + "
                          "pte_zap + page_free + tlb_flush + page tables",
                          "munmap_pages", "held_free_pages"),
    "fork_huge_pmds": _held_per_unit("fork of huge-mapped memory by a small process, per 2 MiB "
                                     "(copy_huge_pmd + zap_huge_pmd at the child's exit)",
                                     "fork_huge", "fork_pages:0", "held_huge",
                                     "fork_huge", "fork_huge"),
    "cow_huge": _held("COW of a huge page after fork, per 2 MiB: trap + thp_split_pmd + "
                      "tlb_flush x 2 + copy (one 4 KiB page)", "cow_huge", "held_huge"),
    "madvise_dontneed": _held("madvise(DONTNEED): syscall + pte_zap + page_free + tlb_flush",
                              "madvise_dontneed", "held_free_pages"),
    "mprotect_split": _held("mprotect splitting a VMA in three and merging it back: syscall + "
                            "vma_modify + vma",
                            "mprotect_split", 2),
    "exit_large": ("exit of a process with N written pages: pte_zap + page_free + pt pages",
                   lambda p: (f"exit:{p['held_exit_pages']}", "exit:1", p["held_exit_pages"] - 1),
                   lambda f, s, p: (_v(f, f"held:exit@{p['held_exit_pages']}", s)
                                    - _v(f, "held:exit@1", s)) / (p["held_exit_pages"] - 1)),
    "sparse_touch": _held("first write to sparse pages: trap + zero_fill + pt_page per PTE table",
                          "sparse_touch", "held_pages"),
    "vma_first_write_fault": _held("first write to fresh one-page VMAs: trap + zero_fill + "
                                   "struct_alloc (anon_vma, anon_vma_chain) + pt_page",
                                   "islands_fault", "islands", key="vma_first_write_fault"),
    "fork_small_process": ("fork + exit + wait of a small C program holding N huge pages, the "
                           "whole fork: fork_base + vma + N x (copy_huge_pmd + zap_huge_pmd)",
                           lambda p: ("fork_huge", None, 1),
                           lambda f, s, p: _v(f, f"held:fork_huge@{p['held_huge']}", s)),
    "reuse_after_exit": ("write after the only child exited, a size not in the fit: trap + cow_reuse",
                  lambda p: (f"cow_reuse_fault:{p['held_pages']}", None, p["held_pages"]),
                  lambda f, s, p: _v(f, "held:cow_reuse", s)),
    "memfd_first_write": ("first write to a shared memfd page, a size not in the fit: trap + "
                   "zero_fill + pagecache_add (+ xa_node)",
                   lambda p: (f"memfd_miss_fault:{p['held_pages']}", None, p["held_pages"]),
                   lambda f, s, p: _v(f, "held:memfd_miss", s)),
    "memfd_read_refault": ("read of cached memfd pages, a size not in the fit: per 16 pages, "
                           "trap + page_cache_hit + 15 x fault_around_page",
                           lambda p: (f"memfd_read_hit_fault:{p['held_pages']}", None,
                                      p["held_pages"]),
                           lambda f, s, p: _v(f, "held:memfd_read_hit", s)),
    "memfd_refault": ("write fault on a cached memfd page, a size not in the fit: trap + "
                  "page_cache_hit",
                  lambda p: (f"memfd_hit_fault:{p['held_pages']}", None, p["held_pages"]),
                  lambda f, s, p: _v(f, "held:memfd_hit", s)),
    "huge_first_write": _held("first write to an aligned MADV_HUGEPAGE range, a count not in the "
                             "fit: trap + pt_page + thp_fault_alloc + the anon_vma's share",
                             "thp_write_fault", "held_huge"),
    "huge_first_read": _held("first read of an aligned MADV_HUGEPAGE range, a count not in the "
                            "fit: trap + pt_page + thp_zero_page_map",
                            "thp_read_fault", "held_huge"),
    "huge_dontneed": _held("MADV_DONTNEED of one 4 KiB page of a huge-mapped range: syscall + "
                          "thp_split_pmd + thp_split_exclusive + tlb_flush + pte_zap + "
                          "thp_deferred_split_page", "thp_dontneed", "held_huge"),
    # no design runs these two through a trace (the contract has no MADV_COLLAPSE and no
    # System V messages): the host kernel's own counts are priced instead
    "huge_collapse": ("MADV_COLLAPSE of a 2 MiB range, a count not in the fit: "
                     "thp_collapse_alloc (the kernel's counts)",
                     lambda p: ({"thp_collapse_alloc": 1}, None, 1),
                     lambda f, s, p: _v(f, "held:thp_collapse", s)),
    "kmalloc_sized": ("msgsnd + msgrcv of a message of a size not in the fit, beyond the "
                      "smallest fitted one: 2 allocations' size-dependent part at that size "
                      "less at the smallest, from the kmalloc curve (the kernel's counts)",
                      lambda p: (_msg_events(p["held_kmalloc"]),
                                 _msg_events(min(p["kmalloc_sizes"])), 1),
                      lambda f, s, p: (_v(f, f"held:kmalloc@{p['held_kmalloc']}", s)
                                       - f["kmalloc"][s][list(f["kmalloc"]["x"]).index(
                                           min(p["kmalloc_sizes"]))])),
}
HELD_OUT = tuple(HELD_OUT_SPEC)


def _msg_events(nbytes: int) -> dict:
    """The kernel's counts of one msgsnd + msgrcv of `nbytes`, as the estimator prices
    them: the message allocated, its bytes passed over twice (copied in and out)."""
    return {"alloc:msg_msg": 2, "alloc_bytes:msg_msg": 2 * nbytes}
#: probes whose host value is close to 0 by design: their error is stated relative
#: to another probe's host value (a private fork's cost per page)
ERROR_SCALE = {"fork_memfd": "fork_touched_pages"}


def _held_out(figs: dict, stat: str, profile: str = "full") -> list[tuple]:
    """(probe, twin, twin subtracted or None, units, host ns per unit) of every held-out probe."""
    p = PROFILES[profile]
    out = []
    for probe, (_what, tw, host) in HELD_OUT_SPEC.items():
        a, b, units = tw(p)
        out.append((probe, a, b, units, float(host(figs, stat, p))))
    return out


#: per-unit event counts of the held-out probes as the host kernel's code
#: path takes them (docs/calibration.md derives each line).  They separate the
#: error of the prices from the error of a design's counts: with these counts,
#: only the prices can be wrong.
KERNEL_COUNTS = {
    # copy_huge_pmd (one PMD entry copied, a PTE table allocated and deposited,
    # the subpages visited) and zap_huge_pmd at the child's exit
    "fork_huge_pmds": {"fork_ptes_copied": 1, "pt_pages_alloc": 1, "thp_copy_pmd": 1,
                       "pte_zaps": 1},   # the deposited table is inside thp_copy_pmd (NET)
    # do_huge_pmd_wp_page on a shared folio: __split_huge_pmd (one flush), then
    # wp_page_copy of the one 4 KiB page (a second flush)
    "cow_huge": {"faults": 1, "thp_split_pmd": 1, "tlb_flushes": 2, "pages_copied": 1},
    # wp_page_copy: one fault, one page copied, ptep_clear_flush of the old PTE
    "cow_chain_fault": {"faults": 1, "pages_copied": 1, "tlb_flushes": 1},
    # shmem_fault on a hole: one fault, a new zeroed page-cache folio, an
    # xa_node per 64 pages
    "memfd_miss_fault": {"faults": 1, "pages_zeroed": 1, "pagecache_adds": 1, "alloc:xa_node": 1 / 64},
    # per written one-page VMA of the last process of a chain of `depth` forks
    # (filled in by kernel_counts): vm_area_dup; anon_vma_fork = anon_vma_clone
    # (one anon_vma_chain per link of the VMA's chain: depth + 1, the estimator's
    # cloned_avc_alloc) + 1 anon_vma + 1 anon_vma_chain; copy_pte_range (1 PTE; a
    # PTE table per 256 VMAs two pages apart); the child's exit zaps the PTE and
    # frees what fork made
}


def kernel_counts(probe: str, depth: int) -> dict:
    if probe == "fork_chain_vmas":
        return {"alloc:vm_area_struct": 1, "alloc:anon_vma": 1, "alloc:anon_vma_chain": depth + 2,
                "fork_ptes_copied": 1, "pt_pages_alloc": 1 / 256, "pte_zaps": 1,
                "free:vm_area_struct": 1, "free:anon_vma": 1, "free:anon_vma_chain": depth + 2}
    return KERNEL_COUNTS[probe]


def kernel_counts_check(figs: dict, costs: dict, profile: str, stat: str = "median") -> dict:
    """The held-out probes whose kernel path is written down (KERNEL_COUNTS) priced with
    the kernel's own per-unit counts."""
    cal = {"costs": costs}
    rows = []
    for probe, _a, _b, _u, host in _held_out(figs, stat, profile):
        if probe not in KERNEL_COUNTS and probe != "fork_chain_vmas":
            continue
        e = est.estimate_ns(kernel_counts(probe, PROFILES[profile]["depth"]), cal)["events_ns"]
        rows.append({"probe": probe, "host_ns": round(host, 1), "estimated_ns": round(e, 1),
                     "error_pct": _err(e, host)})
    return {"what": "held-out probes priced with the host kernel's own event counts "
                    "(KERNEL_COUNTS): the error of the prices alone",
            "worst_abs_error_pct": max(abs(r["error_pct"]) for r in rows), "probes": rows}


def _err(model: float, host: float) -> float:
    return round(100.0 * (model - host) / host, 1) if host > 0 else float("inf")


def _err_scaled(model: float, host: float, ref: float) -> float:
    """Error in percent of `ref` (= host for every probe but those in ERROR_SCALE)."""
    return round(100.0 * (model - host) / ref, 1) if ref > 0 else float("inf")


def twin_events(backend: str, a, b: str | None, units: int, p: dict) -> tuple[dict, float]:
    """(event counts per unit of twin `a` minus twin `b`, model bookkeeping ns per unit).
    `a` may be the event counts themselves (a probe no trace can mirror: the host
    kernel's own counts), then no design runs and there is no bookkeeping."""
    if isinstance(a, dict):
        ev = {k: v / units for k, v in a.items()}
        if isinstance(b, dict):     # the estimate is est(a) - est(b): kept apart (_estimate)
            return (ev, {k: v / units for k, v in b.items()}), 0.0
        return ev, 0.0
    ev, book, _ = model_events(backend, a, p)
    if b is not None:
        ev0, book0, _ = model_events(backend, b, p)
        ev, book = est.diff(ev, ev0), book - book0
    return {k: v / units for k, v in ev.items()}, book / units


def _estimate(ev, cal: dict, design=None) -> tuple[float, dict, list]:
    """(events_ns, breakdown, uncosted) of twin events `ev`, or of a pair (a, b) of the
    kernel's counts as est(a) - est(b): a price read off a curve at a mean size is not
    linear in the counts, so the two are priced apart."""
    if isinstance(ev, tuple):
        ea, eb = (est.estimate_ns(e, cal, design=design) for e in ev)
        keys = set(ea["breakdown"]) | set(eb["breakdown"])
        return (ea["events_ns"] - eb["events_ns"],
                {k: ea["breakdown"].get(k, 0.0) - eb["breakdown"].get(k, 0.0) for k in keys},
                sorted(set(ea["uncosted"]) | set(eb["uncosted"])))
    e = est.estimate_ns(ev, cal, design=design)
    return e["events_ns"], e["breakdown"], e["uncosted"]


def validate(figs: dict, costs: dict, profile: str, backend: str = "linux",
             stat: str = "median", target_pct: float = 25.0) -> dict:
    """Estimates of the held-out probes by `backend` against the host, in percent, plus a
    leave-one-round-out cross-validation of the fit."""
    import mmbench
    if backend not in mmbench.backends():
        return {"status": "skipped", "backend": backend,
                "reason": f"the {backend} design is not installed here "
                          f"(installed: {', '.join(mmbench.backends())})"}
    p = PROFILES[profile]
    cal = {"costs": costs}
    rows, events = [], {}
    held = _held_out(figs, stat, profile)
    hosts = {h[0]: h[4] for h in held}
    for probe, a, b, units, host in held:
        ev, book = twin_events(backend, a, b, units, p)
        events[probe] = ev
        model, breakdown, uncosted = _estimate(ev, cal, design=backend)
        ref = hosts[ERROR_SCALE[probe]] if probe in ERROR_SCALE else host
        rows.append({"probe": probe, "what": HELD_OUT_SPEC[probe][0], "host_ns": round(host, 1),
                     "estimated_ns": round(model, 1), "error_pct": _err_scaled(model, host, ref),
                     "model_bookkeeping_ns": round(book, 1),
                     "breakdown_ns": {k: round(v, 1) for k, v in breakdown.items()},
                     "uncosted": uncosted})
    worst = max(abs(r["error_pct"]) for r in rows)
    used = sorted({k for r in rows for k in r["breakdown_ns"]})
    return {"status": "ok", "backend": backend, "target_pct": target_pct,
            "worst_abs_error_pct": worst, "within_target": worst <= target_pct,
            "prices_exercised": used,
            "prices_not_exercised": sorted(set(costs) - set(used)),
            "probes": rows, "cross_validation": cross_validate(figs, events, stat, profile)}


#: memfd-backed host probes the shmem design is checked against (its anonymous
#: memory *is* a shmem file): the page-cache prices come from the first two, so
#: for them only the design's counts are on trial; fork_memfd is held out
SHMEM_PROBES = {
    "memfd_miss_fault": (lambda p: ("memfd_miss_fault", None, p["pages"]),
                         lambda f, s, p: _v(f, "memfd_miss_fault", s)),
    "memfd_hit_fault": (lambda p: ("memfd_hit_fault", None, p["pages"]),
                        lambda f, s, p: _v(f, "memfd_hit_fault", s)),
    "fork_memfd": HELD_OUT_SPEC["fork_memfd"][1:],
}


def validate_shmem(figs: dict, costs: dict, profile: str, stat: str = "median") -> dict:
    """The shmem design's estimates of memfd-backed host runs (shared mappings)."""
    import mmbench
    if "shmem" not in mmbench.backends():
        return {"status": "skipped", "backend": "shmem", "reason": "the shmem design is not installed"}
    p = PROFILES[profile]
    rows = []
    for probe, (tw, host_fn) in SHMEM_PROBES.items():
        a, b, units = tw(p)
        host = float(host_fn(figs, stat, p))
        ev, book = twin_events("shmem", a, b, units, p)
        e = est.estimate_ns(ev, {"costs": costs}, design="shmem")
        ref = (float(HELD_OUT_SPEC["fork_touched_pages"][2](figs, stat, p))
               if probe in ERROR_SCALE else host)
        rows.append({"probe": probe, "host_ns": round(host, 1), "estimated_ns": round(e["events_ns"], 1),
                     "error_pct": _err_scaled(e["events_ns"], host, ref),
                     "model_bookkeeping_ns": round(book, 1),
                     "breakdown_ns": {k: round(v, 1) for k, v in e["breakdown"].items()},
                     "uncosted": e["uncosted"], "held_out": probe == "fork_memfd"})
    return {"status": "ok", "backend": "shmem", "probes": rows,
            "worst_abs_error_pct": max(abs(r["error_pct"]) for r in rows)}


def cross_validate(figs: dict, events: dict, stat: str, profile: str) -> dict:
    """Leave one round out: fit the prices on every other round, predict each held-out
    probe, compare with that round's own measurement.  Says how well prices fitted on
    some measurements predict new ones, noise included."""
    p = PROFILES[profile]
    reps = min(len(v["samples"]) if "x" not in v else min(len(sm) for sm in v["samples"])
               for v in figs.values() if "samples" in v)
    if reps < 2:
        return {"status": "skipped", "reason": "one round: nothing to leave out"}
    errs: dict[str, list] = {k: [] for k in events}
    for r in range(reps):
        rest = np.array([i for i in range(reps) if i != r])
        costs = fit(_resampled(figs, rest, stat), stat)
        one = _resampled(figs, np.array([r]), stat)
        held = _held_out(one, stat, profile)
        hosts = {h[0]: h[4] for h in held}
        for probe, a, b, units, host in held:
            model = _estimate(events[probe], {"costs": costs})[0]
            ref = hosts[ERROR_SCALE[probe]] if probe in ERROR_SCALE else host
            if ref > 0:
                errs[probe].append(100.0 * (model - host) / ref)
    per = {k: {"median_abs_error_pct": round(float(np.median(np.abs(v))), 1),
               "worst_abs_error_pct": round(float(np.max(np.abs(v))), 1)}
           for k, v in errs.items() if v}
    return {"status": "ok", "rounds": reps, "probes": per,
            "median_abs_error_pct": round(float(np.median([x["median_abs_error_pct"]
                                                           for x in per.values()])), 1)}


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
    """This host as a calibration records it: calibration_search.this_host and the kernel build."""
    from mmbench.calibration_search import this_host
    host = this_host()
    return {"hostname": host["hostname"], "kernel": host["kernel"],
            "kernel_version": platform.version(), **host}


def calibrate(profile: str = "full", structures_too: bool = False, backend: str = "linux",
              stat: str = "median", log=lambda msg: None, clock: str = "cpu") -> dict:
    """Probe, fit and validate; the calibration as a dict (see docs/calibration.md)."""
    from mmbench import probe
    if profile not in PROFILES:
        raise errors.InvalidArgument(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    if stat not in STATS:
        raise errors.InvalidArgument(f"stat must be one of {STATS}, got {stat!r}")
    if clock not in PROBE_CLOCKS:
        raise errors.InvalidArgument(f"clock must be one of {PROBE_CLOCKS}, got {clock!r}")
    ok, why = probe.available()
    if not ok:
        raise errors.NotSupported(why)
    from mmbench.probe import _probe as P
    t0 = time.monotonic()
    load_before = os.getloadavg()
    was = P.set_clock(clock)
    try:
        figs = run_probes(profile, log)
    finally:
        P.set_clock(was)
    stability = figs.pop("_stability", None)
    load_after = os.getloadavg()
    costs = fit_with_intervals(figs, stat)
    log("validating against the model")
    val = validate(figs, costs, profile, backend, stat)
    shm = validate_shmem(figs, costs, profile, stat)
    cal = {"format": 1, "kind": "calibration", "profile": profile, "stat": stat,
           "probe_clock": {"clock": clock, "what": PROBE_CLOCK_WHAT[clock],
                           "pinned": "each sample runs pinned to the CPU the probe process "
                                     "was on, its children with it (hot-cache prices)"},
           "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "machine": machine_info(),
           "load_average": {"before": [round(x, 2) for x in load_before],
                            "after": [round(x, 2) for x in load_after],
                            "note": "other work on the host slows every probe alike; "
                                    "prices from a loaded host are high"},
           "probes": figs, "costs": costs, "stability": stability,
           "estimate": "estimated_ns = sum(count(event) x costs[cost_of(event)].ns) "
                       "(+ measured model bookkeeping); see mmbench.estimate.COSTS",
           "validation": val, "shmem_validation": shm,
           "kernel_counts_check": kernel_counts_check(figs, costs, profile, stat)}
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
             f"{(cal.get('stability') or {}).get('rounds', PROFILES[cal['profile']]['reps'])} "
             f"interleaved rounds, {(cal.get('probe_clock') or {}).get('clock', 'wall')} clock, "
             f"{cal['elapsed_s']} s, "
             f"load average {cal['load_average']['before'][0]} -> {cal['load_average']['after'][0]})",
             "fitted costs (ns, with the 90% bootstrap interval over rounds):"]
    for k, v in cal["costs"].items():
        f = ".1f" if v["ns"] >= 10 or v["ns"] == 0 else ".4f"
        iv = f"[{v['low']:{f}} – {v['high']:{f}}]" if "low" in v else ""
        lines.append(f"  {k:13s} {v['ns']:10{f}} {iv:>22s}  = {v['from']}")
        if v.get("curve"):
            cv = v["curve"]
            lines.append("  " + " " * 13 + " by size (bytes: ns per allocation): " + ", ".join(
                f"{b}: {n:g}" for b, n in zip(cv["bytes"], cv["ns"])))
    thp = {k: f["host_vmstat_per_unit"] for k, f in cal["probes"].items()
           if isinstance(f, dict) and f.get("host_vmstat_per_unit")}
    if thp:
        lines.append("huge-page probes, the host's thp_* events per unit (/proc/vmstat, setup "
                     "included):")
        for k, v in thp.items():
            lines.append(f"  {k:22s} " + ", ".join(f"{e} {n:g}" for e, n in v.items() if n))
    val = cal["validation"]
    if val["status"] != "ok":
        lines.append(f"validation: skipped — {val['reason']}")
    else:
        lines.append(f"validation ({val['backend']} design, {len(val['probes'])} held-out probes, "
                     f"none used in the fit; ns per unit):")
        for r in val["probes"]:
            lines.append(f"  {r['probe']:22s} host {r['host_ns']:10.1f}  estimated "
                         f"{r['estimated_ns']:10.1f}  error {r['error_pct']:+7.1f}%")
        lines.append(f"  worst |error| {val['worst_abs_error_pct']}% (target {val['target_pct']:g}%)")
        lines.append(f"  prices exercised: {', '.join(val['prices_exercised'])}")
        if val["prices_not_exercised"]:
            lines.append(f"  prices no held-out probe exercises: {', '.join(val['prices_not_exercised'])}")
        cv = val.get("cross_validation", {})
        if cv.get("status") == "ok":
            lines.append(f"  leave-one-round-out ({cv['rounds']} rounds): median |error| "
                         f"{cv['median_abs_error_pct']}%; worst per probe: " + ", ".join(
                             f"{k} {v['worst_abs_error_pct']}%" for k, v in cv["probes"].items()))
    stab = cal.get("stability")
    if stab:
        lines.append(f"stability: {stab['rounds']} rounds; the least certain median ({stab['worst_probe']}) "
                     f"is known to ±{stab['worst_spread']:.1%}; " + ("stable" if stab["stable"] else
                     f"NOT stable: it stayed above the {stab['target']:.0%} target"))
    shm = cal.get("shmem_validation")
    if shm and shm["status"] == "ok":
        lines.append("shmem design against memfd-backed host runs:")
        for r in shm["probes"]:
            lines.append(f"  {r['probe']:22s} host {r['host_ns']:10.1f}  estimated "
                         f"{r['estimated_ns']:10.1f}  error {r['error_pct']:+7.1f}%"
                         + ("" if r["held_out"] else "   (prices fitted on this probe)"))
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
        clock: str = typer.Option("cpu", help="what the probes time: cpu (the CPU time of the "
                                  "work; robust to other processes) or wall (CLOCK_MONOTONIC)"),
    ) -> None:
        """Measure the host kernel and fit per-event costs for estimated host time."""
        from mmbench import calibration_search
        from mmbench.cli import check_backend, check_output, fail
        if stat not in STATS:
            fail(f"--stat must be one of {', '.join(STATS)}, got {stat!r}")
        if clock not in PROBE_CLOCKS:
            fail(f"--clock must be one of {', '.join(PROBE_CLOCKS)}, got {clock!r}")
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
                        log=lambda m: typer.echo(f"  probe: {m}", err=True), clock=clock)
        path = write(cal, path)
        typer.echo(summary(cal))
        typer.echo(f"wrote {path}")
