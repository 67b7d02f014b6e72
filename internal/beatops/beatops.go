// Package beatops holds what the beat program adds around celery/beat: task-sent events for
// the tasks beat publishes (task_send_sent_event, as Celery's beat sends them) and the start
// banner. It is outside the celery library because the programs' wiring lives beside it; the beat
// program's main only parses flags, wires and turns signals into beat.Beat.Shutdown.
package beatops

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/beat"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/events"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/wiring"
)

// Banner writes beat's start banner to out, as `celery beat` prints its own: the local time now,
// the broker of cfg and the state store of st (passwords redacted), the timezone loc, the missed
// runs policy and the lock TTL. With another scheduler than Celery's default (st.Scheduler), it
// names the scheduler and shows st.StateURL as where that scheduler keeps the schedule and its
// state (django-celery-beat's database), without the Redis prefix and lock TTL.
func Banner(out io.Writer, now time.Time, cfg celery.Config, st beat.Settings, loc *time.Location) error {
	if !beat.IsDefaultScheduler(st.Scheduler) {
		_, err := fmt.Fprintf(out, "celery beat (forumads Go beat, Celery 5.2 protocol) is starting.\n"+
			"__    -    ... __   -        _\nLocalTime -> %s\nConfiguration ->\n    . broker -> %s\n"+
			"    . scheduler -> %s\n    . db -> %s\n    . timezone -> %s\n    . missed runs -> %s\n",
			now.Format("2006-01-02 15:04:05"), wiring.Redacted(cfg.BrokerURL), st.Scheduler,
			wiring.Redacted(st.StateURL), loc, st.MissedRuns)
		return err
	}
	_, err := fmt.Fprintf(out, "celery beat (forumads Go beat, Celery 5.2 protocol) is starting.\n"+
		"__    -    ... __   -        _\nLocalTime -> %s\nConfiguration ->\n    . broker -> %s\n"+
		"    . state -> %s (prefix %s)\n    . timezone -> %s\n    . missed runs -> %s\n    . lock ttl -> %s\n",
		now.Format("2006-01-02 15:04:05"), wiring.Redacted(cfg.BrokerURL),
		wiring.Redacted(st.StateURL), st.KeyPrefix, loc, st.MissedRuns, st.LockTTL)
	return err
}

// SentEvents returns br, or with task_send_sent_event br wrapped so that every task beat
// publishes sends a task-sent event (hostname gen<pid>@<host>, as Celery's beat sends it) to
// event_exchange. closeSent flushes the events (for at most 5 s); call it before br closes.
func SentEvents(cfg celery.Config, br broker.Broker, log *slog.Logger) (b broker.Broker, closeSent func(), err error) {
	if !cfg.TaskSendSentEvent {
		return br, func() {}, nil
	}
	host, _ := os.Hostname()
	d, err := events.NewDispatcher(br, events.Options{Hostname: fmt.Sprintf("gen%d@%s", os.Getpid(), host),
		Exchange: cfg.EventExchange, Enabled: true, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	closeSent = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			log.Warn("beat: task-sent events not sent at shutdown", "error", err)
		}
	}
	return sentEvents{Broker: br, d: d, log: log}, closeSent, nil
}

// sentEvents sends a task-sent event for every task message published through it, built from
// the message as published.
type sentEvents struct {
	broker.Broker
	d   *events.Dispatcher
	log *slog.Logger
}

// sentAccept decodes what beat publishes, whatever task_serializer it uses.
var sentAccept, _ = protocol.NewAccept([]string{"json", "msgpack", "yaml"})

// Publish publishes p, then sends task-sent for it. A message that cannot be decoded is logged
// and sends no event; the publish itself is not affected.
func (s sentEvents) Publish(ctx context.Context, p broker.Publishing) error {
	if err := s.Broker.Publish(ctx, p); err != nil {
		return err
	}
	m, err := protocol.Decode(p.Envelope, sentAccept)
	if err != nil {
		s.log.Warn("beat: no task-sent event for a message that cannot be decoded", "error", err)
		return nil
	}
	ti := events.TaskInfo{ID: m.ID, Name: m.Task, ArgsRepr: m.ArgsRepr, KwargsRepr: m.KwargsRepr,
		RootID: m.RootID, ParentID: m.ParentID, Retries: m.Retries}
	if m.Shadow != "" {
		ti.Name = m.Shadow
	}
	if m.ETA != nil {
		ti.ETA = *m.ETA
	}
	if m.Expires != nil {
		ti.Expires = *m.Expires
	}
	queue := p.RoutingKey
	if p.Declare != nil {
		queue = p.Declare.Name
	}
	s.d.Send(events.NewTaskSent(ti, queue, p.Exchange, p.RoutingKey))
	return nil
}
