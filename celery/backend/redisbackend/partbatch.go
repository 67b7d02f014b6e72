package redisbackend

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// maxPartBatch bounds how many chord parts one MULTI counts.
const maxPartBatch = 128

// pendingPart is one chord part waiting to be counted: its commands, and what they answered.
type pendingPart struct {
	jkey, tkey, skey string
	score, member    string
	storeKey         string // "" = nothing to store
	storeVal         []byte

	stored      *redis.Cmd
	count       *redis.IntCmd
	total, size *redis.StringCmd
	err         error // the batch's error (connection, EXEC), if any

	done chan struct{} // closed when counted (or failed)
	lead chan struct{} // closed when this part's caller must run the next batch
}

// partBatcher counts the chord parts of concurrently finishing header members in one MULTI per
// round trip (group commit): the caller that finds no batch running runs one with every part
// queued by then, and hands the next batch to the first caller that queued meanwhile. Within the
// MULTI each part's ZADD is followed by its own ZCOUNT, so exactly one part of a chord sees the
// count reach its size, as with one MULTI per part.
type partBatcher struct {
	mu      sync.Mutex
	running bool
	queue   []*pendingPart
}

// batchTimeout bounds one batch's round trip, whatever the callers' contexts.
const batchTimeout = 10 * time.Second

// count queues p and returns once it has been counted (p's commands hold their replies) or ctx
// ended. A part whose caller gave up may still be counted: counting it again is harmless (the
// same ZADD member).
func (pb *partBatcher) count(ctx context.Context, b *Backend, p *pendingPart) error {
	p.done, p.lead = make(chan struct{}), make(chan struct{})
	pb.mu.Lock()
	pb.queue = append(pb.queue, p)
	if pb.running {
		pb.mu.Unlock()
		select {
		case <-p.done:
			return p.err
		case <-p.lead:
		case <-ctx.Done():
			pb.mu.Lock()
			select {
			case <-p.lead: // made the leader meanwhile: lead all the same
				pb.mu.Unlock()
			default:
				if i := slices.Index(pb.queue, p); i >= 0 {
					pb.queue = slices.Delete(pb.queue, i, i+1)
					pb.mu.Unlock()
					return context.Cause(ctx)
				}
				pb.mu.Unlock()
				<-p.done // in the batch running now
				return p.err
			}
		}
		pb.mu.Lock()
	}
	pb.running = true
	n := min(len(pb.queue), maxPartBatch)
	batch := slices.Clone(pb.queue[:n])
	pb.queue = slices.Delete(pb.queue, 0, n)
	pb.mu.Unlock()

	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
	b.execParts(bctx, batch)
	cancel()

	pb.mu.Lock()
	if len(pb.queue) > 0 {
		close(pb.queue[0].lead) // running stays true: that caller runs the next batch
	} else {
		pb.running = false
	}
	pb.mu.Unlock()
	return p.err
}

// execParts runs one MULTI with every part's commands (the store script, ZADD, ZCOUNT, GET .t,
// GET .s and, with result_expires, EXPIRE of the three keys) and completes the parts.
func (b *Backend) execParts(ctx context.Context, parts []*pendingPart) {
	_, err := b.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, pp := range parts {
			if pp.storeKey != "" {
				pp.stored = storeScript.EvalSha(ctx, p, []string{pp.storeKey}, pp.storeVal, b.ttl)
			}
			p.Do(ctx, "ZADD", pp.jkey, pp.score, pp.member)
			pp.count = p.ZCount(ctx, pp.jkey, "-inf", "+inf")
			pp.total = p.Get(ctx, pp.tkey)
			pp.size = p.Get(ctx, pp.skey)
			if b.ttl > 0 {
				for _, k := range []string{pp.jkey, pp.tkey, pp.skey} {
					p.Expire(ctx, k, secondsDuration(b.ttl))
				}
			}
		}
		return nil
	})
	// A command's own error (a NOSCRIPT, a missing key) is read from that command; the batch's
	// error counts only when no command ran (connection lost, EXEC refused).
	var failed bool
	if err != nil && !errors.Is(err, redis.Nil) {
		failed = true
		for _, pp := range parts {
			if pp.count != nil && pp.count.Err() == nil {
				failed = false
				break
			}
		}
	}
	for _, pp := range parts {
		if failed {
			pp.err = err
		}
		close(pp.done)
	}
}
