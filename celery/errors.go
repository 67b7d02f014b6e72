package celery

import (
	"errors"
	"fmt"
	"reflect"
	"time"
)

// RetryError asks the worker to run the task again later, as Celery's Task.retry does: the same
// task id is republished with retries+1 and an eta. Create it with [Retry] or [Task.Retry].
type RetryError struct {
	Err        error          // the reason, stored as the RETRY state's exception; may be nil
	Countdown  *time.Duration // delay before the next attempt; nil = the task's default retry delay
	ETA        *time.Time     // absolute time of the next attempt; wins over Countdown
	MaxRetries *int           // overrides the task's max_retries for this decision
}

func (e *RetryError) Error() string {
	if e.Err == nil {
		return "retry requested"
	}
	return "retry requested: " + e.Err.Error()
}

// Unwrap returns the reason.
func (e *RetryError) Unwrap() error { return e.Err }

// RetryOption adjusts a retry request.
type RetryOption func(*RetryError)

// Countdown sets the delay before the next attempt.
func Countdown(d time.Duration) RetryOption { return func(r *RetryError) { r.Countdown = &d } }

// At sets the absolute time of the next attempt.
func At(t time.Time) RetryOption { return func(r *RetryError) { r.ETA = &t } }

// WithMaxRetries overrides the task's max_retries for this retry (-1 = unlimited).
func WithMaxRetries(n int) RetryOption { return func(r *RetryError) { r.MaxRetries = &n } }

// Retry returns the error a task returns to be retried, like raising self.retry(exc=err) in Python.
func Retry(err error, opts ...RetryOption) error {
	r := &RetryError{Err: err}
	for _, o := range opts {
		o(r)
	}
	return r
}

// RejectError asks the worker to reject the message (basic.reject), like Celery's Reject: with Requeue
// the broker delivers it again, otherwise it goes to the dead-letter queue with the reason.
type RejectError struct {
	Err     error
	Requeue bool
}

func (e *RejectError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("rejected (requeue=%v)", e.Requeue)
	}
	return fmt.Sprintf("rejected (requeue=%v): %v", e.Requeue, e.Err)
}

// Unwrap returns the reason.
func (e *RejectError) Unwrap() error { return e.Err }

// Reject returns the error a task returns to have its message rejected.
func Reject(err error, requeue bool) error { return &RejectError{Err: err, Requeue: requeue} }

// ErrIgnore, returned (or wrapped) by a task, makes the worker ack the message and store nothing,
// like raising celery.exceptions.Ignore.
var ErrIgnore = errors.New("celery: task ignored")

// ErrSoftTimeLimit is the cause of a task context cancelled by the soft time limit
// (Celery's SoftTimeLimitExceeded). A task that returns ctx.Err() after it fails with that type.
var ErrSoftTimeLimit = errors.New("SoftTimeLimitExceeded")

// ErrHardTimeLimit is the cause of a task context cancelled by the hard time limit.
var ErrHardTimeLimit = errors.New("TimeLimitExceeded")

// ErrWorkerShutdown is the cause of task contexts cancelled by a cold shutdown.
var ErrWorkerShutdown = errors.New("worker shutting down")

// ArgsError reports arguments that do not fit a task's parameters. Python sees it as a TypeError.
type ArgsError struct {
	Task  string
	Param string // the parameter, "" when the error is about the call as a whole
	Err   error
}

func (e *ArgsError) Error() string {
	if e.Param == "" {
		return fmt.Sprintf("%s(): %v", e.Task, e.Err)
	}
	return fmt.Sprintf("%s(): argument %q: %v", e.Task, e.Param, e.Err)
}

// Unwrap returns the decoding error.
func (e *ArgsError) Unwrap() error { return e.Err }

// ExcType makes ArgsError a Python TypeError.
func (e *ArgsError) ExcType() string { return "TypeError" }

// ExcModule makes ArgsError a Python builtin.
func (e *ArgsError) ExcModule() string { return "builtins" }

// NotRegisteredError is stored for a message naming a task this worker does not know
// (Celery's celery.exceptions.NotRegistered).
type NotRegisteredError struct{ Name string }

func (e *NotRegisteredError) Error() string { return fmt.Sprintf("task %q is not registered", e.Name) }

// PanicError is a recovered panic in a task, with the goroutine's stack.
type PanicError struct {
	Value any
	Stack string
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// ExcType names the Python exception class a Go error becomes.
type ExcTyper interface{ ExcType() string }

// ExcModuler names the Python module of that class. "builtins" makes Python raise a real builtin
// exception; any module Python has not imported makes Celery synthesize a class of that name.
type ExcModuler interface{ ExcModule() string }

// goExcModule is the exc_module of Go errors without an ExcModule method: not a Python module,
// so Celery 5.2 creates an exception class named after the Go type.
const goExcModule = "go"

// ExceptionOf describes err as Celery's exception triple: the Go error's type name (or its ExcType),
// its module, and its message. Plain errors from errors.New and fmt.Errorf become Python's Exception.
func ExceptionOf(err error) (excType, excModule, message string) {
	message = err.Error()
	var t ExcTyper
	if errors.As(err, &t) {
		excType = t.ExcType()
		excModule = goExcModule
		var m ExcModuler
		if errors.As(err, &m) {
			excModule = m.ExcModule()
		}
		return excType, excModule, message
	}
	switch e := err.(type) {
	case *PanicError:
		return "PanicError", goExcModule, message
	case *RetryError:
		if e.Err != nil {
			return ExceptionOf(e.Err)
		}
		return "Retry", "celery.exceptions", message
	}
	// Look through wrappers made with fmt.Errorf("...: %w") to the first named error type.
	for e := err; e != nil; e = errors.Unwrap(e) {
		name := typeName(e)
		if name != "" {
			return name, goExcModule, message
		}
	}
	return "Exception", "builtins", message
}

// typeName is the Go type name of err, or "" for the anonymous helper types of errors and fmt.
func typeName(err error) string {
	t := reflect.TypeOf(err)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.PkgPath() + "." + t.Name() {
	case "errors.errorString", "fmt.wrapError", "fmt.wrapErrors", "errors.joinError", ".":
		return ""
	}
	if t.Name() == "" {
		return ""
	}
	return t.Name()
}

// TerminatedError is the cause of a running task's context cancelled by a revoke with terminate
// (`celery control revoke --terminate`). The task ends as REVOKED with TaskRevokedError('terminated')
// whatever it returns; a task that ignores its context is waited for.
type TerminatedError struct {
	Signal string // the signal asked for, such as SIGTERM (a Go task has no process to signal)
}

func (e *TerminatedError) Error() string { return "task terminated by revoke (" + e.Signal + ")" }

// ExcType makes it Celery's Terminated.
func (e *TerminatedError) ExcType() string { return "Terminated" }

// ExcModule is celery.exceptions.
func (e *TerminatedError) ExcModule() string { return "celery.exceptions" }

// MaxRetriesExceededError is the failure of a task that asked for more retries than allowed.
type MaxRetriesExceededError struct{ Task, ID, Args, Kwargs string }

func (e *MaxRetriesExceededError) Error() string {
	return fmt.Sprintf("Can't retry %s[%s] args:%s kwargs:%s", e.Task, e.ID, e.Args, e.Kwargs)
}

// ExcType makes it Celery's MaxRetriesExceededError.
func (e *MaxRetriesExceededError) ExcType() string { return "MaxRetriesExceededError" }

// ExcModule is celery.exceptions, so Python raises the real class.
func (e *MaxRetriesExceededError) ExcModule() string { return "celery.exceptions" }
