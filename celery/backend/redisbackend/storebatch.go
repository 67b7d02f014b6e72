package redisbackend

import (
	"context"
	"slices"
	"sync"

	"github.com/redis/go-redis/v9"
)

// maxStoreBatch bounds how many results one pipeline writes.
const maxStoreBatch = 128

// pendingStore is one Store waiting for its write: the script's reply once written.
type pendingStore struct {
	key string
	val []byte

	n   int64
	err error

	done chan struct{} // closed when written (or failed)
	lead chan struct{} // closed when this caller must run the next batch
}

// storeBatcher writes the results of concurrently finishing tasks in one pipeline per round trip
// (group commit): the caller that finds no batch running writes its own result at once, with
// every result queued by then, and hands the next batch to the first caller that queued
// meanwhile. Every caller returns only after Redis answered its own script, which SET and
// PUBLISHed it (or refused it): a result is never reported stored before it is. An idle worker's
// write is not delayed; a busy worker's writes share round trips and system calls.
type storeBatcher struct {
	mu      sync.Mutex
	running bool
	queue   []*pendingStore
}

// store queues p and returns once Redis answered it or ctx ended. A result whose caller gave up
// while its batch was already being written is written all the same (as a single Store whose
// reply is lost would be).
func (sb *storeBatcher) store(ctx context.Context, b *Backend, p *pendingStore) {
	p.done, p.lead = make(chan struct{}), make(chan struct{})
	sb.mu.Lock()
	sb.queue = append(sb.queue, p)
	if sb.running {
		sb.mu.Unlock()
		select {
		case <-p.done:
			return
		case <-p.lead:
		case <-ctx.Done():
			sb.mu.Lock()
			select {
			case <-p.lead: // made the leader meanwhile: lead all the same
				sb.mu.Unlock()
			default:
				if i := slices.Index(sb.queue, p); i >= 0 {
					sb.queue = slices.Delete(sb.queue, i, i+1)
					sb.mu.Unlock()
					p.err = context.Cause(ctx)
					return
				}
				sb.mu.Unlock()
				<-p.done // in the batch being written now
				return
			}
		}
		sb.mu.Lock()
	}
	sb.running = true
	n := min(len(sb.queue), maxStoreBatch)
	batch := slices.Clone(sb.queue[:n])
	sb.queue = slices.Delete(sb.queue, 0, n)
	sb.mu.Unlock()

	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
	b.execStores(bctx, batch)
	cancel()

	sb.mu.Lock()
	if len(sb.queue) > 0 {
		close(sb.queue[0].lead) // running stays true: that caller runs the next batch
	} else {
		sb.running = false
	}
	sb.mu.Unlock()
}

// execStores runs the store script for every pending result in one pipeline (one alone is a
// plain EVALSHA round trip), sends those that met an empty script cache (NOSCRIPT) again with the
// script's source, and completes them.
func (b *Backend) execStores(ctx context.Context, batch []*pendingStore) {
	cmds := make([]*redis.Cmd, len(batch))
	if len(batch) == 1 {
		p := batch[0]
		cmds[0] = storeScript.Run(ctx, b.client, []string{p.key}, p.val, b.ttl)
	} else {
		pipe := b.client.Pipeline()
		for i, p := range batch {
			cmds[i] = storeScript.EvalSha(ctx, pipe, []string{p.key}, p.val, b.ttl)
		}
		_, _ = pipe.Exec(ctx) // errors are read per command
		var retry redis.Pipeliner
		for i, p := range batch {
			if !redis.HasErrorPrefix(cmds[i].Err(), "NOSCRIPT") {
				continue
			}
			if retry == nil {
				retry = b.client.Pipeline()
			}
			cmds[i] = storeScript.Eval(ctx, retry, []string{p.key}, p.val, b.ttl)
		}
		if retry != nil {
			_, _ = retry.Exec(ctx)
		}
	}
	for i, p := range batch {
		p.n, p.err = cmds[i].Int64()
		close(p.done)
	}
}
