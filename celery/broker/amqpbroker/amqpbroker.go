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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/celery/amqpwire"
	"github.com/forumads/forumads/celery/broker"
)

// Options configure a Broker. Zero values mean the defaults.
type Options struct {
	Logger *slog.Logger
	// Heartbeat is broker_heartbeat, the AMQP heartbeat interval asked for (default 120s, as
	// Celery; the server may lower it). Negative asks for none, which amqp091-go cannot do: it
	// then takes the server's interval (New logs a warning).
	Heartbeat time.Duration
	// ConnectionTimeout is broker_connection_timeout: the bound on each node's TCP connect and
	// AMQP handshake (default 4s), so a hung node of a failover list is skipped quickly.
	ConnectionTimeout time.Duration
	// MaxRetries is broker_connection_max_retries for the first connect (default 100; negative:
	// forever, Celery's 0 or None): after that many failed attempts over the nodes of the list,
	// operations fail with a *ConnectError instead of retrying. Reconnects after a connection was
	// made retry forever.
	MaxRetries int
	// NoRetryOnStartup is broker_connection_retry_on_startup off: a first connect that fails on
	// every node of the list is a *ConnectError at once.
	NoRetryOnStartup bool
	// ConfirmTimeout bounds the wait for a publisher confirm (default 15s). A confirm that does
	// not come in time counts as lost in transit: the channel is dropped (its confirm sequence can
	// no longer be trusted) and the message is published again on a fresh one, so it may be
	// duplicated, never lost. Seen when a quorum queue's leader dies: RabbitMQ 3.10 left the
	// channel open and never confirmed what it had been sent.
	ConfirmTimeout time.Duration
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
	nextURL   int           // index in urls (modulo) of the next node to dial; b.mu
	url       int           // index in urls of the live (or last) connection; b.mu
	dialing   chan struct{} // holds a token while one goroutine dials (outside b.mu)
	connects  atomic.Int64
	consumers []*consumer
	ackers    map[*batchAcker]struct{} // of the consuming channels still open; b.mu
	pubMu     sync.Mutex               // serialises channel (re)opening for publishing
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
	switch {
	case opts.Heartbeat == 0:
		opts.Heartbeat = DefaultHeartbeat
	case opts.Heartbeat < 0:
		opts.Logger.Warn("broker_heartbeat 0: amqp091-go cannot turn heartbeats off, using the interval the server proposes")
	}
	if opts.ConfirmTimeout <= 0 {
		opts.ConfirmTimeout = DefaultConfirmTimeout
	}
	if opts.ConnectionTimeout <= 0 {
		opts.ConnectionTimeout = DefaultConnectionTimeout
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = DefaultMaxRetries
	}
	return &Broker{urls: urls, opts: opts, log: opts.Logger, closing: make(chan struct{}),
		dialing: make(chan struct{}, 1), exchanges: map[string]exchangeDecl{}}, nil
}

// ParseURLs turns a Celery broker_url into amqp091-go URIs. An entry that is not a URL or has
// another scheme than amqp://, amqps://, pyamqp:// or librabbitmq:// is an error naming it (its
// position in the list, and the entry without its password): a failover list is never shortened
// silently.
func ParseURLs(brokerURL string) ([]string, error) {
	var out []string
	entries := strings.Split(brokerURL, ";")
	for n, raw := range entries {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		where := fmt.Sprintf("broker_url %s", redactEntry(raw))
		if len(entries) > 1 {
			where = fmt.Sprintf("broker_url entry %d of %d (%s)", n+1, len(entries), redactEntry(raw))
		}
		u, err := url.Parse(raw)
		if err != nil {
			var uerr *url.Error
			if errors.As(err, &uerr) {
				err = uerr.Err // its message repeats the URL, password included
			}
			return nil, fmt.Errorf("%s: not a URL: %v", where, err)
		}
		switch u.Scheme {
		case "amqp", "pyamqp", "librabbitmq":
			u.Scheme = "amqp"
		case "amqps":
		default:
			return nil, fmt.Errorf("%s: unsupported scheme %q (amqp:// or amqps://)", where, u.Scheme)
		}
		if _, rest, _ := strings.Cut(raw, ":"); u.Opaque != "" || !strings.HasPrefix(rest, "//") {
			return nil, fmt.Errorf("%s: not a URL of the form amqp://user:password@host:port/vhost", where)
		}
		if strings.ContainsFunc(raw, unicode.IsSpace) {
			return nil, fmt.Errorf("%s: contains whitespace", where)
		}
		if u.Port() != "" {
			if _, err := strconv.ParseUint(u.Port(), 10, 16); err != nil {
				return nil, fmt.Errorf("%s: port %q is not a number up to 65535", where, u.Port())
			}
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

// redactEntry is a broker_url entry for an error message: its password replaced by xxxxx, even
// when the entry does not parse as a URL.
func redactEntry(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Opaque == "" {
		return u.Redacted()
	}
	prefix, rest := "", raw
	if i := strings.Index(raw, "://"); i >= 0 {
		prefix, rest = raw[:i+3], raw[i+3:]
	}
	authority := rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority = rest[:i]
	}
	at := strings.LastIndexByte(authority, '@')
	if at < 0 {
		return raw
	}
	user, _, hasPassword := strings.Cut(authority[:at], ":")
	if !hasPassword {
		return raw
	}
	return prefix + user + ":xxxxx" + rest[at:]
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
// One goroutine dials at a time, without holding b.mu: a slow or hung node never blocks callers
// that only look at the broker's state (Connected, Redacted, Close) or that have a connection.
func (b *Broker) connection(ctx context.Context) (*amqp.Connection, uint64, error) {
	backoff := b.opts.MinBackoff
	failures := 0
	for {
		if c, g, ok, err := b.live(); ok || err != nil {
			return c, g, err
		}
		select {
		case b.dialing <- struct{}{}:
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("connecting to broker: %w", context.Cause(ctx))
		case <-b.closing:
			return nil, 0, broker.ErrClosed
		}
		// Another goroutine may have connected while this one waited for its turn.
		if c, g, ok, err := b.live(); ok || err != nil {
			<-b.dialing
			return c, g, err
		}
		b.mu.Lock()
		i := b.nextURL % len(b.urls)
		b.nextURL = i + 1
		b.mu.Unlock()
		startup := b.connects.Load() == 0
		tried := redact(b.urls[i])
		c, err := b.dialURL(i)
		if err == nil {
			g, err := b.install(c, i, tried)
			<-b.dialing
			if err != nil {
				return nil, 0, err
			}
			return c, g, nil
		}
		<-b.dialing
		failures++
		if startup {
			if b.opts.NoRetryOnStartup && failures >= len(b.urls) {
				return nil, 0, &ConnectError{Broker: tried, Attempts: failures, Reason: "broker_connection_retry_on_startup is off", Err: err}
			}
			if b.opts.MaxRetries > 0 && failures > b.opts.MaxRetries {
				return nil, 0, &ConnectError{Broker: tried, Attempts: failures,
					Reason: fmt.Sprintf("broker_connection_max_retries is %d", b.opts.MaxRetries), Err: err}
			}
		}
		if i+1 < len(b.urls) {
			// More nodes of the failover list to try before waiting.
			b.log.Warn("cannot connect to broker, trying the next node", "broker", tried, "error", err, "next", redact(b.urls[i+1]))
			continue
		}
		b.log.Warn("cannot connect to broker, retrying", "broker", tried, "error", err, "in", backoff, "attempt", failures)
		select {
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("connecting to broker: %w", context.Cause(ctx))
		case <-b.closing:
			return nil, 0, broker.ErrClosed
		case <-time.After(jittered(backoff)):
		}
		backoff = min(backoff*2, b.opts.MaxBackoff)
	}
}

// jittered is a random delay in [d/2, d]: spread so that the clients of a restarted broker do not
// all come back at once, and never above d, so MaxBackoff is a cap.
func jittered(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// live returns the live connection (ok), or broker.ErrClosed.
func (b *Broker) live() (*amqp.Connection, uint64, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, 0, false, broker.ErrClosed
	}
	if b.conn != nil && !b.conn.IsClosed() {
		return b.conn, b.gen, true, nil
	}
	return nil, 0, false, nil
}

// install makes c, just dialled to urls[i], the live connection, unless the broker was closed
// during the dial.
func (b *Broker) install(c *amqp.Connection, i int, tried string) (uint64, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		_ = c.Close()
		return 0, broker.ErrClosed
	}
	b.conn = c
	b.url = i
	b.gen++
	b.declared = map[string]bool{}
	b.exDone = map[string]bool{}
	b.pub = nil
	n := b.connects.Add(1)
	g := b.gen
	notify := c.NotifyClose(make(chan *amqp.Error, 1))
	b.mu.Unlock()
	if n > 1 {
		b.log.Info("connected to broker again", "broker", tried, "generation", g, "heartbeat", c.Config.Heartbeat)
		if b.opts.OnReconnect != nil {
			b.opts.OnReconnect()
		}
	} else {
		b.log.Info("connected to broker", "broker", tried, "heartbeat", c.Config.Heartbeat)
	}
	go b.watch(c, g, notify)
	return g, nil
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

// retryable waits a moment and reports whether an operation should be tried again after err:
// yes for a lost connection or channel, no for the broker refusing what was asked.
func (b *Broker) retryable(ctx context.Context, err error) bool {
	var inv invalidQueueError
	var gaveUp *ConnectError
	if errors.As(err, &inv) || errors.As(err, &gaveUp) {
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
	ackers := make([]*batchAcker, 0, len(b.ackers))
	for a := range b.ackers {
		ackers = append(ackers, a)
	}
	b.mu.Unlock()
	// Deferred acks (acks_late tasks that finished) go out before the connection closes.
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	for _, a := range ackers {
		a.flush(ctx)
	}
	cancel()
	if c != nil {
		return c.Close()
	}
	return nil
}

var _ broker.Broker = (*Broker)(nil)

// flushTimeout bounds how long closing a channel or the broker waits for queued deferred acks to
// be written.
const flushTimeout = 5 * time.Second

// newAcker starts the acker of a consuming channel with the given prefetch; Close flushes it.
// Deferred acks are coalesced up to half the prefetch (50 when it is unlimited), so that RabbitMQ
// always has the other half of the window to deliver into while they wait.
func (b *Broker) newAcker(ch *amqp.Channel, prefetch int) *batchAcker {
	coalesce := prefetch / 2
	if prefetch <= 0 {
		coalesce = 50
	}
	a := newBatchAcker(ch, b.log, min(coalesce, 50))
	b.mu.Lock()
	if b.ackers == nil {
		b.ackers = map[*batchAcker]struct{}{}
	}
	b.ackers[a] = struct{}{}
	b.mu.Unlock()
	return a
}

// dropAcker stops the acker of a channel that closed.
func (b *Broker) dropAcker(a *batchAcker) {
	b.mu.Lock()
	delete(b.ackers, a)
	b.mu.Unlock()
	a.stop()
}

// exchangeDeclarer is events.ExchangeDeclarer, which cannot be named here: package events
// imports this one.
type exchangeDeclarer interface {
	DeclareExchange(ctx context.Context, name, kind string, durable, autoDelete bool) error
}

var _ exchangeDeclarer = (*Broker)(nil)
