#!/bin/sh
# many BGSAVEs of redis (100k keys) under a system-wide cpu-clock sampler with call chains
. "$(dirname "$0")/lib.sh"
redis_up 6396
echo $pid > $OUT_DIR/pid
perf record -q -e cpu-clock -c 100000 -g -a -o $OUT_DIR/perf.data 2>/dev/null &
pp=$!
sleep 0.5
COLD= redis_bgsaves ${N:-60}
kill -INT $pp; wait $pp
redis-cli -p $port shutdown nosave >/dev/null 2>&1; rm -rf $dir
