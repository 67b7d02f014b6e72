package control

import (
	"testing"
	"time"
)

// TestMailboxBackoffIsCappedAtOneSecond: by default a mailbox never waits more than a second
// before setting up again, jitter included, so `celery inspect ping` is answered about a second
// after the broker is back.
func TestMailboxBackoffIsCappedAtOneSecond(t *testing.T) {
	t.Parallel()
	o, err := Options{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.MaxBackoff != time.Second {
		t.Fatalf("default MaxBackoff %v, want 1s", o.MaxBackoff)
	}
	for _, d := range []time.Duration{o.MinBackoff, o.MaxBackoff, 3 * time.Millisecond} {
		for range 1000 {
			if j := jittered(d); j < d/2 || j > d {
				t.Fatalf("jittered(%v) = %v, want within [%v, %v]", d, j, d/2, d)
			}
		}
	}
}
