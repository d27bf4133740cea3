"""`mmbench record` and `mmbench replay`: real programs, recorded on this host, replayed everywhere.

``mmbench record -o T.npz -- CMD ARGS…`` runs CMD under ``perf record`` with
the tracepoints of mmbench.record_stream (every process CMD creates is
followed), turns the stream into an ordinary trace (mmbench.record_convert)
and saves it with its provenance::

    perf record ──► perf.data ──► perf script (text) ──► Converter ──► T.npz
         │                                                    ▲         (trace +
         └── a poller samples /proc/PID/status (VmPTE) of ────┘          provenance)
             every process of the program, /proc/slabinfo before/after

The provenance (``load_recording(path)[1]``) holds the command, the host
kernel, THP mode, duration, exit status, the host's own numbers (faults by
kind from the stream, peak VmPTE per process, slab deltas of the MM caches,
time in fork system calls, time in faults by kind), the counted notes of the
conversion and the numbers behind the bias statement (mmbench.record_replay).

Host time.  BPF fentry/fexit would time handle_mm_fault and copy_process
exactly, but this host's kernel refuses every trampoline program at load
(bpf(BPF_PROG_LOAD) of a BPF_PROG_TYPE_TRACING program with expected attach
type FENTRY, FEXIT or MODIFY_RETURN, and of BPF_PROG_TYPE_LSM, returns EPERM
with an empty verifier log, as root with every capability, whatever the
target; tp_btf and iter programs reach the verifier), and it has no kprobes
and no function_graph tracer.  What it has: perf's software fault events,
which the kernel emits at the start of the x86 fault handler and at the end
of handle_mm_fault (record_stream.TIMING_EVENTS), and context-switch records
to take preemption out.  A fault window and a fork window (fork entry to
task_newtask) are each off the true cost by a per-operation constant —
the part of the operation outside the window, less perf's own work inside
it — which `measure_overhead` measures after the program: the same small
loop (recordloop) untraced and under the very same probes.

Every failure is one line: no perf, no permission, a program that cannot be
started, a stream perf cannot decode.  A program that crashes is recorded up
to the crash, with a warning in the notes.
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import List, Optional

import typer

from mmbench import errors, hostcheck
from mmbench import record_stream as rs
from mmbench.record_replay import load_recording, save_recording  # noqa: F401  (the file format)

SLAB_CACHES = ("vm_area_struct", "anon_vma", "anon_vma_chain", "maple_node")
PERF_BUFFER_PAGES = "4096"        # ring buffer per CPU (16 MiB): bursts of faults must not be lost
ACCESS_POLL_S = 0.001            # how often forked children's accessed bits are read
POLL_S = 0.01                     # how often the poller reads VmPTE and slabinfo
TRACEFS = ("/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events")
LOOP_ARGS = ("30", "2000", "3")   # recordloop: forks, pages, repetitions (see measure_overhead)


class RecordError(errors.MMError):
    """Recording could not be done; the message is one sentence saying why."""


# ----------------------------------------------------------------- the host
def perf_available() -> str | None:
    """None when perf can record tracepoints here, else the reason it cannot."""
    if shutil.which("perf") is None:
        return "perf is not installed (Debian: apt-get install linux-perf)"
    if os.geteuid() != 0:
        try:
            paranoid = int(Path("/proc/sys/kernel/perf_event_paranoid").read_text())
        except (OSError, ValueError):
            paranoid = 2
        if paranoid > -1:
            return ("recording tracepoints needs root (or kernel.perf_event_paranoid = -1; "
                    f"it is {paranoid})")
    if not any(os.path.isdir(os.path.join(d, "exceptions")) for d in TRACEFS):
        try:
            out = subprocess.run(["perf", "list", "exceptions:page_fault_user"], capture_output=True,
                                 text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"perf does not run: {e}"
        if "page_fault_user" not in out:
            return "this kernel has no exceptions:page_fault_user tracepoint (x86 only)"
    return None


def _available_events(events: list[str]) -> tuple[list[str], list[str]]:
    """(events this kernel has, events it lacks) — checked in tracefs when it is mounted."""
    root = next((d for d in TRACEFS if os.path.isdir(d)), None)
    if root is None:
        return events, []
    have, lack = [], []
    for e in events:
        group, name = e.split(":")
        (have if os.path.isdir(os.path.join(root, group, name)) else lack).append(e)
    return have, lack


def thp_mode() -> str:
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
        return text.split("[")[1].split("]")[0]
    except (OSError, IndexError):
        return "unknown"


def perf_argv(events: list[str], data: str) -> list[str]:
    """The ``perf record`` command line of a recording (the program's argv follows)."""
    plain = [e for e in events if e not in rs.FILTERS]
    argv = ["perf", "record", "-q", "-d", "-k", "mono", "--switch-events", "-m", PERF_BUFFER_PAGES,
            "-e", ",".join(plain + list(rs.TIMING_EVENTS))]
    for e in events:                       # a filter applies to the -e just before it
        if e in rs.FILTERS:
            argv += ["-e", e, "--filter", rs.FILTERS[e]]
    return argv + ["-o", data, "--"]


# ----------------------------------------------------------------- tracing overhead
def _loop_path() -> str:
    import importlib.resources
    p = importlib.resources.files("mmbench") / "recordloop"
    if not p.is_file():
        raise RecordError("mmbench's recordloop helper is not built")
    return str(p)


def parse_loop(text: str) -> dict:
    """recordloop's output as lists: fork_wall, fork_cpu, read, write (ns)."""
    out: dict = {"fork_wall": [], "fork_cpu": [], "read": [], "write": []}
    for line in text.splitlines():
        f = line.split()
        try:
            if f and f[0] == "fork" and len(f) == 3:
                out["fork_wall"].append(int(f[1]))
                out["fork_cpu"].append(int(f[2]))
            elif f and f[0] in ("read", "write") and len(f) == 2:
                out[f[0]].append(float(f[1]))
        except ValueError:
            continue
    return out


def _quartile(xs):
    """The lower quartile (the value a quarter of the way up the sorted list)."""
    xs = sorted(xs)
    return float(xs[len(xs) // 4]) if xs else None


def _median(xs):
    xs = sorted(xs)
    return float(xs[len(xs) // 2]) if xs else None


def overhead_from(plain: dict, traced: dict, host: dict) -> dict:
    """The correction of the host's recorded windows, from the loop run untraced (`plain`,
    parse_loop), the same loop's own timings under the probes (`traced`) and what the
    converter measured in the traced run's stream (`host`).

    A fault window (record_stream.TIMING_EVENTS) leaves out the exception's entry and
    exit and holds one perf sample's emission; a fork window (fork syscall entry to
    task_newtask) leaves out the child's exit and the wait, and holds perf's work in
    copy_process (inheriting the recorder's events into the child).  Both differences
    are per-operation constants, measured here on the simplest case of each: a
    zero-page read fault (the calibration's ``trap``) and the fork of an empty process
    (its ``fork_base``).  ``fault_add_ns`` / ``fork_add_ns`` are what to add to each
    window (negative: to take away) to get the untraced full cost."""
    ft = host.get("fault_time") or {}
    med = ft.get("median_ns_by_replay_kind", {})
    win_read, win_write = med.get("zero_page"), med.get("zero_fill")
    win_fork = _median(host.get("fork_copy_windows_ns", []))
    u = {k: _median(plain[k]) for k in ("fork_cpu", "fork_wall", "read", "write")}
    t = {k: _median(traced[k]) for k in ("fork_cpu", "fork_wall", "read", "write")}
    if None in (win_read, win_write, win_fork, u["read"], u["write"], u["fork_cpu"]):
        raise RecordError("the overhead loop's stream lacks its faults or forks")
    add_f = u["read"] - win_read
    win_dup = _median(host.get("fork_dup_mmap_windows_ns", []))
    q1 = _quartile(plain["fork_cpu"])
    dup = {} if win_dup is None else {
        # the empty fork's dup_mmap window (the parent's mmap write-lock inside fork):
        # no perf work inside it, so the correction is the rest of an empty fork.  Its
        # untraced CPU time is taken at the lower quartile: on a host shared with other
        # work, most of the 30 forks of a busy moment are disturbed and the median of one
        # loop has been 2-3 times that of another (docs/real-programs.md, "Host time")
        "fork_dup_add_ns": q1 - win_dup, "untraced_fork_cpu_q1_ns": q1}
    return {**dup,
        "loop": f"recordloop {' '.join(LOOP_ARGS)}: {LOOP_ARGS[0]} forks of an empty process, "
                f"{LOOP_ARGS[2]} x {LOOP_ARGS[1]} zero-page read and zero-fill write faults",
        "untraced": {"fork_cpu_ns": u["fork_cpu"], "fork_wall_ns": u["fork_wall"],
                     "read_fault_ns": u["read"], "write_fault_ns": u["write"]},
        "traced": {"fork_cpu_ns": t["fork_cpu"], "read_fault_ns": t["read"],
                   "write_fault_ns": t["write"]},
        "windows": {"fork_ns": win_fork, "read_fault_ns": float(win_read),
                    **({"fork_dup_mmap_ns": win_dup} if win_dup is not None else {}),
                    "write_fault_ns": float(win_write)},
        "probe_cost_per_fault_ns": (t["read"] - u["read"]) if t["read"] is not None else None,
        "probe_cost_per_fork_ns": (t["fork_cpu"] - u["fork_cpu"]) if t["fork_cpu"] is not None else None,
        "fault_add_ns": add_f,
        "fork_add_ns": u["fork_cpu"] - win_fork,
        # the same correction on the other fault kind: untraced zero-fill against its
        # window + fault_add_ns (how well one constant serves two kinds)
        "write_check_ns": [float(win_write) + add_f, u["write"]],
    }


def measure_overhead(events: list[str], log=lambda m: None) -> dict:
    """Run recordloop untraced and under the recorder's probes; see overhead_from."""
    from mmbench import record_convert
    loop = [_loop_path(), *LOOP_ARGS]
    try:
        plain = subprocess.run(loop, capture_output=True, text=True, timeout=120)
        with tempfile.TemporaryDirectory(prefix="mmbench-overhead-") as tmp:
            data = os.path.join(tmp, "perf.data")
            traced = subprocess.run(perf_argv(events, data) + loop, capture_output=True,
                                    text=True, timeout=120)
            if plain.returncode or traced.returncode:
                raise RecordError(f"the overhead loop failed (status {plain.returncode or traced.returncode})")
            rec = _convert(data, None, record_convert)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RecordError(f"the overhead loop could not run: {e}") from None
    return overhead_from(parse_loop(plain.stdout), parse_loop(traced.stdout), rec.host)


def _machine() -> dict:
    """The recording host as a calibration names its machine (cpu, kernel …): the
    validation compares a trace's host time with estimates from a calibration of the
    same hardware, and says so when they differ."""
    from mmbench import calibration_search
    return calibration_search.this_host()


def _slabs() -> dict | None:
    try:
        caches = hostcheck.read_slabinfo()
    except hostcheck.HostFileUnavailable:
        return None
    return {c: caches[c].active_objs for c in SLAB_CACHES if c in caches}


class _Poller(threading.Thread):
    """Samples VmPTE of every descendant of `root`, the MM slab caches, and what each
    forked child has accessed.

    The accessed bits: fork marks every PTE it copies into the child old
    (pte_mkold in the kernel's fork copy), so the "Referenced" pages of a
    child's /proc/PID/smaps are the pages it touched since fork, with a fault
    or without one.  Against the faults in the stream that tells, per VMA, how
    many inherited pages the child read through PTEs fork copied — the accesses
    a recorded trace otherwise misses (mmbench.record_replay, the bias)."""

    def __init__(self, root: int):
        super().__init__(daemon=True)
        self.root = root
        self.stop = threading.Event()
        self.vmpte_kb: dict[int, int] = {}       # host pid -> peak VmPTE (kB)
        self.comm: dict[int, str] = {}
        self.total_peak_kb = 0
        self.slab_peak: dict[str, int] = {}
        self.samples = 0
        self.access: dict[int, list] = {}        # host pid -> [(t_ns, [(start, end, pages)])]
        self.ppid: dict[int, int] = {}

    def _descendants(self) -> list[int]:
        """Every descendant of the root, through the kernel's per-task children lists
        (cheap: no walk over all of /proc)."""
        out, todo = [], [self.root]
        while todo:
            p = todo.pop()
            try:
                tids = os.listdir(f"/proc/{p}/task")
            except OSError:
                continue
            for tid in tids:
                try:
                    kids = Path(f"/proc/{p}/task/{tid}/children").read_text().split()
                except OSError:
                    continue
                for k in kids:
                    k = int(k)
                    self.ppid[k] = p
                    out.append(k)
                    todo.append(k)
        return out

    @staticmethod
    def _exe(pid):
        try:
            return os.readlink(f"/proc/{pid}/exe")
        except (OSError, TypeError):
            return None

    def _sample_access(self, pid: int):
        t = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        try:
            text = Path(f"/proc/{pid}/smaps").read_text()
        except OSError:
            return
        vmas, cur = [], None
        for line in text.splitlines():
            if line and line[0] in "0123456789abcdef" and "-" in line.split(" ", 1)[0]:
                lo, hi = line.split(" ", 1)[0].split("-")
                cur = [int(lo, 16) >> 12, int(hi, 16) >> 12]
            elif line.startswith("Referenced:") and cur is not None:
                kb = int(line.split()[1])
                if kb:
                    vmas.append((cur[0], cur[1], kb // 4))
        self.access.setdefault(pid, []).append((t, vmas))
        del self.access[pid][:-4]                 # the latest few samples are enough

    def _full_scan(self):
        """Every POLL_S: VmPTE of every process of the program, the slab caches."""
        total = 0
        try:
            perf_exe = os.readlink(f"/proc/{self.root}/exe")
        except OSError:
            perf_exe = None
        for pid in self._descendants():
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
                st = hostcheck.read_status(pid)
                if exe == perf_exe or comm in ("perf", "perf-exec") or os.readlink(f"/proc/{pid}/exe") != exe:
                    continue             # perf's own child before the exec, or mid-exec
            except (OSError, hostcheck.HostFileUnavailable, ValueError):
                continue
            kb = st.get("VmPTE", 0)
            total += kb
            if kb >= self.vmpte_kb.get(pid, 0):
                self.vmpte_kb[pid] = kb
                self.comm[pid] = comm
        self.total_peak_kb = max(self.total_peak_kb, total)
        s = _slabs()
        if s:
            for k, v in s.items():
                self.slab_peak[k] = max(self.slab_peak.get(k, 0), v)
        self.samples += 1

    def _fast_scan(self):
        """Every ACCESS_POLL_S: the accessed bits of every forked child that has not exec'd."""
        for pid in self._descendants():
            exe = self._exe(pid)
            if exe is not None and exe == self._exe(self.ppid.get(pid)):
                self._sample_access(pid)     # a forked child that has not exec'd

    def run(self):
        next_full = 0.0
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= next_full:
                self._full_scan()
                next_full = now + POLL_S
            self._fast_scan()
            self.stop.wait(ACCESS_POLL_S)


# ----------------------------------------------------------------- record
def record(cmd: list[str], output: str | os.PathLike, keep_stream: str | None = None,
           log=lambda m: None, measure: bool = True) -> dict:
    """Run `cmd` under perf, convert, save to `output`; returns the provenance."""
    from mmbench import record_convert
    if not cmd:
        raise RecordError("no command to record (mmbench record -o T.npz -- CMD ARGS…)")
    out_dir = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(out_dir) or not os.access(out_dir, os.W_OK):
        raise RecordError(f"cannot write {output}: {out_dir} is not a writable directory")
    why = perf_available()
    if why:
        raise RecordError(why)
    if shutil.which(cmd[0]) is None and not os.path.exists(cmd[0]):
        raise RecordError(f"{cmd[0]}: command not found")
    events, lacking = _available_events(rs.events())
    if not any(e.endswith("page_fault_user") for e in events):
        raise RecordError("this kernel has no exceptions:page_fault_user tracepoint")
    with tempfile.TemporaryDirectory(prefix="mmbench-record-") as tmp:
        data = os.path.join(tmp, "perf.data")
        slab0 = _slabs()
        argv = perf_argv(events, data) + list(cmd)
        t0 = time.time()
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except OSError as e:
            raise RecordError(f"cannot start perf: {e.strerror or e}") from None
        poller = _Poller(proc.pid)
        poller.start()
        _, err = proc.communicate()
        duration = time.time() - t0
        poller.stop.set()
        poller.join()
        slab1 = _slabs()
        err = err.decode(errors="replace").strip()
        rc = proc.returncode
        if not os.path.exists(data) or os.path.getsize(data) == 0:
            raise RecordError(f"perf recorded nothing: {_last_line(err) or f'exit status {rc}'}")
        if "workload failed" in err:
            raise RecordError(f"{cmd[0]} could not be started: {_last_line(err)}")
        log(f"recorded {os.path.getsize(data) >> 10} KiB of perf data in {duration:.1f} s; converting")
        rec = _convert(data, keep_stream, record_convert, poller.access)
    notes = dict(rec.notes)
    overhead = None
    if measure:
        log("measuring the probes' overhead (recordloop untraced and traced)")
        try:
            overhead = measure_overhead(events, log)
        except RecordError as e:
            notes[f"tracing overhead not measured: {e}"] = 1
    if rc != 0:
        if rc < 0 or rc > 128:     # perf re-raises the signal that killed the program
            notes[f"the program was killed by signal {-rc if rc < 0 else rc - 128}; recorded "
                  "up to its end"] = 1
        else:
            notes[f"the program exited with status {rc}; recorded up to its end"] = 1
    if lacking:
        notes[f"tracepoints missing on this kernel: {', '.join(lacking)}"] = 1
    prov = {
        "command": shlex.join(cmd),
        "kernel": platform.release(),
        "machine": _machine(),
        "thp": thp_mode(),
        "duration_s": round(duration, 3),
        "exit_status": rc,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
        "host": {**rec.host,
                 "vmpte_peak_kb": {str(p): kb for p, kb in sorted(poller.vmpte_kb.items()) if kb},
                 "vmpte_peak_max_kb": max(poller.vmpte_kb.values(), default=0),
                 "vmpte_total_peak_kb": poller.total_peak_kb,
                 "vmpte_samples": poller.samples,
                 "slab_delta": _slab_delta(slab0, slab1),
                 "slab_peak_delta": ({k: poller.slab_peak[k] - slab0[k] for k in slab0
                                      if k in poller.slab_peak} if slab0 else None)},
        "notes": notes,
        "bias": rec.bias,
        "tracing_overhead": overhead,
        "ops": int(len(rec.trace)),
    }
    try:
        save_recording(output, rec.trace, prov)
    except OSError as e:
        raise RecordError(f"cannot write {output}: {e.strerror or e}") from None
    return prov


def _last_line(text: str) -> str:
    lines = [l for l in text.splitlines() if l.strip()]
    return lines[-1].strip() if lines else ""


def _slab_delta(a, b):
    if not a or not b:
        return None
    return {k: b[k] - a[k] for k in a if k in b}


def _convert(data: str, keep_stream, record_convert, access=None):
    argv = ["perf", "script", "-i", data] + list(rs.PERF_SCRIPT_ARGS)
    with tempfile.TemporaryFile("w+") as errf:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errf, text=True,
                                errors="replace", bufsize=1 << 20)
        keep = open(keep_stream, "w") if keep_stream else None
        try:
            def lines():
                for line in proc.stdout:
                    if keep:
                        keep.write(line)
                    yield line
            try:
                rec = record_convert.convert(lines(), access)
            except errors.InvalidArgument as e:
                proc.kill()
                proc.wait()
                errf.seek(0)
                raise RecordError(f"perf stream not usable: {e} {_last_line(errf.read())}".strip()) \
                    from None
        finally:
            if keep:
                keep.close()
        proc.wait()
        if proc.returncode != 0:
            errf.seek(0)
            rec.notes["perf script reported errors (stream may be incomplete): "
                      + (_last_line(errf.read()) or str(proc.returncode))] = 1
    return rec


# ----------------------------------------------------------------- commands
def register(app) -> None:
    @app.command("record", context_settings={"allow_extra_args": True,
                                             "ignore_unknown_options": True})
    def record_cmd(
        ctx: typer.Context,
        output: Path = typer.Option(Path("trace.npz"), "--output", "-o", help="trace file to write"),
        keep_stream: Optional[Path] = typer.Option(None, help="also keep perf's text stream here"),
        overhead: bool = typer.Option(True, help="measure the probes' overhead afterwards "
                                      "(recordloop untraced and traced: about a second)"),
    ) -> None:
        """Run CMD (after --) under perf and save what it did to memory as a trace."""
        from mmbench.cli import fail
        cmd = list(ctx.args)
        try:
            prov = record(cmd, output, str(keep_stream) if keep_stream else None,
                          log=lambda m: typer.echo(f"mmbench record: {m}", err=True),
                          measure=overhead)
        except errors.MMError as e:
            fail(str(e))
        h = prov["host"]
        typer.echo(f"wrote {output}: {prov['ops']:,} ops, {len(h['images'])} images, "
                   f"{h['faults']:,} faults ({_kinds(h['faults_by_kind'])}), "
                   f"{prov['duration_s']:.2f} s, peak VmPTE {h['vmpte_peak_max_kb']} kB")
        ft = h.get("fault_time")
        if ft:
            typer.echo(f"  host time: {ft['timed']:,} faults timed, {ft['ns'] / 1e6:.2f} ms in their "
                       f"windows; {h['process_forks']} forks, {h['fork_copy_ns'] / 1e6:.2f} ms from "
                       "their system calls' entry to task_newtask")
        ov = prov.get("tracing_overhead")
        if ov:
            typer.echo(f"  probes: {ov['probe_cost_per_fault_ns']:+,.0f} ns per fault, "
                       f"{ov['probe_cost_per_fork_ns'] / 1e3:+,.0f} us per fork; windows corrected by "
                       f"{ov['fault_add_ns']:+,.0f} ns per fault, {ov['fork_add_ns'] / 1e3:+,.0f} us "
                       "per fork (mmbench replay --validate applies it)")
        for what, n in sorted(prov["notes"].items()):
            typer.echo(f"  note: {n:,} x {what}")

    @app.command("replay")
    def replay_cmd(
        traces: List[Path] = typer.Argument(..., help="traces written by `mmbench record`"),
        backend: Optional[List[str]] = typer.Option(None, "--backend", "-b",
                                                    help="design (repeatable); default: all"),
        calibration: Optional[Path] = typer.Option(None, help="host calibration for estimates"),
        fmt: str = typer.Option("simple", "--format", help="tabulate format"),
        validate: bool = typer.Option(False, "--validate", help="also compare the linux design "
                                      "with what the host measured while recording (one table "
                                      "for all the traces given)"),
    ) -> None:
        """Replay recorded traces through the designs: faults, fork cost, metadata, time."""
        from mmbench.cli import fail
        from mmbench import record_replay
        vals = []
        for i, trace in enumerate(traces):
            try:
                tr, prov = load_recording(trace)
                res = record_replay.replay_all(tr, prov, backend or None, calibration)
                val = record_replay.validate(tr, prov, calibration) if validate else None
            except errors.MMError as e:
                fail(f"{trace}: {e}" if len(traces) > 1 else str(e))
            if i:
                typer.echo("")
            typer.echo(record_replay.table(res, prov, fmt))
            if val is not None:
                val["name"] = trace.stem
                vals.append((val, prov))
        if vals:
            typer.echo("\nlinux design against the host (error = model / host - 1):")
            typer.echo(record_replay.validation_table([v for v, _ in vals], fmt))
            typer.echo(record_replay.TIME_NOTE + ".")
            for v, prov in vals:
                typer.echo(f"\n{v['name']}: " + record_replay.time_lines(v, prov, note=False))


def _kinds(d: dict) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(d.items(), key=lambda kv: -kv[1]))
