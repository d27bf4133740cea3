import sys, collections, subprocess
# perf script callchains: for samples of tid whose stack holds copy_process, count by the frame
# just below copy_process (its direct callee) and by leaf function
data, tid = sys.argv[1], sys.argv[2]
p = subprocess.Popen(["perf", "script", "-i", data, "--tid", tid, "-F", "tid,ip,sym"], stdout=subprocess.PIPE, text=True, stderr=subprocess.DEVNULL)
callee, leaf, dm = collections.Counter(), collections.Counter(), collections.Counter()
n = tot = 0
stack = []
def flush():
    global n, tot
    if not stack: return
    tot += 1
    syms = [s for s in stack]
    if "copy_process" in syms:
        n += 1
        i = syms.index("copy_process")
        callee[syms[i-1] if i > 0 else "(self)"] += 1
        leaf[syms[0]] += 1
        if "dup_mmap" in syms:
            j = syms.index("dup_mmap"); dm[syms[j-1] if j > 0 else "(self)"] += 1
for line in p.stdout:
    line = line.rstrip()
    if not line: flush(); stack = []; continue
    parts = line.split()
    if len(parts) >= 2 and not line.startswith(("\t", " ")):
        flush(); stack = []; continue
    if len(parts) >= 2: stack.append(parts[1].split("+")[0])
flush()
print("samples", tot, "in copy_process", n)
print("copy_process callees:", callee.most_common(25))
print("dup_mmap callees:", dm.most_common(25))
print("leaves:", leaf.most_common(30))
