// Package redisbeat is the Redis [beat.Store]: beat's state (anchors, last runs, send counts) and
// the per-slot locks that keep several beat processes from sending a slot twice. It is the only
// beat package that imports go-redis; package beat declares the interface and an in-memory store.
package redisbeat

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery/beat"
)

// Store keeps beat's state in Redis, under one key prefix:
//
//	<prefix>fp      hash entry -> fingerprint of its task and schedule
//	<prefix>anchor  hash entry -> unix ms of its first start (interval slots are anchor + k×every)
//	<prefix>last    hash entry -> unix ms of the last slot sent
//	<prefix>count   hash entry -> number of sends
//	<prefix>lock:<entry>:<slot unix ms>  the slot's lock (SET NX PX), set in the same script as last
type Store struct {
	rc     redis.UniversalClient
	prefix string
	ttl    time.Duration
}

// New returns a store under prefix; lockTTL is how long a slot lock lives.
func New(rc redis.UniversalClient, prefix string, lockTTL time.Duration) *Store {
	return &Store{rc: rc, prefix: prefix, ttl: lockTTL}
}

var _ beat.Store = (*Store)(nil)

// Prefix is the key prefix of every key of the store.
func (s *Store) Prefix() string { return s.prefix }

// Keys returns the store's fixed keys (the locks expire by themselves).
func (s *Store) Keys() []string {
	return []string{s.prefix + "fp", s.prefix + "anchor", s.prefix + "last", s.prefix + "count"}
}

var initScript = redis.NewScript(`
local fp = redis.call('HGET', KEYS[1], ARGV[1])
if fp ~= ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
  redis.call('HDEL', KEYS[3], ARGV[1])
  return {ARGV[3], ''}
end
return {redis.call('HGET', KEYS[2], ARGV[1]) or ARGV[3], redis.call('HGET', KEYS[3], ARGV[1]) or ''}
`)

// Init returns the entry's anchor and last sent slot (zero when none), as [beat.Store] documents,
// in one script.
func (s *Store) Init(ctx context.Context, e *beat.Entry, now time.Time) (anchor, last time.Time, err error) {
	res, err := initScript.Run(ctx, s.rc, []string{s.prefix + "fp", s.prefix + "anchor", s.prefix + "last"},
		e.Name, e.Fingerprint(), now.UnixMilli()).StringSlice()
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("beat state: %w", err)
	}
	if len(res) != 2 {
		return time.Time{}, time.Time{}, fmt.Errorf("beat state: unexpected reply %q", res)
	}
	a, err := strconv.ParseInt(res[0], 10, 64)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("beat state: anchor of %q: %w", e.Name, err)
	}
	anchor = time.UnixMilli(a)
	if res[1] != "" {
		l, err := strconv.ParseInt(res[1], 10, 64)
		if err != nil {
			return time.Time{}, time.Time{}, fmt.Errorf("beat state: last run of %q: %w", e.Name, err)
		}
		last = time.UnixMilli(l)
	}
	return anchor, last, nil
}

var claimScript = redis.NewScript(`
local prev = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if prev ~= '' and tonumber(prev) >= tonumber(ARGV[2]) then return false end
if not redis.call('SET', KEYS[2], ARGV[3] .. '|' .. prev, 'NX', 'PX', ARGV[4]) then return false end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
return ARGV[3] .. '|' .. prev
`)

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[2])
local sep = string.find(ARGV[2], '|', 1, true)
local prev = string.sub(ARGV[2], sep + 1)
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[3] then
  if prev == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], prev) end
  redis.call('HINCRBY', KEYS[3], ARGV[1], -1)
end
return 1
`)

// ClaimMany takes slots for this process, as [beat.Store] documents: one script per slot (SET NX
// PX of the slot's lock, HSET of last, HINCRBY of count), all in one round trip.
func (s *Store) ClaimMany(ctx context.Context, slots []beat.SlotClaim, token string) ([]string, error) {
	if len(slots) == 0 {
		return nil, nil
	}
	if err := claimScript.Load(ctx, s.rc).Err(); err != nil {
		return nil, fmt.Errorf("beat state: %w", err)
	}
	cmds := make([]*redis.Cmd, len(slots))
	_, err := s.rc.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sc := range slots {
			ms := sc.Slot.UnixMilli()
			cmds[i] = claimScript.EvalSha(ctx, p, []string{s.prefix + "last", s.lockKey(sc.Name, ms), s.prefix + "count"},
				sc.Name, ms, token, s.ttl.Milliseconds())
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return nil, fmt.Errorf("beat state: claim: %w", err)
	}
	claims := make([]string, len(slots))
	for i, c := range cmds {
		v, err := c.Text()
		switch {
		case err == redis.Nil:
		case err != nil:
			return nil, fmt.Errorf("beat state: claim %q: %w", slots[i].Name, err)
		default:
			claims[i] = v
		}
	}
	return claims, nil
}

// Release undoes a claim whose send failed, so that the slot can be sent again, as [beat.Store]
// documents.
func (s *Store) Release(ctx context.Context, name string, slot time.Time, claim string) error {
	ms := slot.UnixMilli()
	err := releaseScript.Run(ctx, s.rc, []string{s.prefix + "last", s.lockKey(name, ms), s.prefix + "count"},
		name, claim, ms).Err()
	if err != nil {
		return fmt.Errorf("beat state: release %q: %w", name, err)
	}
	return nil
}

func (s *Store) lockKey(name string, ms int64) string {
	return s.prefix + "lock:" + name + ":" + strconv.FormatInt(ms, 10)
}
