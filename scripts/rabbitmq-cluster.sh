#!/usr/bin/env bash
# rabbitmq-cluster.sh runs a 3-node RabbitMQ cluster on loopback, next to the single node that
# services.sh runs (rabbit@localhost on :5672), for the quorum-queue and failover tests and for an
# operator trying the cluster out:
#
#   node            AMQP              management          distribution
#   rmq1@localhost  127.0.0.1:5681    127.0.0.1:15681     25681
#   rmq2@localhost  127.0.0.1:5682    127.0.0.1:15682     25682
#   rmq3@localhost  127.0.0.1:5683    127.0.0.1:15683     25683
#
# Usage:
#   scripts/rabbitmq-cluster.sh start        start the nodes (fresh data) and join rmq2, rmq3 to rmq1
#   scripts/rabbitmq-cluster.sh stop         stop the three nodes and remove their data
#   scripts/rabbitmq-cluster.sh kill NODE    kill -9 one node (rmq1, rmq2 or rmq3): a crash, not a stop
#   scripts/rabbitmq-cluster.sh restart NODE start a killed or stopped node again (it rejoins)
#   scripts/rabbitmq-cluster.sh status       cluster_status as seen from the first running node
#   scripts/rabbitmq-cluster.sh urls         the broker_url failover list of the three nodes
#
# Each node has its own config file (the system /etc/rabbitmq/rabbitmq.conf pins the listener to
# 5672), enabled-plugins file, mnesia, log and pid paths under $RMQ_CLUSTER_DIR (default
# /tmp/forumads-rmq-cluster), owned by the rabbitmq user, and shares the system Erlang cookie
# (/var/lib/rabbitmq/.erlang.cookie), so rabbitmqctl reaches every node. The script touches only
# these three nodes: the single node of services.sh is never stopped, and stop removes only
# $RMQ_CLUSTER_DIR. guest/guest works on every node (loopback only, as RabbitMQ allows).
set -euo pipefail

DIR=${RMQ_CLUSTER_DIR:-/tmp/forumads-rmq-cluster}
NODES=(rmq1 rmq2 rmq3)
START_TIMEOUT=${RMQ_CLUSTER_START_TIMEOUT:-120}

log() { echo "rabbitmq-cluster: $*" >&2; }
die() { log "$*"; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# index rmqN -> N, refusing anything else.
index() {
  case "$1" in
    rmq1|rmq1@localhost) echo 1 ;;
    rmq2|rmq2@localhost) echo 2 ;;
    rmq3|rmq3@localhost) echo 3 ;;
    *) die "unknown node '$1' (rmq1, rmq2 or rmq3)" ;;
  esac
}

# node_env N: the environment rabbitmq-server and rabbitmqctl need for node rmqN.
node_env() {
  local n=$1 d="$DIR/rmq$1"
  echo RABBITMQ_NODENAME="rmq$n@localhost" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="568$n" RABBITMQ_DIST_PORT="2568$n" \
    RABBITMQ_MNESIA_BASE="$d/mnesia" RABBITMQ_LOG_BASE="$d/log" \
    RABBITMQ_PID_FILE="$d/rmq$n.pid" RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" \
    RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config"
}

ctl() { # ctl N args...: rabbitmqctl against rmqN
  local n=$1; shift
  as_root rabbitmqctl -q -n "rmq$n@localhost" "$@"
}

prepare() {
  local n=$1 d="$DIR/rmq$1"
  mkdir -p "$d/mnesia" "$d/log"
  cat >"$d/rabbitmq.conf" <<EOF
listeners.tcp.local = 127.0.0.1:568$n
management.tcp.ip = 127.0.0.1
management.tcp.port = 1568$n
cluster_partition_handling = pause_minority
EOF
  echo '[rabbitmq_management].' >"$d/enabled_plugins"
  echo '[].' >"$d/advanced.config"
  chown -R rabbitmq:rabbitmq "$DIR"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_node() {
  local n=$1
  if port_open "568$n"; then die "port 568$n is taken: rmq$n is already running (or something else is there)"; fi
  log "starting rmq$n@localhost (amqp :568$n, management :1568$n, distribution :2568$n)"
  # shellcheck disable=SC2046
  as_root env $(node_env "$n") rabbitmq-server -detached
}

wait_node() {
  local n=$1 deadline=$((SECONDS + START_TIMEOUT))
  # await_startup fails at once while the node has not registered yet: ask again until it answers.
  until ctl "$n" await_startup --timeout 10 >/dev/null 2>&1 && port_open "568$n" && port_open "1568$n"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "rmq$n@localhost did not start within ${START_TIMEOUT}s; its log:"
      tail -n 40 "$DIR/rmq$n/log/"*.log >&2 2>/dev/null || true
      exit 1
    fi
    sleep 1
  done
}

pid_of() { # the beam pid of rmqN, empty when it does not run (-detached writes no pid file)
  local pid
  for pid in $(pgrep -u rabbitmq -x beam.smp || true); do
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "RABBITMQ_NODENAME=rmq$1@localhost"; then
      echo "$pid"
      return
    fi
  done
}

cmd_start() {
  for n in 1 2 3; do
    if [ -n "$(pid_of $n)" ]; then die "rmq$n@localhost is already running: '$0 stop' first"; fi
  done
  rm -rf "$DIR"
  for n in 1 2 3; do prepare "$n"; done
  for n in 1 2 3; do start_node "$n"; done
  for n in 1 2 3; do wait_node "$n"; done
  for n in 2 3; do
    log "joining rmq$n@localhost to rmq1@localhost"
    ctl "$n" stop_app
    ctl "$n" join_cluster rmq1@localhost
    ctl "$n" start_app
    wait_node "$n"
  done
  local running
  running=$(ctl 1 eval 'length(rabbit_nodes:all_running()).')
  [ "$running" = 3 ] || die "the cluster has $running running nodes, want 3"
  log "cluster up: $(cmd_urls)"
}

cmd_stop() {
  local n pid pids=()
  for n in 1 2 3; do
    pid=$(pid_of "$n")
    [ -n "$pid" ] || continue
    log "stopping rmq$n@localhost (pid $pid)"
    ctl "$n" stop >/dev/null 2>&1 &
    pids+=("$pid")
  done
  wait
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
  done
  for n in 1 2 3; do
    [ -z "$(pid_of "$n")" ] || die "rmq$n@localhost still runs; its data in $DIR is kept"
  done
  rm -rf "$DIR"
}

cmd_kill() {
  local n pid
  n=$(index "$1")
  pid=$(pid_of "$n")
  [ -n "$pid" ] || die "rmq$n@localhost is not running"
  log "kill -9 rmq$n@localhost (pid $pid)"
  kill -9 "$pid"
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  die "rmq$n@localhost (pid $pid) survived kill -9"
}

cmd_restart() {
  local n
  n=$(index "$1")
  [ -z "$(pid_of "$n")" ] || die "rmq$n@localhost is running"
  [ -d "$DIR/rmq$n/mnesia" ] || die "rmq$n@localhost was never started: '$0 start' first"
  start_node "$n"
  wait_node "$n"
}

cmd_status() {
  for n in 1 2 3; do
    if [ -n "$(pid_of "$n")" ]; then ctl "$n" cluster_status; return; fi
  done
  die "no cluster node is running"
}

cmd_urls() { echo "amqp://guest:guest@127.0.0.1:5681//;amqp://guest:guest@127.0.0.1:5682//;amqp://guest:guest@127.0.0.1:5683//"; }

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  kill) [ $# -eq 2 ] || die "usage: $0 kill rmq1|rmq2|rmq3"; cmd_kill "$2" ;;
  restart) [ $# -eq 2 ] || die "usage: $0 restart rmq1|rmq2|rmq3"; cmd_restart "$2" ;;
  status) cmd_status ;;
  urls) cmd_urls ;;
  *) die "usage: $0 start|stop|kill NODE|restart NODE|status|urls" ;;
esac
