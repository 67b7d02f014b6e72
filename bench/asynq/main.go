// Command asynq drains N no-op tasks through github.com/hibiken/asynq on the local Redis, as a
// point of comparison for the Go Celery worker's no-op drain (bench/drain.sh): a Go team choosing
// a task queue would compare the two. It lives in a Go module of its own (forumads-bench-asynq) so
// that asynq never enters the product's dependencies.
//
// Usage:
//
//	asynq [-n 20000] [-c 8,16] [-redis redis://127.0.0.1:6379/13] [-timeout 2m]
//
// For each concurrency in -c, in one run: a fresh queue (bench-<random>-c<C>) in Redis database 13
// (not the default 0, so asynq's keys never mix with the project's) is filled with N tasks of type
// "noop" (MaxRetry 0, no retention: asynq deletes a task once its handler returned) by 64
// goroutines calling Client.Enqueue; publishing is not timed. Then an asynq Server with that
// concurrency, serving only that queue, starts with a handler that returns nil at once.
//
// The clock starts at the first poll (LLEN of the queue's pending list, every millisecond) that
// sees fewer than N pending tasks: the server is up and dequeuing. It stops at the first poll
// (every 2 ms) after the N-th handler call returned that sees the pending and the active list
// both empty: asynq has marked every task done, as drain.sh's bare consumer stops at its last ack.
// Server start-up and connecting are excluded, as in drain.sh.
//
// Each run prints one line in drain.sh's format, with the CPU time per task of this process (the
// asynq server's goroutines; nothing else runs in it meanwhile) and of redis-server (INFO cpu:
// Redis may be shared), then the queue and every key under asynq:{<queue>} are deleted; the
// server's own asynq:servers / asynq:workers entries go at its shutdown. A run that cannot clean up
// says so and fails.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

const (
	enqueuers = 64
	startPoll = time.Millisecond
	endPoll   = 2 * time.Millisecond
	taskType  = "noop"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	n        int
	conc     []int
	redisURL string
	timeout  time.Duration
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("asynq", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.n, "n", 20000, "tasks per run")
	conc := fs.String("c", "8,16", "comma-separated server concurrencies, one run each")
	fs.StringVar(&o.redisURL, "redis", "redis://127.0.0.1:6379/13", "Redis URL (a database of its own)")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "deadline of the whole run")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.n <= 0 {
		return o, errors.New("-n must be positive")
	}
	var err error
	if o.conc, err = parseConcurrencies(*conc); err != nil {
		return o, err
	}
	return o, nil
}

// parseConcurrencies reads "8,16" into [8 16]; every entry must be a positive integer.
func parseConcurrencies(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c <= 0 || c > 10000 {
			return nil, fmt.Errorf("-c: %q is not a concurrency between 1 and 10000", f)
		}
		out = append(out, c)
	}
	return out, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseOptions(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "asynq:", err)
		}
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeoutCause(ctx, o.timeout, fmt.Errorf("the bench ran past -timeout %s", o.timeout))
	defer cancel()

	ropts, err := redis.ParseURL(o.redisURL)
	if err != nil {
		fmt.Fprintln(stderr, "asynq: -redis:", err)
		return 2
	}
	rc := redis.NewClient(ropts)
	defer rc.Close()
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	err = rc.Ping(pctx).Err()
	pcancel()
	if err != nil {
		fmt.Fprintf(stderr, "asynq: Redis is required at %s (run scripts/services.sh): %v\n", o.redisURL, err)
		return 1
	}
	fmt.Fprintf(stdout, "asynq: %d no-op tasks per run (asynq v0.26.0, Redis %s), each run on a fresh queue; clock from the first pending-count drop to the last task marked done\n", o.n, o.redisURL)
	sfx := strconv.FormatUint(rand.Uint64(), 36)
	failed := false
	for _, c := range o.conc {
		q := fmt.Sprintf("bench-%s-c%d", sfx, c)
		res, err := drain(ctx, rc, ropts, q, o.n, c)
		if cerr := cleanup(rc, q); cerr != nil {
			err = errors.Join(err, cerr)
		}
		if err != nil {
			if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
				err = fmt.Errorf("%w (%v)", err, cause)
			}
			fmt.Fprintf(stderr, "asynq: concurrency %d: %v\n", c, err)
			failed = true
			break
		}
		fmt.Fprintln(stdout, res.line(o.n, c))
	}
	if failed {
		return 1
	}
	return 0
}

// result is one measured drain.
type result struct {
	took, enqueued  time.Duration
	selfCPU, rdsCPU time.Duration
}

// line renders a result in bench/drain.sh's format.
func (r result) line(n, c int) string {
	w := r.took.Seconds()
	part := func(name string, d time.Duration) string {
		return fmt.Sprintf("%s %.0fµs/task (%.2f CPUs)", name, float64(d.Microseconds())/float64(n), d.Seconds()/w)
	}
	return fmt.Sprintf("%-14s %-10s %d tasks in %.3fs = %.0f/s (concurrency %d; cpu: %s, %s; enqueued in %.3fs)",
		"no-op", fmt.Sprintf("asynq-c%d", c), n, w, float64(n)/w, c,
		part("asynq process", r.selfCPU), part("redis", r.rdsCPU), r.enqueued.Seconds())
}

// drain fills queue q with n tasks, then serves it with concurrency c until every task is done.
func drain(ctx context.Context, rc *redis.Client, ropts *redis.Options, q string, n, c int) (result, error) {
	var res result
	opt := asynq.RedisClientOpt{Addr: ropts.Addr, DB: ropts.DB, Password: ropts.Password, Username: ropts.Username}
	client := asynq.NewClient(opt)
	began := time.Now()
	err := enqueue(ctx, client, q, n)
	if cerr := client.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, err
	}
	res.enqueued = time.Since(began)
	pending, active := "asynq:{"+q+"}:pending", "asynq:{"+q+"}:active"
	if got, err := rc.LLen(ctx, pending).Result(); err != nil || got != int64(n) {
		return res, fmt.Errorf("queue %s holds %d pending tasks after enqueuing %d (%v)", q, got, n, err)
	}

	var handled atomic.Int64
	allHandled := make(chan struct{})
	mux := asynq.NewServeMux()
	mux.HandleFunc(taskType, func(context.Context, *asynq.Task) error {
		if handled.Add(1) == int64(n) {
			close(allHandled)
		}
		return nil
	})
	srv := asynq.NewServer(opt, asynq.Config{
		Concurrency:     c,
		Queues:          map[string]int{q: 1},
		LogLevel:        asynq.WarnLevel,
		ShutdownTimeout: 10 * time.Second,
	})
	if err := srv.Start(mux); err != nil {
		return res, fmt.Errorf("starting the asynq server: %w", err)
	}
	defer srv.Shutdown()

	start, err := pollUntil(ctx, startPoll, func() (bool, error) {
		l, err := rc.LLen(ctx, pending).Result()
		return l < int64(n), err
	})
	if err != nil {
		return res, fmt.Errorf("waiting for the server to begin: %w", err)
	}
	self0, rds0 := selfCPU(), redisCPU(ctx, rc)
	select {
	case <-allHandled:
	case <-ctx.Done():
		return res, fmt.Errorf("%d of %d tasks handled: %w", handled.Load(), n, context.Cause(ctx))
	}
	end, err := pollUntil(ctx, endPoll, func() (bool, error) {
		p, err := rc.LLen(ctx, pending).Result()
		if err != nil {
			return false, err
		}
		a, err := rc.LLen(ctx, active).Result()
		return p == 0 && a == 0, err
	})
	if err != nil {
		return res, fmt.Errorf("waiting for the last tasks to be marked done: %w", err)
	}
	res.took = end.Sub(start)
	res.selfCPU, res.rdsCPU = selfCPU()-self0, redisCPU(ctx, rc)-rds0
	if got := handled.Load(); got != int64(n) {
		return res, fmt.Errorf("%d handler calls for %d tasks", got, n)
	}
	return res, nil
}

// enqueue sends n no-op tasks to q from enqueuers goroutines.
func enqueue(ctx context.Context, client *asynq.Client, q string, n int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(enqueuers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				_, err := client.EnqueueContext(ctx, asynq.NewTask(taskType, nil), asynq.Queue(q), asynq.MaxRetry(0))
				if err != nil {
					cancel(fmt.Errorf("enqueuing to %s: %w", q, err))
					return
				}
			}
		}()
	}
	wg.Wait()
	return context.Cause(ctx)
}

// pollUntil calls ok every `every` until it reports true, and returns when that was seen.
func pollUntil(ctx context.Context, every time.Duration, ok func() (bool, error)) (time.Time, error) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		done, err := ok()
		now := time.Now()
		if err != nil || done {
			return now, err
		}
		select {
		case <-ctx.Done():
			return now, context.Cause(ctx)
		case <-t.C:
		}
	}
}

// cleanup deletes queue q and every key of it, and checks that none is left.
func cleanup(rc *redis.Client, q string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ins := asynq.NewInspectorFromRedisClient(rc)
	var errs []error
	if err := ins.DeleteQueue(q, true); err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		errs = append(errs, fmt.Errorf("deleting queue %s: %w", q, err))
	}
	// Counters (processed/failed per day) and anything else asynq keeps under the queue's tag.
	pattern := "asynq:{" + q + "}*"
	iter := rc.Scan(ctx, 0, pattern, 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		errs = append(errs, err)
	}
	if len(keys) > 0 {
		if err := rc.Unlink(ctx, keys...).Err(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := rc.SRem(ctx, "asynq:queues", q).Err(); err != nil {
		errs = append(errs, err)
	}
	if left, err := rc.Keys(ctx, pattern).Result(); err != nil || len(left) > 0 {
		errs = append(errs, fmt.Errorf("keys of %s left in Redis: %v (%v)", q, left, err))
	}
	return errors.Join(errs...)
}

// selfCPU is this process's user + system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		slog.Warn("getrusage", "err", err)
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU is redis-server's user + system CPU time so far, from INFO cpu (0 if unreadable).
func redisCPU(ctx context.Context, rc *redis.Client) time.Duration {
	info, err := rc.Info(ctx, "cpu").Result()
	if err != nil {
		slog.Warn("redis INFO cpu", "err", err)
		return 0
	}
	d, err := parseInfoCPU(info)
	if err != nil {
		slog.Warn("redis INFO cpu", "err", err)
	}
	return d
}

// errBadInfo is returned for an INFO cpu section without both used_cpu_sys and used_cpu_user.
var errBadInfo = errors.New("INFO cpu: used_cpu_sys and used_cpu_user not both readable")

// parseInfoCPU sums used_cpu_sys and used_cpu_user (seconds, decimal) of Redis's INFO cpu text.
func parseInfoCPU(info string) (time.Duration, error) {
	var total float64
	seen := 0
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok || (k != "used_cpu_sys" && k != "used_cpu_user") {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f != f || f < 0 || f > 1e9 { // f != f: NaN
			return 0, errBadInfo
		}
		total += f
		seen++
	}
	if seen != 2 {
		return 0, errBadInfo
	}
	return time.Duration(total * float64(time.Second)), nil
}
