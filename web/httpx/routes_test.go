package httpx

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/forumads/forumads/internal/metrics"
)

func testRouter() *mux.Router {
	r := mux.NewRouter()
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	r.Handle("/v1/ads", ok).Methods(http.MethodGet)
	r.Handle("/v1/click/{token}", ok).Methods(http.MethodGet)
	r.PathPrefix("/assets/").Handler(ok).Methods(http.MethodGet)
	r.Handle("/v1/ads", ok).Methods(http.MethodPost) // a second route on a path: one label
	r.Host("example.com").Handler(ok)                // no path: no label
	return r
}

func TestRouteLabelsAreTheRoutersTemplates(t *testing.T) {
	l, err := NewRouteLabels(testRouter())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := l.Labels(), []string{"/v1/ads", "/v1/click/{token}", "/assets/"}; !slices.Equal(got, want) {
		t.Errorf("Labels() = %q, want %q", got, want)
	}
	for path, want := range map[string]string{
		"/v1/ads":                     "/v1/ads",
		"/v1/click/SECRET-TOKEN-1234": "/v1/click/{token}",
		"/assets/app/main.js":         "/assets/",
		"/v1/click/a/b":               metrics.LabelOther, // {token} is one path segment
		"/v1/ads/../../etc/passwd":    metrics.LabelOther,
		"/no/such/path":               metrics.LabelOther,
		"/":                           metrics.LabelOther,
	} {
		if got := l.Label(httptest.NewRequest(http.MethodGet, path, nil)); got != want {
			t.Errorf("Label(%s) = %q, want %q", path, got, want)
		}
	}
	// A method no route takes on a known path (a 405) keeps its route's label.
	if got := l.Label(httptest.NewRequest(http.MethodDelete, "/v1/click/x", nil)); got != "/v1/click/{token}" {
		t.Errorf("Label(DELETE /v1/click/x) = %q, want /v1/click/{token}", got)
	}
}

func TestNewRouteLabelsRejectsARouterWithoutPaths(t *testing.T) {
	if _, err := NewRouteLabels(nil); err == nil {
		t.Error("nil router: no error")
	}
	r := mux.NewRouter()
	r.Host("example.com").Handler(http.NotFoundHandler())
	if _, err := NewRouteLabels(r); err == nil || !strings.Contains(err.Error(), "no route with a path") {
		t.Errorf("a router without paths: err = %v", err)
	}
}

// TestObservedKeepsTokensOutOfLabels sends requests with tokens and unknown paths through Observed
// and finds only the router's templates and "other" among the route labels.
func TestObservedKeepsTokensOutOfLabels(t *testing.T) {
	router := testRouter()
	l, err := NewRouteLabels(router)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	h := Observed(metrics.NewHTTP(reg), l, router)
	for _, path := range []string{"/v1/ads", "/v1/click/SECRET-TOKEN-1", "/v1/click/SECRET-TOKEN-2", "/nope/SECRET-TOKEN-3", "/assets/x.css"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, path, nil))
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]bool{}
	series := 0
	for _, f := range families {
		for _, m := range f.GetMetric() {
			series++
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "route" {
					routes[lp.GetValue()] = true
				}
			}
		}
	}
	want := map[string]bool{"/v1/ads": true, "/v1/click/{token}": true, "/assets/": true, metrics.LabelOther: true}
	if len(routes) != len(want) {
		t.Errorf("route labels = %v, want exactly %v", routes, want)
	}
	for r := range routes {
		if !want[r] || strings.Contains(r, "SECRET") {
			t.Errorf("route label %q is not one of the router's templates or other", r)
		}
	}
	if series != 4 {
		t.Errorf("%d series, want 4 (one per label: both tokens share theirs)", series)
	}
}
