package celery

import (
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/internal/routing"
)

// Router says where a task is published, as Celery 5.2's app.amqp.router and send_task_message
// do: task_routes (exact names, globs, re: patterns; see [Routes.Match]), task_queues, the missing
// queues task_create_missing_queues makes, task_default_queue / _exchange / _routing_key /
// _priority, and a call's own queue, exchange, routing key and priority. The [Client], canvas and
// beat all publish through one. A Router is immutable and safe for concurrent use.
type Router struct {
	r *routing.Router
}

// NewRouter returns the router of cfg (Celery's defaults filled in), or the setting that cannot
// work.
func NewRouter(cfg Config) (*Router, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r, err := routing.New(cfg.TaskRoutes.internal(), cfg.queues(), cfg.TaskDefaultPriority)
	if err != nil {
		return nil, err
	}
	return &Router{r: r}, nil
}

// Destination is where one task message is published.
type Destination struct {
	// Exchange and RoutingKey are what the message is published with: Exchange "" is the default
	// exchange, RoutingKey then being the queue's name.
	Exchange   string
	RoutingKey string
	// Queue is the queue declared before publishing (Celery's declare=[queue]).
	Queue QueueConfig
	// Priority is the message priority: the call's, else the route's, else task_default_priority,
	// else 0; clamped to 0-255.
	Priority uint8
}

// Publishing returns the broker publishing of the destination, without its message.
func (d Destination) Publishing() broker.Publishing {
	q := d.Queue
	return broker.Publishing{Exchange: d.Exchange, RoutingKey: d.RoutingKey, Declare: &q}
}

// Route returns where a task sent with opts is published: the options' queue, exchange, routing
// key and priority win field by field over the matching task_routes entry; a queue on a direct
// exchange is published to through the default exchange with the queue's name as routing key
// unless both an exchange and a routing key are given. A queue that task_queues does not list is
// an error when task_create_missing_queues is off.
func (r *Router) Route(task string, opts ...SendOption) (Destination, error) {
	var o SendOptions
	for _, opt := range opts {
		opt(&o)
	}
	return r.route(task, &o)
}

func (r *Router) route(task string, o *SendOptions) (Destination, error) {
	d, err := r.r.Route(task, routing.Options{Queue: o.Queue, Exchange: o.Exchange, RoutingKey: o.RoutingKey,
		Priority: o.Priority, TaskQueue: o.taskQueue})
	if err != nil {
		return Destination{}, err
	}
	return Destination{Exchange: d.Exchange, RoutingKey: d.RoutingKey, Queue: d.Queue,
		Priority: uint8(min(max(d.Priority, 0), 255))}, nil
}

// Match returns the task_routes entry of a task name (see [Routes.Match]).
func (r *Router) Match(task string) (Route, bool) {
	m, ok := r.r.Match(task)
	return Route(m), ok
}

// queues is task_queues with the settings that complete its entries.
func (c Config) queues() routing.Queues {
	return routing.Queues{List: c.TaskQueues, DefaultQueue: c.TaskDefaultQueue, DefaultExchange: c.TaskDefaultExchange,
		DefaultExchangeType: c.TaskDefaultExchangeType, DefaultRoutingKey: c.TaskDefaultRoutingKey,
		MaxPriority: c.TaskQueueMaxPriority, CreateMissing: c.TaskCreateMissingQueues == nil || *c.TaskCreateMissingQueues,
		DefaultQueueType: c.TaskDefaultQueueType, MissingQueueType: c.TaskCreateMissingQueueType,
		MissingExchangeType: c.TaskCreateMissingQueueExchangeType}
}

// withMaxPriority gives q its x-max-priority argument (see routing.Queues.WithMaxPriority).
func (c Config) withMaxPriority(q QueueConfig) QueueConfig { return c.queues().WithMaxPriority(q) }

// DeliveryMode is task_default_delivery_mode as the AMQP delivery mode of task messages: 1
// (transient: 1 or "transient") or 2 (persistent, the default).
func (c Config) DeliveryMode() uint8 {
	switch v := c.TaskDefaultDeliveryMode.(type) {
	case int:
		if v == 1 {
			return 1
		}
	case string:
		if v == "transient" || v == "1" {
			return 1
		}
	}
	return 2
}
