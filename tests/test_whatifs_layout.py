"""The vma_layout workload family and the report's What-ifs section."""
import pytest

import mmbench
from mmbench import report_whatifs
from mmbench.workloads import _measure
from mmbench.workloads._common import catalogue
from mmbench.workloads.vma_layout import VARIANTS

CAT = catalogue()


def end_state(name, params, backend="linux"):
    """Replay a scenario; return the machine at its end."""
    sc = CAT[name].scenario(**params)
    m = mmbench.open(backend, **sc.machine.kwargs())
    for seg in sc.segments:
        out = m.replay(seg.trace, timing=False, stop_on_error=True, frame=False)
        assert not out["status"].any()
    m.check()
    return m


def vmas(m):
    return m.metadata()["vm_area_struct"][0]


def test_variants_are_linux_options():
    m = mmbench.open("linux", ram_pages=1 << 10)
    for opts in VARIANTS.values():
        assert set(dict(opts)) <= set(m.options)


def test_realloc_growth_relocation_keeps_fewer_vmas():
    p = dict(buffers=8, steps=3, grow=4, seed=11)
    base = end_state("realloc_growth", dict(p, variant="default"))
    rel = end_state("realloc_growth", dict(p, variant="relocate_anon"))
    assert vmas(rel) < vmas(base)
    assert rel.counter("anon_relocate_folios") > 0 and base.counter("anon_relocate_folios") == 0
    assert base.counter("vma_merge_fails") > rel.counter("vma_merge_fails")


def test_arena_holes_zero_pgoff_keeps_more_vmas():
    p = dict(arenas=2, cycles=8, arena_pages=256, hole=16, seed=12)
    base = end_state("arena_holes", dict(p, variant="default"))
    zero = end_state("arena_holes", dict(p, variant="anon_pgoff_zero"))
    assert vmas(base) == 2 and vmas(zero) > 2
    assert zero.counter("vma_merge_fails") > 0 == base.counter("vma_merge_fails")


@pytest.mark.parametrize("backend,counter", [("linux", "move_pages_moved"), ("freebsd", "move_pages_copied"),
                                             ("uvm", "move_pages_copied")])
def test_gc_compact_moves_or_copies(backend, counter):
    m = end_state("gc_compact", dict(objects=64, rounds=2, variant="default", live=0.5, seed=13), backend)
    assert m.counters()[counter] > 0


def test_measure_records_variants_and_refuses_them_elsewhere():
    wl = CAT["arena_holes"]
    params = dict(arenas=2, cycles=4, arena_pages=256, hole=16, seed=12, variant="anon_pgoff_zero")
    recs = _measure.measure(wl, params, "linux", repeats=1)
    metrics = {r["metric"]: r["value"] for r in recs}
    assert metrics["metadata.vm_area_struct.count"] > 2 and metrics["churn.vma_merge_fails"] > 0
    (bad,) = _measure.measure(wl, params, "freebsd", repeats=1)
    assert bad["kind"] == "unsupported" and "anon_pgoff" in bad["note"]


def test_whatifs_section_puts_variants_beside_the_default():
    recs = []
    wl = CAT["arena_holes"]
    base = dict(arenas=2, cycles=4, arena_pages=256, hole=16, seed=12)
    for backend in ("linux", "freebsd"):
        for variant in VARIANTS:
            recs += _measure.measure(wl, dict(base, variant=variant), backend, repeats=1)
    lines = report_whatifs.markdown({"records": recs})
    text = "\n".join(lines)
    assert lines[0] == "## What-ifs"
    header = next(line for line in lines if line.startswith("| quantity"))
    assert header.split(" | ")[1:4] == ["linux: default", "linux: anon_pgoff_zero", "linux: relocate_anon"]
    assert "freebsd" in header and "freebsd anon_pgoff_zero" not in header
    row = next(line for line in lines if line.startswith("| VMAs"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert int(cells[1]) == 2 and int(cells[2]) > 2
    assert "merges refused" in text
    assert report_whatifs.markdown({"records": []}) == [] and report_whatifs.html({"records": []}) == ""
    page = report_whatifs.html({"records": recs})
    assert page.startswith('<h2 id="what-ifs">') and "<th>linux: anon_pgoff_zero</th>" in page
