package canvas

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/forumads/forumads/celery"
)

// TaskBackendCleanup is Celery's built-in celery.backend_cleanup, which beat sends every day at
// 4:00 when results expire in a backend that does not expire them itself.
const TaskBackendCleanup = "celery.backend_cleanup"

// Cleaner is a result backend whose expired results must be deleted by a task (Celery's
// backend.cleanup): django-db is one. Backends that expire results themselves (Redis keys have
// a TTL) are not, and celery.backend_cleanup does nothing on them, as in Celery.
type Cleaner interface {
	// Cleanup deletes the expired task and group results, returning how many of each.
	Cleanup(ctx context.Context) (tasks, groups int64, err error)
}

// RegisterBackendCleanup registers celery.backend_cleanup() on reg: it calls b's Cleanup when b
// is a Cleaner (nil b or another backend: nothing to do) and returns None, as Celery's. The
// deleted counts are logged at INFO on log (nil: not logged).
func RegisterBackendCleanup(reg *celery.Registry, b any, log *slog.Logger) error {
	c, _ := b.(Cleaner)
	return celery.RegisterE(reg, TaskBackendCleanup, func(ctx context.Context, _ *celery.Task[noArgs]) (json.RawMessage, error) {
		if c == nil {
			return json.RawMessage("null"), nil
		}
		tasks, groups, err := c.Cleanup(ctx)
		if err != nil {
			return nil, err
		}
		if log != nil {
			log.Info("celery.backend_cleanup: expired results deleted", "tasks", tasks, "groups", groups)
		}
		return json.RawMessage("null"), nil
	})
}

// noArgs is a task that takes no arguments.
type noArgs struct{}
