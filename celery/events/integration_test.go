package events

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/celery/broker/amqpbroker"
	"github.com/forumads/forumads/internal/tcpproxy"
	"github.com/forumads/forumads/internal/testenv"
)

// newRabbitBroker is an amqpbroker for the test, closed at cleanup.
func newRabbitBroker(t testing.TB) *amqpbroker.Broker {
	t.Helper()
	br, err := amqpbroker.New(testenv.AMQPURL(), amqpbroker.Options{ConnectionName: "events-test",
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = br.Close() })
	return br
}

// newTestReceiver starts a Receiver on exchange on a RabbitMQ connection of its own, failing the
// test if RabbitMQ is not there.
func newTestReceiver(t testing.TB, ctx context.Context, o ReceiverOptions) *Receiver {
	t.Helper()
	tr, err := amqpbroker.NewFanout(testenv.AMQPURL(), amqpbroker.Options{ConnectionName: "events-test-receiver",
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	r, err := NewReceiver(ctx, tr, o)
	if err != nil {
		t.Fatalf("RabbitMQ is required at %s (run scripts/services.sh): %v", testenv.AMQPURL(), err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// receive takes n items from r, failing after 20 s.
func receive(t *testing.T, r *Receiver, n int) []Received {
	t.Helper()
	var out []Received
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	for len(out) < n {
		select {
		case x, ok := <-r.C():
			if !ok {
				t.Fatalf("receiver stopped after %d of %d: %v", len(out), n, r.Err())
			}
			out = append(out, x)
		case <-timer.C:
			t.Fatalf("received %d of %d events", len(out), n)
		}
	}
	return out
}

// TestDispatchAndReceiveRabbitMQ sends every event type through RabbitMQ on the test's own exchange
// and receives them with a Receiver, batched and unbatched.
func TestDispatchAndReceiveRabbitMQ(t *testing.T) {
	t.Parallel()
	for _, limit := range []int{0, 1} {
		t.Run(fmt.Sprint("batch", limit), func(t *testing.T) {
			t.Parallel()
			ex := testenv.Name(t, "celeryev")
			testenv.DeleteQueuesAtCleanup(t, ex)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			rclock := new(Clock)
			rcv := newTestReceiver(t, ctx, ReceiverOptions{Exchange: ex, Clock: rclock})

			// The receiver's queue is declared exactly as Celery's EventReceiver declares it: an
			// identical declaration succeeds (a different one would fail with 406).
			ch, err := testenv.AMQP(t).Channel()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(rcv.Queue(), "celeryev.") || len(rcv.Queue()) != len("celeryev.")+36 {
				t.Errorf("queue name %q", rcv.Queue())
			}
			if _, err := ch.QueueDeclare(rcv.Queue(), false, true, false, false,
				amqp.Table{"x-message-ttl": int32(5000), "x-expires": int32(60000)}); err != nil {
				t.Fatalf("redeclaring the receiver's queue as kombu does: %v", err)
			}

			d, err := NewDispatcher(newRabbitBroker(t), Options{Hostname: "gotest@events", Exchange: ex, Enabled: true,
				BatchLimit: limit, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			ws := WorkerState{Freq: 2 * time.Second, Active: 1, Processed: 3, LoadAvg: [3]float64{0.5, 1, 1.5}, Software: DefaultSoftware()}
			ti := TaskInfo{ID: newUUID(), Name: "diag.add", ArgsRepr: "(2, 3)", KwargsRepr: "{}", ETA: time.Now().UTC()}
			sent := []Event{
				NewWorkerOnline(ws), NewTaskSent(ti, "celery", "", "celery"), NewTaskReceived(ti), NewTaskStarted(ti.ID),
				NewTaskSucceeded(ti.ID, json.RawMessage(`[5, "é"]`), 1234*time.Microsecond),
				NewTaskFailed(ti.ID, ExceptionRepr("DiagError", "boom"), "Traceback (most recent call last):\n"),
				NewWorkerHeartbeat(ws), NewTaskRetried(ti.ID, "E()", "tb"), NewTaskRevoked(ti.ID, false, 0, true),
				NewTaskRejected(ti.ID, false), NewWorkerOffline(ws),
			}
			for _, e := range sent {
				if !d.Send(e) {
					t.Fatalf("Send(%s) refused", e.Type)
				}
			}
			cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer ccancel()
			if err := d.Close(cctx); err != nil {
				t.Fatal(err)
			}
			if st := d.Stats(); st.Sent != uint64(len(sent)) || st.Failed != 0 || st.Dropped != 0 {
				t.Fatalf("stats %+v", st)
			}
			// The dispatcher declared the exchange as kombu does: kombu's declaration succeeds.
			if err := ch.ExchangeDeclare(ex, "topic", true, false, false, false, nil); err != nil {
				t.Fatalf("redeclaring the exchange as kombu does: %v", err)
			}

			got := receive(t, rcv, len(sent))
			for i, r := range got {
				if r.Err != nil {
					t.Fatalf("event %d: %v", i, r.Err)
				}
				want := sent[i]
				e := r.Event
				if e.Type != want.Type || e.Hostname != "gotest@events" || e.PID != os.Getpid() || e.Clock != int64(i+1) {
					t.Errorf("event %d: %s from %s pid %d clock %d", i, e.Type, e.Hostname, e.PID, e.Clock)
				}
				if len(e.Fields) != len(want.Fields) {
					t.Fatalf("event %d fields %v, want %v", i, e.Fields, want.Fields)
				}
				for j := range want.Fields {
					if e.Fields[j].Name != want.Fields[j].Name || string(e.Fields[j].Value) != string(want.Fields[j].Value) {
						t.Errorf("event %d field %s = %s, want %s = %s", i, e.Fields[j].Name, e.Fields[j].Value, want.Fields[j].Name, want.Fields[j].Value)
					}
				}
				batched := limit != 1 && e.Group() == GroupTask
				wantKey := e.RoutingKey()
				if batched {
					wantKey = "task.multi"
				}
				if r.Multi != batched || r.RoutingKey != wantKey || r.Hostname != "gotest@events" ||
					r.ContentType != "application/json" || r.DeliveryMode != 1 {
					t.Errorf("event %d (%s): multi %v key %q header %q type %q mode %d", i, e.Type, r.Multi, r.RoutingKey, r.Hostname, r.ContentType, r.DeliveryMode)
				}
				if err := e.Validate(); err != nil {
					t.Error(err)
				}
			}
			// The receiver forwarded its clock with the events it saw: one
			// past the last clock.
			if rclock.Value() != int64(len(sent))+1 {
				t.Errorf("receiver clock %d, want %d", rclock.Value(), len(sent)+1)
			}

			// Undecodable messages are reported, not skipped.
			for _, m := range []amqp.Publishing{
				{ContentType: "application/json", Body: []byte(`{"type": "x"`)},
				{ContentType: "text/plain", Body: []byte(`hello`)},
				{ContentType: "application/json", Body: []byte(`[{"type": "task-started", "hostname": "h", "timestamp": 1, "uuid": "u"}, 5]`)},
			} {
				if err := ch.PublishWithContext(ctx, ex, "task.bad", false, false, m); err != nil {
					t.Fatal(err)
				}
			}
			bad := receive(t, rcv, 4)
			if bad[0].Err == nil || !strings.Contains(bad[0].Err.Error(), "invalid JSON") ||
				bad[1].Err == nil || !strings.Contains(bad[1].Err.Error(), `content type "text/plain"`) ||
				bad[2].Err != nil || bad[2].Event.UUID() != "u" ||
				bad[3].Err == nil || !strings.Contains(bad[3].Err.Error(), "element 1") {
				t.Errorf("bad messages: %+v", bad)
			}
			for _, b := range bad {
				if b.RoutingKey != "task.bad" {
					t.Errorf("routing key %q", b.RoutingKey)
				}
			}
			cancel()
			for range rcv.C() {
			}
			if err := rcv.Err(); err != nil {
				t.Errorf("Err after the context ended: %v", err)
			}
		})
	}
}

func TestNewReceiverErrors(t *testing.T) {
	t.Parallel()
	// Never connected: the transport connects on first use, and retries until the context ends.
	down, err := amqpbroker.NewFanout("amqp://guest:guest@127.0.0.1:1//", amqpbroker.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	for _, tc := range []struct {
		tr   *amqpbroker.Fanout
		o    ReceiverOptions
		want string
	}{
		{down, ReceiverOptions{Expires: -time.Second}, "negative"},
		{down, ReceiverOptions{}, "connecting"},
	} {
		if _, err := NewReceiver(ctx, tc.tr, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewReceiver(%+v) = %v, want %q", tc.o, err, tc.want)
		}
	}
	if _, err := NewReceiver(ctx, nil, ReceiverOptions{}); err == nil || !strings.Contains(err.Error(), "no transport") {
		t.Errorf("NewReceiver without a transport: %v", err)
	}
}

// TestReceiverStopsWhenItsConnectionIsLost cuts the receiver's connection: C closes and Err says
// the connection was lost.
func TestReceiverStopsWhenItsConnectionIsLost(t *testing.T) {
	t.Parallel()
	p, proxied := tcpproxy.StartURL(t, testenv.AMQPURL(), "5672")
	tr, err := amqpbroker.NewFanout(proxied, amqpbroker.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	ex := testenv.Name(t, "celeryev")
	testenv.DeleteQueuesAtCleanup(t, ex)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rcv, err := NewReceiver(ctx, tr, ReceiverOptions{Exchange: ex})
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	if n := p.Cut(); n != 1 {
		t.Fatalf("cut %d connections, want 1", n)
	}
	for range rcv.C() {
	}
	if err := rcv.Err(); err == nil || !strings.Contains(err.Error(), "connection lost") {
		t.Fatalf("Err after the cut = %v, want a lost connection", err)
	}
}

// BenchmarkDispatchRabbitMQ publishes b.N task events through RabbitMQ (with publisher confirms),
// unbatched and batched in one invocation, and reports the events per second each reached.
func BenchmarkDispatchRabbitMQ(b *testing.B) {
	for _, limit := range []int{1, DefaultBatchLimit} {
		b.Run(fmt.Sprint("batch=", limit), func(b *testing.B) {
			ex := testenv.Name(b, "celeryev")
			testenv.DeleteQueuesAtCleanup(b, ex)
			d, err := NewDispatcher(newRabbitBroker(b), Options{Hostname: "bench@events", Exchange: ex, Enabled: true,
				BatchLimit: limit, BufferSize: b.N + 1, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			e := NewTaskSucceeded(newUUID(), json.RawMessage("5"), time.Millisecond)
			b.ResetTimer()
			start := time.Now()
			for range b.N { // b.N, not b.Loop: the buffer above is sized by it
				d.Send(e)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			if err := d.Close(ctx); err != nil {
				b.Fatal(err)
			}
			st := d.Stats()
			if st.Failed+st.Dropped != 0 {
				b.Fatalf("stats %+v", st)
			}
			b.ReportMetric(float64(st.Sent)/time.Since(start).Seconds(), "events/s")
			b.ReportMetric(float64(st.Sent)/float64(st.Messages), "events/msg")
		})
	}
}
