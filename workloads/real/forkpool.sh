#!/bin/sh
# forkpool: a Python multiprocessing fork pool over an inherited dataset (forkpool.py).
# Stands for fork-based Python worker pools (gunicorn, Celery prefork, DataLoader workers).
# Needs: python3 (Debian package python3), perf (linux-perf), root.  Ran 0.8 s (events), 3.9 s with perf's start, on the recording host (AMD EPYC, 2 CPUs, load 4.8-7.7) (the trace's provenance holds the exact duration).
set -e
cd "$(dirname "$0")"
command -v perf >/dev/null || apt-get install -y -qq linux-perf
mmbench record -o forkpool.npz -- python3 forkpool.py
