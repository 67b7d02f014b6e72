package serving

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/forumads/forumads/ads/rkeys"
)

// memo remembers what a Redis value decoded to, keyed by the Redis key and checked against the
// whole raw value: every request still reads Redis, and a changed value is decoded afresh, so the
// memo saves decoding work and never serves stale data. It holds at most max entries (it is
// emptied when full). It is safe for concurrent use.
type memo[T any] struct {
	mu  sync.RWMutex
	m   map[string]memoEntry[T]
	max int
}

type memoEntry[T any] struct {
	raw string
	v   T
	err error
}

func newMemo[T any](max int) *memo[T] { return &memo[T]{m: make(map[string]memoEntry[T]), max: max} }

// get returns what raw (the value of key) decodes to, decoding it with decode unless the memo
// already holds key with this very raw value. A decoding error is remembered too.
func (c *memo[T]) get(key, raw string, decode func(string) (T, error)) (T, error) {
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	if ok && e.raw == raw {
		return e.v, e.err
	}
	v, err := decode(raw)
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[key] = memoEntry[T]{raw: raw, v: v, err: err}
	c.mu.Unlock()
	return v, err
}

// Sizes of the decoding memos: rank lists (placements × forums), creatives, switch values.
const (
	memoLists     = 4096
	memoCreatives = 32768
	memoSwitches  = 64
)

// decodeList reads a rank list: a JSON array of candidates. Elements that cannot be served (of
// the wrong shape, or with an ad id or bid that is not positive) are dropped and named in the
// error, which is otherwise nil; a value that is not a JSON array is an error with no candidates.
func decodeList(raw string) ([]rkeys.Candidate, error) {
	var cs []rkeys.Candidate
	var bad []error
	if err := json.Unmarshal([]byte(raw), &cs); err != nil {
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			return nil, fmt.Errorf("not a JSON array of candidates: %w", err)
		}
		// An element of the wrong shape: the others are decoded; it is left out below.
		bad = append(bad, err)
	}
	ok := cs[:0]
	for i, c := range cs {
		if c.Ad <= 0 || c.Bid <= 0 {
			bad = append(bad, fmt.Errorf("element %d: ad %d bid %d", i, c.Ad, c.Bid))
			continue
		}
		ok = append(ok, c)
	}
	return ok, errors.Join(bad...)
}

// servable is a creative the answer can show: its id and click URL checked, its image URL kept
// only when it is an absolute http(s) URL.
type servable struct {
	rkeys.Creative
	imageOK bool
	frag    adFragments
}

// decodeCreative reads a creative, refusing one whose click_url is not an absolute http(s) URL
// (its click could not redirect).
func decodeCreative(raw string) (servable, error) {
	var cr rkeys.Creative
	if err := json.Unmarshal([]byte(raw), &cr); err != nil {
		return servable{}, fmt.Errorf("not a JSON creative: %w", err)
	}
	if !absHTTPURL(cr.ClickURL) {
		return servable{}, fmt.Errorf("click_url %q is not an absolute http(s) URL", truncate(cr.ClickURL, 80))
	}
	sv := servable{Creative: cr, imageOK: cr.ImageURL != "" && absHTTPURL(cr.ImageURL)}
	sv.frag = newAdFragments(sv)
	return sv, nil
}

// decodeSwitch reads one switch value.
func decodeSwitch(raw string) (rkeys.Switch, error) {
	var sw rkeys.Switch
	if err := json.Unmarshal([]byte(raw), &sw); err != nil {
		return sw, fmt.Errorf("not a JSON switch: %w", err)
	}
	return sw, nil
}
