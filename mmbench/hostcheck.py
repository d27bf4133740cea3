"""What the host kernel itself reports about its memory-management structures.

The linux design claims the host's struct sizes and counts.  Two host files
let mmbench check that claim:

* ``/proc/slabinfo`` (readable by root): one line per slab cache with live
  objects and the object size, e.g. ``vm_area_struct 2163 2163 192 …``.  The
  difference in live objects before and after a workload is the number of
  structs that workload left allocated (other processes allocate too, so
  deltas are taken with repeats and medians, and only large ones mean much).
* ``/proc/PID/status`` (readable for one's own processes): ``VmPTE`` is the
  page-table memory of the process in kB; ``/proc/PID/maps`` has one line per
  VMA.

Every reader raises :class:`HostFileUnavailable` with a sentence saying which
file could not be read and why (missing, permission, unexpected format); the
callers turn that into a message, never a traceback.  The paths are module
attributes so tests (and hosts with an unusual /proc) can point them
elsewhere.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from mmbench import errors

SLABINFO = "/proc/slabinfo"
PROC = "/proc"
#: pages one read fault on a cached file maps on the host (do_fault_around: the
#: kernel's default fault_around_bytes, 64 KiB); the calibration's read-hit probe and
#: the recorder's count of the neighbours a recorded read mapped both assume it
FAULT_AROUND_PAGES = 16

#: the slab caches behind the linux design's structs (host name -> model name)
HOST_STRUCTS = {
    "vm_area_struct": "vm_area_struct",
    "anon_vma": "anon_vma",
    "anon_vma_chain": "anon_vma_chain",
    "maple_node": "maple_node",
    "radix_tree_node": "xa_node",
    "shmem_inode_cache": "shmem_inode_info",
}


class HostFileUnavailable(errors.MMError):
    """A /proc file mmbench wanted is missing, unreadable or not as expected."""


@dataclass(frozen=True)
class SlabCache:
    """One line of /proc/slabinfo."""
    name: str
    active_objs: int
    num_objs: int
    objsize: int          # bytes per object including the cache's own padding
    objperslab: int
    pagesperslab: int


def _read_text(path: str, what: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        raise HostFileUnavailable(f"{what}: {path} does not exist on this host") from None
    except PermissionError:
        raise HostFileUnavailable(
            f"{what}: {path} is not readable by this user (it usually needs root)") from None
    except OSError as e:
        raise HostFileUnavailable(f"{what}: cannot read {path}: {e.strerror or e}") from None


def read_slabinfo(path: str | None = None) -> dict[str, SlabCache]:
    """{cache name: SlabCache} from /proc/slabinfo (version 2.x format)."""
    path = path or SLABINFO
    text = _read_text(path, "slab statistics")
    lines = text.splitlines()
    if not lines or not lines[0].startswith("slabinfo - version: 2."):
        raise HostFileUnavailable(f"slab statistics: {path} is not in the slabinfo 2.x format")
    caches = {}
    for line in lines[1:]:
        if line.startswith("#") or not line.strip():
            continue
        f = line.split()
        try:
            caches[f[0]] = SlabCache(f[0], int(f[1]), int(f[2]), int(f[3]), int(f[4]), int(f[5]))
        except (IndexError, ValueError):
            raise HostFileUnavailable(
                f"slab statistics: unexpected line in {path}: {line[:60]!r}") from None
    return caches


def struct_sizes(path: str | None = None) -> dict[str, int]:
    """{host cache name: object size in bytes} for the caches in HOST_STRUCTS."""
    caches = read_slabinfo(path)
    return {name: caches[name].objsize for name in HOST_STRUCTS if name in caches}


def live_structs(path: str | None = None) -> dict[str, int]:
    """{host cache name: live objects now} for the caches in HOST_STRUCTS."""
    caches = read_slabinfo(path)
    return {name: caches[name].active_objs for name in HOST_STRUCTS if name in caches}


def read_status(pid: int | str = "self") -> dict[str, int]:
    """The ``Vm*`` / ``Rss*`` lines of /proc/PID/status in kB ({"VmPTE": 48, …})."""
    path = os.path.join(PROC, str(pid), "status")
    text = _read_text(path, f"status of process {pid}")
    out = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if key.startswith(("Vm", "Rss")) and len(parts) == 2 and parts[1] == "kB":
            out[key] = int(parts[0])
    if "VmPTE" not in out:
        raise HostFileUnavailable(f"status of process {pid}: {path} has no VmPTE line")
    return out


def count_vmas(pid: int | str = "self") -> int:
    """Number of VMAs of a process (lines of /proc/PID/maps)."""
    path = os.path.join(PROC, str(pid), "maps")
    return sum(1 for line in _read_text(path, f"mappings of process {pid}").splitlines() if line)


def anon_pages(pid: int | str = "self") -> int:
    """Resident anonymous 4 KiB pages of a process (``Anonymous`` in smaps_rollup)."""
    path = os.path.join(PROC, str(pid), "smaps_rollup")
    for line in _read_text(path, f"memory of process {pid}").splitlines():
        if line.startswith("Anonymous:"):
            return int(line.split()[1]) // 4
    raise HostFileUnavailable(f"memory of process {pid}: {path} has no Anonymous line")


def availability() -> dict[str, str]:
    """{"slabinfo": "ok" or why not, "status": "ok" or why not}."""
    out = {}
    for key, fn in (("slabinfo", read_slabinfo), ("status", read_status)):
        try:
            fn()
            out[key] = "ok"
        except HostFileUnavailable as e:
            out[key] = str(e)
    return out
