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
# one byte per pid the trace can name.
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
                     int64_t first):
    """(index, code, pid) of the first bad record of a C-contiguous TRACE_DTYPE array,
    or (-1, OK, 0).  `live`: pids alive before the trace; `first`: the next pid."""
    cdef Py_ssize_t n = trace.shape[0], i
    cdef const trace_rec_t* recs = <const trace_rec_t*>cnp.PyArray_DATA(trace)
    cdef int64_t nxt = first
    cdef int64_t cap = first + n + 1
    cdef int64_t p
    cdef int code = C_OK, op
    cdef uint8_t* alive
    if trace.dtype.itemsize != sizeof(trace_rec_t) or not trace.flags.c_contiguous:
        raise ValueError("validate_records needs a C-contiguous TRACE_DTYPE array")
    alive = <uint8_t*>calloc(cap, 1)
    if alive == NULL:
        raise MemoryError()
    for i in range(live.shape[0]):
        if 0 < live[i] < cap:
            alive[live[i]] = 1
    with nogil:
        for i in range(n):
            code = check_one(&recs[i], ndev, devices_ok)
            if code != C_OK:
                break
            op = recs[i].op
            if op == OP_SPAWN:
                alive[nxt] = 1
                nxt += 1
                continue
            if op == OP_NOP:
                continue
            p = recs[i].pid
            if p <= 0 or p >= nxt or not alive[p]:
                code = C_NO_PID
                break
            if op == OP_FORK:
                alive[nxt] = 1
                nxt += 1
            elif op == OP_EXIT:
                alive[p] = 0
    free(alive)
    if code == C_OK:
        return -1, C_OK, 0
    return i, code, (recs[i].pid if code == C_NO_PID else 0)


def columns_block(Py_ssize_t n, dtypes, bint zero=False):
    """Arrays of `n` items of each dtype, carved out of one allocation.

    One block instead of one allocation per column: a large block is backed
    by transparent huge pages (numpy advises them from 4 MiB on), so filling
    the columns takes a few page faults instead of one per 4 KiB, and freeing
    them does not hand the memory back to the kernel piecemeal.
    """
    sizes = [(np.dtype(d).itemsize * n + 63) // 64 * 64 for d in dtypes]
    buf = (np.zeros if zero else np.empty)(max(sum(sizes), 1), dtype=np.uint8)
    out, o = [], 0
    for d, size in zip(dtypes, sizes):
        out.append(buf[o:o + np.dtype(d).itemsize * n].view(d))
        o += size
    return out


@cython.boundscheck(False)
@cython.wraparound(False)
def trace_columns(cnp.ndarray trace, Py_ssize_t n):
    """The first `n` records' fields as contiguous numpy columns, in one pass over the records
    (a results frame wraps them without another copy)."""
    cdef const trace_rec_t* recs = <const trace_rec_t*>cnp.PyArray_DATA(trace)
    cdef Py_ssize_t i
    if trace.dtype.itemsize != sizeof(trace_rec_t) or not trace.flags.c_contiguous or n > trace.shape[0]:
        raise ValueError("trace_columns needs a C-contiguous TRACE_DTYPE array of at least n records")
    cdef cnp.ndarray op, dev, pid, vpn, npages, arg
    op, dev, pid, vpn, npages, arg = columns_block(n, (np.uint8, np.uint8, np.int32, np.int64,
                                                       np.int64, np.uint64))
    cdef uint8_t* op_p = <uint8_t*>cnp.PyArray_DATA(op)
    cdef uint8_t* dev_p = <uint8_t*>cnp.PyArray_DATA(dev)
    cdef int32_t* pid_p = <int32_t*>cnp.PyArray_DATA(pid)
    cdef int64_t* vpn_p = <int64_t*>cnp.PyArray_DATA(vpn)
    cdef int64_t* np_p = <int64_t*>cnp.PyArray_DATA(npages)
    cdef uint64_t* arg_p = <uint64_t*>cnp.PyArray_DATA(arg)
    with nogil:
        for i in range(n):
            op_p[i] = recs[i].op
            dev_p[i] = recs[i].dev
            pid_p[i] = recs[i].pid
            vpn_p[i] = recs[i].vpn
            np_p[i] = recs[i].npages
            arg_p[i] = recs[i].arg
    return {"op": op, "pid": pid, "vpn": vpn, "npages": npages, "arg": arg, "dev": dev}
