// Package schedule computes when Celery periodic tasks are due: fixed intervals and crontab
// schedules with Celery's field syntax and semantics (celery.schedules.crontab), in a time zone.
//
// A Schedule answers one question, Next(after): the first run instant strictly after a given
// instant. Beat derives every run ("slot") from it, so two processes agree on slot times.
//
// # Crontab syntax
//
// Five fields, each a comma-separated list of parts; a part is `*`, `N`, `A-B` (wrapping past the
// maximum: day_of_week `fri-mon` = 5,6,0,1; hour `22-2` = 22,23,0,1,2), `*/S` (steps over the full
// range: minute `*/15` = 0,15,30,45) or `A-B/S`. day_of_week is 0-6 with 0 = Sunday and also takes
// names (the first three letters count, any case: `mon`, `Monday`). `7`, `N/S`, negative numbers and
// `L`, `W`, `#`, `?` are rejected, as in Celery. A date must match day_of_week AND day_of_month AND
// month_of_year (not Unix cron's OR).
//
// Two deliberate differences from Celery's parser, which matches only a prefix of a part: trailing
// text after a valid part (`1-2-3`, `1-5/2/3`) is an error here instead of being ignored, and day
// names are accepted only in day_of_week (Celery takes `sun` as 0 in any field).
//
// # Daylight saving time
//
// Crontab fields are local wall-clock times in the schedule's location. Where the wall clock jumps:
//
//   - An entry whose hour field is `*` (every hour) runs by real elapsed time: at every instant whose
//     local minute matches, so an hourly run stays one real hour from the previous one across both
//     transitions (the repeated hour in autumn runs twice, an hour apart; the missing spring hour has
//     no wall-clock times to run at).
//   - Any other entry is a fixed-time entry: a wall time repeated in autumn runs once, at its first
//     occurrence; a wall time skipped in spring (02:30 in Europe/Berlin) runs once, at the first instant
//     after the jump (03:00 CEST). So a daily 02:30 entry runs exactly once every day.
package schedule

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// Schedule is when a periodic task runs.
type Schedule interface {
	// Next returns the first run instant strictly after after.
	Next(after time.Time) time.Time
	// String describes the schedule as Celery's repr does.
	String() string
}

// ErrInvalid is wrapped by every parse error.
var ErrInvalid = errors.New("invalid schedule")

// FieldError is a crontab field that cannot be parsed.
type FieldError struct {
	Field string // minute, hour, day_of_week, day_of_month, month_of_year
	Value string
	Err   error
}

// Error names the field, its value and the cause.
func (e *FieldError) Error() string {
	return fmt.Sprintf("crontab %s %q: %v", e.Field, e.Value, e.Err)
}

// Unwrap returns ErrInvalid and the cause.
func (e *FieldError) Unwrap() []error { return []error{ErrInvalid, e.Err} }

// CrontabSpec holds the five textual fields; empty means "*".
type CrontabSpec struct {
	Minute, Hour, DayOfWeek, DayOfMonth, MonthOfYear string
}

// Crontab is a parsed crontab schedule. Its zero value is not usable; use ParseCrontab.
type Crontab struct {
	spec                   CrontabSpec
	minute                 uint64 // bit i = minute i
	hour                   uint32
	dow                    uint8  // bit 0 = Sunday
	dom                    uint32 // bit d = day d (1-31)
	month                  uint16 // bit m = month m (1-12)
	loc                    *time.Location
	everyHour, allDays     bool
	firstMinute, firstHour int
}

type field struct {
	name     string
	min, max int // inclusive
	names    bool
}

var (
	fMinute = field{"minute", 0, 59, false}
	fHour   = field{"hour", 0, 23, false}
	fDow    = field{"day_of_week", 0, 6, true}
	fDom    = field{"day_of_month", 1, 31, false}
	fMonth  = field{"month_of_year", 1, 12, false}
)

var weekdays = map[string]int{"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}

// ParseCrontab parses the fields in Celery's syntax; loc is the wall clock they refer to (nil = UTC).
func ParseCrontab(s CrontabSpec, loc *time.Location) (*Crontab, error) {
	if loc == nil {
		loc = time.UTC
	}
	c := &Crontab{spec: s, loc: loc}
	for _, f := range []struct {
		f   field
		v   string
		set func(uint64)
	}{
		{fMinute, s.Minute, func(b uint64) { c.minute = b }},
		{fHour, s.Hour, func(b uint64) { c.hour = uint32(b) }},
		{fDow, s.DayOfWeek, func(b uint64) { c.dow = uint8(b) }},
		{fDom, s.DayOfMonth, func(b uint64) { c.dom = uint32(b) }},
		{fMonth, s.MonthOfYear, func(b uint64) { c.month = uint16(b) }},
	} {
		b, err := f.f.parse(f.v)
		if err != nil {
			return nil, &FieldError{Field: f.f.name, Value: f.v, Err: err}
		}
		f.set(b)
	}
	c.everyHour = c.hour == 1<<24-1
	c.allDays = c.dow == 1<<7-1 && c.dom == (1<<32-1)&^1 && c.month == (1<<13-1)&^1
	c.firstMinute = bits.TrailingZeros64(c.minute)
	c.firstHour = bits.TrailingZeros32(c.hour)
	if !c.allDays && !c.matchesSomeDay() {
		return nil, &FieldError{Field: "day_of_month", Value: s.DayOfMonth,
			Err: errors.New("no date matches day_of_week, day_of_month and month_of_year together")}
	}
	return c, nil
}

// matchesSomeDay reports whether any date matches: 2000-2027 holds every (month, day, weekday)
// combination the Gregorian calendar has.
func (c *Crontab) matchesSomeDay() bool {
	for d := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() < 2028; d = d.AddDate(0, 0, 1) {
		if c.dayMatches(d.Year(), d.Month(), d.Day()) {
			return true
		}
	}
	return false
}

func (f field) parse(spec string) (uint64, error) {
	if spec == "" {
		spec = "*"
	}
	var acc uint64
	for _, part := range strings.Split(spec, ",") {
		if part == "" {
			return 0, errors.New("empty part")
		}
		vals, err := f.part(part)
		if err != nil {
			return 0, err
		}
		for _, v := range vals {
			acc |= 1 << uint(v)
		}
	}
	return acc, nil
}

func (f field) part(p string) ([]int, error) {
	rng, step, hasStep := strings.Cut(p, "/")
	var vals []int
	if rng == "*" {
		for i := f.min; i <= f.max; i++ {
			vals = append(vals, i)
		}
	} else {
		a, b, isRange := strings.Cut(rng, "-")
		if !isRange {
			if hasStep {
				return nil, fmt.Errorf("%q: a step needs * or a range (N/S is not supported)", p)
			}
			if strings.HasPrefix(a, "-") || a == "" && strings.HasPrefix(rng, "-") {
				return nil, errors.New("negative numbers not supported")
			}
		}
		if a == "" {
			return nil, errors.New("negative numbers not supported")
		}
		from, err := f.number(a)
		if err != nil {
			return nil, err
		}
		to := from
		if isRange {
			if to, err = f.number(b); err != nil {
				return nil, err
			}
		}
		if to < from { // wraps around the maximum, as Celery does
			for i := from; i <= f.max; i++ {
				vals = append(vals, i)
			}
			for i := f.min; i <= to; i++ {
				vals = append(vals, i)
			}
		} else {
			for i := from; i <= to; i++ {
				vals = append(vals, i)
			}
		}
	}
	if !hasStep {
		return vals, nil
	}
	if step == "" {
		return nil, errors.New("empty filter")
	}
	s, err := strconv.Atoi(step)
	if err != nil || !isDigits(step) {
		return nil, fmt.Errorf("invalid step %q", step)
	}
	if s <= 0 {
		return nil, errors.New("step must be positive")
	}
	var out []int
	for i := 0; i < len(vals); i += s {
		out = append(out, vals[i])
	}
	return out, nil
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

func (f field) number(s string) (int, error) {
	var i int
	switch {
	case isDigits(s):
		n, err := strconv.Atoi(s)
		if err != nil || len(s) > 4 {
			return 0, fmt.Errorf("invalid number %q", s)
		}
		i = n
	case f.names && len(s) >= 3 && isLetters(s):
		n, ok := weekdays[strings.ToLower(s[:3])]
		if !ok {
			return 0, fmt.Errorf("invalid weekday literal %q", s)
		}
		i = n
	default:
		return 0, fmt.Errorf("invalid value %q", s)
	}
	if i > f.max {
		return 0, fmt.Errorf("invalid end range: %d > %d", i, f.max)
	}
	if i < f.min {
		return 0, fmt.Errorf("invalid beginning range: %d < %d", i, f.min)
	}
	return i, nil
}

func isLetters(s string) bool {
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') {
			return false
		}
	}
	return true
}

// Spec returns the fields as given.
func (c *Crontab) Spec() CrontabSpec { return c.spec }

// Location is the wall clock the fields refer to.
func (c *Crontab) Location() *time.Location { return c.loc }

// String is Celery's repr of a crontab: <crontab: m h dow dom moy (m/h/dM/MY/d)>.
func (c *Crontab) String() string {
	or := func(s string) string {
		if s == "" {
			return "*"
		}
		return s
	}
	return fmt.Sprintf("<crontab: %s %s %s %s %s (m/h/dM/MY/d)>", or(c.spec.Minute), or(c.spec.Hour),
		or(c.spec.DayOfWeek), or(c.spec.DayOfMonth), or(c.spec.MonthOfYear))
}

func (c *Crontab) dayMatches(y int, m time.Month, d int) bool {
	if c.allDays {
		return true
	}
	if c.month&(1<<uint(m)) == 0 || c.dom&(1<<uint(d)) == 0 {
		return false
	}
	wd := time.Date(y, m, d, 12, 0, 0, 0, time.UTC).Weekday()
	return c.dow&(1<<uint(wd)) != 0
}

// searchYears bounds the search of Next; ParseCrontab guarantees a match within 28 years.
const searchYears = 30

// Next returns the first run instant strictly after after (see the package comment for DST).
func (c *Crontab) Next(after time.Time) time.Time {
	local := after.In(c.loc)
	// Start a day early: a repeated autumn hour can put an earlier wall day after `after`.
	day := time.Date(local.Year(), local.Month(), local.Day()-1, 12, 0, 0, 0, time.UTC)
	end := day.AddDate(searchYears, 0, 0)
	// Wall hours more than 3 hours before after's cannot follow it (no DST shift is that large),
	// and once a run is found, wall hours 3 hours past it cannot precede it.
	skipBefore := local.Hour() + 21
	for i := 0; day.Before(end); i, day = i+1, day.AddDate(0, 0, 1) {
		if i == 1 {
			skipBefore = local.Hour() - 3
		} else if i > 1 {
			skipBefore = -1
		}
		y, m, d := day.Date()
		if !c.dayMatches(y, m, d) {
			continue
		}
		if t, ok := c.simpleDay(y, m, d, after); ok {
			if !t.IsZero() {
				return t
			}
			continue
		}
		var best time.Time
		bestHour := -1
		for h := max(skipBefore, 0); h < 24; h++ {
			if c.hour&(1<<uint(h)) == 0 {
				continue
			}
			if bestHour >= 0 && h > bestHour+3 {
				break
			}
			for mi := 0; mi < 60; mi++ {
				if c.minute&(1<<uint(mi)) == 0 {
					continue
				}
				for _, t := range c.instants(y, m, d, h, mi) {
					if t.After(after) && (best.IsZero() || t.Before(best)) {
						best = t
						if bestHour < 0 {
							bestHour = h
						}
					}
				}
				if !best.IsZero() && !c.everyHour {
					// Fixed-time instants grow with the wall clock: the first one after is the answer.
					return best
				}
			}
		}
		if !best.IsZero() {
			return best
		}
	}
	return time.Time{}
}

// simpleDay handles a day with no UTC offset change: wall times map one to one, in order, to
// instants, so the first match after after is the answer. ok is false on a day with a change.
func (c *Crontab) simpleDay(y int, m time.Month, d int, after time.Time) (time.Time, bool) {
	start := time.Date(y, m, d, 0, 0, 0, 0, c.loc)
	zs, ze := start.ZoneBounds()
	if start.Hour() != 0 || !zs.IsZero() && zs.After(start) || !ze.IsZero() && !ze.After(time.Date(y, m, d, 23, 59, 0, 0, c.loc)) {
		return time.Time{}, false
	}
	local := after.In(c.loc)
	h0 := 0
	if ly, lm, ld := local.Date(); ly == y && lm == m && ld == d {
		h0 = local.Hour()
	} else if start.Before(after) {
		return time.Time{}, true // an earlier day
	}
	for h := h0; h < 24; h++ {
		if c.hour&(1<<uint(h)) == 0 {
			continue
		}
		for mi := 0; mi < 60; mi++ {
			if c.minute&(1<<uint(mi)) == 0 {
				continue
			}
			if t := start.Add(time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute); t.After(after) {
				return t, true
			}
		}
	}
	return time.Time{}, true
}

// instants returns the real instants of a local wall time under the DST rule: zero, one or two.
func (c *Crontab) instants(y int, m time.Month, d, h, mi int) []time.Time {
	t := time.Date(y, m, d, h, mi, 0, 0, c.loc)
	if t.Hour() != h || t.Minute() != mi || t.Day() != d {
		// In a spring-forward gap.
		if c.everyHour {
			return nil
		}
		start, end := t.ZoneBounds()
		wall := time.Date(y, m, d, h, mi, 0, 0, time.UTC)
		if time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), 0, 0, time.UTC).After(wall) {
			return []time.Time{start}
		}
		return []time.Time{end}
	}
	// A repeated (autumn) wall time: the other occurrence is in the neighbouring zone period.
	start, end := t.ZoneBounds()
	_, off := t.Zone()
	var other time.Time
	if !start.IsZero() {
		_, prevOff := start.Add(-time.Second).Zone()
		if o := t.Add(time.Duration(off-prevOff) * time.Second); o.Before(start) && prevOff != off {
			other = o
		}
	}
	if other.IsZero() && !end.IsZero() {
		_, nextOff := end.Zone()
		if o := t.Add(time.Duration(off-nextOff) * time.Second); !o.Before(end) && nextOff != off {
			other = o
		}
	}
	if other.IsZero() {
		return []time.Time{t}
	}
	if c.everyHour {
		return []time.Time{t, other}
	}
	if other.Before(t) {
		return []time.Time{other}
	}
	return []time.Time{t}
}
