package redisbroker

import (
	"context"
	"strconv"
	"time"
)

// RunTakeScript runs takeScript as a consumer of queue does, with receipt (unprefixed) as the take
// receipt and token as the token; it returns the script's reply.
func (b *Broker) RunTakeScript(ctx context.Context, queue string, n int, receipt, token string) ([]string, error) {
	keys := append([]string{b.key(b.opts.UnackedKey), b.key(b.opts.UnackedIndexKey), b.quarantineKey(), b.key(receipt)}, b.lists(queue)...)
	now := strconv.FormatFloat(float64(time.Now().UnixMicro())/1e6, 'f', 6, 64)
	return takeScript.Run(ctx, b.rc, keys, now, n, token, b.opts.VisibilityTimeout.Milliseconds()).StringSlice()
}
