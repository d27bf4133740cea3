"""Measurements of the FreeBSD design quoted in docs/backends/freebsd.md.

    python -m mmbench_freebsd.measure            # all three, small sizes

Every figure says what it is: counts are exact (the same on every machine),
times are measured on this machine by the replay engine (wall clock of the
nogil loop, ``timing=False``), reported as the median and minimum of a few
repetitions.  When the host is shared, wall time also counts the time other
jobs held the core; ``first_touch_write_ns`` therefore also reports the CPU
time of the calling thread, minus that of replaying as many NOPs (which pays
the same trace validation and result arrays).
"""
from __future__ import annotations

import statistics
import time

import numpy as np

import mmbench
from mmbench.trace import TRACE_DTYPE, Op, TraceBuilder


def _cpu_ns_net_of_nops(m, trace, pid):
    """Thread CPU ns per op of replaying `trace`, minus that of as many NOPs."""
    nops = _page_ops(Op.NOP, pid, np.zeros(len(trace), dtype=np.int64))
    c0 = time.thread_time_ns()
    m.replay(nops, timing=False, frame=False)
    c1 = time.thread_time_ns()
    m.replay(trace, timing=False, frame=False)
    c2 = time.thread_time_ns()
    return ((c2 - c1) - (c1 - c0)) / len(trace)


def _page_ops(op, pid, vpns, value=1):
    t = np.zeros(len(vpns), dtype=TRACE_DTYPE)
    t["op"], t["pid"], t["vpn"], t["npages"], t["arg"] = op, pid, vpns, 1, value
    return t


def first_touch_write_ns(npages=1 << 18, reps=7, warm=False, **options):
    """ns per first-touch write fault (one process, one mapping, 256K pages).

    cold: a fresh machine, so the host kernel also has to back the simulator's
    own new memory (frame descriptors, pv chunks, trie nodes, page tables) —
    a cost that varies with the host's load.  warm (``warm=True``): the same
    faults on a machine whose previous process touched and freed as much, so
    that memory is reused.  Each run also reports the engine's NOP cost in the
    same session.  `options` are design options (e.g. prefault=False).
    """
    runs, cpu, nops_ns = [], [], []
    for _ in range(reps):
        m = mmbench.open("freebsd", ram_pages=npages + 16, **options)
        for round_ in range(2 if warm else 1):
            pid = m.spawn()
            m.mmap(pid, 0, npages)
            writes = _page_ops(Op.WRITE, pid, np.arange(npages))
            nops = _page_ops(Op.NOP, pid, np.arange(npages))
            c0 = time.thread_time_ns()
            m.replay(nops, timing=False, frame=False)
            nop_wall = m.last_replay["elapsed_ns"]
            c1 = time.thread_time_ns()
            m.replay(writes, timing=False, frame=False)
            c2 = time.thread_time_ns()
            m.exit(pid)
        runs.append(m.last_replay["elapsed_ns"] / npages)
        cpu.append(((c2 - c1) - (c1 - c0)) / npages)
        nops_ns.append(nop_wall / npages)
        del m
    return {"median_ns": statistics.median(runs), "min_ns": min(runs),
            "cpu_median_ns": statistics.median(cpu), "cpu_min_ns": min(cpu),
            "nop_median_ns": statistics.median(nops_ns),
            "kind": "measured", "npages": npages, "warm": warm}


def read_fault_ns_by_depth(max_depth=16, npages=16384, reps=5):
    """ns per read fault of a page that lies `depth` objects down the chain.

    A process writes `npages` pages, then a chain of `depth` forks follows in
    which every generation writes one page of its own (so every level gets a
    shadow); the deepest process then reads the original pages.  Depth 0: the
    pages are in the reader's own first object (a minor fault, no chain walk).
    Runs with pmap_copy=False (with it, every child inherits its parent's
    PTEs and these reads would not fault at all) and prefault=False (with it,
    one fault in nine maps the other eight).
    """
    out = []
    for depth in range(max_depth + 1):
        runs, cpu = [], []
        for _ in range(reps):
            m = mmbench.open("freebsd", ram_pages=npages + max_depth + 64, pmap_copy=False,
                             prefault=False)
            pid = m.spawn()
            m.mmap(pid, 0, npages + max_depth + 1)
            m.replay(_page_ops(Op.WRITE, pid, np.arange(npages), 7), timing=False, frame=False)
            for level in range(depth):
                pid = m.fork(pid)
                m.write(pid, npages + level, level)
            if depth == 0:             # a child alone on the writer's object:
                child = m.fork(pid)    # its reads find the pages in its first object
                m.exit(pid)
                pid = child
            steps = m.counter("chain_steps")
            cpu.append(_cpu_ns_net_of_nops(m, _page_ops(Op.READ, pid, np.arange(npages)), pid))
            runs.append(m.last_replay["elapsed_ns"] / npages)
            walked = (m.counter("chain_steps") - steps) / npages
        out.append({"depth": depth, "chain_steps_per_fault": walked,
                    "median_ns": statistics.median(runs), "min_ns": min(runs),
                    "cpu_min_ns": min(cpu), "cpu_median_ns": statistics.median(cpu)})
    return out


def ns_per_step(rows, key="min_ns"):
    """Least-squares slope of fault time over chain depth (ns per object walked)."""
    d = np.array([r["depth"] for r in rows], dtype=float)
    t = np.array([r[key] for r in rows], dtype=float)
    return float(np.polyfit(d, t, 1)[0])


def fork_server(children=1000, pages=256, writes=16, parent_writes=True, lifetime=1,
                **options):
    """A parent forks children that write `writes` pages and exit.

    `lifetime`: a child exits once `lifetime` newer children exist (1: each
    child exits before the next fork).  Returns exact counts (chain length of
    the parent at the end and its maximum along the way, objects, collapses …)
    and the measured ns per child.
    """
    m = mmbench.open("freebsd", ram_pages=1 << 16, **options)
    p = m.spawn()
    m.mmap(p, 0, pages)
    m.replay(_page_ops(Op.WRITE, p, np.arange(pages)), timing=False, frame=False)
    before = m.counters()
    alive, elapsed, max_chain = [], 0, 1
    for i in range(children):
        t = TraceBuilder(first_pid=m.next_free_pid)
        c = t.fork(p)
        for k in range(writes):
            t.write(c, (i * 13 + k) % pages, i)
        if parent_writes:
            t.write(p, (i * 5) % pages, i)
        alive.append(c)
        if len(alive) >= lifetime:
            t.exit(alive.pop(0))
        m.replay(t.build(), timing=False, frame=False)
        elapsed += m.last_replay["elapsed_ns"]
        max_chain = max(max_chain, m.chain_length(p, 0))
    m.check()
    after = m.counters()
    delta = {k: after[k] - before[k] for k in ("shadow_objects", "collapses", "bypasses",
                                               "fault_cow_copy", "cow_page_moves", "chain_steps",
                                               "fork_ptes_copied", "faults")}
    return {"children": children, "lifetime": lifetime, "parent_writes": parent_writes,
            "max_parent_chain": max_chain, "final_parent_chain": m.chain_length(p, 0),
            "live_objects": len(m.objects()), "deepest_walk": max(m.chain_depth_histogram()),
            "ns_per_child": elapsed / children, **delta}


def main():
    for warm in (False, True):
        for opts in ({}, {"prefault": False}):
            ft = first_touch_write_ns(warm=warm, **opts)
            print(f"first-touch write fault, {'warm' if warm else 'cold'}, "
                  f"{opts or '(defaults)'}, {ft['npages']} pages (measured): wall median "
                  f"{ft['median_ns']:.1f} ns, min {ft['min_ns']:.1f} ns; thread cpu median "
                  f"{ft['cpu_median_ns']:.1f} ns, min {ft['cpu_min_ns']:.1f} ns; "
                  f"engine NOP {ft['nop_median_ns']:.1f} ns")
    print("read fault vs chain depth (measured ns; wall min / median, thread cpu min / "
          "median of 5; steps exact):")
    rows = read_fault_ns_by_depth()
    for row in rows:
        print(f"  depth {row['depth']:2d}: {row['chain_steps_per_fault']:.0f} steps, wall "
              f"{row['min_ns']:.1f} / {row['median_ns']:.1f} ns, cpu {row['cpu_min_ns']:.1f} / "
              f"{row['cpu_median_ns']:.1f} ns")
    print(f"  slope per object walked (fit over the minima): wall {ns_per_step(rows):.1f} ns, "
          f"cpu {ns_per_step(rows, 'cpu_min_ns'):.1f} ns")
    for pw, life in ((False, 1), (True, 1), (True, 4), (True, 16)):
        print("fork server:", fork_server(parent_writes=pw, lifetime=life))


if __name__ == "__main__":
    main()
