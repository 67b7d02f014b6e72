package control

import (
	"context"
	"testing"
	"time"
)

var benchPing = jsonEnv(`{"method": "ping", "arguments": {}, "destination": ["celery@a", "celery@b"], "pattern": null, "matcher": null, "ticket": "fcb210e7-d3e1-47fc-bb25-4898f1d25d67", "reply_to": {"exchange": "reply.celery.pidbox", "routing_key": "b8405888-d381-386f-ac05-bfff32bfd2f5"}}`,
	map[string]any{"clock": int32(1), "expires": 1795630327.2285445})

func BenchmarkDecodeRequest(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeRequest(benchPing); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProcessPing is a node's whole work for one request without the broker: decode,
// filter, dispatch, encode the reply.
func BenchmarkProcessPing(b *testing.B) {
	mb := newTestMailbox(b, "celery@b", func() time.Time { return time.Unix(1795630000, 0) })
	mb.Handle("ping", pong)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if out, err := mb.process(ctx, benchPing); err != nil || out == nil {
			b.Fatal(out, err)
		}
	}
}

func BenchmarkFnmatch(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if !fnmatch("celery@worker-17.example.com", "celery@worker-[0-9]*.*.com") {
			b.Fatal("no match")
		}
	}
}

// BenchmarkBroadcastRoundTrip is `inspect ping` of one Go node through the real RabbitMQ: reply
// queue, request, reply.
func BenchmarkBroadcastRoundTrip(b *testing.B) {
	r := newRig(b)
	node := "celery@bench-" + r.ns
	r.start(node, r.opts, map[string]Handler{"ping": pong})
	c, err := NewClient(r.tr, r.opts)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		got, err := c.Broadcast(ctx, "ping", nil, []string{node}, 5*time.Second)
		if err != nil || len(got) != 1 {
			b.Fatal(got, err)
		}
	}
}
