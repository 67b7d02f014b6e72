package serving

import (
	"errors"
	"testing"
	"time"
)

func TestBreaker(t *testing.T) {
	t.Parallel()
	clock := newClock(testClockStart)
	b := &breaker{log: quietLogger(), now: clock.now}
	boom := errors.New("boom")
	step := func(d time.Duration) { clock.add(d) }

	// Never succeeded: BreakerThreshold failures open it.
	for i := range BreakerThreshold {
		if !b.allow() {
			t.Fatalf("closed breaker refused call %d", i)
		}
		b.failure(boom)
	}
	if b.allow() {
		t.Fatal("open breaker allowed a call")
	}
	step(BreakerCooldown - time.Millisecond)
	if b.allow() {
		t.Fatal("breaker allowed a call before its cooldown ended")
	}
	step(time.Millisecond)
	if !b.allow() {
		t.Fatal("no probe after the cooldown")
	}
	if b.allow() {
		t.Fatal("two probes at once")
	}
	b.failure(boom) // the probe failed: open again
	if b.allow() {
		t.Fatal("a failed probe did not reopen the breaker")
	}
	step(BreakerCooldown)
	if !b.allow() {
		t.Fatal("no probe after the second cooldown")
	}
	b.success() // the probe succeeded: closed
	for range 3 {
		if !b.allow() {
			t.Fatal("closed after a successful probe, yet refusing")
		}
	}

	// Failures while calls still succeed within BreakerWindow (an overloaded process, not a dead
	// Redis) do not open it.
	for i := range 4 * BreakerThreshold {
		b.failure(boom)
		if i%BreakerThreshold == BreakerThreshold-1 {
			b.success()
		}
		step(BreakerWindow / 10)
		if !b.allow() {
			t.Fatal("opened although a call succeeded within the window")
		}
	}
	// Once nothing has succeeded for the window, BreakerThreshold failures open it.
	step(BreakerWindow)
	for range BreakerThreshold {
		b.failure(boom)
	}
	if b.allow() {
		t.Fatal("still closed after a window without success")
	}
}
