#!/bin/sh
port=6395; dir=$(mktemp -d)
redis-server --port $port --bind 127.0.0.1 --dir $dir --save "" --appendonly no --daemonize yes --enable-debug-command yes --logfile $dir/log
for i in $(seq 1 50); do redis-cli -p $port ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p $port debug populate 100000 key 64 >/dev/null
pid=$(redis-cli -p $port info server | tr -d '\r' | grep process_id | cut -d: -f2)
grep -E "RssAnon|RssFile|RssShmem|VmPTE" /proc/$pid/status | tr -s ' \n' ' '; echo
cat /proc/$pid/maps > ${OUT_DIR:-/tmp}/maps.txt
grep -c . /proc/$pid/maps; ls /proc/$pid/task | wc -l; grep -c "^/" /dev/null
redis-cli -p $port bgsave >/dev/null
c=$(pgrep -P $pid | head -1); grep -E "RssAnon|RssFile|VmPTE" /proc/$c/status | tr -s ' \n' ' '; echo
sleep 1; redis-cli -p $port shutdown nosave >/dev/null 2>&1; rm -rf $dir
