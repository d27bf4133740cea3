"""OutOfMemory from simulated-frame exhaustion leaves the machine unchanged.

A machine with very little RAM (ram_pages small) runs writes, forks,
mremaps (and, for shmem, migrations between host and device) until they
fail; after every failed operation metadata() and the structure counts are
what they were before it and check() passes; at the end every value still
reads back as written.  Runs in a child process so a crash is a failure.
"""
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(r'''
    import random, sys
    import mmbench
    from mmbench import errors

    design, seed = sys.argv[1], int(sys.argv[2])
    devices = design == "shmem"
    rng = random.Random(seed)
    kw = dict(devices=1, device_pages=24) if devices else {}
    m = mmbench.open(design, ram_pages=48, **kw)
    p0 = m.spawn()
    m.mmap(p0, 0, 64)
    m.mmap(p0, 100, 16, shared=True)
    model = {}                       # (pid, vpn) -> value written
    pids = [p0]
    failures = {}
    for step in range(400):
        op = rng.choice(["write"] * 6 + ["fork", "mremap", "exit"] + (["migrate"] * 2 if devices else []))
        p = rng.choice(pids)
        before = m.metadata()
        try:
            if op == "write":
                v = rng.randrange(64) if rng.random() < 0.8 else 100 + rng.randrange(16)
                val = rng.randrange(1, 1 << 30)
                m.write(p, v, val)
                if v >= 100:         # shared: every process of the family sees it
                    for q in pids:
                        model[(q, v)] = val
                else:
                    model[(p, v)] = val
            elif op == "fork":
                c = m.fork(p)
                pids.append(c)
                for (q, v), val in list(model.items()):
                    if q == p:
                        model[(c, v)] = val
            elif op == "mremap":
                # move 8 pages far away and back (two mremaps)
                v = rng.randrange(0, 56)
                m.mremap(p, v, 8, 1 << 20)
                m.mremap(p, 1 << 20, 8, v)
            elif op == "exit" and len(pids) > 1:
                pids.remove(p)
                m.exit(p)
                model = {k: val for k, val in model.items() if k[0] != p}
            elif op == "migrate":
                v = rng.randrange(0, 60)
                m.migrate(p, v, 4, rng.choice([0, 1]))
        except errors.OutOfMemory:
            failures[op] = failures.get(op, 0) + 1
            after = m.metadata()
            assert after == before, (op, {k: (before[k], after.get(k)) for k in before
                                          if before[k] != after.get(k)})
        m.check()
    verified = 0
    for (q, v), val in sorted(model.items()):
        # a read of a page on the device needs a host frame: it may fail too
        before = m.metadata()
        try:
            got = m.read(q, v)
        except errors.OutOfMemory:
            assert m.metadata() == before, ("read", q, v)
            continue
        assert got == val, (q, v, val, got)
        verified += 1
    assert verified >= len(model) // 2, (verified, len(model))
    m.check()
    for q in m.live_pids():
        m.exit(q)
    assert m.leaks() == []
    print(failures)
    assert failures.get("write", 0) + failures.get("fork", 0) > 0, failures   # RAM really ran out
''')

DESIGNS = ["linux", "freebsd", "uvm", "shmem"]


@pytest.mark.parametrize("design", DESIGNS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_frame_exhaustion_changes_nothing(design, seed):
    r = subprocess.run([sys.executable, "-c", CHILD, design, str(seed)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, (r.returncode, r.stdout[-2000:], r.stderr[-4000:])
