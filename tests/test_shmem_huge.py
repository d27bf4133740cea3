"""shmem huge=: PMD-sized folios in the page cache and PMD mappings of them.

The design's internal mount takes huge= from the thp option (or the design
option ``huge``); faults allocate a 512-page folio at the first fault in an
eligible aligned range of a file and map it with one PMD leaf when the VMA
lines up (do_set_pmd); PMD leaves are split by clearing them (file VMAs), and a
truncation or a reflink break inside a folio splits the folio (split_huge_page).
"""
import random

import pytest

import mmbench
from mmbench import Advice, errors

HP = 512


def _open(**kw):
    kw.setdefault("ram_pages", 1 << 15)
    return mmbench.open("shmem", **kw)


def _c(m, *names):
    c = m.counters()
    return {n: c[n] for n in names}


@pytest.mark.parametrize("shared", [False, True])
def test_aligned_2mib_write_is_one_fault_one_folio_one_pmd(shared):
    m = _open(thp="always")
    p = m.spawn()
    m.mmap(p, HP, HP, shared=shared)
    m.write(p, HP + 7, 1)
    assert _c(m, "faults", "thp_file_alloc", "thp_file_mapped", "pages_zeroed") == {
        "faults": 1, "thp_file_alloc": 1, "thp_file_mapped": 1, "pages_zeroed": HP}
    for v in range(HP, 2 * HP):                 # the rest of the 2 MiB takes no fault
        m.write(p, v, v)
    assert m.counters()["faults"] == 1
    # a file PMD carries no deposited table (x86): PUD + PMD tables only
    assert m.page_table_bytes(p) == 2 * 4096
    # one multi-index entry in the kernel's i_pages: a single xa_node
    assert m.file_info(p, HP)["xa_nodes"] == 1
    assert m.metadata()["xa_node"] == (1, 584)
    m.check()
    m.exit(p)
    assert m.leaks() == []


def test_thp_never_and_advise_follow_huge_mount_option():
    m = _open(thp="never")
    p = m.spawn()
    m.mmap(p, 0, HP)
    m.madvise(p, 0, HP, Advice.HUGEPAGE)
    m.write(p, 0, 1)
    assert m.counters()["thp_file_alloc"] == 0          # huge=never: whatever the advice
    m = _open(thp="madvise")
    p = m.spawn()
    m.mmap(p, 0, 2 * HP)
    m.write(p, 0, 1)
    assert m.counters()["thp_file_alloc"] == 0          # huge=advise without VM_HUGEPAGE
    m.madvise(p, HP, HP, Advice.HUGEPAGE)
    m.write(p, HP, 1)
    assert _c(m, "thp_file_alloc", "thp_file_mapped", "faults") == {
        "thp_file_alloc": 1, "thp_file_mapped": 1, "faults": 2}
    m.check()


def test_nohugepage_and_unaligned_ranges_stay_at_4k():
    m = _open(thp="always")
    p = m.spawn()
    m.mmap(p, 0, HP)
    m.madvise(p, 0, HP, Advice.NOHUGEPAGE)
    m.write(p, 0, 1)
    m.mmap(p, 4 * HP + 100, HP)           # file offset 0 at vpn 4*HP+100: never lines up
    m.write(p, 5 * HP, 1)
    m.mmap(p, 8 * HP, HP - 1)             # the aligned 2 MiB does not fit in the VMA
    m.write(p, 8 * HP, 1)
    assert _c(m, "thp_file_alloc", "faults") == {"thp_file_alloc": 0, "faults": 3}
    m.check()


def test_within_size_needs_the_folio_inside_i_size():
    m = _open(huge="within_size")
    assert m.huge == "within_size"
    p = m.spawn()
    m.mmap(p, 0, 2 * HP - 10, shared=True)       # i_size: 1014 pages
    m.write(p, 0, 1)                             # [0, 512) inside i_size: huge
    m.write(p, HP, 1)                            # [512, 1024) ends beyond it: 4 KiB
    assert m.counters()["thp_file_alloc"] == 1
    with pytest.raises(errors.InvalidArgument):
        _open(huge="sometimes")
    m.check()


def test_shared_partial_munmap_splits_only_the_pmd():
    m = _open(thp="always")
    p = m.spawn()
    m.mmap(p, 0, HP, shared=True)
    m.write(p, 0, 5)
    m.munmap(p, 0, 16)                           # __split_vma splits the PMD leaf
    assert _c(m, "thp_split_pmd", "thp_split_page") == {"thp_split_pmd": 1, "thp_split_page": 0}
    f0 = m.counters()["faults"]
    assert m.read(p, 16) == 0
    assert m.read(p, 17) == 0                    # PTE-mapped page by page: not inside the VMA
    assert m.counters()["faults"] == f0 + 2
    m.check()


def test_private_partial_munmap_splits_the_folio():
    m = _open(thp="always")
    p = m.spawn()
    m.mmap(p, 0, HP)
    for v in range(0, HP, 64):
        m.write(p, v, v + 1)
    m.munmap(p, 0, 16)                           # a private file punches the offsets out
    assert _c(m, "thp_split_pmd", "thp_split_page") == {"thp_split_pmd": 1, "thp_split_page": 1}
    assert m.file_info(p, 16)["nrpages"] == HP - 16
    assert m.read(p, 64) == 65
    m.check()
    assert m.metadata()["xa_node"][0] == 1 + 8   # the multi-index entry is 8 leaves now


def test_dontneed_on_shared_refaults_the_pmd():
    m = _open(thp="always")
    p = m.spawn()
    m.mmap(p, 0, HP, shared=True)
    m.write(p, 3, 9)
    m.madvise(p, 0, 8, Advice.DONTNEED)
    assert m.counters()["thp_split_pmd"] == 1
    assert m.read(p, 3) == 9                     # the page cache keeps shared data
    assert _c(m, "thp_file_mapped", "faults") == {"thp_file_mapped": 2, "faults": 2}
    m.check()


def test_fork_shared_copies_nothing_and_child_faults_one_pmd():
    m = _open(thp="always")
    p = m.spawn()
    m.mmap(p, 0, HP, shared=True)
    m.write(p, 0, 1)
    c = m.fork(p)
    assert m.counters()["fork_ptes_wrprotect"] == 0
    assert m.page_table_bytes(c) == 0
    for v in range(0, HP, 32):
        m.read(c, v)
    assert _c(m, "faults", "thp_file_mapped") == {"faults": 2, "thp_file_mapped": 2}
    m.check()


def test_private_fork_write_splits_the_shared_folio_and_copies_one_page():
    m = _open(thp="always")
    p = m.spawn()
    m.mmap(p, 0, HP)
    m.write(p, 0, 1)
    c = m.fork(p)
    assert m.counters()["fork_ptes_wrprotect"] == 1          # one PMD write-protected
    m.write(c, 10, 2)
    assert _c(m, "pages_copied", "thp_split_page") == {"pages_copied": 1, "thp_split_page": 1}
    assert m.read(p, 10) == 0 and m.read(c, 10) == 2 and m.read(c, 0) == 1
    m.check()
    m.exit(c)
    m.write(p, 11, 3)                                        # alone again: reuse
    assert m.counters()["pages_copied"] == 1
    m.check()


def test_fork_then_parent_write_after_child_exit_reuses_the_pmd():
    m = _open(thp="always")
    p = m.spawn()
    m.mmap(p, 0, HP)
    m.write(p, 0, 1)
    c = m.fork(p)
    m.exit(c)
    m.write(p, 1, 2)               # wp_huge_pmd splits, the fault maps the folio again writable
    assert _c(m, "thp_split_pmd", "thp_file_mapped", "pages_copied", "thp_split_page") == {
        "thp_split_pmd": 1, "thp_file_mapped": 2, "pages_copied": 0, "thp_split_page": 0}
    m.check()


def test_nohugepage_after_the_fact_keeps_the_pmd_and_stops_new_folios():
    m = _open(thp="always")
    p = m.spawn()
    m.mmap(p, 0, 2 * HP)
    m.write(p, 0, 1)
    m.madvise(p, 0, 2 * HP, Advice.NOHUGEPAGE)   # the whole VMA: no split, the leaf stays
    m.check()
    m.write(p, HP, 2)
    assert _c(m, "thp_split_pmd", "thp_file_alloc", "faults") == {
        "thp_split_pmd": 0, "thp_file_alloc": 1, "faults": 2}
    assert m.read(p, 0) == 1
    m.check()


def test_failed_fault_leaves_the_page_tables_as_they_were():
    m = _open(thp="always", ram_pages=HP + 3)
    p = m.spawn()
    m.mmap(p, 0, 2 * HP, shared=True)
    m.write(p, 0, 1)                            # the huge folio takes the aligned run
    for v in range(HP, HP + 3):
        m.write(p, v, 1)                        # the rest of the frames, 4 KiB
    m.madvise(p, HP, 3, Advice.DONTNEED)        # a PTE table stays, empty
    m.mmap(p, 1 << 20, 1)                       # a new 1 GiB region: tables to make
    before = (m.metadata(), m.page_table_bytes(p))
    with pytest.raises(errors.OutOfMemory):
        m.write(p, 1 << 20, 1)
    assert (m.metadata(), m.page_table_bytes(p)) == before
    m.check()


def test_no_aligned_frames_falls_back_to_4k():
    m = _open(thp="always", ram_pages=HP + 100)
    p = m.spawn()
    m.mmap(p, 0, 2 * HP, shared=True)
    m.write(p, 0, 1)                       # takes the one aligned run
    m.write(p, HP, 1)                      # none left: thp_file_fallback, one page
    assert _c(m, "thp_file_alloc", "thp_file_fallback") == {"thp_file_alloc": 1, "thp_file_fallback": 1}
    m.check()


@pytest.mark.parametrize("seed", range(6))
def test_random_huge_ranges_match_the_reference(seed):
    """Seeded random operations over 2 MiB-aligned ranges, thp="always", shared and
    private mappings, against the reference model: same results and values,
    check() after every step, no leaks at the end."""
    from mmbench.reference import ReferenceMachine
    rnd = random.Random(seed)
    opts = [{}, {"anon_file": "per_mm"}, {"zero_page": True}][seed % 3]
    m = _open(thp="always", **opts)
    ref = ReferenceMachine(ram_pages=1 << 15)
    procs = [(m.spawn(), ref.spawn())]
    for mach, pid in ((m, procs[0][0]), (ref, procs[0][1])):
        mach.mmap(pid, 0, 4 * HP, writable=True)
        mach.mmap(pid, 4 * HP, 4 * HP, shared=True, writable=True)

    def on_both(p, r, call):
        out = []
        for mach, pid in ((m, p), (ref, r)):
            try:
                out.append(call(mach, pid))
            except errors.MMError as e:
                out.append(type(e).__name__)
        return out

    for step in range(150):
        k = rnd.randrange(len(procs))
        p, r = procs[k]
        v = rnd.randrange(12 * HP)
        if rnd.random() < 0.5:
            v &= ~(HP - 1)
        n = rnd.choice([1, 10, 100, HP, 2 * HP])
        w = rnd.random() < 0.5
        op = rnd.choice(["write", "write", "write", "read", "read", "fork", "munmap", "mprotect",
                         "dontneed", "mremap", "mmap", "exit"])
        if op == "write":
            got = on_both(p, r, lambda mach, pid: mach.write(pid, v, step + 1))
        elif op == "read":
            got = on_both(p, r, lambda mach, pid: mach.read(pid, v))
        elif op == "munmap":
            got = on_both(p, r, lambda mach, pid: mach.munmap(pid, v, n))
        elif op == "mprotect":
            got = on_both(p, r, lambda mach, pid: mach.mprotect(pid, v, n, w))
        elif op == "dontneed":
            got = on_both(p, r, lambda mach, pid: mach.madvise(pid, v, n, Advice.DONTNEED))
        elif op == "mremap":
            got = on_both(p, r, lambda mach, pid: mach.mremap(pid, v, n, 16 * HP + v))
        elif op == "mmap":
            got = on_both(p, r, lambda mach, pid: mach.mmap(pid, v, n, shared=w, writable=True))
        elif op == "fork":
            if len(procs) >= 4:
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
    c = m.counters()
    assert c["thp_file_alloc"] > 0 and c["thp_file_mapped"] > 0 and c["thp_split_pmd"] > 0
    for p, _ in procs:
        m.exit(p)
    m.check()
    assert m.leaks() == []


def test_conformance_with_huge_always_and_memdesc():
    from mmbench.conformance import default_settings, run_conformance
    run_conformance("shmem", default_settings(max_examples=10, stateful_step_count=30),
                    vpn_span=2048, max_npages=16, options={"thp": "always", "memmap": "memdesc"})


# ---------------------------------------------------------------- the host
# A C probe (built with the host's cc) maps 2 MiB of a memfd at a 2 MiB-aligned
# address, advises it MADV_HUGEPAGE and writes one byte, then the rest of the
# 2 MiB, then unmaps its first 64 KiB and writes two pages of the remainder.  It
# reports minor faults (getrusage), the /proc/vmstat deltas of thp_file_alloc,
# thp_file_mapped and thp_split_pmd, ShmemPmdMapped of the range (smaps) and
# VmPTE.  memfd files live on the internal shm mount, whose huge= is
# /sys/kernel/mm/transparent_hugepage/shmem_enabled: the fixture sets it to
# "advise" for the probe and restores it (root only).  The design runs the same
# steps with thp="madvise" (huge=advise).  The vmstat counters are global: the
# host side must move by at least the design's count.

SHMEM_ENABLED = "/sys/kernel/mm/transparent_hugepage/shmem_enabled"

PROBE = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>

static long vmstat(const char *key) {
    FILE *f = fopen("/proc/vmstat", "r"); char k[128]; long v, r = -1;
    while (fscanf(f, "%127s %ld", k, &v) == 2) if (!strcmp(k, key)) r = v;
    fclose(f); return r;
}
static long status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r"); char line[256]; long r = -1; size_t n = strlen(key);
    while (fgets(line, sizeof line, f)) if (!strncmp(line, key, n) && line[n] == ':') r = atol(line + n + 1);
    fclose(f); return r;
}
static long smaps_kb(uintptr_t addr, const char *key) {
    FILE *f = fopen("/proc/self/smaps", "r"); char line[512]; long r = -1; int in = 0; size_t n = strlen(key);
    while (fgets(line, sizeof line, f)) {
        uintptr_t a, b;
        if (sscanf(line, "%lx-%lx ", &a, &b) == 2) { in = (a <= addr && addr < b); continue; }
        if (in && !strncmp(line, key, n) && line[n] == ':') r = atol(line + n + 1);
    }
    fclose(f); return r;
}
static long minflt(void) { struct rusage u; getrusage(RUSAGE_SELF, &u); return u.ru_minflt; }

int main(void) {
    size_t H = 2UL << 20, P = 4096;
    int fd = memfd_create("mmbench-shmem-huge", 0);
    if (fd < 0 || ftruncate(fd, H)) { perror("memfd"); return 1; }
    char *raw = mmap(NULL, 3 * H, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    raw[0] = 1;                                /* page tables down to the PMD level exist */
    char *p = (char *)(((uintptr_t)raw + P + H - 1) & ~(H - 1));
    if (mmap(p, H, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) != p) { perror("mmap"); return 1; }
    if (madvise(p, H, MADV_HUGEPAGE)) { perror("madvise"); return 1; }
    long pte0 = status_kb("VmPTE"), a0 = vmstat("thp_file_alloc"), m0 = vmstat("thp_file_mapped");
    long f0 = minflt();
    p[0] = 1;
    long f1 = minflt(), a1 = vmstat("thp_file_alloc"), m1 = vmstat("thp_file_mapped");
    long pmd_kb = smaps_kb((uintptr_t)p, "ShmemPmdMapped"), pte1 = status_kb("VmPTE");
    for (size_t i = 0; i < H; i += P) p[i] = 2;
    long f2 = minflt();
    long s0 = vmstat("thp_split_pmd");
    munmap(p, 16 * P);
    long s1 = vmstat("thp_split_pmd");
    long f3 = minflt();
    p[16 * P] = 3; p[17 * P] = 3;
    long f4 = minflt();
    printf("faults=%ld\nthp_file_alloc_delta=%ld\nthp_file_mapped_delta=%ld\nshmem_pmd_kb=%ld\n"
           "vmpte_delta_kb=%ld\nrest_faults=%ld\nthp_split_pmd_delta=%ld\nafter_split_faults=%ld\n",
           f1 - f0, a1 - a0, m1 - m0, pmd_kb, pte1 - pte0, f2 - f1, s1 - s0, f4 - f3);
    return 0;
}
"""


def _host_skip():
    import os
    import shutil
    import sys
    if not sys.platform.startswith("linux"):
        return "needs a Linux host"
    if not os.path.exists(SHMEM_ENABLED):
        return "no " + SHMEM_ENABLED
    if os.geteuid() != 0:
        return "setting shmem_enabled needs root"
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        return "no C compiler to build the probe"
    return None


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    import shutil
    import subprocess
    why = _host_skip()
    if why:
        pytest.skip(why)
    d = tmp_path_factory.mktemp("shmem_huge")
    (d / "probe.c").write_text(PROBE)
    cc = shutil.which("cc") or shutil.which("gcc")
    subprocess.run([cc, "-O1", "-o", str(d / "probe"), str(d / "probe.c")], check=True)
    before = open(SHMEM_ENABLED).read().split("[")[1].split("]")[0]
    try:
        with open(SHMEM_ENABLED, "w") as f:
            f.write("advise")
        out = subprocess.run([str(d / "probe")], check=True, capture_output=True, text=True).stdout
    except OSError as e:
        pytest.skip(f"cannot set {SHMEM_ENABLED}: {e}")
    finally:
        with open(SHMEM_ENABLED, "w") as f:
            f.write(before)
    vals = {k: int(v) for k, v in (line.split("=") for line in out.split())}
    if vals["shmem_pmd_kb"] != 2048:
        pytest.skip(f"the host did not map the memfd with a PMD (no free 2 MiB page?): {vals}")
    return vals


@pytest.fixture(scope="module")
def model():
    """The probe's steps on the design with thp="madvise" (huge=advise)."""
    m = _open(thp="madvise")
    p = m.spawn()
    m.mmap(p, 0, 4)
    m.write(p, 0, 1)                            # page tables down to the PMD level exist
    m.mmap(p, HP, HP, shared=True)
    m.madvise(p, HP, HP, Advice.HUGEPAGE)
    c0, pte0 = m.counters(), m.page_table_bytes(p)
    m.write(p, HP, 1)
    c1, pte1 = m.counters(), m.page_table_bytes(p)
    for v in range(HP, 2 * HP):
        m.write(p, v, 2)
    c2 = m.counters()
    m.munmap(p, HP, 16)
    c3 = m.counters()
    m.write(p, HP + 16, 3)
    m.write(p, HP + 17, 3)
    c4 = m.counters()
    m.check()
    return {"faults": c1["faults"] - c0["faults"],
            "thp_file_alloc_delta": c1["thp_file_alloc"] - c0["thp_file_alloc"],
            "thp_file_mapped_delta": c1["thp_file_mapped"] - c0["thp_file_mapped"],
            "vmpte_delta_kb": (pte1 - pte0) // 1024, "rest_faults": c2["faults"] - c1["faults"],
            "thp_split_pmd_delta": c3["thp_split_pmd"] - c2["thp_split_pmd"],
            "after_split_faults": c4["faults"] - c3["faults"]}


def test_host_one_fault_maps_the_memfd_folio_with_a_pmd(host, model):
    assert host["faults"] == model["faults"] == 1
    assert host["thp_file_alloc_delta"] >= model["thp_file_alloc_delta"] == 1
    assert host["thp_file_mapped_delta"] >= model["thp_file_mapped_delta"] == 1
    assert host["rest_faults"] == model["rest_faults"] == 0


def test_host_file_pmd_deposits_no_page_table(host, model):
    assert host["vmpte_delta_kb"] == model["vmpte_delta_kb"] == 0


def test_host_partial_munmap_splits_the_pmd_and_pages_refault_one_by_one(host, model):
    assert host["thp_split_pmd_delta"] >= model["thp_split_pmd_delta"] == 1
    assert host["after_split_faults"] == model["after_split_faults"] == 2
