"""The host probe: timed experiments on the host kernel, compiled with mmbench.

``mmbench.probe.available()`` says whether the probe can run here (it needs a
Linux host: memfd_create, fork, MAP_FIXED_NOREPLACE).  The experiments live in
probe.c; ``mmbench.probe._probe`` is their Cython face and
``mmbench.calibrate`` turns their samples into a calibration.
"""
from __future__ import annotations

import sys

from mmbench import errors


class HostProbeError(errors.MMError, OSError):
    """The host refused a system call the probe needs (errno, message)."""


def available() -> tuple[bool, str]:
    """(True, "") when the probe can run on this host, else (False, why)."""
    if not sys.platform.startswith("linux"):
        return False, f"the host probe needs Linux, this host is {sys.platform}"
    try:
        from mmbench.probe import _probe  # noqa: F401
    except ImportError as e:
        return False, f"the host probe is not built: {e}"
    return True, ""


def _forkbase(reps: int, nhuge: int = 0, exit_pages: int = 0) -> list[int]:
    """Run the forkbase program; its samples in ns.  HostProbeError if it cannot run."""
    import importlib.resources
    import subprocess
    from mmbench.probe import _probe
    prog = importlib.resources.files("mmbench.probe") / "forkbase"
    args = [str(reps), _probe.get_clock(), str(nhuge), str(exit_pages)]
    try:
        with importlib.resources.as_file(prog) as path:
            res = subprocess.run([str(path), *args], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as e:
        raise HostProbeError(getattr(e, "errno", None) or 0,
                             f"host probe forkbase could not run: {e}") from None
    if res.returncode != 0:
        raise HostProbeError(0, f"host probe forkbase failed with status {res.returncode}")
    return [int(x) for x in res.stdout.split()]


def _reps_ok(reps):
    if not (isinstance(reps, int) and not isinstance(reps, bool) and 1 <= reps <= 10000):
        raise errors.InvalidArgument(f"reps must be an integer in 1..10000, got {reps!r}")


def fork_empty(reps: int = 3, nhuge: int = 0) -> list[int]:
    """ns of `reps` fork + exit + wait by a tiny C program (forkbase), i.e. of an
    address space that holds almost nothing, timed with the probes' clock
    (``_probe.get_clock()``).  With `nhuge` the program first maps and writes that
    many 2 MiB-aligned MADV_HUGEPAGE ranges, so every fork copies `nhuge` huge PMDs.
    HostProbeError if it cannot run."""
    _reps_ok(reps)
    if not (isinstance(nhuge, int) and not isinstance(nhuge, bool) and 0 <= nhuge <= 4096):
        raise errors.InvalidArgument(f"nhuge must be an integer in 0..4096, got {nhuge!r}")
    return _forkbase(reps, nhuge=nhuge)


def exit_small(reps: int = 3, pages: int = 1) -> list[int]:
    """ns of `reps` exits of a child of the tiny C program (forkbase) that wrote
    `pages` private pages: the exit tears down those pages and the program's few,
    not an inherited copy of the Python process running the probe (whose size
    varies from one calibration round to the next).  The probes' clock."""
    _reps_ok(reps)
    if not (isinstance(pages, int) and not isinstance(pages, bool) and 1 <= pages <= 1 << 22):
        raise errors.InvalidArgument(f"pages must be an integer in 1..{1 << 22}, got {pages!r}")
    return _forkbase(reps, exit_pages=pages)
