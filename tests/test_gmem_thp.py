"""gmem: 2 MiB host mappings of peer-shared memory (the RFC's
do_huge_pmd_anonymous_page path), built on the linux design's THP code.

With devices, a peer-shared 2 MiB block (granularity_pages=512) takes one
fault and one PMD where thp allows it, for reads too (the RFC disables the
zero page for peer-shared memory, the huge zero folio with it); a device fault
zaps the PMD (zap_page_range_single over the block), the block comes home by
PTEs; memory that is not peer-shared stays at 4 KiB (linux's HMM paths).
Without devices gmem is linux, THP included.
"""
import random

import pytest

import mmbench
from mmbench import Advice, errors

HP = 512


def _open(**kw):
    kw.setdefault("ram_pages", 1 << 15)
    kw.setdefault("devices", 1)
    return mmbench.open("gmem", **kw)


def _c(m, *names):
    c = m.counters()
    return {n: c[n] for n in names}


def test_peer_shared_block_is_one_fault_one_pmd_also_for_reads():
    m = _open(thp="always")
    p = m.spawn()
    m.mmap(p, 0, 2 * HP)
    assert m.read(p, 3) == 0                     # a read: a real folio, no huge zero folio
    m.write(p, HP + 1, 5)
    assert _c(m, "faults", "thp_fault_alloc", "thp_zero_page_map", "gm_mapping_alloc") == {
        "faults": 2, "thp_fault_alloc": 2, "thp_zero_page_map": 0, "gm_mapping_alloc": 2}
    for v in range(2 * HP):
        m.write(p, v, v)
    assert m.counters()["faults"] == 2
    assert m.gm_state(p, 0) == ("CPU", 0) and m.gm_state(p, HP) == ("CPU", 0)
    m.check()
    assert any("PMD" in n for n in m.notes())


def test_device_fault_zaps_the_pmd_and_the_block_comes_home_by_ptes():
    m = _open(thp="always")
    p = m.spawn()
    m.mmap(p, 0, HP)
    m.write(p, 7, 7)
    m.device_write(1, p, 9, 9)
    assert m.gm_state(p, 0) == ("DEVICE", 1)
    assert m.counters()["pages_to_device"] == HP
    m.check()
    f0 = m.counters()["faults"]
    assert m.read(p, 7) == 7 and m.read(p, 9) == 9
    assert m.gm_state(p, 0) == ("CPU", 0)
    assert m.counters()["faults"] == f0 + 1          # the whole block came home at once
    assert m.counters()["thp_fault_alloc"] == 1      # ... by PTEs (no second huge folio)
    m.check()


def test_thp_modes_and_granularity():
    m = _open(thp="madvise")
    p = m.spawn()
    m.mmap(p, 0, 2 * HP)
    m.write(p, 0, 1)
    m.madvise(p, HP, HP, Advice.HUGEPAGE)
    m.write(p, HP, 1)
    assert m.counters()["thp_fault_alloc"] == 1
    m = _open(thp="always", granularity_pages=1)     # 4 KiB gm_mappings: no PMD
    p = m.spawn()
    m.mmap(p, 0, HP)
    m.write(p, 0, 1)
    assert m.counters()["thp_fault_alloc"] == 0
    assert any("runs at 4 KiB" in n for n in m.notes())
    m = _open(thp="always", peer_shared="marked")    # unmarked memory: linux HMM, 4 KiB
    p = m.spawn()
    m.mmap(p, 0, HP)
    m.write(p, 0, 1)
    m.mmap_peer_shared(p, HP, HP)
    m.write(p, HP, 1)
    assert m.counters()["thp_fault_alloc"] == 1
    m.check()


def test_without_devices_gmem_is_linux_with_thp():
    g = mmbench.open("gmem", ram_pages=1 << 14, thp="always")
    lx = mmbench.open("linux", ram_pages=1 << 14, thp="always")
    for m in (g, lx):
        p = m.spawn()
        m.mmap(p, 0, 2 * HP)
        m.read(p, 0)
        m.write(p, HP, 1)
        q = m.fork(p)
        m.write(q, HP + 3, 2)
        m.check()
    keys = ("faults", "thp_fault_alloc", "thp_zero_page_map", "thp_split_pmd", "pages_copied")
    assert _c(g, *keys) == _c(lx, *keys)
    gm, lm = g.metadata(), lx.metadata()
    assert {k: gm[k] for k in lm} == lm                  # same structs, same bytes
    assert all(c == 0 for k, (c, _) in gm.items() if k not in lm)   # no gm_mapping, no vm_object


@pytest.mark.parametrize("seed", range(4))
def test_random_huge_ranges_with_a_device_match_the_reference(seed):
    """Seeded random operations over 2 MiB-aligned ranges with device accesses and
    migrations, thp="always", against the reference model; check() every step."""
    from mmbench.reference import ReferenceMachine
    rnd = random.Random(seed)
    m = _open(thp="always")
    ref = ReferenceMachine(ram_pages=1 << 15, devices=1)
    procs = [(m.spawn(), ref.spawn())]
    for mach, pid in ((m, procs[0][0]), (ref, procs[0][1])):
        mach.mmap(pid, 0, 8 * HP, writable=True)

    def on_both(p, r, call):
        out = []
        for mach, pid in ((m, p), (ref, r)):
            try:
                out.append(call(mach, pid))
            except errors.MMError as e:
                out.append(type(e).__name__)
        return out

    for step in range(120):
        k = rnd.randrange(len(procs))
        p, r = procs[k]
        v = rnd.randrange(10 * HP)
        if rnd.random() < 0.5:
            v &= ~(HP - 1)
        n = rnd.choice([1, 10, 100, HP, 2 * HP])
        op = rnd.choice(["write", "write", "read", "read", "dev_write", "dev_read", "migrate",
                         "fork", "munmap", "mprotect", "dontneed", "mremap", "exit"])
        if op == "write":
            got = on_both(p, r, lambda mach, pid: mach.write(pid, v, step + 1))
        elif op == "read":
            got = on_both(p, r, lambda mach, pid: mach.read(pid, v))
        elif op == "dev_write":
            got = on_both(p, r, lambda mach, pid: mach.device_write(1, pid, v, step + 1000))
        elif op == "dev_read":
            got = on_both(p, r, lambda mach, pid: mach.device_read(1, pid, v))
        elif op == "migrate":
            node = rnd.choice([0, 1])
            got = on_both(p, r, lambda mach, pid: mach.migrate(pid, v, n, node))
        elif op == "munmap":
            got = on_both(p, r, lambda mach, pid: mach.munmap(pid, v, n))
        elif op == "mprotect":
            w = rnd.random() < 0.5
            got = on_both(p, r, lambda mach, pid: mach.mprotect(pid, v, n, w))
        elif op == "dontneed":
            got = on_both(p, r, lambda mach, pid: mach.madvise(pid, v, n, Advice.DONTNEED))
        elif op == "mremap":
            got = on_both(p, r, lambda mach, pid: mach.mremap(pid, v, n, 16 * HP + v))
        elif op == "fork":
            if len(procs) >= 3:
                continue
            got = [m.fork(p), ref.fork(r)]
            procs.append(tuple(got))
            got = [None, None]
        else:
            if len(procs) == 1:
                continue
            got = [m.exit(p), ref.exit(r)]
            procs.pop(k)
        assert got[0] == got[1], (seed, step, op, v, n, got)
        m.check()
    assert m.counters()["thp_fault_alloc"] > 0
    for p, _ in procs:
        m.exit(p)
    m.check()
    assert m.leaks() == []


def test_conformance_thp_always_with_devices():
    from mmbench.conformance import default_settings, run_conformance
    run_conformance("gmem", default_settings(max_examples=8, stateful_step_count=25),
                    vpn_span=2048, max_npages=16, options={"thp": "always"})
