package beat

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// listSource is a Source holding a list of entries in memory; set replaces them and marks a
// change, broken makes Entries fail.
type listSource struct {
	mu      sync.Mutex
	entries []*Entry
	version int
	read    int // the version of the last Entries
	broken  bool
	sent    []sent
}

func (s *listSource) set(es []*Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries = es
	s.version++
}

func (s *listSource) Entries(context.Context) ([]*Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken {
		return nil, errors.New("database down")
	}
	s.read = s.version
	return append([]*Entry(nil), s.entries...), nil
}

func (s *listSource) Changed(context.Context) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.read != s.version, nil
}

func (s *listSource) Sent(_ context.Context, e *Entry, slot time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, sent{e.Name, slot})
	return nil
}

func (s *listSource) sentCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sent)
}

// once is a schedule with one slot at at (a clocked schedule).
type once struct{ at time.Time }

func (o once) Next(after time.Time) time.Time {
	if after.Before(o.at) {
		return o.at
	}
	return time.Time{}
}

func (o once) String() string { return "<once>" }

// TestBeatReadsSourceAndFollowsItsChanges: Run reads the Source's entries, re-reads them when the
// source reports a change (the new entry runs, the removed one stops), reports every send to
// Sent, and a schedule with no slot left (Entry.Schedule) is sent once and then never looked at.
func TestBeatReadsSourceAndFollowsItsChanges(t *testing.T) {
	t.Parallel()
	src := &listSource{}
	src.set([]*Entry{{Name: "a", Task: "t.a", Every: 20 * time.Millisecond},
		{Name: "once", Task: "t.once", Schedule: once{at: time.Now().Add(100 * time.Millisecond)}}})
	rec := &recorder{}
	s := NewScheduler(SchedulerOptions{Store: NewMemoryStore(time.Second, nil), Publisher: rec, Source: src})
	b, err := New(BeatOptions{Scheduler: s, Source: src, SourcePoll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := run(t, b, context.Background())
	named := func(name string) int {
		n := 0
		for k, c := range rec.count() {
			if k.entry == name {
				n += c
			}
		}
		return n
	}
	waitFor(t, func() bool { return named("a") >= 3 && named("once") == 1 })
	src.set([]*Entry{{Name: "b", Task: "t.b", Every: 20 * time.Millisecond}})
	waitFor(t, func() bool { return named("b") >= 2 })
	aStopped := named("a")
	time.Sleep(100 * time.Millisecond)
	if n := named("a"); n != aStopped {
		t.Errorf("the removed entry was sent %d more times", n-aStopped)
	}
	if n := named("once"); n != 1 {
		t.Errorf("the one-slot schedule was sent %d times", n)
	}
	if got, want := src.sentCount(), len(rec.count()); got < want {
		t.Errorf("Sent was told of %d runs, %d were sent", got, want)
	}
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, done); !errors.Is(err, ErrBeatClosed) {
		t.Fatalf("Run: %v", err)
	}
}

// TestBeatSourceUnreadableAtStartIsRetried: Run keeps asking a Source that fails until it answers.
func TestBeatSourceUnreadableAtStartIsRetried(t *testing.T) {
	t.Parallel()
	src := &listSource{broken: true}
	src.set([]*Entry{{Name: "a", Task: "t.a", Every: 20 * time.Millisecond}})
	rec := &recorder{}
	s := NewScheduler(SchedulerOptions{Store: NewMemoryStore(time.Second, nil), Publisher: rec, Source: src})
	b, err := New(BeatOptions{Scheduler: s, Source: src, LoadRetry: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, b, context.Background())
	time.Sleep(50 * time.Millisecond)
	if n := len(rec.count()); n != 0 {
		t.Fatalf("%d sends before the source could be read", n)
	}
	src.mu.Lock()
	src.broken = false
	src.mu.Unlock()
	waitFor(t, func() bool { return len(rec.count()) >= 1 })
}

func TestNewRefusesSourceWithEntries(t *testing.T) {
	t.Parallel()
	s := NewScheduler(SchedulerOptions{Store: NewMemoryStore(time.Second, nil), Publisher: &recorder{}})
	if _, err := New(BeatOptions{Scheduler: s, Source: &listSource{}, Entries: []*Entry{{Name: "a"}}}); err == nil {
		t.Fatal("New took both a Source and Entries")
	}
}

// waitFor polls cond for up to 30 s (a wait, not an assertion about speed).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("gave up waiting after 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
