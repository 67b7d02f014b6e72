package serving

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// coalescer shares one read among the requests that need it at about the same time, without
// serving any of them something older than its arrival: a request that arrives while a read is
// in flight (sent, perhaps, before it arrived) waits for the next read, which starts when that
// one ends and serves every request that arrived meanwhile. The first of those requests sends it.
// Under load many requests share each read; alone, a request reads at once. It is safe for
// concurrent use.
type coalescer[T any] struct {
	mu      sync.Mutex
	running *flight[T] // sent; requests arriving now wait for waiting
	waiting *flight[T] // to be sent when running ends
}

// flight is one shared read; v and err are set before done is closed.
type flight[T any] struct {
	done chan struct{}
	v    T
	err  error
}

// do returns the result of a read run (with the context of the request that sends it) started
// after do was called. It returns when ctx ends, with an error, if that read has not ended by
// then. shared reports whether another request sent the read.
func (c *coalescer[T]) do(ctx context.Context, run func(context.Context) (T, error)) (v T, shared bool, err error) {
	c.mu.Lock()
	if c.running == nil {
		f := &flight[T]{done: make(chan struct{})}
		c.running = f
		c.mu.Unlock()
		c.lead(ctx, f, run)
		return f.v, false, f.err
	}
	if f := c.waiting; f != nil {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.v, true, f.err
		case <-ctx.Done():
			var zero T
			return zero, true, fmt.Errorf("redis: no answer within the budget (shared read): %w", context.Cause(ctx))
		}
	}
	// This request sends the next read, once the running one ends (or its budget does: then the
	// read fails at once, and with it the requests waiting for it, as Redis is too slow anyway).
	f := &flight[T]{done: make(chan struct{})}
	c.waiting = f
	prev := c.running
	c.mu.Unlock()
	select {
	case <-prev.done:
	case <-ctx.Done():
	}
	c.mu.Lock()
	c.running, c.waiting = f, nil
	c.mu.Unlock()
	c.lead(ctx, f, run)
	return f.v, false, f.err
}

// lead runs f's read and publishes its result.
func (c *coalescer[T]) lead(ctx context.Context, f *flight[T], run func(context.Context) (T, error)) {
	defer func() {
		c.mu.Lock()
		if c.running == f {
			c.running = nil
		}
		c.mu.Unlock()
		close(f.done)
	}()
	f.err = errors.New("serving: shared read did not finish")
	f.v, f.err = run(ctx)
}
