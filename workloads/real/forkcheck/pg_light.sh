#!/bin/sh
# the pgbench corpus run (4 clients, 3 s) untraced but for a light system-wide trace of forks
. "$(dirname "$0")/lib.sh"
pg_init
as_pg $bin/pg_ctl -D "$dir/data" -w stop >/dev/null
perf record -q -a -e syscalls:sys_enter_clone -e syscalls:sys_exit_clone -e task:task_newtask -e mmap_lock:mmap_lock_acquire_returned --filter 'write == 1' -e mmap_lock:mmap_lock_released --filter 'write == 1' -o $OUT_DIR/light.data 2>/dev/null &
pp=$!; sleep 0.5
as_pg $bin/pg_ctl -D "$dir/data" -o "$opts" -w start >/dev/null
pm=$(head -1 $dir/data/postmaster.pid)
as_pg $bin/pgbench -h "$dir" -c 4 -j 2 -T 3 postgres >/dev/null 2>&1
as_pg $bin/pg_ctl -D "$dir/data" -m fast -w stop >/dev/null
kill -INT $pp; wait $pp; rm -rf "$dir"
perf script -i $OUT_DIR/light.data --ns -F pid,tid,time,event,trace 2>/dev/null | awk -v p=$pm '$1 ~ "^"p"/"' > $OUT_DIR/light.txt
