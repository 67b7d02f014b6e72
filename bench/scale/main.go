// Command scale measures how the Go worker scales on one RabbitMQ, in one run: throughput of 1, 2
// and 4 worker processes on one queue and on 4 queues, the worker's RSS over a drain of 20,000 and
// of 100,000 queued tasks (flat = the peak does not grow with N), and its RSS while it holds
// 100,000 ETA tasks, read at every 10,000 taken in. bench/scale.sh builds the worker and runs it.
//
// Usage:
//
//	scale -worker path/to/worker [-n 20000] [-procs 1,2,4] [-queues 1,4] [-big 100000] [-eta 100000] [-runs scale,rss,eta] [-timeout 5m]
//
// AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/) and REDIS_URL (default
// redis://127.0.0.1:6379/0) choose the services.
//
// # What is measured
//
// bench/drain is a program (package main) owned by the drain work and cannot be imported; this
// one fills queues through the same public path (celery.Client.SendTask, publisher confirms,
// diag.add(1, 2), the queue declared as Celery declares it) and starts the same ./worker binary
// with the same settings (-c 25, worker_prefetch_multiplier 4: prefetch 100 per process).
//
// Scale runs: N tasks are sent round-robin over Q fresh queues, every one storing its result in
// Redis (with several consumers no single "last" message can stand for the end, so every result
// is the end signal). The P processes start one after another (a few hundred ms each) consuming
// only an idle queue of the run (bench.scale.idle.<run>.<suffix>, empty), so none takes a task
// before the last is up. Once the idle queue has P consumers and every process's mailbox answers
// a ping, the add_consumer control command is broadcast to the P nodes for each of the Q queues
// (as `celery control add_consumer -d <nodes> <queue>` sends it; the Q broadcasts concurrently),
// and each node's reply must be ok. The clock starts right before those broadcasts (no task can be
// taken before them) and stops when all N celery-task-meta keys
// exist (MGET, 1000 at a time in send order, every 2 ms); each must be SUCCESS. The rate is N over
// that time, so it includes how long the workers take to start consuming the queues they are told
// to: the line also gives the time until a poll (a passive queue.declare of each queue, every
// millisecond) first saw P consumers on every queue, and how many tasks were done by then. (A
// clock started at that poll instead left most tasks out with 4 processes on 4 queues: RabbitMQ
// reported every consumer up to 2.5 s after the replies, by when the queues were nearly drained.)
// The workers are then stopped warmly and the queues must hold nothing.
//
// RSS: during the 1-process, 1-queue run (N tasks) and a further run of -big tasks, the worker's
// VmRSS is sampled every 20 ms; the line gives it at the clock's start, its peak (the largest
// sample, and VmHWM at the end, which covers any moment between samples) and at the end.
//
// ETA hold: -eta tasks with countdown 550 s (below worker_eta_park_after, 600 s, so that the worker
// holds every one in its timer instead of parking it) and ignore_result go to a fresh queue; one
// worker starts; the ready count is polled every 10 ms and VmRSS read each time another 10,000 have
// left the queue (delivered to the worker), then once more a second after the queue is empty, or
// after the ready count fell by less than 1,000 in 15 s (the worker holds a bounded number and
// parks the rest in <queue>.eta-park-600s; the line then says how many were held and parked).
//
// Every queue and result key the bench creates is deleted at the end, also after a failure.
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
	"runtime"
	"strconv"
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
	worker            string
	n, big, eta       int
	procs, queues     []int
	conc, multiplier  int
	runs              map[string]bool
	amqpURL, redisURL string
	timeout           time.Duration
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	o.amqpURL, o.redisURL = services.URLs()
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.worker, "worker", "", "the Go worker binary (required)")
	fs.IntVar(&o.n, "n", 20000, "tasks per scale run")
	fs.IntVar(&o.big, "big", 100000, "tasks of the large RSS drain (0 = skip)")
	fs.IntVar(&o.eta, "eta", 100000, "ETA tasks held (0 = skip)")
	procs := fs.String("procs", "1,2,4", "worker process counts")
	queues := fs.String("queues", "1,4", "queue counts")
	fs.IntVar(&o.conc, "c", 25, "concurrency of each worker process")
	fs.IntVar(&o.multiplier, "multiplier", 4, "worker_prefetch_multiplier")
	runs := fs.String("runs", "scale,rss,eta", "what to run: scale, rss (the -big drain), eta")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "deadline of the whole run")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var err error
	if o.procs, err = parseCounts("-procs", *procs); err != nil {
		return o, err
	}
	if o.queues, err = parseCounts("-queues", *queues); err != nil {
		return o, err
	}
	switch {
	case o.worker == "":
		return o, errors.New("-worker is required")
	case o.n <= 0 || o.big < 0 || o.eta < 0:
		return o, errors.New("-n must be positive, -big and -eta not negative")
	case o.conc <= 0 || o.multiplier <= 0:
		return o, errors.New("-c and -multiplier must be positive")
	}
	o.runs = map[string]bool{}
	for _, r := range strings.Split(*runs, ",") {
		switch r = strings.TrimSpace(r); r {
		case "scale", "rss", "eta":
			o.runs[r] = true
		case "":
		default:
			return o, fmt.Errorf("-runs: unknown run %q", r)
		}
	}
	if o.worker, err = filepath.Abs(o.worker); err != nil {
		return o, err
	}
	return o, nil
}

// parseCounts reads a comma-separated list of counts between 1 and 64.
func parseCounts(flagName, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 || v > 64 {
			return nil, fmt.Errorf("%s: %q is not a count between 1 and 64", flagName, f)
		}
		out = append(out, v)
	}
	return out, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	return benchrun.Main("scale", args, stderr, parseOptions, func(o options) time.Duration { return o.timeout },
		func(ctx context.Context, o options) (benchrun.Bench, error) {
			log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			b, err := newBench(ctx, o, stdout, log)
			if err != nil {
				return benchrun.Bench{}, err
			}
			return benchrun.Bench{Run: b.all, Close: b.close}, nil
		})
}

// all runs the selected measurements in order.
func (b *bench) all(ctx context.Context) error {
	o := b.o
	fmt.Fprintf(b.out, "scale: Go worker processes (-c %d, prefetch %d each) on fresh queues; %d CPUs; every task stores its result in Redis; names end in .%s\n",
		o.conc, o.conc*o.multiplier, runtime.NumCPU(), b.sfx)
	if o.runs["scale"] {
		for _, q := range o.queues {
			base := 0.0
			for _, p := range o.procs {
				r, err := b.drainRun(ctx, o.n, p, q)
				if err != nil {
					return err
				}
				if base == 0 {
					base = r.rate
				}
				fmt.Fprintf(b.out, "%s; x%.2f of %d process(es)\n", r.line(), r.rate/base, o.procs[0])
			}
		}
	}
	if o.runs["rss"] && o.big > 0 {
		r, err := b.drainRun(ctx, o.big, 1, 1)
		if err != nil {
			return err
		}
		fmt.Fprintln(b.out, r.line())
	}
	if o.runs["eta"] && o.eta > 0 {
		if err := b.etaRun(ctx, o.eta); err != nil {
			return err
		}
	}
	return nil
}
