"""Plugins: the example plugin works like a built-in; a broken one is named, not fatal."""
import os
import subprocess
import sys
import warnings

import pytest

import mmbench
from mmbench import errors, registry


def test_example_plugin_behaves():
    m = mmbench.open("flat", ram_pages=64)
    p = m.spawn()
    m.mmap(p, 0, 4)
    m.write(p, 1, 7)
    c = m.fork(p)
    m.write(c, 1, 8)
    assert (m.read(p, 1), m.read(c, 1)) == (7, 8)
    # eager copy at fork: the child writes into its own copy, no fault
    assert m.counters()["pages_copied"] == 1 and m.counters()["fault_zero_fill"] == 1
    assert m.metadata()["page"] == (2, 128)
    m.check()
    m.exit(p)
    m.exit(c)
    assert m.leaks() == []


def test_example_plugin_refuses_a_fork_that_does_not_fit():
    m = mmbench.open("flat", ram_pages=3)
    p = m.spawn()
    m.mmap(p, 0, 2)
    m.write(p, 0, 1)
    m.write(p, 1, 2)
    before = (m.metadata(), m.frames_used(), m.live_pids(), m.next_free_pid)
    with pytest.raises(errors.OutOfMemory):      # the copy needs 2 more frames, 1 is left
        m.fork(p)
    assert (m.metadata(), m.frames_used(), m.live_pids(), m.next_free_pid) == before
    with pytest.raises(errors.OutOfMemory):
        m.mmap(p, 10, 2, shared=True)
    assert m.metadata() == before[0]
    m.check()


def _fake_dist(tmp_path, name, entry):
    d = tmp_path / f"{name}-0.1.dist-info"
    d.mkdir()
    (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (d / "entry_points.txt").write_text(f"[mmbench.backends]\n{entry}\n")


@pytest.fixture
def broken_plugins(tmp_path, monkeypatch):
    _fake_dist(tmp_path, "ghost-plugin", "ghost = mmbench_no_such_module:Machine")
    _fake_dist(tmp_path, "notamachine-plugin", "notamachine = os.path:join")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.reset()
    yield tmp_path
    monkeypatch.undo()
    registry.reset()


def test_broken_plugin_warns_and_is_left_out(broken_plugins):
    with pytest.warns(RuntimeWarning) as rec:
        names = mmbench.backends()
    text = " ".join(str(w.message) for w in rec)
    assert "ghost" in text and "mmbench_no_such_module" in text and "notamachine" in text
    assert "ghost" not in names and "notamachine" not in names
    builtins = [n for n in registry.BUILTIN_ORDER if n in names]
    assert names[:len(builtins)] == builtins and "flat" in names[len(builtins):]
    assert set(registry.broken()) == {"ghost", "notamachine"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(errors.BackendLoadError, match="ghost"):
            mmbench.open("ghost")


def test_cli_lists_plugins_after_builtins_and_broken_ones(broken_plugins):
    env_path = os.pathsep.join(p for p in (str(broken_plugins), os.environ.get("PYTHONPATH")) if p)
    out = subprocess.run([sys.executable, "-c", "from mmbench.cli import main; main()", "backends"],
                         capture_output=True, text=True,
                         env={**__import__("os").environ, "PYTHONPATH": env_path})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    names = [ln.split()[0] for ln in lines]
    assert names.index("reference") < names.index("flat")
    assert any(ln.startswith("ghost") and "BROKEN" in ln for ln in lines)


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(errors.InvalidArgument, match="installed"):
        mmbench.open("no-such-design")
