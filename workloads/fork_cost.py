"""Fork cost: what fork itself costs, and what it leaves to be paid later.

A fork's price depends on the design: copying page tables up front (and
write-protecting them), creating shadow objects or anon_vmas, or copying
nothing and refaulting later.  So the family measures the fork call over a
grid of resident pages × mappings × fork depth, a fork-server's whole
request cycle (fork, a little work, exit), and the *deferred* cost: the faults
the fork causes in the window after it, charged to the fork in
``all.total_ns`` so a design that defers work does not look free.
"""
from __future__ import annotations

import numpy as np

from mmbench.trace import Op, page_ops

from ._common import BASE, Script, ram_for, rng, tokens, workload
from ._asv import asv_classes


def _layout(pages, vmas):
    """vpns of `vmas` mappings holding `pages` pages in all, one unmapped page apart."""
    per = max(1, pages // vmas)
    starts = BASE + np.arange(vmas, dtype=np.int64) * (per + 1)
    return starts, per


def _populated(s, pages, vmas):
    """Setup: pid 1 maps `vmas` mappings and writes every page; returns (builder, pid, vpns)."""
    t = s.setup()
    p = t.spawn()
    starts, per = _layout(pages, vmas)
    for st in starts:
        t.mmap(p, int(st), per)
    v = (starts[:, None] + np.arange(per, dtype=np.int64)[None, :]).ravel()
    t.extend(page_ops(Op.WRITE, p, v, tokens(v, p)))
    return t, p, v


@workload("fork_cost", grids={
    "tiny": {"pages": [64], "vmas": [1, 4], "depth": [1, 2]},
    "quick": {"pages": [1024, 16384], "vmas": [1, 64], "depth": [1, 4]},
    "full": {"pages": [1024, 16384, 262144], "vmas": [1, 16, 256], "depth": [1, 4, 16]},
    "asv": {"pages": [1024], "vmas": [16], "depth": [1, 4]}})
def fork_grid(pages, vmas, depth, rounds=5, seed=3, thp="never"):
    """Fork of a process with `pages` resident pages in `vmas` mappings, `depth` forks deep.

    The forking process is the last of a chain of ``depth - 1`` forks whose
    members each rewrote an eighth of the memory and stay alive; it forks
    `rounds` times, each child exiting before the next fork (fork and exit
    are both timed; counters are summed over the rounds).  Stands for any
    fork of a running program, from a shell's fork of itself to a language
    runtime forking a worker; the depth stands for zygote-style launchers and
    nested process managers.
    """
    s = Script(ram_for(pages, 2 + depth / 8), thp)
    t, cur, v = _populated(s, pages, vmas)
    g = rng(seed, "fork_grid", pages, vmas, depth)
    for gen in range(depth - 1):
        cur = t.fork(cur)
        some = np.sort(g.choice(v, size=max(1, len(v) // 8), replace=False))
        t.extend(page_ops(Op.WRITE, cur, some, tokens(some, cur, gen + 1)))
    for _ in range(rounds):
        t = s.segment("fork", "per_op", ops=[Op.FORK], scale={"page": len(v) * rounds, "vma": vmas * rounds})
        child = t.fork(cur)
        t = s.segment("exit", "per_op", ops=[Op.EXIT], scale={"page": len(v) * rounds})
        t.exit(child)
    return s.build()


@workload("fork_cost", grids={
    "tiny": {"children": [8], "pages": [64]},
    "quick": {"children": [500], "pages": [4096]},
    "full": {"children": [2000], "pages": [4096, 65536]},
    "asv": {"children": [50], "pages": [1024]}})
def fork_server(children, pages, request_pages=16, seed=4, thp="never"):
    """A server forking one short-lived child per request.

    The parent holds `pages` of warm state; each child writes a few pages
    (handles its request) and exits.  Stands for a pre-fork / fork-per-request
    server: a classic CGI or prefork web server, a database postmaster forking a
    backend per connection.  Reports fork, write and exit per op, and the
    whole cycle per child.
    """
    s = Script(ram_for(pages, 2), thp)
    t, p, v = _populated(s, pages, 1)
    t = s.segment("serve", "per_op", ops=[Op.FORK, Op.WRITE, Op.EXIT], scale={"child": children})
    g = rng(seed, "fork_server", children, pages)
    for _ in range(children):
        c = t.fork(p)
        req = np.sort(g.choice(v, size=min(request_pages, len(v)), replace=False))
        t.extend(page_ops(Op.WRITE, c, req, tokens(req, c)))
        t.exit(c)
    return s.build()


@workload("fork_cost", grids={
    "tiny": {"pages": [64], "rewrite": [0.5]},
    "quick": {"pages": [16384], "rewrite": [0.1, 1.0]},
    "full": {"pages": [16384, 262144], "rewrite": [0.01, 0.1, 1.0]},
    "asv": {"pages": [1024], "rewrite": [0.1]}})
def deferred(pages, rewrite, seed=5, thp="never"):
    """Fork, then the window after it: the child reads everything, the parent rewrites some.

    Stands for a snapshotting store that forks to save (a Redis-style
    background save): the child walks the snapshot to write it out while the
    parent keeps serving writes to a fraction `rewrite` of its pages.  The
    faults in the window are the fork's deferred cost; ``all.total_ns`` is
    fork plus window.
    """
    s = Script(ram_for(pages, 2), thp)
    t, p, v = _populated(s, pages, 1)
    t = s.segment("fork", "per_op", ops=[Op.FORK], scale={"page": pages})
    c = t.fork(p)
    t = s.segment("window", "per_op", ops=[Op.READ, Op.WRITE], scale={"page": pages})
    t.extend(page_ops(Op.READ, c, v))
    g = rng(seed, "deferred", pages, rewrite)
    w = np.sort(g.choice(v, size=max(1, int(len(v) * rewrite)), replace=False))
    t.extend(page_ops(Op.WRITE, p, w, tokens(w, p, 1)))
    return s.build()


@workload("fork_cost", grids={
    "tiny": {"pages": [256]},
    "quick": {"pages": [16384]},
    "full": {"pages": [262144]},
    "asv": {"pages": [16384]},
    "large": {"pages": [1 << 22]}})
def process_lifecycle(pages, thp="never"):
    """A big process's life: first touch of all its memory, fork, copy-on-write of all of it, exit.

    The parent writes every page of one mapping (``touch``), forks (``fork``),
    the child rewrites every page (``cow``: one copy-on-write fault each), then
    the child and the parent exit (``exit``).  Stands for a large in-memory
    service (a database, an analytics engine) that forks a worker which
    modifies its whole working set.  In the ``large`` profile the process has
    16 GiB (4M pages): the scale the simulator itself must hold, so the touch
    segment also records the simulator's own memory per resident page.
    """
    s = Script(ram_for(pages, 2), thp)
    t = s.setup()
    p = t.spawn()
    t.mmap(p, BASE, pages)
    v = np.arange(BASE, BASE + pages, dtype=np.int64)
    t = s.segment("touch", "per_op", ops=[Op.WRITE], scale={"page": pages}, sim_memory=True)
    t.extend(page_ops(Op.WRITE, p, v, tokens(v, p)))
    t = s.segment("fork", "per_op", ops=[Op.FORK], scale={"page": pages})
    c = t.fork(p)
    t = s.segment("cow", "per_op", ops=[Op.WRITE], scale={"page": pages}, sim_memory=True)
    t.extend(page_ops(Op.WRITE, c, v, tokens(v, c, 1)))
    t = s.segment("exit", "per_op", ops=[Op.EXIT], scale={"page": 2 * pages})
    t.exit(c)
    t.exit(p)
    return s.build()


globals().update(asv_classes("fork_cost"))
