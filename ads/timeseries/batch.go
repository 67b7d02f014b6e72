package timeseries

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/forumads/forumads/ads/rkeys"
)

// addSQL adds ts_batch into ad_stats_hourly and returns the number of counters added. One pass
// groups by (ad, forum): a counter HSCAN returned twice is one field (the canonical field names make
// (ad, forum, kind) one field), with one value, so max() of each kind deduplicates it. The upserts
// run in (ad, forum) order, so concurrent runs lock rows in the same order.
const addSQL = `
WITH agg AS (
    SELECT ad_id, forum,
           coalesce(max(n) FILTER (WHERE kind = 'i'), 0) AS i,
           coalesce(max(n) FILTER (WHERE kind = 'c'), 0) AS c,
           coalesce(max(n) FILTER (WHERE kind = 's'), 0) AS s,
           count(DISTINCT kind) AS fields
    FROM ts_batch GROUP BY ad_id, forum
), ins AS (
    INSERT INTO ad_stats_hourly AS h (ad_id, forum, hour, impressions, clicks, spend_micros)
    SELECT ad_id, forum, $1, i, c, s FROM agg ORDER BY ad_id, forum
    ON CONFLICT (ad_id, forum, hour) DO UPDATE SET
        impressions = h.impressions + excluded.impressions,
        clicks = h.clicks + excluded.clicks,
        spend_micros = h.spend_micros + excluded.spend_micros
)
SELECT coalesce(sum(fields), 0) FROM agg`

// addBatch adds one batch into ad_stats_hourly in one transaction guarded by its stats_flushes row.
func (f *flusher) addBatch(ctx context.Context, batch string, hour time.Time) error {
	tx, err := f.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("timeseries: batch %s: begin: %w", batch, err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()
	res, err := tx.ExecContext(ctx, `INSERT INTO stats_flushes (batch, hour, counters) VALUES ($1, $2, 0)
		ON CONFLICT (batch) DO NOTHING`, batch, hour)
	if err != nil {
		return fmt.Errorf("timeseries: batch %s: recording it in stats_flushes: %w", batch, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("timeseries: batch %s: %w", batch, err)
	} else if n == 0 {
		f.log.Info("timeseries: batch was added by an earlier run; forgetting it", "batch", batch)
		return nil
	}
	// The sorts of a large batch fit in memory instead of spilling to disk.
	if _, err := tx.ExecContext(ctx, `SET LOCAL work_mem = '64MB'`); err != nil {
		return fmt.Errorf("timeseries: batch %s: %w", batch, err)
	}
	if _, err := tx.ExecContext(ctx, `CREATE TEMP TABLE ts_batch (ad_id bigint NOT NULL, forum text NOT NULL,
		kind "char" NOT NULL, n bigint NOT NULL) ON COMMIT DROP`); err != nil {
		return fmt.Errorf("timeseries: batch %s: temporary table: %w", batch, err)
	}
	rej := &rejects{f: f, batch: batch}
	if err := f.copyBatch(ctx, tx, batch, rej); err != nil {
		return err
	}
	if err := f.rejectUnknownAds(ctx, tx, rej); err != nil {
		return err
	}
	if err := rej.flush(ctx); err != nil {
		return err
	}
	var added int64
	if err := tx.GetContext(ctx, &added, addSQL, hour); err != nil {
		return fmt.Errorf("timeseries: batch %s: adding it into ad_stats_hourly: %w", batch, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE stats_flushes SET counters = $2 WHERE batch = $1`, batch, added); err != nil {
		return fmt.Errorf("timeseries: batch %s: %w", batch, err)
	}
	if err := f.hook("added"); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("timeseries: batch %s: commit: %w", batch, err)
	}
	committed = true
	f.sum.Batches++
	f.sum.Counters += added
	f.sum.Skipped += rej.n
	if rej.n > 0 {
		f.log.Warn("timeseries: counters skipped", "batch", batch, "skipped", rej.n, "added", added,
			"rejected", RejectedKey(f.keys))
	}
	f.log.Debug("timeseries: batch added", "batch", batch, "hour", hour, "counters", added)
	return nil
}

// copyBatch streams the batch hash into ts_batch: one goroutine reads HSCAN chunks while this one
// parses and copies the previous chunk.
func (f *flusher) copyBatch(ctx context.Context, tx *sqlx.Tx, batch string, rej *rejects) error {
	stmt, err := tx.PrepareContext(ctx, `COPY ts_batch (ad_id, forum, kind, n) FROM STDIN`)
	if err != nil {
		return fmt.Errorf("timeseries: batch %s: copy: %w", batch, err)
	}
	defer stmt.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan []string, 2)
	scanErr := make(chan error, 1)
	go func() {
		defer close(chunks)
		var cursor uint64
		for {
			kv, next, err := f.rc.HScan(sctx, batch, cursor, "", int64(f.o.scanCount)).Result()
			if err != nil {
				scanErr <- fmt.Errorf("timeseries: batch %s: HSCAN: %w", batch, err)
				return
			}
			select {
			case chunks <- kv:
			case <-sctx.Done():
				return
			}
			if cursor = next; cursor == 0 {
				return
			}
		}
	}()
	kinds := [256]string{rkeys.Impressions: "i", rkeys.Clicks: "c", rkeys.Spend: "s"}
	for kv := range chunks {
		for i := 0; i+1 < len(kv); i += 2 {
			c, err := parseCounter(kv[i], kv[i+1])
			if err != nil {
				if err := rej.add(ctx, kv[i], kv[i+1], err.Error()); err != nil {
					return err
				}
				continue
			}
			if _, err := stmt.ExecContext(ctx, c.ad, c.forum, kinds[c.kind], c.n); err != nil {
				return fmt.Errorf("timeseries: batch %s: copy: %w", batch, err)
			}
		}
		if err := f.hook("copied"); err != nil {
			return err
		}
	}
	select {
	case err := <-scanErr:
		return err
	default:
	}
	if _, err := stmt.ExecContext(ctx); err != nil {
		return fmt.Errorf("timeseries: batch %s: copy: %w", batch, err)
	}
	return nil
}

// rejectUnknownAds removes from ts_batch the counters of ads that do not exist, as rejected.
func (f *flusher) rejectUnknownAds(ctx context.Context, tx *sqlx.Tx, rej *rejects) error {
	// DISTINCT: HSCAN may have returned a field twice.
	rows, err := tx.QueryContext(ctx, `WITH del AS (
		DELETE FROM ts_batch t WHERE NOT EXISTS (SELECT 1 FROM ads WHERE ads.id = t.ad_id) RETURNING ad_id, forum, kind, n
	) SELECT DISTINCT ad_id, forum, kind, n FROM del`)
	if err != nil {
		return fmt.Errorf("timeseries: batch %s: finding deleted ads: %w", rej.batch, err)
	}
	defer rows.Close()
	for rows.Next() {
		var c counter
		var kind string
		if err := rows.Scan(&c.ad, &c.forum, &kind, &c.n); err != nil {
			return fmt.Errorf("timeseries: batch %s: %w", rej.batch, err)
		}
		field := rkeys.CounterField(c.ad, c.forum, kind[0])
		if err := rej.add(ctx, field, fmt.Sprint(c.n), fmt.Sprintf("ad %d does not exist", c.ad)); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("timeseries: batch %s: finding deleted ads: %w", rej.batch, err)
	}
	return nil
}

// rejects collects a batch's refused counters, logs the first ones and writes them all to the
// rejected hash in chunks.
type rejects struct {
	f     *flusher
	batch string
	n     int64
	buf   []any
}

func (r *rejects) add(ctx context.Context, field, value, why string) error {
	r.n++
	if r.n <= logFirst {
		r.f.log.Warn("timeseries: counter skipped", "batch", r.batch, "field", field, "value", value, "reason", why)
	} else if r.n == logFirst+1 {
		r.f.log.Warn("timeseries: more counters skipped; see the rejected hash", "batch", r.batch,
			"rejected", RejectedKey(r.f.keys))
	}
	r.buf = append(r.buf, r.batch+"|"+field, value)
	if len(r.buf) >= 2*rejectChunk {
		return r.flush(ctx)
	}
	return nil
}

func (r *rejects) flush(ctx context.Context) error {
	if len(r.buf) == 0 {
		return nil
	}
	if err := r.f.rc.HSet(ctx, RejectedKey(r.f.keys), r.buf...).Err(); err != nil {
		return fmt.Errorf("timeseries: batch %s: recording skipped counters in %s: %w", r.batch, RejectedKey(r.f.keys), err)
	}
	r.buf = r.buf[:0]
	return nil
}
