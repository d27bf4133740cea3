"""The perf-stream converter on captured perf output (tests/fixtures/record/).

``tiny.perf.txt`` is ``perf script`` text of tests/fixtures/record/tiny.c
recorded on this host with ``mmbench record --keep-stream``: private and
shared anonymous mappings, mprotect, mremap (moving), madvise DONTNEED and
HUGEPAGE, brk growth and shrink, a fork whose child writes, reads and
exits, a vfork + exec of /bin/true, munmap.  The bad inputs of issue 14
(truncated or corrupt streams, device files, userfaultfd, io_uring) are made
from it by editing lines.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import mmbench
from mmbench import errors
from mmbench import record_convert as rc
from mmbench import record_stream as rs
from mmbench.trace import Op, validate_trace

FIX = Path(__file__).parent / "fixtures" / "record"
DESIGNS = [b for b in mmbench.backends() if b != "reference"]


def lines():
    return FIX.joinpath("tiny.perf.txt").read_text().splitlines(keepends=True)


@pytest.fixture(scope="module")
def tiny():
    return rc.convert(lines())


# ----------------------------------------------------------------- the stream
def test_parse_line_kinds():
    ev = rs.parse_line("24279/24279  2069.521688553: PERF_RECORD_MMAP2 24279/24279: "
                       "[0x7ffcef4c2000(0x21000) @ 0x7ffffffde000 00:00 0 0]: rw-p [stack]")
    assert ev.name == "PERF_RECORD_MMAP2" and ev.pid == 24279 and ev.t_ns == 2069521688553
    assert rs.mmap2_fields(ev.payload) == (24279, 0x7ffcef4c2000, 0x21000, "rw-p", "[stack]")
    ev = rs.parse_line("7/8  1.5:  exceptions:page_fault_user: address=0x7f00 ip=0x1 error_code=0x6")
    assert (ev.pid, ev.tid, ev.t_ns, ev.name) == (7, 8, 1_500_000_000, "page_fault_user")
    assert rs.fault_fields(ev.payload) == (0x7f00, 6)
    ev = rs.parse_line("1/1 2.0: syscalls:sys_enter_mmap: addr: 0x0, len: 0x2000, prot: 0x3, "
                       "flags: 0x22, fd: 0xffffffff, off: 0x0")
    assert rs.hexfields(ev.payload) == {"addr": 0, "len": 0x2000, "prot": 3, "flags": 0x22,
                                        "fd": 0xffffffff, "off": 0}
    ev = rs.parse_line("5/5 3.0: PERF_RECORD_FORK(6:6):(5:5)")
    assert ev.name == "PERF_RECORD_FORK" and rs.fork_fields(ev.payload) == (6, 6, 5, 5)
    assert rs.retval("0xfffffffffffffffe") == -2
    for bad in ("", "garbage", "x/y 1.0: foo: bar", "12 1.0: syscalls:sys_enter_brk: brk: 0x0"):
        assert rs.parse_line(bad) is None


def test_events_cover_the_issue():
    ev = rs.events()
    for s in ("mmap", "munmap", "mprotect", "mremap", "brk", "madvise", "clone", "clone3",
              "fork", "vfork", "execve", "exit_group"):
        assert f"syscalls:sys_enter_{s}" in ev and f"syscalls:sys_exit_{s}" in ev
    for e in ("exceptions:page_fault_user", "sched:sched_process_fork", "sched:sched_process_exit"):
        assert e in ev


# ----------------------------------------------------------------- the conversion
def test_tiny_trace_shape(tiny):
    t = validate_trace(tiny.trace)
    ops = np.bincount(t["op"], minlength=len(Op))
    assert ops[Op.SPAWN] == 2                  # ./tiny, then /bin/true exec'd by the vfork child
    assert ops[Op.FORK] == 1                   # the fork; the vfork child shares its parent's mm
    assert ops[Op.EXIT] == 3                   # the child, true, tiny
    assert ops[Op.MREMAP] >= 1 and ops[Op.MADVISE_DONTNEED] >= 1 and ops[Op.MPROTECT] >= 1
    assert ops[Op.WRITE] > 64 and ops[Op.READ] > 0
    # the shared mapping is shared in the trace, at its recorded address
    mm = t[(t["op"] == Op.MMAP) & (t["arg"] & 1 == 1) & (t["npages"] == 16)]
    assert len(mm) >= 1
    assert int(mm["vpn"][0]) > 0x5000000       # address layout preserved (an mmap area vpn)
    # every pid in the trace is a process of tiny; first is pid 1
    assert t["pid"][t["op"] != Op.SPAWN].min() == 1


def test_tiny_notes_and_host_counts(tiny):
    n = tiny.notes
    assert n["madvise HUGEPAGE calls (counted, not replayed: no HUGEPAGE op yet)"] == 1
    assert n["madvise HUGEPAGE pages"] == 16
    assert n["CLONE_VM children (vfork/posix_spawn: run in the parent's mm until exec)"] == 1
    h = tiny.host
    assert h["faults"] == sum(h["faults_by_kind"].values()) + sum(
        v for k, v in n.items() if "(dropped)" in k)
    assert h["process_forks"] == 1 and h["fork_syscall_ns"] > 0
    assert tiny.bias["forks"] == 1 and 0 <= tiny.bias["inherited_unfaulted"] <= tiny.bias["inherited_pages"]


@pytest.mark.parametrize("design", DESIGNS)
def test_tiny_replays_everywhere(tiny, design):
    m = mmbench.open(design, ram_pages=1 << 16)
    out = m.replay(tiny.trace, timing=False, frame=False)
    assert not out["status"].any(), "every op of a recorded trace must succeed"
    m.check()
    assert m.counters()["faults"] > 0


def test_linux_reproduces_the_replay_kinds(tiny):
    m = mmbench.open("linux", ram_pages=1 << 16)
    m.replay(tiny.trace, timing=False, frame=False)
    c = m.counters()
    rk = tiny.host["faults_by_replay_kind"]
    assert c["faults"] == sum(rk.values())
    assert c["fault_zero_page"] == rk.get("zero_page", 0)
    assert c["fault_zero_fill"] == rk.get("zero_fill", 0)
    assert c["fault_cow_copy"] + c["fault_cow_reuse"] == rk.get("cow", 0)


def test_mapping_choices_on_a_small_stream():
    """A hand-written stream: exec, a private file mapping, a shared file mapping, a fault
    in each; file-private first reads are counted as page-cache hits on the host."""
    s = """\
10/10 1.000000000: PERF_RECORD_COMM exec: prog:10/10
10/10 1.000000100: PERF_RECORD_MMAP2 10/10: [0x400000(0x2000) @ 0 fe:00 1 0]: r-xp /bin/prog
10/10 1.000000200: syscalls:sys_enter_mmap: addr: 0x0, len: 0x4000, prot: 0x1, flags: 0x2, fd: 0x3, off: 0x0
10/10 1.000000300: PERF_RECORD_MMAP2 10/10: [0x7f0000000000(0x4000) @ 0 fe:00 2 0]: r--p /usr/lib/data
10/10 1.000000400: syscalls:sys_exit_mmap: 0x7f0000000000
10/10 1.000000500: syscalls:sys_enter_mmap: addr: 0x0, len: 0x2000, prot: 0x3, flags: 0x1, fd: 0x4, off: 0x0
10/10 1.000000600: PERF_RECORD_MMAP2 10/10: [0x7f0000010000(0x2000) @ 0 fe:00 3 0]: rw-s /tmp/file
10/10 1.000000700: syscalls:sys_exit_mmap: 0x7f0000010000
10/10 1.000000800: exceptions:page_fault_user: address=0x400010 ip=0x400010 error_code=0x14
10/10 1.000000900: exceptions:page_fault_user: address=0x7f0000001000 ip=0x400010 error_code=0x4
10/10 1.000001000: exceptions:page_fault_user: address=0x7f0000010000 ip=0x400010 error_code=0x6
10/10 1.000001100: exceptions:page_fault_user: address=0x7f0000001008 ip=0x400010 error_code=0x6
10/10 1.000001200: sched:sched_process_exit: comm=prog pid=10 prio=120 group_dead=true
"""
    r = rc.convert(s.splitlines())
    t = r.trace
    assert [Op(o).name for o in t["op"]] == ["SPAWN", "MMAP", "MMAP", "MMAP", "READ", "READ",
                                              "WRITE", "EXIT"]
    assert t["arg"][3] == 3                   # shared file, writable -> shared mapping
    assert t["arg"][2] == 0                   # private read-only file mapping
    # the write to a read-only private mapping is what the host answered with SIGSEGV
    assert r.notes["write faults on read-only mappings (SIGSEGV on the host; dropped)"] == 1
    assert r.host["faults_by_kind"] == {"minor": 3}
    assert r.host["faults_by_replay_kind"] == {"zero_page": 2, "zero_fill": 1}
    assert r.notes["file_private_first_reads"] == 2


def test_threads_share_a_pid_and_clone_vm_children_no_fork():
    s = """\
10/10 1.0: PERF_RECORD_COMM exec: prog:10/10
10/10 1.1: syscalls:sys_enter_mmap: addr: 0x0, len: 0x1000, prot: 0x3, flags: 0x22, fd: 0xffffffff, off: 0x0
10/10 1.2: syscalls:sys_exit_mmap: 0x7f0000000000
10/10 1.3: task:task_newtask: pid=11 comm=prog clone_flags=3d0f00 oom_score_adj=0
10/10 1.4: sched:sched_process_fork: comm=prog pid=10 child_comm=prog child_pid=11
10/11 1.5: exceptions:page_fault_user: address=0x7f0000000000 ip=0x1 error_code=0x6
10/10 1.6: task:task_newtask: pid=12 comm=prog clone_flags=4100 oom_score_adj=0
10/10 1.7: sched:sched_process_fork: comm=prog pid=10 child_comm=prog child_pid=12
12/12 1.8: exceptions:page_fault_user: address=0x7f0000000010 ip=0x1 error_code=0x4
10/11 1.9: sched:sched_process_exit: comm=prog pid=11 prio=120 group_dead=false
12/12 2.0: sched:sched_process_exit: comm=prog pid=12 prio=120 group_dead=true
10/10 2.1: task:task_newtask: pid=13 comm=prog clone_flags=1200000 oom_score_adj=0
10/10 2.2: sched:sched_process_fork: comm=prog pid=10 child_comm=prog child_pid=13
13/13 2.3: exceptions:page_fault_user: address=0x7f0000000000 ip=0x1 error_code=0x7
13/13 2.4: sched:sched_process_exit: comm=prog pid=13 prio=120 group_dead=true
"""
    r = rc.convert(s.splitlines())
    names = [Op(o).name for o in r.trace["op"]]
    assert names == ["SPAWN", "MMAP", "WRITE", "READ", "FORK", "WRITE", "EXIT"]
    assert list(r.trace["pid"][[2, 3, 5, 6]]) == [1, 1, 2, 2]   # thread and CLONE_VM child in pid 1
    assert r.notes["processes still alive when the recording ended (left alive in the trace)"] == 1
    assert r.bias == {"forks": 1, "inherited_pages": 1, "inherited_unfaulted": 0}


# ----------------------------------------------------------------- bad input (issue 14, item 7)
def test_empty_and_foreign_streams_are_one_line_errors():
    with pytest.raises(errors.InvalidArgument, match="empty"):
        rc.convert([])
    with pytest.raises(errors.InvalidArgument, match="not a perf script stream"):
        rc.convert(["hello world\n", "this is not perf\n"])
    with pytest.raises(errors.InvalidArgument, match="no exec"):
        rc.convert(["1/1 1.0: syscalls:sys_enter_brk: brk: 0x0\n"])


def test_truncated_stream_is_counted_not_wrong():
    ls = lines()
    cut = ls[: len(ls) // 2]
    cut[-1] = cut[-1][: len(cut[-1]) // 2]          # ends mid-line
    r = rc.convert(cut)
    validate_trace(r.trace)
    assert r.notes.get("processes still alive when the recording ended (left alive in the trace)")
    for d in DESIGNS:
        m = mmbench.open(d, ram_pages=1 << 16)
        assert not m.replay(r.trace, timing=False, frame=False)["status"].any()


def test_corrupt_lines_are_counted():
    ls = lines()
    for i in range(40, len(ls), 37):
        ls[i] = "\x00\x17garbage " + ls[i][::-1]
    r = rc.convert(ls)
    validate_trace(r.trace)
    assert r.notes["stream lines not understood (corrupt or truncated stream; ignored)"] >= 5
    m = mmbench.open("linux", ram_pages=1 << 16)
    assert not m.replay(r.trace, timing=False, frame=False)["status"].any()


def _with_device_mapping(name: str):
    """tiny's shared anonymous mapping turned into a shared mapping of `name`."""
    out, armed = [], False
    for line in lines():
        if "sys_enter_mmap" in line and "flags: 0x00000021" in line:
            line = line.replace("flags: 0x00000021", "flags: 0x00000001").replace(
                "fd: 0xffffffff", "fd: 0x00000005")
            armed = True
        elif armed and "PERF_RECORD_MMAP2" in line:
            line = re.sub(r"\]: (\S+) .*$", f"]: rw-s {name}", line)
            armed = False
        out.append(line)
    return out


@pytest.mark.parametrize("name", ["/dev/mem", "anon_inode:[io_uring]"])
def test_unsupported_mappings_are_counted_and_not_replayed(name):
    r = rc.convert(_with_device_mapping(name))
    assert r.notes[f"unsupported: mmap of {name} (not replayed)"] == 1
    assert r.notes["faults in unsupported mappings (dropped)"] >= 8
    m = mmbench.open("linux", ram_pages=1 << 16)
    assert not m.replay(r.trace, timing=False, frame=False)["status"].any()


def test_userfaultfd_is_counted():
    ls = lines()
    i = next(i for i, l in enumerate(ls) if "sys_enter_munmap" in l)
    pid = ls[i].split()[0]
    ls[i:i] = [f"{pid}  2069.5: syscalls:sys_enter_userfaultfd: flags: 0x00000000\n",
               f"{pid}  2069.5: syscalls:sys_exit_userfaultfd: 0x5\n"]
    r = rc.convert(ls)
    assert r.notes["unsupported: userfaultfd used (its effect on memory is not replayed)"] == 1


def test_crash_is_recorded_up_to_the_crash():
    """A process killed by a signal has no exit_group: its sched_process_exit ends it."""
    ls = [l for l in lines() if "sys_enter_exit_group" not in l]
    r = rc.convert(ls)
    assert (r.trace["op"] == Op.EXIT).sum() == 3


# ----------------------------------------------------------------- the bias and its reduction
BIAS_STREAM = """\
10/10 1.0: PERF_RECORD_COMM exec: prog:10/10
10/10 1.1: syscalls:sys_enter_mmap: addr: 0x0, len: 0x8000, prot: 0x3, flags: 0x22, fd: 0xffffffff, off: 0x0
10/10 1.2: syscalls:sys_exit_mmap: 0x7f0000000000
10/10 1.30: exceptions:page_fault_user: address=0x7f0000000000 ip=0x1 error_code=0x6
10/10 1.31: exceptions:page_fault_user: address=0x7f0000001000 ip=0x1 error_code=0x6
10/10 1.32: exceptions:page_fault_user: address=0x7f0000002000 ip=0x1 error_code=0x6
10/10 1.33: exceptions:page_fault_user: address=0x7f0000003000 ip=0x1 error_code=0x6
10/10 1.34: exceptions:page_fault_user: address=0x7f0000004000 ip=0x1 error_code=0x6
10/10 1.4: task:task_newtask: pid=13 comm=prog clone_flags=1200000 oom_score_adj=0
10/10 1.5: sched:sched_process_fork: comm=prog pid=10 child_comm=prog child_pid=13
13/13 1.6: exceptions:page_fault_user: address=0x7f0000000000 ip=0x1 error_code=0x7
13/13 2.0: sched:sched_process_exit: comm=prog pid=13 prio=120 group_dead=true
"""


def test_bias_counts_inherited_pages_never_faulted():
    r = rc.convert(BIAS_STREAM.splitlines())
    assert r.bias == {"forks": 1, "inherited_pages": 5, "inherited_unfaulted": 4}
    from mmbench import record_replay as rr
    note = rr.bias_note({"bias": r.bias, "host": r.host})
    assert "never faulted on 4" in note and "Not reduced" in note


def test_bias_reduced_by_accessed_bits():
    """The child's smaps said 4 pages of the mapping were referenced: one it faulted on
    (a COW write), so 3 were read through copied PTEs: 3 READs before its EXIT."""
    vpn = 0x7f0000000000 >> 12
    access = {13: [(int(1.8e9), [(vpn, vpn + 8, 4)]),
                   (int(2.5e9), [(vpn, vpn + 8, 8)])]}     # after the exit: not used
    r = rc.convert(BIAS_STREAM.splitlines(), access)
    names = [Op(o).name for o in r.trace["op"]]
    assert names[-5:] == ["WRITE", "READ", "READ", "READ", "EXIT"]
    reads = r.trace[-4:-1]
    assert set(reads["pid"]) == {2} and len(set(reads["vpn"])) == 3
    assert set(reads["vpn"].tolist()) <= {vpn + i for i in range(1, 5)}
    assert r.bias["reads_added"] == 3 and r.bias["children_sampled"] == 1
    assert r.bias["unsampled_unfaulted"] == 0
    for d in DESIGNS:
        m = mmbench.open(d, ram_pages=1 << 16)
        assert not m.replay(r.trace, timing=False, frame=False)["status"].any()
    # a child never sampled keeps its whole unseen set as the remaining bias
    r2 = rc.convert(BIAS_STREAM.splitlines(), {})
    assert r2.bias["reads_added"] == 0 and r2.bias["unsampled_unfaulted"] == 4


def test_fault_around_neighbours_follow_do_fault_around():
    """The window of a read fault: 16 pages from the aligned start, or from the VMA's
    start when that is later; cut at the VMA's end and at its PTE table's; less the
    faulting page and pages the process faulted on itself."""
    class Mm:
        resident = {1003}
    v = rc.Vma(start=1000, end=1030, cls=rc.FILE, writable=False)
    assert rc.fault_around_neighbours(Mm, v, 1005) == 14     # 1000..1015 less 1003 and 1005
    assert rc.fault_around_neighbours(Mm, v, 1020) == 15     # 1008..1023 less 1020
    edge = rc.Vma(start=500, end=600, cls=rc.FILE, writable=False)
    assert rc.fault_around_neighbours(Mm, edge, 511) == 11   # 500..511: the PTE table ends at 512
    tail = rc.Vma(start=0, end=1004, cls=rc.FILE, writable=False)
    assert rc.fault_around_neighbours(Mm, tail, 993) == 10   # 992..1003 less 993 and 1003
