/* mmbench: the fork + _exit + wait4 step that the host helper programs time
 * (probe/forkbase.c, recordloop.c).  Header-only and always inlined: it sits
 * inside their timed regions, which must hold the system calls and nothing else. */
#ifndef MMBENCH_FORKWAIT_H
#define MMBENCH_FORKWAIT_H
#include <stdint.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* fork a child that exits at once and reap it, its rusage in *ru.
 * 0; 3: fork failed; 4: wait4 failed or the child did not exit normally
 * (the programs' exit statuses). */
static inline __attribute__((always_inline)) int fork_exit_wait(struct rusage *ru)
{
    int st;
    pid_t pid = fork();
    if (pid < 0)
        return 3;
    if (pid == 0)
        _exit(0);
    if (wait4(pid, &st, 0, ru) < 0 || !WIFEXITED(st))
        return 4;
    return 0;
}

/* user + system CPU time of a rusage, in ns (microsecond resolution) */
static inline int64_t rusage_cpu_ns(const struct rusage *ru)
{
    return ((int64_t)ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1000000000
           + ((int64_t)ru->ru_utime.tv_usec + ru->ru_stime.tv_usec) * 1000;
}

#endif
