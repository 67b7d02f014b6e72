package timeseries

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/lib/pq"
	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/rkeys"
)

const day = 24 * time.Hour

// window is the span of the series written at one instant: 24 hours ending with the current one,
// 7 days ending with today (UTC).
type window struct {
	now       time.Time
	curHour   time.Time // the current (open) hour
	hourStart time.Time // the first hourly bucket
	today     time.Time
	dayStart  time.Time // the first daily bucket
}

func newWindow(now time.Time) window {
	now = now.UTC()
	w := window{now: now, curHour: now.Truncate(time.Hour), today: now.Truncate(day)}
	w.hourStart = w.curHour.Add(-23 * time.Hour)
	w.dayStart = w.today.Add(-6 * day)
	return w
}

// counts are one bucket's sums.
type counts struct{ i, c, s int64 }

// series accumulates one ad's buckets.
type series struct {
	w      *window
	out    rkeys.Series
	newest time.Time // the newest hour with data
}

func (w *window) newSeries(ad int64) *series {
	s := &series{w: w, out: rkeys.Series{Ad: ad, GeneratedAt: w.now,
		Hourly: make([]rkeys.Point, 24), Daily: make([]rkeys.Point, 7)}}
	for i := range s.out.Hourly {
		s.out.Hourly[i].T = w.hourStart.Add(time.Duration(i) * time.Hour)
	}
	for i := range s.out.Daily {
		s.out.Daily[i].T = w.dayStart.Add(time.Duration(i) * day)
	}
	return s
}

// add adds an hour's counts; hours outside the window are ignored.
func (s *series) add(hour time.Time, c counts) {
	hour = hour.UTC()
	if hour.Before(s.w.dayStart) || hour.After(s.w.curHour) {
		return
	}
	if hour.After(s.newest) {
		s.newest = hour
	}
	bump := func(p *rkeys.Point) {
		p.Impressions += c.i
		p.Clicks += c.c
		p.Spend += c.s
	}
	if !hour.Before(s.w.hourStart) {
		bump(&s.out.Hourly[hour.Sub(s.w.hourStart)/time.Hour])
	}
	bump(&s.out.Daily[hour.Truncate(day).Sub(s.w.dayStart)/day])
}

// expiry is when the series' newest data leaves the 7-day window: from then on it would be zeros.
func (s *series) expiry() time.Time { return s.newest.Truncate(day).Add(7 * day) }

// seriesWriter pipelines SETs of series.
type seriesWriter struct {
	f    *flusher
	pipe redis.Pipeliner
	n    int
}

func (sw *seriesWriter) write(ctx context.Context, s *series) error {
	data, err := json.Marshal(s.out)
	if err != nil {
		return fmt.Errorf("timeseries: series of ad %d: %w", s.out.Ad, err)
	}
	sw.pipe.SetArgs(ctx, sw.f.keys.Series(s.out.Ad), data, redis.SetArgs{ExpireAt: s.expiry()})
	if sw.n++; sw.n >= seriesChunk {
		return sw.flush(ctx)
	}
	return nil
}

func (sw *seriesWriter) flush(ctx context.Context) error {
	if sw.n == 0 {
		return nil
	}
	if _, err := sw.pipe.Exec(ctx); err != nil {
		return fmt.Errorf("timeseries: writing series: %w", err)
	}
	sw.f.sum.Series += sw.n
	sw.n = 0
	return nil
}

// writeSeries writes the series of every ad with data in the window.
func (f *flusher) writeSeries(ctx context.Context) error {
	w := newWindow(f.now)
	tx, err := f.db.BeginTxx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("timeseries: series: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	// The snapshot is taken now, before Redis is read: a batch flushed in between is then in neither
	// (the series is short until the next run), never in both.
	if _, err := tx.ExecContext(ctx, `SELECT 1`); err != nil {
		return fmt.Errorf("timeseries: series: %w", err)
	}
	live, err := f.readLive(ctx, &w)
	if err != nil {
		return err
	}
	sw := &seriesWriter{f: f, pipe: f.rc.Pipeline()}
	rows, err := tx.QueryContext(ctx, `SELECT ad_id, hour, sum(impressions), sum(clicks), sum(spend_micros)
		FROM ad_stats_hourly WHERE hour >= $1 AND hour <= $2 GROUP BY ad_id, hour ORDER BY ad_id, hour`,
		w.dayStart, w.curHour)
	if err != nil {
		return fmt.Errorf("timeseries: series: reading ad_stats_hourly: %w", err)
	}
	defer rows.Close()
	var cur *series
	finish := func(s *series) error {
		for h, c := range live[s.out.Ad] {
			s.add(h, c)
		}
		delete(live, s.out.Ad)
		return sw.write(ctx, s)
	}
	for rows.Next() {
		var ad int64
		var hour time.Time
		var c counts
		if err := rows.Scan(&ad, &hour, &c.i, &c.c, &c.s); err != nil {
			return fmt.Errorf("timeseries: series: %w", err)
		}
		if cur == nil || cur.out.Ad != ad {
			if cur != nil {
				if err := finish(cur); err != nil {
					return err
				}
			}
			cur = w.newSeries(ad)
		}
		cur.add(hour, c)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("timeseries: series: reading ad_stats_hourly: %w", err)
	}
	if cur != nil {
		if err := finish(cur); err != nil {
			return err
		}
	}
	_ = rows.Close()
	if len(live) > 0 {
		// Ads with unflushed counters only: those that exist.
		ids := make([]int64, 0, len(live))
		for id := range live {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		var exist []int64
		if err := tx.SelectContext(ctx, &exist, `SELECT id FROM ads WHERE id = ANY($1) ORDER BY id`, pq.Array(ids)); err != nil {
			return fmt.Errorf("timeseries: series: %w", err)
		}
		for _, id := range exist {
			if err := finish(w.newSeries(id)); err != nil {
				return err
			}
		}
	}
	return sw.flush(ctx)
}

// readLive sums the counters of the hours not yet flushed (still listed in CounterHours) within the
// window, by ad and hour, unless their hashes hold more than LiveFields fields together. Malformed
// counters are left out here; the flush of their hour reports them.
func (f *flusher) readLive(ctx context.Context, w *window) (map[int64]map[time.Time]counts, error) {
	if f.o.LiveFields < 0 {
		return nil, nil
	}
	members, err := f.rc.ZRange(ctx, f.keys.CounterHours(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("timeseries: series: reading %s: %w", f.keys.CounterHours(), err)
	}
	type hourKey struct {
		key  string
		hour time.Time
		n    *redis.IntCmd
	}
	var hks []hourKey
	pipe := f.rc.Pipeline()
	for _, m := range members {
		h, ok := hourOfCounters(f.keys, m)
		if !ok || h.Before(w.dayStart) || h.After(w.curHour) {
			continue
		}
		hks = append(hks, hourKey{key: m, hour: h, n: pipe.HLen(ctx, m)})
	}
	if len(hks) == 0 {
		return nil, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("timeseries: series: HLEN of the open hours: %w", err)
	}
	var total int64
	for _, hk := range hks {
		total += hk.n.Val()
	}
	if total > int64(f.o.LiveFields) {
		f.log.Info("timeseries: series leave out the hours not yet flushed", "fields", total, "live_fields", f.o.LiveFields)
		return nil, nil
	}
	live := map[int64]map[time.Time]counts{}
	for _, hk := range hks {
		var cursor uint64
		for {
			kv, next, err := f.rc.HScan(ctx, hk.key, cursor, "", int64(f.o.scanCount)).Result()
			if err != nil {
				return nil, fmt.Errorf("timeseries: series: HSCAN %s: %w", hk.key, err)
			}
			// A field returned twice by HSCAN would count twice here; the series is a display and
			// the next run rewrites it.
			for i := 0; i+1 < len(kv); i += 2 {
				c, err := parseCounter(kv[i], kv[i+1])
				if err != nil {
					continue
				}
				byHour := live[c.ad]
				if byHour == nil {
					byHour = map[time.Time]counts{}
					live[c.ad] = byHour
				}
				b := byHour[hk.hour]
				switch c.kind {
				case rkeys.Impressions:
					b.i += c.n
				case rkeys.Clicks:
					b.c += c.n
				case rkeys.Spend:
					b.s += c.n
				}
				byHour[hk.hour] = b
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
	}
	return live, nil
}
