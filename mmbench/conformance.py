"""The conformance suite: a design against the reference model, op by op.

Every backend must agree with ``mmbench.reference.ReferenceMachine`` on every
observable: the value each operation returns, the exception class it raises
(or that both succeed), the pids handed out, and that nothing stays allocated
once every process exited.  This module turns that sentence into a Hypothesis
``RuleBasedStateMachine`` that runs a design and the reference side by side:

* each rule is one contract operation (spawn, mmap incl. shared and read-only,
  munmap, mprotect, read, write, fork, exit, mremap, madvise_dontneed, madvise
  (huge-page advice for designs with ``huge_page_advice``), move_pages (a
  PageBusy refusal is accepted where the reference allows it, NotSupported from
  a design that has no move_pages at all) and, for designs
  with accelerators, migrate / device_read / device_write), applied to both
  machines with the same arguments, results compared;
* with ``vpn_span >= 1024`` huge-page-sized rules join in: 2 MiB-aligned and
  unaligned mappings of 512+ pages, first touch of a whole 2 MiB block, a run
  written from inside a block then cut and forked, and the partial munmap /
  mprotect / mremap / fork / COW rules then cut into them (run it with
  ``options={"thp": "always"}``);
* a failed operation must leave the design unchanged: its ``metadata()`` and
  frames in use are compared before and after;
* with ``tight_memory=True`` RAM and device memory are a few dozen pages, so
  OutOfMemory happens: the rule "OutOfMemory leaves no trace" then applies.
  The design runs first; when it raises OutOfMemory the reference model is
  not called (the operation did not happen), and the design's ``metadata()``,
  frames in use and structure counters (``STRUCTURE_COUNTERS``: objects made
  and freed) must equal their values before the call.  Later reads still
  compare every value with the reference, so a failed operation that lost or
  changed data is caught too;
* ``check()`` runs on the design after every step;
* from time to time, and at the end, every page of every live process is read
  on both sides and compared;
* at teardown every process exits and the design must report no leak
  (``leaks() == []``, every per-process struct back to zero, every frame free).

Virtual page numbers stay in a small window (``vpn_span``, 64 by default) so
mappings collide, split and merge often; by default RAM is large enough that
OutOfMemory cannot occur, so any OutOfMemory is reported as a failure.

Usage, for a registered backend or any Machine subclass (a plugin under
development need not be installed)::

    from mmbench.conformance import conformance_machine, run_conformance
    run_conformance("mydesign")                       # raises on the first mismatch
    TestMyDesign = conformance_machine(MyMachine).TestCase   # or let pytest collect it

``random_traces()`` is a Hypothesis strategy of valid traces, used to check that
``Machine.replay`` gives the same statuses and values as the reference model.
"""
from __future__ import annotations

import dataclasses
import os

from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from mmbench import errors
from mmbench.reference import ReferenceMachine
from mmbench.trace import Advice, TraceBuilder

__all__ = ["conformance_machine", "run_conformance", "check_design", "design_class", "random_traces",
           "default_settings", "ConformanceFailure", "STRUCTURE_COUNTERS"]

U64 = (1 << 64) - 1


class ConformanceFailure(AssertionError):
    """The design disagrees with the reference model (or leaks, or fails check())."""


def default_settings(max_examples: int | None = None, stateful_step_count: int = 40) -> settings:
    """Settings sized for a few minutes on two cores; MMBENCH_CONFORMANCE_EXAMPLES raises them."""
    if max_examples is None:
        max_examples = int(os.environ.get("MMBENCH_CONFORMANCE_EXAMPLES", "60"))
    return settings(max_examples=max_examples, stateful_step_count=stateful_step_count,
                    deadline=None, report_multiple_bugs=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _backend_class(backend):
    if isinstance(backend, str):
        return design_class(backend)
    return backend


def design_class(name: str):
    """The Machine subclass for a registered design name, or for ``module:Class`` (a design
    under development that is not installed)."""
    from mmbench import registry
    from mmbench.core import Machine
    if ":" not in name:
        return registry.load(name)
    import importlib
    mod, _, attr = name.partition(":")
    try:
        cls = getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError) as e:
        raise errors.InvalidArgument(f"cannot load {name!r}: {type(e).__name__}: {e}") from None
    if not (isinstance(cls, type) and issubclass(cls, Machine)):
        raise errors.InvalidArgument(f"{name!r} is not a subclass of mmbench.Machine")
    return cls


def _outcome(fn):
    """('ok', value) or ('raise', exception class) for one call."""
    try:
        return ("ok", fn())
    except errors.MMError as e:
        return ("raise", type(e))


def _footprint(m):
    """What a failed operation must not change: metadata and frames in use per node."""
    nodes = 1 + (m.ndevices if type(m).supports_devices else 0)
    return m.metadata(), tuple(m.frames_used(n) for n in range(nodes))


#: counters that count structures made or freed (a failed operation that built a
#: structure and took it down again shows here even when metadata() is back)
STRUCTURE_COUNTERS = frozenset({
    "pt_pages_alloc", "pt_pages_free", "objects_alloc", "objects_free", "anon_vma_alloc",
    "avc_alloc", "shadow_objects", "xa_node_alloc", "xa_node_free", "amap_copies", "anon_alloc",
    "gm_mapping_alloc", "pv_entries", "reserv_alloc", "reserv_freed", "pagecache_adds",
    "reflink_clones", "vma_merges", "vma_splits"})


def _oom_footprint(m):
    """What OutOfMemory must leave as it was: metadata, frames per node, structure counters."""
    return _footprint(m) + ({k: v for k, v in m.counters().items() if k in STRUCTURE_COUNTERS},)


def _diff(before, after):
    """The parts of two footprints that differ, for a failure message."""
    out = []
    for b, a in zip(before, after):
        if isinstance(b, dict):
            out += [f"{k}: {b.get(k)} -> {a.get(k)}" for k in sorted(set(b) | set(a)) if b.get(k) != a.get(k)]
        elif b != a:
            out.append(f"frames in use per node: {b} -> {a}")
    return "; ".join(out)


def conformance_machine(backend, *, devices: int | None = None, ram_pages: int | None = None,
                        device_pages: int | None = None, vpn_span: int = 64, max_npages: int = 16,
                        max_procs: int = 6, options: dict | None = None, tight_memory: bool = False):
    """A RuleBasedStateMachine class comparing `backend` with the reference model.

    `backend` is a registered name or a Machine subclass.  `devices` defaults
    to 2 for designs with ``supports_devices`` and 0 otherwise.  The returned
    class has the usual ``.TestCase`` attribute for unittest/pytest.
    ``tight_memory`` (default RAM 40 pages, 12 per device) turns OutOfMemory from a
    failure into an expected outcome checked by the "leaves no trace" rule.
    """
    cls = _backend_class(backend)
    if ram_pages is None:
        ram_pages = 40 if tight_memory else 1 << 18
    if device_pages is None:
        device_pages = 12 if tight_memory else 1 << 14
    if devices is None:
        devices = 2 if cls.supports_devices else 0
    opts = dict(options or {})
    label = getattr(cls, "name", cls.__name__)
    advices = list(Advice) if getattr(cls, "huge_page_advice", False) else [Advice.DONTNEED]
    huge = vpn_span >= 1024          # room for 2 MiB (512-page) blocks

    # A vpn is drawn as (near, raw): mostly a page the reference has mapped in
    # that process (so accesses hit and ranges overlap mappings), sometimes any
    # page of the window (so holes, splits and faults happen too).
    vpns = st.tuples(st.sampled_from([True, True, True, False]), st.integers(0, 1 << 16))
    npages = st.integers(1, 4) | st.integers(1, max_npages)
    values = st.integers(1, 255) | st.integers(0, U64)
    picks = st.integers(0, 1 << 16)

    class Conformance(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            kw = dict(ram_pages=ram_pages, devices=devices, device_pages=device_pages)
            self.ref = ReferenceMachine(**kw)
            self.dut = cls(**kw, **opts)     # the design under test
            self.log: list[str] = []         # every call made on both, for a reproducer
            type(self).last = self
            self.live: list[int] = []
            self.dead: list[int] = []
            self.steps = 0
            self.ooms = 0                    # operations refused with OutOfMemory (tight_memory)

        # -- the comparison every rule goes through
        def both(self, what, call, span=None):
            if tight_memory:
                before = _oom_footprint(self.dut)
                got = _outcome(lambda: call(self.dut))
                if got == ("raise", errors.OutOfMemory):
                    # the operation did not happen: the reference is not told about it
                    self.log.append(what + "   # OutOfMemory")
                    self.steps += 1
                    self.ooms += 1
                    after = _oom_footprint(self.dut)
                    if after != before:
                        raise ConformanceFailure(f"{label}: {what} raised OutOfMemory but left a trace: "
                                                 f"{_diff(before, after)}")
                    return got
                self.log.append(what)
                want = _outcome(lambda: call(self.ref))
                before = before[:2]
            else:
                before = _footprint(self.dut)
                self.log.append(what)
                want = _outcome(lambda: call(self.ref))
                got = _outcome(lambda: call(self.dut))
            self.steps += 1
            if got != want:
                raise ConformanceFailure(
                    f"{label}: {what} gave {self._fmt(got)}, the reference model gives {self._fmt(want)}")
            if got[0] == "raise":
                if got[1] is errors.OutOfMemory:
                    raise ConformanceFailure(f"{label}: {what} ran out of memory with {ram_pages} pages of RAM")
                after = _footprint(self.dut)
                if after != before:
                    raise ConformanceFailure(
                        f"{label}: {what} failed with {got[1].__name__} but changed the machine: "
                        f"{before} -> {after}")
                if span is not None:
                    self.probe(*span)
            return got

        def probe(self, pid, vpn, n):
            """After a refused range op: every page still reads and writes as before.

            Writing back the value just read changes no data but shows a
            protection that a half-done operation would have changed.
            """
            for v in range(vpn, vpn + n):
                kind, value = self.both(f"read({pid}, {v})", lambda m: m.read(pid, v))
                if kind == "ok":
                    self.both(f"write({pid}, {v}, {value})", lambda m: m.write(pid, v, value))

        @staticmethod
        def _fmt(outcome):
            kind, v = outcome
            return f"{v.__name__}" if kind == "raise" else f"{v!r}"

        def pid(self, pick):
            return self.live[pick % len(self.live)]

        def vpn(self, pid, drawn):
            near, raw = drawn
            mapped = self.ref.procs_ref.get(pid)
            if near and mapped:
                return sorted(mapped)[raw % len(mapped)]
            return raw % vpn_span

        def layout(self, pid, regions):
            for vpn, n, shared, writable in regions:
                self.both(f"mmap({pid}, {vpn}, {n}, shared={shared}, writable={writable})",
                          lambda m: m.mmap(pid, vpn, n, shared=shared, writable=writable))

        # -- processes
        @initialize(regions=st.lists(st.tuples(st.integers(0, vpn_span - 1), st.integers(1, max_npages),
                                               st.booleans(), st.sampled_from([True, True, False])),
                                     min_size=1, max_size=4))
        def first_process(self, regions):
            self.spawn()
            self.layout(self.live[0], regions)

        @precondition(lambda self: len(self.live) < max_procs)
        @rule()
        def spawn(self):
            kind, pid = self.both("spawn()", lambda m: m.spawn())
            if kind == "ok":
                self.live.append(pid)

        @precondition(lambda self: 0 < len(self.live) < max_procs)
        @rule(pick=picks)
        def fork(self, pick):
            p = self.pid(pick)
            kind, child = self.both(f"fork({p})", lambda m: m.fork(p))
            if kind == "ok":
                self.live.append(child)

        @precondition(lambda self: 0 < len(self.live) < max_procs)
        @rule(pick=picks, vpn=vpns, values=st.tuples(values, values))
        def fork_then_write(self, pick, vpn, values):
            """The copy-on-write probe: fork, then both sides write the same page."""
            self.fork(pick)
            parent, child = self.pid(pick), self.live[-1]
            v = self.vpn(parent, vpn)
            for p, value in zip((child, parent), values):
                self.both(f"write({p}, {v}, {value})", lambda m: m.write(p, v, value))
            for p in (parent, child):
                self.both(f"read({p}, {v})", lambda m: m.read(p, v))

        @precondition(lambda self: self.live)
        @rule(pick=picks)
        def exit(self, pick):
            p = self.pid(pick)
            kind, _ = self.both(f"exit({p})", lambda m: m.exit(p))
            if kind == "ok":
                self.live.remove(p)
                self.dead.append(p)

        @rule(pick=picks, vpn=vpns)
        def no_such_process(self, pick, vpn):
            """An op naming an exited or never-created pid fails the same way on both."""
            ghosts = self.dead + [self.ref.next_free_pid, 0, -1]
            p = ghosts[pick % len(ghosts)]
            vpn = vpn[1] % vpn_span
            self.both(f"read({p}, {vpn})", lambda m: m.read(p, vpn))
            self.both(f"fork({p})", lambda m: m.fork(p))

        # -- mappings
        @precondition(lambda self: self.live)
        @rule(pick=picks, vpn=vpns, n=npages, shared=st.booleans(), writable=st.booleans())
        def mmap(self, pick, vpn, n, shared, writable):
            p = self.pid(pick)
            vpn = self.vpn(p, (not vpn[0], vpn[1]))     # mostly anywhere: holes and collisions
            self.both(f"mmap({p}, {vpn}, {n}, shared={shared}, writable={writable})",
                      lambda m: m.mmap(p, vpn, n, shared=shared, writable=writable), span=(p, vpn, n))

        @precondition(lambda self: self.live)
        @rule(pick=picks, regions=st.lists(st.tuples(st.integers(0, vpn_span - 1), st.integers(1, max_npages),
                                                     st.booleans(), st.booleans()), min_size=1, max_size=3))
        def mmap_several(self, pick, regions):
            self.layout(self.pid(pick), regions)

        @precondition(lambda self: self.live)
        @rule(pick=picks, vpn=vpns, n=npages)
        def munmap(self, pick, vpn, n):
            p = self.pid(pick)
            vpn = self.vpn(p, vpn)
            self.both(f"munmap({p}, {vpn}, {n})", lambda m: m.munmap(p, vpn, n))

        @precondition(lambda self: self.live)
        @rule(pick=picks, vpn=vpns, n=npages, writable=st.booleans())
        def mprotect(self, pick, vpn, n, writable):
            p = self.pid(pick)
            vpn = self.vpn(p, vpn)
            self.both(f"mprotect({p}, {vpn}, {n}, {writable})",
                      lambda m: m.mprotect(p, vpn, n, writable), span=(p, vpn, n))

        @precondition(lambda self: self.live)
        @rule(pick=picks, old=vpns, n=npages, new=vpns)
        def mremap(self, pick, old, n, new):
            p = self.pid(pick)
            old, new = self.vpn(p, old), self.vpn(p, (not new[0], new[1]))   # mostly into a hole
            kind, _ = self.both(f"mremap({p}, {old}, {n}, {new})", lambda m: m.mremap(p, old, n, new),
                                span=(p, old, n))
            if kind == "raise":
                self.probe(p, new, n)

        def move(self, p, src, dst, n):
            """move_pages on both: the one operation whose refusals are partly optional.
            PageBusy is accepted where the reference allows it (a source page inherited
            through a fork), NotSupported from a design without move_pages; either way
            nothing may change.  A refusal for a destination holding data may fault
            pages in on a copying design: there values are compared, not structures."""
            what = f"move_pages({p}, {src}, {dst}, {n})"
            why = self.ref.move_pages_refusal(p, src, dst, n)
            may_busy = self.ref.move_pages_may_busy(p, src, dst, n)
            before = _footprint(self.dut)
            oom_before = _oom_footprint(self.dut) if tight_memory else None
            self.log.append(what)
            got = _outcome(lambda: self.dut.move_pages(p, src, dst, n))
            self.steps += 1
            if tight_memory and got == ("raise", errors.OutOfMemory):
                # as in both(): the move did not happen, the reference is not told.  A
                # design that moves (linux's UFFDIO_MOVE) must leave no trace; the generic
                # copying fallback reads and writes through the design's own faults and
                # undoes its writes with MADV_DONTNEED, so there values are compared, not
                # structures (docs/fidelity.md)
                self.log[-1] += "   # OutOfMemory"
                self.ooms += 1
                after = _oom_footprint(self.dut)
                if getattr(self.dut, "move_native", False) and after != oom_before:
                    raise ConformanceFailure(f"{label}: {what} raised OutOfMemory but left a trace: "
                                             f"{_diff(oom_before, after)}")
                self.probe(p, src, n)
                self.probe(p, dst, n)
                return got
            optional = got in (("raise", errors.NotSupported),) or (got == ("raise", errors.PageBusy) and may_busy)
            if not optional:
                want = _outcome(lambda: self.ref.move_pages(p, src, dst, n))
                if got != want:
                    raise ConformanceFailure(
                        f"{label}: {what} gave {self._fmt(got)}, the reference model gives {self._fmt(want)}")
            if got[0] == "raise":
                if why != "dst_data" and _footprint(self.dut) != before:
                    raise ConformanceFailure(f"{label}: {what} failed with {got[1].__name__} but changed "
                                             f"the machine")
                self.probe(p, src, n)
                self.probe(p, dst, n)
            else:
                for v in (*range(src, src + n), *range(dst, dst + n)):
                    self.both(f"read({p}, {v})", lambda m: m.read(p, v))
            return got

        @precondition(lambda self: self.live)
        @rule(pick=picks, src=vpns, n=npages, dst=vpns)
        def move_pages(self, pick, src, n, dst):
            p = self.pid(pick)
            self.move(p, self.vpn(p, src), self.vpn(p, dst), n)

        @precondition(lambda self: 0 < len(self.live) < max_procs)
        @rule(pick=picks, src=st.integers(0, vpn_span - 1), n=npages, off=st.integers(0, vpn_span),
              written=st.lists(st.integers(0, max_npages - 1), max_size=4), value=values,
              fork=st.sampled_from([None, None, "parent", "child"]))
        def move_pages_compact(self, pick, src, n, off, written, value, fork):
            """The compacting collector's step: objects written in a fresh source range, a
            fresh destination, the move -- after a fork in the parent (its pages are
            inherited: PageBusy allowed) or in the child once it wrote them."""
            p = self.pid(pick)
            dst = (src + vpn_span // 2 + off) % (vpn_span + max_npages)
            for v in (src, dst):
                self.both(f"munmap({p}, {v}, {n})", lambda m: m.munmap(p, v, n))
                self.both(f"mmap({p}, {v}, {n})", lambda m: m.mmap(p, v, n))
            for k in written:
                v = src + k % n
                self.both(f"write({p}, {v}, {value})", lambda m: m.write(p, v, value ^ v))
            if fork is not None:
                self.fork(pick)
                if fork == "child":
                    p = self.live[-1]
                    for k in written[:2]:
                        v = src + k % n
                        self.both(f"write({p}, {v}, {value})", lambda m: m.write(p, v, value))
            self.move(p, src, dst, n)

        @precondition(lambda self: self.live)
        @rule(pick=picks, vpn=vpns, n=npages)
        def madvise_dontneed(self, pick, vpn, n):
            p = self.pid(pick)
            vpn = self.vpn(p, vpn)
            self.both(f"madvise_dontneed({p}, {vpn}, {n})",
                      lambda m: m.madvise_dontneed(p, vpn, n), span=(p, vpn, n))

        @precondition(lambda self: self.live)
        @rule(pick=picks, vpn=vpns, n=npages, advice=st.sampled_from(advices))
        def madvise(self, pick, vpn, n, advice):
            p = self.pid(pick)
            vpn = self.vpn(p, vpn)
            self.both(f"madvise({p}, {vpn}, {n}, mmbench.Advice.{advice.name})",
                      lambda m: m.madvise(p, vpn, n, advice), span=(p, vpn, n))

        if huge:
            @precondition(lambda self: self.live)
            @rule(pick=picks, block=st.integers(0, vpn_span // 512 - 1), shift=st.sampled_from([0, 0, 1, 37, 511]),
                  n=st.sampled_from([512, 512, 1024, 600, 100]), advice=st.sampled_from(advices + [None]))
            def mmap_huge(self, pick, block, shift, n, advice):
                """A mapping of 2 MiB blocks: aligned (shift 0) or not, optionally advised."""
                p = self.pid(pick)
                vpn = block * 512 + shift
                kind, _ = self.both(f"mmap({p}, {vpn}, {n})", lambda m: m.mmap(p, vpn, n), span=(p, vpn, n))
                if kind == "ok" and advice is not None:
                    self.both(f"madvise({p}, {vpn}, {n}, mmbench.Advice.{advice.name})", lambda m: m.madvise(p, vpn, n, advice))

            @precondition(lambda self: self.live)
            @rule(pick=picks, block=st.integers(0, vpn_span // 512 - 1), value=values)
            def touch_huge(self, pick, block, value):
                """First touch of every page of one 2 MiB block (what promotes it)."""
                p = self.pid(pick)
                for v in range(block * 512, block * 512 + 512):
                    self.both(f"write({p}, {v}, {value})", lambda m: m.write(p, v, value ^ v))

            @precondition(lambda self: 0 < len(self.live) < max_procs)
            @rule(pick=picks, block=st.integers(0, vpn_span // 512 - 1), n=st.sampled_from([512, 1024, 600]),
                  off=st.integers(0, 511), run=st.integers(1, 700), back=st.integers(0, 511),
                  cut=st.integers(1, 700), op=st.sampled_from(["mprotect", "mprotect", "dontneed", "munmap"]),
                  value=values)
            def write_cut_fork(self, pick, block, n, off, run, back, cut, op, value):
                """mmap_huge's aligned mapping (where the window is free), a run written from
                inside its block (populated from a page other than its first), a partial
                operation starting in the block at or before the run, then fork: the fork
                splits the objects of the entries the cut made (vm_object_split) inside
                the block."""
                self.mmap_huge(pick, block, 0, n, None)
                p = self.pid(pick)
                start = block * 512 + off
                for v in range(start, min(start + run, vpn_span)):
                    self.both(f"write({p}, {v}, {value})", lambda m: m.write(p, v, value ^ v))
                vpn = start - back % (off + 1)
                if op == "mprotect":
                    self.both(f"mprotect({p}, {vpn}, {cut}, False)", lambda m: m.mprotect(p, vpn, cut, False))
                elif op == "dontneed":
                    self.both(f"madvise_dontneed({p}, {vpn}, {cut})", lambda m: m.madvise_dontneed(p, vpn, cut))
                else:
                    self.both(f"munmap({p}, {vpn}, {cut})", lambda m: m.munmap(p, vpn, cut))
                self.fork(pick)

            @precondition(lambda self: self.live)
            @rule(pick=picks, block=st.integers(0, vpn_span // 512 - 1), off=st.integers(0, 511),
                  n=st.integers(1, 700), op=st.sampled_from(["munmap", "mprotect", "mremap", "dontneed"]))
            def cut_huge(self, pick, block, off, n, op):
                """A partial operation inside a 2 MiB block (what splits or demotes it)."""
                p = self.pid(pick)
                vpn = block * 512 + off
                if op == "munmap":
                    self.both(f"munmap({p}, {vpn}, {n})", lambda m: m.munmap(p, vpn, n))
                elif op == "mprotect":
                    self.both(f"mprotect({p}, {vpn}, {n}, False)", lambda m: m.mprotect(p, vpn, n, False),
                              span=(p, vpn, n))
                elif op == "dontneed":
                    self.both(f"madvise_dontneed({p}, {vpn}, {n})", lambda m: m.madvise_dontneed(p, vpn, n),
                              span=(p, vpn, n))
                else:
                    new = (vpn + vpn_span // 2) % vpn_span
                    self.both(f"mremap({p}, {vpn}, {n}, {new})", lambda m: m.mremap(p, vpn, n, new),
                              span=(p, vpn, n))

        # -- memory access (weighted up: two rules each)
        @precondition(lambda self: self.live)
        @rule(pick=picks, vpn=vpns)
        def read(self, pick, vpn):
            p = self.pid(pick)
            vpn = self.vpn(p, vpn)
            self.both(f"read({p}, {vpn})", lambda m: m.read(p, vpn))

        @precondition(lambda self: self.live)
        @rule(pick=picks, vpn=vpns, value=values)
        def write(self, pick, vpn, value):
            p = self.pid(pick)
            vpn = self.vpn(p, vpn)
            self.both(f"write({p}, {vpn}, {value})", lambda m: m.write(p, vpn, value))

        @precondition(lambda self: self.live)
        @rule(pick=picks, vpn=vpns, n=npages, value=values)
        def write_range(self, pick, vpn, n, value):
            p = self.pid(pick)
            vpn = self.vpn(p, vpn)
            for v in range(vpn, min(vpn + n, vpn_span)):
                self.both(f"write({p}, {v}, {value})", lambda m: m.write(p, v, value))

        @precondition(lambda self: self.live)
        @rule()
        def read_everything(self):
            self.compare_all_pages()

        def compare_all_pages(self):
            for p in list(self.live):
                for v in range(vpn_span + max_npages):
                    self.both(f"read({p}, {v})", lambda m: m.read(p, v))

        # -- accelerators
        if devices:
            @precondition(lambda self: self.live)
            @rule(pick=picks, vpn=vpns, n=npages, node=st.integers(0, devices))
            def migrate(self, pick, vpn, n, node):
                p = self.pid(pick)
                vpn = self.vpn(p, vpn)
                self.both(f"migrate({p}, {vpn}, {n}, {node})",
                          lambda m: m.migrate(p, vpn, n, node), span=(p, vpn, n))

            @precondition(lambda self: self.live)
            @rule(dev=st.integers(1, devices), pick=picks, vpn=vpns)
            def device_read(self, dev, pick, vpn):
                p = self.pid(pick)
                vpn = self.vpn(p, vpn)
                self.both(f"device_read({dev}, {p}, {vpn})", lambda m: m.device_read(dev, p, vpn))

            @precondition(lambda self: self.live)
            @rule(dev=st.integers(1, devices), pick=picks, vpn=vpns, value=values)
            def device_write(self, dev, pick, vpn, value):
                p = self.pid(pick)
                vpn = self.vpn(p, vpn)
                self.both(f"device_write({dev}, {p}, {vpn}, {value})",
                          lambda m: m.device_write(dev, p, vpn, value))

        # -- after every step
        @invariant()
        def design_is_consistent(self):
            try:
                self.dut.check()
            except errors.InvariantViolation as e:
                raise ConformanceFailure(f"{label}: check() failed after {self.steps} ops: {e}") from e
            if self.dut.live_pids() != self.ref.live_pids():
                raise ConformanceFailure(
                    f"{label}: live pids {self.dut.live_pids()} != reference {self.ref.live_pids()}")

        def teardown(self):
            self.compare_all_pages()
            for p in list(self.live):
                self.both(f"exit({p})", lambda m: m.exit(p))
            self.live.clear()
            self.design_is_consistent()
            leaks = list(self.dut.leaks())
            meta = self.dut.metadata()
            for name in self.dut.per_process_structs():
                count = meta.get(name, (0, 0))[0]
                if count and not any(x.startswith(f"{name}:") for x in leaks):
                    leaks.append(f"{name}: {count} live")
            if leaks:
                raise ConformanceFailure(f"{label}: leaks after every process exited: {leaks}")

    Conformance.last = None
    Conformance.__name__ = Conformance.__qualname__ = f"Conformance_{label}"
    return Conformance


def run_conformance(backend, settings_: settings | None = None, **kw) -> None:
    """Run the conformance state machine for `backend`; raises on the first disagreement."""
    from hypothesis.stateful import run_state_machine_as_test
    run_state_machine_as_test(conformance_machine(backend, **kw), settings=settings_ or default_settings())


# ------------------------------------------------- `mmbench conformance NAME`
# Scripted sequences: each names a mechanism and exercises it in a few calls,
# so a design that lacks one (no copy-on-write, shared pages copied, a
# protection lost at fork …) fails in milliseconds, before any random search.
# Pids are those a fresh machine hands out (1, 2, 3 … in creation order).
W = "shared=False, writable=True"
SCRIPTS = {
    "private memory": ["spawn()", f"mmap(1, 0, 4, {W})", "read(1, 0)", "write(1, 1, 7)", "read(1, 1)",
                       "read(1, 2)", "read(1, 4)", "write(1, 5, 1)"],
    "copy-on-write after fork": [
        "spawn()", f"mmap(1, 0, 4, {W})", "write(1, 0, 11)", "write(1, 1, 12)", "fork(1)",
        "write(2, 0, 21)", "read(1, 0)", "read(2, 0)", "write(1, 1, 13)", "read(2, 1)", "read(1, 1)",
        "read(2, 2)", "write(2, 2, 22)", "read(1, 2)", "exit(1)", "write(2, 1, 23)", "read(2, 1)"],
    "a chain of forks": [
        "spawn()", f"mmap(1, 0, 2, {W})", "write(1, 0, 1)", "fork(1)", "fork(2)", "write(3, 0, 3)",
        "read(1, 0)", "read(2, 0)", "write(2, 0, 2)", "read(3, 0)", "exit(2)", "read(3, 0)", "read(1, 0)",
        "fork(3)", "write(4, 0, 4)", "read(3, 0)", "write(1, 1, 5)", "read(4, 1)"],
    "shared memory across fork": [
        "spawn()", "mmap(1, 0, 2, shared=True, writable=True)", "write(1, 0, 5)", "fork(1)",
        "write(2, 0, 6)", "read(1, 0)", "write(1, 1, 7)", "read(2, 1)", "exit(1)", "read(2, 0)"],
    "protections": [
        "spawn()", "mmap(1, 0, 2, shared=False, writable=False)", "read(1, 0)", "write(1, 0, 1)",
        "mprotect(1, 0, 2, True)", "write(1, 0, 1)", "mprotect(1, 0, 1, False)", "write(1, 0, 2)",
        "write(1, 1, 3)", "read(1, 0)", "fork(1)", "write(2, 0, 9)", "write(2, 1, 9)", "read(1, 1)"],
    "munmap and splits": [
        "spawn()", f"mmap(1, 0, 8, {W})", "write(1, 1, 1)", "write(1, 4, 4)", "munmap(1, 2, 2)",
        "read(1, 2)", "read(1, 4)", "write(1, 3, 1)", f"mmap(1, 2, 1, {W})", "read(1, 2)", "read(1, 1)",
        "munmap(1, 0, 16)", "read(1, 0)"],
    "mremap": [
        "spawn()", f"mmap(1, 0, 4, {W})", "write(1, 0, 1)", "write(1, 3, 4)", "mremap(1, 0, 4, 16)",
        "read(1, 16)", "read(1, 19)", "read(1, 0)", "fork(1)", "write(2, 16, 5)", "read(1, 16)",
        "mremap(1, 16, 4, 18)", "mremap(1, 40, 2, 50)"],
    "madvise_dontneed": [
        "spawn()", f"mmap(1, 0, 2, {W})", "mmap(1, 4, 2, shared=True, writable=True)", "write(1, 0, 1)",
        "write(1, 4, 2)", "fork(1)", "madvise_dontneed(1, 0, 2)", "read(1, 0)", "read(2, 0)",
        "madvise_dontneed(1, 4, 2)", "read(1, 4)", "read(2, 4)"],
    "move_pages": [
        "spawn()", f"mmap(1, 0, 8, {W})", "write(1, 0, 1)", "write(1, 2, 3)", "read(1, 3)",
        f"mmap(1, 16, 8, {W})", "move_pages(1, 0, 16, 4)", "read(1, 16)", "read(1, 18)", "read(1, 0)",
        "read(1, 19)", "move_pages(1, 16, 17, 2)", "move_pages(1, 40, 0, 1)",
        "mmap(1, 32, 2, shared=True, writable=True)", "move_pages(1, 32, 4, 2)", "fork(1)",
        "write(2, 18, 9)", "move_pages(2, 18, 6, 1)", "read(2, 6)", "read(1, 18)", "read(2, 18)"],
    "refused operations": [
        "spawn()", f"mmap(1, 0, 4, {W})", "write(1, 2, 3)", f"mmap(1, 2, 4, {W})",
        "mprotect(1, 0, 8, False)", "madvise_dontneed(1, 3, 4)", "read(1, 9)", "fork(9)", "exit(9)",
        "read(1, 2)", "write(1, 2, 4)"],
    "exit frees everything": [
        "spawn()", f"mmap(1, 0, 64, {W})", "write(1, 0, 1)", "write(1, 63, 2)", "fork(1)", "exit(1)",
        "exit(2)", "spawn()", f"mmap(3, 0, 4, {W})", "read(3, 0)"],
}
DEVICE_SCRIPTS = {
    "device access and migration": [
        "spawn()", f"mmap(1, 0, 4, {W})", "write(1, 0, 1)", "migrate(1, 0, 4, 1)", "device_read(1, 1, 0)",
        "device_write(1, 1, 1, 5)", "read(1, 1)", "fork(1)", "device_write(1, 2, 0, 6)", "read(1, 0)",
        "read(2, 0)", "migrate(1, 0, 4, 0)", "read(1, 0)"],
}


def _call(m, what: str):
    """Run one logged call ("write(1, 0, 7)") on machine `m` (the strings are our own)."""
    import mmbench
    return eval("m." + what, {"__builtins__": {}}, {"m": m, "mmbench": mmbench})   # noqa: S307 - generated text only


def replay_calls(cls, calls, machine_kw: dict, options: dict):
    """Run `calls` on a fresh design and a fresh reference model side by side.

    Returns None when they agree throughout (and nothing leaks once every process
    exited), else (index of the call that disagreed or -1 for the end, message).
    """
    ref = ReferenceMachine(**machine_kw)
    try:
        dut = cls(**machine_kw, **options)
    except errors.MMError as e:
        raise errors.InvalidArgument(f"cannot open the design: {type(e).__name__}: {e}") from None
    for i, what in enumerate(calls):
        before = _footprint(dut)
        want = _outcome(lambda: _call(ref, what))
        try:
            got = _outcome(lambda: _call(dut, what))
        except Exception as e:  # a design bug that is not an mmbench error
            return i, f"{what} raised {type(e).__name__}: {e}"
        if got != want:
            return i, (f"{what} gives {_fmt_outcome(got)} on the design, {_fmt_outcome(want)} "
                       f"on the reference model")
        if got[0] == "raise" and _footprint(dut) != before:
            return i, f"{what} failed with {got[1].__name__} but changed the design's metadata or frames"
        try:
            dut.check()
        except Exception as e:
            return i, f"check() after {what}: {e}"
    for pid in dut.live_pids():
        dut.exit(pid)
    try:
        dut.check()
        leaks = list(dut.leaks())
    except Exception as e:
        return -1, f"after every process exited: {type(e).__name__}: {e}"
    if leaks:
        return -1, f"after every process exited, still held: {', '.join(leaks)}"
    return None


def _fmt_outcome(outcome):
    kind, v = outcome
    return v.__name__ if kind == "raise" else repr(v)


def _kind(failure) -> str:
    """What a failure is about (the call's name, or the end): minimizing keeps it."""
    i, msg = failure
    return "end" if i < 0 else msg.split("(", 1)[0]


def minimize(cls, calls, machine_kw: dict, options: dict, failure):
    """A short sequence that still fails the same way: drop chunks of calls, halving the
    chunk size, keeping every removal after which the failure remains (delta debugging)."""
    kind = _kind(failure)

    def fails(seq):
        f = replay_calls(cls, seq, machine_kw, options)
        return f if f is not None and _kind(f) == kind else None

    calls = list(calls if failure[0] < 0 else calls[:failure[0] + 1])
    size = max(1, len(calls) // 2)
    while True:
        i = 0
        while i < len(calls):
            cand = calls[:i] + calls[i + size:]
            f = fails(cand) if cand else None
            if f is not None:
                calls = cand if f[0] < 0 else cand[:f[0] + 1]
                failure = f
            else:
                i += size
        if size == 1:
            return calls, failure
        size = max(1, size // 2)


@dataclasses.dataclass
class DesignReport:
    """What `mmbench conformance NAME` found."""
    design: str
    open_line: str
    checked: list = dataclasses.field(default_factory=list)   # scripted sequences that agreed
    examples: int = 0                                          # random sequences run
    failure: tuple | None = None                              # (where found, message)
    reproducer: list = dataclasses.field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failure is None

    def text(self) -> str:
        if self.ok:
            return (f"{self.design}: agrees with the reference model on {len(self.checked)} scripted "
                    f"sequences and {self.examples} random ones, no leaks ({self.elapsed_s:.1f} s)")
        where, msg = self.failure
        lines = [f"{self.design}: DISAGREES with the reference model ({where}, {self.elapsed_s:.1f} s)",
                 f"  {msg}", "", f"reproducer ({len(self.reproducer)} calls):", "", "    import mmbench",
                 f"    {self.open_line}"]
        lines += [f"    m.{c}" for c in self.reproducer]
        if self.reproducer and self.failure and "gives" in msg:
            lines[-1] += "    # " + msg.split(" gives ", 1)[1]
        if self.failure and "after every process exited" in msg:
            lines += ["    for pid in m.live_pids(): m.exit(pid)", "    print(m.leaks())"]
        else:
            lines += ["    m.check()"]
        return "\n".join(lines)


def _open_line(cls, name: str, kw: dict, options: dict) -> str:
    args = ", ".join([f"{k}={v!r}" for k, v in {**kw, **options}.items()])
    if ":" not in name:
        return f"m = mmbench.open({name!r}, {args})"
    mod, _, attr = name.partition(":")
    return f"from {mod} import {attr}; m = {attr}({args})"


def check_design(backend, *, name: str | None = None, examples: int = 200, options=None,
                 devices: int | None = None, log=lambda msg: None) -> DesignReport:
    """The scripted sequences, then `examples` random ones; stops at the first disagreement
    and shrinks it to a short reproducer."""
    import time
    from hypothesis import Phase, Verbosity
    from hypothesis.stateful import run_state_machine_as_test
    cls = _backend_class(backend)
    name = name or (backend if isinstance(backend, str) else getattr(cls, "name", cls.__name__))
    options = dict(options or {})
    if devices is None:
        devices = 2 if cls.supports_devices else 0
    kw = dict(ram_pages=1 << 18, devices=devices, device_pages=1 << 14)
    if not devices:
        kw = dict(ram_pages=1 << 18)
    rep = DesignReport(name, _open_line(cls, name, kw, options))
    t0 = time.monotonic()
    scripts = dict(SCRIPTS, **(DEVICE_SCRIPTS if devices else {}))
    for title, calls in scripts.items():
        f = replay_calls(cls, calls, kw, options)
        if f is not None:
            rep.reproducer, f = minimize(cls, calls, kw, options, f)
            rep.failure = (f"scripted: {title}", f[1])
            rep.elapsed_s = time.monotonic() - t0
            return rep
        rep.checked.append(title)
    log(f"{name}: {len(rep.checked)} scripted sequences agree; {examples} random sequences next")
    if examples:
        sm = conformance_machine(cls, devices=devices, options=options)
        cfg = settings(max_examples=examples, stateful_step_count=40, deadline=None, database=None,
                       derandomize=True, report_multiple_bugs=False, verbosity=Verbosity.quiet,
                       print_blob=False, suppress_health_check=list(HealthCheck),
                       phases=[Phase.generate])      # no Hypothesis shrinking: minimize() is faster
        try:
            run_state_machine_as_test(sm, settings=cfg)
        except Exception as e:
            calls = list(sm.last.log) if sm.last is not None else []
            kw_sm = dict(ram_pages=1 << 18, devices=devices, device_pages=1 << 14)
            f = replay_calls(cls, calls, kw_sm, options) if calls else None
            if f is None:       # not reproducible from the calls alone: report what Hypothesis saw
                rep.failure = ("random sequences", f"{type(e).__name__}: {str(e).splitlines()[0]}")
                rep.reproducer = calls
            else:
                rep.reproducer, f = minimize(cls, calls, kw_sm, options, f)
                rep.failure = ("random sequences", f[1])
            rep.open_line = _open_line(cls, name, kw_sm, options)
        rep.examples = examples
    rep.elapsed_s = time.monotonic() - t0
    return rep


# ----------------------------------------------------------------- traces
@st.composite
def random_traces(draw, devices: int = 0, vpn_span: int = 64, max_npages: int = 16,
                  max_procs: int = 6, max_ops: int = 120, huge_page_advice: bool = False):
    """A valid trace (every pid alive when named) mixing every operation.

    MADVISE records carry DONTNEED, or any advice with `huge_page_advice`."""
    advices = list(Advice) if huge_page_advice else [Advice.DONTNEED]
    t = TraceBuilder()
    live = [t.spawn()]
    kinds = ["mmap", "munmap", "mprotect", "read", "read", "write", "write", "fork", "exit",
             "mremap", "madvise", "advise", "spawn"] + (["migrate", "dread", "dwrite"] if devices else [])
    vpn = st.integers(0, vpn_span - 1)
    n = st.integers(1, max_npages)
    for _ in range(draw(st.integers(1, max_ops))):
        k = draw(st.sampled_from(kinds))
        if k == "spawn":
            if len(live) < max_procs:
                live.append(t.spawn())
            continue
        if not live:
            live.append(t.spawn())
        p = draw(st.sampled_from(live))
        if k == "mmap":
            t.mmap(p, draw(vpn), draw(n), shared=draw(st.booleans()), writable=draw(st.booleans()))
        elif k == "munmap":
            t.munmap(p, draw(vpn), draw(n))
        elif k == "mprotect":
            t.mprotect(p, draw(vpn), draw(n), draw(st.booleans()))
        elif k == "read":
            t.read(p, draw(vpn))
        elif k == "write":
            t.write(p, draw(vpn), draw(st.integers(0, U64)))
        elif k == "fork":
            if len(live) < max_procs:
                live.append(t.fork(p))
        elif k == "exit":
            t.exit(p)
            live.remove(p)
        elif k == "mremap":
            t.mremap(p, draw(vpn), draw(n), draw(vpn))
        elif k == "madvise":
            t.madvise_dontneed(p, draw(vpn), draw(n))
        elif k == "advise":
            t.madvise(p, draw(vpn), draw(n), draw(st.sampled_from(advices)))
        elif k == "migrate":
            t.migrate(p, draw(vpn), draw(n), draw(st.integers(0, devices)))
        elif k == "dread":
            t.device_read(draw(st.integers(1, devices)), p, draw(vpn))
        elif k == "dwrite":
            t.device_write(draw(st.integers(1, devices)), p, draw(vpn), draw(st.integers(0, U64)))
    for p in live:
        t.exit(p)
    return t.build()
