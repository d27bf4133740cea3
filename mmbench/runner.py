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

from mmbench import errors, hostspeed, results, rounds

PROFILES = {"tiny": 1, "quick": 3, "full": 5, "large": 1}      # profile -> repeats of measured runs
BUDGET_S = {"tiny": 2.0, "quick": 3.0, "full": 60.0, "large": 0.0}  # no new repeat after this long on one combination
DEFAULT_OUTPUT = "out/latest.json"               # out/ is ignored by git; results/ is published
SPEC_BACKEND = "reference"                        # the specification, not a design: opt-in only
THP_MODES = ("never", "madvise", "always")        # the huge-page axis in reading order


# ---------------------------------------------------------------- selection
def _catalogue():
    from mmbench import registry
    return registry.workloads()


def default_backends() -> list[str]:
    """Every installed design except the reference, plus registered ones that failed to load."""
    from mmbench import registry
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        names = registry.names()
        broken = list(registry.broken())
    return [n for n in names if n != SPEC_BACKEND] + [n for n in broken if n not in names]


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


def points(w, profile, overrides=None) -> list[dict]:
    """The parameter sets of workload `w` in `profile`, with `overrides` (``-p NAME=VALUE``)
    replacing those parameters in every set (duplicates removed)."""
    pts = w.points(profile)
    if not overrides:
        return pts
    out = []
    for p in pts:
        q = {**p, **overrides}
        if q not in out:
            out.append(q)
    return out


def check_overrides(workloads, overrides: dict) -> None:
    """InvalidArgument unless every selected workload has every overridden parameter and the
    value is of the kind the workload uses for it: the type of its default and grid values,
    ≥ 1 (or ≥ 0) when all of those are, one of them when they are strings."""
    import inspect
    for w in workloads:
        sig = inspect.signature(w.func).parameters
        known = list(sig)
        bad = [k for k in overrides if k not in known]
        if bad:
            raise errors.InvalidArgument(
                f"workload {w.name} has no parameter {', '.join(map(repr, bad))}; "
                f"its parameters: {', '.join(known)}")
        for k, v in overrides.items():
            seen = [p[k] for prof in w.grids for p in w.points(prof) if k in p]
            if sig[k].default is not inspect.Parameter.empty:
                seen.append(sig[k].default)
            why = _value_problem(v, seen)
            if why:
                raise errors.InvalidArgument(f"workload {w.name}: {k}={v!r}: {why}")


def _value_problem(v, seen) -> str | None:
    """Why `v` is not a value like those in `seen` (None: it is)."""
    if not seen or any(x is None for x in seen):
        return None
    if all(isinstance(x, bool) for x in seen):
        return None if isinstance(v, bool) else "expected true or false"
    if all(isinstance(x, int) and not isinstance(x, bool) for x in seen):
        if isinstance(v, bool) or not isinstance(v, int):
            return "expected an integer"
        low = 1 if min(seen) >= 1 else 0 if min(seen) >= 0 else None
        return f"must be ≥ {low}" if low is not None and v < low else None
    if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in seen):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return "expected a number"
        return "must be > 0" if min(seen) > 0 and v <= 0 else None
    if all(isinstance(x, str) for x in seen):
        choices = sorted(set(seen))
        return None if v in choices else f"expected one of {', '.join(choices)}"
    return None


def thp_as_parameter(overrides: dict | None, options: dict | None) -> tuple[dict, dict]:
    """(overrides, options) with a design option ``thp`` moved to the workload parameter of
    the same name: the huge-page axis is a parameter of every cell (recorded with its
    results, and with ``madvise`` the advice is written into the trace), so ``-O thp=X``
    means ``-p thp=X``.  Both given and different: InvalidArgument."""
    overrides, options = dict(overrides or {}), dict(options or {})
    if "thp" in options:
        mode = options.pop("thp")
        if overrides.get("thp", mode) != mode:
            raise errors.InvalidArgument(f"-O thp={mode} and -p thp={overrides['thp']} disagree "
                                         "(thp is the workloads' huge-page axis: give it once)")
        overrides["thp"] = mode
    return overrides, options


def plan(workloads, backends, profile, overrides=None) -> list[tuple]:
    """[(workload, params, backend)] in the order they run: backend-major, then catalogue order."""
    return [(w, p, b) for b in backends for w in workloads for p in points(w, profile, overrides)]


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
              progress=None, output=None, workers=1, scheduler=None, resume=None,
              overrides=None, options=None, interleave=True) -> dict:
    """Measure and return a results document.

    With `output` the document is written as it grows: after every finished
    cell the whole file is replaced atomically, so a run that is interrupted
    (Ctrl-C, a kill) leaves a valid results file holding every cell finished
    so far; ``resume=FILE`` reads such a file, runs only the cells it lacks
    and completes it.  ``workers > 1`` runs cells on a Dask LocalCluster of
    that many processes, ``scheduler=ADDRESS`` on an existing Dask cluster
    (mmbench.parallel); otherwise cells run one after another in this process.
    `overrides` replace workload parameters (``{"pages": 65536}``); `options`
    are design options every machine is opened with (``{"thp": "always"}``).

    With `interleave` (the default) the repeats are measured in rounds over the
    whole plan (mmbench.rounds): every cell once, then every cell again …, so
    that a cell's repeats are spread over the run and their spread includes the
    host's drift; without it a cell's repeats run one right after another.  A
    resumed run keeps the way its file was started.
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
        overrides, options = run.get("overrides") or None, run.get("options") or None
        interleave = bool(run.get("interleave", False))
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
    overrides, options = thp_as_parameter(overrides, options)
    overrides, options = overrides or None, options or None
    check_overrides(wls, overrides or {})
    reps = PROFILES[profile] if repeats is None else repeats
    if reps < 1:
        raise errors.InvalidArgument("repeats must be at least 1")
    cal, where = load_calibration(calibration)
    if calibration and cal is None:
        raise errors.InvalidArgument(f"calibration {calibration}: {where}")
    todo = plan(wls, backends, profile, overrides)
    keys = [cell_key(*c) for c in todo]
    if resume is not None:
        doc = prev
        missing_now = set(keys) - {c["key"] for c in doc["cells"]}
    else:
        notes = [] if cal is not None else [where]
        notes += design_notes(backends, sorted({p["thp"] for _w, p, _b in todo if "thp" in p},
                                               key=THP_MODES.index))
        if options:
            notes.append("design options: " + results.params_label(options))
        doc = results.new_document(profile, [], calibration=where if cal is not None else None,
                                   notes=notes)
        doc["design_options"] = dict(options or {})
        doc["run"] = {"profile": profile, "backends": backends, "workloads": list(patterns or []),
                      "repeats": repeats, "calibration_arg": None if calibration is None else str(calibration),
                      "overrides": dict(overrides or {}), "options": dict(options or {}),
                      "planned": len(todo), "complete": False, "sessions": [],
                      "interleave": bool(interleave)}
        doc["cells"] = []
        missing_now = set(keys)
    book = ResultsBook(doc, keys, output, reps)
    missing_now |= {keys[i] for i in book.unfinished()}      # resume: cells with rounds to go
    session = {"started": _now(), "mode": "serial" if workers == 1 and not scheduler else
               ("scheduler" if scheduler else "local-cluster"), "workers": 1 if not scheduler and workers == 1
               else workers, "cells": 0, "interrupted": False}
    session["repeats"] = "interleaved rounds" if interleave else "back to back"
    doc["run"]["sessions"].append(session)
    pending = [(i, *todo[i]) for i, k in enumerate(keys) if k in missing_now]
    t0 = time.perf_counter()
    try:
        if progress:
            progress(book.rounds_done(), book.rounds_planned(), "starting")
        if workers == 1 and not scheduler:
            session["how"] = _serial_how()
            hostspeed.new_run()
            _run_serial(book, pending, reps, cal, BUDGET_S[profile], progress, session, options, interleave)
        else:
            _run_dask(book, pending, reps, where if cal is not None else None, BUDGET_S[profile],
                      progress, session, workers, scheduler, options, interleave)
    except BaseException:
        session["interrupted"] = True
        session["elapsed_s"] = round(time.perf_counter() - t0, 3)
        book.finish()
        raise
    session["elapsed_s"] = round(time.perf_counter() - t0, 3)
    doc["elapsed_s"] = round(sum(x.get("elapsed_s", 0) for x in doc["run"]["sessions"]), 3)
    if progress:
        progress(book.rounds_done(), book.rounds_planned(), "done")
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


def _run_serial(book, pending, reps, cal, budget, progress, session, options=None, interleave=True):
    from mmbench.workloads._measure import measure
    from mmbench.parallel import cell_status
    nsession = len(book.doc["run"]["sessions"]) - 1
    if not interleave:
        for i, w, p, b in pending:
            if progress:
                progress(book.rounds_done(), book.rounds_planned(), _what(w, p, b))
            hostspeed.record(book.doc, hostspeed.maybe_probe())
            t = time.perf_counter()
            recs = measure(w, p, b, repeats=reps, calibration=cal, budget_s=budget, options=options)
            book.add(i, recs, cell_status(recs), "", {"worker": "main", "wall_s": round(time.perf_counter() - t, 4)},
                     nsession)
            session["cells"] += 1
        return
    for _round, (i, w, p, b) in rounds.order(pending, reps, book.rounds_of):
        if book.finished(i):                  # failed, or its budget used up, in an earlier round
            continue
        if progress:
            progress(book.rounds_done(), book.rounds_planned(), _what(w, p, b))
        hostspeed.record(book.doc, hostspeed.maybe_probe())
        t = time.perf_counter()
        recs = measure(w, p, b, repeats=1, calibration=cal, options=options)
        wall = time.perf_counter() - t
        session["cells"] += book.add_round(i, recs, "", {"worker": "main", "wall_s": round(wall, 4),
                                                         "measure_s": round(wall, 4)}, nsession, budget)
        session["rounds"] = session.get("rounds", 0) + 1


def _what(w, p, b) -> str:
    return f"{b}: {w.family}.{w.name} {results.params_label(p)}"


def _run_dask(book, pending, reps, cal_path, budget, progress, session, workers, scheduler, options,
              interleave=True):
    from mmbench.parallel import Cluster
    nsession = len(book.doc["run"]["sessions"]) - 1
    with Cluster(workers, scheduler) as cl:
        session["how"] = cl.info()
        session["workers"] = session["how"]["workers"]
        book.flush()
        cells = sorted([(i, w, p, b, _weight(w, p)) for i, w, p, b in pending], key=lambda c: -c[4])
        if interleave:
            # round-major, the largest cells first in each round; a cell that failed or used up
            # its budget is left out of later rounds (decided when its next round is submitted)
            todo = [c for _r, c in rounds.order(cells, reps, book.rounds_of)]
            stream = cl.map_cell_batches(todo, 1, cal_path, budget, options=options, ordered=True,
                                         skip=lambda c: book.finished(c[0]))
        else:
            stream = cl.map_cell_batches(cells, reps, cal_path, budget, options=options)
        for batch in stream:
            for res in batch:
                i = res["index"]
                recs = res["records"]
                hostspeed.record(book.doc, res["how"].pop("host_probe_ns", None))
                checked = recs is not None      # run_cell validated them on the worker
                if recs is None:
                    w, p, b = book.cell(i)
                    recs = [results.unsupported(w.family, w.name, p, b, f"error: {res['error'].splitlines()[0]}")]
                if interleave:
                    session["cells"] += book.add_round(i, recs, res["error"], res["how"], nsession, budget,
                                                       status=res["status"], flush=False, checked=checked)
                    session["rounds"] = session.get("rounds", 0) + 1
                else:
                    book.add(i, recs, res["status"], res["error"], res["how"], nsession, flush=False,
                             checked=checked)
                    session["cells"] += 1
            book.flush()                 # the cells that finished together, written at once
            if progress:
                w, p, b = book.cell(i)
                progress(book.rounds_done(), book.rounds_planned(), _what(w, p, b))


class ResultsBook:
    """The results document of a run in progress, kept on disk as it grows.

    Each finished cell — or round of a cell, when repeats run in rounds
    (mmbench.rounds; the entry then counts its ``rounds``) — adds its records
    and one entry to ``cells`` (its key, status "ok" | "unsupported" |
    "error", the error text, and how it ran); then the whole file is written
    to a temporary file beside it and renamed over it (os.replace: a reader,
    or a kill, sees the old file or the new one, never a torn one).  Records
    are kept in plan order whatever order cells finish in, so a parallel run's
    file reads like a serial one's.  Each record is serialised once, so
    rewriting costs one write of the file, not a new JSON encoding of
    everything.

    That write grows with the file (about 30 ms for the 7 MB of a quick run of
    every design here), and a run in rounds has a cell finish a round every
    30 ms or so: writing after each would add a third to the run.  So a write
    waits until WRITE_SHARE of the time since the last one has passed (at most
    every 20 writes' time: 0.6 s at the end of a quick run, a few ms for a
    small run); a kill loses at most the rounds of that interval, and the end
    of the run, an interruption (Ctrl-C) and `finish` always write.
    """

    WRITE_SHARE = 0.05                     # of the run's time spent rewriting the file, at most

    def __init__(self, doc, keys, path, repeats=1):
        self.doc, self.keys, self.path = doc, keys, None if path is None else Path(path)
        self.total = len(keys)
        self.repeats = repeats
        self.index = {k: i for i, k in enumerate(keys)}
        self._cells = {}                   # plan index -> (cell entry, [record json], cell json)
        self._sums = [0, 0, 0]             # over the cells: rounds held, rounds left out, finished
        self._dirty = {}                   # plan index -> positions of its records to encode again (None: all)
        self._records = {}                 # plan index -> [record] of a cell measured in rounds
        self._plan = None
        by_key: dict[str, list] = {}
        for r in doc["records"]:
            by_key.setdefault(_rkey(r), []).append(r)
        for c in doc["cells"]:
            i = self.index.get(c["key"])
            if i is not None:
                recs = by_key.get(c["key"], [])
                self._set_cell(i, (c, [json.dumps(r) for r in recs], json.dumps(c)))
                if "rounds" in c:
                    self._records[i] = [dict(r) for r in recs]   # later rounds merge into them
        self._extra = [r for k, rs in by_key.items() if k not in self.index for r in rs]
        self._written, self._write_s = -math.inf, 0.0   # when the file was last written, and how long it took

    def _tally(self, i) -> tuple:
        """Cell i's share of _sums: rounds held, rounds it leaves out, finished (0/1)."""
        if i not in self._cells:
            return 0, 0, 0
        held, fin = min(self.rounds_of(i), self.repeats), self.finished(i)
        return held, (self.repeats - held) if fin else 0, int(fin)

    def _set_cell(self, i, value) -> None:
        """Store cell i's (entry, record texts, entry text), keeping _sums current (the
        progress line asks for them after every round: a sum over the cells each time
        cost about 2.4 s of a quick run)."""
        old = self._tally(i)
        self._cells[i] = value
        self._sums = [s + n - o for s, n, o in zip(self._sums, self._tally(i), old)]

    def cell(self, i):
        if self._plan is None:
            run = self.doc["run"]
            self._plan = plan(select_workloads(run["workloads"] or None), run["backends"], run["profile"],
                              run.get("overrides") or None)
        return self._plan[i]

    def rounds_of(self, cell) -> int:
        """Rounds of repeats the cell (its plan index, or a tuple starting with it) holds;
        a cell measured all at once (no "rounds") holds them all."""
        i = cell if isinstance(cell, int) else cell[0]
        if i not in self._cells:
            return 0
        return self._cells[i][0].get("rounds", self.repeats)

    def finished(self, i) -> bool:
        """The cell needs no further round: it holds every repeat, failed, or used up its budget."""
        if i not in self._cells:
            return False
        entry = self._cells[i][0]
        return ("rounds" not in entry or entry["rounds"] >= self.repeats or entry["status"] != "ok"
                or bool(entry.get("stopped")))

    def unfinished(self) -> list[int]:
        """Plan indices of the cells that hold some rounds and need more (a resumed run)."""
        return [i for i in self._cells if not self.finished(i)]

    def done(self) -> int:
        """Finished cells."""
        return self._sums[2]

    def complete(self) -> bool:
        return self.done() == self.total

    def rounds_done(self) -> int:
        return self._sums[0]

    def rounds_planned(self) -> int:
        """Rounds this run will measure in all: every repeat of every cell, less the rounds a
        finished cell left out."""
        return self.total * self.repeats - self._sums[1]

    def add(self, i, records, status, error, how, session, flush=True, checked=False):
        """A cell measured whole (its repeats back to back): its records, finished
        (`checked`: a Dask worker validated them already, mmbench.parallel.run_cell)."""
        for r in () if checked else records:
            results._check_record(r, f"cell {self.keys[i]}")
        entry = {"key": self.keys[i], "status": status, "session": session, **({"error": error} if error else {}),
                 "how": how}
        self._records.pop(i, None)
        self._dirty.pop(i, None)
        self._set_cell(i, (entry, [json.dumps(r) for r in records], json.dumps(entry)))
        if flush:
            self.flush()

    def add_round(self, i, records, error, how, session, budget=None, status=None, flush=True,
                  checked=False) -> int:
        """One more round (one repeat) of cell `i`, merged into its records (mmbench.rounds).
        The cell's entry counts its rounds; ``how`` is the last round's, with the wall and
        measuring times summed over the rounds.  Once the measuring time passes `budget` the
        cell is stopped (no new repeat starts, as within one cell before).  Returns 1 when
        this round finished the cell, else 0."""
        from mmbench.parallel import cell_status
        for r in () if checked else records:
            results._check_record(r, f"cell {self.keys[i]}")
        prev = self._cells[i][0] if i in self._cells else None
        merged = self._records.get(i)
        changed = rounds.merge_into(merged, records) if merged else None
        if changed is None:                # the first round, or a failed one: the cell's records anew
            merged = [dict(r) for r in records]
            self._dirty[i] = None
        elif self._dirty.get(i, ()) is not None:
            self._dirty.setdefault(i, set()).update(changed)
        how = dict(how)
        if prev is not None:
            for k in ("wall_s", "measure_s"):
                if k in how or k in prev["how"]:
                    how[k] = round(how.get(k, 0) + prev["how"].get(k, 0), 4)
        st = cell_status(merged)
        if status == "error" or (prev is not None and prev["status"] == "error"):
            st = "error"
        if prev is not None and prev.get("error") and not error:
            error = prev["error"]
        entry = {"key": self.keys[i], "status": st, "session": session, **({"error": error} if error else {}),
                 "how": how, "rounds": (prev["rounds"] if prev else 0) + 1}
        if budget is not None and how.get("measure_s", 0) > budget and entry["rounds"] < self.repeats:
            entry["stopped"] = "budget"
        self._records[i] = merged
        was = self.finished(i)
        self._set_cell(i, (entry, self._cells[i][1] if i in self._cells else None,
                           json.dumps(entry)))  # records encoded again when next written (_dirty)
        if flush:
            self.flush()
        return int(self.finished(i) and not was)

    def flush(self, sync=False, force=False):
        """Write the file as it stands (nothing without a path); unless `force`, only once
        WRITE_SHARE of the time since the last write has passed (see the class docstring)."""
        now = time.perf_counter()
        if not force and (self.path is None or now - self._written < self._write_s / self.WRITE_SHARE):
            return
        order = sorted(self._cells)
        self.doc["cells"] = [self._cells[i][0] for i in order]
        self.doc["run"]["done"] = self.done()
        self.doc["run"]["complete"] = self.complete()
        if self.path is None:
            return
        # the head is small; cells and records are serialised once each (as they arrive)
        # and spliced in, so a rewrite costs one write of the file, not a JSON encoding
        head = {k: v for k, v in self.doc.items() if k not in ("records", "cells")}
        cells = [self._cells[i][2] for i in order]
        text = (json.dumps(head, indent=1)[:-2] + ',\n "cells": [\n  ' + ",\n  ".join(cells)
                + '\n ],\n "records": [\n  ' + ",\n  ".join(self._texts(order)) + "\n ]\n}\n")
        write_atomic(self.path, text, sync=sync)
        self._written = time.perf_counter()
        self._write_s = self._written - now

    def _texts(self, order):
        return [t for i in order for t in self._encoded(i)] + [json.dumps(r) for r in self._extra]

    def _encoded(self, i) -> list[str]:
        """The records of cell `i` as JSON texts.  A cell in rounds has the records its
        last rounds changed encoded again when it is next written, and only those (a
        round changes the measured records, seldom an exact one: three quarters of a
        quick run's records are exact, and their encoding was most of the client's CPU
        in a 2-worker run)."""
        entry, texts, etext = self._cells[i]
        if i in self._dirty:
            dirty, recs = self._dirty.pop(i), self._records[i]
            if texts is None or dirty is None:
                texts = [json.dumps(r) for r in recs]
            else:
                texts.extend([""] * (len(recs) - len(texts)))
                for j in dirty:
                    texts[j] = json.dumps(recs[j])
            self._cells[i] = (entry, texts, etext)
        return texts

    def finish(self) -> dict:
        """Write the file a last time (synced to disk) and return the document with its records."""
        self.flush(sync=True, force=True)
        recs = []
        for i in sorted(self._cells):           # the records a cell in rounds holds, else its texts read
            if i in self._records:
                recs.extend(dict(r) for r in self._records[i])
            else:
                recs.extend(json.loads(t) for t in self._encoded(i))
        self.doc["records"] = recs + [dict(r) for r in self._extra]
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


def design_notes(backends, thp_modes=None) -> list[str]:
    """Each design's own notes (e.g. "runs at 4 KiB"), as "<design>: <note>" lines; with
    `thp_modes` (the huge-page axis of the run) the notes of each mode, a line that differs
    between modes labelled "<design> (thp=<mode>): <note>"."""
    from mmbench import registry
    out = []
    for b in backends:
        per_mode = {}
        for mode in thp_modes or (None,):
            try:
                m = registry.load(b)(ram_pages=1, **({} if mode is None else {"thp": mode}))
            except errors.MMError:            # not installed, broken, or no thp option: its rows say so
                continue
            per_mode[mode] = list(m.notes())
        shared = [n for n in next(iter(per_mode.values()), []) if all(n in v for v in per_mode.values())]
        out += [f"{b}: {n}" for n in shared]
        out += [f"{b} (thp={mode}): {n}" for mode, notes in per_mode.items() for n in notes if n not in shared]
    return out


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
    units: dict[str, str] = {}
    # cells of a huge-page row (thp other than never) where the design ran at 4 KiB
    at_4k = {(r["workload"], results.params_label(r["params"]), r["backend"]) for r in recs
             if r["metric"] == "thp.huge_pages" and r["value"] == 0
             and r["params"].get("thp") not in (None, "never")}
    for r in recs:
        if r["metric"] == "*" or not _metric_wanted(r["metric"], patterns):
            continue
        if r["unit"]:
            units.setdefault(r["metric"], r["unit"])     # an unsupported record carries no unit
        key = (r["family"], r["workload"], results.params_label(r["params"]), r["metric"])
        cell = "unsupported" if r["value"] is None else _fmt(r["value"]) + KIND_MARK[r["kind"]]
        if r["value"] is not None and (key[1], key[2], r["backend"]) in at_4k:
            cell += " 4k"
        rows.setdefault(key, {})[r["backend"]] = cell
    out = []
    for (fam, wl, params, metric), cells in rows.items():
        line = [fam, wl, params, f"{metric} [{units[metric]}]" if metric in units else metric]
        for b in backends:
            line.append(cells.get(b) or ("unsupported" if (wl, params, b) in unsup else "-"))
        out.append(line)
    for (wl, params, b), why in unsup.items():
        if not any(k[1] == wl and k[2] == params for k in rows):
            line = ["", wl, params, "(all)"] + ["unsupported" if x == b else "-" for x in backends]
            out.append(line)
    head = ["family", "workload", "params", "metric [unit]"] + backends
    legend = "m = measured (model time on this machine), e = estimated, plain = exact" + (
        "; 4k = ran at 4 KiB pages in a huge-page (thp) row" if at_4k else "")
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


# ---------------------------------------------------------------- export
#: machine-readable formats of `mmbench compare` (tsv and csv carry plain numbers)
EXPORTS = ("csv", "tsv", "json", "parquet")
#: Markdown for a README or a GitHub comment
MARKDOWN = {"markdown": "github", "github": "github"}


def check_format(fmt: str) -> None:
    from tabulate import tabulate_formats
    known = set(EXPORTS) | set(MARKDOWN) | set(tabulate_formats)
    if fmt not in known:
        raise errors.InvalidArgument(
            f"unknown --format {fmt!r}; formats: {', '.join(EXPORTS + tuple(MARKDOWN))} "
            f"or a terminal table style ({', '.join(sorted(f for f in tabulate_formats if f not in MARKDOWN))})")


def check_metrics(docs, patterns) -> None:
    """InvalidArgument when a --metric glob matches no metric of the results."""
    metrics = sorted({r["metric"] for d in docs for r in d["records"] if r["metric"] != "*"})
    for p in patterns:
        if not any(fnmatch.fnmatch(m, p) for m in metrics):
            sample = ", ".join(metrics[:8])
            raise errors.InvalidArgument(
                f"--metric {p!r} matches no metric in the results ({len(metrics)} metrics, e.g. {sample})")


def export_rows(a, b=None, patterns=None) -> list[dict]:
    """Plain rows for csv/tsv/json/parquet: one per record (one file) or per change (two)."""
    pats = tuple(patterns) if patterns else ("*",)
    if b is None:
        out = []
        for r in a["records"]:
            if r["metric"] != "*" and not _metric_wanted(r["metric"], pats):
                continue
            s = r["spread"] or {}
            out.append({"family": r["family"], "workload": r["workload"],
                        "params": results.params_label(r["params"]), "backend": r["backend"],
                        "metric": r["metric"], "unit": r["unit"], "kind": r["kind"], "value": r["value"],
                        "p25": s.get("p25"), "p75": s.get("p75"), "repeats": r["repeats"], "note": r["note"]})
        return out
    from mmbench.compare import compare_rows
    out = []
    for c in compare_rows(a, b):
        if c.metric != "*" and not _metric_wanted(c.metric, pats):
            continue
        out.append({"family": c.family, "workload": c.workload, "params": c.params, "backend": c.backend,
                    "metric": c.metric, "unit": c.unit, "kind_a": c.a.kind, "a": c.a.value,
                    "kind_b": c.b.kind, "b": c.b.value, "ratio": c.ratio(), "status": c.status})
    return out


def _plain(v) -> str:
    """A number as plain text: no thousands separators, no padding, integers without ".0"."""
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return str(v)


def export(rows: list[dict], fmt: str, path=None) -> str | None:
    """Write `rows` in `fmt` to `path` (parquet needs a path); returns the text otherwise."""
    if fmt == "parquet":
        import polars as pl
        (pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()).write_parquet(path)
        return None
    if fmt == "json":
        text = json.dumps(rows, indent=1) + "\n"
    else:
        import csv
        import io
        buf = io.StringIO()
        w = csv.writer(buf, delimiter="\t" if fmt == "tsv" else ",", lineterminator="\n")
        if rows:
            w.writerow(list(rows[0]))
            for r in rows:
                w.writerow([_plain(v) if not isinstance(v, str) else v for v in r.values()])
        text = buf.getvalue()
    if path is not None:
        Path(path).write_text(text)
        return None
    return text


# ---------------------------------------------------------------- commands
def register(app: typer.Typer) -> None:
    from mmbench.cli import check_backend, check_output, fail, parse_assignments

    @app.command("run")
    def run_cmd(
        profile: str = typer.Option("quick", help="tiny | quick | full | large"),
        backend: Optional[List[str]] = typer.Option(
            None, "--backend", "-b", help="design to run (repeatable); default: every installed design "
            "except the reference model"),
        workload: Optional[List[str]] = typer.Option(
            None, "--workload", "-w", help="glob over workload, family or family.workload (repeatable)"),
        param: Optional[List[str]] = typer.Option(
            None, "--param", "-p", help="NAME=VALUE: set a workload parameter in every parameter set "
            "of the selected workloads (repeatable), e.g. -w fork_grid -p pages=65536 -p depth=4"),
        option: Optional[List[str]] = typer.Option(
            None, "--option", "-O", help="NAME=VALUE: a design option for every machine (repeatable), "
            "e.g. -O fault_around_pages=1; an option a selected design lacks is an error that lists "
            "the options it has"),
        output: Path = typer.Option(Path(DEFAULT_OUTPUT), "--output", "-o",
                                    help="results file to write (its directory must exist, except "
                                    "the default's out/, which is ignored by git)"),
        repeats: Optional[int] = typer.Option(None, help="measured repeats (default by profile)"),
        calibration: Optional[Path] = typer.Option(
            None, help="host calibration file for estimates; default: $MMBENCH_CALIBRATION, then a "
            "file for this host in ~/.local/share/mmbench/calibration ($MMBENCH_DATA_DIR, "
            "$XDG_DATA_HOME), then in the project's results/calibration"),
        list_: bool = typer.Option(False, "--list", help="list the workloads of the profile and exit"),
        workers: int = typer.Option(1, "--workers", "-j", help="run cells on a Dask LocalCluster of this "
                                    "many processes (1: one after another in this process)"),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", help="address of an existing Dask "
                                                "scheduler to run the cells on (e.g. tcp://host:8786)"),
        resume: Optional[Path] = typer.Option(None, "--resume", help="complete an interrupted run: run only "
                                              "the cells this results file lacks, with its settings"),
        interleave: bool = typer.Option(True, "--interleave/--back-to-back", help="measure the repeats in "
                                        "rounds over the whole run (every cell once, then again …), so a "
                                        "cell's repeats see the host's drift, or each cell's repeats one "
                                        "right after another"),
    ) -> None:
        """Run the workloads on the designs and write one results file."""
        if list_:
            typer.echo(catalogue_text(profile if profile in PROFILES else "quick"))
            return
        if profile not in PROFILES:
            fail(f"unknown profile {profile!r}; profiles: {', '.join(PROFILES)}")
        if output == Path(DEFAULT_OUTPUT):
            output.parent.mkdir(exist_ok=True)
        check_output(output)
        if repeats is not None and repeats < 1:
            fail("--repeats must be at least 1")
        if workers < 1:
            fail("--workers must be at least 1")
        if resume is not None:
            if (backend or workload or param or option or repeats is not None or calibration is not None
                    or profile != "quick" or not interleave):
                fail("--resume takes the profile, designs, workloads, parameters, options, repeats (and how they "
                     "run) and "
                     "calibration from the file")
            if not resume.is_file():
                fail(f"--resume {resume}: no such file")
            output = resume
        for name in backend or []:
            check_backend(name)
        overrides = parse_assignments(param, "--param")
        options = parse_assignments(option, "--option")
        try:
            check_design_options(backend or default_backends(), {k: v for k, v in options.items() if k == "thp"})
            overrides, options = thp_as_parameter(overrides, options)
            wls = select_workloads(workload)
            check_overrides(wls, overrides)
            check_design_options(backend or default_backends(), options)
            check_points(wls, profile, overrides)
        except errors.InvalidArgument as e:
            fail(str(e))
        try:
            doc = _run_with_progress(profile, backend, workload, repeats, calibration, overrides, options,
                                     output=output, workers=workers, scheduler=scheduler, resume=resume,
                                     interleave=interleave)
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
        metric: Optional[List[str]] = typer.Option(
            None, "--metric", "-m", help="metric glob (repeatable); default: the headline metrics "
            "on the terminal, every metric in csv/tsv/json/parquet"),
        threshold: float = typer.Option(0.10, help="two files: a change must exceed this fraction "
                                        "(0.05 = 5%) and be significant over the repeats"),
        fmt: str = typer.Option("simple", "--format", help="csv, tsv, json, parquet (plain numbers, one "
                                "row per record or change), markdown / github, or a terminal table style "
                                "(simple, plain, grid …)"),
        output: Optional[Path] = typer.Option(None, "--output", "-o", help="write to this file "
                                              "instead of the terminal (parquet needs it)"),
    ) -> None:
        """One results file: workloads × backends.  Two: the ratio of every record that changed."""
        try:
            check_format(fmt)
        except errors.InvalidArgument as e:
            fail(str(e))
        if not (threshold >= 0 and math.isfinite(threshold)):
            fail(f"--threshold must be a fraction ≥ 0 (0.05 = 5%), got {threshold}")
        if output is not None:
            check_output(output)
        elif fmt == "parquet":
            fail("--format parquet is binary: give --output FILE")
        try:
            a = results.load(first)
            b = results.load(second) if second else None
            if metric:
                check_metrics([d for d in (a, b) if d is not None], metric)
        except errors.InvalidArgument as e:
            fail(str(e))
        if fmt in EXPORTS:
            text = export(export_rows(a, b, metric), fmt, output)
        else:
            tf = MARKDOWN.get(fmt, fmt)
            pats = tuple(metric) if metric else HEADLINE
            text = table_one(a, pats, tf) if b is None else compare_two(a, b, pats if metric else None,
                                                                       threshold, tf)
            if output is not None:
                output.write_text(text + "\n")
                text = None
        if text is None:
            typer.echo(f"wrote {output}")
        else:
            typer.echo(text, nl=not text.endswith("\n"))


def check_design_options(backends, options: dict) -> None:
    """InvalidArgument unless every design accepts every option with its value."""
    if not options:
        return
    from mmbench import registry
    for name in backends:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cls = registry.load(name, quiet=True)
        if cls is None:
            continue                    # a broken plugin: its rows say why
        from mmbench.hugepages import CONTRACT_OPTIONS
        known = sorted(set(cls.option_defaults) | set(CONTRACT_OPTIONS))
        bad = [k for k in options if k not in known]
        if bad:
            raise errors.InvalidArgument(
                f"design {name!r} has no option {', '.join(map(repr, bad))}; "
                f"its options: {', '.join(known) or 'none'}")
        try:
            cls(ram_pages=64, **options)
        except errors.MMError as e:
            raise errors.InvalidArgument(f"design {name!r}: {e}") from None


def check_points(workloads, profile, overrides: dict) -> None:
    """With -p, build each overridden scenario once now, so a bad value fails before the run
    (the scenario cache keeps it for the run)."""
    if not overrides:
        return
    for w in workloads:
        for p in points(w, profile, overrides):
            try:
                w.scenario(**p)
            except errors.MMError as e:
                raise errors.InvalidArgument(f"workload {w.name} with {results.params_label(p)}: {e}") from None
            except (TypeError, ValueError, OverflowError) as e:
                raise errors.InvalidArgument(f"workload {w.name} with {results.params_label(p)}: "
                                             f"{type(e).__name__}: {e}") from None


def _run_with_progress(profile, backends, patterns, repeats, calibration, overrides=None,
                       options=None, **how) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from mmbench import calibration_search
    select_workloads(patterns)             # bad arguments fail before the progress bar starts
    if not backends and not default_backends() and how.get("resume") is None:
        run_suite(profile, backends, patterns, repeats, calibration)
    typer.echo(calibration_search.find(calibration).message, err=True)   # which one, or why none
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=False,
                  refresh_per_second=2) as bar:   # its redraw thread runs beside the measured cells
        task = bar.add_task("mmbench run", total=None)

        def progress(i, n, what):
            bar.update(task, completed=i, total=n, description=what[:70])
        return run_suite(profile, backends, patterns, repeats, calibration, progress,
                         overrides=overrides, options=options, **how)
