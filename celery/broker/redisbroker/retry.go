package redisbroker

import (
	"context"
	"errors"
	"io"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// transient reports whether err is the kind a Redis failover or restart causes and a later try
// may not meet: the connection refused, reset or timed out, or the server answering that it is a
// replica now (READONLY), loading its data (LOADING), has no master (MASTERDOWN) or asks to retry
// (TRYAGAIN). A closed client, a cancelled context and Redis's answers to the command itself are
// not transient.
func transient(err error) bool {
	if err == nil || errors.Is(err, redis.ErrClosed) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	return redis.IsReadOnlyError(err) || redis.IsLoadingError(err) || redis.IsMasterDownError(err) || redis.IsTryAgainError(err)
}

// retryTransient runs f until it returns nil or an error that is not transient, or until ctx
// ends or the Broker closes (then the last error is returned), waiting 100 ms after the first
// failure and twice as long after each next one, at most 2 s: a publish or an ack made while
// Sentinel switches masters waits for the new master instead of failing, as the RabbitMQ adapter
// waits for its reconnection. what names the operation in the log. A write whose reply was lost
// may be applied twice: a message published twice runs twice (Celery's at-least-once); an ack is
// idempotent.
func (b *Broker) retryTransient(ctx context.Context, what string, f func() error) error {
	wait := 100 * time.Millisecond
	for tries := 1; ; tries++ {
		err := f()
		if !transient(err) {
			if err == nil && tries > 1 {
				b.log.Info("redisbroker: "+what+" went through after retrying", "tries", tries)
			}
			return err
		}
		if tries == 1 {
			b.log.Warn("redisbroker: "+what+" failed; retrying until Redis answers again", "error", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-b.closing:
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}
