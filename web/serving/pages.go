package serving

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"

	placeholder "github.com/forumads/forumads/ads/creative"
	"github.com/forumads/forumads/web/httpx"
)

// EmbedMaxAge is how long browsers and CDNs may cache /embed.js without asking again.
const EmbedMaxAge = "300"

// handleEmbed serves the embed script, cacheable for EmbedMaxAge seconds and revalidated by ETag.
func (s *server) handleEmbed(w http.ResponseWriter, r *http.Request) {
	if r.URL.RawQuery != "" {
		// A cache-busting query would defeat the cache headers; say so rather than ignore it.
		httpx.WriteError(w, r, nil, httpx.Errorf(http.StatusBadRequest, "unknown_parameter", "/embed.js takes no query parameters"))
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "public, max-age="+EmbedMaxAge)
	h.Set("ETag", s.embedETag)
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Set("X-Content-Type-Options", "nosniff")
	if inm := r.Header.Get("If-None-Match"); inm != "" && (inm == s.embedETag || inm == "W/"+s.embedETag || inm == "*") {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(embedJS)
}

// threadPage is what the demo thread template renders.
type threadPage struct {
	Forum string
}

// handleDemo serves a forum thread page showing the embed (sidebar and inline slots) for forum
// "cars" or ?forum=.
func (s *server) handleDemo(w http.ResponseWriter, r *http.Request) {
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		httpx.WriteError(w, r, nil, httpx.Errorf(http.StatusBadRequest, "malformed_query", "malformed query string: %v", err))
		return
	}
	page := threadPage{Forum: "cars"}
	for name, vs := range vals {
		if name != "forum" {
			httpx.WriteError(w, r, nil, unknownParam(name, "forum"))
			return
		}
		if len(vs) != 1 || !validSlug(vs[0]) {
			httpx.WriteError(w, r, nil, paramError("forum", "must be one forum slug (a-z, 0-9, _ and -, 1 to 64 characters)"))
			return
		}
		page.Forum = vs[0]
	}
	var buf bytes.Buffer
	if err := s.thread.Execute(&buf, page); err != nil {
		httpx.WriteError(w, r, s.log, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(buf.Bytes())
}

// CreativeMaxAge is how long browsers may cache a placeholder image: a day (an id always draws
// the same image; the ETag covers a change of the drawing itself).
const CreativeMaxAge = "86400"

// handleCreative serves the placeholder image of the sample ad named by {name}, "<ad id>.svg"
// (package creative): what the generated feeds' image_url points at, so the demo needs no other
// host. Any other name is a JSON 404, a query string a 400.
func (s *server) handleCreative(w http.ResponseWriter, r *http.Request) {
	if r.URL.RawQuery != "" {
		httpx.WriteError(w, r, nil, httpx.Errorf(http.StatusBadRequest, "unknown_parameter", "/creatives/ takes no query parameters"))
		return
	}
	id, ok := strings.CutSuffix(r.PathValue("name"), ".svg")
	if !ok || !placeholder.ValidID(id) {
		httpx.WriteError(w, r, nil, httpx.Errorf(http.StatusNotFound, "not_found",
			"no such creative: want /creatives/<ad id>.svg, the id of letters, digits, '.', '_' and '-' (at most %d)", placeholder.MaxIDLen))
		return
	}
	svg := placeholder.SVG(id)
	sum := sha256.Sum256(svg)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	h := w.Header()
	h.Set("Cache-Control", "public, max-age="+CreativeMaxAge)
	h.Set("ETag", etag)
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Set("X-Content-Type-Options", "nosniff")
	// Opened on its own, the SVG runs nothing and loads nothing.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox")
	if inm := r.Header.Get("If-None-Match"); inm != "" && (inm == etag || inm == "W/"+etag || inm == "*") {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", placeholder.ContentType)
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(svg)
}
