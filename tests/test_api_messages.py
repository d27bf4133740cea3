"""The Python API explains itself: signatures and docstrings, bool-only flags, errors that say
what was wrong, and a trace loader that says a file is not a trace."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import mmbench
from mmbench import errors

PUBLIC = ("spawn", "mmap", "munmap", "mprotect", "read", "write", "fork", "exit", "mremap",
          "madvise_dontneed", "migrate", "device_read", "device_write", "metadata", "counters", "check",
          "replay", "struct_sizes", "frames_used", "leaks", "live_pids", "mappings")
DESIGNS = [d for d in ("linux", "freebsd", "shmem", "gmem", "uvm", "reference") if d in mmbench.backends()]


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_method_has_a_signature_and_a_docstring(name):
    m = mmbench.open("reference")
    fn = getattr(m, name)
    assert inspect.signature(fn) is not None
    doc = inspect.getdoc(fn)
    assert doc and len(doc) > 30, name
    text = pydoc_text(fn)
    assert f"{name}(" in text and doc.splitlines()[0] in text


def pydoc_text(fn):
    import pydoc
    return pydoc.render_doc(fn, renderer=pydoc.plaintext)


@pytest.mark.parametrize("design", DESIGNS)
def test_mprotect_writable_is_a_keyword_and_a_bool(design):
    m = mmbench.open(design)
    p = m.spawn()
    m.mmap(p, 0, 4)
    m.write(p, 0, 5)
    m.mprotect(p, 0, 4, writable=False)
    with pytest.raises(errors.ProtectionFault):
        m.write(p, 0, 6)
    for bad in (1, 0, 99, "yes", None):
        with pytest.raises(errors.InvalidArgument, match="writable must be True or False"):
            m.mprotect(p, 0, 4, writable=bad)
    with pytest.raises(errors.ProtectionFault):       # nothing changed
        m.write(p, 0, 6)
    m.mprotect(p, 0, 4, np.bool_(True))
    m.write(p, 0, 6)
    with pytest.raises(errors.InvalidArgument, match="shared must be True or False"):
        m.mmap(p, 8, 1, shared=1)
    m.check()


@pytest.mark.parametrize("design", DESIGNS)
def test_errors_say_what_was_wrong(design):
    m = mmbench.open(design)
    p = m.spawn()
    m.mmap(p, 0x1008, 8)
    with pytest.raises(errors.InvalidArgument) as e:
        m.mmap(p, 0x1000, 16)
    assert str(e.value).startswith("mmap of vpn 0x1000+16 in pid 1: overlaps ")
    if design != "shmem":       # shmem lists no mappings yet: "overlaps an existing mapping"
        assert str(e.value).endswith("overlaps the mapping at 0x1008+8")
    with pytest.raises(errors.InvalidArgument, match="npages must be ≥ 1, got 0"):
        m.munmap(p, 0, 0)
    with pytest.raises(errors.InvalidArgument, match="vpn must be ≥ 0"):
        m.read(p, -1)
    with pytest.raises(errors.SegmentationFault, match=r"read of vpn 0x3 in pid 1: no mapping there"):
        m.read(p, 3)
    with pytest.raises(errors.InvalidArgument, match=r"mprotect of vpn 0x1008\+10 in pid 1: "):
        m.mprotect(p, 0x1008, 10, False)
    with pytest.raises(errors.NoSuchProcess, match=r"no process with pid 7 \(live: 1\)"):
        m.fork(7)
    m.mprotect(p, 0x1008, 1, False)
    with pytest.raises(errors.ProtectionFault, match="write of vpn 0x1008 in pid 1: the mapping is read-only"):
        m.write(p, 0x1008, 1)
    if type(m).supports_devices:
        with pytest.raises(errors.InvalidArgument, match="this machine has no devices"):
            m.device_read(1, p, 0x1008)
        with pytest.raises(errors.InvalidArgument, match="this machine has no devices"):
            m.migrate(p, 0x1008, 1, 1)
        m.migrate(p, 0x1008, 1, 0)        # node 0 is host RAM: fine without devices
    else:
        with pytest.raises(errors.NotSupported):
            m.device_read(1, p, 0x1008)
    m.check()


def test_a_message_names_the_first_hole():
    m = mmbench.open("linux")
    p = m.spawn()
    m.mmap(p, 0x1008, 8)
    with pytest.raises(errors.InvalidArgument, match=r"vpn 0x1010 is not mapped"):
        m.mprotect(p, 0x1008, 10, False)
    with pytest.raises(errors.InvalidArgument, match=r"the new range 0x1009\+8 overlaps the old one"):
        m.mremap(p, 0x1008, 8, 0x1009)
    assert m.mappings(p) == [(0x1008, 8, False, True)]


def test_load_trace_of_random_bytes(tmp_path):
    f = tmp_path / "random.npz"
    f.write_bytes(np.random.default_rng(1).bytes(4096))
    with pytest.raises(errors.InvalidArgument) as e:
        mmbench.load_trace(f)
    msg = str(e.value)
    assert "not an mmbench trace file" in msg and "pickle" not in msg.lower()
    g = tmp_path / "objects.npy"
    np.save(g, np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(errors.InvalidArgument) as e:
        mmbench.load_trace(g)
    assert "not an mmbench trace file" in str(e.value) and "allow_pickle" not in str(e.value)
