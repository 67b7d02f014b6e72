#!/usr/bin/env bash
# beat.sh [N] compares the Go beat with real `celery beat` (Debian's Celery 5.2) on the same schedule:
# N (default 10000) entries, each crontab(minute='*'), so all N are due on every minute boundary.
# For each beat: CPU and RSS while it waits for the next minute with nothing due (idle: should be ~0),
# then the publish lateness (arrival at a consumer minus the due minute) p50/p99/max over one minute
# boundary. Each run uses its own queue (deleted afterwards) and the Go beat its own Redis prefix.
# Takes about 4 minutes (BEAT_ONLY=go: 2).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
n=${1:-10000}
case $n in ''|*[!0-9]*) echo "usage: bench/beat.sh [N]" >&2; exit 2;; esac
py=/usr/bin/python3
helper=$PWD/bench/beat_py/beat_bench.py
tmp=$(mktemp -d)
suffix=$RANDOM$RANDOM
prefix="beat-bench-$suffix:"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  redis-cli --scan --pattern "$prefix*" | xargs -r redis-cli del >/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/beat" ./beat

# wait_second S: sleep until second S of the current minute (S < 60), or of the next one if passed.
wait_second() {
  local now; now=$(date +%s.%N)
  $py -c "import time,sys; n=float(sys.argv[1]); s=int(sys.argv[2]); t=(n//60)*60+s; t=t if t>n else t+60; time.sleep(t-n)" "$now" "$1"
}

run() { # run NAME QUEUE CMD...
  local name=$1 queue=$2; shift 2
  wait_second 5
  "$@" >"$tmp/$name.log" 2>&1 &
  local pid=$!; pids+=("$pid")
  # Start consuming before the next minute; measure idle CPU between seconds 25 and 45.
  $py $helper consume "$queue" 70 >"$tmp/$name.lat" &
  local cpid=$!
  wait_second 25
  echo "$name: $($py $helper cpu "$pid" 20)"
  wait "$cpid"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  $py $helper stats "$name" <"$tmp/$name.lat"
}

gq="bench.beat.go.$suffix"
$py $helper config "$n" "$gq" "$prefix" >"$tmp/celeryconfig.yaml"
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0} run go-beat "$gq" "$tmp/beat" --config "$tmp/celeryconfig.yaml" -l warning

[ "${BEAT_ONLY:-}" = go ] && exit 0   # BEAT_ONLY=go: skip celery beat
pq="bench.beat.py.$suffix"
(cd bench/beat_py && BEAT_N=$n BEAT_QUEUE=$pq run celery-beat "$pq" $py -m celery -A beatbench beat -s "$tmp/celerybeat-schedule" -l warning)
