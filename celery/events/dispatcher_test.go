package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/internal/testenv"
)

// memBroker is an in-memory broker.Broker for the Dispatcher's unit tests: it records what is
// published and declared, and can hold publishes (gate) to make buffering deterministic. The
// integration tests run the same code against RabbitMQ.
type memBroker struct {
	mu        sync.Mutex
	published []broker.Publishing
	declared  []broker.Queue
	exchanges []string
	fail      int           // fail this many publishes
	discard   bool          // keep nothing (benchmarks)
	gate      chan struct{} // when set, each publish waits for a token or its close
	started   chan struct{} // when set, gets a token as each publish begins
}

func (m *memBroker) Consume(context.Context, []broker.Queue, int) (<-chan *broker.Delivery, error) {
	return nil, errors.New("memBroker: no Consume")
}
func (m *memBroker) StopConsuming(context.Context) error { return nil }
func (m *memBroker) SetPrefetch(int) error               { return nil }
func (m *memBroker) Close() error                        { return nil }
func (m *memBroker) Capabilities() broker.Capabilities   { return broker.Capabilities{} }

func (m *memBroker) Declare(_ context.Context, q broker.Queue) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.declared = append(m.declared, q)
	return nil
}

func (m *memBroker) Publish(ctx context.Context, p broker.Publishing) error {
	if m.started != nil {
		m.started <- struct{}{}
	}
	if m.gate != nil {
		select {
		case <-m.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail > 0 {
		m.fail--
		return errors.New("memBroker: publish refused")
	}
	if !m.discard {
		m.published = append(m.published, p)
	}
	return nil
}

// messages returns what was published so far.
func (m *memBroker) messages() []broker.Publishing {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]broker.Publishing(nil), m.published...)
}

// waitFor waits until at least n messages were published.
func (m *memBroker) waitFor(t *testing.T, n int) []broker.Publishing {
	t.Helper()
	var got []broker.Publishing
	if err := testenv.Poll(10*time.Second, func() (bool, error) {
		got = m.messages()
		return len(got) >= n, nil
	}); err != nil {
		t.Fatalf("%d messages published, want %d: %v", len(got), n, err)
	}
	return got
}

// exchangeBroker also implements ExchangeDeclarer.
type exchangeBroker struct{ *memBroker }

func (x exchangeBroker) DeclareExchange(_ context.Context, name, kind string, durable, autoDelete bool) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.exchanges = append(x.exchanges, fmt.Sprintf("%s %s durable=%v auto_delete=%v", name, kind, durable, autoDelete))
	return nil
}

func newTestDispatcher(t *testing.T, br broker.Broker, o Options) *Dispatcher {
	t.Helper()
	if o.Hostname == "" {
		o.Hostname = "gotest@host"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	d, err := NewDispatcher(br, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = d.Close(ctx)
	})
	return d
}

func closeDispatcher(t *testing.T, d *Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// bodyEvents decodes a published body.
func bodyEvents(t *testing.T, p broker.Publishing) ([]Event, bool) {
	t.Helper()
	evs, multi, err := DecodeBody(p.Body)
	if err != nil {
		t.Fatalf("body %s: %v", p.Body, err)
	}
	return evs, multi
}

func custom(n int) Event {
	return Event{Type: "test-event", Fields: []Field{integer("n", int64(n))}}
}

func TestDispatcherPublishesLikeCelery(t *testing.T) {
	t.Parallel()
	br := &memBroker{}
	now := time.Date(2026, 11, 25, 18, 0, 0, 250_000_000, time.FixedZone("CET", 3600))
	d := newTestDispatcher(t, br, Options{Hostname: "celery@go", Enabled: true, BatchLimit: 1, PID: 4242,
		Now: func() time.Time { return now }, Exchange: "celeryev.unit"})
	sent := []Event{
		NewTaskReceived(TaskInfo{ID: "id1", Name: "diag.add", ArgsRepr: "(2, 3)", KwargsRepr: "{}", RootID: "id1"}),
		NewTaskStarted("id1"),
		NewTaskSucceeded("id1", json.RawMessage("5"), 3*time.Millisecond),
		NewWorkerHeartbeat(WorkerState{Freq: 2 * time.Second, Software: DefaultSoftware()}),
	}
	stamped := Event{Type: "custom-stamp", Timestamp: 12.5}
	for _, e := range append(sent, stamped) {
		if !d.Send(e) {
			t.Fatalf("Send(%s) refused", e.Type)
		}
	}
	closeDispatcher(t, d)
	msgs := br.messages()
	if len(msgs) != 5 {
		t.Fatalf("%d messages, want 5", len(msgs))
	}
	for i, p := range msgs {
		evs, multi := bodyEvents(t, p)
		if multi || len(evs) != 1 {
			t.Fatalf("message %d: multi %v with %d events", i, multi, len(evs))
		}
		e := evs[0]
		wantType := append(sent, stamped)[i].Type
		if e.Type != wantType || p.RoutingKey != strings.ReplaceAll(wantType, "-", ".") || p.Exchange != "celeryev.unit" {
			t.Errorf("message %d: %s to %s/%s", i, e.Type, p.Exchange, p.RoutingKey)
		}
		if p.ContentType != "application/json" || p.ContentEncoding != "utf-8" || p.DeliveryMode != 1 ||
			len(p.Headers) != 1 || p.Headers["hostname"] != "celery@go" || p.Declare != nil {
			t.Errorf("message %d envelope: %+v", i, p.Envelope)
		}
		wantTS := 1795626000.25
		if i == 4 {
			wantTS = 12.5 // a timestamp set by the caller is kept, as in Celery
		}
		if e.Hostname != "celery@go" || e.PID != 4242 || e.UTCOffset != -1 || e.Clock != int64(i+1) || e.Timestamp != wantTS {
			t.Errorf("message %d stamped %+v", i, e)
		}
		if err := e.Validate(); err != nil {
			t.Error(err)
		}
	}
	// No ExchangeDeclarer: nothing is declared (no helper queue either); the exchange must exist.
	if len(br.declared) != 0 || len(br.exchanges) != 0 {
		t.Fatalf("declared %+v %v", br.declared, br.exchanges)
	}
	if st := d.Stats(); st != (Stats{Sent: 5, Messages: 5}) {
		t.Errorf("stats %+v", st)
	}
}

func TestDispatcherUsesExchangeDeclarer(t *testing.T) {
	t.Parallel()
	br := exchangeBroker{&memBroker{}}
	d := newTestDispatcher(t, br, Options{})
	d.Send(custom(1))
	d.Send(custom(2))
	closeDispatcher(t, d)
	if len(br.exchanges) != 1 || br.exchanges[0] != "celeryev topic durable=true auto_delete=false" || len(br.declared) != 0 {
		t.Errorf("exchanges %v, queues %v", br.exchanges, br.declared)
	}
	if len(br.messages()) != 2 || br.messages()[0].Exchange != "celeryev" {
		t.Errorf("published %+v", br.messages())
	}
}

func TestDispatcherBatchesTaskEvents(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		limit int
		want  []string // routing key:events
	}{
		{0, []string{"worker.online:1", "task.multi:3", "worker.heartbeat:1", "task.multi:2"}},
		{2, []string{"worker.online:1", "task.multi:2", "task.multi:1", "worker.heartbeat:1", "task.multi:2"}},
		{1, []string{"worker.online:1", "task.received:1", "task.started:1", "task.succeeded:1", "worker.heartbeat:1", "task.received:1", "task.failed:1"}},
	} {
		t.Run(fmt.Sprint("limit", tc.limit), func(t *testing.T) {
			t.Parallel()
			br := &memBroker{gate: make(chan struct{}), started: make(chan struct{}, 100)}
			d := newTestDispatcher(t, br, Options{Enabled: true, BatchLimit: tc.limit})
			ws := WorkerState{Software: DefaultSoftware()}
			d.Send(NewWorkerOnline(ws))
			<-br.started // the publisher holds worker-online; the rest waits in the buffer
			for _, e := range []Event{
				NewTaskReceived(TaskInfo{ID: "a"}), NewTaskStarted("a"), NewTaskSucceeded("a", nil, 0),
				NewWorkerHeartbeat(ws), NewTaskReceived(TaskInfo{ID: "b"}), NewTaskFailed("b", "E()", ""),
			} {
				d.Send(e)
			}
			close(br.gate)
			closeDispatcher(t, d)
			var got []string
			var clock int64
			for _, p := range br.messages() {
				evs, multi := bodyEvents(t, p)
				if multi != strings.HasSuffix(p.RoutingKey, ".multi") {
					t.Errorf("%s: multi body %v", p.RoutingKey, multi)
				}
				for _, e := range evs {
					if e.Clock != clock+1 {
						t.Errorf("clock %d after %d: order changed", e.Clock, clock)
					}
					clock = e.Clock
				}
				got = append(got, fmt.Sprintf("%s:%d", p.RoutingKey, len(evs)))
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("messages %v, want %v", got, tc.want)
			}
			if st := d.Stats(); st.Sent != 7 || st.Messages != uint64(len(tc.want)) || st.Dropped != 0 || st.Failed != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestDispatcherDropsOldestWhenFull(t *testing.T) {
	t.Parallel()
	br := &memBroker{gate: make(chan struct{}), started: make(chan struct{}, 100)}
	d := newTestDispatcher(t, br, Options{BufferSize: 4})
	d.Send(custom(0))
	<-br.started // event 0 is being published and blocks
	for i := 1; i <= 10; i++ {
		if !d.Send(custom(i)) { // never blocks, even with the broker stuck
			t.Fatalf("Send(%d) refused", i)
		}
	}
	if st := d.Stats(); st.Dropped != 6 {
		t.Errorf("dropped %d, want 6", st.Dropped)
	}
	close(br.gate)
	closeDispatcher(t, d)
	var got []string
	for _, p := range br.messages() {
		evs, _ := bodyEvents(t, p)
		raw, _ := evs[0].Get("n")
		got = append(got, string(raw))
	}
	if strings.Join(got, ",") != "0,7,8,9,10" {
		t.Errorf("published %v, want the first (in flight) and the 4 newest", got)
	}
	if st := d.Stats(); st != (Stats{Sent: 5, Messages: 5, Dropped: 6}) {
		t.Errorf("stats %+v", st)
	}
}

func TestDispatcherTaskEventsToggle(t *testing.T) {
	t.Parallel()
	br := &memBroker{}
	clock := new(Clock)
	d := newTestDispatcher(t, br, Options{Clock: clock})
	if d.TaskEventsEnabled() || d.Send(NewTaskStarted("x")) || clock.Value() != 0 {
		t.Fatal("task event sent while disabled, or the clock moved")
	}
	if !d.Send(NewWorkerHeartbeat(WorkerState{})) || clock.Value() != 1 {
		t.Fatal("worker events are always sent")
	}
	if !d.EnableTaskEvents() || d.EnableTaskEvents() || !d.TaskEventsEnabled() {
		t.Error("EnableTaskEvents: want true, then false (already enabled)")
	}
	if !d.Send(NewTaskStarted("y")) {
		t.Error("task event refused while enabled")
	}
	if !d.DisableTaskEvents() || d.DisableTaskEvents() || d.TaskEventsEnabled() {
		t.Error("DisableTaskEvents: want true, then false (already disabled)")
	}
	if d.Send(NewTaskStarted("z")) {
		t.Error("task event sent after disable")
	}
	// The clock is shared: a value seen from a peer moves the next event past it.
	clock.Forward(100)
	d.Send(custom(1))
	closeDispatcher(t, d)
	msgs := br.messages()
	if len(msgs) != 3 {
		t.Fatalf("%d messages, want 3", len(msgs))
	}
	evs, _ := bodyEvents(t, msgs[1])
	if evs[0].UUID() != "y" {
		t.Errorf("second message %+v", evs[0])
	}
	evs, _ = bodyEvents(t, msgs[2])
	if evs[0].Clock != 102 {
		t.Errorf("clock %d after Forward(100), want 102", evs[0].Clock)
	}
}

func TestDispatcherClose(t *testing.T) {
	t.Parallel()
	t.Run("flushes", func(t *testing.T) {
		t.Parallel()
		br := &memBroker{}
		d := newTestDispatcher(t, br, Options{BatchLimit: 1})
		for i := range 50 {
			d.Send(custom(i))
		}
		closeDispatcher(t, d)
		if n := len(br.messages()); n != 50 {
			t.Errorf("%d published after Close, want 50", n)
		}
		if d.Send(custom(99)) {
			t.Error("Send after Close accepted")
		}
		if st := d.Stats(); st.Dropped != 1 || st.Sent != 50 {
			t.Errorf("stats %+v", st)
		}
		closeDispatcher(t, d) // a second Close is harmless
	})
	t.Run("deadline", func(t *testing.T) {
		t.Parallel()
		br := &memBroker{gate: make(chan struct{}), started: make(chan struct{}, 100)}
		d := newTestDispatcher(t, br, Options{BatchLimit: 1})
		d.Send(custom(0))
		<-br.started
		d.Send(custom(1))
		d.Send(custom(2))
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // nothing more can be published
		err := d.Close(ctx)
		if err == nil || !strings.Contains(err.Error(), "2 events not published") || !errors.Is(err, context.Canceled) {
			t.Errorf("Close = %v", err)
		}
		if st := d.Stats(); st.Dropped != 2 || st.Failed != 1 || st.Sent != 0 {
			t.Errorf("stats %+v (the one in flight failed, two dropped)", st)
		}
	})
}

func TestDispatcherPublishFailure(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	var logMu sync.Mutex
	br := exchangeBroker{&memBroker{fail: 1}}
	d := newTestDispatcher(t, br, Options{BatchLimit: 1, Logger: slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))})
	d.Send(custom(1))
	d.Send(custom(2))
	bad := custom(3)
	bad.Fields = append(bad.Fields, Field{Name: "x", Value: json.RawMessage("{")})
	d.Send(bad)
	closeDispatcher(t, d)
	if st := d.Stats(); st.Failed != 2 || st.Sent != 1 {
		t.Errorf("stats %+v", st)
	}
	// After the failure the exchange is declared again before the next publish.
	if len(br.exchanges) != 2 || len(br.declared) != 0 {
		t.Errorf("exchange declared %d times (%v), queues %v; want the exchange twice", len(br.exchanges), br.exchanges, br.declared)
	}
	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	if !strings.Contains(out, "publishing failed") || !strings.Contains(out, "cannot be encoded") || !strings.Contains(out, `field \"x\"`) {
		t.Errorf("log:\n%s", out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestNewDispatcherErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		br   broker.Broker
		o    Options
		want string
	}{
		{nil, Options{Hostname: "h"}, "no broker"},
		{&memBroker{}, Options{}, "Hostname"},
		{&memBroker{}, Options{Hostname: "h", BufferSize: -1}, "negative"},
		{&memBroker{}, Options{Hostname: "h", PublishTimeout: -time.Second}, "negative"},
	} {
		if _, err := NewDispatcher(tc.br, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewDispatcher(%+v) = %v, want %q", tc.o, err, tc.want)
		}
	}
}

func TestHeartbeat(t *testing.T) {
	t.Parallel()
	br := &memBroker{}
	d := newTestDispatcher(t, br, Options{})
	var mu sync.Mutex
	active, processed := 2, 7
	h := StartHeartbeat(d, HeartbeatOptions{
		Freq: 5 * time.Millisecond,
		Status: func() (int, int) {
			mu.Lock()
			defer mu.Unlock()
			return active, processed
		},
		LoadAvg: func() ([3]float64, error) { return [3]float64{0.5, 0.25, 1}, nil },
	})
	br.waitFor(t, 3) // online + two heartbeats
	mu.Lock()
	active, processed = 0, 9
	mu.Unlock()
	h.Stop()
	h.Stop() // once
	closeDispatcher(t, d)
	msgs := br.messages()
	var types []string
	for i, p := range msgs {
		evs, _ := bodyEvents(t, p)
		e := evs[0]
		types = append(types, e.Type)
		if err := e.Validate(); err != nil {
			t.Error(err)
		}
		la, _ := e.Get("loadavg")
		freq, _ := e.Get("freq")
		sw, _ := e.GetString("sw_ident")
		if string(la) != "[0.5, 0.25, 1.0]" || string(freq) != "0.005" || sw != "go-celery" {
			t.Errorf("message %d: loadavg %s freq %s sw_ident %s", i, la, freq, sw)
		}
		if i == len(msgs)-1 {
			a, _ := e.Get("active")
			n, _ := e.Get("processed")
			if string(a) != "0" || string(n) != "9" {
				t.Errorf("offline reports active %s processed %s", a, n)
			}
		}
	}
	if types[0] != TypeWorkerOnline || types[len(types)-1] != TypeWorkerOffline || len(types) < 4 {
		t.Fatalf("types %v", types)
	}
	for _, typ := range types[1 : len(types)-1] {
		if typ != TypeWorkerHeartbeat {
			t.Errorf("types %v", types)
		}
	}
}

func TestHeartbeatLoadAvgError(t *testing.T) {
	t.Parallel()
	br := &memBroker{}
	var logs bytes.Buffer
	var logMu sync.Mutex
	d := newTestDispatcher(t, br, Options{})
	h := StartHeartbeat(d, HeartbeatOptions{
		Logger:   slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil)),
		LoadAvg:  func() ([3]float64, error) { return [3]float64{9, 9, 9}, errors.New("no /proc") },
		Software: Software{Ident: "x", Version: "1", System: "Plan9"},
	})
	h.Stop()
	closeDispatcher(t, d)
	for _, p := range br.messages() {
		evs, _ := bodyEvents(t, p)
		la, _ := evs[0].Get("loadavg")
		sys, _ := evs[0].GetString("sw_sys")
		if string(la) != "[0.0, 0.0, 0.0]" || sys != "Plan9" {
			t.Errorf("%s: loadavg %s sw_sys %s", evs[0].Type, la, sys)
		}
	}
	logMu.Lock()
	defer logMu.Unlock()
	if n := strings.Count(logs.String(), "no /proc"); n != 1 {
		t.Errorf("the load average error was logged %d times, want once:\n%s", n, logs.String())
	}
}
