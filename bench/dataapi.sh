#!/usr/bin/env bash
# dataapi.sh [ADS] benchmarks the data API's list endpoint on ADS ads (default 100000): it creates
# a PostgreSQL schema, seeds it with generate_series (bench/dataapi/seed.sql: ADS ads, ADS/4
# campaigns, ADS/100 advertisers), then bench/dataapi/main.go serves dataapi.New on a loopback port
# and walks GET /v1/ads?limit=50&cursor=… at a fixed 200 requests/s for 20 s, after the same load
# on the bare keyset query (the floor). It prints p50/p99/max, errors and the achieved rate of both,
# the api/floor ratios and a latency histogram. The schema is dropped at exit, also after a failure.
# Extra arguments after ADS go to the program (-rate, -duration, -walkers, -limit, -warmup).
#
#   DATABASE_URL  default postgres://forumads:forumads@127.0.0.1:5432/forumads?sslmode=disable
#   REDIS_URL     default redis://127.0.0.1:6379/0
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

ads=${1:-100000}
case $ads in ''|*[!0-9]*|0) echo "usage: bench/dataapi.sh [ADS>0] [program flags]" >&2; exit 2;; esac
shift || true
db=${DATABASE_URL:-postgres://forumads:forumads@127.0.0.1:5432/forumads?sslmode=disable}
redis=${REDIS_URL:-redis://127.0.0.1:6379/0}
suffix=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
schema=bench_dataapi_$suffix
prefix="bench:dataapi:$suffix:"
case $db in *\?*) dbs="$db&search_path=$schema";; *) dbs="$db?search_path=$schema";; esac

tmp=$(mktemp -d)
cleanup() {
  psql -q "$db" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/dataapi" ./bench/dataapi
psql -q -v ON_ERROR_STOP=1 "$db" -c "CREATE SCHEMA $schema"
start=$(date +%s.%N)
PGOPTIONS="-c search_path=$schema -c client_min_messages=warning" psql -q -v ON_ERROR_STOP=1 "$db" -f schema.sql >/dev/null
PGOPTIONS="-c search_path=$schema -c client_min_messages=warning" psql -q -v ON_ERROR_STOP=1 -v ads="$ads" "$db" -f bench/dataapi/seed.sql >/dev/null
printf 'seeded %d ads in %.1f s\n' "$ads" "$(echo "$(date +%s.%N) - $start" | bc)"
"$tmp/dataapi" -db "$dbs" -redis "$redis" -prefix "$prefix" "$@"
