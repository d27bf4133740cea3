"""Measured report of the shmem design's speed goals (not a test).

    python -m mmbench_shmem.measure [--pages N] [--reps R]

Prints, for private and shared memory: first-touch write faults of N pages
replayed in one C loop (ns per fault, best of R), then fork of the process
holding those N touched pages and the deferred faults that follow, with the
counters and metadata each step added.  Times are *measured* on this machine
(elapsed of the replay loop); counts and bytes are *exact*.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import mmbench
from mmbench.trace import TRACE_DTYPE, Op

BASE = 1 << 20


def _records(op, pid, vpns, arg=0, npages=1):
    a = np.zeros(len(vpns), dtype=TRACE_DTYPE)
    a["op"], a["pid"], a["vpn"], a["npages"], a["arg"] = op, pid, vpns, npages, arg
    return a


def _populate(n, shared):
    head = np.concatenate([_records(Op.SPAWN, 0, [0], npages=0),
                           _records(Op.MMAP, 1, [BASE], 2 | int(shared), npages=n)])
    return np.concatenate([head, _records(Op.WRITE, 1, BASE + np.arange(n), 1)])


def _step(m, trace):
    c0, md0 = m.counters(), m.metadata()
    t0 = time.thread_time_ns()
    m.replay(trace, timing=False, frame=False)
    cpu = time.thread_time_ns() - t0
    c1, md1 = m.counters(), m.metadata()
    return ((m.last_replay["elapsed_ns"], cpu),
            {k: c1[k] - c0[k] for k in c1 if c1[k] != c0[k]},
            {k: md1[k][1] - md0[k][1] for k in md1 if md1[k] != md0[k]})


def first_touch_ns(n, shared, reps):
    """(wall ns of the C loop per fault, thread CPU ns of the whole replay call
    per fault — validation included, but immune to other jobs on the CPU)."""
    wall, cpu = [], []
    for _ in range(reps):
        m = mmbench.open("shmem", ram_pages=2 * n + 64)
        trace = _populate(n, shared)
        t0 = time.thread_time_ns()
        m.replay(trace, timing=False, frame=False)
        cpu.append((time.thread_time_ns() - t0) / n)
        wall.append(m.last_replay["elapsed_ns"] / n)
    return min(wall), min(cpu)


def fork_report(n, shared):
    m = mmbench.open("shmem", ram_pages=2 * n + 64)
    _step(m, _populate(n, shared))
    vpns = BASE + np.arange(n)
    rows = [("fork",) + _step(m, _records(Op.FORK, 1, [0], npages=0))]
    rows.append(("child reads every page",) + _step(m, _records(Op.READ, 2, vpns)))
    rows.append(("child writes every page",) + _step(m, _records(Op.WRITE, 2, vpns, 2)))
    rows.append(("parent writes every page",) + _step(m, _records(Op.WRITE, 1, vpns, 3)))
    m.check()
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=256 * 1024)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)
    for shared in (False, True):
        kind = "shared" if shared else "private"
        wall, cpu = first_touch_ns(args.pages, shared, args.reps)
        print(f"{kind}: first-touch write fault {wall:.1f} ns/fault wall in the C loop, "
              f"{cpu:.1f} ns/fault thread CPU of the replay call "
              f"(measured, best of {args.reps}, {args.pages} pages)")
        for label, ns, ctr, meta in fork_report(args.pages, shared):
            print(f"  {label}: {ns[0] / 1e6:.3f} ms wall in the C loop, "
                  f"{ns[1] / 1e6:.3f} ms thread CPU of the replay call (measured)")
            print(f"    counters {ctr}")
            if meta:
                print(f"    metadata bytes {meta}")


if __name__ == "__main__":
    main()
