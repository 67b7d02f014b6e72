// Package tasks puts together every task this repository's workers run (the diagnostic tasks and
// the ads tasks) with their connections, so the worker and the command line register the same set.
package tasks

import (
	"errors"
	"log/slog"

	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/adsconfig"
	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/internal/config"
	"github.com/forumads/forumads/internal/wiring"
	"github.com/forumads/forumads/tasks/ads"
	"github.com/forumads/forumads/tasks/diag"
)

// Set is the registered tasks and the connections they hold.
type Set struct {
	Registry *celery.Registry
	Settings adsconfig.Settings
	DB       *sqlx.DB
	Redis    *redis.Client
}

// Options configure Open.
type Options struct {
	// Client sends the ads pipeline's follow-up tasks; nil: none are sent.
	Client *celery.Client
	Logger *slog.Logger
	// Getenv reads the environment (default: os.Getenv through adsconfig).
	Getenv func(string) string
}

// Open reads the ads settings of f and registers every task. Connections are lazy: a worker starts
// (and runs the diagnostic tasks) while PostgreSQL is down; the ads tasks report it when they run.
func Open(f *config.File, o Options) (*Set, error) {
	st, err := adsconfig.FromFile(f, o.Getenv)
	if err != nil {
		return nil, err
	}
	db, err := adsconfig.OpenDB(st.DatabaseURL)
	if err != nil {
		return nil, err
	}
	rc, err := wiring.AppRedis(f.Celery, st.RedisURL, o.Logger)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	reg := celery.NewRegistry()
	diag.Register(reg, diag.Deps{Redis: rc})
	ads.Register(reg, ads.Deps{DB: db, Redis: rc, Keys: st.Keys(), Client: o.Client, Logger: o.Logger})
	return &Set{Registry: reg, Settings: st, DB: db, Redis: rc}, nil
}

// Close closes the connections.
func (s *Set) Close() error {
	return errors.Join(s.DB.Close(), s.Redis.Close())
}
