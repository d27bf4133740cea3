#!/bin/sh
# BGSAVEs of redis (100k keys) under a light system-wide trace: clone entry/exit, task_newtask
. "$(dirname "$0")/lib.sh"
out=${OUT:-$OUT_DIR/light}
redis_up 6397
echo $pid > $out.pid
perf record -q -a -e syscalls:sys_enter_clone -e syscalls:sys_exit_clone -e task:task_newtask -e mmap_lock:mmap_lock_acquire_returned -e mmap_lock:mmap_lock_released -o $out.data 2>/dev/null &
pp=$!
sleep 0.5
redis_bgsaves ${N:-20}
kill -INT $pp; wait $pp
redis-cli -p $port shutdown nosave >/dev/null 2>&1; rm -rf $dir
perf script -i $out.data --ns -F pid,tid,time,event,trace 2>/dev/null | awk -v p=$pid '$1 ~ "^"p"/" ' > $out.txt
