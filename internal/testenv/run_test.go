package testenv

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// recordingTB is a testing.TB whose Errorf is recorded instead of failing the test.
type recordingTB struct {
	testing.TB
	errors []string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestRunUntilCleanupCancelsWaitsAndReports(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		err  error
		want []string
	}{
		{"nil", nil, nil},
		{"an error", boom, []string{"go worker: boom"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordingTB{TB: t}
			returned := false
			t.Run("run", func(t *testing.T) {
				rec.TB = t
				RunUntilCleanup(rec, "go worker", func(ctx context.Context) error {
					<-ctx.Done()
					returned = true
					return tc.err
				})
			})
			// The subtest's cleanup has cancelled the context and waited for run.
			if !returned {
				t.Fatal("run had not returned when the cleanup finished")
			}
			if fmt.Sprint(rec.errors) != fmt.Sprint(tc.want) {
				t.Errorf("reported %q, want %q", rec.errors, tc.want)
			}
		})
	}
}
