#!/usr/bin/env bash
# chord.sh [N] times a chord of N (default 10000) no-op header tasks, chord(group(diag.add(i, 0)
# for i < N), diag.sum), from apply_async (canvas.Sender.Send) to the callback's result in Redis,
# once run by the Go worker (-c 25) and once by a Python Celery 5.2 worker (prefork -c 2), on the
# same RabbitMQ and Redis in the same run, Go first. It prints one line per side and the ratio
# python/go against the issue's target (>= 5x). What is timed, and how, is documented in
# bench/chord/main.go.
#
# It takes about a minute; the whole run is bounded at 7.5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

n=${1:-10000}
case $n in ''|*[!0-9]*) echo "usage: bench/chord.sh [N]" >&2; exit 2;; esac

./scripts/services.sh

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/worker" ./worker
go build -o "$tmp/chord" ./bench/chord

# chord has its own deadlines (-timeout for the run, -chord-timeout per chord) and cleans up on
# SIGTERM; timeout(1) is the last resort.
# After -timeout the cleanup may take another minute (a busy Python worker's warm shutdown).
timeout --kill-after=15s 450s "$tmp/chord" -n "$n" -worker "$tmp/worker" -pytasks bench \
  -chord-timeout 4m -timeout 360s
