"""What every workload shares: scenarios cut into segments, the catalogue, the trace cache.

A *workload* is a small function that, given its parameters and a seed, writes a
*scenario*: one trace for a fresh machine, cut into *segments*::

    setup ──► timed segment "write" ──► untimed "exit" ──► timed "fork" …
    (untimed)   (per-op ns of WRITE)                       (per-op ns of FORK)

A segment name may be used again: its rounds are measured as one segment
(samples joined, counters and times added), e.g. five forks each followed
by the child's exit give five fork samples and five exit samples.

Untimed segments bring the machine into the state the workload is about
(processes, mappings, touched pages).  Timed segments are replayed with the
engine's clock on (``timing="per_op"``: one sample per operation, the fault
latency and fork families) or off (``timing="total"``: the elapsed time of
the whole segment, for throughput).  A segment may ask for a metadata
snapshot after it runs (the metadata family is made of those).

Traces are generated with numpy from a seed, never inside a timed region, and
cached twice: in memory (``functools.lru_cache``) and on disk as ``.npz``
under ``cache_dir()``, keyed by the workload's source text, so asv's many
short-lived processes generate each trace once.

Workloads register themselves with ``@workload``; each carries its parameter
grids per *profile*: ``tiny`` (tests), ``quick`` (``mmbench run --profile
quick``), ``full`` and ``asv`` (the asv suite).  A grid is a dict of value
lists (their product) or an explicit list of parameter dicts.

Every workload takes a ``thp`` parameter, the huge-page axis (``THP_AXIS``
gives its values per profile unless the workload's grid names them): the
mode is passed to every design as its ``thp`` option, and with ``"madvise"``
each ``mmap`` of 2 MiB or more is followed by ``madvise(MADV_HUGEPAGE)`` on
the whole range, as a program does that advises its own large allocations
(glibc's ``madvise_thp`` with the ``glibc.malloc.hugetlb=1`` tunable: regions
of at least one huge page).  ``"never"`` and ``"always"`` write no advice.

This module is imported both as ``workloads._common`` (asv, from the working
tree) and as ``mmbench.workloads._common`` (installed): it and its siblings
use relative imports only.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import itertools
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from mmbench.trace import TRACE_DTYPE, Op, TraceBuilder

PROFILES = ("tiny", "quick", "full", "asv")
# profiles only the workloads that declare a grid for them take part in ("large": 16 GiB
# processes, the scale the simulator must hold; see docs/performance.md)
OPT_IN_PROFILES = ("large",)
FAMILIES = ("fault_latency", "fork_cost", "metadata_memory", "device_migration", "real_programs",
            "vma_layout")
PAGES_2M = 512                  # 4 KiB pages in 2 MiB (one PMD, one gmem device granule)
BASE = 1 << 20                  # where workloads place their first mapping (vpn; 2 MiB-aligned)
THP_MODES = ("never", "madvise", "always")     # the designs' `thp` option (mmbench.hugepages)
#: the huge-page axis per profile, for workloads whose grid does not name "thp" itself: the
#: quick profile compares 4 KiB pages with huge pages wherever a design can use them; tiny
#: and full add "madvise" (the advice in the trace); asv and large stay at 4 KiB (asv runs
#: the suite against old commits, which have no huge pages)
THP_AXIS = {"tiny": THP_MODES, "quick": ("never", "always"), "full": THP_MODES,
            "asv": ("never",), "large": ("never",)}


# --------------------------------------------------------------- scenarios
@dataclasses.dataclass(frozen=True)
class Segment:
    """One slice of a scenario's trace.

    ``timing``: None (untimed), "per_op" or "total".  ``ops``: the op codes
    whose per-op times are reported (per_op) or counted (total).
    ``scale``: normalisers, {"page": n} adds "<segment>.ns_per_page".
    ``snapshot``: record the design's metadata after this segment.
    ``sim_memory``: record the simulator's own resident memory growth over this
    segment per page the segment made resident ("<segment>.sim_bytes_per_page").
    ``host_fork``: for one fork of a recorded program, the host's (VMAs, file-backed
    VMAs, VMAs with an anon_vma) of the forking process; the estimate adds the fork
    work of the VMAs the replay merged away (mmbench.estimate.unmerged_fork_events).
    """
    name: str
    trace: np.ndarray
    timing: str | None = None
    ops: tuple[int, ...] = ()
    scale: tuple[tuple[str, int], ...] = ()
    snapshot: bool = False
    sim_memory: bool = False
    host_fork: tuple[int, ...] = ()

    @property
    def timed(self) -> bool:
        return self.timing is not None


@dataclasses.dataclass(frozen=True)
class Machine:
    """How big the simulated machine must be (arguments of mmbench.open)."""
    ram_pages: int
    devices: int = 0
    device_pages: int = 1 << 16
    options: tuple = ()            # design options as (name, value) pairs, e.g. a device-fault variant

    def kwargs(self) -> dict:
        kw = {"ram_pages": self.ram_pages}
        if self.devices:
            kw.update(devices=self.devices, device_pages=self.device_pages)
        kw.update(dict(self.options))
        return kw


@dataclasses.dataclass(frozen=True)
class Scenario:
    segments: tuple[Segment, ...]
    machine: Machine

    def timed_segments(self):
        """The timed segments, one per name (a name used again is another round of it)."""
        seen = {}
        for s in self.segments:
            if s.timed and s.name not in seen:
                seen[s.name] = s
        return list(seen.values())

    def nops(self) -> int:
        return sum(len(s.trace) for s in self.segments)


def with_thp(machine: Machine, thp: str) -> Machine:
    """`machine` whose designs are opened with ``thp=thp`` (any other mode: ValueError)."""
    if thp not in THP_MODES:
        raise ValueError(f"thp must be one of {', '.join(THP_MODES)}, got {thp!r}")
    rest = tuple((k, v) for k, v in machine.options if k != "thp")
    return dataclasses.replace(machine, options=rest + (("thp", thp),))


class AdvisingBuilder(TraceBuilder):
    """A TraceBuilder that follows every mmap of at least 2 MiB with madvise(MADV_HUGEPAGE)
    over the range (the ``thp="madvise"`` point of the huge-page axis; glibc's madvise_thp
    skips smaller regions the same way)."""

    def mmap(self, pid, vpn, npages, shared=False, writable=True):
        super().mmap(pid, vpn, npages, shared=shared, writable=writable)
        if npages >= PAGES_2M:
            from mmbench.trace import Advice   # here: asv imports this module against old commits
            self.madvise(pid, vpn, npages, Advice.HUGEPAGE)


class Script:
    """Write a scenario segment by segment; each segment is its own TraceBuilder.

    Pids continue across segments (a segment's builder starts at the pid the
    previous segments left next), so a pid returned by ``fork`` in the setup
    names the same process in a later timed segment.  ``thp`` is the cell's
    point on the huge-page axis: the designs' option, and with ``"madvise"``
    every segment's builder advises each range it maps (AdvisingBuilder).
    """

    def __init__(self, machine: Machine, thp: str = "never"):
        self.machine = with_thp(machine, thp)
        self.thp = thp
        self._done: list[Segment] = []
        self._open: tuple[dict, TraceBuilder] | None = None
        self._next_pid = 1

    def segment(self, name: str, timing: str | None = None, ops=(), scale=None,
                snapshot: bool = False, sim_memory: bool = False) -> TraceBuilder:
        """Close the current segment and start a new one; returns its builder."""
        self._close()
        tb = (AdvisingBuilder if self.thp == "madvise" else TraceBuilder)(first_pid=self._next_pid)
        spec = dict(name=name, timing=timing, ops=tuple(int(o) for o in ops),
                    scale=tuple(sorted((scale or {}).items())), snapshot=snapshot,
                    sim_memory=sim_memory)
        self._open = (spec, tb)
        return tb

    def setup(self) -> TraceBuilder:
        return self.segment("setup")

    def _close(self):
        if self._open is None:
            return
        spec, tb = self._open
        trace = tb.build()
        self._next_pid += int(np.count_nonzero(np.isin(trace["op"], [int(Op.SPAWN), int(Op.FORK)])))
        self._done.append(Segment(trace=trace, **spec))
        self._open = None

    def build(self) -> Scenario:
        self._close()
        return Scenario(tuple(self._done), self.machine)


# --------------------------------------------------------------- catalogue
@dataclasses.dataclass(frozen=True)
class Workload:
    family: str
    name: str
    func: Callable[..., Scenario]
    grids: dict
    needs_devices: bool = False

    @property
    def doc(self) -> str:
        return inspect.cleandoc(self.func.__doc__ or "")

    @property
    def summary(self) -> str:
        return self.doc.split("\n\n")[0].replace("\n", " ")

    def points(self, profile: str) -> list[dict]:
        """The parameter sets of this workload in `profile` (none in an opt-in profile
        it declares no grid for)."""
        grid = self.grids.get(profile, None if profile in OPT_IN_PROFILES else self.grids.get("quick"))
        if grid is None:
            return []
        if isinstance(grid, dict):
            keys = list(grid)
            pts = [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]
        else:
            pts = [dict(p) for p in grid]
        axis = THP_AXIS.get(profile, ("never",))
        return [{**self.defaults(), **p, "thp": mode} for p in pts
                for mode in ((p["thp"],) if "thp" in p else axis)]

    def defaults(self) -> dict:
        """Parameters with a default in the signature (seed, fault kind …): recorded too."""
        sig = inspect.signature(self.func)
        return {k: p.default for k, p in sig.parameters.items() if p.default is not p.empty}

    def scenario(self, **params) -> Scenario:
        return _scenario(self.family, self.name, _freeze(params))


_CATALOGUE: dict[str, Workload] = {}


def workload(family: str, grids: dict, needs_devices: bool = False):
    """Register a workload function under its family (the decorator every module uses)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}")

    def deco(func):
        if not (func.__doc__ or "").strip():
            raise ValueError(f"workload {func.__name__} needs a docstring saying what it models")
        if "thp" not in inspect.signature(func).parameters:
            raise ValueError(f"workload {func.__name__} needs a thp parameter (the huge-page axis)")
        _CATALOGUE[func.__name__] = Workload(family, func.__name__, func, grids, needs_devices)
        return func
    return deco


def catalogue() -> dict[str, Workload]:
    """The workloads registered so far, by name, in family order.

    Each family is the module of the same name beside this one, and it registers
    its workloads itself (``@workload``) when imported; this module imports none
    of them.  Whoever wants them all imports them first: the runner does,
    through mmbench.registry.workloads(); asv imports every module itself."""
    order = {f: i for i, f in enumerate(FAMILIES)}
    return dict(sorted(_CATALOGUE.items(), key=lambda kv: order[kv[1].family]))


# --------------------------------------------------------------- cache
def _freeze(params: dict) -> tuple:
    return tuple(sorted(params.items()))


CACHE_MAX_OPS = 1 << 21        # larger scenarios (the large profile) are regenerated, not stored


def cache_dir() -> Path:
    """Where generated traces are kept: $MMBENCH_CACHE or ~/.cache/mmbench/traces."""
    d = os.environ.get("MMBENCH_CACHE")
    return Path(d) if d else Path.home() / ".cache" / "mmbench" / "traces"


_SOURCE_KEYS: dict = {}         # (func, its files' stat) -> key: hashed once per edit, not per cell


def _source_key(func) -> str:
    inputs = getattr(func, "inputs", lambda: ())()     # data files the scenario reads
    paths = (inspect.getsourcefile(func), __file__, *inputs)
    stamp = (func, tuple((st.st_mtime_ns, st.st_size) for st in map(os.stat, paths)))
    key = _SOURCE_KEYS.get(stamp)
    if key is None:
        h = hashlib.sha256()
        for path in paths:
            h.update(Path(path).read_bytes())
        key = _SOURCE_KEYS[stamp] = h.hexdigest()[:16]
    return key


def _cache_path(wl: Workload, params: dict) -> Path:
    key = hashlib.sha256(json.dumps([wl.name, params, _source_key(wl.func)]).encode()).hexdigest()[:24]
    return cache_dir() / f"{wl.name}-{key}.npz"


def cached_nops(wl: Workload, params: dict) -> int | None:
    """Operations in the cached scenario of `wl` with `params`, read from the cache file's
    index without loading it; None when it is not cached yet (a scheduler's size hint)."""
    import zipfile
    try:
        with zipfile.ZipFile(_cache_path(wl, dict(_freeze({**wl.defaults(), **params})))) as z:
            return sum(i.file_size for i in z.infolist() if i.filename.startswith("seg")) // TRACE_DTYPE.itemsize
    except (OSError, zipfile.BadZipFile, ValueError):
        return None


@functools.lru_cache(maxsize=256)   # a run's repeats come in rounds over every cell (mmbench.rounds)
def _scenario(family: str, name: str, frozen: tuple) -> Scenario:
    wl = _CATALOGUE[name]
    params = dict(frozen)
    path = _cache_path(wl, params)
    sc = _load(path)
    if sc is None:
        sc = wl.func(**params)
        if sc.nops() <= CACHE_MAX_OPS:
            _store(path, sc)
    return sc


def _store(path: Path, sc: Scenario) -> None:
    """Save a scenario; a cache that cannot be written is skipped, never an error."""
    meta = {"machine": dataclasses.asdict(sc.machine),
            "segments": [{k: v for k, v in dataclasses.asdict(s).items() if k != "trace"}
                         for s in sc.segments]}
    arrays = {f"seg{i}": s.trace for i, s in enumerate(sc.segments)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, meta=np.array(json.dumps(meta)), **arrays)
        os.replace(tmp, path)
    except OSError:
        pass


def _load(path: Path) -> Scenario | None:
    """The cached scenario, or None when absent or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            segs = []
            for i, s in enumerate(meta["segments"]):
                trace = z[f"seg{i}"]
                if trace.dtype != TRACE_DTYPE:
                    return None
                segs.append(Segment(trace=trace, name=s["name"], timing=s["timing"],
                                    ops=tuple(s["ops"]), snapshot=s["snapshot"],
                                    scale=tuple(tuple(x) for x in s["scale"]),
                                    sim_memory=s.get("sim_memory", False),
                                    host_fork=tuple(s.get("host_fork", ()))))
            mach = dict(meta["machine"])
            mach["options"] = tuple(tuple(o) for o in mach.get("options", ()))
            return Scenario(tuple(segs), Machine(**mach))
    except (OSError, ValueError, KeyError, TypeError):
        return None


# --------------------------------------------------------------- helpers for generators
def rng(seed: int, *salt) -> np.random.Generator:
    """A generator seeded by the workload's seed and its own name/parameters."""
    s = int.from_bytes(hashlib.sha256(repr((seed,) + salt).encode()).digest()[:8], "little")
    return np.random.default_rng(s)


def tokens(vpns: np.ndarray, pid: int, gen: int = 0) -> np.ndarray:
    """Distinct 64-bit values to write: who wrote which page in which round."""
    v = np.asarray(vpns, dtype=np.uint64)
    return v * np.uint64(0x9E3779B97F4A7C15) + np.uint64(pid << 8 | gen) + np.uint64(1)


def ram_for(pages: int, copies: float = 1) -> Machine:
    """A machine with room for `pages` × `copies` frames and generous headroom.

    Headroom is free (frame descriptors are only touched when used); it lets
    a design spend extra frames its own way without running out.
    """
    return Machine(ram_pages=int(pages * copies * 2) + (1 << 16))
