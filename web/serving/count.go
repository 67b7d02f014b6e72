package serving

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/ads/rkeys"
	"github.com/forumads/forumads/web/httpx"
)

// pixelGIF is a transparent 1×1 GIF.
var pixelGIF = []byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")

// verify decodes a token of kind: forged, tampered or of another kind is 404, expired is 410.
func (s *server) verify(str string, kind tokenKind) (*token, *httpx.Error) {
	t, err := s.sign.Decode(str)
	if err == nil && t.Kind != kind {
		err = fmt.Errorf("%w: a %v token on the %v route", errTokenInvalid, t.Kind, kind)
	}
	if err != nil {
		s.log.Debug("token refused", "kind", kind.String(), "error", err)
		return nil, httpx.Errorf(http.StatusNotFound, "unknown_token", "this %s link is not valid", kind)
	}
	if !s.now().Before(t.Expires) {
		return nil, httpx.Errorf(http.StatusGone, "token_expired", "this %s link has expired", kind)
	}
	return t, nil
}

// count adds t's counts (an impression, or a click and its price as spend) to the current UTC
// hour's counter hash and registers the hash in CounterHours, in one MULTI/EXEC round trip.
func (s *server) count(ctx context.Context, t *token) error {
	now := s.now()
	hash := s.keys.Counters(now)
	hour := now.UTC().Truncate(time.Hour).Unix()
	return s.br.call(ctx, func(ctx context.Context) error {
		_, err := s.rc.TxPipelined(ctx, func(p redis.Pipeliner) error {
			if t.Kind == kindClick {
				p.HIncrBy(ctx, hash, rkeys.CounterField(t.Ad, t.Forum, rkeys.Clicks), 1)
				if t.Price > 0 {
					p.HIncrBy(ctx, hash, rkeys.CounterField(t.Ad, t.Forum, rkeys.Spend), t.Price)
				}
			} else {
				p.HIncrBy(ctx, hash, rkeys.CounterField(t.Ad, t.Forum, rkeys.Impressions), 1)
			}
			p.ZAddNX(ctx, s.keys.CounterHours(), redis.Z{Score: float64(hour), Member: hash})
			return nil
		})
		return err
	})
}

func unavailable(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", "1")
	httpx.WriteError(w, r, nil, httpx.Errorf(http.StatusServiceUnavailable, "unavailable", "ads are temporarily unavailable; try again shortly"))
}

// handleClick verifies a click token, reads the ad's creative, counts the click and redirects to
// the creative's click_url. Redis unavailable before the creative is read: 503. The creative is
// gone or unusable: 410. The count fails after the read: the visitor is still redirected and the
// lost click is logged.
func (s *server) handleClick(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if len(r.URL.RawQuery) > 0 {
		httpx.WriteError(w, r, nil, httpx.Errorf(http.StatusBadRequest, "unknown_parameter", "a click link takes no query parameters"))
		return
	}
	t, herr := s.verify(r.PathValue("token"), kindClick)
	if herr != nil {
		httpx.WriteError(w, r, nil, herr)
		return
	}
	ctx, cancel := s.budgetContext(r)
	defer cancel()
	var raw string
	var found bool
	err := s.br.call(ctx, func(ctx context.Context) error {
		v, err := s.rc.Get(ctx, s.keys.Creative(t.Ad)).Result()
		if errors.Is(err, redis.Nil) {
			return nil
		}
		raw, found = v, err == nil
		return err
	})
	if err != nil {
		s.lostClicks.note(err)
		unavailable(w, r)
		return
	}
	gone := httpx.Errorf(http.StatusGone, "ad_gone", "this ad is no longer running")
	if !found {
		httpx.WriteError(w, r, nil, gone)
		return
	}
	key := s.keys.Creative(t.Ad)
	cr, err := s.creatives.get(key, raw, decodeCreative)
	if err == nil && cr.ID != t.Ad {
		err = fmt.Errorf("holds the creative of ad %d", cr.ID)
	}
	if err != nil {
		s.badData.note(fmt.Errorf("%s: %w", key, err))
		httpx.WriteError(w, r, nil, gone)
		return
	}
	if err := s.count(ctx, t); err != nil {
		s.lostClicks.note(err)
	}
	http.Redirect(w, r, cr.ClickURL, http.StatusFound)
}

// handleImpression verifies an impression token and counts it: 204, or a 1×1 GIF for GET ?img=1.
// Redis unavailable: still 204 (the lost count is logged). Never cached.
func (s *server) handleImpression(w http.ResponseWriter, r *http.Request) {
	allowed := s.cors.apply(w, r)
	if r.Method == http.MethodOptions {
		s.cors.preflight(w, r, allowed, http.MethodGet, http.MethodPost)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	img := false
	switch r.URL.RawQuery {
	case "":
	case "img=1":
		img = r.Method == http.MethodGet
	default:
		httpx.WriteError(w, r, nil, httpx.Errorf(http.StatusBadRequest, "unknown_parameter", "an impression link takes only img=1, got %q", truncate(r.URL.RawQuery, 80)))
		return
	}
	t, herr := s.verify(r.PathValue("token"), kindImpression)
	if herr != nil {
		httpx.WriteError(w, r, nil, herr)
		return
	}
	ctx, cancel := s.budgetContext(r)
	defer cancel()
	if err := s.count(ctx, t); err != nil {
		s.lostImpressions.note(err)
	}
	if img {
		w.Header().Set("Content-Type", "image/gif")
		w.Header().Set("Cross-Origin-Resource-Policy", "cross-origin")
		_, _ = w.Write(pixelGIF)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
