package redisbroker_test

import (
	"context"
	"testing"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/redisbroker"
)

// BenchmarkConsumeAck takes and acknowledges b.N small messages published beforehand, through
// one consumer (the takes, each one script run, and the batched acks), at prefetch 1 (a take per
// message, as a worker with worker_prefetch_multiplier 1 and concurrency 1 takes) and 64.
func BenchmarkConsumeAck(b *testing.B) {
	for _, prefetch := range []int{1, 64} {
		b.Run(map[int]string{1: "prefetch_1", 64: "prefetch_64"}[prefetch], func(b *testing.B) {
			br := open(b, redisbroker.Options{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			q := "benchconsume"
			ps := make([]broker.Publishing, b.N)
			for i := range ps {
				ps[i] = plain(q, "x")
			}
			if err := br.PublishMany(ctx, ps); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			ch, err := br.Consume(ctx, []broker.Queue{{Name: q}}, prefetch)
			if err != nil {
				b.Fatal(err)
			}
			for range b.N {
				d, ok := <-ch
				if !ok {
					b.Fatal("the delivery channel closed")
				}
				if err := d.Ack(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
		})
	}
}
