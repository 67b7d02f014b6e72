// Package amqpbroker is the RabbitMQ adapter of package broker, on amqp091-go: Celery's topology
// (durable direct exchanges and queues declared exactly as Celery 5.2 declares them), channel prefetch
// with global QoS as Celery sets it, publisher confirms, and reconnection with backoff that keeps
// consuming and publishing across broker restarts.
//
// Every connection goes through package amqpwire, so a header written by py-amqp with a field type
// amqp091-go cannot read (a 64-bit int as 'L') no longer kills the connection.
package amqpbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/celery/amqpwire"
	"github.com/forumads/forumads/celery/broker"
)

// Options configure a Broker. Zero values mean the defaults.
type Options struct {
	Logger *slog.Logger
	// Heartbeat is the AMQP heartbeat interval (default 10s, as amqp091-go).
	Heartbeat time.Duration
	// ConnectionName is shown in the RabbitMQ management UI.
	ConnectionName string
	// MinBackoff and MaxBackoff bound the reconnect delay (defaults 100ms and 5s).
	MinBackoff, MaxBackoff time.Duration
	// OnReconnect, if set, is called after every successful reconnect (not the first connect).
	OnReconnect func()
	// OnWireRewrite, if set, sees every header rewrite made by package amqpwire.
	OnWireRewrite func(amqpwire.Event)
}

// Broker is a RabbitMQ connection manager implementing broker.Broker. It is safe for concurrent use.
type Broker struct {
	urls []string
	opts Options
	log  *slog.Logger

	mu        sync.Mutex
	conn      *amqp.Connection
	gen       uint64
	pub       *amqp.Channel           // confirm-mode channel for publishing
	declared  map[string]bool         // queues declared on the current connection
	exchanges map[string]exchangeDecl // declared with DeclareExchange, again on every new connection
	exDone    map[string]bool         // exchanges declared on the current connection
	closed    bool
	closing   chan struct{}
	nextURL   int
	connects  atomic.Int64
	consumers []*consumer
	pubMu     sync.Mutex // serialises channel (re)opening for publishing
}

// New returns a Broker for a Celery broker_url. Several URLs separated by ';' are tried in turn
// (Celery's failover list). pyamqp:// and amqp:// are accepted; "//" as path means vhost "/".
// No connection is made until the first use.
func New(brokerURL string, opts Options) (*Broker, error) {
	urls, err := ParseURLs(brokerURL)
	if err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Second
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 10 * time.Second
	}
	return &Broker{urls: urls, opts: opts, log: opts.Logger, closing: make(chan struct{}),
		exchanges: map[string]exchangeDecl{}}, nil
}

// ParseURLs turns a Celery broker_url into amqp091-go URIs.
func ParseURLs(brokerURL string) ([]string, error) {
	var out []string
	for _, raw := range strings.Split(brokerURL, ";") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("broker_url: %w", err)
		}
		switch u.Scheme {
		case "amqp", "pyamqp", "librabbitmq":
			u.Scheme = "amqp"
		case "amqps":
		default:
			return nil, fmt.Errorf("broker_url: unsupported scheme %q (amqp:// or amqps://)", u.Scheme)
		}
		// kombu: the path minus its first slash is the vhost; none means "/".
		vhost := strings.TrimPrefix(u.Path, "/")
		if vhost == "" {
			vhost = "/"
		}
		u.Path = "/" + vhost
		u.RawPath = "/" + url.PathEscape(vhost)
		if u.Host == "" {
			u.Host = "localhost"
		}
		if u.User == nil {
			u.User = url.UserPassword("guest", "guest")
		}
		out = append(out, u.String())
	}
	if len(out) == 0 {
		return nil, errors.New("broker_url: empty")
	}
	return out, nil
}

// Redacted is the first broker URL without its password, for logs.
func (b *Broker) Redacted() string {
	u, err := url.Parse(b.urls[0])
	if err != nil {
		return "amqp://?"
	}
	return u.Redacted()
}

// Connects counts successful connections (1 after the first connect, +1 per reconnect).
func (b *Broker) Connects() int64 { return b.connects.Load() }

// Connected reports whether the broker has a live connection now (for health checks).
func (b *Broker) Connected() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.closed && b.conn != nil && !b.conn.IsClosed()
}

// connection returns the live connection and its generation, connecting (with backoff) if needed.
func (b *Broker) connection(ctx context.Context) (*amqp.Connection, uint64, error) {
	backoff := b.opts.MinBackoff
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return nil, 0, broker.ErrClosed
		}
		if b.conn != nil && !b.conn.IsClosed() {
			c, g := b.conn, b.gen
			b.mu.Unlock()
			return c, g, nil
		}
		c, err := b.dial()
		if err == nil {
			b.conn = c
			b.gen++
			b.declared = map[string]bool{}
			b.exDone = map[string]bool{}
			b.pub = nil
			n := b.connects.Add(1)
			g := b.gen
			notify := c.NotifyClose(make(chan *amqp.Error, 1))
			b.mu.Unlock()
			if n > 1 {
				b.log.Info("connected to broker again", "broker", b.Redacted(), "generation", g)
				if b.opts.OnReconnect != nil {
					b.opts.OnReconnect()
				}
			} else {
				b.log.Info("connected to broker", "broker", b.Redacted())
			}
			go b.watch(c, g, notify)
			return c, g, nil
		}
		b.mu.Unlock()
		b.log.Warn("cannot connect to broker, retrying", "broker", b.Redacted(), "error", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("connecting to broker: %w", context.Cause(ctx))
		case <-b.closing:
			return nil, 0, broker.ErrClosed
		case <-time.After(backoff + time.Duration(rand.Int64N(int64(backoff)/2+1))):
		}
		backoff = min(backoff*2, b.opts.MaxBackoff)
	}
}

// watch marks the connection lost when it closes.
func (b *Broker) watch(c *amqp.Connection, gen uint64, notify chan *amqp.Error) {
	err, ok := <-notify
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gen == gen && b.conn == c {
		b.conn = nil
		b.pub = nil
	}
	if ok && err != nil && !b.closed {
		b.log.Warn("broker connection lost", "error", err, "generation", gen)
	}
}

func (b *Broker) dial() (*amqp.Connection, error) {
	u := b.urls[b.nextURL%len(b.urls)]
	b.nextURL++
	props := amqp.NewConnectionProperties()
	if b.opts.ConnectionName != "" {
		props.SetClientConnectionName(b.opts.ConnectionName)
	}
	cfg := amqp.Config{
		Heartbeat:  b.opts.Heartbeat,
		Locale:     "en_US",
		Properties: props,
		Dial:       amqpwire.Dialer(nil, amqpwire.Options{OnEvent: b.opts.OnWireRewrite}),
	}
	return amqp.DialConfig(u, cfg)
}

// Declare declares q's exchange, the queue and the binding, as kombu does.
func (b *Broker) Declare(ctx context.Context, q broker.Queue) error {
	for {
		conn, gen, err := b.connection(ctx)
		if err != nil {
			return err
		}
		ch, err := conn.Channel()
		if err != nil {
			if b.retryable(ctx, err) {
				continue
			}
			return err
		}
		err = declare(ch, q)
		_ = ch.Close()
		if err == nil {
			b.mu.Lock()
			if b.gen == gen {
				b.declared[q.Name] = true
			}
			b.mu.Unlock()
			return nil
		}
		var aerr *amqp.Error
		if errors.As(err, &aerr) && aerr.Code == amqp.PreconditionFailed {
			return fmt.Errorf("declaring queue %q: %w (it exists with other settings; Celery declares it durable, without arguments unless task_queues says so)", q.Name, err)
		}
		if !b.retryable(ctx, err) {
			return err
		}
	}
}

// exchangeDecl is how DeclareExchange declared an exchange.
type exchangeDecl struct {
	kind                string
	durable, autoDelete bool
}

// DeclareExchange declares an exchange without any queue (events.ExchangeDeclarer): kind is direct,
// topic, fanout, headers or a plugin's x-… type ("" = direct); no arguments, not internal. The
// declaration is remembered and made again on every new connection before the first publish to
// the exchange, so a broker restart that lost a non-durable exchange does not lose what is sent to
// it afterwards. A declaration RabbitMQ refuses (406: the exchange exists with other flags) is
// returned and not remembered.
func (b *Broker) DeclareExchange(ctx context.Context, name, kind string, durable, autoDelete bool) error {
	if name == "" {
		return errors.New("declaring an exchange: empty name (the default exchange exists already)")
	}
	switch {
	case kind == "":
		kind = "direct"
	case kind == "direct", kind == "topic", kind == "fanout", kind == "headers", strings.HasPrefix(kind, "x-"):
	default:
		// RabbitMQ answers an unknown type with a connection error, which would close every channel.
		return fmt.Errorf("declaring exchange %q: unknown exchange type %q (direct, topic, fanout, headers or x-…)", name, kind)
	}
	x := exchangeDecl{kind: kind, durable: durable, autoDelete: autoDelete}
	if err := b.declareExchange(ctx, name, x); err != nil {
		return err
	}
	b.mu.Lock()
	b.exchanges[name] = x
	b.mu.Unlock()
	return nil
}

func (b *Broker) declareExchange(ctx context.Context, name string, x exchangeDecl) error {
	for {
		conn, gen, err := b.connection(ctx)
		if err != nil {
			return err
		}
		ch, err := conn.Channel()
		if err != nil {
			if b.retryable(ctx, err) {
				continue
			}
			return fmt.Errorf("declaring exchange %q: %w", name, err)
		}
		err = ch.ExchangeDeclare(name, x.kind, x.durable, x.autoDelete, false, false, nil)
		_ = ch.Close()
		if err == nil {
			b.mu.Lock()
			if b.gen == gen {
				b.exDone[name] = true
			}
			b.mu.Unlock()
			return nil
		}
		var aerr *amqp.Error
		if errors.As(err, &aerr) && aerr.Code == amqp.PreconditionFailed {
			return fmt.Errorf("declaring exchange %q (%s, durable=%v, auto_delete=%v): %w (it exists with other settings)",
				name, x.kind, x.durable, x.autoDelete, err)
		}
		if !b.retryable(ctx, err) {
			return fmt.Errorf("declaring exchange %q: %w", name, err)
		}
	}
}

// retryable waits a moment and reports whether an operation should be tried again after err:
// yes for a lost connection or channel, no for the broker refusing what was asked.
func (b *Broker) retryable(ctx context.Context, err error) bool {
	var aerr *amqp.Error
	if errors.As(err, &aerr) {
		switch aerr.Code {
		case amqp.NotFound, amqp.AccessRefused, amqp.PreconditionFailed, amqp.ResourceLocked,
			amqp.NotAllowed, amqp.NotImplemented, amqp.CommandInvalid, amqp.SyntaxError:
			return false
		}
	}
	select {
	case <-ctx.Done():
		return false
	case <-b.closing:
		return false
	case <-time.After(b.opts.MinBackoff):
		return true
	}
}

func declare(ch *amqp.Channel, q broker.Queue) error {
	args := amqp.Table{}
	for k, v := range q.QueueArguments {
		args[k] = tableValue(v)
	}
	if q.MaxPriority != nil {
		args["x-max-priority"] = int32(*q.MaxPriority)
	}
	if len(args) == 0 {
		args = nil
	}
	if q.Exchange != "" {
		typ := q.ExchangeType
		if typ == "" {
			typ = "direct"
		}
		if err := ch.ExchangeDeclare(q.Exchange, typ, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declaring exchange %q: %w", q.Exchange, err)
		}
	}
	if _, err := ch.QueueDeclare(q.Name, true, false, false, false, args); err != nil {
		return fmt.Errorf("declaring queue %q: %w", q.Name, err)
	}
	if q.Exchange != "" {
		key := q.RoutingKey
		if key == "" {
			key = q.Name
		}
		if err := ch.QueueBind(q.Name, key, q.Exchange, false, nil); err != nil {
			return fmt.Errorf("binding queue %q to %q: %w", q.Name, q.Exchange, err)
		}
	}
	return nil
}

// tableValue converts a configuration or header value to what amqp091-go can write, with integers as
// 32-bit where they fit (py-amqp reads 'I'; amqpwire turns wider ones into py-amqp's 'L').
func tableValue(v any) any {
	switch x := v.(type) {
	case int:
		if x >= -(1<<31-1) && x <= 1<<31-1 {
			return int32(x)
		}
		return int64(x)
	case int64:
		if x >= -(1<<31-1) && x <= 1<<31-1 {
			return int32(x)
		}
		return x
	case uint8:
		return int32(x)
	case uint16:
		return int32(x)
	case uint32:
		return int64(x)
	case int8:
		return int32(x)
	case int16:
		return int32(x)
	case map[string]any:
		t := make(amqp.Table, len(x))
		for k, e := range x {
			t[k] = tableValue(e)
		}
		return t
	case amqp.Table:
		t := make(amqp.Table, len(x))
		for k, e := range x {
			t[k] = tableValue(e)
		}
		return t
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = tableValue(e)
		}
		return out
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out
	}
	return v
}

// Table converts protocol headers to an amqp.Table.
func Table(h map[string]any) amqp.Table {
	if h == nil {
		return nil
	}
	t := make(amqp.Table, len(h))
	for k, v := range h {
		t[k] = tableValue(v)
	}
	return t
}

// publisher returns the confirm-mode publishing channel of the live connection.
func (b *Broker) publisher(ctx context.Context) (*amqp.Channel, uint64, error) {
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	conn, gen, err := b.connection(ctx)
	if err != nil {
		return nil, 0, err
	}
	b.mu.Lock()
	if b.pub != nil && b.gen == gen && !b.pub.IsClosed() {
		ch := b.pub
		b.mu.Unlock()
		return ch, gen, nil
	}
	b.mu.Unlock()
	ch, err := conn.Channel()
	if err != nil {
		return nil, 0, err
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, 0, err
	}
	b.mu.Lock()
	if b.gen == gen {
		b.pub = ch
	}
	b.mu.Unlock()
	return ch, gen, nil
}

// ensureTopology declares p's queue (once per connection) and re-declares its exchange after a
// reconnect, before p is published.
func (b *Broker) ensureTopology(ctx context.Context, p *broker.Publishing) error {
	if p.Declare != nil {
		b.mu.Lock()
		done := b.declared[p.Declare.Name] && b.conn != nil
		b.mu.Unlock()
		if !done {
			if err := b.Declare(ctx, *p.Declare); err != nil {
				return err
			}
		}
	}
	if p.Exchange != "" {
		b.mu.Lock()
		x, remembered := b.exchanges[p.Exchange]
		again := remembered && !(b.exDone[p.Exchange] && b.conn != nil)
		b.mu.Unlock()
		if again {
			if err := b.declareExchange(ctx, p.Exchange, x); err != nil {
				return err
			}
		}
	}
	return nil
}

func amqpPublishing(p *broker.Publishing) amqp.Publishing {
	return amqp.Publishing{
		Headers:         Table(p.Headers),
		ContentType:     p.ContentType,
		ContentEncoding: p.ContentEncoding,
		DeliveryMode:    p.DeliveryMode,
		Priority:        p.Priority,
		CorrelationId:   p.CorrelationID,
		ReplyTo:         p.ReplyTo,
		Expiration:      p.Expiration,
		Timestamp:       p.Timestamp,
		Body:            p.Body,
	}
}

// publishWindow is how many messages PublishMany sends before it waits for their confirms.
const publishWindow = 500

// PublishMany publishes ps in order and returns once the broker has confirmed every one of them.
// Unlike len(ps) calls of Publish it does not wait for each confirm before sending the next
// message: up to 500 are in flight at once, so a group or a chord header of thousands of tasks
// costs a few round trips instead of one per message. A message the broker nacks, or whose
// channel closes before its confirm, is published again (after a reconnect if need be), as
// Publish does: a message may then be duplicated, never lost. The messages confirmed before an
// error stay published.
func (b *Broker) PublishMany(ctx context.Context, ps []broker.Publishing) error {
	for start := 0; start < len(ps); start += publishWindow {
		if err := b.publishWindow(ctx, ps[start:min(start+publishWindow, len(ps))]); err != nil {
			return err
		}
	}
	return nil
}

func (b *Broker) publishWindow(ctx context.Context, ps []broker.Publishing) error {
	pending := make([]int, len(ps)) // indexes of ps not confirmed yet, in order
	for i := range pending {
		pending[i] = i
	}
	for len(pending) > 0 {
		for _, i := range pending {
			if err := b.ensureTopology(ctx, &ps[i]); err != nil {
				return err
			}
		}
		ch, _, err := b.publisher(ctx)
		if err != nil {
			if b.retryable(ctx, err) {
				continue
			}
			return err
		}
		confs := make([]*amqp.DeferredConfirmation, 0, len(pending))
		var sendErr error
		for _, i := range pending {
			conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, ps[i].Exchange, ps[i].RoutingKey, false, false, amqpPublishing(&ps[i]))
			if err != nil {
				sendErr = err
				break
			}
			confs = append(confs, conf)
		}
		var failed []int
		var lastErr error
		for k, conf := range confs {
			ok, err := conf.WaitContext(ctx)
			switch {
			case err != nil && ctx.Err() != nil:
				return fmt.Errorf("waiting for publish confirms: %w", context.Cause(ctx))
			case err != nil:
				failed, lastErr = append(failed, pending[k]), err
			case !ok:
				failed, lastErr = append(failed, pending[k]), errors.New("publishing: broker nacked the message")
			}
		}
		failed = append(failed, pending[len(confs):]...) // never sent
		if sendErr != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("publishing: %w", context.Cause(ctx))
			}
			lastErr = sendErr
		}
		if len(failed) == 0 {
			return nil
		}
		if !b.retryable(ctx, lastErr) {
			return fmt.Errorf("publishing %d of %d messages: %w", len(failed), len(ps), lastErr)
		}
		pending = failed
	}
	return nil
}

// Publish sends p and waits for the broker's confirm, retrying across reconnects until ctx ends.
func (b *Broker) Publish(ctx context.Context, p broker.Publishing) error {
	for {
		if err := b.ensureTopology(ctx, &p); err != nil {
			return err
		}
		ch, _, err := b.publisher(ctx)
		if err != nil {
			if b.retryable(ctx, err) {
				continue
			}
			return err
		}
		msg := amqpPublishing(&p)
		conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, p.Exchange, p.RoutingKey, false, false, msg)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("publishing: %w", context.Cause(ctx))
			}
			if b.retryable(ctx, err) {
				continue
			}
			return fmt.Errorf("publishing: %w", err)
		}
		ok, err := conf.WaitContext(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("waiting for publish confirm: %w", context.Cause(ctx))
			}
			// The channel closed before the confirm: the broker may or may not have the message.
			// Publishing again can duplicate it but never loses it.
			if b.retryable(ctx, err) {
				continue
			}
			return err
		}
		if !ok {
			if b.retryable(ctx, errors.New("nacked")) {
				continue
			}
			return errors.New("publishing: broker nacked the message")
		}
		return nil
	}
}

// Close closes the connection.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.closing)
	c := b.conn
	b.conn = nil
	b.mu.Unlock()
	if c != nil {
		return c.Close()
	}
	return nil
}

var _ broker.Broker = (*Broker)(nil)

// exchangeDeclarer is events.ExchangeDeclarer, which cannot be named here: package events
// imports this one.
type exchangeDeclarer interface {
	DeclareExchange(ctx context.Context, name, kind string, durable, autoDelete bool) error
}

var _ exchangeDeclarer = (*Broker)(nil)
