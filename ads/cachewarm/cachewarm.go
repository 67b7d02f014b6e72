// Package cachewarm is the engine of the ads.warm_cache task: it writes to Redis what the serving API
// needs besides the rank lists, the creatives of the ranked ads and the feature switches.
//
// # Creatives
//
// The ads to warm are read from Redis, not recomputed: every ad in a list of the current rank index
// ([rkeys.Keys.RankIndex]), so warming follows exactly what ads.score published. Each such ad whose
// ad, campaign and advertiser rows are still active gets its [rkeys.Creative] (with the advertiser's
// name) written and its id added to [rkeys.Keys.CreativeIndex], creative and index entry in one
// MULTI, in batches. A listed ad that is gone from PostgreSQL or no longer active is neither written
// nor deleted ([Summary].Held): the next scoring drops it from the lists, and the run after that
// deletes its creative. Every warmed creative that no current list references is deleted.
//
// Deletions never hit a creative a current list references: the lists are read under a rank
// generation ([rkeys.Keys.RankMeta]) and the deletions run in a MULTI under WATCH of the meta hash,
// after checking that the generation is still the one read; if a scoring run published meanwhile,
// the new lists are read and warmed again first. A rank list that cannot be decoded is reported as
// an error after the other creatives are written, and then nothing is deleted.
//
// # Switches
//
// The feature_switches table replaces the [rkeys.Keys.Switches] hash in one MULTI (DEL, then HSET of
// every row as JSON [rkeys.Switch]), so switches removed from the table disappear and readers never
// see the hash half written. The value column's JSON is carried as it is.
//
// Warm is idempotent, and succeeds on an empty database (no creatives; the switches schema.sql seeds).
package cachewarm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/ads/scoring"
)

const (
	// batch is how many keys one Redis round trip or one PostgreSQL query carries.
	batch = 1000
	// listBatch is how many rank lists one MGET reads (up to ~20 KB each).
	listBatch = 100
	// attempts is how often the creatives are warmed again when scoring keeps publishing meanwhile.
	attempts = 5
)

// Options tune a warming run. The zero value uses every default.
type Options struct {
	// Logger receives warnings about bad data and one line per run (default: discarded).
	Logger *slog.Logger
}

// Summary describes one warming run.
type Summary struct {
	// Creatives is how many creatives were written.
	Creatives int `json:"creatives"`
	// Removed is how many creatives no current list references were deleted.
	Removed int `json:"removed"`
	// Switches is how many feature switches were written.
	Switches int `json:"switches"`
	// Referenced is how many distinct ads the current rank lists hold.
	Referenced int `json:"referenced"`
	// Held is how many referenced ads were not written: gone from PostgreSQL, or not active any more.
	Held int `json:"held"`
	// Generation is the rank generation the creatives were warmed for (0: no scoring yet).
	Generation int64 `json:"generation"`
}

// Warm writes the creatives of every ranked ad and the feature switches, and deletes the creatives no
// rank list references (see the package documentation).
func Warm(ctx context.Context, db *sqlx.DB, rc redis.UniversalClient, keys rkeys.Keys, o Options) (Summary, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var sum Summary
	n, err := syncSwitches(ctx, db, rc, keys)
	if err != nil {
		return sum, fmt.Errorf("cachewarm: %w", err)
	}
	sum.Switches = n

	for attempt := 1; ; attempt++ {
		gen, err := generation(ctx, rc, keys)
		if err != nil {
			return sum, fmt.Errorf("cachewarm: %w", err)
		}
		refs, listErr := referenced(ctx, rc, keys)
		if refs == nil {
			return sum, fmt.Errorf("cachewarm: %w", listErr)
		}
		sum.Generation, sum.Referenced = gen, len(refs)
		written, err := writeCreatives(ctx, db, rc, keys, refs)
		if err != nil {
			return sum, fmt.Errorf("cachewarm: %w", err)
		}
		sum.Creatives, sum.Held = written, len(refs)-written
		if listErr != nil {
			return sum, fmt.Errorf("cachewarm: nothing deleted: %w", listErr)
		}
		removed, err := removeUnreferenced(ctx, rc, keys, gen, refs, o.Logger)
		if errors.Is(err, errGenerationMoved) && attempt < attempts {
			o.Logger.Info("cachewarm: a scoring run published meanwhile; warming its lists", "attempt", attempt)
			continue
		}
		if err != nil {
			return sum, fmt.Errorf("cachewarm: %w", err)
		}
		sum.Removed = removed
		o.Logger.Info("cachewarm: warmed", "generation", gen, "creatives", sum.Creatives, "held", sum.Held,
			"removed", sum.Removed, "switches", sum.Switches)
		return sum, nil
	}
}

var errGenerationMoved = errors.New("the rank generation changed while warming")

func generation(ctx context.Context, rc redis.Cmdable, keys rkeys.Keys) (int64, error) {
	s, err := rc.HGet(ctx, keys.RankMeta(), "generation").Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("rank generation: %w", err)
	}
	g, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("rank generation: %s generation %q is not an integer", keys.RankMeta(), s)
	}
	return g, nil
}

// referenced is the set of ads in the current rank lists. A list that cannot be decoded makes a
// non-nil error alongside the ads of the others; a Redis failure returns a nil set.
func referenced(ctx context.Context, rc redis.UniversalClient, keys rkeys.Keys) (map[int64]struct{}, error) {
	names, err := rc.SMembers(ctx, keys.RankIndex()).Result()
	if err != nil {
		return nil, fmt.Errorf("rank index: %w", err)
	}
	slices.Sort(names)
	refs := map[int64]struct{}{}
	var bad []error
	for start := 0; start < len(names); start += listBatch {
		chunk := names[start:min(start+listBatch, len(names))]
		vals, err := rc.MGet(ctx, chunk...).Result()
		if err != nil {
			return nil, fmt.Errorf("rank lists: %w", err)
		}
		for i, v := range vals {
			s, ok := v.(string)
			if !ok {
				continue // deleted since the index was read: a newer generation, checked later
			}
			cs, err := scoring.DecodeList([]byte(s))
			if err != nil {
				bad = append(bad, fmt.Errorf("%s: %w", chunk[i], err))
				continue
			}
			for _, c := range cs {
				refs[c.Ad] = struct{}{}
			}
		}
	}
	return refs, errors.Join(bad...)
}

// writeCreatives writes the creative of every referenced ad still active, and returns how many.
func writeCreatives(ctx context.Context, db *sqlx.DB, rc redis.UniversalClient, keys rkeys.Keys, refs map[int64]struct{}) (int, error) {
	ids := make([]int64, 0, len(refs))
	for id := range refs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	written := 0
	for start := 0; start < len(ids); start += batch {
		chunk := ids[start:min(start+batch, len(ids))]
		rows, err := db.QueryxContext(ctx, `
SELECT a.id, a.campaign_id, c.advertiser_id, v.name, a.title, a.body, coalesce(a.image_url, ''), a.click_url
FROM ads a JOIN campaigns c ON c.id = a.campaign_id JOIN advertisers v ON v.id = c.advertiser_id
WHERE a.id = ANY($1) AND a.status = 'active' AND c.status = 'active' AND v.status = 'active'
ORDER BY a.id`, pq.Array(chunk))
		if err != nil {
			return written, fmt.Errorf("creatives: %w", err)
		}
		pipe := rc.TxPipeline()
		var members []any
		for rows.Next() {
			var cr rkeys.Creative
			if err := rows.Scan(&cr.ID, &cr.CampaignID, &cr.AdvertiserID, &cr.Advertiser, &cr.Title, &cr.Body, &cr.ImageURL, &cr.ClickURL); err != nil {
				rows.Close()
				return written, fmt.Errorf("creatives: %w", err)
			}
			b, err := json.Marshal(cr)
			if err != nil {
				rows.Close()
				return written, fmt.Errorf("creative %d: %w", cr.ID, err)
			}
			pipe.Set(ctx, keys.Creative(cr.ID), b, 0)
			members = append(members, cr.ID)
		}
		if err := rows.Err(); err != nil {
			return written, fmt.Errorf("creatives: %w", err)
		}
		if len(members) == 0 {
			continue
		}
		pipe.SAdd(ctx, keys.CreativeIndex(), members...)
		if _, err := pipe.Exec(ctx); err != nil {
			return written, fmt.Errorf("write creatives: %w", err)
		}
		written += len(members)
	}
	return written, nil
}

// parseAdID reads a CreativeIndex member.
func parseAdID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != s {
		return 0, fmt.Errorf("%q is not an ad id", s)
	}
	return id, nil
}

// removeUnreferenced deletes, while the rank generation is still gen, the creatives of the index that
// refs does not hold. Index members that are not ad ids are removed from the index (and logged).
func removeUnreferenced(ctx context.Context, rc redis.UniversalClient, keys rkeys.Keys, gen int64, refs map[int64]struct{}, log *slog.Logger) (int, error) {
	removed := 0
	err := rc.Watch(ctx, func(tx *redis.Tx) error {
		now, err := generation(ctx, tx, keys)
		if err != nil {
			return err
		}
		if now != gen {
			return errGenerationMoved
		}
		members, err := tx.SMembers(ctx, keys.CreativeIndex()).Result()
		if err != nil {
			return fmt.Errorf("creative index: %w", err)
		}
		var drop []string
		var dropMembers []any
		for _, m := range members {
			id, err := parseAdID(m)
			if err != nil {
				log.Warn("cachewarm: removing a bad creative index member", "key", keys.CreativeIndex(), "error", err)
				dropMembers = append(dropMembers, m)
				continue
			}
			if _, ok := refs[id]; !ok {
				drop = append(drop, keys.Creative(id))
				dropMembers = append(dropMembers, m)
			}
		}
		if len(dropMembers) == 0 {
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for start := 0; start < len(drop); start += batch {
				p.Del(ctx, drop[start:min(start+batch, len(drop))]...)
			}
			for start := 0; start < len(dropMembers); start += batch {
				p.SRem(ctx, keys.CreativeIndex(), dropMembers[start:min(start+batch, len(dropMembers))]...)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("delete creatives: %w", err)
		}
		removed = len(drop)
		return nil
	}, keys.RankMeta())
	if errors.Is(err, redis.TxFailedErr) {
		return 0, errGenerationMoved
	}
	return removed, err
}

// syncSwitches replaces the switches hash with the feature_switches table.
func syncSwitches(ctx context.Context, db *sqlx.DB, rc redis.UniversalClient, keys rkeys.Keys) (int, error) {
	rows, err := db.QueryxContext(ctx, `SELECT name, enabled, value FROM feature_switches ORDER BY name`)
	if err != nil {
		return 0, fmt.Errorf("feature switches: %w", err)
	}
	defer rows.Close()
	var fields []any
	for rows.Next() {
		var name string
		var sw rkeys.Switch
		var value []byte
		if err := rows.Scan(&name, &sw.Enabled, &value); err != nil {
			return 0, fmt.Errorf("feature switches: %w", err)
		}
		if value != nil {
			sw.Value = json.RawMessage(value)
		}
		b, err := json.Marshal(sw)
		if err != nil {
			return 0, fmt.Errorf("feature switch %s: %w", name, err)
		}
		fields = append(fields, name, string(b))
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("feature switches: %w", err)
	}
	if _, err := rc.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, keys.Switches())
		if len(fields) > 0 {
			p.HSet(ctx, keys.Switches(), fields...)
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("write switches: %w", err)
	}
	return len(fields) / 2, nil
}
