/* mmbench-forkbase: fork + _exit + waitpid timed in a process that holds
 * almost nothing (a small C program), so the host's per-fork base cost is not
 * hidden under the address space of the Python process running the probe.
 * usage: forkbase REPS   -> one line per repetition: nanoseconds */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    long reps = argc > 1 ? strtol(argv[1], NULL, 10) : 5;
    if (reps < 1 || reps > 100000)
        return 2;
    for (long r = 0; r < reps; r++) {
        int st;
        int64_t t0 = now_ns();
        pid_t pid = fork();
        if (pid < 0)
            return 3;
        if (pid == 0)
            _exit(0);
        if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st))
            return 4;
        printf("%lld\n", (long long)(now_ns() - t0));
    }
    return 0;
}
