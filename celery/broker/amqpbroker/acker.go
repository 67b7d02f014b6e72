package amqpbroker

import (
	"runtime"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/celery/broker"
)

// batchAcker settles the deliveries of one channel from a single goroutine. Acks that arrive together
// go out as one basic.ack(multiple=true) when every delivery up to the highest of them is settled, the
// way a group commit batches writes; an ack above a still unsettled delivery (a held ETA message, say)
// goes out alone at once. Every Ack returns only after its frame was written, so "acknowledged before
// the task starts" keeps its meaning. Rejects go out alone, before any multiple ack of their batch.
type batchAcker struct {
	ch      *amqp.Channel
	reqs    chan ackReq
	stopped chan struct{}

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
	done    chan error
}

func newBatchAcker(ch *amqp.Channel) *batchAcker {
	a := &batchAcker{ch: ch, reqs: make(chan ackReq, 1024), stopped: make(chan struct{}),
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

// stop ends the acker once its channel is gone; later settles report ErrStaleDelivery.
func (a *batchAcker) stop() {
	select {
	case <-a.stopped:
	default:
		close(a.stopped)
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
		if _, ok := a.unsettled[r.tag]; !ok {
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

func (a *batchAcker) run() {
	batch := make([]ackReq, 0, 256)
	for {
		var first ackReq
		select {
		case first = <-a.reqs:
		case <-a.stopped:
			return
		}
		batch = append(batch[:0], first)
		if len(a.reqs) < cap(batch)/4 {
			// Let the goroutines that are about to settle (other tasks finishing on the other
			// cores' run queues) queue their requests first: one frame and one write for all of
			// them instead of a write each. A yield, not a timer: an idle worker's ack is not delayed.
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
		low, contig := a.lowest(&batch)
		// A tag joins the multiple ack when every tag up to it is settled: below the lowest
		// unsettled one, and registered (no delivery below it still on its way to us).
		joins := func(r ackReq) bool { return !r.reject && (low == 0 || r.tag < low) && r.tag <= contig }
		var upTo uint64
		for _, r := range batch {
			switch {
			case r.reject:
				r.done <- a.ch.Reject(r.tag, r.requeue)
			case joins(r):
				upTo = max(upTo, r.tag)
			}
		}
		var err error
		if upTo > 0 {
			err = a.ch.Ack(upTo, true)
		}
		for _, r := range batch {
			switch {
			case r.reject:
			case joins(r):
				r.done <- err
			default:
				r.done <- a.ch.Ack(r.tag, false)
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
func (k acker) Reject(requeue bool) error {
	return k.a.settle(ackReq{tag: k.tag, reject: true, requeue: requeue})
}
