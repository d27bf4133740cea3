"""mmbench_shmem: anonymous memory as shmem page-cache files, private memory
copy-on-write through reflink-style clones of those files."""
from mmbench_shmem.core import ShmemMachine
from mmbench_shmem.devices import ShmemDevMachine

__all__ = ["ShmemMachine", "ShmemDevMachine"]
