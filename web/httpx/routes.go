package httpx

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"

	"github.com/gorilla/mux"

	"github.com/forumads/forumads/internal/metrics"
)

// RouteLabels are the route labels of a gorilla/mux router's requests for metrics: each route's
// path template (such as "/v1/click/{token}", never the request's path, so a token in a URL never
// becomes a label), read from the router itself, so a new route is labelled without a table to
// edit. A path that no route's template matches is [metrics.LabelOther]. The set is bounded: the
// router's templates and "other".
type RouteLabels struct {
	templates []string         // each label once, in the router's order
	paths     []*regexp.Regexp // each route's path, in the router's order
	byIndex   []string         // paths[i]'s template
}

// NewRouteLabels walks router's routes (in the order the router tries them) and returns their
// labels. It fails when router has no route with a path template.
func NewRouteLabels(router *mux.Router) (*RouteLabels, error) {
	if router == nil {
		return nil, errors.New("httpx: NewRouteLabels: nil router")
	}
	l := &RouteLabels{}
	seen := map[string]bool{}
	err := router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return nil // a route without a path (host or header only) labels nothing
		}
		expr, err := route.GetPathRegexp()
		if err != nil {
			return fmt.Errorf("httpx: route %s: %w", tpl, err)
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return fmt.Errorf("httpx: route %s: %w", tpl, err)
		}
		if !seen[tpl] {
			seen[tpl] = true
			l.templates = append(l.templates, tpl)
		}
		l.paths = append(l.paths, re)
		l.byIndex = append(l.byIndex, tpl)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(l.paths) == 0 {
		return nil, errors.New("httpx: NewRouteLabels: the router has no route with a path")
	}
	return l, nil
}

// Labels returns every label l can give a request but "other": the routes' path templates, once
// each, in the router's order.
func (l *RouteLabels) Labels() []string { return append([]string(nil), l.templates...) }

// Label returns r's label: the path template of the first route whose path matches r's (whatever
// r's method: a 405 is labelled by its route too), else [metrics.LabelOther].
func (l *RouteLabels) Label(r *http.Request) string {
	for i, re := range l.paths {
		if re.MatchString(r.URL.Path) {
			return l.byIndex[i]
		}
	}
	return metrics.LabelOther
}

// Observed returns next wrapped so that m observes each request under its label in l (see
// [metrics.HTTP.Middleware]).
func Observed(m *metrics.HTTP, l *RouteLabels, next http.Handler) http.Handler {
	byLabel := map[string]http.Handler{metrics.LabelOther: m.Middleware(metrics.LabelOther, next)}
	for _, tpl := range l.templates {
		byLabel[tpl] = m.Middleware(tpl, next)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		byLabel[l.Label(r)].ServeHTTP(w, r)
	})
}
