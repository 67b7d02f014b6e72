package beatops

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/beat"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/memorybroker"
)

// TestSentEventsSendsTaskSent publishes a task through SentEvents' broker on the memory broker
// and finds a task-sent event for it on event_exchange, naming its id, task and queue.
func TestSentEventsSendsTaskSent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mb := memorybroker.New()
	br := mb.Connect()
	defer br.Close()
	evq := broker.Queue{Name: "beatops-events", Exchange: "beatops-ev", ExchangeType: "topic", RoutingKey: "#"}
	if err := br.Declare(ctx, evq); err != nil {
		t.Fatal(err)
	}
	cfg := celery.Config{BrokerURL: "memory://", TaskSendSentEvent: true, EventExchange: "beatops-ev",
		TaskDefaultQueue: "beatops-tasks"}
	pub, closeSent, err := SentEvents(cfg, br, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	client, err := celery.NewClient(celery.ClientOptions{Config: cfg, Broker: pub})
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.SendTask(ctx, "beatops.tick", []any{1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeSent() // flushes the events
	deliveries, err := br.Consume(ctx, []broker.Queue{evq}, 10)
	if err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case d := <-deliveries:
			_ = d.Ack()
			body := string(d.Body)
			if strings.Contains(body, "task-sent") && strings.Contains(body, res.ID) {
				for _, want := range []string{`"beatops.tick"`, `"beatops-tasks"`} {
					if !strings.Contains(body, want) {
						t.Errorf("the task-sent event lacks %s: %s", want, body)
					}
				}
				return
			}
		case <-ctx.Done():
			t.Fatalf("no task-sent event for %s", res.ID)
		}
	}
}

// TestSentEventsOffIsTheBroker: without task_send_sent_event the broker is used as it is.
func TestSentEventsOffIsTheBroker(t *testing.T) {
	br := memorybroker.New().Connect()
	defer br.Close()
	pub, closeSent, err := SentEvents(celery.Config{}, br, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	closeSent()
	if pub != broker.Broker(br) {
		t.Errorf("SentEvents without task_send_sent_event = %T, want the broker itself", pub)
	}
}

func TestBanner(t *testing.T) {
	var b bytes.Buffer
	st := beat.Settings{MissedRuns: beat.MissedOnce, StateURL: "redis://:secret@127.0.0.1:6379/0", KeyPrefix: "celery-beat:", LockTTL: 10 * time.Second}
	now := time.Date(2026, 12, 6, 22, 0, 0, 0, time.UTC)
	if err := Banner(&b, now, celery.Config{BrokerURL: "amqp://guest:pw@127.0.0.1:5672//"}, st, time.UTC); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"LocalTime -> 2026-12-06 22:00:00", "    . state -> ", "(prefix celery-beat:)",
		"    . timezone -> UTC", "    . lock ttl -> 10s", "127.0.0.1:5672"} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secret") || strings.Contains(out, ":pw@") {
		t.Errorf("the banner shows a password:\n%s", out)
	}
}
