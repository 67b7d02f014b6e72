package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/celery/protocol"
)

// Handler runs one remote-control command. args is the request's "arguments", always a JSON
// object. The result becomes the node's reply (encoded with encoding/json; return [OK] or [Error]
// for Celery's usual shapes). A returned error becomes the reply {"error": "<repr>"} (see
// [ErrorRepr]), as an exception raised by a Python command does; a panic is recovered the same
// way. ctx ends when the mailbox stops or when the request expires; [RequestFrom] gives the whole
// request.
type Handler func(ctx context.Context, args json.RawMessage) (any, error)

// Mailbox is one node's end of Celery's remote control ("pidbox"): it declares the exchanges and
// the node's queue exactly as kombu does, consumes the requests meant for the node, runs their
// handlers one at a time (in arrival order, as a Python worker does) and publishes the replies.
// Register handlers with [Mailbox.Handle], then call [Mailbox.Run].
type Mailbox struct {
	node string
	opts Options
	log  *slog.Logger

	mu       sync.RWMutex
	handlers map[string]Handler

	ready     chan struct{}
	readyOnce sync.Once
	running   atomic.Bool
}

// NewMailbox returns the mailbox of node (its Celery node name, such as "celery@host").
func NewMailbox(node string, opts Options) (*Mailbox, error) {
	if node == "" {
		return nil, errors.New("control: NewMailbox: empty node name")
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if q := o.NodeQueue(node); len(q) > 255 {
		return nil, fmt.Errorf("control: NewMailbox: node name %q makes the queue name longer than 255 bytes", node)
	}
	return &Mailbox{
		node:     node,
		opts:     o,
		log:      o.Logger.With("node", node),
		handlers: map[string]Handler{},
		ready:    make(chan struct{}),
	}, nil
}

// Node is the node name the mailbox answers for.
func (m *Mailbox) Node() string { return m.node }

// Clock is the node's Lamport clock.
func (m *Mailbox) Clock() *Clock { return m.opts.Clock }

// Handle registers h for method. Like http.ServeMux.Handle it panics on an empty method, a nil
// handler or a method registered twice, so wiring mistakes show at start. It may be called while
// the mailbox runs.
func (m *Mailbox) Handle(method string, h Handler) {
	if method == "" {
		panic("control: Handle: empty method")
	}
	if h == nil {
		panic("control: Handle: nil handler for " + method)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.handlers[method]; dup {
		panic("control: Handle: method registered twice: " + method)
	}
	m.handlers[method] = h
}

// Ready is closed once the mailbox consumes its queue for the first time: from then on, requests
// published to the exchange reach it.
func (m *Mailbox) Ready() <-chan struct{} { return m.ready }

// Run connects, declares the topology, consumes and answers requests until ctx ends, then returns
// nil. A lost connection or channel is re-established with backoff, redeclaring and consuming
// again. It returns an error only when the very first setup is refused by the broker (such as
// PRECONDITION_FAILED for exchanges declared with other flags) or when called twice.
func (m *Mailbox) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("control: Mailbox.Run called twice")
	}
	delay := m.opts.MinBackoff
	connected := false
	for {
		up, err := m.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		connected = connected || up
		if up {
			delay = m.opts.MinBackoff
		}
		if !connected && isRefusal(err) {
			return fmt.Errorf("control: mailbox of %s: %w", m.node, err)
		}
		m.log.Warn("control mailbox lost its broker connection, reconnecting", "error", err, "in", delay)
		if !backoff(ctx, delay) {
			return nil
		}
		delay = min(delay*2, m.opts.MaxBackoff)
	}
}

// session runs one connection: setup, then consuming until the connection or channel ends. up
// reports whether consuming started.
func (m *Mailbox) session(ctx context.Context) (up bool, err error) {
	conn, err := m.opts.Dial(ctx)
	if err != nil {
		return false, fmt.Errorf("connecting: %w", err)
	}
	defer conn.Close()
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	ch, err := conn.Channel()
	if err != nil {
		return false, fmt.Errorf("opening channel: %w", err)
	}
	if err := declareExchanges(ch, m.opts); err != nil {
		return false, err
	}
	queue := m.opts.NodeQueue(m.node)
	q, err := ch.QueueDeclare(queue, false, true, false, false, queueArgs(m.opts))
	if err != nil {
		return false, fmt.Errorf("declaring queue %q: %w", queue, err)
	}
	if q.Consumers > 0 {
		m.log.Warn(fmt.Sprintf("A node named %s is already using this process mailbox! Maybe you forgot to "+
			"shutdown the other node or did not do so properly? Or if you meant to start multiple nodes on "+
			"the same host please make sure you give each node a unique node name!", m.node),
			"queue", queue, "consumers", q.Consumers)
	}
	if err := ch.QueueBind(queue, "", m.opts.Exchange(), false, nil); err != nil {
		return false, fmt.Errorf("binding queue %q to %q: %w", queue, m.opts.Exchange(), err)
	}
	deliveries, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		return false, fmt.Errorf("consuming %q: %w", queue, err)
	}
	m.readyOnce.Do(func() { close(m.ready) })
	m.log.Debug("control mailbox consuming", "queue", queue, "exchange", m.opts.Exchange())
	rp := &replier{conn: conn, log: m.log}
	defer rp.close()
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case d, ok := <-deliveries:
			if !ok {
				select {
				case e := <-closed:
					if e != nil {
						return true, e
					}
				default:
				}
				if ch.IsClosed() {
					return true, errors.New("control channel closed")
				}
				return true, errors.New("consumer cancelled by the broker")
			}
			m.serve(ctx, rp, envelopeOf(&d))
		}
	}
}

// serve answers one delivered message.
func (m *Mailbox) serve(ctx context.Context, rp *replier, env protocol.Envelope) {
	out, err := m.process(ctx, env)
	if err != nil {
		m.log.Error("control request ignored", "error", err)
		return
	}
	if out == nil {
		return
	}
	if err := rp.publish(ctx, out); err != nil && ctx.Err() == nil {
		m.log.Error("cannot publish control reply", "method", out.method, "exchange", out.exchange,
			"routing_key", out.routingKey, "error", err)
	}
}

// outgoing is a reply to publish.
type outgoing struct {
	method               string
	exchange, routingKey string
	env                  protocol.Envelope
}

// process decodes one message, runs its handler and returns the reply to publish. It returns
// (nil, nil) for a request that is not for this node, has expired or wants no reply, and an error
// wrapping ErrMalformed for a message that is not a request.
func (m *Mailbox) process(ctx context.Context, env protocol.Envelope) (*outgoing, error) {
	clock := m.opts.Clock
	// A Python worker moves its clock on every control message, then past the sender's.
	clock.Tick()
	req, err := DecodeRequest(env)
	if err != nil {
		return nil, err
	}
	clock.Forward(req.Clock)
	if !req.For(m.node) {
		return nil, nil
	}
	if req.Expired(m.opts.Now()) {
		m.log.Info("control request expired, ignored", "method", req.Method, "ticket", req.Ticket, "expires", req.Expires)
		return nil, nil
	}
	result := m.dispatch(ctx, req)
	if req.ReplyTo == nil {
		return nil, nil
	}
	body, err := EncodeReply(m.node, result)
	if err != nil {
		m.log.Error("cannot encode control reply", "method", req.Method, "error", err)
		if body, err = EncodeReply(m.node, Error(ErrorRepr(encodeError{err}))); err != nil {
			return nil, err
		}
	}
	var ticket any
	if req.Ticket != "" {
		ticket = req.Ticket
	}
	return &outgoing{
		method:     req.Method,
		exchange:   req.ReplyTo.Exchange,
		routingKey: req.ReplyTo.RoutingKey,
		env: protocol.Envelope{
			Body:            body,
			ContentType:     "application/json",
			ContentEncoding: "utf-8",
			DeliveryMode:    1,
			Headers:         map[string]any{"ticket": ticket, "clock": headerInt(clock.Tick())},
		},
	}, nil
}

// encodeError is a reply that encoding/json could not encode (kombu's EncodeError).
type encodeError struct{ err error }

func (e encodeError) Error() string   { return e.err.Error() }
func (e encodeError) ExcType() string { return "EncodeError" }

// panicError is a recovered panic of a handler.
type panicError struct{ value any }

func (e panicError) Error() string   { return fmt.Sprintf("panic: %v", e.value) }
func (e panicError) ExcType() string { return "PanicError" }

// dispatch runs the request's handler and returns the reply value.
func (m *Mailbox) dispatch(ctx context.Context, req *Request) (result any) {
	m.mu.RLock()
	h := m.handlers[req.Method]
	m.mu.RUnlock()
	log := m.log.With("method", req.Method, "ticket", req.Ticket)
	if h == nil {
		log.Error("No such control command: " + req.Method)
		return Error(ErrorRepr(&unknownCommandError{method: req.Method}))
	}
	log.Debug("control command", "arguments", string(req.Arguments))
	ctx = context.WithValue(ctx, requestKey{}, req)
	if t, ok := req.ExpiresAt(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, t)
		defer cancel()
	}
	defer func() {
		if v := recover(); v != nil {
			log.Error("control command panicked", "panic", v)
			result = Error(ErrorRepr(panicError{v}))
		}
	}()
	res, err := h(ctx, req.Arguments)
	if err != nil {
		log.Error("control command error", "error", err)
		return Error(ErrorRepr(err))
	}
	return res
}

type requestKey struct{}

// RequestFrom returns the request a [Handler] is running for.
func RequestFrom(ctx context.Context) (*Request, bool) {
	r, ok := ctx.Value(requestKey{}).(*Request)
	return r, ok
}

// replier publishes replies on a channel of its own, so that a reply the broker refuses (an
// exchange that does not exist) cannot close the consuming channel. Like kombu it declares each
// reply exchange (direct, non-durable) before its first use on a channel.
type replier struct {
	conn     *amqp.Connection
	log      *slog.Logger
	ch       *amqp.Channel
	declared map[string]bool
}

func (r *replier) publish(ctx context.Context, out *outgoing) error {
	if r.ch == nil || r.ch.IsClosed() {
		ch, err := r.conn.Channel()
		if err != nil {
			return fmt.Errorf("opening reply channel: %w", err)
		}
		r.ch, r.declared = ch, map[string]bool{}
	}
	if out.exchange != "" && !r.declared[out.exchange] {
		if err := r.ch.ExchangeDeclare(out.exchange, "direct", false, false, false, false, nil); err != nil {
			return fmt.Errorf("declaring reply exchange %q: %w", out.exchange, err)
		}
		r.declared[out.exchange] = true
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return r.ch.PublishWithContext(ctx, out.exchange, out.routingKey, false, false, publishing(out.env))
}

func (r *replier) close() {
	if r.ch != nil {
		_ = r.ch.Close()
	}
}

func publishing(env protocol.Envelope) amqp.Publishing {
	return amqp.Publishing{
		Headers:         amqp.Table(env.Headers),
		ContentType:     env.ContentType,
		ContentEncoding: env.ContentEncoding,
		DeliveryMode:    env.DeliveryMode,
		Priority:        env.Priority,
		Body:            env.Body,
	}
}

func envelopeOf(d *amqp.Delivery) protocol.Envelope {
	return protocol.Envelope{
		Body:            d.Body,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		Headers:         d.Headers,
		ReplyTo:         d.ReplyTo,
		DeliveryMode:    d.DeliveryMode,
		Priority:        d.Priority,
	}
}
