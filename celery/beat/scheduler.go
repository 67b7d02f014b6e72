package beat

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/schedule"
)

// Publisher sends one run of an entry; slot is its scheduled due time.
type Publisher interface {
	Publish(ctx context.Context, e *Entry, slot time.Time) error
}

// missedGrace: a run due less than this before beat (re)started is not "missed", just due.
const missedGrace = time.Second

// retryAfter is how long a run whose send failed waits before it is tried again.
const retryAfter = time.Second

// parallelSends bounds the sends in flight when many entries are due at once.
const parallelSends = 256

// SchedulerOptions configure a Scheduler.
type SchedulerOptions struct {
	// Store is the state the beats of a deployment share (redisbeat.Store, or MemoryStore in one
	// process).
	Store      Store
	Publisher  Publisher
	Logger     *slog.Logger
	MissedRuns MissedPolicy
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Location is where logged next-run times are shown (default UTC).
	Location *time.Location
	// OnPublish, if set, is called after each claimed slot's publish with its result (err nil:
	// sent), from the publishing goroutine: several calls may run at once. For metrics.
	OnPublish func(entry, task string, slot time.Time, err error)
	// OnLoad, if set, is called with the number of entries after each successful Load. For metrics.
	OnLoad func(entries int)
	// Source, if set, is told of every run sent (Source.Sent), e.g. to disable one-off entries.
	Source Source
}

// Scheduler sends due runs. Every slot (entry, due time) is derived from the schedule and the
// state in Redis, never from the process's own clock alone, so every beat process computes the same
// slots; the Redis claim lets exactly one process send each.
type Scheduler struct {
	o       SchedulerOptions
	token   string
	mu      sync.Mutex
	entries []*state
}

type state struct {
	e     *Entry
	sched schedule.Schedule
	next  time.Time // the next slot to send
	wake  time.Time // when to look at the entry again (next, or a retry)
}

// EntryInfo describes an entry and its next run.
type EntryInfo struct {
	Name, Task, Schedule string
	Next                 time.Time
}

// NewScheduler returns a scheduler with no entries; call Load.
func NewScheduler(o SchedulerOptions) *Scheduler {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.MissedRuns == "" {
		o.MissedRuns = MissedOnce
	}
	return &Scheduler{o: o, token: celery.NewID()}
}

// Load replaces the entries, reading each one's anchor and last run from the store. On error the
// previous entries stay.
func (s *Scheduler) Load(ctx context.Context, entries []*Entry) error {
	now := s.o.Now()
	var out []*state
	for _, e := range entries {
		anchor, last, err := s.o.Store.Init(ctx, e, now)
		if err != nil {
			return err
		}
		st := &state{e: e}
		if e.Schedule != nil {
			st.sched = e.Schedule
		} else if e.Crontab != nil {
			st.sched = e.Crontab
		} else {
			st.sched = schedule.Interval{Every: e.Every, Anchor: anchor}
		}
		ref := anchor
		if !last.IsZero() {
			ref = last
		}
		st.next = st.sched.Next(ref)
		if !st.next.IsZero() && st.next.Before(now.Add(-missedGrace)) {
			if s.o.MissedRuns == MissedSkip {
				st.next = st.sched.Next(now.Add(-missedGrace))
			} else {
				st.next = s.latest(st, now)
			}
		}
		st.wake = st.next
		out = append(out, st)
	}
	s.mu.Lock()
	s.entries = out
	s.mu.Unlock()
	if s.o.OnLoad != nil {
		s.o.OnLoad(len(out))
	}
	return nil
}

// latest returns the latest slot at or before now, starting from st.next (which is at or before now).
func (s *Scheduler) latest(st *state, now time.Time) time.Time {
	if iv, ok := st.sched.(interface{ Last(time.Time) time.Time }); ok { // schedule.Interval and its wrappers
		if l := iv.Last(now); l.After(st.next) {
			return l
		}
		return st.next
	}
	t := st.next
	for i := 0; i < 1_000_000; i++ {
		n := st.sched.Next(t)
		if n.IsZero() || n.After(now) {
			break
		}
		t = n
	}
	return t
}

// Entries lists the entries in name order with their next run.
func (s *Scheduler) Entries() []EntryInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	byName := map[string]*state{}
	var es []*Entry
	for _, st := range s.entries {
		byName[st.e.Name] = st
		es = append(es, st.e)
	}
	var out []EntryInfo
	for _, e := range sortedNames(es) {
		out = append(out, EntryInfo{Name: e.Name, Task: e.Task, Schedule: e.ScheduleString(), Next: byName[e.Name].next})
	}
	return out
}

// WriteList prints the entries and their next run times in loc.
func (s *Scheduler) WriteList(w io.Writer, loc *time.Location) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENTRY\tTASK\tSCHEDULE\tNEXT RUN")
	for _, e := range s.Entries() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Name, e.Task, e.Schedule, e.Next.In(loc).Format("2006-01-02 15:04:05 -07:00"))
	}
	return tw.Flush()
}

// LogSchedule logs every entry's next run.
func (s *Scheduler) LogSchedule() {
	loc := s.o.Location
	for _, e := range s.Entries() {
		s.o.Logger.Info(fmt.Sprintf("beat: %s (%s) %s next run at %s", e.Name, e.Task, e.Schedule,
			e.Next.In(loc).Format("2006-01-02 15:04:05 -07:00")))
	}
}

// Run sends due runs until ctx ends (then it returns nil). A value on reload replaces the entries
// (config changes: SIGHUP). Beat wraps it with a warm and cold Shutdown.
func (s *Scheduler) Run(ctx context.Context, reload <-chan []*Entry) error {
	return s.loop(ctx, ctx, reload)
}

// loop is Run: it stops when stop ends, and sends (claims, publishes) with send, so that sends in
// flight can outlive the stop (Beat's warm shutdown).
func (s *Scheduler) loop(stop, send context.Context, reload <-chan []*Entry) error {
	ctx := stop
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := s.o.Now()
		wake, sent := s.step(send, now)
		if ctx.Err() != nil {
			return nil
		}
		if sent {
			continue
		}
		d := time.Hour
		if !wake.IsZero() {
			d = min(wake.Sub(now), d)
		}
		timer.Reset(d)
		select {
		case <-ctx.Done():
			return nil
		case es := <-reload:
			if err := s.Load(ctx, es); err != nil {
				s.o.Logger.Error("beat: reload failed, keeping the previous schedule", "error", err)
			} else {
				s.LogSchedule()
			}
		case <-timer.C:
		}
	}
}

// step sends what is due at now; it returns the next wake time (zero: no entries) and whether
// anything was due.
func (s *Scheduler) step(ctx context.Context, now time.Time) (wake time.Time, sent bool) {
	s.mu.Lock()
	var due []*state
	for _, st := range s.entries {
		if st.wake.IsZero() { // a schedule with no run left (a clocked entry that ran)
			continue
		}
		if !st.wake.After(now) {
			due = append(due, st)
		} else if wake.IsZero() || st.wake.Before(wake) {
			wake = st.wake
		}
	}
	s.mu.Unlock()
	if len(due) == 0 {
		return wake, false
	}
	s.sendAll(ctx, due, now)
	return time.Time{}, true
}

// claimBatch is how many slots are claimed in one Redis round trip.
const claimBatch = 512

// sendAll claims the due entries' slots in batches (one round trip each) and publishes the claimed
// ones concurrently: the publishes of a batch are in flight together and their confirms awaited
// together, so a burst of due entries costs a few round trips, not one per entry.
func (s *Scheduler) sendAll(ctx context.Context, due []*state, now time.Time) {
	sem := make(chan struct{}, parallelSends)
	var wg sync.WaitGroup
	for len(due) > 0 {
		batch := due[:min(claimBatch, len(due))]
		due = due[len(batch):]
		slots := make([]SlotClaim, len(batch))
		for i, st := range batch {
			slots[i] = SlotClaim{Name: st.e.Name, Slot: s.latest(st, now)}
		}
		claims, err := s.o.Store.ClaimMany(ctx, slots, s.token)
		if err != nil {
			s.o.Logger.Error("beat: cannot reach the state store; retrying", "entries", len(batch), "error", err)
			for _, st := range batch {
				s.setWake(st, st.next, now.Add(retryAfter))
			}
			continue
		}
		for i, st := range batch {
			slot, claim := slots[i].Slot, claims[i]
			if claim == "" { // already sent, here or by another beat process
				s.o.Logger.Debug("beat: slot already claimed, not sending it", "entry", st.e.Name,
					"slot", slot.UTC().Format(time.RFC3339Nano))
				next := st.sched.Next(slot)
				s.setWake(st, next, next)
				continue
			}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				s.publish(ctx, st, slot, claim, now)
			}()
		}
	}
	wg.Wait()
}

// publish sends one claimed slot and moves the entry to its next slot; a failed send releases the
// claim so that this or another process sends the slot again.
func (s *Scheduler) publish(ctx context.Context, st *state, slot time.Time, claim string, now time.Time) {
	s.o.Logger.Info(fmt.Sprintf("Scheduler: Sending due task %s (%s)", st.e.Name, st.e.Task))
	err := s.o.Publisher.Publish(ctx, st.e, slot)
	if s.o.OnPublish != nil {
		s.o.OnPublish(st.e.Name, st.e.Task, slot, err)
	}
	if err != nil {
		s.o.Logger.Error(fmt.Sprintf("Message Error: Couldn't apply scheduled task %s: %v", st.e.Name, err))
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if rerr := s.o.Store.Release(rctx, st.e.Name, slot, claim); rerr != nil {
			s.o.Logger.Error("beat: cannot release the claim", "entry", st.e.Name, "error", rerr)
		}
		cancel()
		s.setWake(st, st.next, now.Add(retryAfter))
		return
	}
	if s.o.Source != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if err := s.o.Source.Sent(rctx, st.e, slot); err != nil {
			s.o.Logger.Error("beat: cannot record the run in the schedule source", "entry", st.e.Name, "error", err)
		}
		cancel()
	}
	next := st.sched.Next(slot)
	s.setWake(st, next, next)
}

func (s *Scheduler) setWake(st *state, next, wake time.Time) {
	s.mu.Lock()
	st.next, st.wake = next, wake
	s.mu.Unlock()
}
