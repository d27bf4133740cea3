"""Fault latency: what one page fault costs, one fault situation at a time.

Each workload brings a machine into a state where the next accesses all take
the same kind of fault, then times those accesses one by one (the engine's
per-op clock).  The fault situation a workload isolates is its ``fault_kind``
parameter; which fault the design actually took is in the exact counters
recorded next to the times (a design that avoids a fault shows it there).

Situations: first touch (zero-fill, sequential and random order), a read
before the write (the shared zero page), copy-on-write after fork (parent or
child writing), a write to a page the fork left exclusive (reuse), faults on a
shared mapping a forked child refaults (minor), reads and writes at fork-chain
depth d (shadow chains), and CPU faults on pages an accelerator holds.
"""
from __future__ import annotations

import numpy as np

from mmbench.trace import Op, page_ops

from ._common import BASE, Machine, Script, ram_for, rng, tokens, workload
from ._asv import asv_classes

_PAGES = {"tiny": {"pages": [64]}, "quick": {"pages": [16384]},
          "full": {"pages": [16384, 262144]}, "asv": {"pages": [1024]}}


def _touched(pages, thp, copies=1, devices=0):
    """A script whose setup spawned pid 1 with `pages` private pages mapped at BASE
    (2 MiB-aligned: with huge pages, every whole 2 MiB of it can be one)."""
    m = ram_for(pages, copies)
    if devices:
        m = Machine(ram_pages=m.ram_pages, devices=devices, device_pages=max(4096, 2 * pages))
    s = Script(m, thp)
    t = s.setup()
    p = t.spawn()
    t.mmap(p, BASE, pages)
    return s, t, p


def _vpns(pages):
    return np.arange(BASE, BASE + pages, dtype=np.int64)


@workload("fault_latency", grids=_PAGES)
def seq_first_touch(pages, fault_kind="zero_fill", thp="never"):
    """Sequential first-touch writes: every write allocates and zeroes a frame.

    Stands for a program initialising a freshly allocated buffer front to
    back: a database warming its buffer pool, ``memset`` of a new malloc arena.
    """
    s, t, p = _touched(pages, thp)
    t = s.segment("write", "per_op", ops=[Op.WRITE], scale={"page": pages})
    v = _vpns(pages)
    t.extend(page_ops(Op.WRITE, p, v, tokens(v, p)))
    return s.build()


@workload("fault_latency", grids=_PAGES)
def random_first_touch(pages, fault_kind="zero_fill", seed=1, thp="never"):
    """Random-order first-touch writes over one mapping.

    Stands for a hash table or a JIT heap filled in no particular order (a
    key-value store taking inserts): the same zero-fill faults as sequential
    touch, but page-table pages are reached out of order.
    """
    s, t, p = _touched(pages, thp)
    t = s.segment("write", "per_op", ops=[Op.WRITE], scale={"page": pages})
    v = BASE + rng(seed, "random_first_touch", pages).permutation(pages).astype(np.int64)
    t.extend(page_ops(Op.WRITE, p, v, tokens(v, p)))
    return s.build()


@workload("fault_latency", grids=_PAGES)
def read_then_write(pages, fault_kind="zero_page", thp="never"):
    """Read every page before writing it: a zero-page read fault, then the write fault.

    Stands for a calloc'd array scanned before it is filled (a bitmap or a
    sparse matrix checked for zero first).  Designs with a shared zero page map
    it on the read and pay on the write; designs without one allocate on the
    read.
    """
    s, t, p = _touched(pages, thp)
    v = _vpns(pages)
    t = s.segment("read", "per_op", ops=[Op.READ], scale={"page": pages})
    t.extend(page_ops(Op.READ, p, v))
    t = s.segment("write", "per_op", ops=[Op.WRITE], scale={"page": pages})
    t.extend(page_ops(Op.WRITE, p, v, tokens(v, p)))
    return s.build()


@workload("fault_latency", grids={**{k: {**g, "writer": ["parent", "child"]} for k, g in _PAGES.items()},
                                  "asv": {"pages": [1024], "writer": ["parent"]}})
def cow_after_fork(pages, writer, fault_kind="cow_copy", thp="never"):
    """Copy-on-write after fork: the parent (or the child) rewrites every page.

    Stands for a snapshotting store that forks to save (a Redis-style
    background save): the child holds the snapshot while the parent keeps
    writing (``writer="parent"``), or the child writes its own copy
    (``writer="child"``, a forked worker modifying inherited state).
    """
    s, t, p = _touched(pages, thp, copies=2)
    v = _vpns(pages)
    t.extend(page_ops(Op.WRITE, p, v, tokens(v, p)))
    c = t.fork(p)
    w = p if writer == "parent" else c
    t = s.segment("write", "per_op", ops=[Op.WRITE], scale={"page": pages})
    t.extend(page_ops(Op.WRITE, w, v, tokens(v, w, 1)))
    return s.build()


@workload("fault_latency", grids=_PAGES)
def exclusive_reuse(pages, fault_kind="cow_reuse", thp="never"):
    """A write-protected page that only one process still maps: reused, not copied.

    The parent touches its memory, forks a child that exits at once (fork and
    exec of a helper), then rewrites its pages.  Stands for a shell or a build
    driver that spawns short-lived commands: every fork write-protects its
    memory, and the next write should find the page exclusive again.
    """
    s, t, p = _touched(pages, thp)
    v = _vpns(pages)
    t.extend(page_ops(Op.WRITE, p, v, tokens(v, p)))
    c = t.fork(p)
    t.exit(c)
    t = s.segment("write", "per_op", ops=[Op.WRITE], scale={"page": pages})
    t.extend(page_ops(Op.WRITE, p, v, tokens(v, p, 1)))
    return s.build()


@workload("fault_latency", grids=_PAGES)
def shared_minor(pages, fault_kind="minor", thp="never"):
    """A forked child faults in pages of a shared mapping its parent filled.

    Stands for a pre-fork server whose workers read a shared cache (the shared
    buffers of a database whose postmaster forks one backend per client):
    the data is resident, the child only needs its own mappings of it.
    """
    s = Script(ram_for(pages), thp)
    t = s.setup()
    p = t.spawn()
    t.mmap(p, BASE, pages, shared=True)
    v = _vpns(pages)
    t.extend(page_ops(Op.WRITE, p, v, tokens(v, p)))
    c = t.fork(p)
    t = s.segment("read", "per_op", ops=[Op.READ], scale={"page": pages})
    t.extend(page_ops(Op.READ, c, v))
    t = s.segment("write", "per_op", ops=[Op.WRITE], scale={"page": pages})
    t.extend(page_ops(Op.WRITE, c, v, tokens(v, c, 1)))
    return s.build()


@workload("fault_latency", grids={"tiny": {"depth": [1, 3], "pages": [64]},
                                  "quick": {"depth": [1, 4, 16], "pages": [4096]},
                                  "full": {"depth": [1, 2, 4, 8, 16, 32], "pages": [16384]},
                                  "asv": {"depth": [1, 8], "pages": [512]}})
def chain_depth(depth, pages, fault_kind="chain_depth", seed=2, thp="never"):
    """Faults in the last process of a fork chain of the given depth.

    Each generation forks the next and rewrites a random eighth of the pages,
    and every ancestor stays alive, so nothing can be collapsed.  The last
    descendant then reads, and then writes, every page.  Stands for nested
    forks that keep their parents: a zygote-style launcher forking a
    service that forks workers, a build driver under a shell under a session
    manager.  Designs that chain shadow objects walk the chain on each fault.
    """
    s, t, p = _touched(pages, thp, copies=2 + depth / 8)
    v = _vpns(pages)
    t.extend(page_ops(Op.WRITE, p, v, tokens(v, p)))
    g = rng(seed, "chain_depth", depth, pages)
    cur = p
    for gen in range(depth):
        cur = t.fork(cur)
        some = np.sort(g.choice(v, size=max(1, pages // 8), replace=False))
        t.extend(page_ops(Op.WRITE, cur, some, tokens(some, cur, gen + 1)))
    t = s.segment("read", "per_op", ops=[Op.READ], scale={"page": pages})
    t.extend(page_ops(Op.READ, cur, v))
    t = s.segment("write", "per_op", ops=[Op.WRITE], scale={"page": pages})
    t.extend(page_ops(Op.WRITE, cur, v, tokens(v, cur, 99)))
    return s.build()


@workload("fault_latency", needs_devices=True,
          grids={"tiny": {"pages": [64]}, "quick": {"pages": [4096]},
                 "full": {"pages": [4096, 65536]}, "asv": {"pages": [512]}})
def device_return(pages, fault_kind="device_return", thp="never"):
    """CPU writes to pages that were migrated to an accelerator.

    Stands for the host side of an ML training step: tensors live on the
    accelerator, and the CPU reads back or updates some of them (a loss, an
    optimizer state checkpointed on the host), faulting each page home.
    """
    s, t, p = _touched(pages, thp, devices=1)
    v = _vpns(pages)
    t.extend(page_ops(Op.WRITE, p, v, tokens(v, p)))
    t.migrate(p, BASE, pages, 1)
    t = s.segment("write", "per_op", ops=[Op.WRITE], scale={"page": pages})
    t.extend(page_ops(Op.WRITE, p, v, tokens(v, p, 1)))
    return s.build()


globals().update(asv_classes("fault_latency"))
