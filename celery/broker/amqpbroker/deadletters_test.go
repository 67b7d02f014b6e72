package amqpbroker

import (
	"bytes"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/celery/broker"
)

// These tests moved here from manage/deadletter_test.go with describe and republishing; the
// dead-letter API itself is tested against RabbitMQ by the conformance suite (TestConformance,
// brokertest's DeadLetterQueues cases) and by manage's deadletter tests.

func TestDescribe(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name string
		h    amqp.Table
		d    amqp.Delivery
		want broker.DeadLetterInfo
	}{
		{"protocol 1 body", nil, amqp.Delivery{ContentType: "application/json", Body: []byte(`{"id":"p1","task":"t.v1"}`), Timestamp: ts},
			broker.DeadLetterInfo{ID: "p1", Task: "t.v1", ContentType: "application/json", BodyBytes: 25, DeadLetteredAt: "2026-01-02T03:04:05Z"}},
		{"correlation id", amqp.Table{"task": "t"}, amqp.Delivery{CorrelationId: "c1", MessageId: "m1"},
			broker.DeadLetterInfo{ID: "c1", Task: "t"}},
		{"message id", nil, amqp.Delivery{MessageId: "m1", ContentType: "application/json", Body: []byte("not json")},
			broker.DeadLetterInfo{ID: "m1", ContentType: "application/json", BodyBytes: 8}},
		{"rabbitmq x-death", amqp.Table{"id": "r1", "x-death": []any{amqp.Table{"queue": "q1", "reason": "expired"}}}, amqp.Delivery{},
			broker.DeadLetterInfo{ID: "r1", OriginalQueue: "q1", Reason: "rabbitmq: expired"}},
		{"odd header types", amqp.Table{"id": []byte("b1"), "task": int32(7), broker.HeaderOriginalQueue: amqp.Table{}, "x-death": "junk"}, amqp.Delivery{},
			broker.DeadLetterInfo{ID: "b1", Task: "7"}},
	} {
		if got := describe(tc.h, tc.d); got != tc.want {
			t.Errorf("%s: describe = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// FuzzDescribe: whatever a dead letter holds, describing and preparing its replay never panics,
// and replay drops exactly the dead-letter headers (manage's FuzzDeadLetterOutput checks the
// printed form).
func FuzzDescribe(f *testing.F) {
	f.Add("id-1", "diag.add", `NotRegistered: task "x"`, "celery", []byte(`[[1],{},{}]`), "application/json")
	f.Add("", "", "", "", []byte(`{"id":"v1","task":"t"}`), "application/json")
	f.Add("\xff\x00", "\n\t", strings.Repeat("é", 200), "q\x7f", []byte(`{"id":5}`), "json")
	f.Add("x", "y", "z", "w", []byte("\x00\xff"), "")
	f.Fuzz(func(t *testing.T, id, task, reason, queue string, b []byte, ctype string) {
		h := amqp.Table{"id": id, "task": task, broker.HeaderDeadLetterReason: reason, broker.HeaderOriginalQueue: queue,
			broker.HeaderDeadLetteredAt: []byte(reason), "keep": reason, "x-death": []any{amqp.Table{"queue": queue}, id}}
		d := amqp.Delivery{Headers: h, Body: b, ContentType: ctype, CorrelationId: task}
		dl := describe(h, d)
		if dl.BodyBytes != len(b) || dl.Reason != reason || dl.OriginalQueue != queue {
			t.Fatalf("describe = %+v", dl)
		}
		if id != "" && dl.ID != id {
			t.Fatalf("id %q described as %q", id, dl.ID)
		}
		p := republishing(d)
		want := maps.Clone(h)
		for _, k := range broker.DeadLetterHeaders {
			delete(want, k)
		}
		if !reflect.DeepEqual(map[string]any(p.Headers), map[string]any(want)) || !bytes.Equal(p.Body, b) || p.DeliveryMode != amqp.Persistent {
			t.Fatalf("republishing = %+v", p)
		}
	})
}
