# cython: language_level=3
"""Thin Cython face of probe.c: validate in Python, run the C experiment
without the GIL, return one int64 sample (ns) per repetition.

Every function raises mmbench.errors.InvalidArgument for bad sizes and
mmbench.probe.HostProbeError (an MMError and OSError carrying errno) when the host
refuses a system call; it never leaves mappings or children behind.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int64_t

from mmbench import errors as _errors

cnp.import_array()

cdef extern from "probe.h":
    int mmp_warm(long pages) nogil
    int mmp_warm_huge(long pages) nogil
    int mmp_anon_fault(long n, long stride, int write, int reps, int64_t *out) nogil
    int mmp_cow(long n, int depth, int reps, int64_t *out) nogil
    int mmp_memfd(long n, int mode, int reps, int64_t *out) nogil
    int mmp_fork(long npages, long nvmas, int touch_vmas, int reps, int64_t *out) nogil
    int mmp_munmap(long n, int shared, int reps, int64_t *out) nogil
    int mmp_mprotect(int touched, long pairs, int reps, int64_t *out) nogil
    int mmp_memops(int copy, long bufpages, int reps, int64_t *out) nogil
    int mmp_mremap(long n, long shift, int reps, int64_t *out) nogil
    int mmp_thp_fault(long nhuge, int write, int reps, int64_t *out) nogil
    int mmp_thp_cut(long nhuge, int huge, int what, int shared, int reps, int64_t *out) nogil
    int mmp_fork_huge(long nhuge, int reps, int64_t *out) nogil
    int mmp_cow_huge(long nhuge, int reps, int64_t *out) nogil
    int mmp_thp_collapse(long nhuge, int reps, int64_t *out) nogil
    int mmp_set_clock(int wall) nogil
    int mmp_madvise_dontneed(long n, int reps, int64_t *out) nogil
    int mmp_fork_memfd(long n, int reps, int64_t *out) nogil
    int mmp_mprotect_split(long pairs, int edge, int reps, int64_t *out) nogil
    int mmp_exit(long n, int reps, int64_t *out) nogil
    int mmp_kmalloc(long nbytes, long calls, int reps, int64_t *out) nogil
    int mmp_islands_fault(long nvmas, int reps, int64_t *out) nogil
    int mmp_islands_munmap(long nvmas, int touch, int reps, int64_t *out) nogil
    int mmp_fork_chain(long nvmas, int depth, int reps, int64_t *out) nogil
    int64_t mmp_islands_map(long nvmas, int touch) nogil
    void mmp_islands_unmap(int64_t base, long nvmas) nogil
    int mmp_hold_fork(int *release) nogil
    int mmp_hold_release(int pid, int release) nogil

#: upper bounds that keep one experiment far below this host's memory and
#: vm.max_map_count
MAX_PAGES = 1 << 20
MAX_VMAS = 16384
MAX_REPS = 10000
MAX_DEPTH = 64
#: 2 MiB ranges one huge-page experiment may use (1 GiB)
MAX_HUGE = 512
#: the clocks a probe can time with (set_clock)
CLOCKS = ("cpu", "wall")


def _count(x, what, lo, hi):
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or not (lo <= x <= hi):
        raise _errors.InvalidArgument(f"{what} must be an integer in {lo}..{hi}, got {x!r}")
    return int(x)


def _check(int rc, what):
    if rc < 0:
        import os
        from mmbench.probe import HostProbeError
        raise HostProbeError(-rc, f"host probe {what} failed: {os.strerror(-rc)}")


cdef cnp.ndarray _samples(reps):
    return np.zeros(_count(reps, "reps", 1, MAX_REPS), dtype=np.int64)


cdef enum:                      # the experiments _run dispatches to
    P_ANON_FAULT
    P_COW
    P_MEMFD
    P_ISLANDS_FAULT
    P_ISLANDS_MUNMAP
    P_FORK
    P_FORK_CHAIN
    P_MUNMAP
    P_MPROTECT
    P_MEMOPS
    P_KMALLOC
    P_MREMAP
    P_THP_FAULT
    P_THP_CUT
    P_FORK_HUGE
    P_COW_HUGE
    P_THP_COLLAPSE
    P_MADVISE_DONTNEED
    P_FORK_MEMFD
    P_EXIT
    P_MPROTECT_SPLIT


cdef int _call(int f, long a, long b, long c, int r, int64_t *o) noexcept nogil:
    # experiment f with its arguments (a, b, c as its signature takes them);
    # it times itself, so this dispatch is outside every timed phase
    if f == P_ANON_FAULT: return mmp_anon_fault(a, b, <int>c, r, o)
    elif f == P_COW: return mmp_cow(a, <int>b, r, o)
    elif f == P_MEMFD: return mmp_memfd(a, <int>b, r, o)
    elif f == P_ISLANDS_FAULT: return mmp_islands_fault(a, r, o)
    elif f == P_ISLANDS_MUNMAP: return mmp_islands_munmap(a, <int>b, r, o)
    elif f == P_FORK: return mmp_fork(a, b, <int>c, r, o)
    elif f == P_FORK_CHAIN: return mmp_fork_chain(a, <int>b, r, o)
    elif f == P_MUNMAP: return mmp_munmap(a, <int>b, r, o)
    elif f == P_MPROTECT: return mmp_mprotect(<int>a, b, r, o)
    elif f == P_MEMOPS: return mmp_memops(<int>a, b, r, o)
    elif f == P_KMALLOC: return mmp_kmalloc(a, b, r, o)
    elif f == P_MREMAP: return mmp_mremap(a, b, r, o)
    elif f == P_THP_FAULT: return mmp_thp_fault(a, <int>b, r, o)
    elif f == P_THP_CUT: return mmp_thp_cut(a, <int>b, <int>(c & 15), <int>(c >> 4), r, o)
    elif f == P_FORK_HUGE: return mmp_fork_huge(a, r, o)
    elif f == P_COW_HUGE: return mmp_cow_huge(a, r, o)
    elif f == P_THP_COLLAPSE: return mmp_thp_collapse(a, r, o)
    elif f == P_MADVISE_DONTNEED: return mmp_madvise_dontneed(a, r, o)
    elif f == P_FORK_MEMFD: return mmp_fork_memfd(a, r, o)
    elif f == P_EXIT: return mmp_exit(a, r, o)
    elif f == P_MPROTECT_SPLIT: return mmp_mprotect_split(a, <int>b, r, o)
    return 0


cdef cnp.ndarray _run(int f, reps, what, long a=0, long b=0, long c=0):
    """`reps` samples of experiment f (its arguments already checked), or HostProbeError."""
    cdef cnp.ndarray out = _samples(reps)
    cdef int r = out.shape[0], rc
    cdef int64_t *o = <int64_t *>cnp.PyArray_DATA(out)
    with nogil:
        rc = _call(f, a, b, c, r, o)
    _check(rc, what)
    return out


def set_clock(clock):
    """Time every probe with `clock`: "cpu" (the CPU time of the work: the
    timing thread's, plus the CPU time of a child reaped inside the timed
    phase) or "wall" (CLOCK_MONOTONIC).  Returns the previous clock."""
    if clock not in CLOCKS:
        raise _errors.InvalidArgument(f"clock must be one of {CLOCKS}, got {clock!r}")
    return CLOCKS[mmp_set_clock(1 if clock == "wall" else 0)]


def get_clock():
    """The clock the probes time with now ("cpu" or "wall")."""
    cdef int was = mmp_set_clock(0)
    mmp_set_clock(was)
    return CLOCKS[was]


def warm(pages):
    """Touch and unmap `pages` fresh pages (the hypervisor backs them once)."""
    cdef long n = _count(pages, "pages", 1, 4 * MAX_PAGES)
    cdef int rc
    with nogil:
        rc = mmp_warm(n)
    _check(rc, "warm")


def warm_huge(pages):
    """Touch and unmap `pages` pages as huge pages (MADV_HUGEPAGE, 2 MiB-aligned):
    the hypervisor backs the 2 MiB blocks later huge-page probes are given."""
    cdef long n = _count(pages, "pages", 1, 4 * MAX_PAGES)
    cdef int rc
    with nogil:
        rc = mmp_warm_huge(n)
    _check(rc, "warm (huge pages)")


def anon_fault(n, stride=1, write=True, reps=5):
    """ns per repetition to fault `n` fresh private pages (every `stride` pages)."""
    cdef long c = _count(n, "n", 1, MAX_PAGES)
    cdef long s = _count(stride, "stride", 1, 1024)
    _count(c * s, "n * stride", 1, 1 << 28)
    cdef int w = 1 if write else 0
    return _run(P_ANON_FAULT, reps, "anon_fault", c, s, w)


def cow(n, depth=1, reps=5):
    """ns per repetition for the write faults after a chain of `depth` forks
    (depth 0: the parent writes after its only child exited)."""
    cdef long c = _count(n, "n", 1, MAX_PAGES)
    cdef int d = _count(depth, "depth", 0, MAX_DEPTH)
    return _run(P_COW, reps, "cow", c, d)


MEMFD_MODES = {"miss": 0, "hit": 1, "read_hit": 2}


def memfd(n, mode="miss", reps=5):
    """ns per repetition for faults on a shared memfd mapping (see probe.h)."""
    if mode not in MEMFD_MODES:
        raise _errors.InvalidArgument(f"mode must be one of {sorted(MEMFD_MODES)}, got {mode!r}")
    cdef long c = _count(n, "n", 1, MAX_PAGES)
    cdef int m = MEMFD_MODES[mode]
    return _run(P_MEMFD, reps, "memfd", c, m)


def islands_fault(nvmas, reps=5):
    """ns per repetition for the first write to each of `nvmas` fresh one-page VMAs."""
    cdef long v = _count(nvmas, "nvmas", 1, MAX_VMAS)
    return _run(P_ISLANDS_FAULT, reps, "islands_fault", v)


def islands_munmap(nvmas, touch=True, reps=5):
    """ns per repetition to munmap `nvmas` one-page VMAs (each written first if `touch`)."""
    cdef long v = _count(nvmas, "nvmas", 1, MAX_VMAS)
    cdef int t = 1 if touch else 0
    return _run(P_ISLANDS_MUNMAP, reps, "islands_munmap", v, t)


def fork(npages=0, nvmas=0, touch_vmas=False, reps=5):
    """ns per fork + child exit + wait, for a process holding the given memory."""
    cdef long p = _count(npages, "npages", 0, MAX_PAGES)
    cdef long v = _count(nvmas, "nvmas", 0, MAX_VMAS)
    cdef int t = 1 if touch_vmas else 0
    return _run(P_FORK, reps, "fork", p, v, t)


def fork_chain(nvmas, depth=4, reps=5):
    """ns per fork + exit + wait by the last process of a chain of `depth`
    forks, each process holding `nvmas` written one-page VMAs."""
    cdef long v = _count(nvmas, "nvmas", 0, MAX_VMAS)
    cdef int d = _count(depth, "depth", 1, MAX_DEPTH)
    return _run(P_FORK_CHAIN, reps, "fork_chain", v, d)


def munmap(n, shared=False, reps=5):
    """ns per munmap of `n` touched pages (shared: a child still maps them)."""
    cdef long c = _count(n, "n", 1, MAX_PAGES)
    cdef int s = 1 if shared else 0
    return _run(P_MUNMAP, reps, "munmap", c, s)


def mprotect(touched=True, pairs=200, reps=5):
    """ns per mprotect call flipping a one-page mapping (present page or not)."""
    cdef int t = 1 if touched else 0
    cdef long k = _count(pairs, "pairs", 1, 1 << 20)
    return _run(P_MPROTECT, reps, "mprotect", t, k)


def memops(copy=False, bufpages=2048, reps=5):
    """ns per pass of 4 KiB memset (or memcpy) over a warm `bufpages` buffer."""
    cdef int c = 1 if copy else 0
    cdef long b = _count(bufpages, "bufpages", 1, MAX_PAGES)
    return _run(P_MEMOPS, reps, "memops", c, b)


def kmalloc(nbytes, calls=200, reps=5):
    """ns per msgsnd + msgrcv of one `nbytes` System V message (a kernel
    allocation of that size, copied in and out, then freed)."""
    cdef long b = _count(nbytes, "nbytes", 1, 8192)
    cdef long k = _count(calls, "calls", 1, 1 << 20)
    return _run(P_KMALLOC, reps, "kmalloc (System V message queue)", b, k)


def _pages_probe(int f, n, reps, what):
    return _run(f, reps, what, _count(n, "n", 1, MAX_PAGES))


def mremap(n, shift=1, reps=5):
    """ns to mremap `n` touched pages from a 2 MiB boundary to an address `shift`
    pages past one (shift 0: whole PTE tables move, else every PTE moves)."""
    cdef long c = _count(n, "n", 1, MAX_PAGES)
    cdef long sh = _count(shift, "shift", 0, 511)
    return _run(P_MREMAP, reps, "mremap", c, sh)


def thp_fault(nhuge, write=True, reps=5):
    """ns per repetition for the first write (a new huge folio) or read (the huge
    zero page) of `nhuge` 2 MiB-aligned MADV_HUGEPAGE ranges, one access each."""
    cdef long c = _count(nhuge, "nhuge", 1, MAX_HUGE)
    cdef int w = 1 if write else 0
    return _run(P_THP_FAULT, reps, "thp_fault", c, w)


THP_CUTS = {"mprotect": 0, "munmap": 1, "dontneed": 2}


def thp_cut(nhuge, huge=True, what="mprotect", reps=5, shared=False):
    """ns per repetition for mprotect (read-only), munmap or madvise(MADV_DONTNEED)
    of the page at offset 256 of each of `nhuge` 2 MiB ranges mapped with huge
    pages (each PMD splits) or with 4 KiB pages.  `shared`: a forked child holds
    the range during the cuts (the folios are no longer AnonExclusive)."""
    if what not in THP_CUTS:
        raise _errors.InvalidArgument(f"what must be one of {sorted(THP_CUTS)}, got {what!r}")
    cdef long c = _count(nhuge, "nhuge", 1, MAX_HUGE)
    cdef int hg = 1 if huge else 0
    cdef long wt = THP_CUTS[what] | ((1 if shared else 0) << 4)
    return _run(P_THP_CUT, reps, "thp_cut", c, hg, wt)


def fork_huge(nhuge, reps=5):
    """ns per fork + exit + wait of a process holding `nhuge` written huge pages."""
    cdef long c = _count(nhuge, "nhuge", 1, MAX_HUGE)
    return _run(P_FORK_HUGE, reps, "fork (huge pages)", c)


def cow_huge(nhuge, reps=5):
    """ns per repetition for a forked child's first write to each of `nhuge`
    huge pages its parent maps (each PMD splits, one 4 KiB page is copied)."""
    cdef long c = _count(nhuge, "nhuge", 1, MAX_HUGE)
    return _run(P_COW_HUGE, reps, "cow (huge pages)", c)


def thp_collapse(nhuge, reps=5):
    """ns per madvise(MADV_COLLAPSE) of `nhuge` 2 MiB ranges written as 4 KiB pages."""
    cdef long c = _count(nhuge, "nhuge", 1, MAX_HUGE)
    return _run(P_THP_COLLAPSE, reps, "thp_collapse (MADV_COLLAPSE)", c)


def madvise_dontneed(n, reps=5):
    """ns for madvise(MADV_DONTNEED) of `n` touched private pages."""
    return _pages_probe(P_MADVISE_DONTNEED, n, reps, "madvise")


def fork_memfd(n, reps=5):
    """ns per fork + exit + wait of a process holding `n` written shared memfd pages."""
    return _pages_probe(P_FORK_MEMFD, n, reps, "fork (memfd)")


def exit_process(n, reps=5):
    """ns from telling a child holding `n` written private pages to exit to reaping it."""
    return _pages_probe(P_EXIT, n, reps, "exit")


def mprotect_split(pairs=200, reps=5, edge=False):
    """ns per mprotect call that splits (or re-merges) a VMA: its middle page (a split
    in three; edge=False) or the first page of a two-page VMA between guard pages (a
    split in two; edge=True)."""
    return _run(P_MPROTECT_SPLIT, reps, "mprotect (split)", _count(pairs, "n", 1, MAX_PAGES), 1 if edge else 0)


class Islands:
    """`nvmas` one-page mappings held by this process until ``release()``
    (a context manager): the host-side twin of a workload with many VMAs."""

    def __init__(self, nvmas, touch=True):
        self.nvmas = _count(nvmas, "nvmas", 1, MAX_VMAS)
        cdef int64_t base
        cdef long v = self.nvmas
        cdef int t = 1 if touch else 0
        with nogil:
            base = mmp_islands_map(v, t)
        if base < 0:
            _check(<int>base, "islands")
        self.base = base

    def release(self):
        cdef int64_t base
        cdef long v
        if self.base is not None:
            base, v = self.base, self.nvmas
            self.base = None
            with nogil:
                mmp_islands_unmap(base, v)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


class HeldChild:
    """A forked child that only waits (so it keeps a copy of this process's
    address space) until ``release()``; a context manager."""

    def __init__(self):
        cdef int fd = -1, pid
        with nogil:
            pid = mmp_hold_fork(&fd)
        _check(pid, "fork")
        self.pid, self.fd = pid, fd

    def release(self):
        cdef int rc
        if self.pid is not None:
            pid, fd = self.pid, self.fd
            self.pid = None
            rc = mmp_hold_release(pid, fd)
            _check(rc, "wait")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
