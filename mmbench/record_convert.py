"""From a perf stream of a real program to an ordinary mmbench trace.

The converter replays the stream against its own small picture of each
address space (a sorted set of VMAs per *mm*) and writes the contract
operations that reproduce it:

    perf event                          trace operation(s)
    ─────────────────────────────────   ───────────────────────────────────────
    exec (PERF_RECORD_COMM exec)        EXIT of the old image (if nobody shares it),
                                        SPAWN of a fresh address space
    PERF_RECORD_MMAP2 outside a syscall MMAP: a mapping the ELF loader made (text,
                                        data, bss, [stack], [vdso], interpreter)
    sys_exit_mmap / shmat               MMAP (after MUNMAP of what MAP_FIXED replaced)
    sys_exit_munmap / shmdt             MUNMAP of the pieces that were mapped
    sys_exit_mprotect                   MPROTECT where writability changes
    sys_exit_mremap                     MREMAP (moved), MMAP/MUNMAP (grown/shrunk)
    sys_exit_brk                        MMAP of the growth / MUNMAP of the shrink
    sys_exit_madvise DONTNEED/REMOVE    MADVISE_DONTNEED
    sched_process_fork (+ clone flags)  FORK (a new mm); nothing for a thread
                                        (same pid) or a CLONE_VM child (vfork,
                                        posix_spawn: it runs in its parent's mm)
    sched_process_exit group_dead       EXIT when the mm's last user is gone
    page_fault_user                     WRITE (error-code bit 1) or READ at the page

Only system calls that succeeded are applied (their exit carries the return
value).  Mapping choices — the contract knows anonymous memory only:

* anonymous private (incl. private /dev/zero, brk, stack) → private mapping;
* anonymous shared, shared /dev/zero, memfd and SysV shm → shared mapping;
* file shared → shared mapping (the page cache is shared memory);
* file private → private mapping; on the host its first touches are page-cache
  hits (counted as ``file_private_first_reads``), in the replay they are zero-page
  reads (trap, no frame) — the replay prices the page-cache lookup on top, and
  the neighbours the host's fault-around mapped with each read
  (``file_private_read_neighbours``);
* [vdso]/[vvar] → private read-only mappings;
* device files (``/dev/*`` other than /dev/zero) and io_uring / other
  anon_inode mappings → not replayed: counted in the notes, and faults there
  are dropped and counted;
* MAP_POPULATE → the pages the kernel pre-faulted are touched (no fault event
  shows them); MADV_HUGEPAGE / NOHUGEPAGE / FREE / DONTFORK … → counted in the
  notes, not replayed (no such op yet).

Every dropped or approximated event is a counted note; nothing is silently
lost.  The host's own fault counts are classified per fault by the mapping it
hit (``host_kinds``) and, separately, by the kind the replay is expected to
take after the mapping choices above (``replay_kinds``).
"""
from __future__ import annotations

import bisect
import dataclasses
from collections import Counter
from typing import Iterable

import numpy as np

from mmbench import errors, hostcheck
from mmbench.core import VPN_LIMIT
from mmbench.trace import TraceBuilder
from mmbench import record_stream as rs

PAGE_SHIFT = 12
PAGE = 1 << PAGE_SHIFT

# mapping classes
ANON, ANON_SHARED, FILE, FILE_SHARED, SPECIAL, UNSUPPORTED = "anon", "anon_shared", "file", \
    "file_shared", "special", "unsupported"
SHARED_CLASSES = (ANON_SHARED, FILE_SHARED)

# Linux ABI constants (include/uapi)
MAP_SHARED, MAP_SHARED_VALIDATE, MAP_FIXED, MAP_ANONYMOUS = 0x01, 0x03, 0x10, 0x20
MAP_POPULATE, MAP_HUGETLB, MAP_FIXED_NOREPLACE = 0x8000, 0x40000, 0x100000
PROT_WRITE = 0x2
MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP = 1, 2, 4
CLONE_VM, CLONE_VFORK, CLONE_THREAD = 0x100, 0x4000, 0x10000
PF_PROT, PF_WRITE, PF_USER, PF_INSTR = 1, 2, 4, 16
MADV = {4: "DONTNEED", 8: "FREE", 9: "REMOVE", 10: "DONTFORK", 11: "DOFORK", 12: "MERGEABLE",
        13: "UNMERGEABLE", 14: "HUGEPAGE", 15: "NOHUGEPAGE", 18: "WIPEONFORK", 19: "KEEPONFORK",
        20: "COLD", 21: "PAGEOUT", 22: "POPULATE_READ", 23: "POPULATE_WRITE", 25: "COLLAPSE",
        0: "NORMAL", 1: "RANDOM", 2: "SEQUENTIAL", 3: "WILLNEED", 100: "GUARD_INSTALL",
        101: "GUARD_REMOVE"}
STACK_GROWTH_PAGES = (8 << 20) >> PAGE_SHIFT   # RLIMIT_STACK default: how far below [stack] a fault may grow it


def pages(nbytes: int) -> int:
    return (nbytes + PAGE - 1) >> PAGE_SHIFT


# ----------------------------------------------------------------- fault-around
FAULT_AROUND_PAGES = hostcheck.FAULT_AROUND_PAGES
PTRS_PER_PTE = 512


def fault_around_neighbours(mm, v, vpn: int) -> int:
    """Pages a read fault at `vpn` in file VMA `v` maps beside it on the host
    (do_fault_around): the aligned 64 KiB window, cut at the VMA's start and end and
    at its PTE table's, less the pages the process faulted on itself.  Whether each
    is in the page cache is not recorded; the window of a minor fault is assumed
    cached (an upper bound)."""
    pte_off = vpn % PTRS_PER_PTE
    table = vpn - pte_off
    lo = max(table + pte_off - pte_off % FAULT_AROUND_PAGES, v.start)
    hi = min(lo + FAULT_AROUND_PAGES, table + PTRS_PER_PTE, v.end)
    return sum(1 for p in range(lo, hi) if p != vpn and p not in mm.resident)


# ----------------------------------------------------------------- address spaces
def _lock_mm(payload: str) -> str:
    """The mm of an mmap_lock event (``mm=0x… memcg_id=… write=true``)."""
    a = payload.find("mm=")
    return payload[a + 3:].split(None, 1)[0] if a >= 0 else ""


@dataclasses.dataclass
class Vma:
    start: int            # first vpn
    end: int              # vpn after the last
    cls: str
    writable: bool
    obj: object = None    # shared object (file name or a unique id); page key = (obj, pgoff + vpn - start)
    pgoff: int = 0
    name: str = ""
    anon: bool = False    # private pages written (Linux: the VMA has an anon_vma; fork copies its PTEs)
    mobj: int = 0         # the replay's object: one per MMAP op (shared only through fork)

    def cut(self, lo, hi) -> "Vma":
        return dataclasses.replace(self, start=lo, end=hi, pgoff=self.pgoff + (lo - self.start))


class VmaSet:
    """Non-overlapping VMAs sorted by start; every range operation splits at its edges."""

    def __init__(self):
        self.starts: list[int] = []
        self.vmas: list[Vma] = []

    def copy(self) -> "VmaSet":
        v = VmaSet()
        v.starts = list(self.starts)
        v.vmas = [dataclasses.replace(x) for x in self.vmas]
        return v

    def find(self, vpn: int) -> Vma | None:
        i = bisect.bisect_right(self.starts, vpn) - 1
        if i >= 0 and self.vmas[i].end > vpn:
            return self.vmas[i]
        return None

    def overlapping(self, lo: int, hi: int) -> list[Vma]:
        i = max(0, bisect.bisect_right(self.starts, lo) - 1)
        out = []
        while i < len(self.vmas) and self.vmas[i].start < hi:
            if self.vmas[i].end > lo:
                out.append(self.vmas[i])
            i += 1
        return out

    def _split_at(self, vpn: int):
        v = self.find(vpn)
        if v is None or v.start == vpn:
            return
        i = bisect.bisect_right(self.starts, vpn) - 1
        right = v.cut(vpn, v.end)
        self.vmas[i] = v.cut(v.start, vpn)
        self.starts.insert(i + 1, vpn)
        self.vmas.insert(i + 1, right)

    def carve(self, lo: int, hi: int) -> list[Vma]:
        """Split at lo and hi; the VMAs now exactly inside [lo, hi)."""
        self._split_at(lo)
        self._split_at(hi)
        return self.overlapping(lo, hi)

    def remove(self, lo: int, hi: int) -> list[Vma]:
        gone = self.carve(lo, hi)
        for v in gone:
            i = bisect.bisect_left(self.starts, v.start)
            del self.starts[i], self.vmas[i]
        return gone

    def insert(self, v: Vma):
        i = bisect.bisect_left(self.starts, v.start)
        self.starts.insert(i, v.start)
        self.vmas.insert(i, v)

    def free(self, lo: int, hi: int) -> bool:
        return not self.overlapping(lo, hi)


@dataclasses.dataclass
class Mm:
    """One address space: a trace pid, its VMAs, its resident pages and who uses it."""
    pid: int
    vmas: VmaSet
    resident: set
    users: set
    image: str = ""
    brk: int | None = None            # page-aligned end of the heap (vpn)
    inherited: set | None = None      # pages whose PTEs fork copied, not faulted on since
    inherited_n: int = 0              # how many fork copied
    zero: set = dataclasses.field(default_factory=set)   # pages mapping the shared zero page
    host: int = 0                     # host tgid of a forked child
    t_fork: int = 0                   # when it was forked (ns, the stream's clock)
    own: set = dataclasses.field(default_factory=set)    # pages a forked child faulted itself


# ----------------------------------------------------------------- the converter
class Converter:
    """Feed it events (`feed`) then call `finish`; see the module docstring."""

    def __init__(self, access: dict | None = None):
        self.access = access                    # host pid -> [(t_ns, [(lo, hi, referenced pages)])]
        self.reads_added = 0
        self.children_sampled = 0
        self.children_unsampled = 0
        self.unsampled_unfaulted = 0
        self.t_now = 0
        self.tb = TraceBuilder()
        self.notes: Counter = Counter()
        self.host_kinds: Counter = Counter()
        self.replay_kinds: Counter = Counter()
        self.procs: dict[int, Mm] = {}          # host tgid -> its mm
        self.tgid_of: dict[int, int] = {}       # host tid -> tgid
        self.pending: dict[int, list] = {}      # tid -> [syscall, fields, t_ns, mmap2 info]
        self.newtask: dict[int, int] = {}       # child tid -> clone flags
        self.child_flags: dict[int, int] = {}   # child tid -> clone flags, for the fork's exit
        self.pid_host: dict[int, int] = {}      # trace pid -> host tgid
        self.forkrec: dict[int, int] = {}       # child tid -> child tgid (PERF_RECORD_FORK)
        self.exec_marked: set = set()
        self.shared_touched: set = set()        # (obj, page index) already in the page cache
        self.fork_ns: list[int] = []            # host duration of each process-creating syscall
        self.copy_ns: list[int] = []            # … from its entry to task_newtask (copy_process)
        self.newtask_t: dict[int, int] = {}     # parent tid -> time of its last task_newtask
        # dup_mmap: the parent's mmap write-lock inside a fork system call (mmap_lock events)
        self.dup_open: dict = {}                # tid -> (mm, t_ns, offcpu) of the lock held
        self.dup_done: dict[int, int] = {}      # tid -> ns of its fork's dup_mmap, until the exit
        self.dup_ns: list[int] = []             # each process fork's dup_mmap window
        self.fork_vmas: list = []               # each fork's (VMAs, file-backed, with anon_vma)
        self.writes = 0
        self.nfaults = 0
        self.t_first = self.t_last = None
        self.images: list[str] = []
        self._obj = 0
        self.forks = 0
        self.inherited_total = 0
        self.inherited_unfaulted = 0
        # fault timing (perf's software fault events, record_stream.TIMING_EVENTS)
        self.fault_kind: dict = {}              # tid -> (host kind, replay kind) of its last fault
        self.fault_open: dict = {}              # tid -> (begin t_ns, kinds) of the fault under way
        self.fault_n: Counter = Counter()       # replay kind -> faults timed
        self.fault_ns: Counter = Counter()      # replay kind -> ns between begin and end
        self.fault_n_host: Counter = Counter()  # host kind -> faults timed
        self.fault_ns_host: Counter = Counter()
        self.fault_windows: dict = {}           # replay kind -> every timed fault's ns (medians)
        self.fault_windows_host: dict = {}      # host kind -> the same
        # time off the CPU (perf --switch-events), so that a window preempted on a busy
        # host counts only the time the thread ran
        self.offcpu: Counter = Counter()        # tid -> ns switched out so far
        self.out_since: dict = {}               # tid -> when it was switched out
        self.fork_off: dict = {}                # tid -> offcpu at its fork syscall's entry
        self.newtask_off: dict = {}             # tid -> offcpu at its last task_newtask

    # ------------------------------------------------------------- helpers
    def note(self, what: str, n: int = 1):
        self.notes[what] += n

    def _new_obj(self):
        self._obj += 1
        return ("anon", self._obj)

    def _mm(self, tid: int) -> Mm | None:
        tgid = self.tgid_of.get(tid, tid)
        return self.procs.get(tgid)

    def _spawn(self, image: str) -> Mm:
        pid = self.tb.spawn()
        mm = Mm(pid, VmaSet(), set(), set(), image=image)
        self.images.append(image)
        return mm

    def _release(self, tgid: int):
        mm = self.procs.pop(tgid, None)
        if mm is None:
            return
        mm.users.discard(tgid)
        if not mm.users:
            self._retire(mm)
            self.tb.exit(mm.pid)

    def _retire(self, mm: Mm):
        if mm.inherited is not None:
            self.inherited_total += mm.inherited_n
            self.inherited_unfaulted += len(mm.inherited)
            if self.access is not None:
                self._reads_without_faults(mm)
            mm.inherited = None

    def _reads_without_faults(self, mm: Mm):
        """Reduce the bias: the child's accessed bits (sampled by the recorder from
        /proc/PID/smaps "Referenced", per VMA) say how many pages it touched since fork;
        those beyond its own faults were read through PTEs fork copied.  Emit that many
        READs of its inherited, never-faulted pages in the VMA, evenly spread (which
        pages exactly the bits do not say)."""
        samples = [s for s in self.access.get(mm.host, ()) if mm.t_fork <= s[0] <= self.t_now]
        if not samples:
            self.children_unsampled += 1
            self.unsampled_unfaulted += len(mm.inherited)
            return
        self.children_sampled += 1
        inh = sorted(mm.inherited)
        own = sorted(mm.own)
        for lo, hi, ref in samples[-1][1]:
            a, b = bisect.bisect_left(inh, lo), bisect.bisect_left(inh, hi)
            cand = [p for p in inh[a:b] if (v := mm.vmas.find(p)) is not None and v.cls != UNSUPPORTED]
            mine = bisect.bisect_left(own, hi) - bisect.bisect_left(own, lo)
            extra = min(len(cand), max(0, ref - mine))
            for i in range(extra):
                self.tb.read(mm.pid, cand[i * len(cand) // extra])
            self.reads_added += extra

    # --- emitting mapping changes (the converter's picture and the trace together)
    def _map(self, mm: Mm, v: Vma, fixed: bool = False):
        """Map `v`; what it covers is unmapped first (MAP_FIXED semantics).  Without
        `fixed` the kernel chose a free range, so covering something means the
        converter's picture missed an unmap: counted."""
        if v.start < 0 or v.end > VPN_LIMIT or v.end <= v.start:
            self.note("mappings outside the 48-bit user address space (not replayed)")
            return
        if not fixed and not mm.vmas.free(v.start, v.end):
            self.note("mappings placed over a mapping still held (old one unmapped first)")
        self._obj += 1
        v.mobj = self._obj
        self._unmap(mm, v.start, v.end)
        mm.vmas.insert(v)
        if v.cls != UNSUPPORTED:
            self.tb.mmap(mm.pid, v.start, v.end - v.start, shared=v.cls in SHARED_CLASSES,
                         writable=v.writable)

    def _unmap(self, mm: Mm, lo: int, hi: int):
        for v in mm.vmas.remove(lo, hi):
            if v.cls != UNSUPPORTED:
                self.tb.munmap(mm.pid, v.start, v.end - v.start)
            self._drop_resident(mm, v.start, v.end)

    def _drop_resident(self, mm: Mm, lo: int, hi: int):
        for name in ("resident", "zero"):
            s = getattr(mm, name)
            if hi - lo < len(s):
                for p in range(lo, hi):
                    s.discard(p)
            else:
                setattr(mm, name, {p for p in s if not lo <= p < hi})

    # ------------------------------------------------------------- feeding
    def feed(self, events: Iterable[rs.Event]):
        for ev in events:
            if ev.name.startswith("PERF_RECORD_LOST"):
                self._on_lost(ev)
                continue
            if ev.pid == 0 and ev.name != "PERF_RECORD_COMM":
                continue
            if self.t_first is None and ev.t_ns:
                self.t_first = ev.t_ns
            if ev.t_ns:
                self.t_last = self.t_now = ev.t_ns
            h = self._HANDLERS.get(ev.name)
            if h is not None:
                h(self, ev)
            elif ev.name.startswith("sys_enter_"):
                if ev.name == "sys_enter_exit_group":
                    continue                     # never returns; sched_process_exit follows
                self.pending[ev.tid] = [ev.name[10:], rs.hexfields(ev.payload), ev.t_ns, None]
                self.fork_off[ev.tid] = self.offcpu[ev.tid]
            elif ev.name.startswith("sys_exit_"):
                self._sys_exit(ev)

    # --- perf side-band
    def _on_comm(self, ev):
        if not ev.payload.startswith("exec:"):
            return
        tgid = ev.pid
        image = ev.payload[5:].strip().rsplit(":", 1)[0]
        if tgid in self.procs:
            self._release(tgid)
        mm = self._spawn(image)
        self.pid_host[mm.pid] = tgid
        mm.users.add(tgid)
        self.procs[tgid] = mm
        self.tgid_of[ev.tid] = tgid
        self.exec_marked.add(tgid)
        self.pending.pop(ev.tid, None)

    def _on_mmap2(self, ev):
        f = rs.mmap2_fields(ev.payload)
        if f is None:
            self.note("PERF_RECORD_MMAP2 records not understood (ignored)")
            return
        pid, start, length, prot, name = f
        p = self.pending.get(ev.tid)
        if p is not None:
            if p[0] in ("mmap", "mremap", "brk", "shmat"):
                p[3] = (start, length, prot, name)
            return                           # mprotect, madvise … : the syscall says it all
        mm = self._mm(ev.tid)
        if mm is None:
            return
        # a mapping the kernel made itself: the ELF loader at exec
        lo, hi = start >> PAGE_SHIFT, pages(start + length)
        cls = _classify(name, prot[3] == "s", anonymous=name in ("//anon", "[stack]", "[heap]"))
        self._map(mm, Vma(lo, hi, cls, prot[1] == "w", obj=name if cls == FILE else None,
                          pgoff=0, name=name), fixed=True)
        if cls == UNSUPPORTED:
            self.note(f"unsupported mapping made at exec: {name} (not replayed)")

    def _on_lost(self, ev):
        """perf's ring buffer overflowed: events are missing, the trace is incomplete."""
        nums = [int(x) for x in ev.payload.replace(":", " ").split() if x.isdigit()]
        self.note("events lost by perf (ring buffer overflow): the trace misses them",
                  nums[-1] if nums else 1)

    def _on_fork_rec(self, ev):
        f = rs.fork_fields(ev.payload)
        if f:
            self.forkrec[f[1]] = f[0]

    # --- tracepoints
    def _on_newtask(self, ev):
        kv = rs.kv_fields(ev.payload)
        self.newtask_t[ev.tid] = ev.t_ns
        self.newtask_off[ev.tid] = self.offcpu[ev.tid]
        try:
            self.newtask[int(kv["pid"])] = int(kv["clone_flags"], 16)
        except (KeyError, ValueError):
            self.note("task_newtask events not understood")

    def _on_sched_fork(self, ev):
        kv = rs.kv_fields(ev.payload)
        try:
            parent, child = int(kv["pid"]), int(kv["child_pid"])
        except (KeyError, ValueError):
            self.note("sched_process_fork events not understood")
            return
        ptgid = self.tgid_of.get(parent, ev.pid or parent)
        flags = self.newtask.pop(child, None)
        self.child_flags[child] = flags
        if flags is None:
            self.note("task creations without clone flags (thread vs process from perf's FORK record)")
            is_thread = self.forkrec.get(child, child) == ptgid
            flags = CLONE_THREAD | CLONE_VM if is_thread else 0
        if flags & CLONE_THREAD:
            self.tgid_of[child] = ptgid
            self.note("threads created (share their process's pid)")
            return
        self.tgid_of[child] = child
        pmm = self.procs.get(ptgid)
        if pmm is None:
            return                           # a task outside the recorded program
        if flags & CLONE_VM:
            pmm.users.add(child)
            self.procs[child] = pmm
            self.note("CLONE_VM children (vfork/posix_spawn: run in the parent's mm until exec)")
            return
        self._fork(pmm, child)

    def _fork(self, pmm: Mm, child_tgid: int):
        cpid = self.tb.fork(pmm.pid)
        self.pid_host[cpid] = child_tgid
        self.forks += 1
        cmm = Mm(cpid, pmm.vmas.copy(), set(pmm.resident), {child_tgid}, image=pmm.image, brk=pmm.brk)
        # PTEs Linux copies at fork: private VMAs that have an anon_vma (copy_page_range)
        inh = set()
        for p in pmm.resident:
            v = pmm.vmas.find(p)
            if v is not None and v.anon and v.cls in (ANON, FILE):
                inh.add(p)
        cmm.inherited = inh
        cmm.inherited_n = len(inh)
        # what dup_mmap walks on the host: every VMA; file-backed ones also go into their
        # file's i_mmap tree (vma_interval_tree_insert_after), which anonymous memory
        # (all the replay has) never does
        vs = pmm.vmas.vmas
        self.fork_vmas.append((len(vs), sum(1 for v in vs if v.cls in (FILE, FILE_SHARED)),
                               sum(1 for v in vs if v.anon)))
        cmm.resident = set(inh)          # shared and untouched-private PTEs are not copied
        cmm.zero = pmm.zero & inh
        cmm.host, cmm.t_fork = child_tgid, self.t_now
        self.procs[child_tgid] = cmm

    def _on_sched_exit(self, ev):
        kv = rs.kv_fields(ev.payload)
        try:
            tid = int(kv["pid"])
        except (KeyError, ValueError):
            self.note("sched_process_exit events not understood")
            return
        tgid = self.tgid_of.pop(tid, ev.pid or tid)
        dead = kv.get("group_dead")
        if dead == "true" or (dead is None and tid == tgid):
            self._release(tgid)
            self.exec_marked.discard(tgid)

    def _on_sched_exec(self, ev):
        if ev.pid in self.exec_marked:
            return
        # no PERF_RECORD_COMM exec before it: start the new image here
        self.note("execs seen without perf's exec record (their ELF mappings are unknown)")
        self._on_comm(rs.Event(ev.t_ns, ev.pid, ev.tid, "PERF_RECORD_COMM", "exec: ?:0/0"))

    def _on_kfault(self, ev):
        """The kernel touched user memory on the program's behalf (a read() into a fresh
        buffer …): the same page, the same fault, only taken in kernel mode."""
        f = rs.fault_fields(ev.payload)
        if f is None or f[0] >= 1 << 47:
            return                           # a fault on kernel memory: not the program's
        self.note("faults taken in kernel mode on user memory (replayed like user faults)")
        self._on_fault(ev, f)

    def _on_fault(self, ev, f=None):
        self.fault_kind.pop(ev.tid, None)
        f = f or rs.fault_fields(ev.payload)
        if f is None:
            self.note("page faults not understood (dropped)")
            return
        addr, code = f
        mm = self._mm(ev.tid)
        if mm is None:
            return
        self.nfaults += 1
        self.fault_kind[ev.tid] = ("dropped", "dropped")     # until classified below
        vpn = addr >> PAGE_SHIFT
        if vpn >= VPN_LIMIT:
            self.note("faults above the 48-bit user address space (dropped)")
            return
        v = mm.vmas.find(vpn)
        if v is None:
            v = self._grow_stack(mm, vpn)
            if v is None:
                self.note("faults outside any recorded mapping (dropped)")
                return
        write = bool(code & PF_WRITE)
        if v.cls == UNSUPPORTED:
            self.note("faults in unsupported mappings (dropped)")
            return
        if write and not v.writable:
            self.note("write faults on read-only mappings (SIGSEGV on the host; dropped)")
            return
        host, replay = self._kinds(mm, v, vpn, code)
        self.fault_kind[ev.tid] = (host, replay)
        self.host_kinds[host] += 1
        self.replay_kinds[replay] += 1
        if mm.inherited is not None:
            mm.inherited.discard(vpn)
            mm.own.add(vpn)
        mm.resident.add(vpn)
        if write:
            if v.cls in (ANON, FILE):
                v.anon = True
            self.writes += 1
            self.tb.write(mm.pid, vpn, self.writes)
        else:
            self.tb.read(mm.pid, vpn)

    def _kinds(self, mm: Mm, v: Vma, vpn: int, code: int) -> tuple[str, str]:
        """(kind on the host, kind expected in the replay) of one fault.

        A write to a page mapping the zero page allocates and clears a frame on
        the host (wp_page_copy of the zero pfn): zero_fill, not a copy."""
        write, present = code & PF_WRITE, code & PF_PROT
        if v.cls not in SHARED_CLASSES:
            was_zero = vpn in mm.zero
            if write:
                mm.zero.discard(vpn)
            elif not present:
                mm.zero.add(vpn)      # anon: the zero page; file: the replay's zero page
            if present and write and was_zero:
                return ("zero_fill" if v.cls == ANON else "cow"), "zero_fill"
            if present and write and v.cls == FILE and vpn not in mm.resident:
                # mapped by the host's fault-around, never by a fault of its own: the
                # replay's first touch of it is this write
                return "cow", "zero_fill"

        if v.cls in SHARED_CLASSES:
            idx = v.pgoff + vpn - v.start
            fresh = (v.obj, idx) not in self.shared_touched
            self.shared_touched.add((v.obj, idx))
            mfresh = (v.mobj, idx) not in self.shared_touched
            self.shared_touched.add((v.mobj, idx))
        if present:
            if not write:
                return "present_read", "none"
            k = "wp_shared" if v.cls in SHARED_CLASSES else "cow"
            return k, k
        if v.cls == ANON:
            k = "zero_fill" if write else "zero_page"
            return k, k
        if v.cls == ANON_SHARED:
            return ("zero_fill" if fresh else "minor"), ("zero_fill" if mfresh else "minor")
        if v.cls == FILE_SHARED:
            return "minor", ("zero_fill" if mfresh else "minor")
        if v.cls == FILE:
            self.note("file_private_first_reads" if not write else "file_private_first_writes")
            if not write:
                self.note("file_private_read_neighbours", fault_around_neighbours(mm, v, vpn))
            return ("cow" if write else "minor"), ("zero_fill" if write else "zero_page")
        return "minor", "zero_page"            # [vdso] / [vvar]

    # --- fault timing: begin (do_user_addr_fault) and end (mm_account_fault) of one thread
    def _on_fault_begin(self, ev):
        """The fault handler started the fault the tracepoint just announced (the
        tracepoint fires first, in the same thread)."""
        if ev.tid in self.fault_open:
            self.note("fault timings without an end (failed faults: not timed)")
        kinds = self.fault_kind.pop(ev.tid, None)
        if kinds is None:
            self.fault_open.pop(ev.tid, None)       # not a fault of the program's picture
            return
        self.fault_open[ev.tid] = (ev.t_ns, kinds, self.offcpu[ev.tid])

    def _on_fault_end(self, ev):
        o = self.fault_open.pop(ev.tid, None)
        if o is None:
            return
        ns = ev.t_ns - o[0] - (self.offcpu[ev.tid] - o[2])
        host, replay = o[1]
        self.fault_n[replay] += 1
        self.fault_ns[replay] += ns
        self.fault_n_host[host] += 1
        self.fault_ns_host[host] += ns
        self.fault_windows.setdefault(replay, []).append(ns)
        self.fault_windows_host.setdefault(host, []).append(ns)

    def _on_switch(self, ev):
        """perf's context-switch record of a traced thread (OUT, then IN when it runs again)."""
        if ev.payload.startswith("OUT"):
            self.out_since[ev.tid] = ev.t_ns
        elif ev.payload.startswith("IN"):
            t = self.out_since.pop(ev.tid, None)
            if t is not None and ev.t_ns >= t:
                self.offcpu[ev.tid] += ev.t_ns - t

    def _on_fault_end_major(self, ev):
        self.note("major faults (waited for I/O: timed, no design models them)")
        self._on_fault_end(ev)

    def _fault_time(self) -> dict | None:
        """What the host's fault events measured, or None without them (an older
        recording, or a perf that lacks the software events)."""
        n = sum(self.fault_n.values())
        if not n:
            return None
        med = {k: int(sorted(w)[len(w) // 2]) for k, w in self.fault_windows.items()}
        hmed = {k: int(sorted(w)[len(w) // 2]) for k, w in self.fault_windows_host.items()}
        return {"timed": n, "ns": int(sum(self.fault_ns.values())),
                "n_by_replay_kind": dict(self.fault_n), "ns_by_replay_kind": dict(self.fault_ns),
                "median_ns_by_replay_kind": med,
                "n_by_kind": dict(self.fault_n_host), "ns_by_kind": dict(self.fault_ns_host),
                "median_ns_by_kind": hmed,
                "window": "do_user_addr_fault (page-faults event) to the end of handle_mm_fault "
                          "(minor-faults event), per thread, less the time switched out"}

    def _grow_stack(self, mm: Mm, vpn: int) -> Vma | None:
        """A fault just below [stack]: the kernel grows the stack (expand_downwards)."""
        i = bisect.bisect_right(mm.vmas.starts, vpn)
        if i >= len(mm.vmas.vmas):
            return None
        s = mm.vmas.vmas[i]
        if s.name != "[stack]" or s.start - vpn > STACK_GROWTH_PAGES:
            return None
        prev = mm.vmas.vmas[i - 1] if i > 0 else None
        if prev is not None and prev.end > vpn:
            return None
        self.note("stack growth below [stack] (replayed as a mapping of the growth)")
        g = Vma(vpn, s.start, ANON, True, name="[stack]")
        self._map(mm, g)
        return g

    # --- fork's dup_mmap (mmap_lock write-lock events, record_stream.FILTERS)
    _FORKS = ("clone", "clone3", "fork", "vfork")

    def _on_lock_acquired(self, ev):
        p = self.pending.get(ev.tid)
        if p is None or p[0] not in self._FORKS or ev.tid in self.dup_open \
                or ev.tid in self.dup_done:
            return                  # not in a fork, or dup_mmap's first lock already seen
        self.dup_open[ev.tid] = (_lock_mm(ev.payload), ev.t_ns, self.offcpu[ev.tid])

    def _on_lock_released(self, ev):
        o = self.dup_open.get(ev.tid)
        if o is None or _lock_mm(ev.payload) != o[0]:
            return                  # the child's mm (locked nested inside) or not a fork
        del self.dup_open[ev.tid]
        self.dup_done[ev.tid] = ev.t_ns - o[1] - max(0, self.offcpu[ev.tid] - o[2])

    # --- system calls
    def _sys_exit(self, ev):
        name = ev.name[9:]
        p = self.pending.pop(ev.tid, None)
        if p is None or p[0] != name:
            if name in ("clone", "clone3", "fork", "vfork") and (rs.retval(ev.payload) == 0):
                return                        # the child's return: nothing to do
            if name in ("execve", "execveat"):
                return                        # a successful exec: handled at perf's exec record
            self.note("system call exits without their entry (ignored)")
            return
        ret = rs.retval(ev.payload)
        if ret is None:
            self.note("system call exits not understood (ignored)")
            return
        if name in ("clone", "clone3", "fork", "vfork"):
            # a process fork's own time; a CLONE_VM parent waits for its child's exec
            flags = self.child_flags.pop(ret, None) if ret > 0 else None
            dup = self.dup_done.pop(ev.tid, None)
            self.dup_open.pop(ev.tid, None)
            if flags is not None and not flags & (CLONE_THREAD | CLONE_VM) and dup is not None:
                self.dup_ns.append(dup)
            if flags is not None and not flags & (CLONE_THREAD | CLONE_VM):
                self.fork_ns.append(ev.t_ns - p[2] - max(0, self.offcpu[ev.tid]
                                                         - self.fork_off.get(ev.tid, 0)))
                t_new = self.newtask_t.get(ev.tid, 0)
                if p[2] <= t_new <= ev.t_ns:
                    off = self.newtask_off.get(ev.tid, 0) - self.fork_off.get(ev.tid, 0)
                    self.copy_ns.append(t_new - p[2] - max(0, off))
            return
        if -4096 < ret < 0:
            self.note(f"failed {name} calls (nothing changed)")
            return
        mm = self._mm(ev.tid)
        if mm is None:
            return
        fn = getattr(self, f"_sys_{name}", None)
        if fn is not None:
            fn(mm, p[1], ret, p[3])
        elif name in ("userfaultfd", "io_uring_setup"):
            self.note(f"unsupported: {name} used (its effect on memory is not replayed)")

    def _sys_mmap(self, mm, a, ret, info):
        lo, n = ret >> PAGE_SHIFT, pages(a.get("len", 0))
        flags, prot, fd = a.get("flags", 0), a.get("prot", 0), a.get("fd", 0xffffffff)
        shared = flags & 0x3 in (MAP_SHARED, MAP_SHARED_VALIDATE)
        anonymous = bool(flags & MAP_ANONYMOUS) or fd in (0xffffffff, (1 << 64) - 1)
        name = info[3] if info else ("//anon" if anonymous else "?file")
        if flags & MAP_HUGETLB:
            self.note("MAP_HUGETLB mappings (replayed as 4 KiB pages)")
        cls = _classify(name, shared, anonymous)
        if cls == UNSUPPORTED:
            self.note(f"unsupported: mmap of {name} (not replayed)")
        obj = self._new_obj() if cls == ANON_SHARED and not name.startswith(("/memfd:", "/SYSV")) \
            else (name if cls != ANON else None)
        pgoff = (a.get("off", 0) >> PAGE_SHIFT) if cls in (FILE, FILE_SHARED) else 0
        v = Vma(lo, lo + n, cls, bool(prot & PROT_WRITE), obj=obj, pgoff=pgoff, name=name)
        self._map(mm, v, fixed=bool(flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)))
        if flags & MAP_POPULATE and cls != UNSUPPORTED:
            self._populate(mm, v)

    def _populate(self, mm, v: Vma):
        """MAP_POPULATE: the kernel faulted every page in without a fault event."""
        write = v.writable and v.cls not in SHARED_CLASSES
        self.note("pages pre-faulted by MAP_POPULATE (replayed as touches)", v.end - v.start)
        for p in range(v.start, v.end):
            code = PF_USER | (PF_WRITE if write else 0)
            host, replay = self._kinds(mm, v, p, code)
            mm.resident.add(p)
            if write:
                v.anon = v.anon or v.cls in (ANON, FILE)
                self.writes += 1
                self.tb.write(mm.pid, p, self.writes)
            else:
                self.tb.read(mm.pid, p)

    def _sys_shmat(self, mm, a, ret, info):
        if info is None:
            self.note("shmat without its mapping record (not replayed)")
            return
        start, length, prot, name = info
        self._map(mm, Vma(ret >> PAGE_SHIFT, pages(ret + length), FILE_SHARED, prot[1] == "w",
                          obj=name, name=name))

    def _sys_shmdt(self, mm, a, ret, info):
        v = mm.vmas.find(a.get("shmaddr", 0) >> PAGE_SHIFT)
        if v is not None:
            self._unmap(mm, v.start, v.end)

    def _sys_munmap(self, mm, a, ret, info):
        lo = a.get("addr", 0) >> PAGE_SHIFT
        self._unmap(mm, lo, lo + pages(a.get("len", 0)))

    def _sys_mprotect(self, mm, a, ret, info):
        lo = a.get("start", 0) >> PAGE_SHIFT
        hi = lo + pages(a.get("len", 0))
        w = bool(a.get("prot", 0) & PROT_WRITE)
        if not any(v.writable != w for v in mm.vmas.overlapping(lo, hi)):
            return
        for v in mm.vmas.carve(lo, hi):
            if v.writable != w:
                v.writable = w
                if v.cls != UNSUPPORTED:
                    self.tb.mprotect(mm.pid, v.start, v.end - v.start, w)

    def _sys_madvise(self, mm, a, ret, info):
        lo = a.get("start", 0) >> PAGE_SHIFT
        hi = lo + pages(a.get("len_in", a.get("len", 0)))
        adv = MADV.get(a.get("behavior", -1), str(a.get("behavior", "?")))
        if adv in ("DONTNEED", "REMOVE"):
            for v in mm.vmas.carve(lo, hi):
                if v.cls != UNSUPPORTED:
                    self.tb.madvise_dontneed(mm.pid, v.start, v.end - v.start)
                if v.cls in SHARED_CLASSES and adv == "REMOVE":
                    for p in range(v.start, v.end):
                        self.shared_touched.discard((v.obj, v.pgoff + p - v.start))
            self._drop_resident(mm, lo, hi)
            return
        what = {"HUGEPAGE": "counted, not replayed: no HUGEPAGE op yet",
                "NOHUGEPAGE": "counted, not replayed: no HUGEPAGE op yet",
                "FREE": "not replayed: without memory pressure the pages stay"}.get(adv, "not replayed")
        self.note(f"madvise {adv} calls ({what})")
        self.note(f"madvise {adv} pages", hi - lo)

    def _sys_brk(self, mm, a, ret, info):
        new = pages(ret)
        if mm.brk is None:
            if a.get("brk", 0) == 0 or info is None:
                mm.brk = new
                return
            mm.brk = info[0] >> PAGE_SHIFT     # the first call already moved it
        if new > mm.brk:
            self._map(mm, Vma(mm.brk, new, ANON, True, name="[heap]"))
        elif new < mm.brk:
            self._unmap(mm, new, mm.brk)
        mm.brk = new

    def _sys_mremap(self, mm, a, ret, info):
        old, on = a.get("addr", 0) >> PAGE_SHIFT, pages(a.get("old_len", 0))
        nn, new = pages(a.get("new_len", 0)), ret >> PAGE_SHIFT
        flags = a.get("flags", 0)
        src = mm.vmas.overlapping(old, old + max(on, 1))
        if not src:
            self.note("mremap of a range the converter does not hold (ignored)")
            return
        if on == 0 or flags & MREMAP_DONTUNMAP:
            self.note("mremap duplicating a mapping (old_len 0 or DONTUNMAP): new range mapped fresh")
            t = src[0]
            self._map(mm, dataclasses.replace(t, start=new, end=new + nn, anon=False), fixed=True)
            return
        if new == old:
            if nn > on:
                t = src[-1]
                self._map(mm, Vma(old + on, old + nn, t.cls, t.writable, obj=t.obj,
                                  pgoff=t.pgoff + (old + on - t.start), name=t.name, anon=t.anon))
            elif nn < on:
                self._unmap(mm, old + nn, old + on)
            return
        keep = min(on, nn)
        if on > nn:
            self._unmap(mm, old + nn, old + on)
        if not mm.vmas.free(new, new + nn):   # MREMAP_FIXED replaces what was there
            self._unmap(mm, new, new + nn)
        moved = mm.vmas.remove(old, old + keep)
        covered = sum(v.end - v.start for v in moved)
        delta = new - old
        for v in moved:
            mm.vmas.insert(dataclasses.replace(v, start=v.start + delta, end=v.end + delta))
        for name in ("resident", "zero"):
            st = getattr(mm, name)
            res = {p for p in st if old <= p < old + keep}
            st -= res
            st |= {p + delta for p in res}
        if covered == keep and all(v.cls != UNSUPPORTED for v in moved):
            self.tb.mremap(mm.pid, old, keep, new)
        else:
            self.note("mremap of a range not wholly mapped in the replay (replayed as unmap + map)")
            for v in moved:
                if v.cls != UNSUPPORTED:
                    self.tb.munmap(mm.pid, v.start, v.end - v.start)
                    self.tb.mmap(mm.pid, v.start + delta, v.end - v.start,
                                 shared=v.cls in SHARED_CLASSES, writable=v.writable)
        if nn > on:
            t = moved[-1] if moved else src[-1]
            self._map(mm, Vma(new + on, new + nn, t.cls, t.writable, obj=t.obj,
                              pgoff=t.pgoff + (t.end - t.start), name=t.name, anon=t.anon))

    _HANDLERS = {
        "PERF_RECORD_COMM": _on_comm,
        "PERF_RECORD_MMAP2": _on_mmap2,
        "PERF_RECORD_FORK": _on_fork_rec,
        "PERF_RECORD_SWITCH": _on_switch,
        "task_newtask": _on_newtask,
        "mmap_lock_acquire_returned": _on_lock_acquired,
        "mmap_lock_released": _on_lock_released,
        "sched_process_fork": _on_sched_fork,
        "sched_process_exit": _on_sched_exit,
        "sched_process_exec": _on_sched_exec,
        "page_fault_user": _on_fault,
        "page_fault_kernel": _on_kfault,
        "fault_begin": _on_fault_begin,
        "fault_end": _on_fault_end,
        "fault_end_major": _on_fault_end_major,
    }

    # ------------------------------------------------------------- the end
    def finish(self) -> "Recording":
        alive = {id(mm): mm for mm in self.procs.values()}
        for mm in alive.values():
            self._retire(mm)
        if alive:
            self.note("processes still alive when the recording ended (left alive in the trace)",
                      len(alive))
        if self.pending:
            self.note("system calls without their exit at the end of the stream (ignored)",
                      len(self.pending))
        if self.fault_open:
            self.note("fault timings without an end (failed faults: not timed)", len(self.fault_open))
        trace = self.tb.build()
        if not len(trace):
            raise errors.InvalidArgument("the perf stream holds no exec of a recorded program: "
                                         "nothing to convert")
        dur = (self.t_last - self.t_first) / 1e9 if self.t_first is not None else 0.0
        return Recording(
            trace=trace,
            notes=dict(self.notes),
            host={"faults": self.nfaults,
                  "faults_by_kind": dict(self.host_kinds),
                  "faults_by_replay_kind": dict(self.replay_kinds),
                  "process_forks": len(self.fork_ns),
                  "fork_syscall_ns": int(sum(self.fork_ns)),
                  "fork_copy_ns": int(sum(self.copy_ns)),
                  "fork_copy_windows_ns": [int(x) for x in self.copy_ns],
                  **({"fork_dup_mmap_windows_ns": [int(x) for x in self.dup_ns]}
                     if self.dup_ns else {}),
                  **({"fork_vmas": [list(x) for x in self.fork_vmas]} if self.fork_vmas else {}),
                  **({"fault_time": ft} if (ft := self._fault_time()) else {}),
                  "stream_duration_s": round(dur, 6),
                  "images": self.images,
                  "pid_map": {str(k): v for k, v in self.pid_host.items()}},
            bias=self._bias())

    def _bias(self) -> dict:
        b = {"forks": self.forks, "inherited_pages": self.inherited_total,
             "inherited_unfaulted": self.inherited_unfaulted}
        if self.access is not None:
            b.update(reads_added=self.reads_added, children_sampled=self.children_sampled,
                     children_unsampled=self.children_unsampled,
                     unsampled_unfaulted=self.unsampled_unfaulted,
                     reduced_by="the children's accessed bits (smaps Referenced, sampled every "
                                "millisecond): reads added where they touched inherited pages without "
                                "a fault")
        return b


def _classify(name: str, shared: bool, anonymous: bool) -> str:
    if anonymous or name in ("//anon", "[heap]", "[stack]"):
        return ANON_SHARED if shared else ANON
    if name.startswith("/dev/zero"):
        return ANON_SHARED if shared else ANON
    if name in ("[vdso]", "[vvar]", "[vvar_vclock]", "[vsyscall]", "[uprobes]"):
        return SPECIAL
    if name.startswith(("/memfd:", "/SYSV", "/dev/shm/")):     # tmpfs files: shared memory
        return FILE_SHARED if shared else FILE
    if name.startswith("/dev/") or name.startswith("anon_inode:") or "io_uring" in name:
        return UNSUPPORTED
    return FILE_SHARED if shared else FILE


@dataclasses.dataclass
class Recording:
    """What a conversion produced: the trace, the counted notes, what the host did,
    and the numbers behind the bias statement."""
    trace: np.ndarray
    notes: dict
    host: dict
    bias: dict


def convert(lines: Iterable[str], access: dict | None = None) -> Recording:
    """Convert ``perf script`` text (PERF_SCRIPT_ARGS) to a Recording.

    Raises InvalidArgument with one sentence when the stream is not a perf
    stream of a recorded program (nothing parses, or no exec in it)."""
    stats: dict = {}
    conv = Converter(access)
    conv.feed(rs.parse(lines, stats))
    if stats.get("lines", 0) == 0:
        raise errors.InvalidArgument("the perf stream is empty")
    if stats["unparsed"] == stats["lines"]:
        raise errors.InvalidArgument(
            f"not a perf script stream (first line: {stats['first_unparsed']!r})")
    if stats["unparsed"]:
        conv.note("stream lines not understood (corrupt or truncated stream; ignored)",
                  stats["unparsed"])
    return conv.finish()
