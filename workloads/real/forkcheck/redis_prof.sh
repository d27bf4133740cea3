#!/bin/sh
# many BGSAVEs of redis (100k keys) under a system-wide cpu-clock sampler with call chains
port=6396; dir=$(mktemp -d)
redis-server --port $port --bind 127.0.0.1 --dir $dir --save "" --appendonly no --daemonize yes --enable-debug-command yes --logfile $dir/log
for i in $(seq 1 50); do redis-cli -p $port ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p $port debug populate 100000 key 64 >/dev/null
pid=$(redis-cli -p $port info server | tr -d '\r' | grep process_id | cut -d: -f2)
echo $pid > ${OUT_DIR:-/tmp}/pid
perf record -q -e cpu-clock -c 100000 -g -a -o ${OUT_DIR:-/tmp}/perf.data 2>/dev/null &
pp=$!
sleep 0.5
for i in $(seq 1 ${N:-60}); do
  redis-cli -p $port bgsave >/dev/null
  while [ "$(redis-cli -p $port info persistence | tr -d '\r' | grep rdb_bgsave_in_progress | cut -d: -f2)" != 0 ]; do sleep 0.02; done
  printf "%s " $(redis-cli -p $port info stats | tr -d '\r' | grep latest_fork_usec | cut -d: -f2)
done; echo
kill -INT $pp; wait $pp
redis-cli -p $port shutdown nosave >/dev/null 2>&1; rm -rf $dir
