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
        md_after = m.metadata()
        m.check()
    row = {"backend": backend, "options": options, "depth": depth, "pages": md["vm_page"][0],
           "entries": md["vm_map_entry"][0], "median_ns": statistics.median(runs),
           "min_ns": min(runs), "read_faults": after["faults"] - before["faults"],
           "pv_bytes": _bytes(md_after, "pv_page", "pv_chunk"),
           "chain_steps_per_read": (after.get("chain_steps", 0) - before.get("chain_steps", 0)) / npages}
    if backend == "uvm":
        row.update(objects=md["vm_amap"][0], anons=md["vm_anon"][0],
                   object_bytes=_bytes(md, "vm_amap", "amap_slots", "vm_anon"),
                   amap_copies=after["amap_copies"])
    else:
        row.update(objects=md["vm_object"][0], anons=0,
                   object_bytes=_bytes(md, "vm_object", "pctrie_node"))
    return row


CHAIN_DESIGNS = (("uvm", {}), ("uvm", {"amap_chunk": False}), ("uvm", {"fault_ahead": False}),
                 ("freebsd", {}))


def fork_chain_table(depths=(1, 2, 4, 8, 16), npages=4096, reps=3):
    return [fork_chain(b, d, npages, reps, **o) for d in depths for b, o in CHAIN_DESIGNS]


def _name(r):
    opts = ", ".join(f"{k}={v}" for k, v in r["options"].items())
    return r["backend"] + (f" ({opts})" if opts else "")


def markdown(rows):
    """The fork-chain rows as the table of docs/backends/uvm.md."""
    out = ["| depth | design | amaps / objects | anons | entries | object bytes | pv bytes after reads "
           "| chain steps per read | read faults | ns per page read (min / median) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['depth']} | {_name(r)} | {r['objects']} | {r['anons']} | {r['entries']} | "
                   f"{r['object_bytes']} | {r['pv_bytes']} | {r['chain_steps_per_read']:.0f} | "
                   f"{r['read_faults']} | {r['min_ns']:.1f} / {r['median_ns']:.1f} |")
    return "\n".join(out)


def touch_layout(npages, order="ascending", **options):
    """Entries and amaps left by writing every page of one private mapping of
    `npages` pages (ascending, descending, or every 64th page: "sparse");
    exact."""
    m = mmbench.open("uvm", ram_pages=npages + 16, **options)
    p = m.spawn()
    m.mmap(p, 0, npages)
    vpns = {"ascending": np.arange(npages), "descending": np.arange(npages)[::-1],
            "sparse": np.arange(0, npages, 64)}[order]
    m.replay(_page_ops(Op.WRITE, p, vpns), timing=False, frame=False)
    entries, amaps = len(m.entries(p)), len(m.amaps())
    m.fork(p)
    return {"npages": npages, "order": order, "options": options, "entries": entries,
            "amaps": amaps, "entries_after_fork": m.metadata()["vm_map_entry"][0],
            "amap_slot_bytes": m.metadata()["amap_slots"][1]}


def pv_cost(backend, npages=4096, **options):
    """pv bytes (exact) for `npages` written pages: mapped once, then also by
    a forked child that read them all."""
    m = mmbench.open(backend, ram_pages=npages + 16, **options)
    p = m.spawn()
    m.mmap(p, 0, npages)
    m.replay(_page_ops(Op.WRITE, p, np.arange(npages)), timing=False, frame=False)
    once = _bytes(m.metadata(), "pv_page", "pv_chunk")
    c = m.fork(p)
    m.replay(_page_ops(Op.READ, c, np.arange(npages)), timing=False, frame=False)
    twice = _bytes(m.metadata(), "pv_page", "pv_chunk")
    return {"backend": backend, "options": options, "npages": npages, "pv_bytes_once": once,
            "pv_bytes_twice": twice, "pv_entries": m.counters()["pv_entries"]}


def main():
    for b, opts in (("uvm", {}), ("uvm", {"amap_chunk": False}), ("freebsd", {})):
        ft = first_touch_write_ns(b, **opts)
        print(f"first-touch write fault {b} {opts}, {ft['npages']} pages: "
              f"median {ft['median_ns']:.1f} ns, min {ft['min_ns']:.1f} ns (measured)")
    print("fork chain, 4096 pages (metadata exact, read ns measured min/median of 3):")
    print(markdown(fork_chain_table()))
    print("entries / amaps after writing one mapping (exact):")
    for n, order in ((1024, "ascending"), (1024, "descending"), (1024, "sparse"),
                     (65536, "ascending")):
        print(touch_layout(n, order))
    print("pv bytes, 4096 pages mapped once, then twice (exact):")
    for b, o in (("uvm", {}), ("uvm", {"fault_ahead": False}), ("freebsd", {})):
        print(pv_cost(b, **o))


if __name__ == "__main__":
    main()
