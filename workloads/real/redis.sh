#!/bin/sh
# redis: a Redis server that takes a BGSAVE snapshot while clients keep writing.
# Stands for fork-to-snapshot stores (Redis BGSAVE/AOF rewrite, anything that forks to get a
# consistent copy): the child walks the whole dataset through PTEs fork copied while the
# parent's writes break copy-on-write sharing page by page.
# The server (and only the server, with its BGSAVE child) is recorded; redis-cli and
# redis-benchmark drive it from outside.  Dataset: 100,000 keys of 64 bytes (DEBUG POPULATE),
# then 20,000 SETs pipelined during and after the BGSAVE.
# Needs: redis-server, redis-tools (Debian packages), perf, root.  Ran 0.8 s (events), 4.0 s with perf's start, on the recording host (AMD EPYC, 2 CPUs, load 4.8-7.7).
set -e
here=$(cd "$(dirname "$0")" && pwd)
command -v redis-server >/dev/null || apt-get install -y -qq redis-server
command -v perf >/dev/null || apt-get install -y -qq linux-perf
dir=$(mktemp -d)
port=6391
trap 'redis-cli -p $port shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
mmbench record -o "$here/redis.npz" -- redis-server --port $port --bind 127.0.0.1 --dir "$dir" \
    --save "" --appendonly no --daemonize no --enable-debug-command yes --logfile "$dir/log" &
rec=$!
for i in $(seq 1 100); do redis-cli -p $port ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p $port debug populate 100000 key 64 >/dev/null
redis-cli -p $port bgsave >/dev/null
redis-benchmark -p $port -q -t set -n 20000 -P 16 -r 100000 -d 64 >/dev/null
while [ "$(redis-cli -p $port info persistence | tr -d '\r' | grep rdb_bgsave_in_progress | cut -d: -f2)" != 0 ]; do sleep 0.1; done
redis-cli -p $port shutdown nosave >/dev/null || true
wait $rec
