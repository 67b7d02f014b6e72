#!/usr/bin/env bash
# sentinel-failover.sh [KILLS] soaks the Sentinel failover: the failover test of
# internal/sentinelset (a Go worker storing results through Sentinel, two beats on the Sentinel
# store, the serving API under load), once with the tasks on RabbitMQ (broker=amqp) and once on
# the Redis broker through the same Sentinels (broker=redis), with the master SIGKILLed KILLS
# times in each (default 5; each kill is followed by 5 s of traffic and the killed node's return
# as a replica). It prints the measured disruption of every kill: kill until the Sentinels name a
# new master, the longest time between two successful result-backend writes, the longest time the
# serving API gave no normal (not degraded) answer, the longest time between two of the client's
# sends. The test fails (and so does this script) if a task was lost, a beat slot sent twice, the
# serving API answered 5xx or (redis) a message stayed unacknowledged. It starts and stops the
# set of scripts/redis-sentinel.sh itself. About 2 x 15 s per kill plus the build.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
kills=${1:-5}
case $kills in ''|*[!0-9]*|0) echo "usage: bench/sentinel-failover.sh [KILLS]" >&2; exit 2;; esac
./scripts/services.sh >/dev/null
SENTINEL_FAILOVER_KILLS=$kills go test -count=1 -v -timeout 30m -run '^TestFailover$' ./internal/sentinelset/ 2>&1 |
  grep -E 'sentinel-failover:|^(--- |ok|FAIL|PASS)' | sed 's/^ *failover_test.go:[0-9]*: //'
exit "${PIPESTATUS[0]}"
