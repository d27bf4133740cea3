/* twin: a process shaped like a program at fork, to time fork's address-space work.
 * twin F A P R SWEEP_MB: F one-page private read-only VMAs of libc (touched), A one-page
 * anonymous VMAs each written (each gets an anon_vma), P more written pages in one anonymous
 * VMA; then R forks: the parent thread's CPU time in fork() (copy_process runs in the
 * parent), the child _exits, the parent waits.  SWEEP_MB > 0: that many MiB written before
 * each fork (evicts the caches).  Prints the median and the lower quartile in ns. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static long long cpu(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec * 1000000000LL + t.tv_nsec; }
static int cmp(const void *a, const void *b) { long long x = *(long long *)a, y = *(long long *)b; return x < y ? -1 : x > y; }
int main(int argc, char **argv) {
    int F = atoi(argv[1]), A = atoi(argv[2]), P = atoi(argv[3]), R = atoi(argv[4]), S = atoi(argv[5]), W = argc > 6 ? atoi(argv[6]) : 0;
    int fd = open("/usr/lib/x86_64-linux-gnu/libc.so.6", O_RDONLY);
    off_t size = lseek(fd, 0, SEEK_END) / 4096;
    volatile char sink = 0;
    for (int i = 0; i < F; i++) {   /* separate VMAs: non-contiguous offsets */
        char *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 4096L * ((2L * i) % size));
        sink ^= p[0];
    }
    for (int i = 0; i < W; i++) {   /* written private file VMAs (a library's data): an anon_vma, one COW page */
        char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 4096L * ((2L * (F + i)) % size));
        p[0] = 1;
    }
    for (int i = 0; i < A; i++) {   /* separate VMAs: a hole between */
        char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        munmap(p + 4096, 4096);
        p[0] = 1;
    }
    if (P) { char *p = mmap(NULL, 4096L * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
             for (long i = 0; i < P; i++) p[i * 4096] = 1; }
    char *sw = S ? mmap(NULL, (size_t)S << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) : NULL;
    if (sw) madvise(sw, (size_t)S << 20, MADV_DONTFORK);
    long long *t = calloc(R, sizeof *t);
    for (int r = 0; r < R; r++) {
        if (sw) memset(sw, r, (size_t)S << 20);
        long long c0 = cpu();
        pid_t pid = fork();
        if (pid == 0) _exit(0);
        t[r] = cpu() - c0;
        waitpid(pid, NULL, 0);
    }
    qsort(t, R, sizeof *t, cmp);
    printf("W=%d F=%d A=%d P=%d sweep=%dMiB: fork (parent CPU) median %lld q1 %lld ns\n", W, F, A, P, S, t[R / 2], t[R / 4]);
    return 0;
}
