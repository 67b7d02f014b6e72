package testenv

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// PollInterval is how long Poll and Eventually sleep between two calls of the condition.
const PollInterval = 10 * time.Millisecond

// ErrTimeout is wrapped by the error Poll returns when the condition did not hold in time.
var ErrTimeout = errors.New("condition did not hold in time")

// Poll calls cond every PollInterval until it returns true (Poll returns nil) or an error (Poll
// returns it), or until timeout has passed since the first call (Poll returns an error wrapping
// ErrTimeout). cond is called at least once, and once more after the timeout, so a condition that
// holds by then is not reported as timed out.
//
// The timeout is a bound against a test hanging, not an assertion about speed: choose it far above
// the expected wait. Poll suits waits that cannot fail the test where they run (a hook, a goroutine)
// or that stop early on another event (cond returns an error); otherwise use Eventually.
func Poll(timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		expired := !time.Now().Before(deadline)
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if expired {
			return fmt.Errorf("%w after %s", ErrTimeout, timeout)
		}
		time.Sleep(PollInterval)
	}
}

// Eventually polls cond (see Poll) until it returns true, and fails the test with the message
// format and args describe (what was waited for) if it does not within timeout.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	if err := Poll(timeout, func() (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("waiting for %s: %v", fmt.Sprintf(format, args...), err)
	}
}
