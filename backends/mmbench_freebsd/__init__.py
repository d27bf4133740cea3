"""mmbench_freebsd: the FreeBSD VM design (vm_map, vm_object shadow chains, pmap/pv_entry).

See docs/backends/freebsd.md and the essay at the top of core.pyx.
"""
from mmbench_freebsd.core import FreeBSDMachine
from mmbench_freebsd.devices import FreeBSDDevMachine

__all__ = ["FreeBSDMachine", "FreeBSDDevMachine"]
