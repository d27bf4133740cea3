"""Discovery: backends through the ``mmbench.backends`` entry-point group, and the
workload catalogue (``workloads()``).

Built-in designs are registered in mmbench's own metadata exactly as a
third-party plugin registers in its own, so there is one code path.  A plugin
that fails to import produces a warning naming it and is left out; it never
stops the others from loading.
"""
from __future__ import annotations

import warnings
from importlib.metadata import entry_points

from mmbench import errors

GROUP = "mmbench.backends"
BUILTIN_ORDER = ("linux", "freebsd", "shmem", "gmem", "uvm", "reference")

_cache: dict[str, object] | None = None
_builtin: set[str] = set()         # the names mmbench itself registers (read with _cache)
_broken: dict[str, str] = {}


def _discover() -> dict[str, object]:
    global _cache
    if _cache is not None:
        return _cache
    found = {}
    for ep in entry_points(group=GROUP):
        if ep.name in found:
            continue
        found[ep.name] = ep
    # a distribution's metadata is parsed on every read (an email-format file): once here
    _builtin.clear()
    _builtin.update(n for n, ep in found.items() if _is_builtin(ep))
    _cache = found
    return found


def _is_builtin(ep) -> bool:
    dist = getattr(ep, "dist", None)
    return dist is not None and dist.metadata["Name"] == "mmbench"


def names() -> list[str]:
    """Registered backends: built-ins first (in a fixed order), then plugins by name.

    Backends whose import fails are left out with a warning.
    """
    eps = _discover()
    builtins = [n for n in BUILTIN_ORDER if n in _builtin]
    builtins += sorted(n for n in _builtin if n not in builtins)
    plugins = sorted(n for n in eps if n not in builtins)
    out = []
    for n in builtins + plugins:
        if load(n, quiet=True) is not None:
            out.append(n)
    return out


def broken() -> dict[str, str]:
    """Backends that are registered but failed to load: {name: reason}."""
    names()
    return dict(_broken)


def load(name: str, quiet: bool = False):
    """The Machine subclass registered as `name` (None if it is broken and quiet)."""
    eps = _discover()
    if name not in eps:
        raise errors.InvalidArgument(
            f"unknown backend {name!r}; installed: {', '.join(sorted(eps)) or 'none'}")
    ep = eps[name]
    try:
        cls = ep.load()
        from mmbench.core import Machine
        if not (isinstance(cls, type) and issubclass(cls, Machine)):
            raise TypeError(f"{ep.value} is not a subclass of mmbench.core.Machine")
    except Exception as e:  # a broken plugin must not take the suite down
        reason = f"{type(e).__name__}: {e}"
        if name not in _broken:
            warnings.warn(f"mmbench backend {name!r} ({ep.value}) failed to load: {reason}",
                          RuntimeWarning, stacklevel=3)
        _broken[name] = reason
        if quiet:
            return None
        raise errors.BackendLoadError(f"backend {name!r} failed to load: {reason}") from e
    _broken.pop(name, None)
    return cls


def reset():
    """Forget discovered entry points (after installing a plugin at run time)."""
    global _cache
    _cache = None
    _builtin.clear()
    _broken.clear()


def workloads() -> dict:
    """Every workload, by name, in family order: imports each family module of
    mmbench.workloads (one per name in FAMILIES), which registers its own
    workloads; mmbench.workloads._common imports none of them."""
    import importlib
    from mmbench.workloads import _common
    for family in _common.FAMILIES:
        importlib.import_module(f"mmbench.workloads.{family}")
    return _common.catalogue()
