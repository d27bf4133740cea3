#!/bin/sh
# postmaster forks under a system-wide cpu-clock sampler (pgbench -C: a connection, so a fork, per transaction)
. "$(dirname "$0")/lib.sh"
pg_init
pm=$(head -1 $dir/data/postmaster.pid); echo $pm > $OUT_DIR/pid
grep -E "RssAnon|RssFile|RssShmem|VmPTE" /proc/$pm/status | tr -s ' \n' ' '; echo; wc -l < /proc/$pm/maps; cp /proc/$pm/smaps $OUT_DIR/smaps
perf record -q -e cpu-clock -c 100000 -g -a -o $OUT_DIR/perf.data 2>/dev/null &
pp=$!; sleep 0.5
as_pg $bin/pgbench -h "$dir" -c 2 -j 1 -C -t ${N:-150} postgres 2>&1 | grep -E "tps|latency"
kill -INT $pp; wait $pp
as_pg $bin/pg_ctl -D "$dir/data" -m immediate -w stop >/dev/null; rm -rf "$dir"
