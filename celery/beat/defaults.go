package beat

import (
	"fmt"
	"strings"
	"time"

	"github.com/forumads/forumads/celery/schedule"
)

// BackendCleanup is the name and task of the entry Celery beat installs to delete expired
// results: celery.backend_cleanup, every day at 4:00 (crontab('0', '4', '*')), each message
// expiring 12 hours after it is sent.
const BackendCleanup = "celery.backend_cleanup"

// BackendCleanupExpires is the expires option of the celery.backend_cleanup entry.
const BackendCleanupExpires = 12 * time.Hour

// BackendCleanupEntry is the celery.backend_cleanup entry at 4:00 on loc's wall clock (the
// timezone setting), as Celery's Scheduler.install_default_entries makes it.
func BackendCleanupEntry(loc *time.Location) (*Entry, error) {
	c, err := schedule.ParseCrontab(schedule.CrontabSpec{Minute: "0", Hour: "4", DayOfWeek: "*", DayOfMonth: "*", MonthOfYear: "*"}, loc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", BackendCleanup, err)
	}
	return &Entry{Name: BackendCleanup, Task: BackendCleanup, Crontab: c, Options: Options{Expires: BackendCleanupExpires}}, nil
}

// AutoExpires reports whether the result backend a result_backend URL names expires results
// itself (Celery's supports_autoexpire): Redis (redis://, rediss://, unix://, sentinel://), rpc://,
// cache+ backends and the in-process memory:// do; no backend, django-db and database backends
// do not.
func AutoExpires(resultBackend string) bool {
	scheme, _, _ := strings.Cut(strings.TrimSpace(resultBackend), "://")
	switch scheme = strings.ToLower(scheme); {
	case scheme == "redis", scheme == "rediss", scheme == "unix", scheme == "sentinel", scheme == "rpc", scheme == "memory",
		strings.HasPrefix(scheme, "cache"):
		return true
	}
	return false
}

// InstallDefaultEntries is Celery's Scheduler.install_default_entries: with results that expire
// (resultExpires > 0) in a backend that does not expire them itself, it adds the
// celery.backend_cleanup entry, unless entries already has one of that name (the user's wins).
func InstallDefaultEntries(entries []*Entry, resultBackend string, resultExpires time.Duration, loc *time.Location) ([]*Entry, error) {
	if resultExpires <= 0 || AutoExpires(resultBackend) {
		return entries, nil
	}
	for _, e := range entries {
		if e.Name == BackendCleanup {
			return entries, nil
		}
	}
	e, err := BackendCleanupEntry(loc)
	if err != nil {
		return nil, err
	}
	return append(entries[:len(entries):len(entries)], e), nil
}
