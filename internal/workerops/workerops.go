// Package workerops is what the worker program runs beside a celery.Worker for operators: the
// event dispatcher and heartbeat (celery events, Flower), the remote-control mailbox and mingle
// (celery inspect / control), the revoke store in Redis and the Prometheus /metrics and /healthz
// endpoint, with their start and stop steps. None of them can stop task processing: each one logs
// its failures and keeps retrying.
//
// It lives beside the celery library rather than in it because it uses prometheus
// (internal/metrics) and the repository's adapter wiring (internal/wiring), which the library must
// not import. The worker program's main only parses flags and calls [New], [Ops.Start] and
// [Ops.Stop] around celery.Worker.Run.
package workerops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/fanout"
	"github.com/forumads/forumads/celery/control"
	"github.com/forumads/forumads/celery/events"
	"github.com/forumads/forumads/celery/redisconn"
	"github.com/forumads/forumads/celery/revoke"
	"github.com/forumads/forumads/celery/revoke/redisrevoke"
	"github.com/forumads/forumads/internal/metrics"
	"github.com/forumads/forumads/internal/wiring"
)

// DefaultMetricsAddr is where /metrics and /healthz are served unless the worker's --metrics-addr
// or WORKER_METRICS_ADDR says otherwise ("" turns the endpoint off).
const DefaultMetricsAddr = "127.0.0.1:9808"

// Options are the worker program's operator flags, and its names.
type Options struct {
	// Nodename is the worker's node name (celery@host): the events' and the mailbox's hostname.
	Nodename string
	// Origin is the name of the worker's client (genPID@host): the hostname of its task-sent events.
	Origin string
	// TaskEvents sends task events (-E); worker_send_task_events does too.
	TaskEvents bool
	// WithoutHeartbeat sends no worker-online/heartbeat/offline events.
	WithoutHeartbeat bool
	// WithoutMingle does not ask the other workers for their revoked ids at start.
	WithoutMingle bool
	// Heartbeat is the time between worker-heartbeat events (0: events.DefaultFreq).
	Heartbeat time.Duration
	// MetricsAddr is the host:port of /metrics and /healthz ("" = off).
	MetricsAddr string
	// Logger receives the log lines (nil: slog.Default()).
	Logger *slog.Logger
}

// Ops is the set of operator services of one worker. New builds it, Start runs it beside a
// worker, Stop ends it; an Ops is started at most once.
type Ops struct {
	log  *slog.Logger
	cfg  celery.Config
	opts Options

	evFanout fanout.Transport   // events go on a connection of their own
	evClose  io.Closer          // closes evFanout's connection (nil: nothing to close)
	control  io.Closer          // so does remote control (mailbox and mingle); nil when off or shared
	events   *events.Dispatcher // the worker's task and worker events
	sent     *events.Dispatcher // task-sent of tasks sent by tasks (task_send_sent_event), or nil
	revokeRC *redis.Client      // nil without a revoke store
	revokes  revoke.Store       // nil: revokes are kept in memory only
	registry *prometheus.Registry
	metrics  *metrics.Worker

	cancel context.CancelFunc
	wg     sync.WaitGroup
	hb     *events.Heartbeat
}

// New builds the parts that the worker and its client are created with (see Events, SentEvents,
// Revokes and Metrics) on the broker and Redis cfg names. Nothing connects yet.
func New(cfg celery.Config, opts Options) (*Ops, error) {
	if opts.Nodename == "" {
		return nil, errors.New("workerops: Options.Nodename is empty")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = events.DefaultFreq
	}
	if opts.Origin == "" {
		opts.Origin = opts.Nodename
	}
	log := opts.Logger
	o := &Ops{log: log, cfg: cfg, opts: opts}
	var err error
	o.evFanout, o.evClose, err = wiring.Fanout(cfg, opts.Nodename+" events", log.With("component", "events"))
	if err != nil {
		return nil, err
	}
	o.events, err = events.NewDispatcher(o.evFanout, events.Options{Hostname: opts.Nodename, Exchange: cfg.EventExchange,
		Enabled: opts.TaskEvents || cfg.WorkerSendTaskEvents, Logger: log})
	if err != nil {
		o.closeConns()
		return nil, err
	}
	if cfg.TaskSendSentEvent {
		if o.sent, err = events.NewDispatcher(o.evFanout, events.Options{Hostname: opts.Origin, Exchange: cfg.EventExchange,
			Enabled: true, Logger: log}); err != nil {
			o.closeConns()
			return nil, err
		}
	}
	url, from := RevokeURL(cfg)
	if url != "" {
		if o.revokeRC, err = wiring.AppRedis(cfg, url, log); err != nil {
			o.closeConns()
			return nil, fmt.Errorf("revoke store (%s): %w", from, err)
		}
		o.revokes = redisrevoke.New(o.revokeRC, cfg.WorkerRevokeKeyPrefix, seconds(cfg.WorkerRevokeExpires),
			redisrevoke.WithMaxSize(cfg.WorkerRevokeMax), redisrevoke.WithLogger(log))
	}
	o.registry = metrics.NewRegistry()
	o.metrics = metrics.NewWorker(o.registry)
	return o, nil
}

// Events is the worker's event dispatcher (celery.WorkerOptions.Events).
func (o *Ops) Events() *events.Dispatcher { return o.events }

// SentEvents is the dispatcher of task-sent events of the tasks the worker's tasks send
// (celery.ClientOptions.Events), or nil when task_send_sent_event is off.
func (o *Ops) SentEvents() *events.Dispatcher { return o.sent }

// Revokes is the worker's revoke store in Redis (celery.WorkerOptions.Revokes), or nil when
// revokes are kept in memory only.
func (o *Ops) Revokes() revoke.Store { return o.revokes }

// Metrics is the worker's Prometheus instrumentation (celery.WorkerOptions.Metrics).
func (o *Ops) Metrics() *metrics.Worker { return o.metrics }

// Registry is the Prometheus registry served on /metrics.
func (o *Ops) Registry() *prometheus.Registry { return o.registry }

// RevokeURL is the Redis of the revoke store and where it comes from: worker_revoke_url, the
// result backend when it is Redis, or REDIS_URL; "" when none is set.
func RevokeURL(cfg celery.Config) (url, from string) {
	switch rb := cfg.ResultBackend; {
	case cfg.WorkerRevokeURL != "":
		return cfg.WorkerRevokeURL, "worker_revoke_url"
	case redisconn.IsRedisURL(rb):
		return rb, "result_backend"
	case os.Getenv("REDIS_URL") != "":
		return os.Getenv("REDIS_URL"), "REDIS_URL"
	}
	return "", ""
}

func seconds(f *float64) time.Duration {
	if f == nil {
		return 0
	}
	return time.Duration(*f * float64(time.Second))
}

// mailboxReadyWait is how long Start waits for the mailbox to consume.
const mailboxReadyWait = 5 * time.Second

// Start runs the mailbox (waiting up to 5 s for it to consume, so that the worker answers
// `celery inspect` once it says it is ready), mingle, the heartbeat and the metrics endpoint
// beside w, which runs reg's tasks on br. The services run until Stop, or until ctx ends.
func (o *Ops) Start(ctx context.Context, w *celery.Worker, reg *celery.Registry, br broker.Broker) {
	ctx, cancel := context.WithCancel(ctx)
	o.cancel = cancel
	if url, from := RevokeURL(o.cfg); url != "" {
		o.log.Info("revokes are kept in Redis", "from", from, "url", wiring.Redacted(url),
			"key", o.revokes.String())
	} else {
		o.log.Warn("revokes are kept in memory only: no worker_revoke_url, Redis result backend or REDIS_URL")
	}
	o.metrics.SetKnownTasks(reg.Names())
	o.metrics.SetStateFunc(func() metrics.WorkerState {
		s := w.Snapshot()
		return metrics.WorkerState{Active: s.Active, Reserved: s.Reserved, HeldETA: s.HeldETA, Prefetch: s.Prefetch,
			Reconnects: broker.Reconnects(br), Processed: s.Finished}
	})
	if o.opts.MetricsAddr != "" {
		o.wg.Add(1)
		go func() {
			defer o.wg.Done()
			health := func() error {
				if !broker.Connected(br) {
					return errors.New("broker: not connected")
				}
				return w.Alive()
			}
			if err := metrics.Serve(ctx, o.opts.MetricsAddr, o.registry, health, o.log); err != nil {
				o.log.Error("metrics endpoint stopped; the worker goes on without it", "error", err)
			}
		}()
	}
	if o.cfg.WorkerEnableRemoteControl == nil || *o.cfg.WorkerEnableRemoteControl {
		o.startControl(ctx, w)
	}
	if !o.opts.WithoutHeartbeat {
		o.hb = events.StartHeartbeat(o.events, events.HeartbeatOptions{Freq: o.opts.Heartbeat, Status: w.HeartbeatStatus,
			Logger: o.log})
	}
}

// startControl runs the remote-control mailbox and, unless WithoutMingle, mingle.
func (o *Ops) startControl(ctx context.Context, w *celery.Worker) {
	copts := control.Options{Namespace: o.cfg.ControlExchange,
		QueueTTL: seconds(o.cfg.ControlQueueTTL), QueueExpires: seconds(o.cfg.ControlQueueExpires),
		Logger: o.log.With("component", "pidbox")}
	var mb *control.Mailbox
	tr, closer, err := wiring.Fanout(o.cfg, "celery-control", o.log.With("component", "pidbox"))
	if err == nil {
		o.control = closer
		mb, err = control.NewMailbox(o.opts.Nodename, tr, copts)
	}
	if err != nil {
		o.log.Error("remote control is off: "+err.Error(), "error", err)
		return
	}
	w.RegisterControl(mb)
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		if err := mb.Run(ctx); err != nil {
			o.log.Error("remote control stopped; the worker goes on without it", "error", err)
		}
	}()
	ready := time.NewTimer(mailboxReadyWait)
	select {
	case <-mb.Ready():
	case <-ready.C:
		o.log.Warn("remote control is not ready yet; starting anyway")
	}
	ready.Stop()
	if !o.opts.WithoutMingle {
		o.wg.Add(1)
		go func() {
			defer o.wg.Done()
			o.mingle(ctx, w, mb, tr, copts)
		}()
	}
}

// mingle asks the other workers for their revoked ids, as a Python worker does at start.
func (o *Ops) mingle(ctx context.Context, w *celery.Worker, mb *control.Mailbox, tr fanout.Transport, copts control.Options) {
	copts.Logger = o.log.With("component", "mingle")
	cl, err := control.NewClient(tr, copts)
	if err != nil {
		o.log.Warn("mingle skipped", "error", err)
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := w.Mingle(ctx, cl, mb); err != nil && ctx.Err() == nil {
		o.log.Warn("mingle failed; revokes made by Python workers before this one started are not known here", "error", err)
	}
}

// StopFlushTimeout bounds how long Stop waits for the last events when its ctx has no deadline.
const StopFlushTimeout = 5 * time.Second

// Stop sends worker-offline, flushes the events (until ctx ends, or for at most
// StopFlushTimeout when ctx has no deadline), stops everything Start started and closes the
// connections New opened. It returns when all of its goroutines have returned. Stop may be called
// without Start, to release what New opened.
func (o *Ops) Stop(ctx context.Context) {
	if o.hb != nil {
		o.hb.Stop()
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, StopFlushTimeout)
		defer cancel()
	}
	for _, d := range []*events.Dispatcher{o.events, o.sent} {
		if d != nil {
			if err := d.Close(ctx); err != nil {
				o.log.Warn("events not sent at shutdown", "error", err)
			}
		}
	}
	if o.cancel != nil {
		o.cancel()
	}
	o.wg.Wait()
	if o.control != nil {
		_ = o.control.Close()
	}
	o.closeConns()
}

// closeConns closes the connections New opened.
func (o *Ops) closeConns() {
	if o.evClose != nil {
		_ = o.evClose.Close()
		o.evClose = nil
	}
	if o.revokeRC != nil {
		_ = o.revokeRC.Close()
		o.revokeRC = nil
	}
}
