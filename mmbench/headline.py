"""The answer on the terminal: the four headline tables of a results file.

``mmbench report`` writes the full comparison (README.md, details.md,
index.html, charts); what a reader wants to see first, right after ``make
compare``, is four tables, each design against the baseline:

1. metadata bytes per resident page (exact);
2. fault cost by kind, per page (estimated host time when the run had a
   calibration, else the model's measured time, marked as such);
3. fork cost, per fork (same rule);
4. device-migration throughput (GB/s).

Each table is built by mmbench.report (same cells, kind marks and ratios as
the published page) and printed as a plain terminal table.
"""
from __future__ import annotations

#: (family, statistics in order of preference, what the table answers)
HEADLINES = (
    ("metadata_memory", ("bytes_per_resident_page",), "metadata bytes per resident page"),
    ("fault_latency", ("estimated_ns_per_page", "median_ns"), "fault cost by kind, per page"),
    ("fork_cost", ("estimated_ns", "median_ns"), "fork cost, per fork"),
    ("device_migration", ("GBps",), "migration throughput"),
)


def pick(tables, family: str, stats) -> tuple[object, str] | None:
    """The first table of `family` whose statistic is in `stats` (in that order)."""
    for stat in stats:
        for t in tables:
            if t.family == family and t.stat == stat:
                return t, stat
    return None


def terminal_tables(doc: dict, baseline: str | None = None) -> list[tuple[str, object]]:
    """[(heading, report.Table)] of the headline questions the results can answer."""
    from mmbench import report_tables as report
    base = report.choose_baseline(doc, baseline)
    tables = report.build_tables(doc, base)
    out = []
    for family, stats, what in HEADLINES:
        found = pick(tables, family, stats)
        if found is None:
            continue
        t, stat = found
        kind = ("estimated host time" if stat.startswith("estimated") else
                "model time measured here; no calibration, so no estimate" if stat == "median_ns" else "")
        out.append((f"{what}{' (' + kind + ')' if kind else ''} — {t.title}", t))
    return out


def render(doc: dict, baseline: str | None = None, where: str | None = None, tablefmt: str = "simple") -> str:
    """The headline tables as text, then where the full report is."""
    from tabulate import tabulate
    from mmbench import report_tables as report
    base = report.choose_baseline(doc, baseline)
    lines = []
    p = dict(report.provenance(doc))
    lines.append(f"mmbench {doc.get('profile', '?')} comparison on {p['machine']}, commit "
                 f"{(doc.get('commit') or 'unknown')[:12]}{' (dirty tree)' if doc.get('dirty') else ''}; "
                 f"ratios are to {base or 'no baseline'}")
    for heading, t in terminal_tables(doc, baseline):
        rows = t.text_rows()
        common = t.common_params()
        lines += ["", heading]
        if common:
            lines.append("in every row: " + report.params_label(common))
        align = ["left"] * t.nkeys + ["right"] * (len(t.header()) - t.nkeys)
        lines.append(tabulate(rows, t.header(), tablefmt=tablefmt, disable_numparse=True, colalign=align))
        notes = t.notes()
        if notes:                       # each says what it is (unsupported, —, ⁴ᴷ at 4 KiB …)
            lines += [f"  {n}" for n in notes]
    if len(lines) == 1:
        lines.append("(the results hold none of the headline statistics)")
    lines += ["", "plain = exact · ~ measured · ≈ estimated · (1.35×) ratio to the baseline · † within "
              f"the spread of the repeats · {report.SMALL_PAGES} ran at 4 KiB pages in a huge-page (thp) row"]
    if where:
        lines.append(f"full report: {where}")
    return "\n".join(lines)
