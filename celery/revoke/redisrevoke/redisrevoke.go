// Package redisrevoke is the Redis [revoke.Store]: a persistent store of revoked task ids shared
// by every worker.
//
// It lives beside package revoke, as redisbackend lives beside package backend: the parent
// package declares the seam and what is broker- and backend-neutral (the interface, notices,
// signal names, the in-memory store), the sub-package is the adapter and the only one that imports
// go-redis.
//
// Celery keeps revoked ids in each worker's memory (50 000 ids, each for 3 hours, lost at restart
// unless --statedb is used; new workers learn them through mingle). Here they live in Redis, so
// every worker, including one started later, sees a revoke made through any of them, and a worker
// restart forgets nothing.
//
// # Keys
//
// Under a prefix (default [revoke.DefaultPrefix], "celery:revoked:"):
//
//	<prefix>ids      zset     task id -> expiry time (unix milliseconds); the key itself
//	                          expires with its last member
//	<prefix>events   channel  one JSON [revoke.Notice] per Revoke call (PUBLISH)
//
// Each [Store.Revoke] is one Lua script: it drops expired ids, adds the new ones (a second revoke
// of an id extends its expiry, never shortens it), trims the set to its bound by evicting the ids
// closest to expiry, sets the key's expiry and publishes the notice. [Store.IsRevoked] is one
// ZSCORE, [Store.AreRevoked] one ZMSCORE.
//
// # Notifications
//
// [Store.Subscribe] delivers every revoke made through any Store on the same prefix, so a worker
// can stop a running task revoked with terminate. Redis pub/sub does not keep messages: a revoke
// published while a subscriber is disconnected reaches it only through the set, that is before
// the task's next start, not while it runs.
//
// [Store.Follow] (the [revoke.Follower] stream a worker reads) marks those gaps: a Gap as soon as
// receiving fails, a Live once Redis confirms the subscription go-redis renews on its new
// connection. A worker that reloads the set ([Store.Entries], one ZRANGEBYSCORE) after each Live
// and has seen no Gap since holds every revoked id, and stops asking Redis about each batch of
// tasks it receives; between a Gap and the reload it asks again.
package redisrevoke

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery/revoke"
)

// Store is the revoked-id set under one prefix. It is safe for concurrent use.
type Store struct {
	rc      redis.UniversalClient
	prefix  string
	ttl     time.Duration
	maxSize int
	now     func() time.Time
	log     *slog.Logger
}

// Option adjusts a Store.
type Option func(*Store)

// WithMaxSize bounds the number of ids kept (default [revoke.DefaultMaxSize]); past it the ids closest to
// expiry are evicted first. n < 1 is ignored.
func WithMaxSize(n int) Option {
	return func(s *Store) {
		if n >= 1 {
			s.maxSize = n
		}
	}
}

// WithClock replaces time.Now, for tests of expiry.
func WithClock(now func() time.Time) Option {
	return func(s *Store) {
		if now != nil {
			s.now = now
		}
	}
}

// WithLogger sets where Subscribe reports notices it cannot decode (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(s *Store) {
		if l != nil {
			s.log = l
		}
	}
}

// New returns the store under prefix ("" = [revoke.DefaultPrefix]) whose ids stay revoked for ttl
// (0 or less = [revoke.DefaultTTL]).
func New(rc redis.UniversalClient, prefix string, ttl time.Duration, opts ...Option) *Store {
	if prefix == "" {
		prefix = revoke.DefaultPrefix
	}
	if ttl <= 0 {
		ttl = revoke.DefaultTTL
	}
	s := &Store{rc: rc, prefix: prefix, ttl: ttl, maxSize: revoke.DefaultMaxSize, now: time.Now, log: slog.Default()}
	for _, o := range opts {
		o(s)
	}
	return s
}

// SetKey is the sorted set of revoked ids.
func (s *Store) SetKey() string { return s.prefix + "ids" }

// Channel is the pub/sub channel of revoke notices.
func (s *Store) Channel() string { return s.prefix + "events" }

// TTL is how long an id stays revoked.
func (s *Store) TTL() time.Duration { return s.ttl }

// String names the store for logs and banners: its set's key.
func (s *Store) String() string { return s.SetKey() }

var _ revoke.Follower = (*Store)(nil)

// revokeScript: KEYS[1] the set; ARGV[1] now (ms), ARGV[2] expiry (ms), ARGV[3] max size,
// ARGV[4] channel, ARGV[5] notice, ARGV[6..] ids. Returns the number of ids evicted by the bound.
var revokeScript = redis.NewScript(`
local z = KEYS[1]
redis.call('ZREMRANGEBYSCORE', z, '-inf', ARGV[1])
for i = 6, #ARGV do
  redis.call('ZADD', z, 'GT', ARGV[2], ARGV[i])
end
local evicted = 0
local n = redis.call('ZCARD', z)
local max = tonumber(ARGV[3])
if n > max then
  evicted = redis.call('ZREMRANGEBYRANK', z, 0, n - max - 1)
end
local last = redis.call('ZRANGE', z, -1, -1, 'WITHSCORES')
if last[2] then
  redis.call('PEXPIREAT', z, last[2])
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return evicted
`)

// Revoke marks ids revoked for the store's ttl and notifies subscribers, as [revoke.Store]
// documents: in one Lua script it drops expired ids, adds these, trims the set to its bound and
// publishes the notice. An empty id, or an unknown signal, is an error and nothing is revoked. No
// ids is a no-op.
func (s *Store) Revoke(ctx context.Context, ids []string, terminate bool, signal string) error {
	if len(ids) == 0 {
		return nil
	}
	sig, err := revoke.CheckRevoke(ids, terminate, signal)
	if err != nil {
		return err
	}
	now := s.now()
	expires := now.Add(s.ttl)
	notice, err := revoke.EncodeNotice(revoke.Notice{IDs: ids, Terminate: terminate, Signal: sig, Expires: expires})
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	args := make([]any, 0, 5+len(ids))
	args = append(args, now.UnixMilli(), expires.UnixMilli(), s.maxSize, s.Channel(), notice)
	for _, id := range ids {
		args = append(args, id)
	}
	evicted, err := revokeScript.Run(ctx, s.rc, []string{s.SetKey()}, args...).Int64()
	if err != nil {
		return fmt.Errorf("revoke: storing %d ids in %s: %w", len(ids), s.SetKey(), err)
	}
	if evicted > 0 {
		s.log.Warn("revoked-id set full, evicted the ids closest to expiry", "key", s.SetKey(), "evicted", evicted, "max", s.maxSize)
	}
	return nil
}

// IsRevoked reports whether id is revoked and not yet expired (one ZSCORE).
func (s *Store) IsRevoked(ctx context.Context, id string) (bool, error) {
	score, err := s.rc.ZScore(ctx, s.SetKey(), id).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("revoke: checking %s in %s: %w", id, s.SetKey(), err)
	}
	return score > float64(s.now().UnixMilli()), nil
}

// AreRevoked is IsRevoked for many ids in one round trip (ZMSCORE): out[i] is ids[i]'s answer.
func (s *Store) AreRevoked(ctx context.Context, ids []string) ([]bool, error) {
	out := make([]bool, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	cmd := redis.NewSliceCmd(ctx, append([]any{"zmscore", s.SetKey()}, toAny(ids)...)...)
	if err := s.rc.Process(ctx, cmd); err != nil {
		return nil, fmt.Errorf("revoke: checking %d ids in %s: %w", len(ids), s.SetKey(), err)
	}
	now := float64(s.now().UnixMilli())
	for i, v := range cmd.Val() {
		if v == nil {
			continue
		}
		f, err := scoreOf(v)
		if err != nil {
			return nil, fmt.Errorf("revoke: checking %s in %s: %w", ids[i], s.SetKey(), err)
		}
		out[i] = f > now
	}
	return out, nil
}

// scoreOf reads a ZMSCORE element (a bulk string in RESP2, a double in RESP3).
func scoreOf(v any) (float64, error) {
	switch x := v.(type) {
	case string:
		return strconv.ParseFloat(x, 64)
	case float64:
		return x, nil
	case int64:
		return float64(x), nil
	}
	return 0, fmt.Errorf("unexpected score %T %v", v, v)
}

func toAny(ids []string) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

// List returns the revoked ids that have not expired, soonest to expire first.
func (s *Store) List(ctx context.Context) ([]string, error) {
	ids, err := s.rc.ZRangeByScore(ctx, s.SetKey(), &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(s.now().UnixMilli(), 10),
		Max: "+inf",
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("revoke: listing %s: %w", s.SetKey(), err)
	}
	return ids, nil
}

// Entries is List with each id's expiry (its score), in one ZRANGEBYSCORE.
func (s *Store) Entries(ctx context.Context) ([]revoke.Entry, error) {
	zs, err := s.rc.ZRangeByScoreWithScores(ctx, s.SetKey(), &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(s.now().UnixMilli(), 10),
		Max: "+inf",
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("revoke: listing %s: %w", s.SetKey(), err)
	}
	out := make([]revoke.Entry, len(zs))
	for i, z := range zs {
		id, _ := z.Member.(string)
		out[i] = revoke.Entry{ID: id, Expires: time.UnixMilli(int64(z.Score))}
	}
	return out, nil
}

// Subscribe delivers every id revoked on this prefix, by any Store, from the moment it returns
// until ctx ends; then the channel is closed. The subscription is confirmed by Redis before
// Subscribe returns, and is renewed after a lost connection (revokes made in between are not
// delivered; see the package documentation). A notice that cannot be decoded is logged and
// skipped. Receive promptly: while the channel is full, notices wait in Redis's output buffer.
func (s *Store) Subscribe(ctx context.Context) (<-chan revoke.Revocation, error) {
	return s.subscribe(ctx, false)
}

// Follow is Subscribe with markers, as [revoke.Follower] documents: Live first (Redis confirmed
// the subscription before Follow returns), Gap as soon as receiving fails (the connection broke,
// or a reply could not be read: a notice may be lost), and Live again once Redis confirms the
// subscription renewed on a new connection. A notice that cannot be decoded is not a gap: it is
// logged and skipped, as by Subscribe.
func (s *Store) Follow(ctx context.Context) (<-chan revoke.Revocation, error) {
	return s.subscribe(ctx, true)
}

// subscribe is Subscribe, and Follow with marks.
func (s *Store) subscribe(ctx context.Context, marks bool) (<-chan revoke.Revocation, error) {
	ps := s.rc.Subscribe(ctx)
	if err := ps.Subscribe(ctx, s.Channel()); err != nil {
		_ = ps.Close()
		return nil, fmt.Errorf("revoke: subscribing to %s: %w", s.Channel(), err)
	}
	// Wait for the confirmation, so that a revoke made after Subscribe returns is delivered.
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return nil, fmt.Errorf("revoke: subscribing to %s: %w", s.Channel(), err)
	}
	out := make(chan revoke.Revocation, 64)
	if marks {
		out <- revoke.Revocation{Live: true}
	}
	stop := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-stop:
		}
		_ = ps.Close()
	}()
	send := func(r revoke.Revocation) bool {
		select {
		case out <- r:
			return true
		case <-ctx.Done():
			return false
		}
	}
	go func() {
		defer close(out)
		defer close(stop)
		gap := false // receiving failed and no confirmation came since
		for {
			// Receive, not ReceiveMessage: the confirmation of the subscription go-redis renews on
			// a new connection is what ends a gap.
			msg, err := ps.Receive(ctx)
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, redis.ErrClosed) {
					return
				}
				if !gap {
					gap = true
					s.log.Warn("revoke subscription interrupted, resubscribing", "channel", s.Channel(), "error", err)
					if marks && !send(revoke.Revocation{Gap: true}) {
						return
					}
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
				// go-redis subscribes again on the new connection it makes after a broken one; on
				// a connection it kept (a reply it could not read), this asks for a confirmation.
				_ = ps.Subscribe(ctx, s.Channel())
				continue
			}
			switch m := msg.(type) {
			case *redis.Subscription:
				if gap && m.Kind == "subscribe" && m.Channel == s.Channel() {
					gap = false
					s.log.Info("revoke subscription renewed", "channel", s.Channel())
					if marks && !send(revoke.Revocation{Live: true}) {
						return
					}
				}
			case *redis.Message:
				n, err := revoke.DecodeNotice([]byte(m.Payload))
				if err != nil {
					s.log.Error("revoke notice ignored", "channel", s.Channel(), "error", err)
					continue
				}
				for _, id := range n.IDs {
					if !send(revoke.Revocation{ID: id, Terminate: n.Terminate, Signal: n.Signal, Expires: n.Expires}) {
						return
					}
				}
			}
		}
	}()
	return out, nil
}
