#!/usr/bin/env bash
# beat.sh [N] compares the Go beat with real `celery beat` (Debian's Celery 5.2) on the same
# schedules of N (default 10000) entries, in one run:
#  burst:  every entry crontab(minute='*'): all N due at once on each minute. For each beat: CPU and
#          RSS while it waits with nothing due (idle: should be ~0), then the publish lateness
#          (arrival at a consumer minus the due minute) p50/p99/max over one minute boundary.
#  spread: entry i every 10-20 s (500 distinct periods): a steady ~N/15 runs a second; lateness
#          (arrival minus due) over 65 s (BEAT_SPREAD_SECS). See bench/beat_py/beat_bench.py for how due is taken.
# Each run uses its own queue (deleted afterwards) and the Go beat its own Redis prefix.
# Takes about 7 minutes (BEAT_ONLY=go: 3; BEAT_MODES="spread": one mode). BEAT_SPREAD_SECS (default
# 65, at least 45) is the spread mode's window per beat: the busy CPU is read over 20 s from
# second max(20, window - 35), once every entry has run once. BENCH_BIN=dir takes the Go beat from
# dir instead of building it.
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
spread_secs=${BEAT_SPREAD_SECS:-65}
case $spread_secs in ''|*[!0-9]*) echo "BEAT_SPREAD_SECS must be a whole number" >&2; exit 2;; esac
if [ "$spread_secs" -lt 45 ]; then echo "BEAT_SPREAD_SECS must be at least 45" >&2; exit 2; fi
spread_wait=$(( spread_secs - 35 > 20 ? spread_secs - 35 : 20 ))
bin=${BENCH_BIN:-}
if [ -z "$bin" ]; then
  bin=$tmp
  go build -o "$bin/beat" ./beat
fi

# wait_second S: sleep until second S of the current minute (S < 60), or of the next one if passed.
wait_second() {
  local now; now=$(date +%s.%N)
  $py -c "import time,sys; n=float(sys.argv[1]); s=int(sys.argv[2]); t=(n//60)*60+s; t=t if t>n else t+60; time.sleep(t-n)" "$now" "$1"
}

run_burst() { # run_burst NAME QUEUE CMD...
  local name=$1 queue=$2; shift 2
  wait_second 5
  "$@" >"$tmp/$name.log" 2>&1 &
  local pid=$!; pids+=("$pid")
  # Start consuming before the next minute; measure idle CPU between seconds 25 and 45.
  $py $helper consume "$queue" 70 >"$tmp/$name.lat" &
  local cpid=$!
  wait_second 25
  echo "$name burst, idle: $($py $helper cpu "$pid" 20)"
  wait "$cpid"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  $py $helper stats "$name burst" <"$tmp/$name.lat"
}

run_spread() { # run_spread NAME QUEUE CMD...
  local name=$1 queue=$2; shift 2
  $py $helper consume "$queue" "$spread_secs" >"$tmp/$name.spread.lat" &
  local cpid=$!
  sleep 1
  "$@" >"$tmp/$name.spread.log" 2>&1 &
  local pid=$!; pids+=("$pid")
  sleep "$spread_wait"
  echo "$name spread, busy (~$((n / 15)) runs/s): $($py $helper cpu "$pid" 20)"
  wait "$cpid"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  $py $helper stats "$name spread" <"$tmp/$name.spread.lat"
}

for mode in ${BEAT_MODES:-burst spread}; do
  gq="bench.beat.go.$mode.$suffix"
  $py $helper config "$n" "$gq" "$prefix$mode:" "$mode" >"$tmp/celeryconfig.$mode.yaml"
  REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0} "run_$mode" go-beat "$gq" "$bin/beat" --config "$tmp/celeryconfig.$mode.yaml" -l warning
  [ "${BEAT_ONLY:-}" = go ] && continue   # BEAT_ONLY=go: skip celery beat
  pq="bench.beat.py.$mode.$suffix"
  (cd bench/beat_py && BEAT_N=$n BEAT_QUEUE=$pq BEAT_MODE=$mode "run_$mode" celery-beat "$pq" $py -m celery -A beatbench beat -s "$tmp/celerybeat-schedule.$mode" -l warning)
done
