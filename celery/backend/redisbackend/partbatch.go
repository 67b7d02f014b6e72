package redisbackend

import (
	"context"
	"errors"

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
}

// execParts runs, for a batch of chord parts of concurrently finishing header members
// (Backend.parts), one MULTI with every part's commands (the store script, ZADD, ZCOUNT, GET .t,
// GET .s and, with result_expires, EXPIRE of the three keys) and completes the parts. Within the MULTI each part's ZADD is followed by its own ZCOUNT, so
// exactly one part of a chord sees the count reach its size, as with one MULTI per part.
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
	}
}
