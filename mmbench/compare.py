"""`mmbench compare OLD NEW`: what changed between two results files, and whether
the change is real.

Two runs of the same commit on a shared machine differ: measured times move
with the load of the moment, by 10 % and sometimes by 3x.  A comparison that
calls every difference a change is noise.  So:

* **exact** records (counts, bytes) compare exactly: any difference is a change.
* **measured** and **estimated** records compare over their repeats (the
  ``samples`` every record keeps, one per repeat).  A change is called only
  when it is

    significant   the exact two-sided Mann-Whitney rank test over the repeats
                  gives p < `alpha`, and
    large         the bootstrap interval (`level`, ratio of medians, repeats
                  resampled within each side) lies entirely outside the band
                  [1/(1 + threshold), 1 + threshold]: the change exceeds the
                  threshold with that confidence, not just its point estimate.

  When the repeats are too few for the rank test to reach `alpha` (3 against 3
  can at best give p = 0.1) the test is skipped and the interval must clear a
  band twice as wide instead.  Measured on noise modelled from two real runs
  of one commit (tests/test_compare.py), this keeps false changes to about
  1-2 % of rows with 3 repeats and below 1 % with 4 or more.

  When both files carry the host probe (mmbench.hostspeed: a fixed piece of
  work timed every second through the run) and it changed significantly,
  the host itself ran slower or faster in one run: a measured row must then
  move beyond the host's own ratio, on that side, to be called changed.

  The test is only as honest as the repeats: it judges a difference against
  their spread within each run.  `mmbench run` therefore measures repeats in
  rounds over the whole run (mmbench.rounds), so that a cell's repeats are a
  round apart (a third of the run) and their spread holds the host's drift;
  repeats taken one right after another agree with each other and not with
  the next run, and then 5-20 % of rows of two runs of one commit read as
  changed (docs/calibration.md §8).  Each side's line says how its repeats ran.

  asv and mmtests judge the same way (a rank test or an interval of the ratio,
  plus a minimum factor).  A row that moved beyond the threshold but failed the
  test reads ``noise``; a row without samples (older files, one repeat) reads
  ``not tested`` and is never called a change.

``Verdict`` holds the statistics of one row; ``compare_rows`` pairs two files'
records; ``compare_results`` renders the tables (mmbench.runner prints them).
Output formats and command-line options belong to the CLI; this module owns
the statistics.
"""
from __future__ import annotations

import dataclasses
import math
from functools import lru_cache

import numpy as np

from mmbench import report_tables as _report
from mmbench.report_tables import Cell, format_cell, format_ratio

DEFAULT_THRESHOLD = 0.10      # a change must exceed 10 % (asv's default factor 1.1)
DEFAULT_ALPHA = 0.05
DEFAULT_LEVEL = 0.95
BOOTSTRAP = 2000

CHANGED = "changed"
NOISE = "noise"
NOT_TESTED = "not tested"
SAME = "same"


# ------------------------------------------------------------------ the tests
@lru_cache(maxsize=256)
def _u_distribution(n: int, m: int) -> np.ndarray:
    """Counts of each U statistic (0 … n·m) over all C(n+m, n) rankings without ties."""
    # f[i][j][u]: rankings of i x's and j y's with U = u (x's beating y's)
    f = {(0, 0): np.array([1.0])}
    for i in range(n + 1):
        for j in range(m + 1):
            if i == j == 0:
                continue
            out = np.zeros(i * j + 1)
            if i > 0:                 # the largest is an x: it beats all j y's
                prev = f[(i - 1, j)]
                out[j:j + len(prev)] += prev
            if j > 0:                 # the largest is a y
                prev = f[(i, j - 1)]
                out[:len(prev)] += prev
            f[(i, j)] = out
    return f[(n, m)]


def mann_whitney_p(a, b) -> float:
    """Two-sided p of the Mann-Whitney U test of `a` against `b`: exact (ties
    broken by the mid-rank U, conservative) up to 20 samples a side, else the
    normal approximation with tie correction."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        return 1.0
    u = float(sum((x > y) + 0.5 * (x == y) for x in a for y in b))
    if n <= 20 and m <= 20:
        dist = _u_distribution(n, m)
        total = dist.sum()
        lo = dist[: int(math.floor(min(u, n * m - u))) + 1].sum() / total
        return float(min(1.0, 2 * lo))
    allv = np.concatenate([a, b])
    _, counts = np.unique(allv, return_counts=True)
    nt = n + m
    var = n * m / 12.0 * ((nt + 1) - (counts ** 3 - counts).sum() / (nt * (nt - 1)))
    if var <= 0:
        return 1.0
    z = (abs(u - n * m / 2.0) - 0.5) / math.sqrt(var)
    return float(math.erfc(max(z, 0.0) / math.sqrt(2)))


def min_attainable_p(n: int, m: int) -> float:
    """The smallest two-sided p the exact rank test can give with n and m samples."""
    if n == 0 or m == 0:
        return 1.0
    return min(1.0, 2.0 / math.comb(n + m, n))


def ratio_interval(a, b, level=DEFAULT_LEVEL, n_boot=BOOTSTRAP, seed=0) -> tuple[float, float]:
    """Bootstrap `level` interval of median(b) / median(a), each side resampled on its own."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    rng = np.random.default_rng(seed)
    ma = np.median(a[rng.integers(0, len(a), (n_boot, len(a)))], axis=1)
    mb = np.median(b[rng.integers(0, len(b), (n_boot, len(b)))], axis=1)
    ok = ma != 0
    r = mb[ok] / ma[ok]
    if not len(r):
        return (math.nan, math.nan)
    q = (100 * (1 - level) / 2, 100 * (1 + level) / 2)
    return float(np.percentile(r, q[0])), float(np.percentile(r, q[1]))


@dataclasses.dataclass
class Verdict:
    """The statistics of one measured or estimated row."""
    status: str                       # changed | noise | not tested | same
    ratio: float | None = None        # median(B) / median(A)
    p: float | None = None            # Mann-Whitney two-sided p (None: not run)
    interval: tuple | None = None     # bootstrap interval of the ratio
    why: str = ""


def judge(a, b, threshold=DEFAULT_THRESHOLD, alpha=DEFAULT_ALPHA, level=DEFAULT_LEVEL,
          host: float | None = None) -> Verdict:
    """Whether repeats `b` changed from repeats `a` (see the module docstring).  `host`: the
    factor by which the host itself ran slower (> 1) or faster (< 1) in `b` (host_ratio);
    the band is widened by it on that side."""
    a = [float(x) for x in a]
    b = [float(x) for x in b]
    if not a or not b:
        return Verdict(NOT_TESTED, why="no samples")
    ma, mb = float(np.median(a)), float(np.median(b))
    ratio = mb / ma if ma else None
    if ma == mb:
        return Verdict(SAME, ratio)
    if len(a) < 2 or len(b) < 2:
        return Verdict(NOT_TESTED, ratio, why=f"{len(a)} and {len(b)} repeats: at least 2 a side")
    if ratio is None or ratio <= 0:
        return Verdict(NOT_TESTED, ratio, why="a zero or negative median")
    lo, hi = ratio_interval(a, b, level)
    p = None
    bar = threshold
    if min_attainable_p(len(a), len(b)) < alpha:
        p = mann_whitney_p(a, b)
    else:                 # too few repeats for the rank test: a wider band instead
        bar = 2 * threshold
    band = (1.0 / (1.0 + bar), 1.0 + bar)
    if host:
        band = (band[0] * min(1.0, host), band[1] * max(1.0, host))
    beyond = lo > band[1] or hi < band[0]
    significant = beyond and (p is None or p < alpha)
    if significant:
        return Verdict(CHANGED, ratio, p, (lo, hi))
    why = (f"p = {p:.3g}" if p is not None and p >= alpha
           else f"interval {lo:.2f}–{hi:.2f}× reaches the ±{bar:.0%} band"
           + (f" widened by the host's {host:.2f}×" if host else ""))
    return Verdict(NOISE if abs(ratio - 1) > threshold else SAME, ratio, p, (lo, hi), why)


def samples_of(rec: dict | None) -> list | None:
    """The per-repeat values of a record (its value alone when it had one repeat)."""
    if rec is None or rec.get("value") is None:
        return None
    s = rec.get("samples")
    if s:
        # a value edited after the run no longer describes its samples: do not test
        if not math.isclose(float(np.median(s)), float(rec["value"]), rel_tol=1e-9, abs_tol=1e-12):
            return None
        return list(s)
    return [rec["value"]] if rec.get("repeats", 1) <= 1 else None


def host_ratio(a: dict, b: dict, threshold=DEFAULT_THRESHOLD, alpha=DEFAULT_ALPHA) -> Verdict | None:
    """The host's own speed in run `b` against run `a`: the host probe's samples of the two
    results documents (mmbench.hostspeed) judged like a measured row.  None when either
    has too few samples.  CHANGED: the host itself ran significantly slower (ratio > 1) or
    faster in `b`, and measured rows are judged against a band widened by that ratio."""
    from mmbench import hostspeed
    sa, sb = hostspeed.samples(a), hostspeed.samples(b)
    if sa is None or sb is None:
        return None
    return judge(sa, sb, threshold, alpha)


def _host_factor(a: dict, b: dict, threshold, alpha) -> float | None:
    v = host_ratio(a, b, threshold, alpha)
    return v.ratio if v is not None and v.status == CHANGED else None


# -------------------------------------------------------------- pairing rows
@dataclasses.dataclass
class Change:
    """One record key in two results files, and what happened to it."""
    family: str
    workload: str
    params: str
    backend: str
    metric: str
    unit: str
    a: Cell
    b: Cell
    ra: dict | None = None
    rb: dict | None = None
    threshold: float = DEFAULT_THRESHOLD
    alpha: float = DEFAULT_ALPHA
    host: float | None = None         # the host's own slowdown in B (host_ratio), when significant

    @property
    def verdict(self) -> Verdict | None:
        """The statistics (measured / estimated rows of the same kind on both sides)."""
        if not (self.a.number and self.b.number) or self.a.kind != self.b.kind \
                or self.a.kind == "exact":
            return None
        if not hasattr(self, "_verdict"):
            sa, sb = samples_of(self.ra), samples_of(self.rb)
            if sa is None or sb is None:
                self._verdict = Verdict(SAME if self.a.value == self.b.value else NOT_TESTED,
                                        self.ratio(), why="no per-repeat samples")
            else:
                self._verdict = judge(sa, sb, self.threshold, self.alpha,
                                      host=self.host if self.a.kind == "measured" else None)
        return self._verdict

    @property
    def status(self) -> str:
        a, b = self.a, self.b
        if a.kind == "missing" or b.kind == "missing":
            return "new" if a.kind == "missing" else "gone"
        if (a.kind == "unsupported") != (b.kind == "unsupported"):
            return "now supported" if a.kind == "unsupported" else "now unsupported"
        if not a.number:
            return SAME
        if a.kind != b.kind:
            return f"kind {a.kind}→{b.kind}"
        if a.kind == "exact":
            return SAME if a.value == b.value else CHANGED
        return self.verdict.status

    def ratio(self) -> float | None:
        if self.a.number and self.b.number and self.a.value != 0:
            return self.b.value / self.a.value
        return None


def compare_rows(a: dict, b: dict, threshold=DEFAULT_THRESHOLD, alpha=DEFAULT_ALPHA) -> list[Change]:
    """Every (family, workload, params, backend, metric) of either file, paired up."""
    ia, sa = _report._index(a)
    ib, sb = _report._index(b)
    host = _host_factor(a, b, threshold, alpha)
    keys = set(ia) | set(ib)
    keys |= {k for k in set(sa) | set(sb) if k[4] == "*"}
    out = []
    for key in sorted(keys, key=lambda k: [_report.natural_key(x) for x in k]):
        if key[4] == "*" and any(k[:4] == key[:4] and k[4] != "*" for k in keys):
            continue  # a whole-run unsupported is shown on the metrics the other side has
        ca = _report._cell(ia, sa, key[:4], key[4])
        cb = _report._cell(ib, sb, key[:4], key[4])
        unit = (ia.get(key) or ib.get(key) or {}).get("unit", "")
        out.append(Change(*key, unit, ca, cb, ia.get(key), ib.get(key), threshold, alpha, host))
    return out


def is_change(c: Change) -> bool:
    """Rows a comparison lists: real changes, kind and support changes, and rows that
    could not be tested but moved beyond the threshold.  Rows that moved within the
    noise are counted in the summary line, listed only with `all_rows`."""
    st = c.status
    if st == NOT_TESTED:
        r = c.ratio()
        return r is None or abs(r - 1) > c.threshold
    return st not in (SAME, NOISE)


def summary(rows: list[Change]) -> dict:
    """{"measured": n, "changed": k, "noise": …, "not tested": …, "exact": …, "exact changed": …}"""
    out = {"measured": 0, CHANGED: 0, NOISE: 0, NOT_TESTED: 0, "exact": 0, "exact changed": 0}
    for c in rows:
        if c.a.kind == c.b.kind == "exact" and c.a.number and c.b.number:
            out["exact"] += 1
            out["exact changed"] += c.status == CHANGED
        elif c.verdict is not None:
            out["measured"] += 1
            if c.verdict.status in (CHANGED, NOISE, NOT_TESTED):
                out[c.verdict.status] += 1
    return out


def _stat_text(c: Change) -> str:
    v = c.verdict
    if v is None:
        return ""
    parts = []
    if v.p is not None:
        parts.append(f"p={v.p:.2g}")
    if v.interval is not None:
        parts.append(f"{format_ratio(v.interval[0])}–{format_ratio(v.interval[1])}")
    if v.why and v.status != CHANGED:
        parts.append(v.why)
    return "; ".join(parts)


def compare_results(a: dict, b: dict, *, tablefmt: str = "github", all_rows: bool = False,
                    threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA) -> str:
    """What changed from results document `a` to results document `b`, as text tables.

    Starts with where each side came from and a count of measured rows changed,
    then one table per metric family with a row per (workload, parameters,
    backend, metric) that changed: both numbers with their kind marks, the
    ratio B/A, the status (``changed``, ``noise`` — moved but not significant,
    ``not tested`` — no repeats to test, ``now unsupported`` / ``now
    supported``, ``new`` / ``gone``, a change of kind) and the test's numbers.
    `all_rows` lists unchanged rows too.
    """
    from tabulate import tabulate
    rows_all = compare_rows(a, b, threshold, alpha)
    rows = [c for c in rows_all if all_rows or is_change(c)]
    s = summary(rows_all)
    out = [_side_line("A", a), _side_line("B", b), "",
           f"{s['measured']} measured/estimated rows: {s[CHANGED]} changed significantly "
           f"(rank test p < {alpha:g} when the repeats allow, {DEFAULT_LEVEL:.0%} bootstrap "
           f"interval of the ratio beyond ±{threshold:.0%}), {s[NOISE]} moved within noise, "
           f"{s[NOT_TESTED]} not tested (no repeats); {s['exact']} exact rows: "
           f"{s['exact changed']} changed.", _host_line(a, b, threshold, alpha), ""]
    if not rows:
        return "\n".join(out + ["No differences."])
    header = ["workload", "parameters", "backend", "metric", "unit", "A", "B", "B/A", "status", "test"]
    for fam in sorted({c.family for c in rows}, key=_report._family_rank):
        body = []
        for c in (c for c in rows if c.family == fam):
            r = c.ratio()
            body.append([c.workload, c.params, c.backend, c.metric, c.unit, format_cell(c.a),
                         format_cell(c.b), "" if r is None else format_ratio(r), c.status,
                         _stat_text(c)])
        out += [f"## {_report.FAMILY_TITLES.get(fam, fam)}", "",
                tabulate(body, header, tablefmt=tablefmt, disable_numparse=True), ""]
    return "\n".join(out + [_report.LEGEND.split(" `(1.35×)`")[0]])


def _host_line(a: dict, b: dict, threshold, alpha) -> str:
    """What the host probe (mmbench.hostspeed) says about the two runs."""
    v = host_ratio(a, b, threshold, alpha)
    if v is None:
        return "Host probe: not in both files (its drift between the runs is not known)."
    if v.status != CHANGED:
        return (f"Host probe: B/A {format_ratio(v.ratio)}, not a significant change of the host's "
                "own speed.")
    return (f"Host probe: the host itself took {format_ratio(v.ratio)} the time in B (p={v.p:.2g}): "
            "a measured row is called changed only beyond that.")


def _side_line(label: str, doc: dict) -> str:
    p = dict(_report.provenance(doc))
    clock = (doc.get("clock") or {}).get("clock")
    extra = f" · clock {clock}" if clock else ""
    load = (doc.get("machine") or {}).get("loadavg")
    extra += f" · load {load}" if load is not None else ""
    run = doc.get("run") or {}
    if "interleave" in run:          # how its repeats ran (mmbench.rounds): back to back, they agree
        extra += " · repeats in rounds" if run["interleave"] else " · repeats back to back"
    return (f"{label}: {p['machine']} · commit {p['commit']} · {p['date']} · "
            f"profile {p['profile']}{extra}")
