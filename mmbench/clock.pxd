# mmbench.clock — the per-op clock of the replay engine (C side).
#
# The engine times every op of a trace between two reads of one clock.  Which
# clock decides what the numbers can say: CLOCK_MONOTONIC through the vDSO
# costs ~20-40 ns a pair and, on a VM whose clocksource is read through a
# paravirtual page, can step in 10 ns — a 12 ns op then reads 10 or 20.  The
# time-stamp counter steps once per cycle (~0.4 ns at 2.6 GHz) and a pair of
# reads costs a few tens of cycles, so where the CPU says the TSC is usable
# for time (constant_tsc: same rate at every P-state; nonstop_tsc: keeps
# counting in deep C-states) the engine reads it instead:
#
#     mode 1  rdtscp          (waits for earlier instructions; the CPU has rdtscp)
#     mode 2  lfence; rdtsc   (the same ordering on a CPU without rdtscp)
#     mode 0  clock_gettime(CLOCK_MONOTONIC) in ns (anything else, or MMBENCH_CLOCK=monotonic)
#
# The loop reads raw *ticks* (cycles, or ns in mode 0) and never converts
# inside the timed region: mmbench.clock converts afterwards with the
# frequency it calibrated against CLOCK_MONOTONIC when first imported.
# mmbench.clock.info() says which mode, at what resolution and cost.

from libc.stdint cimport int64_t, uint64_t

cdef extern from *:
    """
    #include <stdint.h>
    #include <time.h>
    #if defined(__x86_64__) || defined(__i386__)
    #include <x86intrin.h>
    #define MMCLOCK_HAVE_TSC 1
    static inline int64_t mmclock_rdtscp(void) { unsigned int aux; return (int64_t)__rdtscp(&aux); }
    static inline int64_t mmclock_lfence_rdtsc(void) { _mm_lfence(); return (int64_t)__rdtsc(); }
    #else
    #define MMCLOCK_HAVE_TSC 0
    static inline int64_t mmclock_rdtscp(void) { return 0; }
    static inline int64_t mmclock_lfence_rdtsc(void) { return 0; }
    #endif
    static inline int64_t mmclock_mono_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    }
    """
    int MMCLOCK_HAVE_TSC
    int64_t mmclock_rdtscp() noexcept nogil
    int64_t mmclock_lfence_rdtsc() noexcept nogil
    int64_t mmclock_mono_ns() noexcept nogil

cdef enum:
    CLOCK_MODE_MONOTONIC = 0
    CLOCK_MODE_RDTSCP = 1
    CLOCK_MODE_LFENCE_RDTSC = 2


cdef inline int64_t clock_ticks(int mode) noexcept nogil:
    """One read of the clock of `mode` (a predictable branch: the mode never
    changes within a replay)."""
    if mode == CLOCK_MODE_RDTSCP:
        return mmclock_rdtscp()
    if mode == CLOCK_MODE_LFENCE_RDTSC:
        return mmclock_lfence_rdtsc()
    return mmclock_mono_ns()
