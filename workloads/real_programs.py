"""Real programs: traces recorded on a Linux host with `mmbench record`, replayed on every design.

Each trace in ``real/`` is what one real program did to memory on the host
(its mappings and the faults Linux took; see docs/real-programs.md), made
reproducibly by the script next to it (``real/<program>.sh``).  The scenario
cuts the trace at every fork::

    setup (the first exec) ─► run ─► fork ─► run ─► fork ─► run …
                              (per-op ns of      (per-op ns of FORK; counter
                               faults, mmap …)    deltas = the fork's own work)

so ``run.*`` holds the program's faults by kind and ``fork.*`` its fork cost,
each with exact counts, measured model time and (with a calibration) the
estimated host time.  The processes still alive at the end of the recording —
and the last ones to exit — are left alive, so ``metadata.*`` is the
metadata the program holds at its end, not an empty machine.

A recorded trace holds the faults Linux took, not every access; each
trace's provenance carries the numbers behind that bias and `mmbench replay`
prints them next to every result.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from mmbench.trace import TRACE_DTYPE, Op

from ._common import Machine, Scenario, Segment, with_thp, workload
from ._asv import asv_classes

REAL = Path(__file__).parent / "real"


def programs() -> list[str]:
    """The recorded programs shipped with the project (real/<program>.npz)."""
    return sorted(p.stem for p in REAL.glob("*.npz"))


def load(program: str) -> tuple[np.ndarray, dict]:
    """(trace, provenance) of a shipped program."""
    path = REAL / f"{program}.npz"
    with np.load(path, allow_pickle=False) as z:
        trace = np.ascontiguousarray(z["trace"].astype(TRACE_DTYPE, copy=False))
        prov = json.loads(str(z["meta_provenance"])) if "meta_provenance" in z.files else {}
    return trace, prov


def _trim_final_exits(trace: np.ndarray) -> np.ndarray:
    """Drop the trailing EXITs: the machine ends holding the program's last state."""
    op = trace["op"]
    n = len(trace)
    while n > 1 and op[n - 1] == Op.EXIT:
        n -= 1
    return trace[:n]


def scenario_of(trace: np.ndarray, host_faults: int, thp: str = "never", host_forks=()) -> Scenario:
    """The recorded trace cut at its forks, for designs opened with ``thp=thp``.
    `host_forks`: the host's VMA counts at each fork, in order (provenance
    ``host.fork_vmas``), so each fork's estimate includes the VMAs the replay merged."""
    trace = _trim_final_exits(trace)
    touches = int(np.count_nonzero(np.isin(trace["op"], [int(Op.READ), int(Op.WRITE)])))
    segs = [Segment("setup", trace[:1])]
    forks = np.flatnonzero(trace["op"] == Op.FORK)
    edges = [1] + [int(x) for f in forks for x in (f, f + 1)] + [len(trace)]
    run_ops = tuple(int(o) for o in (Op.READ, Op.WRITE, Op.MMAP, Op.MUNMAP, Op.EXIT))
    scale = (("fault", max(1, host_faults)),)
    for a, b in zip(edges, edges[1:]):
        if b <= a:
            continue
        seg = trace[a:b]
        if len(seg) == 1 and seg["op"][0] == Op.FORK:
            k = sum(1 for s in segs if s.name == "fork")
            segs.append(Segment("fork", seg, "per_op", (int(Op.FORK),),
                                (("fork", max(1, len(forks))),),
                                host_fork=tuple(int(x) for x in host_forks[k]) if k < len(host_forks) else ()))
        else:
            present = set(seg["op"].tolist())
            segs.append(Segment("run", seg, "per_op",
                                tuple(o for o in run_ops if o in present) or (int(seg["op"][0]),),
                                scale))
    # a name used again is measured as one segment: its ops must be those of the first round
    first = {}
    fixed = []
    for s in segs:
        if s.timed and s.name in first:
            s = dataclasses.replace(s, ops=first[s.name])
        elif s.timed:
            first[s.name] = s.ops
        fixed.append(s)
    return Scenario(tuple(fixed), with_thp(Machine(ram_pages=2 * touches + (1 << 18)), thp))


def _grid():
    progs = programs()
    small = [p for p in progs if p == "forkpool"] or progs[:1]
    # asv takes the segments of the first program: one that forks has both "run" and "fork"
    forking_first = sorted(progs, key=lambda p: p not in ("pgbench", "redis", "forkpool"))
    # no "madvise" point: recordings keep the programs' own MADV_HUGEPAGE calls only as counts
    # (mmbench.record_convert), so advice-driven huge pages would be invented here
    thp = ["never", "always"]
    return {"tiny": {"program": small, "thp": thp}, "quick": {"program": progs, "thp": thp},
            "full": {"program": progs, "thp": thp}, "asv": {"program": forking_first}}


@workload("real_programs", grids=_grid())
def real_program(program, thp="never"):
    """A real program recorded on a Linux host, replayed as Linux ran it.

    Stands for itself: each ``program`` is a recording of a real run
    (PostgreSQL with pgbench, Redis BGSAVE under writes, a Python
    multiprocessing fork pool, a parallel C build, a JIT runtime — see
    docs/real-programs.md and the script under workloads/real/ that made it,
    which says what it stands for and how long it ran).  With ``thp="always"``
    the designs back the program's memory with huge pages wherever they can.
    """
    trace, prov = load(program)
    host = prov.get("host", {})
    return scenario_of(trace, int(host.get("faults", 0)), thp, host.get("fork_vmas") or ())


real_program.inputs = lambda: sorted(REAL.glob("*.npz"))   # the cache key covers the traces


globals().update(asv_classes("real_programs"))
