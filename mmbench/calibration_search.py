"""Where the host calibration is found, and whether it describes this host.

Estimated host costs need a calibration made on the machine the numbers are
taken on (``mmbench calibrate``).  It is looked up in one order, the same from
any working directory, and the first usable file wins:

1. an explicit file: ``mmbench run --calibration FILE`` (used even if it was
   made on other hardware; the run then says so);
2. the environment: ``$MMBENCH_CALIBRATION`` (a file, same rule);
3. the per-user data directory: ``$MMBENCH_DATA_DIR/calibration``, else
   ``$XDG_DATA_HOME/mmbench/calibration``, else
   ``~/.local/share/mmbench/calibration`` (where ``mmbench calibrate`` writes);
4. the project's published calibrations: ``$MMBENCH_RESULTS/calibration``,
   else ``results/calibration`` of the source checkout mmbench runs from.

In the two directories a file is taken only if it describes *this* host:
same CPU model, architecture, number of CPUs, page size and kernel release (a
hostname alone says nothing: VMs and containers share names, and one name can
move to other hardware).  Among matching files the one whose hostname is this
host's wins, then the newest.  When nothing matches, the reason names every
file that was looked at and why it was not used.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import socket
from pathlib import Path

#: machine fields that must be equal for a calibration to describe this host
MATCH_KEYS = ("cpu", "arch", "cpus", "page_size", "kernel")
ENV_FILE = "MMBENCH_CALIBRATION"


@dataclasses.dataclass
class Found:
    """The outcome of a lookup: the calibration (or None) and one line saying what happened."""
    calibration: dict | None
    path: str | None
    source: str            # "--calibration", "$MMBENCH_CALIBRATION", "user", "project" or ""
    message: str           # printed by `mmbench run`: which file and why, or why none

    def __bool__(self) -> bool:
        return self.calibration is not None


def this_host() -> dict:
    """The fields a calibration records about its machine (mmbench.calibrate.machine_info)."""
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {"hostname": socket.gethostname(), "kernel": platform.release(), "arch": platform.machine(),
            "cpu": cpu, "cpus": os.cpu_count(), "page_size": os.sysconf("SC_PAGE_SIZE")}


def user_dir() -> Path:
    """The per-user directory `mmbench calibrate` writes to by default."""
    base = os.environ.get("MMBENCH_DATA_DIR")
    if base:
        return Path(base) / "calibration"
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(xdg) / "mmbench" / "calibration"


def project_dir() -> Path | None:
    """The project's published calibrations: $MMBENCH_RESULTS/calibration, else those of the
    source checkout mmbench is imported from (None when installed from a wheel)."""
    env = os.environ.get("MMBENCH_RESULTS")
    if env:
        return Path(env) / "calibration"
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").exists() and (root / "results").is_dir():
        return root / "results" / "calibration"
    return None


def search_order() -> list[tuple[str, Path]]:
    """(source, directory) in lookup order, after any explicit file."""
    out = [("user", user_dir())]
    proj = project_dir()
    if proj is not None:
        out.append(("project", proj))
    return out


def mismatch(machine: dict, host: dict | None = None) -> str | None:
    """Why a calibration made on `machine` does not describe `host` (None: it does)."""
    host = host or this_host()
    if not isinstance(machine, dict):
        return "it records no machine"
    diffs = [f"{k} {machine.get(k)!r} (this host: {host.get(k)!r})" for k in MATCH_KEYS
             if machine.get(k) != host.get(k)]
    return "made on other hardware: " + ", ".join(diffs) if diffs else None


def _read(path: Path) -> tuple[dict | None, str]:
    try:
        cal = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None, "no such file"
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return None, f"unreadable ({type(e).__name__})"
    if not isinstance(cal, dict) or not isinstance(cal.get("costs"), dict):
        return None, "not an mmbench calibration (no 'costs')"
    return cal, ""


def _explicit(path, source: str, host: dict) -> Found:
    from mmbench import errors
    cal, why = _read(Path(path))
    if cal is None:
        raise errors.InvalidArgument(f"calibration {path} ({source}): {why}")
    cal.setdefault("path", str(path))
    other = mismatch(cal.get("machine"), host)
    msg = f"calibration: {path} (from {source})"
    if other:
        msg += f"; warning: {other}"
    return Found(cal, str(path), source, msg)


def find(explicit=None, host: dict | None = None) -> Found:
    """The calibration to use, following the order in this module's docstring.

    An explicit file or $MMBENCH_CALIBRATION that cannot be read raises
    InvalidArgument (a named file must not be ignored silently); files in the
    directories that cannot be read or describe other hardware are skipped, and
    the message says so.
    """
    host = host or this_host()
    if explicit:
        return _explicit(explicit, "--calibration", host)
    env = os.environ.get(ENV_FILE)
    if env:
        return _explicit(env, f"${ENV_FILE}", host)
    looked, skipped = [], []
    for source, d in search_order():
        looked.append(str(d))
        files = sorted(d.glob("*.json")) if d.is_dir() else []
        good = []
        for f in files:
            cal, why = _read(f)
            why = why or mismatch(cal.get("machine"), host)
            if why:
                skipped.append(f"{f}: {why}")
            else:
                good.append((cal.get("machine", {}).get("hostname") == host["hostname"],
                             f.stat().st_mtime, f, cal))
        if good:
            _, _, f, cal = max(good, key=lambda g: (g[0], g[1]))
            cal.setdefault("path", str(f))
            return Found(cal, str(f), source, f"calibration: {f} ({source} directory, matches this "
                         f"host's CPU and kernel)")
    why = f"no calibration for this host in {' or '.join(looked)}"
    if skipped:
        why += "; skipped " + "; ".join(skipped)
    why += " (run `mmbench calibrate`, or pass --calibration FILE)"
    return Found(None, None, "", "no calibration: " + why)


def default_output() -> str:
    """Where `mmbench calibrate` writes: the per-user directory, one file per host name."""
    return str(user_dir() / f"{socket.gethostname()}.json")
