#!/usr/bin/env bash
# chord.sh [N] times a chord of N (default 10000) no-op header tasks, chord(group(diag.add(i, 0)
# for i < N), diag.sum), from apply_async (canvas.Sender.Send) to the callback's result in Redis,
# once run by the Go worker (-c 25) and once by a Python Celery 5.2 worker (prefork -c 2), on the
# same RabbitMQ and Redis in the same run, Go first. It prints one line per side and the ratio
# python/go against the issue's target (>= 5x). What is timed, and how, is documented in
# bench/chord/main.go.
#
# It takes about a minute; the whole run is bounded at 7.5 minutes.
# BENCH_BIN=dir: take the programs from dir (bench/report.sh builds each once) instead of building
# them; BENCH_SERVICES_CHECKED=1: do not run scripts/services.sh (the caller did).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

n=${1:-10000}
case $n in ''|*[!0-9]*) echo "usage: bench/chord.sh [N]" >&2; exit 2;; esac

[ "${BENCH_SERVICES_CHECKED:-}" = 1 ] || ./scripts/services.sh

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin=${BENCH_BIN:-}
if [ -z "$bin" ]; then
  bin=$tmp
  go build -o "$bin/worker" ./worker
  go build -o "$bin/chord" ./bench/chord
fi

# chord has its own deadlines (-timeout for the run, -chord-timeout per chord) and cleans up on
# SIGTERM; timeout(1) is the last resort.
# After -timeout the cleanup may take another minute (a busy Python worker's warm shutdown).
timeout --kill-after=15s 450s "$bin/chord" -n "$n" -worker "$bin/worker" -pytasks bench \
  -chord-timeout 4m -timeout 360s
