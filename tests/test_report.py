"""Publishing: the tables never lose a number's kind, never show unsupported as 0,
always say where the numbers came from (comparisons: tests/test_compare.py)."""
from __future__ import annotations

import copy
import json
import re
import subprocess
import sys

import pytest

from mmbench import errors, report
from mmbench.report import Cell, build_tables, format_cell, params_label
from mmbench.report_page import asv_history, asv_kind

from report_fixture import make_doc, write_asv


@pytest.fixture(scope="module")
def doc():
    return make_doc()


@pytest.fixture(scope="module")
def written(tmp_path_factory, doc):
    d = tmp_path_factory.mktemp("report")
    path = d / "results.json"
    path.write_text(json.dumps(doc))
    asv = d / "asv"
    write_asv(asv)
    return report.write_report(path, d / "out", asv_dir=asv), d / "out"


def _record_kinds(doc):
    return {(r["family"], r["workload"], params_label(r["params"]), r["backend"], r["metric"]): r
            for r in doc["records"]}


MARK_OF = {"exact": re.compile(r"^-?[0-9]"), "measured": re.compile(r"^~-?[0-9]"),
           "estimated": re.compile(r"^≈-?[0-9]")}


# ---------------------------------------------------------------- the tables
def test_every_cell_carries_the_kind_of_its_record(doc):
    recs = _record_kinds(doc)
    star = {k[:4]: r for k, r in recs.items() if k[4] == "*"}
    checked = {"exact": 0, "measured": 0, "estimated": 0, "unsupported": 0}
    for t in build_tables(doc, "linux"):
        div = t.display()[1]
        for (wl, pl, part), cells in zip(t.keys, t.cells):
            metric = f"{part}.{t.stat}" if part else t.stat
            for b, cell in zip(t.backends, cells):
                r = recs.get((t.family, wl, pl, b, metric)) or star.get((t.family, wl, pl, b))
                text = format_cell(cell, div)
                if r is None:
                    assert text == report.MISSING
                    continue
                checked[r["kind"]] += 1
                if r["kind"] == "unsupported":
                    assert text == "unsupported"
                else:
                    assert MARK_OF[r["kind"]].match(text), (r, text)
                    shown = float(text.lstrip("~≈").replace(",", ""))
                    assert shown == pytest.approx(r["value"] / div, rel=5e-3)
    assert all(checked.values()), checked  # the fixture exercises every kind


def test_measured_and_estimated_are_never_printed_plain():
    for kind, mark in (("measured", "~"), ("estimated", "≈")):
        for v in (0.0, 1.0, 12345.0, 0.00123):
            text = format_cell(Cell(kind, v))
            assert text.startswith(mark), text
    assert format_cell(Cell("exact", 4096.0)) == "4,096"


def test_unsupported_is_never_zero(doc, written):
    paths, out = written
    readme = (out / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| bulk_roundtrip")]
    assert rows, "the migration table is missing"
    assert "Device migration — to_device · throughput [GB/s]" in readme or "throughput [GB/s]" in readme
    header = next(line for line in readme.splitlines()
                  if line.startswith("| workload") and re.search(r"\|\s+uvm\s+\|", line))
    col = [c.strip() for c in header.split("|")].index("uvm")
    for line in rows:
        cell = [c.strip() for c in line.split("|")][col]
        assert cell == "unsupported", line
    assert "uvm: the design has no accelerators" in readme
    for text in (readme, (out / "index.html").read_text()):
        assert not re.search(r"\|\s*0\s*\|", text)
    # a workload no design ran has no row, only its reason
    assert "oversubscribe" in readme.split("## Not run on any design")[1]


def test_an_unsupported_metric_marks_its_whole_part(doc):
    """A design that accounts no structs says so once (metadata.total_bytes); its other
    metadata statistics read unsupported too, not missing and never 0."""
    from report_fixture import rec
    d = copy.deepcopy(doc)
    d["records"] = [r for r in d["records"] if not (r["backend"] == "uvm" and r["family"] == "metadata_memory")]
    d["records"].append(rec("metadata_memory", "dense", {"pages": 16384}, "uvm", "metadata.total_bytes",
                            None, "", "unsupported", note="the design accounts no kernel structs"))
    for t in build_tables(d, "linux"):
        if t.family == "metadata_memory" and t.stat in ("total_bytes", "bytes_per_resident_page"):
            row = next(r for k, r in zip(t.keys, t.text_rows()) if k[0] == "dense")
            assert row[t.nkeys + t.backends.index("uvm")] == "unsupported"
            assert any("the design accounts no kernel structs" in n for n in t.notes())


def test_unsupported_cell_text_for_every_kind_of_absence():
    assert format_cell(Cell.of({"kind": "unsupported", "value": None, "note": "x"})) == "unsupported"
    assert format_cell(Cell.of(None)) == report.MISSING


def test_header_states_machine_commit_and_date(doc, written):
    _paths, out = written
    for name in ("README.md", "details.md", "index.html"):
        text = (out / name).read_text()
        assert "fixture-host" in text and "Fixture CPU" in text
        assert doc["commit"] in text
        assert doc["created"] in text
    nocommit = dict(doc, commit=None)
    assert "unknown (not run from a git checkout)" in dict(report.provenance(nocommit))["commit"]


def test_ratios_and_significance_marks(doc):
    t = next(t for t in build_tables(doc, "linux") if t.family == "fault_latency" and t.stat == "median_ns")
    assert t.header()[t.nkeys] .startswith("linux") and "(baseline)" in t.header()[t.nkeys]
    rows = {(k[0], params_label(p)): r for k, p, r in zip(t.keys, t.params, t.text_rows())}
    b = t.backends
    zero_fill = rows[("seq_first_touch", "fault_kind=zero_fill pages=4096")]
    # the fixture gives shmem the same zero-fill cost as linux: spreads overlap → †
    assert zero_fill[t.nkeys + b.index("shmem")].endswith("×†)")
    # gmem is 2.3× slower with ±10 % spreads: a real difference, no mark
    assert re.search(r"\(2\.\d\d×\)$", zero_fill[t.nkeys + b.index("gmem")])
    assert "(" not in zero_fill[t.nkeys]  # no ratio of the baseline to itself


def test_significance_needs_spreads_on_both_sides():
    a = Cell("measured", 100.0, 90.0, 110.0)
    assert report.differs_less_than_spread(a, Cell("measured", 105.0, 95.0, 115.0)) is True
    assert report.differs_less_than_spread(a, Cell("measured", 200.0, 190.0, 210.0)) is False
    assert report.differs_less_than_spread(a, Cell("measured", 105.0)) is None
    assert report.differs_less_than_spread(Cell("exact", 1.0), Cell("exact", 1.0)) is None


def test_baseline_choice(doc):
    assert report.choose_baseline(doc, None) == "linux"
    assert report.choose_baseline(doc, "gmem") == "gmem"
    with pytest.raises(errors.InvalidArgument, match="not in the results"):
        report.choose_baseline(doc, "solaris")
    nolinux = make_doc(backends=("shmem", "freebsd"))
    assert report.choose_baseline(nolinux, None) == "freebsd"
    for r in nolinux["records"]:
        r["backend"] = "reference" if r["backend"] == "freebsd" else r["backend"]
    assert report.choose_baseline(nolinux, None) == "shmem"  # the specification has no costs
    assert report.backends_of(doc, "gmem")[0] == "gmem"


def test_units_once_in_titles_and_tables_grouped_by_family(doc):
    tables = build_tables(doc, "linux")
    for t in tables:
        unit = t.display()[0]
        # the unit is said once, in the title, and never doubled (`median_ns [µs]`)
        assert f"[{unit}]" in t.title and "_ns" not in t.title and "_bytes" not in t.title
        assert [h.split(" (")[0] for h in t.header()[t.nkeys:]] == t.backends
    assert report.stat_label("median_ns") == "median"
    assert report.stat_label("estimated_ns_per_page") == "estimated per page"
    assert report.stat_label("bytes_per_resident_page") == "per resident page"
    assert report.stat_label("pte_writes") == "pte_writes"
    fams = [t.family for t in tables]
    assert fams == sorted(fams, key=lambda f: list(report.FAMILY_TITLES).index(f))


def test_readme_has_every_family_and_the_legend(written):
    _paths, out = written
    readme = (out / "README.md").read_text()
    for title in report.FAMILY_TITLES.values():
        assert f"## {title}" in readme
    assert report.LEGEND in readme
    assert "|--" in readme  # GitHub pipe tables
    details = (out / "details.md").read_text()
    assert "pte_writes" in details and "pte_writes" not in readme


def test_load_rejects_dishonest_or_broken_files(tmp_path, doc):
    bad = copy.deepcopy(doc)
    bad["records"][0]["kind"] = "unsupported"    # a value with kind unsupported
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(bad))
    with pytest.raises(errors.InvalidArgument):
        report.load_results(p)
    p.write_text("{not json")
    with pytest.raises(errors.InvalidArgument):
        report.load_results(p)
    with pytest.raises(errors.InvalidArgument):
        report.load_results(tmp_path / "missing.json")


# -------------------------------------------------------------------- charts
def test_every_chart_is_drawn_from_the_fixture(written):
    paths, out = written
    from mmbench.report_plots import CHARTS
    for spec in CHARTS:
        png = out / f"{spec.name}.png"
        assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 10_000  # axes, labels and data, not an empty canvas


def test_charts_without_data_are_skipped_with_a_note(tmp_path):
    only = make_doc(families=("fault_latency",))
    p = tmp_path / "r.json"
    p.write_text(json.dumps(only))
    paths = report.write_report(p, tmp_path / "out", asv_dir=None)
    assert "fault_latency_by_kind" in paths
    assert not (tmp_path / "out" / "fork_cost_vs_pages.png").exists()
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "Fork cost versus resident pages: not drawn — the results hold no fork_cost record" in readme


def test_charts_never_draw_unsupported_designs(tmp_path, doc):
    from mmbench.report_plots import CHARTS, draw
    spec = next(s for s in CHARTS if s.name == "migration_gbps_vs_size")
    chart = draw(doc, spec, tmp_path)
    assert chart.path is not None
    assert "unsupported on uvm: the design has no accelerators" in chart.caption


def test_a_trend_chart_needs_two_x_values(tmp_path):
    one = make_doc(families=("fork_cost",))
    one["records"] = [r for r in one["records"] if r["params"]["pages"] == 1024]
    from mmbench.report_plots import CHARTS, draw
    spec = next(s for s in CHARTS if s.name == "fork_cost_vs_pages")
    chart = draw(one, spec, tmp_path)
    assert chart.path is None and "one value of 'pages' only (1024" in chart.note
    depth = draw(one, next(s for s in CHARTS if s.name == "fork_cost_vs_depth"), tmp_path)
    assert depth.path is not None and "pages=1024" in depth.caption


def test_an_empty_run_still_says_where_it_came_from(tmp_path, doc):
    empty = dict(doc, records=[])
    p = tmp_path / "empty.json"
    p.write_text(json.dumps(empty))
    paths = report.write_report(p, tmp_path / "out", asv_dir=None)
    readme = (tmp_path / "out" / "README.md").read_text()
    assert doc["commit"] in readme and "not drawn" in readme
    assert set(paths) == {"README.md", "details.md", "index.html"}


def test_odd_parameters_do_not_break_the_charts(tmp_path, doc):
    d = copy.deepcopy(doc)
    for r in d["records"]:
        if r["family"] == "device_migration" and r["params"].get("transfer") == 16:
            r["params"]["transfer"] = "sixteen"      # not a number: not on a numeric axis
        if r["family"] == "fault_latency":
            r["params"]["shared"] = True
    from mmbench.report_plots import make_charts
    charts = {c.name: c for c in make_charts(d, tmp_path)}
    assert charts["migration_gbps_vs_size"].path is not None
    assert charts["fault_latency_by_kind"].path is not None


# ----------------------------------------------------------------------- asv
def test_asv_history_table(tmp_path, written):
    write_asv(tmp_path / "asv")
    [t] = asv_history(tmp_path / "asv")
    head = t.header()
    assert head[-2:] == ["aaaaaaaa", "bbbbbbbb"]
    rows = {(r[0], r[1]): r for r in t.text_rows()}
    linux = rows[("fork_cost.ForkGrid.time_segment", "backend=linux")]
    assert linux[2] == "ms" and linux[-2:] == ["~1.00", "~2.00"]   # asv's seconds, shown in ms
    assert rows[("fork_cost.ForkGrid.time_segment", "backend=gmem")][-2:] == ["~2.00", "~2.00"]
    assert ("fork_cost.ForkGrid.time_segment", "backend=uvm") not in rows   # never ran: counted
    assert any("1 benchmark × parameter combination(s) have no number" in n for n in t.notes())
    assert rows[("fault_latency.SeqFirstTouch.track_estimated_ns", "")][-1] == "≈951"
    assert rows[("metadata_memory.Dense.track_metadata_bytes", "")][-1] == "151,552"
    _paths, out = written
    assert "History over commits (asv)" in (out / "README.md").read_text()


def test_asv_kinds_follow_the_benchmark_names():
    assert asv_kind("fault_latency.CowAfterFork.time_segment") == "measured"
    assert asv_kind("fault_latency.CowAfterFork.track_median_ns") == "measured"
    assert asv_kind("fault_latency.CowAfterFork.track_estimated_ns") == "estimated"
    assert asv_kind("fault_latency.CowAfterFork.track_faults") == "exact"
    assert asv_kind("blocks.BlockBench.track_ns_per_op", "ns/op (measured)") == "measured"
    assert asv_kind("x.Y.track_cost", "ns (estimated)") == "estimated"


# ------------------------------------------------------------------- command
def test_report_command(tmp_path, doc):
    p = tmp_path / "r.json"
    p.write_text(json.dumps(doc))
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "mmbench.cli", "report", str(p), "--out", str(out),
                          "--baseline", "freebsd", "--asv", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert f"full report: {out / 'README.md'} and {out / 'index.html'}" in run.stdout
    assert "freebsd (baseline)" in (out / "README.md").read_text()
    ex = subprocess.run([sys.executable, "-m", "mmbench.cli", "report", str(p), "--out", str(out),
                         "--asv", str(tmp_path / "none"), "--excerpt", "3"],
                        capture_output=True, text=True, timeout=300)
    assert "fixture-host" in ex.stdout and "commit 0123456789ab" in ex.stdout
    assert ex.stdout.count("| cow_after_fork") == 3 and f"more rows in {out / 'README.md'}" in ex.stdout
    assert "In every row: fault_kind=cow_copy" in ex.stdout
    bad = subprocess.run([sys.executable, "-m", "mmbench.cli", "report", str(tmp_path / "nope.json")],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "no such file" in bad.stderr and "Traceback" not in bad.stderr


# ------------------------------------------------ issue 15: units, reasons, clock
def test_every_missing_cell_has_its_reason(doc):
    d = copy.deepcopy(doc)
    # gmem loses one statistic of one step: its cell becomes `—` with a reason
    d["records"] = [r for r in d["records"] if not (
        r["backend"] == "gmem" and r["workload"] == "seq_first_touch" and r["metric"] == "write.p99_ns")]
    d["calibration"] = None
    for t in build_tables(d, "linux"):
        rows = t.text_rows()
        notes = t.notes()
        for key, row in zip(t.keys, rows):
            for b, text in zip(t.backends, row[t.nkeys:]):
                if text == report.MISSING:
                    assert any(n.startswith(f"{report.MISSING} {b}: ") and key[0] in n for n in notes), \
                        (t.title, key, b, notes)
    t = next(t for t in build_tables(d, "linux") if t.family == "fault_latency" and t.stat == "p99_ns")
    assert any("gmem: the run recorded no 'p99_ns'" in n for n in t.notes())


def test_times_at_the_clock_limit_are_marked(doc):
    d = copy.deepcopy(doc)
    d["clock"] = {"clock": "clock_gettime(CLOCK_MONOTONIC)", "resolution_ns": 10.0}
    for r in d["records"]:
        if r["metric"] == "write.median_ns" and r["backend"] == "linux" and r["workload"] == "seq_first_touch":
            r["value"], r["spread"] = 15.0, None
    t = next(t for t in build_tables(d, "linux") if t.family == "fault_latency" and t.stat == "median_ns")
    texts = [row[t.nkeys] for key, row in zip(t.keys, t.text_rows()) if key[0] == "seq_first_touch"]
    assert any(x.endswith(report.AT_CLOCK_LIMIT) for x in texts)
    assert any("within 2× the per-op clock's resolution (10 ns)" in n for n in t.notes())
    # estimated and exact numbers are never marked: they are not clock readings
    assert format_cell(Cell("estimated", 1.0), resolution_ns=10.0) == "≈1.00"


def test_estimated_cells_carry_their_range():
    c = Cell.of({"kind": "estimated", "value": 10.0, "range": {"low": 8.0, "high": 14.0}, "note": ""})
    assert (c.low, c.high) == (8.0, 14.0)
