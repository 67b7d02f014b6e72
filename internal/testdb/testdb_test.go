package testdb

import (
	"testing"

	"github.com/forumads/forumads"
)

func TestPostgresSchemaIsIsolatedAndApplied(t *testing.T) {
	t.Parallel()
	a, b := Postgres(t), Postgres(t)
	if a.Schema == b.Schema {
		t.Fatal("two calls must give two schemas")
	}
	if _, err := a.DB.Exec(`INSERT INTO advertisers (external_id, name) VALUES ('adv-1', 'A')`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := b.DB.Get(&n, `SELECT count(*) FROM advertisers`); err != nil || n != 0 {
		t.Fatalf("schema b sees %d advertisers (%v), want 0", n, err)
	}
	if err := a.DB.Get(&n, `SELECT count(*) FROM feature_switches`); err != nil || n == 0 {
		t.Fatalf("schema.sql seeds feature switches: %d (%v)", n, err)
	}
	// schema.sql is idempotent.
	if _, err := a.DB.Exec(forumads.Schema); err != nil {
		t.Fatalf("schema.sql applied twice: %v", err)
	}
}
