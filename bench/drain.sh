#!/usr/bin/env bash
# drain.sh [N] compares task throughput on the local RabbitMQ, in one run: the Go worker, a Python
# Celery 5.2 worker (prefork -c 2) and a bare amqp091-go consumer each drain N (default 20000) no-op
# Celery messages, with ignore_result and with Redis results; then the Go worker's peak RSS is read
# while it holds 10000 ETA tasks. It prints one line per run and a summary table with the ratios.
# How the clock starts and stops is documented in bench/drain/main.go.
#
# It finishes in under 5 minutes. DRAIN_ROUNDS=k (default 1) repeats the drain runs k times,
# interleaved, and summarises each rate by its median: about 90 s more per round. DRAIN_ACKS_LATE=1
# runs the Go worker with task_acks_late.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

n=${1:-20000}
rounds=${DRAIN_ROUNDS:-1}
case $n$rounds in ''|*[!0-9]*) echo "usage: [DRAIN_ROUNDS=k] bench/drain.sh [N]" >&2; exit 2;; esac

./scripts/services.sh

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/worker" ./worker
go build -o "$tmp/drain" ./bench/drain

# drain has its own deadline (-timeout) and cleans up on SIGTERM; timeout(1) is the last resort.
limit=$((150 + 120 * rounds))
timeout --kill-after=15s "${limit}s" "$tmp/drain" -n "$n" -rounds "$rounds" -worker "$tmp/worker" -pytasks bench \
  -timeout "$((limit - 20))s" ${DRAIN_ACKS_LATE:+-acks-late}
