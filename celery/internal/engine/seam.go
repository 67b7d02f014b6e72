// This file holds the seam between the engine and the root package: what the root hands the
// engine (Options, Settings, the registered Tasks, the Errors it reports with) and what a task run
// gives back (Outcome). The root package owns every type a user sees (or re-exports it from a
// public package both import, as the Canvas seam of package canvashook); the engine owns none of
// them, so it never imports the root.

package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/forumads/forumads/celery/backend"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/canvashook"
	"github.com/forumads/forumads/celery/events"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/celery/revoke"
)

// Options are what the root's NewWorker resolved for the engine.
type Options struct {
	Settings Settings
	Tasks    Tasks
	Errors   Errors
	Broker   broker.Broker
	// Accept is accept_content: the content types the engine decodes.
	Accept protocol.Accept
	// Backend stores results; nil means results are not stored.
	Backend backend.ResultBackend
	// Queues are consumed from the start (already resolved from -Q and the configuration).
	Queues   []broker.Queue
	Hostname string // "" = celery@ the host name
	Logger   *slog.Logger
	Now      func() time.Time  // nil = time.Now
	Canvas   canvashook.Canvas // nil publishes no canvas follow-ups
	Events   *events.Dispatcher
	Revokes  revoke.Store
	Metrics  Metrics
	// Counters are where the engine counts messages and outcomes; a nil one is the engine's own.
	Counters Counters
}

// Settings are the worker settings the engine reads, resolved from the root's Config (defaults
// filled in, seconds turned into durations) so that the engine needs no root type.
type Settings struct {
	AcksLate, AcksOnFailure, RejectOnLost, TrackStarted, IgnoreResult bool
	TimeLimit, SoftTimeLimit                                          time.Duration // 0 = none
	DeduplicateSuccess                                                bool          // worker_deduplicate_successful_tasks
	ETAParkAfter                                                      time.Duration // worker_eta_park_after
	DisableRateLimits                                                 bool
	DefaultRateLimit                                                  string
	RevokeExpires                                                     time.Duration // <= 0 = revoke.DefaultTTL
	RevokeMax                                                         int           // <= 0 = revoke.DefaultMaxSize
	Serializer                                                        string        // task_serializer of retries
	ResultExtended                                                    bool
	DeadLetterQueue                                                   string
	SoftShutdownTimeout                                               time.Duration // worker_soft_shutdown_timeout
	SoftShutdownOnIdle                                                bool          // worker_enable_soft_shutdown_on_idle
	Concurrency                                                       int
	PrefetchMultiplier                                                int // 0 = unlimited prefetch
	// DefaultMaxRetries and DefaultRetryDelay apply to tasks that set neither.
	DefaultMaxRetries int
	DefaultRetryDelay time.Duration
}

// prefetchFor is the prefetch count of a concurrency: concurrency × worker_prefetch_multiplier, 0
// (unlimited) when the multiplier is 0 or the product is above 65535, as Celery does.
func (s Settings) prefetchFor(concurrency int) int {
	n := concurrency * s.PrefetchMultiplier
	if n > 65535 {
		return 0
	}
	return n
}

// TaskOptions are a registered task's own settings, field for field the root's TaskOptions, which
// converts to it with a type conversion (it compiles only while the fields stay the same): nil
// means the worker's setting.
type TaskOptions struct {
	AcksLate                 *bool
	AcksOnFailureOrTimeout   *bool
	RejectOnWorkerLost       *bool
	MaxRetries               *int
	DefaultRetryDelay        *time.Duration
	TimeLimit                *time.Duration
	SoftTimeLimit            *time.Duration
	RateLimit                string
	IgnoreResult             *bool
	StoreErrorsEvenIfIgnored bool
	TrackStarted             *bool
	AutoRetryFor             func(error) bool
	RetryBackoff             time.Duration
	RetryBackoffMax          time.Duration
	RetryJitter              *bool
	Queue                    string
	RequestErrback           bool // the root's TaskOptions.RequestErrback (canvas reads it; the engine does not)
}

// Task is a registered task as the engine runs it.
type Task struct {
	Name    string
	Options TaskOptions
	// Run runs the task for one message and says how it ended. It recovers the task's panics.
	Run func(ctx context.Context, call Call) Outcome
}

// Tasks are the registered tasks (the root's Registry, through an adapter).
type Tasks interface {
	Lookup(name string) (*Task, bool)
	Names() []string // sorted
}

// Call is one run of a task: the message, where it came from, and the engine that runs it (for
// Hostname and UpdateState).
type Call struct {
	Msg      *protocol.TaskMessage
	Delivery *broker.Delivery
	Engine   *Engine
}

// Outcome is how a task run ended.
type Outcome struct {
	Result json.RawMessage // the JSON result, on success
	Err    error           // nil on success
	Signal Signal          // what Err asks the worker to do
}

// SignalKind is what a task's error asks for.
type SignalKind int

// The kinds of Signal.
const (
	Fail   SignalKind = iota // a plain error: FAILURE
	Ignore                   // ErrIgnore: ack, store nothing
	Reject                   // Reject(err, requeue)
	Retry                    // Retry(err, ...)
)

// Signal is what a task's error asks for, read by the root from its own error types (ErrIgnore,
// *RejectError, *RetryError, in that order of precedence).
type Signal struct {
	Kind       SignalKind
	Err        error          // Reject and Retry: the reason (may be nil)
	Requeue    bool           // Reject
	Countdown  *time.Duration // Retry
	ETA        *time.Time     // Retry
	MaxRetries *int           // Retry
}

// Errors are the root's errors the engine reports with: what Run returns and the causes it
// cancels task contexts with, and how a task error is described to Python.
type Errors struct {
	Closed        error // Run's result after a stop that was asked for (ErrWorkerClosed)
	ColdClosed    error // after a cold one (ErrWorkerClosed and ErrWorkerShutdown)
	Shutdown      error // the cause of task contexts cancelled by a cold shutdown
	SoftTimeLimit error
	HardTimeLimit error
	Pool          error // wrapped by the refusals of Grow and Shrink (ErrPool)
	// Terminated is the cause of a context cancelled by a revoke with terminate.
	Terminated func(signal string) error
	// MaxRetriesExceeded is the failure of a task that asked for more retries than allowed.
	MaxRetriesExceeded func(task, id, args, kwargs string) error
	// Exception describes err as Celery's exception triple, and the stack of a recovered panic
	// in its chain ("" when none).
	Exception func(err error) (typ, module, message, stack string)
}

// Metrics receives what the engine does (the root's WorkerMetrics). Its methods must be safe for
// concurrent use and must not block.
type Metrics interface {
	TaskReceived(task string)
	TaskStarted(task string, queueWait time.Duration)
	TaskFinished(task, outcome string, runtime time.Duration)
	DeadLettered(reason string)
}

// NotRegisteredError is the engine's refusal of a control change for an unknown task; the root
// turns it into its own NotRegisteredError.
type NotRegisteredError struct{ Name string }

func (e *NotRegisteredError) Error() string { return fmt.Sprintf("task %q is not registered", e.Name) }
