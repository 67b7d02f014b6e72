package beatdb_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/beat"
	"github.com/forumads/forumads/djangoapps/beatdb"
	"github.com/forumads/forumads/internal/testdb"
	"github.com/forumads/forumads/internal/testenv"
)

// capturedTables is a test schema holding django-celery-beat 2.4's tables as its migrations made
// them on PostgreSQL (../shared/fixtures/django_celery_beat_schema.sql, put in the test's schema).
func capturedTables(t *testing.T) *testdb.PG {
	t.Helper()
	pg := testdb.Postgres(t)
	b, err := os.ReadFile(filepath.Join(testenv.FixturesDir(t), "django_celery_beat_schema.sql"))
	if err != nil {
		t.Fatal(err)
	}
	pg.DB.MustExec(strings.ReplaceAll(string(b), "public.", ""))
	return pg
}

// TestClaimsAreTheRowWrites: a claim is the row's last_run_at and total_run_count; however many
// beats claim the same slots at once, each slot goes to exactly one; a slot at or before
// last_run_at, or of a disabled row, is nobody's; Release gives a failed send's slot back.
func TestClaimsAreTheRowWrites(t *testing.T) {
	pg := capturedTables(t)
	pg.DB.MustExec(`INSERT INTO django_celery_beat_intervalschedule (id, every, period) VALUES (1, 1, 'seconds')`)
	for _, name := range []string{"a", "b", "c"} {
		pg.DB.MustExec(`INSERT INTO django_celery_beat_periodictask (name, task, args, kwargs, enabled, total_run_count,
			date_changed, description, interval_id, one_off, headers) VALUES ($1, 'diag.add', '[]', '{}', true, 0, now(), '', 1, false, '{}')`, name)
	}
	ctx := context.Background()
	const beats = 6
	dbs := make([]*beatdb.DB, beats)
	for i := range dbs {
		dbs[i] = beatdb.New(pg.DB, beatdb.Options{})
		if es, err := dbs[i].Entries(ctx); err != nil || len(es) != 3 {
			t.Fatalf("entries %d, %v", len(es), err)
		}
	}
	base := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	slots := func(k int) []beat.SlotClaim {
		s := base.Add(time.Duration(k) * time.Second)
		return []beat.SlotClaim{{Name: "c", Slot: s}, {Name: "a", Slot: s}, {Name: "b", Slot: s}}
	}
	won := make([][3]int, 5)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for k := range 5 {
		for _, d := range dbs {
			wg.Go(func() {
				claims, err := d.ClaimMany(ctx, slots(k), "tok")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for i, c := range claims {
					if c != "" {
						won[k][i]++
					}
				}
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	for k, w := range won {
		if w != [3]int{1, 1, 1} {
			t.Errorf("slot %d: claims per row %v, want exactly one each", k, w)
		}
	}
	var total int
	var last time.Time
	if err := pg.DB.QueryRow(`SELECT total_run_count, last_run_at FROM django_celery_beat_periodictask WHERE name = 'a'`).Scan(&total, &last); err != nil {
		t.Fatal(err)
	}
	if total != 5 || !last.Equal(base.Add(4*time.Second)) {
		t.Errorf("row a: total_run_count %d last_run_at %s; want 5, %s", total, last, base.Add(4*time.Second))
	}
	// Not before the last run; a failed send's release gives the slot back, once.
	d := dbs[0]
	if c, _ := d.ClaimMany(ctx, slots(2)[:1], "tok"); c[0] != "" {
		t.Errorf("a slot before last_run_at was claimed: %q", c)
	}
	c, err := d.ClaimMany(ctx, slots(9)[:1], "tok")
	if err != nil || c[0] == "" {
		t.Fatalf("claim %q %v", c, err)
	}
	if err := d.Release(ctx, "c", base.Add(9*time.Second), c[0]); err != nil {
		t.Fatal(err)
	}
	if err := pg.DB.QueryRow(`SELECT total_run_count, last_run_at FROM django_celery_beat_periodictask WHERE name = 'c'`).Scan(&total, &last); err != nil {
		t.Fatal(err)
	}
	if total != 5 || !last.Equal(base.Add(4*time.Second)) {
		t.Errorf("after release: total_run_count %d last_run_at %s; want 5, %s", total, last, base.Add(4*time.Second))
	}
	if c, _ := dbs[1].ClaimMany(ctx, slots(9)[:1], "tok"); c[0] == "" {
		t.Error("the released slot could not be claimed again")
	}
	// A row disabled (in the admin) since the last read is nobody's.
	pg.DB.MustExec(`UPDATE django_celery_beat_periodictask SET enabled = false WHERE name = 'b'`)
	if c, _ := d.ClaimMany(ctx, slots(20)[2:], "tok"); c[0] != "" {
		t.Errorf("a disabled row's slot was claimed: %q", c)
	}
}

// TestChangedFollowsLastUpdate: Changed is false until periodictasks.last_update moves (or first
// appears), as DatabaseScheduler.schedule_changed; a one-off row that already ran is disabled at
// read, moving it.
func TestChangedFollowsLastUpdate(t *testing.T) {
	pg := capturedTables(t)
	ctx := context.Background()
	d := beatdb.New(pg.DB, beatdb.Options{})
	if _, err := d.Entries(ctx); err != nil {
		t.Fatal(err)
	}
	if ch, err := d.Changed(ctx); err != nil || ch {
		t.Fatalf("changed %v %v before any change", ch, err)
	}
	pg.DB.MustExec(`INSERT INTO django_celery_beat_periodictasks (ident, last_update) VALUES (1, now())`)
	if ch, err := d.Changed(ctx); err != nil || !ch {
		t.Fatalf("changed %v %v after last_update appeared", ch, err)
	}
	pg.DB.MustExec(`INSERT INTO django_celery_beat_intervalschedule (id, every, period) VALUES (1, 1, 'seconds')`)
	pg.DB.MustExec(`INSERT INTO django_celery_beat_periodictask (name, task, args, kwargs, enabled, total_run_count,
		date_changed, description, interval_id, one_off, headers) VALUES ('spent', 'diag.add', '[]', '{}', true, 1, now(), '', 1, true, '{}')`)
	es, err := d.Entries(ctx)
	if err != nil || len(es) != 0 {
		t.Fatalf("entries %v %v; want the spent one-off left out", es, err)
	}
	var enabled bool
	var total int
	if err := pg.DB.QueryRow(`SELECT enabled, total_run_count FROM django_celery_beat_periodictask WHERE name = 'spent'`).Scan(&enabled, &total); err != nil || enabled || total != 0 {
		t.Fatalf("spent one-off: enabled %v total %d %v; want disabled, 0", enabled, total, err)
	}
	if ch, err := d.Changed(ctx); err != nil || !ch {
		t.Fatalf("disabling the one-off did not move last_update: %v %v", ch, err)
	}
}
