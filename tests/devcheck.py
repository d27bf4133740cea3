"""Differential runner for designs with devices: random operation sequences
(including migrate / device_read / device_write, with device memory smaller than
the working set) applied to a design and to the reference model in lock step."""
from __future__ import annotations

import random

import mmbench
from mmbench import errors
from mmbench.reference import ReferenceMachine

OPS = ("mmap", "munmap", "mprotect", "read", "write", "fork", "exit", "mremap", "dontneed",
       "migrate", "device_read", "device_write", "spawn")
WEIGHTS = (6, 2, 2, 14, 14, 2, 1, 2, 2, 8, 12, 12, 1)


def _call(m, op, args):
    try:
        return ("ok", getattr(m, op)(*args))
    except errors.MMError as e:
        return ("err", type(e).__name__)


def random_args(rng, op, pids, ndev, span):
    pid = rng.choice(pids)
    vpn = rng.randrange(span)
    n = rng.randrange(1, 12)
    dev = rng.randrange(1, ndev + 1)
    if op == "mmap":
        return (pid, vpn, n, rng.random() < 0.25, rng.random() < 0.85)
    if op in ("munmap",):
        return (pid, vpn, n)
    if op == "mprotect":
        return (pid, vpn, n, rng.random() < 0.6)
    if op == "read":
        return (pid, vpn)
    if op == "write":
        return (pid, vpn, rng.randrange(1, 1 << 40))
    if op in ("fork", "exit"):
        return (pid,)
    if op == "mremap":
        return (pid, vpn, n, rng.randrange(span))
    if op == "dontneed":
        return (pid, vpn, n)
    if op == "migrate":
        return (pid, vpn, n, rng.randrange(0, ndev + 1))
    if op == "device_read":
        return (dev, pid, vpn)
    if op == "device_write":
        return (dev, pid, vpn, rng.randrange(1, 1 << 40))
    return ()


def run_random(name, seed, steps=250, ndev=2, device_pages=6, span=48, **options):
    """Run one random sequence on `name` and the reference; assert they agree,
    check() after every step, leaks() == [] after every process exited."""
    rng = random.Random(seed)
    m = mmbench.open(name, devices=ndev, device_pages=device_pages, ram_pages=1 << 14, **options)
    ref = ReferenceMachine(devices=ndev, device_pages=device_pages, ram_pages=1 << 14)
    pids = [m.spawn()]
    assert ref.spawn() == pids[0]
    for step in range(steps):
        op = rng.choices(OPS, WEIGHTS)[0]
        if not pids:
            op = "spawn"
        args = random_args(rng, op, pids, ndev, span) if pids else ()
        meth = "madvise_dontneed" if op == "dontneed" else op
        if op == "mmap" and hasattr(m, "mmap_peer_shared") and rng.random() < 0.5:
            pargs = (args[0], args[1], args[2], args[4])         # MAP_PEER_SHARED (private)
            got, want = _call(m, "mmap_peer_shared", pargs), _call(ref, "mmap", pargs[:3] + (False, args[4]))
        else:
            got, want = _call(m, meth, args), _call(ref, meth, args)
        assert got == want, f"seed {seed} step {step}: {meth}{args}: {got} != reference {want}"
        if op in ("fork", "spawn") and got[0] == "ok":
            pids.append(got[1])
        if op == "exit" and got[0] == "ok":
            pids.remove(args[0])
        m.check()
    for p in list(pids):
        m.exit(p)
    m.check()
    assert m.leaks() == []
    return m


def run_random_oom(name, seed, steps=200, **options):
    """Like run_random, with host and device memory so small that operations fail
    with OutOfMemory: a failed operation must change no value (the reference then
    skips it), check() must hold after every step, and nothing may leak."""
    rng = random.Random(seed)
    ndev = 1 + seed % 2
    m = mmbench.open(name, devices=ndev, device_pages=2 + seed % 4, ram_pages=12 + seed % 30, **options)
    ref = ReferenceMachine(devices=ndev, device_pages=4, ram_pages=1 << 12)
    pids = [m.spawn()]
    ref.spawn()
    ooms = 0
    for step in range(steps):
        op = rng.choices(OPS, WEIGHTS)[0] if pids else "spawn"
        args = random_args(rng, op, pids, ndev, 40) if pids else ()
        meth = "madvise_dontneed" if op == "dontneed" else op
        if op == "mmap" and hasattr(m, "mmap_peer_shared") and rng.random() < 0.5:
            meth, args = "mmap_peer_shared", (args[0], args[1], args[2], args[4])
        got = _call(m, meth, args)
        if meth == "mmap_peer_shared":
            meth, args = "mmap", args[:3] + (False, args[3])
        if got == ("err", "OutOfMemory"):
            ooms += 1
            m.check()
            if meth in ("fork", "spawn"):
                break                      # the pid sequences would part here
            continue
        want = _call(ref, meth, args)
        assert got == want, f"seed {seed} step {step}: {meth}{args}: {got} != reference {want}"
        if op in ("fork", "spawn") and got[0] == "ok":
            pids.append(got[1])
        if op == "exit" and got[0] == "ok":
            pids.remove(args[0])
        m.check()
    for p in m.live_pids():
        m.exit(p)
    assert m.leaks() == []
    return ooms
