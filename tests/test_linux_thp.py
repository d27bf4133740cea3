"""linux transparent huge pages: VMA advice flags and THP eligibility."""
import pytest

import mmbench
from mmbench import Advice, errors


def machine(thp="madvise", **kw):
    return mmbench.open("linux", thp=thp, **kw)


def test_hugepage_advice_splits_and_merges_like_madvise_update_vma():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 2048, writable=True)
    splits, merges = m.counters()["vma_splits"], m.counters()["vma_merges"]
    m.madvise(p, 512, 512, Advice.HUGEPAGE)
    vs = m.vmas(p)
    assert [(v["start"], v["end"], v["hugepage"]) for v in vs] == [(0, 512, False), (512, 1024, True),
                                                                   (1024, 2048, False)]
    assert m.counters()["vma_splits"] - splits == 2
    # same advice again changes no flag: nothing is split
    m.madvise(p, 512, 512, Advice.HUGEPAGE)
    assert m.counters()["vma_splits"] - splits == 2
    # NOHUGEPAGE clears VM_HUGEPAGE and sets VM_NOHUGEPAGE
    m.madvise(p, 512, 256, Advice.NOHUGEPAGE)
    vs = m.vmas(p)
    assert [(v["start"], v["end"], v["hugepage"], v["nohugepage"]) for v in vs] == [
        (0, 512, False, False), (512, 768, False, True), (768, 1024, True, False), (1024, 2048, False, False)]
    # advising the whole range back merges everything into one VMA
    m.madvise(p, 0, 2048, Advice.HUGEPAGE)
    vs = m.vmas(p)
    assert [(v["start"], v["end"], v["hugepage"]) for v in vs] == [(0, 2048, True)]
    assert m.counters()["vma_merges"] > merges
    m.check()


def test_advice_needs_a_mapped_range_and_changes_nothing_otherwise():
    m = machine()
    p = m.spawn()
    m.mmap(p, 0, 100, writable=True)
    before = m.vmas(p)
    with pytest.raises(errors.InvalidArgument):
        m.madvise(p, 50, 100, Advice.HUGEPAGE)
    assert m.vmas(p) == before
    m.check()


def test_huge_page_advice_is_declared_and_notes_name_the_mode():
    m = machine(thp="always")
    assert type(m).huge_page_advice
    assert any("thp='always'" in n for n in m.notes())
