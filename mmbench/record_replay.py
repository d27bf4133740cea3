"""Replay a recorded trace through the designs and say how far to trust the result.

`replay_one` runs the trace on a fresh machine of one design, cut at every
FORK and EXIT::

    … ops ─┬─ FORK ─┬─ ops … ─┬─ EXIT ─ …
           │ counter │        │ metadata sampled just before each EXIT
           │ deltas  │        │ (that is where it peaks) and at the end
           ▼ = the fork's own work (PTEs copied, structs, tables)

and reports faults by kind, fork cost (exact events, model time, estimate),
peak and final metadata by struct, and estimated host time (mmbench.estimate
with a host calibration): in faults, in forks, in all.

The bias (DESIGN "Reality checks"): a recorded trace holds the faults Linux
took, not every access.  Where Linux took none — above all a forked child
reading pages whose PTEs fork copied — the replay has no access, and a design
that would have faulted there looks cheaper than it is.  `bias_note`
states, per trace, how many inherited pages the children never faulted on
(the most accesses that can be missing) as a share of the replay's faults.
"""
from __future__ import annotations

import json
import time

import numpy as np

from mmbench import errors
from mmbench import trace as trace_mod
from mmbench.trace import Op

SAMPLE_EVERY = 1000                    # ops between metadata samples (at least)
PT_STRUCTS = ("p4d_table", "pud_table", "pmd_table", "pte_table")   # what VmPTE counts (not pgd)
FAULT_COSTS = ("trap", "zero_fill", "copy", "cow_reuse", "page_cache_hit", "pagecache_add",
               "fault_around_page")
KINDS = (("zero_fill", ("fault_zero_fill",)), ("zero_page", ("fault_zero_page",)),
         ("cow", ("fault_cow_copy", "fault_cow_reuse")), ("minor", ("fault_minor",)),
         ("wp_shared", ("fault_wp_shared",)))


# ----------------------------------------------------------------- files
# (mmbench.record writes them and re-exports these two; the replay reads them)
def save_recording(path, trace, provenance: dict):
    """A recorded trace is an ordinary trace file plus ``meta_provenance`` (JSON)."""
    trace_mod.save(path, trace, provenance=json.dumps(provenance, sort_keys=True))


def load_recording(path) -> tuple:
    """(trace, provenance dict) of a recorded trace; {} for a trace without provenance."""
    trace = trace_mod.load(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            prov = json.loads(str(z["meta_provenance"])) if "meta_provenance" in z.files else {}
    except (OSError, ValueError) as e:
        raise errors.InvalidArgument(f"{path}: provenance unreadable ({e})") from None
    return trace, prov


def _machine_size(trace) -> int:
    touches = int(np.count_nonzero(np.isin(trace["op"], [int(Op.READ), int(Op.WRITE)])))
    return 2 * touches + (1 << 18)


def _cuts(trace) -> list[int]:
    """Indices where the replay stops: before and after every FORK and every EXIT, and
    every SAMPLE_EVERY ops (metadata peaks between exits too: a heap that grows and
    is released before the end)."""
    op = trace["op"]
    f = np.flatnonzero(op == Op.FORK)
    e = np.flatnonzero(op == Op.EXIT)
    step = max(SAMPLE_EVERY, len(trace) // 400)
    every = np.arange(0, len(trace), step)
    cuts = np.unique(np.concatenate([f, f + 1, e, e + 1, every, [0, len(trace)]]))
    return [int(c) for c in cuts]


def replay_one(trace, design: str, calibration=None, notes: dict | None = None,
               host: dict | None = None) -> dict:
    """One design's result on the trace (see the module docstring); `unsupported` with
    the reason when the design cannot run it.  `notes`: the trace's conversion notes
    (its private file reads are priced from them); `host`: what the host measured (the
    VMAs each fork duplicated there, see estimate.unmerged_fork_events)."""
    import mmbench
    from mmbench import estimate as est
    try:
        m = mmbench.open(design, ram_pages=_machine_size(trace))
    except errors.MMError as e:
        return {"design": design, "unsupported": f"{type(e).__name__}: {e}"}
    fork_ev: dict = {}
    pt_at_exit: dict = {}                  # pid -> its page-table bytes (no pgd) when it exited
    peak: dict = {}
    peak_total = peak_pt = 0
    fork_ns = 0
    fork_i = 0
    host_vmas = (host or {}).get("fork_vmas") or []
    extra: dict = {}                       # fork work of VMAs the replay merged (estimate.unmerged_fork_events)
    failed = 0
    t0 = time.perf_counter_ns()
    model_ns = 0
    cuts = _cuts(trace)
    for a, b in zip(cuts, cuts[1:]):
        seg = trace[a:b]
        peak, peak_total, peak_pt = _sample(m, peak, peak_total, peak_pt)
        if seg["op"][0] == Op.EXIT:
            pt0 = _pt_bytes(m)
        is_fork = len(seg) == 1 and seg["op"][0] == Op.FORK
        ev0 = est.events_of(m) if is_fork else None
        try:
            out = m.replay(seg, timing=is_fork, frame=False)
        except errors.MMError as e:
            return {"design": design, "unsupported": f"{type(e).__name__}: {e}"}
        failed += int(np.count_nonzero(out["status"]))
        model_ns += int(m.last_replay["elapsed_ns"])
        if seg["op"][0] == Op.EXIT:
            pt_at_exit[int(seg["pid"][0])] = pt0 - _pt_bytes(m)
        if is_fork:
            fork_ns += int(out["ns"].sum())
            d = est.diff(est.events_of(m), ev0)
            for k, v in d.items():
                if v:
                    fork_ev[k] = fork_ev.get(k, 0) + v
            if fork_i < len(host_vmas):
                for k, v in est.unmerged_fork_events(d, host_vmas[fork_i]).items():
                    extra[k] = extra.get(k, 0) + v
            fork_i += 1
    peak, peak_total, peak_pt = _sample(m, peak, peak_total, peak_pt)
    wall_ns = time.perf_counter_ns() - t0
    c = m.counters()
    final = {k: nb for k, (n, nb) in m.metadata().items() if nb}
    res = {"design": design, "faults": c.get("faults", 0),
           "kinds": {k: sum(c.get(x, 0) for x in keys) for k, keys in KINDS},
           "forks": int(np.count_nonzero(trace["op"] == Op.FORK)),
           "fork_events": fork_ev, "fork_model_ns": fork_ns,
           "fork_ptes_copied": fork_ev.get("fork_ptes_copied", 0),
           "fork_unmerged": extra,
           "peak_metadata": peak, "peak_total": peak_total, "peak_pt_bytes": peak_pt,
           "final_metadata": final, "final_total": sum(final.values()),
           "pt_at_exit": pt_at_exit, "pt_alive": _pt_bytes(m),
           "failed_ops": failed, "model_ns": model_ns, "wall_ns": wall_ns}
    if calibration is not None:
        allev = {**est.events_of(m), **est.op_counts(trace)}
        for k, v in _file_reads(notes or {}).items():
            allev[k] = allev.get(k, 0) + v
        fev = dict(fork_ev)
        for k, v in extra.items():
            allev[k] = allev.get(k, 0) + v
            fev[k] = fev.get(k, 0) + v
        fork_est = est.estimate_ns({**fev, "op:FORK": res["forks"]}, calibration)
        whole = est.estimate_ns(allev, calibration, measured_ns=model_ns)
        rest = {k: v - fev.get(k, 0) for k, v in allev.items()}
        faults = est.estimate_ns(rest, calibration)
        pc = faults["breakdown"]
        res["est_fault_ns"] = sum(pc.get(k, 0.0) for k in FAULT_COSTS)
        res["est_fork_ns"] = fork_est["total_ns"]
        res["est_total_ns"] = whole["total_ns"]
        res["uncosted"] = whole["uncosted"]
    return res


def _file_reads(notes: dict) -> dict:
    """The recorded first reads of private file mappings as the events that price them.
    The replay turns each into a zero-page read (priced as the trap); on the host each
    was a page-cache hit (page_cache_hit) that mapped its cached neighbours too
    (fault-around: fault_around_page each).  The converter counts those neighbours
    (`file_private_read_neighbours`: the 64 KiB window clipped to the mapping and the
    PTE table, less pages the program had faulted on itself); a trace converted before
    it did gets the full window, 15 per read (an upper bound)."""
    reads = int(notes.get("file_private_first_reads", 0))
    if not reads:
        return {}
    around = notes.get("file_private_read_neighbours")
    around = 15 * reads if around is None else int(around)
    return {"fault_minor": reads, "fault_around_pages": around}


def _pt_bytes(m) -> int:
    md = m.metadata()
    return sum(md[k][1] for k in PT_STRUCTS if k in md)


def _sample(m, peak, peak_total, peak_pt):
    md = m.metadata()
    for k, (n, nb) in md.items():
        if nb > peak.get(k, 0):
            peak[k] = nb
    total = sum(nb for n, nb in md.values())
    pt = sum(md[k][1] for k in PT_STRUCTS if k in md)
    return peak, max(peak_total, total), max(peak_pt, pt)


def replay_all(trace, provenance: dict, designs=None, calibration=None) -> list[dict]:
    """Every chosen design's result (default: every installed design but the reference)."""
    from mmbench.cli import known_designs
    from mmbench.runner import default_backends
    from mmbench.workloads._measure import load_calibration
    designs = list(designs) if designs else default_backends()
    names, _ = known_designs()
    bad = [d for d in designs if d not in names]
    if bad:
        raise errors.InvalidArgument(f"unknown design(s) {', '.join(map(repr, bad))}; "
                                     f"known designs: {', '.join(names)}")
    cal, where = load_calibration(calibration)
    if calibration and cal is None:
        raise errors.InvalidArgument(f"calibration {calibration}: {where}")
    out = [replay_one(trace, d, cal, provenance.get("notes", {}), provenance.get("host"))
           for d in designs]
    for r in out:
        r["calibration"] = where if cal is not None else None
    return out


# ----------------------------------------------------------------- the bias
def bias(provenance: dict, result_faults: int | None = None) -> dict:
    """The numbers behind the bias note.

    ``unseen_max``: inherited pages the children never faulted on — before any
    reduction, the most accesses the trace can miss.  With the recorder's
    accessed-bit samples, ``added`` of them became READs in the trace and what
    remains unknown is ``remaining_max`` (children never sampled) plus whatever
    a sampled child touched after its last sample."""
    b = provenance.get("bias", {})
    unseen = int(b.get("inherited_unfaulted", 0))
    faults = result_faults or provenance.get("host", {}).get("faults", 0) or 1
    reduced = "reads_added" in b
    remaining = int(b.get("unsampled_unfaulted", 0)) if reduced else unseen
    return {"forks": int(b.get("forks", 0)), "inherited": int(b.get("inherited_pages", 0)),
            "unseen_max": unseen, "added": int(b.get("reads_added", 0)),
            "sampled": int(b.get("children_sampled", 0)),
            "unsampled": int(b.get("children_unsampled", 0)),
            "remaining_max": remaining, "share_max": unseen / faults,
            "remaining_share": remaining / faults,
            "reduced_by": b.get("reduced_by", "nothing (recorded without accessed-bit sampling)")}


def bias_note(provenance: dict, result_faults: int | None = None) -> str:
    b = bias(provenance, result_faults)
    if not b["forks"]:
        return "bias: no fork in this trace, so no access hides behind copied PTEs"
    head = (f"bias: {b['forks']} forks copied the PTEs of {b['inherited']:,} pages; the children "
            f"never faulted on {b['unseen_max']:,} of them ({100 * b['share_max']:.1f}% of the "
            f"replay's faults): accesses Linux took no fault for, which a design that does not "
            f"copy PTEs at fork would fault on.")
    if b["reduced_by"].startswith("nothing"):
        return head + " Not reduced (recorded without accessed-bit sampling): a design that " \
                      "refaults them is undercharged by up to that many faults."
    return (head + f" Reduced by {b['reduced_by']}: {b['added']:,} reads added for "
            f"{b['sampled']} sampled children.  Remaining: up to {b['remaining_max']:,} pages "
            f"({100 * b['remaining_share']:.1f}%) in {b['unsampled']} children that ended before "
            f"their first sample, plus what sampled children touched after their last sample (about a millisecond).")


# ----------------------------------------------------------------- the table
def _ms(ns):
    return "" if ns is None else f"{ns / 1e6:.2f}"


def table(results: list[dict], provenance: dict, tablefmt: str = "simple") -> str:
    from tabulate import tabulate
    base = next((r for r in results if r["design"] == "linux" and "unsupported" not in r), None)
    rows = []
    for r in results:
        if "unsupported" in r:
            rows.append([r["design"], "unsupported: " + r["unsupported"]])
            continue
        k = r["kinds"]
        row = [r["design"], f"{r['faults']:,}", f"{k['zero_fill']:,}", f"{k['zero_page']:,}",
               f"{k['cow']:,}", f"{k['minor']:,}", f"{r['forks']}", f"{r['fork_ptes_copied']:,}",
               f"{r['fork_model_ns'] / 1e3:.0f}", f"{r['peak_total'] / 1024:,.0f}",
               f"{r['final_total'] / 1024:,.0f}"]
        if "est_total_ns" in r:
            row += [_ms(r["est_fault_ns"]), _ms(r["est_fork_ns"]), _ms(r["est_total_ns"])]
            if base is not None and base.get("est_total_ns"):
                row.append(f"{r['est_total_ns'] / base['est_total_ns']:.2f}")
        rows.append(row)
    head = ["design", "faults", "zero_fill", "zero_page", "cow", "minor", "forks",
            "fork PTEs", "fork model us", "peak meta KiB", "final meta KiB"]
    if any("est_total_ns" in r for r in results):
        head += ["est fault ms", "est fork ms", "est total ms", "x linux"]
    out = [f"trace: {provenance.get('command', '?')} (kernel {provenance.get('kernel', '?')}, "
           f"THP {provenance.get('thp', '?')}, {provenance.get('duration_s', 0):.2f} s)",
           tabulate(rows, headers=head, tablefmt=tablefmt, disable_numparse=True)]
    h = provenance.get("host")
    if h:
        hk = h.get("faults_by_kind", {})
        out.append(f"host: {h.get('faults', 0):,} faults ("
                   + ", ".join(f"{k} {v:,}" for k, v in sorted(hk.items())) + "); as replayed: "
                   + ", ".join(f"{k} {v:,}" for k, v in sorted(h.get("faults_by_replay_kind", {}).items()))
                   + f"; peak VmPTE {h.get('vmpte_peak_max_kb', 0)} kB (one process), "
                   f"{h.get('vmpte_total_peak_kb', 0)} kB (all at once); "
                   f"{h.get('process_forks', 0)} forks, {h.get('fork_syscall_ns', 0) / 1e6:.2f} ms in "
                   f"the system calls, {h.get('fork_copy_ns', 0) / 1e6:.2f} ms of it in copy_process")
    structs = sorted({s for r in results if "unsupported" not in r for s in r["peak_metadata"]})
    if structs:
        srows = [[s] + [f"{r['peak_metadata'].get(s, 0) / 1024:,.1f}" if "unsupported" not in r else ""
                        for r in results] for s in structs]
        out.append("peak metadata by struct (KiB):")
        out.append(tabulate(srows, headers=["struct"] + [r["design"] for r in results],
                            tablefmt=tablefmt, disable_numparse=True))
    faults = base["faults"] if base else None
    out.append(bias_note(provenance, faults))
    notes = provenance.get("notes", {})
    if notes:
        out.append("notes: " + "; ".join(f"{v:,} x {k}" for k, v in sorted(notes.items())))
    if results and results[0].get("calibration") is None:
        out.append("estimates: none (no host calibration; run `mmbench calibrate`)")
    return "\n".join(out)


# ----------------------------------------------------------------- validation against the host
TIME_NOTE = ("host time: fault windows from perf's page-faults to minor-faults events (the "
             "fault handler's start to the end of handle_mm_fault), fork windows from the "
             "parent's mmap write-lock to its release inside the fork system call (dup_mmap: "
             "no perf work inside; in traces recorded before, from the fork system call's entry "
             "to task:task_newtask, the end of copy_process), each less the time its thread was "
             "switched out; corrected by the recordloop measured with and without the probes "
             "when the trace was recorded (tracing_overhead)")
#: replay kinds the host timed that the replay does not take as faults
_UNREPLAYED = ("dropped", "none")


def host_time(provenance: dict) -> dict:
    """The host's own time in faults and forks, corrected for the probes (see
    record.overhead_from), in ns; the reason in "why" where it cannot be had."""
    h = provenance.get("host", {})
    ov = provenance.get("tracing_overhead")
    ft = h.get("fault_time")
    out: dict = {}
    if not ft:
        out["fault_why"] = "recorded without fault timing (re-record with this mmbench)"
    elif not ov:
        out["fault_why"] = "recorded without the tracing-overhead loop"
    else:
        n = sum(v for k, v in ft["n_by_replay_kind"].items() if k not in _UNREPLAYED)
        ns = sum(v for k, v in ft["ns_by_replay_kind"].items() if k not in _UNREPLAYED)
        med = ft["median_ns_by_replay_kind"]
        typical = sum(v * (med[k] + ov["fault_add_ns"]) for k, v in ft["n_by_replay_kind"].items()
                      if k not in _UNREPLAYED)
        out.update(fault_ns=ns + n * ov["fault_add_ns"], fault_raw_ns=ns, faults_timed=n,
                   fault_typical_ns=typical,
                   fault_by_kind={k: (ft["n_by_replay_kind"][k],
                                      ft["ns_by_replay_kind"][k] / ft["n_by_replay_kind"][k]
                                      + ov["fault_add_ns"],
                                      ft["median_ns_by_replay_kind"][k] + ov["fault_add_ns"])
                                  for k in sorted(ft["n_by_replay_kind"]) if k not in _UNREPLAYED})
    forks = len(h.get("fork_copy_windows_ns", []))
    if not h.get("process_forks"):
        out["fork_why"] = "no fork"
    elif "fork_copy_windows_ns" not in h or not ov:
        out["fork_why"] = "recorded without the tracing-overhead loop"
    else:
        w = sum(h["fork_copy_windows_ns"])
        out.update(forks_timed=forks, fork_raw_ns=w, fork_ns=w + forks * ov["fork_add_ns"],
                   fork_beyond_empty_ns=w - forks * ov["windows"]["fork_ns"],
                   fork_from="copy_process windows")
        dup = h.get("fork_dup_mmap_windows_ns")
        if dup and len(dup) == forks and "fork_dup_add_ns" in ov:
            # dup_mmap windows hold none of perf's work: the host's fork time is theirs
            # plus the rest of an empty fork (the loop, untraced); the copy_process
            # windows' figures are kept beside them
            d = sum(dup)
            out.update(fork_copy_window_ns=out["fork_ns"],
                       fork_copy_beyond_empty_ns=out["fork_beyond_empty_ns"],
                       fork_dup_ns=d, fork_ns=d + forks * ov["fork_dup_add_ns"],
                       fork_beyond_empty_ns=d - forks * ov["windows"]["fork_dup_mmap_ns"],
                       fork_from="dup_mmap windows")
    return out


def _err(model, host):
    if host is None or model is None:
        return None
    if host == 0:
        return 0.0 if model == 0 else None
    return (model - host) / host


def validate(trace, provenance: dict, calibration=None, design: str = "linux") -> dict:
    """The linux design against the host it was recorded on: faults by kind (host
    vocabulary, and the vocabulary after the converter's mapping choices), page-table
    bytes of the largest process, estimated fork time against the host's fork syscalls."""
    from mmbench.workloads._measure import load_calibration
    cal, where = load_calibration(calibration)
    r = replay_one(trace, design, cal, provenance.get("notes", {}), provenance.get("host"))
    if "unsupported" in r:
        raise errors.NotSupported(f"{design}: {r['unsupported']}")
    h = provenance.get("host", {})
    out = {"program": provenance.get("command", "?"), "design": design,
           "faults": (r["faults"], h.get("faults")), "kinds": {}, "replay_kinds": {}}
    for kind in sorted(set(h.get("faults_by_kind", {})) | {k for k, v in r["kinds"].items() if v}):
        if kind == "present_read":
            continue
        out["kinds"][kind] = (r["kinds"].get(kind, 0), h.get("faults_by_kind", {}).get(kind, 0))
    for kind in sorted(set(h.get("faults_by_replay_kind", {})) | {k for k, v in r["kinds"].items() if v}):
        if kind == "none":
            continue
        out["replay_kinds"][kind] = (r["kinds"].get(kind, 0),
                                     h.get("faults_by_replay_kind", {}).get(kind, 0))
    # page tables: all processes at once, at the peak (VmPTE summed over the program's
    # processes, sampled every POLL_S by the recorder; the model's sampled between ops)
    out["pt_kb"] = (r["peak_pt_bytes"] / 1024, h.get("vmpte_total_peak_kb"))
    ht = host_time(provenance)
    est = cal is not None
    out["fault_ms"] = (r["est_fault_ns"] / 1e6 if est else None,
                       ht["fault_ns"] / 1e6 if "fault_ns" in ht else None)
    out["fault_typical_ms"] = (out["fault_ms"][0],
                               ht["fault_typical_ns"] / 1e6 if "fault_ns" in ht else None)
    out["fork_ms"] = (r["est_fork_ns"] / 1e6 if est else None,
                      ht["fork_ns"] / 1e6 if "fork_ns" in ht else None)
    # the fork's address-space work alone: beyond an empty process's fork, on both sides
    from mmbench import estimate as est_mod
    base = est_mod._price(cal["costs"], "fork_base") if est else None
    out["fork_copy_ms"] = ((r["est_fork_ns"] - r["forks"] * base[0]) / 1e6 if base else None,
                           ht["fork_beyond_empty_ns"] / 1e6 if "fork_beyond_empty_ns" in ht else None)
    out["host_time"] = ht
    out["overhead"] = provenance.get("tracing_overhead")
    if cal is not None and provenance.get("machine"):
        from mmbench import calibration_search
        out["machine_mismatch"] = calibration_search.mismatch(cal.get("machine", {}),
                                                              provenance["machine"])
    out["est_fault_ms"] = out["fault_ms"][0]
    out["calibration"] = where if cal is not None else None
    return out


def time_lines(v: dict, provenance: dict | None = None, note: bool = True) -> str:
    """The host-time side of a validation, in words: per fault kind the host's corrected
    mean and median, the probes' cost and the correction, or why there is none."""
    ht = v.get("host_time", {})
    out = [TIME_NOTE + "."] if note else []
    if v.get("machine_mismatch"):
        out.append("WARNING: the calibration was not made on the machine that recorded this "
                   "trace (" + v["machine_mismatch"].replace("this host", "recorded on") + "): "
                   "its estimates are not comparable with the host's time")
    if "fault_by_kind" in ht:
        out.append(f"host faults timed: {ht['faults_timed']:,}; per kind, corrected ns per fault "
                   "(mean / median): " + "; ".join(
                       f"{k} {n:,} x {mean:,.0f} / {med:,.0f}" for k, (n, mean, med)
                       in ht["fault_by_kind"].items()))
        ft = (provenance or {}).get("host", {}).get("fault_time") or {}
        add = ((provenance or {}).get("tracing_overhead") or {}).get("fault_add_ns", 0)
        if ft.get("n_by_kind"):
            hmed = ft.get("median_ns_by_kind", {})
            out.append("in the host's own kinds, corrected ns per fault (mean" +
                       (" / median" if hmed else "") + "): " + "; ".join(
                           f"{k} {n:,} x {ft['ns_by_kind'][k] / n + add:,.0f}"
                           + (f" / {hmed[k] + add:,.0f}" if k in hmed else "")
                           for k, n in sorted(ft["n_by_kind"].items()) if n))
    else:
        out.append(f"host time in faults: n/a ({ht.get('fault_why', '?')})")
    if "fork_dup_ns" in ht:
        out.append(f"host forks timed: {ht['forks_timed']}; dup_mmap windows {ht['fork_dup_ns'] / 1e6:.2f} ms, "
                   f"with the rest of an empty fork {ht['fork_ns'] / 1e6:.2f} ms, beyond an empty "
                   f"fork {ht['fork_beyond_empty_ns'] / 1e6:.2f} ms (copy_process windows "
                   f"{ht['fork_raw_ns'] / 1e6:.2f} ms, corrected {ht['fork_copy_window_ns'] / 1e6:.2f} ms, "
                   f"beyond an empty fork {ht['fork_copy_beyond_empty_ns'] / 1e6:.2f} ms)")
    elif "fork_ns" in ht:
        out.append(f"host forks timed: {ht['forks_timed']}, windows {ht['fork_raw_ns'] / 1e6:.2f} ms, "
                   f"corrected {ht['fork_ns'] / 1e6:.2f} ms, beyond an empty fork "
                   f"{ht['fork_beyond_empty_ns'] / 1e6:.2f} ms")
    elif ht.get("fork_why") != "no fork":
        out.append(f"host time in forks: n/a ({ht.get('fork_why', '?')})")
    ov = (provenance or {}).get("tracing_overhead") or v.get("overhead")
    if ov:
        u, w = ov["untraced"], ov["windows"]
        out.append(f"probes ({ov['loop']}): a zero-page read fault takes {u['read_fault_ns']:,.0f} ns "
                   f"untraced, its window {w['read_fault_ns']:,.0f} ns -> {ov['fault_add_ns']:+,.0f} ns "
                   f"per fault window; an empty fork {u['fork_cpu_ns'] / 1e3:,.0f} us of CPU untraced, its "
                   f"window {w['fork_ns'] / 1e3:,.0f} us -> {ov['fork_add_ns'] / 1e3:+,.0f} us per fork "
                   f"window; check on zero-fill: window + correction {ov['write_check_ns'][0]:,.0f} ns "
                   f"against {ov['write_check_ns'][1]:,.0f} ns untraced; the probes cost the program "
                   f"{ov['probe_cost_per_fault_ns']:+,.0f} ns per fault and "
                   f"{ov['probe_cost_per_fork_ns'] / 1e3:+,.0f} us per fork")
    return "\n".join(out)


def validation_table(rows: list[dict], tablefmt: str = "github") -> str:
    """One row per program: the error of the linux replay against the host, in percent."""
    from tabulate import tabulate

    def pct(pair):
        e = _err(*pair) if pair and pair[0] is not None else None
        return "n/a" if e is None else f"{100 * e:+.1f}%"

    def both(pair, fmt="{:,}"):
        if not pair or pair[0] is None or pair[1] is None:
            return "n/a"
        return f"{fmt.format(pair[0])} / {fmt.format(pair[1])} ({pct(pair)})"
    body = []
    for v in rows:
        kinds = "; ".join(f"{k} {both(p)}" for k, p in v["kinds"].items())
        rkinds = "; ".join(f"{k} {pct(p)}" for k, p in v["replay_kinds"].items())
        body.append([v["name"], both(v["faults"]), kinds, rkinds,
                     both(v["pt_kb"], "{:,.0f}"), both(v["fault_ms"], "{:.2f}"),
                     both(v["fault_typical_ms"], "{:.2f}"),
                     both(v["fork_ms"], "{:.2f}"), both(v["fork_copy_ms"], "{:.2f}")])
    head = ["program", "faults model / host", "by kind, host vocabulary (model / host)",
            "by kind, as replayed", "peak page tables kB, all processes (model / host)",
            "time in faults ms (estimated / host: every fault)",
            "time in faults ms (estimated / host: median per kind x count)",
            "time in forks ms (estimated / host)",
            "forks beyond an empty fork ms (estimated / host)"]
    return tabulate(body, headers=head, tablefmt=tablefmt, disable_numparse=True)


def report_markdown(paths=None) -> list[str]:
    """Markdown lines for the report: per shipped trace its bias note, then the table of
    the linux design's errors against the host (one replay per trace)."""
    from pathlib import Path
    if paths is None:
        from mmbench.workloads.real_programs import REAL
        paths = sorted(Path(REAL).glob("*.npz"))
    rows, out = [], ["### Real programs: what the traces miss, and the linux design against the host", ""]
    for p in paths:
        trace, prov = load_recording(p)
        v = validate(trace, prov)
        v["name"] = Path(p).stem
        rows.append(v)
        cmd = prov.get("command", "?")
        cmd = cmd if len(cmd) <= 60 else cmd[:59] + "…"
        out.append(f"* **{v['name']}** (`{cmd}`, {prov.get('duration_s', 0):.1f} s "
                   f"recorded): {bias_note(prov)}")
    if not rows:
        return []
    out += ["", "Error = model / host − 1.  Host fault kinds are classified per fault from the "
            "stream; \"as replayed\" is the kind each fault must take after the recorder's mapping "
            "choices (file-backed private memory is replayed as anonymous memory: its page-cache "
            "hits become zero-page reads).  " + TIME_NOTE + ".", "",
            validation_table(rows), ""]
    return out
