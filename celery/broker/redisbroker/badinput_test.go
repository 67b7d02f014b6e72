package redisbroker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/redisbroker"
	"github.com/forumads/forumads/celery/protocol"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func recv(t *testing.T, ch <-chan *broker.Delivery) *broker.Delivery {
	t.Helper()
	select {
	case d, ok := <-ch:
		if !ok {
			t.Fatal("the delivery channel closed")
		}
		return d
	case <-time.After(20 * time.Second):
		t.Fatal("no delivery within 20 s")
	}
	return nil
}

func plain(queue, body string) broker.Publishing {
	return broker.Publishing{RoutingKey: queue, Envelope: protocol.Envelope{Body: []byte(body), ContentType: "text/plain", DeliveryMode: 2}}
}

// deadLetters decodes the dead-letter list of b, oldest first.
func deadLetters(t *testing.T, b *redisbroker.Broker, dlq string) []redisbroker.Message {
	t.Helper()
	raws, err := b.Client().LRange(ctx(t), b.Options().KeyPrefix+dlq, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []redisbroker.Message
	for i := len(raws) - 1; i >= 0; i-- {
		m, err := redisbroker.DecodeMessage([]byte(raws[i]))
		if err != nil {
			t.Fatalf("a dead letter is not a kombu envelope: %v: %s", err, raws[i])
		}
		out = append(out, m)
	}
	return out
}

// TestBadEntriesAreParked: list entries that are not kombu envelopes, or whose body is not the
// base64 it claims, are moved to the dead-letter queue wrapped with the reason and their queue (the
// entry itself as the body), leave nothing in the unacked hash, and the consumer goes on with the
// next message; each is logged at ERROR with its queue, the reason and where it was parked.
func TestBadEntriesAreParked(t *testing.T) {
	t.Parallel()
	var l logs
	b := open(t, redisbroker.Options{Logger: l.logger()})
	rc, p := b.Client(), b.Options().KeyPrefix
	q := "bad.entries"
	badBase64 := `{"body": "!!not base64!!", "content-type": "application/json", "headers": {"id": "x"}, "properties": {"delivery_tag": "tag-bad-b64", "body_encoding": "base64", "delivery_info": {"exchange": "", "routing_key": "bad.entries"}}}`
	for _, raw := range []string{"not json at all", `{"body": "eA==", "properties": {}}`, badBase64} {
		if err := rc.LPush(ctx(t), p+q, raw).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Publish(ctx(t), plain(q, "good")); err != nil {
		t.Fatal(err)
	}
	d := recv(t, mustConsume(t, b, q, 1))
	if string(d.Body) != "good" {
		t.Fatalf("got %q, want the good message after the bad ones", d.Body)
	}
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
	dls := deadLetters(t, b, redisbroker.DefaultDeadLetterQueue)
	want := []struct{ body, reason string }{
		{"not json at all", "not a kombu envelope"},
		{`{"body": "eA==", "properties": {}}`, "not a kombu envelope"},
		{badBase64, "bad base64"},
	}
	if len(dls) != len(want) {
		t.Fatalf("%d dead letters, want %d", len(dls), len(want))
	}
	for i, w := range want {
		reason, _ := dls[i].Headers[broker.HeaderDeadLetterReason].(string)
		if string(dls[i].Body) != w.body || !strings.Contains(reason, w.reason) {
			t.Errorf("dead letter %d: body %q reason %q; want %q and a reason saying %q", i, dls[i].Body, reason, w.body, w.reason)
		}
	}
	for i, d := range dls {
		if orig := d.Headers[broker.HeaderOriginalQueue]; orig != q {
			t.Errorf("dead letter %d: original queue %v, want %s", i, orig, q)
		}
	}
	recs := l.records(t, "ERROR", "a list entry cannot be read")
	if len(recs) != len(want) {
		t.Fatalf("%d ERROR records of an unreadable entry, want %d: %v", len(recs), len(want), recs)
	}
	for i, r := range recs {
		if r["queue"] != q || !strings.Contains(fmt.Sprint(r["reason"]), want[i].reason) ||
			r["parked_in"] != redisbroker.DefaultDeadLetterQueue || r["entry"] != strconv.Quote(want[i].body) {
			t.Errorf("log record %d: %v; want queue %s, a reason saying %q, parked_in %s and the entry",
				i, r, q, want[i].reason, redisbroker.DefaultDeadLetterQueue)
		}
	}
	if n, _ := rc.HLen(ctx(t), p+"unacked").Result(); n != 0 {
		t.Errorf("%d entries left in the unacked hash", n)
	}
	if n, _ := rc.LLen(ctx(t), p+redisbroker.DefaultDeadLetterQueue+".unreadable").Result(); n != 0 {
		t.Errorf("%d entries left in the quarantine list", n)
	}
}

func mustConsume(t *testing.T, b *redisbroker.Broker, queue string, prefetch int) <-chan *broker.Delivery {
	t.Helper()
	ch, err := b.Consume(ctx(t), []broker.Queue{{Name: queue}}, prefetch)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// TestBindingNamingNoQueue: a binding member that names no queue (or is not three fields) is
// logged and skipped; a message it was the only route for is parked in the dead-letter queue,
// saying so, instead of being dropped as kombu drops it.
func TestBindingNamingNoQueue(t *testing.T) {
	t.Parallel()
	var l logs
	b := open(t, redisbroker.Options{Logger: l.logger()})
	rc, p := b.Client(), b.Options().KeyPrefix
	set := p + "_kombu.binding.ex"
	if err := rc.SAdd(ctx(t), set, "k"+redisbroker.DefaultSep+redisbroker.DefaultSep, "garbage", "k"+redisbroker.DefaultSep+redisbroker.DefaultSep+"real").Err(); err != nil {
		t.Fatal(err)
	}
	m := plain("", "routed")
	m.Exchange, m.RoutingKey = "ex", "k"
	if err := b.Publish(ctx(t), m); err != nil {
		t.Fatal(err)
	}
	if got, _ := rc.LLen(ctx(t), p+"real").Result(); got != 1 {
		t.Errorf("the valid binding's queue holds %d messages, want 1", got)
	}
	if err := rc.SRem(ctx(t), set, "k"+redisbroker.DefaultSep+redisbroker.DefaultSep+"real").Err(); err != nil {
		t.Fatal(err)
	}
	m.Body = []byte("nowhere")
	if err := b.Publish(ctx(t), m); err != nil {
		t.Fatal(err)
	}
	dls := deadLetters(t, b, redisbroker.DefaultDeadLetterQueue)
	if len(dls) != 1 || string(dls[0].Body) != "nowhere" || !strings.Contains(dls[0].Headers[broker.HeaderDeadLetterReason].(string), "no queue is bound") ||
		dls[0].Headers[broker.HeaderOriginalExchange] != "ex" {
		t.Fatalf("dead letters %+v, want the unroutable message with its reason", dls)
	}
	bad := l.records(t, "ERROR", "a binding names no queue")
	var members []string
	for _, r := range bad {
		if r["set"] != set {
			t.Errorf("log record %v: want set %s", r, set)
		}
		members = append(members, fmt.Sprint(r["member"]))
	}
	slices.Sort(members)
	members = slices.Compact(members)
	if want := []string{`"garbage"`, fmt.Sprintf("%q", "k"+redisbroker.DefaultSep+redisbroker.DefaultSep)}; !slices.Equal(members, want) {
		t.Errorf("bad bindings logged: %q, want %q", members, want)
	}
	if parked := l.records(t, "WARN", "no queue is bound to exchange \"ex\" for routing key \"k\"; parked"); len(parked) != 1 {
		t.Errorf("%d WARN records of the unroutable message parked, want 1", len(parked))
	}
}

// TestRestoreVisible: an unacknowledged message whose unacked_index score is older than the
// visibility timeout (its worker died) goes back to the head of its queue marked redelivered; one
// with a fresh score (a live worker runs it) is left alone; with the unacked_mutex held by someone
// else nothing is restored, as in kombu.
func TestRestoreVisible(t *testing.T) {
	t.Parallel()
	b := open(t, redisbroker.Options{VisibilityTimeout: 2 * time.Second})
	rc, p := b.Client(), b.Options().KeyPrefix
	q := "visible"
	entry := func(tag, body string) string {
		raw, err := redisbroker.EncodeMessage(redisbroker.Message{Envelope: protocol.Envelope{Body: []byte(body)}, DeliveryTag: tag, RoutingKey: q})
		if err != nil {
			t.Fatal(err)
		}
		e, _ := json.Marshal([]any{json.RawMessage(raw), "", q})
		return string(e)
	}
	now := float64(time.Now().Unix())
	rc.HSet(ctx(t), p+"unacked", "dead", entry("dead", "of a dead worker"), "live", entry("live", "of a live worker"))
	rc.ZAdd(ctx(t), p+"unacked_index", redisZ("dead", now-60), redisZ("live", now))

	rc.Set(ctx(t), p+"unacked_mutex", "someone else", time.Minute)
	if n, err := b.RestoreVisible(ctx(t)); err != nil || n != 0 {
		t.Fatalf("with the mutex held elsewhere RestoreVisible = %d, %v; want 0", n, err)
	}
	rc.Del(ctx(t), p+"unacked_mutex")
	if n, err := b.RestoreVisible(ctx(t)); err != nil || n != 1 {
		t.Fatalf("RestoreVisible = %d, %v; want 1", n, err)
	}
	if n, _ := b.RestoreVisible(ctx(t)); n != 0 {
		t.Fatalf("a second pass restored %d more", n)
	}
	d := recv(t, mustConsume(t, b, q, 1))
	if string(d.Body) != "of a dead worker" || !d.Redelivered {
		t.Fatalf("got %q redelivered=%v", d.Body, d.Redelivered)
	}
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := rc.HExists(ctx(t), p+"unacked", "live").Result(); !ok {
		t.Error("the live worker's message was restored")
	}
	if ok, _ := rc.Exists(ctx(t), p+"unacked_mutex").Result(); ok != 0 {
		t.Error("RestoreVisible left the mutex behind")
	}
}

// TestHeldMessagesStayInvisible: a message a consumer holds past the visibility timeout has its
// unacked_index score renewed, so another worker's restore does not give it to anyone else; once
// it is acknowledged nothing is left.
func TestHeldMessagesStayInvisible(t *testing.T) {
	t.Parallel()
	vt := 400 * time.Millisecond
	b := open(t, redisbroker.Options{VisibilityTimeout: vt})
	other := open(t, redisbroker.Options{VisibilityTimeout: vt})
	if err := b.Publish(ctx(t), plain("held", "long task")); err != nil {
		t.Fatal(err)
	}
	d := recv(t, mustConsume(t, b, "held", 1))
	deadline := time.Now().Add(5 * vt)
	for time.Now().Before(deadline) {
		if n, err := other.RestoreVisible(ctx(t)); err != nil || n != 0 {
			t.Fatalf("another worker restored %d (%v) of a message still held", n, err)
		}
		time.Sleep(vt / 4)
	}
	if err := d.Ack(); err != nil {
		t.Fatalf("ack after five visibility timeouts: %v", err)
	}
	rc, p := b.Client(), b.Options().KeyPrefix
	if n, _ := rc.ZCard(ctx(t), p+"unacked_index").Result(); n != 0 {
		t.Errorf("%d entries left in unacked_index", n)
	}
}
