"""The results page (index.html) and the asv history table.

index.html is one self-contained file: CSS inline, every chart a base64
``data:image/png`` URI, no script, no external link — it opens from a mail
attachment or a file browser as well as from a web server.  It shows the same
tables as README.md (from the same Table objects, so the kind marks and
unsupported cells are identical), each cell also styled by its kind.

The history table reads asv's own results (``results/asv/<machine>/*.json``,
result format version 2): one row per benchmark × parameters, one column per
commit (oldest to newest, the last few), per machine.  asv does not record a
number's kind, so it is inferred from the benchmark's name the way the
workloads suite names them and from the unit it declares: ``time_*``,
``track_*median*``/``*_ns`` and units saying "model" or "measured" are
measured, ``*estimated*`` estimated, any other ``track_*`` (counts, bytes)
exact.  asv's times (seconds) are shown in ns … s like the other tables.  A combination asv skipped or that failed reads ``skipped``.
"""
from __future__ import annotations

import base64
import dataclasses
import html
import itertools
import json
from pathlib import Path

from mmbench.report_tables import (LEGEND, MISSING, UNSUPPORTED, Cell, FAMILY_TITLES, display_unit, format_cell,
                            natural_key, params_label, provenance, sections)

MAX_COMMITS = 6
MARK_KINDS = ("exact", "measured", "estimated")


@dataclasses.dataclass
class PlainTable:
    """A table already in text: the history table, shaped like report.Table for rendering."""
    title: str
    head: list
    rows: list
    nkeys: int
    kinds: list = dataclasses.field(default_factory=list)   # per row, per value column
    footnotes: list = dataclasses.field(default_factory=list)

    def header(self):
        return self.head

    def text_rows(self):
        return self.rows

    def notes(self):
        return self.footnotes


# ------------------------------------------------------------------ asv input
def asv_kind(name: str, unit: str = "") -> str:
    """The kind of an asv benchmark's numbers, from its unit and name (see the module docstring)."""
    leaf, unit = name.rsplit(".", 1)[-1], unit.lower()
    if "estimat" in unit or "estimat" in leaf:
        return "estimated"
    if leaf.startswith(("time_", "mem_", "peakmem_")) or "measured" in unit or "model" in unit:
        return "measured"
    if "median" in leaf or "p99" in leaf or leaf.endswith("_ns"):
        return "measured"
    return "exact"


def _asv_rows(result_file: Path, names: dict):
    """(commit, date, {(benchmark, params label): (value or None, p25, p75)}) of one asv results file."""
    d = json.loads(result_file.read_text())
    cols = d.get("result_columns", [])
    out = {}
    for name, row in (d.get("results") or {}).items():
        get = dict(itertools.zip_longest(cols, row))
        values = get.get("result")
        params = get.get("params") or []
        combos = list(itertools.product(*params)) if params else [()]
        if not isinstance(values, list):
            values = [values]
        q25 = get.get("stats_q_25") or [None] * len(values)
        q75 = get.get("stats_q_75") or [None] * len(values)
        pn = names.get(name) or [f"p{i}" for i in range(len(params))]
        for combo, v, a, b in zip(combos, values, q25, q75):
            ok = isinstance(v, (int, float)) and v == v
            label = " ".join(f"{n}={str(c).strip(chr(39))}" for n, c in zip(pn, combo))
            out[(name, label)] = (v if ok else None, a, b)
    return d.get("commit_hash") or result_file.stem, d.get("date") or 0, out


def asv_history(asv_dir, max_commits: int = MAX_COMMITS) -> list[PlainTable]:
    """One history table per machine under `asv_dir` (empty when there are no asv results)."""
    asv_dir = Path(asv_dir)
    if not asv_dir.is_dir():
        return []
    meta = _asv_benchmarks(asv_dir / "benchmarks.json")
    names = {k: v.get("param_names") for k, v in meta.items()}
    tables = []
    for mdir in sorted(p for p in asv_dir.iterdir() if p.is_dir()):
        runs = []
        for f in sorted(mdir.glob("*.json")):
            if f.name == "machine.json":
                continue
            try:
                runs.append(_asv_rows(f, names))
            except (OSError, ValueError, TypeError, AttributeError):
                continue  # a file asv is writing or a foreign json: not history
        if runs:
            units = {k: v.get("unit", "") for k, v in meta.items()}
            tables.append(_history_table(mdir.name, runs, units, max_commits))
    return tables


def _asv_benchmarks(path: Path) -> dict:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in d.items() if isinstance(v, dict)}


def _history_row(key, unit, runs):
    """One benchmark × parameters across the commits: (unit shown, cell texts, kinds)."""
    kind = asv_kind(key[0], unit)
    scale = 1e9 if unit == "seconds" else 1.0          # asv times are in seconds: show ns … s
    cells = [None if data.get(key) is None else data[key] for _c, _d, data in runs]
    numbers = [Cell(kind, c[0] * scale) for c in cells if c and c[0] is not None]
    shown, div = display_unit("ns", numbers) if scale != 1.0 else (unit, 1.0)
    texts, kinds = [], []
    for c in cells:
        if c is None:
            texts.append(MISSING)
            kinds.append("missing")
        elif c[0] is None:
            texts.append("skipped")
            kinds.append("unsupported")
        else:
            lo, hi = (None if x is None else x * scale for x in (c[1], c[2]))
            texts.append(format_cell(Cell(kind, c[0] * scale, lo, hi), div))
            kinds.append(kind)
    return shown, texts, kinds


def _history_table(machine, runs, units, max_commits) -> PlainTable:
    runs = sorted(runs, key=lambda r: r[1])[-max_commits:]
    keys = sorted({k for _c, _d, rows in runs for k in rows}, key=lambda k: [natural_key(x) for x in k])
    head = ["benchmark", "parameters", "unit"] + [c[:8] for c, _d, _r in runs]
    rows, kinds, never = [], [], 0
    for k in keys:
        shown, texts, rk = _history_row(k, units.get(k[0], ""), runs)
        if not any(x in MARK_KINDS for x in rk):
            never += 1          # skipped (or absent) at every commit: counted, not listed
            continue
        rows.append([k[0], k[1], shown] + texts)
        kinds.append(rk)
    notes = [f"commits oldest to newest (last {max_commits}); `skipped`: asv skipped the combination or "
             f"it failed (unsupported designs are skipped); `{MISSING}`: not run at that commit"]
    if never:
        notes.append(f"{never} benchmark × parameter combination(s) have no number at any of these "
                     "commits (unsupported or failed) and are not listed")
    return PlainTable(f"asv history on {machine}", head, rows, 3, kinds, notes)


# ----------------------------------------------------------------------- html
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:88rem;
     padding:0 1rem;color:#1b1f24;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.3rem} h2{margin-top:2.2rem;border-bottom:1px solid #d0d7de}
h3{font-size:1.02rem;margin:1.4rem 0 .4rem}
dl.prov{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem;font-size:.92rem}
dl.prov dt{font-weight:600} dl.prov dd{margin:0}
.legend{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:.6rem .9rem;font-size:.88rem}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:.86rem;margin:.2rem 0}
th,td{border:1px solid #d0d7de;padding:.25rem .55rem} td.num{white-space:nowrap}
th{background:#f6f8fa;text-align:left} td.num{text-align:right;font-variant-numeric:tabular-nums}
td.measured{color:#0a3069} td.estimated{color:#6e4f00;background:#fffbea}
td.unsupported{color:#8c959f;font-style:italic} td.missing{color:#8c959f}
ul.notes{font-size:.82rem;color:#57606a;margin:.2rem 0 0}
figure{margin:1.2rem 0} figure img{max-width:100%;border:1px solid #d0d7de}
figcaption{font-size:.84rem;color:#57606a}
p.skip{font-size:.88rem;color:#57606a} nav.toc{margin:1rem 0;font-size:.92rem} p.common{font-size:.84rem;color:#57606a;margin:.1rem 0 .3rem}
"""


def _e(x) -> str:
    return html.escape(str(x))


def _kind_of_text(text: str) -> str:
    if text == UNSUPPORTED or text == "skipped":
        return "unsupported"
    if text == MISSING:
        return "missing"
    return {"~": "measured", "≈": "estimated"}.get(text[:1], "exact")


def table_html(t) -> str:
    """A table (report.Table or PlainTable) as HTML, each value cell classed by its kind."""
    nkeys = t.nkeys if isinstance(t, PlainTable) else len(t.key_columns())
    out = [f"<h3>{_e(t.title)}</h3>"]
    common = t.common_params() if hasattr(t, "common_params") else {}
    if common:
        out.append(f'<p class="common">In every row: {_e(params_label(common))}.</p>')
    out.append('<div class="scroll"><table><thead><tr>')
    out += [f"<th>{_e(h)}</th>" for h in t.header()]
    out.append("</tr></thead><tbody>")
    for row in t.text_rows():
        cells = [f"<td>{_e(c)}</td>" for c in row[:nkeys]]
        cells += [f'<td class="num {_kind_of_text(c)}">{_e(c)}</td>' for c in row[nkeys:]]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    notes = t.notes()
    if notes:
        out.append('<ul class="notes">' + "".join(f"<li>{_code_spans(n)}</li>" for n in notes) + "</ul>")
    return "".join(out)


def _code_spans(text: str) -> str:
    """Escape `text` and turn its `backtick` spans (Markdown) into <code>."""
    parts = _e(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _legend_html() -> str:
    return _code_spans(LEGEND)


def chart_html(c) -> str:
    if c.path is None:
        return f'<p class="skip"><b>{_e(c.title)}</b>: not drawn — {_e(c.note)}</p>'
    data = base64.b64encode(Path(c.path).read_bytes()).decode("ascii")
    return (f'<figure id="{_e(c.name)}"><img src="data:image/png;base64,{data}" alt="{_e(c.title)}">'
            f"<figcaption>{_e(c.caption)}</figcaption></figure>")


def render_html(doc, tables, baseline, charts=(), history=(), skipped=()) -> str:
    """index.html: provenance, legend, contents, per family its tables then its charts, history."""
    prov = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in provenance(doc))
    prov += f"<dt>baseline</dt><dd>{_e(baseline or 'none')} (ratios are to this design)</dd>"
    parts = sections(tables, charts)
    toc = [(f"fam-{f}", FAMILY_TITLES.get(f, f)) for f, _t, _c in parts]
    from mmbench import report_whatifs
    whatifs = report_whatifs.html(doc)
    toc += [("what-ifs", "What-ifs")] if whatifs else []
    toc += [("not-run", "Not run on any design")] if skipped else []
    toc += [("history", "History over commits (asv)")] if history else []
    body = ["<h1>mmbench results</h1>", f'<dl class="prov">{prov}</dl>',
            f'<p class="legend">{_legend_html()}</p>',
            '<nav class="toc">' + " · ".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in toc) + "</nav>"]
    for fam, fam_tables, fam_charts in parts:
        body.append(f'<h2 id="fam-{_e(fam)}">{_e(FAMILY_TITLES.get(fam, fam))}</h2>')
        body += [table_html(t) for t in fam_tables] + [chart_html(c) for c in fam_charts]
    if whatifs:
        body.append(whatifs)
    if skipped:
        body.append('<h2 id="not-run">Not run on any design</h2><ul>'
                    + "".join(f"<li>{_e(s)}</li>" for s in skipped) + "</ul>")
    if history:
        body.append('<h2 id="history">History over commits (asv)</h2>' + "".join(table_html(t) for t in history))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>mmbench results</title><style>{CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")
