#!/usr/bin/env bash
# drain-redis.sh [N] compares task throughput on the Redis broker, in one run: the Go worker and a
# Python Celery 5.2 worker (prefork -c 2, kombu's Redis transport) each drain N (default 5000) no-op
# diag.add tasks from a Redis queue (Redis database 12), with ignore_result and with Redis results,
# and the Go worker drains them from RabbitMQ too. It prints each rate and the ratios Go/Python on
# Redis and Go on Redis / Go on RabbitMQ. How the clock runs is documented in bench/drainredis/main.go.
# DRAIN_REDIS_PY_N (default N) sizes the Python worker's runs; DRAIN_REDIS_AMQP=false leaves out
# the Go worker's RabbitMQ runs (and the Go on Redis / Go on RabbitMQ ratio).
# BENCH_BIN=dir: take the programs from dir (bench/report.sh builds each once) instead of building
# them; BENCH_SERVICES_CHECKED=1: do not run scripts/services.sh (the caller did).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

n=${1:-5000}
case $n in ''|*[!0-9]*) echo "usage: bench/drain-redis.sh [N]" >&2; exit 2;; esac

[ "${BENCH_SERVICES_CHECKED:-}" = 1 ] || ./scripts/services.sh >/dev/null

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin=${BENCH_BIN:-}
if [ -z "$bin" ]; then
  bin=$tmp
  go build -o "$bin/worker" ./worker
  go build -o "$bin/drainredis" ./bench/drainredis
fi
timeout --kill-after=15s 300s "$bin/drainredis" -n "$n" -pyn "${DRAIN_REDIS_PY_N:-0}" -amqp="${DRAIN_REDIS_AMQP:-true}" \
  -worker "$bin/worker" -pytasks bench -timeout 280s
