"""The `gmem` design: Linux VMAs and page tables plus a per-process logical page table
(vm_object of gm_mappings), from the 2023 GMEM RFC."""
from mmbench_gmem.core import GmemMachine, GMEM_COUNTERS

__all__ = ["GmemMachine", "GMEM_COUNTERS"]
