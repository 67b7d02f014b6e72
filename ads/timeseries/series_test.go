package timeseries

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/rkeys"
)

func TestSeriesContent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		liveFields int
		withLive   bool
	}{
		{"with the open hour", 0, true},
		{"open hour over the limit", 3, false},
		{"open hour never", -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkSeries(t, tc.liveFields, tc.withLive)
		})
	}
}

func checkSeries(t *testing.T, liveFields int, withLive bool) {
	e := setup(t, 3)
	ctx := t.Context()
	a, b, d := e.ads[0], e.ads[1], e.ads[2]
	today := time.Now().UTC().Truncate(24 * time.Hour)
	now := today.Add(14*time.Hour + 20*time.Minute)
	cur := now.Truncate(time.Hour)
	yesterday := today.Add(-24 * time.Hour)
	for _, r := range []struct {
		ad      int64
		forum   string
		hour    time.Time
		i, c, s int64
	}{
		{a, "f1", cur.Add(-time.Hour), 10, 1, 100},
		{a, "f2", cur.Add(-time.Hour), 5, 0, 0},
		{a, "f1", yesterday.Add(15 * time.Hour), 7, 0, 0}, // the first hourly bucket
		{a, "f1", yesterday.Add(14 * time.Hour), 3, 0, 0}, // before the hourly window
		{a, "f1", today.Add(-6 * 24 * time.Hour), 2, 0, 0},
		{a, "f1", today.Add(-6*24*time.Hour - time.Hour), 1000, 0, 0}, // before the daily window
		{d, "f1", today.Add(-6*24*time.Hour - time.Hour), 1000, 0, 0},
	} {
		if _, err := e.pg.DB.Exec(`INSERT INTO ad_stats_hourly (ad_id, forum, hour, impressions, clicks, spend_micros)
			VALUES ($1, $2, $3, $4, $5, $6)`, r.ad, r.forum, r.hour, r.i, r.c, r.s); err != nil {
			t.Fatal(err)
		}
	}
	open := e.keys.Counters(cur)
	if err := e.rc.HSet(ctx, open,
		rkeys.CounterField(a, "f1", rkeys.Impressions), 4, rkeys.CounterField(a, "f1", rkeys.Clicks), 1,
		rkeys.CounterField(a, "f1", rkeys.Spend), 50, rkeys.CounterField(b, "f2", rkeys.Impressions), 9,
		rkeys.CounterField(999999999, "f1", rkeys.Impressions), 1, "junk", 1).Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.rc.ZAdd(ctx, e.keys.CounterHours(), redis.Z{Score: float64(cur.Unix()), Member: open}).Err(); err != nil {
		t.Fatal(err)
	}

	o := e.opts(now)
	o.LiveFields = liveFields
	sum := e.flush(t, o)

	hourly := func(pts map[int]rkeys.Point) []rkeys.Point {
		out := make([]rkeys.Point, 24)
		for i := range out {
			out[i] = pts[i]
			out[i].T = cur.Add(time.Duration(i-23) * time.Hour)
		}
		return out
	}
	daily := func(pts map[int]rkeys.Point) []rkeys.Point {
		out := make([]rkeys.Point, 7)
		for i := range out {
			out[i] = pts[i]
			out[i].T = today.Add(time.Duration(i-6) * 24 * time.Hour)
		}
		return out
	}
	want := map[int64]rkeys.Series{}
	if withLive {
		want[a] = rkeys.Series{Ad: a, GeneratedAt: now,
			Hourly: hourly(map[int]rkeys.Point{0: {Impressions: 7}, 22: {Impressions: 15, Clicks: 1, Spend: 100}, 23: {Impressions: 4, Clicks: 1, Spend: 50}}),
			Daily:  daily(map[int]rkeys.Point{0: {Impressions: 2}, 5: {Impressions: 10}, 6: {Impressions: 19, Clicks: 2, Spend: 150}})}
		want[b] = rkeys.Series{Ad: b, GeneratedAt: now,
			Hourly: hourly(map[int]rkeys.Point{23: {Impressions: 9}}),
			Daily:  daily(map[int]rkeys.Point{6: {Impressions: 9}})}
	} else {
		want[a] = rkeys.Series{Ad: a, GeneratedAt: now,
			Hourly: hourly(map[int]rkeys.Point{0: {Impressions: 7}, 22: {Impressions: 15, Clicks: 1, Spend: 100}}),
			Daily:  daily(map[int]rkeys.Point{0: {Impressions: 2}, 5: {Impressions: 10}, 6: {Impressions: 15, Clicks: 1, Spend: 100}})}
	}
	if sum.Series != len(want) {
		t.Errorf("summary %+v, want %d series", sum, len(want))
	}
	for _, ad := range []int64{a, b, d, 999999999} {
		raw, err := e.rc.Get(ctx, e.keys.Series(ad)).Bytes()
		w, ok := want[ad]
		if !ok {
			if err != redis.Nil {
				t.Errorf("ad %d has a series (%v): %s", ad, err, raw)
			}
			continue
		}
		if err != nil {
			t.Fatalf("series of ad %d: %v", ad, err)
		}
		var got rkeys.Series
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatalf("series of ad %d: %v: %s", ad, err, raw)
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("series of ad %d:\n got %+v\nwant %+v", ad, got, w)
		}
		exp, err := e.rc.ExpireTime(ctx, e.keys.Series(ad)).Result()
		if want := today.Add(7 * 24 * time.Hour).Unix(); err != nil || int64(exp/time.Second) != want {
			t.Errorf("series of ad %d expires at %d (%v), want %d (its newest data leaving the window)", ad, int64(exp/time.Second), err, want)
		}
	}
	// The open hour is not flushed.
	if n, err := e.rc.HLen(ctx, open).Result(); err != nil || n != 6 {
		t.Errorf("open hour hash: %d fields (%v), want 6", n, err)
	}
}

func TestWindow(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 0, 5, 0, 0, time.FixedZone("X", 3600))
	w := newWindow(now)
	if want := time.Date(2026, 2, 28, 23, 0, 0, 0, time.UTC); !w.curHour.Equal(want) {
		t.Errorf("current hour %v, want %v (UTC)", w.curHour, want)
	}
	if want := time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC); !w.today.Equal(want) {
		t.Errorf("today %v, want %v", w.today, want)
	}
	if want := time.Date(2026, 2, 22, 0, 0, 0, 0, time.UTC); !w.dayStart.Equal(want) {
		t.Errorf("first day %v, want %v", w.dayStart, want)
	}
	if want := time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC); !w.hourStart.Equal(want) {
		t.Errorf("first hour %v, want %v", w.hourStart, want)
	}
	s := w.newSeries(1)
	s.add(w.curHour.Add(time.Hour), counts{i: 1})   // future: ignored
	s.add(w.dayStart.Add(-time.Hour), counts{i: 1}) // too old: ignored
	s.add(w.dayStart, counts{i: 2})
	s.add(w.curHour, counts{i: 3})
	if s.out.Daily[0].Impressions != 2 || s.out.Daily[6].Impressions != 3 || s.out.Hourly[23].Impressions != 3 {
		t.Errorf("buckets %+v", s.out)
	}
	if !s.expiry().Equal(w.today.Add(7 * 24 * time.Hour)) {
		t.Errorf("expiry %v", s.expiry())
	}
}
