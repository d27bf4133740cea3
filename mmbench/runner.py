"""`mmbench run` and `mmbench compare`: the suite on one machine, no asv needed.

``run`` walks the workload catalogue (mmbench.workloads) × the chosen designs
for one profile, measures each combination (mmbench.workloads._measure) and
writes one results file (mmbench.results).  ``compare`` reads one results
file and prints workloads × backends, or two and prints what changed.

Profiles size the work: ``tiny`` (seconds; tests), ``quick`` (about half a
minute per design on a small machine), ``full`` (larger grids, more repeats).
"""
from __future__ import annotations

import fnmatch
import math
import time
import warnings
from pathlib import Path
from typing import List, Optional

import typer

from mmbench import errors, results

PROFILES = {"tiny": 1, "quick": 3, "full": 5}      # profile -> repeats of measured runs
BUDGET_S = {"tiny": 2.0, "quick": 3.0, "full": 60.0}  # no new repeat after this long on one combination
DEFAULT_OUTPUT = "results/latest.json"
SPEC_BACKEND = "reference"                        # the specification, not a design: opt-in only


# ---------------------------------------------------------------- selection
def _catalogue():
    from mmbench.workloads._common import catalogue
    return catalogue()


def default_backends() -> list[str]:
    """Every installed design except the reference, plus registered ones that failed to load."""
    from mmbench import registry
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        names = registry.names()
        broken = list(registry.broken())
    return [n for n in names if n != SPEC_BACKEND] + [n for n in broken if n not in names]


def _not_installed(names) -> list[str]:
    from mmbench import registry
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        known = set(registry.names()) | set(registry.broken())
    return [n for n in names if n not in known]


def select_workloads(patterns: list[str] | None) -> list:
    """Workloads whose name or "family.name" matches any pattern (all when none)."""
    cat = list(_catalogue().values())
    if not patterns:
        return cat
    chosen = [w for w in cat if any(fnmatch.fnmatch(w.name, p) or fnmatch.fnmatch(f"{w.family}.{w.name}", p)
                                    or fnmatch.fnmatch(w.family, p) for p in patterns)]
    if not chosen:
        names = ", ".join(sorted(w.name for w in cat))
        raise errors.InvalidArgument(f"no workload matches {' '.join(patterns)!r}; workloads: {names}")
    return chosen


def design_notes(backends) -> list[str]:
    """What each design says about itself for readers of the results (its class's
    ``notes``: its own choices where its source defines nothing, simplifications)."""
    from mmbench import registry
    out = []
    for b in backends:
        try:
            out += list(getattr(registry.load(b), "notes", ()) or ())
        except errors.MMError:
            pass
    return out


def plan(workloads, backends, profile) -> list[tuple]:
    """[(workload, params, backend)] in the order they run: backend-major, then catalogue order."""
    return [(w, p, b) for b in backends for w in workloads for p in w.points(profile)]


def run_suite(profile="quick", backends=None, patterns=None, repeats=None, calibration=None,
              progress=None) -> dict:
    """Measure and return a results document (not yet saved)."""
    from mmbench.workloads._measure import load_calibration, measure
    if profile not in PROFILES:
        raise errors.InvalidArgument(f"unknown profile {profile!r}; profiles: {', '.join(PROFILES)}")
    backends = list(backends) if backends else default_backends()
    if not backends:
        raise errors.InvalidArgument(
            "no design is installed besides the reference model; pass --backend reference to run it")
    wls = select_workloads(patterns)
    reps = PROFILES[profile] if repeats is None else repeats
    if reps < 1:
        raise errors.InvalidArgument("repeats must be at least 1")
    cal, where = load_calibration(calibration)
    if calibration and cal is None:
        raise errors.InvalidArgument(f"calibration {calibration}: {where}")
    notes = ([] if cal is not None else [where]) + design_notes(backends)
    todo = plan(wls, backends, profile)
    records = []
    for i, (w, p, b) in enumerate(todo):
        if progress:
            progress(i, len(todo), f"{b}: {w.family}.{w.name} {results.params_label(p)}")
        records += measure(w, p, b, repeats=reps, calibration=cal, budget_s=BUDGET_S[profile])
    if progress:
        progress(len(todo), len(todo), "done")
    return results.new_document(profile, records, calibration=where if cal is not None else None,
                                notes=notes)


def catalogue_text(profile: str) -> str:
    """The workloads, what each stands for, and their parameter sets in `profile`."""
    lines = []
    for w in _catalogue().values():
        dev = " (needs devices)" if w.needs_devices else ""
        lines.append(f"{w.family}.{w.name}{dev}: {w.summary}")
        for p in w.points(profile):
            lines.append(f"    {results.params_label(p)}")
    return "\n".join(lines)


# ---------------------------------------------------------------- compare
HEADLINE = ("*.median_ns", "*.p99_ns", "fork.total_ns", "all.total_ns", "*.ns_per_child", "*.GBps",
            "*.estimated_ns", "metadata.total_bytes", "metadata.bytes_per_resident_page", "*.faults")
KIND_MARK = {"exact": "", "measured": " m", "estimated": " e"}


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, int) or float(v).is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    a = abs(v)
    return f"{v:.3g}" if a < 1000 else f"{v:,.0f}"


def _metric_wanted(metric, patterns) -> bool:
    return any(fnmatch.fnmatch(metric, p) for p in patterns)


def table_one(doc, patterns=HEADLINE, tablefmt="simple") -> str:
    """Workloads × metrics as rows, backends as columns; unsupported shown as such."""
    from tabulate import tabulate
    recs = doc["records"]
    backends = list(dict.fromkeys(r["backend"] for r in recs))
    unsup = {(r["workload"], results.params_label(r["params"]), r["backend"]): r["note"]
             for r in recs if r["kind"] == "unsupported" and r["metric"] == "*"}
    rows: dict[tuple, dict] = {}
    for r in recs:
        if r["metric"] == "*" or not _metric_wanted(r["metric"], patterns):
            continue
        key = (r["family"], r["workload"], results.params_label(r["params"]),
               f"{r['metric']} [{r['unit']}]" if r["unit"] else r["metric"])
        cell = "unsupported" if r["value"] is None else _fmt(r["value"]) + KIND_MARK[r["kind"]]
        rows.setdefault(key, {})[r["backend"]] = cell
    out = []
    for (fam, wl, params, metric), cells in rows.items():
        line = [fam, wl, params, metric]
        for b in backends:
            line.append(cells.get(b) or ("unsupported" if (wl, params, b) in unsup else "-"))
        out.append(line)
    for (wl, params, b), why in unsup.items():
        if not any(k[1] == wl and k[2] == params for k in rows):
            line = ["", wl, params, "(all)"] + ["unsupported" if x == b else "-" for x in backends]
            out.append(line)
    head = ["family", "workload", "params", "metric [unit]"] + backends
    legend = "m = measured (model time on this machine), e = estimated, plain = exact"
    notes = sorted({f"{b}: {why}" for (_, _, b), why in unsup.items()})
    tail = "\n".join(["", legend] + (["unsupported:"] + [f"  {n}" for n in notes] if notes else []))
    return tabulate(out, headers=head, tablefmt=tablefmt, disable_numparse=True) + "\n" + tail


def compare_two(a, b, patterns=None, threshold=0.0, tablefmt="simple") -> str:
    """What changed between two results files (mmbench.report.compare_results), optionally
    restricted to the metrics matching `patterns`."""
    from mmbench.report import compare_results
    if patterns:
        keep = lambda d: {**d, "records": [r for r in d["records"]
                                           if r["metric"] == "*" or _metric_wanted(r["metric"], patterns)]}
        a, b = keep(a), keep(b)
    return compare_results(a, b, tablefmt=tablefmt, threshold=threshold)


# ---------------------------------------------------------------- commands
def register(app: typer.Typer) -> None:
    from mmbench.cli import fail

    @app.command("run")
    def run_cmd(
        profile: str = typer.Option("quick", help="tiny | quick | full"),
        backend: Optional[List[str]] = typer.Option(
            None, "--backend", "-b", help="design to run (repeatable); default: every installed design "
            "except the reference model"),
        workload: Optional[List[str]] = typer.Option(
            None, "--workload", "-w", help="glob over workload, family or family.workload (repeatable)"),
        output: Path = typer.Option(Path(DEFAULT_OUTPUT), "--output", "-o", help="results file to write"),
        repeats: Optional[int] = typer.Option(None, help="measured repeats (default by profile)"),
        calibration: Optional[Path] = typer.Option(None, help="host calibration file for estimates"),
        list_: bool = typer.Option(False, "--list", help="list the workloads of the profile and exit"),
    ) -> None:
        """Run the workloads on the designs and write one results file."""
        if list_:
            typer.echo(catalogue_text(profile if profile in PROFILES else "quick"))
            return
        if profile not in PROFILES:
            fail(f"unknown profile {profile!r}; profiles: {', '.join(PROFILES)}")
        if output.exists() and output.is_dir():
            fail(f"--output {output} is a directory")
        if repeats is not None and repeats < 1:
            fail("--repeats must be at least 1")
        for name in _not_installed(backend or []):
            typer.echo(f"mmbench: warning: backend {name!r} is not installed; its rows are recorded "
                       "as unsupported", err=True)
        try:
            doc = _run_with_progress(profile, backend, workload, repeats, calibration)
        except errors.InvalidArgument as e:
            fail(str(e))
        try:
            results.save(output, doc)
        except OSError as e:
            fail(f"cannot write {output}: {e.strerror or e}")
        n = len(doc["records"])
        nu = sum(r["kind"] == "unsupported" for r in doc["records"])
        typer.echo(f"wrote {output}: {n} records ({nu} unsupported) in {doc['elapsed_s']:.1f} s")

    @app.command("compare")
    def compare_cmd(
        first: Path = typer.Argument(..., help="results file"),
        second: Optional[Path] = typer.Argument(None, help="a second results file: show what changed"),
        metric: Optional[List[str]] = typer.Option(None, "--metric", "-m", help="metric glob (repeatable)"),
        threshold: float = typer.Option(0.0, help="two files: hide changes smaller than this fraction"),
        fmt: str = typer.Option("simple", "--format", help="tabulate format (simple, github, …)"),
    ) -> None:
        """One results file: workloads × backends.  Two: the ratio of every record that changed."""
        try:
            a = results.load(first)
            b = results.load(second) if second else None
        except errors.InvalidArgument as e:
            fail(str(e))
        pats = tuple(metric) if metric else HEADLINE
        if b is None:
            typer.echo(table_one(a, pats, fmt))
        else:
            typer.echo(compare_two(a, b, pats if metric else None, threshold, fmt))


def _run_with_progress(profile, backends, patterns, repeats, calibration) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    t0 = time.perf_counter()
    select_workloads(patterns)             # bad arguments fail before the progress bar starts
    if not backends and not default_backends():
        run_suite(profile, backends, patterns, repeats, calibration)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=False) as bar:
        task = bar.add_task("mmbench run", total=None)

        def progress(i, n, what):
            bar.update(task, completed=i, total=n, description=what[:70])
        doc = run_suite(profile, backends, patterns, repeats, calibration, progress)
    doc["elapsed_s"] = round(time.perf_counter() - t0, 3)
    return doc
