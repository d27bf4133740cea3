/* mmbench-forkbase: fork + _exit + waitpid timed in a process that holds
 * almost nothing (a small C program), so the host's per-fork base cost is not
 * hidden under the address space of the Python process running the probe.
 * usage: forkbase REPS [cpu|wall [NHUGE [EXIT_PAGES]]]  -> one line per repetition:
 * nanoseconds.
 * NHUGE > 0: the process first maps and writes NHUGE 2 MiB-aligned
 * MADV_HUGEPAGE ranges (huge pages), so each fork copies NHUGE huge PMDs.
 * EXIT_PAGES > 0: instead of the fork, time the exit of a child that wrote
 * EXIT_PAGES private pages (probe.c's mmp_exit, linked in), so the exit tears
 * down those pages and this program's few, not a copy of the Python process.
 * By default the CPU time of the fork (this thread's) plus the child's (its
 * rusage from wait4): waiting for a CPU another process holds is not counted;
 * "wall": CLOCK_MONOTONIC. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../forkwait.h"
#include "probe.h"

static int wall;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(wall ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* REPS timed exits of a child holding `pages` written pages, one line each */
static int time_exits(long pages, long reps)
{
    int64_t out[2];
    mmp_set_clock(wall);
    for (long r = -1; r < reps; r++) {    /* one untimed exit warms the allocator */
        if (mmp_exit(pages, 1, out) != 0)
            return 6;
        if (r >= 0)
            printf("%lld\n", (long long)out[0]);
    }
    return 0;
}

int main(int argc, char **argv)
{
    long reps = argc > 1 ? strtol(argv[1], NULL, 10) : 5;
    if (reps < 1 || reps > 100000)
        return 2;
    wall = argc > 2 && strcmp(argv[2], "wall") == 0;
    long nhuge = argc > 3 ? strtol(argv[3], NULL, 10) : 0;
    if (nhuge < 0 || nhuge > 4096)
        return 2;
    long exit_pages = argc > 4 ? strtol(argv[4], NULL, 10) : 0;
    if (exit_pages < 0 || exit_pages > (1L << 22))
        return 2;
    if (exit_pages > 0)
        return time_exits(exit_pages, reps);
    if (nhuge > 0) {
        size_t huge = 2UL << 20, len = (size_t)nhuge * huge;
        char *raw = mmap(NULL, len + huge, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (raw == MAP_FAILED)
            return 5;
        char *p = (char *)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));
        madvise(p, len, MADV_HUGEPAGE);
        for (long i = 0; i < nhuge; i++)
            p[i * huge] = 1;
    }
    for (long r = -2; r < reps; r++) {     /* two untimed forks warm the allocator */
        struct rusage ru;
        int64_t t0 = now_ns();
        int err = fork_exit_wait(&ru);
        if (err)
            return err;
        int64_t dt = now_ns() - t0;
        if (!wall)
            dt += rusage_cpu_ns(&ru);
        if (r >= 0)
            printf("%lld\n", (long long)dt);
    }
    return 0;
}
