"""The `mmbench` command line.

Commands live next to what they drive: each of mmbench.runner (run, compare),
mmbench.report (report) and mmbench.calibrate (calibrate) has a
``register(app)`` that adds its commands here.
"""
from __future__ import annotations

import importlib
import sys

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Compare memory-management designs on identical work.")


def fail(msg: str) -> None:
    """Exit with one clear line and status 2 (bad arguments, missing files …)."""
    typer.echo(f"mmbench: error: {msg}", err=True)
    raise typer.Exit(2)


@app.callback()
def _group() -> None:
    """Keeps `mmbench <command>` a group even while only one command is registered."""


@app.command("backends")
def backends_cmd() -> None:
    """List the registered designs (built-ins first, then plugins)."""
    import warnings
    from mmbench import registry
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        names = registry.names()
        broken = registry.broken()
    for n in names:
        cls = registry.load(n)
        typer.echo(f"{n:12s} {cls.description}")
    for n, why in broken.items():
        typer.echo(f"{n:12s} BROKEN: {why}")


for _mod in ("runner", "report", "calibrate", "record"):
    try:
        _m = importlib.import_module(f"mmbench.{_mod}")
    except ModuleNotFoundError as _e:
        if _e.name != f"mmbench.{_mod}":
            raise
        continue
    _m.register(app)


def main() -> None:
    from mmbench import errors
    try:
        app()
    except errors.MMError as e:  # one clear line, never a traceback for user errors
        typer.echo(f"mmbench: error: {e}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
