#!/usr/bin/env bash
# report.sh runs, one after the other on this machine, every bench issue 16 judges by, and prints
# ONE table of ratios (each measured against its baseline in the same run), with the core count,
# the load average and the versions of Go, RabbitMQ, Redis and Celery:
#
#   bench/drain.sh N          Go worker (early ack, and task_acks_late: the issue's goal 1) / Python
#                             Celery 5.2 prefork / bare amqp091-go (ack each, multi-ack every 50)
#                             on RabbitMQ, ignore_result and Redis results; RabbitMQ's CPU per task
#                             (from /proc of the beam.smp listening on 5672, as drain prints it);
#                             not its ETA hold (scale's covers it, at 100,000)
#   bench/drain-redis.sh N    the same Go / Python comparison on the Redis broker (not its Go on
#                             RabbitMQ runs, which the table does not use)
#   bench/asynq (own module)  asynq v0.26.0 no-op drain at concurrency 8 and 16, for Go/asynq
#   bench/scale.sh            1/2/4 worker processes on 1 and 4 queues; RSS over a drain of N and
#                             of BIG queued tasks; RSS per 10,000 held ETA tasks
#   bench/serving.sh          serving API p99 at half its own max rate vs hello-world net/http at
#                             the same rate, same paced generator (bench/serving/load, open loop,
#                             like wrk2), servers pinned to CPU 1 and the generators to CPU 0
#                             (REPORT_PIN=0: not pinned); the generator's CPU share is sampled here
#   bench/chord.sh N          chord of N no-op header tasks, Go vs Python worker
#   bench/beat.sh N           Go beat vs celery beat, the "spread" schedule only (the "burst" mode
#                             waits for minute boundaries: run bench/beat.sh for it)
#
# Every program is built once, first (the "build" step), and the scripts take them from there
# (BENCH_BIN); services.sh runs once. Each step's time is printed in the table's header.
#
# Sizes (smaller than each script's default where that keeps the whole run under 10 minutes on an
# idle 2-CPU machine; the table says which were used) can be changed with REPORT_DRAIN_N (20000),
# REPORT_DRAIN_PY_N (5000: the Python worker's drain runs; its rate is steady well before that),
# REPORT_DRAIN_ROUNDS (3: the drain runs are repeated, interleaved, and each figure is the median
# of its rounds; a 20,000-task drain takes about a second, and one round moved the goal-1 ratio
# between 0.88 and 0.91 in two idle runs),
# REPORT_DRAIN_REDIS_N (10000), REPORT_DRAIN_REDIS_PY_N (2500), REPORT_ASYNQ_N (20000),
# REPORT_SCALE_N (10000), REPORT_SCALE_BIG (100000), REPORT_SCALE_ETA (100000: both required by
# the issue), REPORT_SERVING_SECS (5), REPORT_CHORD_N (5000), REPORT_BEAT_N (10000),
# REPORT_BEAT_SECS (65: the spread window per beat; at 45 a loaded machine leaves celery beat no
# measured run: its first sends of 10,000 entries took over a minute at load average 8). REPORT_SKIP="beat chord" leaves steps out.
# REPORT_LOGS=dir keeps every step's full output there (default: a temp dir, removed at the end);
# REPORT_FROM=dir only prints the table from such a kept dir (give the same sizes).
#
# A step that fails is shown as FAILED in the table (its log tail goes to stderr) and the script
# exits 1 after printing the table. Ratios are only as good as the machine is quiet: the load
# average at the start and the end is printed; on a shared machine run it twice.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

drain_n=${REPORT_DRAIN_N:-20000}
drain_rounds=${REPORT_DRAIN_ROUNDS:-3}
drain_py_n=${REPORT_DRAIN_PY_N:-5000}
drain_redis_n=${REPORT_DRAIN_REDIS_N:-10000}
drain_redis_py_n=${REPORT_DRAIN_REDIS_PY_N:-2500}
asynq_n=${REPORT_ASYNQ_N:-20000}
scale_n=${REPORT_SCALE_N:-10000}
scale_big=${REPORT_SCALE_BIG:-100000}
scale_eta=${REPORT_SCALE_ETA:-100000}
serving_secs=${REPORT_SERVING_SECS:-5}
chord_n=${REPORT_CHORD_N:-5000}
beat_n=${REPORT_BEAT_N:-10000}
beat_secs=${REPORT_BEAT_SECS:-65}
for v in "$drain_n" "$drain_py_n" "$drain_rounds" "$drain_redis_n" "$drain_redis_py_n" "$asynq_n" "$scale_n" "$scale_big" "$scale_eta" "$serving_secs" "$chord_n" "$beat_n" "$beat_secs"; do
  case $v in ''|*[!0-9]*) echo "report.sh: sizes must be whole numbers (got '$v')" >&2; exit 2;; esac
done
skip=" ${REPORT_SKIP:-} "

./scripts/services.sh >/dev/null

if [ -n "${REPORT_FROM:-}" ]; then
  logs=$REPORT_FROM; keep=1   # only render the table from the logs of an earlier run (same sizes)
elif [ -n "${REPORT_LOGS:-}" ]; then
  logs=$REPORT_LOGS; mkdir -p "$logs"; keep=1
else
  logs=$(mktemp -d); keep=0
fi
tmp=$(mktemp -d)
cleanup() { rm -rf "$tmp"; [ "$keep" = 1 ] || rm -rf "$logs"; }
trap cleanup EXIT

began=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
failed=()

# step NAME CMD...: runs CMD with its output in $logs/NAME.log and its seconds in $logs/times; a
# failure is recorded, not fatal.
step() {
  local name=$1; shift
  if [[ $skip == *" $name "* ]]; then echo "report: $name skipped (REPORT_SKIP)" >&2; : >"$logs/$name.log"; echo "$name: skipped" >>"$logs/times"; return 0; fi
  local t0; t0=$(date +%s)
  echo "report: $name: $* ($(( t0 - began )) s into the run)" >&2
  if ! "$@" >"$logs/$name.log" 2>&1; then
    failed+=("$name")
    echo "report: $name FAILED; the end of its output:" >&2
    tail -n 20 "$logs/$name.log" | sed 's/^/  | /' >&2
  fi
  local took=$(( $(date +%s) - t0 ))
  echo "$name: ${took}s" >>"$logs/times"
  echo "report: $name took $took s" >&2
}

# The paced generator's CPU share during bench/serving.sh: every 0.1 s, the user+system ticks of
# each process named "load" below the serving.sh process (the last reading before it exits).
descends() { # PID ROOT: whether PID is ROOT or below it
  local p=$1
  while [ "$p" -gt 1 ]; do
    [ "$p" = "$2" ] && return 0
    p=$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null) || return 1
    [ -n "$p" ] || return 1
  done
  return 1
}
sample_load() { # ROOT OUT
  while kill -0 "$1" 2>/dev/null; do
    for p in $(pgrep -x load 2>/dev/null || true); do
      if descends "$p" "$1"; then
        s=$(awk '{print $22, $14 + $15}' "/proc/$p/stat" 2>/dev/null) && echo "$p $s"
      fi
    done
    sleep 0.1
  done >"$2"
}
serving() {
  local pin=()
  if [ "${REPORT_PIN:-1}" != 0 ]; then pin=(env SERVER_CPUS=1 LOAD_CPUS=0); fi
  "${pin[@]}" env BENCH_SECS="$serving_secs" bench/serving.sh &
  local pid=$!
  sample_load "$pid" "$logs/load.samples" &
  local spid=$!
  local rc=0
  wait "$pid" || rc=$?
  wait "$spid" || true
  return "$rc"
}
# Every program the steps run, built once (the scripts take them from BENCH_BIN).
bin=$tmp/bin
build() {
  mkdir -p "$bin"
  go build -o "$bin/" ./worker ./beat ./bench/drain ./bench/drainredis ./bench/scale ./bench/chord \
    ./bench/serving/hello ./bench/serving/server ./bench/serving/load
  (cd bench/asynq && go build -o "$bin/asynq" .)
}
export BENCH_BIN=$bin BENCH_SERVICES_CHECKED=1

if [ -z "${REPORT_FROM:-}" ]; then
  : >"$logs/times"
  step build build
  step drain env DRAIN_RUNS=ignore,redis DRAIN_PY_N="$drain_py_n" DRAIN_ROUNDS="$drain_rounds" bench/drain.sh "$drain_n"
  step drain-redis env DRAIN_REDIS_PY_N="$drain_redis_py_n" DRAIN_REDIS_AMQP=false bench/drain-redis.sh "$drain_redis_n"
  step asynq "$bin/asynq" -n "$asynq_n" -c 8,16 -timeout 3m
  step scale bench/scale.sh "$scale_n" "$scale_big" "$scale_eta"
  step serving serving
  step chord bench/chord.sh "$chord_n"
  step beat env BEAT_MODES=spread BEAT_SPREAD_SECS="$beat_secs" bench/beat.sh "$beat_n"
fi

# ---- extraction: every value is "?" when its line is missing (a failed or skipped step) ----
L=$logs
# drain.sh lines: "<mode> <kind> <n> tasks in <t>s = <rate>/s (... rabbitmq <x>µs/task ...)"
# With REPORT_DRAIN_ROUNDS > 1 every run has a line per round: each figure is their median.
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) print a[(NR + 1) / 2]; else printf "%.0f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
drain_rate() { awk -v m="$1" -v k="$2" '$1 == m && $2 == k { for (i = 3; i < NF; i++) if ($i == "=") { sub(/\/s$/, "", $(i+1)); print $(i+1); break } }' "$L/drain.log" | median; }
drain_mq() { awk -v m="$1" -v k="$2" '$1 == m && $2 == k { if (match($0, /rabbitmq -?[0-9]+µs\/task/)) { s = substr($0, RSTART + 9, RLENGTH - 9); sub(/µs.*/, "", s); print s } }' "$L/drain.log" | median; }
drain_own() { awk -v m="$1" -v k="$2" '$1 == m && $2 == k { if (match($0, /(worker|bench process) [0-9]+µs\/task/)) { s = substr($0, RSTART, RLENGTH); sub(/µs.*/, "", s); sub(/.* /, "", s); print s } }' "$L/drain.log" | median; }
go_ign=$(drain_rate ignore_result go); py_ign=$(drain_rate ignore_result python)
go_late=$(drain_rate ignore_result go-late); mq_late=$(drain_mq ignore_result go-late); own_late=$(drain_own ignore_result go-late)
bare=$(drain_rate ignore_result bare); bare_multi=$(drain_rate ignore_result bare-multi)
go_red=$(drain_rate redis_results go); py_red=$(drain_rate redis_results python)
mq_go=$(drain_mq ignore_result go); mq_multi=$(drain_mq ignore_result bare-multi); mq_bare=$(drain_mq ignore_result bare)
own_go=$(drain_own ignore_result go); own_multi=$(drain_own ignore_result bare-multi)
# drain-redis: "  go     on redis ignore_result     13856 tasks/s"
dr_rate() { awk -v k="$1" -v b="$2" -v m="$3" '$1 == k && $2 == "on" && $3 == b && $4 == m { print $5; exit }' "$L/drain-redis.log"; }
drg_ign=$(dr_rate go redis ignore_result); drp_ign=$(dr_rate python redis ignore_result)
drg_red=$(dr_rate go redis redis_results); drp_red=$(dr_rate python redis redis_results)
# asynq: "no-op asynq-c16 20000 tasks in 1.6s = 12467/s ..."
asynq_rate() { awk -v k="asynq-c$1" '$2 == k { for (i = 3; i < NF; i++) if ($i == "=") { sub(/\/s$/, "", $(i+1)); print $(i+1); exit } }' "$L/asynq.log"; }
aq8=$(asynq_rate 8); aq16=$(asynq_rate 16)
# scale: "redis_results  P proc x Q queue(s)  N tasks: M in Ts = R/s (...RSS start A MiB, peak B MiB, end C MiB...)"
scale_rate() { awk -v p="$1" -v q="$2" -v n="$3" '$2 == p && $5 == q && $7 == n { for (i = 7; i < NF; i++) if ($i == "=") { sub(/\/s$/, "", $(i+1)); print $(i+1); exit } }' "$L/scale.log"; }
scale_rss() { awk -v n="$1" '$2 == 1 && $5 == 1 && $7 == n { if (match($0, /RSS start [0-9.]+ MiB, peak [0-9.]+ MiB, end [0-9.]+ MiB/)) { print substr($0, RSTART + 4, RLENGTH - 4); exit } }' "$L/scale.log"; }
scale_peak() { scale_rss "$1" | sed -n 's/.*peak \([0-9.]*\) MiB.*/\1/p'; }
eta_line=$(sed -n 's/^ *\([0-9]*\) of \([0-9]*\) held, .*peak (VmHWM) \([0-9.]* MiB\): \([0-9.]* MiB\) per 10,000 held.*/\3 peak with \1 of \2 held; \4 per 10,000/p' "$L/scale.log")
eta_stop=$(sed -n 's/^ *intake stopped at \([0-9]*\) of.*/ (intake stopped at \1 held, the rest parked or still ready)/p' "$L/scale.log")
eta_steps=$(sed -n 's/^ *\([0-9]*\) taken: RSS \([0-9.]*\) MiB.*/\1:\2/p' "$L/scale.log" | tr '\n' ' ')
# serving: the p99 after "serving at half its max rate:" and after "control, hello world"
p99_after() { awk -v tag="$1" 'index($0, tag) == 1 { on = 1 } on && /latency:/ { for (i = 1; i < NF; i++) if ($i == "p99") { v = $(i+1); sub(/ms$/, "", v); print v; exit } }' "$L/serving.log"; }
p99_srv=$(p99_after "serving at half its max rate:"); p99_hello=$(p99_after "control, hello world")
half_rate=$(sed -n 's/^serving at half its max rate: paced: [0-9]* requests at \([0-9]*\)\/s target.*/\1/p' "$L/serving.log")
achieved() { awk -v tag="$1" 'index($0, tag) == 1 { if (match($0, /[0-9]+\/s achieved/)) { s = substr($0, RSTART, RLENGTH); sub(/\/s.*/, "", s); print s; exit } }' "$L/serving.log"; }
ach_srv=$(achieved "serving at half its max rate:"); ach_hello=$(achieved "control, hello world")
srv_max=$(sed -n 's/^serving max: *\([0-9]*\) full answers.*/\1/p' "$L/serving.log")
hello_max=$(sed -n 's/^hello world max: *\([0-9]*\) req.*/\1/p' "$L/serving.log")
# Generator CPU share: per pid, the highest tick count; pids in start order = serving run, hello run.
hz=$(getconf CLK_TCK)
load_share() { # Nth paced run (1 = serving, 2 = hello) -> CPUs used over the run's seconds
  [ -s "$logs/load.samples" ] || return 0
  sort -k2,2n -k3,3n "$logs/load.samples" | awk '{ t[$1] = $3; if (!($1 in s)) { s[$1] = $2; order[++k] = $1 } } END { print t[order['"$1"']] }' |
    awk -v hz="$hz" -v secs="$serving_secs" '$1 != "" { printf "%.2f", $1 / hz / secs }'
}
gen_srv=$(load_share 1 || true); gen_hello=$(load_share 2 || true)
# chord: "ratio python/go: 6.3x ..." and each side's seconds
chord_secs() { sed -n "s/^$1-workers: chord of [0-9]*: \([0-9.]*\) s .*/\1/p" "$L/chord.log"; }
chord_go=$(chord_secs go); chord_py=$(chord_secs python)
# beat spread: "<name> spread: N messages, lateness p50 X ms, p99 Y ms, max Z ms" and busy CPU
beat_p99() { sed -n "s/^$1 spread: .* p99 \([0-9.]*\) ms.*/\1/p" "$L/beat.log"; }
beat_cpu() { sed -n "s/^$1 spread, busy.*: cpu \([0-9.]*\) s over.*/\1/p" "$L/beat.log"; }
# Every message that arrived, measured or not ("... (N arrived, M first sends not measured)"): a
# beat that never sent an entry twice in the run measured no lateness but did send.
beat_sent() { sed -n -e "s/^$1 spread: .*(\([0-9]*\) arrived.*/\1/p" -e "t" -e "s/^$1 spread: \([0-9]*\) messages.*/\1/p" "$L/beat.log"; }
# "no lateness measured": celery beat counts an interval from its own last send, so with more entries
# than it sends in the run no entry is sent twice and nothing can be measured.
beat_unmeasured() { grep -q "^$1 spread: no lateness measured" "$L/beat.log" 2>/dev/null; }
bg_p99=$(beat_p99 go-beat); bp_p99=$(beat_p99 celery-beat)
bg_cpu=$(beat_cpu go-beat); bp_cpu=$(beat_cpu celery-beat)
bg_sent=$(beat_sent go-beat); bp_sent=$(beat_sent celery-beat)

# ---- versions ----
go_v=$(go version | awk '{print $3}')
mq_v=$(curl -sf -u guest:guest http://127.0.0.1:15672/api/overview 2>/dev/null |
  /usr/bin/python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["rabbitmq_version"], "(Erlang " + d["erlang_version"] + ")")' 2>/dev/null || echo "?")
redis_v=$(redis-cli info server 2>/dev/null | tr -d '\r' | sed -n 's/^redis_version://p')
celery_v=$(/usr/bin/python3 -c 'import celery, kombu; print(celery.__version__, "(kombu " + kombu.__version__ + ")")' 2>/dev/null || echo "?")
total=$(( $(date +%s) - began ))
if [ "${REPORT_PIN:-1}" != 0 ]; then
  pin_note="servers (hello, serving) pinned to CPU 1 and wrk + the generator to CPU 0 with taskset; Redis, RabbitMQ and other work on the machine unpinned"
else
  pin_note="nothing pinned (REPORT_PIN=0)"
fi

# ---- the table ----
# ratio A B [TARGET_OP TARGET]: A/B with 2 decimals and a verdict, or "?" when either is missing.
ratio() {
  awk -v a="${1:-}" -v b="${2:-}" -v op="${3:-}" -v t="${4:-}" 'BEGIN {
    if (a == "" || b == "" || a == "?" || b == "?" || b + 0 == 0) { print "?"; exit }
    if (a + 0 < 0 || b + 0 < 0) { print "? (negative reading: see the step log)"; exit }
    r = a / b; s = sprintf("%.2f", r)
    if (op == ">=") s = s "  " (r >= t ? "met" : "MISSED") " (>= " t ")"
    if (op == "<=") s = s "  " (r <= t ? "met" : "MISSED") " (<= " t ")"
    print s }'
}
v() { printf '%s' "${1:-?}"; }
row() { printf '%-48s %-24s %-24s %s\n' "$1" "$2" "$3" "$4"; }

echo
echo "bench/report.sh, $(date -u '+%Y-%m-%d %H:%M UTC'): $(nproc) CPUs, load average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end; $total s in all"
echo "versions: Go $go_v; RabbitMQ $mq_v; Redis $redis_v; Celery $celery_v; asynq v0.26.0"
echo "sizes: drain N=$drain_n (Python $drain_py_n; median of $drain_rounds rounds), drain-redis N=$drain_redis_n (Python $drain_redis_py_n), asynq N=$asynq_n, scale N=$scale_n / BIG=$scale_big / ETA=$scale_eta, serving ${serving_secs}s per phase, chord N=$chord_n, beat N=$beat_n (spread, ${beat_secs}s per beat)"
echo "step times: $( [ -s "$logs/times" ] && paste -sd, "$logs/times" | sed 's/,/, /g' || echo '?')"
echo
row "measure" "a" "b" "a/b"
row "drain ignore_result: Go acks_late / bare multi" "$(v "$go_late")/s" "$(v "$bare_multi")/s" "$(ratio "$go_late" "$bare_multi" '>=' 0.9)"
row "drain ignore_result: Go early ack / bare multi" "$(v "$go_ign")/s" "$(v "$bare_multi")/s" "$(ratio "$go_ign" "$bare_multi")"
row "drain ignore_result: Go / bare ack-each" "$(v "$go_ign")/s" "$(v "$bare")/s" "$(ratio "$go_ign" "$bare")"
row "drain ignore_result: Go / Python" "$(v "$go_ign")/s" "$(v "$py_ign")/s" "$(ratio "$go_ign" "$py_ign" '>=' 5)"
row "drain redis_results: Go / Python" "$(v "$go_red")/s" "$(v "$py_red")/s" "$(ratio "$go_red" "$py_red" '>=' 5)"
row "drain Go: redis_results / ignore_result" "$(v "$go_red")/s" "$(v "$go_ign")/s" "$(ratio "$go_red" "$go_ign" '>=' 0.85)"
row "RabbitMQ CPU/task: Go acks_late / bare multi" "$(v "$mq_late") us" "$(v "$mq_multi") us" "$(ratio "$mq_late" "$mq_multi" '<=' 1.1)"
row "RabbitMQ CPU/task: Go early ack / bare multi" "$(v "$mq_go") us" "$(v "$mq_multi") us" "$(ratio "$mq_go" "$mq_multi" '<=' 1.1)"
row "RabbitMQ CPU/task: Go / bare ack-each" "$(v "$mq_go") us" "$(v "$mq_bare") us" "$(ratio "$mq_go" "$mq_bare")"
row "consumer CPU/task: Go acks_late / bare multi" "$(v "$own_late") us" "$(v "$own_multi") us" "$(ratio "$own_late" "$own_multi")"
row "consumer CPU/task: Go early ack / bare multi" "$(v "$own_go") us" "$(v "$own_multi") us" "$(ratio "$own_go" "$own_multi")"
row "Redis broker ignore_result: Go / Python" "$(v "$drg_ign")/s" "$(v "$drp_ign")/s" "$(ratio "$drg_ign" "$drp_ign" '>=' 5)"
row "Redis broker redis_results: Go / Python" "$(v "$drg_red")/s" "$(v "$drp_red")/s" "$(ratio "$drg_red" "$drp_red" '>=' 5)"
row "Go (RabbitMQ, ignore) / asynq -c 8" "$(v "$go_ign")/s" "$(v "$aq8")/s" "$(ratio "$go_ign" "$aq8" '>=' 1)"
row "Go (RabbitMQ, ignore) / asynq -c 16" "$(v "$go_ign")/s" "$(v "$aq16")/s" "$(ratio "$go_ign" "$aq16" '>=' 1)"
row "Go (Redis broker, ignore) / asynq -c 16" "$(v "$drg_ign")/s" "$(v "$aq16")/s" "$(ratio "$drg_ign" "$aq16")"
for q in 1 4; do
  one=$(scale_rate 1 "$q" "$scale_n")
  for p in 2 4; do
    r=$(scale_rate "$p" "$q" "$scale_n")
    row "scale $q queue(s): $p procs / 1 proc" "$(v "$r")/s" "$(v "$one")/s" "$(ratio "$r" "$one")"
  done
done
row "scale RSS peak: drain of $scale_big / of $scale_n" "$(v "$(scale_peak "$scale_big")") MiB" "$(v "$(scale_peak "$scale_n")") MiB" "$(ratio "$(scale_peak "$scale_big")" "$(scale_peak "$scale_n")" '<=' 1.1)"
row "serving p99 at half max / hello p99 (same rate)" "$(v "$p99_srv") ms" "$(v "$p99_hello") ms" "$(ratio "$p99_srv" "$p99_hello" '<=' 2)"
row "serving max / hello max (wrk)" "$(v "$srv_max")/s" "$(v "$hello_max")/s" "$(ratio "$srv_max" "$hello_max" '>=' 0.5)"
row "chord of $chord_n: python / go (seconds)" "$(v "$chord_py") s" "$(v "$chord_go") s" "$(ratio "$chord_py" "$chord_go" '>=' 5)"
if beat_unmeasured celery-beat; then
  row "beat spread p99 lateness: celery beat / Go" "not measured" "$(v "$bg_p99") ms" "celery beat sent no entry twice in ${beat_secs}s (it is behind)"
else
  row "beat spread p99 lateness: celery beat / Go" "$(v "$bp_p99") ms" "$(v "$bg_p99") ms" "$(ratio "$bp_p99" "$bg_p99")"
fi
row "beat spread busy CPU: celery beat / Go" "$(v "$bp_cpu") s" "$(v "$bg_cpu") s" "$(ratio "$bp_cpu" "$bg_cpu")"
row "beat spread runs sent: Go / celery beat" "$(v "$bg_sent")" "$(v "$bp_sent")" "$(ratio "$bg_sent" "$bp_sent")"
echo
echo "scale RSS (start, peak, end) of one worker: drain of $scale_n: $(v "$(scale_rss "$scale_n")"); drain of $scale_big: $(v "$(scale_rss "$scale_big")")"
echo "ETA held by one worker (countdown 550 s): $(v "$eta_line")$eta_stop; taken:MiB $(v "$eta_steps")"
echo "serving: paced at $(v "$half_rate")/s (half the serving max; achieved $(v "$ach_srv")/s serving, $(v "$ach_hello")/s hello: below the target means the generator or the server could not keep the pace and the p99s say more about the machine) by bench/serving/load (Go, open loop); its CPU share: $(v "$gen_srv") CPUs during the serving run, $(v "$gen_hello") during the hello run; $pin_note"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "FAILED steps: ${failed[*]} (their rows show ?)"
  exit 1
fi
