package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/fanout"
)

// DefaultTimeout is how long a broadcast waits for replies when no timeout is given (the CLI's
// default --timeout).
const DefaultTimeout = time.Second

// Client sends remote-control requests and collects the replies, as `celery inspect` and
// `celery control` do. Each broadcast declares the exchanges and a reply queue of its own and
// consumes it through the transport, so broadcasts may run concurrently.
type Client struct {
	tr   fanout.Transport
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	closed bool
}

// NewClient returns a client broadcasting through tr, which the caller keeps and closes. Nothing
// is sent until the first broadcast.
func NewClient(tr fanout.Transport, opts Options) (*Client, error) {
	if tr == nil {
		return nil, errors.New("control: NewClient: no transport")
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Client{tr: tr, opts: o, log: o.Logger}, nil
}

// BroadcastOption adjusts one broadcast.
type BroadcastOption func(*broadcast)

type broadcast struct {
	pattern, matcher string
	limit            int
	noReply          bool
}

// WithPattern selects the nodes whose name matches pattern under matcher ([MatchGlob] or
// [MatchPCRE]) instead of a destination list.
func WithPattern(pattern, matcher string) BroadcastOption {
	return func(b *broadcast) { b.pattern, b.matcher = pattern, matcher }
}

// WithLimit stops collecting after n replies (default: the number of destinations, or no limit).
func WithLimit(n int) BroadcastOption { return func(b *broadcast) { b.limit = n } }

// Broadcast publishes method with args (encoded with encoding/json; nil means {}) to the nodes in
// destination (nil = every node) and collects their replies until timeout has passed since the
// request was sent (0 = [DefaultTimeout]) or, with a destination, until every listed node has
// replied. The replies are returned by node name; no reply is not an error. The request expires
// after timeout, so a node that receives it later ignores it. Replies that cannot be decoded are
// logged and skipped.
func (c *Client) Broadcast(ctx context.Context, method string, args any, destination []string, timeout time.Duration, opts ...BroadcastOption) (map[string]json.RawMessage, error) {
	var b broadcast
	for _, o := range opts {
		o(&b)
	}
	return c.send(ctx, method, args, destination, timeout, b)
}

// Cast publishes method with args to the nodes in destination (nil = every node) without asking
// for replies (kombu's cast). The request never expires.
func (c *Client) Cast(ctx context.Context, method string, args any, destination []string, opts ...BroadcastOption) error {
	b := broadcast{noReply: true}
	for _, o := range opts {
		o(&b)
	}
	_, err := c.send(ctx, method, args, destination, 0, b)
	return err
}

func (c *Client) send(ctx context.Context, method string, args any, destination []string, timeout time.Duration, b broadcast) (map[string]json.RawMessage, error) {
	if method == "" {
		return nil, errors.New("control: broadcast: empty method")
	}
	rawArgs := json.RawMessage("{}")
	if args != nil {
		a, err := marshal(args)
		if err != nil {
			return nil, fmt.Errorf("control: broadcast %s: encoding arguments: %w", method, err)
		}
		if a = trimJSONSpace(a); len(a) == 0 || a[0] != '{' {
			return nil, fmt.Errorf("control: broadcast %s: arguments must encode to a JSON object, got %s", method, excerpt(a))
		}
		rawArgs = a
	}
	if b.pattern != "" && b.matcher != "" {
		if _, err := compileMatcher(b.pattern, b.matcher); err != nil {
			return nil, fmt.Errorf("control: broadcast %s: %w", method, err)
		}
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("control: broadcast %s: client closed", method)
	}
	if err := declareExchanges(ctx, c.tr, c.opts); err != nil {
		return nil, fmt.Errorf("control: broadcast %s: %w", method, err)
	}
	req := &Request{
		Method:      method,
		Arguments:   rawArgs,
		Destination: destination,
		Pattern:     b.pattern,
		Matcher:     b.matcher,
	}
	var replies <-chan fanout.Message
	if !b.noReply {
		oid := newUUID()
		queue := oid + "." + c.opts.ReplyExchange()
		if _, err := c.tr.DeclareQueue(ctx, c.opts.queue(queue, c.opts.ReplyExchange(), oid)); err != nil {
			return nil, fmt.Errorf("control: broadcast %s: reply queue: %w", method, err)
		}
		sub, err := c.tr.Consume(ctx, queue)
		if err != nil {
			return nil, fmt.Errorf("control: broadcast %s: consuming replies: %w", method, err)
		}
		defer sub.Close()
		replies = sub.C()
		req.Ticket = newUUID()
		req.ReplyTo = &ReplyTo{Exchange: c.opts.ReplyExchange(), RoutingKey: oid}
		req.Expires = float64(c.opts.Now().Add(timeout).UnixNano()) / 1e9
	}
	req.Clock = c.opts.Clock.Tick()
	env, err := EncodeRequest(req)
	if err != nil {
		return nil, fmt.Errorf("control: broadcast: %w", err)
	}
	if err := c.tr.Send(ctx, broker.Publishing{Exchange: c.opts.Exchange(), Envelope: env}); err != nil {
		return nil, fmt.Errorf("control: broadcast %s: publishing: %w", method, err)
	}
	if b.noReply {
		return nil, nil
	}
	limit := b.limit
	if limit <= 0 {
		limit = len(destination)
	}
	return c.collect(ctx, replies, req.Ticket, limit, timeout)
}

// collect gathers the replies carrying ticket.
func (c *Client) collect(ctx context.Context, deliveries <-chan fanout.Message, ticket string, limit int, timeout time.Duration) (map[string]json.RawMessage, error) {
	replies := map[string]json.RawMessage{}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	n := 0
	for limit <= 0 || n < limit {
		select {
		case <-ctx.Done():
			return replies, fmt.Errorf("control: collecting replies: %w", context.Cause(ctx))
		case <-timer.C:
			return replies, nil
		case d, ok := <-deliveries:
			if !ok {
				return replies, errors.New("control: collecting replies: the reply channel closed")
			}
			if clock, err := headerClock(d.Headers["clock"]); err == nil {
				c.opts.Clock.Forward(clock)
			}
			if t, ok := d.Headers["ticket"].(string); ok && t != ticket {
				c.log.Debug("control reply for another request skipped", "ticket", t)
				continue
			}
			got, err := DecodeReply(d.Body)
			if err != nil {
				c.log.Warn("undecodable control reply skipped", "error", err)
				continue
			}
			for node, v := range got {
				replies[node] = v
			}
			n++
		}
	}
	return replies, nil
}

// Close makes further broadcasts fail. It does not close the transport, which belongs to the
// caller.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

// newUUID returns a random UUID (version 4) in its text form.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}
