package schedule

import (
	"fmt"
	"strconv"
	"time"
)

// Interval runs every Every, on the slots Anchor + k×Every. Beat stores the anchor (the entry's
// first start) in Redis so every beat process derives the same slots.
type Interval struct {
	Every  time.Duration
	Anchor time.Time
}

// Next returns the first slot strictly after after.
func (i Interval) Next(after time.Time) time.Time {
	if i.Every <= 0 {
		return time.Time{}
	}
	if after.Before(i.Anchor) {
		return i.Anchor
	}
	k := after.Sub(i.Anchor)/i.Every + 1
	return i.Anchor.Add(k * i.Every)
}

// Last returns the latest slot at or before t (the anchor when t is before it).
func (i Interval) Last(t time.Time) time.Time {
	if i.Every <= 0 || !t.After(i.Anchor) {
		return i.Anchor
	}
	return i.Anchor.Add(t.Sub(i.Anchor) / i.Every * i.Every)
}

// String is Celery's repr of a schedule: <freq: 1.00 hour>.
func (i Interval) String() string {
	s := i.Every.Seconds()
	switch {
	case s >= 86400:
		return fmt.Sprintf("<freq: %s days>", strconv.FormatFloat(s/86400, 'f', 2, 64))
	case s >= 3600:
		return fmt.Sprintf("<freq: %s hours>", strconv.FormatFloat(s/3600, 'f', 2, 64))
	case s >= 60:
		return fmt.Sprintf("<freq: %s minutes>", strconv.FormatFloat(s/60, 'f', 2, 64))
	}
	return fmt.Sprintf("<freq: %s seconds>", strconv.FormatFloat(s, 'f', 2, 64))
}
