#!/usr/bin/env bash
# drain-redis.sh [N] compares task throughput on the Redis broker, in one run: the Go worker and a
# Python Celery 5.2 worker (prefork -c 2, kombu's Redis transport) each drain N (default 5000) no-op
# diag.add tasks from a Redis queue (Redis database 12), with ignore_result and with Redis results,
# and the Go worker drains them from RabbitMQ too. It prints each rate and the ratios Go/Python on
# Redis and Go on Redis / Go on RabbitMQ. How the clock runs is documented in bench/drainredis/main.go.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

n=${1:-5000}
case $n in ''|*[!0-9]*) echo "usage: bench/drain-redis.sh [N]" >&2; exit 2;; esac

./scripts/services.sh >/dev/null

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/worker" ./worker
go build -o "$tmp/drainredis" ./bench/drainredis
timeout --kill-after=15s 300s "$tmp/drainredis" -n "$n" -worker "$tmp/worker" -pytasks bench -timeout 280s
