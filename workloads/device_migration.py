"""Device migration: moving pages between host RAM and an accelerator, and back.

Every workload needs a design with accelerator support (``supports_devices``)
and runs on a machine with one device; elsewhere it is recorded as
unsupported.  Data copies are counted, not performed: the exact counters give
bytes and transfers over the link, the engine's clock gives the design's own
bookkeeping (page-table updates, notifier calls, rmap walks), and the link
model turns the counted DMA into a transfer time, so the rate each way
(``<segment>.GBps``) is an estimate built on measured bookkeeping.
"""
from __future__ import annotations

import numpy as np

from mmbench.trace import Op, page_ops

from ._common import BASE, PAGES_2M, Machine, Script, ram_for, rng, tokens, workload
from ._asv import asv_classes


# Device-fault variants compared side by side (mmbench.devices.FAULT_VARIANTS):
# migrate an aligned 2 MiB block per fault each way, one page per fault, or map
# host pages remotely (lib/test_hmm.c's dmirror; linux only).
FAULT_OPTIONS = {"2m": (("device_fault_pages", 512),), "4k": (("device_fault_pages", 1),),
                 "remote": (("device_fault", "remote"),)}


def _device_machine(pages, device_pages=None, copies=2, options=()):
    """One accelerator; device memory twice the buffer unless given."""
    return Machine(ram_pages=ram_for(pages, copies).ram_pages, devices=1,
                   device_pages=device_pages or max(4096, 2 * pages), options=options)


def _filled(s, pages, shared=False):
    t = s.setup()
    p = t.spawn()
    t.mmap(p, BASE, pages, shared=shared)
    t.write_range(p, BASE, pages)
    return t, p


def _migrations(t, pid, pages, transfer, node):
    for vpn in range(BASE, BASE + pages, transfer):
        t.migrate(pid, vpn, min(transfer, BASE + pages - vpn), node)


@workload("device_migration", needs_devices=True, grids={
    "tiny": {"pages": [256], "transfer": [16, 256]},
    "quick": {"pages": [32768], "transfer": [16, 512, 32768]},
    "full": {"pages": [65536], "transfer": [1, 16, 512, 8192, 65536]},
    "asv": {"pages": [2048], "transfer": [512]}})
def bulk_roundtrip(pages, transfer, thp="never"):
    """Move a buffer to the accelerator and back, `transfer` pages per migration call.

    Stands for an ML training data loader: a batch staged in host memory is
    moved to the accelerator, and results come back.  The transfer size is
    what separates per-page bookkeeping from link bandwidth.
    """
    s = Script(_device_machine(pages), thp)
    t, p = _filled(s, pages)
    scale = {"page": pages}
    _migrations(s.segment("to_device", "per_op", ops=[Op.MIGRATE], scale=scale), p, pages, transfer, 1)
    _migrations(s.segment("to_host", "per_op", ops=[Op.MIGRATE], scale=scale), p, pages, transfer, 0)
    return s.build()


@workload("device_migration", needs_devices=True, grids={
    "tiny": {"rounds": [4], "fault": ["2m", "4k", "remote"]},
    "quick": {"rounds": [300], "fault": ["2m", "4k", "remote"]},
    "full": {"rounds": [3000], "fault": ["2m", "4k", "remote"]},
    "asv": {"rounds": [20]}})
def ping_pong(rounds, region=PAGES_2M, touched=8, seed=8, fault="2m", thp="never"):
    """A 2 MiB buffer handed back and forth: migrate to the device, the device writes, the CPU writes.

    Stands for a CPU/accelerator pipeline sharing one buffer per step (the
    host prepares the next input in the buffer the accelerator just used),
    the case unified memory handles by migrating on every hand-over.  Each
    CPU write after the device had the buffer is a device-return fault.
    `fault` is the device-fault variant, the same for every design: "2m" moves
    an aligned 2 MiB block per fault each way, "4k" one page, "remote" is
    dmirror's remote mapping (a design without it is unsupported).
    """
    s = Script(_device_machine(region, options=FAULT_OPTIONS[fault]), thp)
    t, p = _filled(s, region)
    t = s.segment("pingpong", "per_op", ops=[Op.MIGRATE, Op.DEVICE_WRITE, Op.WRITE],
                  scale={"round": rounds})
    g = rng(seed, "ping_pong", rounds, region)
    for r in range(rounds):
        t.migrate(p, BASE, region, 1)
        dv = BASE + np.sort(g.choice(region, size=touched, replace=False)).astype(np.int64)
        t.extend(page_ops(Op.DEVICE_WRITE, p, dv, tokens(dv, p, r % 250), dev=1))
        cv = BASE + np.sort(g.choice(region, size=touched, replace=False)).astype(np.int64)
        t.extend(page_ops(Op.WRITE, p, cv, tokens(cv, p, r % 250)))
    return s.build()


@workload("device_migration", needs_devices=True, grids={
    "tiny": {"ratio": [2.0], "device_pages": [64]},
    "quick": {"ratio": [0.5, 2.0], "device_pages": [8192]},
    "full": {"ratio": [0.5, 1.5, 4.0], "device_pages": [8192]},
    "asv": {"ratio": [2.0], "device_pages": [512]}})
def oversubscribe(ratio, device_pages, passes=2, thp="never"):
    """Migrate a working set `ratio` times the device memory to it, chunk by chunk, twice.

    Stands for training a model larger than accelerator memory with
    on-demand migration: older chunks must be evicted back to the host to make
    room (``device_evictions``).  A design that cannot evict runs out of device
    memory and is recorded as unsupported with that reason.  Timed as a whole
    (clock off): the question is throughput, ns per page swept.
    """
    pages = int(ratio * device_pages)
    s = Script(_device_machine(pages, device_pages=device_pages), thp)
    t, p = _filled(s, pages)
    t = s.segment("sweep", "total", ops=[Op.MIGRATE, Op.DEVICE_WRITE], scale={"page": pages * passes})
    chunk = max(1, min(PAGES_2M, device_pages // 4))
    for _ in range(passes):
        for vpn in range(BASE, BASE + pages, chunk):
            n = min(chunk, BASE + pages - vpn)
            t.migrate(p, vpn, n, 1)
            t.device_write(1, p, vpn, vpn + 1)
    return s.build()


@workload("device_migration", needs_devices=True, grids={
    "tiny": {"mappers": [0, 2], "shared": [True]},
    "quick": {"mappers": [0, 1, 4], "shared": [False, True]},
    "full": {"mappers": [0, 1, 4, 16], "shared": [False, True]},
    "asv": {"mappers": [4], "shared": [True]}})
def other_mappers(mappers, shared, pages=2048, transfer=PAGES_2M, thp="never"):
    """Migrate pages that `mappers` other processes also map, then let those processes read them.

    The owner fills the buffer and forks `mappers` children that read it
    (shared: a shared-memory buffer; private: copy-on-write pages).  Stands
    for an ML data loader whose forked workers fill batches in shared memory
    that the trainer moves to the accelerator: migration must find and
    update every mapping (rmap walks, notifier calls), and the others fault
    the pages back.
    """
    s = Script(_device_machine(pages, copies=2 + mappers), thp)
    t, p = _filled(s, pages, shared=shared)
    v = np.arange(BASE, BASE + pages, dtype=np.int64)
    kids = [t.fork(p) for _ in range(mappers)]
    for c in kids:
        t.extend(page_ops(Op.READ, c, v))
    _migrations(s.segment("to_device", "per_op", ops=[Op.MIGRATE], scale={"page": pages}),
                p, pages, transfer, 1)
    t = s.segment("others_read", "per_op", ops=[Op.READ], scale={"page": pages * max(1, mappers)})
    for c in kids:
        t.extend(page_ops(Op.READ, c, v))
    if not kids:
        t.extend(page_ops(Op.READ, p, v))
    return s.build()


globals().update(asv_classes("device_migration"))
