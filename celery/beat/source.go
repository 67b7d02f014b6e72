package beat

import (
	"context"
	"time"
)

// Source is a schedule kept outside the configuration file, which beat re-reads while it runs:
// django-celery-beat's tables (package djangoapps/beatdb) are one. Beat reads Entries at start,
// asks Changed every poll interval and reads Entries again when it says so (without a restart, as
// Python's DatabaseScheduler watches django_celery_beat_periodictasks.last_update), and the
// Scheduler reports every run it sent to Sent.
//
// A Source usually comes with its own Store (the slot claims and last runs live beside the
// schedule); implementations are safe for concurrent use.
type Source interface {
	// Entries returns the current schedule. An entry that cannot be used is the source's to log
	// and leave out; an error means nothing could be read (beat keeps its previous schedule).
	Entries(ctx context.Context) ([]*Entry, error)
	// Changed reports whether the schedule changed since the last Entries call.
	Changed(ctx context.Context) (bool, error)
	// Sent records that the slot of e was published (e.g. disables a one-off entry). An error is
	// logged; the run was sent all the same.
	Sent(ctx context.Context, e *Entry, slot time.Time) error
}

// DefaultSourcePoll is how often Beat asks a Source whether it changed when BeatOptions.SourcePoll
// is zero: Celery's beat_max_loop_interval default for django-celery-beat's DatabaseScheduler.
const DefaultSourcePoll = 5 * time.Second

// watchSource asks src every poll whether it changed and hands the new entries to reload, until
// stop ends. A source that cannot be read is logged and asked again at the next poll.
func (b *Beat) watchSource(stop context.Context, src Source, poll time.Duration, reload chan<- []*Entry) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-stop.Done():
			return
		case <-t.C:
		}
		changed, err := src.Changed(stop)
		if err != nil {
			if stop.Err() == nil {
				b.log.Error("beat: cannot tell whether the schedule changed; asking again", "error", err)
			}
			continue
		}
		if !changed {
			continue
		}
		es, err := src.Entries(stop)
		if err != nil {
			if stop.Err() == nil {
				b.log.Error("beat: cannot read the changed schedule, keeping the previous one", "error", err)
			}
			continue
		}
		b.log.Info("DatabaseScheduler: Schedule changed.", "entries", len(es))
		select {
		case reload <- es:
		case <-stop.Done():
			return
		}
	}
}
