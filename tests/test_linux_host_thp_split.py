"""linux deferred split and anon mTHP against this host's kernel.

A small C probe (built with the host's cc in a temporary directory, run as a
subprocess: nothing forks the pytest process) does two experiments and prints
key=value lines:

* "pmd": 4 MiB of private anonymous memory, MADV_HUGEPAGE on its aligned 2 MiB,
  one byte written (a THP), then the last 1 MiB of the THP unmapped.  It reports
  the /proc/vmstat deltas of thp_split_pmd, thp_deferred_split_page and
  thp_split_page across the munmap, and the mapping's Rss / AnonHugePages in
  /proc/self/smaps before and after (smaps walks the page tables; VmRSS comes
  from per-CPU counters and may lag by a batch).
* "mthp": 128 KiB with MADV_HUGEPAGE, one byte written at its 64 KiB-aligned
  start, then the other 15 pages of that 64 KiB; the minor faults (getrusage)
  and the hugepages-64kB/stats anon_fault_alloc delta; then 16 KiB of the folio
  unmapped (its split_deferred delta).  The test sets
  /sys/kernel/mm/transparent_hugepage/hugepages-64kB/enabled to "madvise" for the
  run and restores it (root only; skipped otherwise).

* "collapse": every 5th page of an aligned 2 MiB written at 4 KiB (no advice:
  thp=madvise faults it page by page), then MADV_COLLAPSE: thp_collapse_alloc,
  AnonHugePages, Rss and VmPTE around it, and the faults of a write after it.
* "mremap": a THP moved with mremap(MREMAP_FIXED) to another 2 MiB-aligned
  address: AnonHugePages there, the VmPTE delta and the faults of reading it.

The linux design runs the same steps.  The vmstat / sysfs counters are global,
so the host side is only required to move by at least one where other processes
could add to it; the process's own fault counts and Rss must be equal.
"""
import os
import shutil
import subprocess
import sys

import pytest

import mmbench
from mmbench import Advice

HP = 512
THP = "/sys/kernel/mm/transparent_hugepage"
SIZE64 = THP + "/hugepages-64kB/enabled"


def _why_skip():
    if not sys.platform.startswith("linux"):
        return "needs a Linux host"
    try:
        mode = open(THP + "/enabled").read()
    except OSError:
        return "transparent huge pages unavailable"
    if "[never]" in mode:
        return "transparent huge pages are off on this host ([never])"
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        return "no C compiler to build the probe"
    return None


pytestmark = pytest.mark.skipif(_why_skip() is not None, reason=_why_skip() or "")

PROBE = r"""/* Deferred split and 64 kB mTHP probe: prints key=value lines. */
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
static long sysfs(const char *path) {
    FILE *f = fopen(path, "r"); long r = -1;
    if (f) { if (fscanf(f, "%ld", &r) != 1) r = -1; fclose(f); }
    return r;
}
static long status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r"); char line[256]; long r = -1; size_t n = strlen(key);
    while (fgets(line, sizeof line, f)) if (!strncmp(line, key, n) && line[n] == ':') r = atol(line + n + 1);
    fclose(f); return r;
}
static long smaps_kb(uintptr_t addr, const char *key) {
    FILE *f = fopen("/proc/self/smaps", "r"); char line[512]; long r = -1; int in = 0;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f)) {
        uintptr_t a, b;
        if (sscanf(line, "%lx-%lx ", &a, &b) == 2) { in = (a <= addr && addr < b); continue; }
        if (in && !strncmp(line, key, n) && line[n] == ':') r = atol(line + n + 1);
    }
    fclose(f); return r;
}
static long anon_huge_kb(uintptr_t addr) { return smaps_kb(addr, "AnonHugePages"); }
static long minflt(void) { struct rusage u; getrusage(RUSAGE_SELF, &u); return u.ru_minflt; }

#define S64 "/sys/kernel/mm/transparent_hugepage/hugepages-64kB/stats/"

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "pmd")) {
        size_t H = 2UL << 20;
        char *raw = mmap(NULL, 2 * H, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        char *p = (char *)(((uintptr_t)raw + H - 1) & ~(H - 1));
        if (madvise(p, H, MADV_HUGEPAGE)) { perror("madvise"); return 1; }
        long f0 = minflt();
        p[0] = 1;
        long f1 = minflt();
        long rss0 = smaps_kb((uintptr_t)p, "Rss"), ahp0 = anon_huge_kb((uintptr_t)p);
        long s0 = vmstat("thp_split_pmd"), d0 = vmstat("thp_deferred_split_page"),
             sp0 = vmstat("thp_split_page");
        if (munmap(p + H / 2, H / 2)) { perror("munmap"); return 1; }
        long s1 = vmstat("thp_split_pmd"), d1 = vmstat("thp_deferred_split_page"),
             sp1 = vmstat("thp_split_page");
        printf("faults=%ld\nanon_huge_kb=%ld\nsplit_pmd=%ld\ndeferred_split_page=%ld\n"
               "split_page=%ld\nrss_drop_kb=%ld\nanon_huge_kb_after=%ld\nvalue=%d\n",
               f1 - f0, ahp0, s1 - s0, d1 - d0, sp1 - sp0, rss0 - smaps_kb((uintptr_t)p, "Rss"),
               anon_huge_kb((uintptr_t)p), p[0]);
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "collapse")) {
        size_t H = 2UL << 20;
        char *raw = mmap(NULL, 2 * H, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        char *p = (char *)(((uintptr_t)raw + H - 1) & ~(H - 1));
        for (size_t i = 0; i < H; i += 5 * 4096) p[i] = (char)(i / 4096 + 1);
        long ahp0 = anon_huge_kb((uintptr_t)p), rss0 = smaps_kb((uintptr_t)p, "Rss");
        long pte0 = status_kb("VmPTE"), c0 = vmstat("thp_collapse_alloc");
        int r = madvise(p, H, 25 /* MADV_COLLAPSE */);
        long c1 = vmstat("thp_collapse_alloc"), pte1 = status_kb("VmPTE");
        long f0 = minflt();
        p[4096] = 9;                        /* was none before the collapse */
        long f1 = minflt();
        printf("rc=%d\nanon_huge_kb_before=%ld\nrss_before_kb=%ld\ncollapse_alloc=%ld\n"
               "anon_huge_kb=%ld\nrss_kb=%ld\nvmpte_delta_kb=%ld\nfaults_after=%ld\nvalue=%d\n",
               r, ahp0, rss0, c1 - c0, anon_huge_kb((uintptr_t)p), smaps_kb((uintptr_t)p, "Rss"),
               pte1 - pte0, f1 - f0, p[5 * 4096]);
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "mremap")) {
        size_t H = 2UL << 20;
        char *raw = mmap(NULL, 4 * H, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        char *p = (char *)(((uintptr_t)raw + H - 1) & ~(H - 1));
        char *dst;
        if (madvise(p, H, MADV_HUGEPAGE)) { perror("madvise"); return 1; }
        p[5] = 7;
        long ahp0 = anon_huge_kb((uintptr_t)p);
        char *area = mmap(NULL, 3 * H, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        dst = (char *)(((uintptr_t)area + H - 1) & ~(H - 1));
        long pte0 = status_kb("VmPTE");
        char *q = mremap(p, H, H, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
        if (q == MAP_FAILED) { perror("mremap"); return 1; }
        long pte1 = status_kb("VmPTE");
        long f0 = minflt();
        int v = q[5] + q[H - 1];
        long f1 = minflt();
        printf("anon_huge_kb=%ld\nanon_huge_kb_moved=%ld\nvmpte_delta_kb=%ld\nfaults_after=%ld\nvalue=%d\n",
               ahp0, anon_huge_kb((uintptr_t)q), pte1 - pte0, f1 - f0, v);
        return 0;
    }
    size_t K = 64UL << 10;
    char *raw = mmap(NULL, 2 * K, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (madvise(raw, 2 * K, MADV_HUGEPAGE)) { perror("madvise"); return 1; }
    char *p = (char *)(((uintptr_t)raw + K - 1) & ~(K - 1));
    long a0 = sysfs(S64 "anon_fault_alloc");
    long rss0 = smaps_kb((uintptr_t)p, "Rss");
    long f0 = minflt();             /* nothing but the write between the two readings */
    p[0] = 1;
    long f1 = minflt();
    long a1 = sysfs(S64 "anon_fault_alloc");
    long rss1 = smaps_kb((uintptr_t)p, "Rss");
    long f2 = minflt();             /* the readings' own faults are not the rest's */
    for (int i = 1; i < 16; i++) p[i * 4096] = 1;
    long f3 = minflt();
    long d0 = sysfs(S64 "split_deferred");
    if (munmap(p, 16 << 10)) { perror("munmap"); return 1; }
    long d1 = sysfs(S64 "split_deferred");
    printf("faults=%ld\nanon_fault_alloc=%ld\nrss_kb=%ld\nfaults_rest=%ld\nsplit_deferred=%ld\n",
           f1 - f0, a1 - a0, rss1 - rss0, f3 - f2, d1 - d0);
    return 0;
}
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    d = tmp_path_factory.mktemp("thpsplit")
    (d / "probe.c").write_text(PROBE)
    cc = shutil.which("cc") or shutil.which("gcc")
    subprocess.run([cc, "-O1", "-o", str(d / "probe"), str(d / "probe.c")], check=True)

    def run(kind):
        out = subprocess.run([str(d / "probe"), kind], check=True, capture_output=True, text=True).stdout
        return {k: int(v) for k, v in (line.split("=") for line in out.split())}
    return run


def test_partial_munmap_of_a_thp_is_deferred_as_on_the_host(probe):
    host = probe("pmd")
    if host["anon_huge_kb"] != 2048:
        pytest.skip(f"the host did not map a THP (no free 2 MiB page?): {host}")
    m = mmbench.open("linux", thp="madvise", ram_pages=1 << 14)
    p = m.spawn()
    m.mmap(p, 0, 4 * HP, writable=True)
    m.madvise(p, HP, HP, Advice.HUGEPAGE)
    c0 = m.counters()
    m.write(p, HP, 1)
    c1 = m.counters()
    rss0, used0 = m.rss_kb(p), m.frames_used()
    m.munmap(p, HP + HP // 2, HP // 2)
    c2 = m.counters()
    assert host["faults"] == c1["faults"] - c0["faults"] == 1
    assert host["split_pmd"] >= 1 and c2["thp_split_pmd"] - c1["thp_split_pmd"] == 1
    assert host["deferred_split_page"] >= 1 and c2["thp_deferred_split_page"] - c1["thp_deferred_split_page"] == 1
    # no memory pressure here: the shrinker does not run, nothing is split yet
    assert c2["thp_split_page"] == c1["thp_split_page"] == 0
    # Rss drops by the unmapped MiB, AnonHugePages goes to 0; the frames stay allocated
    assert host["rss_drop_kb"] == rss0 - m.rss_kb(p) == 1024
    assert host["anon_huge_kb_after"] == m.anon_huge_kb(p) == 0
    assert m.frames_used() == used0 and m.split_queue_len == 1
    assert host["value"] == m.read(p, HP) == 1
    m.check()


def test_aligned_mremap_moves_the_thp_whole_as_on_the_host(probe):
    host = probe("mremap")
    if host["anon_huge_kb"] != 2048:
        pytest.skip(f"the host did not map a THP (no free 2 MiB page?): {host}")
    m = mmbench.open("linux", thp="madvise", ram_pages=1 << 14)
    p = m.spawn()
    m.mmap(p, 0, 4, writable=True)               # other memory: the upper tables exist
    m.write(p, 0, 1)
    m.mmap(p, 2 * HP, HP, writable=True)
    m.madvise(p, 2 * HP, HP, Advice.HUGEPAGE)
    m.write(p, 2 * HP + 5, 7)
    pte0 = m.vmpte_bytes(p)
    c0 = m.counters()
    m.mremap(p, 2 * HP, HP, 8 * HP)
    c1 = m.counters()
    v = m.read(p, 8 * HP + 5) + m.read(p, 9 * HP - 1)
    c2 = m.counters()
    # move_huge_pmd: still one THP at the new place, the deposited table moved along
    assert host["anon_huge_kb_moved"] == m.anon_huge_kb(p) == 2048
    assert c1["thp_split_pmd"] == c0["thp_split_pmd"]
    assert host["vmpte_delta_kb"] == (m.vmpte_bytes(p) - pte0) // 1024 == 0
    assert host["faults_after"] == c2["faults"] - c1["faults"] == 0
    assert host["value"] == v == 7
    m.check()


def test_collapse_matches_the_hosts_madv_collapse(probe):
    # MADV_COLLAPSE runs the same collapse_huge_page as khugepaged (synchronously, and
    # without khugepaged's max_ptes_* limits, which this range stays inside anyway)
    host = probe("collapse")
    if host["rc"] != 0 or host["anon_huge_kb"] != 2048:
        pytest.skip(f"the host did not collapse the range (no free 2 MiB page?): {host}")
    m = mmbench.open("linux", thp="madvise", ram_pages=1 << 14, khugepaged=True)
    p = m.spawn()
    m.mmap(p, 0, 4, writable=True)               # other memory: the upper tables exist
    m.write(p, 0, 1)
    m.mmap(p, HP, 2 * HP, writable=True)
    for v in range(0, HP, 5):
        m.write(p, HP + v, v + 1)
    rss0, pte0 = m.rss_kb(p), m.vmpte_bytes(p)
    anon0 = m.anon_huge_kb(p)
    m.madvise(p, HP, HP, Advice.HUGEPAGE)        # khugepaged's eligibility under thp=madvise
    c0 = m.counters()
    assert m.khugepaged_scan(p) == 1
    c1 = m.counters()
    m.write(p, HP + 1, 9)
    c2 = m.counters()
    assert host["anon_huge_kb_before"] == anon0 == 0
    assert host["rss_before_kb"] == rss0 - 4 == 103 * 4      # every 5th page of 512
    assert host["collapse_alloc"] >= 1 and c1["thp_collapse_alloc"] - c0["thp_collapse_alloc"] == 1
    assert host["anon_huge_kb"] == m.anon_huge_kb(p) == 2048
    assert host["rss_kb"] == m.rss_kb(p) - 4 == 2048
    assert host["vmpte_delta_kb"] == (m.vmpte_bytes(p) - pte0) // 1024 == 0   # the table is the deposit
    assert host["faults_after"] == c2["faults"] - c1["faults"] == 0
    assert host["value"] == m.read(p, HP + 5) == 6
    m.check()


@pytest.fixture
def mthp_64k_madvise():
    if os.geteuid() != 0:
        pytest.skip("setting hugepages-64kB/enabled needs root")
    if not os.path.exists(SIZE64):
        pytest.skip("this kernel has no 64 kB anon mTHP size (" + SIZE64 + ")")
    old = open(SIZE64).read().split("[")[1].split("]")[0]
    with open(SIZE64, "w") as f:
        f.write("madvise")
    try:
        yield
    finally:
        with open(SIZE64, "w") as f:
            f.write(old)


def test_64k_mthp_fault_matches_the_host(probe, mthp_64k_madvise):
    host = probe("mthp")
    if host["anon_fault_alloc"] < 1 or host["rss_kb"] != 64:
        pytest.skip(f"the host did not map a 64 kB folio (no free aligned 64 kB?): {host}")
    m = mmbench.open("linux", thp="madvise", mthp_sizes=(64,), ram_pages=1 << 14)
    p = m.spawn()
    m.mmap(p, 0, 32, writable=True)
    m.madvise(p, 0, 32, Advice.HUGEPAGE)
    c0 = m.counters()
    m.write(p, 16, 1)
    c1, rss = m.counters(), m.rss_kb(p)
    for v in range(17, 32):
        m.write(p, v, 1)
    c2 = m.counters()
    m.munmap(p, 16, 4)
    c3 = m.counters()
    assert host["faults"] == c1["faults"] - c0["faults"] == 1
    assert c1["mthp_anon_fault_alloc"] - c0["mthp_anon_fault_alloc"] == 1 <= host["anon_fault_alloc"]
    assert host["rss_kb"] == rss == 64            # the whole folio mapped by the one fault
    assert host["faults_rest"] == c2["faults"] - c1["faults"] == 0
    assert c3["mthp_split_deferred"] - c2["mthp_split_deferred"] == 1 <= host["split_deferred"]
    m.check()
