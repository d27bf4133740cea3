"""The memmap design option (mmbench.memmap): "page" charges the design's own
per-frame descriptor, "memdesc" one 8 B memdesc per frame plus one 80 B folio
descriptor per folio, for every design; values and counters never change."""
import pytest

import mmbench
from mmbench import errors
from mmbench.memmap import MEMMAP_DEFAULT, SIZEOF_FOLIO_DESC, SIZEOF_MEMDESC

from mmbench.registry import BUILTIN_ORDER

# every built-in design (a plugin that overrides metadata() keeps its own rows)
DESIGNS = [n for n in BUILTIN_ORDER if n != "reference"]
HP = 512


def _run(name, memmap, thp="never", npages=300, base=0):
    m = mmbench.open(name, ram_pages=1 << 14, memmap=memmap, thp=thp)
    p = m.spawn()
    m.mmap(p, base, npages)
    for v in range(base, base + npages):
        m.write(p, v, v + 1)
    q = m.fork(p)
    m.write(q, base, 7)
    m.check()
    return m, p, q


def test_default_is_page_and_unknown_values_are_invalid():
    assert MEMMAP_DEFAULT == "page"
    assert mmbench.open("linux", ram_pages=64).options["memmap"] == "page"
    for bad in ("pages", "", None, 1):
        with pytest.raises(errors.InvalidArgument):
            mmbench.open("shmem", ram_pages=64, memmap=bad)


@pytest.mark.parametrize("name", DESIGNS)
def test_memdesc_replaces_the_per_frame_descriptor(name):
    page, p1, q1 = _run(name, "page")
    desc, p2, q2 = _run(name, "memdesc")
    a, b = page.metadata(), desc.metadata()
    frame_struct = type(page).memmap_struct
    frames = a[frame_struct][0]
    assert frames > 300 and frame_struct not in b
    # 4 KiB pages only: every frame is an order-0 folio
    assert b["memdesc"] == (frames, frames * SIZEOF_MEMDESC)
    assert b["folio"] == (frames, frames * SIZEOF_FOLIO_DESC)
    assert {k: v for k, v in a.items() if k != frame_struct} == \
        {k: v for k, v in b.items() if k not in ("memdesc", "folio")}
    assert desc.struct_sizes()["memdesc"] == 8 and desc.struct_sizes()["folio"] == 80
    assert page.counters() == desc.counters()
    assert [desc.read(q2, v) for v in range(0, 300, 37)] == [page.read(q1, v) for v in range(0, 300, 37)]
    for m, p, q in ((page, p1, q1), (desc, p2, q2)):
        m.exit(p)
        m.exit(q)
        assert m.leaks() == []
        md = m.metadata()
        for s in m.per_process_structs():
            assert md.get(s, (0, 0))[0] == 0, (name, s)
    assert {"memdesc", "folio"} <= set(desc.per_process_structs())


@pytest.mark.parametrize("name", ["linux", "shmem"])
def test_memdesc_charges_one_folio_per_huge_folio(name):
    m, p, q = _run(name, "memdesc", thp="always", npages=2 * HP, base=2 * HP)
    md = m.metadata()
    frames = md["memdesc"][0]
    # two PMD-sized folios; the child's write split (shmem) or copied beside
    # (linux) one page: everything else is order 0
    c = m.counters()
    huge = c.get("thp_fault_alloc", 0) + c.get("thp_file_alloc", 0) - c.get("thp_split_page", 0)
    assert huge >= 1
    assert md["folio"][0] == frames - huge * HP + huge
    assert md["folio"][0] <= frames - HP + 1


def test_memdesc_is_a_machine_option_every_design_accepts():
    from mmbench.hugepages import CONTRACT_OPTIONS
    assert CONTRACT_OPTIONS["memmap"] == "page"
    for name in DESIGNS:
        assert mmbench.open(name, ram_pages=64, memmap="memdesc").options["memmap"] == "memdesc"


@pytest.mark.parametrize("name", DESIGNS)
def test_conformance_with_memdesc_and_thp_always(name):
    from mmbench.conformance import default_settings, run_conformance
    run_conformance(name, default_settings(max_examples=4, stateful_step_count=20),
                    vpn_span=1024, max_npages=16, options={"thp": "always", "memmap": "memdesc"})


@pytest.mark.parametrize("thp", ["never", "always"])
@pytest.mark.parametrize("name", DESIGNS)
def test_memdesc_metadata_reads_a_page_machine_as_a_memdesc_one(name, thp):
    """memdesc_metadata() of a machine with memmap="page" equals metadata() of the
    same work on a machine with memmap="memdesc": the reports' memdesc column
    comes from the run itself."""
    page, _, _ = _run(name, "page", thp=thp, npages=2 * HP)
    desc, _, _ = _run(name, "memdesc", thp=thp, npages=2 * HP)
    assert page.memdesc_metadata() == desc.metadata() == desc.memdesc_metadata()
    assert "memdesc" not in page.metadata()


def test_memdesc_metadata_is_none_without_a_per_frame_row():
    m = mmbench.open("reference", ram_pages=64)
    assert m.memdesc_metadata() is None
