// Package diag holds the diagnostic tasks every worker registers, for smoke tests and operators:
//
//	diag.add(x, y)              x + y (integers stay exact at any size)
//	diag.sum(numbers)           the sum of a list (exact for integers): a chord body for smoke tests
//	diag.echo(*args, **kwargs)  {"args": [...], "kwargs": {...}}
//	diag.sleep(seconds)         sleeps (stops early on a time limit or shutdown), returns seconds
//	diag.fail(message)          fails with DiagError(message)
//	diag.flaky(key, failures)   fails `failures` times (counted in Redis under key), retrying after
//	                            a short countdown, then returns the number of attempts
package diag

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery"
)

// Deps are what the diagnostic tasks need.
type Deps struct {
	// Redis counts diag.flaky's attempts; without it diag.flaky fails with a clear error.
	Redis redis.UniversalClient
	// FlakyCountdown is diag.flaky's retry delay (default 1s).
	FlakyCountdown time.Duration
}

// AddArgs are diag.add's parameters.
type AddArgs struct {
	X json.Number `celery:"x"`
	Y json.Number `celery:"y"`
}

// SumArgs are diag.sum's parameters: a chord passes its header's results as the one argument.
type SumArgs struct {
	Numbers []json.Number `celery:"numbers"`
}

// EchoArgs take anything.
type EchoArgs = celery.Raw

// EchoResult is diag.echo's result.
type EchoResult struct {
	Args   []json.RawMessage          `json:"args"`
	Kwargs map[string]json.RawMessage `json:"kwargs"`
}

// SleepArgs are diag.sleep's parameters.
type SleepArgs struct {
	Seconds float64 `celery:"seconds"`
}

// FailArgs are diag.fail's parameters.
type FailArgs struct {
	Message string `celery:"message"`
}

// FlakyArgs are diag.flaky's parameters.
type FlakyArgs struct {
	Key      string `celery:"key"`
	Failures int    `celery:"failures"`
}

// DiagError is the error diag.fail and diag.flaky raise; Python sees an exception class DiagError.
type DiagError struct{ Message string }

func (e *DiagError) Error() string { return e.Message }

// Register adds the diagnostic tasks to reg.
func Register(reg *celery.Registry, deps Deps) {
	if deps.FlakyCountdown <= 0 {
		deps.FlakyCountdown = time.Second
	}
	celery.Register(reg, "diag.add", Add)
	celery.Register(reg, "diag.sum", Sum)
	celery.Register(reg, "diag.echo", Echo)
	celery.Register(reg, "diag.sleep", Sleep)
	celery.Register(reg, "diag.fail", Fail)
	celery.Register(reg, "diag.flaky", deps.flaky, celery.MaxRetries(100))
}

// Add returns x + y: exact for integers of any size, float64 otherwise.
func Add(_ context.Context, t *celery.Task[AddArgs]) (json.RawMessage, error) {
	return sum("diag.add", []json.Number{t.Args.X, t.Args.Y}, func(i int) string { return [...]string{"x", "y"}[i] })
}

// Sum returns the sum of numbers (0 for none): exact for integers of any size, float64 otherwise.
func Sum(_ context.Context, t *celery.Task[SumArgs]) (json.RawMessage, error) {
	return sum("diag.sum", t.Args.Numbers, func(i int) string { return fmt.Sprintf("numbers[%d]", i) })
}

// sum adds nums as big integers when they all are integers, else as float64; param names the
// parameter of nums[i] in an ArgsError.
func sum(task string, nums []json.Number, param func(i int) string) (json.RawMessage, error) {
	total := new(big.Int)
	exact := true
	for _, n := range nums {
		if strings.ContainsAny(string(n), ".eE") {
			exact = false
			break
		}
		v, ok := new(big.Int).SetString(string(n), 10)
		if !ok {
			exact = false
			break
		}
		total.Add(total, v)
	}
	if exact {
		return json.RawMessage(total.String()), nil
	}
	f := 0.0
	for i, n := range nums {
		v, err := n.Float64()
		if err != nil {
			return nil, &celery.ArgsError{Task: task, Param: param(i), Err: err}
		}
		f += v
	}
	return json.Marshal(f)
}

// Echo returns its arguments.
func Echo(_ context.Context, t *celery.Task[EchoArgs]) (EchoResult, error) {
	r := EchoResult{Args: t.Args.Args, Kwargs: t.Args.Kwargs}
	if r.Args == nil {
		r.Args = []json.RawMessage{}
	}
	if r.Kwargs == nil {
		r.Kwargs = map[string]json.RawMessage{}
	}
	return r, nil
}

// Sleep waits for the given seconds, returning early with the context's cause.
func Sleep(ctx context.Context, t *celery.Task[SleepArgs]) (float64, error) {
	if t.Args.Seconds < 0 {
		return 0, &celery.ArgsError{Task: "diag.sleep", Param: "seconds", Err: errors.New("must be >= 0")}
	}
	timer := time.NewTimer(time.Duration(t.Args.Seconds * float64(time.Second)))
	defer timer.Stop()
	select {
	case <-timer.C:
		return t.Args.Seconds, nil
	case <-ctx.Done():
		return 0, context.Cause(ctx)
	}
}

// Fail always fails with DiagError(message).
func Fail(_ context.Context, t *celery.Task[FailArgs]) (any, error) {
	return nil, &DiagError{Message: t.Args.Message}
}

func (d Deps) flaky(ctx context.Context, t *celery.Task[FlakyArgs]) (int64, error) {
	if d.Redis == nil {
		return 0, errors.New("diag.flaky needs Redis (set REDIS_URL or a redis result_backend)")
	}
	n, err := d.Redis.Incr(ctx, t.Args.Key).Result()
	if err != nil {
		return 0, celery.Retry(fmt.Errorf("counting attempts in redis: %w", err), celery.Countdown(d.FlakyCountdown))
	}
	d.Redis.Expire(ctx, t.Args.Key, 24*time.Hour)
	if n <= int64(t.Args.Failures) {
		return 0, celery.Retry(&DiagError{Message: fmt.Sprintf("flaky failure %d of %d", n, t.Args.Failures)},
			celery.Countdown(d.FlakyCountdown))
	}
	return n, nil
}
