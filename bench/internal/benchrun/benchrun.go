// Package benchrun is the shared main of the bench programs (drain, chord, scale): it parses the
// flags, runs the bench under SIGINT/SIGTERM and the bench's own -timeout, always cleans up, and
// turns the outcome into an exit status, the same way for each program.
package benchrun

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"
)

// Bench is a prepared bench: Run runs every step, Close removes what it made (queues, keys,
// processes) and is called whatever Run returned.
type Bench struct {
	Run   func(context.Context) error
	Close func() error
}

// Main runs the bench program called name on args and returns its exit status: 2 when parse
// refuses the flags (nothing printed for -h, which parse has answered), 1 when prepare, the run
// or the cleanup failed, 0 otherwise. Errors go to stderr prefixed with name; an error of a run
// cut short by the timeout or a signal also names that cause.
func Main[O any](name string, args []string, stderr io.Writer,
	parse func([]string, io.Writer) (O, error), timeout func(O) time.Duration,
	prepare func(context.Context, O) (Bench, error)) int {
	o, err := parse(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
		}
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	limit := timeout(o)
	ctx, cancel := context.WithTimeoutCause(ctx, limit, fmt.Errorf("the bench ran past -timeout %s", limit))
	defer cancel()

	b, err := prepare(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	err = b.Run(ctx)
	if cerr := b.Close(); cerr != nil {
		fmt.Fprintf(stderr, "%s: cleanup: %v\n", name, cerr)
		err = errors.Join(err, cerr)
	}
	if err != nil {
		if c := context.Cause(ctx); c != nil && ctx.Err() != nil && !errors.Is(err, c) {
			err = fmt.Errorf("%w (%v)", err, c)
		}
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}
