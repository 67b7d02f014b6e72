package beat

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/schedule"
)

type sent struct {
	entry string
	slot  time.Time
}

// recorder is a Publisher that records sends; fail makes the next send fail.
type recorder struct {
	mu   sync.Mutex
	sent []sent
	fail bool
}

func (r *recorder) Publish(_ context.Context, e *Entry, slot time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		r.fail = false
		return errors.New("broker down")
	}
	r.sent = append(r.sent, sent{e.Name, slot})
	return nil
}

func (r *recorder) count() map[sent]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[sent]int{}
	for _, s := range r.sent {
		m[s]++
	}
	return m
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// newStore is the engine's store for these tests: in memory, so that they need no Redis (package
// redisbeat passes the same store contract against Redis, in beatstoretest).
func newStore(t *testing.T) Store {
	t.Helper()
	return NewMemoryStore(2*time.Second, nil)
}

func mustCrontab(t *testing.T, spec schedule.CrontabSpec) *schedule.Crontab {
	t.Helper()
	c, err := schedule.ParseCrontab(spec, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSchedulersShareSlots: three schedulers on one store, stepping at slightly different instants,
// send each slot of each entry exactly once, and the slots are the schedule's.
func TestSchedulersShareSlots(t *testing.T) {
	ctx := context.Background()
	store := newStore(t)
	start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	entries := []*Entry{
		{Name: "every-2s", Task: "t.a", Every: 2 * time.Second},
		{Name: "every-minute", Task: "t.b", Crontab: mustCrontab(t, schedule.CrontabSpec{})},
	}
	rec := &recorder{}
	var clocks []*clock
	var scheds []*Scheduler
	for i := range 3 {
		c := &clock{t: start.Add(time.Duration(i) * 300 * time.Millisecond)}
		s := NewScheduler(SchedulerOptions{Store: store, Publisher: rec, Now: c.Now})
		if err := s.Load(ctx, entries); err != nil {
			t.Fatal(err)
		}
		clocks, scheds = append(clocks, c), append(scheds, s)
	}
	end := start.Add(3 * time.Minute)
	for now := start; now.Before(end); now = now.Add(100 * time.Millisecond) {
		for i, s := range scheds {
			at := now.Add(time.Duration(i) * 37 * time.Millisecond)
			clocks[i].Set(at)
			s.step(ctx, at)
		}
	}
	counts := rec.count()
	var twoSec, minutes int
	for k, n := range counts {
		if n != 1 {
			t.Errorf("%s slot %s sent %d times", k.entry, k.slot, n)
		}
		switch k.entry {
		case "every-2s":
			twoSec++
			if d := k.slot.Sub(start); d%(2*time.Second) != 0 {
				t.Errorf("interval slot %s is not anchored at the first start", k.slot)
			}
		case "every-minute":
			minutes++
			if k.slot.Second() != 0 || k.slot.Nanosecond() != 0 {
				t.Errorf("crontab slot %s", k.slot)
			}
		}
	}
	if twoSec != 89 || minutes != 2 {
		t.Errorf("sent %d interval slots and %d crontab slots, want 89 and 2 (start+2s…start+178s; 10:01, 10:02)", twoSec, minutes)
	}
}

// TestRestartPolicies: after downtime, "once" sends one catch-up run, "skip" none; a restart with
// nothing missed sends nothing again.
func TestRestartPolicies(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		policy   MissedPolicy
		downtime time.Duration
		want     []time.Time // sends right after the restart
	}{
		{MissedOnce, 35 * time.Second, []time.Time{start.Add(40 * time.Second)}},
		{MissedSkip, 35 * time.Second, nil},
		{MissedOnce, 100 * time.Millisecond, nil},
	} {
		t.Run(string(tc.policy)+"-"+tc.downtime.String(), func(t *testing.T) {
			store := newStore(t)
			e := []*Entry{{Name: "e", Task: "t", Every: 10 * time.Second}}
			c := &clock{t: start}
			rec := &recorder{}
			s := NewScheduler(SchedulerOptions{Store: store, Publisher: rec, Now: c.Now, MissedRuns: tc.policy})
			if err := s.Load(ctx, e); err != nil {
				t.Fatal(err)
			}
			stop := start.Add(10*time.Second + 500*time.Millisecond)
			c.Set(stop)
			s.step(ctx, stop)
			if len(rec.sent) != 1 || !rec.sent[0].slot.Equal(start.Add(10*time.Second)) {
				t.Fatalf("before the restart: %v", rec.sent)
			}
			rec.sent = nil
			restart := stop.Add(tc.downtime)
			c.Set(restart)
			s2 := NewScheduler(SchedulerOptions{Store: store, Publisher: rec, Now: c.Now, MissedRuns: tc.policy})
			if err := s2.Load(ctx, e); err != nil {
				t.Fatal(err)
			}
			s2.step(ctx, restart)
			var got []time.Time
			for _, x := range rec.sent {
				got = append(got, x.slot.UTC())
			}
			if len(got) != len(tc.want) || len(got) == 1 && !got[0].Equal(tc.want[0]) {
				t.Fatalf("after the restart sent %v, want %v", got, tc.want)
			}
			next := s2.Entries()[0].Next
			if !next.After(restart) || next.Sub(start)%(10*time.Second) != 0 {
				t.Errorf("next run %v", next)
			}
		})
	}
}

// TestFailedSendIsRetried: a send the broker refuses releases the claim and is sent on retry.
func TestFailedSendIsRetried(t *testing.T) {
	ctx := context.Background()
	store := newStore(t)
	start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	c := &clock{t: start}
	rec := &recorder{fail: true}
	s := NewScheduler(SchedulerOptions{Store: store, Publisher: rec, Now: c.Now})
	if err := s.Load(ctx, []*Entry{{Name: "e", Task: "t", Every: 10 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	at := start.Add(10 * time.Second)
	s.step(ctx, at)
	if len(rec.sent) != 0 {
		t.Fatalf("sent %v", rec.sent)
	}
	s.step(ctx, at.Add(retryAfter))
	if len(rec.sent) != 1 || !rec.sent[0].slot.Equal(at) {
		t.Fatalf("after retry: %v", rec.sent)
	}
}

// TestChangedScheduleResets: a rescheduled entry starts afresh (new anchor) on Load.
func TestChangedScheduleResets(t *testing.T) {
	ctx := context.Background()
	store := newStore(t)
	start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	c := &clock{t: start}
	s := NewScheduler(SchedulerOptions{Store: store, Publisher: &recorder{}, Now: c.Now})
	if err := s.Load(ctx, []*Entry{{Name: "e", Task: "t", Every: 10 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	c.Set(start.Add(3 * time.Second))
	if err := s.Load(ctx, []*Entry{{Name: "e", Task: "t", Every: 60 * time.Second}, {Name: "new", Task: "t", Every: time.Second}}); err != nil {
		t.Fatal(err)
	}
	got := s.Entries()
	if len(got) != 2 || !got[0].Next.Equal(start.Add(63*time.Second)) || !got[1].Next.Equal(start.Add(4*time.Second)) {
		t.Fatalf("entries %+v", got)
	}
}
