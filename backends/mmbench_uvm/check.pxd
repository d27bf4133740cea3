# check — every invariant of the UVM design, as code.  See check.pyx.
from libc.stdint cimport int64_t
from mmbench_uvm.uvm cimport uvm_ctx_t

# 0, or -1 with the first violated invariant in *why.
cdef int uvm_check_all(uvm_ctx_t* u, void** procs, int64_t nprocs, const char** why) noexcept nogil
