"""The huge-page axis of the workloads: it reaches the designs, the results carry it, the
report shows it (and marks a design that ran at 4 KiB where huge pages were asked for)."""
from __future__ import annotations

import numpy as np
import pytest

import mmbench
from mmbench import errors, report, runner
from mmbench.trace import Advice, Op
from mmbench.workloads import _common, _measure
from mmbench.workloads._common import PAGES_2M, catalogue

CAT = catalogue()


def _by(recs):
    return {r["metric"]: r for r in recs}


def _measure1(name, backend, **params):
    return _by(_measure.measure(CAT[name], params, backend, repeats=1))


def test_every_workload_has_the_axis_in_every_profile():
    for w in CAT.values():
        for prof in _common.PROFILES:
            modes = {p["thp"] for p in w.points(prof)}
            assert modes <= set(_common.THP_MODES), (w.name, prof, modes)
        quick = {p["thp"] for p in w.points("quick")}
        assert {"never", "always"} <= quick, w.name
        assert w.points("asv") and {p["thp"] for p in w.points("asv")} == {"never"}
    # madvise is on the axis wherever the advice can be written into the trace
    assert {p["thp"] for p in CAT["seq_first_touch"].points("tiny")} == set(_common.THP_MODES)


@pytest.mark.parametrize("thp", _common.THP_MODES)
def test_the_mode_is_the_machines_option_and_madvise_is_in_the_trace(thp):
    sc = CAT["dense"].scenario(pages=1024, thp=thp)
    assert dict(sc.machine.options)["thp"] == thp
    trace = np.concatenate([s.trace for s in sc.segments])
    adv = trace[trace["op"] == Op.MADVISE]
    mm = trace[trace["op"] == Op.MMAP]
    if thp == "madvise":    # every mapping advised, whole
        assert len(adv) == len(mm) and (adv["arg"] == int(Advice.HUGEPAGE)).all()
        assert (adv["vpn"] == mm["vpn"]).all() and (adv["npages"] == mm["npages"]).all()
    else:
        assert len(adv) == 0
    small = CAT["many_small_vmas"].scenario(vmas=4, thp=thp)     # 2-page mappings: never advised
    assert not any((s.trace["op"] == Op.MADVISE).any() for s in small.segments)


def test_linux_first_touch_takes_one_fault_per_2m_with_huge_pages():
    pages = 4 * PAGES_2M        # four aligned blocks
    faults = {thp: _measure1("seq_first_touch", "linux", pages=pages, thp=thp)
              for thp in _common.THP_MODES}
    assert faults["never"]["write.faults"]["value"] == pages
    for thp in ("madvise", "always"):
        assert faults[thp]["write.faults"]["value"] == 4
        assert faults[thp]["write.thp_fault_alloc"]["value"] == 4
        assert faults[thp]["thp.huge_pages"]["value"] == 1
    assert faults["never"]["thp.huge_pages"]["value"] == 0
    # the records carry the axis
    assert all(r["params"]["thp"] == "always" for r in faults["always"].values())


def test_a_design_without_huge_pages_says_so_per_cell():
    uvm = _measure1("seq_first_touch", "uvm", pages=PAGES_2M, thp="always")
    rec = uvm["thp.huge_pages"]
    assert rec["value"] == 0 and rec["kind"] == "exact" and "4 KiB" in rec["note"]
    assert uvm["write.faults"]["value"] == PAGES_2M
    # linux with devices keeps 4 KiB pages (its HMM paths walk PTE tables only)
    dev = _measure1("device_return", "linux", pages=PAGES_2M, thp="always")
    assert dev["thp.huge_pages"]["value"] == 0 and "devices" in dev["thp.huge_pages"]["note"]


def test_partial_munmap_splits_every_huge_mapping():
    blocks = 2
    lin = _measure1("partial_munmap", "linux", blocks=blocks, thp="always")
    assert lin["munmap.thp_split_pmd"]["value"] == blocks
    assert _measure1("partial_munmap", "linux", blocks=blocks, thp="never").get("munmap.thp_split_pmd") is None
    fb = _measure1("partial_munmap", "freebsd", blocks=blocks, thp="always")
    assert fb["munmap.superpage_demotions"]["value"] == blocks
    assert fb["metadata.resident_pages"]["value"] == blocks * (PAGES_2M - 1)


def test_sparse_touch_with_thp_makes_whole_2m_resident_on_linux_only():
    touched = 4
    lin = _measure1("sparse", "linux", touched=touched, thp="always")
    assert lin["metadata.resident_pages"]["value"] == touched * PAGES_2M
    fb = _measure1("sparse", "freebsd", touched=touched, thp="always")   # reservations fill 4 KiB at a time
    assert fb["metadata.resident_pages"]["value"] == touched


def test_thp_option_becomes_the_cells_parameter():
    doc = runner.run_suite("tiny", ["linux"], ["seq_first_touch"], repeats=1, options={"thp": "always"})
    assert {r["params"]["thp"] for r in doc["records"]} == {"always"}
    assert doc["run"]["overrides"] == {"thp": "always"} and doc["design_options"] == {}
    with pytest.raises(errors.InvalidArgument, match="disagree"):
        runner.run_suite("tiny", ["linux"], ["seq_first_touch"], repeats=1,
                         options={"thp": "always"}, overrides={"thp": "never"})
    with pytest.raises(errors.InvalidArgument, match="expected one of"):
        runner.run_suite("tiny", ["linux"], ["seq_first_touch"], repeats=1, overrides={"thp": "sometimes"})


def test_an_mmbench_without_huge_pages_runs_thp_never_only(monkeypatch):
    """asv runs this suite against old commits, whose designs have no thp option."""
    import mmbench.hugepages

    class Old:
        option_defaults = {}
    monkeypatch.setattr(mmbench.hugepages, "CONTRACT_OPTIONS", {})
    never = CAT["seq_first_touch"].scenario(pages=64, thp="never")
    assert "thp" not in _measure.machine_kwargs(Old, never)
    with pytest.raises(_measure.Unavailable, match="no huge pages"):
        _measure.machine_kwargs(Old, CAT["seq_first_touch"].scenario(pages=64, thp="always"))


def _doc(backends=("linux", "uvm")):
    doc = mmbench.results.new_document("tiny", [])
    for b in backends:
        for thp in ("never", "always"):
            doc["records"] += _measure.measure(CAT["seq_first_touch"], {"pages": PAGES_2M, "thp": thp}, b,
                                               repeats=1)
    return doc


def test_report_shows_the_axis_and_marks_4k_cells(tmp_path):
    doc = _doc()
    tables = report.build_tables(doc, "linux")
    assert not any(t.stat == "huge_pages" for t in tables)       # a mark, not a table
    t = next(t for t in tables if t.family == "fault_latency" and t.stat == "faults")
    assert "thp" in t.header()
    rows = {r[t.header().index("thp")]: r for r in t.text_rows()}
    assert list(rows) == ["never", "always"]                      # reading order, side by side
    lin, uvm = t.header().index("linux (baseline)"), t.header().index("uvm")
    assert rows["always"][lin] == "1" and rows["never"][lin] == f"{PAGES_2M:,}"
    assert report.SMALL_PAGES in rows["always"][uvm] and report.SMALL_PAGES not in rows["never"][uvm]
    assert any(n.startswith(f"{report.SMALL_PAGES} uvm") and "NetBSD" in n for n in t.notes())
    path = tmp_path / "r.json"
    mmbench.results.save(path, doc)
    written = report.write_report(path, tmp_path / "out", "linux", asv_dir=None)
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "| thp" in readme and report.SMALL_PAGES in readme
    assert written["huge_page_faults"].name == "huge_page_faults.png"
    from mmbench import headline
    text = headline.render(doc)
    assert " thp " in text and report.SMALL_PAGES in text


def test_line_charts_draw_one_series_per_thp_value(tmp_path):
    """A synthetic document (not measured numbers): the fork chart keeps thp apart and names
    the design that ran at 4 KiB in its caption and its series."""
    from mmbench import report_plots, results
    recs = []
    for b in ("linux", "uvm"):
        for thp in ("never", "always"):
            for pages in (1024, 16384):
                params = {"pages": pages, "vmas": 1, "depth": 1, "thp": thp}
                v = pages * (0.1 if (b, thp) == ("linux", "always") else 1.0)
                recs.append(results.record("fork_cost", "fork_grid", params, b, "fork.median_ns", v, "ns",
                                           "measured"))
                huge = int(b == "linux" and thp == "always")
                recs.append(results.record("fork_cost", "fork_grid", params, b, "thp.huge_pages", huge, "",
                                           "exact", note="runs at 4 KiB" if not huge else ""))
    doc = results.new_document("tiny", recs)
    spec = next(s for s in report_plots.CHARTS if s.name == "fork_cost_vs_pages")
    chart = report_plots.draw(doc, spec, tmp_path)
    assert chart.path is not None and "uvm" in chart.caption and "4 KiB" in chart.caption
    small = report_plots.small_pages_index(doc)
    assert {k[3] for k in small} == {"uvm"} and all("thp=always" in k[2] for k in small)
    uvm = next(r for r in recs if r["backend"] == "uvm" and r["params"]["thp"] == "always")
    label = report_plots._series_label(uvm, False, "", True, lambda r: report_plots._small_key(r) in small)
    assert label == "thp=always at 4 KiB"


def test_a_failing_probe_claims_nothing_and_keeps_the_cell(monkeypatch):
    _measure.huge_pages_in_effect.cache_clear()
    real_open = mmbench.open

    def no_fork_probe(backend, **kw):
        m = real_open(backend, **kw)
        if kw.get("ram_pages") == 4 * _measure.PROBE_PAGES + (1 << 12):     # the probe's machine
            raise TypeError("a plugin that breaks on the probe")
        return m
    monkeypatch.setattr(mmbench, "open", no_fork_probe)
    with pytest.warns(RuntimeWarning, match="probe"):
        recs = _by(_measure.measure(CAT["seq_first_touch"], {"pages": 64, "thp": "always"}, "linux", repeats=1))
    _measure.huge_pages_in_effect.cache_clear()
    assert "thp.huge_pages" not in recs and recs["write.faults"]["value"] == 64


def test_compare_marks_4k_cells_of_huge_page_rows():
    text = runner.table_one(_doc(), patterns=("write.faults",))
    always = [line for line in text.splitlines() if "thp=always" in line]
    never = [line for line in text.splitlines() if "thp=never" in line]
    assert always and all(line.rstrip().endswith("4k") for line in always)     # uvm: the last column
    assert never and not any("4k" in line for line in never)
    assert "4k = ran at 4 KiB pages" in text
