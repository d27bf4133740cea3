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
