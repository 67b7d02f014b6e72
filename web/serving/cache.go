package serving

import (
	"sync"
	"time"

	"github.com/forumads/forumads/ads/rkeys"
)

// CreativeTTL is how long /v1/ads serves a creative (or the absence of one) it read from Redis
// without reading it again. ads.warm_cache rewrites creatives without a new rank generation, so a
// changed, new or deleted creative shows in /v1/ads within CreativeTTL. Clicks always read the
// creative from Redis.
const CreativeTTL = time.Second

// listEntry is a rank list as read under one rank generation.
type listEntry struct {
	gen   int64 // the rank:meta generation read with it (> 0)
	found bool  // the key existed
	cands []rkeys.Candidate
}

// listCache holds the decoded rank lists of the current rank generation, by key. Rank lists only
// change when ads.score publishes, which bumps the generation in the same MULTI, so an entry of
// the current generation is exactly what Redis holds. It holds at most max entries (emptied when
// full) and is safe for concurrent use.
type listCache struct {
	mu  sync.RWMutex
	m   map[string]listEntry
	max int
}

func newListCache(max int) *listCache { return &listCache{m: make(map[string]listEntry), max: max} }

func (c *listCache) get(key string) (listEntry, bool) {
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	return e, ok
}

func (c *listCache) put(key string, e listEntry) {
	c.mu.Lock()
	// A request that read an older generation may replace a newer entry: the next request then
	// sees the entry is not of the newest generation and reads the lists again.
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[key] = e
	c.mu.Unlock()
}

// creativeEntry is a creative as read from Redis at one time.
type creativeEntry struct {
	at    time.Time // when it was read (Options.Now)
	found bool      // the key existed
	cr    servable
	err   error // why the value cannot be served
}

// creativeCache holds creatives read by /v1/ads, by ad id, for CreativeTTL. It holds at most max
// entries (emptied when full) and is safe for concurrent use.
type creativeCache struct {
	mu  sync.RWMutex
	m   map[int64]creativeEntry
	max int
}

func newCreativeCache(max int) *creativeCache {
	return &creativeCache{m: make(map[int64]creativeEntry), max: max}
}

// fresh returns ad's entry when it was read within CreativeTTL before now.
func (c *creativeCache) fresh(ad int64, now time.Time) (creativeEntry, bool) {
	c.mu.RLock()
	e, ok := c.m[ad]
	c.mu.RUnlock()
	if !ok || now.Before(e.at) || now.Sub(e.at) >= CreativeTTL {
		return creativeEntry{}, false
	}
	return e, true
}

func (c *creativeCache) put(ads []int64, es []creativeEntry) {
	c.mu.Lock()
	if len(c.m)+len(ads) > c.max {
		clear(c.m)
	}
	for i, ad := range ads {
		c.m[ad] = es[i]
	}
	c.mu.Unlock()
}
