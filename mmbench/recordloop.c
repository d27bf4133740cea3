/* mmbench-recordloop: the fork and fault loop `mmbench record` runs twice, once
 * untraced and once under the recorder's own perf events, to measure what tracing
 * adds to (and what the recorded windows leave out of) a fork and a fault.
 *
 * usage: recordloop FORKS PAGES REPS
 *   FORKS times: fork + _exit + wait4 of this (nearly empty) process
 *                -> "fork WALL CPU" per fork: wall-clock ns, and the CPU ns of both
 *                processes (this thread's CPU time across fork and wait, plus the
 *                child's from wait4's rusage, microsecond resolution), which a busy
 *                host does not inflate
 *   REPS times:  map PAGES fresh private anonymous pages and read one byte of each
 *                (one zero-page read fault per page: the calibration's `trap`), then
 *                map PAGES more and write one byte to each (one zero-fill fault per
 *                page, on frames warmed just before), unmapping both
 *                -> "read NS" and "write NS" per repetition: this thread's CPU
 *                nanoseconds per page (CPU time: time spent preempted on a busy host
 *                does not count)
 * Nothing else: the traced run's stream must hold these forks and faults only. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "forkwait.h"

static int64_t clock_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

/* ns of this thread's CPU time per page to fault `pages` fresh pages (write or read).
 * A write first warms as many frames (written and freed just before): a guest whose
 * free pages the hypervisor reclaimed (free page reporting) pays the hypervisor's
 * fault on first use, which is not the kernel's fault path and varies run to run. */
static double touch(long pages, long psz, int write)
{
    char sink = 0;
    if (write) {
        volatile char *w = mmap(NULL, (size_t)pages * psz, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (w == MAP_FAILED)
            return -1.0;
        for (long i = 0; i < pages; i++)
            w[i * psz] = 1;
        munmap((void *)w, (size_t)pages * psz);
    }
    volatile char *p = mmap(NULL, (size_t)pages * psz, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -1.0;
    int64_t t0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    for (long i = 0; i < pages; i++) {
        if (write)
            p[i * psz] = 1;
        else
            sink ^= p[i * psz];
    }
    int64_t t1 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    munmap((void *)p, (size_t)pages * psz);
    (void)sink;
    return (double)(t1 - t0) / pages;
}

int main(int argc, char **argv)
{
    long forks = argc > 1 ? strtol(argv[1], NULL, 10) : 20;
    long pages = argc > 2 ? strtol(argv[2], NULL, 10) : 2000;
    long reps = argc > 3 ? strtol(argv[3], NULL, 10) : 3;
    if (argc != 4 || forks < 0 || forks > 10000 || pages < 1 || pages > 1000000 ||
        reps < 1 || reps > 1000)
        return 2;
    long psz = sysconf(_SC_PAGESIZE);
    for (long r = 0; r < forks; r++) {
        struct rusage ru;
        int64_t t0 = now_ns(), c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
        int err = fork_exit_wait(&ru);
        if (err)
            return err;
        int64_t c1 = clock_ns(CLOCK_THREAD_CPUTIME_ID), t1 = now_ns();
        int64_t child = rusage_cpu_ns(&ru);
        printf("fork %lld %lld\n", (long long)(t1 - t0), (long long)(c1 - c0 + child));
    }
    for (long r = 0; r < reps; r++) {
        double rd = touch(pages, psz, 0), wr = touch(pages, psz, 1);
        if (rd < 0 || wr < 0)
            return 5;
        printf("read %.1f\nwrite %.1f\n", rd, wr);
    }
    return 0;
}
