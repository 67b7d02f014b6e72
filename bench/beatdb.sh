#!/usr/bin/env bash
# beatdb.sh [N] compares the Go beat with Python's django-celery-beat DatabaseScheduler (`celery
# beat -S django`, Debian's Celery 5.2 / django-celery-beat 2.4) on the same N (default 10000)
# PeriodicTask rows, made through the models on the example project's real migrations in a schema
# of their own. Entry i runs every 60-120 s (500 distinct periods: ~N/90 runs a second). For each
# beat, over BEATDB_SECONDS (default 200: longer than Python's 3-minute sync, so its row writes
# count): runs sent (and due), publish lateness p50/p99/max (arrival at a consumer minus due; see
# bench/beatdb_py/beatdb_bench.py for how due is taken) and the SQL statements it sent, per minute. The rows are reset to
# "never ran" between the two runs. Each run has its own queue (deleted afterwards); the schema is
# dropped at the end. Takes about 2×BEATDB_SECONDS plus setup.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
n=${1:-10000}
case $n in ''|*[!0-9]*) echo "usage: bench/beatdb.sh [N]" >&2; exit 2;; esac
secs=${BEATDB_SECONDS:-200}
py=/usr/bin/python3
helper=$PWD/bench/beatdb_py/beatdb_bench.py
tmp=$(mktemp -d)
suffix=$RANDOM$RANDOM
schema="bench_beatdb_$suffix"
export DATABASE_URL=${DATABASE_URL:-postgres://forumads:forumads@127.0.0.1:5432/forumads?sslmode=disable}
case $DATABASE_URL in *\?*) dburl="$DATABASE_URL&search_path=$schema";; *) dburl="$DATABASE_URL?search_path=$schema";; esac
amqp=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672//}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  $py "$helper" schema drop "$schema" || true
  rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/beat" ./beat
$py "$helper" schema create "$schema"
export DJANGO_SETTINGS_MODULE=forumads_site.settings DJANGO_DATABASE_URL=$dburl PYTHONDONTWRITEBYTECODE=1
(cd examples/django && $py manage.py migrate --noinput -v 0 && $py "$helper" rows "$n")

per_minute() { # per_minute LOG: "<statements> SQL statements in <s> s" → statements per minute
  sed -n 's/.*: \([0-9]*\) SQL statements in \([0-9.]*\) s.*/\1 \2/p' "$1" | tail -1 |
    awk '{ if ($2 > 0) printf "%d SQL statements in %.0f s: %.0f per minute", $1, $2, $1 * 60 / $2; else print "no count" }'
}

run() { # run NAME QUEUE CMD...: the beat for $secs s with a consumer on QUEUE
  local name=$1 queue=$2; shift 2
  $py "$helper" consume "$queue" "$((secs + 5))" >"$tmp/$name.lat" &
  local cpid=$!
  sleep 1
  local t0; t0=$(date +%s.%N)
  "$@" >"$tmp/$name.log" 2>&1 &
  local pid=$!; pids+=("$pid")
  sleep "$secs"
  local end; end=$(date +%s.%N)
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  wait "$cpid"
  $py "$helper" stats "$name" "$t0" "$end" "$n" <"$tmp/$name.lat"
  echo "$name: $(per_minute "$tmp/$name.log")"
  if grep -q -i 'error\|traceback' "$tmp/$name.log"; then grep -i -m5 'error\|traceback' "$tmp/$name.log"; fi
}

gq="bench.beatdb.go.$suffix"
cat >"$tmp/go.yaml" <<YAML
broker_url: $amqp
task_default_queue: $gq
beat_scheduler: django_celery_beat.schedulers:DatabaseScheduler
beat_database_url: $dburl
YAML
run go-beat "$gq" "$tmp/beat" --config "$tmp/go.yaml" -l info --metrics-addr ""

(cd examples/django && $py "$helper" reset)
pq="bench.beatdb.py.$suffix"
cat >"$tmp/py.yaml" <<YAML
broker_url: $amqp
task_default_queue: $pq
YAML
(cd examples/django && FORUMADS_CONFIG=$tmp/py.yaml CELERY_BROKER_URL=$amqp run celery-beat "$pq" $py "$helper" beat)
