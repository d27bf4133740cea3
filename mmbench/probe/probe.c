/* mmbench host probe — the experiments behind `mmbench calibrate`.
 *
 * Each experiment prepares memory outside the clock, then times one phase
 * that provokes exactly one kind of kernel work per page (or per call):
 *
 *   anon fault     fresh private mapping, one store (zero-fill) or one load
 *                  (zero page) per page; stride 512 puts every touch in its
 *                  own 2 MiB window, so each fault also allocates a PTE table
 *   cow            a chain of `depth` forks; the last process stores to every
 *                  page its ancestors still map (copy), or, depth 0, the parent
 *                  stores after its only child exited (reuse in place)
 *   memfd          MAP_SHARED faults on a memfd: a new page-cache page, or a
 *                  page already cached (store: one fault per page; load:
 *                  fault-around maps neighbours too)
 *   fork           fork + child _exit + waitpid of a process with N touched
 *                  pages and V one-page mappings
 *   munmap         unmap N touched pages (shared: a child still maps them,
 *                  so no page is freed)
 *   mprotect       flip a one-page mapping read-only and back; with a present
 *                  page every call rewrites the PTE and flushes the TLB
 *   memops         4 KiB memset / memcpy over a warm buffer (user space)
 *   kmalloc        msgsnd + msgrcv of one N-byte System V message: the kernel
 *                  kmallocs a msg_msg of N bytes plus header, copies N bytes
 *                  in, out, and frees it; over N this prices a byte of a
 *                  variable-size kernel allocation
 *
 *   mremap         move touched pages one page off their 2 MiB phase (every
 *                  PTE moves), or in phase (whole PTE tables move)
 *   thp_*          2 MiB-aligned MADV_HUGEPAGE ranges: huge faults (write:
 *                  a new folio, read: the huge zero page), a split by
 *                  mprotect or munmap of one page, fork and COW of huge
 *                  pages, MADV_COLLAPSE
 *
 * Children only call async-signal-safe functions (the caller may have
 * threads).  Every mapping but the huge-page probes' is MADV_NOHUGEPAGE: those
 * costs are the ones of 4 KiB pages.  Timed phases read the clock chosen by
 * mmp_set_clock (CPU time by default).  Every error path unmaps what it
 * mapped and reaps what it forked before returning -errno.
 */
#define _GNU_SOURCE
#include "probe.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096L

/* The probe's clock (mmp_set_clock).  CPU (the default): the CPU time the
 * work took, CLOCK_THREAD_CPUTIME_ID of the timing thread, plus the CPU time
 * of a child reaped inside the timed phase (wait4's rusage: its fork return
 * and its exit), so time spent waiting for a CPU another process holds is not
 * charged to the kernel work.  WALL: CLOCK_MONOTONIC, as a stopwatch would. */
static int clock_wall;

int mmp_set_clock(int wall)
{
    int was = clock_wall;
    clock_wall = wall ? 1 : 0;
    return was;
}

static inline int64_t ts_ns(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static inline int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(clock_wall ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts_ns(&ts);
}

/* CPU time this process has used so far (a child reports it before it exits) */
static inline int64_t process_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts_ns(&ts);
}

static char *map_anon(long pages)
{
    void *p = mmap(NULL, (size_t)pages * PAGE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    madvise(p, (size_t)pages * PAGE, MADV_NOHUGEPAGE);
    return p;
}

static void store_pages(volatile char *p, long n, long stride)
{
    for (long i = 0; i < n; i++)
        p[i * stride * PAGE] = 1;
}

static long load_pages(volatile char *p, long n, long stride)
{
    long sum = 0;
    for (long i = 0; i < n; i++)
        sum += p[i * stride * PAGE];
    return sum;
}

/* one store (write) or one load per page: the body of most timed phases,
 * always inlined so that it adds no call to them */
static inline __attribute__((always_inline)) void touch_pages(volatile char *p, long n,
                                                              long stride, int write)
{
    if (write)
        store_pages(p, n, stride);
    else
        (void)load_pages(p, n, stride);
}

/* wait for `pid`; 0 if it exited with status 0.  With the CPU clock, the
 * child's whole CPU time (user + system, microseconds) is added to *cpu_ns
 * when cpu_ns is given. */
static int reap_cpu(pid_t pid, int64_t *cpu_ns)
{
    int st;
    struct rusage ru;
    while (wait4(pid, &st, 0, &ru) < 0)
        if (errno != EINTR)
            return -errno;
    if (cpu_ns && !clock_wall)
        *cpu_ns += ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000
                   + ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
    return (WIFEXITED(st) && WEXITSTATUS(st) == 0) ? 0 : -ECHILD;
}

static int reap(pid_t pid)
{
    return reap_cpu(pid, NULL);
}

/* `reps` x (fork + the child's _exit + wait), each timed into out[r] (with the
 * CPU clock, plus the child's CPU time); 0 or -errno of the first failure.
 * The timed phase is the fork, the exit and the reap: nothing else. */
static int time_forks(int reps, int64_t *out)
{
    int rc = 0;
    for (int r = 0; r < reps && rc == 0; r++) {
        int64_t t0 = now_ns();
        pid_t pid = fork();
        if (pid < 0) {
            rc = -errno;
            break;
        }
        if (pid == 0)
            _exit(0);
        int64_t child = 0;
        rc = reap_cpu(pid, &child);
        out[r] = now_ns() - t0 + child;
    }
    return rc;
}

static int full_read(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, (char *)buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -EPIPE;
        got += (size_t)r;
    }
    return 0;
}

int mmp_warm(long pages)
{
    char *p = map_anon(pages);
    if (!p)
        return -errno;
    store_pages(p, pages, 1);
    munmap(p, (size_t)pages * PAGE);
    return 0;
}

static char *map_phase(long pages, long phase, int advice, size_t *len_out);

/* the same with huge pages: the 2 MiB blocks the huge-page probes will be
 * given back are backed by the hypervisor once, here */
int mmp_warm_huge(long pages)
{
    size_t len;
    long n = pages / 512 > 0 ? pages / 512 : 1;
    char *p = map_phase(n * 512, 0, MADV_HUGEPAGE, &len);
    if (!p)
        return -errno;
    for (long i = 0; i < n * 512; i++)
        p[i * PAGE] = 1;
    munmap(p, len);
    return 0;
}

int mmp_anon_fault(long n, long stride, int write, int reps, int64_t *out)
{
    for (int r = 0; r < reps; r++) {
        char *p = map_anon(n * stride);
        if (!p)
            return -errno;
        int64_t t0 = now_ns();
        touch_pages(p, n, stride, write);
        out[r] = now_ns() - t0;
        munmap(p, (size_t)(n * stride) * PAGE);
    }
    return 0;
}

/* in a forked child at depth 1: fork on until depth `depth`; every process
 * but the last waits for its child and exits with its status.  Returns only
 * in the last process. */
static void chain_to(int depth)
{
    for (int d = 1; d < depth; d++) {
        pid_t pid = fork();
        if (pid < 0)
            _exit(2);
        if (pid > 0)
            _exit(reap(pid) == 0 ? 0 : 3);
    }
}

/* in a forked child: extend the chain to `depth` processes, then the last one
 * stores to every page and reports the time on `wfd`.  Never returns. */
static void cow_chain_child(char *p, long n, int depth, int wfd)
{
    chain_to(depth);
    int64_t t0 = now_ns();
    store_pages(p, n, 1);
    int64_t dt = now_ns() - t0;
    _exit(write(wfd, &dt, sizeof dt) == (ssize_t)sizeof dt ? 0 : 4);
}

/* in the last process of a chain: time `reps` fork + exit + wait, report on `wfd` */
static void fork_chain_child(int depth, int reps, int wfd)
{
    chain_to(depth);
    for (int r = 0; r < reps; r++) {
        int64_t t0 = now_ns();
        pid_t pid = fork();
        if (pid < 0)
            _exit(2);
        if (pid == 0)
            _exit(0);
        int64_t child = 0;
        if (reap_cpu(pid, &child))
            _exit(3);
        int64_t dt = now_ns() - t0 + child;
        if (write(wfd, &dt, sizeof dt) != (ssize_t)sizeof dt)
            _exit(4);
    }
    _exit(0);
}

static int cow_once(char *p, long n, int depth, int64_t *dt)
{
    int fd[2];
    if (pipe(fd) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int e = -errno;
        close(fd[0]);
        close(fd[1]);
        return e;
    }
    if (pid == 0) {
        close(fd[0]);
        if (depth == 0)
            _exit(0);
        cow_chain_child(p, n, depth, fd[1]);
    }
    close(fd[1]);
    int rc = 0;
    if (depth == 0) {
        rc = reap(pid);
        int64_t t0 = now_ns();
        store_pages(p, n, 1);
        *dt = now_ns() - t0;
    } else {
        rc = full_read(fd[0], dt, sizeof *dt);
        int rc2 = reap(pid);
        rc = rc ? rc : rc2;
    }
    close(fd[0]);
    return rc;
}

int mmp_cow(long n, int depth, int reps, int64_t *out)
{
    for (int r = 0; r < reps; r++) {
        char *p = map_anon(n);
        if (!p)
            return -errno;
        store_pages(p, n, 1);
        int rc = cow_once(p, n, depth, &out[r]);
        munmap(p, (size_t)n * PAGE);
        if (rc)
            return rc;
    }
    return 0;
}

static int memfd_once(long n, int mode, int64_t *dt)
{
    size_t len = (size_t)n * PAGE;
    int fd = memfd_create("mmbench-probe", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = 0;
    char *p = MAP_FAILED;
    if (ftruncate(fd, (off_t)len) < 0 ||
        (p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
        rc = -errno;
        close(fd);
        return rc;
    }
    if (mode != 0) {            /* fill the page cache, then map it afresh */
        store_pages(p, n, 1);
        munmap(p, len);
        p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            rc = -errno;
            close(fd);
            return rc;
        }
    }
    int64_t t0 = now_ns();
    touch_pages(p, n, 1, mode != 2);
    *dt = now_ns() - t0;
    munmap(p, len);
    close(fd);
    return 0;
}

int mmp_memfd(long n, int mode, int reps, int64_t *out)
{
    for (int r = 0; r < reps; r++) {
        int rc = memfd_once(n, mode, &out[r]);
        if (rc)
            return rc;
    }
    return 0;
}

/* nvmas one-page mappings two pages apart (never adjacent, so never merged) */
static char *map_islands(long nvmas, int touch)
{
    size_t span = (size_t)(2 * nvmas) * PAGE;
    char *base = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    munmap(base, span);
    for (long i = 0; i < nvmas; i++) {
        char *want = base + 2 * i * PAGE;
        void *got = mmap(want, PAGE, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (got != want) {
            int e = got == MAP_FAILED ? errno : EEXIST;
            if (got != MAP_FAILED)
                munmap(got, PAGE);
            for (long j = 0; j < i; j++)
                munmap(base + 2 * j * PAGE, PAGE);
            errno = e;
            return NULL;
        }
        if (touch)
            *(volatile char *)want = 1;
    }
    return base;
}

static void unmap_islands(char *base, long nvmas)
{
    for (long i = 0; i < nvmas; i++)
        munmap(base + 2 * i * PAGE, PAGE);
}

int mmp_islands_fault(long nvmas, int reps, int64_t *out)
{
    for (int r = 0; r < reps; r++) {
        char *base = map_islands(nvmas, 0);
        if (!base)
            return -errno;
        int64_t t0 = now_ns();
        store_pages(base, nvmas, 2);
        out[r] = now_ns() - t0;
        unmap_islands(base, nvmas);
    }
    return 0;
}

int mmp_islands_munmap(long nvmas, int touch, int reps, int64_t *out)
{
    for (int r = 0; r < reps; r++) {
        char *base = map_islands(nvmas, touch);
        if (!base)
            return -errno;
        int64_t t0 = now_ns();
        unmap_islands(base, nvmas);
        out[r] = now_ns() - t0;
    }
    return 0;
}

int mmp_fork(long npages, long nvmas, int touch_vmas, int reps, int64_t *out)
{
    char *big = NULL, *isl = NULL;
    int rc = 0;
    if (npages > 0 && !(big = map_anon(npages)))
        return -errno;
    if (big)
        store_pages(big, npages, 1);
    if (nvmas > 0 && !(isl = map_islands(nvmas, touch_vmas))) {
        rc = -errno;
        goto out;
    }
    rc = time_forks(reps, out);
    if (isl)
        unmap_islands(isl, nvmas);
out:
    if (big)
        munmap(big, (size_t)npages * PAGE);
    return rc;
}

int mmp_fork_chain(long nvmas, int depth, int reps, int64_t *out)
{
    char *isl = NULL;
    int fd[2], rc;
    if (nvmas > 0 && !(isl = map_islands(nvmas, 1)))
        return -errno;
    if (pipe(fd) < 0) {
        rc = -errno;
        goto out;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        fork_chain_child(depth, reps, fd[1]);
    }
    rc = pid < 0 ? -errno : 0;
    close(fd[1]);
    if (pid > 0) {
        rc = full_read(fd[0], out, sizeof *out * (size_t)reps);
        int rc2 = reap(pid);
        rc = rc ? rc : rc2;
    }
    close(fd[0]);
out:
    if (isl)
        unmap_islands(isl, nvmas);
    return rc;
}

/* fork a child that keeps the parent's pages mapped until `*release` closes */
static pid_t hold_pages(int *release)
{
    int fd[2];
    char c;
    if (pipe(fd) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[1]);
        while (read(fd[0], &c, 1) < 0 && errno == EINTR)
            ;
        _exit(0);
    }
    close(fd[0]);
    if (pid < 0)
        close(fd[1]);
    *release = fd[1];
    return pid;
}

int mmp_munmap(long n, int shared, int reps, int64_t *out)
{
    for (int r = 0; r < reps; r++) {
        char *p = map_anon(n);
        int release = -1;
        pid_t holder = 0;
        if (!p)
            return -errno;
        store_pages(p, n, 1);
        if (shared && (holder = hold_pages(&release)) < 0) {
            int e = -errno;
            munmap(p, (size_t)n * PAGE);
            return e;
        }
        int64_t t0 = now_ns();
        munmap(p, (size_t)n * PAGE);
        out[r] = now_ns() - t0;
        if (shared) {
            close(release);
            int rc = reap(holder);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int mmp_mprotect(int touched, long pairs, int reps, int64_t *out)
{
    /* three pages, the outer two PROT_NONE: the middle one is its own VMA and
     * stays so whichever protection it has */
    char *base = mmap(NULL, 3 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return -errno;
    char *mid = base + PAGE;
    int rc = 0;
    if (mprotect(mid, PAGE, PROT_READ | PROT_WRITE) < 0) {
        rc = -errno;
        goto out;
    }
    if (touched)
        *(volatile char *)mid = 1;
    for (int r = 0; r < reps && rc == 0; r++) {
        int64_t t0 = now_ns();
        for (long k = 0; k < pairs; k++) {
            if (mprotect(mid, PAGE, PROT_READ) < 0 ||
                mprotect(mid, PAGE, PROT_READ | PROT_WRITE) < 0) {
                rc = -errno;
                break;
            }
        }
        out[r] = (now_ns() - t0) / (2 * pairs);
    }
out:
    munmap(base, 3 * PAGE);
    return rc;
}

int mmp_memops(int copy, long bufpages, int reps, int64_t *out)
{
    char *dst = map_anon(bufpages);
    char *src = copy ? map_anon(bufpages) : NULL;
    if (!dst || (copy && !src)) {
        int e = -errno;
        if (dst)
            munmap(dst, (size_t)bufpages * PAGE);
        return e;
    }
    memset(dst, 1, (size_t)bufpages * PAGE);
    if (src)
        memset(src, 2, (size_t)bufpages * PAGE);
    for (int r = 0; r < reps; r++) {
        int64_t t0 = now_ns();
        for (long i = 0; i < bufpages; i++) {
            if (copy)
                memcpy(dst + i * PAGE, src + i * PAGE, PAGE);
            else
                memset(dst + i * PAGE, (int)(i + r) & 0xff, PAGE);
            __asm__ volatile("" ::: "memory");
        }
        out[r] = now_ns() - t0;
    }
    munmap(dst, (size_t)bufpages * PAGE);
    if (src)
        munmap(src, (size_t)bufpages * PAGE);
    return 0;
}

int64_t mmp_islands_map(long nvmas, int touch)
{
    char *base = map_islands(nvmas, touch);
    return base ? (int64_t)(intptr_t)base : -errno;
}

void mmp_islands_unmap(int64_t base, long nvmas)
{
    unmap_islands((char *)(intptr_t)base, nvmas);
}

int mmp_hold_fork(int *release)
{
    pid_t pid = hold_pages(release);
    return pid < 0 ? -errno : (int)pid;
}

int mmp_hold_release(int pid, int release)
{
    close(release);
    return reap((pid_t)pid);
}

int mmp_kmalloc(long bytes, long calls, int reps, int64_t *out)
{
    struct { long mtype; char mtext[8192]; } msg;
    int q = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    int rc = 0;
    if (q < 0)
        return -errno;
    msg.mtype = 1;
    memset(msg.mtext, 0x5a, sizeof(msg.mtext));
    for (int r = 0; r < reps && rc == 0; r++) {
        int64_t t0 = now_ns();
        for (long i = 0; i < calls; i++) {
            if (msgsnd(q, &msg, (size_t)bytes, 0) < 0 ||
                msgrcv(q, &msg, (size_t)bytes, 0, 0) < 0) {
                rc = -errno;
                break;
            }
        }
        out[r] = (now_ns() - t0) / calls;
    }
    msgctl(q, IPC_RMID, NULL);
    return rc;
}

/* --- held-out probes (validation only: no price is fitted from them) ------ */

/* a private anonymous mapping of `pages` pages that starts `phase` pages
 * after a 2 MiB boundary, with huge pages allowed (advice MADV_HUGEPAGE) or
 * not (MADV_NOHUGEPAGE); *len_out is what to munmap */
#define HPAGE_PAGES 512L
#define HPAGE (HPAGE_PAGES * PAGE)
static char *map_phase(long pages, long phase, int advice, size_t *len_out)
{
    size_t len = (size_t)pages * PAGE, span = len + (size_t)(phase * PAGE) + 2 * HPAGE;
    char *raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    char *p = (char *)(((uintptr_t)raw + HPAGE - 1) & ~(uintptr_t)(HPAGE - 1)) + phase * PAGE;
    if (p > raw)
        munmap(raw, (size_t)(p - raw));
    if (raw + span > p + len)
        munmap(p + len, (size_t)(raw + span - (p + len)));
    madvise(p, len, advice);
    *len_out = len;
    return p;
}

/* mremap of `n` touched pages from a 2 MiB boundary to an address `shift`
 * pages after another one (MREMAP_MAYMOVE | MREMAP_FIXED).  shift != 0: no
 * PTE table lines up, move_ptes moves every PTE; shift = 0: whole tables
 * move (move_normal_pmd) */
int mmp_mremap(long n, long shift, int reps, int64_t *out)
{
    for (int r = 0; r < reps; r++) {
        size_t len, qlen;
        char *p = map_phase(n, 0, MADV_NOHUGEPAGE, &len);
        if (!p)
            return -errno;
        char *q = map_phase(n, shift, MADV_NOHUGEPAGE, &qlen);
        if (!q) {
            int e = -errno;
            munmap(p, len);
            return e;
        }
        munmap(q, qlen);            /* a hole of the right size to move into */
        store_pages(p, n, 1);
        int64_t t0 = now_ns();
        void *m = mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, q);
        out[r] = now_ns() - t0;
        if (m == MAP_FAILED) {
            int e = -errno;
            munmap(p, len);
            return e;
        }
        munmap(m, len);
    }
    return 0;
}

/* --- huge pages (MADV_HUGEPAGE: this host's THP mode is "madvise") ------- */

/* first touch of `nhuge` 2 MiB-aligned ranges, one access at the start of
 * each.  write: every fault maps a new PMD-sized folio (thp_fault_alloc);
 * read: the huge zero page (thp_zero_page_alloc / its map).  ns for all */
int mmp_thp_fault(long nhuge, int write, int reps, int64_t *out)
{
    for (int r = 0; r < reps; r++) {
        size_t len;
        /* a VM with free page reporting (virtio-balloon) hands free 2 MiB blocks
         * back to the host a few seconds after they are freed; the next huge
         * fault on one pays the host's refault.  Fault and free the blocks just
         * before, so the timed faults get blocks the host still backs. */
        int rc = write ? mmp_warm_huge(nhuge * HPAGE_PAGES) : 0;
        if (rc)
            return rc;
        char *p = map_phase(nhuge * HPAGE_PAGES, 0, MADV_HUGEPAGE, &len);
        if (!p)
            return -errno;
        int64_t t0 = now_ns();
        touch_pages(p, nhuge, HPAGE_PAGES, write);
        out[r] = now_ns() - t0;
        munmap(p, len);
    }
    return 0;
}

/* `nhuge` 2 MiB-aligned ranges, populated with huge pages (huge = 1) or with
 * 4 KiB pages at offsets 0 and 256 (huge = 0); timed: `what` on the one page
 * at offset 256 of each range.  what 0: mprotect read-only (the VMA splits
 * in three; a huge PMD is split first: thp_split_pmd); 1: munmap (the same
 * split, and the huge folio, now partly mapped, goes on the deferred split
 * queue: thp_deferred_split_page) */
int mmp_thp_cut(long nhuge, int huge, int what, int shared, int reps, int64_t *out)
{
    for (int r = 0; r < reps; r++) {
        size_t len;
        int release = -1;
        pid_t holder = 0;
        char *p = map_phase(nhuge * HPAGE_PAGES, 0, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE, &len);
        if (!p)
            return -errno;
        store_pages(p, nhuge, HPAGE_PAGES);
        store_pages(p + HPAGE_PAGES / 2 * PAGE, nhuge, HPAGE_PAGES);
        /* shared: a forked child keeps every folio mapped, so none is
         * AnonExclusive any more when the parent's PMD splits */
        if (shared && (holder = hold_pages(&release)) < 0) {
            int e = -errno;
            munmap(p, len);
            return e;
        }
        int64_t t0 = now_ns();
        int rc = 0;
        for (long i = 0; i < nhuge && rc == 0; i++) {
            char *at = p + i * HPAGE + HPAGE_PAGES / 2 * PAGE;
            rc = what == 1 ? munmap(at, PAGE)
               : what == 2 ? madvise(at, PAGE, MADV_DONTNEED)
               : mprotect(at, PAGE, PROT_READ);
        }
        out[r] = now_ns() - t0;
        if (rc < 0)
            rc = -errno;
        if (shared) {
            close(release);
            int rc2 = reap(holder);
            rc = rc ? rc : rc2;
        }
        munmap(p, len);
        if (rc)
            return rc;
    }
    return 0;
}

/* fork + exit + wait of a process holding `nhuge` written huge pages
 * (copy_huge_pmd copies one PMD each and deposits a page table) */
int mmp_fork_huge(long nhuge, int reps, int64_t *out)
{
    size_t len;
    char *p = map_phase(nhuge * HPAGE_PAGES, 0, MADV_HUGEPAGE, &len);
    int rc = 0;
    if (!p)
        return -errno;
    store_pages(p, nhuge, HPAGE_PAGES);
    rc = time_forks(reps, out);
    munmap(p, len);
    return rc;
}

/* COW of huge pages: a child of a process holding `nhuge` written huge
 * pages writes one byte at offset 0 of each (do_huge_pmd_wp_page: the PMD
 * splits, the one 4 KiB page is copied); the child reports its time */
int mmp_cow_huge(long nhuge, int reps, int64_t *out)
{
    for (int r = 0; r < reps; r++) {
        size_t len;
        char *p = map_phase(nhuge * HPAGE_PAGES, 0, MADV_HUGEPAGE, &len);
        int fd[2], rc = 0;
        if (!p)
            return -errno;
        store_pages(p, nhuge, HPAGE_PAGES);
        if (pipe(fd) < 0) {
            rc = -errno;
            munmap(p, len);
            return rc;
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(fd[0]);
            /* the copies take 4 KiB frames from this CPU's free lists: fill them
             * with frames the host backs (see mmp_thp_fault) before the clock */
            size_t wlen;
            char *w = map_phase(nhuge, 0, MADV_NOHUGEPAGE, &wlen);
            if (w) {
                store_pages(w, nhuge, 1);
                munmap(w, wlen);
            }
            int64_t t0 = now_ns();
            store_pages(p, nhuge, HPAGE_PAGES);
            int64_t dt = now_ns() - t0;
            _exit(write(fd[1], &dt, sizeof dt) == (ssize_t)sizeof dt ? 0 : 4);
        }
        close(fd[1]);
        if (pid < 0)
            rc = -errno;
        else {
            rc = full_read(fd[0], &out[r], sizeof out[r]);
            int rc2 = reap(pid);
            rc = rc ? rc : rc2;
        }
        close(fd[0]);
        munmap(p, len);
        if (rc)
            return rc;
    }
    return 0;
}

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
/* madvise(MADV_COLLAPSE) of `nhuge` 2 MiB-aligned ranges whose 512 pages
 * were each written as 4 KiB pages: one huge folio allocated and filled per
 * range (thp_collapse_alloc), the small pages freed */
/* a sample whose MADV_COLLAPSE failed with EAGAIN (a transient failure: a page or
 * LRU lock another process held, a huge page not available at that moment) is
 * redone from its setup, at most this many times per sample: on this shared host
 * one in a few hundred collapses failed so, and ended whole calibrations */
#define COLLAPSE_RETRIES 5

int mmp_thp_collapse(long nhuge, int reps, int64_t *out)
{
    for (int r = 0, tries = 0; r < reps; r++) {
        size_t len;
        int rc = mmp_warm_huge(nhuge * HPAGE_PAGES);    /* as in mmp_thp_fault */
        if (rc)
            return rc;
        char *p = map_phase(nhuge * HPAGE_PAGES, 0, MADV_NORMAL, &len);
        if (!p)
            return -errno;
        store_pages(p, nhuge * HPAGE_PAGES, 1);
        int64_t t0 = now_ns();
        rc = madvise(p, len, MADV_COLLAPSE);
        out[r] = now_ns() - t0;
        rc = rc < 0 ? -errno : 0;
        munmap(p, len);
        if (rc == -EAGAIN && tries < COLLAPSE_RETRIES) {
            tries++;
            r--;                /* the same sample again, set up afresh */
            continue;
        }
        if (rc)
            return rc;
        tries = 0;
    }
    return 0;
}

/* madvise(MADV_DONTNEED) of `n` touched private pages: zap and free them */
int mmp_madvise_dontneed(long n, int reps, int64_t *out)
{
    size_t len = (size_t)n * PAGE;
    for (int r = 0; r < reps; r++) {
        char *p = map_anon(n);
        if (!p)
            return -errno;
        store_pages(p, n, 1);
        int64_t t0 = now_ns();
        int rc = madvise(p, len, MADV_DONTNEED);
        out[r] = now_ns() - t0;
        munmap(p, len);
        if (rc < 0)
            return -errno;
    }
    return 0;
}

/* fork + exit + wait of a process holding `n` written pages of a MAP_SHARED
 * memfd: a shared file mapping has no anon_vma, so fork copies no PTE (the
 * child would refault from the page cache) */
int mmp_fork_memfd(long n, int reps, int64_t *out)
{
    size_t len = (size_t)n * PAGE;
    int fd = memfd_create("mmbench-probe", MFD_CLOEXEC), rc = 0;
    char *p = MAP_FAILED;
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)len) < 0 ||
        (p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
        rc = -errno;
        close(fd);
        return rc;
    }
    store_pages(p, n, 1);
    rc = time_forks(reps, out);
    munmap(p, len);
    close(fd);
    return rc;
}

/* `pairs` x (mprotect read-only of the middle page of a 3-page writable
 * mapping: split into three VMAs; mprotect it back: merge into one), pages
 * untouched; out[] = ns per call */
/* VMAs a split probe spreads its calls over: the cost of a split and a merge depends
 * on where the VMA sits in the maple tree (whether its node has room, or must split
 * and merge back each time), which one mapping fixes for a whole run: one run here
 * measured a split in two at 2,330 ns per call, others at 1,440-1,650 */
#define SPLIT_PLACES 16

int mmp_mprotect_split(long pairs, int edge, int reps, int64_t *out)
{
    /* edge 0: three-page VMAs whose middle page is flipped (split in three, merged
     * back); edge 1: two-page VMAs between two PROT_NONE guard pages (each its own
     * VMA, whatever its neighbours) whose first page is flipped (one split, one
     * merge).  SPLIT_PLACES such VMAs, mapped apart, the calls going round them. */
    long len = edge ? 4 : 3;
    char *p[SPLIT_PLACES], *gap[SPLIT_PLACES];
    int rc = 0, k;
    for (k = 0; k < SPLIT_PLACES; k++)
        p[k] = gap[k] = NULL;
    for (k = 0; k < SPLIT_PLACES && rc == 0; k++) {
        /* a PROT_NONE gap of k + 1 pages between them moves each one's place in the tree */
        gap[k] = mmap(NULL, (size_t)(k + 1) * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        p[k] = map_anon(len);
        if (gap[k] == MAP_FAILED || !p[k]) {
            if (gap[k] == MAP_FAILED)
                gap[k] = NULL;
            rc = -errno;
            break;
        }
        if (edge && (mprotect(p[k], PAGE, PROT_NONE) < 0 ||
                     mprotect(p[k] + 3 * PAGE, PAGE, PROT_NONE) < 0))
            rc = -errno;
    }
    for (int r = 0; r < reps && rc == 0; r++) {
        int64_t t0 = now_ns();
        for (long i = 0; i < pairs; i++) {
            char *flip = p[i % SPLIT_PLACES] + PAGE;
            if (mprotect(flip, PAGE, PROT_READ) < 0 ||
                mprotect(flip, PAGE, PROT_READ | PROT_WRITE) < 0) {
                rc = -errno;
                break;
            }
        }
        out[r] = (now_ns() - t0) / (2 * pairs);
    }
    for (k = 0; k < SPLIT_PLACES; k++) {
        if (p[k])
            munmap(p[k], (size_t)len * PAGE);
        if (gap[k])
            munmap(gap[k], (size_t)(k + 1) * PAGE);
    }
    return rc;
}

/* exit of a child that wrote `n` private pages: the child signals it is
 * ready and waits.  Wall clock: from "go" to waitpid returning.  CPU clock:
 * the child's CPU time from wait4 minus what it had used when told to go
 * (it writes that into a shared page just before it exits). */
int mmp_exit(long n, int reps, int64_t *out)
{
    volatile int64_t *mark = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
                                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mark == MAP_FAILED)
        return -errno;
    int rc = 0;
    for (int r = 0; r < reps && rc == 0; r++) {
        int up[2], go[2];
        char c = 0;
        if (pipe(up) < 0) {
            rc = -errno;
            break;
        }
        if (pipe(go) < 0) {
            rc = -errno;
            close(up[0]);
            close(up[1]);
            break;
        }
        *mark = 0;
        pid_t pid = fork();
        if (pid == 0) {
            close(up[0]);
            close(go[1]);
            char *p = map_anon(n);
            if (p)
                store_pages(p, n, 1);
            if (write(up[1], &c, 1) < 0)
                _exit(2);
            while (read(go[0], &c, 1) < 0 && errno == EINTR)
                ;
            *mark = process_cpu_ns();
            _exit(p ? 0 : 1);
        }
        close(up[1]);
        close(go[0]);
        rc = pid < 0 ? -errno : full_read(up[0], &c, 1);
        int64_t child = 0;
        int64_t t0 = now_ns();
        close(go[1]);                    /* the child's read returns: it exits */
        if (pid > 0) {
            int rc2 = reap_cpu(pid, &child);
            rc = rc ? rc : rc2;
        }
        out[r] = clock_wall ? now_ns() - t0 : child - *mark;
        close(up[0]);
    }
    munmap((void *)mark, PAGE);
    return rc;
}
