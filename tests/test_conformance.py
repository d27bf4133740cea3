"""Every registered backend against the reference model (mmbench.conformance).

The parameter list is every name ``mmbench.backends()`` returns, so a new
built-in or an installed plugin is tested without touching this file.  A
registered backend that fails to import makes ``test_every_backend_loads``
fail, naming it: it is never silently left out.

MMBENCH_CONFORMANCE_EXAMPLES raises the number of Hypothesis examples (60 by
default, sized to keep the whole suite to a few minutes on two cores).
"""
import warnings

import numpy as np
import pytest
from hypothesis import Phase, given, settings

import mmbench
from mmbench import errors, registry
from mmbench.conformance import (ConformanceFailure, conformance_machine, default_settings,
                                 random_traces, run_conformance)
from mmbench.reference import ReferenceMachine
from mmbench.trace import Op

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    BACKENDS = mmbench.backends()


def test_every_backend_loads():
    registry.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        broken = registry.broken()
    assert broken == {}, f"registered backends that fail to load: {broken}"
    assert "reference" in BACKENDS


def test_example_plugin_is_listed_after_builtins():
    assert "flat" in BACKENDS, "the example plugin (examples/mmbench-example-plugin) is not installed"
    builtins = [n for n in BACKENDS if registry._is_builtin(registry._discover()[n])]
    assert BACKENDS[:len(builtins)] == builtins and BACKENDS.index("flat") >= len(builtins)


@pytest.mark.parametrize("name", BACKENDS)
def test_conformance(name):
    run_conformance(name, default_settings())


# ------------------------------------------------------- replay vs per-op
def _per_op(m, trace):
    """Run a trace through the public methods: (statuses, values) like replay's."""
    status, value = [], []
    calls = {
        Op.SPAWN: lambda r: m.spawn(),
        Op.MMAP: lambda r: m.mmap(r["pid"], r["vpn"], r["npages"], shared=bool(r["arg"] & 1),
                                  writable=bool(r["arg"] & 2)),
        Op.MUNMAP: lambda r: m.munmap(r["pid"], r["vpn"], r["npages"]),
        Op.MPROTECT: lambda r: m.mprotect(r["pid"], r["vpn"], r["npages"], bool(r["arg"])),
        Op.READ: lambda r: m.read(r["pid"], r["vpn"]),
        Op.WRITE: lambda r: m.write(r["pid"], r["vpn"], r["arg"]),
        Op.FORK: lambda r: m.fork(r["pid"]),
        Op.EXIT: lambda r: m.exit(r["pid"]),
        Op.MREMAP: lambda r: m.mremap(r["pid"], r["vpn"], r["npages"], r["arg"]),
        Op.MADVISE_DONTNEED: lambda r: m.madvise_dontneed(r["pid"], r["vpn"], r["npages"]),
        Op.MIGRATE: lambda r: m.migrate(r["pid"], r["vpn"], r["npages"], r["arg"]),
        Op.DEVICE_READ: lambda r: m.device_read(r["dev"], r["pid"], r["vpn"]),
        Op.DEVICE_WRITE: lambda r: m.device_write(r["dev"], r["pid"], r["vpn"], r["arg"]),
        Op.MADVISE: lambda r: m.madvise(r["pid"], r["vpn"], r["npages"], r["arg"]),
    }
    for rec in trace.tolist():
        r = dict(zip(trace.dtype.names, rec))
        try:
            v = calls[Op(r["op"])](r)
            status.append(0)
            value.append(0 if v is None else v)
        except errors.MMError as e:
            status.append(errors.STATUS_OF[type(e)])
            value.append(0)
    return np.array(status, dtype=np.int8), np.array(value, dtype=np.uint64)


@given(random_traces(devices=2, huge_page_advice=True))
@default_settings(stateful_step_count=1)
def test_reference_replay_equals_per_op(trace):
    got = ReferenceMachine(devices=2).replay(trace, timing=True, frame=False)
    st, val = _per_op(ReferenceMachine(devices=2), trace)
    np.testing.assert_array_equal(got["status"], st)
    np.testing.assert_array_equal(got["value"], val)
    assert len(got["ns"]) == len(trace) and (got["ns"] >= 0).all()


@pytest.mark.parametrize("name", BACKENDS)
def test_replay_matches_reference(name):
    cls = registry.load(name)
    devices = 2 if cls.supports_devices else 0

    @given(random_traces(devices=devices, huge_page_advice=cls.huge_page_advice))
    @default_settings(stateful_step_count=1)
    def check(trace):
        ref = ReferenceMachine(devices=devices).replay(trace, timing=False, frame=False)
        m = mmbench.open(name, ram_pages=1 << 18, devices=devices)
        got = m.replay(trace, timing=False, frame=False)
        for col in ("status", "value"):
            bad = np.flatnonzero(got[col] != ref[col])
            assert not len(bad), (f"{name}: record {bad[0]} ({Op(int(trace['op'][bad[0]])).name}) "
                                  f"{col} {got[col][bad[0]]} != reference {ref[col][bad[0]]}")
        m.check()
        assert m.live_pids() == [] and m.leaks() == []
    check()


# -------------------------------------------- the suite itself catches bugs
class _ForgetfulFork(ReferenceMachine):
    """A deliberately wrong design: fork shares private pages (no copy-on-write)."""
    name = "forgetful"

    def do_fork(self, pid, child):
        self.procs_ref[child] = dict(self.procs_ref[pid])


class _UnchangedOnFailure(ReferenceMachine):
    """A deliberately wrong design: a refused mprotect still changes the first page."""
    name = "half-mprotect"

    def do_mprotect(self, pid, vpn, n, writable):
        pages = self.procs_ref[pid]
        if vpn in pages:
            pages[vpn].writable = writable
        super().do_mprotect(pid, vpn, n, writable)


@pytest.mark.parametrize("bad", [_ForgetfulFork, _UnchangedOnFailure])
def test_conformance_catches_a_wrong_design(bad):
    quick = settings(default_settings(max_examples=300), phases=[Phase.generate],
                     report_multiple_bugs=False, database=None)
    with pytest.raises(ConformanceFailure):
        run_conformance(bad, quick)


def test_conformance_machine_is_a_testcase_for_plugins():
    machine = conformance_machine(ReferenceMachine)
    assert machine.__name__ == "Conformance_reference"
    assert hasattr(machine, "TestCase")
