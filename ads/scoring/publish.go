package scoring

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/rkeys"
)

const (
	// tempTTL bounds how long a crashed run's temporary keys stay; a run whose writes took more than
	// half of it gives up rather than risk renaming an expired key.
	tempTTL = time.Hour
	// writeBatch is how many commands one pipeline round trip carries.
	writeBatch = 500
	// swapAttempts is how often the swap is tried when other runs keep committing first.
	swapAttempts = 10
)

// tempPrefix is where a run writes its lists before the swap: <p>rank:tmp:<token>:.
func tempPrefix(keys rkeys.Keys, token string) string { return keys.Prefix + "rank:tmp:" + token + ":" }

// isRankKey reports whether k is a rank list key under keys (what an index may list and a run may
// delete).
func isRankKey(keys rkeys.Keys, k string) bool {
	rest, ok := strings.CutPrefix(k, keys.Prefix+"rank:")
	if !ok {
		return false
	}
	placement, rest, ok := strings.Cut(rest, ":")
	if !ok || !validPlacement(placement) {
		return false
	}
	if rest == "default" {
		return true
	}
	kind, name, ok := strings.Cut(rest, ":")
	return ok && (kind == "forum" || kind == "category") && name != ""
}

func validPlacement(p string) bool {
	for _, q := range rkeys.Placements {
		if p == q {
			return true
		}
	}
	return false
}

// publish writes the lists to temporary keys, then swaps them in atomically.
func publish(ctx context.Context, rc redis.UniversalClient, keys rkeys.Keys, r *ranking, o Options, sum *Summary) (err error) {
	var tok [8]byte
	_, _ = rand.Read(tok[:])
	token := hex.EncodeToString(tok[:])
	tmp := tempPrefix(keys, token)
	tmpIndex := tmp + "keys"
	started := time.Now()

	var finals []string
	renamed := false
	defer func() {
		if renamed {
			return
		}
		// Drop what was written; the TTL covers a failure here too.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		names := []string{tmpIndex}
		for i := range finals {
			names = append(names, tmp+strconv.Itoa(i))
		}
		for start := 0; start < len(names); start += writeBatch {
			_ = rc.Del(cctx, names[start:min(start+writeBatch, len(names))]...).Err()
		}
	}()

	// Write phase.
	pipe := rc.Pipeline()
	flush := func(force bool) error {
		if pipe.Len() == 0 || (!force && pipe.Len() < writeBatch) {
			return nil
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("write rank lists: %w", err)
		}
		return nil
	}
	var buf []entry
	var cands []rkeys.Candidate
	write := func(key string, lists ...[]entry) error {
		buf = merge(buf, r.k, lists...)
		cands = cands[:0]
		for _, e := range buf {
			a := &r.ads[e.i]
			c := &r.campaigns[a.c]
			cands = append(cands, rkeys.Candidate{Ad: a.id, Campaign: c.id, Advertiser: c.advertiser,
				EV: e.ev, CTR: a.ctr, Bid: c.bid, Countries: c.countries})
		}
		val, err := EncodeList(cands)
		if err != nil {
			return err
		}
		pipe.Set(ctx, tmp+strconv.Itoa(len(finals)), val, tempTTL)
		pipe.SAdd(ctx, tmpIndex, key)
		pipe.Expire(ctx, tmpIndex, tempTTL)
		finals = append(finals, key)
		return flush(false)
	}
	for pi, p := range rkeys.Placements {
		h := &r.heaps[pi]
		general := h.general.sorted()
		cats := make(map[string][]entry, len(h.categories))
		for name, t := range h.categories {
			cats[name] = t.sorted()
		}
		if err := write(keys.RankDefault(p), general); err != nil {
			return err
		}
		for _, cat := range r.categories {
			if err := write(keys.RankCategory(p, cat), general, cats[cat]); err != nil {
				return err
			}
		}
		for _, f := range r.forums {
			var catList []entry
			if cat, ok := r.forumCat[f]; ok {
				catList = cats[cat]
			}
			if err := write(keys.RankForum(p, f), h.forums[f].sorted(), general, catList); err != nil {
				return err
			}
		}
	}
	if err := flush(true); err != nil {
		return err
	}
	if took := time.Since(started); took > tempTTL/2 {
		return fmt.Errorf("writing the rank lists took %v: too close to their temporary keys' TTL (%v)", took, tempTTL)
	}

	// Swap phase.
	newKeys := make(map[string]bool, len(finals))
	for _, k := range finals {
		newKeys[k] = true
	}
	for attempt := 1; ; attempt++ {
		var gen *redis.IntCmd
		var removed int
		err := rc.Watch(ctx, func(tx *redis.Tx) error {
			old, err := tx.SMembers(ctx, keys.RankIndex()).Result()
			if err != nil {
				return fmt.Errorf("read rank index: %w", err)
			}
			var stale []string
			for _, k := range old {
				switch {
				case newKeys[k]:
				case isRankKey(keys, k):
					stale = append(stale, k)
				default:
					o.Logger.Warn("scoring: rank index lists a key that is not a rank key; not deleting it", "key", k)
				}
			}
			removed = len(stale)
			if o.beforeExec != nil {
				o.beforeExec(attempt)
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				for i, k := range finals {
					p.Rename(ctx, tmp+strconv.Itoa(i), k)
					p.Persist(ctx, k)
				}
				for start := 0; start < len(stale); start += writeBatch {
					p.Del(ctx, stale[start:min(start+writeBatch, len(stale))]...)
				}
				p.Rename(ctx, tmpIndex, keys.RankIndex())
				p.Persist(ctx, keys.RankIndex())
				p.HSet(ctx, keys.RankMeta(), "generated_at", sum.GeneratedAt.Format(time.RFC3339),
					"ads", sum.Ads, "keys", len(finals))
				gen = p.HIncrBy(ctx, keys.RankMeta(), "generation", 1)
				return nil
			})
			return err
		}, keys.RankIndex(), keys.RankMeta())
		switch {
		case err == nil:
			renamed = true
			sum.Lists, sum.Removed, sum.Generation, sum.SwapAttempts = len(finals), removed, gen.Val(), attempt
			return nil
		case errors.Is(err, redis.TxFailedErr) && attempt < swapAttempts:
			o.Logger.Info("scoring: another run published first; swapping again", "attempt", attempt)
			continue
		case gen != nil && gen.Err() == nil:
			// EXEC ran but a command in it failed: the swap is (partly) applied.
			renamed = true
			return fmt.Errorf("swap rank lists (generation %d): %w", gen.Val(), err)
		default:
			return fmt.Errorf("swap rank lists: %w", err)
		}
	}
}
