"""The workloads as an asv suite: one benchmark class per workload, the backend a parameter.

For a workload ``cow_after_fork`` of family ``fault_latency`` asv sees the
class ``fault_latency.CowAfterFork`` with parameters (backend, segment, *the
workload's "asv" grid).  Workloads with timed segments get:

* ``time_segment``     wall time of replaying the timed segment on a machine
                       prepared up to it in ``setup`` (untimed) — measured
                       model time, trace validation included;
* ``track_ns_per_unit`` the segment's model time per page / child / round
                       (its first natural unit) — measured; every segment has it;
* ``track_median_ns``  the engine's per-op model time, median — measured; only
                       on workloads whose every timed segment times one kind of
                       op per op (so it is never n/a by construction);
* ``track_faults``     CPU faults the segment took — exact;
* ``track_estimated_ns`` host-calibrated estimate — estimated; needs a
                       calibration of this host, found as ``mmbench run`` finds
                       it (mmbench.calibration_search: $MMBENCH_CALIBRATION or
                       the per-user data directory, from any directory — asv
                       runs benchmarks outside the checkout), else skipped.

Workloads that only build a state (the metadata family) get
``track_metadata_bytes`` and ``track_metadata_bytes_per_page`` — exact.

A combination the design cannot run raises ``NotImplementedError`` in
``setup`` or ``SkipNotImplemented`` in the body, which asv shows as n/a with
the reason in its log.  The backend list is fixed — every built-in design
name plus installed plugins — so a missing design is skipped, never dropped;
``$MMBENCH_ASV_BACKENDS`` (comma-separated) narrows it.  asv runs this suite
from the working tree against each commit's installed mmbench, so it relies
only on the long-standing API (open, replay, counters, metadata, traces).
"""
from __future__ import annotations

import os

from ._common import _CATALOGUE, Workload

try:  # raised inside a benchmark body, asv records a skip rather than a failure
    from asv_runner.benchmarks.mark import SkipNotImplemented
except ImportError:  # running without asv (tests, mmbench run)
    SkipNotImplemented = NotImplementedError

DESIGNS = ("linux", "freebsd", "shmem", "gmem", "uvm", "reference")


def asv_backends() -> list[str]:
    env = os.environ.get("MMBENCH_ASV_BACKENDS")
    if env:
        return [b.strip() for b in env.split(",") if b.strip()]
    import warnings
    import mmbench
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        installed = mmbench.backends()
    return list(DESIGNS) + [b for b in installed if b not in DESIGNS]


def _camel(name: str) -> str:
    return "".join(w.capitalize() for w in name.split("_"))


class _Bench:
    """Base of the generated classes (leading underscore: asv does not collect the bases)."""
    workload: Workload
    grid_keys: tuple = ()
    number = 1            # one replay per sample: the machine state is used up by it
    repeat = (1, 5, 10.0)
    rounds = 1
    warmup_time = 0.0
    timeout = 300

    def _params(self, args):
        _, _, *vals = args
        return dict(zip(self.grid_keys, vals))

    def setup(self, backend, segment, *vals):
        self.params = self._params((backend, segment, *vals))
        self.backend = backend
        self._records = None

    def _metric(self, suffix, family_wide=False):
        from ._measure import measure
        if self._records is None:
            self._records = measure(self.workload, self.params, self.backend, repeats=1,
                                    calibration=_calibration())
        want = suffix if family_wide else f"{self.seg.name}.{suffix}"
        for r in self._records:
            if r["metric"] == want or (r["metric"] == "*" and r["kind"] == "unsupported"):
                if r["value"] is None:
                    raise SkipNotImplemented(r["note"])
                return r["value"]
        raise SkipNotImplemented(f"{self.backend} reports no {want!r} here")


class _StateBench(_Bench):
    """Workloads that build a state (the metadata family): exact bytes at the end."""

    def track_metadata_bytes(self, backend, segment, *vals):
        return self._metric("metadata.total_bytes", family_wide=True)
    track_metadata_bytes.unit = "bytes"

    def track_metadata_bytes_per_page(self, backend, segment, *vals):
        return self._metric("metadata.bytes_per_resident_page", family_wide=True)
    track_metadata_bytes_per_page.unit = "bytes/page"


class _SegmentBench(_Bench):
    """Workloads with timed segments: model time, faults and estimates per segment."""

    def setup(self, backend, segment, *vals):
        from ._measure import Unavailable, open_machine, replay_segment
        super().setup(backend, segment, *vals)
        sc = self.workload.scenario(**self.params)
        if segment not in [s.name for s in sc.timed_segments()]:
            raise NotImplementedError(f"{self.workload.name} has no timed segment {segment!r}")
        try:
            m = open_machine(backend, sc, self.workload.needs_devices)
            for seg in sc.segments:
                if seg.name == segment:
                    break
                replay_segment(m, seg, timing=False)
        except Unavailable as e:
            raise NotImplementedError(str(e)) from None
        self.m, self.seg = m, seg

    def time_segment(self, backend, segment, *vals):
        self.m.replay(self.seg.trace, timing=False, frame=False)

    def track_faults(self, backend, segment, *vals):
        return self._metric("faults")
    track_faults.unit = "faults"

    def track_ns_per_unit(self, backend, segment, *vals):
        if not self.seg.scale:
            raise SkipNotImplemented("this segment has no natural unit")
        return self._metric(f"ns_per_{self.seg.scale[0][0]}")
    track_ns_per_unit.unit = "ns (model, per page/child/round)"

    def track_estimated_ns(self, backend, segment, *vals):
        if _calibration() is None:
            raise SkipNotImplemented("no calibration")
        return self._metric("estimated_ns")
    track_estimated_ns.unit = "ns (estimated)"


class _PerOpBench(_SegmentBench):
    """Workloads whose every timed segment times one kind of op, per op."""

    def track_median_ns(self, backend, segment, *vals):
        return self._metric("median_ns")
    track_median_ns.unit = "ns (model, per op)"


_CALIB = []


def _calibration():
    """The host calibration if mmbench.estimate exists and finds one, else None."""
    if not _CALIB:
        from ._measure import load_calibration
        _CALIB.append(load_calibration()[0])
    return _CALIB[0]


def asv_classes(family: str) -> dict:
    """{ClassName: benchmark class} for every workload of `family` (module globals)."""
    out = {}
    backends = asv_backends()
    for wl in [w for w in _CATALOGUE.values() if w.family == family]:
        grid = wl.grids["asv"]
        keys = tuple(grid)
        sc = wl.scenario(**{k: v[0] for k, v in grid.items()})
        segs = [s.name for s in sc.timed_segments()] or ["end"]
        attrs = {"workload": wl, "grid_keys": keys, "__doc__": wl.doc,
                 "__module__": f"{__package__}.{family}",
                 "params": [backends, segs, *(list(grid[k]) for k in keys)],
                 "param_names": ["backend", "segment", *keys]}
        timed = sc.timed_segments()
        per_op = timed and all(s.timing == "per_op" and len(s.ops) == 1 for s in timed)
        base = _PerOpBench if per_op else _SegmentBench if timed else _StateBench
        out[_camel(wl.name)] = type(_camel(wl.name), (base,), attrs)
    return out
