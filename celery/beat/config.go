// Package beat is the Go counterpart of celery beat: it reads Celery's beat_schedule, keeps the last
// run of every entry in Redis and publishes each due run exactly once as an ordinary protocol-2
// task message, even with several beat processes running (see Scheduler).
package beat

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/forumads/forumads/celery/schedule"
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("beat configuration")

// EntryError is a bad beat_schedule entry; Field names the offending field.
type EntryError struct {
	Entry, Field string
	Err          error
}

// Error names the entry and the field.
func (e *EntryError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("beat_schedule entry %q: %v", e.Entry, e.Err)
	}
	return fmt.Sprintf("beat_schedule entry %q, field %s: %v", e.Entry, e.Field, e.Err)
}

// Unwrap returns ErrConfig and the cause.
func (e *EntryError) Unwrap() []error { return []error{ErrConfig, e.Err} }

// Options are the entry's apply_async options beat supports.
type Options struct {
	Queue, Exchange, RoutingKey string
	Priority                    *int
	// Expires is the task's lifetime after sending (Celery's `expires: seconds`), 0 = none.
	Expires time.Duration
	// ExpiresAt, if set, is the instant after which the task is not run (Celery's `expires:
	// datetime`; django-celery-beat's expires column); it wins over Expires.
	ExpiresAt time.Time
	// Headers are extra message headers (django-celery-beat's headers column).
	Headers map[string]any
}

// Entry is one beat_schedule entry.
type Entry struct {
	Name string
	Task string
	// Every is the interval of a `schedule: seconds` entry; zero for a crontab entry.
	Every   time.Duration
	Crontab *schedule.Crontab
	// Schedule, if set, is the entry's schedule as its Source built it (anchored interval,
	// crontab in its own time zone, clocked, ...), used instead of Every and Crontab.
	Schedule schedule.Schedule
	// Args is nil when the entry has no args (Celery then sends "()" as argsrepr).
	Args        []json.RawMessage
	Kwargs      map[string]json.RawMessage
	KwargsOrder []string
	Options     Options
}

// ScheduleString describes the schedule as Celery's repr does.
func (e *Entry) ScheduleString() string {
	if e.Schedule != nil {
		return e.Schedule.String()
	}
	if e.Crontab != nil {
		return e.Crontab.String()
	}
	return schedule.Interval{Every: e.Every}.String()
}

// Fingerprint identifies what the entry runs and when; a change resets its persisted state.
func (e *Entry) Fingerprint() string {
	return e.Task + "|" + e.ScheduleString() + "|" + func() string {
		if e.Schedule != nil {
			return ""
		}
		if e.Crontab != nil {
			return e.Crontab.Location().String()
		}
		return strconv.FormatInt(int64(e.Every), 10)
	}()
}

// ParseSchedule reads a beat_schedule mapping. Crontab fields refer to loc. Any bad entry fails the
// whole schedule (nothing is half-loaded) with an *EntryError naming the entry and the field.
func ParseSchedule(n *yaml.Node, loc *time.Location) ([]*Entry, error) {
	if n == nil || n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: beat_schedule (line %d): want a mapping of entry names to entries", ErrConfig, n.Line)
	}
	var out []*Entry
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		name, v := n.Content[i].Value, n.Content[i+1]
		if seen[name] {
			return nil, &EntryError{Entry: name, Err: errors.New("defined twice")}
		}
		seen[name] = true
		e, err := parseEntry(name, v, loc)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func parseEntry(name string, n *yaml.Node, loc *time.Location) (*Entry, error) {
	fail := func(field string, format string, a ...any) error {
		return &EntryError{Entry: name, Field: field, Err: fmt.Errorf(format, a...)}
	}
	if name == "" || strings.ContainsAny(name, "\n\r") {
		return nil, fail("", "invalid name")
	}
	if n.Kind != yaml.MappingNode {
		return nil, fail("", "line %d: want a mapping with task and schedule", n.Line)
	}
	e := &Entry{Name: name}
	var hasSchedule bool
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		switch k {
		case "task":
			if v.Kind != yaml.ScalarNode || v.Value == "" {
				return nil, fail("task", "line %d: want a task name", v.Line)
			}
			e.Task = v.Value
		case "schedule":
			hasSchedule = true
			if err := parseScheduleField(e, v, loc); err != nil {
				return nil, &EntryError{Entry: name, Field: "schedule", Err: err}
			}
		case "args":
			if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
				continue
			}
			if v.Kind != yaml.SequenceNode {
				return nil, fail("args", "line %d: want a list", v.Line)
			}
			e.Args = []json.RawMessage{}
			for _, a := range v.Content {
				b, err := nodeJSON(a)
				if err != nil {
					return nil, fail("args", "line %d: %v", a.Line, err)
				}
				e.Args = append(e.Args, b)
			}
		case "kwargs":
			if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
				continue
			}
			if v.Kind != yaml.MappingNode {
				return nil, fail("kwargs", "line %d: want a mapping", v.Line)
			}
			e.Kwargs = map[string]json.RawMessage{}
			for j := 0; j+1 < len(v.Content); j += 2 {
				b, err := nodeJSON(v.Content[j+1])
				if err != nil {
					return nil, fail("kwargs", "%s: %v", v.Content[j].Value, err)
				}
				e.Kwargs[v.Content[j].Value] = b
				e.KwargsOrder = append(e.KwargsOrder, v.Content[j].Value)
			}
		case "options":
			if err := parseOptions(&e.Options, v); err != nil {
				return nil, &EntryError{Entry: name, Field: "options", Err: err}
			}
		case "relative":
			var b bool
			if err := v.Decode(&b); err != nil || b {
				return nil, fail("relative", "only false is supported")
			}
		default:
			return nil, fail(k, "unknown field (want task, schedule, args, kwargs, options)")
		}
	}
	if e.Task == "" {
		return nil, fail("task", "missing")
	}
	if !hasSchedule {
		return nil, fail("schedule", "missing")
	}
	return e, nil
}

func parseScheduleField(e *Entry, v *yaml.Node, loc *time.Location) error {
	switch v.Kind {
	case yaml.ScalarNode:
		f, err := strconv.ParseFloat(v.Value, 64)
		if err != nil || v.Tag != "!!int" && v.Tag != "!!float" {
			return fmt.Errorf("line %d: want seconds (a number) or {crontab: {...}}", v.Line)
		}
		if !(f > 0) || math.IsInf(f, 0) || f > 1e9 {
			return fmt.Errorf("line %d: the interval must be a positive number of seconds, got %v", v.Line, v.Value)
		}
		e.Every = time.Duration(f * float64(time.Second))
		if e.Every < time.Millisecond {
			return fmt.Errorf("line %d: the interval must be at least 0.001 s", v.Line)
		}
		return nil
	case yaml.MappingNode:
		if len(v.Content) == 2 && v.Content[0].Value == "solar" {
			sol, err := parseSolar(v.Content[1])
			if err != nil {
				return err
			}
			e.Schedule = sol
			return nil
		}
		if len(v.Content) != 2 || v.Content[0].Value != "crontab" {
			return fmt.Errorf("line %d: want seconds, {crontab: {minute, hour, day_of_week, day_of_month, month_of_year}} or {solar: {event, lat, lon}}", v.Line)
		}
		c := v.Content[1]
		if c.Kind != yaml.MappingNode {
			return fmt.Errorf("line %d: crontab: want a mapping", c.Line)
		}
		var spec schedule.CrontabSpec
		for i := 0; i+1 < len(c.Content); i += 2 {
			k := c.Content[i].Value
			s, err := crontabValue(c.Content[i+1])
			if err != nil {
				return fmt.Errorf("crontab.%s: %w", k, err)
			}
			switch k {
			case "minute":
				spec.Minute = s
			case "hour":
				spec.Hour = s
			case "day_of_week":
				spec.DayOfWeek = s
			case "day_of_month":
				spec.DayOfMonth = s
			case "month_of_year":
				spec.MonthOfYear = s
			default:
				return fmt.Errorf("crontab.%s: unknown field (want minute, hour, day_of_week, day_of_month, month_of_year)", k)
			}
		}
		cr, err := schedule.ParseCrontab(spec, loc)
		if err != nil {
			var fe *schedule.FieldError
			if errors.As(err, &fe) {
				return fmt.Errorf("crontab.%s: %w", fe.Field, err)
			}
			return err
		}
		e.Crontab = cr
		return nil
	}
	return fmt.Errorf("line %d: want seconds or {crontab: {...}}", v.Line)
}

// parseSolar reads `{solar: {event: sunset, lat: 52.52, lon: 13.4}}`: celery.schedules.solar's
// arguments, all three required.
func parseSolar(c *yaml.Node) (*schedule.Solar, error) {
	if c.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: solar: want a mapping with event, lat and lon", c.Line)
	}
	var (
		event    string
		lat, lon float64
		seen     = map[string]bool{}
	)
	for i := 0; i+1 < len(c.Content); i += 2 {
		k, v := c.Content[i].Value, c.Content[i+1]
		seen[k] = true
		switch k {
		case "event":
			if v.Kind != yaml.ScalarNode || v.Tag != "!!str" {
				return nil, fmt.Errorf("line %d: solar.event: want an event name", v.Line)
			}
			event = v.Value
		case "lat", "lon":
			f, err := strconv.ParseFloat(v.Value, 64)
			if v.Kind != yaml.ScalarNode || v.Tag != "!!int" && v.Tag != "!!float" || err != nil {
				return nil, fmt.Errorf("line %d: solar.%s: want a number of degrees", v.Line, k)
			}
			if k == "lat" {
				lat = f
			} else {
				lon = f
			}
		default:
			return nil, fmt.Errorf("solar.%s: unknown field (want event, lat, lon)", k)
		}
	}
	for _, k := range []string{"event", "lat", "lon"} {
		if !seen[k] {
			return nil, fmt.Errorf("line %d: solar.%s: missing", c.Line, k)
		}
	}
	sol, err := schedule.ParseSolar(event, lat, lon)
	if err != nil {
		return nil, fmt.Errorf("solar: %w", err)
	}
	return sol, nil
}

// crontabValue accepts a string, an int or a list of them (joined with commas).
func crontabValue(n *yaml.Node) (string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" || n.Value == "" {
			return "", errors.New("empty value (omit the field for *)")
		}
		return n.Value, nil
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			return "", errors.New("empty list")
		}
		parts := make([]string, len(n.Content))
		for i, c := range n.Content {
			if c.Kind != yaml.ScalarNode || c.Value == "" {
				return "", fmt.Errorf("line %d: list items must be numbers or strings", c.Line)
			}
			parts[i] = c.Value
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("line %d: want a string, a number or a list", n.Line)
}

func parseOptions(o *Options, n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: want a mapping", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		var err error
		switch k {
		case "queue":
			err = v.Decode(&o.Queue)
		case "exchange":
			err = v.Decode(&o.Exchange)
		case "routing_key":
			err = v.Decode(&o.RoutingKey)
		case "priority":
			var p int
			if err = v.Decode(&p); err == nil && (p < 0 || p > 255) {
				err = errors.New("want 0-255")
			}
			o.Priority = &p
		case "expires":
			var s float64
			if err = v.Decode(&s); err == nil && !(s > 0) {
				err = errors.New("want a positive number of seconds")
			}
			o.Expires = time.Duration(s * float64(time.Second))
		default:
			err = errors.New("unknown option (want queue, exchange, routing_key, priority, expires)")
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

// nodeJSON converts a YAML value to JSON, keeping mapping order.
func nodeJSON(n *yaml.Node) (json.RawMessage, error) {
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	v, err := jsonable(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func jsonable(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			j, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			x[k] = j
		}
		return x, nil
	case map[any]any:
		return nil, errors.New("mapping keys must be strings")
	case []any:
		for i, e := range x {
			j, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			x[i] = j
		}
		return x, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, errors.New("NaN and infinity cannot be sent as JSON")
		}
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), nil
	}
	return v, nil
}

// MissedPolicy says what to do with runs that fell due while no beat was running.
type MissedPolicy string

// The beat_missed_runs values.
const (
	MissedOnce MissedPolicy = "once" // one catch-up send for all the missed runs (Celery's behaviour)
	MissedSkip MissedPolicy = "skip" // none: wait for the next run
)

// Settings are beat's own settings from celeryconfig.yaml.
type Settings struct {
	MissedRuns MissedPolicy  // beat_missed_runs: once (default) or skip
	StateURL   string        // beat_state_url: Redis for the state (default REDIS_URL, else result_backend)
	KeyPrefix  string        // beat_key_prefix: Redis key prefix (default "celery-beat:")
	LockTTL    time.Duration // beat_lock_ttl: seconds a slot lock lives (default 10)
	// Scheduler is beat_scheduler: empty or DefaultScheduler keeps the state in Redis; any other
	// value names a scheduler whose package reads its own settings and state (the beat program
	// knows django-celery-beat's DatabaseScheduler), so no Redis is required.
	Scheduler string
}

// DefaultScheduler is Celery's default beat_scheduler, the one this package's Redis store stands
// in for; "celery.beat.PersistentScheduler" means the same.
const DefaultScheduler = "celery.beat:PersistentScheduler"

// IsDefaultScheduler reports whether name (a beat_scheduler value) is Celery's default scheduler.
func IsDefaultScheduler(name string) bool {
	return name == "" || name == DefaultScheduler || name == "celery.beat.PersistentScheduler"
}

// ParseSettings reads the beat_* settings; env supplies REDIS_URL, backend is result_backend.
func ParseSettings(settings map[string]*yaml.Node, redisEnv, backend string) (Settings, error) {
	s := Settings{MissedRuns: MissedOnce, KeyPrefix: "celery-beat:", LockTTL: 10 * time.Second}
	str := func(name string, dst *string) error {
		if n := settings[name]; n != nil && n.Tag != "!!null" {
			if n.Kind != yaml.ScalarNode {
				return fmt.Errorf("%w: %s: want a string", ErrConfig, name)
			}
			*dst = n.Value
		}
		return nil
	}
	var missed string
	for name, dst := range map[string]*string{"beat_missed_runs": &missed, "beat_state_url": &s.StateURL, "beat_key_prefix": &s.KeyPrefix, "beat_scheduler": &s.Scheduler} {
		if err := str(name, dst); err != nil {
			return s, err
		}
	}
	switch MissedPolicy(missed) {
	case "":
	case MissedOnce, MissedSkip:
		s.MissedRuns = MissedPolicy(missed)
	default:
		return s, fmt.Errorf("%w: beat_missed_runs: %q (want once or skip)", ErrConfig, missed)
	}
	if n := settings["beat_lock_ttl"]; n != nil && n.Tag != "!!null" {
		var f float64
		if err := n.Decode(&f); err != nil || !(f >= 0.1) || f > 86400 {
			return s, fmt.Errorf("%w: beat_lock_ttl: want seconds between 0.1 and 86400", ErrConfig)
		}
		s.LockTTL = time.Duration(f * float64(time.Second))
	}
	if s.StateURL == "" {
		s.StateURL = redisEnv
	}
	if s.StateURL == "" {
		s.StateURL = backend
	}
	if s.StateURL == "" && IsDefaultScheduler(s.Scheduler) {
		return s, fmt.Errorf("%w: beat needs Redis for its state: set beat_state_url, REDIS_URL or result_backend", ErrConfig)
	}
	if s.KeyPrefix == "" {
		return s, fmt.Errorf("%w: beat_key_prefix: must not be empty", ErrConfig)
	}
	return s, nil
}

// sortedNames is for stable listings.
func sortedNames(es []*Entry) []*Entry {
	out := append([]*Entry(nil), es...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
