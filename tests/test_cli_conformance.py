"""`mmbench conformance NAME`: one design against the reference model, a short reproducer."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from mmbench import conformance

MUTANT = textwrap.dedent('''
    """Designs with one mechanism broken, for the tests of `mmbench conformance`."""
    from mmbench.reference import ReferenceMachine, _Page


    class NoCow(ReferenceMachine):
        """fork shares private pages with the child instead of copying them on write."""
        name = "nocow"

        def do_fork(self, pid, child):
            self.procs_ref[child] = {v: _Page(p.shared, p.writable, p.cell)
                                     for v, p in self.procs_ref[pid].items()}


    class ShortMprotect(ReferenceMachine):
        """mprotect of three pages or more misses the last one (no scripted check covers it)."""
        name = "shortmprotect"

        def do_mprotect(self, pid, vpn, n, writable):
            if not self._mapped_all(self.procs_ref[pid], vpn, n):
                return super().do_mprotect(pid, vpn, n, writable)
            super().do_mprotect(pid, vpn, n - 1 if n >= 3 else n, writable)
''')


@pytest.fixture(scope="module")
def mutants(tmp_path_factory):
    d = tmp_path_factory.mktemp("mutants")
    (d / "mmbench_mutants.py").write_text(MUTANT)
    return d


def conform(mutants, *args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(mutants), os.environ.get("PYTHONPATH")) if p))
    return subprocess.run([sys.executable, "-m", "mmbench.cli", "conformance", *args], env=env, cwd=mutants,
                          capture_output=True, text=True, timeout=600)


def reproducer(stdout):
    lines = stdout.splitlines()
    start = next(i for i, x in enumerate(lines) if x.startswith("reproducer ("))
    return [x.strip() for x in lines[start + 1:] if x.strip()]


def test_a_design_without_copy_on_write_fails_with_a_short_reproducer(mutants):
    p = conform(mutants, "mmbench_mutants:NoCow")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "Traceback" not in p.stderr and "ExceptionGroup" not in p.stdout + p.stderr
    assert "DISAGREES" in p.stdout and "copy-on-write" in p.stdout
    script = reproducer(p.stdout)
    calls = [x for x in script if x.startswith("m.") and x != "m.check()"]
    assert len(calls) <= 6, script
    assert any(c.startswith("m.fork(") for c in calls) and any(c.startswith("m.write(") for c in calls)
    # the reproducer is a script: run it against the mutant and the reference model
    code = "\n".join(script[:-1])
    ns = {}
    exec(compile(code.replace("import mmbench", "import mmbench, sys; sys.path.insert(0, %r)" % str(mutants)),
                 "<reproducer>", "exec"), ns)
    last = calls[-1]
    ref_code = code.replace("from mmbench_mutants import NoCow; m = NoCow(",
                            "from mmbench.reference import ReferenceMachine; m = ReferenceMachine(")
    ref = {}
    exec(ref_code.replace("import mmbench", "import mmbench, sys; sys.path.insert(0, %r)" % str(mutants)), ref)
    assert eval(last.split("#")[0], ns) != eval(last.split("#")[0], ref)


def test_the_random_stage_finds_what_no_script_covers(mutants):
    p = conform(mutants, "mmbench_mutants:ShortMprotect", "--examples", "300")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "random sequences" in p.stdout and "mprotect" in "\n".join(reproducer(p.stdout))
    assert len(reproducer(p.stdout)) <= 12, p.stdout


def test_a_correct_design_passes_and_bad_names_are_errors(mutants):
    p = conform(mutants, "reference", "--examples", "10")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "agrees with the reference model" in p.stdout
    p = conform(mutants, "nosuch")
    assert p.returncode == 2 and "nosuch" in p.stderr and p.stderr.count("\n") == 1
    p = conform(mutants, "mmbench_mutants:Nothing")
    assert p.returncode == 2 and "cannot load" in p.stderr


def test_check_design_from_python():
    rep = conformance.check_design("reference", examples=5)
    assert rep.ok and len(rep.checked) == len(conformance.SCRIPTS) + len(conformance.DEVICE_SCRIPTS)


@pytest.mark.parametrize("design", ["linux", "freebsd", "shmem", "gmem", "uvm"])
def test_every_design_passes_the_scripted_sequences(design):
    import mmbench
    if design not in mmbench.backends():
        pytest.skip(f"{design} is not installed")
    rep = conformance.check_design(design, examples=0)
    assert rep.ok, rep.text()
