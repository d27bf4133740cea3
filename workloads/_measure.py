"""Run one scenario on one design and turn what happened into result records.

The measurement, per repeat on a fresh machine::

    for segment in scenario:
        counters before ─ replay(segment, timing=per_op?) ─ counters after
        timed segments keep: per-op ns of the ops they name (or elapsed ns),
                             the counter deltas
    metadata at the end of the scenario

What becomes a record, and of which kind:

* exact      counter deltas of each timed segment (repeat 0; checked equal in
             every repeat), metadata bytes by struct, resident pages, and
             ``thp.huge_pages``: whether the design, configured as the cell
             (its ``thp`` mode), used huge pages at all (huge_pages_in_effect).
* measured   per-op model ns (median and p99) of each timed op, the
             segment's total ns, ns per page/VMA/child; value = median over
             repeats, spread = p25/p75 over repeats (3 repeats or more).
* estimated  host-calibrated cost (mmbench.estimate, when a calibration is
             loaded): event counts x host prices, for transfers plus the
             accelerator link model, with a range from the prices'
             uncertainty; never the model's own time.  Transfers: GBps =
             dma bytes / estimated_ns, the only throughput definition.
* unsupported  the design is not installed, lacks the mechanism, or an op
             failed (OutOfMemory …): one record with the reason, no numbers.
"""
from __future__ import annotations

import functools
import os
import time
import warnings

import numpy as np

import mmbench
from mmbench import errors, registry
from mmbench.errors import STATUS_NAMES
from mmbench.trace import Op

# counters recorded even when zero (a design that avoids a fault shows a 0 here)
HEADLINE = ("faults", "fault_zero_page", "fault_zero_fill", "fault_cow_copy", "fault_cow_reuse",
            "fault_minor", "fault_device_return", "pages_zeroed", "pages_copied", "pte_writes",
            "tlb_flushes")
BYTE_COUNTERS = ("dma_bytes",)
# below this, allocator noise outweighs the growth being measured; from here on a machine's frame
# descriptor array is above glibc's largest mmap threshold (32 MiB), so it is a fresh mapping
# whose pages count when first used, not when a recycled heap is cleared by calloc
SIM_MEMORY_MIN_PAGES = 1 << 18


def _record(family, workload, params, backend, metric, value, unit, kind, spread=None,
            repeats=1, note="") -> dict:
    """One record of the results schema (mmbench.results checks it when a file is written;
    not imported here so that asv can run this suite against older commits)."""
    return {"family": family, "workload": workload, "params": dict(params), "backend": backend,
            "metric": metric, "value": value, "unit": unit, "kind": kind, "spread": spread,
            "repeats": int(repeats), "note": note}


class Unavailable(Exception):
    """The design cannot run this scenario; the message is the reason recorded."""


def load_calibration(path=None):
    """(calibration, path) or (None, "no calibration: why"); see mmbench.calibration_search
    for where it is looked up and how it is matched to this host."""
    try:
        from mmbench import calibration_search
    except ImportError:
        return None, "no calibration: mmbench.calibration_search is not installed"
    try:
        found = calibration_search.find(path)
    except Exception as e:  # a bad calibration file must not stop the suite
        return None, f"no calibration: {type(e).__name__}: {e}"
    if found.calibration is None:
        return None, found.message
    return found.calibration, found.path


def machine_kwargs(cls, scenario, options=None) -> dict:
    """The arguments of mmbench.open for `scenario` on design class `cls`: the scenario's
    machine (its ``thp`` included) plus the run's design `options`, which may not change
    the scenario's ``thp`` (that is the cell's parameter, recorded with its results).

    An mmbench without huge pages (an old commit under asv) has no ``thp`` option: there
    ``thp="never"`` is what it runs anyway and is dropped; another mode is Unavailable."""
    kw = scenario.machine.kwargs()
    for k, v in (options or {}).items():
        if k == "thp" and kw.get("thp", v) != v:
            raise ValueError(f"design option thp={v!r} contradicts the cell's thp={kw['thp']!r} "
                             "(the huge-page axis is a workload parameter: -p thp=…)")
        kw[k] = v
    try:
        from mmbench.hugepages import CONTRACT_OPTIONS
    except ImportError:
        CONTRACT_OPTIONS = {}
    if "thp" in kw and "thp" not in CONTRACT_OPTIONS and "thp" not in getattr(cls, "option_defaults", {}):
        if kw["thp"] != "never":
            raise Unavailable(f"NotSupported: this mmbench has no huge pages (no thp option), "
                              f"thp={kw['thp']!r} cannot run")
        del kw["thp"]
    return kw


def open_machine(backend: str, scenario, needs_devices: bool, options=None):
    """A fresh machine for `scenario` (`options`: further design options, see machine_kwargs)."""
    try:
        cls = registry.load(backend)
    except errors.MMError as e:
        raise Unavailable(f"not available: {e}") from None
    if needs_devices and not cls.supports_devices:
        raise Unavailable(f"NotSupported: the {backend!r} design has no accelerator support")
    try:
        return mmbench.open(backend, **machine_kwargs(cls, scenario, options))
    except errors.MMError as e:
        raise Unavailable(f"{type(e).__name__}: {e}") from None


# ------------------------------------------------------------ the huge-page axis
PROBE_PAGES = 1024            # two aligned 2 MiB blocks
BASE_PROBE = 1 << 20          # where they are mapped (2 MiB-aligned)


@functools.lru_cache(maxsize=None)
def huge_pages_in_effect(backend: str, kwargs: tuple) -> bool | None:
    """Whether design `backend` opened with `kwargs` (sorted (name, value) pairs, ``thp``
    among them) spends anything differently from the same machine at ``thp="never"``.

    The probe is one process mapping two aligned 2 MiB blocks, advising them
    MADV_HUGEPAGE, writing every page, forking, and the child writing one page: the
    cases where huge pages change cost (first touch, fork, COW).  Equal counters and
    equal metadata mean the design ran at 4 KiB in this configuration (it has no huge
    pages, or not with these options, e.g. linux with devices), whatever ``thp`` asked.
    Judged by what the design does, so it holds for plugins too.  None when the probe
    itself fails (a design refusing the probe's operations): nothing is claimed then."""
    kw = dict(kwargs)
    if kw.get("thp", "never") == "never":
        return False
    kw["ram_pages"] = 4 * PROBE_PAGES + (1 << 12)
    if kw.get("devices"):
        kw["device_pages"] = 2 * PROBE_PAGES

    def probe(mode):
        from mmbench.trace import Advice
        m = mmbench.open(backend, **{**kw, "thp": mode})
        p = m.spawn()
        m.mmap(p, BASE_PROBE, PROBE_PAGES)
        if getattr(type(m), "huge_page_advice", False):
            m.madvise(p, BASE_PROBE, PROBE_PAGES, Advice.HUGEPAGE)
        for v in range(BASE_PROBE, BASE_PROBE + PROBE_PAGES):
            m.write(p, v, v + 1)
        c = m.fork(p)
        m.write(c, BASE_PROBE, 7)
        return m.counters(), m.metadata()
    try:
        return probe(kw["thp"]) != probe("never")
    except Exception as e:  # the probe must never cost a cell its results
        warnings.warn(f"huge-page probe of {backend} failed: {type(e).__name__}: {e}", RuntimeWarning,
                      stacklevel=2)
        return None


def _design_notes(m) -> str:
    """What the machine says about its configuration (notes() without the design's fixed
    lines, which every cell shares and the results' notes already carry)."""
    notes = getattr(m, "notes", None)
    fixed = set(getattr(type(m), "design_notes", ()))
    try:
        return "; ".join(n for n in notes() if n not in fixed) if notes else ""
    except errors.MMError:
        return ""


def _huge_page_record(rec, backend, scenario, options, notes):
    """``thp.huge_pages``: 1 when the design used huge pages differently from 4 KiB pages in
    this cell's configuration (huge_pages_in_effect), 0 when it ran at 4 KiB; its note is the
    design's own account (notes()).  The report marks the 4 KiB cells of a huge-page point of
    the axis with it, so a design without huge pages is never shown silently."""
    try:
        cls = registry.load(backend)
        kw = machine_kwargs(cls, scenario, options)
    except (errors.MMError, Unavailable, ValueError):
        return
    if "thp" not in kw:
        return
    sizes = ("ram_pages", "device_pages")        # the probe sizes its own machine
    on = huge_pages_in_effect(backend, tuple(sorted((k, v) for k, v in kw.items() if k not in sizes)))
    if on is None:
        return
    rec.add("thp.huge_pages", int(on), "", "exact", note=notes or f"thp={kw['thp']!r}")


def replay_segment(m, seg, timing: bool):
    """Replay one segment; any failed op makes the scenario unavailable on this design."""
    try:
        out = m.replay(seg.trace, timing=timing, stop_on_error=True, frame=False)
    except errors.MMError as e:
        raise Unavailable(f"{type(e).__name__}: {e}") from None
    st = out["status"]
    bad = np.flatnonzero(st)
    if len(bad):
        i = int(bad[0])
        code = int(st[i])
        name = errors.BY_STATUS.get(code, errors.MMError).__name__
        op = Op(int(seg.trace["op"][i])).name
        raise Unavailable(f"{name}: {op} failed in segment {seg.name!r} (op {i}, status "
                          f"{STATUS_NAMES.get(code, code)})")
    return out


def run_once(m, scenario) -> dict:
    """One pass over the scenario on machine `m`: {segment: observations}, plus metadata."""
    segs = {}
    for seg in scenario.segments:
        if not seg.timed:
            replay_segment(m, seg, timing=False)
            continue
        s0 = _slab_events(m)
        c0 = m.counters()
        if seg.sim_memory:
            rss0, res0 = rss_bytes(), _resident(m)
        out = replay_segment(m, seg, timing=seg.timing == "per_op")
        c1 = m.counters()
        obs = {"counters": {k: c1[k] - c0.get(k, 0) for k in c1}, "ops": len(seg.trace)}
        obs["events"] = {**obs["counters"], **_op_events(seg.trace), **_diff(_slab_events(m), s0)}
        if seg.host_fork:
            obs["events"] = _add(obs["events"], _unmerged_fork_events(obs["events"], seg.host_fork))
        if seg.timing == "per_op":
            ns = out["ns"]
            obs["per_op"] = {o: ns[seg.trace["op"] == o] for o in seg.ops}
            obs["total_ns"] = int(ns.sum())
        else:
            obs["total_ns"] = int(m.last_replay["elapsed_ns"])
        if seg.sim_memory:       # the replay's result arrays go first: only the model's memory stays
            del out
            ns = None
            obs["sim_memory"] = _sim_memory(m, obs, rss0, res0)
        segs[seg.name] = _merge(segs[seg.name], obs) if seg.name in segs else obs
    return {"segments": segs, "metadata": m.metadata(), "memdesc": m.memdesc_metadata(),
            "structs": m.struct_sizes(),
            "resident": _resident(m), "link": dict(m.link or {})}


def _resident(m) -> int:
    return sum(m.frames_used(n) for n in range(1 + m.ndevices))


def rss_bytes() -> int | None:
    """This process's resident memory now (Linux /proc/self/statm), or None elsewhere.

    Free heap memory is handed back to the kernel first (glibc malloc_trim), so
    that what a replay allocates next is counted when it is touched instead of
    reusing pages already resident."""
    _malloc_trim()
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _malloc_trim():
    import ctypes
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _sim_memory(m, obs, rss0, res0):
    """(bytes the process grew by, pages the segment made resident): the simulator's own
    memory for those pages.  Called once the replay's result arrays are freed; the per-op
    samples kept from them are subtracted."""
    rss1 = rss_bytes()
    if rss0 is None or rss1 is None:
        return None
    kept = sum(a.nbytes for a in obs.get("per_op", {}).values())
    return rss1 - rss0 - kept, _resident(m) - res0


def _merge(a: dict, b: dict) -> dict:
    """Two rounds of a segment with the same name are one segment: samples joined, sums added."""
    out = {"counters": _add(a["counters"], b["counters"]), "events": _add(a["events"], b["events"]),
           "ops": a["ops"] + b["ops"], "total_ns": a["total_ns"] + b["total_ns"]}
    if "per_op" in a:
        out["per_op"] = {o: np.concatenate([a["per_op"][o], b["per_op"][o]]) for o in a["per_op"]}
    if "sim_memory" in a:
        out["sim_memory"] = a["sim_memory"]
    return out


def _add(x: dict, y: dict) -> dict:
    """Sums by key, in first-seen key order (a set's order would change with the process)."""
    return {k: x.get(k, 0) + y.get(k, 0) for k in dict.fromkeys([*x, *y])}


def _op_events(trace) -> dict:
    """{"op:FORK": n, …}: the contract operations a segment ran (priced by estimates)."""
    counts = np.bincount(trace["op"], minlength=len(Op))
    return {f"op:{Op(i).name}": int(n) for i, n in enumerate(counts) if n}


def _unmerged_fork_events(events: dict, host_fork: tuple) -> dict:
    """The fork work of the host's VMAs the replay merged (mmbench.estimate); nothing
    with an mmbench that does not price it (asv over older commits)."""
    try:
        from mmbench.estimate import unmerged_fork_events
    except ImportError:
        return {}
    return unmerged_fork_events(events, host_fork)


def _slab_events(m) -> dict:
    """{"alloc:<struct>": n, "free:<struct>": n, "alloc_bytes:<struct>": bytes …} when the
    engine exposes slab totals (mmbench.estimate.slab_events: bytes-accounted caches
    give bytes, never objects)."""
    try:
        from mmbench.estimate import slab_events
    except ImportError:
        slab_events = None
    if slab_events is not None:
        return slab_events(m)
    out = {}
    for kind, fn in (("alloc", "slab_allocs"), ("free", "slab_frees")):
        f = getattr(m, fn, None)
        if f is not None:
            out.update({f"{kind}:{k}": int(v) for k, v in f().items()})
    return out


def _diff(after: dict, before: dict) -> dict:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def _spread(values):
    if len(values) < 3:
        return None
    return {"p25": float(np.percentile(values, 25)), "p75": float(np.percentile(values, 75))}


class Recorder:
    """Builds the records of one workload × parameters × backend."""

    def __init__(self, wl, params, backend):
        self.wl, self.params, self.backend = wl, params, backend
        self.out: list[dict] = []

    def add(self, metric, value, unit, kind, spread=None, repeats=1, note=""):
        if value is not None:
            value = int(value) if isinstance(value, (int, np.integer)) else float(value)
        self.out.append(_record(self.wl.family, self.wl.name, self.params, self.backend, metric,
                                value, unit, kind, spread, repeats, note))

    def measured(self, metric, samples, unit="ns", note=""):
        samples = [float(s) for s in samples]
        self.add(metric, float(np.median(samples)), unit, "measured", _spread(samples), len(samples), note)
        self.out[-1]["samples"] = samples     # every repeat: compare tests significance on them

    def unsupported(self, reason):
        self.add("*", None, "", "unsupported", note=reason)


def measure(wl, params: dict, backend: str, repeats: int = 3, calibration=None,
            budget_s: float | None = None, options=None) -> list[dict]:
    """Every record of workload `wl` with `params` on `backend` (unsupported: one record).

    `budget_s` bounds the wall time spent on repeats: once it is used up no new
    repeat starts (at least one always runs; each record says how many did).
    `options` are design options passed to mmbench.open (``{"thp": "always"}``).
    """
    rec = Recorder(wl, params, backend)
    t0 = time.perf_counter()
    try:
        scenario = wl.scenario(**params)
        runs = []
        notes = None
        for _ in range(max(1, repeats)):
            if runs and budget_s is not None and time.perf_counter() - t0 > budget_s:
                break
            m = open_machine(backend, scenario, wl.needs_devices, options)
            if notes is None:
                notes = _design_notes(m)
            runs.append(run_once(m, scenario))
            del m
    except Unavailable as e:
        rec.unsupported(str(e))
        return rec.out
    except Exception as e:  # a design that crashes must not take the suite down: say so
        warnings.warn(f"{backend} failed on {wl.name} {params}: {type(e).__name__}: {e}",
                      RuntimeWarning, stacklevel=2)
        rec.unsupported(f"error: {type(e).__name__}: {e}")
        return rec.out
    for seg in scenario.timed_segments():
        _segment_records(rec, seg, [r["segments"][seg.name] for r in runs], runs[0]["link"], calibration)
    if len(scenario.timed_segments()) > 1:
        rec.measured("all.total_ns", [sum(s["total_ns"] for s in r["segments"].values()) for r in runs],
                     note="sum over the timed segments (an operation plus the work it deferred)")
    _metadata_records(rec, runs[0], per_struct=wl.family in ("metadata_memory", "vma_layout"))
    _huge_page_record(rec, backend, scenario, options, notes)
    return rec.out


def _segment_records(rec, seg, obs, link, calibration):
    name = seg.name
    first = obs[0]["counters"]
    drift = any(o["counters"] != first for o in obs[1:])
    note = "counters differed between repeats (repeat 0 shown)" if drift else ""
    for k, v in first.items():
        if v or k in HEADLINE:
            rec.add(f"{name}.{k}", v, "B" if k in BYTE_COUNTERS else "events", "exact", note=note)
    if seg.timing == "per_op":
        for o in seg.ops:
            label = name if len(seg.ops) == 1 else f"{name}.{Op(o).name.lower()}"
            per = [ob["per_op"][o] for ob in obs]
            if not len(per[0]):
                continue
            q = [np.percentile(p, (50, 99)) for p in per]      # one partition for both
            rec.measured(f"{label}.median_ns", [m for m, _ in q])
            rec.measured(f"{label}.p99_ns", [h for _, h in q])
    _sim_memory_records(rec, name, [ob.get("sim_memory") for ob in obs])
    totals = [ob["total_ns"] for ob in obs]
    how = "sum of per-op model times" if seg.timing == "per_op" else "elapsed replay time (clock off)"
    rec.measured(f"{name}.total_ns", totals, note=how)
    for unit, n in seg.scale:
        rec.measured(f"{name}.ns_per_{unit}", [t / n for t in totals], note=how)
    _estimate_records(rec, seg, obs[0]["events"], totals, calibration, link)


def _sim_memory_records(rec, name, obs):
    """The simulator's own bytes per page the segment made resident (its RSS growth)."""
    per = [b / n for b, n in (o for o in obs if o) if n >= SIM_MEMORY_MIN_PAGES]
    if per:
        rec.measured(f"{name}.sim_bytes_per_page", per, unit="B/page",
                     note="growth of the simulator's resident memory (RSS) per page made resident, "
                          "measured after the replay's result arrays were freed")


def _estimate_records(rec, seg, events, totals, calibration, link):
    """Host cost of the segment (mmbench.estimate): counted events x host prices, plus
    the link model's time for counted DMA.  The model's own bookkeeping is never in it
    (it is the measured total_ns).  Transfers get one throughput, bytes / estimated_ns,
    the same definition in every table and chart."""
    nbytes = events.get("dma_bytes", 0)
    if calibration is None:
        if nbytes:
            rec.add(f"{seg.name}.GBps", None, "", "unsupported",
                    note="no calibration: the transfer's host cost is not estimated "
                         "(run `mmbench calibrate`)")
        return
    from mmbench import estimate
    try:
        est = estimate.estimate_ns(events, calibration, measured_ns=float(np.median(totals)),
                                   design=rec.backend, link=link)
    except (errors.MMError, KeyError, ValueError, TypeError) as e:
        rec.add(f"{seg.name}.estimated_ns", None, "", "unsupported", note=f"no estimate: {e}")
        return
    total = est.get("total_ns")
    if total is None:
        return
    rng = ({"low": float(est["low_ns"]), "high": float(est["high_ns"])}
           if est.get("low_ns") is not None else None)
    note = "counted events x host prices"
    if est.get("link_ns"):
        g, lat = float(link.get("gbps", 0)), float(link.get("latency_us", 0))
        note += f" + link model ({g:g} GB/s, {lat:g} us per transfer)"
    note += "; the model's own bookkeeping is not in it (see total_ns)"
    if est.get("assumed"):
        note += f"; assumed prices: {', '.join(est['assumed'])}"
    if est.get("uncosted"):
        note += f"; not priced: {', '.join(est['uncosted'])}"
    rec.add(f"{seg.name}.estimated_ns", float(total), "ns", "estimated", note=note)
    rec.out[-1]["range"] = rng
    for unit, n in seg.scale:
        rec.add(f"{seg.name}.estimated_ns_per_{unit}", float(total) / n, "ns", "estimated",
                note="estimated_ns / " + unit + "s")
        if rng:
            rec.out[-1]["range"] = {"low": rng["low"] / n, "high": rng["high"] / n}
    if est.get("link_ns"):
        rec.add(f"{seg.name}.link_ns", float(est["link_ns"]), "ns", "estimated",
                note="the link model's part of estimated_ns")
    if nbytes and total > 0:
        rec.add(f"{seg.name}.GBps", nbytes / total, "GB/s", "estimated",
                note="dma bytes / estimated_ns (host cost of the events + link model)")
        if rng and rng["low"] > 0:
            rec.out[-1]["range"] = {"low": nbytes / rng["high"], "high": nbytes / rng["low"]}


def _metadata_records(rec, run, per_struct: bool):
    if not run["structs"]:
        why = "the design accounts no kernel structs (no metadata() of its own)"
        for metric in ("metadata.total_bytes", "metadata.bytes_per_resident_page"):
            rec.add(metric, None, "", "unsupported", note=why)
        return
    total = 0
    for struct, (count, nbytes) in sorted(run["metadata"].items()):
        total += nbytes
        if per_struct and count:
            rec.add(f"metadata.{struct}.bytes", nbytes, "B", "exact")
            rec.add(f"metadata.{struct}.count", count, "objects", "exact")
    rec.add("metadata.total_bytes", total, "B", "exact")
    resident = run["resident"]
    rec.add("metadata.resident_pages", resident, "pages", "exact")
    if resident:
        rec.add("metadata.bytes_per_resident_page", total / resident, "B/page", "exact")
    _memdesc_records(rec, run.get("memdesc"), resident)


def _memdesc_records(rec, rows, resident: int):
    """The same state with the memory map charged as memdesc + folio (mmbench.memmap):
    the memmap axis of the metadata tables, read from the run, not run again."""
    if rows is None:
        rec.add("metadata.memdesc_bytes_per_resident_page", None, "", "unsupported",
                note="the design has no per-frame descriptor row to charge as memdesc + folio")
        return
    total = sum(nbytes for _, nbytes in rows.values())
    note = "metadata with memmap='memdesc': 8 B memdesc per frame + 80 B folio per folio"
    rec.add("metadata.memdesc_total_bytes", total, "B", "exact", note=note)
    if resident:
        rec.add("metadata.memdesc_bytes_per_resident_page", total / resident, "B/page", "exact", note=note)
