"""Cells of a run on Dask: a LocalCluster on this machine or an existing cluster.

A *cell* is one workload × parameter set × design (``mmbench.runner.plan``);
``measure`` turns it into records.  Cells are independent, so a run is a bag
of tasks and ``dask.distributed`` schedules them — there is no scheduler of
our own here, only what a cell needs to be measured honestly:

    client ──submit(cells)─► worker process (1 thread)
                               │ for each cell of the task:
                               │   take the lock of one CPU of its host
                               │     flock $TMPDIR/mmbench-cpu-locks/cpu<N>.lock
                               │   pin itself to that CPU (sched_setaffinity)
                               │   measure(cell)        ◄── the timed part
                               │   release the lock
    client ◄──records + how────┘   (written to the results file at once)

A task is one cell or several: in the later rounds of repeats (mmbench.rounds)
the cells that each measured under BATCH_S (2 s) before, up to BATCH_S
together, and in the first round twenty cells at a time (UNKNOWN_SHARE),
fewer near the end of the run (WorkLeft): a
quick run's rounds are about 1,700 cells, most of them a few milliseconds
long, and each task costs the client and scheduler 8-12 ms of CPU on this
2-core machine.

Each worker thread holds QUEUE_DEPTH (3) tasks: the one it measures and the
next two, which start the moment the one before ends instead of after a
round trip through the scheduler and the client (about 19 ms per cell on
this machine with one), and do not run dry while the client rewrites the
results file.  The worker still measures one cell at a time; a waiting cell
takes no CPU lock.  A crash takes the waiting cells down with the running
one, so a cell lost with its worker is run once more, alone, before it is
called crashed.

A LocalCluster's workers are forked from the client (Linux), so they start
with mmbench imported.

The lock makes "one measured cell per core" hold whatever the cluster looks
like (a CPU is a resource of its host, so the lock is the host's: flock(2),
which the kernel drops if the holder dies): a LocalCluster with as many workers as cores never waits (each worker
finds a free CPU), a cluster with more workers than cores on a host runs the
surplus one after another, and a restarted worker pins itself again.  Each
cell reports where it ran (host, worker, CPU, whether it had the CPU to
itself), and the runner stores that next to its records.

Exact metrics do not depend on any of this: a cell's trace comes from its
seed, a fresh machine replays it, counters are deterministic.  Measured
metrics do depend on the machine, which is why a cell never shares its CPU
with another measured cell.
"""
from __future__ import annotations

import gc
import logging
import os
import socket
import sys
import time
import traceback

LOCK_DIR = "mmbench-cpu-locks"
QUEUE_DEPTH = 3            # tasks on the cluster per worker thread: one running, two waiting
BATCH_S = 2.0              # cells known to be shorter than this go to a worker together (one task)
UNKNOWN_SHARE = 0.05       # a cell not measured yet counts as this share of BATCH_S (first round: 20)
MIN_GROUP_S = 0.02         # near the end of a run a task still holds this much work, at least
# Dask's own instruments, each a periodic wake-up of a server's event loop: in a worker it
# takes the GIL from the thread measuring a cell (the statistical profiler walks that
# thread's stack every 10 ms), and in the client process it competes with the measuring
# workers for this host's cores (the scheduler and the nannies live there).  mmbench reads
# none of them; the tasks are queued by map_cell_batches, not stolen.
QUIET = {"distributed.worker.profile.enabled": False,
         "distributed.admin.tick.interval": "1s",
         "distributed.admin.system-monitor.interval": "2s",
         "distributed.admin.system-monitor.gil.enabled": False,
         "distributed.worker.memory.monitor-interval": "1s",
         "distributed.scheduler.work-stealing": False}
_STATE: dict = {}          # per worker process: its CPUs before pinning, the last CPU it held


def _own_state() -> None:
    """Start this process's worker state afresh when it was inherited: a LocalCluster's
    workers are forked from the client, whose CPUs, calibration and host-probe clock
    are not theirs."""
    if _STATE.get("pid") != os.getpid():
        from mmbench.hostspeed import new_run
        _STATE.clear()
        _STATE["pid"] = os.getpid()
        _CAL.clear()
        new_run()


def _cpus() -> list[int]:
    """The CPUs this process may run on, as it started (before any pinning)."""
    if "cpus" not in _STATE:
        try:
            _STATE["cpus"] = sorted(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            _STATE["cpus"] = list(range(os.cpu_count() or 1))
    return _STATE["cpus"]


def _pin(cpu: int) -> bool:
    try:
        os.sched_setaffinity(0, {cpu})
        return True
    except (AttributeError, OSError):
        return False


class _CpuLock:
    """An exclusive claim on one CPU of this host among mmbench processes: flock(2) on
    a file per CPU in the host's temporary directory (released by the kernel if the
    process dies; no round trip to the scheduler)."""

    def __init__(self, cpu: int):
        import tempfile
        d = os.path.join(tempfile.gettempdir(), LOCK_DIR)
        os.makedirs(d, exist_ok=True)
        self.cpu = cpu
        self.fd = os.open(os.path.join(d, f"cpu{cpu}.lock"), os.O_RDWR | os.O_CREAT, 0o666)

    def acquire(self, blocking=True) -> bool:
        import fcntl
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            return True
        except BlockingIOError:
            return False

    def release(self):
        import fcntl
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _take_cpu():
    """(cpu, lock, waited): hold one CPU of this host exclusively among mmbench cells."""
    cpus = _cpus()
    last = _STATE.get("last")
    order = ([last] if last in cpus else []) + [c for c in cpus if c != last]
    for cpu in order:
        lock = _CpuLock(cpu)
        if lock.acquire(blocking=False):
            return cpu, lock, False
        os.close(lock.fd)
    lock = _CpuLock(order[0])          # every CPU busy: wait for ours (more workers than cores)
    lock.acquire()
    return order[0], lock, True


def run_cell(index: int, family: str, name: str, params: dict, backend: str, repeats: int,
             calibration_path, budget_s, options=None) -> dict:
    """Measure one cell on this worker; never raises (a failure is the cell's result)."""
    from distributed import get_worker
    t0 = time.perf_counter()
    _own_state()
    host = socket.gethostname()
    try:
        worker = get_worker().address
    except ValueError:
        worker = "local"
    how = {"host": host, "worker": worker, "pid": os.getpid()}
    cpu = lock = None
    try:
        cpu, lock, waited = _take_cpu()
        how.update(cpu=cpu, pinned=_pin(cpu), exclusive=True, waited_for_cpu=waited)
        _STATE["last"] = cpu
        how["lock_s"] = round(time.perf_counter() - t0, 4)
        from mmbench.hostspeed import maybe_probe
        probe = maybe_probe()              # the host's speed, on this CPU (mmbench.hostspeed)
        if probe is not None:
            how["host_probe_ns"] = probe
        t1 = time.perf_counter()
        records = measure_cell(family, name, params, backend, repeats, calibration_path, budget_s, options)
        how["measure_s"] = round(time.perf_counter() - t1, 4)
        from mmbench.results import _check_record
        for r in records:                  # here, not in the client: it shares the CPUs
            _check_record(r, f"cell {backend}|{family}.{name}")
        status = cell_status(records)
        error = ""
    except Exception as e:  # measure() catches a design's failures; this is the machinery's
        records, status = None, "error"
        error = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}"
    finally:
        if lock is not None:
            try:
                lock.release()
            except Exception:
                pass
    how["wall_s"] = round(time.perf_counter() - t0, 4)
    return {"index": index, "records": records, "status": status, "error": error, "how": how}


def take_group(pending, took: dict, limit: float = BATCH_S) -> list:
    """The next task's cells from the iterator `pending`: cells known (`took`: index ->
    seconds when last measured) to be short, together up to `limit` seconds, or one
    long cell.  A cell not measured yet counts as UNKNOWN_SHARE of `limit` (the first
    round goes 1 / UNKNOWN_SHARE cells a task: most cells of a profile take milliseconds)."""
    group, total = [], 0.0
    while total < limit:
        c = next(pending, None)
        if c is None:
            break
        group.append(c)
        total += took.get(c[0], UNKNOWN_SHARE * limit)
    return group


class WorkLeft:
    """The seconds of measuring a run's stream of cells still holds, estimated from each
    cell's last measured time (a cell not measured yet: UNKNOWN_SHARE x BATCH_S), kept
    as a running sum.  Near the end of a run the groups shrink with it (group_limit),
    so that the last tasks are short and the workers finish together instead of one
    running a last full group while the other waits."""

    def __init__(self, order):
        self.took: dict = {}             # cell index -> wall seconds of its last measurement
        self.count: dict = {}            # cell index -> its items still in the stream
        for c in order:
            self.count[c[0]] = self.count.get(c[0], 0) + 1
        self.left = sum(self.est(i) * n for i, n in self.count.items())

    def est(self, i) -> float:
        return self.took.get(i, UNKNOWN_SHARE * BATCH_S)

    def taken(self, c) -> None:
        """Cell c left the stream (submitted, or skipped)."""
        self.count[c[0]] -= 1
        self.left -= self.est(c[0])

    def measured(self, i, seconds: float) -> None:
        """Cell i took `seconds` this time: its items still to come are priced anew."""
        self.left += (seconds - self.est(i)) * self.count.get(i, 0)
        self.took[i] = seconds

    def group_limit(self, slots: int) -> float:
        """A task's share of the work left: BATCH_S, less once the work left would not
        fill every task slot of the cluster with BATCH_S."""
        return min(BATCH_S, max(MIN_GROUP_S, self.left / max(1, slots)))


class Cells:
    """A task's cells as one opaque argument: Dask looks for futures inside every list,
    tuple and dict it is given, and twenty cells' parameters a task made that walk most of
    the client's cost of a submit (18,000 calls in a quick run)."""

    __slots__ = ("cells",)

    def __init__(self, cells: list):
        self.cells = cells


def run_cells(cells: Cells, repeats: int, calibration_path, budget_s, options=None, task=None) -> list[dict]:
    """Measure a batch of cells on this worker, one after another (each as run_cell: its
    own CPU lock and pinning); one Dask task for all of them."""
    return [(task or run_cell)(index, family, name, params, backend, repeats, calibration_path,
                               budget_s, options)
            for index, family, name, params, backend in cells.cells]


_CAL: dict = {}


def measure_cell(family, name, params, backend, repeats, calibration_path, budget_s, options=None) -> list[dict]:
    """The records of one cell (the calibration is loaded once per process)."""
    from mmbench.registry import workloads
    from mmbench.workloads._measure import load_calibration, measure
    key = str(calibration_path)
    if key not in _CAL:
        _CAL[key] = load_calibration(calibration_path)[0]
    wl = workloads()[name]
    assert wl.family == family, (wl.family, family)
    return measure(wl, params, backend, repeats=repeats, calibration=_CAL[key], budget_s=budget_s,
                   options=options)


def cell_status(records) -> str:
    """"ok", "unsupported" (the design cannot run it) or "error" (it crashed: measure's note)."""
    from mmbench.rounds import whole_failures
    whole = whole_failures(records)
    if not whole:
        return "ok"
    return "error" if any(r["note"].startswith("error:") for r in whole) else "unsupported"


class Cluster:
    """A Dask client for a run: a LocalCluster of `workers` processes, or `scheduler`'s cluster.

    Use as a context manager; ``info()`` says how the cells ran (stored in the results).
    """

    def __init__(self, workers: int = 2, scheduler: str | None = None):
        self.workers, self.scheduler = workers, scheduler
        self.cluster = self.client = None
        self.tasks = 0                   # Dask tasks submitted (a task holds one or more cells)

    def __enter__(self):
        import dask
        from distributed import Client, LocalCluster
        # a worker that dies fails every cell it holds at once, the scheduler does not retry
        # them (on an existing cluster this is the scheduler's own setting); the cells are
        # submitted a few at a time (worker-saturation 1.0 then assigns each at once), and
        # map_cell_batches sorts the crashed cell from the ones that only waited beside it
        dask.config.set({"distributed.scheduler.allowed-failures": 0,
                         "distributed.scheduler.worker-saturation": 1.0})
        dask.config.set(QUIET)
        if self.scheduler:
            self.client = Client(self.scheduler, timeout="30s")
        else:
            if sys.platform.startswith("linux"):
                # workers forked from this process start with mmbench imported: the first
                # cell ran 0.45-0.8 s sooner than with spawned workers (quick profile, 2026-12-06)
                dask.config.set({"distributed.worker.multiprocessing-method": "fork"})
            self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                        dashboard_address=None, silence_logs=logging.ERROR,
                                        worker_class="distributed.Nanny")
            self.client = Client(self.cluster)
        # the objects made so far (Dask, its scheduler and nannies, the plan) live as long as
        # the run: left out of the collector's full passes, which otherwise scan them every
        # time the run's records have grown by a quarter (0.33 s of the client's CPU in a
        # quick 2-worker run, on the cores the workers measure on)
        gc.freeze()
        return self

    def __exit__(self, *exc):
        gc.unfreeze()
        for c in (self.client, self.cluster):
            if c is not None:
                try:
                    c.close()
                except Exception:
                    pass
        return False

    def info(self) -> dict:
        import dask
        import distributed
        ws = self.client.scheduler_info().get("workers", {})
        hosts = {}
        for w in ws.values():
            hosts[w.get("host", "?")] = hosts.get(w.get("host", "?"), 0) + 1
        return {"mode": "scheduler" if self.scheduler else "local-cluster",
                "scheduler": self.scheduler or self.client.scheduler.address,
                "workers": len(ws), "threads_per_worker": sorted({w.get("nthreads", 0) for w in ws.values()}),
                "workers_per_host": hosts, "dask": dask.__version__, "distributed": distributed.__version__,
                "isolation": "each measured cell holds its host's per-CPU lock (flock) and is pinned to that CPU"}

    def map_cells(self, cells, repeats, calibration_path, budget_s, task=None, options=None):
        """Yield each cell's result as it finishes (see map_cell_batches)."""
        for batch in self.map_cell_batches(cells, repeats, calibration_path, budget_s, task, options):
            yield from batch

    def map_cell_batches(self, cells, repeats, calibration_path, budget_s, task=None, options=None,
                         ordered=False, skip=None):
        """Yield the results of the cells finished since the last batch, as lists (longest
        expected cells are submitted first; with `ordered`, `cells` are taken in their own
        order, a cell appearing once per round, and `skip(cell)`, asked when a cell's turn
        comes, leaves it out: what comes next may depend on what finished, as in
        mmbench.runner's rounds of repeats).

        Each worker thread has its next tasks waiting on the worker (QUEUE_DEPTH tasks per
        thread on the cluster): it starts one the moment it finishes one, without the round
        trip through the scheduler and this client (about 19 ms per cell with one).  The
        worker still runs one cell at a time, each holding its CPU's lock.

        A task is one cell, or several (take_group): cells that took less than BATCH_S
        when last measured in this run (a later round of repeats) together up to
        BATCH_S, cells not measured yet 1 / UNKNOWN_SHARE at a time, so that short cells
        do not each pay a task's scheduling (8-12 ms of CPU); near the end, groups hold
        at most a slot's share of the work left (WorkLeft).

        A worker that dies takes every cell it holds with it, the ones running and
        waiting.  Those cells come back as lost; each is run again once, alone on the
        cluster, after the others: the cell that crashes again is recorded with status
        "error" and the scheduler's reason, a cell that only waited beside it gets its
        records.  `cells` is [(index, workload, params, backend, weight)]; `task`
        replaces run_cell (tests).
        """
        from distributed import as_completed, wait
        order = cells if ordered else sorted(cells, key=lambda c: -c[4])
        slots = QUEUE_DEPTH * max(1, sum(w.get("nthreads", 1) for w in
                                         self.client.scheduler_info().get("workers", {}).values()))
        futs = {}
        work = WorkLeft(order)

        def submit(group):
            f = self.client.submit(run_cells, Cells([(c[0], c[1].family, c[1].name, c[2], c[3]) for c in group]),
                                   repeats, calibration_path, budget_s, options, task,
                                   key=f"mmbench-cells-{group[0][0]}-{os.getpid()}-{time.time_ns()}",
                                   pure=False)
            futs[f] = group
            self.tasks += 1
            return f

        def submit_next():
            group = take_group(pending, work.took, work.group_limit(slots))
            if group:
                ac.add(submit(group))

        def lost(f, e):
            return {"index": futs[f][0][0], "records": None, "status": "error",
                    "error": f"{type(e).__name__}: {e}", "how": {"worker": "lost"}}

        def outcome(f):
            """(results, None), or (None, the exception) when the task's worker was lost."""
            try:
                return f.result(), None
            except Exception as e:       # KilledWorker, CancelledError …: its worker died
                return None, e

        def stream():
            for c in order:
                work.taken(c)
                if skip is None or not skip(c):
                    yield c

        pending = stream()
        again = []                       # cells lost with a worker, to run once more alone
        ac = as_completed()
        for _ in range(slots):
            submit_next()
        try:
            for batch in ac.batches():
                done = []
                for f in batch:
                    res, exc = outcome(f)
                    if exc is None:
                        done.extend(res)
                        for r in res:
                            work.measured(r["index"], r.get("how", {}).get("wall_s", BATCH_S))
                    else:
                        again.extend(futs[f])
                if done:
                    yield done           # the caller records them before the next cells are taken
                for _ in batch:
                    submit_next()
            for c in sorted(again, key=lambda c: c[0]):
                f = submit([c])
                wait([f])
                res, exc = outcome(f)
                yield res if exc is None else [lost(f, exc)]
        finally:
            for f in futs:
                if not f.done():
                    f.cancel()
