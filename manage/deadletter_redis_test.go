package main

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/testenv"
	"github.com/forumads/forumads/internal/wiring"
)

// TestDeadLetterOnRedis: with broker_url redis:// the dead-letter commands work on the Redis
// broker's lists (database 13, a key prefix of the test's own through broker_transport_options).
func TestDeadLetterOnRedis(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/13"
	prefix := "manage-dl-" + testenv.Suffix() + "."
	e, out, _ := dlEnv(t)
	e.file.Celery.BrokerURL = u.String()
	e.file.Celery.BrokerTransportOptions = map[string]any{"global_keyprefix": prefix}
	b, err := wiring.Broker(e.file.Celery, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	dlq, orig := "dlq", "orig"
	ctx := context.Background()
	t.Cleanup(func() {
		_, _ = b.(broker.DeadLetterQueues).PurgeAllDeadLetters(ctx, dlq)
		_ = b.Close()
	})
	for _, id := range []string{"id-a", "id-b"} {
		h := map[string]any{"id": id, "task": "diag.add", celery.HeaderDeadLetterReason: "NotRegistered: x",
			broker.HeaderOriginalQueue: orig, broker.HeaderDeadLetteredBy: "celery@test"}
		if err := b.Publish(ctx, broker.Publishing{RoutingKey: dlq, Envelope: protocol.Envelope{Headers: h,
			Body: []byte(`[[2, 3], {}, {}]`), ContentType: "application/json", CorrelationID: id, DeliveryMode: 2}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.deadletter(ctx, []string{"list", "--queue", dlq, "--json"}); err != nil {
		t.Fatal(err)
	}
	var got []deadLetter
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || len(got) != 2 || got[0].ID != "id-a" || got[0].OriginalQueue != orig {
		t.Fatalf("list on Redis: %s (%v)", out, err)
	}
	out.Reset()
	if err := e.deadletter(ctx, []string{"purge", "--queue", dlq, "--yes", "--id", "id-b"}); err != nil || !strings.Contains(out.String(), "deleted id-b") {
		t.Fatalf("purge on Redis: %q, %v", out, err)
	}
	left, err := b.(broker.DeadLetterQueues).ListDeadLetters(ctx, dlq, 0)
	if err != nil || len(left) != 1 || left[0].ID != "id-a" {
		t.Fatalf("after the purge the queue holds %+v, %v", left, err)
	}
}
