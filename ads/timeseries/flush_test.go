package timeseries

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/internal/testenv"
)

var forums = []string{"general", "gaming", "cooking"}

func TestFlushEmpty(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	for i := range 2 {
		if sum := e.flush(t, e.opts(time.Now())); sum != (Summary{}) {
			t.Fatalf("run %d on nothing: %+v, want zeros", i, sum)
		}
	}
}

func TestFlushMovesClosedHoursOnly(t *testing.T) {
	t.Parallel()
	e := setup(t, 5)
	h := baseHour()
	closed := []time.Time{h.Add(-3 * time.Hour), h.Add(-1 * time.Hour), h}
	open := h.Add(time.Hour)
	lo := e.live(t, forums, append(closed, open)...)
	now := open.Add(10 * time.Minute)

	sum := e.flush(t, e.opts(now))
	want := Summary{Batches: 3, Counters: 3 * fields(lo), Hours: 3, Series: len(e.ads)}
	if sum != want {
		t.Fatalf("summary %+v, want %+v", sum, want)
	}
	x := expected{}
	x.add(lo, closed...)
	checkTable(t, e.pg.DB, x)
	checkClean(t, e, open)
	if n, err := e.rc.HLen(t.Context(), e.keys.Counters(open)).Result(); err != nil || n != fields(lo) {
		t.Fatalf("the open hour's hash has %d fields (%v), want %d untouched", n, err, fields(lo))
	}
	var flushes []struct {
		Hour     time.Time
		Counters int64
	}
	if err := e.pg.DB.Select(&flushes, `SELECT hour, counters FROM stats_flushes ORDER BY hour`); err != nil {
		t.Fatal(err)
	}
	if len(flushes) != 3 {
		t.Fatalf("stats_flushes has %d rows, want 3", len(flushes))
	}
	for i, f := range flushes {
		if !f.Hour.Equal(closed[i]) || f.Counters != fields(lo) {
			t.Errorf("stats_flushes[%d] = %v, %d; want %v, %d", i, f.Hour, f.Counters, closed[i], fields(lo))
		}
	}

	// A second run finds nothing new.
	if sum := e.flush(t, e.opts(now)); sum.Batches != 0 || sum.Hours != 0 || sum.Counters != 0 {
		t.Fatalf("second run %+v, want no batches", sum)
	}
	checkTable(t, e.pg.DB, x)
}

func TestFlushGrace(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		grace   time.Duration
		after   time.Duration // now, after the hour's end
		flushed bool
	}{
		{"inside the hour", 0, -time.Minute, false},
		{"at the end", 0, 0, false},
		{"within the default grace", 0, DefaultGrace - time.Millisecond, false},
		{"at the default grace", 0, DefaultGrace, true},
		{"long grace not over", 5 * time.Minute, 4 * time.Minute, false},
		{"long grace over", 5 * time.Minute, 5 * time.Minute, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, 1)
			h := baseHour()
			lo := e.live(t, forums[:1], h)
			o := e.opts(h.Add(time.Hour + tc.after))
			o.Grace = tc.grace
			sum := e.flush(t, o)
			x := expected{}
			if tc.flushed {
				x.add(lo, h)
				checkClean(t, e)
			} else {
				checkClean(t, e, h)
			}
			checkTable(t, e.pg.DB, x)
			if got := sum.Hours == 1; got != tc.flushed {
				t.Fatalf("summary %+v: flushed %v, want %v", sum, got, tc.flushed)
			}
		})
	}
}

func TestFlushRefusesNegativeGrace(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	o := e.opts(time.Now())
	o.Grace = -time.Second
	if _, err := Flush(t.Context(), e.pg.DB, e.rc, e.keys, o); err == nil || !strings.Contains(err.Error(), "grace") {
		t.Fatalf("negative grace: %v, want an error naming it", err)
	}
}

var errCrash = errors.New("simulated crash")

// TestFlushExactlyOnceAfterCrash interrupts a run at each step, then lets a second run finish: every
// count lands once, whatever the interruption.
func TestFlushExactlyOnceAfterCrash(t *testing.T) {
	t.Parallel()
	for _, point := range []string{"claimed", "copied", "added", "committed", "deleted", "connection lost"} {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			e := setup(t, 4)
			h := baseHour()
			hours := []time.Time{h.Add(-time.Hour), h}
			lo := e.live(t, forums, hours...)
			now := h.Add(90 * time.Minute)
			o := e.opts(now)
			if point == "connection lost" {
				// A real lost connection: the flushing transaction's backend is terminated in the
				// middle of the COPY.
				app := "tsflush" + testenv.Suffix()
				db := openDB(t, e.pg, app)
				o.hook = func(p string) error {
					if p == "copied" {
						_, err := e.pg.DB.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, app)
						return err
					}
					return nil
				}
				sum, err := Flush(t.Context(), db, e.rc, e.keys, o)
				if err == nil {
					t.Fatalf("Flush survived its connection's end: %+v", sum)
				}
				t.Logf("first run: %+v, %v", sum, err)
				if sum.Batches != 0 {
					t.Fatalf("first run reports %d batches added with no connection", sum.Batches)
				}
			} else {
				o.hook = func(p string) error {
					if p == point {
						return errCrash
					}
					return nil
				}
				first, err := Flush(t.Context(), e.pg.DB, e.rc, e.keys, o)
				if !errors.Is(err, errCrash) {
					t.Fatalf("first run: %v, want the crash", err)
				}
				second := e.flush(t, e.opts(now))
				if got := first.Batches + second.Batches; got != len(hours) {
					t.Fatalf("batches added: %d then %d; want %d in all", first.Batches, second.Batches, len(hours))
				}
				if got := first.Counters + second.Counters; got != int64(len(hours))*fields(lo) {
					t.Fatalf("counters added: %d then %d; want %d in all", first.Counters, second.Counters, int64(len(hours))*fields(lo))
				}
				x := expected{}
				x.add(lo, hours...)
				checkTable(t, e.pg.DB, x)
				checkClean(t, e)
				return
			}
			e.flush(t, e.opts(now))
			x := expected{}
			x.add(lo, hours...)
			checkTable(t, e.pg.DB, x)
			checkClean(t, e)
		})
	}
}

// TestFlushConcurrentRuns runs several flushes at once, each with its own connections, while the
// serving side keeps incrementing closed hours late: every count lands exactly once.
func TestFlushConcurrentRuns(t *testing.T) {
	t.Parallel()
	e := setup(t, 6)
	h := baseHour()
	hours := []time.Time{h.Add(-5 * time.Hour), h.Add(-4 * time.Hour), h.Add(-3 * time.Hour), h.Add(-2 * time.Hour), h.Add(-time.Hour), h}
	x := expected{}
	lo := e.live(t, forums, hours...)
	x.add(lo, hours...)
	now := h.Add(2 * time.Hour)

	const runners, rounds, late = 4, 3, 5
	var wg sync.WaitGroup
	sums := make([]Summary, runners)
	errs := make([]error, runners)
	for i := range runners {
		rc := testenv.Redis(t)
		db := openDB(t, e.pg, fmt.Sprintf("tsconc%d", i))
		wg.Go(func() {
			for range rounds {
				s, err := Flush(t.Context(), db, rc, e.keys, e.opts(now))
				if err != nil {
					errs[i] = err
					return
				}
				sums[i].Batches += s.Batches
				sums[i].Counters += s.Counters
				sums[i].Hours += s.Hours
			}
		})
	}
	// Late increments to closed hours, racing the claims.
	for range late {
		e.live(t, forums, hours[len(hours)-2:]...)
		x.add(lo, hours[len(hours)-2:]...)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("runner %d: %v", i, err)
		}
	}
	final := e.flush(t, e.opts(now))
	var total Summary
	for _, s := range append(sums, final) {
		total.Batches += s.Batches
		total.Counters += s.Counters
		total.Hours += s.Hours
	}
	if total.Batches != total.Hours {
		t.Errorf("%d hours claimed but %d batches added", total.Hours, total.Batches)
	}
	checkTable(t, e.pg.DB, x)
	checkClean(t, e)
	var recorded int64
	if err := e.pg.DB.Get(&recorded, `SELECT sum(counters) FROM stats_flushes`); err != nil {
		t.Fatal(err)
	}
	if recorded != total.Counters {
		t.Errorf("stats_flushes records %d counters, the runs report %d", recorded, total.Counters)
	}
}

// TestFlushSameBatchTwoRuns holds one run's transaction open until a second run is waiting on the
// batch's stats_flushes row: the second adds nothing.
func TestFlushSameBatchTwoRuns(t *testing.T) {
	t.Parallel()
	e := setup(t, 3)
	h := baseHour()
	lo := e.live(t, forums, h)
	now := h.Add(2 * time.Hour)
	o := e.opts(now)
	o.hook = func(p string) error {
		if p == "claimed" {
			return errCrash
		}
		return nil
	}
	if _, err := Flush(t.Context(), e.pg.DB, e.rc, e.keys, o); !errors.Is(err, errCrash) {
		t.Fatalf("claim-only run: %v", err)
	}
	if n, _ := e.rc.SCard(t.Context(), e.keys.CounterPending()).Result(); n != 1 {
		t.Fatalf("pending batches: %d, want 1", n)
	}

	appB := "tsB" + testenv.Suffix()
	dbB := openDB(t, e.pg, appB)
	rcB := testenv.Redis(t)
	startB := make(chan struct{})
	var sumB Summary
	var errB error
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-startB
		sumB, errB = Flush(t.Context(), dbB, rcB, e.keys, e.opts(now))
	}()
	oA := e.opts(now)
	oA.hook = func(p string) error {
		if p != "added" {
			return nil
		}
		close(startB)
		err := testenv.Poll(30*time.Second, func() (bool, error) {
			var waiting int
			err := e.pg.DB.Get(&waiting, `SELECT count(*) FROM pg_stat_activity
				WHERE application_name = $1 AND wait_event_type = 'Lock'`, appB)
			return waiting > 0, err
		})
		if errors.Is(err, testenv.ErrTimeout) {
			return errors.New("the second run never waited on the batch's row")
		}
		return err
	}
	sumA, errA := Flush(t.Context(), e.pg.DB, e.rc, e.keys, oA)
	<-done
	if errA != nil || errB != nil {
		t.Fatalf("runs: %v; %v", errA, errB)
	}
	if sumA.Batches != 1 || sumB.Batches != 0 {
		t.Fatalf("batches added: A %d, B %d; want 1, 0", sumA.Batches, sumB.Batches)
	}
	x := expected{}
	x.add(lo, h)
	checkTable(t, e.pg.DB, x)
	checkClean(t, e)
}

func TestFlushLateIncrementsAreAdded(t *testing.T) {
	t.Parallel()
	e := setup(t, 2)
	h := baseHour()
	lo := e.live(t, forums, h)
	now := h.Add(2 * time.Hour)
	if s := e.flush(t, e.opts(now)); s.Batches != 1 {
		t.Fatalf("first flush %+v", s)
	}
	e.live(t, forums, h) // late: the hour was flushed already
	checkClean(t, e, h)
	if s := e.flush(t, e.opts(now)); s.Batches != 1 || s.Counters != fields(lo) {
		t.Fatalf("second flush %+v, want 1 batch of %d", s, fields(lo))
	}
	x := expected{}
	x.add(lo, h, h)
	checkTable(t, e.pg.DB, x)
	checkClean(t, e)
	var n int
	if err := e.pg.DB.Get(&n, `SELECT count(*) FROM stats_flushes WHERE hour = $1`, h); err != nil || n != 2 {
		t.Fatalf("stats_flushes rows for the hour: %d (%v), want 2", n, err)
	}
}

func TestFlushSkipsBadCounters(t *testing.T) {
	t.Parallel()
	e := setup(t, 3)
	ctx := t.Context()
	h := baseHour()
	lo := e.live(t, forums[:1], h)
	deleted := e.ads[2]
	if _, err := e.pg.DB.Exec(`DELETE FROM ads WHERE id = $1`, deleted); err != nil {
		t.Fatal(err)
	}
	good := e.ads[0]
	bad := map[string]string{
		"nonsense":                         "1",
		"0:general:i":                      "1",
		fmt.Sprintf("+%d:general:i", good): "1",
		fmt.Sprintf("0%d:general:i", good): "1",
		fmt.Sprintf("%d:General:i", good):  "1",
		fmt.Sprintf("%d:general:x", good):  "1",
		fmt.Sprintf("%d::i", good):         "1",
		fmt.Sprintf("%d:other:i", good):    "-5",
		fmt.Sprintf("%d:other:c", good):    "abc",
		fmt.Sprintf("%d:other:s", good):    "1.5",
		"999999999:general:i":              "4",
	}
	var args []any
	for f, v := range bad {
		args = append(args, f, v)
	}
	if err := e.rc.HSet(ctx, e.keys.Counters(h), args...).Err(); err != nil {
		t.Fatal(err)
	}
	// Malformed index entries.
	if err := e.rc.ZAdd(ctx, e.keys.CounterHours(), redis.Z{Score: 1, Member: "elsewhere:ctr:2026010100"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.rc.SAdd(ctx, e.keys.CounterPending(), e.keys.Prefix+"ctr:flushing:garbage").Err(); err != nil {
		t.Fatal(err)
	}
	deletedFields := []string{rkeys.CounterField(deleted, "general", 'i'), rkeys.CounterField(deleted, "general", 'c'), rkeys.CounterField(deleted, "general", 's')}

	sum := e.flush(t, e.opts(h.Add(2*time.Hour)))
	wantSkipped := int64(len(bad) + len(deletedFields) + 2)
	if sum.Skipped != wantSkipped || sum.Counters != fields(lo)-3 || sum.Batches != 1 {
		t.Fatalf("summary %+v: want %d skipped, %d counters, 1 batch", sum, wantSkipped, fields(lo)-3)
	}
	x := expected{}
	x.add(lo, h)
	for k := range x {
		if k.ad == deleted {
			delete(x, k)
		}
	}
	checkTable(t, e.pg.DB, x)
	checkClean(t, e)

	rejected, err := e.rc.HGetAll(ctx, RejectedKey(e.keys)).Result()
	if err != nil {
		t.Fatal(err)
	}
	var batch string
	for f := range rejected {
		if b, _, ok := strings.Cut(f, "|"); ok && strings.HasPrefix(b, e.keys.Prefix+"ctr:flushing:2") {
			batch = b
		}
	}
	if batch == "" {
		t.Fatalf("no batch in the rejected hash: %v", rejected)
	}
	for f, v := range bad {
		if got, ok := rejected[batch+"|"+f]; !ok || got != v {
			t.Errorf("rejected[%q] = %q (%v), want %q", batch+"|"+f, got, ok, v)
		}
	}
	for _, f := range deletedFields {
		if _, ok := rejected[batch+"|"+f]; !ok {
			t.Errorf("the deleted ad's counter %s is not in the rejected hash", f)
		}
	}
	for _, f := range []string{e.keys.CounterHours() + "|elsewhere:ctr:2026010100", e.keys.CounterPending() + "|" + e.keys.Prefix + "ctr:flushing:garbage"} {
		if _, ok := rejected[f]; !ok {
			t.Errorf("malformed index entry %s is not in the rejected hash", f)
		}
	}
	if len(rejected) != int(wantSkipped) {
		t.Errorf("rejected hash has %d fields, want %d", len(rejected), wantSkipped)
	}
	logs := e.logs.String()
	for _, want := range []string{"batch=" + batch, "nonsense", "is negative", "03:general:i", "does not exist", "elsewhere:ctr:2026010100"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
}

// TestFlushLargeBatchInChunks reads a batch too large for one HSCAN reply, crashes in the middle
// of its copy, and completes it in the next run.
func TestFlushLargeBatchInChunks(t *testing.T) {
	t.Parallel()
	e := setup(t, 60)
	h := baseHour()
	lo := e.live(t, forums, h) // 540 fields: a real hash table, scanned in several replies
	now := h.Add(2 * time.Hour)
	chunks := 0
	o := e.opts(now)
	o.scanCount = 50
	o.hook = func(p string) error {
		if p == "copied" {
			if chunks++; chunks == 3 {
				return errCrash
			}
		}
		return nil
	}
	if _, err := Flush(t.Context(), e.pg.DB, e.rc, e.keys, o); !errors.Is(err, errCrash) {
		t.Fatalf("first run: %v, want the crash in the third chunk", err)
	}
	checkTable(t, e.pg.DB, expected{})
	chunks = 0
	o.hook = func(p string) error {
		if p == "copied" {
			chunks++
		}
		return nil
	}
	if sum := e.flush(t, o); sum.Counters != fields(lo) || sum.Batches != 1 {
		t.Fatalf("second run %+v, want 1 batch of %d", sum, fields(lo))
	}
	if chunks < 3 {
		t.Fatalf("the batch was read in %d chunks; the test needs several", chunks)
	}
	x := expected{}
	x.add(lo, h)
	checkTable(t, e.pg.DB, x)
	checkClean(t, e)
}
