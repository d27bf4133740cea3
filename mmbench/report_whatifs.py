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


#: counters of contract operations: every design counts them
CONTRACT_COUNTERS = ("move_pages_moved", "move_pages_copied")


def _has_counter(backend: str, suffixes) -> bool:
    """Does the design count this event at all (else its cell is "—", not "none")?"""
    name = suffixes[0].lstrip(".")
    if name in CONTRACT_COUNTERS:
        return True
    try:
        from mmbench import registry
        return name in registry.load(backend).counter_names
    except Exception:           # a design not installed here: say nothing about it
        return False


def _columns(cols) -> list:
    """linux's variants first (default, then the others), then every other design's default."""
    def rank(c):
        backend, variant = c
        v = VARIANT_ORDER.index(variant) if variant in VARIANT_ORDER else len(VARIANT_ORDER)
        return (backend != "linux", backend, v, variant)
    return [c for c in sorted(cols, key=rank) if c[0] == "linux" or c[1] == "default"]


INTRO = ("Design variants from the mailing-list threads beside today's kernel (docs/what-ifs.md "
         "says where each comes from): linux with `anon_pgoff=\"zero\"` (Xu's pgoff = 0 "
         "experiment) and with `mremap_relocate_anon` (the direction of Stoakes' 2025 series), "
         "then the other designs as they are.  Counts and bytes are exact; `none`: the run "
         "counted no such event; `—`: the design has no such struct; `n/a`: the design has no "
         "such variant (the reason is under the table).")


def tables(doc: dict) -> list[tuple[str, list[str], list[list[str]], list[str]]]:
    """(title, header, rows, notes) per workload and parameter set; [] without vma_layout records."""
    out = []
    for (wl, params), cols in sorted(collect(doc).items()):
        columns = _columns(cols)
        if not columns:
            continue
        head = ["quantity"] + [f"{b}" if b != "linux" else f"linux: {v}" for b, v in columns]
        rows = []
        for label, suffixes, kind in ROWS:
            row = [label]
            seen = False
            for col in columns:
                cell = cols[col]
                if isinstance(cell, str):
                    row.append("n/a")
                    continue
                value = _find(cell, suffixes)
                if value is None and kind == "counter" and cell and _has_counter(col[0], suffixes):
                    value = 0           # counters are recorded only when they moved
                seen |= value not in (None, 0)
                row.append(_fmt(value, kind))
            if seen or kind == "exact":
                rows.append(row)
        notes = [f"{b} {v}: {cols[(b, v)]}" for b, v in columns if isinstance(cols[(b, v)], str)]
        out.append((wl + (f" ({params})" if params else ""), head, rows, notes))
    return out


def markdown(doc: dict) -> list[str]:
    """The section's lines for README.md; [] when the results hold no vma_layout records."""
    tabs = tables(doc)
    if not tabs:
        return []
    out = ["## What-ifs", "", INTRO, ""]
    for title, head, rows, notes in tabs:
        out += [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(r) + " |" for r in rows] + [""]
        out += [f"*n/a: {n}*" for n in notes] + ([""] if notes else [])
    return out


def html(doc: dict) -> str:
    """The section for index.html; "" when the results hold no vma_layout records."""
    from html import escape as e
    tabs = tables(doc)
    if not tabs:
        return ""
    parts = ['<h2 id="what-ifs">What-ifs</h2>', f"<p>{e(INTRO)}</p>"]
    for title, head, rows, notes in tabs:
        parts.append(f"<h3>{e(title)}</h3><table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in head)
                     + "</tr></thead><tbody>"
                     + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows)
                     + "</tbody></table>")
        parts += [f"<p><em>n/a: {e(n)}</em></p>" for n in notes]
    return "\n".join(parts)
