"""Metadata memory: how many bytes of kernel structures each design keeps for the same state.

Every workload here builds a state and stops; what is recorded is exact:
bytes and object counts by struct (in the real kernels' struct sizes), the
total, the resident pages and the bytes per resident page.  The states span
what separates the designs: dense and sparse address spaces (page tables and
radix trees pay per 2 MiB region, not per page), many small mappings (per-VMA
structures), fork trees and chains (anon_vma chains, shadow objects, amaps),
and a fork-server that has been running for a while (what short-lived
children leave behind).
"""
from __future__ import annotations

import numpy as np

from mmbench.trace import Op, page_ops

from ._common import BASE, PAGES_2M, Script, ram_for, rng, tokens, workload
from ._asv import asv_classes


SPARSE_MAX_PAGES = 1 << 22      # 16 GiB: the most `sparse` lets huge pages make resident


def _end(s):
    s.segment("end", snapshot=True)
    return s.build()


@workload("metadata_memory", grids={"tiny": {"pages": [64]}, "quick": {"pages": [65536]},
                                    "full": {"pages": [65536, 1048576]}, "asv": {"pages": [4096]}})
def dense(pages, thp="never"):
    """One process, one mapping, every page written.

    Stands for a large in-memory array: a training set staged in host memory,
    a database heap.  The floor every design's per-page cost is judged from.
    """
    s = Script(ram_for(pages), thp)
    t = s.setup()
    p = t.spawn()
    t.mmap(p, BASE, pages)
    t.write_range(p, BASE, pages)
    return _end(s)


@workload("metadata_memory", grids={"tiny": {"touched": [16]}, "quick": {"touched": [4096]},
                                    "full": {"touched": [4096, 65536]}, "asv": {"touched": [256]}})
def sparse(touched, thp="never"):
    """One page written per 2 MiB over a mapping of `touched` × 2 MiB.

    Stands for sparse address spaces: a JIT or managed-runtime heap reserved
    large and touched here and there, a hash table spread over a huge
    reservation.  Page tables (and any radix tree) pay a whole node per page.
    With huge pages a design that maps a whole 2 MiB on the first touch
    (linux THP) makes 512 pages resident per touch; one that reserves and
    populates 4 KiB at a time (freebsd) does not: the machine has room for
    every page of the mapping (up to SPARSE_MAX_PAGES, 16 GiB) so that this
    shows, not a fallback; beyond it the huge faults fall back to 4 KiB pages
    as a kernel's do once no free 2 MiB block is left.
    """
    s = Script(ram_for(min(touched * PAGES_2M, SPARSE_MAX_PAGES)), thp)
    t = s.setup()
    p = t.spawn()
    t.mmap(p, BASE, touched * PAGES_2M)
    t.write_range(p, BASE, touched * PAGES_2M, step=PAGES_2M)
    return _end(s)


@workload("metadata_memory", grids={"tiny": {"blocks": [2]}, "quick": {"blocks": [64]},
                                    "full": {"blocks": [64, 1024]}, "asv": {"blocks": [8]}})
def partial_munmap(blocks, thp="never"):
    """Unmap one 4 KiB page in the middle of every 2 MiB of a fully written mapping.

    With huge pages each hole breaks a 2 MiB mapping back into 4 KiB ones
    (linux splits the PMD, freebsd demotes the superpage) and splits the VMA
    or map entry; the munmaps are timed one by one (``munmap.*``) and the
    metadata is taken after them, to set against ``dense``.  Stands for an
    allocator or runtime punching page-sized holes into memory it backed with
    huge pages: a malloc returning freed runs with munmap, guard pages cut into
    a huge-page-backed arena, a JIT unmapping dead code pages.
    """
    pages = blocks * PAGES_2M
    s = Script(ram_for(pages), thp)
    t = s.setup()
    p = t.spawn()
    t.mmap(p, BASE, pages)
    t.write_range(p, BASE, pages)
    t = s.segment("munmap", "per_op", ops=[Op.MUNMAP], scale={"block": blocks})
    for b in range(blocks):
        t.munmap(p, BASE + b * PAGES_2M + PAGES_2M // 2, 1)
    return _end(s)


@workload("metadata_memory", grids={"tiny": {"vmas": [16]}, "quick": {"vmas": [8192]},
                                    "full": {"vmas": [8192, 65536]}, "asv": {"vmas": [512]}})
def many_small_vmas(vmas, vma_pages=2, thp="never"):
    """`vmas` mappings of two pages each, one unmapped page apart, every page written.

    Stands for a process with many small mappings: an allocator's per-thread
    arenas with guard pages, a JIT code cache, many small mapped buffers.
    Per-mapping structures (VMA, maple tree, anon_vma_chain, map entry,
    object) dominate.
    """
    s = Script(ram_for(vmas * vma_pages), thp)
    t = s.setup()
    p = t.spawn()
    starts = BASE + np.arange(vmas, dtype=np.int64) * (vma_pages + 1)
    for st in starts:
        t.mmap(p, int(st), vma_pages)
    v = (starts[:, None] + np.arange(vma_pages, dtype=np.int64)[None, :]).ravel()
    t.extend(page_ops(Op.WRITE, p, v, tokens(v, p)))
    return _end(s)


def _family_grid(chains, trees):
    return [{"depth": d, "shape": "chain"} for d in chains] + [{"depth": d, "shape": "tree"} for d in trees]


@workload("metadata_memory", grids={"tiny": _family_grid([3], [3]),
                                    "quick": _family_grid([2, 4, 8, 16], [2, 4, 6]),
                                    "full": _family_grid([2, 4, 8, 16, 32], [2, 4, 6]),
                                    "asv": {"depth": [4], "shape": ["chain", "tree"]}})
def fork_family(depth, shape, pages=1024, seed=6, thp="never"):
    """A fork chain (each process forks one child) or a binary fork tree, `depth` levels.

    Every process rewrites a random eighth of the inherited memory and stays
    alive.  Stands for nested process managers and zygote-style launchers
    (chain), and a pre-forking master whose workers fork helpers (tree).
    Shadow-object chains, anon_vma hierarchies and amaps grow differently.
    A tree of depth d has 2**d - 1 processes; depths above 6 are capped at 6.
    """
    levels = depth if shape == "chain" else min(depth, 6)
    nprocs = depth + 1 if shape == "chain" else 2 ** levels - 1
    s = Script(ram_for(pages, 1 + nprocs / 8), thp)
    t = s.setup()
    p = t.spawn()
    t.mmap(p, BASE, pages)
    t.write_range(p, BASE, pages)
    v = np.arange(BASE, BASE + pages, dtype=np.int64)
    g = rng(seed, "fork_family", depth, shape, pages)
    frontier = [p]
    for gen in range(depth if shape == "chain" else levels - 1):
        nxt = []
        for parent in frontier:
            for _ in range(1 if shape == "chain" else 2):
                c = t.fork(parent)
                some = np.sort(g.choice(v, size=max(1, pages // 8), replace=False))
                t.extend(page_ops(Op.WRITE, c, some, tokens(some, c, gen + 1)))
                nxt.append(c)
        frontier = nxt
    return _end(s)


@workload("metadata_memory", grids={"tiny": {"requests": [8]}, "quick": {"requests": [2000]},
                                    "full": {"requests": [2000, 20000]}, "asv": {"requests": [200]}})
def fork_server_state(requests, pages=2048, live_children=8, seed=7, thp="never"):
    """A fork-server after `requests` short-lived children, with a few still running.

    The parent keeps writing to its own state between requests; each child
    writes a few pages and exits, except the last `live_children`.  Stands
    for a long-running pre-fork server or zygote: what the parent's address
    space keeps (anon_vma trees, shadow objects, never-freed per-page
    entries) after many children came and went.
    """
    s = Script(ram_for(pages, 1 + live_children / 4), thp)
    t = s.setup()
    p = t.spawn()
    t.mmap(p, BASE, pages)
    t.write_range(p, BASE, pages)
    v = np.arange(BASE, BASE + pages, dtype=np.int64)
    g = rng(seed, "fork_server_state", requests, pages)
    for i in range(requests):
        c = t.fork(p)
        req = np.sort(g.choice(v, size=8, replace=False))
        t.extend(page_ops(Op.WRITE, c, req, tokens(req, c)))
        own = np.sort(g.choice(v, size=4, replace=False))
        t.extend(page_ops(Op.WRITE, p, own, tokens(own, p, i % 250)))
        if i < requests - live_children:
            t.exit(c)
    return _end(s)


globals().update(asv_classes("metadata_memory"))
