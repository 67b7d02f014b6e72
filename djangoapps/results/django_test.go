package results_test

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/forumads/forumads/internal/testdb"
	"github.com/forumads/forumads/internal/testenv"
)

// pythonPath is PYTHON, default /usr/bin/python3 (Debian's python3-django, python3-celery,
// python3-django-celery-results and python3-psycopg2).
func pythonPath() string {
	if p := os.Getenv("PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}

// projectDir is the example Django project, whose migrations the tests run.
func projectDir() string { return filepath.Join(testenv.RepoRoot(), "examples", "django") }

// schema is a PostgreSQL schema of the test's own, dropped at its cleanup.
type schema struct {
	Name string
	// URL connects with search_path set to the schema (database_url, DJANGO_DATABASE_URL).
	URL string
	// DB's connections have search_path set to the schema.
	DB *sqlx.DB
}

// newSchema creates an empty schema for t; a missing PostgreSQL fails the test.
func newSchema(t testing.TB) *schema {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := sqlx.Open("postgres", testdb.DatabaseURL())
	if err != nil {
		t.Fatalf("DATABASE_URL: %v", err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	if err := admin.PingContext(ctx); err != nil {
		t.Fatalf("PostgreSQL is required at %s (run scripts/services.sh): %v", testdb.DatabaseURL(), err)
	}
	name := "djr_" + strings.ToLower(testenv.Suffix())
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+name+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	u, err := url.Parse(testdb.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	db, err := sqlx.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(8)
	t.Cleanup(func() { _ = db.Close() })
	return &schema{Name: name, URL: u.String(), DB: db}
}

// djangoEnv is the environment of the example project's processes, on schema s.
func djangoEnv(s *schema, extra ...string) []string {
	return append(append(os.Environ(),
		"PYTHONDONTWRITEBYTECODE=1",
		"DJANGO_SETTINGS_MODULE=forumads_site.settings",
		"DJANGO_DATABASE_URL="+s.URL,
		"DJANGO_ALLOWED_HOSTS=127.0.0.1,localhost,testserver",
		"CELERY_BROKER_URL="+testenv.AMQPURL(),
	), extra...)
}

// migrate runs the example project's `manage.py migrate args...` on schema s (the real
// django-celery-results migrations), failing the test with its output.
func migrate(t testing.TB, s *schema, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, pythonPath(), append([]string{"manage.py", "migrate", "--noinput"}, args...)...)
	cmd.Dir, cmd.Env = projectDir(), djangoEnv(s)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("manage.py migrate %s (needs %s with python3-django, python3-django-celery-results and python3-psycopg2): %v\n%s",
			strings.Join(args, " "), pythonPath(), err, out.String())
	}
}

// migratedSchema is a fresh schema with django_celery_results migrated in it.
func migratedSchema(t testing.TB) *schema {
	t.Helper()
	s := newSchema(t)
	migrate(t, s, "django_celery_results")
	return s
}

// cloneTables makes a fresh schema whose django-celery-results tables are copies (columns,
// defaults, constraints, indexes) of the migrated tables in from: the suite's many subtests each
// get tables of their own without running the migrations each time.
func cloneTables(t testing.TB, from *schema) *schema {
	t.Helper()
	s := newSchema(t)
	for _, table := range []string{"django_celery_results_taskresult", "django_celery_results_groupresult", "django_celery_results_chordcounter"} {
		if _, err := s.DB.Exec("CREATE TABLE " + s.Name + "." + table + " (LIKE " + from.Name + "." + table + " INCLUDING ALL)"); err != nil {
			t.Fatalf("clone %s: %v", table, err)
		}
	}
	return s
}
