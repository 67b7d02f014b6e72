package canvas

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/protocol"
)

// ChordSizer stores a chord's header size where the result backend's chord
// counter reads it: [backend.ChordSizer]. Every backend.ChordStore is one
// (redisbackend.Backend: SETEX celery-taskset-meta-<gid>.s).
type ChordSizer = backend.ChordSizer

// Sender publishes canvases through a broker with the Celery client's
// routing (one celery.Router: task_routes, the queue option,
// task_default_queue, the publishing rule of celery-wire §3.2), serializer,
// compression and delivery mode.
//
// It exists because celery.Client cannot publish a pre-built
// protocol.TaskMessage (SendRaw has no embed) nor a batch of them.
type Sender struct {
	cfg     celery.Config
	router  *celery.Router
	br      broker.Broker
	sizer   ChordSizer
	applier *Applier
}

// NewSender returns a Sender. sizer may be nil only for canvases without
// chords (a chord then fails to send). Its Applier names the client
// "gen<pid>@<host>" with a fresh reply_to id.
func NewSender(cfg celery.Config, br broker.Broker, sizer ChordSizer) (*Sender, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("canvas: sender config: %w", err)
	}
	if br == nil {
		return nil, errors.New("canvas: sender needs a broker")
	}
	router, err := celery.NewRouter(cfg)
	if err != nil {
		return nil, fmt.Errorf("canvas: sender config: %w", err)
	}
	host, _ := os.Hostname()
	return &Sender{cfg: cfg, router: router, br: br, sizer: sizer,
		applier: &Applier{Origin: fmt.Sprintf("gen%d@%s", os.Getpid(), host), ReplyTo: celery.NewID()}}, nil
}

// Applier returns the sender's Applier (its origin and reply_to).
func (s *Sender) Applier() *Applier { return s.applier }

// Send applies sig (Applier.Apply) and publishes its messages; it returns
// the Result handle. Wait for a task result with
// celery.NewAsyncResult(res.ID, backend).Get and for a group with
// res.Group.Wait.
func (s *Sender) Send(ctx context.Context, sig Signature) (Result, error) {
	outs, res, err := s.applier.Apply(sig, Incoming{})
	if err != nil {
		return Result{}, err
	}
	if err := s.Publish(ctx, outs); err != nil {
		return Result{}, err
	}
	return res, nil
}

// Publish publishes built messages in order, storing a chord size before the
// message that carries it. With a broker that publishes in batches
// (broker.BatchPublisher, as amqpbroker does) every chord size is stored
// first and the messages are then published together, their confirms awaited
// together: a chord's counter can only complete once its last member, which
// carries the size, has run, so storing it earlier changes nothing.
func (s *Sender) Publish(ctx context.Context, outs []Outgoing) error {
	if bp, ok := s.br.(broker.BatchPublisher); ok && len(outs) > 1 {
		return s.publishBatch(ctx, bp, outs)
	}
	for _, o := range outs {
		if o.ChordSize != nil {
			if s.sizer == nil {
				return fmt.Errorf("canvas: chord %s: no ChordSizer to store its size", o.ChordSize.GroupID)
			}
			if err := s.sizer.SetChordSize(ctx, o.ChordSize.GroupID, o.ChordSize.Size); err != nil {
				return fmt.Errorf("canvas: chord %s: %w", o.ChordSize.GroupID, err)
			}
		}
		pub, err := s.Envelope(o, time.Now().UTC())
		if err != nil {
			return err
		}
		if err := s.br.Publish(ctx, pub); err != nil {
			return fmt.Errorf("canvas: publish %s[%s]: %w", o.Msg.Task, o.Msg.ID, err)
		}
	}
	return nil
}

func (s *Sender) publishBatch(ctx context.Context, bp broker.BatchPublisher, outs []Outgoing) error {
	pubs := make([]broker.Publishing, len(outs))
	now := time.Now().UTC()
	for i, o := range outs {
		pub, err := s.Envelope(o, now)
		if err != nil {
			return err
		}
		pubs[i] = pub
	}
	for _, o := range outs {
		if o.ChordSize == nil {
			continue
		}
		if s.sizer == nil {
			return fmt.Errorf("canvas: chord %s: no ChordSizer to store its size", o.ChordSize.GroupID)
		}
		if err := s.sizer.SetChordSize(ctx, o.ChordSize.GroupID, o.ChordSize.Size); err != nil {
			return fmt.Errorf("canvas: chord %s: %w", o.ChordSize.GroupID, err)
		}
	}
	if err := bp.PublishMany(ctx, pubs); err != nil {
		return fmt.Errorf("canvas: publish %d messages (%s[%s] first): %w", len(pubs), outs[0].Msg.Task, outs[0].Msg.ID, err)
	}
	return nil
}

// Envelope encodes one Outgoing (EncodeV2) with its resolved routing.
func (s *Sender) Envelope(o Outgoing, now time.Time) (broker.Publishing, error) {
	msg := *o.Msg
	if msg.ETA == nil && o.Countdown != nil {
		t := now.Add(time.Duration(*o.Countdown * float64(time.Second)))
		msg.ETA = &t
	}
	if msg.Expires == nil && o.ExpiresIn != nil {
		t := now.Add(time.Duration(*o.ExpiresIn * float64(time.Second)))
		msg.Expires = &t
	}
	r := o.Route
	dest, err := s.router.Route(msg.Task, func(so *celery.SendOptions) {
		so.Queue, so.Exchange, so.RoutingKey, so.Priority = r.Queue, r.Exchange, r.RoutingKey, r.Priority
	})
	if err != nil {
		return broker.Publishing{}, fmt.Errorf("canvas: send %s: %w", msg.Task, err)
	}
	msg.Priority = &dest.Priority
	pub := dest.Publishing()
	env, err := protocol.EncodeV2(&msg, protocol.EncodeOptions{Serializer: s.cfg.TaskSerializer,
		Compression: s.cfg.TaskCompression, Now: now})
	if err != nil {
		return broker.Publishing{}, fmt.Errorf("canvas: encode %s[%s]: %w", msg.Task, msg.ID, err)
	}
	env.DeliveryMode = s.cfg.DeliveryMode()
	pub.Envelope = env
	pub.Timestamp = now
	return pub, nil
}
