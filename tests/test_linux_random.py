"""Randomized comparison of the linux backend against the reference model.

A quick early-warning check (the shared Hypothesis suite is the conformance
test): random operation sequences on both machines, same results and errors,
check() after every step, no leaks at the end.  More seeds while developing:
`python tests/test_linux_random.py [seeds] [steps]`.
"""
import pytest
import random
import sys

import mmbench
from mmbench import errors
from mmbench.reference import ReferenceMachine


def run(seed, steps=300, span=24):
    rnd = random.Random(seed)
    a = mmbench.open("linux", ram_pages=1 << 14)
    b = ReferenceMachine(ram_pages=1 << 14)
    live = []
    log = []

    def both(name, *args):
        log.append((name, args))
        ra = rb = ea = eb = None
        try:
            ra = getattr(a, name)(*args)
        except errors.MMError as e:
            ea = type(e)
        try:
            rb = getattr(b, name)(*args)
        except errors.MMError as e:
            eb = type(e)
        if (ra, ea) != (rb, eb):
            raise AssertionError(f"seed {seed}: {name}{args}: linux={ra, ea} ref={rb, eb}\n{log[-30:]}")
        a.check()
        return ra

    for _ in range(steps):
        if not live or rnd.random() < 0.03:
            live.append(both("spawn"))
            continue
        pid = rnd.choice(live)
        vpn = rnd.randrange(span)
        n = rnd.randrange(1, 12)
        r = rnd.random()
        if r < 0.15:
            both("mmap", pid, vpn, n, rnd.random() < 0.25, rnd.random() < 0.8)
        elif r < 0.22:
            both("munmap", pid, vpn, n)
        elif r < 0.28:
            both("mprotect", pid, vpn, n, rnd.random() < 0.6)
        elif r < 0.48:
            both("write", pid, vpn, rnd.randrange(1, 1 << 64))
        elif r < 0.68:
            both("read", pid, vpn)
        elif r < 0.75:
            if len(live) < 8:
                live.append(both("fork", pid))
        elif r < 0.79:
            both("exit", pid)
            live.remove(pid)
        elif r < 0.86:
            both("mremap", pid, vpn, n, rnd.randrange(span))
        elif r < 0.92:
            both("madvise_dontneed", pid, vpn, n)
        else:
            if a.frames_used():
                # rmap of a resident page: every reported mapper must read the same value
                for v in range(span):
                    try:
                        m = a.rmap_walk(pid, v)
                    except errors.SegmentationFault:
                        continue
                    vals = {a.read(p, x) for p, x in m}
                    assert len(vals) <= 1, (seed, pid, v, m, vals)
                    break
    for pid in list(live):
        both("exit", pid)
    assert a.leaks() == [], (seed, a.leaks())
    return a.counters()


def run_oom(seed, steps=300):
    """Tiny RAM: an OutOfMemory op must change nothing (metadata, counters), and the
    machine stays in step with the reference when that op is skipped there."""
    rnd = random.Random(seed)
    a = mmbench.open("linux", ram_pages=rnd.choice([2, 4, 8, 16]))
    b = ReferenceMachine(ram_pages=1 << 14)
    live = []; ooms = 0
    def both(name, *args):
        nonlocal ooms
        snap = (a.metadata(), a.counters())
        try:
            ra = (getattr(a, name)(*args), None)
        except errors.OutOfMemory:
            assert (a.metadata(), a.counters()) == snap, (seed, name, args)
            a.check(); ooms += 1
            return None
        except errors.MMError as e:
            ra = (None, type(e))
        try: rb = (getattr(b, name)(*args), None)
        except errors.MMError as e: rb = (None, type(e))
        assert ra == rb, (seed, name, args, ra, rb)
        a.check()
        return ra[0]
    for _ in range(steps):
        if not live or rnd.random() < 0.03:
            live.append(both("spawn")); continue
        pid = rnd.choice(live); vpn = rnd.randrange(24); n = rnd.randrange(1, 8); r = rnd.random()
        if r < 0.15: both("mmap", pid, vpn, n, rnd.random() < 0.3, rnd.random() < 0.8)
        elif r < 0.2: both("munmap", pid, vpn, n)
        elif r < 0.25: both("mprotect", pid, vpn, n, rnd.random() < 0.6)
        elif r < 0.55: both("write", pid, vpn, rnd.randrange(1, 1 << 64))
        elif r < 0.72: both("read", pid, vpn)
        elif r < 0.8:
            if len(live) < 6:
                c = both("fork", pid)
                if c: live.append(c)
        elif r < 0.85: both("exit", pid); live.remove(pid)
        elif r < 0.92: both("mremap", pid, vpn, n, rnd.randrange(24))
        else: both("madvise_dontneed", pid, vpn, n)
    for p in live: both("exit", p)
    assert a.leaks() == []
    return ooms

@pytest.mark.parametrize("seed", range(8))
def test_out_of_memory_changes_nothing(seed):
    run_oom(seed, steps=200)


@pytest.mark.parametrize("seed", range(12))
def test_random_against_reference(seed):
    c = run(seed, steps=200)
    assert c["faults"] > 0


if __name__ == "__main__":
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    tot = {}
    for s in range(seeds):
        for k, v in run(s, steps).items():
            tot[k] = tot.get(k, 0) + v
    print("ok", seeds, "seeds;", {k: v for k, v in tot.items() if v})
