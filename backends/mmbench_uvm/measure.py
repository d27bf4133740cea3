"""Measurements of the UVM design quoted in docs/backends/uvm.md.

    python -m mmbench_uvm.measure            # small sizes, a minute or so

Every figure says what it is: counts and bytes are exact (the same on every
machine); times are measured on this machine by the replay engine (wall clock
of the nogil loop, ``timing=False``), the median and minimum of a few runs.
"""
from __future__ import annotations

import statistics

import numpy as np

import mmbench
from mmbench.trace import TRACE_DTYPE, Op, TraceBuilder


def _page_ops(op, pid, vpns, value=1):
    t = np.zeros(len(vpns), dtype=TRACE_DTYPE)
    t["op"], t["pid"], t["vpn"], t["npages"], t["arg"] = op, pid, vpns, 1, value
    return t


def first_touch_write_ns(backend="uvm", npages=1 << 18, reps=5, **options):
    """ns per first-touch write fault (one process, one mapping): measured."""
    setup = TraceBuilder()
    p = setup.spawn()
    setup.mmap(p, 0, npages)
    setup = setup.build()
    writes = _page_ops(Op.WRITE, p, np.arange(npages))
    runs = []
    for _ in range(reps):
        m = mmbench.open(backend, ram_pages=npages + 16, **options)
        m.replay(setup, timing=False, frame=False)
        m.replay(writes, timing=False, frame=False)
        assert m.counter("fault_zero_fill") == npages
        runs.append(m.last_replay["elapsed_ns"] / npages)
        del m
    return {"backend": backend, "npages": npages, "median_ns": statistics.median(runs),
            "min_ns": min(runs), "kind": "measured", **options}


def _bytes(md, *names):
    return sum(md[n][1] for n in names if n in md)


def fork_chain(backend, depth, npages=4096, reps=3, **options):
    """A process writes `npages` pages; `depth` generations of fork follow, each
    child writing one page of its own and staying alive.  Returns the live
    metadata (exact) and the deepest process's read faults over the original
    pages (ns per fault, measured)."""
    runs = []
    for _ in range(reps):
        m = mmbench.open(backend, ram_pages=npages + depth + 64, **options)
        pid = m.spawn()
        m.mmap(pid, 0, npages + depth + 1)
        m.replay(_page_ops(Op.WRITE, pid, np.arange(npages), 7), timing=False, frame=False)
        for level in range(depth):
            pid = m.fork(pid)
            m.write(pid, npages + level, level)
        md = m.metadata()
        before = m.counters()
        m.replay(_page_ops(Op.READ, pid, np.arange(npages)), timing=False, frame=False)
        runs.append(m.last_replay["elapsed_ns"] / npages)
        after = m.counters()
        m.check()
    row = {"backend": backend, "options": options, "depth": depth, "pages": md["vm_page"][0],
           "entries": md["vm_map_entry"][0], "median_ns": statistics.median(runs),
           "min_ns": min(runs),
           "chain_steps_per_read": (after.get("chain_steps", 0) - before.get("chain_steps", 0)) / npages}
    if backend == "uvm":
        row.update(objects=md["vm_amap"][0], anons=md["vm_anon"][0],
                   object_bytes=_bytes(md, "vm_amap", "amap_slots", "vm_anon"),
                   amap_copies=after["amap_copies"])
    else:
        row.update(objects=md["vm_object"][0], anons=0,
                   object_bytes=_bytes(md, "vm_object", "pctrie_node"))
    return row


CHAIN_DESIGNS = (("uvm", {}), ("uvm", {"amap_chunk": False}), ("freebsd", {}))


def fork_chain_table(depths=(1, 2, 4, 8, 16), npages=4096, reps=3):
    return [fork_chain(b, d, npages, reps, **o) for d in depths for b, o in CHAIN_DESIGNS]


def markdown(rows):
    """The fork-chain rows as the table of docs/backends/uvm.md."""
    out = ["| depth | design | amaps / objects | anons | entries | object bytes | chain steps per read "
           "| read fault ns (min / median) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        name = r["backend"] + ("" if r["options"].get("amap_chunk", True) else " (no chunking)")
        out.append(f"| {r['depth']} | {name} | {r['objects']} | {r['anons']} | {r['entries']} | "
                   f"{r['object_bytes']} | {r['chain_steps_per_read']:.0f} | "
                   f"{r['min_ns']:.1f} / {r['median_ns']:.1f} |")
    return "\n".join(out)


def main():
    for b, opts in (("uvm", {}), ("uvm", {"amap_chunk": False}), ("freebsd", {})):
        ft = first_touch_write_ns(b, **opts)
        print(f"first-touch write fault {b} {opts}, {ft['npages']} pages: "
              f"median {ft['median_ns']:.1f} ns, min {ft['min_ns']:.1f} ns (measured)")
    print("fork chain, 4096 pages (metadata exact, read ns measured min/median of 3):")
    print(markdown(fork_chain_table()))


if __name__ == "__main__":
    main()
