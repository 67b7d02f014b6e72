package testenv

import (
	"errors"
	"testing"
	"time"
)

func TestPollReturnsOnceTheConditionHolds(t *testing.T) {
	t.Parallel()
	calls := 0
	err := Poll(time.Minute, func() (bool, error) {
		calls++
		return calls == 3, nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("Poll = %v after %d calls, want nil after 3", err, calls)
	}
}

func TestPollReturnsTheConditionsError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	calls := 0
	err := Poll(time.Minute, func() (bool, error) {
		calls++
		if calls == 2 {
			return false, boom
		}
		return false, nil
	})
	if !errors.Is(err, boom) || calls != 2 {
		t.Fatalf("Poll = %v after %d calls, want boom after 2", err, calls)
	}
}

func TestPollTimesOutWithErrTimeout(t *testing.T) {
	t.Parallel()
	calls := 0
	err := Poll(0, func() (bool, error) {
		calls++
		return false, nil
	})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Poll = %v, want ErrTimeout", err)
	}
	if calls != 1 {
		t.Fatalf("cond called %d times with a zero timeout, want 1", calls)
	}
}

func TestEventuallyPassesWhenTheConditionHolds(t *testing.T) {
	t.Parallel()
	calls := 0
	Eventually(t, time.Minute, func() bool { calls++; return calls > 1 }, "the second call")
	if calls != 2 {
		t.Fatalf("cond called %d times, want 2", calls)
	}
}
