#!/usr/bin/env bash
# delayed.sh [N] [SPREAD] runs bench/delayed: N (default 1000) countdown tasks spread over 1 s …
# SPREAD (default 10m) plus 5 hours out, through native delayed delivery on a quorum queue of the
# local RabbitMQ, run by an in-process Go worker; it prints earliness (none allowed), lateness
# (p50/p99/max), RSS every 10 s and the most unacknowledged messages seen. About SPREAD + 1 min.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
./scripts/services.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/delayed" ./bench/delayed
"$tmp/delayed" -n "${1:-1000}" -spread "${2:-10m}"
