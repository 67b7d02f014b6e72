// Command drain measures task throughput on one RabbitMQ, in one run. The Go worker (the real
// ./worker binary), a real Python Celery 5.2 worker (prefork, -c 2) and a bare amqp091-go
// consume-and-ack loop each drain the same N no-op Celery protocol-2 messages (the Python worker
// -pyn of them when that is given: its rate is steady long before N, and its runs are the longest),
// first with ignore_result and then with results stored in Redis. It prints each rate, the ratios
// Go/Python and Go/bare, and the Go worker's peak RSS while it holds 10,000 ETA tasks.
// bench/drain.sh builds the programs and runs it.
//
// Usage:
//
//	drain -worker path/to/worker [-n 20000] [-pyn 0] [-eta 10000] [-runs ignore,redis,eta] [-rounds 1] [-pytasks bench] [-acks-late] [-timeout 4m]
//
// -runs names the runs: go-ignore, go-ignore-late, python-ignore, bare, bare-multi (the group
// "ignore"), go-redis, python-redis (the group "redis") and eta.
//
// AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/) and REDIS_URL (default
// redis://127.0.0.1:6379/0) choose the services.
//
// # What is measured
//
// Every run has a fresh queue, filled before its consumer starts with N messages of
// diag.add(1, 2) sent by the Go client (celery.Client.SendTask, publisher confirms, the queue
// declared as Celery declares it). Publishing is not timed. In ignore_result mode the first N-1
// messages carry ignore_result=True (celery.WithIgnoreResult), so neither worker stores anything
// for them; the last one, published alone after the others were confirmed so that it is last in
// the queue, stores its result: that is the end signal. In redis_results mode every message stores
// SUCCESS in Redis.
//
// The clock starts when the consumer begins consuming: at the first poll (a passive queue.declare
// every millisecond, on a connection of its own) that sees the queue's ready count below N. By then
// the consumer has subscribed with its QoS set and the broker is delivering to it; process
// start-up, imports, connecting and declaring are all excluded.
//
// The clock stops when the last task is done:
//
//   - ignore_result: when the last message's result key exists in Redis (GET polled every 2 ms).
//     The queue is FIFO and both workers start tasks in delivery order, so when the last message
//     has run, every earlier one has been started (and acknowledged: early ack); a no-op still
//     running on another slot then takes microseconds. The ready count alone would say nothing
//     about the up to `prefetch` messages delivered but not yet run.
//   - redis_results: when all N celery-task-meta-<id> keys exist. The ids not yet seen are polled
//     with MGET, 1000 at a time in send order, every 2 ms (tasks finish roughly in send order, so
//     a poll reads little more than the newly finished ones); every value must be a SUCCESS.
//
// Completion is then checked, untimed: the worker is stopped warmly (it gives back what it has not
// started and finishes what it has), and for a second after it has exited the queue must hold 0
// ready messages (the broker requeues what a closed channel left unacknowledged within
// milliseconds); in ignore_result mode no result key may exist for the first N-1 ids. The
// management API is not used for timing or checks: its counters lag by up to 5 s, and a channel
// that closes before its next statistics tick can take its last counts with it.
//
// The bare consumer drains a queue of N ignore_result messages; its clock starts the same way and
// stops when, after its last ack, the broker answers a synchronous method on the same channel. Its
// own first-delivery-to-end time is printed too.
//
// Prefetch: the Go worker runs with -c 25 and worker_prefetch_multiplier 4 (prefetch 100), the
// Python worker with -c 2 and Celery's default multiplier 4 (prefetch 8), the bare consumer with
// basic.qos(100), acknowledging each message, and again acknowledging every 50th message with
// multiple=true. All use global QoS, as Celery does on RabbitMQ. The go-ignore-late run (kind
// "go-late" in the output) is the Go worker's ignore_result drain again with task_acks_late: each
// ack follows its task, the setting for the comparison with the bare multi-ack consumer.
// With -acks-late every Go worker run uses task_acks_late.
//
// Each run also reports the CPU time, per task and in CPUs busy over the run, of the consumer (the
// worker's process group, Python's pool included; the bench process for the bare consumer), of
// RabbitMQ's Erlang VM and of redis-server, read from /proc/<pid>/stat at the start and the end:
// on a small machine they share the same cores, and the one near a full CPU is the limit.
//
// ETA hold: 10,000 tasks with countdown=300s go to a fresh queue; the Go worker starts, and once
// the queue has 0 ready messages (all of them held, unacknowledged, in its timer) and a further
// second has passed, VmHWM is read from /proc/<pid>/status. The worker is then stopped warmly; the
// bench reports how long that took and when all of them were back in the queue.
//
// Every queue, exchange and Redis key the bench creates is deleted at the end, also after a
// failure, a timeout or an interrupt. Every wait has a deadline; -timeout bounds the whole run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/forumads/forumads/bench/internal/benchrun"
	"github.com/forumads/forumads/bench/internal/services"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command-line settings.
type options struct {
	n, pyN, eta       int
	rounds            int
	worker            string
	python, pytasks   string
	goConc, pyConc    int
	multiplier        int
	acksLate          bool
	amqpURL, redisURL string
	runs              map[string]bool
	timeout           time.Duration
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	o.amqpURL, o.redisURL = services.URLs()
	fs := flag.NewFlagSet("drain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.n, "n", 20000, "tasks per drain run")
	fs.IntVar(&o.pyN, "pyn", 0, "tasks per Python worker run (0 = -n): Python's rate is steady well below -n, and its runs take the longest")
	fs.IntVar(&o.eta, "eta", 10000, "ETA tasks the Go worker holds for the RSS reading (0 = skip)")
	fs.IntVar(&o.rounds, "rounds", 1, "repeat the drain runs, interleaved, and report each rate's median")
	fs.StringVar(&o.worker, "worker", "", "the Go worker binary (required)")
	fs.StringVar(&o.python, "python", "/usr/bin/python3", "the Python with Celery 5.2")
	fs.StringVar(&o.pytasks, "pytasks", "bench", "directory holding the pytasks package (PYTHONPATH)")
	fs.IntVar(&o.goConc, "c", 25, "Go worker concurrency")
	fs.IntVar(&o.pyConc, "pyc", 2, "Python worker concurrency (prefork processes)")
	fs.IntVar(&o.multiplier, "multiplier", 4, "worker_prefetch_multiplier of both workers")
	fs.BoolVar(&o.acksLate, "acks-late", false, "run the Go worker with task_acks_late (ack after the task ran and its result is stored)")
	runs := fs.String("runs", "ignore,redis,eta", "what to run: ignore (= go-ignore,go-ignore-late,python-ignore,bare,bare-multi), redis (= go-redis,python-redis), eta, or those names")
	fs.DurationVar(&o.timeout, "timeout", 4*time.Minute, "deadline of the whole run")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case o.worker == "":
		return o, errors.New("-worker is required")
	case o.n <= 0:
		return o, errors.New("-n must be positive")
	case o.pyN < 0:
		return o, errors.New("-pyn must not be negative")
	case o.eta < 0:
		return o, errors.New("-eta must not be negative")
	case o.rounds <= 0:
		return o, errors.New("-rounds must be positive")
	case o.goConc <= 0 || o.pyConc <= 0 || o.multiplier <= 0:
		return o, errors.New("-c, -pyc and -multiplier must be positive")
	}
	o.runs = map[string]bool{}
	for _, r := range strings.Split(*runs, ",") {
		switch r = strings.TrimSpace(r); r {
		case "ignore":
			for _, n := range []string{"go-ignore", "go-ignore-late", "python-ignore", "bare", "bare-multi"} {
				o.runs[n] = true
			}
		case "redis":
			o.runs["go-redis"], o.runs["python-redis"] = true, true
		case "go-ignore", "go-ignore-late", "python-ignore", "bare", "bare-multi", "go-redis", "python-redis", "eta":
			o.runs[r] = true
		case "":
		default:
			return o, fmt.Errorf("-runs: unknown run %q", r)
		}
	}
	if o.pyN == 0 {
		o.pyN = o.n
	}
	var err error
	if o.worker, err = filepath.Abs(o.worker); err != nil {
		return o, err
	}
	if o.pytasks, err = filepath.Abs(o.pytasks); err != nil {
		return o, err
	}
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	return benchrun.Main("drain", args, stderr, parseOptions, func(o options) time.Duration { return o.timeout },
		func(ctx context.Context, o options) (benchrun.Bench, error) {
			log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			b, err := newBench(ctx, o, stdout, log)
			if err != nil {
				return benchrun.Bench{}, err
			}
			return benchrun.Bench{Run: b.all, Close: b.close}, nil
		})
}
