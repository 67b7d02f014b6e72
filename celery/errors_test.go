package celery

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/internal/engine"
)

type quotaError struct{ n int }

func (e *quotaError) Error() string { return fmt.Sprintf("quota %d exceeded", e.n) }

type pyValueError struct{}

func (pyValueError) Error() string     { return "bad value" }
func (pyValueError) ExcType() string   { return "ValueError" }
func (pyValueError) ExcModule() string { return "builtins" }

func TestExceptionOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err           error
		typ, mod, msg string
	}{
		{errors.New("boom"), "Exception", "builtins", "boom"},
		{fmt.Errorf("wrapped: %w", errors.New("boom")), "Exception", "builtins", "wrapped: boom"},
		{&quotaError{3}, "quotaError", "go", "quota 3 exceeded"},
		{fmt.Errorf("import: %w", &quotaError{3}), "quotaError", "go", "import: quota 3 exceeded"},
		{pyValueError{}, "ValueError", "builtins", "bad value"},
		{&PanicError{Value: "x"}, "PanicError", "go", "panic: x"},
		{&NotRegisteredError{Name: "a.b"}, "NotRegisteredError", "go", `task "a.b" is not registered`},
		{&MaxRetriesExceededError{Task: "t", ID: "i", Args: "()", Kwargs: "{}"}, "MaxRetriesExceededError", "celery.exceptions", "Can't retry t[i] args:() kwargs:{}"},
	} {
		typ, mod, msg := ExceptionOf(tc.err)
		if typ != tc.typ || mod != tc.mod || msg != tc.msg {
			t.Errorf("ExceptionOf(%v) = %q %q %q, want %q %q %q", tc.err, typ, mod, msg, tc.typ, tc.mod, tc.msg)
		}
	}
}

func TestSignalsMatchWhenWrapped(t *testing.T) {
	t.Parallel()
	r := fmt.Errorf("ctx: %w", Retry(errors.New("later"), Countdown(2*time.Second), WithMaxRetries(5)))
	var re *RetryError
	if !errors.As(r, &re) || *re.Countdown != 2*time.Second || *re.MaxRetries != 5 || re.Err.Error() != "later" {
		t.Fatalf("wrapped retry not recognised: %v", r)
	}
	var rj *RejectError
	if !errors.As(fmt.Errorf("x: %w", Reject(errors.New("bad"), true)), &rj) || !rj.Requeue {
		t.Fatal("wrapped reject not recognised")
	}
	if !errors.Is(fmt.Errorf("x: %w", ErrIgnore), ErrIgnore) {
		t.Fatal("wrapped ignore not recognised")
	}
}

// TestSignalOf: what the engine is told a task's error asks for, wrapped or not, with ErrIgnore
// before a Reject before a Retry.
func TestSignalOf(t *testing.T) {
	t.Parallel()
	two := 2 * time.Second
	for _, tc := range []struct {
		name string
		err  error
		want engine.SignalKind
	}{
		{"nil", nil, engine.Fail},
		{"plain", errors.New("plain"), engine.Fail},
		{"ignore", fmt.Errorf("x: %w", ErrIgnore), engine.Ignore},
		{"reject", fmt.Errorf("x: %w", Reject(errors.New("bad"), true)), engine.Reject},
		{"retry", fmt.Errorf("x: %w", Retry(errors.New("later"), Countdown(two))), engine.Retry},
		{"ignore inside a retry", Retry(ErrIgnore), engine.Ignore},
		{"reject inside a retry", Retry(Reject(nil, false)), engine.Reject},
	} {
		if got := signalOf(tc.err).Kind; got != tc.want {
			t.Errorf("%s: signalOf(%v).Kind = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
	sig := signalOf(Retry(errors.New("later"), Countdown(two), WithMaxRetries(5)))
	if sig.Err == nil || sig.Err.Error() != "later" || *sig.Countdown != two || *sig.MaxRetries != 5 || sig.ETA != nil {
		t.Errorf("retry signal: %+v", sig)
	}
	rj := signalOf(Reject(errors.New("bad"), true))
	if !rj.Requeue || rj.Err == nil || rj.Err.Error() != "bad" {
		t.Errorf("reject signal: %+v", rj)
	}
}

func TestParseRateLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, true}, {"0", 0, true}, {"10/s", 100 * time.Millisecond, true}, {"10/m", 6 * time.Second, true},
		{"2/h", 30 * time.Minute, true}, {"4", 250 * time.Millisecond, true}, {"1.5/s", time.Second * 2 / 3, true},
		{"10/d", 0, false}, {"abc", 0, false}, {"-1/s", 0, false},
	} {
		got, err := ParseRateLimit(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseRateLimit(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
