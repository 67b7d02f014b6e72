package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/canvas"
	"github.com/forumads/forumads/internal/celerysuite"
	"github.com/forumads/forumads/internal/wiring"
)

// registerSuite registers Celery's integration-suite task set (--suite-tasks): its canvases go out
// through a sender of their own and its Redis tasks write to REDIS_HOST's database 0, as the
// suite's get_redis_connection() does. The returned func closes that connection.
func registerSuite(reg *celery.Registry, cfg celery.Config, br broker.Broker, backend celery.ResultBackend, log *slog.Logger) (func(), error) {
	var sizer canvas.ChordSizer
	if s, ok := backend.(canvas.ChordSizer); ok {
		sizer = s
	}
	sender, err := canvas.NewSender(cfg, br, sizer)
	if err != nil {
		return nil, fmt.Errorf("--suite-tasks: %w", err)
	}
	rc, err := wiring.Redis(celerysuite.RedisURL(os.Getenv))
	if err != nil {
		return nil, fmt.Errorf("--suite-tasks: %w", err)
	}
	if err := celerysuite.Register(reg, celerysuite.Deps{Sender: sender, Redis: rc, Logger: log}); err != nil {
		_ = rc.Close()
		return nil, fmt.Errorf("--suite-tasks: %w", err)
	}
	return func() { _ = rc.Close() }, nil
}
