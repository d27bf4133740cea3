"""Estimated host time: a design's event counts priced with a host calibration.

A model run is exact about *what* happened (faults by kind, pages zeroed and
copied, PTEs copied at fork, structs allocated …) and measures how long its
own bookkeeping took.  What it does not know is what that work costs on real
hardware under a real kernel.  ``mmbench calibrate`` measures the host kernel
and fits one price per event (see docs/calibration.md); this module applies
the prices:

    estimated_ns = sum over events of  count(event) x price(event)
                   (+ the link model's time for counted DMA, when given)

and nothing else: the simulator's own bookkeeping time is returned next to
the estimate (``bookkeeping_ns``), never inside it, so a slow model never
looks like a slow kernel.

Event keys accepted in the ``counters`` dict:

* a counter name from ``mmbench.COUNTER_NAMES`` ("faults", "pages_zeroed" …);
* ``"alloc:<struct>"`` / ``"free:<struct>"``: slab *objects* allocated /
  freed.  A struct is priced per object for its whole life (allocation,
  linking, unlinking, free): the host probes that price it create and destroy
  it.  Half the price is charged at allocation and half at free (LIFETIME), so
  a window that sees one end pays that end.  Freed frames (``free:page``) are
  priced on their own;
* ``"alloc_bytes:<struct>"``: *bytes* of variable-size allocations (amap slot
  arrays, xarray nodes, pv chunks).  A variable-size allocation is priced per
  allocation (``alloc:<struct>``, struct_alloc) plus its size-dependent part
  (kmalloc_byte): n allocations of B bytes pay n x curve(B / n), the host's
  kmalloc curve read at their mean size (per_byte; a calibration without the
  curve, or bytes whose allocations are not counted, use the line's price per
  byte).  A cache a design accounts in bytes
  (object size 1, e.g. uvm's ``amap_slots``) yields only bytes; how many
  allocations those bytes took is declared by the design (DESIGN_PRICES):
  no byte is ever priced as an object;
* ``"op:<OP>"``: contract operations executed (``"op:FORK"``, ``"op:MMAP"`` …);
* keys the estimator derives from the others (DERIVED): ``munmap_anon_vmas``,
  the populated VMAs munmap removes, and ``vma_modify_calls``, the system calls
  that split or merge VMAs, each at most one per call; ``cloned_avc_alloc`` /
  ``cloned_avc_free``, the anon_vma_chains linked into an anon_vma that already
  existed (anon_vma_clone: one per ancestor at fork), taken out of the
  ``alloc:`` / ``free:anon_vma_chain`` counts when the calibration prices them.

``slab_events(machine)`` / ``events_of(machine, ops)`` collect all of them.
Keys whose cost another price contains (COVERED: fault kinds, frees, EXIT …)
are listed under ``covered``; keys no price applies to under ``uncosted``.

Every price has a *basis*: ``measured`` (fitted from host probes; for a design
other than linux this means "the Linux kernel's code path for the same event,
on this hardware"), ``assumed`` (another kernel's struct priced as a Linux one,
e.g. a FreeBSD pv_entry insert as Linux's rmap add; DESIGN_PRICES says which
and why) or ``own`` (a price the design declares itself, with its source, in
a class attribute ``estimate_prices``).  Each estimate carries a range
(``low_ns`` … ``high_ns``) from its prices' uncertainty: the bootstrap
interval of a measured price (mmbench.calibrate), x/÷ ASSUMED_FACTOR around an
assumed one, the declared relative uncertainty of an own one.  Without a
calibration nothing is guessed: the result says "no calibration" and its
total is None.
"""
from __future__ import annotations

from collections import Counter

#: the populated VMAs munmap removes, and the system calls that split or merge VMAs
#: (event keys the estimator derives: DERIVED)
DERIVED_MUNMAP = "munmap_anon_vmas"
DERIVED_MODIFY = "vma_modify_calls"
#: the anon_vma_chains linked into an anon_vma that already existed, allocated and
#: freed (event keys the estimator derives: DERIVED; priced by avc_clone)
DERIVED_CLONE_ALLOC = "cloned_avc_alloc"
DERIVED_CLONE_FREE = "cloned_avc_free"
#: the system calls that can split or merge VMAs
LAYOUT_OPS = ("op:MPROTECT", "op:MADVISE", "op:MADVISE_DONTNEED", "op:MMAP", "op:MUNMAP",
              "op:MREMAP")

#: cost name -> (what it prices, the event keys it multiplies)
COSTS = {
    "trap": ("one CPU fault: exception entry and exit, VMA lookup, PTE install",
             ("faults",)),
    "zero_fill": ("allocate a frame and clear its 4 KiB (with its rmap and LRU insertion)",
                  ("pages_zeroed",)),
    "copy": ("allocate a frame and copy 4 KiB into it (COW)", ("pages_copied",)),
    "fault_around_page": ("one cached page a read fault maps beside the faulting one "
                          "(do_fault_around: the aligned 64 KiB window, clipped to the VMA and "
                          "the PTE table)", ("fault_around_pages",)),
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
    "vma": ("duplicate a VMA at fork and free it at exit (or create and free one); half at "
            "allocation, half at free",
            ("alloc:vm_area_struct", "alloc:vm_map_entry", "free:vm_area_struct",
             "free:vm_map_entry")),
    "struct_alloc": ("allocate and link one other MM struct (anon_vma, anon_vma_chain, "
                     "vm_object, xa_node …) and later unlink and free it, half at each end; "
                     "also the per-allocation part of a variable-size allocation",
                     ("alloc:*", "free:*")),
    "kmalloc_byte": ("the size-dependent part of a variable-size kernel allocation plus one "
                     "pass over its bytes: a curve by allocation size, read at a cache's mean "
                     "size (ns: the line's price per byte, for bytes whose allocations are "
                     "not counted)", ("alloc_bytes:*",)),
    "avc_clone": ("one anon_vma_chain that anon_vma_clone links into an anon_vma that "
                  "already exists (at fork one per anon_vma on the parent VMA's chain, an "
                  "ancestor's; at a split or a VMA copy one per anon_vma of the VMA), for its "
                  "whole life: allocate it, insert it into that anon_vma's interval tree, "
                  "remove it and free it (unlink_anon_vmas); half at allocation, half at free",
                  (DERIVED_CLONE_ALLOC, DERIVED_CLONE_FREE)),
    "vma_modify": ("a system call that splits or merges VMAs (mprotect, madvise, mmap, "
                   "munmap, mremap of part of a VMA), once per call: vma_modify / vma_merge's "
                   "tree update (vma_prepare / vma_complete, a maple-tree store with its node "
                   "preallocation), beyond the halves of vma the VMAs it makes or frees pay",
                   (DERIVED_MODIFY,)),
    "munmap_vma": ("munmap's teardown of a populated VMA beyond what fork + exit's lifetime "
                   "prices charge for it: unlink_anon_vmas of that one VMA and the release of "
                   "its mmu_gather's pages, on structs made long before",
                   (DERIVED_MUNMAP,)),
    "syscall": ("enter and leave the kernel for an address-space system call",
                ("op:MMAP", "op:MPROTECT", "op:MADVISE_DONTNEED", "op:MADVISE", "op:MOVE_PAGES")),
    "munmap_call": ("one munmap call beyond its pages and structs: the VMA tree update, the "
                    "unmap and page-table walk, the TLB gather", ("op:MUNMAP",)),
    "mremap_call": ("one mremap call beyond its PTE moves, tables and VMA: checks, the "
                    "unmap of the old range", ("op:MREMAP",)),
    "pte_move": ("move one PTE to its new address (mremap's move_ptes)",
                 ("mremap_pages_moved",)),
    "fork_base": ("fork + exit + wait of a process with an empty address space", ("op:FORK",)),
    # huge pages (measured with MADV_HUGEPAGE on 2 MiB-aligned ranges)
    "thp_fault_alloc": ("a huge zero-fill fault beyond the trap and its deposited PTE table: "
                        "allocate a PMD-sized folio, clear 2 MiB, map one PMD (its 512 pages "
                        "are not priced again as pages_zeroed)", ("thp_fault_alloc",)),
    "thp_zero_page_map": ("map the huge zero folio with one PMD, beyond the trap and its "
                          "deposited PTE table", ("thp_zero_page_map",)),
    "thp_copy_pmd": ("copy one huge PMD at fork beyond the entry copy (fork_pte) and the zap "
                     "at the child's exit (pte_zap): copy_huge_pmd allocates and deposits a PTE "
                     "table for the child (not priced again as pt_page) and visits the folio",
                     ("thp_copy_pmd",)),
    "thp_split_pmd": ("split a PMD mapping into 512 PTEs (__split_huge_pmd), beyond its TLB "
                      "flush: a folio another process maps too (after fork)", ("thp_split_pmd",)),
    "thp_split_exclusive": ("the extra of splitting the PMD of an AnonExclusive folio (never "
                            "shared): its exclusivity passes to each of the 512 pages",
                            ("thp_split_pmd_exclusive",)),
    "thp_deferred_split_page": ("queue a partly unmapped huge folio for a deferred split",
                                ("thp_deferred_split_page",)),
    "thp_collapse_alloc": ("collapse one 2 MiB range into a huge folio (MADV_COLLAPSE or "
                           "khugepaged): allocate, copy 512 pages, free them, map one PMD",
                           ("thp_collapse_alloc",)),
}

#: event keys the estimator derives from others (never a design's counter), each at
#: most one per system call, so exact when every call does it once (as the probes
#: do) and an undercount otherwise:
#: * the populated VMAs munmap removes: min(op:MUNMAP, free:anon_vma_chain); a munmap
#:   of many populated VMAs in one call is undercounted.  A design counter of the
#:   VMAs with an anon_vma that munmap removes would make it exact;
#: * the system calls that split or merge VMAs: min(layout calls, vma_splits +
#:   vma_merges).  Per call, not per split or merge: mprotect of a VMA's middle page
#:   splits it twice (two VMAs made) and the call back merges it once on the host
#:   (one vma_merge frees both), while the designs count one merge per VMA removed;
#:   the VMAs made and freed pay their halves of vma.
DERIVED = {DERIVED_MUNMAP: "min(op:MUNMAP, free:anon_vma_chain): the populated VMAs munmap "
                           "removes, at most one per call",
           DERIVED_MODIFY: "min(mprotect + madvise + mmap + munmap + mremap calls, "
                           "vma_splits + vma_merges): the system calls that split or merge "
                           "VMAs, at most one per call",
           DERIVED_CLONE_ALLOC: "alloc:anon_vma_chain - alloc:anon_vma (at least 0): the "
                                "anon_vma_chains linked into an anon_vma that already existed; "
                                "taken out of alloc:anon_vma_chain when avc_clone is priced",
           DERIVED_CLONE_FREE: "free:anon_vma_chain - free:anon_vma (at least 0), the same "
                               "at free; taken out of free:anon_vma_chain"}

#: the struct whose allocations and frees split into cloned and own chains
AVC = "anon_vma_chain"


def _derive(counters: dict) -> dict:
    """{derived key: count} (DERIVED) of a window's events."""
    out = {}
    n = min(counters.get("op:MUNMAP", 0), counters.get("free:anon_vma_chain", 0))
    if n:
        out[DERIVED_MUNMAP] = n
    n = min(sum(counters.get(k, 0) for k in LAYOUT_OPS),
            counters.get("vma_splits", 0) + counters.get("vma_merges", 0))
    if n:
        out[DERIVED_MODIFY] = n
    return out


def _split_clones(counters: dict, costs: dict) -> tuple[dict, dict, dict]:
    """(counters, {derived clone key: count}, {struct key: count taken out}): the
    anon_vma_chains linked into an anon_vma that already existed, apart from the
    others, when the calibration prices them (avc_clone).

    Every new anon_vma comes with exactly one chain that links it to its own VMA
    (__anon_vma_prepare at a first fault, anon_vma_fork after the clone); every
    other chain a window allocates went into an anon_vma that existed before:
    anon_vma_clone at fork (one per anon_vma on the parent VMA's chain, so a fork
    d deep in a chain clones d + 1), at a split, at mremap's copy_vma, or a first
    fault that found a mergeable neighbour's anon_vma.  So the cloned ones are
    alloc:anon_vma_chain - alloc:anon_vma, and the same at free.  The count is
    exact when a window's anon_vmas are freed with their own chains; an anon_vma
    kept alive by its descendants (get_anon_vma of the root) and freed in a later
    window makes this window count its own chain as cloned, and that later window
    one clone too few.  A design counter of the chains anon_vma_clone links would
    make it exact.  Without an avc_clone price (older calibrations) every chain
    stays a struct_alloc."""
    if _price(costs, "avc_clone") is None:
        return counters, {}, {}
    out, derived, taken = dict(counters), {}, {}
    for end, key in (("alloc", DERIVED_CLONE_ALLOC), ("free", DERIVED_CLONE_FREE)):
        chains = counters.get(f"{end}:{AVC}", 0)
        n = max(0, chains - counters.get(f"{end}:anon_vma", 0))
        if n > 0:
            out[f"{end}:{AVC}"] = chains - n
            out[key] = n
            derived[key] = n
            taken[f"{end}:{AVC}"] = n
    return out, derived, taken


#: counts a larger event already prices: {key: (the larger event, units of key per
#: event)}.  A huge zero-fill fault zeroes 512 pages inside its own price, so
#: pages_zeroed is priced net of 512 per thp_fault_alloc; copy_huge_pmd's
#: deposited PTE table is inside thp_copy_pmd (the netted count is
#: reported under "netted"); if the larger event has no price it is listed as
#: uncosted, never priced through its parts
NET = {"pages_zeroed": ("thp_fault_alloc", 512), "pt_pages_alloc": ("thp_copy_pmd", 1)}

#: prices that are not host measurements at all: the accelerator link model
LINK_COST = "dma_link"

#: lifetime prices (fork + exit probes create and destroy the struct): half is
#: charged when the struct is allocated, half when it is freed, so a window that
#: sees only one end (a munmap of VMAs made earlier, a fault that creates an
#: anon_vma kept for later) pays only its end.  The even split is an assumption
#: (the probes see both ends together); over a whole life the sum is the price.
LIFETIME = frozenset({"vma", "struct_alloc", "avc_clone"})
LIFETIME_SHARE = 0.5

#: slab caches priced elsewhere: page tables by pt_page, frames by zero_fill /
#: copy / page_free, VMAs by vma, which covers their whole life including the
#: maple-tree nodes that index them (the host's fork_vmas slope contains those)
NOT_STRUCT = frozenset({"pgd", "p4d_table", "pud_table", "pmd_table", "pte_table",
                        "page", "vm_page", "page (device)", "vm_area_struct", "vm_map_entry",
                        "maple_node"})

#: variable-size allocations accounted per object of a fixed size: priced per
#: allocation (struct_alloc) plus their bytes (kmalloc_byte)
SIZED = frozenset({"xa_node", "dmirror xa_node", "xa_node (logical page table)", "pv_chunk"})

#: event keys whose cost another price already contains (reported as
#: "covered", not as "uncosted"): a fault kind is inside trap + its work; a
#: struct counter duplicates the "alloc:<struct>" key; fork write-protects the
#: PTEs it copies (inside fork_pte); a PTE write is inside the trap, fork_pte,
#: pte_zap or tlb_flush of the operation that wrote it; a VMA split or merge
#: is its alloc:/free: of a VMA; a pv entry is the rmap add that zero_fill,
#: copy and fork_pte contain (an assumption for the BSD designs, see
#: DESIGN_PRICES); frees of structs and page tables are inside the lifetime
#: prices; EXIT is inside fork_base (the probes fork, exit and wait); reads
#: and writes cost nothing beyond their faults
COVERED = frozenset({
    "fault_zero_page", "fault_zero_fill", "fault_cow_copy", "fault_device_return",
    "fault_wp_shared", "fork_ptes_wrprotect", "pt_pages_free", "objects_alloc", "objects_free",
    "anon_vma_alloc", "avc_alloc", "xa_node_alloc", "xa_node_free", "gm_mapping_alloc",
    "anon_alloc", "shadow_objects", "pte_writes", "vma_splits", "vma_merges", "pv_entries",
    "dma_bytes", "dma_transfers", "pages_to_device", "pages_to_host",
    "op:EXIT", "op:SPAWN", "op:READ", "op:WRITE", "op:NOP",
})

#: How far an assumed price may be off, both ways (low = price / F, high = price x F)
ASSUMED_FACTOR = 2.0
#: the relative uncertainty of a design's own price when it declares none
OWN_UNCERTAINTY = 0.5

#: What the built-in designs other than linux borrow from Linux's prices, and
#: how variable-size caches accounted in bytes become allocations.  A design
#: (a plugin too) may declare the same in a class attribute ``estimate_prices``
#: {event key: {"ns": price, "source": "where the number comes from",
#: "uncertainty": relative}} (its own prices) and ``estimate_allocations``
#: {bytes-accounted cache: (cache counted per allocation, allocations per
#: object of it, source)}.
DESIGN_PRICES = {
    "freebsd": {
        "assumed": {
            "alloc:vm_map_entry": "a vm_map_entry copied at fork priced as Linux's vm_area_dup "
                                  "+ maple-tree insert (the vma price)",
            "alloc:vm_object": "a vm_object priced as a Linux anon_vma lifetime (struct_alloc)",
            "alloc:pctrie_node": "a pctrie node priced as a Linux slab struct lifetime (struct_alloc)",
            "alloc:pv_chunk": "a pv_chunk page priced as a kmalloc of 4 KiB (struct_alloc + bytes)",
            "pv_entries": "a pv_entry insert priced as Linux's rmap add, which zero_fill, copy "
                          "and fork_pte contain",
            "mremap_pages_moved": "a page moved by the model's mremap (FreeBSD has no mremap) "
                                  "priced as Linux's move_ptes (pte_move)",
        },
    },
    "uvm": {
        "assumed": {
            "alloc:vm_map_entry": "a vm_map_entry priced as Linux's vm_area_dup + maple-tree "
                                  "insert (the vma price)",
            "alloc:vm_amap": "a vm_amap priced as a Linux anon_vma lifetime (struct_alloc)",
            "alloc:vm_anon": "a vm_anon priced as a Linux slab struct lifetime (struct_alloc)",
            "alloc:amap_slots": "an amap slot-array allocation priced as a Linux slab struct "
                                "lifetime (struct_alloc)",
            "alloc_bytes:amap_slots": "amap slot-array bytes priced with the host kmalloc probe",
            "alloc:pv_chunk": "a pv_chunk page priced as a kmalloc of 4 KiB (struct_alloc + bytes)",
            "pv_entries": "a pv_entry insert priced as Linux's rmap add, which zero_fill, copy "
                          "and fork_pte contain",
        },
        "allocations": {
            "amap_slots": ("vm_amap", 3, "NetBSD sys/uvm/uvm_amap.c amap_alloc1(): am_slots, "
                                         "am_bckptr and am_anon are three kmem_alloc()s per amap"),
        },
    },
    "gmem": {
        "assumed": {
            "alloc:vm_object": "the RFC's per-process vm_object priced as a Linux slab struct "
                               "lifetime (struct_alloc)",
            "alloc:gm_mapping": "a gm_mapping priced as a Linux slab struct lifetime (struct_alloc)",
            "alloc:xarray (vm_object)": "the logical page table's xarray head priced as a slab "
                                        "struct lifetime (struct_alloc)",
        },
    },
    "shmem": {
        "assumed": {
            "alloc:reflink_group": "the reflink-style clone group priced as a slab struct "
                                   "lifetime (struct_alloc): no kernel has it yet",
        },
    },
}

NO_CALIBRATION = "no calibration"


def calibration_dir() -> str:
    """The per-user directory `mmbench calibrate` writes to (mmbench.calibration_search)."""
    from mmbench import calibration_search
    return str(calibration_search.user_dir())


def load_calibration(path: str | None = None) -> dict | None:
    """The calibration at `path`, else the one mmbench.calibration_search finds for this
    host (explicit file, $MMBENCH_CALIBRATION, the per-user directory, the project's
    results/calibration; only a file made on this host's hardware), else None."""
    from mmbench import calibration_search
    return calibration_search.find(path).calibration


def cost_of(key: str) -> str | None:
    """The cost name that prices event `key` (None: not priced)."""
    for name, (_, keys) in COSTS.items():
        if key in keys:
            return name
    kind, _, struct = key.partition(":")
    if kind in ("alloc", "free") and struct and struct not in NOT_STRUCT:
        return "struct_alloc"
    if kind == "alloc_bytes" and struct:
        return "kmalloc_byte"
    return None


def share(key: str) -> float:
    """The part of its price an event key pays (LIFETIME prices: half at each end)."""
    return LIFETIME_SHARE if cost_of(key) in LIFETIME else 1.0


def covered(key: str) -> bool:
    """Whether another price already contains the cost of event `key`."""
    kind, _, struct = key.partition(":")
    return (key in COVERED or (kind == "free_bytes" and bool(struct))
            or (kind in ("alloc", "free") and struct in NOT_STRUCT))


def _price(costs: dict, name: str) -> tuple[float, float, float] | None:
    """(ns, low, high) of a calibrated price; a price without an interval has
    low = high = ns (calibrations older than the interval)."""
    c = costs.get(name)
    if c is None:
        return None
    if isinstance(c, dict):
        ns = c.get("ns")
        if ns is None:
            return None
        return float(ns), float(c.get("low", ns)), float(c.get("high", ns))
    return float(c), float(c), float(c)


def _design_name(design) -> str | None:
    if design is None or isinstance(design, str):
        return design
    return getattr(design, "name", None)


def _design_class(design):
    if design is None:
        return None
    if isinstance(design, str):
        try:
            from mmbench import registry
            return registry.load(design)
        except Exception:
            return None
    return design if isinstance(design, type) else type(design)


def declarations(design) -> dict:
    """{"assumed": {key: why}, "own": {key: {ns, source, uncertainty}},
    "allocations": {cache: (per cache, factor, source)}} of `design` (a name,
    class or machine): DESIGN_PRICES merged with the class's own attributes."""
    name = _design_name(design)
    base = DESIGN_PRICES.get(name or "", {})
    cls = _design_class(design)
    own = dict(getattr(cls, "estimate_prices", None) or {})
    for key, spec in own.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("ns"), (int, float)) \
                or not isinstance(spec.get("source"), str) or not spec["source"]:
            from mmbench import errors
            raise errors.InvalidArgument(
                f"{name}: estimate_prices[{key!r}] must be {{'ns': number, 'source': text}}")
    alloc = dict(base.get("allocations", {}))
    alloc.update(getattr(cls, "estimate_allocations", None) or {})
    return {"assumed": dict(base.get("assumed", {})), "own": own, "allocations": alloc}


def basis(key: str, design=None, decl: dict | None = None) -> tuple[str, str]:
    """("measured" | "assumed" | "own", why) of the price `design` pays for `key`."""
    decl = declarations(design) if decl is None else decl
    if key in decl["own"]:
        return "own", decl["own"][key]["source"]
    kind, _, struct = key.partition(":")
    same = f"alloc:{struct}" if kind == "free" else key      # a free is priced as its alloc is
    if same in decl["assumed"]:
        return "assumed", decl["assumed"][same]
    name = _design_name(design)
    if name not in (None, "linux", "reference") and kind in ("alloc", "free", "alloc_bytes"):
        return "assumed", f"a {struct} priced as a Linux slab struct lifetime ({cost_of(key)})"
    return "measured", COSTS[cost_of(key)][0] if cost_of(key) else ""


def link_ns(counters: dict, link: dict | None) -> float | None:
    """The accelerator link model's time for the counted DMA (None: no DMA or no link)."""
    nbytes = counters.get("dma_bytes", 0)
    if not nbytes or not link or float(link.get("gbps", 0)) <= 0:
        return None
    return (nbytes / float(link["gbps"])
            + counters.get("dma_transfers", 0) * float(link.get("latency_us", 0)) * 1000.0)


def estimate_ns(counters: dict, calibration: dict | None, measured_ns: float | None = None,
                design=None, link: dict | None = None) -> dict:
    """Estimated host ns for a run with these event counts: counts x prices only.

    Returns {"kind": "estimated", "total_ns", "low_ns", "high_ns", "events_ns",
    "link_ns", "bookkeeping_ns" (the model's own time, `measured_ns`, reported
    beside the estimate, never added), "breakdown": {cost: ns}, "basis": {event
    key: "measured" | "assumed: why" | "own: source"}, "assumed": [keys priced
    by assumption], "uncosted": [event keys with no price], "covered": [keys
    another price contains], "calibration": host name}.  `link` (a machine's
    link model) adds the DMA's time as cost "dma_link".  Without a calibration:
    total_ns None and "reason": "no calibration".
    """
    book = float(measured_ns) if measured_ns is not None else None
    if calibration is None:
        return {"kind": "estimated", "total_ns": None, "reason": NO_CALIBRATION,
                "bookkeeping_ns": book, "breakdown": {},
                "uncosted": sorted(k for k, v in counters.items() if v)}
    costs = calibration["costs"]
    decl = declarations(design)
    counters, netted = _net(counters)
    derived = _derive(counters)
    counters, clones, taken = _split_clones(counters, costs)
    counters = {**counters, **derived}
    derived.update(clones)
    netted.update(taken)
    breakdown: dict[str, float] = {}
    low = high = 0.0
    how: dict[str, str] = {}
    uncosted, cov, assumed = [], [], []
    for key, count in counters.items():
        if not count:
            continue
        if key in decl["own"]:
            spec = decl["own"][key]
            p = float(spec["ns"])
            u = float(spec.get("uncertainty", OWN_UNCERTAINTY))
            price, lo, hi, name = p, p * max(0.0, 1 - u), p * (1 + u), f"own:{key}"
        else:
            name = cost_of(key)
            pr = _price(costs, name) if name else None
            if pr is None:
                (cov if name is None and covered(key) else uncosted).append(key)
                continue
            w = share(key)
            price, lo, hi = pr[0] * w, pr[1] * w, pr[2] * w
            if name == "kmalloc_byte":          # by allocation size, where the curve is known
                per = per_byte(costs, count, counters.get("alloc:" + key.partition(":")[2], 0))
                if per is not None:
                    price, lo, hi = per
        kind, why = basis(key, design, decl)
        if kind == "assumed":
            lo, hi = lo / ASSUMED_FACTOR, hi * ASSUMED_FACTOR
            assumed.append(key)
        how[key] = kind if kind == "measured" else f"{kind}: {why}"
        breakdown[name] = breakdown.get(name, 0.0) + count * price
        low += count * lo
        high += count * hi
    events = sum(breakdown.values())
    dma = link_ns(counters, link)
    if dma is not None:
        breakdown[LINK_COST] = dma
        how["dma_bytes"] = "link model: bytes / bandwidth + transfers x latency (not measured)"
        low, high = low + dma, high + dma
    total = events + (dma or 0.0)
    return {"kind": "estimated",
            "total_ns": total, "low_ns": min(low, total), "high_ns": max(high, total),
            "events_ns": events, "link_ns": dma,
            "bookkeeping_ns": book,
            "breakdown": breakdown, "basis": how, "assumed": sorted(assumed),
            "uncosted": sorted(uncosted),
            "covered": sorted(cov), "netted": netted, "derived": derived,
            "calibration": calibration.get("machine", {}).get("hostname", "?")}


def curve_at(curve: dict, size: float, which: str = "ns") -> float:
    """The size-dependent part of one allocation of `size` bytes, read off a
    calibration's piecewise-linear kmalloc curve ({"bytes": [...], "ns": [...],
    "low": [...], "high": [...]}): linear between the measured sizes, from 0 ns at 0
    bytes to the first, along the last segment beyond the last."""
    xs = [float(x) for x in curve["bytes"]]
    ys = [float(y) for y in curve.get(which) or curve["ns"]]
    if size <= xs[0]:
        return ys[0] * size / xs[0] if xs[0] > 0 else ys[0]
    for i in range(1, len(xs)):
        if size <= xs[i]:
            f = (size - xs[i - 1]) / (xs[i] - xs[i - 1])
            return ys[i - 1] + f * (ys[i] - ys[i - 1])
    if len(xs) < 2:
        return ys[-1]
    return ys[-1] + (size - xs[-1]) * (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])


def per_byte(costs: dict, nbytes: float, nallocs: float) -> tuple[float, float, float] | None:
    """(ns, low, high) per byte of `nbytes` allocated in `nallocs` allocations: the
    kmalloc curve at their mean size, spread over its bytes (so `nbytes` x price is
    `nallocs` x curve(mean size)).  None without a curve or an allocation count: the
    caller keeps the line's kmalloc_byte.  Each allocation is priced per object
    elsewhere (alloc:<struct>, struct_alloc); a byte is never priced as an object."""
    c = costs.get("kmalloc_byte")
    curve = c.get("curve") if isinstance(c, dict) else None
    if not curve or not nallocs or nbytes <= 0:
        return None
    mean = nbytes / nallocs
    return tuple(max(curve_at(curve, mean, w), 0.0) / mean for w in ("ns", "low", "high"))


def _net(counters: dict) -> tuple[dict, dict]:
    """(counters with NET applied, {key: count removed}): the part of a count a
    larger event's price already contains is taken out of it."""
    out, netted = dict(counters), {}
    for key, (big, per) in NET.items():
        n = counters.get(big, 0)
        if n and counters.get(key):
            take = min(counters[key], n * per)
            out[key] = counters[key] - take
            netted[key] = take
    return out, netted


def slab_events(machine) -> dict:
    """{"alloc:<struct>": objects, "free:<struct>": objects, "alloc_bytes:<struct>":
    bytes …} of `machine` now (cumulative).

    A cache accounted per object gives "alloc:"/"free:" counts; a SIZED one also
    its bytes.  A cache accounted in bytes (object size 1) gives only
    "alloc_bytes:"/"free_bytes:", plus "alloc:" allocations derived from the
    design's declaration (``estimate_allocations`` / DESIGN_PRICES) when it has
    one: a byte is never counted as an object.
    """
    allocs = getattr(machine, "slab_allocs", None)
    if allocs is None:
        return {}
    allocs, frees = allocs(), machine.slab_frees()
    sizes = machine.struct_sizes()
    per = declarations(machine)["allocations"]
    ev = {}
    for name, n in allocs.items():
        size = sizes.get(name, 0)
        if size == 1:
            ev[f"alloc_bytes:{name}"] = int(n)
            ev[f"free_bytes:{name}"] = int(frees.get(name, 0))
            if name in per:
                other, factor, _src = per[name]
                ev[f"alloc:{name}"] = int(allocs.get(other, 0)) * int(factor)
                ev[f"free:{name}"] = int(frees.get(other, 0)) * int(factor)
            else:           # listed as not priced: how many allocations is unknown
                ev[f"allocations_unknown:{name}"] = int(n)
            continue
        ev[f"alloc:{name}"] = int(n)
        ev[f"free:{name}"] = int(frees.get(name, 0))
        if name in SIZED:
            ev[f"alloc_bytes:{name}"] = int(n) * int(size)
    return ev


def events_of(machine, ops=None) -> dict:
    """Every event key of `machine` now: counters, slab events (slab_events) and,
    from `ops` (an iterable of op names or a trace), "op:<OP>" counts."""
    ev = dict(machine.counters())
    ev.update(slab_events(machine))
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


#: the struct a design copies per VMA at fork (the first one its fork allocated counts)
VMA_STRUCTS = ("vm_area_struct", "vm_map_entry")


def unmerged_fork_events(fork_events: dict, host_fork: list) -> dict:
    """The fork work of VMAs the host duplicated and the replay did not have: events to
    add to one fork's.  `host_fork` is the converter's (VMAs, file-backed VMAs, VMAs
    with an anon_vma) of the forking process, its picture of the host's address space.

    Files are not in the contract: the pieces of a shared library (text, read-only
    data, RELRO, data) are separate VMAs on the host — another file offset, another
    VM_EXEC — but adjacent read-only private memory to the replay, which merges them
    (pgbench's postmaster: 255 VMAs on the host, 138 in the linux replay).  Each such
    VMA is a vm_area_dup (and a file's i_mmap insertion) on the host at every fork;
    one with an anon_vma is an anon_vma_fork too (an anon_vma and two chain links,
    as the calibration's fork_touched_vmas probe counts them).  Priced with the
    design's own VMA struct (`vma`) and `struct_alloc`; nothing is added where the
    design copied as many VMAs as the host."""
    if not host_fork:
        return {}
    n_host, _n_file, n_anon = (list(host_fork) + [0, 0, 0])[:3]
    struct = next((s for s in VMA_STRUCTS if fork_events.get(f"alloc:{s}")), None)
    out = {}
    if struct is not None:
        miss = n_host - fork_events[f"alloc:{struct}"]
        if miss > 0:
            out[f"alloc:{struct}"] = miss
    if fork_events.get("alloc:anon_vma"):
        miss = n_anon - fork_events["alloc:anon_vma"]
        if miss > 0:
            out["alloc:anon_vma"] = miss
            out["alloc:anon_vma_chain"] = 2 * miss
    return out
