// Package routing decides where a task message is published, as Celery 5.2's router
// (celery.app.routes.Router) and its send_task_message do: task_routes, task_queues, the missing
// queues task_create_missing_queues makes, the task_default_* settings and a call's own queue,
// exchange, routing key and priority. The client, canvas and beat all publish through one
// [Router]; the worker declares the queues it consumes (-Q) with the same [Queues].
package routing

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/internal/fnmatch"
)

// RegexpPrefix starts a task_routes pattern that is a regular expression rather than a name or a
// glob: "re:^ads\.(import|score)" is Celery's re.compile(r'^ads\.(import|score)') key. It is
// matched at the start of the task name only, as Python's re.match; Go's RE2 syntax stands in for
// Python's re (no look-around, no backreferences).
const RegexpPrefix = "re:"

// Route is one task_routes entry: the pattern a task name is matched against and where such a task
// goes.
type Route struct {
	// Pattern is an exact task name, a glob when it contains '*' (Python's fnmatch: '*', '?',
	// "[seq]", "[!seq]", the whole name, case-sensitive; a pattern without '*' is an exact name
	// even if it has '?' or '['), or a regular expression after [RegexpPrefix].
	Pattern string
	// Group is the index of the task_routes mapping the route came from (task_routes may be a list
	// of mappings; Celery makes each one a router of its own, tried in order).
	Group      int
	Queue      string
	Exchange   string
	RoutingKey string
	Priority   *int
}

// Routes is an ordered task_routes table.
type Routes []Route

// isGlob reports whether Celery's MapRoute treats pattern as a glob.
func isGlob(pattern string) bool { return strings.Contains(pattern, "*") }

// matcher is a compiled pattern of one group.
type matcher struct {
	route Route
	glob  *fnmatch.Pattern // nil for a regexp
	re    *regexp.Regexp
}

func (m matcher) match(task string) bool {
	if m.glob != nil {
		return m.glob.Match(task)
	}
	loc := m.re.FindStringIndex(task)
	return loc != nil && loc[0] == 0
}

// group is one mapping of task_routes, compiled as Celery's MapRoute: exact names, then the
// patterns (globs and regexps) in order, one per distinct compiled expression.
type group struct {
	exact    map[string]Route
	patterns []matcher
}

// Table is a compiled task_routes. The zero value routes nothing.
type Table struct {
	groups []group
}

// Compile compiles task_routes. It fails only on a regular expression that does not compile.
func Compile(rs Routes) (*Table, error) {
	t := &Table{}
	for start := 0; start < len(rs); {
		end := start
		for end < len(rs) && rs[end].Group == rs[start].Group {
			end++
		}
		g := group{exact: map[string]Route{}}
		// Celery keys a mapping's patterns by compiled expression: patterns that compile alike
		// ("*" and "**", or the same regexp twice) are one entry, at the first one's place, with
		// the last one's route.
		at := map[string]int{}
		for _, r := range rs[start:end] {
			var m matcher
			var key string
			switch {
			case strings.HasPrefix(r.Pattern, RegexpPrefix):
				expr := strings.TrimPrefix(r.Pattern, RegexpPrefix)
				re, err := regexp.Compile(expr)
				if err != nil {
					return nil, fmt.Errorf("task_routes[%q]: %w", r.Pattern, err)
				}
				m, key = matcher{route: r, re: re}, "re:"+expr
			case isGlob(r.Pattern):
				p := fnmatch.Compile(r.Pattern)
				m, key = matcher{route: r, glob: p}, "glob:"+p.String()
			default:
				g.exact[r.Pattern] = r
				continue
			}
			if i, dup := at[key]; dup {
				g.patterns[i].route = r
				continue
			}
			at[key] = len(g.patterns)
			g.patterns = append(g.patterns, m)
		}
		t.groups = append(t.groups, g)
		start = end
	}
	return t, nil
}

// Match returns the route of a task name as Celery 5.2's routers do: the mappings (groups) in
// order; within one, an exact task name first, then the first pattern that matches, in file order.
func (t *Table) Match(task string) (Route, bool) {
	if t == nil {
		return Route{}, false
	}
	for _, g := range t.groups {
		if r, ok := g.exact[task]; ok {
			return r, true
		}
		for _, m := range g.patterns {
			if m.match(task) {
				return m.route, true
			}
		}
	}
	return Route{}, false
}

// Queues is task_queues with the defaults Celery fills in: it answers what a queue named in a
// route, a call or -Q is declared as.
type Queues struct {
	// List is task_queues, in order.
	List []broker.Queue
	// DefaultQueue, DefaultExchange, DefaultExchangeType and DefaultRoutingKey are the
	// task_default_* settings.
	DefaultQueue        string
	DefaultExchange     string
	DefaultExchangeType string
	DefaultRoutingKey   string
	// MaxPriority is task_queue_max_priority (nil: none).
	MaxPriority *int
	// CreateMissing is task_create_missing_queues.
	CreateMissing bool
	// DefaultQueueType is task_default_queue_type ("" or "classic": no argument; "quorum": the
	// default queue, when task_queues is empty, gets x-queue-type quorum, as Celery 5.5).
	DefaultQueueType string
	// MissingQueueType and MissingExchangeType are task_create_missing_queue_type and
	// task_create_missing_queue_exchange_type (Celery 5.5): the x-queue-type and the exchange type
	// of a queue created because a task was routed to it ("" = classic, direct).
	MissingQueueType    string
	MissingExchangeType string
}

// queueTypeArgs is the queue_arguments Celery 5.5 gives a queue of type typ: x-queue-type for
// anything but classic, none for classic.
func queueTypeArgs(typ string) map[string]any {
	if typ == "" || typ == "classic" {
		return nil
	}
	return map[string]any{"x-queue-type": typ}
}

// Lookup returns the declaration of a queue as Celery would make it: from task_queues when listed
// there (exchange task_default_exchange and routing key the queue's name unless given), else the
// default queue's when task_queues is empty (x-queue-type from task_default_queue_type), else,
// with task_create_missing_queues, a missing queue X becomes exchange X (direct, or
// task_create_missing_queue_exchange_type) with routing key X (x-queue-type from
// task_create_missing_queue_type). x-max-priority comes from the queue's
// own max_priority or task_queue_max_priority.
func (qs Queues) Lookup(name string) (broker.Queue, bool) {
	for _, q := range qs.List {
		if q.Name == name {
			if q.Exchange == "" {
				q.Exchange = qs.DefaultExchange
			}
			if q.ExchangeType == "" {
				q.ExchangeType = qs.DefaultExchangeType
			}
			if q.RoutingKey == "" {
				q.RoutingKey = name
			}
			return qs.WithMaxPriority(q), true
		}
	}
	if len(qs.List) == 0 && name == qs.DefaultQueue {
		return qs.WithMaxPriority(broker.Queue{Name: name, Exchange: qs.DefaultExchange,
			ExchangeType: qs.DefaultExchangeType, RoutingKey: qs.DefaultRoutingKey,
			QueueArguments: queueTypeArgs(qs.DefaultQueueType)}), true
	}
	if !qs.CreateMissing {
		return broker.Queue{}, false
	}
	xt := qs.MissingExchangeType
	if xt == "" {
		xt = "direct"
	}
	return qs.WithMaxPriority(broker.Queue{Name: name, Exchange: name, ExchangeType: xt, RoutingKey: name,
		QueueArguments: queueTypeArgs(qs.MissingQueueType)}), true
}

// WithMaxPriority returns q with its x-max-priority queue argument: its own max_priority, else an
// x-max-priority argument it already has, else task_queue_max_priority.
func (qs Queues) WithMaxPriority(q broker.Queue) broker.Queue {
	mp := q.MaxPriority
	if mp == nil {
		if _, ok := q.QueueArguments["x-max-priority"]; ok {
			return q
		}
		mp = qs.MaxPriority
	}
	if mp != nil {
		args := make(map[string]any, len(q.QueueArguments)+1)
		for k, v := range q.QueueArguments {
			args[k] = v
		}
		args["x-max-priority"] = *mp
		q.QueueArguments = args
	}
	return q
}

// QueueNotFoundError is returned for a task routed to a queue that task_queues does not list
// while task_create_missing_queues is off (Celery's QueueNotFound).
type QueueNotFoundError struct {
	Queue string
}

func (e *QueueNotFoundError) Error() string {
	return fmt.Sprintf("queue %q is not defined and task_create_missing_queues is off", e.Queue)
}

// Options are one publish call's own choices (apply_async's queue, exchange, routing_key and
// priority); empty fields are not given.
type Options struct {
	Queue      string
	Exchange   string
	RoutingKey string
	Priority   *int
	// TaskQueue is the task's own default queue (its Queue task option): used when neither the
	// call nor task_routes names a queue.
	TaskQueue string
}

// Destination is where one message is published.
type Destination struct {
	// Exchange and RoutingKey are what the message is published with ("" = the default exchange,
	// RoutingKey then being the queue's name).
	Exchange   string
	RoutingKey string
	// Queue is the queue to declare before publishing, as Celery's declare=[queue].
	Queue broker.Queue
	// Priority is the message priority (0 unless the call, the route or task_default_priority
	// gives one), not yet clamped to a byte.
	Priority int
}

// Router routes tasks. It is immutable and safe for concurrent use.
type Router struct {
	table           *Table
	queues          Queues
	defaultPriority *int
}

// New returns a router over task_routes, task_queues and task_default_priority (nil: 0).
func New(routes Routes, queues Queues, defaultPriority *int) (*Router, error) {
	t, err := Compile(routes)
	if err != nil {
		return nil, err
	}
	return &Router{table: t, queues: queues, defaultPriority: defaultPriority}, nil
}

// Match returns the task_routes entry of a task name (see [Table.Match]).
func (r *Router) Match(task string) (Route, bool) { return r.table.Match(task) }

// Queues returns the router's task_queues.
func (r *Router) Queues() Queues { return r.queues }

// Route resolves where a task is published, as Celery's Router.route and send_task_message do: the
// call's own options win field by field over the matching task_routes entry; then the task's own
// queue, then task_default_queue; the priority from the call, the route or task_default_priority.
// A queue on a direct exchange is published to through the default exchange with the queue's name
// as routing key unless both an exchange and a routing key were given; otherwise the exchange and
// routing key default to the queue's, then to task_default_routing_key.
func (r *Router) Route(task string, o Options) (Destination, error) {
	queue, exchange, key, prio := o.Queue, o.Exchange, o.RoutingKey, o.Priority
	if m, ok := r.table.Match(task); ok {
		if queue == "" {
			queue = m.Queue
		}
		if exchange == "" {
			exchange = m.Exchange
		}
		if key == "" {
			key = m.RoutingKey
		}
		if prio == nil {
			prio = m.Priority
		}
	}
	if queue == "" {
		queue = o.TaskQueue
	}
	if queue == "" {
		queue = r.queues.DefaultQueue
	}
	if prio == nil {
		prio = r.defaultPriority
	}
	d := Destination{}
	if prio != nil {
		d.Priority = *prio
	}
	q, ok := r.queues.Lookup(queue)
	if !ok {
		return Destination{}, &QueueNotFoundError{Queue: queue}
	}
	d.Queue = q
	if (exchange == "" || key == "") && (q.ExchangeType == "" || q.ExchangeType == "direct") {
		d.RoutingKey = q.Name
		return d, nil
	}
	if exchange == "" {
		exchange = q.Exchange
	}
	if key == "" {
		key = q.RoutingKey
	}
	if key == "" {
		key = r.queues.DefaultRoutingKey
	}
	d.Exchange, d.RoutingKey = exchange, key
	return d, nil
}
