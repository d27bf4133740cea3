# shared setup of the by-hand fork measurements (sourced by the *_light.sh / *_prof.sh scripts)
OUT_DIR=${OUT_DIR:-/tmp}

# PostgreSQL 15 in a fresh data directory, pgbench's tables made; leaves $bin, $dir, $opts, as_pg
pg_init() {
  bin=/usr/lib/postgresql/15/bin
  dir=$(mktemp -d); chown postgres "$dir"
  as_pg() { runuser -u postgres -- "$@"; }
  as_pg $bin/initdb -D "$dir/data" -A trust >/dev/null
  opts="-c shared_buffers=16MB -c listen_addresses= -c unix_socket_directories=$dir -c fsync=off"
  as_pg $bin/pg_ctl -D "$dir/data" -o "$opts" -w start >/dev/null
  as_pg $bin/pgbench -h "$dir" -i -s 1 postgres >/dev/null 2>&1
}

# redis on port $1 holding 100k keys; leaves $port, $dir, $pid
redis_up() {
  port=$1; dir=$(mktemp -d)
  redis-server --port $port --bind 127.0.0.1 --dir $dir --save "" --appendonly no --daemonize yes --enable-debug-command yes --logfile $dir/log
  for i in $(seq 1 50); do redis-cli -p $port ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p $port debug populate 100000 key 64 >/dev/null
  pid=$(redis-cli -p $port info server | tr -d '\r' | grep process_id | cut -d: -f2)
}

# $1 BGSAVEs one after another, printing each fork's latest_fork_usec; with COLD set, a
# write burst between them
redis_bgsaves() {
  for i in $(seq 1 $1); do
    redis-cli -p $port bgsave >/dev/null
    while [ "$(redis-cli -p $port info persistence | tr -d '\r' | grep rdb_bgsave_in_progress | cut -d: -f2)" != 0 ]; do sleep 0.02; done
    printf "%s " $(redis-cli -p $port info stats | tr -d '\r' | grep latest_fork_usec | cut -d: -f2)
    [ -n "$COLD" ] && redis-benchmark -p $port -q -t set -n 20000 -P 16 -r 100000 -d 64 >/dev/null
  done; echo
}
