# Trace validation in one compiled pass (mmbench.trace.validate_trace calls it).
#
# One loop over the records checks, per record and in this order:
#   op code known                                   -> BAD_OP
#   ranges and arguments (vpn/npages in 0..2**36,
#     page ops one page, mremap / move_pages target, mprotect and
#     mmap flag bits, madvise advice)               -> BAD_RANGE
#   device / node exists                            -> BAD_DEV
#   the design has devices at all                   -> NO_DEVICES
#   the pid exists at that point of the trace
#     (SPAWN/FORK create the next pids, EXIT kills) -> NO_PID
# and stops at the first failing record.  Python turns (index, code, pid) into
# the exception; nothing runs when a trace is bad.  The pass reads the records
# through the engine's own trace_rec_t (TRACE_DTYPE's C layout) and allocates
# one byte per pid the trace can name.  READ and WRITE, most of any trace, take a
# short path: check_one's tests for them folded into one.  Given the six field
# columns of a replay's result frame, the same pass also de-interleaves the
# records into them, a pair at a time while the pair is at hand (one read of the
# trace instead of two; replay with frame=True then costs ~1 ns/op more than
# without, not ~4).
cimport cython
from libc.stdint cimport int64_t, uint64_t, uint8_t, int32_t
from libc.stdlib cimport calloc, free
import numpy as np
cimport numpy as cnp

from mmbench.core cimport (trace_rec_t, NR_OPS, OP_SPAWN, OP_MMAP, OP_MPROTECT, OP_READ, OP_WRITE,
                          OP_FORK, OP_EXIT, OP_MREMAP, OP_MIGRATE, OP_DEVICE_READ, OP_DEVICE_WRITE,
                          OP_NOP, OP_MADVISE, OP_MOVE_PAGES, MADV_DONTNEED, MADV_HUGEPAGE, MADV_NOHUGEPAGE, VPN_BITS)

cnp.import_array()

# what validate_records returns as its code
cdef enum:
    C_OK = 0
    C_BAD_OP = 1
    C_BAD_RANGE = 2
    C_BAD_DEV = 3
    C_NO_DEVICES = 4
    C_NO_PID = 5
OK, BAD_OP, BAD_RANGE, BAD_DEV, NO_DEVICES, NO_PID = C_OK, C_BAD_OP, C_BAD_RANGE, C_BAD_DEV, C_NO_DEVICES, C_NO_PID

cdef int64_t VPN_LIM = (<int64_t>1) << VPN_BITS

# The trace vocabulary, from core.pxd's constants (this module imports no Python
# module of mmbench, so mmbench.core and mmbench.trace both take these from here).
VPN_LIMIT = (<object>1) << (<int>VPN_BITS)

# the operations a trace names, in op-code order (mmbench.Op mirrors this)
OP_NAMES = ("SPAWN", "MMAP", "MUNMAP", "MPROTECT", "READ", "WRITE", "FORK", "EXIT",
            "MREMAP", "MADVISE_DONTNEED", "MIGRATE", "DEVICE_READ", "DEVICE_WRITE", "NOP",
            "MADVISE", "MOVE_PAGES")
assert len(OP_NAMES) == NR_OPS, "OP_NAMES out of step with core.pxd"

# madvise advice values (Linux's MADV_* numbers; mmbench.Advice mirrors this)
ADVICE_NAMES = {MADV_DONTNEED: "DONTNEED", MADV_HUGEPAGE: "HUGEPAGE", MADV_NOHUGEPAGE: "NOHUGEPAGE"}


# The trace's fields as result columns: name and dtype, in the order a result frame
# lists them (mmbench.core.ReplayResult.TRACE_FIELDS).
FIELD_DTYPES = {"op": np.uint8, "pid": np.int32, "vpn": np.int64, "npages": np.int64,
                "arg": np.uint64, "dev": np.uint8}

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* where each field of record i goes: one column per field */
    typedef struct {
        uint8_t* op; uint8_t* dev; int32_t* pid; int64_t* vpn; int64_t* npages; uint64_t* arg;
    } mmtc_field_cols_t;
    #if defined(__x86_64__)
    #include <emmintrin.h>
    #endif
    /* De-interleave records [lo, hi) of a TRACE_DTYPE array (32-byte records: op, dev,
       pad, pid | vpn | npages | arg) into the columns.  On x86-64 two records at a time
       with SSE2 (baseline there): the three 8-byte fields of a pair are one 16-byte
       store each, the pids one 8-byte store. */
    static inline void mmtc_put_fields(const mmtc_field_cols_t* c, const void* recs,
                                       Py_ssize_t lo, Py_ssize_t hi) {
        const unsigned char* r = (const unsigned char*)recs;
        Py_ssize_t i = lo;
    #if defined(__x86_64__)
        for (; i + 1 < hi; i += 2) {
            const unsigned char* p = r + 32 * i;
            __m128i a0 = _mm_loadu_si128((const __m128i*)p);          /* head0, vpn0 */
            __m128i b0 = _mm_loadu_si128((const __m128i*)(p + 16));   /* npages0, arg0 */
            __m128i a1 = _mm_loadu_si128((const __m128i*)(p + 32));
            __m128i b1 = _mm_loadu_si128((const __m128i*)(p + 48));
            __m128i heads = _mm_unpacklo_epi64(a0, a1);
            _mm_storeu_si128((__m128i*)(c->vpn + i), _mm_unpackhi_epi64(a0, a1));
            _mm_storeu_si128((__m128i*)(c->npages + i), _mm_unpacklo_epi64(b0, b1));
            _mm_storeu_si128((__m128i*)(c->arg + i), _mm_unpackhi_epi64(b0, b1));
            _mm_storel_epi64((__m128i*)(c->pid + i), _mm_shuffle_epi32(heads, 0x0D));
            c->op[i] = p[0]; c->dev[i] = p[1]; c->op[i + 1] = p[32]; c->dev[i + 1] = p[33];
        }
    #endif
        for (; i < hi; i++) {
            const unsigned char* p = r + 32 * i;
            c->op[i] = p[0]; c->dev[i] = p[1];
            memcpy(c->pid + i, p + 4, 4); memcpy(c->vpn + i, p + 8, 8);
            memcpy(c->npages + i, p + 16, 8); memcpy(c->arg + i, p + 24, 8);
        }
    }
    """
    ctypedef struct field_cols_t "mmtc_field_cols_t":
        uint8_t* op
        uint8_t* dev
        int32_t* pid
        int64_t* vpn
        int64_t* npages
        uint64_t* arg
    void put_fields "mmtc_put_fields"(const field_cols_t* c, const void* recs, Py_ssize_t lo,
                                      Py_ssize_t hi) noexcept nogil

assert sizeof(trace_rec_t) == 32, "mmtc_put_fields assumes TRACE_DTYPE's 32-byte layout"


cdef int point_at(field_cols_t* c, dict cols, Py_ssize_t n) except -1:
    """Point `c` at `cols` (FIELD_DTYPES' six contiguous arrays of at least n items)."""
    cdef cnp.ndarray a
    for name, dt in FIELD_DTYPES.items():
        a = cols[name]
        if a.dtype != dt or not a.flags.c_contiguous or not a.flags.writeable or a.shape[0] < n:
            raise ValueError(f"field column {name!r} must be a writeable contiguous {np.dtype(dt)} "
                             f"array of at least {n} items")
    c.op = <uint8_t*>cnp.PyArray_DATA(cols["op"])
    c.dev = <uint8_t*>cnp.PyArray_DATA(cols["dev"])
    c.pid = <int32_t*>cnp.PyArray_DATA(cols["pid"])
    c.vpn = <int64_t*>cnp.PyArray_DATA(cols["vpn"])
    c.npages = <int64_t*>cnp.PyArray_DATA(cols["npages"])
    c.arg = <uint64_t*>cnp.PyArray_DATA(cols["arg"])
    return 0


@cython.boundscheck(False)
@cython.wraparound(False)
cdef int check_one(const trace_rec_t* r, int64_t ndev, bint devices_ok) noexcept nogil:
    """Everything about one record that does not depend on the records before it."""
    cdef int op = r.op
    if op >= NR_OPS:
        return C_BAD_OP
    if op == OP_SPAWN or op == OP_NOP or op == OP_FORK or op == OP_EXIT:
        return C_OK
    if r.vpn < 0 or r.npages < 1 or r.vpn > VPN_LIM - r.npages:
        return C_BAD_RANGE
    if op == OP_READ or op == OP_WRITE or op == OP_DEVICE_READ or op == OP_DEVICE_WRITE:
        if r.npages != 1:
            return C_BAD_RANGE
        if op == OP_DEVICE_READ or op == OP_DEVICE_WRITE:
            if r.dev < 1 or r.dev > ndev:
                return C_BAD_DEV
            if not devices_ok:
                return C_NO_DEVICES
        return C_OK
    if op == OP_MREMAP or op == OP_MOVE_PAGES:
        if r.arg > <uint64_t>VPN_LIM or <int64_t>r.arg > VPN_LIM - r.npages:
            return C_BAD_RANGE
    elif op == OP_MPROTECT:
        if r.arg > 1:
            return C_BAD_RANGE
    elif op == OP_MMAP:
        if r.arg > 3:
            return C_BAD_RANGE
    elif op == OP_MADVISE:
        if r.arg != MADV_DONTNEED and r.arg != MADV_HUGEPAGE and r.arg != MADV_NOHUGEPAGE:
            return C_BAD_RANGE
    elif op == OP_MIGRATE:
        if r.arg > <uint64_t>ndev:
            return C_BAD_DEV
        if not devices_ok:
            return C_NO_DEVICES
    return C_OK


@cython.boundscheck(False)
@cython.wraparound(False)
def validate_records(cnp.ndarray trace, int64_t ndev, bint devices_ok, cnp.ndarray[int64_t] live,
                     int64_t first, dict fields=None):
    """(index, code, pid) of the first bad record of a C-contiguous TRACE_DTYPE array,
    or (-1, OK, 0).  `live`: pids alive before the trace; `first`: the next pid.
    `fields` (FIELD_DTYPES' columns, e.g. from columns_block) get the records' fields
    in the same pass; past a bad record they hold nothing meaningful."""
    cdef Py_ssize_t n = trace.shape[0], i = 0
    cdef field_cols_t cols
    cdef bint fill = fields is not None
    cdef const trace_rec_t* recs = <const trace_rec_t*>cnp.PyArray_DATA(trace)
    cdef const trace_rec_t* r
    cdef int64_t nxt = first
    cdef int64_t cap = first + n + 1
    cdef int64_t p
    cdef int code = C_OK, op
    cdef uint8_t* alive
    if trace.dtype.itemsize != sizeof(trace_rec_t) or not trace.flags.c_contiguous:
        raise ValueError("validate_records needs a C-contiguous TRACE_DTYPE array")
    if fill:
        point_at(&cols, fields, n)
    alive = <uint8_t*>calloc(cap, 1)
    if alive == NULL:
        raise MemoryError()
    for i in range(live.shape[0]):
        if 0 < live[i] < cap:
            alive[live[i]] = 1
    with nogil:
        for i in range(n):
            r = &recs[i]
            if fill and i & 1:
                put_fields(&cols, recs, i - 1, i + 1)     # a pair at a time, while at hand
            op = r.op
            if op == OP_READ or op == OP_WRITE:
                # most records: check_one's answer for them in one test (one page, in range)
                if ((<uint64_t>r.npages - 1) | (<uint64_t>r.vpn >> VPN_BITS)) != 0:
                    code = C_BAD_RANGE
                    break
            else:
                code = check_one(r, ndev, devices_ok)
                if code != C_OK:
                    break
                if op == OP_SPAWN:
                    alive[nxt] = 1
                    nxt += 1
                    continue
                if op == OP_NOP:
                    continue
            p = r.pid
            if <uint64_t>(p - 1) >= <uint64_t>(nxt - 1) or not alive[p]:     # p <= 0 or p >= nxt
                code = C_NO_PID
                break
            if op == OP_FORK:
                alive[nxt] = 1
                nxt += 1
            elif op == OP_EXIT:
                alive[p] = 0
        if fill and code == C_OK and n & 1:
            put_fields(&cols, recs, n - 1, n)
    free(alive)
    if code == C_OK:
        return -1, C_OK, 0
    return i, code, (recs[i].pid if code == C_NO_PID else 0)


def columns_block(Py_ssize_t n, dtypes):
    """Arrays of `n` items of each dtype, carved out of one allocation.

    One block instead of one allocation per column: a large block is backed
    by transparent huge pages (numpy advises them from 4 MiB on), so filling
    the columns takes a few page faults instead of one per 4 KiB, and freeing
    them does not hand the memory back to the kernel piecemeal.
    """
    sizes = [(np.dtype(d).itemsize * n + 63) // 64 * 64 for d in dtypes]
    buf = np.empty(max(sum(sizes), 1), dtype=np.uint8)
    out, o = [], 0
    for d, size in zip(dtypes, sizes):
        out.append(buf[o:o + np.dtype(d).itemsize * n].view(d))
        o += size
    return out


@cython.boundscheck(False)
@cython.wraparound(False)
def trace_columns(cnp.ndarray trace, Py_ssize_t n):
    """The first `n` records' fields as contiguous numpy columns (FIELD_DTYPES), in one
    pass over the records (a results frame wraps them without another copy)."""
    cdef const trace_rec_t* recs = <const trace_rec_t*>cnp.PyArray_DATA(trace)
    cdef Py_ssize_t i
    cdef field_cols_t c
    if trace.dtype.itemsize != sizeof(trace_rec_t) or not trace.flags.c_contiguous or n > trace.shape[0]:
        raise ValueError("trace_columns needs a C-contiguous TRACE_DTYPE array of at least n records")
    cols = dict(zip(FIELD_DTYPES, columns_block(n, tuple(FIELD_DTYPES.values()))))
    point_at(&c, cols, n)
    with nogil:
        put_fields(&c, recs, 0, n)
    return cols
