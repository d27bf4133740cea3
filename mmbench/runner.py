"""`mmbench run` and `mmbench compare`: the suite on one machine, no asv needed.

``run`` walks the workload catalogue (mmbench.workloads) × the chosen designs
for one profile, measures each combination (mmbench.workloads._measure) and
writes one results file (mmbench.results).  ``compare`` reads one results
file and prints workloads × backends, or two and prints what changed.

Profiles size the work: ``tiny`` (seconds; tests), ``quick`` (about half a
minute per design on a small machine), ``full`` (larger grids, more repeats),
``large`` (only the workloads that declare it: 16 GiB processes, the scale the
simulator must hold; see docs/performance.md).
"""
from __future__ import annotations

import fnmatch
import json
import math
import time
import warnings
from pathlib import Path
from typing import List, Optional

import typer

from mmbench import errors, results

PROFILES = {"tiny": 1, "quick": 3, "full": 5, "large": 1}      # profile -> repeats of measured runs
BUDGET_S = {"tiny": 2.0, "quick": 3.0, "full": 60.0, "large": 0.0}  # no new repeat after this long on one combination
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


def plan(workloads, backends, profile) -> list[tuple]:
    """[(workload, params, backend)] in the order they run: backend-major, then catalogue order."""
    return [(w, p, b) for b in backends for w in workloads for p in w.points(profile)]


def cell_key(w, p, b) -> str:
    """The name of one cell (workload × parameters × design) in a results file."""
    return f"{b}|{w.family}.{w.name}|{results.params_label(p)}"


def _weight(w, p) -> float:
    """The size of a cell, to start the big ones first on a cluster: its trace length when the
    trace is cached, else its largest parameter (nothing is generated here)."""
    from mmbench.workloads._common import cached_nops
    n = cached_nops(w, p)
    if n is not None:
        return float(n)
    nums = [abs(v) for k, v in p.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and k not in ("seed",)]
    return float(max(nums, default=1))


def run_suite(profile="quick", backends=None, patterns=None, repeats=None, calibration=None,
              progress=None, output=None, workers=1, scheduler=None, resume=None) -> dict:
    """Measure and return a results document.

    With `output` the document is written as it grows: after every finished
    cell the whole file is replaced atomically, so a run that is interrupted
    (Ctrl-C, a kill) leaves a valid results file holding every cell finished
    so far; ``resume=FILE`` reads such a file, runs only the cells it lacks
    and completes it.  ``workers > 1`` runs cells on a Dask LocalCluster of
    that many processes, ``scheduler=ADDRESS`` on an existing Dask cluster
    (mmbench.parallel); otherwise cells run one after another in this process.
    """
    from mmbench.workloads._measure import load_calibration
    if resume is not None:
        prev = results.load(resume)
        run = prev.get("run")
        if not isinstance(run, dict) or "cells" not in prev:
            raise errors.InvalidArgument(f"{resume}: not written by a resumable `mmbench run` "
                                         "(no 'run' section)")
        profile, backends, patterns = run["profile"], run["backends"], run["workloads"]
        repeats, calibration = run["repeats"], run["calibration_arg"]
        output = Path(resume) if output is None else output
    if profile not in PROFILES:
        raise errors.InvalidArgument(f"unknown profile {profile!r}; profiles: {', '.join(PROFILES)}")
    backends = list(backends) if backends else default_backends()
    if not backends:
        raise errors.InvalidArgument(
            "no design is installed besides the reference model; pass --backend reference to run it")
    if workers < 1:
        raise errors.InvalidArgument("workers must be at least 1")
    wls = select_workloads(patterns)
    reps = PROFILES[profile] if repeats is None else repeats
    if reps < 1:
        raise errors.InvalidArgument("repeats must be at least 1")
    cal, where = load_calibration(calibration)
    if calibration and cal is None:
        raise errors.InvalidArgument(f"calibration {calibration}: {where}")
    todo = plan(wls, backends, profile)
    keys = [cell_key(*c) for c in todo]
    if resume is not None:
        doc = prev
        missing_now = set(keys) - {c["key"] for c in doc["cells"]}
    else:
        doc = results.new_document(profile, [], calibration=where if cal is not None else None,
                                   notes=[] if cal is not None else [where])
        doc["run"] = {"profile": profile, "backends": backends, "workloads": list(patterns or []),
                      "repeats": repeats, "calibration_arg": None if calibration is None else str(calibration),
                      "planned": len(todo), "complete": False, "sessions": []}
        doc["cells"] = []
        missing_now = set(keys)
    book = ResultsBook(doc, keys, output)
    session = {"started": _now(), "mode": "serial" if workers == 1 and not scheduler else
               ("scheduler" if scheduler else "local-cluster"), "workers": 1 if not scheduler and workers == 1
               else workers, "cells": 0, "interrupted": False}
    doc["run"]["sessions"].append(session)
    pending = [(i, *todo[i]) for i, k in enumerate(keys) if k in missing_now]
    t0 = time.perf_counter()
    try:
        if progress:
            progress(len(keys) - len(pending), len(keys), "starting")
        if workers == 1 and not scheduler:
            session["how"] = _serial_how()
            _run_serial(book, pending, reps, cal, BUDGET_S[profile], progress, session)
        else:
            _run_dask(book, pending, reps, where if cal is not None else None, BUDGET_S[profile],
                      progress, session, workers, scheduler)
    except BaseException:
        session["interrupted"] = True
        session["elapsed_s"] = round(time.perf_counter() - t0, 3)
        book.finish()
        raise
    session["elapsed_s"] = round(time.perf_counter() - t0, 3)
    doc["elapsed_s"] = round(sum(x.get("elapsed_s", 0) for x in doc["run"]["sessions"]), 3)
    if progress:
        progress(len(keys), len(keys), "done")
    return book.finish()


def _now() -> str:
    import datetime
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _serial_how() -> dict:
    import os
    import socket
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = None
    return {"host": socket.gethostname(), "pid": os.getpid(), "cpus": cpus,
            "isolation": "one cell at a time in the mmbench process"}


def _run_serial(book, pending, reps, cal, budget, progress, session):
    from mmbench.workloads._measure import measure
    from mmbench.parallel import cell_status
    for n, (i, w, p, b) in enumerate(pending):
        if progress:
            progress(book.done(), book.total, f"{b}: {w.family}.{w.name} {results.params_label(p)}")
        t = time.perf_counter()
        recs = measure(w, p, b, repeats=reps, calibration=cal, budget_s=budget)
        book.add(i, recs, cell_status(recs), "", {"worker": "main", "wall_s": round(time.perf_counter() - t, 4)},
                 len(book.doc["run"]["sessions"]) - 1)
        session["cells"] += 1


def _run_dask(book, pending, reps, cal_path, budget, progress, session, workers, scheduler):
    from mmbench.parallel import Cluster
    with Cluster(workers, scheduler) as cl:
        session["how"] = cl.info()
        session["workers"] = session["how"]["workers"]
        book.flush()
        cells = [(i, w, p, b, _weight(w, p)) for i, w, p, b in pending]
        for res in cl.map_cells(cells, reps, cal_path, budget):
            i = res["index"]
            recs = res["records"]
            if recs is None:
                w, p, b = book.cell(i)
                recs = [results.unsupported(w.family, w.name, p, b, f"error: {res['error'].splitlines()[0]}")]
            book.add(i, recs, res["status"], res["error"], res["how"], len(book.doc["run"]["sessions"]) - 1)
            session["cells"] += 1
            if progress:
                w, p, b = book.cell(i)
                progress(book.done(), book.total, f"{b}: {w.family}.{w.name} {results.params_label(p)}")


class ResultsBook:
    """The results document of a run in progress, kept on disk after every cell.

    Each finished cell adds its records and one entry to ``cells`` (its key,
    status "ok" | "unsupported" | "error", the error text, and how it ran);
    then the whole file is written to a temporary file beside it and renamed
    over it (os.replace: a reader, or a kill, sees the old file or the new
    one, never a torn one).  Records are kept in plan order whatever order
    cells finish in, so a parallel run's file reads like a serial one's.  Each
    record is serialised once, so rewriting costs one write of the file, not
    a new JSON encoding of everything.
    """

    def __init__(self, doc, keys, path):
        self.doc, self.keys, self.path = doc, keys, None if path is None else Path(path)
        self.total = len(keys)
        self.index = {k: i for i, k in enumerate(keys)}
        self._cells = {}                   # plan index -> (cell entry, [record json])
        self._plan = None
        by_key: dict[str, list] = {}
        for r in doc["records"]:
            by_key.setdefault(_rkey(r), []).append(r)
        for c in doc["cells"]:
            i = self.index.get(c["key"])
            if i is not None:
                self._cells[i] = (c, [json.dumps(r) for r in by_key.get(c["key"], [])])
        self._extra = [r for k, rs in by_key.items() if k not in self.index for r in rs]

    def cell(self, i):
        if self._plan is None:
            run = self.doc["run"]
            self._plan = plan(select_workloads(run["workloads"] or None), run["backends"], run["profile"])
        return self._plan[i]

    def done(self) -> int:
        return len(self._cells)

    def complete(self) -> bool:
        return len(self._cells) == self.total

    def add(self, i, records, status, error, how, session):
        for r in records:
            results._check_record(r, f"cell {self.keys[i]}")
        entry = {"key": self.keys[i], "status": status, "session": session, **({"error": error} if error else {}),
                 "how": how}
        self._cells[i] = (entry, [json.dumps(r) for r in records])
        self.flush()

    def flush(self, sync=False):
        """Write the file as it stands (nothing without a path)."""
        order = sorted(self._cells)
        self.doc["cells"] = [self._cells[i][0] for i in order]
        self.doc["run"]["done"] = len(order)
        self.doc["run"]["complete"] = len(order) == self.total
        if self.path is None:
            return
        head = {k: v for k, v in self.doc.items() if k != "records"}
        texts = self._texts(order)
        text = json.dumps(head, indent=1)[:-2] + ',\n "records": [\n  ' + ",\n  ".join(texts) + "\n ]\n}\n"
        write_atomic(self.path, text, sync=sync)

    def _texts(self, order):
        return [t for i in order for t in self._cells[i][1]] + [json.dumps(r) for r in self._extra]

    def finish(self) -> dict:
        """Write the file a last time (synced to disk) and return the document with its records."""
        self.flush(sync=True)
        self.doc["records"] = [json.loads(t) for t in self._texts(sorted(self._cells))]
        return self.doc


def write_atomic(path: Path, text: str, sync=False) -> None:
    """Replace `path` by `text`: a temporary file beside it, renamed over it."""
    import os
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        if sync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def _rkey(r) -> str:
    return f"{r['backend']}|{r['family']}.{r['workload']}|{results.params_label(r['params'])}"


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


def compare_two(a, b, patterns=None, threshold=None, tablefmt="simple") -> str:
    """What changed between two results files (mmbench.compare.compare_results), optionally
    restricted to the metrics matching `patterns`."""
    from mmbench.compare import DEFAULT_THRESHOLD, compare_results
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
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
        profile: str = typer.Option("quick", help="tiny | quick | full | large"),
        backend: Optional[List[str]] = typer.Option(
            None, "--backend", "-b", help="design to run (repeatable); default: every installed design "
            "except the reference model"),
        workload: Optional[List[str]] = typer.Option(
            None, "--workload", "-w", help="glob over workload, family or family.workload (repeatable)"),
        output: Path = typer.Option(Path(DEFAULT_OUTPUT), "--output", "-o", help="results file to write"),
        repeats: Optional[int] = typer.Option(None, help="measured repeats (default by profile)"),
        calibration: Optional[Path] = typer.Option(None, help="host calibration file for estimates"),
        list_: bool = typer.Option(False, "--list", help="list the workloads of the profile and exit"),
        workers: int = typer.Option(1, "--workers", "-j", help="run cells on a Dask LocalCluster of this "
                                    "many processes (1: one after another in this process)"),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", help="address of an existing Dask "
                                                "scheduler to run the cells on (e.g. tcp://host:8786)"),
        resume: Optional[Path] = typer.Option(None, "--resume", help="complete an interrupted run: run only "
                                              "the cells this results file lacks, with its settings"),
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
        if workers < 1:
            fail("--workers must be at least 1")
        if resume is not None:
            if backend or workload or repeats is not None or calibration is not None or profile != "quick":
                fail("--resume takes the profile, designs, workloads, repeats and calibration from the file")
            if not resume.is_file():
                fail(f"--resume {resume}: no such file")
            output = resume
        for name in _not_installed(backend or []):
            typer.echo(f"mmbench: warning: backend {name!r} is not installed; its rows are recorded "
                       "as unsupported", err=True)
        try:
            doc = _run_with_progress(profile, backend, workload, repeats, calibration, output=output,
                                     workers=workers, scheduler=scheduler, resume=resume)
        except errors.InvalidArgument as e:
            fail(str(e))
        except OSError as e:
            fail(f"cannot write {output}: {e.strerror or e}")
        except KeyboardInterrupt:
            typer.echo(f"mmbench: interrupted; {output} holds every finished cell; "
                       f"complete it with: mmbench run --resume {output}", err=True)
            raise typer.Exit(130)
        n = len(doc["records"])
        nu = sum(r["kind"] == "unsupported" for r in doc["records"])
        crashed = [c["key"] for c in doc["cells"] if c["status"] == "error"]
        typer.echo(f"wrote {output}: {n} records ({nu} unsupported) in {doc['elapsed_s']:.1f} s")
        if crashed:
            typer.echo(f"mmbench: {len(crashed)} cell(s) crashed, recorded with their error: "
                       + ", ".join(crashed[:5]) + (" …" if len(crashed) > 5 else ""), err=True)

    @app.command("compare")
    def compare_cmd(
        first: Path = typer.Argument(..., help="results file"),
        second: Optional[Path] = typer.Argument(None, help="a second results file: show what changed"),
        metric: Optional[List[str]] = typer.Option(None, "--metric", "-m", help="metric glob (repeatable)"),
        threshold: float = typer.Option(0.10, help="two files: a change must exceed this fraction "
                                        "(and be significant over the repeats)"),
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


def _run_with_progress(profile, backends, patterns, repeats, calibration, **how) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    select_workloads(patterns)             # bad arguments fail before the progress bar starts
    if not backends and not default_backends() and how.get("resume") is None:
        run_suite(profile, backends, patterns, repeats, calibration)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=False) as bar:
        task = bar.add_task("mmbench run", total=None)

        def progress(i, n, what):
            bar.update(task, completed=i, total=n, description=what[:70])
        return run_suite(profile, backends, patterns, repeats, calibration, progress, **how)
