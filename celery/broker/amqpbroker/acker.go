package amqpbroker

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/celery/broker"
)

// batchAcker settles the deliveries of one channel from a single goroutine. Acks that arrive together
// go out as one basic.ack(multiple=true) when every delivery up to the highest of them is settled, the
// way a group commit batches writes; an ack above a still unsettled delivery (a held ETA message, say)
// goes out alone at once. Every Ack returns only after its frame was written, so "acknowledged before
// the task starts" keeps its meaning. Rejects go out alone, before any multiple ack of their batch.
//
// AckDeferred (the acks_late path: the task has run and its result is stored) queues the ack and
// returns at once: the caller goes on to its next task while the acker writes, so the acks of many
// tasks share a frame. A deferred ack is held back for a moment to share one (see run), and
// flush waits for every one queued before it: the consumer flushes before it closes the channel and
// Broker.Close before it closes the connection, so a clean stop sends every ack. One lost with the
// connection only means RabbitMQ delivers that message again, which acks_late allows.
type batchAcker struct {
	ch  *amqp.Channel
	log *slog.Logger
	// coalesce: deferred acks a multiple ack must cover before it is written early (see run).
	coalesce int
	// soloAfter is how long an ack no multiple ack can cover waits (the constant soloAfter but in
	// tests).
	soloAfter time.Duration
	reqs      chan ackReq
	stopped   chan struct{}
	// frames counts the basic.ack and basic.reject frames written.
	frames atomic.Int64

	mu        sync.Mutex
	unsettled map[uint64]struct{} // delivered and not yet settled
	low       uint64              // lowest unsettled tag when lowOK; 0 = none
	lowOK     bool
	// contig is the highest tag such that every tag up to it has been registered. The channel's
	// consumers (one per queue) register their deliveries from separate goroutines, so tag 5 can
	// be registered (and acknowledged) before tag 4 is: a multiple ack must never reach past
	// contig, or it would acknowledge a delivery the worker has not even seen yet.
	contig uint64
	ahead  map[uint64]struct{} // registered tags above contig+1
}

type ackReq struct {
	tag     uint64
	reject  bool
	requeue bool
	flush   bool       // no tag: answered once every request queued before it is written
	done    chan error // nil for a deferred ack: nobody waits for it
}

// reply answers a request that has a waiter.
func (r ackReq) reply(err error) {
	if r.done != nil {
		r.done <- err
	}
}

// newBatchAcker starts the acker of ch; coalesce is how many deferred acks it collects (for at most
// lingerFor) before it writes them (1: none is held back).
func newBatchAcker(ch *amqp.Channel, log *slog.Logger, coalesce int) *batchAcker {
	return newBatchAckerSolo(ch, log, coalesce, soloAfter)
}

// newBatchAckerSolo is newBatchAcker with another soloAfter (tests).
func newBatchAckerSolo(ch *amqp.Channel, log *slog.Logger, coalesce int, solo time.Duration) *batchAcker {
	if log == nil {
		log = slog.Default()
	}
	a := &batchAcker{ch: ch, log: log, coalesce: max(1, coalesce), soloAfter: solo, reqs: make(chan ackReq, 1024), stopped: make(chan struct{}),
		unsettled: map[uint64]struct{}{}, lowOK: true, ahead: map[uint64]struct{}{}}
	go a.run()
	return a
}

// delivered registers a delivery before it is handed out.
func (a *batchAcker) delivered(tag uint64) {
	a.mu.Lock()
	a.unsettled[tag] = struct{}{}
	if a.lowOK && (a.low == 0 || tag < a.low) {
		a.low = tag
	}
	if tag == a.contig+1 {
		a.contig = tag
		for {
			if _, ok := a.ahead[a.contig+1]; !ok {
				break
			}
			delete(a.ahead, a.contig+1)
			a.contig++
		}
	} else if tag > a.contig {
		a.ahead[tag] = struct{}{}
	}
	a.mu.Unlock()
}

// stop ends the acker once its channel is gone; later settles report ErrStaleDelivery. Deferred
// acks still queued are counted and logged: RabbitMQ delivers their messages again.
func (a *batchAcker) stop() {
	select {
	case <-a.stopped:
		return
	default:
		close(a.stopped)
	}
	lost := 0
	for {
		select {
		case r := <-a.reqs:
			if r.done == nil && !r.flush {
				lost++
			}
		default:
			if lost > 0 {
				a.log.Warn("acknowledgements not sent: the channel closed first; RabbitMQ delivers those messages again",
					"count", lost)
			}
			return
		}
	}
}

// deferred queues an ack nobody waits for. When the queue is full the caller waits for room (the
// acker is writing): back pressure, never a dropped ack.
func (a *batchAcker) deferred(tag uint64) {
	select {
	case a.reqs <- ackReq{tag: tag}:
	case <-a.stopped:
		a.log.Warn("acknowledgement not sent: the channel is closed; RabbitMQ delivers the message again", "delivery_tag", tag)
	}
}

// flush returns once every request queued before it has been written (or the acker stopped, or
// ctx ended first).
func (a *batchAcker) flush(ctx context.Context) {
	done := make(chan error, 1)
	select {
	case a.reqs <- ackReq{flush: true, done: done}:
	case <-a.stopped:
		return
	case <-ctx.Done():
		return
	}
	select {
	case <-done:
	case <-a.stopped:
	case <-ctx.Done():
	}
}

// doneChans recycles the reply channels of settle: one per settle would be an allocation per
// task. A channel goes back only once its reply was received, so it is empty.
var doneChans = sync.Pool{New: func() any { return make(chan error, 1) }}

func (a *batchAcker) settle(r ackReq) error {
	r.done = doneChans.Get().(chan error)
	select {
	case a.reqs <- r:
	case <-a.stopped:
		doneChans.Put(r.done)
		return broker.ErrStaleDelivery
	}
	select {
	case err := <-r.done:
		doneChans.Put(r.done)
		return stale(err)
	case <-a.stopped:
		return broker.ErrStaleDelivery // r.done may still get a reply: not reused
	}
}

// lowest marks the batch's tags settled and returns the lowest tag still unsettled (0 = none) and
// the highest tag up to which every delivery is registered.
// A request for a tag that is not unsettled (settled before, or twice in this batch) is answered
// with broker.ErrAlreadySettled at once (no frame: to RabbitMQ a second settle is
// a channel error, which would send every unacknowledged message of the channel back to its queue) and removed from the batch.
func (a *batchAcker) lowest(batch *[]ackReq) (low, contig uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	kept := (*batch)[:0]
	for _, r := range *batch {
		if r.flush {
			kept = append(kept, r)
			continue
		}
		if _, ok := a.unsettled[r.tag]; !ok {
			if r.done == nil {
				a.log.Error("a deferred acknowledgement settles a message twice (a bug: nothing was sent to the broker)",
					"delivery_tag", r.tag)
				continue
			}
			r.done <- broker.ErrAlreadySettled
			continue
		}
		kept = append(kept, r)
		delete(a.unsettled, r.tag)
		if r.tag == a.low {
			a.lowOK = false
		}
	}
	*batch = kept
	if !a.lowOK {
		a.low = 0
		for t := range a.unsettled {
			if a.low == 0 || t < a.low {
				a.low = t
			}
		}
		a.lowOK = true
	}
	return a.low, a.contig
}

// lingerFor is the longest a deferred ack that a multiple ack can cover is held back to share a
// frame with others. Each held message stays unacknowledged that much longer, which only matters
// to the prefetch window: at most coalesce of them (half of it, see Broker.newAcker) are held.
const lingerFor = time.Millisecond

// soloAfter is how long a deferred ack that no multiple ack can cover yet (a delivery below it is
// still running, or held for its ETA) waits for the deliveries below it to settle before it is
// written alone. A task that finishes out of order usually waits only for tasks that finish within
// a millisecond or two: written alone at lingerFor, such acks were most of the frames of a busy
// worker (2,854 single acks and 1,146 multiple ones in a 60,000-task drain); held a little longer
// they join the next multiple ack. Held behind an ETA message they go out alone at soloAfter, or
// after lingerFor once coalesce of them wait, so they take little of the prefetch window.
const soloAfter = 5 * time.Millisecond

// heldAck is a deferred ack not written yet, and when it arrived.
type heldAck struct {
	tag uint64
	at  time.Time
}

// run writes the acks. Acks someone waits for (Ack, Reject) are written in the batch they arrive
// in. Deferred acks are held: those a multiple ack can cover (every tag up to the highest is
// settled) go out as one once coalesce of them are covered, when an ack someone waits for or a
// flush is written anyway, or after lingerFor; a held ack a multiple ack cannot cover goes out
// alone after soloAfter (lingerFor when coalesce of them wait), or on a flush.
func (a *batchAcker) run() {
	batch := make([]ackReq, 0, 256)
	var held []heldAck // deferred, settled, not yet written
	var wake time.Time // when the oldest held ack is due (see the end of the loop)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		expired := false
		var first ackReq
		if len(held) > 0 {
			timer.Reset(time.Until(wake))
		}
		select {
		case first = <-a.reqs:
		case <-timer.C:
			expired = true
		case <-a.stopped:
			timer.Stop()
			if len(held) > 0 {
				a.log.Warn("acknowledgements not sent: the channel closed first; RabbitMQ delivers those messages again",
					"count", len(held))
			}
			return
		}
		timer.Stop()
		batch = batch[:0]
		if !expired {
			batch = append(batch, first)
			if len(a.reqs) < cap(batch)/4 {
				// Let the goroutines that are about to settle (other tasks finishing on the
				// other cores' run queues) queue their requests first: one frame and one write
				// for all of them instead of a write each. A yield, not a timer: an ack someone
				// waits for is not delayed.
				runtime.Gosched()
			}
		drain:
			for len(batch) < cap(batch) {
				select {
				case r := <-a.reqs:
					batch = append(batch, r)
				default:
					break drain
				}
			}
		}
		low, contig := a.lowest(&batch)
		// A tag joins the multiple ack when every tag up to it is settled: below the lowest
		// unsettled one, and registered (no delivery below it still on its way to us).
		joins := func(tag uint64) bool { return (low == 0 || tag < low) && tag <= contig }
		now := time.Now()
		flush, waited := false, false
		for _, r := range batch {
			switch {
			case r.flush:
				flush = true
			case r.done != nil:
				waited = true
			default:
				held = append(held, heldAck{tag: r.tag, at: now})
			}
		}
		var upTo uint64
		joinable, alone := 0, 0
		lingered := false
		for _, h := range held {
			if joins(h.tag) {
				upTo = max(upTo, h.tag)
				joinable++
				lingered = lingered || now.Sub(h.at) >= lingerFor
			} else {
				alone++
			}
		}
		if !flush && !waited && !lingered && joinable < a.coalesce {
			upTo = 0 // not worth a frame yet
		}
		for _, r := range batch {
			switch {
			case r.reject:
				a.frames.Add(1)
				r.reply(a.ch.Reject(r.tag, r.requeue))
			case r.done != nil && joins(r.tag):
				upTo = max(upTo, r.tag)
			}
		}
		var err error
		if upTo > 0 {
			a.frames.Add(1)
			err = a.ch.Ack(upTo, true)
		}
		// Alone acks wait soloAfter; when coalesce of them wait they take a good part of the prefetch
		// window, so they wait only lingerFor (a burst of acks above a few running tasks is common:
		// those tasks settle within a millisecond and the burst joins the next multiple ack).
		soloWait := a.soloAfter
		if alone >= a.coalesce {
			soloWait = lingerFor
		}
		failed := 0
		kept := held[:0]
		wake = time.Time{}
		for _, h := range held {
			switch {
			case upTo > 0 && h.tag <= upTo:
				if err != nil {
					failed++
				}
			case !joins(h.tag) && (flush || now.Sub(h.at) >= soloWait):
				a.frames.Add(1)
				if a.ch.Ack(h.tag, false) != nil {
					failed++
				}
			default:
				kept = append(kept, h)
				due := h.at.Add(soloWait)
				if joins(h.tag) {
					due = h.at.Add(lingerFor)
				}
				if wake.IsZero() || due.Before(wake) {
					wake = due
				}
			}
		}
		held = kept
		for _, r := range batch {
			switch {
			case r.reject, r.flush, r.done == nil:
			case joins(r.tag):
				r.reply(err)
			default:
				a.frames.Add(1)
				r.reply(a.ch.Ack(r.tag, false))
			}
		}
		if failed > 0 {
			a.log.Warn("acknowledgements could not be sent: the channel is gone; RabbitMQ delivers those messages again",
				"count", failed, "error", err)
		}
		for _, r := range batch {
			if r.flush {
				r.reply(nil) // after every frame of the batch
			}
		}
	}
}

// acker settles one delivery through its channel's batchAcker.
type acker struct {
	a   *batchAcker
	tag uint64
}

func (k acker) Ack() error { return k.a.settle(ackReq{tag: k.tag}) }

// AckDeferred queues the ack to go out with others (see batchAcker); it implements
// broker.DeferredAcker.
func (k acker) AckDeferred() { k.a.deferred(k.tag) }
func (k acker) Reject(requeue bool) error {
	return k.a.settle(ackReq{tag: k.tag, reject: true, requeue: requeue})
}
