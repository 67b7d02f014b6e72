package redisbroker

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// maintenance runs while the Broker is open once it has consumed: every RestoreInterval it gives
// back others' messages whose visibility timeout passed, moves parked messages that are due, and
// every VisibilityTimeout/4 it renews the unacked_index score of every message its consumers hold,
// so that no one (Go or kombu) restores a message a live Go worker is still running or holding
// for its ETA. A killed worker stops renewing, and its messages come back one visibility timeout
// after their last renewal.
func (b *Broker) maintenance() {
	defer b.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-b.closing; cancel() }()
	refreshEvery := max(b.opts.VisibilityTimeout/4, 10*time.Millisecond)
	tick := min(b.opts.RestoreInterval, refreshEvery)
	lastRefresh := time.Now()
	for b.sleep(ctx, tick) {
		if time.Since(lastRefresh) >= refreshEvery {
			b.refresh(ctx)
			lastRefresh = time.Now()
		}
		if _, err := b.RestoreVisible(ctx); err != nil && ctx.Err() == nil {
			b.log.Warn("redisbroker: restoring messages past their visibility timeout", "error", err)
		}
		if err := moveDueScript.Run(ctx, b.rc, []string{b.delayedKey()}, nowSeconds(), 100).Err(); err != nil && ctx.Err() == nil {
			b.log.Warn("redisbroker: moving parked messages that are due", "error", err)
		}
	}
}

func nowSeconds() string {
	return strconv.FormatFloat(float64(time.Now().UnixMicro())/1e6, 'f', 6, 64)
}

// refresh renews the unacked_index scores of the messages held here (ZADD XX: a message acked
// meanwhile is not added back).
func (b *Broker) refresh(ctx context.Context) {
	tags := b.heldTags()
	if len(tags) == 0 {
		return
	}
	now := float64(time.Now().UnixMicro()) / 1e6
	zs := make([]redis.Z, len(tags))
	for i, t := range tags {
		zs[i] = redis.Z{Score: now, Member: t}
	}
	if err := b.rc.ZAddXX(ctx, b.key(b.opts.UnackedIndexKey), zs...).Err(); err != nil && ctx.Err() == nil {
		b.log.Warn("redisbroker: renewing the visibility of held messages", "held", len(tags), "error", err)
	}
}

// RestoreVisible is kombu's QoS.restore_visible: under the unacked_mutex (taken without waiting,
// for unacked_mutex_expire at most; when another worker holds it, nothing is done), the messages
// whose unacked_index score is older than the visibility timeout go back to the head of their
// queues, marked redelivered, and leave the unacked hash and index (each in one atomic step, so
// none is restored twice). It returns how many it restored.
func (b *Broker) RestoreVisible(ctx context.Context) (int, error) {
	token := newTag()
	mutex := b.key(b.opts.UnackedMutexKey)
	ok, err := b.rc.SetNX(ctx, mutex, token, b.opts.UnackedMutexExpire).Result()
	if err != nil || !ok {
		return 0, err
	}
	defer unlockScript.Run(context.WithoutCancel(ctx), b.rc, []string{mutex}, token)
	ceil := float64(time.Now().Add(-b.opts.VisibilityTimeout).UnixMicro()) / 1e6
	by := &redis.ZRangeBy{Min: "0", Max: strconv.FormatFloat(ceil, 'f', 6, 64)}
	if b.opts.UnackedRestoreLimit > 0 {
		by.Count = int64(b.opts.UnackedRestoreLimit)
	}
	tags, err := b.rc.ZRevRangeByScore(ctx, b.key(b.opts.UnackedIndexKey), by).Result()
	if err != nil {
		return 0, err
	}
	restored := 0
	for _, tag := range tags {
		entry, err := b.rc.HGet(ctx, b.key(b.opts.UnackedKey), tag).Bytes()
		if err == redis.Nil {
			b.rc.ZRem(ctx, b.key(b.opts.UnackedIndexKey), tag)
			continue
		}
		if err != nil {
			return restored, err
		}
		payload, ex, rk, perr := unackedEntry(entry)
		if perr != nil {
			b.parkUnreadable(ctx, entry, "", tag, "unacked entry: "+perr.Error())
			continue
		}
		queue := rk
		if ex != "" {
			queue = ""
		}
		if _, derr := DecodeMessage(payload); derr != nil {
			b.parkUnreadable(ctx, payload, queue, tag, derr.Error())
			continue
		}
		ok, err := b.restoreTag(ctx, &held{kombuTag: tag, queue: queue, exchange: ex, key: rk, payload: payload}, false)
		if err != nil {
			return restored, err
		}
		if ok {
			restored++
		}
	}
	if restored > 0 {
		b.log.Info("redisbroker: restored messages past their visibility timeout", "restored", restored,
			"visibility_timeout", b.opts.VisibilityTimeout)
	}
	return restored, nil
}
