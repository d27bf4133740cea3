# Pid bookkeeping of trace validation: simulates which pids exist at each record.
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int64_t, uint8_t, int32_t

cdef enum:
    SPAWN = 0
    FORK = 6
    EXIT = 7
    NOP = 13

def check_pids(cnp.ndarray trace, cnp.ndarray[int64_t] live, int64_t first):
    """Return (index, pid) of the first record naming a dead pid, or (-1, 0)."""
    cdef Py_ssize_t n = trace.shape[0], i
    cdef const uint8_t[:] op = trace["op"]
    cdef const int32_t[:] pid = trace["pid"]
    cdef int64_t nxt = first
    cdef int64_t cap = first + n + 1
    cdef cnp.ndarray[uint8_t] alive = np.zeros(cap, dtype=np.uint8)
    cdef int64_t p
    for i in range(live.shape[0]):
        if 0 < live[i] < cap:
            alive[live[i]] = 1
    for i in range(n):
        if op[i] == SPAWN:
            alive[nxt] = 1
            nxt += 1
            continue
        if op[i] == NOP:
            continue
        p = pid[i]
        if p <= 0 or p >= nxt or not alive[p]:
            return i, p
        if op[i] == FORK:
            alive[nxt] = 1
            nxt += 1
        elif op[i] == EXIT:
            alive[p] = 0
    return -1, 0
