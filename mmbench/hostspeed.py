"""The host's own speed through a run: a fixed probe, timed every second or so.

Measured records are the simulator's own time, and the host that gives it
changes speed over minutes (other work starts and stops; this VM hands freed
memory back to the hypervisor and refaults it later).  Repeats in rounds
(mmbench.rounds) put the drift *within* a run into each row's spread; a run
that spent all of its minute in a slower period than the other is a drift
*between* runs, and no spread within a run shows it.  This probe does: a piece
of work that does not depend on mmbench's code (so a change to mmbench cannot
move it), timed where the cells run (in the serial process, or on the worker
holding its CPU's lock), at most once per PROBE_EVERY_S, stored with the run:

    results["host_speed"] = {"probe": PROBE, "samples_ns": [...]}

`mmbench compare` (mmbench.compare.host_ratio) tests the two runs' probe
samples like any measured row; when the host itself ran significantly slower
(or faster) in one run, a measured row must move beyond the host's own ratio
to be called changed, and the comparison says so.  Exact and estimated rows
are not affected.

The probe: fresh anonymous memory (numpy allocates it with mmap; it is
unmapped when freed, so every probe faults it in again) written and summed,
and a pure-Python loop: the host's page faults, memory bandwidth and
interpreter speed, the three things the simulator's own time is made of.  It
takes 2-6 ms here; once a second it costs under 1 % of a run.
"""
from __future__ import annotations

import time

PROBE = "fault in, write and sum 8 MiB of fresh anonymous memory (numpy), then 50,000 pure-Python loop steps"
PROBE_EVERY_S = 1.0
PROBE_BYTES = 8 << 20
PROBE_STEPS = 50_000
MIN_SAMPLES = 5                 # fewer: compare does not use the probe

_last = {"t": -float("inf")}    # per process: when the probe last ran


def probe_ns() -> int:
    """One timing of the probe, in ns."""
    import numpy as np
    t0 = time.perf_counter_ns()
    a = np.empty(PROBE_BYTES // 8, dtype=np.int64)
    a.fill(1)
    s = int(a.sum())
    del a
    x = 0
    for i in range(PROBE_STEPS):
        x += i & 7
    t1 = time.perf_counter_ns()
    assert s == PROBE_BYTES // 8 and x >= 0
    return t1 - t0


def maybe_probe() -> int | None:
    """The probe's time when PROBE_EVERY_S has passed since it last ran in this process,
    else None (nothing run)."""
    now = time.perf_counter()
    if now - _last["t"] < PROBE_EVERY_S:
        return None
    ns = probe_ns()
    _last["t"] = time.perf_counter()
    return ns


def new_run() -> None:
    """The next maybe_probe in this process runs the probe (a run's first cell is probed
    even when the run before it in this process probed less than a second ago)."""
    _last["t"] = -float("inf")


def record(doc: dict, ns: int | None) -> None:
    """Add one probe time to a results document's ``host_speed``."""
    if ns is None:
        return
    hs = doc.setdefault("host_speed", {"probe": PROBE, "samples_ns": []})
    hs["samples_ns"].append(int(ns))


def samples(doc: dict) -> list | None:
    """The probe times of a results document, when it has MIN_SAMPLES of this probe."""
    hs = doc.get("host_speed") or {}
    s = hs.get("samples_ns") or []
    if hs.get("probe") != PROBE or len(s) < MIN_SAMPLES:
        return None
    return list(s)
