#!/usr/bin/env bash
# djresults.sh [N] compares result writes per second to the django-db backend (django-celery-results'
# TaskResult table on PostgreSQL): N (default 5000) SUCCESS results with result_extended fields,
# each a new task id, written once by the Go backend (djangoapps/results, bench/djresults) and once
# by Python Celery 5.2's DatabaseBackend.store_result (bench/djresults_py/bench.py), in one run on
# one freshly migrated schema (dropped afterwards). Both sides write one at a time (c=1, as one
# worker process of Python stores its results); the Go side is also run with 8 writers (a Go
# worker stores from many goroutines). It prints a line per run and the ratios go/python.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
n=${1:-5000}
case $n in ''|*[!0-9]*) echo "usage: bench/djresults.sh [N]" >&2; exit 2;; esac
py=/usr/bin/python3
base=${DATABASE_URL:-postgres://forumads:forumads@127.0.0.1:5432/forumads?sslmode=disable}
schema=djr_bench_$RANDOM$RANDOM
case $base in *\?*) url="$base&search_path=$schema";; *) url="$base?search_path=$schema";; esac
tmp=$(mktemp -d)
cleanup() { PGOPTIONS='-c client_min_messages=warning' psql -q "$base" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

./scripts/services.sh
psql -q "$base" -c "CREATE SCHEMA $schema"
(cd examples/django && DJANGO_DATABASE_URL=$url $py manage.py migrate --noinput django_celery_results >/dev/null)
go build -o "$tmp/djresults" ./bench/djresults

go1=$("$tmp/djresults" -dsn "$url" -n "$n" -c 1); echo "$go1"
py1=$(DJANGO_DATABASE_URL=$url PYTHONPATH=$PWD/examples/django PYTHONDONTWRITEBYTECODE=1 $py bench/djresults_py/bench.py "$n"); echo "$py1"
go8=$("$tmp/djresults" -dsn "$url" -n "$n" -c 8); echo "$go8"
rate() { sed -E 's/.*= ([0-9]+) writes.*/\1/' <<<"$1"; }
$py -c "import sys; g1, p, g8 = map(float, sys.argv[1:]); print(f'ratio go/python: {g1 / p:.2f}x (one writer each), {g8 / p:.2f}x (Go with 8 writers)')" \
  "$(rate "$go1")" "$(rate "$py1")" "$(rate "$go8")"
