#!/usr/bin/env bash
# compare-worker.sh REV [N] [ROUNDS] drains N (default 20000) no-op tasks with the Go worker built at git
# revision REV and with the worker of the working tree, alternately, ROUNDS times (default 3), on the same
# RabbitMQ and Redis, with ignore_result and with Redis results (bench/drain's go-ignore and go-redis runs),
# and prints each run's rate and the median ratio now/REV. Use it to show that a change does not slow the
# worker down: both binaries are measured in the same invocation, never against an old figure.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

rev=${1:?usage: bench/compare-worker.sh REV [N] [ROUNDS]}
n=${2:-20000}
rounds=${3:-3}
case $n$rounds in ''|*[!0-9]*) echo "usage: bench/compare-worker.sh REV [N] [ROUNDS]" >&2; exit 2;; esac

./scripts/services.sh >/dev/null

tmp=$(mktemp -d)
cleanup() {
  git worktree remove --force "$tmp/src" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
git worktree add --detach -q "$tmp/src" "$rev"
(cd "$tmp/src" && go build -o "$tmp/worker-base" ./worker)
go build -o "$tmp/worker-now" ./worker
go build -o "$tmp/drain" ./bench/drain

# rate FILE RUN prints the tasks/s that drain reported for RUN ("go-ignore" or "go-redis"): its line reads
# "<mode> go <n> tasks in <t> = <rate>/s (...)".
rate() {
  local mode=ignore_result
  [ "$2" = go-redis ] && mode=redis_results
  awk -v mode="$mode" '$1 == mode && $2 == "go" && $4 == "tasks" { sub(/\/s$/, "", $8); print $8 }' "$1" | tail -1
}

for r in $(seq "$rounds"); do
  for side in base now; do
    timeout --kill-after=15s 300s "$tmp/drain" -n "$n" -runs go-ignore,go-redis -worker "$tmp/worker-$side" \
      -pytasks bench -timeout 280s >"$tmp/$side.$r" 2>&1 || { cat "$tmp/$side.$r"; exit 1; }
    printf 'round %d %-4s go-ignore %8s tasks/s   go-redis %8s tasks/s\n' "$r" "$side" \
      "$(rate "$tmp/$side.$r" go-ignore)" "$(rate "$tmp/$side.$r" go-redis)"
  done
done

median() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
for run in go-ignore go-redis; do
  b=$(for r in $(seq "$rounds"); do rate "$tmp/base.$r" "$run"; done | median)
  c=$(for r in $(seq "$rounds"); do rate "$tmp/now.$r" "$run"; done | median)
  awk -v run="$run" -v b="$b" -v c="$c" -v rev="$rev" \
    'BEGIN { printf "%-10s median %s: %.0f/s   now: %.0f/s   now/%s: %.2f\n", run, rev, b, c, rev, c / b }'
done
