"""linux THP against this host's kernel.

A small C probe (compiled with the host's cc into a temporary directory) maps
4 MiB of private anonymous memory, advises the 2 MiB-aligned half inside it
with MADV_HUGEPAGE and writes one byte at its start, then forks and writes
one byte in the child.  It reports minor faults (getrusage), the global
/proc/vmstat thp_fault_alloc and thp_split_pmd deltas, AnonHugePages of the
range (/proc/self/smaps) and VmPTE (/proc/self/status) in parent and child.
The linux design runs the same steps and must give the same counts.  The
vmstat counters are global, so the host side is only required to move by at
least one (other processes may add to it).

Skips, with the reason, when the host is not Linux, THP is off
(/sys/kernel/mm/transparent_hugepage/enabled reads [never]), or no C compiler
is available.
"""
import os
import shutil
import subprocess
import sys

import pytest

import mmbench
from mmbench import Advice

HP = 512
ENABLED = "/sys/kernel/mm/transparent_hugepage/enabled"


def _why_skip():
    if not sys.platform.startswith("linux"):
        return "needs a Linux host"
    try:
        mode = open(ENABLED).read()
    except OSError:
        return "transparent huge pages unavailable (no " + ENABLED + ")"
    if "[never]" in mode:
        return "transparent huge pages are off on this host ([never])"
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        return "no C compiler to build the probe"
    return None


pytestmark = pytest.mark.skipif(_why_skip() is not None, reason=_why_skip() or "")

PROBE = r"""/* Probe THP on the host: prints key=value lines. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

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
static long anon_huge_kb(uintptr_t addr) {
    FILE *f = fopen("/proc/self/smaps", "r"); char line[512]; long r = -1; int in = 0;
    while (fgets(line, sizeof line, f)) {
        uintptr_t a, b;
        if (sscanf(line, "%lx-%lx ", &a, &b) == 2) { in = (a <= addr && addr < b); continue; }
        if (in && !strncmp(line, "AnonHugePages:", 14)) r = atol(line + 14);
    }
    fclose(f); return r;
}
static long minflt(void) { struct rusage u; getrusage(RUSAGE_SELF, &u); return u.ru_minflt; }

int main(int argc, char **argv) {
    int touch = argc < 2 || atoi(argv[1]);
    size_t H = 2UL << 20;
    char *raw = mmap(NULL, 2 * H, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *p = (char *)(((uintptr_t)raw + H - 1) & ~(H - 1));
    if (madvise(p, H, MADV_HUGEPAGE)) { perror("madvise"); return 1; }
    long pte0 = status_kb("VmPTE"), a0 = vmstat("thp_fault_alloc"), f0 = minflt();
    if (touch) p[0] = 1;
    long f1 = minflt(), a1 = vmstat("thp_fault_alloc"), pte1 = status_kb("VmPTE");
    printf("faults=%ld\nthp_fault_alloc_delta=%ld\nanon_huge_kb=%ld\nvmpte_delta_kb=%ld\n",
           f1 - f0, a1 - a0, anon_huge_kb((uintptr_t)p), pte1 - pte0);
    fflush(stdout);
    printf("parent_vmpte_kb=%ld\n", status_kb("VmPTE")); fflush(stdout);
    long s0 = vmstat("thp_split_pmd");
    int fd[2]; pipe(fd);
    pid_t c = fork();
    if (c == 0) {
        long cpte = status_kb("VmPTE");
        long cf0 = minflt();
        if (touch) p[1] = 2;            /* COW on the shared PMD */
        long cf1 = minflt(), s1 = vmstat("thp_split_pmd");
        printf("child_vmpte_kb=%ld\nchild_cow_faults=%ld\nchild_thp_split_pmd_delta=%ld\n"
               "child_anon_huge_kb_after_cow=%ld\n", cpte, cf1 - cf0, s1 - s0, anon_huge_kb((uintptr_t)p));
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, NULL, 0);
    printf("parent_anon_huge_kb_after_child_cow=%ld\nparent_value=%d\n", anon_huge_kb((uintptr_t)p), p[1]);
    return 0;
}
"""


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    d = tmp_path_factory.mktemp("thp")
    (d / "probe.c").write_text(PROBE)
    cc = shutil.which("cc") or shutil.which("gcc")
    subprocess.run([cc, "-O1", "-o", str(d / "probe"), str(d / "probe.c")], check=True)
    out = subprocess.run([str(d / "probe"), "1"], check=True, capture_output=True, text=True).stdout
    vals = dict(line.split("=") for line in out.split())
    vals = {k: int(v) for k, v in vals.items()}
    if vals["anon_huge_kb"] != 2048:
        pytest.skip(f"the host did not map a THP (no free 2 MiB page?): {vals}")
    return vals


@pytest.fixture(scope="module")
def model():
    """The probe's steps on the linux design with thp="madvise" (the host's mode)."""
    m = mmbench.open("linux", thp="madvise", ram_pages=1 << 14)
    p = m.spawn()
    m.mmap(p, 0, 4, writable=True)              # other memory of the process: PUD and PMD exist
    m.write(p, 0, 1)
    m.mmap(p, 2 * HP, 2 * HP, writable=True)    # 4 MiB; its aligned 2 MiB half is [2*HP, 3*HP)
    m.madvise(p, 2 * HP, HP, Advice.HUGEPAGE)
    c0, pte0 = m.counters(), m.vmpte_bytes(p)
    m.write(p, 2 * HP, 1)
    c1, pte1 = m.counters(), m.vmpte_bytes(p)
    r = {"faults": c1["faults"] - c0["faults"], "thp_fault_alloc_delta": c1["thp_fault_alloc"] - c0["thp_fault_alloc"],
         "anon_huge_kb": m.anon_huge_kb(p), "vmpte_delta_kb": (pte1 - pte0) // 1024,
         "parent_vmpte_kb": pte1 // 1024}
    q = m.fork(p)
    r["child_vmpte_kb"] = m.vmpte_bytes(q) // 1024
    c2 = m.counters()
    m.write(q, 2 * HP + 1, 2)
    c3 = m.counters()
    r["child_cow_faults"] = c3["faults"] - c2["faults"]
    r["child_thp_split_pmd_delta"] = c3["thp_split_pmd"] - c2["thp_split_pmd"]
    r["child_anon_huge_kb_after_cow"] = m.anon_huge_kb(q)
    r["parent_anon_huge_kb_after_child_cow"] = m.anon_huge_kb(p)
    m.check()
    return r


def test_one_fault_maps_a_thp(host, model):
    assert host["faults"] == model["faults"] == 1
    assert host["thp_fault_alloc_delta"] >= 1 and model["thp_fault_alloc_delta"] == 1
    assert host["anon_huge_kb"] == model["anon_huge_kb"] == 2048


def test_vmpte_counts_the_deposited_table(host, model):
    # PUD and PMD already existed: VmPTE grows by the deposited PTE table alone
    assert host["vmpte_delta_kb"] == model["vmpte_delta_kb"] == 4


def test_fork_child_has_the_parents_page_tables(host, model):
    # copy_huge_pmd deposits a table for the child too: the child's VmPTE equals the parent's
    assert host["child_vmpte_kb"] == host["parent_vmpte_kb"]
    assert model["child_vmpte_kb"] == model["parent_vmpte_kb"]


def test_cow_after_fork_splits_the_pmd(host, model):
    assert host["child_cow_faults"] == model["child_cow_faults"] == 1
    assert host["child_thp_split_pmd_delta"] >= 1 and model["child_thp_split_pmd_delta"] == 1
    assert host["child_anon_huge_kb_after_cow"] == model["child_anon_huge_kb_after_cow"] == 0
    assert host["parent_anon_huge_kb_after_child_cow"] == model["parent_anon_huge_kb_after_child_cow"] == 2048
