package beat

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// gate is a Publisher whose sends wait for release (then succeed) or for their context (then fail
// with its cause, recorded in causes).
type gate struct {
	started chan time.Time
	release chan struct{}
	causes  chan error
	mu      sync.Mutex
	seq     []string
	sent    int
}

func newGate() *gate {
	return &gate{started: make(chan time.Time, 8), release: make(chan struct{}), causes: make(chan error, 8)}
}

func (g *gate) Publish(ctx context.Context, _ *Entry, slot time.Time) error {
	g.started <- slot
	select {
	case <-g.release:
		g.add("publish returned")
		g.mu.Lock()
		g.sent++
		g.mu.Unlock()
		return nil
	case <-ctx.Done():
		g.causes <- context.Cause(ctx)
		return context.Cause(ctx)
	}
}

func (g *gate) add(s string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seq = append(g.seq, s)
}

func (g *gate) order() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return strings.Join(g.seq, " ")
}

// recv waits for a value on ch (a wait, not an assertion about speed).
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatal("gave up waiting after 30s")
		var zero T
		return zero
	}
}

var lifeStart = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// newBeat returns a Beat on its own store whose one entry (every 10 s) has a slot due now.
func newBeat(t *testing.T, pub Publisher) (*Beat, Store) {
	t.Helper()
	store := newStore(t)
	c := &clock{t: lifeStart}
	s := NewScheduler(SchedulerOptions{Store: store, Publisher: pub, Now: c.Now})
	entries := []*Entry{{Name: "e", Task: "t", Every: 10 * time.Second}}
	if err := s.Load(context.Background(), entries); err != nil { // anchors the entry at lifeStart
		t.Fatal(err)
	}
	c.Set(lifeStart.Add(10*time.Second + 500*time.Millisecond))
	b, err := New(BeatOptions{Scheduler: s, Entries: entries})
	if err != nil {
		t.Fatal(err)
	}
	return b, store
}

func run(t *testing.T, b *Beat, ctx context.Context) <-chan error {
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		b.goCold(ErrBeatShutdown) // cold at once
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("beat did not stop at cleanup: %v", err)
		}
	})
	return done
}

// TestBeatShutdownWarmLetsSendInFlightFinish: the first Shutdown waits for the send in flight,
// which succeeds; Run then returns ErrBeatClosed.
func TestBeatShutdownWarmLetsSendInFlightFinish(t *testing.T) {
	g := newGate()
	b, _ := newBeat(t, g)
	done := run(t, b, context.Background())
	if slot := recv(t, g.started); !slot.Equal(lifeStart.Add(10 * time.Second)) {
		t.Fatalf("sending slot %v", slot)
	}
	shut := make(chan error, 1)
	go func() {
		err := b.Shutdown(context.Background())
		g.add("shutdown returned")
		shut <- err
	}()
	recv(t, b.stop)
	g.add("released")
	close(g.release)
	if err := recv(t, shut); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if err := recv(t, done); err != ErrBeatClosed {
		t.Errorf("Run = %v, want ErrBeatClosed", err)
	}
	if got, want := g.order(), "released publish returned shutdown returned"; got != want {
		t.Errorf("order %q, want %q", got, want)
	}
}

// TestBeatShutdownExpiredCtxGoesCold: a Shutdown whose ctx ended cancels the send in flight (cause
// ErrBeatShutdown) and returns ctx.Err(); the slot's claim is released, so another beat sends it.
func TestBeatShutdownExpiredCtxGoesCold(t *testing.T) {
	g := newGate()
	b, store := newBeat(t, g)
	done := run(t, b, context.Background())
	slot := recv(t, g.started)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v, want context.Canceled", err)
	}
	if cause := recv(t, g.causes); !errors.Is(cause, ErrBeatShutdown) {
		t.Errorf("the send's context cause = %v, want ErrBeatShutdown", cause)
	}
	if err := recv(t, done); err != ErrBeatClosed {
		t.Errorf("Run = %v, want ErrBeatClosed", err)
	}
	// Another beat on the same store takes the released slot.
	rec := &recorder{}
	now := slot.Add(500 * time.Millisecond)
	s2 := NewScheduler(SchedulerOptions{Store: store, Publisher: rec, Now: func() time.Time { return now }})
	if err := s2.Load(context.Background(), []*Entry{{Name: "e", Task: "t", Every: 10 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	s2.step(context.Background(), now)
	if len(rec.sent) != 1 || !rec.sent[0].slot.Equal(slot) {
		t.Errorf("the other beat sent %v, want the released slot %v", rec.sent, slot)
	}
}

// TestBeatSecondShutdownIsCold: while a warm Shutdown waits for a send that does not finish, a
// second Shutdown cancels it; both return nil once Run returned.
func TestBeatSecondShutdownIsCold(t *testing.T) {
	g := newGate()
	b, _ := newBeat(t, g)
	done := run(t, b, context.Background())
	recv(t, g.started)
	first := make(chan error, 1)
	go func() { first <- b.Shutdown(context.Background()) }()
	recv(t, b.stop)
	select {
	case cause := <-g.causes:
		t.Fatalf("the warm shutdown cancelled the send: %v", cause)
	default:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Shutdown(sctx); err != nil {
		t.Fatalf("second Shutdown = %v", err)
	}
	if cause := recv(t, g.causes); !errors.Is(cause, ErrBeatShutdown) {
		t.Errorf("cause = %v, want ErrBeatShutdown", cause)
	}
	if err := recv(t, first); err != nil {
		t.Errorf("first Shutdown = %v", err)
	}
	if err := recv(t, done); err != ErrBeatClosed {
		t.Errorf("Run = %v, want ErrBeatClosed", err)
	}
}

// TestBeatRunResults: Run returns nil when its ctx ends, ErrBeatClosed at once (sending nothing)
// after an earlier Shutdown, and refuses a second call.
func TestBeatRunResults(t *testing.T) {
	t.Run("ctx ends", func(t *testing.T) {
		rec := &recorder{}
		b, _ := newBeat(t, rec)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := b.Run(ctx); err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
		if err := b.Run(context.Background()); err == nil || errors.Is(err, ErrBeatClosed) {
			t.Errorf("second Run = %v, want a refusal", err)
		}
	})
	t.Run("Shutdown first", func(t *testing.T) {
		rec := &recorder{}
		b, _ := newBeat(t, rec)
		if err := b.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := b.Run(context.Background()); err != ErrBeatClosed {
			t.Errorf("Run = %v, want ErrBeatClosed", err)
		}
		if n := len(rec.count()); n != 0 {
			t.Errorf("sent %d runs after Shutdown", n)
		}
	})
	if _, err := New(BeatOptions{}); err == nil {
		t.Error("New without a Scheduler: no error")
	}
}
