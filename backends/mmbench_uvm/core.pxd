# The UVM design as a Machine.  See core.pyx.
from libc.stdint cimport int64_t
from mmbench.blocks.mapentry cimport MapEntryMachine
from mmbench_uvm.uvm cimport uvm_ctx_t, vm_map_t

cdef class UVMMachine(MapEntryMachine):
    cdef uvm_ctx_t u
    cdef readonly str thp                 # the thp option (no effect: no superpages)
    cdef inline vm_map_t* map_of(self, int64_t pid) noexcept nogil:
        return <vm_map_t*>self.proc_of(pid)
