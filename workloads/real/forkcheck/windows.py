import sys, statistics
for f in sys.argv[1:]:
    ent, ws, dm, infork, lock = {}, [], [], {}, {}
    for line in open(f):
        head, _, rest = line.partition(": ")
        ids, ts = head.split()
        tid = int(ids.split("/")[1]); t = float(ts)
        if "sys_enter_clone" in rest: ent[tid] = t; infork[tid] = None
        elif "mmap_lock_acquire_returned" in rest and tid in infork and infork[tid] is None and "write=true" in rest:
            mm = rest.split("mm=")[1].split()[0]; infork[tid] = (mm, t)
        elif "mmap_lock_released" in rest and tid in infork and infork[tid] and rest.split("mm=")[1].split()[0] == infork[tid][0]:
            dm.append((t - infork[tid][1]) * 1e6); infork[tid] = False
        elif "task_newtask" in rest and tid in ent: ws.append((t - ent.pop(tid)) * 1e6); infork.pop(tid, None)
    med = lambda x: statistics.median(x) if x else float("nan")
    print(f, "n", len(ws), "entry->newtask median %.0f" % med(ws), "| dup_mmap n %d median %.0f min %.0f max %.0f" % (len(dm), med(dm), min(dm or [0]), max(dm or [0])))
    print("  newtask:", " ".join("%.0f" % w for w in ws)); print("  dup_mmap:", " ".join("%.0f" % w for w in dm))
