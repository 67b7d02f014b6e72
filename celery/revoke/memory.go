package revoke

import (
	"context"
	"slices"
	"sync"
	"time"
	"unicode/utf8"
)

// MemoryStore is a Store in this process's memory: for tests, examples and a single worker. Its
// ids are not shared with other processes and are lost when the process ends. Subscribers are
// never dropped: a notice waits until each subscriber has received it or its ctx ends. It is safe
// for concurrent use.
type MemoryStore struct {
	ttl     time.Duration
	maxSize int
	now     func() time.Time

	mu   sync.Mutex
	ids  map[string]time.Time
	subs map[*memorySub]struct{}
}

// memorySub is one Subscribe call: its queue of revocations not yet delivered.
type memorySub struct {
	queue []Revocation
	wake  chan struct{} // 1-buffered: something was queued
}

// MemoryOption adjusts a MemoryStore.
type MemoryOption func(*MemoryStore)

// WithMemoryMaxSize bounds the number of ids kept (default DefaultMaxSize); past it the ids
// closest to expiry are evicted first. n < 1 is ignored.
func WithMemoryMaxSize(n int) MemoryOption {
	return func(s *MemoryStore) {
		if n >= 1 {
			s.maxSize = n
		}
	}
}

// WithMemoryClock replaces time.Now, for tests of expiry.
func WithMemoryClock(now func() time.Time) MemoryOption {
	return func(s *MemoryStore) {
		if now != nil {
			s.now = now
		}
	}
}

// NewMemoryStore returns an empty MemoryStore whose ids stay revoked for ttl (0 or less =
// DefaultTTL).
func NewMemoryStore(ttl time.Duration, opts ...MemoryOption) *MemoryStore {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	s := &MemoryStore{ttl: ttl, maxSize: DefaultMaxSize, now: time.Now, ids: map[string]time.Time{}, subs: map[*memorySub]struct{}{}}
	for _, o := range opts {
		o(s)
	}
	return s
}

var _ Follower = (*MemoryStore)(nil)

// TTL is how long an id stays revoked.
func (s *MemoryStore) TTL() time.Duration { return s.ttl }

// String is "memory".
func (s *MemoryStore) String() string { return "memory" }

// Revoke marks ids revoked, as Store documents.
func (s *MemoryStore) Revoke(ctx context.Context, ids []string, terminate bool, signal string) error {
	if len(ids) == 0 {
		return nil
	}
	sig, err := CheckRevoke(ids, terminate, signal)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if !utf8.ValidString(id) {
			// As a Redis store refuses it (its notice would not encode).
			return Notice{IDs: []string{id}}.validate()
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	now := s.now()
	expires := now.Add(s.ttl)
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, exp := range s.ids {
		if !exp.After(now) {
			delete(s.ids, id)
		}
	}
	for _, id := range ids {
		if old, ok := s.ids[id]; !ok || expires.After(old) {
			s.ids[id] = expires
		}
	}
	if over := len(s.ids) - s.maxSize; over > 0 {
		for _, id := range s.bySoonest()[:over] {
			delete(s.ids, id)
		}
	}
	for sub := range s.subs {
		for _, id := range ids {
			sub.queue = append(sub.queue, Revocation{ID: id, Terminate: terminate, Signal: sig, Expires: expires})
		}
		select {
		case sub.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// bySoonest returns the ids soonest to expire first (ties by id). s.mu is held.
func (s *MemoryStore) bySoonest() []string {
	ids := make([]string, 0, len(s.ids))
	for id := range s.ids {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		if c := s.ids[a].Compare(s.ids[b]); c != 0 {
			return c
		}
		if a < b {
			return -1
		}
		return 1
	})
	return ids
}

// IsRevoked reports whether id is revoked and not yet expired.
func (s *MemoryStore) IsRevoked(ctx context.Context, id string) (bool, error) {
	got, err := s.AreRevoked(ctx, []string{id})
	if err != nil {
		return false, err
	}
	return got[0], nil
}

// AreRevoked is IsRevoked for many ids.
func (s *MemoryStore) AreRevoked(ctx context.Context, ids []string) ([]bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]bool, len(ids))
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, id := range ids {
		exp, ok := s.ids[id]
		out[i] = ok && exp.After(now)
	}
	return out, nil
}

// List returns the revoked ids that have not expired, soonest to expire first.
func (s *MemoryStore) List(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []string{}
	for _, id := range s.bySoonest() {
		if s.ids[id].After(now) {
			out = append(out, id)
		}
	}
	return out, nil
}

// Entries is List with each id's expiry.
func (s *MemoryStore) Entries(ctx context.Context) ([]Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Entry{}
	for _, id := range s.bySoonest() {
		if exp := s.ids[id]; exp.After(now) {
			out = append(out, Entry{ID: id, Expires: exp})
		}
	}
	return out, nil
}

// Subscribe delivers every id revoked through this store from the moment it returns until ctx
// ends; then the channel is closed. No notice is dropped.
func (s *MemoryStore) Subscribe(ctx context.Context) (<-chan Revocation, error) {
	return s.subscribe(ctx, false)
}

// Follow is Subscribe whose first value is a Live marker. It never sends Gap: no notice is
// dropped.
func (s *MemoryStore) Follow(ctx context.Context) (<-chan Revocation, error) {
	return s.subscribe(ctx, true)
}

// subscribe is Subscribe, with a Live marker first when live is set.
func (s *MemoryStore) subscribe(ctx context.Context, live bool) (<-chan Revocation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sub := &memorySub{wake: make(chan struct{}, 1)}
	if live {
		sub.queue = []Revocation{{Live: true}}
	}
	s.mu.Lock()
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	out := make(chan Revocation)
	go func() {
		defer close(out)
		defer func() {
			s.mu.Lock()
			delete(s.subs, sub)
			s.mu.Unlock()
		}()
		for {
			s.mu.Lock()
			batch := sub.queue
			sub.queue = nil
			s.mu.Unlock()
			for _, r := range batch {
				select {
				case out <- r:
				case <-ctx.Done():
					return
				}
			}
			if len(batch) > 0 {
				continue
			}
			select {
			case <-sub.wake:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
