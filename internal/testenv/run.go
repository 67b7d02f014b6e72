package testenv

import (
	"context"
	"testing"
)

// RunUntilCleanup runs run in a goroutine on a context that the test's cleanup cancels; the
// cleanup then waits for run to return and fails the test with its error, if any, prefixed by
// what ("go worker: ..."). It suits a worker's or a consumer's Run that returns nil once its
// context is cancelled. Cleanups run last registered first: close what run uses (a broker) in a
// cleanup registered before this call.
func RunUntilCleanup(t testing.TB, what string, run func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: %v", what, err)
		}
	})
}
