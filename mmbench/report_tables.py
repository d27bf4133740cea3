"""The vocabulary of publishing: results → Table of Cells, and how a cell reads.

mmbench.report (the markdown page and the command), mmbench.report_page (the
HTML page), mmbench.report_plots (the charts), mmbench.compare and
mmbench.headline all speak of the same things: a **Table** is one metric
family × one statistic with one unit (backends the columns, (workload,
parameters, part) the rows); a **Cell** keeps its record's kind (exact plain,
measured ``~``, estimated ``≈``, ``unsupported``, ``—`` for a number the run did
not produce) and its ratio to the baseline.  They are defined here, once, and
this module imports none of those that use it: each of them imports it, so no
two of them import each other.  mmbench.report re-exports these names.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

from mmbench import errors

MARK = {"exact": "", "measured": "~", "estimated": "≈"}
UNSUPPORTED = "unsupported"
MISSING = "—"
NOT_SIGNIFICANT = "†"
AT_CLOCK_LIMIT = "‡"
#: a number of a huge-page row (thp "madvise" / "always") from a design that ran at 4 KiB there
SMALL_PAGES = "⁴ᴷ"
#: the per-cell record saying whether the design used huge pages (workloads._measure)
HUGE_PAGES_METRIC = "thp.huge_pages"
#: the huge-page axis in reading order (rows of one workload are shown in this order)
THP_ORDER = ("never", "madvise", "always")
#: statistics that are single clock readings (sums and quotients of many are not)
PER_OP_STATS = ("median_ns", "p99_ns")
DEFAULT_BASELINE = "linux"

# Statistics shown in README.md / index.html, per family, in this order; every
# other statistic goes to results/details.md.  A family not listed here shows
# every statistic that is not a plain event count.
HEADLINE = {
    "fault_latency": ("estimated_ns_per_page", "median_ns", "p99_ns"),
    "fork_cost": ("estimated_ns", "estimated_ns_per_page", "median_ns", "total_ns", "ns_per_page",
                  "ns_per_child"),
    # resident pages beside bytes per page: with huge pages a sparse touch makes 512 pages resident
    "metadata_memory": ("total_bytes", "bytes_per_resident_page", "memdesc_bytes_per_resident_page",
                        "resident_pages"),
    "device_migration": ("GBps", "estimated_ns", "median_ns"),
    "real_programs": ("faults", "fault_zero_fill", "fault_zero_page", "fault_cow_copy",
                      "fault_cow_reuse", "fault_minor", "fork_ptes_copied", "estimated_ns",
                      "total_bytes"),
    "vma_layout": ("count", "total_bytes", "vma_merge_fails", "move_pages_moved", "move_pages_copied",
                   "estimated_ns_per_step", "estimated_ns_per_cycle", "estimated_ns_per_object"),
}
FAMILY_TITLES = {
    "fault_latency": "Fault latency",
    "fork_cost": "Fork cost",
    "metadata_memory": "Metadata memory",
    "device_migration": "Device migration",
    "real_programs": "Real programs",
    "vma_layout": "VMA layout",
}

LEGEND = (
    "How to read the numbers: `1234` exact (a deterministic count or size, the same on every "
    "machine) · `≈1234` estimated host cost (event counts × prices measured on this host's "
    "kernel, plus the link model for transfers; never the simulator's time) · `~1234` the "
    "simulator's own time (median over the repeats of the model's bookkeeping on this machine: "
    f"how fast the model runs, not what a kernel would cost) · `{UNSUPPORTED}` the design has "
    f"no such mechanism · `{MISSING}` the run produced no such number (the reason of every "
    f"`{UNSUPPORTED}` and `{MISSING}` is in the notes under its table). "
    "`(1.35×)` is the ratio to the baseline design in the same row; "
    f"`{NOT_SIGNIFICANT}` marks a ratio whose two numbers differ by less than their spread "
    "(the p25–p75 ranges over the repeats overlap): not a real difference; "
    f"`{AT_CLOCK_LIMIT}` marks a time within twice the clock's resolution. "
    "The `thp` column is the huge-page axis (the designs' `thp` option: `never`, `madvise` "
    f"with MADV_HUGEPAGE in the trace, `always`); `{SMALL_PAGES}` marks a number of a "
    "huge-page row from a design that ran at 4 KiB pages there (it has no huge pages, or not "
    "in this configuration): its own note is under the table."
)


def stat_label(stat: str) -> str:
    """A statistic's name without its unit (the unit is said once, in brackets):
    ``median_ns`` → ``median``, ``estimated_ns_per_page`` → ``estimated per page``,
    ``total_bytes`` → ``total``, ``GBps`` → ``throughput``."""
    if stat == "GBps":
        return "throughput"
    if not {"ns", "bytes"} & set(stat.split("_")):
        return stat                     # a counter's name: kept as the designs spell it
    words = [w for w in stat.split("_") if w not in ("ns", "bytes")]
    text = " ".join(words).strip()
    return text or stat


# --------------------------------------------------------------------- loading
def load_results(path) -> dict:
    """Read and check a results file (schema 1); every failure is one InvalidArgument."""
    try:
        from mmbench import results  # the workloads' loader, once it is installed
    except ImportError:
        results = None
    if results is not None and hasattr(results, "load"):
        return results.load(path)
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise errors.InvalidArgument(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise errors.InvalidArgument(f"{path}: not a readable JSON file ({type(e).__name__})") from None
    return check_document(doc, str(path))


def check_document(doc, where="results") -> dict:
    """The checks publishing relies on (the full schema lives in mmbench.results)."""
    if not isinstance(doc, dict) or doc.get("schema") != 1 or not isinstance(doc.get("records"), list):
        raise errors.InvalidArgument(f"{where}: not an mmbench results file of schema 1")
    for i, r in enumerate(doc["records"]):
        if not isinstance(r, dict) or any(k not in r for k in ("family", "workload", "params",
                                                                "backend", "metric", "value", "kind")):
            raise errors.InvalidArgument(f"{where}: record {i} is incomplete")
        if r["kind"] not in ("exact", "measured", "estimated", "unsupported"):
            raise errors.InvalidArgument(f"{where}: record {i} has unknown kind {r['kind']!r}")
        if (r["value"] is None) != (r["kind"] == "unsupported"):
            raise errors.InvalidArgument(f"{where}: record {i}: value must be null exactly when unsupported")
    return doc


def params_label(params: dict) -> str:
    """``depth=4 pages=1024``: the parameters of a record, sorted by name."""
    return " ".join(f"{k}={v}" for k, v in sorted(params.items()))


def split_metric(metric: str) -> tuple[str, str]:
    """``write.median_ns`` → (``write``, ``median_ns``); a metric without a dot has no part."""
    part, _, stat = metric.rpartition(".")
    return part, stat


def natural_key(text: str):
    """Sort ``pages=64`` before ``pages=1024``: digit runs compare as numbers."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", str(text)) if t]


def backends_of(doc: dict, baseline: str | None = None) -> list[str]:
    """Every backend named in the results, the baseline first, then by name."""
    names = sorted({r["backend"] for r in doc["records"]}, key=natural_key)
    if baseline in names:
        names.remove(baseline)
        names.insert(0, baseline)
    return names


def choose_baseline(doc: dict, requested: str | None) -> str | None:
    """The requested baseline (it must be in the results), else linux, else the first design by
    name other than the reference model."""
    names = backends_of(doc)
    if requested is not None:
        if requested not in names:
            raise errors.InvalidArgument(
                f"baseline {requested!r} is not in the results (backends: {', '.join(names) or 'none'})")
        return requested
    if DEFAULT_BASELINE in names:
        return DEFAULT_BASELINE
    designs = [n for n in names if n != "reference"]  # the specification has no costs to compare to
    return (designs or names or [None])[0]


# ----------------------------------------------------------------------- cells
@dataclasses.dataclass(frozen=True)
class Cell:
    """One number as the page shows it, never separated from its kind."""
    kind: str                      # exact | measured | estimated | unsupported | missing
    value: float | None = None
    p25: float | None = None
    p75: float | None = None
    note: str = ""                 # unsupported / missing: why
    low: float | None = None       # estimated: the range from the prices' uncertainty
    high: float | None = None
    small_pages: str = ""          # huge pages asked for, 4 KiB pages used: the design's note

    @classmethod
    def of(cls, rec: dict | None, why_missing: str = "") -> "Cell":
        if rec is None:
            return cls("missing", note=why_missing)
        if rec["kind"] == "unsupported":
            return cls("unsupported", note=rec.get("note") or "")
        s = rec.get("spread") or {}
        rg = rec.get("range") or {}
        return cls(rec["kind"], float(rec["value"]), s.get("p25"), s.get("p75"), rec.get("note") or "",
                   rg.get("low"), rg.get("high"))

    @property
    def number(self) -> bool:
        return self.value is not None


def differs_less_than_spread(a: Cell, b: Cell) -> bool | None:
    """True when the p25–p75 ranges overlap; None when either has no spread to judge by."""
    if not (a.number and b.number) or a.kind == "exact" or b.kind == "exact":
        return None
    if None in (a.p25, a.p75, b.p25, b.p75):
        return None
    return max(a.p25, b.p25) <= min(a.p75, b.p75)


# Display units: times are scaled to the magnitude of the table; nothing else is.
_TIME_SCALE = (("s", 1e9), ("ms", 1e6), ("µs", 1e3), ("ns", 1.0))


def display_unit(unit: str, cells: list[Cell]) -> tuple[str, float]:
    """(unit shown in the header, divisor) for a table of `cells` recorded in `unit`."""
    values = [abs(c.value) for c in cells if c.number]
    if unit != "ns" or not values or any(c.kind == "exact" for c in cells if c.number):
        return unit, 1.0
    typical = sorted(values)[len(values) // 2]
    for name, div in _TIME_SCALE:
        if typical >= div:
            return name, div
    return "ns", 1.0


def format_number(value: float, exact: bool) -> str:
    """Exact integers print in full (1,234,567); everything else to three significant digits."""
    if exact and float(value).is_integer():
        return f"{int(value):,}"
    if value == 0:
        return "0"
    mag = math.floor(math.log10(abs(value)))
    digits = max(0, (3 if exact else 2) - mag)
    text = f"{value:,.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text and exact else text


def format_ratio(ratio: float) -> str:
    """1.35×, 0.80×, 0.011×, 45.6×: two decimals from 0.1 to 10, else two or three significant digits."""
    a = abs(ratio)
    if a >= 10:
        return f"{format_number(ratio, False)}×"
    if a >= 0.1 or a == 0:
        return f"{ratio:.2f}×"
    return f"{ratio:.{1 - math.floor(math.log10(a))}f}×"


def format_cell(cell: Cell, div: float = 1.0, base: Cell | None = None,
                resolution_ns: float | None = None) -> str:
    """The cell's text: kind mark + number (+ ‡ when a measured time is within 2x the
    clock's `resolution_ns`; + ratio to `base`, † when not significant)."""
    if cell.kind == "missing":
        return MISSING
    if cell.kind == "unsupported":
        return UNSUPPORTED
    text = MARK[cell.kind] + format_number(cell.value / div, cell.kind == "exact")
    if resolution_ns and cell.kind == "measured" and abs(cell.value) < 2 * resolution_ns:
        text += AT_CLOCK_LIMIT
    if cell.small_pages:
        text += SMALL_PAGES
    if base is not None and base.number and base.value != 0:
        ratio = cell.value / base.value
        mark = NOT_SIGNIFICANT if differs_less_than_spread(cell, base) else ""
        text += f" ({format_ratio(ratio)}{mark})"
    return text


# ---------------------------------------------------------------------- tables
@dataclasses.dataclass
class Table:
    """One family × statistic × unit: rows of (workload, params, part), one column per backend."""
    family: str
    stat: str
    unit: str
    backends: list[str]
    baseline: str | None
    keys: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    params: list[dict] = dataclasses.field(default_factory=list)
    cells: list[list[Cell]] = dataclasses.field(default_factory=list)
    resolution_ns: float | None = None     # the per-op clock's resolution (ns times only)

    @property
    def title(self) -> str:
        parts = {k[2] for k in self.keys}
        stat = stat_label(self.stat)
        if len(parts) == 1 and "" not in parts:
            stat = f"{parts.pop()} · {stat}"
        unit = self.display()[0]
        kinds = {c.kind for row in self.cells for c in row if c.number}
        what = (" (estimated host cost)" if kinds == {"estimated"} else
                " (simulator's own time)" if kinds == {"measured"} and self.unit == "ns" else "")
        return f"{FAMILY_TITLES.get(self.family, self.family)} — {stat} [{unit}]{what}"

    def display(self) -> tuple[str, float]:
        return display_unit(self.unit, [c for row in self.cells for c in row])

    def common_params(self) -> dict:
        """Parameters with one value in every row: said once under the title, not per row."""
        if len(self.params) < 2:
            return {}
        first = self.params[0]
        return {k: v for k, v in first.items() if all(p.get(k, object()) == v for p in self.params[1:])}

    def row_labels(self) -> list[tuple[str, str, str, str]]:
        """(workload, parameters, part, thp) per row: the huge-page axis has its own column."""
        common = self.common_params()
        return [(wl, params_label({k: v for k, v in p.items() if k not in common and k != "thp"}), part,
                 "" if "thp" in common else str(p.get("thp", "")))
                for (wl, _pl, part), p in zip(self.keys, self.params)]

    @property
    def nkeys(self) -> int:
        return len(self.key_columns())

    def key_columns(self) -> list[int]:
        """Which of workload / params / part / thp differ between rows (workload always shown)."""
        labels = self.row_labels()
        return [i for i in range(4) if i == 0 or len({k[i] for k in labels}) > 1]

    def notes(self) -> list[str]:
        """Why each unsupported or missing cell is so (one line per distinct reason)."""
        seen: dict[str, list[str]] = {}
        for key, row in zip(self.keys, self.cells):
            for b, c in zip(self.backends, row):
                if c.kind == "unsupported":
                    seen.setdefault(f"{UNSUPPORTED}: {b}: {c.note or 'no reason recorded'}", []).append(key[0])
                elif c.kind == "missing":
                    seen.setdefault(f"{MISSING} {b}: {c.note or 'the run produced no such number'}",
                                    []).append(key[0])
            for b, c in zip(self.backends, row):
                if c.small_pages and c.number:
                    seen.setdefault(f"{SMALL_PAGES} {b}: ran at 4 KiB pages: {c.small_pages}", []).append(key[0])
        out = [f"{why} ({', '.join(sorted(set(w), key=natural_key))})" for why, w in seen.items()]
        if self.resolution_ns and any(AT_CLOCK_LIMIT in c for row in self.text_rows() for c in row):
            out.append(f"{AT_CLOCK_LIMIT} within 2× the per-op clock's resolution "
                       f"({self.resolution_ns:g} ns): at the limit of what the clock can tell")
        return out

    def header(self) -> list[str]:
        """Key columns, then one column per backend; the unit is in the title, once."""
        names = ["workload", "parameters", "part", "thp"]
        cols = [names[i] for i in self.key_columns()]
        for b in self.backends:
            cols.append(b + (" (baseline)" if b == self.baseline else ""))
        return cols

    def text_rows(self) -> list[list[str]]:
        div = self.display()[1]
        kc = self.key_columns()
        bi = self.backends.index(self.baseline) if self.baseline in self.backends else None
        out = []
        for key, row in zip(self.row_labels(), self.cells):
            base = row[bi] if bi is not None else None
            res = self.resolution_ns if self.unit == "ns" and self.stat in PER_OP_STATS else None
            out.append([key[i] for i in kc] + [
                format_cell(c, div, None if j == bi else base, res) for j, c in enumerate(row)])
        return out


def _index(doc: dict):
    """(records by (family, workload, params, backend, metric), unsupported records by the first
    four + the metric's part, and under part "*" for a whole run the design could not do)."""
    exact, star = {}, {}
    for r in doc["records"]:
        key = (r["family"], r["workload"], params_label(r["params"]), r["backend"])
        if r["kind"] == "unsupported" and r["metric"] in ("*", ""):
            star[key + ("*",)] = r
            continue
        exact[key + (r["metric"],)] = r
        if r["kind"] == "unsupported":  # e.g. metadata.total_bytes: the whole part is unsupported
            star.setdefault(key + (split_metric(r["metric"])[0],), r)
    return exact, star


def build_tables(doc: dict, baseline: str | None = None) -> list[Table]:
    """Every (family, statistic, unit) table of the results, families and rows in reading order."""
    backends = backends_of(doc, baseline)
    by_metric, star = _index(doc)
    groups: dict[tuple[str, str, str], set] = {}
    params = {}
    for (fam, wl, pl, _b, metric), r in by_metric.items():
        if r["kind"] == "unsupported" or metric == HUGE_PAGES_METRIC:
            continue
        part, stat = split_metric(metric)
        groups.setdefault((fam, stat, r.get("unit", "")), set()).add((wl, pl, part))
        params[(wl, pl)] = r["params"]
    tables = []
    res = (doc.get("clock") or {}).get("resolution_ns")
    why = _MissingReasons(doc, by_metric)
    for (fam, stat, unit), keys in groups.items():
        t = Table(fam, stat, unit, backends, baseline, resolution_ns=res)
        for wl, pl, part in sorted(keys, key=lambda k: _row_order(k, params[k[:2]])):
            metric = f"{part}.{stat}" if part else stat
            t.keys.append((wl, pl, part))
            t.params.append(params[(wl, pl)])
            t.cells.append([_small_pages(_cell(by_metric, star, (fam, wl, pl, b), metric, why),
                                         by_metric.get((fam, wl, pl, b, HUGE_PAGES_METRIC)), params[(wl, pl)])
                            for b in backends])
        tables.append(t)
    tables.sort(key=lambda t: (_family_rank(t.family), _stat_rank(t.family, t.stat), t.unit))
    return tables


def _row_order(key, params):
    """Rows by workload, the other parameters, part, then the huge-page axis in THP_ORDER:
    a workload's thp=never and thp=always rows sit side by side."""
    wl, _pl, part = key
    thp = params.get("thp")
    rest = params_label({k: v for k, v in params.items() if k != "thp"})
    rank = THP_ORDER.index(thp) if thp in THP_ORDER else len(THP_ORDER)
    return (natural_key(wl), natural_key(rest), natural_key(part), rank, str(thp))


def _small_pages(cell: Cell, huge: dict | None, params: dict) -> Cell:
    """`cell` marked when its row asks for huge pages (thp other than never) and the design's
    ``thp.huge_pages`` record says it ran at 4 KiB there, with the design's note."""
    if huge is None or params.get("thp") in (None, "never") or huge.get("value") != 0:
        return cell
    return dataclasses.replace(cell, small_pages=huge.get("note") or "no note recorded")


def _cell(by_metric, star, key, metric, why=None) -> Cell:
    """The record of `metric`, else why the design could not produce it, else missing
    (with the reason `why` finds)."""
    rec = by_metric.get(key + (metric,))
    if rec is None:
        rec = star.get(key + ("*",)) or star.get(key + (split_metric(metric)[0],))
    if rec is None and why is not None:
        return Cell.of(None, why(key, metric))
    return Cell.of(rec)


class _MissingReasons:
    """Why a (family, workload, params, backend) has no record of a metric."""

    def __init__(self, doc: dict, by_metric: dict):
        self.calibrated = bool(doc.get("calibration"))
        self.ran: dict[tuple, set] = {}
        for (fam, wl, pl, b, metric), r in by_metric.items():
            self.ran.setdefault((fam, wl, pl, b), set()).add(metric)
        self._counters: dict[str, tuple | None] = {}

    def counters(self, backend: str):
        if backend not in self._counters:
            try:
                from mmbench import registry
                self._counters[backend] = tuple(registry.load(backend).counter_names)
            except Exception:
                self._counters[backend] = None
        return self._counters[backend]

    def __call__(self, key: tuple, metric: str) -> str:
        part, stat = split_metric(metric)
        metrics = self.ran.get(key)
        if not metrics:
            return "not run on this design in these results"
        if stat.startswith("estimated") or stat in ("GBps", "link_ns"):
            if not self.calibrated:
                return "no calibration: estimates need `mmbench calibrate` on this host"
        if not any(split_metric(m)[0] == part for m in metrics):
            return f"this design's run has no '{part}' step" if part else "not produced for this design"
        names = self.counters(key[3])
        if names is not None and stat in COUNTER_NAMES_ALL and stat not in names:
            return f"the design has no '{stat}' event"
        if stat in COUNTER_NAMES_ALL:
            return "counted 0 (zero counts are recorded for the headline counters only)"
        return f"the run recorded no '{stat}' for this step"


try:
    from mmbench.core import COUNTER_NAMES as _CN
    COUNTER_NAMES_ALL = frozenset(_CN)
except ImportError:         # publishing works without the compiled engine
    COUNTER_NAMES_ALL = frozenset()


def _family_rank(fam: str):
    order = list(FAMILY_TITLES)
    return (order.index(fam), "") if fam in order else (len(order), fam)


def _stat_rank(fam: str, stat: str):
    order = HEADLINE.get(fam, ())
    return (order.index(stat), "") if stat in order else (len(order), stat)


def is_headline(t: Table) -> bool:
    """Tables for README.md / index.html; the rest go to details.md."""
    if t.family in HEADLINE:
        return t.stat in HEADLINE[t.family]
    return t.unit not in ("events", "")


def unsupported_everywhere(doc: dict) -> list[str]:
    """Workload × parameters no backend could run (they have no row in any table)."""
    ran, why = set(), {}
    for r in doc["records"]:
        key = (r["family"], r["workload"], params_label(r["params"]))
        if r["kind"] != "unsupported":
            ran.add(key)
        else:
            why.setdefault(key, {}).setdefault(r.get("note") or "no reason recorded", set()).add(r["backend"])
    out = []
    for (fam, wl, pl), reasons in sorted(why.items()):
        if (fam, wl, pl) in ran:
            continue
        text = "; ".join(f"{', '.join(sorted(b, key=natural_key))}: {n}" for n, b in sorted(reasons.items()))
        out.append(f"{fam} / {wl}{' ' + pl if pl else ''} — {text}")
    return out


# -------------------------------------------------------------------- markdown
def md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def table_markdown(t, lead: str = "") -> str:
    """A Table (or anything with header/text_rows/notes/nkeys) as a GitHub Markdown table."""
    from tabulate import tabulate
    header = [md_escape(h) for h in t.header()]
    rows = [[md_escape(c) for c in row] for row in t.text_rows()]
    align = ["left"] * t.nkeys + ["right"] * (len(header) - t.nkeys)
    text = tabulate(rows, header, tablefmt="github", disable_numparse=True, colalign=align)
    notes = t.notes()
    if notes:
        text += "\n\n" + "\n".join(f"* {lead}{md_escape(n)}" for n in notes)
    return text


def provenance(doc: dict) -> list[tuple[str, str]]:
    """Where the numbers came from, as (label, value) pairs: machine, commit, date, profile."""
    m = doc.get("machine") or {}
    machine = m.get("hostname") or "unknown host"
    detail = ", ".join(str(m[k]) for k in ("cpu", "cores", "os", "kernel") if m.get(k))
    if m.get("cores"):
        detail = detail.replace(str(m["cores"]), f"{m['cores']} cores", 1)
    soft = ", ".join(f"{k} {m[k]}" for k in ("python", "numpy", "mmbench") if m.get(k))
    commit = doc.get("commit") or "unknown (not run from a git checkout)"
    if doc.get("dirty"):
        commit += " (with uncommitted changes)"
    host = []
    thp = m.get("thp") or {}
    if thp.get("enabled"):
        host.append(f"THP {thp['enabled']} (defrag {thp.get('defrag')})")
    freq = m.get("cpufreq")
    if freq:
        host.append(f"cpufreq {freq.get('driver')}/{freq.get('governor')}")
    elif "cpufreq" in m:
        host.append("no cpufreq control (fixed or host-managed frequency)")
    if m.get("loadavg") is not None:
        host.append(f"load average {m['loadavg']}")
    plugins = {k: v for k, v in (doc.get("plugins") or {}).items()
               if (v or {}).get("distribution") not in (None, "mmbench")}
    rows = [("machine", f"{machine} ({detail})" if detail else machine),
            ("software", soft or "unknown"), ("commit", commit)]
    if host:
        rows.append(("host settings", ", ".join(host)))
    if plugins:
        rows.append(("plugins", ", ".join(f"{k} ({v['distribution']} {v['version']})"
                                          for k, v in plugins.items())))
    rows += [("date", doc.get("created") or "unknown"), ("profile", doc.get("profile") or "unknown"),
             ("calibration", doc.get("calibration") or "none (no estimated host costs from a calibration)")]
    return rows + [("note", n) for n in doc.get("notes") or []]


def _common_line(t) -> list[str]:
    common = t.common_params() if isinstance(t, Table) else {}
    return [f"In every row: {md_escape(params_label(common))}.", ""] if common else []


def sections(tables, charts=()) -> list[tuple[str, list, list]]:
    """(family, its tables, its charts) in reading order: the pages show a family's charts
    right after its tables."""
    fams = sorted({t.family for t in tables} | {c.spec.family for c in charts}, key=_family_rank)
    return [(f, [t for t in tables if t.family == f], [c for c in charts if c.spec.family == f])
            for f in fams]
