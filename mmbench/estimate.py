"""Estimated host time: a design's event counts priced with a host calibration.

A model run is exact about *what* happened (faults by kind, pages zeroed and
copied, PTEs copied at fork, structs allocated …) and measures how long its
own bookkeeping took.  What it does not know is what that work costs on real
hardware under a real kernel.  ``mmbench calibrate`` measures the host kernel
and fits one price per event (see docs/calibration.md); this module applies
the prices:

    estimated_ns = sum over events of  count(event) x cost(event)
                   (+ the model's measured bookkeeping ns, when given)

The event -> cost mapping (COSTS) is the same for every design, because a
counter name means the same thing in every design.  Three kinds of event
keys are accepted in the ``counters`` dict:

* a counter name from ``mmbench.COUNTER_NAMES`` ("faults", "pages_zeroed" …);
* ``"alloc:<struct>"`` / ``"free:<struct>"``: slab objects allocated / freed
  (``Machine.slab_allocs()`` / ``slab_frees()``).  A struct is priced once,
  at allocation, for its whole life (allocation, linking, unlinking, free):
  the host probes that price it create and destroy it.  Freed frames
  (``free:page``) are priced on their own;
* ``"op:<OP>"``: contract operations executed (``"op:FORK"``, ``"op:MMAP"`` …).

``events_of(machine, ops)`` collects all three from a machine.  Keys whose
cost another price contains (COVERED: fault kinds, frees, EXIT …) are listed
under ``covered``; keys no price applies to under ``uncosted`` (bookkeeping
the measured time already contains, e.g. rmap visits, PTE writes).  Without a calibration
nothing is guessed: the result says "no calibration" and its total is None.
"""
from __future__ import annotations

import glob
import json
import os
from collections import Counter

#: cost name -> (what it prices, the event keys it multiplies)
COSTS = {
    "trap": ("one CPU fault: exception entry and exit, VMA lookup, PTE install",
             ("faults",)),
    "zero_fill": ("allocate a frame and clear its 4 KiB (with its rmap and LRU insertion)",
                  ("pages_zeroed",)),
    "copy": ("allocate a frame and copy 4 KiB into it (COW)", ("pages_copied",)),
    "cow_reuse": ("make an exclusive page writable in place, beyond the trap",
                  ("fault_cow_reuse",)),
    "page_cache_hit": ("find a cached page and map it, beyond the trap (minor fault)",
                       ("fault_minor",)),
    "pagecache_add": ("insert a new frame into a page cache (xarray store, accounting, LRU), "
                      "beyond zero-filling it", ("pagecache_adds",)),
    "tlb_flush": ("one TLB flush operation (a range flush counts once)", ("tlb_flushes",)),
    "pt_page": ("allocate and clear one page-table page", ("pt_pages_alloc",)),
    "fork_pte": ("copy and write-protect one PTE at fork", ("fork_ptes_copied",)),
    "pte_zap": ("clear one present PTE (munmap, exit, dontneed)", ("pte_zaps",)),
    "page_free": ("free a frame nobody maps any more", ("free:page", "free:vm_page")),
    "vma": ("duplicate a VMA at fork and free it at exit (or create and free one)",
            ("alloc:vm_area_struct", "alloc:vm_map_entry")),
    "struct_alloc": ("allocate and link one other MM struct (anon_vma, anon_vma_chain, "
                     "vm_object, xa_node …) and later unlink and free it", ("alloc:*",)),
    "syscall": ("enter and leave the kernel for an address-space system call",
                ("op:MMAP", "op:MUNMAP", "op:MPROTECT", "op:MREMAP", "op:MADVISE_DONTNEED",
                 "op:MADVISE")),
    "fork_base": ("fork + exit + wait of a process with an empty address space", ("op:FORK",)),
}

#: slab caches priced elsewhere: page tables by pt_page, frames by zero_fill /
#: copy / page_free, VMAs by vma, which covers their whole life including the
#: maple-tree nodes that index them (the host's fork_vmas slope contains those)
NOT_STRUCT = frozenset({"pgd", "p4d_table", "pud_table", "pmd_table", "pte_table",
                        "page", "vm_page", "vm_area_struct", "vm_map_entry", "maple_node"})

#: event keys whose cost another price already contains (reported as
#: "covered", not as "uncosted"): a fault kind is inside trap + its work; a
#: struct counter duplicates the "alloc:<struct>" key; fork write-protects the
#: PTEs it copies (inside fork_pte); frees of structs and
#: page tables are inside the lifetime prices; EXIT is inside fork_base (the
#: probes fork, exit and wait); reads and writes cost nothing beyond their faults
COVERED = frozenset({
    "fault_zero_page", "fault_zero_fill", "fault_cow_copy", "fault_device_return",
    "fault_wp_shared", "fork_ptes_wrprotect", "pt_pages_free", "objects_alloc", "objects_free", "anon_vma_alloc",
    "avc_alloc", "xa_node_alloc", "xa_node_free", "gm_mapping_alloc", "anon_alloc",
    "shadow_objects", "op:EXIT", "op:SPAWN", "op:READ", "op:WRITE", "op:NOP",
})

NO_CALIBRATION = "no calibration"


def calibration_dir() -> str:
    """results/calibration of the working tree (MMBENCH_RESULTS overrides results/)."""
    return os.path.join(os.environ.get("MMBENCH_RESULTS", "results"), "calibration")


def load_calibration(path: str | None = None) -> dict | None:
    """The calibration at `path`, else this host's results/calibration/<hostname>.json,
    else the newest results/calibration/*.json (the file records which machine it
    describes, and reports name it), else None."""
    if path is None:
        import socket
        own = os.path.join(calibration_dir(), f"{socket.gethostname()}.json")
        files = glob.glob(os.path.join(calibration_dir(), "*.json"))
        if not files:
            return None
        path = own if os.path.exists(own) else max(files, key=os.path.getmtime)
    from mmbench import errors
    try:
        with open(path) as f:
            cal = json.load(f)
    except (OSError, ValueError) as e:
        raise errors.InvalidArgument(f"cannot read calibration {path}: {e}") from None
    if not isinstance(cal, dict) or not isinstance(cal.get("costs"), dict):
        raise errors.InvalidArgument(f"{path} is not an mmbench calibration (no 'costs')")
    cal.setdefault("path", path)
    return cal


def cost_of(key: str) -> str | None:
    """The cost name that prices event `key` (None: not priced)."""
    for name, (_, keys) in COSTS.items():
        if key in keys:
            return name
    kind, _, struct = key.partition(":")
    if kind == "alloc" and struct and struct not in NOT_STRUCT:
        return "struct_alloc"
    return None


def covered(key: str) -> bool:
    """Whether another price already contains the cost of event `key`."""
    kind, _, struct = key.partition(":")
    return (key in COVERED or (kind == "free" and bool(struct))
            or (kind == "alloc" and struct in NOT_STRUCT))


def _price(costs: dict, name: str) -> float | None:
    c = costs.get(name)
    if isinstance(c, dict):
        c = c.get("ns")
    return None if c is None else float(c)


def estimate_ns(counters: dict, calibration: dict | None, measured_ns: float | None = None) -> dict:
    """Estimated host ns for a run with these event counts.

    Returns {"kind": "estimated", "total_ns", "events_ns", "bookkeeping_ns",
    "breakdown": {cost: ns}, "uncosted": [event keys with no price],
    "covered": [keys another price contains], "calibration": host name}.
    Without a calibration: total_ns None and "reason": "no calibration".
    """
    if calibration is None:
        return {"kind": "estimated", "total_ns": None, "reason": NO_CALIBRATION,
                "breakdown": {}, "uncosted": sorted(k for k, v in counters.items() if v)}
    costs = calibration["costs"]
    breakdown: dict[str, float] = {}
    uncosted, cov = [], []
    for key, count in counters.items():
        if not count:
            continue
        name = cost_of(key)
        price = _price(costs, name) if name else None
        if price is None:
            (cov if name is None and covered(key) else uncosted).append(key)
            continue
        breakdown[name] = breakdown.get(name, 0.0) + count * price
    events = sum(breakdown.values())
    book = float(measured_ns) if measured_ns is not None else None
    return {"kind": "estimated",
            "total_ns": events + (book or 0.0),
            "events_ns": events,
            "bookkeeping_ns": book,
            "breakdown": breakdown,
            "uncosted": sorted(uncosted),
            "covered": sorted(cov),
            "calibration": calibration.get("machine", {}).get("hostname", "?")}


def events_of(machine, ops=None) -> dict:
    """Every event key of `machine` now: counters, "alloc:"/"free:<struct>" and, from
    `ops` (an iterable of op names or a trace), "op:<OP>" counts."""
    ev = dict(machine.counters())
    for kind in ("alloc", "free"):
        fn = getattr(machine, f"slab_{kind}s", None)
        if fn is not None:
            ev.update({f"{kind}:{k}": v for k, v in fn().items()})
    if ops is not None:
        ev.update(op_counts(ops))
    return ev


def op_counts(ops) -> dict:
    """{"op:<OP>": n} from a trace (structured array) or an iterable of op names."""
    from mmbench.trace import Op
    if hasattr(ops, "dtype") and ops.dtype.names and "op" in ops.dtype.names:
        names = (Op(int(o)).name for o in ops["op"])
    else:
        names = (str(o).upper() for o in ops)
    return {f"op:{k}": v for k, v in Counter(names).items()}


def diff(after: dict, before: dict) -> dict:
    """after - before for every key of `after` (events are cumulative)."""
    return {k: v - before.get(k, 0) for k, v in after.items()}
