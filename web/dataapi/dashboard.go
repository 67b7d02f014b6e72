package dataapi

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"

	"github.com/forumads/forumads/web/httpx"
)

// static holds the dashboard: one HTML page, its script and its style sheet. No framework, no
// CDN: everything the page loads comes from this server.
//
//go:embed static
var static embed.FS

// dashboardCSP allows the page its own script, style and API calls, and nothing else.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

// dashboardPage serves the dashboard's HTML (the token is asked for by the page, never sent here).
func dashboardPage(w http.ResponseWriter, r *http.Request) {
	page, err := static.ReadFile("static/dashboard.html")
	if err != nil { // embedded at build time: cannot happen
		http.Error(w, "dashboard missing", http.StatusInternalServerError)
		return
	}
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(page)
}

// dashboardAssets serves static/ under /dashboard/assets/.
func dashboardAssets() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // a constant path into the embedded tree
	}
	files := http.StripPrefix("/dashboard/assets/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") { // no directory listings
			httpx.WriteError(w, r, nil, httpx.Errorf(http.StatusNotFound, "not_found", "no such file"))
			return
		}
		securityHeaders(w)
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
