"""The charts of a report: one clear chart per question a reader asks.

    question                                   chart   x                       y
    what does each kind of fault cost?         bars    fault kind              estimated host ns per fault
    how fast does the model itself run?        bars    fault kind              simulator's own ns per fault
    how does fork cost grow with memory?       lines   pages                   estimated host ns per fork
    how does fork cost grow with fork depth?   lines   fork depth              estimated host ns per fork
    how does metadata grow with fork depth?    lines   depth                   bytes of kernel structs
    what does sparsity cost in metadata?       bars    workload (dense/sparse) bytes per resident page
    how fast does migration go?                lines   transfer size           GB/s each way
    how many faults do huge pages save?        bars    workload · thp          faults (exact)

Each chart is a ``ChartSpec``: which family, which statistic (the first of
``stats`` the results hold), which parameter goes on the x axis, and which
parameters are held fixed.  A chart draws only what the records say: one
series per backend (and per part — e.g. ``to_device`` / ``to_host`` — when the
workload has several), error bars from the p25–p75 spread (measured) or the
range from the prices' uncertainty (estimated), solid lines for measured,
dashed for estimated, and the parameters it held fixed in the caption.  The
headline charts show estimated host cost and exact counts; a chart of the
simulator's own time says so in its title and axis.  A backend that cannot run the workload is named in the caption as
unsupported, never drawn at 0.  When the results hold no data for a chart it
is skipped with a note saying what it looked for.

The huge-page axis (the ``thp`` parameter) is never folded away: bars get
one category per ``thp`` value (in the order never, madvise, always), lines
one series per backend and ``thp`` value.  A design that ran at 4 KiB pages
where huge pages were asked for (its ``thp.huge_pages`` record is 0) is
drawn dotted-hatched (bars) or labelled "at 4 KiB" (lines), and named with
its note in the caption.

Rendering is matplotlib's Agg backend: no display, the same PNG everywhere.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from mmbench.report_tables import HUGE_PAGES_METRIC, THP_ORDER, natural_key, params_label, split_metric

KIND_STYLE = {"measured": ("-", "o"), "estimated": ("--", "s"), "exact": ("-", "^")}
KIND_WORD = {"measured": "measured", "estimated": "estimated", "exact": "exact"}


@dataclasses.dataclass(frozen=True)
class ChartSpec:
    name: str                  # file name without .png
    title: str
    family: str
    stats: tuple               # statistics to plot, first present wins
    x: str | None              # x-axis parameter (None: a bar chart over categories)
    xlabel: str
    ylabel: str                # without the unit: the unit is appended
    x_scale: float = 1.0       # multiply x values (e.g. pages → KiB)
    split: str = ""            # a parameter whose values get one series each (e.g. shape)
    part: tuple = ()           # prefer these parts (timed steps) when the results have them
    workloads: str = ""        # only workloads whose name contains one of these ("|"-separated)
    parts: bool = True         # one series per part when there are several
    per: str = ""              # time charts: "per fault", "per fork" (the y label follows the kind)


#: what a time axis shows, by the kind of the numbers drawn
TIME_LABEL = {"estimated": "estimated host cost", "measured": "simulator's own time (model bookkeeping)"}
TIME_TITLE = {"estimated": " — estimated host cost", "measured": " — simulator's own time, not a kernel cost"}


CHARTS = (
    ChartSpec("fault_latency_by_kind", "Fault latency by fault kind", "fault_latency",
              ("estimated_ns_per_page", "median_ns"), None, "fault kind (workload · timed step)", "",
              per="per fault"),
    ChartSpec("fork_cost_vs_pages", "Fork cost versus resident pages", "fork_cost",
              ("estimated_ns", "median_ns", "total_ns"), "pages", "pages touched before fork", "",
              part=("fork",), per="per fork"),
    ChartSpec("fork_cost_vs_depth", "Fork cost versus fork depth", "fork_cost",
              ("estimated_ns", "median_ns", "total_ns"), "depth", "fork depth (generations)", "",
              part=("fork",), per="per fork"),
    ChartSpec("fault_model_time_by_kind", "Simulator's own time per fault, by fault kind",
              "fault_latency", ("median_ns",), None, "fault kind (workload · timed step)", "",
              per="per fault"),
    ChartSpec("metadata_vs_depth", "Metadata memory versus fork depth", "metadata_memory",
              ("total_bytes",), "depth", "fork depth (generations)", "kernel metadata", split="shape"),
    ChartSpec("metadata_vs_sparsity", "Metadata per resident page: dense versus sparse", "metadata_memory",
              ("bytes_per_resident_page",), None, "workload", "metadata per resident page",
              workloads="dense|sparse|small"),
    ChartSpec("migration_gbps_vs_size", "Migration throughput versus transfer size", "device_migration",
              ("GBps",), "transfer", "transfer size [KiB]", "throughput", x_scale=4.0),
    ChartSpec("huge_page_faults", "Faults taken with and without huge pages", "fault_latency",
              ("faults",), None, "workload · timed step · thp", "faults (exact)",
              workloads="seq_first_touch|random_first_touch|read_then_write|cow_after_fork"),
)


@dataclasses.dataclass
class Chart:
    """A drawn chart (path set) or a skipped one (note says why)."""
    spec: ChartSpec
    path: Path | None = None
    caption: str = ""
    note: str = ""
    drawn_title: str = ""       # the title as drawn (says estimated / simulator's own time)

    @property
    def title(self) -> str:
        return self.drawn_title or self.spec.title

    @property
    def name(self) -> str:
        return self.spec.name


# ------------------------------------------------------------ selecting data
def _candidates(doc, spec: ChartSpec):
    """(statistic, records) for the first statistic of `spec` the results hold."""
    fam = [r for r in doc["records"] if r["family"] == spec.family]
    if spec.workloads:
        wanted = [r for r in fam if any(w in r["workload"] for w in spec.workloads.split("|"))]
        fam = wanted or fam
    for stat in spec.stats:
        recs = [r for r in fam if r["kind"] != "unsupported" and split_metric(r["metric"])[1] == stat
                and (spec.x is None or _is_number(r["params"].get(spec.x)))]
        preferred = [r for r in recs if split_metric(r["metric"])[0] in spec.part]
        if recs:
            return stat, preferred or recs, fam
    return None, [], fam


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _line_selection(recs, x, split=""):
    """The records of one workload with one fixed setting of the other parameters, most x values."""
    groups: dict[tuple, list] = {}
    for r in recs:
        rest = {k: v for k, v in r["params"].items() if k not in (x, split, "thp")}
        groups.setdefault((r["workload"], params_label(rest)), []).append(r)
    # most x values; among equals the largest setting of the rest (the most telling size)
    best = max(sorted(groups, key=lambda g: [natural_key(s) for s in g], reverse=True),
               key=lambda g: len({str(r["params"][x]) for r in groups[g]}))
    return best, groups[best]


def _bar_selection(recs):
    """Per (workload, part, non-size parameters): the record with the largest size parameters."""
    chosen: dict[tuple, dict] = {}
    for r in recs:
        sizes = {k: v for k, v in r["params"].items() if _is_number(v)}
        rest = {k: v for k, v in r["params"].items() if k not in sizes}
        key = (r["workload"], params_label(rest), split_metric(r["metric"])[0], r["backend"])
        old = chosen.get(key)
        if old is None or natural_key(_sizes_label(r)) > natural_key(_sizes_label(old)):
            chosen[key] = r
    return list(chosen.values())


def _sizes_label(r):
    return params_label({k: v for k, v in r["params"].items() if _is_number(v)})


def _unsupported_note(fam_recs, workloads) -> str:
    why = {}
    for r in fam_recs:
        if r["kind"] == "unsupported" and r["workload"] in workloads:
            why.setdefault(r["backend"], r.get("note") or "no reason recorded")
    return "; ".join(f"unsupported on {b}: {n}" for b, n in sorted(why.items()))


# -------------------------------------------------------------------- drawing
_BYTE_SCALE = (("GiB", 2.0 ** 30), ("MiB", 2.0 ** 20), ("KiB", 2.0 ** 10))


def _scale(unit, values):
    """(unit, divisor) for an axis: times and bytes scaled to the typical value."""
    from mmbench.report_tables import display_unit, Cell
    if unit == "B" and values:
        typical = sorted(abs(v) for v in values)[len(values) // 2]
        for name, div in _BYTE_SCALE:
            if typical >= div:
                return name, div
    return display_unit(unit, [Cell("measured", v) for v in values])


MARKERS = "os^Dv<>p"


def backend_colors(doc) -> dict:
    """One colour per backend, the same in every chart (baseline design first)."""
    from mmbench.report_tables import backends_of, choose_baseline
    names = backends_of(doc, choose_baseline(doc, None))
    return {b: f"C{i % 10}" for i, b in enumerate(names)}


def _series_label(r, multi_part, split, multi_thp=False, small=None):
    part = split_metric(r["metric"])[0] if multi_part else ""
    extra = f"{split}={r['params'][split]}" if split and split in r["params"] else ""
    thp = f"thp={r['params']['thp']}" if multi_thp and "thp" in r["params"] else ""
    if thp and small is not None and small(r):
        thp += " at 4 KiB"
    return " ".join(x for x in (part, extra, thp) if x)


def small_pages_index(doc) -> dict:
    """{(family, workload, params label, backend): note} of the cells whose row asks for huge
    pages (thp other than never) where the design ran at 4 KiB (``thp.huge_pages`` = 0)."""
    out = {}
    for r in doc["records"]:
        if (r["metric"] == HUGE_PAGES_METRIC and r["value"] == 0
                and r["params"].get("thp") not in (None, "never")):
            out[(r["family"], r["workload"], params_label(r["params"]), r["backend"])] = r.get("note") or ""
    return out


def _small_key(r):
    return (r["family"], r["workload"], params_label(r["params"]), r["backend"])


def _draw_lines(ax, recs, spec, div, colors, small=None):
    multi = spec.parts and len({split_metric(r["metric"])[0] for r in recs}) > 1
    multi_thp = len({r["params"].get("thp") for r in recs}) > 1
    series: dict[tuple, list] = {}
    for r in recs:
        series.setdefault((r["backend"], _series_label(r, multi, spec.split, multi_thp, small)), []).append(r)
    variants = sorted({v for _b, v in series}, key=natural_key)
    order = list(colors)
    xs_all = []
    for (backend, variant), rs in sorted(series.items(), key=lambda s: (order.index(s[0][0]), s[0][1])):
        rs.sort(key=lambda r: float(r["params"][spec.x]))
        xs = [float(r["params"][spec.x]) * spec.x_scale for r in rs]
        kind = rs[0]["kind"]
        ls = KIND_STYLE.get(kind, ("-", "o"))[0]
        mk = MARKERS[variants.index(variant) % len(MARKERS)]
        label = f"{backend}{' ' + variant if variant else ''} ({KIND_WORD.get(kind, kind)})"
        ax.errorbar(xs, [r["value"] / div for r in rs], yerr=_errors(rs, div), linestyle=ls,
                    marker=mk, capsize=3, color=colors.get(backend), label=label)
        xs_all += xs
    if xs_all and min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 16:
        ax.set_xscale("log", base=2)
    ticks = sorted(set(xs_all))
    if len(ticks) <= 12:  # the measured x values themselves, not 1.5 generations
        ax.set_xticks(ticks)
        ax.xaxis.set_minor_locator(_no_ticks())
    ax.xaxis.set_major_formatter(_plain_ticks())


def _interval(r):
    """(low, high) around a record's value: the estimate's range, else the p25–p75 spread."""
    rg = r.get("range")
    if rg:
        return rg["low"], rg["high"]
    s = r.get("spread")
    if s:
        return s["p25"], s["p75"]
    return None


def _errors(rs, div):
    iv = [_interval(r) for r in rs]
    if not all(iv):
        return None
    lo = [max(0.0, (r["value"] - i[0]) / div) for r, i in zip(rs, iv)]
    hi = [max(0.0, (i[1] - r["value"]) / div) for r, i in zip(rs, iv)]
    return [lo, hi]


def _draw_bars(ax, recs, div, colors, small=None):
    cats = sorted({_category(r) for r in recs}, key=_category_order)
    present = {r["backend"] for r in recs}
    backends = [b for b in colors if b in present]
    width = 0.8 / max(1, len(backends))
    for i, b in enumerate(backends):
        # two groups per backend: its bars, and those it drew at 4 KiB where huge pages were asked
        groups = {False: ([], [], [], [], set()), True: ([], [], [], [], set())}
        for j, c in enumerate(cats):
            r = next((r for r in recs if r["backend"] == b and _category(r) == c), None)
            if r is None:
                continue
            xs, ys, lo, hi, kinds = groups[bool(small and small(r))]
            s = _interval(r) or (r["value"], r["value"])
            xs.append(j + (i - (len(backends) - 1) / 2) * width)
            ys.append(r["value"] / div)
            lo.append(max(0.0, (r["value"] - s[0]) / div))
            hi.append(max(0.0, (s[1] - r["value"]) / div))
            kinds.add(r["kind"])
        for at_4k, (xs, ys, lo, hi, kinds) in groups.items():
            if not xs:
                continue
            hatch = ".." if at_4k else "//" if kinds == {"estimated"} else None
            err = [lo, hi] if any(lo) or any(hi) else None
            what = ", ".join(KIND_WORD.get(k, k) for k in sorted(kinds))
            ax.bar(xs, ys, width, yerr=err, capsize=2, hatch=hatch, color=colors.get(b),
                   label=f"{b}{' at 4 KiB (no huge pages)' if at_4k else ''} ({what})")
    ax.set_xticks(range(len(cats)))
    ax.set_xticklabels(cats, rotation=30, ha="right", rotation_mode="anchor", fontsize=8)


def _category_order(cat: str):
    """Categories in natural order, the huge-page axis in THP_ORDER (never, madvise, always)."""
    key = cat
    for i, mode in enumerate(THP_ORDER):
        key = key.replace(f"thp={mode}", f"thp={i}")
    return natural_key(key)


def _category(r):
    kind = r["params"].get("fault_kind")
    part = split_metric(r["metric"])[0]
    rest = {k: v for k, v in r["params"].items() if not _is_number(v) and k not in ("fault_kind", "thp")}
    thp = f"thp={r['params']['thp']}" if "thp" in r["params"] else ""
    where = " · ".join(x for x in (r["workload"], part if part != "metadata" else "", params_label(rest), thp)
                       if x)
    return f"{kind}\n{where}" if kind else where


def draw(doc, spec: ChartSpec, out_dir: Path) -> Chart:
    """Draw one chart into out_dir/<name>.png, or return it skipped with the reason."""
    stat, recs, fam_recs = _candidates(doc, spec)
    if not recs:
        want = f"a '{spec.x}' parameter and " if spec.x else ""
        return Chart(spec, note=f"the results hold no {spec.family} record with {want}"
                                f"a {' or '.join(spec.stats)} statistic")
    fixed = ""
    if spec.x is not None:
        (workload, fixed), recs = _line_selection(recs, spec.x, spec.split)
        xs = sorted({r["params"][spec.x] for r in recs}, key=natural_key)
        if len(xs) < 2:
            return Chart(spec, note=f"the results hold one value of '{spec.x}' only ({xs[0]}, workload "
                                    f"{workload}): no trend to draw (the quick or full profile has more)")
        fixed = f"workload {workload}" + (f", {fixed}" if fixed else "")
    else:
        recs = _bar_selection(recs)
    unit = recs[0].get("unit", "")
    shown, div = _scale(unit, [r["value"] for r in recs])
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    colors = backend_colors(doc)
    at_4k = small_pages_index(doc)
    small = (lambda r: _small_key(r) in at_4k) if at_4k else None
    ncats = 0 if spec.x else len({_category(r) for r in recs})
    fig, ax = plt.subplots(figsize=(max(9.0, 2.5 + 0.8 * ncats), 5.2 if ncats > 6 else 4.8), dpi=100)
    kinds = {r["kind"] for r in recs}
    kind = kinds.pop() if len(kinds) == 1 else ""
    title = spec.title + (TIME_TITLE.get(kind, "") if spec.per else "")
    ylabel = spec.ylabel or f"{TIME_LABEL.get(kind, 'time')} {spec.per}".strip()
    try:
        (_draw_lines(ax, recs, spec, div, colors, small) if spec.x else _draw_bars(ax, recs, div, colors, small))
        _finish(ax, spec, stat, shown, [r["value"] / div for r in recs], title, ylabel)
        path = Path(out_dir) / f"{spec.name}.png"
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return Chart(spec, path, caption=_caption(spec, stat, fixed, recs, fam_recs, at_4k), drawn_title=title)


def _plain_ticks():
    """Tick labels as plain numbers (1024, 0.5) rather than powers on log axes."""
    from matplotlib.ticker import FuncFormatter
    return FuncFormatter(lambda v, _pos: f"{v:,.10g}")


def _no_ticks():
    from matplotlib.ticker import NullLocator
    return NullLocator()


def _finish(ax, spec, stat, unit, ys, title=None, ylabel=None):
    ax.set_title(title or spec.title)
    ax.set_xlabel(spec.xlabel)
    ax.set_ylabel(f"{ylabel or spec.ylabel} [{unit}]")
    pos = [y for y in ys if y > 0]
    if pos and max(pos) / min(pos) >= 100:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(_plain_ticks())
    elif not spec.x:
        ax.set_ylim(bottom=0)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def _caption(spec, stat, fixed, recs, fam_recs, at_4k=None) -> str:
    kinds = sorted({r["kind"] for r in recs})
    bits = [f"{spec.family} · statistic {stat}", "kinds: " + ", ".join(kinds)]
    if fixed:
        bits.append(f"held fixed: {fixed}")
    elif not spec.x:
        sizes = sorted({_sizes_label(r) for r in recs} - {""}, key=natural_key)
        if sizes:
            shown = ", ".join(sizes) if len(sizes) <= 4 else ", ".join(sizes[:4]) + ", …"
            bits.append(f"each bar at the largest size in the results ({shown})")
    if any(r.get("range") for r in recs):
        bits.append("bars show the estimate's range from the prices' uncertainty (measured "
                    "prices: their bootstrap interval; prices assumed from Linux: ×/÷ 2)")
    elif any(r.get("spread") for r in recs):
        bits.append("bars show the p25–p75 spread over the repeats")
    note = _unsupported_note(fam_recs, {r["workload"] for r in recs})
    small = sorted({r["backend"] for r in recs if _small_key(r) in (at_4k or {})})
    if small:
        bits.append(f"ran at 4 KiB pages where huge pages were asked for ({'dotted bars' if not spec.x else 'at 4 KiB'}"
                    f"; each design's note is under the tables): {', '.join(small)}")
    return "; ".join(bits + ([note] if note else [])) + "."


def make_charts(doc, out_dir) -> list[Chart]:
    """Every chart of CHARTS for `doc`, drawn into `out_dir` (skipped ones carry a note)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [draw(doc, spec, out_dir) for spec in CHARTS]
