package control

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/broker/fanout/memfanout"
)

// TestBroadcastInMemory runs two mailboxes and a client on the in-memory transport: the mailbox
// and client need nothing from RabbitMQ but the fanout.Transport seam.
func TestBroadcastInMemory(t *testing.T) {
	t.Parallel()
	tr := memfanout.New()
	defer tr.Close()
	opts := Options{Logger: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stops []func()
	for _, node := range []string{"celery@a", "celery@b"} {
		mb, err := NewMailbox(node, tr, opts)
		if err != nil {
			t.Fatal(err)
		}
		mb.Handle("ping", pong)
		mb.Handle("whoami", func(context.Context, json.RawMessage) (any, error) { return OK(node), nil })
		rctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- mb.Run(rctx) }()
		stops = append(stops, func() {
			stop()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
		select {
		case <-mb.Ready():
		case err := <-done:
			t.Fatalf("mailbox stopped: %v", err)
		}
	}
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	c, err := NewClient(tr, opts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Broadcast(ctx, "whoami", nil, []string{"celery@a", "celery@b"}, 10*time.Second)
	if err != nil || len(got) != 2 || compactJSON(got["celery@a"]) != `{"ok":"celery@a"}` || compactJSON(got["celery@b"]) != `{"ok":"celery@b"}` {
		t.Fatalf("whoami: %s, %v", show(got), err)
	}
	got, err = c.Broadcast(ctx, "ping", nil, []string{"celery@b"}, 10*time.Second)
	if err != nil || len(got) != 1 || compactJSON(got["celery@b"]) != `{"ok":"pong"}` {
		t.Fatalf("ping one: %s, %v", show(got), err)
	}
}
