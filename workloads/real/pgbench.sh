#!/bin/sh
# pgbench: PostgreSQL 15 serving pgbench (TPC-B-like transactions) over 4 connections.
# Stands for fork-per-connection servers with a shared buffer pool: the postmaster forks a
# backend per connection (and its background workers), every backend maps the same shared
# memory (shared_buffers = 16 MB here) and faults in the buffers it uses.
# The server (postmaster and every process it forks) is recorded; pgbench drives it from
# outside over a Unix socket: scale 1 initialised before recording, then 3 s of 4 clients
# (-c 4 -j 2 -T 3) and a fast shutdown.
# Needs: postgresql-15, postgresql-client-15 (Debian packages), perf, root (the server runs as
# the postgres user).  Ran 3.5 s (events), 7.0 s with perf's start, on the recording host (AMD EPYC, 2 CPUs, load 4.8-7.7).
set -e
here=$(cd "$(dirname "$0")" && pwd)
bin=/usr/lib/postgresql/15/bin
[ -x $bin/postgres ] || apt-get install -y -qq postgresql-15 postgresql-client-15
command -v perf >/dev/null || apt-get install -y -qq linux-perf
dir=$(mktemp -d)
chown postgres "$dir"
as_pg() { runuser -u postgres -- "$@"; }
trap 'as_pg $bin/pg_ctl -D "$dir/data" stop -m immediate >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
as_pg $bin/initdb -D "$dir/data" -A trust >/dev/null
opts="-c shared_buffers=16MB -c listen_addresses= -c unix_socket_directories=$dir -c fsync=off"
as_pg $bin/pg_ctl -D "$dir/data" -o "$opts" -w start >/dev/null
as_pg $bin/pgbench -h "$dir" -i -s 1 postgres >/dev/null 2>&1
as_pg $bin/pg_ctl -D "$dir/data" -w stop >/dev/null
mmbench record -o "$here/pgbench.npz" -- runuser -u postgres -- $bin/postgres -D "$dir/data" $opts &
rec=$!
for i in $(seq 1 100); do as_pg $bin/pg_isready -h "$dir" -q && break; sleep 0.1; done
as_pg $bin/pgbench -h "$dir" -c 4 -j 2 -T 3 postgres >/dev/null
as_pg $bin/pg_ctl -D "$dir/data" -m fast -w stop >/dev/null
wait $rec
