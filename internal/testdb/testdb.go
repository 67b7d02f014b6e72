// Package testdb gives the ads side's tests a PostgreSQL schema of their own with schema.sql applied,
// dropped when the test ends. It is apart from internal/testenv so that the Celery library's tests
// do not link sqlx, lib/pq or the ads schema; only tests of the ads, web, tasks and manage code use it.
// A missing PostgreSQL fails the test loudly; nothing is skipped.
//
//	DATABASE_URL  default postgres://forumads:forumads@127.0.0.1:5432/forumads?sslmode=disable
package testdb

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the PostgreSQL driver

	"github.com/forumads/forumads"
	"github.com/forumads/forumads/internal/testenv"
)

// DatabaseURL is the PostgreSQL database the tests use (DATABASE_URL; default the one
// scripts/services.sh creates).
func DatabaseURL() string {
	if u := os.Getenv("DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://forumads:forumads@127.0.0.1:5432/forumads?sslmode=disable"
}

// PG is a test's own PostgreSQL schema with schema.sql applied.
type PG struct {
	// DB's connections all have search_path set to Schema.
	DB *sqlx.DB
	// Schema is the schema's name.
	Schema string
	// URL connects with search_path set to Schema, for programs the test starts (DATABASE_URL).
	URL string
}

// Postgres creates a schema for this test, applies schema.sql in it, and drops it at cleanup.
// A missing PostgreSQL fails the test.
func Postgres(t testing.TB) *PG {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := sqlx.Open("postgres", DatabaseURL())
	if err != nil {
		t.Fatalf("DATABASE_URL: %v", err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	if err := admin.PingContext(ctx); err != nil {
		t.Fatalf("PostgreSQL is required at %s (run scripts/services.sh): %v", DatabaseURL(), err)
	}
	schema := "t_" + strings.ToLower(testenv.Suffix()) + testenv.Suffix()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u := withSearchPath(t, DatabaseURL(), schema)
	db, err := sqlx.Open("postgres", u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.ExecContext(ctx, forumads.Schema); err != nil {
		t.Fatalf("apply schema.sql: %v", err)
	}
	return &PG{DB: db, Schema: schema, URL: u}
}

func withSearchPath(t testing.TB, raw, schema string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("DATABASE_URL must be a postgres:// URL: %q", raw)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
