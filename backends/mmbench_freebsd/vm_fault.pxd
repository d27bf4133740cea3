# vm_fault — resolve a CPU fault on a FreeBSD address space.  See vm_fault.pyx.
from libc.stdint cimport int64_t
from mmbench.blocks.frames cimport pfn_t
from mmbench.blocks.pagetable cimport pt_node_t
from mmbench_freebsd.vm cimport vm_ctx_t, vm_map_t, vm_map_entry_t

# Fault at `vpn` (inside `entry`, whose protection allows the access): maps
# the page and returns MM_OK with its pfn in *pfn_out, or MM_ENOMEM with the
# machine unchanged.  `leaf`: vpn's PTE table if the caller has it, else NULL.
cdef int vm_fault(vm_ctx_t* vm, vm_map_t* map, vm_map_entry_t* entry, int64_t vpn,
                  bint write, pt_node_t* leaf, pfn_t* pfn_out) noexcept nogil
# The page `vpn` of `entry` resolves to, walking the chain (no side effects);
# NO_PFN when no object in the chain holds it.  *depth_out: objects walked past.
cdef pfn_t vm_map_resolve(vm_ctx_t* vm, vm_map_entry_t* entry, int64_t vpn, int* depth_out) noexcept nogil
