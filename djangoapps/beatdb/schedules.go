package beatdb

import (
	"fmt"
	"time"

	"github.com/forumads/forumads/celery/schedule"
)

// interval is an IntervalSchedule anchored on the row's last run (or, for a row that never ran,
// its date_changed): slots are anchor + k×every, the same in every beat reading the row.
type interval struct {
	schedule.Interval
	every  int64
	period string
}

// String is the model's own text: "every 10 seconds".
func (i interval) String() string {
	if i.every == 1 {
		return "every " + i.period[:len(i.period)-1]
	}
	return fmt.Sprintf("every %d %s", i.every, i.period)
}

// zonedCrontab is a CrontabSchedule in its time zone, shown as the model shows it.
type zonedCrontab struct{ *schedule.Crontab }

// String is the crontab's repr followed by its time zone, as CrontabSchedule.__str__ ends.
func (c zonedCrontab) String() string { return c.Crontab.String() + " " + c.Location().String() }

// clocked is a ClockedSchedule: one run at at. Python's clocked.is_due ignores the last run and is
// due once the time has come; the row is one_off, so its run disables it.
type clocked struct{ at time.Time }

// Next is at when after is before it; afterwards nothing.
func (c clocked) Next(after time.Time) time.Time {
	if after.Before(c.at) {
		return c.at
	}
	return time.Time{}
}

// String is the model's repr: <clocked: 2026-12-07 01:00:00+00:00>.
func (c clocked) String() string {
	return "<clocked: " + c.at.UTC().Format("2006-01-02 15:04:05.999999-07:00") + ">"
}

// notBefore holds a schedule's runs back until start (PeriodicTask.start_time): the first slot is
// the inner schedule's first at or after start.
type notBefore struct {
	inner schedule.Schedule
	start time.Time
}

// Next is the inner schedule's next slot after after, and not before start.
func (n notBefore) Next(after time.Time) time.Time {
	if floor := n.start.Add(-time.Nanosecond); after.Before(floor) {
		after = floor
	}
	return n.inner.Next(after)
}

// String adds the start time to the inner schedule's text.
func (n notBefore) String() string {
	return n.inner.String() + " starting " + n.start.UTC().Format(time.RFC3339)
}
