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

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/fanout"
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
	tr   fanout.Transport
	opts Options
	log  *slog.Logger

	mu       sync.RWMutex
	handlers map[string]Handler

	ready     chan struct{}
	readyOnce sync.Once
	running   atomic.Bool
}

// NewMailbox returns the mailbox of node (its Celery node name, such as "celery@host"), which
// listens through tr. The caller keeps tr and closes it after Run has returned.
func NewMailbox(node string, tr fanout.Transport, opts Options) (*Mailbox, error) {
	if node == "" {
		return nil, errors.New("control: NewMailbox: empty node name")
	}
	if tr == nil {
		return nil, errors.New("control: NewMailbox: no transport")
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
		tr:       tr,
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

// Run declares the topology, consumes and answers requests until ctx ends, then returns nil.
// When the subscription ends (the transport lost its connection, or the broker deleted the
// queue) it sets up again with backoff, redeclaring and consuming again. It returns an error
// only when the very first setup fails (the broker refused it, such as PRECONDITION_FAILED for
// exchanges declared with other flags: the transport retries everything else), when the
// transport is closed ([broker.ErrClosed]) or when called twice.
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
		if !connected || errors.Is(err, broker.ErrClosed) {
			return fmt.Errorf("control: mailbox of %s: %w", m.node, err)
		}
		m.log.Warn("control mailbox lost its broker connection, reconnecting", "node", m.node, "error", err, "in", delay)
		if !backoff(ctx, delay) {
			return nil
		}
		delay = min(delay*2, m.opts.MaxBackoff)
	}
}

// session runs one subscription: setup, then consuming until it ends. up reports whether
// consuming started.
func (m *Mailbox) session(ctx context.Context) (up bool, err error) {
	if err := declareExchanges(ctx, m.tr, m.opts); err != nil {
		return false, err
	}
	queue := m.opts.NodeQueue(m.node)
	consumers, err := m.tr.DeclareQueue(ctx, m.opts.queue(queue, m.opts.Exchange(), ""))
	if err != nil {
		return false, err
	}
	if consumers > 0 {
		m.log.Warn(fmt.Sprintf("A node named %s is already using this process mailbox! Maybe you forgot to "+
			"shutdown the other node or did not do so properly? Or if you meant to start multiple nodes on "+
			"the same host please make sure you give each node a unique node name!", m.node),
			"queue", queue, "consumers", consumers)
	}
	sub, err := m.tr.Consume(ctx, queue)
	if err != nil {
		return false, err
	}
	defer sub.Close()
	m.readyOnce.Do(func() { close(m.ready) })
	m.log.Debug("control mailbox consuming", "queue", queue, "exchange", m.opts.Exchange())
	rp := &replier{tr: m.tr, declared: map[string]bool{}}
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case msg, ok := <-sub.C():
			if !ok {
				if err := sub.Err(); err != nil {
					return true, err
				}
				return true, errors.New("the subscription ended")
			}
			m.serve(ctx, rp, msg.Envelope)
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

// replier publishes replies without confirms, as kombu does. Like kombu it declares each reply
// exchange (direct, non-durable) before its first use in a session, and again after a failed
// publish to it.
type replier struct {
	tr       fanout.Transport
	declared map[string]bool
}

func (r *replier) publish(ctx context.Context, out *outgoing) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out.exchange != "" && !r.declared[out.exchange] {
		if err := r.tr.DeclareExchange(ctx, out.exchange, "direct", false, false); err != nil {
			return fmt.Errorf("declaring reply exchange %q: %w", out.exchange, err)
		}
		r.declared[out.exchange] = true
	}
	err := r.tr.Send(ctx, broker.Publishing{Exchange: out.exchange, RoutingKey: out.routingKey, Envelope: out.env})
	if err != nil {
		delete(r.declared, out.exchange)
	}
	return err
}
