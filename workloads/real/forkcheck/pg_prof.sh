#!/bin/sh
# postmaster forks under a system-wide cpu-clock sampler (pgbench -C: a connection, so a fork, per transaction)
bin=/usr/lib/postgresql/15/bin
dir=$(mktemp -d); chown postgres "$dir"
as_pg() { runuser -u postgres -- "$@"; }
as_pg $bin/initdb -D "$dir/data" -A trust >/dev/null
opts="-c shared_buffers=16MB -c listen_addresses= -c unix_socket_directories=$dir -c fsync=off"
as_pg $bin/pg_ctl -D "$dir/data" -o "$opts" -w start >/dev/null
as_pg $bin/pgbench -h "$dir" -i -s 1 postgres >/dev/null 2>&1
pm=$(head -1 $dir/data/postmaster.pid); echo $pm > ${OUT_DIR:-/tmp}/pid
grep -E "RssAnon|RssFile|RssShmem|VmPTE" /proc/$pm/status | tr -s ' \n' ' '; echo; wc -l < /proc/$pm/maps; cp /proc/$pm/smaps ${OUT_DIR:-/tmp}/smaps
perf record -q -e cpu-clock -c 100000 -g -a -o ${OUT_DIR:-/tmp}/perf.data 2>/dev/null &
pp=$!; sleep 0.5
as_pg $bin/pgbench -h "$dir" -c 2 -j 1 -C -t ${N:-150} postgres 2>&1 | grep -E "tps|latency"
kill -INT $pp; wait $pp
as_pg $bin/pg_ctl -D "$dir/data" -m immediate -w stop >/dev/null; rm -rf "$dir"
