package celery_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend/redisbackend"
	"github.com/forumads/forumads/celery/broker/amqpbroker"
	"github.com/forumads/forumads/celery/control"
	"github.com/forumads/forumads/celery/events"
	"github.com/forumads/forumads/celery/internal/workertest"
	"github.com/forumads/forumads/celery/revoke/redisrevoke"
	"github.com/forumads/forumads/internal/testenv"
)

// recorder is a celery.WorkerMetrics that keeps what it is told.
type recorder struct {
	mu       sync.Mutex
	received []string
	started  []string
	waits    []time.Duration
	finished map[string][]string // task -> outcomes
	dead     []string
}

func (r *recorder) TaskReceived(task string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.received = append(r.received, task)
}

func (r *recorder) TaskStarted(task string, wait time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started = append(r.started, task)
	r.waits = append(r.waits, wait)
}

func (r *recorder) TaskFinished(task, outcome string, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished == nil {
		r.finished = map[string][]string{}
	}
	r.finished[task] = append(r.finished[task], outcome)
}

func (r *recorder) DeadLettered(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dead = append(r.dead, reason)
}

func (r *recorder) outcomes(task string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]string(nil), r.finished[task]...)
	sort.Strings(out)
	return out
}

// opsBundle is a worker with events, a revoke store, metrics and a mailbox, each on names of the
// test's own (event exchange, pidbox namespace, revoke key prefix, queue), and a client of each.
type opsBundle struct {
	node    string
	queue   string
	ns      string
	prefix  string // revoke key prefix
	worker  *celery.Worker
	client  *celery.Client
	backend *redisbackend.Backend
	store   *redisrevoke.Store
	events  *events.Dispatcher // the worker's
	sent    *events.Dispatcher // the client's (task-sent)
	rcv     *events.Receiver
	evMu    sync.Mutex
	evs     []events.Event // everything the receiver got, in order
	ctl     *control.Client
	mb      *control.Mailbox
	metrics *recorder
	release chan struct{} // closed by releaseAll: every t.block returns
	relOnce sync.Once
	run     *workertest.Running
	cancel  context.CancelFunc
}

type opsConfig struct {
	concurrency int
	multiplier  int    // worker_prefetch_multiplier (default 1)
	prefix      string // share a revoke store between bundles
	ns          string // share a pidbox namespace
	taskEvents  bool
	store       *redisrevoke.Store // instead of one of the test's own
}

// blockArgs are t.block's: it runs until the bundle releases it or its context ends.
type blockArgs struct {
	Key string `celery:"key"`
}

func startOps(t *testing.T, oc opsConfig) *opsBundle {
	t.Helper()
	rc := testenv.Redis(t)
	suffix := testenv.Suffix()
	b := &opsBundle{node: "celery@gotest-" + suffix, queue: testenv.Name(t, "ops"), ns: oc.ns, prefix: oc.prefix,
		metrics: &recorder{}, release: make(chan struct{})}
	if b.ns == "" {
		b.ns = "t" + suffix
	}
	if b.prefix == "" {
		b.prefix = "t:" + suffix + ":revoked:"
	}
	exchange := testenv.Name(t, "celeryev")
	testenv.DeleteQueuesAtCleanup(t, b.queue, b.queue+".dlq", exchange, b.ns+".pidbox", "reply."+b.ns+".pidbox")
	resultPrefix := "t:" + suffix + ":"
	testenv.DeletePrefixAtCleanup(t, rc, resultPrefix)
	testenv.DeleteKeysAtCleanup(t, rc, b.prefix+"ids")
	log := workertest.Logger(t)
	if oc.concurrency == 0 {
		oc.concurrency = 2
	}
	if oc.multiplier == 0 {
		oc.multiplier = 1
	}
	cfg := celery.Config{BrokerURL: testenv.AMQPURL(), TaskDefaultQueue: b.queue, WorkerConcurrency: oc.concurrency,
		WorkerPrefetchMultiplier: &oc.multiplier, WorkerDeadLetterQueue: b.queue + ".dlq", ResultBackend: testenv.RedisURL(),
		TaskSendSentEvent: true}
	b.backend = redisbackend.New(rc, redisbackend.Options{Expires: time.Hour, KeyPrefix: resultPrefix})
	b.store = oc.store
	if b.store == nil {
		b.store = redisrevoke.New(rc, b.prefix, time.Hour, redisrevoke.WithLogger(log))
	}
	reg := celery.NewRegistry()
	celery.Register(reg, "t.add", func(_ context.Context, t *celery.Task[xy]) (int, error) { return t.Args.X + t.Args.Y, nil })
	celery.Register(reg, "t.fail", func(context.Context, *celery.Task[struct{}]) (any, error) {
		return nil, &failErr{"boom"}
	})
	celery.Register(reg, "t.block", func(ctx context.Context, _ *celery.Task[blockArgs]) (string, error) {
		select {
		case <-b.release:
			return "released", nil
		case <-ctx.Done():
			return "", context.Cause(ctx)
		}
	}, celery.RateLimit("100/s"))
	evBroker := newBroker(t, log, "ops-events")
	var err error
	b.events, err = events.NewDispatcher(evBroker, events.Options{Hostname: b.node, Exchange: exchange,
		Enabled: oc.taskEvents, BatchLimit: 1, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	b.sent, err = events.NewDispatcher(evBroker, events.Options{Hostname: "gen1@client", Exchange: exchange,
		Enabled: true, BatchLimit: 1, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	b.rcv, err = events.NewReceiver(ctx, newBroker(t, log, "ops-receiver").Fanout(), events.ReceiverOptions{Exchange: exchange})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.rcv.Close() })
	go func() {
		for r := range b.rcv.C() {
			if r.Err != nil {
				t.Errorf("receiver: %v", r.Err)
				continue
			}
			b.evMu.Lock()
			b.evs = append(b.evs, r.Event)
			b.evMu.Unlock()
		}
	}()
	b.worker = workertest.New(t, celery.WorkerOptions{Config: cfg, Registry: reg, Broker: newBroker(t, log, "ops-worker"),
		Backend: b.backend, Hostname: b.node, Logger: log, Events: b.events, Revokes: b.store, Metrics: b.metrics})
	b.client, err = celery.NewClient(celery.ClientOptions{Config: cfg, Broker: newBroker(t, log, "ops-client"),
		Backend: b.backend, Events: b.sent})
	if err != nil {
		t.Fatal(err)
	}
	copts := control.Options{Namespace: b.ns, Logger: log}
	if b.mb, err = control.NewMailbox(b.node, newBroker(t, log, "ops-control").Fanout(), copts); err != nil {
		t.Fatal(err)
	}
	b.worker.RegisterControl(b.mb)
	if b.ctl, err = control.NewClient(newBroker(t, log, "ops-control-client").Fanout(), copts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.ctl.Close() })
	mbDone := make(chan error, 1)
	go func() { mbDone <- b.mb.Run(ctx) }()
	select {
	case <-b.mb.Ready():
	case err := <-mbDone:
		t.Fatalf("mailbox: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("mailbox not ready within 20s")
	}
	b.run = workertest.Start(t, ctx, b.worker, 30*time.Second)
	t.Cleanup(func() {
		b.stop(t)
		cancel()
		if err := <-mbDone; err != nil {
			t.Errorf("mailbox: %v", err)
		}
		for _, d := range []*events.Dispatcher{b.events, b.sent} {
			if err := d.Close(context.Background()); err != nil {
				t.Errorf("events: %v", err)
			}
		}
	})
	return b
}

// newBroker is a broker on the test RabbitMQ with connection name name, closed at cleanup (after
// the cleanups registered later, such as a worker's shutdown).
func newBroker(t *testing.T, log *slog.Logger, name string) *amqpbroker.Broker {
	t.Helper()
	br, err := amqpbroker.New(testenv.AMQPURL(), amqpbroker.Options{Logger: log, ConnectionName: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = br.Close() })
	return br
}

// releaseAll makes every t.block return.
func (b *opsBundle) releaseAll() { b.relOnce.Do(func() { close(b.release) }) }

// stop releases blocked tasks and shuts the worker down warmly.
func (b *opsBundle) stop(t *testing.T) {
	b.releaseAll()
	b.run.Stop(t)
}

// ask sends a control command to the bundle's node and returns its reply.
func (b *opsBundle) ask(t *testing.T, method string, args any) json.RawMessage {
	t.Helper()
	ctx := ctxT(t, 20*time.Second)
	replies, err := b.ctl.Broadcast(ctx, method, args, []string{b.node}, 5*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	r, ok := replies[b.node]
	if !ok {
		t.Fatalf("%s: no reply from %s (%v)", method, b.node, replies)
	}
	return r
}

// askInto decodes the reply of method into v.
func (b *opsBundle) askInto(t *testing.T, method string, args, v any) {
	t.Helper()
	raw := b.ask(t, method, args)
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: reply %s: %v", method, raw, err)
	}
}

// wantOK asserts an {"ok": want} reply.
func (b *opsBundle) wantOK(t *testing.T, method string, args any, want string) {
	t.Helper()
	var r map[string]any
	b.askInto(t, method, args, &r)
	if r["ok"] != want {
		t.Errorf("%s: reply %v, want ok %q", method, r, want)
	}
}

// eventsOf collects the events of the task id until the worker's event of type last and the
// client's task-sent arrived: the worker's in order, and task-sent (sent by another dispatcher,
// so in no particular order with them) apart.
func (b *opsBundle) eventsOf(t *testing.T, id, last string) (worker []events.Event, sent *events.Event) {
	t.Helper()
	err := testenv.Poll(20*time.Second, func() (bool, error) {
		worker, sent = nil, nil
		done := false
		b.evMu.Lock()
		for _, e := range b.evs {
			switch {
			case e.UUID() != id:
			case e.Type == events.TypeTaskSent:
				e := e
				sent = &e
			default:
				worker = append(worker, e)
				done = done || e.Type == last
			}
		}
		b.evMu.Unlock()
		return done && sent != nil, nil
	})
	if err != nil {
		t.Fatalf("task %s: got events %v (task-sent: %v), never %s: %v", id, types(worker), sent != nil, last, err)
	}
	return worker, sent
}

// waitEvent waits for an event for which match is true.
func (b *opsBundle) waitEvent(t *testing.T, what string, match func(events.Event) bool) events.Event {
	t.Helper()
	var found events.Event
	testenv.Eventually(t, 20*time.Second, func() bool {
		b.evMu.Lock()
		defer b.evMu.Unlock()
		for _, e := range b.evs {
			if match(e) {
				found = e
				return true
			}
		}
		return false
	}, "a %s event", what)
	return found
}

func types(evs []events.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

func TestOpsInspect(t *testing.T) {
	t.Parallel()
	b := startOps(t, opsConfig{concurrency: 1, multiplier: 4})
	ctx := ctxT(t, 60*time.Second)
	running, err := b.client.SendTask(ctx, "t.block", []any{"a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, func() bool { return b.worker.Snapshot().Active == 1 }, "t.block to start")
	queued, err := b.client.SendTask(ctx, "t.add", []any{1}, map[string]any{"y": 2})
	if err != nil {
		t.Fatal(err)
	}
	later, err := b.client.SendTask(ctx, "t.add", []any{3, 4}, nil, celery.WithCountdown(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, func() bool {
		s := b.worker.Snapshot()
		return s.Reserved == 1 && s.HeldETA == 1
	}, "the queued and the ETA task to be reserved")

	var active []control.RequestInfo
	b.askInto(t, "active", map[string]any{}, &active)
	if len(active) != 1 || active[0].ID != running.ID || active[0].Name != "t.block" || active[0].Type != "t.block" ||
		string(active[0].Args) != `["a"]` || !active[0].Acknowledged || active[0].TimeStart == nil ||
		active[0].WorkerPID == nil || active[0].Hostname != b.node || active[0].DeliveryInfo.RoutingKey != b.queue {
		t.Errorf("active: %+v", active)
	}
	b.askInto(t, "active", map[string]any{"safe": true}, &active)
	if len(active) != 1 || string(active[0].Args) != `"('a',)"` || string(active[0].Kwargs) != `"{}"` {
		t.Errorf("active safe: args %s kwargs %s", active[0].Args, active[0].Kwargs)
	}
	var reserved []control.RequestInfo
	b.askInto(t, "reserved", map[string]any{}, &reserved)
	if len(reserved) != 1 || reserved[0].ID != queued.ID || string(reserved[0].Kwargs) != `{"y": 2}` || string(reserved[0].Args) != `[1]` ||
		reserved[0].Acknowledged || reserved[0].TimeStart != nil || reserved[0].WorkerPID != nil {
		t.Errorf("reserved: %+v", reserved)
	}
	var scheduled []control.ScheduledInfo
	b.askInto(t, "scheduled", map[string]any{}, &scheduled)
	if len(scheduled) != 1 || scheduled[0].Request.ID != later.ID || scheduled[0].ETA == nil || scheduled[0].Priority != 6 {
		t.Errorf("scheduled: %+v", scheduled)
	}
	var query map[string][2]json.RawMessage
	b.askInto(t, "query_task", map[string]any{"ids": []string{running.ID, later.ID, "nosuch"}}, &query)
	if len(query) != 2 || string(query[running.ID][0]) != `"active"` || string(query[later.ID][0]) != `"reserved"` {
		t.Errorf("query_task: %v", query)
	}
	var stats map[string]any
	b.askInto(t, "stats", nil, &stats)
	pool, _ := stats["pool"].(map[string]any)
	brk, _ := stats["broker"].(map[string]any)
	if pool["max-concurrency"] != 1.0 || stats["prefetch_count"] == nil || brk["transport"] != "amqp" ||
		brk["hostname"] == nil || stats["rusage"] == nil || stats["clock"] == nil {
		t.Errorf("stats: %v", stats)
	}
	if total, _ := stats["total"].(map[string]any); total["t.block"] != 1.0 {
		t.Errorf("stats total: %v", stats["total"])
	}
	var registered []string
	b.askInto(t, "registered", map[string]any{"taskinfoitems": []string{}}, &registered)
	if want := []string{"t.add", "t.block [rate_limit=100/s]", "t.fail"}; !reflect.DeepEqual(registered, want) {
		t.Errorf("registered = %q, want %q", registered, want)
	}
	var queues []map[string]any
	b.askInto(t, "active_queues", nil, &queues)
	if len(queues) != 1 || queues[0]["name"] != b.queue || queues[0]["durable"] != true {
		t.Errorf("active_queues: %v", queues)
	}
	var conf map[string]any
	b.askInto(t, "conf", nil, &conf)
	if conf["task_default_queue"] != b.queue || conf["worker_concurrency"] != 1.0 {
		t.Errorf("conf: %v", conf)
	}
	var clock map[string]float64
	b.askInto(t, "clock", nil, &clock)
	if clock["clock"] < 1 {
		t.Errorf("clock: %v", clock)
	}
	var ping map[string]string
	if b.askInto(t, "ping", nil, &ping); ping["ok"] != "pong" {
		t.Errorf("ping: %v", ping)
	}
	var unknown map[string]string
	if b.askInto(t, "nosuch", nil, &unknown); unknown["error"] != "KeyError('nosuch')" {
		t.Errorf("nosuch: %v", unknown)
	}
	var bad map[string]string
	if b.askInto(t, "query_task", map[string]any{"ids": 5}, &bad); !strings.Contains(bad["error"], "ids must be a string or a list") {
		t.Errorf("query_task with a bad argument: %v", bad)
	}
	b.releaseAll()
	if _, err := running.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := queued.Get(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestOpsRevokePersistsAcrossWorkers(t *testing.T) {
	t.Parallel()
	b := startOps(t, opsConfig{taskEvents: true})
	ctx := ctxT(t, 60*time.Second)
	id := celery.NewID()
	b.wantOK(t, "revoke", map[string]any{"task_id": id}, "tasks "+id+" flagged as revoked")
	r, err := b.client.SendTask(ctx, "t.add", []any{1, 1}, nil, celery.WithTaskID(id))
	if err != nil {
		t.Fatal(err)
	}
	var te *celery.TaskError
	if _, err := r.Get(ctx); !errors.As(err, &te) || te.State != "REVOKED" || te.Exception.Type != "TaskRevokedError" ||
		!reflect.DeepEqual(te.Exception.Message, []any{"revoked"}) {
		t.Fatalf("revoked task: %v", err)
	}
	evs, _ := b.eventsOf(t, id, events.TypeTaskRevoked)
	if len(evs) != 1 {
		t.Errorf("events %v: a revoked task is neither received nor started", types(evs))
	}
	if got := b.metrics.outcomes("t.add"); !reflect.DeepEqual(got, []string{"revoked"}) {
		t.Errorf("metrics outcomes %v", got)
	}
	var revoked []string
	if b.askInto(t, "revoked", nil, &revoked); !reflect.DeepEqual(revoked, []string{id}) {
		t.Errorf("inspect revoked = %v", revoked)
	}
	// The first worker is gone; a new one on the same store and a new queue refuses the id too,
	// and one revoked in the store directly, while no worker listened.
	b.stop(t)
	other := celery.NewID()
	if err := b.store.Revoke(ctx, []string{other}, false, ""); err != nil {
		t.Fatal(err)
	}
	b2 := startOps(t, opsConfig{prefix: b.prefix})
	for _, rid := range []string{id, other} {
		r, err := b2.client.SendTask(ctx, "t.add", []any{2, 2}, nil, celery.WithTaskID(rid))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Get(ctx); !errors.As(err, &te) || te.State != "REVOKED" {
			t.Fatalf("task %s on a new worker: %v, want REVOKED", rid, err)
		}
	}
	// The worker tells the metrics after it stored REVOKED, so Get may return first.
	testenv.Eventually(t, 10*time.Second, func() bool {
		return reflect.DeepEqual(b2.metrics.outcomes("t.add"), []string{"revoked", "revoked"})
	}, "the second worker's metrics outcomes [revoked revoked]")
}

func TestOpsTerminate(t *testing.T) {
	t.Parallel()
	b := startOps(t, opsConfig{taskEvents: true})
	ctx := ctxT(t, 60*time.Second)
	r, err := b.client.SendTask(ctx, "t.block", []any{"x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, func() bool { return b.worker.Snapshot().Active == 1 }, "t.block to start")
	b.wantOK(t, "revoke", map[string]any{"task_id": r.ID, "terminate": true, "signal": "SIGKILL"}, "terminate: "+r.ID)
	var te *celery.TaskError
	if _, err := r.Get(ctx); !errors.As(err, &te) || te.State != "REVOKED" || !reflect.DeepEqual(te.Exception.Message, []any{"terminated"}) {
		t.Fatalf("terminated task: %v", err)
	}
	evs, _ := b.eventsOf(t, r.ID, events.TypeTaskRevoked)
	if got := types(evs); !reflect.DeepEqual(got, []string{"task-received", "task-started", "task-revoked"}) {
		t.Errorf("events %v", got)
	}
	last := evs[len(evs)-1]
	if v, _ := last.Get("terminated"); string(v) != "true" {
		t.Errorf("task-revoked terminated = %s", v)
	}
	if v, _ := last.Get("signum"); string(v) != "9" {
		t.Errorf("task-revoked signum = %s", v)
	}
	if got := b.metrics.outcomes("t.block"); !reflect.DeepEqual(got, []string{"revoked"}) {
		t.Errorf("metrics outcomes %v", got)
	}
	// Unknown ids, and a signal that does not exist.
	b.wantOK(t, "terminate", map[string]any{"task_id": []string{"nosuch"}, "signal": "TERM"}, "terminate: tasks unknown")
	var bad map[string]string
	if b.askInto(t, "revoke", map[string]any{"task_id": "x", "terminate": true, "signal": "SIGNOPE"}, &bad); !strings.Contains(bad["error"], "no such signal") {
		t.Errorf("bad signal: %v", bad)
	}
}

func TestOpsEventsAndMetrics(t *testing.T) {
	t.Parallel()
	b := startOps(t, opsConfig{})
	ctx := ctxT(t, 60*time.Second)
	// Task events are off: only task-sent (the client's) goes out.
	r, err := b.client.SendTask(ctx, "t.add", []any{1, 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx); err != nil {
		t.Fatal(err)
	}
	sent := b.waitEvent(t, "task-sent", func(e events.Event) bool { return e.UUID() == r.ID })
	if q, _ := sent.GetString("queue"); sent.Type != events.TypeTaskSent || q != b.queue {
		t.Errorf("task-sent %+v", sent)
	}
	b.wantOK(t, "enable_events", nil, "task events enabled")
	b.wantOK(t, "enable_events", nil, "task events already enabled")
	ok, err := b.client.SendTask(ctx, "t.add", []any{2, 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := b.client.SendTask(ctx, "t.fail", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	evs, sentEv := b.eventsOf(t, ok.ID, events.TypeTaskSucceeded)
	if got := types(evs); !reflect.DeepEqual(got, []string{"task-received", "task-started", "task-succeeded"}) {
		t.Errorf("success events %v", got)
	}
	if v, _ := evs[len(evs)-1].GetString("result"); v != "5" {
		t.Errorf("task-succeeded result %q", v)
	}
	if v, _ := evs[0].GetString("args"); v != "(2, 3)" {
		t.Errorf("task-received args %q", v)
	}
	if v, _ := sentEv.GetString("args"); v != "(2, 3)" || sentEv.Hostname != "gen1@client" {
		t.Errorf("task-sent %+v", sentEv)
	}
	evs, _ = b.eventsOf(t, bad.ID, events.TypeTaskFailed)
	if v, _ := evs[len(evs)-1].GetString("exception"); v != "failErr('boom')" {
		t.Errorf("task-failed exception %q", v)
	}
	for _, e := range evs {
		if err := e.Validate(); err != nil {
			t.Error(err)
		}
	}
	b.wantOK(t, "disable_events", nil, "task events disabled")
	b.wantOK(t, "disable_events", nil, "task events already disabled")
	if got := b.metrics.outcomes("t.add"); !reflect.DeepEqual(got, []string{"success", "success"}) {
		t.Errorf("t.add outcomes %v", got)
	}
	if got := b.metrics.outcomes("t.fail"); !reflect.DeepEqual(got, []string{"failure"}) {
		t.Errorf("t.fail outcomes %v", got)
	}
	b.metrics.mu.Lock()
	received, started := len(b.metrics.received), len(b.metrics.started)
	for _, w := range b.metrics.waits {
		if w < 0 {
			t.Errorf("negative queue wait %s", w)
		}
	}
	b.metrics.mu.Unlock()
	if received != 3 || started != 3 {
		t.Errorf("metrics saw %d received, %d started; want 3, 3", received, started)
	}
	// A heartbeat on request (freq 5, as Celery's command sends it).
	if raw := b.ask(t, "heartbeat", nil); string(raw) != "null" {
		t.Errorf("heartbeat reply %s", raw)
	}
	hb := b.waitEvent(t, "worker-heartbeat", func(e events.Event) bool {
		return e.Type == events.TypeWorkerHeartbeat && e.Hostname == b.node
	})
	if v, _ := hb.Get("freq"); string(v) != "5.0" {
		t.Errorf("heartbeat freq %s", v)
	}
}

func TestOpsPoolAndConsumers(t *testing.T) {
	t.Parallel()
	b := startOps(t, opsConfig{concurrency: 2})
	ctx := ctxT(t, 60*time.Second)
	b.wantOK(t, "pool_grow", map[string]any{"n": 3}, "pool will grow")
	var stats map[string]any
	b.askInto(t, "stats", nil, &stats)
	if pool := stats["pool"].(map[string]any); pool["max-concurrency"] != 5.0 || stats["prefetch_count"] != 5.0 {
		t.Errorf("after pool_grow 3: pool %v prefetch %v", pool, stats["prefetch_count"])
	}
	b.wantOK(t, "pool_shrink", nil, "pool will shrink")
	b.askInto(t, "stats", nil, &stats)
	if pool := stats["pool"].(map[string]any); pool["max-concurrency"] != 4.0 {
		t.Errorf("after pool_shrink: %v", pool)
	}
	var refused map[string]string
	if b.askInto(t, "pool_shrink", map[string]any{"n": 10}, &refused); !strings.HasPrefix(refused["error"], "ValueError(") {
		t.Errorf("pool_shrink 10: %v", refused)
	}
	// Four goroutines: four blocked tasks run at once.
	var rs []*celery.AsyncResult
	for i := 0; i < 4; i++ {
		r, err := b.client.SendTask(ctx, "t.block", []any{fmt.Sprint(i)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	testenv.Eventually(t, 20*time.Second, func() bool { return b.worker.Snapshot().Active == 4 }, "four tasks running")
	b.releaseAll()
	for _, r := range rs {
		if _, err := r.Get(ctx); err != nil {
			t.Fatal(err)
		}
	}

	extra := b.queue + ".extra"
	testenv.DeleteQueuesAtCleanup(t, extra)
	b.wantOK(t, "add_consumer", map[string]any{"queue": extra, "exchange": nil, "exchange_type": nil, "routing_key": nil}, "add consumer "+extra)
	b.wantOK(t, "add_consumer", map[string]any{"queue": extra}, "add consumer "+extra) // again: nothing changes
	var queues []map[string]any
	if b.askInto(t, "active_queues", nil, &queues); len(queues) != 2 || queues[1]["name"] != extra {
		t.Errorf("active_queues after add_consumer: %v", queues)
	}
	r, err := b.client.SendTask(ctx, "t.add", []any{5, 5}, nil, celery.WithQueue(extra))
	if err != nil {
		t.Fatal(err)
	}
	var sum int
	if err := r.GetInto(ctx, &sum); err != nil || sum != 10 {
		t.Fatalf("task on the added queue: %d, %v", sum, err)
	}
	b.wantOK(t, "cancel_consumer", map[string]any{"queue": extra}, "no longer consuming from "+extra)
	if b.askInto(t, "active_queues", nil, &queues); len(queues) != 1 || queues[0]["name"] != b.queue {
		t.Errorf("active_queues after cancel_consumer: %v", queues)
	}
	r, err = b.client.SendTask(ctx, "t.add", []any{6, 6}, nil, celery.WithQueue(extra))
	if err != nil {
		t.Fatal(err)
	}
	// Nothing consumes the queue now: the message stays there (checked after the result of a
	// task sent later on the worker's queue is in).
	last, err := b.client.SendTask(ctx, "t.add", []any{0, 0}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := last.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := r.State(ctx); st != "PENDING" {
		t.Errorf("a task sent to the cancelled queue is %s", st)
	}
	var bad map[string]string
	if b.askInto(t, "add_consumer", map[string]any{"queue": extra, "exchange_type": "bogus"}, &bad); !strings.Contains(bad["error"], "unknown exchange_type") {
		t.Errorf("add_consumer with a bad exchange type: %v", bad)
	}
}

func TestOpsRateAndTimeLimits(t *testing.T) {
	t.Parallel()
	b := startOps(t, opsConfig{})
	ctx := ctxT(t, 60*time.Second)
	b.wantOK(t, "rate_limit", map[string]any{"task_name": "t.add", "rate_limit": "10/m"}, control.RateLimitSet)
	var registered []string
	b.askInto(t, "registered", nil, &registered)
	if want := []string{"t.add [rate_limit=10/m]", "t.block [rate_limit=100/s]", "t.fail"}; !reflect.DeepEqual(registered, want) {
		t.Errorf("registered = %q, want %q", registered, want)
	}
	b.wantOK(t, "rate_limit", map[string]any{"task_name": "t.add", "rate_limit": nil}, control.RateLimitDisabled)
	var r map[string]string
	if b.askInto(t, "rate_limit", map[string]any{"task_name": "nosuch", "rate_limit": "1/s"}, &r); r["error"] != control.UnknownTask {
		t.Errorf("rate_limit of an unknown task: %v", r)
	}
	if b.askInto(t, "rate_limit", map[string]any{"task_name": "t.add", "rate_limit": "1/y"}, &r); !strings.HasPrefix(r["error"], "Invalid rate limit string: ValueError(") {
		t.Errorf("rate_limit 1/y: %v", r)
	}
	b.wantOK(t, "time_limit", map[string]any{"task_name": "t.block", "soft": 0.05, "hard": nil}, "time limits set successfully")
	if b.askInto(t, "time_limit", map[string]any{"task_name": "nosuch", "soft": 1}, &r); r["error"] != control.UnknownTask {
		t.Errorf("time_limit of an unknown task: %v", r)
	}
	b.askInto(t, "registered", map[string]any{"taskinfoitems": []string{"soft_time_limit", "time_limit"}}, &registered)
	if registered[1] != "t.block [soft_time_limit=0.05]" {
		t.Errorf("registered soft_time_limit: %q", registered)
	}
	res, err := b.client.SendTask(ctx, "t.block", []any{"late"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var te *celery.TaskError
	if _, err := res.Get(ctx); !errors.As(err, &te) || te.Exception.Type != "SoftTimeLimitExceeded" {
		t.Fatalf("t.block with a soft time limit: %v", err)
	}
}

func TestOpsShutdownAndRefusals(t *testing.T) {
	t.Parallel()
	b := startOps(t, opsConfig{})
	for _, method := range []string{"pool_restart", "autoscale"} {
		var r map[string]string
		if b.askInto(t, method, nil, &r); !strings.HasPrefix(r["error"], "ValueError(") {
			t.Errorf("%s: %v", method, r)
		}
	}
	b.wantOK(t, "shutdown", map[string]any{"msg": "bye"}, "bye")
	if err := b.run.Wait(t, 30*time.Second); !errors.Is(err, celery.ErrWorkerClosed) || errors.Is(err, celery.ErrWorkerShutdown) {
		t.Errorf("Run after the shutdown command = %v, want ErrWorkerClosed (warm)", err)
	}
	if err := b.worker.Alive(); err == nil {
		t.Error("Alive after shutdown = nil")
	}
}

func TestOpsHelloAndMingle(t *testing.T) {
	t.Parallel()
	ns := "t" + testenv.Suffix()
	a := startOps(t, opsConfig{ns: ns})
	// A Python worker's hello: its revoked ids ([time, id] pairs, or times) join the store.
	var reply struct {
		Revoked map[string]json.RawMessage `json:"revoked"`
		Clock   uint64                     `json:"clock"`
	}
	a.askInto(t, "hello", map[string]any{"from_node": "celery@py", "revoked": map[string]any{
		"py-1": []any{123.5, "py-1"}, "py-2": 7.25}}, &reply)
	if len(reply.Revoked) != 2 || reply.Clock == 0 {
		t.Fatalf("hello reply %+v", reply)
	}
	for id, ts := range reply.Revoked {
		if !strings.Contains(string(ts), ".") {
			t.Errorf("revoked[%s] = %s: Celery's LimitedSet wants a float", id, ts)
		}
	}
	if raw := a.ask(t, "hello", map[string]any{"from_node": a.node}); string(raw) != "null" {
		t.Errorf("own hello: %s", raw)
	}
	var bad map[string]string
	if a.askInto(t, "hello", map[string]any{"from_node": "x", "revoked": map[string]any{"id": "soon"}}, &bad); !strings.Contains(bad["error"], "revoked") {
		t.Errorf("hello with a bad revoked: %v", bad)
	}
	ctx := ctxT(t, 30*time.Second)
	for _, id := range []string{"py-1", "py-2"} {
		if ok, err := a.store.IsRevoked(ctx, id); err != nil || !ok {
			t.Errorf("%s in the store: %v, %v", id, ok, err)
		}
	}
	// A second worker (its own store) learns them by mingling with the first.
	b := startOps(t, opsConfig{ns: ns})
	n, err := b.worker.Mingle(ctx, b.ctl, b.mb)
	if err != nil || n != 1 {
		t.Fatalf("Mingle = %d, %v; want 1 node", n, err)
	}
	for _, id := range []string{"py-1", "py-2"} {
		if ok, err := b.store.IsRevoked(ctx, id); err != nil || !ok {
			t.Errorf("%s after mingle: %v, %v", id, ok, err)
		}
	}
}

// TestOpsRevokeStoreDown: with the revoke store unreachable tasks still run, and revokes still
// work in memory.
func TestOpsRevokeStoreDown(t *testing.T) {
	t.Parallel()
	dead := redis.NewClient(&redis.Options{Addr: testenv.FreeAddr(t), DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = dead.Close() })
	b := startOps(t, opsConfig{store: redisrevoke.New(dead, "t:dead:", time.Hour)})
	ctx := ctxT(t, 60*time.Second)
	r, err := b.client.SendTask(ctx, "t.add", []any{1, 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx); err != nil {
		t.Fatalf("a task with the revoke store down: %v", err)
	}
	id := celery.NewID()
	b.wantOK(t, "revoke", map[string]any{"task_id": id}, "tasks "+id+" flagged as revoked")
	r, err = b.client.SendTask(ctx, "t.add", []any{1, 2}, nil, celery.WithTaskID(id))
	if err != nil {
		t.Fatal(err)
	}
	var te *celery.TaskError
	if _, err := r.Get(ctx); !errors.As(err, &te) || te.State != "REVOKED" {
		t.Fatalf("revoked in memory: %v", err)
	}
	var revoked []string
	if b.askInto(t, "revoked", nil, &revoked); !reflect.DeepEqual(revoked, []string{id}) {
		t.Errorf("inspect revoked with the store down = %v", revoked)
	}
}
