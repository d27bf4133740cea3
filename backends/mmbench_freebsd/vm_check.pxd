# vm_check — every invariant of the FreeBSD design, as code.  See vm_check.pyx.
from libc.stdint cimport int64_t
from mmbench_freebsd.vm cimport vm_ctx_t

# 0, or -1 with the first violated invariant in *why.
cdef int vm_check_all(vm_ctx_t* vm, void** procs, int64_t nprocs, const char** why) noexcept nogil
