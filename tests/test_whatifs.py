"""What-ifs from the mailing-list threads (docs/what-ifs.md): the linux variants.

* anon_pgoff="zero" (Xu's one-line experiment): Hildenbrand's two examples lose
  their merge and end as more than one VMA; "address" (today) keeps one.
* mremap_relocate_anon (the direction of Stoakes' 2025 series): a moved VMA
  merges with its new neighbour only when the option re-indexes its folios.
"""
import pytest

import mmbench
from mmbench import errors


def spans(m, pid):
    return [(v["start"], v["end"]) for v in m.vmas(pid)]


def linux(**kw):
    return mmbench.open("linux", ram_pages=1 << 14, **kw)


def hole_then_mmap(mode):
    """[anon0][fd][anon1] -> unmap the fd -> mmap anon into the hole.  Only anon0 has
    pages: the hole's new VMA and anon1 have no anon_vma, so the anon_vma rules allow
    all three to merge and only pgoff decides."""
    m = linux(anon_pgoff=mode)
    p = m.spawn()
    m.mmap(p, 0, 16)
    m.mmap(p, 16, 16, shared=True)      # the "fd" mapping: a different file, never merges
    m.mmap(p, 32, 16)
    m.write(p, 0, 1)
    m.munmap(p, 16, 16)
    m.mmap(p, 16, 16)
    m.check()
    assert m.read(p, 0) == 1 and m.read(p, 20) == 0 and m.read(p, 40) == 0
    return m, p


def mmap_before(mode):
    """[anon0] with a page, then an anonymous mmap right before it."""
    m = linux(anon_pgoff=mode)
    p = m.spawn()
    m.mmap(p, 100, 16)
    m.write(p, 100, 5)
    m.mmap(p, 84, 16)
    m.check()
    assert m.read(p, 100) == 5 and m.read(p, 84) == 0
    return m, p


def test_hole_example_merges_with_address_pgoff():
    m, p = hole_then_mmap("address")
    assert spans(m, p) == [(0, 48)]
    assert m.counter("vma_merge_fails") == 0


def test_hole_example_stays_three_vmas_with_zero_pgoff():
    m, p = hole_then_mmap("zero")
    assert spans(m, p) == [(0, 16), (16, 32), (32, 48)]
    assert [v["pgoff"] for v in m.vmas(p)] == [0, 0, 0]
    assert m.counter("vma_merge_fails") == 2     # the hole's VMA met both neighbours


def test_mmap_before_merges_with_address_pgoff():
    m, p = mmap_before("address")
    assert spans(m, p) == [(84, 116)]


def test_mmap_before_stays_two_vmas_with_zero_pgoff():
    m, p = mmap_before("zero")
    assert spans(m, p) == [(84, 100), (100, 116)]
    assert m.counter("vma_merge_fails") == 1


def test_zero_pgoff_folio_index_follows_vma_pgoff():
    """folio->index = linear_page_index with pgoff 0: check() verifies every page, and
    the rmap still finds the page (through its anon_vma's tree keyed by pgoff)."""
    m = linux(anon_pgoff="zero")
    p = m.spawn()
    m.mmap(p, 1000, 8)
    m.write(p, 1003, 9)
    c = m.fork(p)
    m.check()
    assert sorted(m.rmap_walk(p, 1003)) == sorted([(p, 1003), (c, 1003)])
    m.exit(c)
    m.exit(p)
    assert m.leaks() == []


@pytest.mark.parametrize("opt,bad", [("anon_pgoff", "zeros"), ("anon_pgoff", 0),
                                     ("mremap_relocate_anon", 1), ("mremap_relocate_anon", "yes")])
def test_bad_whatif_option_values_are_refused(opt, bad):
    with pytest.raises(errors.InvalidArgument):
        linux(**{opt: bad})


def moved_next_to(relocate):
    """A (pages) at 0..16, B (pages) at 100..116, mremap B to 16: adjacent to A."""
    m = linux(mremap_relocate_anon=relocate)
    p = m.spawn()
    m.mmap(p, 0, 16)
    m.write(p, 0, 1)
    m.mmap(p, 100, 16)
    m.write(p, 100, 7)
    m.write(p, 101, 8)
    return m, p


def test_mremap_moved_vma_does_not_merge_by_default():
    m, p = moved_next_to(False)
    m.mremap(p, 100, 16, 16)
    m.check()
    assert spans(m, p) == [(0, 16), (16, 32)]
    assert m.vmas(p)[1]["pgoff"] == 100           # pgoff kept: folio->index stays valid
    assert m.counter("anon_relocate_folios") == 0
    assert m.counter("vma_merge_fails") == 1
    assert m.metadata()["anon_vma"][0] == 2


def test_mremap_relocate_anon_lets_the_moved_vma_merge():
    m, p = moved_next_to(True)
    m.mremap(p, 100, 16, 16)
    m.check()
    assert spans(m, p) == [(0, 32)]
    assert m.vmas(p)[0]["pgoff"] == 0
    assert (m.read(p, 0), m.read(p, 16), m.read(p, 17)) == (1, 7, 8)
    assert m.counter("anon_relocate_folios") == 2  # the walk: one per folio it re-indexed
    assert m.metadata()["anon_vma"][0] == 1        # B's anon_vma served B alone: freed
    assert sorted(m.rmap_walk(p, 17)) == [(p, 17)]


def test_mremap_relocate_anon_needs_exclusive_folios():
    """After a fork (even once the child is gone) B's folios are not AnonExclusive:
    no relocation, no merge -- the same as without the option."""
    m, p = moved_next_to(True)
    c = m.fork(p)
    m.exit(c)
    m.write(p, 0, 2)                   # A's page exclusive again; B's two are not
    m.mremap(p, 100, 16, 16)
    m.check()
    assert spans(m, p) == [(0, 16), (16, 32)]
    assert m.counter("anon_relocate_folios") == 0
    assert (m.read(p, 16), m.read(p, 17)) == (7, 8)


def test_mremap_relocate_anon_needs_an_unshared_anon_vma():
    """A fork child's VMA has a chain of two AVCs: its anon_vma is not its own alone."""
    m, p = moved_next_to(True)
    c = m.fork(p)
    m.write(c, 0, 3)
    m.write(c, 100, 4)
    m.write(c, 101, 5)                 # the child's folios are its own (copied)
    m.mremap(c, 100, 16, 16)
    m.check()
    assert spans(m, c) == [(0, 16), (16, 32)]
    assert m.counter("anon_relocate_folios") == 0
    assert (m.read(c, 16), m.read(c, 17), m.read(p, 100)) == (4, 5, 7)


def test_mremap_relocate_anon_with_zero_pgoff_continues_the_neighbour():
    """With pgoff 0 a moved VMA takes the pgoff after its left neighbour's end (what
    Hildenbrand calls the careful way), so it merges."""
    m = linux(anon_pgoff="zero", mremap_relocate_anon=True)
    p = m.spawn()
    m.mmap(p, 0, 16)
    m.write(p, 3, 1)
    m.mmap(p, 100, 8)
    m.write(p, 104, 2)
    m.mremap(p, 100, 8, 16)
    m.check()
    assert spans(m, p) == [(0, 24)]
    assert (m.read(p, 3), m.read(p, 20)) == (1, 2)
    m.exit(p)
    assert m.leaks() == []
