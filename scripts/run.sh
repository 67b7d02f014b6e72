#!/usr/bin/env bash
# run.sh sets up and runs the whole system on this machine: it installs and starts the services
# (RabbitMQ, Redis, PostgreSQL), builds the programs, applies schema.sql, loads the sample data
# (a generated advertiser feed and a day of hourly stats, the first time), queues the first
# scoring and runs every line of the Procfile under foreman. Stop it with Ctrl-C (foreman sends
# SIGTERM: the worker shuts down warmly). DATABASE_URL, REDIS_URL, CELERY_BROKER_URL and
# CELERY_RESULT_BACKEND override celeryconfig.yaml as for every program.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
./scripts/services.sh
mkdir -p bin samples
for p in manage $(awk -F': *' '/^[a-z]+:/ {print $2}' Procfile | awk '{print $2}' | sort -u); do
  go build -o "bin/$p" "./$p"
done
./bin/manage schema
# A feed from before the images were drawn locally points at picsum.photos: regenerate it, and the
# import below replaces those image URLs in PostgreSQL.
if [ -s samples/feed.csv ] && grep -q 'picsum\.photos' samples/feed.csv; then
  echo "run: samples/feed.csv has images on picsum.photos: generating it again with local ones" >&2
  rm samples/feed.csv
fi
if [ ! -s samples/feed.csv ]; then
  echo "run: generating samples/feed.csv (3,000 advertisers, 30,000 ads)" >&2
  ./bin/manage gen-feed -o samples/feed.csv.tmp && mv samples/feed.csv.tmp samples/feed.csv
fi
# The import is idempotent: on later starts it changes nothing.
./bin/manage -l info run ads.import_feed samples/feed.csv --kwargs '{"score": false}' >/dev/null
./bin/manage gen-stats --if-empty --days 1 --forums-per-ad 1
# The worker scores as soon as it starts; scoring queues ads.warm_cache.
./bin/manage call ads.score >/dev/null
# foreman gives each Procfile line PORT 5000, 5100, ...: serving is the third line, data the fourth.
export DATA_API_TOKENS=${DATA_API_TOKENS:-dev-token}
cat >&2 <<EOT
run: serving API  http://127.0.0.1:5200/v1/ads?forum=<slug>   demo page: http://127.0.0.1:5200/demo/thread
run: data API     http://127.0.0.1:5300/v1/campaigns (Authorization: Bearer $DATA_API_TOKENS)
run: dashboard    http://127.0.0.1:5300/dashboard#token=$DATA_API_TOKENS
run: RabbitMQ UI  http://127.0.0.1:15672 (guest/guest); metrics: worker :9808, beat :9809
EOT
exec foreman start -f Procfile -d .
