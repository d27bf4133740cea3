"""The /proc readers degrade with a sentence, never a traceback."""
from __future__ import annotations

import pytest

from mmbench import hostcheck
from mmbench.hostcheck import HostFileUnavailable

SAMPLE = """slabinfo - version: 2.1
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>
vm_area_struct      2163   2163    192   21    1 : tunables    0    0    0 : slabdata    103    103      0
anon_vma_chain      1155   1280     64   64    1 : tunables    0    0    0 : slabdata     20     20      0
anon_vma             618    663    104   39    1 : tunables    0    0    0 : slabdata     17     17      0
"""


def test_slabinfo_parsed(tmp_path, monkeypatch):
    f = tmp_path / "slabinfo"
    f.write_text(SAMPLE)
    monkeypatch.setattr(hostcheck, "SLABINFO", str(f))
    caches = hostcheck.read_slabinfo()
    assert caches["anon_vma"].objsize == 104 and caches["vm_area_struct"].active_objs == 2163
    assert hostcheck.struct_sizes() == {"vm_area_struct": 192, "anon_vma": 104, "anon_vma_chain": 64}
    assert hostcheck.live_structs()["anon_vma_chain"] == 1155


@pytest.mark.parametrize("content,expect", [
    (None, "does not exist"),
    ("garbage\n", "not in the slabinfo 2.x format"),
    ("slabinfo - version: 2.1\nvm_area_struct x y\n", "unexpected line"),
])
def test_slabinfo_problems_are_sentences(tmp_path, monkeypatch, content, expect):
    f = tmp_path / "slabinfo"
    if content is not None:
        f.write_text(content)
    monkeypatch.setattr(hostcheck, "SLABINFO", str(f))
    with pytest.raises(HostFileUnavailable, match=expect):
        hostcheck.read_slabinfo()
    assert expect in hostcheck.availability()["slabinfo"]


def test_unreadable_file_is_a_sentence(tmp_path, monkeypatch):
    monkeypatch.setattr(hostcheck, "SLABINFO", str(tmp_path))      # a directory
    with pytest.raises(HostFileUnavailable, match="cannot read"):
        hostcheck.read_slabinfo()


def test_permission_denied_is_a_sentence(monkeypatch):
    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr("builtins.open", denied)
    with pytest.raises(HostFileUnavailable, match="not readable by this user"):
        hostcheck.read_slabinfo()


def test_status_readers(tmp_path, monkeypatch):
    d = tmp_path / "42"
    d.mkdir()
    (d / "status").write_text("Name:\tx\nVmRSS:\t  100 kB\nVmPTE:\t      48 kB\nThreads:\t1\n")
    (d / "maps").write_text("a\nb\nc\n")
    (d / "smaps_rollup").write_text("Rss: 100 kB\nAnonymous:    40 kB\n")
    monkeypatch.setattr(hostcheck, "PROC", str(tmp_path))
    assert hostcheck.read_status(42) == {"VmRSS": 100, "VmPTE": 48}
    assert hostcheck.count_vmas(42) == 3 and hostcheck.anon_pages(42) == 10
    with pytest.raises(HostFileUnavailable, match="does not exist"):
        hostcheck.read_status(43)
    (d / "status").write_text("Name:\tx\n")
    with pytest.raises(HostFileUnavailable, match="no VmPTE"):
        hostcheck.read_status(42)


def test_real_host_status_if_readable():
    try:
        st = hostcheck.read_status()
    except HostFileUnavailable as e:
        pytest.skip(str(e))
    assert st["VmPTE"] > 0 and hostcheck.count_vmas() > 0
