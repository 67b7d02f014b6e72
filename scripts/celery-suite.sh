#!/usr/bin/env bash
# celery-suite.sh [SUITE_DIR] [pytest args...] runs Celery's own integration suite (the
# t/integration/test_*.py files of SUITE_DIR, default ../shared/celery-suite beside this repository)
# with pytest against Go workers: the suite's session worker is replaced by the Go worker binary
# (built here) with the suite's task set (--suite-tasks). SUITE_WORKER=python runs Celery's own
# Python worker instead, for comparison. The suite runs unchanged, from a temporary copy.
#
# Broker and backend: TEST_BROKER (default the RabbitMQ vhost celery-suite, created here with guest
# permissions) and TEST_BACKEND (default Redis database 15, flushed first), so that no other worker
# on the machine answers or takes the suite's tasks; REDIS_HOST (default 127.0.0.1) is where the
# suite's redis_echo/redis_count tasks write, as in Celery's suite.
#
# Other settings: SUITE_TEST_TIMEOUT (seconds per test, default 60), SUITE_CONCURRENCY (worker
# concurrency, default 1 as Celery's session worker), SUITE_QUEUES (more queues to consume),
# SUITE_RERUNS=1 keeps the suite's own flaky reruns (off by default: a rerun hides a failure),
# SUITE_KEEP=1 keeps the temporary directory (worker log, junit.xml), SUITE_DESELECT_EXPECTED=1
# leaves out the tests listed as expected to fail (CI, for its wall time).
#
# It prints pytest's summary and exits non-zero when a test failed or errored that is not listed
# for this worker in scripts/celery_suite/expected-failures.txt (each entry with its reason).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
export PATH=$PATH:/usr/local/go/bin

suite_dir="$repo/../shared/celery-suite"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ] && [ -d "$1" ]; then
  suite_dir=$1
  shift
fi
suite_dir=$(cd "$suite_dir" && pwd) || { echo "celery-suite: no suite directory $suite_dir" >&2; exit 2; }
if ! ls "$suite_dir"/t/integration/test_*.py >/dev/null 2>&1; then
  echo "celery-suite: $suite_dir has no t/integration/test_*.py" >&2
  exit 2
fi

worker=${SUITE_WORKER:-go}
case $worker in go|python) ;; *) echo "celery-suite: SUITE_WORKER must be go or python, not $worker" >&2; exit 2;; esac
py=/usr/bin/python3
vhost=celery-suite
export TEST_BROKER=${TEST_BROKER:-pyamqp://guest:guest@127.0.0.1:5672/$vhost}
export TEST_BACKEND=${TEST_BACKEND:-redis://127.0.0.1:6379/15}
export REDIS_HOST=${REDIS_HOST:-127.0.0.1}
export SUITE_WORKER=$worker
export SUITE_TEST_TIMEOUT=${SUITE_TEST_TIMEOUT:-60}

tmp=$(mktemp -d /tmp/celery-suite.XXXXXX)
cleanup() {
  if [ "${SUITE_KEEP:-}" = 1 ]; then echo "celery-suite: kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# The vhost of the run, with guest's permissions (idempotent), through the management API.
mgmt=http://127.0.0.1:15672/api
curl -fsS -u guest:guest -X PUT "$mgmt/vhosts/$vhost" -o /dev/null
curl -fsS -u guest:guest -X PUT -H 'content-type: application/json' \
  -d '{"configure":".*","write":".*","read":".*"}' "$mgmt/permissions/$vhost/guest" -o /dev/null
# A clean result database: results, chord counters and revokes of an earlier run are gone.
case $TEST_BACKEND in
  redis://127.0.0.1:6379/15) redis-cli -h 127.0.0.1 -n 15 flushdb >/dev/null ;;
esac

mkdir -p "$tmp/suite" "$tmp/bin"
cp -a "$suite_dir/." "$tmp/suite/"
cp "$repo/scripts/celery_suite/celery_suite_plugin.py" "$repo/scripts/celery_suite/celery_suite_app.py" "$tmp/suite/"
if [ "$worker" = go ]; then
  (cd "$repo" && go build -o "$tmp/bin/worker" ./worker)
  export SUITE_GO_WORKER=$tmp/bin/worker
  # An empty configuration: CELERY_BROKER_URL / CELERY_RESULT_BACKEND give the URLs.
  : >"$tmp/celeryconfig.yaml"
  export SUITE_GO_CONFIG=$tmp/celeryconfig.yaml
  export CELERY_BROKER_URL=$TEST_BROKER CELERY_RESULT_BACKEND=$TEST_BACKEND
fi
export SUITE_LOG_DIR=$tmp
export PYTHONPATH="$tmp/suite${PYTHONPATH:+:$PYTHONPATH}"

# SUITE_DESELECT_EXPECTED=1 (what CI sets) does not run the tests listed as expected to fail for
# this worker: they cost a timeout each (about 20 of them, a minute each); any other failure still
# fails the run. Entries whose reason starts with "test order" run all the same (see below). Without it every test runs and the list is checked both ways.
deselect=()
if [ "${SUITE_DESELECT_EXPECTED:-}" = 1 ]; then
  while read -r w nodeid reason; do
    # A "test order" entry still runs: it fails within its own get(timeout=5), and that wait lets
    # the tasks an earlier test left queued drain before the next test (test_retry polls for 5 s).
    [ "$w" = "$worker" ] && [ "${reason#test order}" = "$reason" ] && deselect+=(--deselect "$nodeid")
  done < <(grep -v '^[[:space:]]*#' "$repo/scripts/celery_suite/expected-failures.txt" | grep -v '^[[:space:]]*$')
fi

reruns=(-p no:rerunfailures)
if [ "${SUITE_RERUNS:-}" = 1 ]; then reruns=(); fi

echo "== Celery's integration suite ($suite_dir) against the $worker worker"
status=0
(cd "$tmp/suite" && "$py" -m pytest -p celery.contrib.pytest -p celery_suite_plugin -p no:cacheprovider \
  "${reruns[@]}" "${deselect[@]}" -o python_classes='test_*' -o python_files='test_*.py' --timeout="$SUITE_TEST_TIMEOUT" \
  -rfEX --junitxml="$tmp/junit.xml" t/integration "$@") || status=$?

if [ ! -s "$tmp/junit.xml" ]; then
  echo "celery-suite: pytest wrote no report (exit $status)" >&2
  tail -n 50 "$tmp/worker-$worker.log" 2>/dev/null || true
  exit 1
fi
"$py" "$repo/scripts/celery_suite/verdict.py" "$tmp/junit.xml" "$repo/scripts/celery_suite/expected-failures.txt" "$worker" || {
  echo "== last lines of the $worker worker's log"
  tail -n 40 "$tmp/worker-$worker.log" 2>/dev/null || true
  exit 1
}
