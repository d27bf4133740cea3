"""The results file: one JSON document per run of the suite.

Schema version 1 (documented for readers in docs/workloads.md; only ever
extended, never changed in place)::

    {"schema": 1,
     "machine": {"hostname", "cpu", "cores", "kernel", "os", "python", "numpy", "mmbench",
                 "loadavg", "loadavg_5_15", "thp": {"enabled", "defrag"},
                 "cpufreq": {"driver", "governor", "min_khz", "max_khz", "boost"} | null},
     "commit": git sha of the source tree or null,
     "dirty": whether that tree had uncommitted changes (null outside a git checkout),
     "plugins": {design: {"distribution", "version", "module"}} for every registered design,
     "created": ISO-8601 UTC time,
     "profile": "quick" | "full" | "tiny" | …,
     "calibration": path of the host calibration used, or null,
     "clock": {"clock", "resolution_ns", "pair_overhead_ns", …} (optional:
              the engine's per-op clock, mmbench.clock.info()),
     "notes": [free-text lines about the run, e.g. "no calibration: …"],
     "records": [record, …]}

    record = {"family", "workload", "params": {name: value}, "backend",
              "metric", "value": number | null, "unit",
              "kind": "exact" | "measured" | "estimated" | "unsupported",
              "spread": {"p25", "p75"} | null, "repeats": int, "note": str,
              "samples": [number, …]   (optional: the value of every repeat,
                                        for significance tests in compare),
              "range": {"low", "high"} (optional, estimated: the estimate
                                        under the prices' uncertainty)}

``value`` is null exactly when ``kind`` is "unsupported"; ``note`` then says
why (the design lacks the mechanism, it ran out of memory, it is not
installed …).  An unsupported combination is never a 0.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import platform
import socket
import subprocess
from pathlib import Path

from mmbench import errors

SCHEMA = 1
KINDS = ("exact", "measured", "estimated", "unsupported")
RECORD_KEYS = ("family", "workload", "params", "backend", "metric", "value", "unit", "kind",
               "spread", "repeats", "note")
TOP_KEYS = ("schema", "machine", "commit", "created", "profile", "calibration", "records")


def record(family, workload, params, backend, metric, value, unit, kind,
           spread=None, repeats=1, note="", samples=None, range_=None) -> dict:
    """One result record, checked."""
    r = {"family": family, "workload": workload, "params": dict(params), "backend": backend,
         "metric": metric, "value": None if value is None else _number(value), "unit": unit,
         "kind": kind, "spread": spread, "repeats": int(repeats), "note": note}
    if samples is not None:
        r["samples"] = [_number(x) for x in samples]
    if range_ is not None:
        r["range"] = dict(range_)
    _check_record(r, "record")
    return r


def unsupported(family, workload, params, backend, reason, metric="*") -> dict:
    """The record that stands for a combination the design cannot run."""
    return record(family, workload, params, backend, metric, None, "", "unsupported", note=reason)


def _number(v):
    if isinstance(v, bool):
        raise errors.InvalidArgument("a result value must be a number, not a bool")
    v = float(v) if not isinstance(v, int) else v
    if isinstance(v, float) and not math.isfinite(v):
        raise errors.InvalidArgument(f"a result value must be finite, got {v}")
    return v


def machine_info() -> dict:
    """Where the numbers were taken."""
    import numpy
    import mmbench
    return {"hostname": socket.gethostname(), "cpu": _cpu_model(), "cores": os.cpu_count(),
            "kernel": platform.release(), "os": platform.system(),
            "python": platform.python_version(), "numpy": numpy.__version__,
            "mmbench": mmbench.__version__, "loadavg": _loadavg(), "loadavg_5_15": _loadavg_5_15(),
            "thp": thp_settings(), "cpufreq": cpufreq_settings()}


def _loadavg_5_15():
    try:
        return [round(x, 2) for x in os.getloadavg()[1:]]
    except OSError:
        return None


def _read_sys(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _bracketed(text: str | None) -> str | None:
    """"always [madvise] never" -> "madvise" (the kernel marks the active choice)."""
    if text is None:
        return None
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    return text


def thp_settings() -> dict:
    """The host's transparent-huge-page policy: it moves host-side probes and calibration."""
    base = "/sys/kernel/mm/transparent_hugepage/"
    return {"enabled": _bracketed(_read_sys(base + "enabled")),
            "defrag": _bracketed(_read_sys(base + "defrag"))}


def cpufreq_settings() -> dict | None:
    """CPU frequency scaling of cpu0 (null where the host exposes none, as in many VMs)."""
    base = "/sys/devices/system/cpu/cpu0/cpufreq/"
    if not os.path.isdir(base):
        return None
    def num(name):
        v = _read_sys(base + name)
        return int(v) if v and v.isdigit() else None
    boost = _read_sys("/sys/devices/system/cpu/cpufreq/boost")
    return {"driver": _read_sys(base + "scaling_driver"), "governor": _read_sys(base + "scaling_governor"),
            "min_khz": num("scaling_min_freq"), "max_khz": num("scaling_max_freq"),
            "boost": None if boost is None else boost == "1"}


def git_dirty(path=None) -> bool | None:
    """Whether the source tree has uncommitted changes to tracked files (null outside git)."""
    here = Path(path) if path else Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def plugin_versions() -> dict:
    """{design: {"distribution", "version", "module"}} of every registered design."""
    from importlib.metadata import entry_points
    out = {}
    for ep in entry_points(group="mmbench.backends"):
        dist = getattr(ep, "dist", None)
        out.setdefault(ep.name, {"distribution": dist.metadata["Name"] if dist else None,
                                 "version": dist.version if dist else None, "module": ep.value})
    return dict(sorted(out.items()))


def _loadavg():
    """1-minute load average when the run started: a busy machine makes measured numbers noisier."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(path=None) -> str | None:
    """The commit of the source tree mmbench runs from (null outside a git checkout)."""
    here = Path(path) if path else Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and len(sha) == 40 else None


def clock_info() -> dict | None:
    """The engine's per-op clock (mmbench.clock.info()), or None without the extension."""
    try:
        from mmbench import clock
    except ImportError:
        return None
    return clock.info()


def provenance() -> dict:
    """What any file of numbers should say about where it came from (calibrations too)."""
    commit = git_commit()
    m = machine_info()
    return {"commit": commit, "dirty": git_dirty() if commit else None, "plugins": plugin_versions(),
            "thp": m["thp"], "cpufreq": m["cpufreq"], "loadavg": [m["loadavg"]] + (m["loadavg_5_15"] or [])}


def new_document(profile: str, records: list, calibration=None, notes=()) -> dict:
    commit = git_commit()
    doc = {"schema": SCHEMA, "machine": machine_info(), "commit": commit,
           "dirty": git_dirty() if commit else None, "plugins": plugin_versions(),
           "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "profile": profile, "calibration": None if calibration is None else str(calibration),
           "clock": clock_info(), "notes": list(notes), "records": list(records)}
    validate(doc)
    return doc


# ------------------------------------------------------------------ checking
def _check_record(r, where):
    if not isinstance(r, dict):
        raise errors.InvalidArgument(f"{where}: not an object")
    missing = [k for k in RECORD_KEYS if k not in r]
    if missing:
        raise errors.InvalidArgument(f"{where}: missing {missing}")
    for k in ("family", "workload", "backend", "metric", "unit", "note"):
        if not isinstance(r[k], str):
            raise errors.InvalidArgument(f"{where}: {k!r} must be a string")
    if not isinstance(r["params"], dict):
        raise errors.InvalidArgument(f"{where}: 'params' must be an object")
    if r["kind"] not in KINDS:
        raise errors.InvalidArgument(f"{where}: kind {r['kind']!r} is not one of {KINDS}")
    v = r["value"]
    if (v is None) != (r["kind"] == "unsupported"):
        raise errors.InvalidArgument(f"{where}: value must be null exactly when kind is 'unsupported'")
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
        raise errors.InvalidArgument(f"{where}: value must be a finite number")
    s = r["spread"]
    if s is not None and not (isinstance(s, dict) and set(s) == {"p25", "p75"}
                              and all(isinstance(x, (int, float)) for x in s.values())):
        raise errors.InvalidArgument(f"{where}: spread must be null or {{p25, p75}}")
    if isinstance(r["repeats"], bool) or not isinstance(r["repeats"], int) or r["repeats"] < 0:
        raise errors.InvalidArgument(f"{where}: repeats must be a non-negative integer")
    smp = r.get("samples")
    if smp is not None and not (isinstance(smp, list) and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in smp)):
        raise errors.InvalidArgument(f"{where}: samples must be a list of finite numbers")
    rng = r.get("range")
    if rng is not None and not (isinstance(rng, dict) and set(rng) == {"low", "high"}
                                and all(isinstance(x, (int, float)) for x in rng.values())
                                and rng["low"] <= rng["high"]):
        raise errors.InvalidArgument(f"{where}: range must be null or {{low, high}} with low <= high")


def validate(doc) -> dict:
    """Raise InvalidArgument unless `doc` is a results document of this schema."""
    if not isinstance(doc, dict):
        raise errors.InvalidArgument("a results file holds one JSON object")
    missing = [k for k in TOP_KEYS if k not in doc]
    if missing:
        raise errors.InvalidArgument(f"not an mmbench results file (missing {missing})")
    if doc["schema"] != SCHEMA:
        raise errors.InvalidArgument(f"results schema {doc['schema']!r} is not supported (expected {SCHEMA})")
    if not isinstance(doc["records"], list):
        raise errors.InvalidArgument("'records' must be a list")
    for i, r in enumerate(doc["records"]):
        _check_record(r, f"record {i}")
    return doc


def save(path, doc: dict) -> Path:
    validate(doc)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def load(path) -> dict:
    """Read and validate a results file; every failure is one InvalidArgument line."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise errors.InvalidArgument(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise errors.InvalidArgument(f"{path}: cannot read ({type(e).__name__})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise errors.InvalidArgument(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None
    try:
        return validate(doc)
    except errors.InvalidArgument as e:
        raise errors.InvalidArgument(f"{path}: {e}") from None


def params_label(params: dict) -> str:
    """A short stable label for a parameter set: "depth=4 pages=1024"."""
    return " ".join(f"{k}={v}" for k, v in sorted(params.items()))


def to_frame(doc_or_records):
    """The records as a polars DataFrame (params as a label column plus one column each)."""
    import polars as pl
    recs = doc_or_records["records"] if isinstance(doc_or_records, dict) else doc_or_records
    keys = sorted({k for r in recs for k in r["params"]})
    rows = []
    for r in recs:
        s = r["spread"] or {}
        row = {"family": r["family"], "workload": r["workload"], "params": params_label(r["params"]),
               "backend": r["backend"], "metric": r["metric"],
               "value": None if r["value"] is None else float(r["value"]),
               "unit": r["unit"], "kind": r["kind"], "p25": s.get("p25"), "p75": s.get("p75"),
               "repeats": r["repeats"], "note": r["note"]}
        for k in keys:
            v = r["params"].get(k)
            row[f"param.{k}"] = None if v is None else str(v)
        rows.append(row)
    schema = {"family": pl.Utf8, "workload": pl.Utf8, "params": pl.Utf8, "backend": pl.Utf8,
              "metric": pl.Utf8, "value": pl.Float64, "unit": pl.Utf8, "kind": pl.Utf8,
              "p25": pl.Float64, "p75": pl.Float64, "repeats": pl.Int64, "note": pl.Utf8,
              **{f"param.{k}": pl.Utf8 for k in keys}}
    return pl.DataFrame(rows, schema=schema)
