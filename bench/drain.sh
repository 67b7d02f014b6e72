#!/usr/bin/env bash
# drain.sh [N] compares task throughput on the local RabbitMQ, in one run: the Go worker, a Python
# Celery 5.2 worker (prefork -c 2) and a bare amqp091-go consumer each drain N (default 20000) no-op
# Celery messages, with ignore_result and with Redis results; then the Go worker's peak RSS is read
# while it holds 10000 ETA tasks. It prints one line per run and a summary table with the ratios.
# How the clock starts and stops is documented in bench/drain/main.go.
#
# It finishes in under 5 minutes. DRAIN_ROUNDS=k (default 1) repeats the drain runs k times,
# interleaved, and summarises each rate by its median: about 90 s more per round. DRAIN_ACKS_LATE=1
# runs every Go worker run with task_acks_late (the go-ignore-late run always has it: the go-late
# line). DRAIN_RUNS (default ignore,redis,eta) picks the runs, as drain's -runs; DRAIN_PY_N (default
# N) is the size of the Python worker's runs, as drain's -pyn.
# BENCH_BIN=dir: take the programs from dir (bench/report.sh builds each once) instead of building
# them; BENCH_SERVICES_CHECKED=1: do not run scripts/services.sh (the caller did).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

n=${1:-20000}
rounds=${DRAIN_ROUNDS:-1}
case $n$rounds in ''|*[!0-9]*) echo "usage: [DRAIN_ROUNDS=k] bench/drain.sh [N]" >&2; exit 2;; esac

[ "${BENCH_SERVICES_CHECKED:-}" = 1 ] || ./scripts/services.sh

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin=${BENCH_BIN:-}
if [ -z "$bin" ]; then
  bin=$tmp
  go build -o "$bin/worker" ./worker
  go build -o "$bin/drain" ./bench/drain
fi

# drain has its own deadline (-timeout) and cleans up on SIGTERM; timeout(1) is the last resort.
limit=$((150 + 120 * rounds))
timeout --kill-after=15s "${limit}s" "$bin/drain" -n "$n" -rounds "$rounds" -worker "$bin/worker" -pytasks bench \
  -runs "${DRAIN_RUNS:-ignore,redis,eta}" -pyn "${DRAIN_PY_N:-0}" -timeout "$((limit - 20))s" ${DRAIN_ACKS_LATE:+-acks-late}
