// This file holds publishing: the confirming publisher channel, declaring a publishing's topology on
// first use (once per connection), and Publish / PublishMany with their window of outstanding confirms.

package amqpbroker

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/celery/broker"
)

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

// DefaultConfirmTimeout is Options.ConfirmTimeout's default.
const DefaultConfirmTimeout = 15 * time.Second

// errNoConfirm is the cause of a publish whose confirm did not come within ConfirmTimeout.
var errNoConfirm = errors.New("publishing: no confirm from the broker in time")

// dropPublisher forgets ch as the publishing channel, if it still is, and closes it: after a
// missing confirm its delivery-tag sequence may differ from the broker's, so no later confirm
// on it could be trusted. The close waits at most ConfirmTimeout (a channel the broker does not
// answer ends with its connection).
func (b *Broker) dropPublisher(ch *amqp.Channel) {
	b.mu.Lock()
	if b.pub == ch {
		b.pub = nil
	}
	b.mu.Unlock()
	closed := make(chan struct{})
	go func() { _ = ch.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(b.opts.ConfirmTimeout):
	}
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
		AppId:           p.AppID,
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
		wctx, cancel := context.WithTimeoutCause(ctx, b.opts.ConfirmTimeout, errNoConfirm)
		timedOut, nacked := false, false
		for k, conf := range confs {
			ok, err := conf.WaitContext(wctx)
			switch {
			case err != nil && ctx.Err() != nil:
				cancel()
				return fmt.Errorf("waiting for publish confirms: %w", context.Cause(ctx))
			case err != nil && wctx.Err() != nil:
				timedOut = true
				failed, lastErr = append(failed, pending[k]), errNoConfirm
			case err != nil:
				failed, lastErr = append(failed, pending[k]), err
			case !ok:
				nacked = true
				failed, lastErr = append(failed, pending[k]), errors.New("publishing: broker nacked the message")
			}
		}
		cancel()
		if nacked && !timedOut {
			b.dropPublisher(ch)
		}
		if timedOut {
			b.log.Warn("no publisher confirm in time: publishing again on a new channel", "broker", b.Redacted(),
				"messages", len(failed), "confirm_timeout", b.opts.ConfirmTimeout)
			b.dropPublisher(ch)
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
		wctx, cancel := context.WithTimeoutCause(ctx, b.opts.ConfirmTimeout, errNoConfirm)
		ok, err := conf.WaitContext(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("waiting for publish confirm: %w", context.Cause(ctx))
			}
			if wctx.Err() != nil {
				b.log.Warn("no publisher confirm in time: publishing again on a new channel", "broker", b.Redacted(),
					"task_id", p.Headers["id"], "confirm_timeout", b.opts.ConfirmTimeout)
				b.dropPublisher(ch)
				continue
			}
			// The channel closed before the confirm: the broker may or may not have the message.
			// Publishing again can duplicate it but never loses it.
			if b.retryable(ctx, err) {
				continue
			}
			return err
		}
		if !ok {
			// A nack (or the channel closing under the confirm): publish again on a fresh channel,
			// as one whose queue client lost its leader can go on nacking.
			b.dropPublisher(ch)
			if b.retryable(ctx, errors.New("nacked")) {
				continue
			}
			return errors.New("publishing: broker nacked the message")
		}
		return nil
	}
}
