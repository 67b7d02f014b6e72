package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"
)

// errExited is returned by a wait whose consumer went away before the awaited state.
var errExited = errors.New("the consumer exited before the queue reached the awaited state")

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

// resultKey is Celery 5.2's Redis key of a task's result.
func resultKey(id string) string { return "celery-task-meta-" + id }

// waitResults polls Redis until a result exists for every id and returns when the last one was
// seen, with the number of results that are not SUCCESS. Ids are read with MGET, at most mgetChunk
// at a time, oldest first; a chunk found complete is followed at once by the next, otherwise the
// poll waits `every`.
func waitResults(ctx context.Context, rc *redis.Client, ids []string, every time.Duration, exited <-chan struct{}) (time.Time, int, error) {
	pending := append([]string(nil), ids...)
	failed := 0
	keys := make([]string, 0, mgetChunk)
	success := []byte(`"status": "SUCCESS"`)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		chunk := pending[:min(mgetChunk, len(pending))]
		keys = keys[:0]
		for _, id := range chunk {
			keys = append(keys, resultKey(id))
		}
		vals, err := rc.MGet(ctx, keys...).Result()
		if err != nil {
			return time.Now(), failed, fmt.Errorf("reading results: %w", err)
		}
		var missing []string
		for i, v := range vals {
			s, ok := v.(string)
			if !ok {
				missing = append(missing, chunk[i])
				continue
			}
			if !bytes.Contains([]byte(s), success) {
				failed++
			}
		}
		pending = append(missing, pending[len(chunk):]...)
		if len(pending) == 0 {
			return time.Now(), failed, nil
		}
		if len(missing) == 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return time.Now(), failed, fmt.Errorf("%w (%d results missing)", context.Cause(ctx), len(pending))
		case <-exited:
			return time.Now(), failed, fmt.Errorf("%w (%d results missing)", errExited, len(pending))
		case <-t.C:
		}
	}
}

// countKeys counts the result keys that exist for ids.
func countKeys(ctx context.Context, rc *redis.Client, ids []string) (int64, error) {
	var n int64
	for chunk := range chunks(ids, mgetChunk) {
		keys := make([]string, len(chunk))
		for i, id := range chunk {
			keys[i] = resultKey(id)
		}
		c, err := rc.Exists(ctx, keys...).Result()
		if err != nil {
			return n, fmt.Errorf("counting results: %w", err)
		}
		n += c
	}
	return n, nil
}

// deleteKeys deletes the result keys of ids.
func deleteKeys(ctx context.Context, rc *redis.Client, ids []string) error {
	for chunk := range chunks(ids, mgetChunk) {
		keys := make([]string, len(chunk))
		for i, id := range chunk {
			keys[i] = resultKey(id)
		}
		if err := rc.Unlink(ctx, keys...).Err(); err != nil {
			return fmt.Errorf("deleting results: %w", err)
		}
	}
	return nil
}

// chunks yields consecutive pieces of xs of at most size elements.
func chunks(xs []string, size int) func(func([]string) bool) {
	return func(yield func([]string) bool) {
		for len(xs) > 0 {
			n := min(size, len(xs))
			if !yield(xs[:n]) {
				return
			}
			xs = xs[n:]
		}
	}
}
