"""The `mmbench` command line.

Commands live next to what they drive: each of mmbench.runner (run, compare),
mmbench.report (report), mmbench.calibrate (calibrate) and mmbench.conformance
(conformance) has a ``register(app)`` that adds its commands here.

Every mistake on the command line is one line on stderr starting with
``mmbench: error:`` and exit status 2, never a traceback and never a silent
default: the helpers below (``fail``, ``check_backend``, ``check_output``,
``parse_assignments``) are what the commands use to say so.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Compare memory-management designs on identical work.")


def fail(msg: str) -> None:
    """Exit with one clear line and status 2 (bad arguments, missing files …)."""
    typer.echo(f"mmbench: error: {msg}", err=True)
    raise typer.Exit(2)


def known_designs() -> tuple[list[str], dict[str, str]]:
    """(designs that load, {registered but broken: why}), without warnings on the terminal."""
    import warnings
    from mmbench import registry
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return registry.names(), registry.broken()


def check_backend(name: str, option: str = "--backend") -> None:
    """Fail unless `name` is a registered design (a broken plugin counts: its rows say why)."""
    names, broken = known_designs()
    if name not in names and name not in broken:
        fail(f"unknown design {name!r} ({option}); known designs: {', '.join(names) or 'none'}")


def check_output(path) -> Path:
    """Fail unless `path` can be written: its directory exists and it is not a directory."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        fail(f"output {path} is a directory; give a file name")
    if not parent.is_dir():
        fail(f"output {path}: directory {parent} does not exist (create it first)")
    return path


def parse_value(text: str):
    """A command-line value as the type it reads as: int, float, true/false, or the string."""
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    for conv in (lambda t: int(t, 0), int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def parse_assignments(items, option: str) -> dict:
    """["pages=65536", "depth=4"] -> {"pages": 65536, "depth": 4}; repeated keys are an error."""
    out = {}
    for item in items or ():
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key or not value.strip():
            fail(f"{option} {item!r}: expected NAME=VALUE")
        if key in out:
            fail(f"{option} {key} is given twice")
        out[key] = parse_value(value.strip())
    return out


@app.callback()
def _group() -> None:
    """Keeps `mmbench <command>` a group even while only one command is registered."""


@app.command("backends")
def backends_cmd() -> None:
    """List the registered designs (built-ins first, then plugins)."""
    from mmbench import registry
    names, broken = known_designs()
    for n in names:
        cls = registry.load(n)
        typer.echo(f"{n:12s} {cls.description}")
    for n, why in broken.items():
        typer.echo(f"{n:12s} BROKEN: {why}")


@app.command("conformance")
def conformance_cmd(
    design: str = typer.Argument(..., help="a registered design (`mmbench backends`), or "
                                 "module:Class for a Machine subclass that is not installed"),
    examples: int = typer.Option(200, help="random operation sequences after the scripted checks"),
    option: list[str] = typer.Option(None, "--option", "-O", help="NAME=VALUE design option (repeatable)"),
    devices: int = typer.Option(None, help="accelerators (default: 2 if the design has them, else 0)"),
) -> None:
    """Check one design against the reference model; on a disagreement print a short reproducer.

    First a few scripted sequences (copy-on-write after fork, sharing, protections,
    splits, mremap, dontneed, devices …) that find a missing mechanism in well under a
    second, then `--examples` random sequences (Hypothesis).  Exit status 1 on a
    disagreement, 2 on a bad argument.
    """
    from mmbench import conformance, errors
    if examples < 0:
        fail(f"--examples must be ≥ 0, got {examples}")
    if devices is not None and devices < 0:
        fail(f"--devices must be ≥ 0, got {devices}")
    options = parse_assignments(option, "--option")
    try:
        cls = conformance.design_class(design)
        report = conformance.check_design(cls, name=design, examples=examples, options=options,
                                          devices=devices, log=lambda m: typer.echo(m, err=True))
    except errors.MMError as e:
        fail(str(e))
    typer.echo(report.text())
    if not report.ok:
        raise typer.Exit(1)


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
