"""Seeded differential runs of the shmem design against the reference model.

Each run drives both machines with the same random operation sequence over a
small address space (so mappings collide, split and merge often), compares
every result and every error, calls check() after every step, then exits every
process and asserts nothing leaked.  The generic Hypothesis conformance suite
lives elsewhere; these runs are the design's own quick net.
"""
import random

import pytest

import mmbench
from mmbench import errors
from mmbench.reference import ReferenceMachine

SPACE = 48


def _op(rng, pids):
    pid = rng.choice(pids)
    vpn = rng.randrange(SPACE)
    n = rng.randint(1, 12)
    k = rng.random()
    if k < 0.12:
        return ("mmap", pid, vpn, n, rng.random() < 0.35, rng.random() < 0.85)
    if k < 0.18:
        return ("munmap", pid, vpn, n)
    if k < 0.23:
        return ("mprotect", pid, vpn, n, rng.random() < 0.6)
    if k < 0.45:
        return ("read", pid, vpn)
    if k < 0.72:
        return ("write", pid, vpn, rng.randrange(1, 1 << 64))
    if k < 0.80:
        return ("fork", pid)
    if k < 0.85:
        return ("exit", pid)
    if k < 0.92:
        return ("mremap", pid, vpn, n, rng.randrange(SPACE))
    return ("madvise_dontneed", pid, vpn, n)


def _apply(m, op):
    try:
        return ("ok", getattr(m, op[0])(*op[1:]))
    except errors.MMError as e:
        return ("err", type(e).__name__)


def run(seed, steps=400):
    rng = random.Random(seed)
    ref = ReferenceMachine(ram_pages=1 << 14)
    m = mmbench.open("shmem", ram_pages=1 << 14)
    pids = [ref.spawn()]
    assert m.spawn() == pids[0]
    for step in range(steps):
        if not pids:
            pids.append(ref.spawn())
            assert m.spawn() == pids[-1]
        op = _op(rng, pids)
        want = _apply(ref, op)
        got = _apply(m, op)
        assert got == want, f"seed {seed} step {step}: {op} -> {got}, reference {want}"
        if op[0] == "fork" and want[0] == "ok":
            pids.append(want[1])
        elif op[0] == "exit" and want[0] == "ok":
            pids.remove(op[1])
        m.check()
    for p in pids:
        m.exit(p)
    m.check()
    assert m.leaks() == []
    return m


@pytest.mark.parametrize("seed", range(40))
def test_random_against_reference(seed):
    run(seed)
