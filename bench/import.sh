#!/usr/bin/env bash
# import.sh [ROWS] compares the ads feed importer (ads/importer) with psql's \copy of the same rows
# into the same tables, in one run. ROWS (default 200000) is the approximate feed size.
#
#  1. bench/import generates a CSV feed with ads/feedgen and converts it to one CSV per table
#     (ids assigned, parent ids resolved): the baseline loads those, so it does no lookups.
#  2. Baseline: a fresh schema (schema.sql applied), then psql \copy of forums, advertisers,
#     campaigns and ads, timed from psql's start to its end.
#  3. Ours: another fresh schema, then `bench/import run` (importer.Import of the feed: parse,
#     validate, COPY into staging tables, set-based upserts, two batches at a time on two
#     connections), timed the same way.
#  4. Ours again on the same schema: the idempotent re-import (nothing changes), for information.
#
# It prints rows/s for each and the ratio ours/psql (the target is >= 0.5). BENCH_ROUNDS=k (default 1)
# repeats steps 2-3 k times, alternating, and reports the median of each. The schemas are dropped
# at the end. DATABASE_URL selects the database (default the one scripts/services.sh creates).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

rows=${1:-200000}
rounds=${BENCH_ROUNDS:-1}
case $rows$rounds in ''|*[!0-9]*) echo "usage: [BENCH_ROUNDS=k] bench/import.sh [ROWS]" >&2; exit 2;; esac
db=${DATABASE_URL:-postgres://forumads:forumads@127.0.0.1:5432/forumads?sslmode=disable}

tmp=$(mktemp -d)
suffix="$$_${RANDOM}"
schemas=()
export PGOPTIONS="-c client_min_messages=warning"
cleanup() {
  for s in "${schemas[@]}"; do psql "$db" -qc "DROP SCHEMA IF EXISTS $s CASCADE" >/dev/null 2>&1 || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

fresh_schema() { # name
  schemas+=("$1")
  psql "$db" -q -v ON_ERROR_STOP=1 -c "DROP SCHEMA IF EXISTS $1 CASCADE" -c "CREATE SCHEMA $1" >/dev/null
  PGOPTIONS="$PGOPTIONS -c search_path=$1" psql "$db" -q -v ON_ERROR_STOP=1 -f schema.sql >/dev/null
}
now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

go build -o "$tmp/imp" ./bench/import
read -r total forums advertisers campaigns ads < <("$tmp/imp" gen -rows "$rows" -out "$tmp/feed.csv")
"$tmp/imp" tables -in "$tmp/feed.csv" -dir "$tmp"
echo "feed: $total rows ($forums forums, $advertisers advertisers, $campaigns campaigns, $ads ads), $(du -h "$tmp/feed.csv" | cut -f1) of CSV"

psql_times=() go_times=() re_times=()
for ((r = 1; r <= rounds; r++)); do
  s="bench_import_psql_${suffix}_$r"
  fresh_schema "$s"
  t0=$(now)
  PGOPTIONS="$PGOPTIONS -c search_path=$s" psql "$db" -q -v ON_ERROR_STOP=1 <<SQL
\copy forums (slug, name, category) FROM '$tmp/forums.csv' WITH (FORMAT csv)
\copy advertisers (id, external_id, name, email, status) FROM '$tmp/advertisers.csv' WITH (FORMAT csv)
\copy campaigns (id, external_id, advertiser_id, name, status, bid_micros, daily_budget_micros, start_at, end_at, target_forums, target_categories, target_countries, target_placements) FROM '$tmp/campaigns.csv' WITH (FORMAT csv)
\copy ads (external_id, campaign_id, title, body, image_url, click_url, status) FROM '$tmp/ads.csv' WITH (FORMAT csv, FORCE_NOT_NULL (body))
SQL
  t1=$(now)
  psql_times+=("$(secs "$t0" "$t1")")

  g="bench_import_go_${suffix}_$r"
  fresh_schema "$g"
  t0=$(now)
  "$tmp/imp" run -db "$db" -schema "$g" -in "$tmp/feed.csv" >"$tmp/summary.json" 2>"$tmp/run.log" || { cat "$tmp/run.log" >&2; exit 1; }
  t1=$(now)
  go_times+=("$(secs "$t0" "$t1")")
  t0=$(now)
  "$tmp/imp" run -db "$db" -schema "$g" -in "$tmp/feed.csv" >"$tmp/summary2.json" 2>"$tmp/run.log" || { cat "$tmp/run.log" >&2; exit 1; }
  t1=$(now)
  re_times+=("$(secs "$t0" "$t1")")

  # Both loaded the same rows.
  counts() { psql "$db" -Atc "SELECT (SELECT count(*) FROM $1.forums), (SELECT count(*) FROM $1.advertisers), (SELECT count(*) FROM $1.campaigns), (SELECT count(*) FROM $1.ads)"; }
  if [[ "$(counts "$s")" != "$(counts "$g")" ]]; then
    echo "row counts differ: psql $(counts "$s"), ours $(counts "$g")" >&2; exit 1
  fi
  psql "$db" -qc "DROP SCHEMA $s CASCADE" -c "DROP SCHEMA $g CASCADE" >/dev/null
done

p=$(median "${psql_times[@]}") g=$(median "${go_times[@]}") re=$(median "${re_times[@]}")
echo "summary of the last import: $(cat "$tmp/summary.json")"
echo "second import of the same feed: $(grep -o '"created":[0-9]*,"updated":[0-9]*,"unchanged":[0-9]*' "$tmp/summary2.json" | head -1)"
awk -v n="$total" -v p="$p" -v g="$g" -v re="$re" -v k="$rounds" 'BEGIN {
  printf "%-28s %8s %12s\n", "load (median of " k ")", "seconds", "rows/s"
  printf "%-28s %8.3f %12.0f\n", "psql \\copy (baseline)", p, n / p
  printf "%-28s %8.3f %12.0f\n", "importer.Import", g, n / g
  printf "%-28s %8.3f %12.0f\n", "importer.Import, unchanged", re, n / re
  printf "ratio ours/psql: %.2f (target >= 0.5)\n", p / g
}'
