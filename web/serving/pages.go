package serving

import (
	"bytes"
	"net/http"
	"net/url"

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
