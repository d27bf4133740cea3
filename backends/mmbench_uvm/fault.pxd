# fault — the page-fault handler of the UVM design.  See fault.pyx.
from libc.stdint cimport int64_t
from mmbench.blocks.frames cimport pfn_t
from mmbench.blocks.pagetable cimport pt_node_t
from mmbench_uvm.uvm cimport uvm_ctx_t, vm_map_t, vm_map_entry_t

# Resolve a fault at vpn inside entry e (write already checked against the
# entry's protection): MM_OK with the page in *pfn, or MM_ENOMEM (nothing changed).
cdef int uvm_fault(uvm_ctx_t* u, vm_map_t* map, vm_map_entry_t* e, int64_t vpn, bint write,
                   pt_node_t* leaf, pfn_t* pfn) noexcept nogil
