package celery

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/protocol"
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
	if !errors.Is(fmt.Errorf("x: %w", ErrIgnore), ErrIgnore) || !isSignal(fmt.Errorf("x: %w", ErrIgnore)) {
		t.Fatal("wrapped ignore not recognised")
	}
	if isSignal(errors.New("plain")) {
		t.Fatal("plain error taken for a signal")
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

func TestExcReprIsPythonRepr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		info protocol.ExceptionInfo
		want string
	}{
		{protocol.ExceptionInfo{Type: "ValueError", Message: []any{"boom"}}, "ValueError('boom')"},
		{protocol.ExceptionInfo{Type: "DiagError", Message: []any{"it's"}}, `DiagError("it's")`},
		{protocol.ExceptionInfo{Type: "TimeLimitExceeded", Message: []any{30.5}}, "TimeLimitExceeded(30.5)"},
		{protocol.ExceptionInfo{Type: "Retry"}, "Retry()"},
	} {
		if got := excRepr(tc.info); got != tc.want {
			t.Errorf("excRepr(%+v) = %s, want %s", tc.info, got, tc.want)
		}
	}
}
