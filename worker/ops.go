package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/fanout"
	"github.com/forumads/forumads/celery/control"
	"github.com/forumads/forumads/celery/events"
	"github.com/forumads/forumads/celery/revoke"
	"github.com/forumads/forumads/celery/revoke/redisrevoke"
	"github.com/forumads/forumads/internal/metrics"
	"github.com/forumads/forumads/internal/wiring"
)

// DefaultMetricsAddr is where /metrics and /healthz are served unless --metrics-addr or
// WORKER_METRICS_ADDR says otherwise ("" turns the endpoint off).
const DefaultMetricsAddr = "127.0.0.1:9808"

// ops is what the worker program runs beside the worker for operators: the event dispatcher and
// heartbeat, the remote-control mailbox, the revoke store and the metrics endpoint. None of them
// can stop task processing: each one logs its failures and keeps retrying.
type ops struct {
	log      *slog.Logger
	nodename string
	cfg      celery.Config
	f        flags

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

// newOps builds the parts that the worker and its client are created with. Nothing connects yet.
func newOps(f flags, cfg celery.Config, nodename, origin string, log *slog.Logger) (*ops, error) {
	o := &ops{log: log, nodename: nodename, cfg: cfg, f: f}
	var err error
	o.evFanout, o.evClose, err = wiring.Fanout(cfg, nodename+" events", log.With("component", "events"))
	if err != nil {
		return nil, err
	}
	o.events, err = events.NewDispatcher(o.evFanout, events.Options{Hostname: nodename, Exchange: cfg.EventExchange,
		Enabled: f.taskEvents || cfg.WorkerSendTaskEvents, Logger: log})
	if err != nil {
		return nil, err
	}
	if cfg.TaskSendSentEvent {
		if o.sent, err = events.NewDispatcher(o.evFanout, events.Options{Hostname: origin, Exchange: cfg.EventExchange,
			Enabled: true, Logger: log}); err != nil {
			return nil, err
		}
	}
	url, from := revokeURL(cfg)
	if url != "" {
		if o.revokeRC, err = wiring.Redis(url); err != nil {
			return nil, fmt.Errorf("revoke store (%s): %w", from, err)
		}
		o.revokes = redisrevoke.New(o.revokeRC, cfg.WorkerRevokeKeyPrefix, seconds(cfg.WorkerRevokeExpires),
			redisrevoke.WithMaxSize(cfg.WorkerRevokeMax), redisrevoke.WithLogger(log))
	}
	o.registry = metrics.NewRegistry()
	o.metrics = metrics.NewWorker(o.registry)
	return o, nil
}

// revokeURL is the Redis of the revoke store and where it comes from: worker_revoke_url, the
// result backend when it is Redis, or REDIS_URL.
func revokeURL(cfg celery.Config) (url, from string) {
	switch rb := cfg.ResultBackend; {
	case cfg.WorkerRevokeURL != "":
		return cfg.WorkerRevokeURL, "worker_revoke_url"
	case strings.HasPrefix(rb, "redis://"), strings.HasPrefix(rb, "rediss://"), strings.HasPrefix(rb, "unix://"):
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

// start runs the mailbox (waiting up to 5 s for it to consume, so that the worker answers
// `celery inspect` once it says it is ready), mingle, the heartbeat and the metrics endpoint.
func (o *ops) start(w *celery.Worker, reg *celery.Registry, br broker.Broker) {
	ctx, cancel := context.WithCancel(context.Background())
	o.cancel = cancel
	if url, from := revokeURL(o.cfg); url != "" {
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
	if o.f.metricsAddr != "" {
		o.wg.Add(1)
		go func() {
			defer o.wg.Done()
			health := func() error {
				if !broker.Connected(br) {
					return errors.New("broker: not connected")
				}
				return w.Alive()
			}
			if err := metrics.Serve(ctx, o.f.metricsAddr, o.registry, health, o.log); err != nil {
				o.log.Error("metrics endpoint stopped; the worker goes on without it", "error", err)
			}
		}()
	}
	if o.cfg.WorkerEnableRemoteControl == nil || *o.cfg.WorkerEnableRemoteControl {
		copts := control.Options{Namespace: o.cfg.ControlExchange,
			QueueTTL: seconds(o.cfg.ControlQueueTTL), QueueExpires: seconds(o.cfg.ControlQueueExpires),
			Logger: o.log.With("component", "pidbox")}
		var mb *control.Mailbox
		tr, closer, err := wiring.Fanout(o.cfg, "celery-control", o.log.With("component", "pidbox"))
		if err == nil {
			o.control = closer
			mb, err = control.NewMailbox(o.nodename, tr, copts)
		}
		if err != nil {
			o.log.Error("remote control is off: "+err.Error(), "error", err)
		} else {
			w.RegisterControl(mb)
			o.wg.Add(1)
			go func() {
				defer o.wg.Done()
				if err := mb.Run(ctx); err != nil {
					o.log.Error("remote control stopped; the worker goes on without it", "error", err)
				}
			}()
			select {
			case <-mb.Ready():
			case <-time.After(5 * time.Second):
				o.log.Warn("remote control is not ready yet; starting anyway")
			}
			if !o.f.withoutMingle {
				o.wg.Add(1)
				go func() {
					defer o.wg.Done()
					o.mingle(ctx, w, mb, tr, copts)
				}()
			}
		}
	}
	if !o.f.withoutHeartbeat {
		o.hb = events.StartHeartbeat(o.events, events.HeartbeatOptions{Freq: o.f.heartbeat, Status: w.HeartbeatStatus,
			Logger: o.log})
	}
}

// mingle asks the other workers for their revoked ids, as a Python worker does at start.
func (o *ops) mingle(ctx context.Context, w *celery.Worker, mb *control.Mailbox, tr fanout.Transport, copts control.Options) {
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

// stop sends worker-offline, flushes the events (for at most 5 s) and stops everything else.
func (o *ops) stop() {
	if o.hb != nil {
		o.hb.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
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
	if o.evClose != nil {
		_ = o.evClose.Close()
	}
	if o.revokeRC != nil {
		_ = o.revokeRC.Close()
	}
}
