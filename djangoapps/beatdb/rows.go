package beatdb

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/forumads/forumads/celery/beat"
	"github.com/forumads/forumads/celery/schedule"
)

// Row is one django_celery_beat_periodictask row joined with its schedule row, as Entries reads it.
type Row struct {
	ID            int64          `db:"id"`
	Name          string         `db:"name"`
	Task          string         `db:"task"`
	Args          string         `db:"args"`
	Kwargs        string         `db:"kwargs"`
	Queue         sql.NullString `db:"queue"`
	Exchange      sql.NullString `db:"exchange"`
	RoutingKey    sql.NullString `db:"routing_key"`
	Priority      sql.NullInt64  `db:"priority"`
	Headers       sql.NullString `db:"headers"`
	Expires       sql.NullTime   `db:"expires"`
	ExpireSeconds sql.NullInt64  `db:"expire_seconds"`
	OneOff        bool           `db:"one_off"`
	StartTime     sql.NullTime   `db:"start_time"`
	LastRunAt     sql.NullTime   `db:"last_run_at"`
	TotalRunCount int64          `db:"total_run_count"`
	DateChanged   time.Time      `db:"date_changed"`

	IntervalID     sql.NullInt64  `db:"interval_id"`
	IntervalEvery  sql.NullInt64  `db:"interval_every"`
	IntervalPeriod sql.NullString `db:"interval_period"`

	CrontabID   sql.NullInt64  `db:"crontab_id"`
	Minute      sql.NullString `db:"minute"`
	Hour        sql.NullString `db:"hour"`
	DayOfWeek   sql.NullString `db:"day_of_week"`
	DayOfMonth  sql.NullString `db:"day_of_month"`
	MonthOfYear sql.NullString `db:"month_of_year"`
	Timezone    sql.NullString `db:"timezone"`

	SolarID        sql.NullInt64   `db:"solar_id"`
	SolarEvent     sql.NullString  `db:"solar_event"`
	SolarLatitude  sql.NullFloat64 `db:"solar_latitude"`
	SolarLongitude sql.NullFloat64 `db:"solar_longitude"`

	ClockedID   sql.NullInt64 `db:"clocked_id"`
	ClockedTime sql.NullTime  `db:"clocked_time"`
}

// RowError is a row that cannot be run: ID and Name are the row's, Field the column at fault.
type RowError struct {
	ID    int64
	Name  string
	Field string
	Err   error
}

// Error names the row by id and name.
func (e *RowError) Error() string {
	return fmt.Sprintf("django_celery_beat_periodictask id=%d (%q), %s: %v", e.ID, e.Name, e.Field, e.Err)
}

// Unwrap returns the cause.
func (e *RowError) Unwrap() error { return e.Err }

// periods are IntervalSchedule.PERIOD_CHOICES.
var periods = map[string]time.Duration{
	"days": 24 * time.Hour, "hours": time.Hour, "minutes": time.Minute, "seconds": time.Second,
	"microseconds": time.Microsecond,
}

// ParseRow turns r into the beat entry it schedules; known, if set, says whether a task name may
// be sent. The entry's Schedule is anchored on the row's state, so every beat reading the same
// row derives the same slots. Any unusable field gives a *RowError.
func ParseRow(r Row, known func(task string) bool) (*beat.Entry, error) {
	fail := func(field string, format string, a ...any) error {
		return &RowError{ID: r.ID, Name: r.Name, Field: field, Err: fmt.Errorf(format, a...)}
	}
	if err := checkTaskName(r.Task); err != nil {
		return nil, fail("task", "%v", err)
	}
	if known != nil && !known(r.Task) {
		return nil, fail("task", "unknown task %q (not in beat_known_tasks)", r.Task)
	}
	if r.Name == "" {
		return nil, fail("name", "empty")
	}
	e := &beat.Entry{Name: r.Name, Task: r.Task}
	args, err := ParseArgs(r.Args)
	if err != nil {
		return nil, fail("args", "%v", err)
	}
	e.Args = args
	kw, order, err := ParseKwargs(r.Kwargs)
	if err != nil {
		return nil, fail("kwargs", "%v", err)
	}
	e.Kwargs, e.KwargsOrder = kw, order
	if r.Headers.Valid {
		h, err := ParseHeaders(r.Headers.String)
		if err != nil {
			return nil, fail("headers", "%v", err)
		}
		e.Options.Headers = h
	}
	e.Options.Queue, e.Options.Exchange, e.Options.RoutingKey = r.Queue.String, r.Exchange.String, r.RoutingKey.String
	if r.Priority.Valid {
		if r.Priority.Int64 < 0 || r.Priority.Int64 > 255 {
			return nil, fail("priority", "%d is not between 0 and 255", r.Priority.Int64)
		}
		p := int(r.Priority.Int64)
		e.Options.Priority = &p
	}
	switch {
	case r.Expires.Valid:
		e.Options.ExpiresAt = r.Expires.Time
	case r.ExpireSeconds.Valid && r.ExpireSeconds.Int64 > 0:
		e.Options.Expires = time.Duration(r.ExpireSeconds.Int64) * time.Second
	}
	s, err := rowSchedule(r, fail)
	if err != nil {
		return nil, err
	}
	if r.StartTime.Valid {
		s = notBefore{inner: s, start: r.StartTime.Time}
	}
	e.Schedule = s
	return e, nil
}

// rowSchedule builds the row's schedule from whichever schedule row it names.
func rowSchedule(r Row, fail func(string, string, ...any) error) (schedule.Schedule, error) {
	n := 0
	for _, id := range []sql.NullInt64{r.IntervalID, r.CrontabID, r.SolarID, r.ClockedID} {
		if id.Valid {
			n++
		}
	}
	switch {
	case n == 0:
		return nil, fail("schedule", "no interval, crontab, solar or clocked schedule set")
	case n > 1:
		return nil, fail("schedule", "more than one of interval, crontab, solar and clocked set")
	}
	switch {
	case r.IntervalID.Valid:
		if !r.IntervalEvery.Valid {
			return nil, fail("interval_id", "interval schedule row %d is missing", r.IntervalID.Int64)
		}
		unit, ok := periods[r.IntervalPeriod.String]
		if !ok {
			return nil, fail("interval_id", "interval %d: unknown period %q", r.IntervalID.Int64, r.IntervalPeriod.String)
		}
		if r.IntervalEvery.Int64 < 1 || r.IntervalEvery.Int64 > int64(math.MaxInt64/unit)/2 {
			return nil, fail("interval_id", "interval %d: every=%d is not a usable number of %s", r.IntervalID.Int64, r.IntervalEvery.Int64, r.IntervalPeriod.String)
		}
		anchor := r.DateChanged
		if r.LastRunAt.Valid {
			anchor = r.LastRunAt.Time
		}
		return interval{Interval: schedule.Interval{Every: time.Duration(r.IntervalEvery.Int64) * unit, Anchor: anchor},
			every: r.IntervalEvery.Int64, period: r.IntervalPeriod.String}, nil
	case r.CrontabID.Valid:
		if !r.Minute.Valid {
			return nil, fail("crontab_id", "crontab schedule row %d is missing", r.CrontabID.Int64)
		}
		loc, err := loadLocation(r.Timezone.String)
		if err != nil {
			return nil, fail("crontab_id", "crontab %d: timezone: %v", r.CrontabID.Int64, err)
		}
		c, err := schedule.ParseCrontab(schedule.CrontabSpec{Minute: cronField(r.Minute.String), Hour: cronField(r.Hour.String),
			DayOfWeek: cronField(r.DayOfWeek.String), DayOfMonth: cronField(r.DayOfMonth.String), MonthOfYear: cronField(r.MonthOfYear.String)}, loc)
		if err != nil {
			return nil, fail("crontab_id", "crontab %d: %v", r.CrontabID.Int64, err)
		}
		return zonedCrontab{c}, nil
	case r.ClockedID.Valid:
		if !r.ClockedTime.Valid {
			return nil, fail("clocked_id", "clocked schedule row %d is missing", r.ClockedID.Int64)
		}
		return clocked{at: r.ClockedTime.Time}, nil
	}
	if !r.SolarEvent.Valid || !r.SolarLatitude.Valid || !r.SolarLongitude.Valid {
		return nil, fail("solar_id", "solar schedule row %d is missing", r.SolarID.Int64)
	}
	sol, err := schedule.ParseSolar(r.SolarEvent.String, r.SolarLatitude.Float64, r.SolarLongitude.Float64)
	if err != nil {
		return nil, fail("solar_id", "solar %d: %v", r.SolarID.Int64, err)
	}
	return sol, nil
}

// cronField is a CrontabSchedule column as Celery's crontab reads it: spaces are ignored
// (cronexp) and an empty column means every value.
func cronField(s string) string {
	s = strings.ReplaceAll(s, " ", "")
	if s == "" {
		return "*"
	}
	return s
}

// loadLocation reads a CrontabSchedule.timezone (an IANA name; empty is UTC, the model's
// fallback).
func loadLocation(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	if name == "Local" || strings.ContainsAny(name, "\x00\\") || strings.HasPrefix(name, "/") {
		return nil, fmt.Errorf("%q is not an IANA time zone name", name)
	}
	return time.LoadLocation(name)
}

// checkTaskName refuses names no Celery app registers: empty, too long, or holding white space
// or control characters.
func checkTaskName(name string) error {
	if name == "" {
		return errors.New("empty task name")
	}
	if len(name) > 200 {
		return errors.New("task name longer than 200 characters")
	}
	for _, r := range name {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("task name %q holds white space or control characters", name)
		}
	}
	return nil
}

// ParseArgs reads a PeriodicTask.args column: a JSON list (empty text is [], as the Python
// scheduler reads it). Each element is kept as its JSON text.
func ParseArgs(text string) ([]json.RawMessage, error) {
	if strings.TrimSpace(text) == "" {
		return []json.RawMessage{}, nil
	}
	var args []json.RawMessage
	if err := strictJSON(text, &args); err != nil {
		return nil, fmt.Errorf("want a JSON list: %w", err)
	}
	if args == nil {
		return nil, errors.New("want a JSON list, got null")
	}
	return args, nil
}

// ParseKwargs reads a PeriodicTask.kwargs column: a JSON object (empty text is {}), with its keys
// in text order (for kwargsrepr). A repeated key keeps its last value, as Python's json does.
func ParseKwargs(text string) (map[string]json.RawMessage, []string, error) {
	kw := map[string]json.RawMessage{}
	if strings.TrimSpace(text) == "" {
		return kw, nil, nil
	}
	if err := strictJSON(text, &kw); err != nil {
		return nil, nil, fmt.Errorf("want a JSON object: %w", err)
	}
	if kw == nil {
		return nil, nil, errors.New("want a JSON object, got null")
	}
	dec := json.NewDecoder(strings.NewReader(text))
	if _, err := dec.Token(); err != nil { // '{'
		return nil, nil, err
	}
	var order []string
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		k, _ := tok.(string)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, nil, err
		}
		if !seen[k] {
			seen[k] = true
			order = append(order, k)
		}
	}
	return kw, order, nil
}

// ParseHeaders reads a PeriodicTask.headers column: a JSON object of message headers (empty text
// is none). Numbers stay exact (json.Number).
func ParseHeaders(text string) (map[string]any, error) {
	if strings.TrimSpace(text) == "" {
		return nil, nil
	}
	if !utf8.ValidString(text) {
		return nil, errors.New("want a JSON object: invalid UTF-8")
	}
	var h map[string]any
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("want a JSON object: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("want a JSON object: data after it")
	}
	if h == nil {
		return nil, errors.New("want a JSON object, got null")
	}
	return h, nil
}

// strictJSON decodes text into v, refusing invalid UTF-8 (Python's json.loads gets text; Go would
// quietly send U+FFFD in its place).
func strictJSON(text string, v any) error {
	if !utf8.ValidString(text) {
		return errors.New("invalid UTF-8")
	}
	return json.Unmarshal([]byte(text), v)
}
