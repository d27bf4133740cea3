"""Issue #20: "OutOfMemory leaves no trace", as a conformance rule.

``mmbench.conformance.conformance_machine(..., tight_memory=True)`` gives the
design a few dozen frames of RAM (and of each device), so writes, forks,
faults, device accesses and migrations run out of memory.  When the design
raises OutOfMemory the reference model is not told (the operation did not
happen); the design's metadata(), frames in use and structure counters must
equal their values before the call, and later reads still agree with the
reference on every value.  Each design runs in a fresh interpreter, so a crash
is a failed test.
"""
import subprocess
import sys
import textwrap
import warnings

import pytest

import mmbench

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    BACKENDS = mmbench.backends()

CHILD = textwrap.dedent(r'''
    import sys
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis.stateful import run_state_machine_as_test
    from mmbench.conformance import conformance_machine

    name, ram, dev = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sm = conformance_machine(name, tight_memory=True, ram_pages=ram, device_pages=dev)
    ooms = []
    teardown = sm.teardown

    def counted(self):
        ooms.append(self.ooms)
        teardown(self)

    sm.teardown = counted
    run_state_machine_as_test(sm, settings=settings(
        max_examples=25, stateful_step_count=40, deadline=None, database=None,
        report_multiple_bugs=False, suppress_health_check=list(HealthCheck), phases=[Phase.generate]))
    print("ooms", sum(ooms))
''')

# designs whose frames are a model of RAM (the reference and the example plugin have none)
FRAMES = {"linux", "freebsd", "shmem", "gmem", "uvm"}


def _run(name, ram, dev):
    r = subprocess.run([sys.executable, "-c", CHILD, name, str(ram), str(dev)], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, (r.returncode, r.stdout[-3000:], r.stderr[-3000:])
    return int(r.stdout.split("ooms")[-1])


@pytest.mark.parametrize("name", BACKENDS)
def test_out_of_memory_leaves_no_trace(name):
    ooms = _run(name, 20, 6)
    if name in FRAMES:
        assert ooms > 0, f"{name}: 20 frames of RAM never ran out"
