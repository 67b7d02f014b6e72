package redisbackend

import (
	"context"

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
}

// execStores runs the store script for every pending result of a batch (Backend.stores: results
// of concurrently finishing tasks share a round trip, and each Store returns only after Redis
// answered its own script, which SET and PUBLISHed it or refused it) in one pipeline (one alone is a
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
	}
}
