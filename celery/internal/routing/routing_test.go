package routing

import (
	"reflect"
	"strings"
	"testing"

	"github.com/forumads/forumads/celery/broker"
)

func intp(n int) *int { return &n }

// defaults are Celery's task_default_* settings, as celery.Config.WithDefaults fills them.
func defaults() Queues {
	return Queues{DefaultQueue: "celery", DefaultExchange: "celery", DefaultExchangeType: "direct",
		DefaultRoutingKey: "celery", CreateMissing: true}
}

// TestTableMatchLikeCeleryMapRoute: Celery 5.2's MapRoute per mapping (exact names first, then
// globs and regular expressions in order, one entry per compiled expression with the last
// route), mappings of a list in order.
func TestTableMatchLikeCeleryMapRoute(t *testing.T) {
	t.Parallel()
	tbl, err := Compile(Routes{
		{Pattern: "ads.*", Queue: "ads"},
		{Pattern: "ads.import_feed", Queue: "ads.import"},
		{Pattern: `re:^ads\.(score|rank)$`, Queue: "ads.re"}, // after "ads.*": never reached for ads.*
		{Pattern: `re:media\.(image|video)`, Queue: "media"},
		{Pattern: "re:x", Queue: "re-x-first"},
		{Pattern: "re:x", Queue: "re-x-last"},
		{Pattern: "d?ag", Queue: "no-star-so-exact"},
		{Pattern: "re*", Queue: "glob-not-re"},
		{Pattern: "g*", Queue: "group1-glob", Group: 1},
		{Pattern: "gx", Queue: "group2-exact", Group: 2},
		{Pattern: "k*", Queue: "k-first", Group: 3},
		{Pattern: "k**", Queue: "k-same-regex-later", Group: 3},
		{Pattern: "kk", Queue: "kk-exact", Group: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ task, queue string }{
		{"ads.import_feed", "ads.import"}, // an exact name beats an earlier pattern of its mapping
		{"ads.score", "ads"},              // the first pattern in order wins
		{"media.image.resize", "media"},   // re: matches at the start only (re.match) ...
		{"x.media.image", "re-x-last"},    // ... so media\. does not match inside the name
		{"xyz", "re-x-last"},              // one regexp given twice is one entry, with the last route
		{"diag", ""},                      // '?' without '*' is an exact name
		{"d?ag", "no-star-so-exact"},      //
		{"re:xy", "glob-not-re"},          // a task name is never a pattern
		{"gx", "group1-glob"},             // an earlier mapping's glob wins over a later mapping's exact name
		{"kx", "k-same-regex-later"},      // globs translating alike are one entry with the last route
		{"kk", "kk-exact"},                // exact first in its mapping even when given last
		{"zzz", ""},
	} {
		r, ok := tbl.Match(tc.task)
		if ok != (tc.queue != "") || r.Queue != tc.queue {
			t.Errorf("Match(%q) = %q, %v; want %q", tc.task, r.Queue, ok, tc.queue)
		}
	}
	var zero *Table
	if _, ok := zero.Match("x"); ok {
		t.Error("a nil table routed a task")
	}
}

// TestCompileRefusesABadRegexp names the pattern.
func TestCompileRefusesABadRegexp(t *testing.T) {
	t.Parallel()
	_, err := Compile(Routes{{Pattern: "re:ads.(", Queue: "q"}})
	if err == nil || !strings.Contains(err.Error(), `task_routes["re:ads.("]`) {
		t.Fatalf("Compile(re:ads.() = %v, want an error naming the pattern", err)
	}
}

// TestQueuesLookupLikeCelery: task_queues entries completed from the defaults, the default queue,
// missing queues with and without task_create_missing_queues, x-max-priority.
func TestQueuesLookupLikeCelery(t *testing.T) {
	t.Parallel()
	qs := defaults()
	if q, ok := qs.Lookup("celery"); !ok || !reflect.DeepEqual(q, broker.Queue{Name: "celery", Exchange: "celery",
		ExchangeType: "direct", RoutingKey: "celery"}) {
		t.Errorf("default queue = %+v, %v", q, ok)
	}
	if q, ok := qs.Lookup("ads"); !ok || q.Exchange != "ads" || q.ExchangeType != "direct" || q.RoutingKey != "ads" {
		t.Errorf("missing queue = %+v, %v; want Celery's Queue('ads', Exchange('ads'), 'ads')", q, ok)
	}
	qs.CreateMissing = false
	if q, ok := qs.Lookup("ads"); ok {
		t.Errorf("task_create_missing_queues off: Lookup(ads) = %+v, want none", q)
	}
	qs.List = []broker.Queue{{Name: "p"}, {Name: "t", Exchange: "topics", ExchangeType: "topic", RoutingKey: "t.#",
		MaxPriority: intp(3)}}
	qs.MaxPriority = intp(10)
	if q, _ := qs.Lookup("p"); q.Exchange != "celery" || q.ExchangeType != "direct" || q.RoutingKey != "p" ||
		q.QueueArguments["x-max-priority"] != 10 {
		t.Errorf("task_queues entry p = %+v", q)
	}
	if q, _ := qs.Lookup("t"); q.Exchange != "topics" || q.RoutingKey != "t.#" || q.QueueArguments["x-max-priority"] != 3 {
		t.Errorf("task_queues entry t = %+v (its own max_priority wins)", q)
	}
	if _, ok := qs.Lookup("celery"); ok {
		t.Error("with task_queues given and create-missing off, the default queue is not implied")
	}
}

// TestRouterRoute: per-call options, route, task queue and defaults merged as Celery's
// Router.route and send_task_message do.
func TestRouterRoute(t *testing.T) {
	t.Parallel()
	qs := defaults()
	qs.List = []broker.Queue{{Name: "celery"}, {Name: "events", Exchange: "ev", ExchangeType: "topic", RoutingKey: "ev.#"},
		{Name: "fan", Exchange: "fanx", ExchangeType: "fanout"}}
	r, err := New(Routes{
		{Pattern: "ads.*", Queue: "ads", Priority: intp(7)},
		{Pattern: "ev.*", Queue: "events"},
		{Pattern: "ev.special", Queue: "events", RoutingKey: "ev.special.key"},
		{Pattern: "fan.*", Queue: "fan"},
		{Pattern: "x.*", Exchange: "xchg", RoutingKey: "xkey"},
		{Pattern: "re:^big", Queue: "big", Priority: intp(300)},
	}, qs, intp(2))
	if err != nil {
		t.Fatal(err)
	}
	q := func(name string) broker.Queue { qq, _ := qs.Lookup(name); return qq }
	for _, tc := range []struct {
		task string
		o    Options
		want Destination
	}{
		// A direct queue goes through the default exchange under the queue's name.
		{"plain", Options{}, Destination{RoutingKey: "celery", Queue: q("celery"), Priority: 2}},
		{"ads.score", Options{}, Destination{RoutingKey: "ads", Queue: q("ads"), Priority: 7}},
		// The call's own queue and priority win over the route's.
		{"ads.score", Options{Queue: "other", Priority: intp(1)}, Destination{RoutingKey: "other", Queue: q("other"), Priority: 1}},
		// An exchange without a routing key on a direct queue is still the default exchange.
		{"ads.score", Options{Exchange: "e"}, Destination{RoutingKey: "ads", Queue: q("ads"), Priority: 7}},
		// Both given: published as given.
		{"ads.score", Options{Exchange: "e", RoutingKey: "k"}, Destination{Exchange: "e", RoutingKey: "k", Queue: q("ads"), Priority: 7}},
		// A topic queue: its exchange and routing key, or the route's routing key.
		{"ev.click", Options{}, Destination{Exchange: "ev", RoutingKey: "ev.#", Queue: q("events"), Priority: 2}},
		{"ev.special", Options{}, Destination{Exchange: "ev", RoutingKey: "ev.special.key", Queue: q("events"), Priority: 2}},
		// A fanout queue without its own routing key: the queue's name (task_queues' default).
		{"fan.out", Options{}, Destination{Exchange: "fanx", RoutingKey: "fan", Queue: q("fan"), Priority: 2}},
		// A route with an exchange and routing key but no queue: published there, the default
		// queue declared.
		{"x.y", Options{}, Destination{Exchange: "xchg", RoutingKey: "xkey", Queue: q("celery"), Priority: 2}},
		// The task's own queue comes after the route's and before task_default_queue.
		{"plain", Options{TaskQueue: "mine"}, Destination{RoutingKey: "mine", Queue: q("mine"), Priority: 2}},
		{"ads.score", Options{TaskQueue: "mine"}, Destination{RoutingKey: "ads", Queue: q("ads"), Priority: 7}},
		// Priorities are not clamped here (the client clamps to a byte).
		{"bigtask", Options{}, Destination{RoutingKey: "big", Queue: q("big"), Priority: 300}},
	} {
		got, err := r.Route(tc.task, tc.o)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Route(%q, %+v) = %+v, %v; want %+v", tc.task, tc.o, got, err, tc.want)
		}
	}
	if m, ok := r.Match("ev.special"); !ok || m.RoutingKey != "ev.special.key" {
		t.Errorf("Match(ev.special) = %+v, %v", m, ok)
	}
}

// TestRouterRouteMissingQueue: with task_create_missing_queues off a queue task_queues does not
// list is refused with a typed error (Celery's QueueNotFound), wherever its name came from; and
// without task_default_priority a task goes at priority 0.
func TestRouterRouteMissingQueue(t *testing.T) {
	t.Parallel()
	qs := defaults()
	qs.CreateMissing = false
	r, err := New(Routes{{Pattern: "ads.*", Queue: "ads"}}, qs, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := r.Route("plain", Options{})
	if err != nil || d.Priority != 0 || d.RoutingKey != "celery" {
		t.Fatalf("Route(plain) = %+v, %v; want the default queue at priority 0", d, err)
	}
	for _, tc := range []struct {
		task string
		o    Options
	}{{"ads.x", Options{}}, {"plain", Options{Queue: "nope"}}, {"plain", Options{TaskQueue: "nope"}}} {
		_, err := r.Route(tc.task, tc.o)
		nf, ok := err.(*QueueNotFoundError)
		if !ok || (nf.Queue != "ads" && nf.Queue != "nope") ||
			!strings.Contains(err.Error(), "is not defined and task_create_missing_queues is off") {
			t.Errorf("Route(%q, %+v) = %v, want a QueueNotFoundError", tc.task, tc.o, err)
		}
	}
	if _, err := New(Routes{{Pattern: "re:(", Queue: "q"}}, qs, nil); err == nil {
		t.Error("New accepted a regexp that does not compile")
	}
}
