package ads_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/forumads/forumads/ads/feedgen"
	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/ads/statsgen"
	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/broker/amqpbroker"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/testdb"
	"github.com/forumads/forumads/internal/testenv"
	"github.com/forumads/forumads/tasks/ads"
)

type fixture struct {
	reg  *celery.Registry
	pg   *testdb.PG
	keys rkeys.Keys
	deps ads.Deps
}

func setup(t *testing.T, client *celery.Client) *fixture {
	t.Helper()
	pg := testdb.Postgres(t)
	rc := testenv.Redis(t)
	keys := rkeys.New("t:" + testenv.Suffix() + ":")
	t.Cleanup(func() {
		ctx := context.Background()
		it := rc.Scan(ctx, 0, keys.Prefix+"*", 1000).Iterator()
		for it.Next(ctx) {
			rc.Del(ctx, it.Val())
		}
	})
	deps := ads.Deps{DB: pg.DB, Redis: rc, Keys: keys, Client: client, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	reg := celery.NewRegistry()
	ads.Register(reg, deps)
	return &fixture{reg: reg, pg: pg, keys: keys, deps: deps}
}

func writeFeed(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "feed.csv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	err = feedgen.Write(f, feedgen.Options{Advertisers: 6, CampaignsPer: 2, AdsPer: 3, Forums: 4, Seed: 7, Now: time.Now().UTC()})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func arg(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// The whole data flow on one small feed: import (with PROGRESS), score, warm the cache, then
// counters in Redis flushed into PostgreSQL.
func TestPipelineEndToEnd(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	ctx := context.Background()
	feed := writeFeed(t)

	var progress [][2]int64
	res, err := f.reg.ApplyWith(ctx, ads.ImportFeed, []json.RawMessage{arg(feed)}, map[string]json.RawMessage{"batch_size": arg(10)},
		celery.ApplyOptions{OnState: func(_ context.Context, state string, meta any) error {
			if state != ads.ProgressState {
				t.Errorf("state %q, want PROGRESS", state)
			}
			m, ok := meta.(ads.Progress)
			if !ok {
				t.Fatalf("PROGRESS meta is a %T, want ads.Progress", meta)
			}
			if m.Pending || m.Description != ads.ProgressDescription || m.Percent != ads.Percent(m.Current, m.Total) {
				t.Errorf("PROGRESS meta %+v: want pending false, the description and percent of current/total", m)
			}
			progress = append(progress, [2]int64{m.Current, m.Total})
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	var sum struct {
		RunID      int64 `json:"run_id"`
		RowsTotal  int64 `json:"rows_total"`
		RowsOK     int64 `json:"rows_ok"`
		RowsFailed int64 `json:"rows_failed"`
	}
	if err := json.Unmarshal(res, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.RunID == 0 || sum.RowsTotal == 0 || sum.RowsOK != sum.RowsTotal || sum.RowsFailed != 0 {
		t.Fatalf("import summary %s", res)
	}
	if len(progress) == 0 {
		t.Fatal("no PROGRESS reported")
	}
	for i, p := range progress {
		if p[1] != sum.RowsTotal || p[0] > p[1] || (i > 0 && p[0] < progress[i-1][0]) {
			t.Fatalf("progress %v is not monotonic up to the total %d", progress, sum.RowsTotal)
		}
	}
	if last := progress[len(progress)-1]; last[0] != last[1] {
		t.Fatalf("progress ends at %v, not at the total", last)
	}
	var ads1 int
	if err := f.pg.DB.Get(&ads1, "SELECT count(*) FROM ads"); err != nil || ads1 != 6*2*3 {
		t.Fatalf("%d ads in PostgreSQL (%v), want 36", ads1, err)
	}

	res, err = f.reg.Apply(ctx, ads.Score, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var scored struct {
		Ads   int `json:"ads"`
		Lists int `json:"lists"`
	}
	if err := json.Unmarshal(res, &scored); err != nil || scored.Ads == 0 || scored.Lists == 0 {
		t.Fatalf("score summary %s (%v)", res, err)
	}
	var ranked []rkeys.Candidate
	for _, p := range rkeys.Placements {
		raw, err := f.deps.Redis.Get(ctx, f.keys.RankDefault(p)).Bytes()
		if err != nil {
			t.Fatalf("default list of %s: %v", p, err)
		}
		var c []rkeys.Candidate
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatal(err)
		}
		ranked = append(ranked, c...)
	}

	res, err = f.reg.Apply(ctx, ads.WarmCache, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var warmed struct {
		Creatives int `json:"creatives"`
		Switches  int `json:"switches"`
	}
	if err := json.Unmarshal(res, &warmed); err != nil || warmed.Creatives == 0 || warmed.Switches == 0 {
		t.Fatalf("warm summary %s (%v)", res, err)
	}
	if len(ranked) > 0 {
		var cr rkeys.Creative
		raw, err := f.deps.Redis.Get(ctx, f.keys.Creative(ranked[0].Ad)).Bytes()
		if err != nil || json.Unmarshal(raw, &cr) != nil || cr.ID != ranked[0].Ad || cr.ClickURL == "" {
			t.Fatalf("creative of ranked ad %d: %s (%v)", ranked[0].Ad, raw, err)
		}
	}

	// Counters of a closed hour, as the serving API writes them, land in PostgreSQL once.
	var ids []int64
	if err := f.pg.DB.Select(&ids, "SELECT id FROM ads ORDER BY id LIMIT 5"); err != nil {
		t.Fatal(err)
	}
	hour := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	live := statsgen.LiveOptions{Ads: ids, Forums: []string{"general"}, Hours: []time.Time{hour}, Seed: 3}
	if err := statsgen.Live(ctx, f.deps.Redis, f.keys, live); err != nil {
		t.Fatal(err)
	}
	var want int64
	for _, id := range ids {
		want += live.Count(id, "general", hour).Impressions
	}
	for range 2 { // a second run finds nothing more to add
		if _, err := f.reg.Apply(ctx, ads.WarmTimeseries, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	var got int64
	if err := f.pg.DB.Get(&got, "SELECT coalesce(sum(impressions), 0) FROM ad_stats_hourly WHERE hour = $1", hour); err != nil {
		t.Fatal(err)
	}
	if got != want || want == 0 {
		t.Fatalf("impressions flushed %d, want %d", got, want)
	}
}

// Every task succeeds on an empty database: nothing to do is not an error.
func TestTasksSucceedOnEmptyDatabase(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	for _, name := range []string{ads.Score, ads.WarmCache, ads.WarmTimeseries} {
		if res, err := f.reg.Apply(context.Background(), name, nil, nil); err != nil {
			t.Errorf("%s on an empty database: %v", name, err)
		} else if !json.Valid(res) {
			t.Errorf("%s returned %q", name, res)
		}
	}
}

func TestImportFailuresAreClear(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	ctx := context.Background()
	_, err := f.reg.Apply(ctx, ads.ImportFeed, []json.RawMessage{arg("/nonexistent/feed.csv")}, nil)
	typ, _, msg := celery.ExceptionOf(err)
	if typ != "FeedImportError" || msg == "" {
		t.Fatalf("a missing feed: %s: %s", typ, msg)
	}
	var failed int
	if err := f.pg.DB.Get(&failed, "SELECT count(*) FROM import_runs WHERE status = 'failed'"); err != nil || failed != 1 {
		t.Fatalf("failed import runs recorded: %d (%v)", failed, err)
	}
	for _, tc := range []struct {
		args   []json.RawMessage
		kwargs map[string]json.RawMessage
	}{
		{args: []json.RawMessage{arg("  ")}},
		{args: []json.RawMessage{arg("x.csv")}, kwargs: map[string]json.RawMessage{"batch_size": arg(0)}},
		{args: nil},
	} {
		_, err := f.reg.Apply(ctx, ads.ImportFeed, tc.args, tc.kwargs)
		if typ, _, _ := celery.ExceptionOf(err); typ != "TypeError" {
			t.Errorf("args %s %v: %v (%s), want TypeError", tc.args, tc.kwargs, err, typ)
		}
	}
}

// An import that changed rows sends ads.score, and scoring sends ads.warm_cache, each marked as
// the child of the task that sent it.
func TestFollowUpTasksAreSent(t *testing.T) {
	t.Parallel()
	queue := testenv.Name(t, "ads")
	testenv.DeleteQueuesAtCleanup(t, queue)
	cfg := celery.Config{BrokerURL: testenv.AMQPURL(), TaskRoutes: celery.Routes{{Pattern: "ads.*", Queue: queue}}}.WithDefaults()
	br, err := amqpbroker.New(cfg.BrokerURL, amqpbroker.Options{ConnectionName: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = br.Close() })
	client, err := celery.NewClient(celery.ClientOptions{Config: cfg, Broker: br})
	if err != nil {
		t.Fatal(err)
	}
	f := setup(t, client)
	ctx := context.Background()
	feed := writeFeed(t)
	if _, err := f.reg.ApplyWith(ctx, ads.ImportFeed, []json.RawMessage{arg(feed)}, nil, celery.ApplyOptions{ID: "import-1", OnState: func(context.Context, string, any) error { return nil }}); err != nil {
		t.Fatal(err)
	}
	// Importing the same feed again changes nothing, so it sends nothing.
	if _, err := f.reg.ApplyWith(ctx, ads.ImportFeed, []json.RawMessage{arg(feed)}, nil, celery.ApplyOptions{ID: "import-2", OnState: func(context.Context, string, any) error { return nil }}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.ApplyWith(ctx, ads.Score, nil, nil, celery.ApplyOptions{ID: "score-1"}); err != nil {
		t.Fatal(err)
	}
	conn := testenv.AMQP(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 3 {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		m, err := protocol.Decode(protocol.Envelope{Body: d.Body, ContentType: d.ContentType, ContentEncoding: d.ContentEncoding, Headers: d.Headers}, protocol.Accept{})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s<-%s", m.Task, m.ParentID))
	}
	want := fmt.Sprint([]string{"ads.score<-import-1", "ads.warm_cache<-score-1"})
	if fmt.Sprint(got) != want {
		t.Fatalf("follow-up messages %v, want %s", got, want)
	}
}

func TestTemporary(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("title: too long"), false},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
		{fmt.Errorf("score: %w", &pq.Error{Code: "57P01"}), true}, // admin shutdown
		{&pq.Error{Code: "40P01"}, true},                          // deadlock
		{&pq.Error{Code: "23505"}, false},                         // unique violation
		{errors.New("dial tcp 127.0.0.1:5432: connect: connection refused"), true},
	} {
		if got := ads.Temporary(tc.err); got != tc.want {
			t.Errorf("Temporary(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
