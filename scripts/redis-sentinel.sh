#!/usr/bin/env bash
# redis-sentinel.sh runs a Redis Sentinel set on loopback, for the Sentinel tests and for trying a
# failover by hand: one Redis master on 127.0.0.1:6390, two replicas on 6391 and 6392, and three
# Debian redis-sentinel processes on 26390-26392 monitoring it as "mymaster" (quorum 2, down after
# 1 s, failover timeout 5 s: a killed master is replaced in a few seconds).
#
#   scripts/redis-sentinel.sh start        start the set (fresh, empty data) and wait until the
#                                          replicas are in sync and the Sentinels agree on a quorum;
#                                          a set already running is left as it is
#   scripts/redis-sentinel.sh stop         stop every process this script started (pid files), and
#                                          nothing else; remove the state directory
#   scripts/redis-sentinel.sh status       each process (pid, role), and the master the Sentinels name
#   scripts/redis-sentinel.sh master       print the master's host:port as the Sentinels name it
#   scripts/redis-sentinel.sh kill-master  SIGKILL the current master (no shutdown, no save); print
#                                          its port
#   scripts/redis-sentinel.sh revive       start again every Redis of the set that is down, as a
#                                          replica of the current master
#   scripts/redis-sentinel.sh url          print the sentinel:// URL list of the set
#
# Environment:
#   REDIS_SENTINEL_DIR                where config, data, logs and pid files live
#                                     (default /tmp/forumads-redis-sentinel)
#   REDIS_SENTINEL_PASSWORD           the Redis nodes' password (requirepass, masterauth; the
#                                     Sentinels' auth-pass); empty: none
#   REDIS_SENTINEL_SENTINEL_PASSWORD  the Sentinels' own password (requirepass, sentinel-pass):
#                                     Celery's sentinel_kwargs {password: …}; empty: none
# It never touches the system Redis on 6379 or any process it did not start.
set -euo pipefail

DIR=${REDIS_SENTINEL_DIR:-/tmp/forumads-redis-sentinel}
NAME=mymaster
PASSWORD=${REDIS_SENTINEL_PASSWORD:-}
SENTINEL_PASSWORD=${REDIS_SENTINEL_SENTINEL_PASSWORD:-}
REDIS_PORTS=(6390 6391 6392)
SENTINEL_PORTS=(26390 26391 26392)
DOWN_AFTER_MS=1000
FAILOVER_TIMEOUT_MS=5000
REDIS_SERVER=${REDIS_SERVER:-/usr/bin/redis-server}
REDIS_SENTINEL=${REDIS_SENTINEL:-/usr/bin/redis-sentinel}

die() { echo "redis-sentinel.sh: $*" >&2; exit 1; }

for bin in "$REDIS_SERVER" "$REDIS_SENTINEL" /usr/bin/redis-cli; do
  [ -x "$bin" ] || die "$bin is missing (apt-get install redis-server redis-sentinel, or run scripts/services.sh)"
done

# cli PORT ARGS...: redis-cli against one of the set's processes, with the right password.
cli() {
  local port=$1; shift
  local pw=$PASSWORD
  if [ "$port" -ge 26000 ]; then pw=$SENTINEL_PASSWORD; fi
  if [ -n "$pw" ]; then
    REDISCLI_AUTH=$pw /usr/bin/redis-cli -h 127.0.0.1 -p "$port" "$@"
  else
    /usr/bin/redis-cli -h 127.0.0.1 -p "$port" "$@"
  fi
}

pidfile() { echo "$DIR/$1.pid"; }

# ours NODE: the pid of the set's process NODE (redis-6390, sentinel-26390) when it runs: the pid
# file's process must be alive and be a redis process serving that node's port.
ours() {
  local f pid port
  f=$(pidfile "$1")
  [ -f "$f" ] || return 1
  pid=$(cat "$f" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  port=${1#*-}
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -Eq "redis-(server|sentinel|check-rdb).*:$port\b" || return 1
  echo "$pid"
}

listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

write_redis_conf() {
  local port=$1 replicaof=${2:-}
  mkdir -p "$DIR/redis-$port"
  {
    echo "port $port"
    echo "bind 127.0.0.1"
    echo "daemonize yes"
    echo "pidfile $(pidfile "redis-$port")"
    echo "logfile $DIR/redis-$port.log"
    echo "dir $DIR/redis-$port"
    echo 'save ""'
    echo "appendonly no"
    echo "repl-diskless-sync yes"
    echo "repl-diskless-sync-delay 0"
    echo "repl-ping-replica-period 1"
    if [ -n "$replicaof" ]; then echo "replicaof ${replicaof/:/ }"; fi
    if [ -n "$PASSWORD" ]; then
      echo "requirepass $PASSWORD"
      echo "masterauth $PASSWORD"
    fi
  } >"$DIR/redis-$port.conf"
}

write_sentinel_conf() {
  local port=$1
  mkdir -p "$DIR/sentinel-$port"
  {
    echo "port $port"
    echo "bind 127.0.0.1"
    echo "daemonize yes"
    echo "pidfile $(pidfile "sentinel-$port")"
    echo "logfile $DIR/sentinel-$port.log"
    echo "dir $DIR/sentinel-$port"
    echo "sentinel resolve-hostnames no"
    echo "sentinel monitor $NAME 127.0.0.1 ${REDIS_PORTS[0]} 2"
    echo "sentinel down-after-milliseconds $NAME $DOWN_AFTER_MS"
    echo "sentinel failover-timeout $NAME $FAILOVER_TIMEOUT_MS"
    echo "sentinel parallel-syncs $NAME 2"
    if [ -n "$PASSWORD" ]; then echo "sentinel auth-pass $NAME $PASSWORD"; fi
    if [ -n "$SENTINEL_PASSWORD" ]; then
      echo "requirepass $SENTINEL_PASSWORD"
      echo "sentinel sentinel-pass $SENTINEL_PASSWORD"
    fi
  } >"$DIR/sentinel-$port.conf"
}

# wait_for WHAT SECONDS CMD...: retry CMD every 0.1 s.
wait_for() {
  local what=$1 secs=$2; shift 2
  local i
  for ((i = 0; i < secs * 10; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  die "timed out after ${secs}s waiting for $what (logs in $DIR)"
}

pong() { [ "$(cli "$1" PING 2>/dev/null)" = PONG ]; }
in_sync() { cli "$1" INFO replication 2>/dev/null | grep -q '^master_link_status:up'; }
quorum() { cli "$1" SENTINEL ckquorum "$NAME" 2>/dev/null | grep -q '^OK'; }
knows_replicas() {
  local n
  n=$(cli "$1" SENTINEL master "$NAME" 2>/dev/null | awk 'prev=="num-slaves"{print; exit} {prev=$0}')
  [ "${n:-0}" -ge 2 ]
}

master_addr() {
  local p out
  for p in "${SENTINEL_PORTS[@]}"; do
    if out=$(cli "$p" SENTINEL get-master-addr-by-name "$NAME" 2>/dev/null) && [ "$(echo "$out" | wc -l)" -eq 2 ]; then
      echo "$out" | paste -sd: -
      return 0
    fi
  done
  return 1
}

start() {
  mkdir -p "$DIR"
  local running=0 total=0 n
  for n in "${REDIS_PORTS[@]/#/redis-}" "${SENTINEL_PORTS[@]/#/sentinel-}"; do
    total=$((total + 1))
    if ours "$n" >/dev/null; then running=$((running + 1)); fi
  done
  if [ "$running" -eq "$total" ]; then
    echo "redis-sentinel.sh: already running (master $(master_addr || echo unknown))"
    return 0
  fi
  if [ "$running" -gt 0 ]; then
    die "$running of $total processes of the set are running: run '$0 stop' first (or '$0 revive')"
  fi
  local port
  for port in "${REDIS_PORTS[@]}" "${SENTINEL_PORTS[@]}"; do
    if listening "$port"; then die "port $port is in use by a process this script did not start"; fi
  done
  # A fresh set: the Sentinels rewrite their files as they learn, so old state would mislead them.
  rm -rf "${DIR:?}"/redis-* "${DIR:?}"/sentinel-*
  write_redis_conf "${REDIS_PORTS[0]}"
  "$REDIS_SERVER" "$DIR/redis-${REDIS_PORTS[0]}.conf" 9>&-
  wait_for "the master on ${REDIS_PORTS[0]}" 10 pong "${REDIS_PORTS[0]}"
  for port in "${REDIS_PORTS[@]:1}"; do
    write_redis_conf "$port" "127.0.0.1:${REDIS_PORTS[0]}"
    "$REDIS_SERVER" "$DIR/redis-$port.conf" 9>&-
  done
  for port in "${REDIS_PORTS[@]:1}"; do
    wait_for "the replica on $port to sync" 20 in_sync "$port"
  done
  for port in "${SENTINEL_PORTS[@]}"; do
    write_sentinel_conf "$port"
    "$REDIS_SENTINEL" "$DIR/sentinel-$port.conf" 9>&-
  done
  for port in "${SENTINEL_PORTS[@]}"; do
    wait_for "Sentinel $port to answer" 10 pong "$port"
    wait_for "Sentinel $port to see a quorum" 30 quorum "$port"
    wait_for "Sentinel $port to see both replicas" 30 knows_replicas "$port"
  done
  echo "redis-sentinel.sh: master 127.0.0.1:${REDIS_PORTS[0]}, replicas ${REDIS_PORTS[*]:1}, Sentinels ${SENTINEL_PORTS[*]} ($NAME); state in $DIR"
}

stop() {
  local n pid i stopped=0
  for n in "${SENTINEL_PORTS[@]/#/sentinel-}" "${REDIS_PORTS[@]/#/redis-}"; do
    if pid=$(ours "$n"); then
      kill -TERM "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        [ -d "/proc/$pid" ] || break
        sleep 0.1
      done
      if [ -d "/proc/$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
      stopped=$((stopped + 1))
    fi
    rm -f "$(pidfile "$n")"
  done
  if [ -d "$DIR" ]; then rm -rf "${DIR:?}"/redis-* "${DIR:?}"/sentinel-*; fi
  echo "redis-sentinel.sh: stopped $stopped process(es)"
}

status() {
  local n pid port role
  for n in "${REDIS_PORTS[@]/#/redis-}" "${SENTINEL_PORTS[@]/#/sentinel-}"; do
    port=${n#*-}
    if pid=$(ours "$n"); then
      role=$(cli "$port" INFO replication 2>/dev/null | tr -d '\r' | sed -n 's/^role://p')
      echo "$n pid $pid ${role:-sentinel}"
    else
      echo "$n down"
    fi
  done
  echo "master $(master_addr || echo 'unknown (no Sentinel answers)')"
}

kill_master() {
  local addr port pid
  addr=$(master_addr) || die "no Sentinel names a master"
  port=${addr##*:}
  pid=$(ours "redis-$port") || die "the master $addr is not a process of this set"
  kill -KILL "$pid"
  echo "$port"
}

revive() {
  local addr port
  addr=$(master_addr) || die "no Sentinel names a master"
  for port in "${REDIS_PORTS[@]}"; do
    if ! ours "redis-$port" >/dev/null && [ "127.0.0.1:$port" != "$addr" ]; then
      if listening "$port"; then die "port $port is in use by a process this script did not start"; fi
      write_redis_conf "$port" "$addr"
      "$REDIS_SERVER" "$DIR/redis-$port.conf" 9>&-
      wait_for "the revived replica on $port to sync" 20 in_sync "$port"
      echo "redis-sentinel.sh: $port is back as a replica of $addr"
    fi
  done
}

url() {
  local p out=()
  for p in "${SENTINEL_PORTS[@]}"; do out+=("sentinel://127.0.0.1:$p"); done
  (IFS=';'; echo "${out[*]}")
}

cmd=${1:-}
case "$cmd" in
  start | stop | revive)
    mkdir -p "$DIR"
    exec 9>"$DIR/.lock"
    flock 9
    "$cmd"
    ;;
  status) status ;;
  master) master_addr || die "no Sentinel names a master" ;;
  kill-master) kill_master ;;
  url) url ;;
  *) echo "usage: $0 start|stop|status|master|kill-master|revive|url" >&2; exit 2 ;;
esac
