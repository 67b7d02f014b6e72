package beat

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/protocol"
)

// SlotHeader is the message header carrying the run's scheduled due time (unix milliseconds), so a
// consumer can tell runs apart; Celery ignores headers it does not know.
const SlotHeader = "beat_slot"

// ClientPublisher sends runs through a celery.Client: routing (task_routes, the entry's options) and
// message format are those of any Celery client.
type ClientPublisher struct {
	c *celery.Client
}

// NewClientPublisher returns a publisher sending with cfg through br.
func NewClientPublisher(cfg celery.Config, br broker.Broker) (*ClientPublisher, error) {
	c, err := celery.NewClient(celery.ClientOptions{Config: cfg, Broker: reprBroker{br}})
	if err != nil {
		return nil, err
	}
	return &ClientPublisher{c: c}, nil
}

type reprKey struct{}

type reprs struct{ args, kwargs string }

// reprBroker sets argsrepr/kwargsrepr as celery beat sends them: beat passes the entry's args as a
// list (argsrepr "[1, 2]"; "()" when the entry has none) and kwargs in the entry's order.
type reprBroker struct{ broker.Broker }

// Publish overrides the repr headers from the context, then publishes.
func (b reprBroker) Publish(ctx context.Context, p broker.Publishing) error {
	if r, ok := ctx.Value(reprKey{}).(reprs); ok && p.Headers != nil {
		p.Headers["argsrepr"] = r.args
		p.Headers["kwargsrepr"] = r.kwargs
	}
	return b.Broker.Publish(ctx, p)
}

// ArgsRepr is the argsrepr celery beat sends for args (nil = the entry has no args).
func ArgsRepr(args []json.RawMessage) string {
	if args == nil {
		return "()"
	}
	list := []byte{'['}
	for i, a := range args {
		if i > 0 {
			list = append(list, ',')
		}
		list = append(list, a...)
	}
	list = append(list, ']')
	return protocol.SafeRepr(list, protocol.ReprMaxSize)
}

// Publish sends one run of e.
func (p *ClientPublisher) Publish(ctx context.Context, e *Entry, slot time.Time) error {
	o := e.Options
	headers := make(map[string]any, len(o.Headers)+1)
	for k, v := range o.Headers {
		headers[k] = v
	}
	headers[SlotHeader] = strconv.FormatInt(slot.UnixMilli(), 10)
	opts := []celery.SendOption{celery.WithHeaders(headers)}
	if o.Queue != "" || o.Exchange != "" || o.RoutingKey != "" {
		opts = append(opts, func(so *celery.SendOptions) {
			so.Queue, so.Exchange, so.RoutingKey = o.Queue, o.Exchange, o.RoutingKey
		})
	}
	if o.Priority != nil {
		opts = append(opts, celery.WithPriority(*o.Priority))
	}
	if !o.ExpiresAt.IsZero() {
		opts = append(opts, celery.WithExpires(o.ExpiresAt))
	} else if o.Expires > 0 {
		opts = append(opts, celery.WithExpiresIn(o.Expires))
	}
	ctx = context.WithValue(ctx, reprKey{}, reprs{args: ArgsRepr(e.Args), kwargs: protocol.ReprKwargs(e.KwargsOrder, e.Kwargs)})
	_, err := p.c.SendRaw(ctx, e.Task, e.Args, e.Kwargs, opts...)
	return err
}
