# The FreeBSD design as a Machine.  See core.pyx.
from libc.stdint cimport int64_t
from mmbench.blocks.mapentry cimport MapEntryMachine
from mmbench_freebsd.vm cimport vm_ctx_t, vm_map_t

cdef class FreeBSDMachine(MapEntryMachine):
    cdef vm_ctx_t vm
    cdef readonly bint pg_ps_enabled      # vm.pmap.pg_ps_enabled (thp != "never")
    cdef inline vm_map_t* map_of(self, int64_t pid) noexcept nogil:
        return <vm_map_t*>self.proc_of(pid)
