#!/usr/bin/env bash
# serving.sh benchmarks the ads serving API (web/serving) against a hello-world net/http server, in
# one run, with wrk on loopback:
#
#  1. bench/serving/hello (the baseline) and bench/serving/server (serving.New over real Redis,
#     seeded with 20 forum rank lists and a default list of 200 candidates each, 2,000 creatives and
#     the switches, under a key prefix of its own) start on free loopback ports.
#  2. Max throughput of each: wrk -t2 -c64 -d10s (after a 2 s warm-up), the serving endpoint being
#     GET /v1/ads?forum=f1&placement=sidebar&count=3. Prints requests/s and the ratio
#     serving/hello (target >= 0.5), and, less sensitive to other load on the machine, the CPU time
#     per request of each server process (and of Redis, which may be shared). Degraded answers
#     (X-Ads-Degraded: Redis over its 50 ms budget, or the breaker open) are cheap and empty: the
#     serving max is the rate of full answers.
#  3. The serving endpoint at half its max rate, paced open-loop by bench/serving/load (latency
#     from each request's due time, cycling over the 20 forums): p50/p90/p99 (target p99 <= 5 ms);
#     then, as a control of what the machine itself adds, hello world at the same rate.
#  4. The server's own count of Redis round trips per /v1/ads request (a go-redis hook), printed
#     when it stops; its keys are deleted then.
#
#   REDIS_URL           default redis://127.0.0.1:6379/0
#   BENCH_SECS          seconds of each measurement (default 10)
#   SERVING_LOG_LEVEL   the server's log level (default warn; info = with production's request logs)
#   SERVING_GENERATION  the rank generation seeded in rank:meta (default 1, as ads.score writes;
#                       0 = none: the lists are then read on every request)
#   SERVER_CPUS         pin the servers (hello and serving) to these CPUs (taskset -c list; default:
#                       not pinned)
#   LOAD_CPUS           pin wrk and the paced load generator to these CPUs (default: not pinned).
#                       On a small machine the load generator otherwise competes with the server for
#                       the same cores; production's load comes from other machines. Redis is not
#                       pinned by the script.
#   BENCH_BIN           take hello, server and load from this directory (bench/report.sh builds each
#                       once) instead of building them
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

redis=${REDIS_URL:-redis://127.0.0.1:6379/0}
secs=${BENCH_SECS:-10}
case $secs in ''|*[!0-9]*|0) echo "usage: [BENCH_SECS=n] bench/serving.sh" >&2; exit 2;; esac
command -v wrk >/dev/null || { echo "wrk is required (scripts/services.sh installs it)" >&2; exit 1; }
prefix="bench:serving:$$_$RANDOM:"
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  redis-cli -u "$redis" --scan --pattern "$prefix*" | xargs -r redis-cli -u "$redis" unlink >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

bin=${BENCH_BIN:-}
if [ -z "$bin" ]; then
  bin=$tmp
  go build -o "$bin/hello" ./bench/serving/hello
  go build -o "$bin/server" ./bench/serving/server
  go build -o "$bin/load" ./bench/serving/load
fi

pin_server=() pin_load=()
if [ -n "${SERVER_CPUS:-}" ]; then pin_server=(taskset -c "$SERVER_CPUS"); fi
if [ -n "${LOAD_CPUS:-}" ]; then pin_load=(taskset -c "$LOAD_CPUS"); fi
# The paced load generator keeps every latency sample and its HTTP client allocates per request;
# its garbage collector is off (LOAD_GOGC, default off: a 10 s run stays well under 1 GiB) so that
# the measuring tool's own pauses do not land in the server's percentiles. The servers keep Go's
# defaults.
load_gogc=${LOAD_GOGC:-off}
wrk_bin=$(command -v wrk)
wrk() { "${pin_load[@]}" "$wrk_bin" "$@"; }

start() { # name binary args... ; sets addr
  local name=$1; shift
  "${pin_server[@]}" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pids+=($!)
  for _ in $(seq 200); do
    addr=$(sed -n 's/^listening on //p' "$tmp/$name.out")
    [ -n "$addr" ] && return 0
    sleep 0.05
  done
  echo "$name did not start:" >&2; cat "$tmp/$name.err" >&2; exit 1
}
start hello "$bin/hello"; hello=$addr
start server "$bin/server" -redis "$redis" -prefix "$prefix" -log-level "${SERVING_LOG_LEVEL:-warn}" -generation "${SERVING_GENERATION:-1}"; server=$addr; server_pid=${pids[-1]}

ads_url="http://$server/v1/ads?forum=f1&placement=sidebar&count=3"
body=$(curl -sf "$ads_url")
case $body in *'"click_url"'*) ;; *) echo "the serving endpoint answers no ads: $body" >&2; exit 1;; esac

stat() { curl -sf "http://$server/bench/stats" | sed -n "s/.*\"$1\":\([0-9-]*\).*/\1/p"; }
redis_cpu() { redis-cli -u "$redis" info cpu | tr -d '\r' | awk -F: '/^used_cpu_(sys|user):/ {s += $2} END {printf "%.3f", s}'; }
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
warm() { wrk -t2 -c64 -d2s "$1" >/dev/null; }
wrk_run() { # url -> wrk's output in $tmp/wrk.out; rps and requests in $rps $reqs
  wrk -t2 -c64 -d"${secs}s" "$1" >"$tmp/wrk.out"
  cat "$tmp/wrk.out" >&2
  if grep -q 'Non-2xx' "$tmp/wrk.out"; then echo "non-2xx answers from $1" >&2; exit 1; fi
  rps=$(awk '/^Requests\/sec:/ {printf "%d", $2}' "$tmp/wrk.out")
  reqs=$(awk '/requests in/ {print $1}' "$tmp/wrk.out")
  dur=$(awk '/requests in/ {sub(/s,$/, "", $4); print $4}' "$tmp/wrk.out")
}
per_req() { awk -v a="$1" -v n="$2" 'BEGIN { if (n > 0) printf "%.1f", a / n; else print "?" }'; }

echo "== hello world: wrk -t2 -c64 -d${secs}s http://$hello/" >&2
warm "http://$hello/"
t0=$(proc_ticks "${pids[0]}")
wrk_run "http://$hello/"
hello_rps=$rps
hello_cpu=$(per_req "$(( ($(proc_ticks "${pids[0]}") - t0) * 10000 ))" "$reqs")

echo "== serving: wrk -t2 -c64 -d${secs}s $ads_url" >&2
warm "$ads_url"
r0=$(stat requests); d0=$(stat degraded); rt0=$(stat round_trips); c0=$(stat cpu_ticks); rc0=$(redis_cpu)
wrk_run "$ads_url"
r1=$(stat requests); d1=$(stat degraded); rt1=$(stat round_trips); c1=$(stat cpu_ticks); rc1=$(redis_cpu)
n=$((r1 - r0))
# The serving max is the rate of full answers: a degraded one (over budget) is cheap and empty.
serving_rps=$(awk -v n="$n" -v d="$((d1 - d0))" -v t="$dur" 'BEGIN { printf "%d", (n - d) / t }')
serving_cpu=$(per_req "$(( (c1 - c0) * 10000 ))" "$n")
redis_cpu_req=$(awk -v a="$rc0" -v b="$rc1" -v n="$n" 'BEGIN { printf "%.1f", (b - a) * 1e6 / n }')

half=$((serving_rps / 2))
echo "== serving at half its max rate ($half/s), paced, ${secs}s" >&2
p0=$(stat requests); pd0=$(stat degraded); prt0=$(stat round_trips)
paced=$("${pin_load[@]}" env GOGC="$load_gogc" "$bin/load" -url "http://$server/v1/ads?forum={forum}&placement=sidebar&count=3" -forums 20 -rate "$half" -d "${secs}s" -c 64)
p1=$(stat requests); pd1=$(stat degraded); prt1=$(stat round_trips)
echo "== control: hello world at the same rate ($half/s), paced, ${secs}s" >&2
control=$("${pin_load[@]}" env GOGC="$load_gogc" "$bin/load" -url "http://$hello/" -rate "$half" -d "${secs}s" -c 64)

kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null || true
echo
printf 'hello world max:     %8d req/s   (%s us CPU per request in the server)\n' "$hello_rps" "$hello_cpu"
printf 'serving max:         %8d full answers/s, %d answers/s in all   (%s us CPU per request in the server, %s us in Redis; %d of %d answers degraded; %s Redis round trips per request)\n' \
  "$serving_rps" "$rps" "$serving_cpu" "$redis_cpu_req" "$((d1 - d0))" "$n" "$(per_req "$((rt1 - rt0))" "$n")"
awk -v s="$serving_rps" -v h="$hello_rps" 'BEGIN { printf "ratio serving/hello: %.2f (target >= 0.50)\n", s / h }'
echo "serving at half its max rate: $paced"
echo "control, hello world at the same rate: $control"
printf 'paced phase: %d requests, %d degraded, %s Redis round trips per request\n' "$((p1 - p0))" "$((pd1 - pd0))" "$(per_req "$((prt1 - prt0))" "$((p1 - p0))")"
grep -h 'redis round trips\|degraded answers' "$tmp/server.out" || { echo "the server printed no round-trip count:" >&2; cat "$tmp/server.err" >&2; exit 1; }
echo "(Redis is shared: its CPU per request includes whatever else used it meanwhile; load average now: $(cut -d' ' -f1-3 /proc/loadavg); servers on CPUs ${SERVER_CPUS:-any}, load generators on CPUs ${LOAD_CPUS:-any})"
