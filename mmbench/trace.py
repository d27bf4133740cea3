"""Traces: the operation sequences every design replays.

A trace is a numpy structured array of dtype ``TRACE_DTYPE``; each record is one
contract operation (``Op``).  Processes are named by the pids they will get on a
fresh machine (1, 2, 3 … in SPAWN/FORK order).  ``arg`` carries the remaining
argument of the op:

========================  =========================================
op                        arg
========================  =========================================
MMAP                      flag bits: 1 = shared, 2 = writable
MPROTECT                  1 = writable, 0 = read-only
WRITE / DEVICE_WRITE      the 64-bit value written
MREMAP                    the new vpn
MOVE_PAGES                the destination vpn (vpn is the source)
MIGRATE                   the destination node (0 = host, 1.. = devices)
MADVISE                   the advice (``Advice``: 4 DONTNEED, 14 HUGEPAGE, 15 NOHUGEPAGE)
others                    0
========================  =========================================

``dev`` names the accelerator of DEVICE_READ / DEVICE_WRITE.
"""
from __future__ import annotations

import enum

import numpy as np

from mmbench import errors
from mmbench._tracecheck import ADVICE_NAMES, OP_NAMES, VPN_LIMIT

TRACE_DTYPE = np.dtype([
    ("op", np.uint8), ("dev", np.uint8), ("_pad", np.uint16), ("pid", np.int32),
    ("vpn", np.int64), ("npages", np.int64), ("arg", np.uint64),
])
assert TRACE_DTYPE.itemsize == 32

Op = enum.IntEnum("Op", {name: i for i, name in enumerate(OP_NAMES)})
Op.__doc__ = "Trace op codes, one per contract operation (NOP measures the engine itself)."

Advice = enum.IntEnum("Advice", {name: v for v, name in sorted(ADVICE_NAMES.items())})
Advice.__doc__ = "madvise advice (Linux's MADV_* numbers): the `advice` of Machine.madvise / Op.MADVISE."

MAP_SHARED = 1
MAP_WRITE = 2

_RANGE_OPS = {Op.MMAP, Op.MUNMAP, Op.MPROTECT, Op.MREMAP, Op.MADVISE_DONTNEED, Op.MIGRATE, Op.MADVISE,
              Op.MOVE_PAGES}
_PAGE_OPS = {Op.READ, Op.WRITE, Op.DEVICE_READ, Op.DEVICE_WRITE}
_PID_OPS = set(Op) - {Op.SPAWN, Op.NOP}


class TraceBuilder:
    """Build a trace op by op, tracking the pids the trace will create.

    >>> t = TraceBuilder()
    >>> p = t.spawn(); t.mmap(p, 0, 16); t.write_range(p, 0, 16); c = t.fork(p)
    >>> trace = t.build()
    """

    def __init__(self, first_pid: int = 1):
        self._cols: dict[str, list] = {k: [] for k in ("op", "dev", "pid", "vpn", "npages", "arg")}
        self._next_pid = first_pid
        self._chunks: list[np.ndarray] = []

    def _add(self, op, pid=0, vpn=0, npages=0, arg=0, dev=0):
        c = self._cols
        c["op"].append(int(op)); c["dev"].append(dev); c["pid"].append(pid)
        c["vpn"].append(vpn); c["npages"].append(npages); c["arg"].append(arg)

    def _flush(self):
        c = self._cols
        if c["op"]:
            a = np.zeros(len(c["op"]), dtype=TRACE_DTYPE)
            for k, v in c.items():
                a[k] = np.asarray(v, dtype=TRACE_DTYPE[k])
            self._chunks.append(a)
            for v in c.values():
                v.clear()

    def extend(self, records: np.ndarray):
        """Append an array of records built elsewhere (vectorised generators)."""
        self._flush()
        self._chunks.append(np.asarray(records, dtype=TRACE_DTYPE))

    def spawn(self) -> int:
        self._add(Op.SPAWN)
        self._next_pid += 1
        return self._next_pid - 1

    def fork(self, pid: int) -> int:
        self._add(Op.FORK, pid)
        self._next_pid += 1
        return self._next_pid - 1

    def exit(self, pid): self._add(Op.EXIT, pid)
    def mmap(self, pid, vpn, npages, shared=False, writable=True):
        self._add(Op.MMAP, pid, vpn, npages, (MAP_SHARED if shared else 0) | (MAP_WRITE if writable else 0))
    def munmap(self, pid, vpn, npages): self._add(Op.MUNMAP, pid, vpn, npages)
    def mprotect(self, pid, vpn, npages, writable): self._add(Op.MPROTECT, pid, vpn, npages, int(bool(writable)))
    def read(self, pid, vpn): self._add(Op.READ, pid, vpn, 1)
    def write(self, pid, vpn, value): self._add(Op.WRITE, pid, vpn, 1, value)
    def mremap(self, pid, old_vpn, npages, new_vpn): self._add(Op.MREMAP, pid, old_vpn, npages, new_vpn)
    def madvise_dontneed(self, pid, vpn, npages): self._add(Op.MADVISE_DONTNEED, pid, vpn, npages)
    def move_pages(self, pid, src_vpn, dst_vpn, npages): self._add(Op.MOVE_PAGES, pid, src_vpn, npages, dst_vpn)
    def madvise(self, pid, vpn, npages, advice): self._add(Op.MADVISE, pid, vpn, npages, int(advice))
    def migrate(self, pid, vpn, npages, node): self._add(Op.MIGRATE, pid, vpn, npages, node)
    def device_read(self, dev, pid, vpn): self._add(Op.DEVICE_READ, pid, vpn, 1, 0, dev)
    def device_write(self, dev, pid, vpn, value): self._add(Op.DEVICE_WRITE, pid, vpn, 1, value, dev)
    def nop(self, n=1):
        self.extend(page_ops(Op.NOP, 0, np.zeros(n, dtype=np.int64)))

    def write_range(self, pid, vpn, npages, value=None, step=1):
        """WRITE every `step`-th page of a range (value defaults to a per-page token)."""
        vpns = np.arange(vpn, vpn + npages, step, dtype=np.int64)
        vals = (vpns.astype(np.uint64) * np.uint64(2654435761) + np.uint64(pid)) if value is None \
            else np.full(len(vpns), value, dtype=np.uint64)
        self.extend(page_ops(Op.WRITE, pid, vpns, vals))

    def read_range(self, pid, vpn, npages, step=1):
        self.extend(page_ops(Op.READ, pid, np.arange(vpn, vpn + npages, step, dtype=np.int64)))

    def build(self) -> np.ndarray:
        self._flush()
        if not self._chunks:
            return np.zeros(0, dtype=TRACE_DTYPE)
        return np.concatenate(self._chunks)


def page_ops(op, pid, vpns, values=None, dev=0) -> np.ndarray:
    """Vectorised: one single-page op per vpn."""
    vpns = np.asarray(vpns, dtype=np.int64)
    a = np.zeros(len(vpns), dtype=TRACE_DTYPE)
    a["op"] = int(op)
    a["pid"] = pid
    a["vpn"] = vpns
    a["npages"] = 1
    a["dev"] = dev
    if values is not None:
        a["arg"] = values
    return a


def validate_trace(trace, machine=None) -> np.ndarray:
    """Check a trace completely before anything runs; return it C-contiguous.

    Raises InvalidArgument (bad dtype, unknown op, bad range, bad device/node)
    or NoSuchProcess (a pid that will not exist at that point of the trace).
    With `machine`, pids are checked against the machine's live processes and
    the pids the trace itself creates.
    """
    trace = as_trace(trace)
    check_records(trace, machine)
    return trace


def as_trace(trace) -> np.ndarray:
    """The trace as a C-contiguous TRACE_DTYPE array (another integer dtype is converted);
    InvalidArgument if it is not a trace at all.  The first half of validate_trace."""
    if not isinstance(trace, np.ndarray) or trace.dtype.names is None:
        raise errors.InvalidArgument("a trace must be a numpy structured array of mmbench.TRACE_DTYPE")
    missing = [f for f in ("op", "pid", "vpn", "npages", "arg") if f not in trace.dtype.names]
    if missing:
        raise errors.InvalidArgument(f"trace lacks field(s) {missing}")
    if trace.ndim != 1:
        raise errors.InvalidArgument("a trace must be one-dimensional")
    if trace.dtype != TRACE_DTYPE:
        t = np.zeros(len(trace), dtype=TRACE_DTYPE)
        for f in TRACE_DTYPE.names:
            if f in trace.dtype.names and f != "_pad":
                if trace.dtype.fields[f][0].shape != ():
                    raise errors.InvalidArgument(f"trace field {f!r} must be a scalar integer, "
                                                 f"not a subarray of shape {trace.dtype.fields[f][0].shape}")
                src = trace[f]
                if not np.issubdtype(src.dtype, np.integer):
                    raise errors.InvalidArgument(f"trace field {f!r} must be integer")
                lo, hi = np.iinfo(TRACE_DTYPE[f]).min, np.iinfo(TRACE_DTYPE[f]).max
                if len(src) and (src.min() < lo or src.max() > hi):
                    raise errors.InvalidArgument(f"trace field {f!r} out of range")
                t[f] = src
        trace = t
    return np.ascontiguousarray(trace)


def check_records(trace: np.ndarray, machine=None, fields=None) -> None:
    """Check every record of an as_trace() array in one compiled pass; raise for the first
    bad one (the second half of validate_trace).  `fields`: six columns
    (mmbench._tracecheck.FIELD_DTYPES, len(trace) items each) the same pass fills with the
    records' fields — replay's result frame, de-interleaved while the records are read."""
    if len(trace) == 0:
        return
    from mmbench._tracecheck import validate_records, BAD_OP, BAD_RANGE, BAD_DEV, NO_DEVICES
    if machine is not None:
        ndev, devices_ok = machine.ndevices, bool(type(machine).supports_devices)
        live, first = machine.live_pids(), machine.next_free_pid
    else:
        ndev, devices_ok, live, first = 16, True, [], 1
    i, code, pid = validate_records(trace, ndev, devices_ok, np.asarray(live, dtype=np.int64), first, fields)
    if i < 0:
        return
    r = trace[i]
    if code == BAD_OP:
        raise errors.InvalidArgument(f"record {i}: unknown op code {int(r['op'])}")
    if code == BAD_RANGE:
        raise errors.InvalidArgument(
            f"record {i}: bad range or argument for {Op(int(r['op'])).name} "
            f"(vpn={int(r['vpn'])}, npages={int(r['npages'])}, arg={int(r['arg'])})")
    if code == BAD_DEV:
        raise errors.InvalidArgument(f"record {i}: device/node out of range (machine has {ndev} devices)")
    if code == NO_DEVICES:
        raise errors.NotSupported(f"the {type(machine).name!r} design has no accelerator support")
    raise errors.NoSuchProcess(
        f"record {i}: {Op(int(r['op'])).name} names pid {pid}, which does not exist at that point")


def save(path, trace: np.ndarray, **meta):
    """Save a trace as .npz (the array plus optional string metadata)."""
    trace = validate_trace(trace)
    np.savez_compressed(path, trace=trace, **{f"meta_{k}": np.array(str(v)) for k, v in meta.items()})


#: The most bytes load() inflates from a trace file (the whole .npz content), 1 GiB =
#: about 33 million records.  The size comes from the zip directory and is
#: checked before anything is decompressed, so a small compressed "zip bomb" is refused
#: at once.  Pass ``max_bytes=`` to load() to raise (or lower) it for one call.
MAX_TRACE_BYTES = 1 << 30


def _check_npz_sizes(path, max_bytes):
    """Refuse a .npz whose 'trace' member (or whole content) would inflate beyond max_bytes."""
    import zipfile
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return                  # np.load reports what is wrong with the file
    total = sum(i.file_size for i in infos)
    if total > max_bytes:
        raise errors.InvalidArgument(
            f"{path}: the trace inflates to {total} bytes, more than the limit of {max_bytes} "
            "(mmbench.trace.MAX_TRACE_BYTES; pass max_bytes= to load a bigger trace)")


def load(path, max_bytes=None) -> np.ndarray:
    """Load and validate a .npz trace; never unpickles, never crashes on a bad file.

    A file whose uncompressed content is larger than `max_bytes` (default
    MAX_TRACE_BYTES, 1 GiB) is refused with InvalidArgument before anything is
    inflated: the sizes are read from the zip directory.
    """
    if max_bytes is None:
        max_bytes = MAX_TRACE_BYTES
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 0:
        raise errors.InvalidArgument(f"max_bytes must be a non-negative integer, got {max_bytes!r}")
    try:
        _check_npz_sizes(path, int(max_bytes))
        with np.load(path, allow_pickle=False) as z:
            if "trace" not in z.files:
                raise errors.InvalidArgument(f"{path}: no 'trace' array in the file")
            trace = z["trace"]
    except errors.MMError:
        raise
    except FileNotFoundError:
        raise errors.InvalidArgument(f"{path}: no such file") from None
    except IsADirectoryError:
        raise errors.InvalidArgument(f"{path}: is a directory, not a trace file") from None
    except PermissionError:
        raise errors.InvalidArgument(f"{path}: permission denied") from None
    except Exception:  # numpy's reasons (pickles, bad zip, truncation …) are about numpy, not the user
        raise errors.InvalidArgument(f"{path}: not an mmbench trace file (expected a .npz archive "
                                     "written by mmbench.save_trace or `mmbench record`)") from None
    return validate_trace(trace)
