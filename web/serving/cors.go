package serving

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/forumads/forumads/web/httpx"
)

// corsPolicy says which origins may call the API from a browser.
type corsPolicy struct {
	any     bool
	origins map[string]bool // "scheme://host[:port]", lower case
}

// newCORS validates the configured origins: "*" or scheme://host[:port] with an http(s) scheme
// and nothing after the host.
func newCORS(list []string) (corsPolicy, error) {
	c := corsPolicy{origins: map[string]bool{}}
	for _, o := range list {
		if o == "*" {
			c.any = true
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
			return c, fmt.Errorf("serving: CORS origin %q must be \"*\" or scheme://host[:port] (http or https)", o)
		}
		c.origins[strings.ToLower(u.Scheme+"://"+u.Host)] = true
	}
	return c, nil
}

func (c corsPolicy) allows(origin string) bool {
	return c.any || c.origins[strings.ToLower(origin)]
}

// apply adds Vary: Origin and, when the request's Origin is allowed, Access-Control-Allow-Origin.
// It reports whether the request carries an allowed Origin.
func (c corsPolicy) apply(w http.ResponseWriter, r *http.Request) bool {
	h := w.Header()
	h.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if origin == "" || !c.allows(origin) {
		return false
	}
	if c.any {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
	}
	return true
}

// preflight answers an OPTIONS request: 204 with the CORS headers for an allowed origin asking for
// one of methods (and at most the Content-Type header), 403 JSON naming what was refused otherwise.
// An OPTIONS without Origin is answered 204 with Allow.
func (c corsPolicy) preflight(w http.ResponseWriter, r *http.Request, allowed bool, methods ...string) {
	allow := strings.Join(append(methods, http.MethodOptions), ", ")
	h := w.Header()
	h.Set("Allow", allow)
	origin := r.Header.Get("Origin")
	if origin == "" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if !allowed {
		httpx.WriteError(w, r, nil, httpx.Errorf(http.StatusForbidden, "origin_not_allowed", "origin %q may not call this API", truncate(origin, 100)))
		return
	}
	if m := r.Header.Get("Access-Control-Request-Method"); m != "" {
		ok := false
		for _, a := range methods {
			ok = ok || m == a
		}
		if !ok {
			httpx.WriteError(w, r, nil, httpx.Errorf(http.StatusForbidden, "method_not_allowed", "cross-origin method %q not allowed; use %s", truncate(m, 20), strings.Join(methods, ", ")))
			return
		}
	}
	for _, name := range strings.Split(r.Header.Get("Access-Control-Request-Headers"), ",") {
		if name = strings.TrimSpace(name); name != "" && !strings.EqualFold(name, "Content-Type") {
			httpx.WriteError(w, r, nil, httpx.Errorf(http.StatusForbidden, "header_not_allowed", "cross-origin request header %q not allowed", truncate(name, 60)))
			return
		}
	}
	h.Set("Access-Control-Allow-Methods", strings.Join(methods, ", "))
	h.Set("Access-Control-Allow-Headers", "Content-Type")
	h.Set("Access-Control-Max-Age", "600")
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	w.WriteHeader(http.StatusNoContent)
}
