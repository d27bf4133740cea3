#!/bin/sh
# BGSAVEs of redis (100k keys) under a light system-wide trace: clone entry/exit, task_newtask
port=6397; dir=$(mktemp -d); out=${OUT:-${OUT_DIR:-/tmp}/light}
redis-server --port $port --bind 127.0.0.1 --dir $dir --save "" --appendonly no --daemonize yes --enable-debug-command yes --logfile $dir/log
for i in $(seq 1 50); do redis-cli -p $port ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p $port debug populate 100000 key 64 >/dev/null
pid=$(redis-cli -p $port info server | tr -d '\r' | grep process_id | cut -d: -f2)
echo $pid > $out.pid
perf record -q -a -e syscalls:sys_enter_clone -e syscalls:sys_exit_clone -e task:task_newtask -e mmap_lock:mmap_lock_acquire_returned -e mmap_lock:mmap_lock_released -o $out.data 2>/dev/null &
pp=$!
sleep 0.5
for i in $(seq 1 ${N:-20}); do
  redis-cli -p $port bgsave >/dev/null
  while [ "$(redis-cli -p $port info persistence | tr -d '\r' | grep rdb_bgsave_in_progress | cut -d: -f2)" != 0 ]; do sleep 0.02; done
  printf "%s " $(redis-cli -p $port info stats | tr -d '\r' | grep latest_fork_usec | cut -d: -f2)
  [ -n "$COLD" ] && redis-benchmark -p $port -q -t set -n 20000 -P 16 -r 100000 -d 64 >/dev/null
done; echo
kill -INT $pp; wait $pp
redis-cli -p $port shutdown nosave >/dev/null 2>&1; rm -rf $dir
perf script -i $out.data --ns -F pid,tid,time,event,trace 2>/dev/null | awk -v p=$pid '$1 ~ "^"p"/" ' > $out.txt
