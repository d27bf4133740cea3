# mmbench.core — the Machine base class (the contract) and the replay engine.
#
# Layout:
#   Machine.__init__          options, frames, process table
#   public contract methods   validate -> c_* -> status -> exception
#   c_* defaults              route to a Python-level backend's do_* methods
#                             (so a pure-Python plugin works, just slower)
#   replay                    validate the whole trace, then one nogil loop
#
# Why statuses and not exceptions in the core: the replay loop runs without the
# GIL; a design reports failure by returning MM_E*, the loop records it per op,
# and Python raises only at the edges (the sklearn/_tree pattern).

cimport cython
from libc.stdlib cimport calloc, malloc, realloc, free
from libc.string cimport memset, strncpy
from libc.stdio cimport snprintf
from libc.stdint cimport int64_t, uint64_t, int32_t, uint8_t, int8_t
from cpython.pythread cimport PyThread_get_thread_ident
from mmbench.clock cimport clock_ticks

from collections.abc import Mapping

import numpy as np
cimport numpy as cnp

from mmbench.blocks.frames cimport frames_init, frames_destroy, MAX_NODES
from mmbench import errors as _errors
from mmbench import clock as _clock
# VPN_LIMIT, OP_NAMES (op-code order; mmbench.Op mirrors it) and ADVICE_NAMES (Linux's
# MADV_* numbers; mmbench.Advice mirrors it) are defined with the trace checks
from mmbench._tracecheck import columns_block, FIELD_DTYPES, VPN_LIMIT, OP_NAMES, ADVICE_NAMES
from mmbench import hugepages as _hugepages
from mmbench import memmap as _memmap

cnp.import_array()

COUNTER_NAMES = (
    "faults", "fault_zero_page", "fault_zero_fill", "fault_cow_copy", "fault_cow_reuse",
    "fault_minor", "fault_device_return", "fault_wp_shared",
    "pages_zeroed", "pages_copied", "pte_writes", "pte_zaps", "tlb_flushes",
    "pt_pages_alloc", "pt_pages_free", "rmap_visits", "chain_steps",
    "vma_merges", "vma_splits", "objects_alloc", "objects_free",
    "anon_vma_alloc", "avc_alloc", "anon_vma_reuse", "shadow_objects",
    "collapses", "bypasses", "cow_page_moves", "pv_entries",
    "xa_node_alloc", "xa_node_free", "i_mmap_visits", "amap_copies", "anon_alloc",
    "gm_mapping_alloc", "fork_ptes_copied", "fork_ptes_wrprotect",
    "pages_to_device", "pages_to_host", "dma_bytes", "dma_transfers",
    "notifier_calls", "notifier_invalidated", "device_faults", "device_pte_writes",
    "device_tlb_invalidations", "device_evictions", "reflink_clones", "mremap_pages_moved",
    "pagecache_adds",
    "thp_fault_alloc", "thp_fault_fallback", "thp_split_pmd", "thp_zero_page_map",   # linux THP
    "reserv_alloc", "reserv_freed", "reserv_broken", "reserv_pages",
    "superpage_promotions", "superpage_demotions", "superpage_p_failures",
    "mthp_anon_fault_alloc", "mthp_anon_fault_fallback", "thp_deferred_split_page",   # linux mTHP,
    "thp_split_page", "mthp_split_deferred", "mthp_split", "thp_collapse_alloc",       # deferred split,
    "thp_scan_exceed_none_pte", "thp_scan_exceed_share_pte", "khugepaged_pages_scanned",  # khugepaged
    "thp_file_alloc", "thp_file_fallback", "thp_file_mapped",   # shmem huge=
    "vma_merge_fails", "move_pages_moved", "move_pages_copied", "anon_relocate_folios",
    "thp_copy_pmd", "thp_underused_split_page", "thp_split_pmd_exclusive", "fault_around_pages",
)
assert len(COUNTER_NAMES) == NR_COUNTERS, "COUNTER_NAMES out of step with core.pxd"
COUNTER_INDEX = {n: i for i, n in enumerate(COUNTER_NAMES)}
# counters of contract operations every design has (counters() always lists them)
_CONTRACT_COUNTERS = ("move_pages_moved", "move_pages_copied")


_PY_HOOKS = ("do_spawn", "do_mmap", "do_munmap", "do_mprotect", "do_read", "do_write", "do_fork",
             "do_exit", "do_mremap", "do_madvise_dontneed", "do_migrate", "do_device_read",
             "do_device_write", "do_madvise", "do_move_pages")


# bounds of a custom link (GB/s, latency us, batch pages): finite, and small enough that
# the link arithmetic (µs as float, batch as a C int64) cannot overflow; far beyond any
# real interconnect (a bus at 1e6 GB/s, a transfer latency of one hour, 2**30 pages)
_LINK_MAX_GBPS = 1e6
_LINK_MAX_LATENCY_US = 3.6e9
_LINK_MAX_BATCH = 1 << 30


# Pairs of clock reads a timed replay measures its clock's overhead on, just before
# its loop.  The median of 2,001 pairs took 0.095 ms here against 1.43 ms for 20,001
# (200 calls each, 2026-12-06), and was the same value every time, as with 20,001:
# the pair costs 26 or 52 TSC ticks (one or two steps, 19 % / 81 % of 20,001 pairs),
# so the median only moves where the two are near half and half.  At 20,001 the
# measurement was 15 % of a quick run's cell time (4,920 timed replays).
REPLAY_OVERHEAD_PAIRS = 2001


def clock_overhead_ns(int reps=20001):
    """Median cost of one back-to-back pair of the engine's clock reads (ns)."""
    if reps < 1:
        raise _errors.InvalidArgument("reps must be at least 1")
    return float(_clock.ticks_to_ns(_clock.overhead_ticks(reps)))


def _to_bool(x, what):
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    raise _errors.InvalidArgument(f"{what} must be True or False, got {x!r}")


def _span(vpn, npages=None):
    """vpn 0x1000 + 16 pages -> "0x1000+16" (one page: "0x1000")."""
    return hex(vpn) if npages is None or npages == 1 else f"{hex(vpn)}+{npages}"


def _to_int(x, what):
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise _errors.InvalidArgument(f"{what} must be an integer, got {x!r}")
    return int(x)


cdef class _Held:
    """The context manager of Machine.held(): enter on entry, leave on exit."""
    cdef Machine m

    def __cinit__(self, Machine m):
        self.m = m

    def __enter__(self):
        self.m.enter()
        return self.m

    def __exit__(self, *exc):
        self.m.leave()
        return False
def _move_range_status(maps, int64_t lo, int64_t npages):
    """The reference model's range check of move_pages over a design's mappings(), for
    one range: MM_ESEGV when a page of it is unmapped, MM_EINVAL when one is shared or
    read-only, else MM_OK."""
    bad = MM_OK
    v = lo
    for start, n, shared, writable in maps:
        if start + n <= v:
            continue
        if start > v or v >= lo + npages:
            break
        if shared or not writable:
            bad = MM_EINVAL
        v = start + n
    return MM_ESEGV if v < lo + npages else bad


class ReplayResult(Mapping):
    """What a replay returns: per-op columns, as numpy arrays, built when first read.

    ``status`` (int8, 0 or an MM_E* code), ``value`` (uint64: the value read
    or the new pid) and, with timing, ``ns`` (float64 ns) are the arrays the loop
    wrote; ``op``, ``pid``, ``vpn``, ``npages``, ``arg``, ``dev`` are the
    trace's fields, read through (a view of the trace) when asked for one at a
    time.  ``frame()`` de-interleaves the trace's fields in one compiled pass
    and wraps every column in a polars DataFrame without copying it again.
    The replay itself therefore costs its loop, its validation pass and the
    allocation of the result arrays — nothing per column nobody reads.  A
    replay asked for a frame passes ``fields``: the trace's fields already
    de-interleaved by its validation pass, which ``columns()`` then uses.
    """
    __slots__ = ("_trace", "_done", "_own", "_keys", "_fields")
    TRACE_FIELDS = tuple(FIELD_DTYPES)

    def __init__(self, trace, done, status, value, ns=None, fields=None):
        self._trace, self._done = trace, int(done)
        self._own = {"status": status[:done], "value": value[:done]}
        if ns is not None:
            self._own["ns"] = ns[:done]
        self._keys = self.TRACE_FIELDS + tuple(self._own)
        self._fields = None if fields is None else {k: fields[k][:done] for k in self.TRACE_FIELDS}

    def __getitem__(self, key):
        if key in self._own:
            return self._own[key]
        if key in self.TRACE_FIELDS:
            return self._trace[key][:self._done]
        raise KeyError(key)

    def __iter__(self):
        return iter(self._keys)

    def __len__(self):
        return len(self._keys)

    def __repr__(self):
        return f"<ReplayResult of {self._done} ops: {', '.join(self._keys)}>"

    def columns(self) -> dict:
        """Every column as a contiguous numpy array (the trace's fields copied once)."""
        if self._fields is None:
            from mmbench._tracecheck import trace_columns
            self._fields = trace_columns(self._trace, self._done)
        return {**self._fields, **self._own}

    def frame(self):
        """The columns as a polars DataFrame (zero-copy over columns())."""
        import polars as pl
        return pl.DataFrame(self.columns())


cdef class Machine:
    """One simulated machine running one memory-management design.

    Subclass it in Cython and override the ``c_*`` methods (see core.pxd), or in
    Python and implement ``do_*`` methods that raise mmbench.errors exceptions.
    Class attributes a design sets:

    * ``name``, ``description``: shown by ``mmbench backends``.
    * ``option_defaults``: dict of design options ``mmbench.open`` accepts.
    * ``supports_devices``: whether migrate/device_* exist in this design.
    * ``counter_names``: the counters that mean something in this design.
    * ``huge_page_advice``: whether ``madvise`` takes HUGEPAGE / NOHUGEPAGE
      (otherwise they raise NotSupported; DONTNEED always works).
    * ``design_notes``: fixed lines for readers of the results (the design's own
      choices where its source defines nothing); ``notes()`` starts with them.

    One caller at a time: every public method (and ``replay`` for its whole
    run, nogil loop included) takes the machine; a call from another thread
    meanwhile raises ``mmbench.errors.MachineBusy`` at once and changes
    nothing.  The thread holding the machine may call in again (a Python
    design's ``do_*`` hooks may use the public methods), but not start a
    nested replay.  ``__init__`` runs once: a second call raises
    InvalidArgument, and so does every public method of a machine whose
    ``Machine.__init__`` never ran.
    """

    name = "machine"
    description = ""
    option_defaults = {}
    supports_devices = False
    counter_names = COUNTER_NAMES
    huge_page_advice = False
    design_notes = ()
    #: the slab cache holding the design's per-frame descriptor of host memory (struct
    #: page), which memmap="memdesc" charges as memdesc + folio rows (mmbench.memmap)
    memmap_struct = "page"
    #: (link bandwidth GB/s, per-transfer latency us, batch pages): PCIe 5.0 x16
    LINKS = {
        "pcie5": (63.0, 1.0, 512),
        "pcie4": (31.5, 1.5, 512),
        "c2c": (450.0, 0.3, 512),
    }

    def __cinit__(self, *args, **kwargs):
        self.procs = NULL
        self.nprocs_cap = 0
        self.next_pid = 1
        self.live_procs = 0
        self.ncaches = 0
        self.frames.f = NULL
        self.frames.freelist = NULL
        self.frames.order = NULL
        self.pending_exc = None
        self.dma_batch_pages = 512
        memset(self.ctr, 0, sizeof(self.ctr))
        memset(self.check_msg, 0, sizeof(self.check_msg))
        self.busy_owner = 0
        self.busy_depth = 0
        self.live = False

    def __init__(self, ram_pages=1 << 20, devices=0, device_pages=1 << 16, link="pcie5", **options):
        if self.live:
            # a second __init__ would free the frames under the live processes
            raise _errors.InvalidArgument(
                f"this {type(self).name!r} machine is already initialised; __init__ runs once "
                "(open a new machine instead)")
        if self.busy_depth:
            raise _errors.MachineBusy(f"this {type(self).name!r} machine is in use by another thread")
        ram_pages = _to_int(ram_pages, "ram_pages")
        devices = _to_int(devices, "devices")
        device_pages = _to_int(device_pages, "device_pages")
        if not (1 <= ram_pages <= (1 << 31)):
            raise _errors.InvalidArgument(f"ram_pages must be in 1..2**31, got {ram_pages}")
        if not (0 <= devices < MAX_NODES):
            raise _errors.InvalidArgument(f"devices must be in 0..{MAX_NODES - 1}, got {devices}")
        if not (1 <= device_pages <= (1 << 28)):
            raise _errors.InvalidArgument(f"device_pages must be in 1..2**28, got {device_pages}")
        if devices and not type(self).supports_devices:
            raise _errors.NotSupported(f"the {type(self).name!r} design has no accelerator support")
        if isinstance(link, str):
            if link not in self.LINKS:
                raise _errors.InvalidArgument(f"unknown link {link!r}; known: {sorted(self.LINKS)}")
            link_spec = self.LINKS[link]
        else:
            try:
                link_spec = tuple(float(v) for v in link)
                ok = (len(link_spec) == 3 and 0 < link_spec[0] <= _LINK_MAX_GBPS
                      and 0 <= link_spec[1] <= _LINK_MAX_LATENCY_US
                      and 1 <= link_spec[2] <= _LINK_MAX_BATCH)
            except Exception:
                ok = False
            if not ok:
                raise _errors.InvalidArgument(
                    "link must be a preset name or (GB/s, latency us, batch pages) with "
                    f"0 < GB/s <= {_LINK_MAX_GBPS:g}, 0 <= latency <= {_LINK_MAX_LATENCY_US:g} us and "
                    f"1 <= batch pages <= {_LINK_MAX_BATCH} (finite numbers)")
        merged = dict(type(self).option_defaults)
        merged.setdefault("thp", _hugepages.THP_DEFAULT)     # every design accepts thp
        merged.setdefault("memmap", _memmap.MEMMAP_DEFAULT)  # and memmap
        unknown = set(options) - set(merged)
        if unknown:
            raise _errors.InvalidArgument(
                f"unknown option(s) {sorted(unknown)} for the {type(self).name!r} design; "
                f"known: {sorted(merged)}")
        merged.update(options)
        _hugepages.thp_option(merged)
        _memmap.memmap_option(merged)
        self.options = merged
        self.link = {"gbps": link_spec[0], "latency_us": link_spec[1], "batch_pages": int(link_spec[2])}
        self.dma_batch_pages = int(link_spec[2])
        if ram_pages + devices * device_pages >= 0xFFFFFFFE:
            raise _errors.InvalidArgument("ram_pages + devices * device_pages must stay below 2**32 - 2 "
                                          "(pfns are 32-bit)")
        if self.frames.f != NULL:
            frames_destroy(&self.frames)
        try:
            frames_init(&self.frames, ram_pages, devices, device_pages)
        except MemoryError:
            raise _errors.OutOfMemory(f"this host cannot hold descriptors for "
                                      f"{ram_pages + devices * device_pages} frames") from None
        self.ram_pages = ram_pages
        self.ndevices = devices
        self.device_pages = device_pages
        self._ensure_pid_table(64)
        self.live = True

    def __dealloc__(self):
        frames_destroy(&self.frames)
        free(self.procs)
        self.procs = NULL

    # ------------------------------------------------------------ one caller at a time
    cdef int enter(self) except -1:
        """Take the machine for a public method: refuse a machine whose __init__ never
        ran, and a call from a second thread while another one (a replay, a call of a
        Python design) runs.  The same thread may enter again (a design's hooks calling
        public methods); `leave` gives it back.  Runs with the GIL held, so the test and
        the take are one step for every other thread."""
        cdef unsigned long me
        if not self.live:
            raise _errors.InvalidArgument(
                f"this {type(self).name!r} machine was never initialised (its __init__ did not "
                "run Machine.__init__); open machines with mmbench.open or call super().__init__")
        me = <unsigned long>PyThread_get_thread_ident()
        if self.busy_depth and self.busy_owner != me:
            raise _errors.MachineBusy(
                f"this {type(self).name!r} machine is in use by another thread (a replay or a "
                "call is running on it); a machine serves one caller at a time")
        self.busy_owner = me
        self.busy_depth += 1
        return 0

    def held(self):
        """``with self.held():`` takes the machine for a block, as every public method
        does: a design's own views and extra operations (Python methods that read or
        change its structures) use it so a replay or call running in another thread
        cannot change those structures under them (MachineBusy instead)."""
        return _Held(self)

    def _not_busy(self):
        """Raise MachineBusy if another thread holds the machine (used by helpers that a
        design's own public methods call, e.g. _pid, so those are refused too)."""
        if self.busy_depth and self.busy_owner != <unsigned long>PyThread_get_thread_ident():
            raise _errors.MachineBusy(
                f"this {type(self).name!r} machine is in use by another thread; a machine "
                "serves one caller at a time")
        if not self.live:
            raise _errors.InvalidArgument(
                f"this {type(self).name!r} machine was never initialised (Machine.__init__ did not run)")

    # ------------------------------------------------------------ helpers
    def _ensure_pid_table(self, int64_t cap):
        cdef void** p
        if cap <= self.nprocs_cap:
            return
        p = <void**>realloc(self.procs, cap * sizeof(void*))
        if p == NULL:
            raise MemoryError()
        memset(p + self.nprocs_cap, 0, (cap - self.nprocs_cap) * sizeof(void*))
        self.procs = p
        self.nprocs_cap = cap

    cdef int slab_register(self, str name, int64_t objsize, bint per_process=True) except -1:
        cdef bytes b = name.encode()
        cdef int i = self.ncaches
        if i >= MAX_CACHES:
            raise RuntimeError("too many slab caches")
        if len(b) > 31:
            raise ValueError("cache name too long")
        memset(&self.caches[i], 0, sizeof(kmem_cache_t))
        strncpy(self.caches[i].name, b, 31)
        self.caches[i].objsize = objsize
        self.caches[i].per_process = per_process
        self.ncaches += 1
        return i

    cdef int64_t pid_install(self, void* proc) noexcept nogil:
        cdef void** p
        cdef int64_t cap
        if self.next_pid >= self.nprocs_cap:
            cap = self.nprocs_cap * 2 if self.nprocs_cap >= 32 else 64   # 0 before __init__ ran
            p = <void**>realloc(self.procs, cap * sizeof(void*))
            if p == NULL:
                return MM_ENOMEM
            memset(p + self.nprocs_cap, 0, (cap - self.nprocs_cap) * sizeof(void*))
            self.procs = p
            self.nprocs_cap = cap
        self.procs[self.next_pid] = proc
        self.live_procs += 1
        self.next_pid += 1
        return self.next_pid - 1

    cdef void pid_release(self, int64_t pid) noexcept nogil:
        if self.procs[pid] != NULL:
            self.procs[pid] = NULL
            self.live_procs -= 1

    cdef void dma_account(self, int64_t npages) noexcept nogil:
        if npages <= 0:
            return
        self.ctr[C_DMA_BYTES] += npages * PAGE_SIZE
        self.ctr[C_DMA_TRANSFERS] += (npages + self.dma_batch_pages - 1) // self.dma_batch_pages

    cdef int check_fail(self, const char* msg) noexcept nogil:
        snprintf(self.check_msg, sizeof(self.check_msg), "%s", msg)
        return MM_EINVAL

    # ------------------------------------------ c_* defaults: Python backends
    cdef int _py(self, int hook, tuple args, uint64_t* out) noexcept:
        cdef object fn = getattr(self, _PY_HOOKS[hook], None)
        cdef object r
        if fn is None:
            return MM_ENOTSUP
        try:
            r = fn(*args)
            if out != NULL:
                out[0] = <uint64_t>(0 if r is None else int(r))
            return MM_OK
        except _errors.MMError as e:
            code = _errors.STATUS_OF.get(type(e))
            if code is None:
                for cls, c in _errors.STATUS_OF.items():
                    if isinstance(e, cls):
                        code = c
                        break
            if code is None:
                self.pending_exc = e
                return MM_EPYTHON
            return code
        except BaseException as e:
            self.pending_exc = e
            return MM_EPYTHON

    cdef int c_spawn(self, int64_t* pid_out) noexcept nogil:
        cdef int64_t pid
        cdef int st
        with gil:
            if getattr(self, "do_spawn", None) is None:
                return MM_ENOTSUP
            pid = self.pid_install(<void*>1)
            if pid < 0:
                return <int>pid
            st = self._py(0, (pid,), NULL)
            if st != MM_OK:
                self.pid_release(pid)
                self.next_pid -= 1
                return st
            pid_out[0] = pid
            return MM_OK

    cdef int c_mmap(self, int64_t pid, int64_t vpn, int64_t npages, uint64_t flags) noexcept nogil:
        with gil:
            return self._py(1, (pid, vpn, npages, bool(flags & MAPF_SHARED), bool(flags & MAPF_WRITE)), NULL)

    cdef int c_munmap(self, int64_t pid, int64_t vpn, int64_t npages) noexcept nogil:
        with gil:
            return self._py(2, (pid, vpn, npages), NULL)

    cdef int c_mprotect(self, int64_t pid, int64_t vpn, int64_t npages, bint writable) noexcept nogil:
        with gil:
            return self._py(3, (pid, vpn, npages, bool(writable)), NULL)

    cdef int c_read(self, int64_t pid, int64_t vpn, uint64_t* out) noexcept nogil:
        with gil:
            return self._py(4, (pid, vpn), out)

    cdef int c_write(self, int64_t pid, int64_t vpn, uint64_t value) noexcept nogil:
        with gil:
            return self._py(5, (pid, vpn, value), NULL)

    cdef int c_fork(self, int64_t pid, int64_t* child_out) noexcept nogil:
        cdef int64_t child
        cdef int st
        with gil:
            if getattr(self, "do_fork", None) is None:
                return MM_ENOTSUP
            child = self.pid_install(<void*>1)
            if child < 0:
                return <int>child
            st = self._py(6, (pid, child), NULL)
            if st != MM_OK:
                self.pid_release(child)
                self.next_pid -= 1
                return st
            child_out[0] = child
            return MM_OK

    cdef int c_exit(self, int64_t pid) noexcept nogil:
        cdef int st
        with gil:
            st = self._py(7, (pid,), NULL)
            if st == MM_OK:
                self.pid_release(pid)
            return st

    cdef int c_mremap(self, int64_t pid, int64_t old_vpn, int64_t npages, int64_t new_vpn) noexcept nogil:
        with gil:
            return self._py(8, (pid, old_vpn, npages, new_vpn), NULL)

    cdef int c_madvise_dontneed(self, int64_t pid, int64_t vpn, int64_t npages) noexcept nogil:
        with gil:
            return self._py(9, (pid, vpn, npages), NULL)

    cdef int c_madvise(self, int64_t pid, int64_t vpn, int64_t npages, int advice) noexcept nogil:
        if advice == MADV_DONTNEED:
            return self.c_madvise_dontneed(pid, vpn, npages)
        with gil:
            return self._py(13, (pid, vpn, npages, advice), NULL)

    cdef int c_migrate(self, int64_t pid, int64_t vpn, int64_t npages, int node) noexcept nogil:
        with gil:
            return self._py(10, (pid, vpn, npages, node), NULL)

    cdef int c_device_read(self, int dev, int64_t pid, int64_t vpn, uint64_t* out) noexcept nogil:
        with gil:
            return self._py(11, (dev, pid, vpn), out)

    cdef int c_device_write(self, int dev, int64_t pid, int64_t vpn, uint64_t value) noexcept nogil:
        with gil:
            return self._py(12, (dev, pid, vpn, value), NULL)

    cdef int c_move_pages(self, int64_t pid, int64_t src, int64_t dst, int64_t npages) noexcept nogil:
        """A Python design's do_move_pages, else the generic copying fallback."""
        with gil:
            if getattr(self, "do_move_pages", None) is not None:
                return self._py(14, (pid, src, dst, npages), NULL)
            return self.move_pages_copy(pid, src, dst, npages)

    cdef int move_pages_copy(self, int64_t pid, int64_t src, int64_t dst, int64_t npages) noexcept:
        """move_pages for a design with no way to move a page: check the ranges as the
        reference model does (move_range_status, then read), then copy each non-zero
        source value to the destination with the design's own write and drop the
        source with its own MADV_DONTNEED -- what a program does when UFFDIO_MOVE is
        unavailable (UFFDIO_COPY, then MADV_DONTNEED).  Costs what those operations
        cost in the design, plus move_pages_copied per value copied.  On a failed
        write the destination pages written so far are dropped again (they read 0
        before), so a failed call changes no value."""
        cdef int64_t i, ncopied = 0
        cdef uint64_t v = 0
        cdef int st, dst_st
        cdef uint64_t* vals
        if dst < src + npages and src < dst + npages:
            return MM_EINVAL
        st = self.move_range_status(pid, src, npages)
        if st == MM_OK or st == MM_EINVAL:     # an unmapped page of either range wins
            dst_st = self.move_range_status(pid, dst, npages)
            st = dst_st if dst_st != MM_OK else st
        if st != MM_OK:
            return st
        vals = <uint64_t*>malloc(npages * sizeof(uint64_t))
        if vals == NULL:
            return MM_ENOMEM
        try:
            for i in range(npages):                    # the destination must hold nothing
                st = self.c_read(pid, dst + i, &v)
                if st != MM_OK:
                    return st
                if v != 0:
                    return MM_EINVAL
            for i in range(npages):
                st = self.c_read(pid, src + i, &vals[i])
                if st != MM_OK:
                    return st
            for i in range(npages):
                if vals[i] == 0:
                    continue
                st = self.c_write(pid, dst + i, vals[i])
                if st != MM_OK:
                    if self.c_madvise_dontneed(pid, dst, npages) != MM_OK:
                        return MM_EINVAL     # unreachable: the range was checked mapped
                    return st
                ncopied += 1
            st = self.c_madvise_dontneed(pid, src, npages)
            if st == MM_OK:
                self.ctr[C_MOVE_PAGES_COPIED] += ncopied
            return st
        finally:
            free(vals)

    cdef int move_range_status(self, int64_t pid, int64_t vpn, int64_t npages) noexcept:
        try:
            return _move_range_status(self.mappings(pid), vpn, npages)
        except _errors.NotSupported:
            return MM_ENOTSUP
        except BaseException as e:
            self.pending_exc = e
            return MM_EPYTHON

    cdef int c_check(self) noexcept nogil:
        cdef int st = MM_OK
        with gil:
            fn = getattr(self, "do_check", None)
            if fn is not None:
                try:
                    fn()
                except BaseException as e:
                    self.pending_exc = e
                    st = MM_EPYTHON
        return st

    cdef int c_nop(self) noexcept nogil:
        return MM_OK

    # ------------------------------------------------------------ the engine
    cdef int dispatch(self, const trace_rec_t* r, uint64_t* out) noexcept nogil:
        cdef int64_t newpid = 0
        cdef int st
        cdef int op = r.op
        if op != OP_SPAWN and op != OP_NOP and self.proc_of(r.pid) == NULL:
            # validation assigned pids as if every SPAWN/FORK succeeds; never hand a design
            # a pid it has no process for (the replay also stops at a failed SPAWN/FORK)
            return MM_ENOPROC
        if op == OP_READ:
            return self.c_read(r.pid, r.vpn, out)
        elif op == OP_WRITE:
            return self.c_write(r.pid, r.vpn, r.arg)
        elif op == OP_NOP:
            return self.c_nop()
        elif op == OP_MMAP:
            return self.c_mmap(r.pid, r.vpn, r.npages, r.arg)
        elif op == OP_MUNMAP:
            return self.c_munmap(r.pid, r.vpn, r.npages)
        elif op == OP_FORK:
            st = self.c_fork(r.pid, &newpid)
            out[0] = <uint64_t>newpid
            return st
        elif op == OP_SPAWN:
            st = self.c_spawn(&newpid)
            out[0] = <uint64_t>newpid
            return st
        elif op == OP_EXIT:
            return self.c_exit(r.pid)
        elif op == OP_MPROTECT:
            return self.c_mprotect(r.pid, r.vpn, r.npages, r.arg != 0)
        elif op == OP_MREMAP:
            return self.c_mremap(r.pid, r.vpn, r.npages, <int64_t>r.arg)
        elif op == OP_MADVISE_DONTNEED:
            return self.c_madvise_dontneed(r.pid, r.vpn, r.npages)
        elif op == OP_MIGRATE:
            return self.c_migrate(r.pid, r.vpn, r.npages, <int>r.arg)
        elif op == OP_DEVICE_READ:
            return self.c_device_read(r.dev, r.pid, r.vpn, out)
        elif op == OP_DEVICE_WRITE:
            return self.c_device_write(r.dev, r.pid, r.vpn, r.arg)
        elif op == OP_MADVISE:
            return self.c_madvise(r.pid, r.vpn, r.npages, <int>r.arg)
        elif op == OP_MOVE_PAGES:
            return self.c_move_pages(r.pid, r.vpn, <int64_t>r.arg, r.npages)
        return MM_EINVAL

    def replay(self, trace, timing=True, stop_on_error=False, frame=True):
        """Run a whole trace in one nogil C loop.

        The trace is validated first (op codes, ranges, pids as the trace will
        create them, devices and nodes); a bad trace raises InvalidArgument or
        NoSuchProcess and nothing runs.  Per op the result holds the status
        (0 ok, else an MM_E* code: a fault the op provoked is recorded, not
        raised), the value (read result or new pid) and, with ``timing``, the
        time in ns (float64; read from the clock mmbench.clock chose: the
        TSC where it is a clock, else CLOCK_MONOTONIC) with the cost of a pair
        of clock reads subtracted.  Returns a polars DataFrame (``frame=False``:
        a ReplayResult, a mapping of numpy columns built when first read).
        Details of the run (elapsed ns, clock overhead, ops executed) are in
        ``last_replay``.
        """
        from mmbench.trace import as_trace, check_records
        cdef cnp.ndarray arr
        cdef Py_ssize_t n
        cdef list res_cols
        cdef dict fields = None
        cdef cnp.ndarray[int8_t] status
        cdef cnp.ndarray[uint64_t] value
        cdef cnp.ndarray[int64_t] ns
        cdef const trace_rec_t* recs
        cdef int8_t* st_p
        cdef uint64_t* val_p
        cdef int64_t* ns_p
        cdef int cmode
        cdef int64_t overhead
        cdef bint do_time = timing
        cdef bint stop = stop_on_error
        cdef Py_ssize_t i, done = 0
        cdef int st
        cdef int op
        cdef int64_t t0, t1, start, elapsed
        self.enter()
        if self.busy_depth > 1:
            self.leave()
            raise _errors.MachineBusy(f"replay cannot run inside another call on this "
                                      f"{type(self).name!r} machine")
        try:
            arr = as_trace(trace)
            n = arr.shape[0]
            # one block for every result column, the trace's fields too when a frame is
            # asked for: a few page faults, and glibc keeps it for the next replay
            res_cols = columns_block(n, (np.int8, np.uint64) + ((np.int64,) if timing else ()) +
                                     (tuple(FIELD_DTYPES.values()) if frame else ()))
            status = res_cols[0]
            value = res_cols[1]
            value[:] = 0                     # an op that yields no value leaves 0
            ns = res_cols[2] if timing else np.zeros(0, dtype=np.int64)
            if frame:
                fields = dict(zip(FIELD_DTYPES, res_cols[len(res_cols) - len(FIELD_DTYPES):]))
            check_records(arr, self, fields)  # the validation pass, de-interleaving into fields
            recs = <const trace_rec_t*>cnp.PyArray_DATA(arr)
            st_p = <int8_t*>cnp.PyArray_DATA(status)
            val_p = <uint64_t*>cnp.PyArray_DATA(value)
            ns_p = <int64_t*>cnp.PyArray_DATA(ns) if timing else NULL
            cmode = _clock.mode()
            overhead = _clock.overhead_ticks(REPLAY_OVERHEAD_PAIRS) if timing else 0   # ticks
            self.pending_exc = None
            start = clock_ticks(cmode)
            # The machine stays taken (busy) through the nogil loop: another thread
            # calling any public method meanwhile gets MachineBusy.  A SPAWN or FORK
            # that fails stops the loop: validation numbered the pids as if each
            # succeeds, so later records would name the wrong processes.
            with nogil:
                if do_time:
                    for i in range(n):
                        t0 = clock_ticks(cmode)
                        st = self.dispatch(&recs[i], &val_p[i])
                        t1 = clock_ticks(cmode)
                        ns_p[i] = t1 - t0 - overhead if t1 - t0 > overhead else 0
                        st_p[i] = <int8_t>st
                        done = i + 1
                        if st != MM_OK:
                            op = recs[i].op
                            if st == MM_EPYTHON or stop or op == OP_FORK or op == OP_SPAWN:
                                break
                else:
                    done = n
                    for i in range(n):
                        st = self.dispatch(&recs[i], &val_p[i])
                        st_p[i] = <int8_t>st
                        if st != MM_OK:
                            op = recs[i].op
                            if st == MM_EPYTHON or stop or op == OP_FORK or op == OP_SPAWN:
                                done = i + 1
                                break
            elapsed = clock_ticks(cmode) - start
        finally:
            self.leave()
        self.last_replay = {"ops": int(done), "elapsed_ns": int(_clock.ticks_to_ns(elapsed)),
                            "clock_overhead_ns": float(_clock.ticks_to_ns(overhead)),
                            "clock": _clock.info()["clock"], "timing": bool(timing)}
        if done < n and st != MM_OK and st != MM_EPYTHON and not stop:
            self.last_replay["stopped"] = (
                f"record {done - 1}: {OP_NAMES[recs[done - 1].op]} failed "
                f"({_errors.STATUS_NAMES.get(st, st)}); the records after it name pids that "
                "were never created, so the replay stopped there")
        if self.pending_exc is not None:
            exc, self.pending_exc = self.pending_exc, None
            raise exc
        res = ReplayResult(arr, done, status, value,
                           _clock.ticks_to_ns(ns[:done]) if timing else None, fields)   # float64 ns
        return res.frame() if frame else res

    # ---------------------------------------------- the public contract
    # Each method validates its arguments (pid, range, device, node, flags), calls the
    # design's c_* method and turns a status into an exception whose message says what
    # was wrong in this call (_fail); the machine is unchanged whenever it raises.
    def _raise(self, int st):
        if st == MM_OK:
            return
        if st == MM_EPYTHON:
            exc, self.pending_exc = self.pending_exc, None
            raise exc
        raise _errors.BY_STATUS.get(st, _errors.MMError)(self._explain(st))

    def _explain(self, int st):
        return {MM_ESEGV: "no mapping at that address",
                MM_EPROT: "write to a read-only mapping",
                MM_ENOPROC: "no such process",
                MM_ENOMEM: "no free frame left",
                MM_EINVAL: "invalid argument",
                MM_ENOTSUP: f"the {type(self).name!r} design does not support this operation"}.get(st, "error")

    def _fail(self, int st, str op, pid, vpn=None, npages=None, extra=None):
        """Raise the exception of status `st` for `op` with a message saying what was wrong."""
        if st == MM_OK:
            return
        if st == MM_EPYTHON:
            self._raise(st)
        where = f"{op} of vpn {_span(vpn, npages)} in pid {pid}" if vpn is not None else f"{op} of pid {pid}"
        if st == MM_EINVAL and op in ("mmap", "mremap"):
            target = (vpn, npages) if op == "mmap" else (extra, npages)
            if op == "mremap" and vpn < extra + npages and extra < vpn + npages:
                why = f"the new range {_span(extra, npages)} overlaps the old one"
            else:
                hit = self._overlapping(pid, *target)
                why = (f"overlaps the mapping at {_span(hit[0], hit[1])}" if hit else
                       "overlaps an existing mapping") if op == "mmap" else (
                       f"the new range {_span(extra, npages)} is not free: it overlaps the mapping at "
                       f"{_span(hit[0], hit[1])}" if hit else
                       f"the new range {_span(extra, npages)} overlaps an existing mapping")
        elif st == MM_EINVAL or (st == MM_ESEGV and npages is not None):
            hole = self._first_hole(pid, vpn, npages)
            why = (f"vpn {hex(hole)} is not mapped (every page of the range must be)" if hole is not None
                   else "part of the range is not mapped (every page of it must be)")
        elif st == MM_ESEGV:
            why = "no mapping there"
        elif st == MM_EPROT:
            why = "the mapping is read-only"
        elif st == MM_ENOMEM:
            node = "device memory" if op.startswith("device") or (op == "migrate" and extra) else "host RAM"
            why = f"no free frame left in {node}"
        elif st == MM_ENOPROC:
            why = "no such process"
        else:
            why = self._explain(st)
        raise _errors.BY_STATUS.get(st, _errors.MMError)(f"{where}: {why}")

    def _overlapping(self, pid, vpn, npages):
        """(start, npages) of the first mapping of `pid` meeting [vpn, vpn+npages), or None."""
        try:
            maps = self.mappings(pid)
        except _errors.MMError:
            return None
        for start, n, _shared, _writable in maps:
            if start < vpn + npages and vpn < start + n:
                return start, n
        return None

    def _first_hole(self, pid, vpn, npages):
        """The first page of [vpn, vpn+npages) that `pid` has not mapped (None if unknown)."""
        try:
            maps = self.mappings(pid)
        except _errors.MMError:
            return None
        v = vpn
        for start, n, _shared, _writable in maps:
            if start + n <= v:
                continue
            if start > v:
                break
            v = start + n
            if v >= vpn + npages:
                return None
        return v if v < vpn + npages else None

    def _pid(self, pid):
        self._not_busy()
        pid = _to_int(pid, "pid")
        if pid <= 0 or pid >= self.next_pid or self.procs[pid] == NULL:
            live = ", ".join(map(str, self.live_pids()[:8])) or "none"
            raise _errors.NoSuchProcess(f"no process with pid {pid} (live: {live})")
        return pid

    def _range(self, vpn, npages=1):
        vpn = _to_int(vpn, "vpn")
        npages = _to_int(npages, "npages")
        if npages < 1:
            raise _errors.InvalidArgument(f"npages must be ≥ 1, got {npages}")
        if vpn < 0:
            raise _errors.InvalidArgument(f"vpn must be ≥ 0, got {vpn}")
        if vpn + npages > VPN_LIMIT:
            raise _errors.InvalidArgument(
                f"range {_span(vpn, npages)} ends beyond the address space (2**{VPN_BITS} pages)")
        return vpn, npages

    def _dev(self, dev):
        dev = _to_int(dev, "dev")
        self._has_devices()
        if not (1 <= dev <= self.ndevices):
            raise _errors.InvalidArgument(f"device {dev} does not exist: this machine has devices "
                                          f"1..{self.ndevices}")
        return dev

    def _has_devices(self):
        if not type(self).supports_devices:
            raise _errors.NotSupported(f"the {type(self).name!r} design has no accelerator support")
        if self.ndevices == 0:
            raise _errors.InvalidArgument("this machine has no devices (open it with devices=N)")

    def spawn(self):
        """spawn() -> pid

        Create a process with an empty address space and return its pid.  Pids
        are 1, 2, 3 … in creation order (spawn and fork share the counter) and
        are never reused.  OutOfMemory if the design cannot allocate it.
        """
        cdef int64_t pid = 0
        self.enter()
        try:
            self._fail(self.c_spawn(&pid), "spawn", "(new)")
            return pid
        finally:
            self.leave()

    def mmap(self, pid, vpn, npages, shared=False, writable=True):
        """mmap(pid, vpn, npages, shared=False, writable=True)

        Map `npages` anonymous pages at virtual page number `vpn` in process
        `pid`.  Every page of the range must be free (InvalidArgument names the
        mapping it overlaps).  `shared` pages stay one page across fork;
        private ones become copy-on-write.  `shared` and `writable` are bools.
        New pages read as 0.
        """
        cdef uint64_t flags
        self.enter()
        try:
            pid = self._pid(pid)
            vpn, npages = self._range(vpn, npages)
            shared = _to_bool(shared, "shared")
            writable = _to_bool(writable, "writable")
            flags = (MAPF_SHARED if shared else 0) | (MAPF_WRITE if writable else 0)
            self._fail(self.c_mmap(pid, vpn, npages, flags), "mmap", pid, vpn, npages)
        finally:
            self.leave()

    def munmap(self, pid, vpn, npages):
        """munmap(pid, vpn, npages)

        Unmap whatever `pid` maps in [vpn, vpn+npages): holes are fine, a
        mapping that crosses an end is split.  Pages nobody maps any more are
        freed.
        """
        self.enter()
        try:
            pid = self._pid(pid)
            vpn, npages = self._range(vpn, npages)
            self._fail(self.c_munmap(pid, vpn, npages), "munmap", pid, vpn, npages)
        finally:
            self.leave()

    def mprotect(self, pid, vpn, npages, writable):
        """mprotect(pid, vpn, npages, writable)

        Make [vpn, vpn+npages) of `pid` writable (``writable=True``) or
        read-only (``writable=False``); `writable` must be a bool.  Every page
        of the range must be mapped, else InvalidArgument and nothing changes.
        """
        self.enter()
        try:
            pid = self._pid(pid)
            vpn, npages = self._range(vpn, npages)
            writable = _to_bool(writable, "writable")
            self._fail(self.c_mprotect(pid, vpn, npages, writable), "mprotect", pid, vpn, npages)
        finally:
            self.leave()

    def read(self, pid, vpn):
        """read(pid, vpn) -> int

        The 64-bit value in page `vpn` as process `pid` sees it (0 for a page
        never written).  Faults as the design dictates; SegmentationFault when
        the page is not mapped.
        """
        cdef uint64_t v = 0
        self.enter()
        try:
            pid = self._pid(pid)
            vpn, _ = self._range(vpn)
            self._fail(self.c_read(pid, vpn, &v), "read", pid, vpn)
            return v
        finally:
            self.leave()

    def write(self, pid, vpn, value):
        """write(pid, vpn, value)

        Store the 64-bit unsigned `value` in page `vpn` of `pid`.  Faults as the
        design dictates (zero-fill, copy-on-write …); SegmentationFault when the
        page is not mapped, ProtectionFault when it is read-only.
        """
        self.enter()
        try:
            pid = self._pid(pid)
            vpn, _ = self._range(vpn)
            value = _to_int(value, "value")
            if not (0 <= value < (1 << 64)):
                raise _errors.InvalidArgument(f"value must fit in 64 unsigned bits, got {value}")
            self._fail(self.c_write(pid, vpn, value), "write", pid, vpn)
        finally:
            self.leave()

    def fork(self, pid):
        """fork(pid) -> child pid

        Copy the address space of `pid` into a new process: private mappings
        become copy-on-write, shared ones stay shared, protections are kept.
        """
        cdef int64_t child = 0
        self.enter()
        try:
            pid = self._pid(pid)
            self._fail(self.c_fork(pid, &child), "fork", pid)
            return child
        finally:
            self.leave()

    def exit(self, pid):
        """exit(pid)

        End process `pid`: its mappings go, pages nobody else maps are freed.
        Its pid is never handed out again.
        """
        self.enter()
        try:
            pid = self._pid(pid)
            self._fail(self.c_exit(pid), "exit", pid)
        finally:
            self.leave()

    def mremap(self, pid, old_vpn, npages, new_vpn):
        """mremap(pid, old_vpn, npages, new_vpn)

        Move [old_vpn, old_vpn+npages) of `pid` to `new_vpn` with its contents,
        protections and sharing; the old range becomes unmapped.  Every old page
        must be mapped (SegmentationFault), the new range must be free and must
        not overlap the old one (InvalidArgument).
        """
        self.enter()
        try:
            pid = self._pid(pid)
            old_vpn, npages = self._range(old_vpn, npages)
            new_vpn, _ = self._range(new_vpn, npages)
            self._fail(self.c_mremap(pid, old_vpn, npages, new_vpn), "mremap", pid, old_vpn, npages, new_vpn)
        finally:
            self.leave()

    def move_pages(self, pid, src_vpn, dst_vpn, npages):
        """move_pages(pid, src_vpn, dst_vpn, npages)

        Move the contents of [src_vpn, src_vpn+npages) to [dst_vpn, dst_vpn+npages)
        inside process `pid` (userfaultfd's UFFDIO_MOVE): the destination pages then
        hold the source values and the source pages read 0; both ranges stay mapped.
        The ranges must not overlap (InvalidArgument); every page of both must be
        mapped (SegmentationFault), private and writable (InvalidArgument); every
        destination page must hold nothing, i.e. read 0 (InvalidArgument, the
        kernel's -EEXIST).  A design that moves pages without copying may refuse a
        source page whose data is still shared copy-on-write with another process
        since a fork (PageBusy, the kernel's -EBUSY); a design that copies never
        does.  The reference model (mmbench.reference) defines it exactly.
        """
        self.enter()
        try:
            pid = self._pid(pid)
            src_vpn, npages = self._range(src_vpn, npages)
            dst_vpn, _ = self._range(dst_vpn, npages)
            st = self.c_move_pages(pid, src_vpn, dst_vpn, npages)
            if st == MM_EINVAL and src_vpn < dst_vpn + npages and dst_vpn < src_vpn + npages:
                raise _errors.InvalidArgument(
                    f"move_pages of vpn {_span(src_vpn, npages)} in pid {pid}: the destination "
                    f"{_span(dst_vpn, npages)} overlaps the source")
            if st == MM_ESEGV:
                hole = self._first_hole(pid, src_vpn, npages)
                if hole is None:
                    hole = self._first_hole(pid, dst_vpn, npages)
                raise _errors.SegmentationFault(
                    f"move_pages of vpn {_span(src_vpn, npages)} to {_span(dst_vpn, npages)} in pid "
                    f"{pid}: " + (f"vpn {hex(hole)} is not mapped" if hole is not None else
                                  "part of a range is not mapped") + " (every page of both must be)")
            if st == MM_EINVAL:
                raise _errors.InvalidArgument(
                    f"move_pages of vpn {_span(src_vpn, npages)} to {_span(dst_vpn, npages)} in pid "
                    f"{pid}: both ranges must be private and writable, and every destination "
                    "page must hold nothing (read 0)")
            if st == MM_ENOTSUP:
                raise _errors.NotSupported(
                    f"move_pages in pid {pid}: the {type(self).name!r} design has no move_pages of its "
                    "own and lists no mappings (a vmas() or entries() view), which the generic "
                    "copying fallback needs to check both ranges")
            if st == MM_EBUSY:
                raise _errors.PageBusy(
                    f"move_pages of vpn {_span(src_vpn, npages)} in pid {pid}: a source page is "
                    "still shared copy-on-write with another process (the kernel's -EBUSY); "
                    "nothing moved")
            self._fail(st, "move_pages", pid, src_vpn, npages, dst_vpn)
        finally:
            self.leave()

    def madvise_dontneed(self, pid, vpn, npages):
        """madvise_dontneed(pid, vpn, npages)

        Drop the pages of [vpn, vpn+npages): private pages then read 0, shared
        pages keep their data.  Every page must be mapped, else InvalidArgument.
        """
        self.enter()
        try:
            pid = self._pid(pid)
            vpn, npages = self._range(vpn, npages)
            self._fail(self.c_madvise_dontneed(pid, vpn, npages), "madvise_dontneed", pid, vpn, npages)
        finally:
            self.leave()

    def madvise(self, pid, vpn, npages, advice):
        """Give `advice` (mmbench.Advice) for [vpn, vpn+npages); every page must be mapped.

        DONTNEED is madvise_dontneed; HUGEPAGE / NOHUGEPAGE change only how a
        design backs the range (huge pages or not), never a value read.
        """
        self.enter()
        try:
            pid = self._pid(pid)
            vpn, npages = self._range(vpn, npages)
            advice = _to_int(advice, "advice")
            if advice not in ADVICE_NAMES:
                raise _errors.InvalidArgument(f"unknown advice {advice}; known: {sorted(ADVICE_NAMES)}")
            self._raise(self.c_madvise(pid, vpn, npages, advice))
        finally:
            self.leave()

    def migrate(self, pid, vpn, npages, node):
        """migrate(pid, vpn, npages, node)

        Move the pages of [vpn, vpn+npages) to memory node `node` (0 = host
        RAM, 1..devices = accelerators).  Never changes a value; every page must
        be mapped.  NotSupported for a design without accelerators.
        """
        self.enter()
        try:
            pid = self._pid(pid)
            vpn, npages = self._range(vpn, npages)
            node = _to_int(node, "node")
            if not type(self).supports_devices:
                raise _errors.NotSupported(f"the {type(self).name!r} design has no accelerator support")
            if not (0 <= node <= self.ndevices):
                if self.ndevices == 0 and node > 0:
                    raise _errors.InvalidArgument(f"node {node}: this machine has no devices (open it "
                                                  "with devices=N)")
                raise _errors.InvalidArgument(f"node {node} does not exist: this machine has host RAM "
                                              f"(node 0) and devices 1..{self.ndevices}")
            self._fail(self.c_migrate(pid, vpn, npages, node), "migrate", pid, vpn, npages, node)
        finally:
            self.leave()

    def device_read(self, dev, pid, vpn):
        """device_read(dev, pid, vpn) -> int

        Accelerator `dev` (1..devices) reads page `vpn` of `pid`, with the same
        rules as read(); the design decides whether the page moves.
        """
        cdef uint64_t v = 0
        self.enter()
        try:
            dev = self._dev(dev)
            pid = self._pid(pid)
            vpn, _ = self._range(vpn)
            self._fail(self.c_device_read(dev, pid, vpn, &v), f"device_read by device {dev}", pid, vpn)
            return v
        finally:
            self.leave()

    def device_write(self, dev, pid, vpn, value):
        """device_write(dev, pid, vpn, value)

        Accelerator `dev` (1..devices) stores `value` in page `vpn` of `pid`,
        with the same rules as write().
        """
        self.enter()
        try:
            dev = self._dev(dev)
            pid = self._pid(pid)
            vpn, _ = self._range(vpn)
            value = _to_int(value, "value")
            if not (0 <= value < (1 << 64)):
                raise _errors.InvalidArgument(f"value must fit in 64 unsigned bits, got {value}")
            self._fail(self.c_device_write(dev, pid, vpn, value), f"device_write by device {dev}", pid, vpn)
        finally:
            self.leave()

    def mappings(self, pid):
        """mappings(pid) -> [(vpn, npages, shared, writable), …]

        The mappings of process `pid` in address order.  A design provides it by
        overriding this method or through a ``vmas(pid)`` or ``entries(pid)``
        view of dicts with ``start``, ``end``, ``shared`` and ``writable``;
        NotSupported otherwise.  Error messages use it to name the mapping an
        mmap overlaps or the first unmapped page of a range.
        """
        self.enter()
        try:
            pid = self._pid(pid)
            for view in ("vmas", "entries"):
                fn = getattr(self, view, None)
                if fn is not None:
                    return [(int(e["start"]), int(e["end"]) - int(e["start"]), bool(e["shared"]),
                             bool(e["writable"])) for e in fn(pid)]
            raise _errors.NotSupported(f"the {type(self).name!r} design does not list its mappings")
        finally:
            self.leave()

    def metadata(self):
        """metadata() -> {struct_name: (count, bytes)}

        The kernel structs this design has live now: for each, how many objects
        (count) and the memory they take (bytes = count x the real kernel's
        struct size; ``struct_sizes()`` gives the size).  Page tables, VMAs,
        anon_vma, vm_object, xa_node … each design names its own.  A design
        that accounts no structs returns {} (results record its metadata as
        unsupported, never as 0).
        """
        cdef int i
        self.enter()
        try:
            out = {}
            for i in range(self.ncaches):
                out[self.caches[i].name.decode()] = (int(self.caches[i].active),
                                                     int(self.caches[i].active * self.caches[i].objsize))
            return self._memmap_rows(out, self.options.get("memmap"))
        finally:
            self.leave()

    def memdesc_metadata(self):
        """memdesc_metadata() -> {struct_name: (count, bytes)} or None

        ``metadata()`` as it reads with the design option ``memmap="memdesc"``
        (mmbench.memmap), whatever this machine's own ``memmap``: the same
        state, only the memory map charged the other way.  Reports record both
        layouts from one run.  None when the design has no per-frame descriptor
        row to convert (it accounts no ``memmap_struct``).
        """
        rows = self.metadata()
        if "memdesc" in rows:
            return rows
        if type(self).memmap_struct not in rows:
            return None
        return self._memmap_rows(rows, "memdesc")

    def _memmap_rows(self, dict rows, mode):
        """With mode "memdesc" (mmbench.memmap), the design's per-frame descriptor row
        (``memmap_struct``) becomes one 8 B ``memdesc`` per frame plus one 80 B
        ``folio`` per folio of host memory (frames that row counts outside large
        folios are order-0 folios)."""
        name = type(self).memmap_struct
        if mode != "memdesc" or name not in rows:
            return rows
        frames = rows.pop(name)[0]
        large = int(self.frames.node_large_frames[0])
        folios = frames - large + int(self.frames.node_large_folios[0]) if frames >= large else frames
        rows.update(_memmap.memdesc_rows(frames, folios))
        return rows

    def notes(self):
        """Lines saying how this design departs from the contract's defaults (e.g. huge pages).

        A design that models huge pages (or knows it has none) overrides this;
        the default says that this one runs at 4 KiB whatever ``thp`` asks.  A design's
        fixed notes (its own choices where its source defines nothing) are its class's
        ``design_notes`` and come first.
        """
        self.enter()
        try:
            return list(type(self).design_notes) + [f"huge pages are not modelled in the {type(self).name!r} design yet: runs at 4 KiB "
                    f"(thp={self.options.get('thp')!r} has no effect)", self.move_pages_note()]
        finally:
            self.leave()

    def move_pages_note(self):
        """One line for notes(): how this design carries out move_pages, and why."""
        return (f"move_pages copies: the {type(self).name!r} design has no way to move a page between "
                "addresses without copying it (the generic fallback: the design's own write per "
                "non-zero page, then MADV_DONTNEED on the source; counted as move_pages_copied)")

    def struct_sizes(self):
        """{struct_name: bytes per object} of every struct this design accounts."""
        self.enter()
        try:
            sizes = {self.caches[i].name.decode(): int(self.caches[i].objsize) for i in range(self.ncaches)}
            if self.options.get("memmap") == "memdesc" and type(self).memmap_struct in sizes:
                del sizes[type(self).memmap_struct]
                sizes.update({"memdesc": _memmap.SIZEOF_MEMDESC, "folio": _memmap.SIZEOF_FOLIO_DESC})
            return sizes
        finally:
            self.leave()

    def per_process_structs(self):
        """Names of the structs that must all be gone once every process exited."""
        self.enter()
        try:
            names = [self.caches[i].name.decode() for i in range(self.ncaches) if self.caches[i].per_process]
            if self.options.get("memmap") == "memdesc" and type(self).memmap_struct in names:
                names.remove(type(self).memmap_struct)
                names += ["memdesc", "folio"]
            return names
        finally:
            self.leave()

    def slab_allocs(self):
        """{struct_name: objects allocated so far} (cumulative; metadata() counts live ones)."""
        self.enter()
        try:
            return {self.caches[i].name.decode(): int(self.caches[i].allocs) for i in range(self.ncaches)}
        finally:
            self.leave()

    def slab_frees(self):
        """{struct_name: objects freed so far} (cumulative)."""
        self.enter()
        try:
            return {self.caches[i].name.decode(): int(self.caches[i].frees) for i in range(self.ncaches)}
        finally:
            self.leave()

    def counters(self):
        """{event: count} for the events this design has."""
        self.enter()
        try:
            names = type(self).counter_names
            # move_pages is a contract operation: every design counts it one way or the other
            names = tuple(names) + tuple(n for n in _CONTRACT_COUNTERS if n not in names)
            return {n: int(self.ctr[COUNTER_INDEX[n]]) for n in names}
        finally:
            self.leave()

    def check(self):
        """Verify every internal invariant; raise InvariantViolation on the first broken one."""
        cdef int st
        cdef int node
        cdef int64_t used
        self.enter()
        try:
            for node in range(self.frames.nr_nodes):
                used = self.frames.node_bump[node] - self.frames.node_nfree[node]
                if used != self.frames.node_used[node]:
                    raise _errors.InvariantViolation(f"frame accounting of node {node} is inconsistent")
            st = self.c_check()
            if st == MM_EPYTHON:
                exc, self.pending_exc = self.pending_exc, None
                if isinstance(exc, _errors.InvariantViolation):
                    raise exc
                raise _errors.InvariantViolation(str(exc)) from exc
            if st != MM_OK:
                raise _errors.InvariantViolation(self.check_msg.decode(errors="replace") or "invariant violated")
        finally:
            self.leave()

    # ------------------------------------------------ framework extras
    def frames_used(self, node=0):
        """Frames allocated now on `node` (0 = host RAM, 1.. = devices)."""
        self.enter()
        try:
            node = _to_int(node, "node")
            if not (0 <= node < self.frames.nr_nodes):
                raise _errors.InvalidArgument(f"node {node} does not exist")
            return int(self.frames.node_used[node])
        finally:
            self.leave()

    def live_pids(self):
        """live_pids() -> [pid, …]: the processes alive now, in creation order."""
        self.enter()
        try:
            return [p for p in range(1, self.next_pid) if self.procs[p] != NULL]
        finally:
            self.leave()

    @property
    def next_free_pid(self):
        """The pid the next spawn or fork will get."""
        return int(self.next_pid)

    def leaks(self):
        """What is still held although no process is alive: [] when clean."""
        self.enter()
        try:
            if self.live_procs:
                raise _errors.InvalidArgument("leaks() needs every process to have exited")
            out = []
            for i in range(self.ncaches):
                if self.caches[i].per_process and self.caches[i].active != 0:
                    out.append(f"{self.caches[i].name.decode()}: {self.caches[i].active} live")
            for node in range(self.frames.nr_nodes):
                if self.frames.node_used[node]:
                    out.append(f"node {node}: {self.frames.node_used[node]} frames in use")
            return out
        finally:
            self.leave()

    def counter(self, name):
        """counter(name) -> int: one event count (see counters() and mmbench.COUNTER_NAMES)."""
        self.enter()
        try:
            if name not in COUNTER_INDEX:
                raise _errors.InvalidArgument(f"unknown counter {name!r}; counters: see mmbench.COUNTER_NAMES")
            return int(self.ctr[COUNTER_INDEX[name]])
        finally:
            self.leave()
