#!/usr/bin/env bash
# scale.sh [N] [BIG] [ETA] measures how the Go worker scales on the local RabbitMQ, in one run:
#  - throughput of 1, 2 and 4 worker processes (-c 25, prefetch 100 each) draining N (default
#    20000) no-op tasks from one queue, and from 4 queues (every process consuming all 4), every
#    task storing its result in Redis (the end signal with several consumers);
#  - the worker's RSS (start / peak / end) over the 1-process drain of N and of BIG (default
#    100000) tasks: flat = the peak does not grow with the number of queued tasks;
#  - its RSS while it holds ETA (default 100000) tasks with countdown 550 s, read at every 10,000.
# SCALE_PROCS (default 1,2,4) and SCALE_QUEUES (default 1,4) change the grid; SCALE_RUNS (default
# scale,rss,eta) picks the parts. What is timed, and how,
# is documented in bench/scale/main.go. Publishing is not timed but dominates the run time: about
# 3 minutes with the defaults on an idle 2-CPU machine.
# BENCH_BIN=dir: take the programs from dir (bench/report.sh builds each once) instead of building
# them; BENCH_SERVICES_CHECKED=1: do not run scripts/services.sh (the caller did).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

n=${1:-20000} big=${2:-100000} eta=${3:-100000}
case $n$big$eta in ''|*[!0-9]*) echo "usage: bench/scale.sh [N] [BIG] [ETA]" >&2; exit 2;; esac

[ "${BENCH_SERVICES_CHECKED:-}" = 1 ] || ./scripts/services.sh >/dev/null

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin=${BENCH_BIN:-}
if [ -z "$bin" ]; then
  bin=$tmp
  go build -o "$bin/worker" ./worker
  go build -o "$bin/scale" ./bench/scale
fi
# scale has its own deadline (-timeout) and cleans up on SIGTERM; timeout(1) is the last resort.
timeout --kill-after=15s 600s "$bin/scale" -worker "$bin/worker" -n "$n" -big "$big" -eta "$eta" \
  -procs "${SCALE_PROCS:-1,2,4}" -queues "${SCALE_QUEUES:-1,4}" -runs "${SCALE_RUNS:-scale,rss,eta}" -timeout 580s
