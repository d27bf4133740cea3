"""VMA layout: how many mappings a design ends with, and what they cost, when memory moves.

The threads this family answers argue about VMA merging: whether anonymous
``vm_pgoff`` must follow the address (Xu's ``pgoff = 0`` experiment and
Hildenbrand's reply that merges would be lost), and whether mremap should
relocate anonymous memory so a moved VMA merges with its new neighbours
(Stoakes' 2025 series).  Three layouts real programs make:

* ``realloc_growth``: buffers grown realloc-style (mremap to a free place,
  then an mmap extending them) -- glibc's realloc of a large chunk;
* ``arena_holes``: allocator arenas that give holes back (munmap) and take
  them again (mmap), Hildenbrand's ``[anon0][hole][anon1]``;
* ``gc_compact``: a compacting collector moving live objects to a fresh
  to-space with ``move_pages`` (UFFDIO_MOVE, as ART's collector does), then
  dropping the from-space.

Each runs on every design and, on linux, on the variants (``variant``):
``default`` (today's kernel), ``anon_pgoff_zero`` and ``relocate_anon``
(docs/what-ifs.md).  A design without a variant's option records it as
unsupported.  Recorded: the VMA (map entry) count and the bytes of every
struct at the end (vm_area_struct, maple_node, anon_vma, anon_vma_chain …),
the timed segment's counters (vma_merges, vma_merge_fails, move_pages_moved
or move_pages_copied, anon_relocate_folios …) and the model's time per op.
"""
from __future__ import annotations

import numpy as np

from mmbench.trace import Op, page_ops

from ._common import BASE, Machine, Script, ram_for, rng, tokens, workload
from ._asv import asv_classes

#: the design options of each variant (docs/what-ifs.md); "default" is today's kernel
VARIANTS = {
    "default": (),
    "anon_pgoff_zero": (("anon_pgoff", "zero"),),
    "relocate_anon": (("mremap_relocate_anon", True),),
}
_ALL_VARIANTS = list(VARIANTS)


def _machine(pages, variant):
    return Machine(ram_pages=ram_for(pages, 2).ram_pages, options=VARIANTS[variant])


def _end(s):
    s.segment("end", snapshot=True)
    return s.build()


@workload("vma_layout", grids={
    "tiny": {"buffers": [4], "steps": [3], "variant": _ALL_VARIANTS},
    "quick": {"buffers": [64], "steps": [8], "variant": _ALL_VARIANTS},
    "full": {"buffers": [64, 512], "steps": [8, 16], "variant": _ALL_VARIANTS},
    "asv": {"buffers": [16], "steps": [4], "variant": ["default"]}})
def realloc_growth(buffers, steps, variant, grow=4, seed=11, thp="never"):
    """Buffers grown realloc-style: move to a free place (mremap), extend there (mmap).

    `buffers` buffers of `grow` pages each, every one written; then `steps`
    rounds in which each buffer (in random order) moves past the end of
    everything mapped so far and gets `grow` more pages mapped right after it,
    whose first page is written.  Stands for glibc realloc of large chunks
    (mremap with MREMAP_MAYMOVE, then growing in place when it can) in a
    program building up many arrays or strings.  Today's kernel keeps a moved
    VMA's pgoff, so the extension usually cannot merge with it.
    """
    pages = buffers * grow * (steps + 1)
    s = Script(_machine(pages, variant), thp)
    t = s.setup()
    p = t.spawn()
    where, size = {}, {}
    top = BASE
    for b in range(buffers):
        t.mmap(p, top, grow)
        t.write_range(p, top, grow)
        where[b], size[b] = top, grow
        top += grow + 1                      # one page apart: each buffer its own VMA
    g = rng(seed, "realloc_growth", buffers, steps, grow)
    t = s.segment("grow", "per_op", ops=[Op.MREMAP, Op.MMAP, Op.WRITE],
                  scale={"step": buffers * steps})
    for _ in range(steps):
        for b in g.permutation(buffers):
            b = int(b)
            t.mremap(p, where[b], size[b], top)
            t.mmap(p, top + size[b], grow)
            t.write(p, top + size[b], int(tokens(np.array([top + size[b]]), p)[0]))
            where[b] = top
            size[b] += grow
            top += size[b]
    return _end(s)


@workload("vma_layout", grids={
    "tiny": {"arenas": [2], "cycles": [4], "variant": _ALL_VARIANTS},
    "quick": {"arenas": [16], "cycles": [64], "variant": _ALL_VARIANTS},
    "full": {"arenas": [16, 128], "cycles": [64, 256], "variant": _ALL_VARIANTS},
    "asv": {"arenas": [4], "cycles": [16], "variant": ["default"]}})
def arena_holes(arenas, cycles, variant, arena_pages=256, hole=16, seed=12, thp="never"):
    """Allocator arenas giving holes back to the kernel and taking them again.

    `arenas` arenas of `arena_pages` pages, half their pages written; then
    `cycles` times an arena frees a random `hole`-page run inside it (munmap)
    and later maps the same run again (mmap) and writes into it.  Stands for
    malloc arenas trimming free chunks (madvise or munmap) and jemalloc-style
    extent reuse; it is Hildenbrand's ``[anon0][hole][anon1]`` example many
    times over.  The hole's new VMA merges back only when its pgoff continues
    its neighbours'.
    """
    pages = arenas * arena_pages
    s = Script(_machine(pages, variant), thp)
    t = s.setup()
    p = t.spawn()
    starts = BASE + np.arange(arenas, dtype=np.int64) * (arena_pages + 1)
    for a in starts:
        t.mmap(p, int(a), arena_pages)
        t.write_range(p, int(a), arena_pages, step=2)
    g = rng(seed, "arena_holes", arenas, cycles, arena_pages, hole)
    t = s.segment("churn", "per_op", ops=[Op.MUNMAP, Op.MMAP, Op.WRITE], scale={"cycle": cycles})
    holes = []
    for c in range(cycles):
        a = int(starts[int(g.integers(arenas))])
        off = int(g.integers(1, arena_pages // hole - 1)) * hole
        if (a + off) in holes:
            continue
        t.munmap(p, a + off, hole)
        holes.append(a + off)
        if len(holes) > 2 or c == cycles - 1:     # take back the oldest holes
            while holes:
                h = holes.pop(0)
                t.mmap(p, h, hole)
                t.write(p, h, int(tokens(np.array([h]), p)[0]))
    return _end(s)


@workload("vma_layout", grids={
    "tiny": {"objects": [32], "rounds": [2], "variant": ["default"]},
    "quick": {"objects": [4096], "rounds": [4], "variant": ["default", "relocate_anon"]},
    "full": {"objects": [4096, 65536], "rounds": [4, 8], "variant": ["default", "relocate_anon"]},
    "asv": {"objects": [1024], "rounds": [2], "variant": ["default"]}})
def gc_compact(objects, rounds, variant, live=0.5, seed=13, thp="never"):
    """A compacting collector: live objects move to a fresh to-space with move_pages.

    A heap of `objects` one-page objects, all written; each of `rounds`
    collections maps a fresh to-space, moves the live fraction `live` (chosen at
    random, contiguous runs moved by one call each) to the front of it with
    move_pages, and unmaps the from-space.  Stands for a moving garbage
    collector using UFFDIO_MOVE (Android's ART concurrent compactor) or, where a
    design has no page move, copying each object.  Counters say which:
    move_pages_moved (no copy) or move_pages_copied.
    """
    s = Script(_machine(objects * 2, variant), thp)
    t = s.setup()
    p = t.spawn()
    span = objects + 1
    spaces = (BASE, BASE + 4 * span)            # two address ranges, used in turn
    t.mmap(p, spaces[0], objects)
    t.write_range(p, spaces[0], objects)
    g = rng(seed, "gc_compact", objects, rounds, live)
    t = s.segment("collect", "per_op", ops=[Op.MMAP, Op.MOVE_PAGES, Op.MUNMAP],
                  scale={"object": objects * rounds})
    n = objects
    for r in range(rounds):
        frm, to = spaces[r % 2], spaces[(r + 1) % 2]
        t.mmap(p, to, objects)
        keep = np.flatnonzero(g.random(n) < live)
        dst = to
        i = 0
        while i < len(keep):                    # one call per run of consecutive live objects
            j = i
            while j + 1 < len(keep) and keep[j + 1] == keep[j] + 1:
                j += 1
            k = j - i + 1
            t.move_pages(p, frm + int(keep[i]), dst, k)
            dst += k
            i = j + 1
        t.munmap(p, frm, objects)
        n = max(1, dst - to)
        t.write_range(p, to + n, min(objects - n, n))   # the mutator allocates again
        n = min(objects, 2 * n)
    return _end(s)


globals().update(asv_classes("vma_layout"))
