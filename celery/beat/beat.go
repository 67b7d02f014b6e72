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
	// Source, if set, is where the schedule comes from instead of Entries and Reload (which must
	// then be empty): Run reads it at start (retrying every LoadRetry) and re-reads it whenever
	// it reports a change, asked every SourcePoll (default DefaultSourcePoll). The Scheduler's
	// options name the same Source so that it reports the runs it sent.
	Source     Source
	SourcePoll time.Duration
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
	if o.Source != nil && (o.Entries != nil || o.Reload != nil) {
		return nil, errors.New("beat: New takes either a Source or Entries and Reload, not both")
	}
	if o.SourcePoll <= 0 {
		o.SourcePoll = DefaultSourcePoll
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
		err := b.load(stop)
		if err == nil || stop.Err() != nil {
			break
		}
		b.log.Error("beat: cannot read the schedule or its state; retrying", "error", err)
		t := time.NewTimer(b.o.LoadRetry)
		select {
		case <-stop.Done():
		case <-t.C:
		}
		t.Stop()
	}
	if stop.Err() == nil {
		b.o.Scheduler.LogSchedule()
		reload := b.o.Reload
		if b.o.Source != nil {
			ch := make(chan []*Entry)
			reload = ch
			watched := make(chan struct{})
			defer func() { <-watched }() // runs after the cancel below: the watcher has stopped
			defer cancel()
			go func() {
				defer close(watched)
				b.watchSource(stop, b.o.Source, b.o.SourcePoll, ch)
			}()
		}
		if err := b.o.Scheduler.loop(stop, send, reload); err != nil {
			return err
		}
	}
	b.log.Info("beat: Shutting down")
	if b.closed.Load() {
		return ErrBeatClosed
	}
	return nil
}

// load reads the schedule (from the Source, if any) and the state of its entries.
func (b *Beat) load(ctx context.Context) error {
	entries := b.o.Entries
	if b.o.Source != nil {
		es, err := b.o.Source.Entries(ctx)
		if err != nil {
			return err
		}
		entries = es
	}
	return b.o.Scheduler.Load(ctx, entries)
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
