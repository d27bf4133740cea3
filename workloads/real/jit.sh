#!/bin/sh
# jit: Node.js (V8) running jit.js — a JIT compiler and a generational garbage collector.
# Stands for allocator- and JIT-heavy managed runtimes (JavaScript, JVM, .NET): code pages
# mapped and re-protected (W^X), heap spaces mapped, touched, released with madvise/munmap,
# worker threads sharing one address space.
# Needs: nodejs (Debian package nodejs), perf, root.  Ran 1.9 s (events), 5.0 s with perf's start, on the recording host (AMD EPYC, 2 CPUs, load 4.8-7.7).
set -e
cd "$(dirname "$0")"
command -v node >/dev/null || apt-get install -y -qq nodejs
command -v perf >/dev/null || apt-get install -y -qq linux-perf
mmbench record -o jit.npz -- node jit.js
