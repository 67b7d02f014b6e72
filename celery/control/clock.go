package control

import (
	"math"
	"sync"
)

// Clock is a Lamport clock, kombu's LamportClock: every message a node sends carries the clock
// value, and every message it receives moves the clock past the sender's. The zero value starts at
// 0 and is ready to use; a Clock is safe for concurrent use. Share one Clock between a node's
// [Mailbox] and anything else that stamps messages (events), as Celery shares app.clock. The
// value saturates at the largest uint64 instead of wrapping.
type Clock struct {
	mu    sync.Mutex
	value uint64
}

// Tick advances the clock for a local event (sending a message) and returns the new value;
// kombu calls this forward().
func (c *Clock) Tick() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.value < math.MaxUint64 {
		c.value++
	}
	return c.value
}

// Forward moves the clock past a value seen on a received message, max(own, seen)+1, and returns
// the new value; kombu calls this adjust().
func (c *Clock) Forward(seen uint64) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.value = max(c.value, seen)
	if c.value < math.MaxUint64 {
		c.value++
	}
	return c.value
}

// Value is the current value.
func (c *Clock) Value() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.value
}
