"""Issue #20, item 5: a device access or CPU access that runs out of frames changes nothing.

linux (HMM) and gmem with tiny host and device memory: random CPU and device
loads and stores, forks and exits (no explicit migrate: see
test_oom_conformance for that).  After every OutOfMemory, metadata(), frames in
use per node, the device page-table entries of every process and the structure
counters are what they were before the call, and check() passes; every value
written reads back at the end.  Runs in a child process so a crash is a
failure, not a dead test run.
"""
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(r'''
    import random, sys
    import mmbench
    from mmbench import errors
    from mmbench.conformance import STRUCTURE_COUNTERS

    design, mode, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = random.Random(seed)
    opts = dict(device_fault=mode, device_fault_pages=rng.choice([1, 4, 16])) if design == "linux" else {}
    m = mmbench.open(design, ram_pages=14 + seed % 5, devices=2, device_pages=3 + seed % 3, **opts)

    def state():
        meta = m.metadata()
        frames = tuple(m.frames_used(n) for n in range(3))
        ctr = {k: v for k, v in m.counters().items() if k in STRUCTURE_COUNTERS}
        dev = {(p, d): m.device_entries(p, d) for p in m.live_pids() for d in (1, 2)} \
            if hasattr(m, "device_entries") else {}
        return meta, frames, ctr, dev

    p0 = m.spawn()
    if hasattr(m, "mmap_peer_shared"):
        m.mmap_peer_shared(p0, 0, 40)
    else:
        m.mmap(p0, 0, 40)
    m.mmap(p0, 64, 8, shared=True)
    model, pids, fails = {}, [p0], {}
    for step in range(300):
        op = rng.choice(["write", "write", "dwrite", "dwrite", "dread", "read", "fork", "exit"])
        p = rng.choice(pids)
        v = rng.randrange(40) if rng.random() < 0.85 else 64 + rng.randrange(8)
        dev = rng.choice([1, 2])
        val = rng.randrange(1, 1 << 40)
        before = state()
        try:
            if op in ("write", "dwrite"):
                (m.write(p, v, val) if op == "write" else m.device_write(dev, p, v, val))
                for q in (pids if v >= 64 else [p]):
                    model[(q, v)] = val
            elif op in ("read", "dread"):
                got = m.read(p, v) if op == "read" else m.device_read(dev, p, v)
                assert got == model.get((p, v), 0), (op, p, v, got, model.get((p, v), 0))
            elif op == "fork" and len(pids) < 5:
                c = m.fork(p)
                pids.append(c)
                for (q, w), x in list(model.items()):
                    if q == p:
                        model[(c, w)] = x
            elif op == "exit" and len(pids) > 1:
                m.exit(p)
                pids.remove(p)
                model = {k: x for k, x in model.items() if k[0] != p}
        except errors.OutOfMemory:
            fails[op] = fails.get(op, 0) + 1
            after = state()
            assert after == before, (step, op, p, v, dev,
                                     [(a, b) for a, b in zip(before, after) if a != b])
        m.check()
    for (q, v), x in sorted(model.items()):
        try:
            assert m.read(q, v) == x, (q, v)
        except errors.OutOfMemory:
            pass
    for q in m.live_pids():
        m.exit(q)
    m.check()
    assert m.leaks() == []
    print(fails)
    assert sum(fails.values()) > 0, "memory never ran out"
''')


@pytest.mark.parametrize("design,mode", [("linux", "migrate"), ("linux", "remote"), ("gmem", "-")])
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_device_access_out_of_memory_changes_nothing(design, mode, seed):
    r = subprocess.run([sys.executable, "-c", CHILD, design, mode, str(seed)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, (r.returncode, r.stdout[-2000:], r.stderr[-4000:])
