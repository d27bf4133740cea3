/* mmbench host probe: small, self-contained measurements of the host kernel.
 *
 * Every function runs `reps` repetitions of one experiment and writes the
 * elapsed nanoseconds of each repetition's timed phase into out[0..reps).
 * Setup (mmap, first touch of the source pages, fork of a holder process)
 * is never inside the timed phase.  Return 0, or -errno of the first failed
 * system call (the machine is left as it was: every mapping is unmapped and
 * every child reaped before returning).
 */
#ifndef MMBENCH_PROBE_H
#define MMBENCH_PROBE_H
#include <stdint.h>

/* touch `pages` fresh pages and unmap them (pays the hypervisor's first touch) */
int mmp_warm(long pages);
/* the same with 2 MiB-aligned MADV_HUGEPAGE memory (huge folios) */
int mmp_warm_huge(long pages);

/* first write to each of `nvmas` fresh one-page mappings (two pages apart):
 * every fault also gives its VMA an anon_vma (anon_vma_prepare) */
int mmp_islands_fault(long nvmas, int reps, int64_t *out);

/* munmap of `nvmas` one-page mappings, each written first if `touch`;
 * out[] = ns for unmapping all of them */
int mmp_islands_munmap(long nvmas, int touch, int reps, int64_t *out);

/* first touch of `n` pages of a fresh private anonymous mapping, one page
 * every `stride` pages; write = 1: write faults (zero-fill), 0: read faults
 * (shared zero page) */
int mmp_anon_fault(long n, long stride, int write, int reps, int64_t *out);

/* write faults on `n` pages made copy-on-write by a chain of `depth` forks:
 * the deepest process writes every page while its ancestors keep theirs.
 * depth = 0: the parent writes after its only child has exited (COW reuse). */
int mmp_cow(long n, int depth, int reps, int64_t *out);

/* faults on a MAP_SHARED mapping of a memfd of `n` pages.  mode 0: write
 * faults on a fresh file (page-cache miss), 1: write faults on pages already
 * in the page cache (hit), 2: read faults on cached pages (hit, fault-around) */
int mmp_memfd(long n, int mode, int reps, int64_t *out);

/* fork + child exit + wait of a process holding `npages` touched private
 * pages in one mapping plus `nvmas` one-page mappings (written if
 * `touch_vmas`), one repetition per out[] slot */
int mmp_fork(long npages, long nvmas, int touch_vmas, int reps, int64_t *out);

/* the same fork + exit + wait of `nvmas` written one-page mappings, timed in
 * the last process of a chain of `depth` forks (its VMAs carry depth + 1
 * anon_vma_chain links each) */
int mmp_fork_chain(long nvmas, int depth, int reps, int64_t *out);

/* munmap of `n` touched pages; shared = 1: a forked child still maps them */
int mmp_munmap(long n, int shared, int reps, int64_t *out);

/* `pairs` x (mprotect read-only, mprotect read-write) of a one-page mapping
 * whose page is present (touched = 1) or not; out[] = ns per call */
int mmp_mprotect(int touched, long pairs, int reps, int64_t *out);

/* 4 KiB memset (copy = 0) or memcpy (copy = 1) over a warm `bufpages` buffer;
 * out[] = ns for the whole buffer */
int mmp_memops(int copy, long bufpages, int reps, int64_t *out);

/* `calls` x (msgsnd, msgrcv) of one `bytes`-byte System V message (bytes
 * <= 8192); out[] = ns per pair: a kmalloc of that size, two copies, a kfree */
int mmp_kmalloc(long bytes, long calls, int reps, int64_t *out);

/* held-out probes (mmbench calibrate validates against them, fits nothing):
 * mremap of n touched pages from a 2 MiB boundary to `shift` pages past one
 * (shift 0: whole PTE tables move); madvise(DONTNEED) of n
 * touched pages; fork + exit + wait holding n written MAP_SHARED memfd pages;
 * mprotect splitting and re-merging a VMA (ns per call; edge 0: a VMA split in
 * three, the held-out probe; edge 1: split in two, fitted); exit of a child
 * holding n written private pages */
int mmp_mremap(long n, long shift, int reps, int64_t *out);
int mmp_madvise_dontneed(long n, int reps, int64_t *out);
int mmp_fork_memfd(long n, int reps, int64_t *out);
int mmp_mprotect_split(long pairs, int edge, int reps, int64_t *out);
int mmp_exit(long n, int reps, int64_t *out);

/* huge pages (MADV_HUGEPAGE on 2 MiB-aligned ranges): first write / read of
 * `nhuge` ranges (one huge fault each); mprotect (what 0) or munmap (what 1)
 * of the page at offset 256 of each range, populated with huge pages
 * (huge = 1: the PMD splits) or with 4 KiB pages (huge = 0); fork + exit +
 * wait holding `nhuge` huge pages (thp_cut: what 2 is madvise(MADV_DONTNEED);
 * shared = 1 keeps a forked child holding the range while the parent cuts); a forked child writing one byte of each
 * of `nhuge` huge pages (COW: split + 4 KiB copy); MADV_COLLAPSE of `nhuge` ranges written
 * as 4 KiB pages */
int mmp_thp_fault(long nhuge, int write, int reps, int64_t *out);
int mmp_thp_cut(long nhuge, int huge, int what, int shared, int reps, int64_t *out);
int mmp_fork_huge(long nhuge, int reps, int64_t *out);
int mmp_cow_huge(long nhuge, int reps, int64_t *out);
int mmp_thp_collapse(long nhuge, int reps, int64_t *out);

/* the clock of every timed phase: wall = 0 (default) the CPU time of the
 * work (the timing thread's, plus a child's reaped inside the phase), 1
 * CLOCK_MONOTONIC; returns the previous setting */
int mmp_set_clock(int wall);

/* --- building blocks for host structure counts (mmbench calibrate --structures)
 * map `nvmas` one-page mappings two pages apart (written if `touch`); returns
 * the base address or -errno.  Unmap them with mmp_islands_unmap. */
int64_t mmp_islands_map(long nvmas, int touch);
void mmp_islands_unmap(int64_t base, long nvmas);

/* fork a child that only waits: returns its pid (and the fd that releases it
 * in *release) or -errno; mmp_hold_release closes the fd and reaps it */
int mmp_hold_fork(int *release);
int mmp_hold_release(int pid, int release);

#endif
