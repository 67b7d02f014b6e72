#!/usr/bin/env bash
# score.sh [ADS] benchmarks ads scoring and cache warming on ADS ads (default 100000): it creates a
# PostgreSQL schema, fills it with bench/score/data.sql (ADS ads, ADS/4 campaigns, ADS/100
# advertisers, 500 forums, 3 stats rows per ad), then bench/score/main.go times a floor (reading the
# rows scoring reads), two Score runs and two Warm runs, printing seconds, the ratio to the floor and
# the peak RSS (VmHWM). The schema and the Redis keys are removed at exit.
#
#   DATABASE_URL  default postgres://forumads:forumads@127.0.0.1:5432/forumads?sslmode=disable
#   REDIS_URL     default redis://127.0.0.1:6379/0
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

ads=${1:-100000}
case $ads in ''|*[!0-9]*|0) echo "usage: bench/score.sh [ADS]" >&2; exit 2;; esac
db=${DATABASE_URL:-postgres://forumads:forumads@127.0.0.1:5432/forumads?sslmode=disable}
redis=${REDIS_URL:-redis://127.0.0.1:6379/0}
suffix=$RANDOM$RANDOM
schema=bench_score_$suffix
prefix="bench:score:$suffix:"
case $db in *\?*) dbs="$db&search_path=$schema";; *) dbs="$db?search_path=$schema";; esac

tmp=$(mktemp -d)
cleanup() {
  psql -q "$db" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  redis-cli -u "$redis" --scan --pattern "$prefix*" | xargs -r redis-cli -u "$redis" unlink >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/score" ./bench/score
psql -q -v ON_ERROR_STOP=1 "$db" -c "CREATE SCHEMA $schema"
start=$(date +%s.%N)
PGOPTIONS="-c search_path=$schema -c client_min_messages=warning" psql -q -v ON_ERROR_STOP=1 "$db" -f schema.sql >/dev/null
PGOPTIONS="-c search_path=$schema -c client_min_messages=warning" psql -q -v ON_ERROR_STOP=1 -v ads="$ads" "$db" -f bench/score/data.sql >/dev/null
printf 'loaded %d ads in %.1f s\n' "$ads" "$(echo "$(date +%s.%N) - $start" | bc)"
"$tmp/score" -db "$dbs" -redis "$redis" -prefix "$prefix"
