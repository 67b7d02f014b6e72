// Package adsconfig reads the ads services' settings from celeryconfig.yaml and the environment and
// opens their connections. The same binary runs anywhere: the environment wins over the file.
//
//	setting            environment    default
//	ads_database_url   DATABASE_URL   postgres://forumads:forumads@127.0.0.1:5432/forumads?sslmode=disable
//	ads_redis_url      REDIS_URL      result_backend when it is a Redis URL (redis://, rediss://, unix://,
//	                                  sentinel://), else redis://127.0.0.1:6379/0; a sentinel:// URL takes
//	                                  master_name from result_backend_transport_options
//	ads_key_prefix     ADS_KEY_PREFIX ads:
package adsconfig

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the PostgreSQL driver
	"go.yaml.in/yaml/v3"

	"github.com/forumads/forumads"
	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/celery/redisconn"
	"github.com/forumads/forumads/internal/config"
)

// DefaultDatabaseURL is the database scripts/services.sh creates.
const DefaultDatabaseURL = "postgres://forumads:forumads@127.0.0.1:5432/forumads?sslmode=disable"

// DefaultRedisURL is used when neither REDIS_URL, ads_redis_url nor a Redis result_backend is set.
const DefaultRedisURL = "redis://127.0.0.1:6379/0"

// Settings are the ads services' connections.
type Settings struct {
	DatabaseURL string
	RedisURL    string
	KeyPrefix   string
}

// Keys is the Redis key layout under the configured prefix.
func (s Settings) Keys() rkeys.Keys { return rkeys.New(s.KeyPrefix) }

// FromFile reads the settings from a loaded configuration; getenv reads the environment (nil:
// os.Getenv; tests pass their own).
func FromFile(f *config.File, getenv func(string) string) (Settings, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	var s Settings
	for name, dst := range map[string]*string{"ads_database_url": &s.DatabaseURL, "ads_redis_url": &s.RedisURL, "ads_key_prefix": &s.KeyPrefix} {
		n := f.Settings[name]
		if n == nil || n.Tag == "!!null" {
			continue
		}
		if n.Kind != yaml.ScalarNode {
			return s, fmt.Errorf("%s (line %d): must be a string", name, n.Line)
		}
		*dst = n.Value
	}
	for env, dst := range map[string]*string{"DATABASE_URL": &s.DatabaseURL, "REDIS_URL": &s.RedisURL, "ADS_KEY_PREFIX": &s.KeyPrefix} {
		if v := getenv(env); v != "" {
			*dst = v
		}
	}
	if s.DatabaseURL == "" {
		s.DatabaseURL = DefaultDatabaseURL
	}
	if s.RedisURL == "" {
		if rb := f.Celery.ResultBackend; redisconn.IsRedisURL(rb) {
			s.RedisURL = rb
		} else {
			s.RedisURL = DefaultRedisURL
		}
	}
	if s.KeyPrefix == "" {
		s.KeyPrefix = rkeys.DefaultPrefix
	}
	return s, nil
}

// OpenDB opens the database lazily (no connection is made until used), with pool limits and
// timeouts fit for a worker: a bad URL fails here, an unreachable server fails the first query.
func OpenDB(url string) (*sqlx.DB, error) {
	db, err := sqlx.Open("postgres", withConnectTimeout(url))
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, nil
}

func withConnectTimeout(url string) string {
	if strings.Contains(url, "connect_timeout=") {
		return url
	}
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	if strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://") {
		return url + sep + "connect_timeout=5"
	}
	return url + " connect_timeout=5"
}

// ApplySchema applies schema.sql (idempotent) in one transaction, serialized with an advisory lock
// so two programs starting at once do not race on CREATE IF NOT EXISTS.
func ApplySchema(ctx context.Context, db *sqlx.DB) error {
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtext(current_schema()))"); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	if _, err := tx.ExecContext(ctx, forumads.Schema); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	return tx.Commit()
}
