"""Repeats in rounds: every cell's first repeat, then every cell's second, …

Why.  A measured record is the simulator's own time on a shared host, and the
host's speed drifts over minutes (other engineers' builds start and stop; this
VM hands freed memory back to the hypervisor).  Measured one right after
another, a cell's repeats see the same moment of the host and agree closely,
while a second run of the same commit, a minute later, sees another moment:
`mmbench compare` (mmbench.compare) then finds the two runs' repeats apart and
calls a change that is only the host's drift (docs/calibration.md §8).  Spread
over the run instead, a cell's repeats sample the host as it drifts, their
spread holds the drift, and the comparison's test judges a difference against
it.  This is how the calibration's probes are measured too (interleaved rounds).

How.  A run with R repeats measures each cell R times with one repeat each
(``measure(..., repeats=1)``), in R rounds over the whole plan::

    round 0:  cell 0, cell 1, … cell N-1      each: one repeat → its records
    round 1:  cell 0, cell 1, … cell N-1      merged into the cell's records
    …                                          (samples joined: `merge`)

A cell stays the unit of the results file, of resuming and of the Dask
workers: after each round of a cell its merged records replace the cell's
records in the file (atomically, as before), and the cell's entry says how
many rounds it holds (``"rounds"``).  A cell is *finished* when it holds R
rounds, when it failed (unsupported or crashed: no further round, exactly as a
failed repeat ended a cell before), or when its measuring time used up the
profile's budget (``"stopped": "budget"``: no new repeat starts after it, as
before).  ``--resume`` runs the rounds a file's cells lack.

Merging one repeat into a cell's records (`merge`), by metric:

    measured     samples joined; value = median, spread = p25/p75 (≥ 3),
                 repeats = number of samples — the same numbers a cell's R
                 back-to-back repeats gave (per-repeat medians / p99s / totals,
                 median over repeats)
    exact        kept from the first round; a different value in a later
                 round is noted, exactly as differing repeats were
    estimated    kept from the first round (counts × prices: the same events
                 give the same estimate)
    unsupported  a failed round makes the whole cell its failure, as a failed
                 repeat did
"""
from __future__ import annotations

DRIFT_NOTE = "counters differed between repeats (repeat 0 shown)"


def _percentile(ordered: list, q: float) -> float:
    """numpy's default (linear) percentile of a sorted list: a few repeats, no array."""
    at = (len(ordered) - 1) * q / 100.0
    lo = int(at)
    hi = min(lo + 1, len(ordered) - 1)
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (at - lo))


def _median(values) -> float:
    return _percentile(sorted(values), 50)


def _spread(values):
    if len(values) < 3:
        return None
    s = sorted(values)
    return {"p25": _percentile(s, 25), "p75": _percentile(s, 75)}


def whole_failures(records) -> list[dict]:
    """The records saying the whole cell failed (unsupported, or crashed: measure's note)."""
    return [r for r in records if r["metric"] == "*" and r["kind"] == "unsupported"]


def failed(records) -> bool:
    """Whether a cell's records are a whole-cell failure (unsupported or crashed)."""
    return bool(whole_failures(records))


def merge(old: list[dict] | None, new: list[dict]) -> list[dict]:
    """The records of a cell holding the repeats of `old` and of `new` (module docstring).

    `old` None or empty: `new` as it is.  Either side a whole-cell failure: that failure
    (the earlier one when both failed).  Records are matched by metric and kept in the
    order the first round gave them; a metric only one side has keeps what it has."""
    if not old:
        return new
    out = [dict(r) for r in old]
    return new if merge_into(out, new) is None else out


def merge_into(held: list[dict], new: list[dict]) -> list[int] | None:
    """`merge`, in place: `held` (a cell's records, not empty) takes the round `new`.
    Returns the positions in `held` whose record changed or was added, so that only
    those are encoded again (a round changes the measured records; three quarters of a
    quick run's records are exact and stay), or None when the cell's records are now
    `new` itself (a failed round after good ones)."""
    if failed(held):
        return []
    if failed(new):
        return None
    changed = []
    at = {r["metric"]: i for i, r in enumerate(held)}
    for r in new:
        i = at.get(r["metric"])
        if i is None:
            at[r["metric"]] = len(held)
            changed.append(len(held))
            held.append(dict(r))
            continue
        o = held[i]
        if o["kind"] == "measured" and r["kind"] == "measured":
            s = list(o.get("samples") or [o["value"]]) + list(r.get("samples") or [r["value"]])
            o.update(value=_median(s), spread=_spread(s), repeats=len(s), samples=s)
            changed.append(i)
        elif o["kind"] == "exact" and r["kind"] == "exact" and o["value"] != r["value"]:
            if DRIFT_NOTE not in o["note"]:
                o["note"] = DRIFT_NOTE + (f"; {o['note']}" if o["note"] else "")
                changed.append(i)
    return changed


def order(cells: list, repeats: int, done_rounds=None) -> list[tuple[int, tuple]]:
    """[(round, cell)] in the order they are measured: round-major, each round over
    `cells` in their order.  `done_rounds(cell)` says how many rounds a cell already
    holds (resume); those are left out."""
    have = done_rounds or (lambda c: 0)
    return [(r, c) for r in range(repeats) for c in cells if have(c) <= r]
