package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// errExited is returned by a wait whose consumer went away before the awaited state.
var errExited = errors.New("the consumer exited before the queue reached the awaited state")

// exitedOf reports errExited once p has exited (for services.WaitResults).
func exitedOf(p *process) func() error {
	return func() error {
		select {
		case <-p.Done():
			return errExited
		default:
			return nil
		}
	}
}

// watcher reads queue depths with passive queue.declare on a channel of its own: the broker answers
// from the queue itself, at once, unlike the management API whose counters lag by seconds.
type watcher struct {
	conn *amqp.Connection
	mu   sync.Mutex
	ch   *amqp.Channel
}

func newWatcher(conn *amqp.Connection) (*watcher, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	return &watcher{conn: conn, ch: ch}, nil
}

// ready returns the number of ready (not delivered) messages in q.
func (w *watcher) ready(q string) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil || w.ch.IsClosed() {
		ch, err := w.conn.Channel()
		if err != nil {
			return 0, err
		}
		w.ch = ch
	}
	st, err := w.ch.QueueDeclarePassive(q, true, false, false, false, nil)
	if err != nil {
		return 0, fmt.Errorf("reading the depth of %s: %w", q, err)
	}
	return st.Messages, nil
}

// waitBelow polls until q has fewer than n ready messages and returns when that was seen.
func (w *watcher) waitBelow(ctx context.Context, q string, n int, every time.Duration, exited <-chan struct{}) (time.Time, error) {
	return w.waitFor(ctx, q, every, exited, func(r int) bool { return r < n })
}

// waitZero polls until q has no ready message and returns when that was seen.
func (w *watcher) waitZero(ctx context.Context, q string, every time.Duration, exited <-chan struct{}) (time.Time, error) {
	return w.waitFor(ctx, q, every, exited, func(r int) bool { return r == 0 })
}

func (w *watcher) waitFor(ctx context.Context, q string, every time.Duration, exited <-chan struct{}, ok func(int) bool) (time.Time, error) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		r, err := w.ready(q)
		now := time.Now()
		if err != nil {
			return now, err
		}
		if ok(r) {
			return now, nil
		}
		select {
		case <-ctx.Done():
			return now, context.Cause(ctx)
		case <-exited:
			// One last look: the consumer may have finished between the poll and its exit.
			if r, err := w.ready(q); err == nil && ok(r) {
				return time.Now(), nil
			}
			return now, errExited
		case <-t.C:
		}
	}
}
