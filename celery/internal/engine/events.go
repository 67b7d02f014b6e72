package engine

import (
	"time"

	"github.com/forumads/forumads/celery/events"
	"github.com/forumads/forumads/celery/protocol"
)

// sendTaskEvent sends the event build makes, if task events are on: it is not even built otherwise.
func (w *Engine) sendTaskEvent(build func() events.Event) {
	if w.events == nil || !w.events.TaskEventsEnabled() {
		return
	}
	w.events.Send(build())
}

// TaskInfo is what task-received (and task-sent) report about a message.
func TaskInfo(m *protocol.TaskMessage) events.TaskInfo {
	ti := events.TaskInfo{ID: m.ID, Name: m.Task, ArgsRepr: m.ArgsRepr, KwargsRepr: m.KwargsRepr,
		RootID: m.RootID, ParentID: m.ParentID, Retries: m.Retries}
	if m.Shadow != "" {
		ti.Name = m.Shadow
	}
	if ti.ArgsRepr == "" {
		ti.ArgsRepr = protocol.ReprArgs(m.Args)
	}
	if ti.KwargsRepr == "" {
		ti.KwargsRepr = protocol.ReprKwargs(m.KwargsOrder, m.Kwargs)
	}
	if m.ETA != nil {
		ti.ETA = *m.ETA
	}
	if m.Expires != nil {
		ti.Expires = *m.Expires
	}
	return ti
}

// finished counts a job the worker is done with and tells the metrics.
func (w *Engine) finished(j *job, outcome string, runtime time.Duration) {
	w.done.Add(1)
	if w.metrics != nil {
		w.metrics.TaskFinished(j.msg.Task, outcome, runtime)
	}
}
