package beatdb

import (
	"fmt"
	"path"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the PostgreSQL driver
	"go.yaml.in/yaml/v3"
)

// SchedulerName is django-celery-beat's scheduler, as beat_scheduler (or `celery beat -S`) names it.
const SchedulerName = "django_celery_beat.schedulers:DatabaseScheduler"

// IsDatabaseScheduler reports whether a beat_scheduler value names django-celery-beat's
// DatabaseScheduler: its path with ':' or '.' before the class (Celery's symbol_by_name reads
// both) or the `django` alias django-celery-beat accepts.
func IsDatabaseScheduler(name string) bool {
	switch name {
	case SchedulerName, "django_celery_beat.schedulers.DatabaseScheduler", "django":
		return true
	}
	return false
}

// Settings are the settings of the database schedule, from celeryconfig.yaml.
type Settings struct {
	// DatabaseURL is beat_database_url (the environment's BEAT_DATABASE_URL wins): the Django
	// project's PostgreSQL database, postgres://user:pass@host:port/db?sslmode=disable; a
	// search_path parameter selects the schema the tables are in.
	DatabaseURL string
	// Poll is beat_max_loop_interval: how often last_update is read (default 5 s, as the Python
	// DatabaseScheduler).
	Poll time.Duration
	// KnownTasks is beat_known_tasks: the task names (shell globs) rows may name; empty = any.
	KnownTasks []string
}

// Known reports whether task may be sent under KnownTasks (nil when any may).
func (s Settings) Known() func(task string) bool {
	if len(s.KnownTasks) == 0 {
		return nil
	}
	pats := append([]string(nil), s.KnownTasks...)
	return func(task string) bool {
		for _, p := range pats {
			if ok, _ := path.Match(p, task); ok || p == task {
				return true
			}
		}
		return false
	}
}

// ParseSettings reads beat_database_url, beat_max_loop_interval and beat_known_tasks;
// lookupEnv is os.LookupEnv (BEAT_DATABASE_URL).
func ParseSettings(settings map[string]*yaml.Node, lookupEnv func(string) (string, bool)) (Settings, error) {
	s := Settings{Poll: 5 * time.Second}
	if n := settings["beat_database_url"]; n != nil && n.Tag != "!!null" {
		if n.Kind != yaml.ScalarNode {
			return s, fmt.Errorf("beat_database_url: want a postgres:// URL")
		}
		s.DatabaseURL = n.Value
	}
	if v, ok := lookupEnv("BEAT_DATABASE_URL"); ok && v != "" {
		s.DatabaseURL = v
	}
	if s.DatabaseURL == "" {
		return s, fmt.Errorf("beat_scheduler %s needs the Django database: set beat_database_url (or BEAT_DATABASE_URL) to a postgres:// URL", SchedulerName)
	}
	if n := settings["beat_max_loop_interval"]; n != nil && n.Tag != "!!null" {
		var f float64
		if err := n.Decode(&f); err != nil || !(f >= 0.1) || f > 3600 {
			return s, fmt.Errorf("beat_max_loop_interval: want seconds between 0.1 and 3600")
		}
		s.Poll = time.Duration(f * float64(time.Second))
	}
	if n := settings["beat_known_tasks"]; n != nil && n.Tag != "!!null" {
		if err := n.Decode(&s.KnownTasks); err != nil {
			return s, fmt.Errorf("beat_known_tasks: want a list of task names: %v", err)
		}
		for _, p := range s.KnownTasks {
			if _, err := path.Match(p, ""); err != nil || p == "" {
				return s, fmt.Errorf("beat_known_tasks: %q is not a task name or glob", p)
			}
		}
	}
	return s, nil
}

// Open connects to the Django database at url (checked with a ping by the caller's first query).
func Open(url string) (*sqlx.DB, error) {
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		return nil, fmt.Errorf("beat_database_url: %w", err)
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(2)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, nil
}
