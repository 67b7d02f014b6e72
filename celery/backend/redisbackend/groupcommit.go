package redisbackend

import (
	"context"
	"slices"
	"sync"
	"time"
)

// batchTimeout bounds one batch's round trip, whatever the callers' contexts.
const batchTimeout = 10 * time.Second

// groupCommit runs the Redis work of concurrent callers in shared batches, one round trip each
// (group commit): the caller that finds no batch running runs one at once with every item queued
// by then (up to max), and hands the next batch to the first caller that queued meanwhile. An
// idle caller's work is not delayed; a busy backend's callers share round trips and system calls.
// Every caller returns only after the batch holding its item has run.
type groupCommit[T any] struct {
	max  int
	exec func(ctx context.Context, batch []T) // runs a batch; the items hold their replies after it

	mu      sync.Mutex
	running bool
	queue   []*queued[T]
}

// queued is one caller's item waiting for its batch.
type queued[T any] struct {
	item T
	done chan struct{} // closed when the batch holding item has run
	lead chan struct{} // closed when this caller must run the next batch
}

// do queues item and returns nil once a batch holding it has run, or ctx's cause when the caller
// gave up before that batch began (its item is then not run). An item whose caller gives up
// while its batch is running is completed all the same, as a single command whose reply is lost
// would be. Batches run under their own bound (batchTimeout), not the callers' contexts.
func (g *groupCommit[T]) do(ctx context.Context, item T) error {
	q := &queued[T]{item: item, done: make(chan struct{}), lead: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, q)
	if g.running {
		g.mu.Unlock()
		select {
		case <-q.done:
			return nil
		case <-q.lead:
		case <-ctx.Done():
			g.mu.Lock()
			select {
			case <-q.lead: // made the leader meanwhile: lead all the same
				g.mu.Unlock()
			default:
				if i := slices.Index(g.queue, q); i >= 0 {
					g.queue = slices.Delete(g.queue, i, i+1)
					g.mu.Unlock()
					return context.Cause(ctx)
				}
				g.mu.Unlock()
				<-q.done // in the batch running now
				return nil
			}
		}
		g.mu.Lock()
	}
	g.running = true
	n := min(len(g.queue), g.max)
	batch := slices.Clone(g.queue[:n])
	g.queue = slices.Delete(g.queue, 0, n)
	g.mu.Unlock()

	items := make([]T, len(batch))
	for i, b := range batch {
		items[i] = b.item
	}
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
	g.exec(bctx, items)
	cancel()
	for _, b := range batch {
		close(b.done)
	}

	g.mu.Lock()
	if len(g.queue) > 0 {
		close(g.queue[0].lead) // running stays true: that caller runs the next batch
	} else {
		g.running = false
	}
	g.mu.Unlock()
	return nil
}
