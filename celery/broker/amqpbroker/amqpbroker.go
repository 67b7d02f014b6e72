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
	// MinBackoff and MaxBackoff bound the reconnect delay (defaults 100ms and 1s: a worker
	// consumes again within about a second of a broker being reachable, as Celery does).
	MinBackoff, MaxBackoff time.Duration
	// FailoverStrategy is broker_failover_strategy for a list of URLs: "round-robin" (default:
	// in the order given) or "shuffle" (in a random order, then round-robin).
	FailoverStrategy string
	// NoQuorumDetection is worker_detect_quorum_queues off: Consume sets the prefetch with global
	// QoS even when a queue is a quorum queue (which RabbitMQ then refuses).
	NoQuorumDetection bool
	// DelayedDeliveryQueueType is broker_native_delayed_delivery_queue_type ("" = quorum):
	// Consume declares native delayed delivery with it, once, when a consumed queue is a quorum
	// queue (and NoQuorumDetection is off), and binds the queues to it.
	DelayedDeliveryQueueType string
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
	url       int // index in urls of the live (or last) connection
	connects  atomic.Int64
	consumers []*consumer
	pubMu     sync.Mutex // serialises channel (re)opening for publishing
	qosLogged atomic.Bool
	delayed   delayedState
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
		opts.MaxBackoff = time.Second
	}
	switch opts.FailoverStrategy {
	case "", "round-robin":
	case "shuffle":
		rand.Shuffle(len(urls), func(i, j int) { urls[i], urls[j] = urls[j], urls[i] })
	default:
		return nil, fmt.Errorf("broker_failover_strategy: unknown strategy %q (round-robin or shuffle)", opts.FailoverStrategy)
	}
	switch opts.DelayedDeliveryQueueType {
	case "", broker.QueueTypeQuorum, broker.QueueTypeClassic:
	default:
		return nil, fmt.Errorf("broker_native_delayed_delivery_queue_type: unknown queue type %q (classic or quorum)", opts.DelayedDeliveryQueueType)
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

// Redacted is the URL of the node the broker is connected to (or was last, or will try first)
// without its password, for logs.
func (b *Broker) Redacted() string {
	b.mu.Lock()
	i := b.url
	b.mu.Unlock()
	return redact(b.urls[i])
}

func redact(raw string) string {
	u, err := url.Parse(raw)
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
		c, tried, err := b.dial()
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
				b.log.Info("connected to broker again", "broker", tried, "generation", g)
				if b.opts.OnReconnect != nil {
					b.opts.OnReconnect()
				}
			} else {
				b.log.Info("connected to broker", "broker", tried)
			}
			go b.watch(c, g, notify)
			return c, g, nil
		}
		b.mu.Unlock()
		b.log.Warn("cannot connect to broker, retrying", "broker", tried, "error", err, "in", backoff)
		if b.nextURL%len(b.urls) != 0 {
			// More nodes of the failover list to try before waiting.
			continue
		}
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
		b.log.Warn("broker connection lost", "broker", redact(b.urls[b.url]), "error", err, "generation", gen)
	}
}

// dial connects to the next URL of the failover list (b.mu held) and returns it, redacted.
func (b *Broker) dial() (*amqp.Connection, string, error) {
	i := b.nextURL % len(b.urls)
	u := b.urls[i]
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
	c, err := amqp.DialConfig(u, cfg)
	if err == nil {
		b.url = i
	}
	return c, redact(u), err
}

// retryable waits a moment and reports whether an operation should be tried again after err:
// yes for a lost connection or channel, no for the broker refusing what was asked.
func (b *Broker) retryable(ctx context.Context, err error) bool {
	var inv invalidQueueError
	if errors.As(err, &inv) {
		return false
	}
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
