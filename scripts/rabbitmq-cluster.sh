#!/usr/bin/env bash
# rabbitmq-cluster.sh runs a 3-node RabbitMQ cluster on loopback, next to the single node that
# services.sh runs (rabbit@localhost on :5672), for the quorum-queue and failover tests and for an
# operator trying the cluster out. With the defaults:
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
#   scripts/rabbitmq-cluster.sh running      exit 0 when the three nodes run and are clustered, else 1
#                                            (for tests that reuse a started cluster)
#
# Settings (environment; the defaults give the table above):
#   RMQ_CLUSTER_PORT_BASE  default 5680: node N listens on AMQP BASE+N, management 10000+BASE+N,
#                          distribution 20000+BASE+N (BASE from 1024 to 45532)
#   RMQ_CLUSTER_NAME       default rmq: the nodes are NAME1@localhost, NAME2@localhost, NAME3@localhost
#                          (a letter, then letters, digits, '_' or '-')
#   RMQ_CLUSTER_DIR        default /tmp/forumads-NAME-cluster: an absolute path, used only by this script
#   RMQ_CLUSTER_START_TIMEOUT  default 120: seconds a node may take to start
# Bad values, and ports taken by something else, are refused with a message before anything starts.
#
# Each node has its own config file (the system /etc/rabbitmq/rabbitmq.conf pins the listener to
# 5672), enabled-plugins file, mnesia, log and pid paths under $RMQ_CLUSTER_DIR, owned by the rabbitmq
# user, and shares the system Erlang cookie (/var/lib/rabbitmq/.erlang.cookie), so rabbitmqctl
# reaches every node. The script touches only these three nodes: the single node of services.sh is
# never stopped, and stop removes only $RMQ_CLUSTER_DIR, and only when start made it (it holds the
# marker file .forumads-rabbitmq-cluster). guest/guest works on every node (loopback only, as
# RabbitMQ allows).
set -euo pipefail

log() { echo "rabbitmq-cluster: $*" >&2; }
die() { log "$*"; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

NAME=${RMQ_CLUSTER_NAME:-rmq}
BASE=${RMQ_CLUSTER_PORT_BASE:-5680}
DIR=${RMQ_CLUSTER_DIR:-/tmp/forumads-$NAME-cluster}
START_TIMEOUT=${RMQ_CLUSTER_START_TIMEOUT:-120}
MARKER=.forumads-rabbitmq-cluster

[[ $NAME =~ ^[A-Za-z][A-Za-z0-9_-]{0,31}$ ]] ||
  die "RMQ_CLUSTER_NAME='$NAME' is not a node name: a letter, then up to 31 letters, digits, '_' or '-'"
[[ $BASE =~ ^[1-9][0-9]{3,4}$ ]] && [ "$BASE" -ge 1024 ] && [ "$BASE" -le 45532 ] ||
  die "RMQ_CLUSTER_PORT_BASE='$BASE' is not a number from 1024 to 45532 (the ports are BASE+1..3, 10000+BASE+1..3 and 20000+BASE+1..3)"
[[ $DIR =~ ^/[A-Za-z0-9._/-]+$ ]] && [[ ! $DIR =~ (^|/)\.\.?(/|$) ]] && [ "${DIR%/}" != /tmp ] ||
  die "RMQ_CLUSTER_DIR='$DIR' must be an absolute path of letters, digits, '.', '_', '-' and '/', without . or .. parts, below /tmp or elsewhere but not /tmp itself"
[[ $START_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "RMQ_CLUSTER_START_TIMEOUT='$START_TIMEOUT' is not a number of seconds"
DIR=${DIR%/}
# The services.sh node (5672, 15672, 25672) and epmd (4369) are never ours, even when not running.
for n in 1 2 3; do
  for p in $((BASE + n)) $((10000 + BASE + n)) $((20000 + BASE + n)); do
    case $p in 4369|5672|15672|25672) die "RMQ_CLUSTER_PORT_BASE=$BASE puts node $n on port $p, which belongs to the services.sh node or epmd" ;; esac
  done
done

node() { echo "$NAME$1@localhost"; }
amqp_port() { echo $((BASE + $1)); }
mgmt_port() { echo $((10000 + BASE + $1)); }
dist_port() { echo $((20000 + BASE + $1)); }

# index NAMEN -> N, refusing anything else.
index() {
  case "$1" in
    "${NAME}1"|"${NAME}1@localhost") echo 1 ;;
    "${NAME}2"|"${NAME}2@localhost") echo 2 ;;
    "${NAME}3"|"${NAME}3@localhost") echo 3 ;;
    *) die "unknown node '$1' (${NAME}1, ${NAME}2 or ${NAME}3)" ;;
  esac
}

# node_env N: the environment rabbitmq-server and rabbitmqctl need for node NAMEN.
node_env() {
  local n=$1 d="$DIR/$NAME$1"
  echo RABBITMQ_NODENAME="$(node "$n")" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$(amqp_port "$n")" RABBITMQ_DIST_PORT="$(dist_port "$n")" \
    RABBITMQ_MNESIA_BASE="$d/mnesia" RABBITMQ_LOG_BASE="$d/log" \
    RABBITMQ_PID_FILE="$d/$NAME$n.pid" RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" \
    RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config"
}

ctl() { # ctl N args...: rabbitmqctl against NAMEN
  local n=$1; shift
  as_root rabbitmqctl -q -n "$(node "$n")" "$@"
}

prepare() {
  local n=$1 d="$DIR/$NAME$1"
  mkdir -p "$d/mnesia" "$d/log"
  cat >"$d/rabbitmq.conf" <<EOF
listeners.tcp.local = 127.0.0.1:$(amqp_port "$n")
management.tcp.ip = 127.0.0.1
management.tcp.port = $(mgmt_port "$n")
cluster_partition_handling = pause_minority
EOF
  echo '[rabbitmq_management].' >"$d/enabled_plugins"
  echo '[].' >"$d/advanced.config"
  chown -R rabbitmq:rabbitmq "$DIR"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# listener P: who listens on TCP port P on any address (empty when nobody does).
listener() {
  if command -v ss >/dev/null; then
    as_root ss -Hltnp "sport = :$1" 2>/dev/null | awk '{print $4, $6}' | head -n 1
  elif port_open "$1"; then
    echo "127.0.0.1:$1"
  fi
}

# ports_free N: refuse to start node N when one of its three ports is taken by something else.
ports_free() {
  local n=$1 what p who
  for what in amqp mgmt dist; do
    p=$("${what}_port" "$n")
    who=$(listener "$p")
    [ -z "$who" ] || die "port $p ($what of $(node "$n")) is taken by something else: $who; pick free ports with RMQ_CLUSTER_PORT_BASE"
  done
}

start_node() {
  local n=$1
  ports_free "$n"
  log "starting $(node "$n") (amqp :$(amqp_port "$n"), management :$(mgmt_port "$n"), distribution :$(dist_port "$n"))"
  # shellcheck disable=SC2046
  as_root env $(node_env "$n") rabbitmq-server -detached
}

wait_node() {
  local n=$1 deadline=$((SECONDS + START_TIMEOUT))
  # await_startup fails at once while the node has not registered yet: ask again until it answers.
  until ctl "$n" await_startup --timeout 10 >/dev/null 2>&1 && port_open "$(amqp_port "$n")" && port_open "$(mgmt_port "$n")"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "$(node "$n") did not start within ${START_TIMEOUT}s; its log:"
      tail -n 40 "$DIR/$NAME$n/log/"*.log >&2 2>/dev/null || true
      exit 1
    fi
    sleep 1
  done
}

pid_of() { # the beam pid of NAMEN, empty when it does not run (-detached writes no pid file)
  local pid want
  want="RABBITMQ_NODENAME=$(node "$1")"
  for pid in $(pgrep -u rabbitmq -x beam.smp || true); do
    if as_root cat "/proc/$pid/environ" 2>/dev/null | tr '\0' '\n' | grep -qxF "$want"; then
      echo "$pid"
      return
    fi
  done
}

# clustered N: the sorted running members as node N sees them.
clustered() { ctl "$1" eval 'lists:sort([atom_to_list(N) || N <- rabbit_nodes:all_running()]).' 2>/dev/null; }
want_members() { echo "[\"$(node 1)\",\"$(node 2)\",\"$(node 3)\"]"; }

cmd_start() {
  for n in 1 2 3; do
    if [ -n "$(pid_of $n)" ]; then die "$(node $n) is already running: '$0 stop' first"; fi
  done
  for n in 1 2 3; do ports_free "$n"; done
  if [ -e "$DIR" ] && [ ! -e "$DIR/$MARKER" ] && [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
    die "$DIR exists and was not made by this script (no $MARKER): remove it or pick RMQ_CLUSTER_DIR"
  fi
  rm -rf "$DIR"
  mkdir -p "$DIR"
  echo "made by scripts/rabbitmq-cluster.sh for $(node 1) $(node 2) $(node 3)" >"$DIR/$MARKER"
  for n in 1 2 3; do prepare "$n"; done
  for n in 1 2 3; do start_node "$n"; done
  for n in 1 2 3; do wait_node "$n"; done
  for n in 2 3; do
    log "joining $(node "$n") to $(node 1)"
    ctl "$n" stop_app
    ctl "$n" join_cluster "$(node 1)"
    ctl "$n" start_app
    wait_node "$n"
  done
  local members
  members=$(clustered 1)
  [ "$members" = "$(want_members)" ] || die "the cluster runs $members, want $(want_members)"
  log "cluster up: $(cmd_urls)"
}

cmd_stop() {
  local n pid pids=()
  for n in 1 2 3; do
    pid=$(pid_of "$n")
    [ -n "$pid" ] || continue
    log "stopping $(node "$n") (pid $pid)"
    ctl "$n" stop >/dev/null 2>&1 &
    pids+=("$pid")
  done
  wait
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
  done
  for n in 1 2 3; do
    [ -z "$(pid_of "$n")" ] || die "$(node "$n") still runs; its data in $DIR is kept"
  done
  if [ -e "$DIR" ] && [ ! -e "$DIR/$MARKER" ]; then
    die "$DIR was not made by this script (no $MARKER): not removing it"
  fi
  rm -rf "$DIR"
}

cmd_kill() {
  local n pid
  n=$(index "$1")
  pid=$(pid_of "$n")
  [ -n "$pid" ] || die "$(node "$n") is not running"
  log "kill -9 $(node "$n") (pid $pid)"
  kill -9 "$pid"
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  die "$(node "$n") (pid $pid) survived kill -9"
}

cmd_restart() {
  local n
  n=$(index "$1")
  [ -z "$(pid_of "$n")" ] || die "$(node "$n") is running"
  [ -d "$DIR/$NAME$n/mnesia" ] || die "$(node "$n") was never started: '$0 start' first"
  start_node "$n"
  wait_node "$n"
}

cmd_status() {
  for n in 1 2 3; do
    if [ -n "$(pid_of "$n")" ]; then ctl "$n" cluster_status; return; fi
  done
  die "no cluster node is running"
}

cmd_running() {
  local n members
  for n in 1 2 3; do
    [ -n "$(pid_of "$n")" ] || { log "$(node "$n") is not running"; exit 1; }
    port_open "$(amqp_port "$n")" || { log "$(node "$n") does not listen on :$(amqp_port "$n")"; exit 1; }
  done
  members=$(clustered 1) || { log "$(node 1) does not answer"; exit 1; }
  [ "$members" = "$(want_members)" ] || { log "the cluster runs ${members:-nothing}, want $(want_members)"; exit 1; }
  log "running: $(node 1), $(node 2), $(node 3)"
}

cmd_urls() {
  local n urls=()
  for n in 1 2 3; do urls+=("amqp://guest:guest@127.0.0.1:$(amqp_port "$n")//"); done
  (IFS=';'; echo "${urls[*]}")
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  kill) [ $# -eq 2 ] || die "usage: $0 kill ${NAME}1|${NAME}2|${NAME}3"; cmd_kill "$2" ;;
  restart) [ $# -eq 2 ] || die "usage: $0 restart ${NAME}1|${NAME}2|${NAME}3"; cmd_restart "$2" ;;
  status) cmd_status ;;
  urls) cmd_urls ;;
  running) cmd_running ;;
  *) die "usage: $0 start|stop|kill NODE|restart NODE|status|urls|running" ;;
esac
