package memorybackend_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/forumads/forumads/celery/backend"
	"github.com/forumads/forumads/celery/backend/backendtest"
	"github.com/forumads/forumads/celery/backend/memorybackend"
	"github.com/forumads/forumads/celery/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	t.Parallel()
	backendtest.Run(t, func(t *testing.T) backend.Backend { return memorybackend.New(memorybackend.Options{}) })
}

// clock is a settable time source, so expiry is tested without waiting.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// TestResultsExpire: with Expires, a result, a saved group and a chord's size are gone once it has
// passed (the result reads PENDING again, so a SUCCESS can be stored anew), and not before.
func TestResultsExpire(t *testing.T) {
	t.Parallel()
	c := &clock{now: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	b := memorybackend.New(memorybackend.Options{Expires: time.Hour, Now: c.Now})
	ctx := context.Background()
	if err := b.Store(ctx, protocol.ResultMeta{TaskID: "t", Status: protocol.StateSuccess}); err != nil {
		t.Fatal(err)
	}
	if err := b.SaveGroup(ctx, "g", []string{"t"}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetChordSize(ctx, "c", 1); err != nil {
		t.Fatal(err)
	}
	c.Advance(59 * time.Minute)
	if m, err := b.Get(ctx, "t"); err != nil || m.Status != protocol.StateSuccess {
		t.Fatalf("before expiry Get = %+v, %v", m, err)
	}
	c.Advance(2 * time.Minute)
	if m, err := b.Get(ctx, "t"); err != nil || m.Status != protocol.StatePending {
		t.Fatalf("after expiry Get = %+v, %v; want PENDING", m, err)
	}
	if err := b.Store(ctx, protocol.ResultMeta{TaskID: "t", Status: protocol.StateSuccess}); err != nil {
		t.Fatalf("storing over an expired SUCCESS: %v", err)
	}
	if _, err := b.RestoreGroup(ctx, "g"); !errors.Is(err, backend.ErrGroupNotFound) {
		t.Fatalf("expired group: %v; want ErrGroupNotFound", err)
	}
	out, err := b.OnChordPartReturn(ctx, backend.ChordPart{GroupID: "c", TaskID: "p", State: protocol.StateSuccess})
	if err != nil || out.Complete {
		t.Fatalf("a part after the chord size expired = %+v, %v; want not complete", out, err)
	}
}

// TestDateDoneFromTheClock: a ready state without date_done is stamped with the backend's clock.
func TestDateDoneFromTheClock(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	b := memorybackend.New(memorybackend.Options{Now: func() time.Time { return at }})
	ctx := context.Background()
	if err := b.Store(ctx, protocol.ResultMeta{TaskID: "t", Status: protocol.StateFailure}); err != nil {
		t.Fatal(err)
	}
	m, err := b.Get(ctx, "t")
	if err != nil || m.DateDone == nil || !m.DateDone.Equal(at) {
		t.Fatalf("Get = %+v, %v; want date_done %v", m, err, at)
	}
}
