package events

import "sync/atomic"

// Clock is a Lamport clock, Celery's app.clock (kombu's LamportClock): one per process, shared by
// the event dispatcher and the control mailbox so that everything a node sends is ordered. The zero
// value starts at 0 and is ready to use; it is safe for concurrent use.
//
// Celery's names differ: its forward() is Tick here, and its adjust(other) is Forward(peer).
type Clock struct {
	v atomic.Int64
}

// Tick advances the clock for a local event and returns the new value (Celery's clock.forward()).
func (c *Clock) Tick() int64 { return c.v.Add(1) }

// Forward merges a clock value received from another node: the clock becomes max(own, peer)+1,
// which it returns (Celery's clock.adjust(peer)).
func (c *Clock) Forward(peer int64) int64 {
	for {
		cur := c.v.Load()
		next := max(cur, peer) + 1
		if c.v.CompareAndSwap(cur, next) {
			return next
		}
	}
}

// Value is the current value, as the "clock" control command reports it.
func (c *Clock) Value() int64 { return c.v.Load() }
