#!/usr/bin/env bash
# quorum.sh [N] measures, in one run, the Go worker's drain rate from a quorum queue against a
# classic queue on the local RabbitMQ (N no-op tasks each, default 20000, printed with the ratio),
# then starts the 3-node cluster (scripts/rabbitmq-cluster.sh), drains N tasks from a quorum queue
# while the worker's node is killed with kill -9, prints the longest stretch without progress (the
# failover's cost) and stops the cluster. QUORUM_CLUSTER=0 skips the cluster part.
# Python Celery 5.2 workers cannot consume quorum queues (see bench/quorum/main.go).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

n=${1:-20000}
case $n in ''|*[!0-9]*) echo "usage: bench/quorum.sh [N]" >&2; exit 2;; esac

./scripts/services.sh
tmp=$(mktemp -d)
cluster=${QUORUM_CLUSTER:-1}
cleanup() {
  if [ "$cluster" = 1 ]; then ./scripts/rabbitmq-cluster.sh stop || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/quorum" ./bench/quorum
if [ "$cluster" = 1 ]; then
  ./scripts/rabbitmq-cluster.sh start
  "$tmp/quorum" -n "$n" -cluster -script ./scripts/rabbitmq-cluster.sh
else
  "$tmp/quorum" -n "$n"
fi
