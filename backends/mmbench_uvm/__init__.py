"""mmbench_uvm: the NetBSD UVM design (vm_map entries, two-level amap/anon, NetBSD x86 pmap).

See docs/backends/uvm.md and the essay at the top of core.pyx.
"""
from mmbench_uvm.core import UVMMachine

__all__ = ["UVMMachine"]
