#!/usr/bin/env bash
# timeseries.sh [N] benchmarks timeseries.Flush (ads.warm_timeseries) on one closed hour holding N
# (default 1000000) Redis counters: ceil(N/99) ads × 33 forums × 3 kinds. In one run it creates a
# PostgreSQL schema with the ads, writes the counters (statsgen.Live), measures a baseline (HSCAN
# the hash and COPY it raw into a temporary table: the data movement any flush pays), runs Flush,
# verifies that every ad's sums in ad_stats_hourly equal what was written and nothing is left in
# Redis, and prints seconds, counters/s and peak RSS (VmHWM) of each phase's own process, with the
# ratio flush/baseline. Everything it creates is removed at the end, also after a failure.
# DATABASE_URL and REDIS_URL choose the services (defaults: the ones scripts/services.sh starts).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

n=${1:-1000000}
case $n in ''|*[!0-9]*|0) echo "usage: bench/timeseries.sh [N>0]" >&2; exit 2;; esac

tmp=$(mktemp -d)
go build -o "$tmp/timeseries" ./bench/timeseries
sfx=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
names=(-schema "bench_ts_$sfx" -prefix "bench:ts:$sfx:")
trap '"$tmp/timeseries" cleanup "${names[@]}" || true; rm -rf "$tmp"' EXIT

"$tmp/timeseries" setup "${names[@]}" -state "$tmp/state.json" -n "$n"
"$tmp/timeseries" baseline "${names[@]}" -state "$tmp/state.json"
"$tmp/timeseries" flush "${names[@]}" -state "$tmp/state.json"
"$tmp/timeseries" verify "${names[@]}" -state "$tmp/state.json"
