package celerytest_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// recorder is a testing.TB that records failures instead of failing the test, so that a test can
// check that a helper fails when it should. Its Fatalf ends the goroutine, as testing's does: run
// helpers on it through record. Methods it does not override panic (the embedded TB is nil).
type recorder struct {
	testing.TB
	mu       sync.Mutex
	errs     []string
	fatal    bool
	cleanups []func()
}

func (r *recorder) Helper()             {}
func (r *recorder) Name() string        { return "recorder" }
func (r *recorder) Log(...any)          {}
func (r *recorder) Logf(string, ...any) {}
func (r *recorder) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
	r.fatal = true
	r.mu.Unlock()
	runtime.Goexit()
}

// record runs fn on a fresh recorder in a goroutine of its own (so that Fatalf can end it), then
// its cleanups, last registered first, and returns the recorder.
func record(fn func(tb testing.TB)) *recorder {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(r)
	}()
	<-done
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	return r
}

// requireFailed fails t unless r recorded a failure (fatal or not, as wantFatal says) whose text
// contains every one of parts.
func requireFailed(t *testing.T, r *recorder, wantFatal bool, parts ...string) {
	t.Helper()
	if len(r.errs) == 0 {
		t.Fatalf("the helper did not fail; want a failure containing %q", parts)
	}
	if r.fatal != wantFatal {
		t.Errorf("fatal = %v, want %v (%q)", r.fatal, wantFatal, r.errs)
	}
	all := strings.Join(r.errs, "\n")
	for _, p := range parts {
		if !strings.Contains(all, p) {
			t.Errorf("failure %q does not contain %q", all, p)
		}
	}
}

// requirePassed fails t if r recorded any failure.
func requirePassed(t *testing.T, r *recorder) {
	t.Helper()
	if len(r.errs) > 0 {
		t.Fatalf("the helper failed: %q", r.errs)
	}
}
