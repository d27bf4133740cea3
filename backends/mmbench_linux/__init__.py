"""The `linux` design: anon_vma + anon_vma_chain reverse map over 4-level page tables."""
from mmbench_linux.core import LinuxMachine, LINUX_COUNTERS

__all__ = ["LinuxMachine", "LINUX_COUNTERS"]
