package beat

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ErrBeatClosed is returned by Beat.Run after a stop begun by Shutdown, as http.ErrServerClosed
// is by http.Server.Serve: beat stopped because it was asked to.
var ErrBeatClosed = errors.New("beat: closed")

// ErrBeatShutdown is the cause of the sends in flight cancelled by a cold shutdown.
var ErrBeatShutdown = errors.New("beat: cold shutdown")

// BeatOptions configure a Beat.
type BeatOptions struct {
	// Scheduler sends the runs (NewScheduler); required.
	Scheduler *Scheduler
	// Entries is the schedule Run starts with.
	Entries []*Entry
	// Reload, if set, gives new schedules (the caller re-reads its configuration, on SIGHUP): each
	// replaces the entries; one that cannot be loaded keeps the previous.
	Reload <-chan []*Entry
	// LoadRetry is how long Run waits before reading the state again when the store cannot be
	// read at start (default 1 s).
	LoadRetry time.Duration
	Logger    *slog.Logger
}

// Beat is celery beat's lifecycle around a Scheduler: Run reads the state of every entry (retrying
// until the store answers), logs the schedule and sends due runs until it is stopped; Shutdown
// stops it warmly (the sends in flight finish) or, when its ctx ends or on a second call, cold
// (the sends in flight are cancelled and their claims released, so the slots are sent again).
type Beat struct {
	o         BeatOptions
	log       *slog.Logger
	stop      chan struct{} // closed by Shutdown: warm stop
	stopOnce  sync.Once
	cold      context.Context // the sends' context, cancelled by a cold shutdown
	goCold    context.CancelCauseFunc
	runDone   chan struct{}
	ran       atomic.Bool
	closed    atomic.Bool
	shutCalls atomic.Int32
}

// New checks o and returns a Beat ready to Run.
func New(o BeatOptions) (*Beat, error) {
	if o.Scheduler == nil {
		return nil, errors.New("beat: New needs a Scheduler")
	}
	if o.LoadRetry <= 0 {
		o.LoadRetry = time.Second
	}
	b := &Beat{o: o, log: o.Logger, stop: make(chan struct{}), runDone: make(chan struct{})}
	if b.log == nil {
		b.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	b.cold, b.goCold = context.WithCancelCause(context.Background())
	return b, nil
}

// Run loads the schedule, then sends due runs until ctx ends or Shutdown is called. A store that
// cannot be read at start is retried every LoadRetry until it answers or beat is stopped.
//
// Like http.Server.Serve, Run returns ErrBeatClosed after a stop begun by Shutdown (also when
// Shutdown came before Run), and nil after ctx ended. Run may be called once. It closes nothing it
// was given.
func (b *Beat) Run(ctx context.Context) error {
	if b.ran.Swap(true) {
		return errors.New("beat: Run called twice")
	}
	defer close(b.runDone)
	defer b.goCold(nil) // frees the context
	if b.closed.Load() {
		return ErrBeatClosed
	}
	stop, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-b.stop:
			cancel()
		case <-stop.Done():
		}
	}()
	// Sends in flight end with a cold shutdown, not with ctx: a warm stop lets them finish.
	send, cancelSend := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelSend(nil)
	context.AfterFunc(b.cold, func() { cancelSend(context.Cause(b.cold)) })

	b.log.Info("beat: Starting...")
	for {
		err := b.o.Scheduler.Load(stop, b.o.Entries)
		if err == nil || stop.Err() != nil {
			break
		}
		b.log.Error("beat: cannot read the state from Redis; retrying", "error", err)
		t := time.NewTimer(b.o.LoadRetry)
		select {
		case <-stop.Done():
		case <-t.C:
		}
		t.Stop()
	}
	if stop.Err() == nil {
		b.o.Scheduler.LogSchedule()
		if err := b.o.Scheduler.loop(stop, send, b.o.Reload); err != nil {
			return err
		}
	}
	b.log.Info("beat: Shutting down")
	if b.closed.Load() {
		return ErrBeatClosed
	}
	return nil
}

// Shutdown stops beat, as http.Server.Shutdown stops a server. The first call is warm: no new run
// is sent, the sends in flight finish; it returns nil once Run has returned, or ctx.Err() when ctx
// ends first, and then goes cold. A second call is cold at once: the sends in flight are cancelled
// (cause ErrBeatShutdown) and their claims released, so that a beat running later sends those
// slots. Shutdown before Run makes Run return ErrBeatClosed at once.
func (b *Beat) Shutdown(ctx context.Context) error {
	b.closed.Store(true)
	b.stopOnce.Do(func() { close(b.stop) })
	if b.shutCalls.Add(1) > 1 {
		b.goCold(ErrBeatShutdown)
	}
	if !b.ran.Load() {
		return nil
	}
	select {
	case <-b.runDone:
		return nil
	case <-ctx.Done():
		b.goCold(ErrBeatShutdown)
		return ctx.Err()
	}
}
