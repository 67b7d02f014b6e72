package beat

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Store keeps beat's state where every beat process of a deployment shares it: each entry's
// anchor (interval slots are anchor + k×every) and last sent slot, and a lock per slot so that
// several beats running at once send each slot once. Package redisbeat is the Redis store;
// MemoryStore keeps it in one process. Implementations are safe for concurrent use.
type Store interface {
	// Init returns the entry's anchor and last sent slot (zero when none). A new entry, or one
	// whose task or schedule changed (its Fingerprint), gets anchor = now and no last run; every
	// beat process then reads the same anchor.
	Init(ctx context.Context, e *Entry, now time.Time) (anchor, last time.Time, err error)
	// ClaimMany takes slots for this process (token names it): atomically per slot, unless the
	// entry's last sent slot is at or after the slot or another process holds the slot's lock, it
	// sets the lock (for the store's lock TTL) and makes the slot the entry's last run.
	// claims[i] is non-empty when slots[i] is this process's to send: pass it to Release if the
	// send fails. However many processes claim the same slot at once, exactly one gets it.
	ClaimMany(ctx context.Context, slots []SlotClaim, token string) ([]string, error)
	// Release undoes a claim whose send failed: the lock is dropped and, if the slot is still the
	// entry's last run, the previous last run is restored, so that the slot can be sent again. A
	// claim that is not the slot's current lock is ignored.
	Release(ctx context.Context, name string, slot time.Time, claim string) error
}

// SlotClaim asks for one slot in ClaimMany.
type SlotClaim struct {
	// Name is the entry's name.
	Name string
	// Slot is the slot's due time (millisecond precision).
	Slot time.Time
}

// MemoryStore is a Store in this process's memory: several Schedulers of one process share it,
// for tests and single-process setups. Its state is lost when the process ends.
type MemoryStore struct {
	ttl time.Duration
	now func() time.Time

	mu     sync.Mutex
	fp     map[string]string
	anchor map[string]int64 // unix ms
	last   map[string]int64 // unix ms
	count  map[string]int64
	locks  map[string]memoryLock // entry + ":" + slot unix ms
}

// memoryLock is one slot's lock: its value (token|previous last run) and expiry.
type memoryLock struct {
	val     string
	expires time.Time
}

// NewMemoryStore returns an empty MemoryStore whose slot locks live lockTTL; now is the clock for
// their expiry (nil = time.Now).
func NewMemoryStore(lockTTL time.Duration, now func() time.Time) *MemoryStore {
	if now == nil {
		now = time.Now
	}
	return &MemoryStore{ttl: lockTTL, now: now, fp: map[string]string{}, anchor: map[string]int64{},
		last: map[string]int64{}, count: map[string]int64{}, locks: map[string]memoryLock{}}
}

var _ Store = (*MemoryStore)(nil)

// Init returns the entry's anchor and last sent slot, as Store documents.
func (m *MemoryStore) Init(ctx context.Context, e *Entry, now time.Time) (anchor, last time.Time, err error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, time.Time{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if fp := e.Fingerprint(); m.fp[e.Name] != fp {
		m.fp[e.Name] = fp
		m.anchor[e.Name] = now.UnixMilli()
		delete(m.last, e.Name)
		return time.UnixMilli(now.UnixMilli()), time.Time{}, nil
	}
	if l, ok := m.last[e.Name]; ok {
		last = time.UnixMilli(l)
	}
	return time.UnixMilli(m.anchor[e.Name]), last, nil
}

// ClaimMany takes slots for this process, as Store documents.
func (m *MemoryStore) ClaimMany(ctx context.Context, slots []SlotClaim, token string) ([]string, error) {
	if len(slots) == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	claims := make([]string, len(slots))
	for i, sc := range slots {
		ms := sc.Slot.UnixMilli()
		prev, hasPrev := m.last[sc.Name]
		if hasPrev && prev >= ms {
			continue
		}
		key := lockKey(sc.Name, ms)
		if l, ok := m.locks[key]; ok && l.expires.After(now) {
			continue
		}
		prevText := ""
		if hasPrev {
			prevText = strconv.FormatInt(prev, 10)
		}
		claims[i] = token + "|" + prevText
		m.locks[key] = memoryLock{val: claims[i], expires: now.Add(m.ttl)}
		m.last[sc.Name] = ms
		m.count[sc.Name]++
	}
	for k, l := range m.locks {
		if !l.expires.After(now) {
			delete(m.locks, k)
		}
	}
	return claims, nil
}

// Release undoes a claim whose send failed, as Store documents.
func (m *MemoryStore) Release(ctx context.Context, name string, slot time.Time, claim string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ms := slot.UnixMilli()
	key := lockKey(name, ms)
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.locks[key]
	if !ok || l.val != claim || !l.expires.After(m.now()) {
		return nil
	}
	delete(m.locks, key)
	if last, ok := m.last[name]; ok && last == ms {
		_, prevText, _ := strings.Cut(claim, "|")
		if prevText == "" {
			delete(m.last, name)
		} else if prev, err := strconv.ParseInt(prevText, 10, 64); err == nil {
			m.last[name] = prev
		}
		m.count[name]--
	}
	return nil
}

// Count is how many slots of the entry were claimed (and not released) through this store.
func (m *MemoryStore) Count(name string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.count[name]
}

func lockKey(name string, ms int64) string { return name + ":" + strconv.FormatInt(ms, 10) }
