"""The perf stream: which tracepoints `mmbench record` asks for, and how their text is read.

`mmbench record` runs the program under ``perf record`` with the tracepoints
in EVENTS, then turns the binary ``perf.data`` into text with ``perf script``
(PERF_SCRIPT_ARGS) and reads that text line by line here.  One line is one
event::

    13741/13741  1583.590553812:       syscalls:sys_enter_mmap: addr: 0x0, len: 0x2000, …
    ^pid  ^tid   ^time (s, ns resolution)  ^event name          ^payload

plus the software fault events of TIMING_EVENTS, which carry no payload and are
named here ``fault_begin`` / ``fault_end`` / ``fault_end_major``::

    13741/13741  1583.590553990:       page-faults/period=1/:

plus perf's own side-band records, which perf writes whatever events were
asked for and which carry what no tracepoint does:

* ``PERF_RECORD_COMM exec`` marks an execve that succeeded (the new image
  starts here, before any of its mappings);
* ``PERF_RECORD_MMAP2`` names every mapping the kernel creates — those the
  ELF loader makes at exec (text, data, bss, stack, vdso), which no system
  call shows, and those made by mmap, with file name and private/shared bit;
* ``PERF_RECORD_FORK`` / ``PERF_RECORD_EXIT`` (pid:tid pairs);
* ``PERF_RECORD_SWITCH OUT`` / ``IN`` (``perf record --switch-events``): a traced
  thread left / regained its CPU, so the converter can take the time a thread spent
  preempted out of a fault's or a fork's window.

`parse_line` returns an :class:`Event` or None for a line that is not one;
the converter counts those and refuses a stream in which nothing parses.
"""
from __future__ import annotations

import re
from typing import Iterable, Iterator, NamedTuple

#: system calls traced, entry and exit (exit carries the return value)
SYSCALLS = ("mmap", "munmap", "mprotect", "mremap", "brk", "madvise",
            "clone", "clone3", "fork", "vfork", "execve", "execveat", "exit_group",
            # not replayable: recorded so that their use is counted, never silently lost
            "userfaultfd", "io_uring_setup", "shmat", "shmdt")

#: tracepoints besides the system calls
OTHER_EVENTS = ("exceptions:page_fault_user",      # address and error code of every user fault
                "exceptions:page_fault_kernel",    # the kernel touching user memory for the
                                                   #  program (read(), copy_to_user …)
                "sched:sched_process_fork",        # a task was created (parent tid, child tid)
                "sched:sched_process_exec",
                "sched:sched_process_exit",        # a task ended (group_dead: its process too)
                "task:task_newtask",               # the clone flags of the new task
                "mmap_lock:mmap_lock_acquire_returned",   # write-locks only (FILTERS): fork's
                "mmap_lock:mmap_lock_released")           #  dup_mmap holds the parent's mmap
                                                   #  lock from its start to its end

#: tracepoint filters (``perf record --filter``, applied to the event just before it):
#: only write-locks of the mmap lock.  dup_mmap write-locks the parent's mm for all of its
#: work (every VMA, anon_vma_fork, copy_page_range, the TLB flush), so the parent's
#: acquire → release of that lock, inside a fork system call, times the address-space
#: part of fork with none of perf's own work in it (perf inherits its events into the
#: child in perf_event_init_task, outside dup_mmap).  Read-locks (page faults that fall
#: back from the per-VMA lock, /proc readers) are not wanted.
FILTERS = {"mmap_lock:mmap_lock_acquire_returned": "write == 1",
           "mmap_lock:mmap_lock_released": "write == 1"}


#: perf's software fault events, one sample per fault: they time each fault.  The kernel
#: counts ``page-faults`` at the start of the x86 fault handler (do_user_addr_fault, just
#: before the VMA lookup) and ``minor-faults``/``major-faults`` in mm_account_fault, at the
#: end of handle_mm_fault once the fault is handled — so the two timestamps of one thread
#: bracket the fault's handling (VMA lookup, handle_mm_fault).  GUP faults (no user
#: registers) emit neither; a fault that fails (SIGSEGV) emits no end.
TIMING_EVENTS = ("page-faults/period=1/", "minor-faults/period=1/", "major-faults/period=1/")
#: the names ``perf script`` prints for them, and what the converter calls them
_TIMING_NAMES = {"page-faults": "fault_begin", "faults": "fault_begin",
                 "minor-faults": "fault_end", "major-faults": "fault_end_major"}


def events() -> list[str]:
    """Every tracepoint `mmbench record` enables."""
    out = []
    for s in SYSCALLS:
        out += [f"syscalls:sys_enter_{s}", f"syscalls:sys_exit_{s}"]
    return out + list(OTHER_EVENTS)


#: ``perf script`` arguments giving one parseable line per event
PERF_SCRIPT_ARGS = ("--ns", "--show-task-events", "--show-mmap-events", "--show-lost-events",
                    "--show-switch-events",
                    "-F", "pid,tid,time,event,trace")


class Event(NamedTuple):
    t_ns: int        # timestamp, ns
    pid: int         # host process (thread group) id; 0 for perf's synthetic records
    tid: int         # host thread id
    name: str        # "sys_enter_mmap", "page_fault_user", "PERF_RECORD_MMAP2", …
    payload: str     # the rest of the line, parsed by the converter per event


_SYS = "syscalls:"


def parse_line(line: str) -> Event | None:
    """One line of ``perf script`` output as an Event, or None if it is not one."""
    head, sep, rest = line.partition(": ")
    if not sep:
        return None
    parts = head.split()
    if len(parts) != 2:
        return None
    ids, ts = parts
    p, slash, t = ids.partition("/")
    try:
        pid, tid = int(p), int(t)
        sec, dot, frac = ts.partition(".")
        t_ns = int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])
    except ValueError:
        return None
    if not slash:
        return None
    rest = rest.lstrip()
    if rest.startswith("PERF_RECORD_"):
        name, _, payload = rest.partition(" ")
        if "(" in name:                    # PERF_RECORD_FORK(13760:13760):(13741:13741)
            name, _, payload = name.partition("(")
            payload = "(" + payload
        return Event(t_ns, pid, tid, name.rstrip(":"), payload)
    name, sep, payload = rest.partition(": ")
    if not sep:                             # an event with an empty payload
        name, payload = rest.rstrip(":").strip(), ""
    if ":" not in name:
        timing = _TIMING_NAMES.get(name.split("/", 1)[0])
        return None if timing is None else Event(t_ns, pid, tid, timing, "")
    return Event(t_ns, pid, tid, name.split(":", 1)[1], payload)


def parse(lines: Iterable[str], stats: dict | None = None) -> Iterator[Event]:
    """Events of a stream; `stats` (if given) counts "lines", "unparsed" and keeps the
    first unparsed line in "first_unparsed"."""
    n = bad = 0
    first = None
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            continue
        n += 1
        ev = parse_line(line)
        if ev is None:
            bad += 1
            if first is None:
                first = line[:120]
            continue
        yield ev
    if stats is not None:
        stats.update(lines=n, unparsed=bad, first_unparsed=first)


# ----------------------------------------------------------------- payloads
def hexfields(payload: str) -> dict[str, int]:
    """``addr: 0x0, len: 0x2000, prot: 0x3`` (a sys_enter_* payload) → {"addr": 0, …}."""
    out = {}
    for item in payload.split(","):
        k, sep, v = item.partition(": ")
        if not sep:
            continue
        try:
            out[k.strip()] = int(v.strip(), 16)
        except ValueError:
            continue
    return out


def fault_fields(payload: str) -> tuple[int, int] | None:
    """(address, error_code) of a page_fault_user payload (fast path)."""
    a = payload.find("address=")
    e = payload.find("error_code=")
    if a < 0 or e < 0:
        return None
    try:
        addr = int(payload[a + 8:payload.index(" ", a)], 16)
        code = int(payload[e + 11:].split()[0], 16)
    except ValueError:
        return None
    return addr, code


def retval(payload: str) -> int | None:
    """The return value of a sys_exit_* event as a signed integer."""
    try:
        v = int(payload.strip(), 16)
    except ValueError:
        return None
    return v - (1 << 64) if v >= 1 << 63 else v


_MMAP2 = re.compile(r"^\s*(\d+)/(\d+): \[(0x[0-9a-f]+)\((0x[0-9a-f]+)\) @ (\S+) [^\]]*\]: ([rwxp\-s]{4}) ?(.*)$")


def mmap2_fields(payload: str):
    """(pid, start, length, prot "rwxp", name) of a PERF_RECORD_MMAP2 payload, or None."""
    m = _MMAP2.match(payload)
    if not m:
        return None
    return int(m.group(1)), int(m.group(3), 16), int(m.group(4), 16), m.group(6), m.group(7).strip()


_FORK = re.compile(r"^\((\d+):(\d+)\):\((\d+):(\d+)\)")


def fork_fields(payload: str):
    """(child_pid, child_tid, parent_pid, parent_tid) of PERF_RECORD_FORK / _EXIT."""
    m = _FORK.match(payload.strip())
    return None if not m else tuple(int(x) for x in m.groups())


def kv_fields(payload: str) -> dict[str, str]:
    """``pid=13760 comm=bash clone_flags=1200000`` → {"pid": "13760", …} (comm may hold spaces)."""
    out = {}
    for m in re.finditer(r"(\w+)=(\S*)", payload):
        out[m.group(1)] = m.group(2)
    return out
