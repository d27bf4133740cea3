"""mmbench: compare operating-system memory-management designs on identical work.

    import mmbench
    mmbench.backends()                      # ['linux', 'freebsd', …]
    m = mmbench.open("linux", ram_pages=1 << 20)
    pid = m.spawn(); m.mmap(pid, 0, 16); m.write(pid, 3, 42); child = m.fork(pid)

See DESIGN in the repository for the contract; `mmbench.reference` holds the
executable definition of the semantics every design must reproduce.
"""
import os as _os

# numpy's OpenBLAS starts a thread per core at import, which busy-waits about 0.1 s
# of CPU before it sleeps (and again after each BLAS call).  mmbench uses no BLAS that
# needs it, and on a small host that thread takes the core a measured cell runs on:
# one thread, unless the caller chose otherwise (only effective when mmbench is
# imported before numpy, as the command line does).
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from mmbench import errors
from mmbench.core import Machine, COUNTER_NAMES, VPN_LIMIT
from mmbench.trace import TRACE_DTYPE, Advice, Op, TraceBuilder, load as load_trace, save as save_trace

__version__ = "0.1.0"

__all__ = ["backends", "open", "errors", "Machine", "TRACE_DTYPE", "Op", "Advice", "TraceBuilder",
           "load_trace", "save_trace", "COUNTER_NAMES", "VPN_LIMIT"]


def backends() -> list[str]:
    """Names of the registered designs, built-ins first, then plugins."""
    from mmbench import registry
    return registry.names()


def open(name: str, ram_pages: int = 1 << 20, devices: int = 0, **design_options) -> Machine:
    """A fresh simulated machine running design `name`."""
    from mmbench import registry
    cls = registry.load(name)
    return cls(ram_pages=ram_pages, devices=devices, **design_options)
