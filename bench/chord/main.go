// Command chord times a chord of N no-op header tasks, from apply_async to the callback's result,
// once run by the Go worker (the real ./worker binary) and once by a real Python Celery 5.2
// worker, on the same RabbitMQ and Redis in the same invocation, and prints the ratio of the two
// times. bench/chord.sh builds the programs and runs it.
//
// Usage:
//
//	chord -worker path/to/worker [-n 10000] [-order go,python] [-c 25] [-pyc 2] [-warmup 10]
//	      [-python /usr/bin/python3] [-pytasks bench] [-chord-timeout 4m] [-timeout 6m]
//
// AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/) and REDIS_URL (default
// redis://127.0.0.1:6379/0) choose the services; both workers get them as CELERY_BROKER_URL and
// CELERY_RESULT_BACKEND.
//
// # What is measured
//
// The chord is chord(group(diag.add(i, 0) for i < N), diag.sum): N header tasks that each
// return i, and a body that receives the list of their results and returns its sum, N(N-1)/2.
// Every signature carries the queue option of that side's fresh queue (and the sender's
// task_default_queue is that queue too), so the header, and the body the worker publishes when
// the chord completes, all go to the one worker under test. The chord is sent from this program
// with the repo's canvas package: canvas.Sender.Send with the Redis result backend
// (redisbackend, no key prefix, so Python reads the same keys) as the chord-size store. Send
// freezes the ids, stores the chord size (celery-taskset-meta-<gid>.s) and publishes the N header
// messages in order, up to 500 in flight before their publisher confirms are awaited
// (amqpbroker.PublishMany): that is Celery's chord.apply_async.
//
// The clock starts right before Send and stops when a GET of celery-task-meta-<body id>, polled
// every 2 ms from the moment Send returns, finds a result. The result must be SUCCESS with the
// value N(N-1)/2; anything else (a FAILURE, a wrong sum, no result before -chord-timeout) fails
// the run with a non-zero exit, and so does, checked afterwards and untimed, any header result
// that is not SUCCESS with its own i. Building the N signatures and generating their ids happen
// before the clock. The workers consume while Send is still publishing, as they would in
// production; the line printed for each side says how long Send itself took and how long after
// its return the result came.
//
// Send is the same code on both sides. Its messages are persistent (Celery's default), which
// RabbitMQ confirms once written, and the broker's work for N publishes, deliveries and acks is
// the same for both workers: on a small machine where the broker, Redis, this program and the
// worker share two CPUs, that work is a floor under both sides' times, and the ratio cannot
// exceed (Send + Python's lag) / (Send + Go's lag), whatever the Go worker does. The CPU columns
// show it.
//
// Each worker starts on a fresh queue (declared by this program beforehand as both Celery and the
// Go worker declare it: durable, with a direct exchange of the same name) and counts as ready
// when the broker reports a consumer on that queue. Before the timed chord each side runs an
// untimed warm-up chord of -warmup header tasks (default 10), so that both workers have opened
// their Redis connections and published once, and the program's publishing channel is open.
//
// # Settings
//
//   - Go worker: -c 25 (-c), worker_prefetch_multiplier 4 (Celery's default; prefetch 100),
//     JSON only, result_expires at its default (one day); it continues the chord itself: it counts
//     the finished header tasks in Redis and publishes the body, as a Celery worker does.
//   - Python worker: `python3 -m celery -A pytasks worker -P prefork -c 2 --without-mingle
//     --without-gossip` (-pyc), with bench/pytasks on PYTHONPATH: Celery 5.2's defaults (prefetch
//     multiplier 4, early acknowledgement, one day result_expires).
//
// The sides run one after the other, Go first and Python second by default (-order python,go
// swaps them); each worker is started for its side and stopped (warm shutdown, SIGTERM) right
// after it, so the idle worker of the other side takes no CPU during a measurement.
//
// Each line also gives the CPU time used over the timed window (clock start to stop) by the
// worker's process group (Python's pool processes included), by RabbitMQ's Erlang VM and by
// redis-server, read from /proc/<pid>/stat, and the worker's peak RSS: VmHWM of its process, or
// for Python the sum of the VmHWM of each process of the group (main process and pool). The
// machine is small and shared, so the load average before the runs is printed too.
//
// The last line is the ratio Python time / Go time, rounded down to a tenth, against the issue's
// target of 5x.
//
// # Cleanup
//
// The workers are stopped warmly at the end of their side, and on a failure, a timeout or an
// interrupt (SIGINT, SIGTERM) too: SIGTERM, then SIGKILL of the process group if they have not
// exited within 45 s (a Python worker stopped while busy may take 30 s: see stopWithin). Every queue and exchange the program declared and every Redis key a chord
// created (celery-task-meta-<id> of each header task and of the body,
// celery-taskset-meta-<gid> and its .j, .t and .s counter keys) are deleted. Every wait has a
// deadline; -timeout bounds the whole run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
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

// The sides of the comparison, as -order names them.
const (
	sideGo     = "go"
	sidePython = "python"
)

// options are the command-line settings.
type options struct {
	n, warmup         int
	worker            string
	python, pytasks   string
	goConc, pyConc    int
	order             []string
	amqpURL, redisURL string
	chordTimeout      time.Duration
	timeout           time.Duration
}

// parseOptions reads the command line; flag errors are written to stderr.
func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	o.amqpURL, o.redisURL = services.URLs()
	fs := flag.NewFlagSet("chord", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.n, "n", 10000, "header tasks of the timed chord")
	fs.IntVar(&o.warmup, "warmup", 10, "header tasks of the untimed warm-up chord on each side (0 = none)")
	fs.StringVar(&o.worker, "worker", "", "the Go worker binary (required)")
	fs.StringVar(&o.python, "python", "/usr/bin/python3", "the Python with Celery 5.2")
	fs.StringVar(&o.pytasks, "pytasks", "bench", "directory holding the pytasks package (PYTHONPATH)")
	fs.IntVar(&o.goConc, "c", 25, "Go worker concurrency")
	fs.IntVar(&o.pyConc, "pyc", 2, "Python worker concurrency (prefork processes)")
	order := fs.String("order", "go,python", "the sides, in the order they run")
	fs.DurationVar(&o.chordTimeout, "chord-timeout", 4*time.Minute, "deadline of one timed chord, from Send to the body's result")
	fs.DurationVar(&o.timeout, "timeout", 6*time.Minute, "deadline of the whole run")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.worker == "":
		return o, errors.New("-worker is required")
	case o.n <= 0:
		return o, errors.New("-n must be positive")
	case o.warmup < 0:
		return o, errors.New("-warmup must not be negative")
	case o.goConc <= 0 || o.pyConc <= 0:
		return o, errors.New("-c and -pyc must be positive")
	case o.chordTimeout <= 0 || o.timeout <= 0:
		return o, errors.New("-chord-timeout and -timeout must be positive")
	}
	var err error
	if o.order, err = parseOrder(*order); err != nil {
		return o, err
	}
	if o.worker, err = filepath.Abs(o.worker); err != nil {
		return o, err
	}
	if o.pytasks, err = filepath.Abs(o.pytasks); err != nil {
		return o, err
	}
	return o, nil
}

// parseOrder reads -order: both sides, each once, comma-separated.
func parseOrder(s string) ([]string, error) {
	var order []string
	seen := map[string]bool{}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p != sideGo && p != sidePython {
			return nil, fmt.Errorf("-order: unknown side %q (want go and python)", p)
		}
		if seen[p] {
			return nil, fmt.Errorf("-order: side %q given twice", p)
		}
		seen[p] = true
		order = append(order, p)
	}
	if len(order) != 2 {
		return nil, errors.New("-order must name both sides: go,python or python,go")
	}
	return order, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	return benchrun.Main("chord", args, stderr, parseOptions, func(o options) time.Duration { return o.timeout },
		func(ctx context.Context, o options) (benchrun.Bench, error) {
			b, err := newBench(ctx, o, stdout)
			if err != nil {
				return benchrun.Bench{}, err
			}
			return benchrun.Bench{Run: b.all, Close: b.close}, nil
		})
}
