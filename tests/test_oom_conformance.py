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



def _tight(name):
    from mmbench.conformance import conformance_machine
    return conformance_machine(name, tight_memory=True, ram_pages=20, device_pages=6)()


def test_gmem_block_eviction_short_of_host_frames_leaves_no_trace():
    """Found by the rule above: a device fault whose room on the device needs
    whole gm blocks evicted home, with fewer host frames than the blocks hold,
    evicted some blocks and then failed.  The host frames every eviction needs
    are now counted before the first block moves."""
    state = _tight("gmem")
    state.first_process(regions=[(12, 8, False, False), (16, 7, True, True), (26, 7, False, False), (52, 11, False, True)])
    state.device_read(dev=1, pick=2771, vpn=(False, 106))
    state.move_pages(dst=(True, 103), n=2, pick=27119, src=(True, 460))
    state.fork_then_write(pick=11156, values=(64, 1382), vpn=(True, 2027))
    state.move_pages(dst=(True, 156), n=2, pick=26263, src=(True, 70))
    state.move_pages(dst=(False, 352), n=7, pick=6409, src=(True, 298))
    state.spawn()
    state.mprotect(n=8, pick=53, vpn=(True, 433), writable=False)
    state.read_everything()
    state.fork_then_write(pick=371, values=(88, 3_223_551_202), vpn=(True, 1704))
    state.read_everything()
    state.munmap(n=5, pick=197, vpn=(True, 30898))
    state.device_read(dev=1, pick=270, vpn=(False, 24))
    state.munmap(n=2, pick=792, vpn=(True, 271))
    state.spawn()
    state.move_pages(dst=(True, 435), n=13, pick=9367, src=(True, 506))
    state.munmap(n=13, pick=12828, vpn=(True, 5472))
    state.spawn()
    state.mmap(n=14, pick=2042, shared=True, vpn=(True, 8504), writable=False)
    state.move_pages(dst=(False, 202), n=1, pick=1783, src=(True, 9029))
    state.mprotect(n=2, pick=1652, vpn=(True, 210), writable=False)
    state.munmap(n=8, pick=13189, vpn=(True, 18213))
    state.device_read(dev=2, pick=18774, vpn=(True, 4162))
    state.device_read(dev=2, pick=8941, vpn=(False, 654))
    state.device_read(dev=2, pick=49302, vpn=(True, 316))
    state.teardown()


def test_gmem_linux_path_device_fault_short_of_host_frames_leaves_no_trace():
    """The same through linux's migrate_vma path in gmem (a device page of a gm
    block was the oldest victim): device_reserve counts whole blocks too."""
    state = _tight("gmem")
    state.first_process(regions=[(35, 5, False, True)])
    state.move_pages_compact(fork='child', n=12, off=44, pick=282, src=61, value=1575230, written=[14, 5, 9, 5])
    state.read_everything()
    state.madvise_dontneed(n=15, pick=32239, vpn=(False, 1248))
    state.migrate(n=4, node=2, pick=4089, vpn=(True, 0))
    state.device_read(dev=1, pick=1251, vpn=(True, 7891))
    state.fork(pick=1438)
    state.device_write(dev=1, pick=47652, value=230, vpn=(True, 1953))
    state.madvise_dontneed(n=1, pick=2087, vpn=(True, 196))
    state.madvise_dontneed(n=16, pick=2469, vpn=(False, 3889))
    state.exit(pick=1347)
    state.fork(pick=2457)
    state.device_read(dev=2, pick=488, vpn=(True, 346))
    state.teardown()
