"""Huge pages in the contract: the ``thp`` design option and the notes about it.

Every design accepts ``thp = "never" | "madvise" | "always"`` (default
``"madvise"``; ``Machine.__init__`` adds it to any design's options and
validates it), named after Linux's ``/sys/kernel/mm/transparent_hugepage/enabled``:

* ``"never"``: no huge pages, whatever the advice;
* ``"madvise"``: huge pages only where ``madvise(HUGEPAGE)`` asked for them;
* ``"always"``: huge pages wherever a design can use them, unless
  ``madvise(NOHUGEPAGE)`` said no.

A design maps the mode onto its own policy and says how in ``notes()``; a
design without huge pages accepts the option, runs at 4 KiB and says so in
``notes()`` (``Machine.notes`` says it for any design that does not
override it): never silently.  Values read are never affected (the reference
model ignores the mode).
"""
from __future__ import annotations

from mmbench import errors

THP_MODES = ("never", "madvise", "always")
THP_DEFAULT = "madvise"
#: design options the contract gives every design, whatever its option_defaults say
#: (``memmap``: see mmbench.memmap)
CONTRACT_OPTIONS = {"thp": THP_DEFAULT, "memmap": "page"}


def thp_option(options: dict) -> str:
    """The validated ``thp`` mode of a design's options (InvalidArgument otherwise)."""
    mode = options.get("thp", THP_DEFAULT)
    if not isinstance(mode, str) or mode not in THP_MODES:
        raise errors.InvalidArgument(f"thp must be one of {', '.join(map(repr, THP_MODES))}, got {mode!r}")
    return mode
