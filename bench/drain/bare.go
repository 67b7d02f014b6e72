package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// bareResult is what the bare consumer saw with its own clock.
type bareResult struct {
	first time.Time // its first delivery
	last  time.Time // the broker's reply to a synchronous method sent after its last ack
	err   error
}

// bareConsume is the baseline: an amqp091-go consumer with basic.qos(prefetch, global) that only
// acknowledges, each message (every <= 1) or every `every`-th one with multiple=true (and the last).
// It consumes exactly n messages, then cancels and closes.
func bareConsume(ctx context.Context, url, q string, n, prefetch, every int) (r bareResult) {
	conn, err := amqp.DialConfig(url, amqp.Config{Properties: amqp.Table{"connection_name": "bench-drain-bare"}})
	if err != nil {
		r.err = err
		return r
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		r.err = err
		return r
	}
	if err := ch.Qos(prefetch, 0, true); err != nil {
		r.err = err
		return r
	}
	deliveries, err := ch.Consume(q, "bench-drain-bare", false, false, false, false, nil)
	if err != nil {
		r.err = err
		return r
	}
	for i := 1; i <= n; i++ {
		var d amqp.Delivery
		var ok bool
		select {
		case d, ok = <-deliveries:
		case <-ctx.Done():
			r.err = fmt.Errorf("after %d of %d messages: %w", i-1, n, context.Cause(ctx))
			return r
		}
		if !ok {
			r.err = fmt.Errorf("the delivery channel closed after %d of %d messages", i-1, n)
			return r
		}
		if i == 1 {
			r.first = time.Now()
		}
		switch {
		case every <= 1:
			err = d.Ack(false)
		case i%every == 0 || i == n:
			err = d.Ack(true)
		}
		if err != nil {
			r.err = fmt.Errorf("ack %d: %w", i, err)
			return r
		}
	}
	// Acks have no reply; a synchronous method on the same channel returns after the broker has
	// read them.
	if _, err := ch.QueueDeclarePassive(q, true, false, false, false, nil); err != nil {
		r.err = err
		return r
	}
	r.last = time.Now()
	if err := ch.Cancel("bench-drain-bare", false); err != nil && !errors.Is(err, amqp.ErrClosed) {
		r.err = err
	}
	return r
}
