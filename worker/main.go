// Command worker is the Go Celery worker: it consumes Celery protocol 1 and 2 task messages from
// RabbitMQ, runs the registered Go tasks and stores their results in Redis exactly as Python Celery
// does, so Django code keeps calling send_task(...) and AsyncResult(id).get().
//
// Usage:
//
//	worker [--config celeryconfig.yaml] [-Q queue1,queue2] [-c concurrency] [-n name@%h] [-l info]
//	       [-E] [--without-heartbeat] [--without-mingle] [--without-gossip] [--heartbeat-interval 2]
//	       [--metrics-addr 127.0.0.1:9808]
//
// CELERY_BROKER_URL and CELERY_RESULT_BACKEND override the file's broker_url and result_backend;
// WORKER_METRICS_ADDR is the default of --metrics-addr; WORKER_CPUPROFILE and WORKER_MEMPROFILE
// name files for pprof CPU and allocation profiles of the run, written at exit. The first SIGTERM
// or SIGINT (or `celery control shutdown`) starts a warm shutdown (stop consuming, finish running
// tasks, exit 0); a second signal, or SIGQUIT, is a cold shutdown (running tasks get worker_soft_shutdown_timeout,
// then their contexts are cancelled; exit 1). See celery.Worker.Shutdown.
//
// Operators use Python Celery's own tools against it: `celery inspect` and `celery control`
// (remote control), `celery events` and Flower (worker events always, task events with -E), and
// revokes persist in Redis. See README.md, "Operations".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/canvas"
	"github.com/forumads/forumads/celery/events"
	"github.com/forumads/forumads/internal/config"
	"github.com/forumads/forumads/internal/logging"
	"github.com/forumads/forumads/internal/wiring"
	"github.com/forumads/forumads/internal/workerops"
	"github.com/forumads/forumads/tasks"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

type flags struct {
	config, queues, hostname, loglevel string
	concurrency                        int
	// Operations (see internal/workerops).
	taskEvents, withoutHeartbeat, withoutMingle, withoutGossip bool
	heartbeat                                                  time.Duration
	metricsAddr                                                string
	// suiteTasks loads Celery's integration-suite task set (internal/celerysuite).
	suiteTasks bool
}

// metricsAddrDefault is --metrics-addr's default: WORKER_METRICS_ADDR if set (even empty), else
// workerops.DefaultMetricsAddr.
func metricsAddrDefault() string {
	if v, ok := os.LookupEnv("WORKER_METRICS_ADDR"); ok {
		return v
	}
	return workerops.DefaultMetricsAddr
}

func parseFlags(args []string, out io.Writer) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&f.config, "config", "", "configuration file (default "+config.DefaultPath+")")
	for _, n := range []string{"Q", "queues"} {
		fs.StringVar(&f.queues, n, "", "comma-separated queues to consume (default: task_queues, or task_default_queue)")
	}
	for _, n := range []string{"c", "concurrency"} {
		fs.IntVar(&f.concurrency, n, 0, "tasks run at once (default: worker_concurrency, or the number of CPUs)")
	}
	for _, n := range []string{"n", "hostname"} {
		fs.StringVar(&f.hostname, n, "celery@%h", "node name; %h = host name, %n = its first label, %d = its domain")
	}
	for _, n := range []string{"l", "loglevel"} {
		fs.StringVar(&f.loglevel, n, "INFO", "DEBUG, INFO, WARNING, ERROR or CRITICAL")
	}
	for _, n := range []string{"E", "task-events"} {
		fs.BoolVar(&f.taskEvents, n, false, "send task events (celery events, Flower); also worker_send_task_events")
	}
	fs.BoolVar(&f.withoutHeartbeat, "without-heartbeat", false, "send no worker-online/heartbeat/offline events")
	fs.BoolVar(&f.withoutMingle, "without-mingle", false, "do not ask the other workers for their revoked ids at start")
	fs.BoolVar(&f.withoutGossip, "without-gossip", false, "accepted for Celery's sake: this worker has no gossip")
	var hb float64
	fs.Float64Var(&hb, "heartbeat-interval", events.DefaultFreq.Seconds(), "seconds between worker-heartbeat events")
	fs.StringVar(&f.metricsAddr, "metrics-addr", metricsAddrDefault(), `serve /metrics and /healthz on host:port ("" = off)`)
	fs.BoolVar(&f.suiteTasks, "suite-tasks", false, "also register the task set of Celery's integration suite (t.integration.tasks.*; tests only)")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if !(hb > 0 && hb <= 3600) {
		err := fmt.Errorf("invalid value %v for flag -heartbeat-interval: want seconds in (0, 3600]", hb)
		fmt.Fprintln(out, err)
		return f, err
	}
	f.heartbeat = time.Duration(hb * float64(time.Second))
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected arguments: %q (flags only)", fs.Args())
		fmt.Fprintln(out, err)
		return f, err
	}
	return f, nil
}

// NodeName expands Celery's %h, %n, %d and %% in a node name and adds "celery@" when no name part
// is given, as `celery worker -n` does.
func NodeName(pattern, host string) string {
	name, domain, _ := strings.Cut(host, ".")
	r := strings.NewReplacer("%h", host, "%n", name, "%d", domain, "%%", "%")
	n := r.Replace(pattern)
	if !strings.Contains(n, "@") {
		n = "celery@" + n
	}
	return n
}

func run(args []string, stderr io.Writer) int {
	f, err := parseFlags(args, stderr)
	if err != nil {
		return 2
	}
	log, err := logging.New(stderr, f.loglevel, "MainProcess")
	if err != nil {
		fmt.Fprintln(stderr, "worker:", err)
		return 2
	}
	stopProfiles, err := startProfiles()
	defer stopProfiles()
	if err != nil {
		log.Error(err.Error())
		return 1
	}
	file, err := config.Load(f.config)
	if err != nil {
		log.Error(err.Error())
		return 1
	}
	for _, k := range file.Unknown {
		log.Debug("setting not used by the worker", "setting", k)
	}
	cfg := file.Celery
	if f.concurrency > 0 {
		cfg.WorkerConcurrency = f.concurrency
	}
	host, _ := os.Hostname()
	nodename := NodeName(f.hostname, host)
	origin := fmt.Sprintf("gen%d@%s", os.Getpid(), host) // the client's name, as celery.Client's
	o, err := workerops.New(cfg, workerops.Options{Nodename: nodename, Origin: origin, TaskEvents: f.taskEvents,
		WithoutHeartbeat: f.withoutHeartbeat, WithoutMingle: f.withoutMingle, Heartbeat: f.heartbeat,
		MetricsAddr: f.metricsAddr, Logger: log})
	if err != nil {
		log.Error(err.Error())
		return 1
	}

	br, err := wiring.Broker(cfg, nodename, log)
	if err != nil {
		log.Error(err.Error())
		return 1
	}
	defer func() { _ = br.Close() }() // the worker never closes the broker it is given
	backend, _, err := wiring.Backend(cfg)
	if err != nil {
		log.Error(err.Error())
		return 1
	}
	// The diagnostic and ads tasks use REDIS_URL / ads_redis_url (default: the result backend).
	clientOpts := celery.ClientOptions{Config: cfg, Broker: br, Events: o.SentEvents()}
	if backend != nil {
		clientOpts.Backend = backend
	}
	client, err := celery.NewClient(clientOpts)
	if err != nil {
		log.Error(err.Error())
		return 1
	}
	set, err := tasks.Open(file, tasks.Options{Client: client, Logger: log})
	if err != nil {
		log.Error(err.Error())
		return 1
	}
	defer set.Close()
	reg := set.Registry
	// Celery's built-in tasks that canvases sent from Go tasks use (celery.accumulate).
	if err := canvas.RegisterBuiltins(reg); err != nil {
		log.Error(err.Error())
		return 1
	}
	// celery.backend_cleanup, which beat sends at 4:00: django-db deletes expired results.
	if err := canvas.RegisterBackendCleanup(reg, backend, log); err != nil {
		log.Error(err.Error())
		return 1
	}
	if f.suiteTasks {
		closeSuite, err := registerSuite(reg, cfg, br, backend, log)
		if err != nil {
			log.Error(err.Error())
			return 1
		}
		defer closeSuite()
	}

	var queues []string
	for _, q := range strings.Split(f.queues, ",") {
		if q = strings.TrimSpace(q); q != "" {
			queues = append(queues, q)
		}
	}
	opts := celery.WorkerOptions{Config: cfg, Registry: reg, Broker: br, Queues: queues, Hostname: nodename, Logger: log,
		Events: o.Events(), Revokes: o.Revokes(), Metrics: o.Metrics()}
	if backend != nil {
		opts.Backend = backend
		// Canvases (chain steps, link callbacks and errbacks, chord bodies) continue from this worker;
		// chords count their parts in the Redis result backend, so they need one.
		sender, err := canvas.NewSender(cfg, br, backend)
		if err == nil {
			sender.Applier().RequestErrback = func(task string) bool {
				o, ok := reg.Options(task)
				return ok && o.RequestErrback
			}
			opts.Canvas, err = canvas.NewWorkerCanvas(sender, backend)
		}
		if err != nil {
			log.Error(err.Error())
			return 1
		}
	}
	w, err := celery.NewWorker(opts)
	if err != nil {
		log.Error(err.Error())
		return 1
	}
	_ = workerops.Banner(stderr, w, reg, file.Path, o)
	o.Start(context.Background(), w, reg, br)

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	runErr := make(chan error, 1)
	go func() { runErr <- w.Run(context.Background()) }()
	abandoned := make(chan struct{})
	stopped := make(chan struct{})
	go shutdownOnSignals(w, sigs, coldGrace(cfg), stopped, abandoned, log)
	select {
	case err = <-runErr:
	case <-abandoned:
		// Tasks that ignore their context cannot be waited for: leave; the broker connection's
		// close gives their messages back.
		o.Stop(context.Background())
		log.Error("worker: cold shutdown: tasks still running after the grace period; exiting")
		return 1
	}
	close(stopped)
	o.Stop(context.Background())
	switch {
	case errors.Is(err, celery.ErrWorkerShutdown):
		log.Warn("worker stopped by a cold shutdown")
		return 1
	case err != nil && !errors.Is(err, celery.ErrWorkerClosed):
		log.Error("worker stopped with an error", "error", err)
		return 1
	}
	return 0
}

// coldGraceAfterSoft is how long a cold shutdown waits, after the soft shutdown period, for the
// cancelled tasks to return before the process leaves without them.
const coldGraceAfterSoft = 3 * time.Second

// coldGrace is how long a cold shutdown may take: worker_soft_shutdown_timeout, then
// coldGraceAfterSoft.
func coldGrace(cfg celery.Config) time.Duration {
	d := coldGraceAfterSoft
	if t := cfg.WorkerSoftShutdownTimeout; t != nil && *t > 0 {
		d += time.Duration(*t * float64(time.Second))
	}
	return d
}

// shutdownOnSignals turns signals into Worker.Shutdown calls, as Celery's worker does: the first
// SIGTERM or SIGINT is a warm shutdown, a second one (or SIGQUIT) a cold one, which may take grace;
// when it takes longer, abandoned is closed. It returns when stopped is closed.
func shutdownOnSignals(w *celery.Worker, sigs <-chan os.Signal, grace time.Duration, stopped <-chan struct{}, abandoned chan<- struct{}, log *slog.Logger) {
	warm := false
	for {
		var s os.Signal
		select {
		case <-stopped:
			return
		case s = <-sigs:
		}
		if s != syscall.SIGQUIT && !warm {
			warm = true
			log.Warn("worker: Warm shutdown (" + s.String() + "); send it again for a cold shutdown")
			go func() { _ = w.Shutdown(context.Background()) }() // returns when Run does
			continue
		}
		log.Warn("worker: Cold shutdown requested (" + s.String() + ")")
		if !warm {
			w.Terminate() // SIGQUIT first: cold at once, without a warm shutdown before
		}
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		err := w.Shutdown(ctx)
		cancel()
		if err != nil {
			close(abandoned)
		}
		return
	}
}
