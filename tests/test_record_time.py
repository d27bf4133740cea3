"""The host's time in faults and forks (issue 14, item 5): perf's software fault events
bracket each fault, context-switch records take preemption out, and the recordloop
measured untraced and traced corrects the windows.  Hand-written streams in the format
of ``perf script`` (record_stream.PERF_SCRIPT_ARGS), synthetic loop outputs; no timing
is asserted, only the arithmetic on given timestamps."""
from __future__ import annotations

import pytest

from mmbench import estimate, record, record_replay
from mmbench import record_convert as rc
from mmbench import record_stream as rs

HEAD = """\
10/10 1.000000000: PERF_RECORD_COMM exec: prog:10/10
10/10 1.000000100: PERF_RECORD_MMAP2 10/10: [0x400000(0x2000) @ 0 fe:00 1 0]: r-xp /bin/prog
10/10 1.000000200: syscalls:sys_enter_mmap: addr: 0x0, len: 0x4000, prot: 0x3, flags: 0x22, fd: 0xffffffff, off: 0x0
10/10 1.000000300: syscalls:sys_exit_mmap: 0x7f0000000000
"""


def fault(t_us: float, addr: int, code: int, dur_ns: int, tid: int = 10, pid: int = 10,
          switch_ns: int = 0, end: str = "minor-faults/period=1/") -> str:
    """A traced fault: the tracepoint, the begin event, optionally a preemption inside,
    and the end event `dur_ns` after the begin."""
    t = int(t_us * 1000) + 1_000_000_000
    def ts(ns):
        return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"
    out = [f"{pid}/{tid} {ts(t)}: exceptions:page_fault_user: address={addr:#x} ip=0x400010 error_code={code:#x}",
           f"{pid}/{tid} {ts(t + 100)}:      page-faults/period=1/: "]
    if switch_ns:
        out += [f"{pid}/{tid} {ts(t + 150)}: PERF_RECORD_SWITCH OUT preempt",
                f"{pid}/{tid} {ts(t + 150 + switch_ns)}: PERF_RECORD_SWITCH IN         "]
    if end:
        out.append(f"{pid}/{tid} {ts(t + 100 + dur_ns + switch_ns)}:     {end}: ")
    return "\n".join(out) + "\n"


def test_timing_events_parse():
    ev = rs.parse_line("10/11 5.000000100:      page-faults/period=1/: ")
    assert (ev.pid, ev.tid, ev.name, ev.t_ns) == (10, 11, "fault_begin", 5_000_000_100)
    assert rs.parse_line("10/11 5.1:     minor-faults/period=1/: ").name == "fault_end"
    assert rs.parse_line("10/11 5.1:     major-faults: ").name == "fault_end_major"
    assert rs.parse_line("10/11 5.1:                     faults: ").name == "fault_begin"
    sw = rs.parse_line("10/11 5.1: PERF_RECORD_SWITCH OUT preempt")
    assert sw.name == "PERF_RECORD_SWITCH" and sw.payload.startswith("OUT")
    assert rs.parse_line("10/11 5.1: cycles: ") is None          # other unnamed events: not ours
    assert all(e.endswith("/period=1/") for e in rs.TIMING_EVENTS)   # one sample per fault


def test_fault_windows_by_kind_less_preemption():
    s = (HEAD
         + fault(1, 0x7f0000000000, 0x6, 1500)                      # zero-fill write
         + fault(2, 0x7f0000001000, 0x4, 400)                       # zero-page read
         + fault(3, 0x7f0000001000, 0x7, 1700, switch_ns=50_000)    # write on the zero page,
         #                                      preempted 50 us inside: only 1700 ns count
         + fault(4, 0x7f0000002000, 0x6, 900, end="")               # no end: a failed fault
         + fault(5, 0x7f0000003000, 0x6, 1300)
         + "10/10 1.000010000: sched:sched_process_exit: comm=prog pid=10 prio=120 group_dead=true\n")
    r = rc.convert(s.splitlines())
    ft = r.host["fault_time"]
    assert ft["timed"] == 4
    assert ft["n_by_replay_kind"] == {"zero_fill": 3, "zero_page": 1}
    assert ft["ns_by_replay_kind"] == {"zero_fill": 1500 + 1700 + 1300, "zero_page": 400}
    assert ft["median_ns_by_replay_kind"] == {"zero_fill": 1500, "zero_page": 400}
    assert ft["median_ns_by_kind"] == {"zero_fill": 1500, "zero_page": 400}
    assert ft["ns_by_kind"] == {"zero_fill": 1500 + 1700 + 1300, "zero_page": 400}
    assert ft["ns"] == 4900
    assert r.notes["fault timings without an end (failed faults: not timed)"] == 1


def test_no_timing_events_no_fault_time():
    s = HEAD + fault(1, 0x7f0000000000, 0x6, 1500).splitlines()[0] + "\n"
    r = rc.convert(s.splitlines())
    assert "fault_time" not in r.host and r.host["faults"] == 1


def test_fork_window_less_preemption():
    """fork entry .. task_newtask, with 30 us switched out inside: the window is the rest."""
    s = HEAD + """\
10/10 1.000100000: syscalls:sys_enter_clone: clone_flags: 0x1200011, newsp: 0x0, parent_tidptr: 0x0, child_tidptr: 0x7f00, tls: 0x0
10/10 1.000110000: PERF_RECORD_SWITCH OUT preempt
10/10 1.000140000: PERF_RECORD_SWITCH IN         
10/10 1.000200000: task:task_newtask: pid=11 comm=prog clone_flags=1200000 oom_score_adj=0
10/10 1.000201000: sched:sched_process_fork: comm=prog pid=10 child_comm=prog child_pid=11
10/10 1.000250000: syscalls:sys_exit_clone: 0xb
11/11 1.000300000: sched:sched_process_exit: comm=prog pid=11 prio=120 group_dead=true
10/10 1.000400000: sched:sched_process_exit: comm=prog pid=10 prio=120 group_dead=true
"""
    r = rc.convert(s.splitlines())
    assert r.host["process_forks"] == 1
    assert r.host["fork_copy_windows_ns"] == [100_000 - 30_000]
    assert r.host["fork_syscall_ns"] == 150_000 - 30_000


PLAIN = "fork 900000 200000\nfork 800000 210000\nfork 950000 190000\nread 500.0\nwrite 1500.0\n" \
        "read 520.0\nwrite 1480.0\nread 510.0\nwrite 1490.0\n"
TRACED = "fork 1900000 400000\nfork 1800000 410000\nfork 1950000 390000\nread 900.0\nwrite 1900.0\n" \
         "read 920.0\nwrite 1880.0\nread 910.0\nwrite 1890.0\n"
LOOP_HOST = {"fault_time": {"median_ns_by_replay_kind": {"zero_page": 300, "zero_fill": 1200}},
             "fork_copy_windows_ns": [150_000, 160_000, 170_000]}


def test_parse_loop():
    p = record.parse_loop(PLAIN + "garbage\nfork x y\n")
    assert p["fork_cpu"] == [200000, 210000, 190000] and p["read"] == [500.0, 520.0, 510.0]
    assert len(p["write"]) == 3 and len(p["fork_wall"]) == 3


def test_overhead_from():
    ov = record.overhead_from(record.parse_loop(PLAIN), record.parse_loop(TRACED), LOOP_HOST)
    assert ov["fault_add_ns"] == 510.0 - 300           # untraced read fault - its window
    assert ov["fork_add_ns"] == 200000 - 160000        # untraced empty fork (CPU) - its window
    assert ov["probe_cost_per_fault_ns"] == 400.0 and ov["probe_cost_per_fork_ns"] == 200000
    assert ov["write_check_ns"] == [1200 + 210.0, 1490.0]


def test_overhead_from_refuses_a_stream_without_the_loop():
    with pytest.raises(record.RecordError):
        record.overhead_from(record.parse_loop(PLAIN), record.parse_loop(TRACED), {})


def test_host_time_corrects_the_windows():
    ov = record.overhead_from(record.parse_loop(PLAIN), record.parse_loop(TRACED), LOOP_HOST)
    prov = {"tracing_overhead": ov,
            "host": {"process_forks": 2, "fork_copy_windows_ns": [400_000, 600_000],
                     "fault_time": {"n_by_replay_kind": {"zero_fill": 10, "cow": 2, "none": 1},
                                    "ns_by_replay_kind": {"zero_fill": 12_000, "cow": 5_000, "none": 300},
                                    "median_ns_by_replay_kind": {"zero_fill": 1100, "cow": 2400, "none": 300}}}}
    ht = record_replay.host_time(prov)
    assert ht["faults_timed"] == 12                    # "none" (spurious) is not a replayed fault
    assert ht["fault_ns"] == 17_000 + 12 * 210.0
    assert ht["fault_by_kind"]["cow"] == (2, 2500 + 210.0, 2400 + 210.0)
    assert ht["fault_typical_ns"] == 10 * (1100 + 210.0) + 2 * (2400 + 210.0)
    assert ht["fork_ns"] == 1_000_000 + 2 * 40_000
    assert ht["fork_beyond_empty_ns"] == 1_000_000 - 2 * 160_000
    old = record_replay.host_time({"host": {"process_forks": 1, "fork_copy_ns": 5}})
    assert "fault_ns" not in old and "fault_why" in old and "fork_why" in old


def test_captured_stream_of_the_control_program():
    """``faultfork.perf.txt``: ``mmbench record --keep-stream`` of
    fixtures/record/faultfork.c (64 zero-fill writes, one fork) on this host, with the
    software fault events and the context-switch records."""
    from pathlib import Path
    text = (Path(__file__).parent / "fixtures" / "record" / "faultfork.perf.txt").read_text()
    r = rc.convert(text.splitlines())
    assert not any("not understood" in k for k in r.notes), r.notes
    ft = r.host["fault_time"]
    assert ft["timed"] == r.host["faults"] == sum(ft["n_by_replay_kind"].values())
    assert ft["n_by_replay_kind"]["zero_fill"] >= 64          # the program's writes, and ld.so's
    assert all(v > 0 for v in ft["median_ns_by_replay_kind"].values())
    assert ft["ns"] == sum(ft["ns_by_replay_kind"].values()) == sum(ft["ns_by_kind"].values())
    assert r.host["process_forks"] == 1 and r.host["fork_copy_windows_ns"][0] > 0
    assert r.host["fork_copy_windows_ns"][0] <= r.host["fork_syscall_ns"]


# ----------------------------------------------------------------- fork's dup_mmap
FORK_WITH_LOCKS = HEAD + """\
10/10 1.000100000: syscalls:sys_enter_clone: clone_flags: 0x1200011, newsp: 0x0, parent_tidptr: 0x0, child_tidptr: 0x7f00, tls: 0x0
10/10 1.000120000: mmap_lock:mmap_lock_acquire_returned: mm=0xaaaa memcg_id=1 write=true
10/10 1.000121000: mmap_lock:mmap_lock_acquire_returned: mm=0xbbbb memcg_id=1 write=true
10/10 1.000130000: PERF_RECORD_SWITCH OUT preempt
10/10 1.000150000: PERF_RECORD_SWITCH IN         
10/10 1.000170000: mmap_lock:mmap_lock_released: mm=0xbbbb memcg_id=1 write=true
10/10 1.000180000: mmap_lock:mmap_lock_released: mm=0xaaaa memcg_id=1 write=true
10/10 1.000200000: task:task_newtask: pid=11 comm=prog clone_flags=1200000 oom_score_adj=0
10/10 1.000201000: sched:sched_process_fork: comm=prog pid=10 child_comm=prog child_pid=11
10/10 1.000250000: syscalls:sys_exit_clone: 0xb
10/10 1.000300000: mmap_lock:mmap_lock_acquire_returned: mm=0xaaaa memcg_id=1 write=true
10/10 1.000310000: mmap_lock:mmap_lock_released: mm=0xaaaa memcg_id=1 write=true
11/11 1.000300000: sched:sched_process_exit: comm=prog pid=11 prio=120 group_dead=true
10/10 1.000400000: sched:sched_process_exit: comm=prog pid=10 prio=120 group_dead=true
"""


def test_fork_dup_mmap_window():
    """The parent's first write-lock inside the fork call to its release on the same mm
    (the child's mm, locked nested inside, is not the end), less 20 us switched out; a
    lock outside a fork (an mmap's) is not a fork's."""
    r = rc.convert(FORK_WITH_LOCKS.splitlines())
    assert r.host["fork_dup_mmap_windows_ns"] == [60_000 - 20_000]
    assert r.host["fork_copy_windows_ns"] == [100_000 - 20_000]
    # the converter's picture of the forking process: its VMAs (/bin/prog's text is a
    # private file mapping; the mmap an anonymous one), file-backed, with an anon_vma
    assert r.host["fork_vmas"] == [[2, 1, 0]]


def test_no_lock_events_no_dup_windows():
    s = "\n".join(ln for ln in FORK_WITH_LOCKS.splitlines() if "mmap_lock" not in ln)
    r = rc.convert(s.splitlines())
    assert "fork_dup_mmap_windows_ns" not in r.host and r.host["process_forks"] == 1


def test_lock_events_are_filtered_to_write_locks():
    argv = record.perf_argv(rs.events(), "/tmp/x.data")
    for ev, flt in rs.FILTERS.items():
        i = argv.index(ev)
        assert argv[i - 1] == "-e" and argv[i + 1:i + 3] == ["--filter", flt]
    plain = argv[argv.index("-e") + 1].split(",")
    assert not set(rs.FILTERS) & set(plain) and "task:task_newtask" in plain


LOOP_HOST_DUP = {**LOOP_HOST, "fork_dup_mmap_windows_ns": [20_000, 30_000, 25_000]}


def test_overhead_from_dup_windows():
    ov = record.overhead_from(record.parse_loop(PLAIN), record.parse_loop(TRACED), LOOP_HOST_DUP)
    assert ov["windows"]["fork_dup_mmap_ns"] == 25_000
    # untraced empty fork at its lower quartile (190 000 of 190/200/210 000) - its dup window
    assert ov["untraced_fork_cpu_q1_ns"] == 190_000 and ov["fork_dup_add_ns"] == 190_000 - 25_000
    assert "fork_dup_add_ns" not in record.overhead_from(
        record.parse_loop(PLAIN), record.parse_loop(TRACED), LOOP_HOST)


def test_host_time_from_dup_windows():
    ov = record.overhead_from(record.parse_loop(PLAIN), record.parse_loop(TRACED), LOOP_HOST_DUP)
    prov = {"tracing_overhead": ov,
            "host": {"process_forks": 2, "fork_copy_windows_ns": [400_000, 600_000],
                     "fork_dup_mmap_windows_ns": [300_000, 500_000]}}
    ht = record_replay.host_time(prov)
    assert ht["fork_from"] == "dup_mmap windows"
    assert ht["fork_dup_ns"] == 800_000
    assert ht["fork_ns"] == 800_000 + 2 * (190_000 - 25_000)
    assert ht["fork_beyond_empty_ns"] == 800_000 - 2 * 25_000
    assert ht["fork_copy_window_ns"] == 1_000_000 + 2 * 40_000     # kept beside them
    # a trace recorded before the lock events: the copy_process windows, as before
    prov["host"].pop("fork_dup_mmap_windows_ns")
    assert record_replay.host_time(prov)["fork_from"] == "copy_process windows"


def test_unmerged_vmas_are_priced_per_fork():
    """VMAs the host's fork duplicated that the replay merged (files are anonymous
    memory to it): the difference is added, VMAs as the design's own VMA struct, an
    anon_vma_fork as an anon_vma and two chain links; never taken away."""
    ev = {"alloc:vm_area_struct": 138, "alloc:anon_vma": 89, "fork_ptes_copied": 577}
    assert estimate.unmerged_fork_events(ev, [255, 219, 108]) == {
        "alloc:vm_area_struct": 117, "alloc:anon_vma": 19, "alloc:anon_vma_chain": 38}
    assert estimate.unmerged_fork_events(ev, [100, 50, 50]) == {}
    assert estimate.unmerged_fork_events({"alloc:vm_map_entry": 10}, [12, 5, 3]) == {"alloc:vm_map_entry": 2}
    assert estimate.unmerged_fork_events(ev, []) == {}
