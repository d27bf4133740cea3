"""The report's "What-ifs" section: each design variant the threads argue about beside the default.

The vma_layout family runs linux in several variants (its ``variant`` parameter:
``default`` is today's kernel; docs/what-ifs.md says where each comes from).
The family's own tables show every statistic per design; this section turns
them around: one table per workload and parameter set, one row per quantity
(VMAs left, struct bytes, merges refused, pages moved or copied, time per
step), one column per variant of linux, then the other designs as they are.
"""
from __future__ import annotations

FAMILY = "vma_layout"
VARIANT_ORDER = ("default", "anon_pgoff_zero", "relocate_anon")

#: (row label, metric suffixes tried in order, kind of quantity)
ROWS = (
    ("VMAs (map entries) at the end", ("metadata.vm_area_struct.count", "metadata.vm_map_entry.count"), "exact"),
    ("vm_area_struct bytes", ("metadata.vm_area_struct.bytes", "metadata.vm_map_entry.bytes"), "exact"),
    ("maple_node bytes", ("metadata.maple_node.bytes",), "exact"),
    ("anon_vma bytes", ("metadata.anon_vma.bytes",), "exact"),
    ("anon_vma_chain bytes", ("metadata.anon_vma_chain.bytes",), "exact"),
    ("all metadata bytes", ("metadata.total_bytes",), "exact"),
    ("VMA merges", (".vma_merges",), "counter"),
    ("merges refused (vma_merge_fails)", (".vma_merge_fails",), "counter"),
    ("folios re-indexed by mremap (anon_relocate_folios)", (".anon_relocate_folios",), "counter"),
    ("pages moved without copying (move_pages_moved)", (".move_pages_moved",), "counter"),
    ("pages copied by move_pages (move_pages_copied)", (".move_pages_copied",), "counter"),
    ("estimated host ns per step", (".estimated_ns_per_",), "estimated"),
    ("model ns per step (simulator time)", (".ns_per_",), "measured"),
)


def _fmt(value, kind) -> str:
    if value is None:
        return "—"
    if kind == "counter" and value == 0:
        return "none"
    if isinstance(value, float) and not value.is_integer():
        text = f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"
    else:
        text = f"{int(value):,}"
    return {"estimated": "≈", "measured": "~"}.get(kind, "") + text


def _find(recs: dict, patterns) -> float | None:
    """The value of the first metric matching a pattern: a full metric name, ".x" (the
    statistic x of any segment) or ".x_" (a statistic starting with x_)."""
    for pat in patterns:
        if not pat.startswith("."):
            if pat in recs:
                return recs[pat]
            continue
        want = pat[1:]
        for metric, value in recs.items():
            stat = metric.rpartition(".")[2]
            if (stat.startswith(want) if want.endswith("_") else stat == want):
                return value
    return None


def collect(doc: dict) -> dict:
    """{(workload, params without variant): {(backend, variant): {metric: value} or reason}}."""
    out: dict = {}
    for r in doc.get("records", []):
        if r.get("family") != FAMILY:
            continue
        params = dict(r.get("params") or {})
        variant = params.pop("variant", "default")
        key = (r["workload"], " ".join(f"{k}={v}" for k, v in sorted(params.items())))
        col = (r["backend"], variant)
        cell = out.setdefault(key, {}).setdefault(col, {})
        if r["kind"] == "unsupported":
            if r["metric"] == "*":
                out[key][col] = str(r.get("note") or "unsupported")
            continue
        if isinstance(cell, dict):
            cell[r["metric"]] = r["value"]
    return out


def _columns(cols) -> list:
    """linux's variants first (default, then the others), then every other design's default."""
    def rank(c):
        backend, variant = c
        v = VARIANT_ORDER.index(variant) if variant in VARIANT_ORDER else len(VARIANT_ORDER)
        return (backend != "linux", backend, v, variant)
    return [c for c in sorted(cols, key=rank) if c[0] == "linux" or c[1] == "default"]


def markdown(doc: dict) -> list[str]:
    """The section's lines; [] when the results hold no vma_layout records."""
    data = collect(doc)
    if not data:
        return []
    out = ["## What-ifs", "",
           "Design variants from the mailing-list threads beside today's kernel (docs/what-ifs.md "
           "says where each comes from): linux with `anon_pgoff=\"zero\"` (Xu's pgoff = 0 "
           "experiment) and with `mremap_relocate_anon` (the direction of Stoakes' 2025 series), "
           "then the other designs as they are.  Counts and bytes are exact; `none`: the run "
           "counted no such event; `—`: the design has no such struct; `n/a`: the design has no "
           "such variant (the reason is under the table).", ""]
    for (wl, params), cols in sorted(data.items()):
        columns = _columns(cols)
        if not columns:
            continue
        out += [f"### {wl}" + (f" ({params})" if params else ""), ""]
        head = ["quantity"] + [f"{b}" if b != "linux" else f"linux: {v}" for b, v in columns]
        out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        notes = []
        for label, suffixes, kind in ROWS:
            row = [label]
            seen = False
            for col in columns:
                cell = cols[col]
                if isinstance(cell, str):
                    row.append("n/a")
                    continue
                value = _find(cell, suffixes)
                if value is None and kind == "counter" and cell:
                    value = 0           # counters are recorded only when they moved
                seen |= value not in (None, 0)
                row.append(_fmt(value, kind))
            if seen or kind == "exact":
                out.append("| " + " | ".join(row) + " |")
        for col in columns:
            if isinstance(cols[col], str):
                notes.append(f"{col[0]} {col[1]}: {cols[col]}")
        out.append("")
        out += [f"*n/a: {n}*" for n in notes] + ([""] if notes else [])
    return out
