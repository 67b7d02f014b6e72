// Package idset holds the worker's bounded in-memory sets of task ids: [Recent], the last n keys
// seen (the tasks started lately, whose redeliveries are discarded), and [Expiring], ids that
// count until they expire, at most a given number of them (Celery's worker_state.revoked).
// Both are safe for concurrent use and cost O(1) memory per id within their bound.
package idset

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Recent remembers the last n keys added, in O(1) per operation and bounded memory. The worker
// keys it by a 64-bit hash of (task id, retries): 16 bytes or so per key where the id string took
// about a hundred, so a full set of 65,536 is about a megabyte.
type Recent[K comparable] struct {
	mu   sync.Mutex
	keys map[K]struct{}
	ring []K
	next int // the slot the next key goes to: the oldest key once the ring is full
	n    int // keys held
}

// NewRecent returns a set that remembers the last n keys added; n must be at least 1.
func NewRecent[K comparable](n int) *Recent[K] {
	return &Recent[K]{keys: make(map[K]struct{}, n), ring: make([]K, n)}
}

// Add remembers k, forgetting the oldest key when the set is full. Adding a key already there
// does nothing (it keeps its place).
func (s *Recent[K]) Add(k K) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[k]; ok {
		return
	}
	if s.n == len(s.ring) {
		delete(s.keys, s.ring[s.next])
	} else {
		s.n++
	}
	s.ring[s.next] = k
	s.keys[k] = struct{}{}
	s.next = (s.next + 1) % len(s.ring)
}

// Has reports whether k is among the keys remembered.
func (s *Recent[K]) Has(k K) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.keys[k]
	return ok
}

// Expiring is a set of ids each known until it expires, at most max of them (Celery's
// worker_state.revoked). When full, adding drops the expired ids, then a tenth of the set (those
// closest to expiry).
type Expiring struct {
	mu      sync.RWMutex
	n       atomic.Int64
	evicted atomic.Uint64
	max     int
	ids     map[string]time.Time
}

// NewExpiring returns an empty set that holds at most max ids.
func NewExpiring(max int) *Expiring {
	return &Expiring{max: max, ids: map[string]time.Time{}}
}

// Add remembers id until expires (a later expiry wins).
func (s *Expiring) Add(id string, expires time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.ids[id]; ok {
		if expires.After(old) {
			s.ids[id] = expires
		}
		return
	}
	if len(s.ids) >= s.max {
		s.trim(time.Now())
	}
	s.ids[id] = expires
	s.n.Store(int64(len(s.ids)))
}

// trim drops the expired ids, then, if the set is still full, a tenth of it (those closest to
// expiry). s.mu is held.
func (s *Expiring) trim(now time.Time) {
	for id, exp := range s.ids {
		if !exp.After(now) {
			delete(s.ids, id)
		}
	}
	if len(s.ids) < s.max {
		return
	}
	type entry struct {
		id  string
		exp time.Time
	}
	all := make([]entry, 0, len(s.ids))
	for id, exp := range s.ids {
		all = append(all, entry{id, exp})
	}
	sort.Slice(all, func(a, b int) bool { return all[a].exp.Before(all[b].exp) })
	drop := all[:max(1, len(all)/10)]
	for _, e := range drop {
		delete(s.ids, e.id)
	}
	s.evicted.Add(uint64(len(drop)))
}

// Evicted counts the ids dropped before they expired, to make room: while it does not change, the
// set still holds every id added that has not expired.
func (s *Expiring) Evicted() uint64 { return s.evicted.Load() }

// Has reports whether id is in the set at now (added and not expired). It takes no lock while the
// set has never held an id, so that a worker with nothing revoked pays nothing per task.
func (s *Expiring) Has(id string, now time.Time) bool {
	if s.n.Load() == 0 {
		return false
	}
	s.mu.RLock()
	exp, ok := s.ids[id]
	s.mu.RUnlock()
	return ok && exp.After(now)
}

// List returns the ids in the set at now, in no particular order.
func (s *Expiring) List(now time.Time) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.ids))
	for id, exp := range s.ids {
		if exp.After(now) {
			out = append(out, id)
		}
	}
	return out
}
