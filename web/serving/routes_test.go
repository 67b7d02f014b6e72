package serving

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/forumads/forumads/internal/metrics"
	"github.com/forumads/forumads/internal/testenv"
	"github.com/forumads/forumads/web/httpx"
)

// TestEveryRouteHasItsLabel walks the API's router: a request to each route's path (its variables
// filled in) is labelled with that route's template, not another's and not "other".
func TestEveryRouteHasItsLabel(t *testing.T) {
	s, err := newServer(Options{Redis: testenv.Redis(t), Secret: testSecret, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	router := s.routes()
	labels, err := httpx.NewRouteLabels(router)
	if err != nil {
		t.Fatal(err)
	}
	vars := regexp.MustCompile(`\{[^}]+\}`)
	n := 0
	err = router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			t.Errorf("a route without a path template: %v", err)
			return nil
		}
		n++
		path := vars.ReplaceAllString(tpl, "some-value")
		if got := labels.Label(httptest.NewRequest(http.MethodGet, path, nil)); got != tpl {
			t.Errorf("GET %s is labelled %q, want its route's %q", path, got, tpl)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 7 || len(labels.Labels()) != n {
		t.Errorf("%d routes, %d labels (%q): want one label per route, at least the 7 routes of the API", n, len(labels.Labels()), labels.Labels())
	}
}

// TestMetricsLabelRequestsByRoute serves requests through New with Metrics: a click's token and
// an unknown path never become a route label.
func TestMetricsLabelRequestsByRoute(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newFixture(t, func(o *Options) { o.Metrics = metrics.NewHTTP(reg) })
	for _, path := range []string{"/healthz", "/v1/click/SECRET-TOKEN", "/no-such-page-SECRET", "/embed.js"} {
		resp, err := http.Get(f.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	f.srv.Client().CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, fam := range families {
		for _, m := range fam.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "route" {
					got[lp.GetValue()] = true
				}
			}
		}
	}
	for _, want := range []string{"/healthz", "/v1/click/{token}", "/embed.js", metrics.LabelOther} {
		if !got[want] {
			t.Errorf("no series labelled route=%q (labels: %v)", want, got)
		}
	}
	for r := range got {
		if strings.Contains(r, "SECRET") {
			t.Errorf("a request path became a route label: %q", r)
		}
	}
	if len(got) != 4 {
		t.Errorf("route labels = %v, want exactly the four above", got)
	}
}
