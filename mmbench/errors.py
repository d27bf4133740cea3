"""Exceptions raised by mmbench.

Every failure a caller or a trace can provoke is one of these; a failed
operation leaves the simulated machine unchanged.
"""


class MMError(Exception):
    """Base class of every mmbench error."""


class SegmentationFault(MMError):
    """The address is not mapped in that process."""


class ProtectionFault(MMError):
    """A write to a mapping that is not writable."""


class NoSuchProcess(MMError):
    """The pid was never created or has exited."""


class OutOfMemory(MMError):
    """No free frame was left (host RAM or device memory)."""


class InvalidArgument(MMError, ValueError):
    """A bad range, an mmap over an existing mapping, an unknown option, a malformed trace …"""


class NotSupported(MMError):
    """The design has no such mechanism (for example no accelerators)."""


class PageBusy(MMError):
    """move_pages met a source page whose data is still shared copy-on-write with
    another process (the kernel's UFFDIO_MOVE returns -EBUSY); nothing moved."""


class InvariantViolation(MMError, AssertionError):
    """check() found an internal invariant broken: a bug in a design."""


class MachineBusy(MMError):
    """Another thread is using this machine (a replay or a call is running on it).

    A machine serves one caller at a time: every public method takes the
    machine for its duration and a second thread gets this error at once
    (nothing waits, nothing changes).  Retry later, or give each thread its
    own machine.
    """


class BackendLoadError(MMError):
    """A backend could not be found or imported."""


# status code (mmbench.core MM_E*) -> exception class
BY_STATUS = {
    -1: SegmentationFault,
    -2: ProtectionFault,
    -3: NoSuchProcess,
    -4: OutOfMemory,
    -5: InvalidArgument,
    -6: NotSupported,
    -8: PageBusy,
}
STATUS_OF = {cls: code for code, cls in BY_STATUS.items()}
STATUS_NAMES = {0: "ok", -1: "segv", -2: "prot", -3: "nopid", -4: "oom", -5: "inval", -6: "notsup", -7: "error",
                -8: "busy"}
