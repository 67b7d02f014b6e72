package amqpbroker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/testenv"
)

// TestBatchedAcksNeverSettleAHeldDelivery acks 57 of 60 deliveries from many goroutines while one
// (a "held ETA" message) stays unsettled and two are rejected: the multiple acks must cover neither,
// so after the connection closes exactly the held message is back in the queue. Both ways of
// acking are checked: Ack (waits for its frame) and AckAfterRun (deferred, held back to coalesce).
func TestBatchedAcksNeverSettleAHeldDelivery(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ack  func(*broker.Delivery) error
	}{
		{"wait", (*broker.Delivery).Ack},
		{"deferred", (*broker.Delivery).AckAfterRun},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testAcksNeverSettleAHeldDelivery(t, tc.ack)
		})
	}
}

func testAcksNeverSettleAHeldDelivery(t *testing.T, ack func(*broker.Delivery) error) {
	q := broker.Queue{Name: testenv.Name(t, "acker")}
	testenv.DeleteQueuesAtCleanup(t, q.Name)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := New(testenv.AMQPURL(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 60
	for i := 0; i < n; i++ {
		env := protocol.Envelope{Body: []byte(fmt.Sprint(i)), DeliveryMode: 2}
		if err := b.Publish(ctx, broker.Publishing{RoutingKey: q.Name, Envelope: env, Declare: &q}); err != nil {
			t.Fatal(err)
		}
	}
	deliveries, err := b.Consume(ctx, []broker.Queue{q}, 100)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		d := <-deliveries
		switch string(d.Body) {
		case "10": // held: never settled
		case "20", "40":
			wg.Add(1)
			go func() { defer wg.Done(); errs <- d.Reject(false) }()
		default:
			wg.Add(1)
			go func() { defer wg.Done(); errs <- ack(d) }()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("settling: %v", err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	ch, err := testenv.AMQP(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		m, ok, err := ch.Get(q.Name, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			if len(got) > 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		got = append(got, string(m.Body))
	}
	if len(got) != 1 || got[0] != "10" {
		t.Fatalf("after close the queue holds %v, want exactly the unsettled message [10]", got)
	}
}

// TestSettleAfterChannelLossIsStale: settling a delivery of a closed channel reports ErrStaleDelivery
// instead of blocking.
func TestSettleAfterChannelLossIsStale(t *testing.T) {
	t.Parallel()
	conn := testenv.AMQP(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	a := newBatchAcker(ch, nil, 1)
	a.delivered(1)
	_ = ch.Close()
	done := make(chan error, 1)
	go func() { done <- (acker{a: a, tag: 1}).Ack() }()
	go func() {
		<-ch.NotifyClose(make(chan *amqp.Error, 1))
		a.stop()
	}()
	select {
	case err := <-done:
		if err != broker.ErrStaleDelivery {
			t.Fatalf("ack on a closed channel: %v, want ErrStaleDelivery", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ack on a closed channel blocked")
	}
}

// TestMultipleAckWaitsForUnregisteredLowerTags: one channel consumes two queues, so delivery 1 (of
// queue A) can still be on its way through A's goroutine when delivery 2 (of queue B) is acked. The
// ack of 2 must not be a multiple ack covering 1: the worker has not seen 1 yet, and its own ack
// later would be a second one (RabbitMQ closes the channel: "unknown delivery tag 1").
func TestMultipleAckWaitsForUnregisteredLowerTags(t *testing.T) {
	t.Parallel()
	qa, qb := testenv.Name(t, "acker-a"), testenv.Name(t, "acker-b")
	testenv.DeleteQueuesAtCleanup(t, qa, qb)
	conn := testenv.AMQP(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{qa, qb} {
		if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if err := ch.Publish("", q, false, false, amqp.Publishing{Body: []byte(q)}); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until both messages are in their queues, then take them on one channel: tag 1 from A,
	// tag 2 from B.
	for _, q := range []string{qa, qb} {
		testenv.Eventually(t, 10*time.Second, func() bool {
			st, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			return st.Messages == 1
		}, "queue %s to hold its message", q)
	}
	cch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	closed := cch.NotifyClose(make(chan *amqp.Error, 1))
	m1, ok1, err1 := cch.Get(qa, false)
	m2, ok2, err2 := cch.Get(qb, false)
	if err1 != nil || err2 != nil || !ok1 || !ok2 || m1.DeliveryTag != 1 || m2.DeliveryTag != 2 {
		t.Fatalf("setup: %v %v %v %v tags %d %d", err1, err2, ok1, ok2, m1.DeliveryTag, m2.DeliveryTag)
	}
	a := newBatchAcker(cch, nil, 1)
	defer a.stop()
	a.delivered(2) // B's goroutine registers first
	if err := (acker{a: a, tag: 2}).Ack(); err != nil {
		t.Fatal(err)
	}
	a.delivered(1) // then A's
	if err := (acker{a: a, tag: 1}).Ack(); err != nil {
		t.Fatal(err)
	}
	// A channel error arrives asynchronously: a round trip on the channel flushes it.
	if _, err := cch.QueueDeclarePassive(qa, false, false, false, false, nil); err != nil {
		t.Fatalf("the channel was closed by the broker: %v", err)
	}
	select {
	case e := <-closed:
		t.Fatalf("the channel was closed: %v", e)
	default:
	}
	if err := (acker{a: a, tag: 1}).Ack(); err != broker.ErrAlreadySettled {
		t.Fatalf("a second ack of tag 1: %v, want ErrAlreadySettled", err)
	}
}

// ackFrames sums the ack and reject frames the broker's live ackers wrote.
func ackFrames(b *Broker) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	var n int64
	for a := range b.ackers {
		n += a.frames.Load()
	}
	return n
}

// consumeAndAck publishes n messages to a fresh queue, consumes them with prefetch 100 and
// settles each with ack from one of workers goroutines, as the worker's pool does. It returns
// once every ack has returned (a deferred one may not be written yet).
func consumeAndAck(tb testing.TB, b *Broker, q broker.Queue, n, workers int, ack func(*broker.Delivery) error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ps := make([]broker.Publishing, n)
	for i := range ps {
		ps[i] = broker.Publishing{RoutingKey: q.Name, Envelope: protocol.Envelope{Body: []byte(fmt.Sprint(i)), DeliveryMode: 2}, Declare: &q}
	}
	if err := b.PublishMany(ctx, ps); err != nil {
		tb.Fatal(err)
	}
	deliveries, err := b.Consume(ctx, []broker.Queue{q}, 100)
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	jobs := make(chan *broker.Delivery)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range jobs {
				if err := ack(d); err != nil {
					tb.Error(err)
				}
			}
		}()
	}
	for range n {
		select {
		case d := <-deliveries:
			jobs <- d
		case <-ctx.Done():
			tb.Fatal("deliveries stopped coming")
		}
	}
	close(jobs)
	wg.Wait()
}

// TestDeferredAcksAreSentBeforeClose: acks queued with AckDeferred and not yet written when Close
// is called still reach RabbitMQ: after Close nothing comes back to the queue.
func TestDeferredAcksAreSentBeforeClose(t *testing.T) {
	t.Parallel()
	q := broker.Queue{Name: testenv.Name(t, "deferred")}
	testenv.DeleteQueuesAtCleanup(t, q.Name)
	b, err := New(testenv.AMQPURL(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	consumeAndAck(t, b, q, n, 25, (*broker.Delivery).AckAfterRun)
	if err := b.Close(); err != nil { // at once: some acks are still queued
		t.Fatal(err)
	}
	ch, err := testenv.AMQP(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	// A message whose ack was lost is back in the queue once the connection is gone; the close
	// above waited for that connection's end, so one passive declare tells.
	st, err := ch.QueueDeclarePassive(q.Name, false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 0 {
		t.Fatalf("after Close %d of %d messages are back in the queue: their deferred acks were lost", st.Messages, n)
	}
}

// TestDeferredAckOfClosedChannelIsLoggedNotBlocking: AckDeferred on a delivery whose channel is
// gone returns at once (the message comes back, as for a lost connection).
func TestDeferredAckOfClosedChannelIsLoggedNotBlocking(t *testing.T) {
	t.Parallel()
	ch, err := testenv.AMQP(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	a := newBatchAcker(ch, nil, 1)
	a.delivered(1)
	_ = ch.Close()
	a.stop()
	done := make(chan struct{})
	go func() { (acker{a: a, tag: 1}).AckDeferred(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("AckDeferred on a closed channel blocked")
	}
	a.flush(context.Background()) // a stopped acker answers a flush at once
}

// BenchmarkAcks compares acks_late's two ways of acknowledging 25 concurrent tasks' messages at
// prefetch 100: Ack (each waits for its frame) and AckAfterRun (deferred, coalesced). It reports the
// ack frames per message.
func BenchmarkAcks(b *testing.B) {
	for _, deferred := range []bool{false, true} {
		name := "wait"
		if deferred {
			name = "deferred"
		}
		b.Run(name, func(b *testing.B) {
			q := broker.Queue{Name: testenv.Name(b, "bench-acks")}
			testenv.DeleteQueuesAtCleanup(b, q.Name)
			br, err := New(testenv.AMQPURL(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = br.Close() }()
			n := max(b.N, 100)
			b.ResetTimer()
			ack := (*broker.Delivery).Ack
			if deferred {
				ack = (*broker.Delivery).AckAfterRun
			}
			consumeAndAck(b, br, q, n, 25, ack)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			br.mu.Lock()
			ackers := make([]*batchAcker, 0, len(br.ackers))
			for a := range br.ackers {
				ackers = append(ackers, a)
			}
			br.mu.Unlock()
			for _, a := range ackers {
				a.flush(ctx)
			}
			b.ReportMetric(float64(ackFrames(br))/float64(n), "frames/msg")
		})
	}
}

// getN publishes n messages to a fresh queue and takes them with basic.get on a channel of its
// own (delivery tags 1..n), returning that channel.
func getN(t *testing.T, n int) (string, *amqp.Channel) {
	t.Helper()
	q := testenv.Name(t, "acker-get")
	testenv.DeleteQueuesAtCleanup(t, q)
	conn := testenv.AMQP(t)
	pub, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.QueueDeclare(q, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := pub.Publish("", q, false, false, amqp.Publishing{Body: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		st, err := pub.QueueDeclarePassive(q, false, false, false, false, nil)
		return err == nil && st.Messages == n
	}, "queue %s to hold %d messages", q, n)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		m, ok, err := ch.Get(q, false)
		if err != nil || !ok || m.DeliveryTag != uint64(i) {
			t.Fatalf("get %d: %v %v tag %d", i, err, ok, m.DeliveryTag)
		}
	}
	return q, ch
}

// readyAfterClose closes ch (what it left unacknowledged goes back to q) and returns q's ready count.
func readyAfterClose(t *testing.T, q string, ch *amqp.Channel) int {
	t.Helper()
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	other, err := testenv.AMQP(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	st, err := other.QueueDeclarePassive(q, false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st.Messages
}

// TestDeferredAcksShareOneFrame: deferred acks of contiguous deliveries queued together go out as
// one multiple ack (not one frame each), and all of them reach RabbitMQ.
func TestDeferredAcksShareOneFrame(t *testing.T) {
	t.Parallel()
	const n = 20
	q, ch := getN(t, n)
	a := newBatchAcker(ch, nil, 50)
	defer a.stop()
	for i := 1; i <= n; i++ {
		a.delivered(uint64(i))
	}
	for i := 1; i <= n; i++ {
		(acker{a: a, tag: uint64(i)}).AckDeferred()
	}
	a.flush(context.Background())
	// Each ack queued within lingerFor of the first joins it; only a descheduled sender could
	// split them, and never into one frame per ack.
	if f := a.frames.Load(); f < 1 || f > n/4 {
		t.Errorf("%d frames for %d contiguous deferred acks, want a few multiple acks", f, n)
	}
	if left := readyAfterClose(t, q, ch); left != 0 {
		t.Fatalf("%d messages back in the queue: deferred acks were lost", left)
	}
}

// TestHeldDeferredAckGoesOutAlone: a deferred ack above a delivery that stays unsettled cannot be
// part of a multiple ack; it is written on its own after lingerFor, without a flush.
func TestHeldDeferredAckGoesOutAlone(t *testing.T) {
	t.Parallel()
	q, ch := getN(t, 3)
	a := newBatchAcker(ch, nil, 50)
	defer a.stop()
	for i := 1; i <= 3; i++ {
		a.delivered(uint64(i))
	}
	(acker{a: a, tag: 2}).AckDeferred()
	(acker{a: a, tag: 3}).AckDeferred()
	testenv.Eventually(t, 10*time.Second, func() bool { return a.frames.Load() == 2 },
		"the two held acks to be written alone (frames: %d)", a.frames.Load())
	if left := readyAfterClose(t, q, ch); left != 1 {
		t.Fatalf("%d messages back in the queue, want only the unsettled delivery 1", left)
	}
}

// TestDeferredAcksWaitForTheDeliveryBelow: deferred acks above a delivery that settles a little
// later (a task finishing out of order) wait for it and then go out with it as one multiple ack,
// rather than one frame each once lingerFor is up.
func TestDeferredAcksWaitForTheDeliveryBelow(t *testing.T) {
	t.Parallel()
	const n = 11
	q, ch := getN(t, n)
	a := newBatchAckerSolo(ch, nil, 50, time.Minute)
	defer a.stop()
	for i := 1; i <= n; i++ {
		a.delivered(uint64(i))
	}
	for i := 2; i <= n; i++ {
		(acker{a: a, tag: uint64(i)}).AckDeferred()
	}
	time.Sleep(20 * lingerFor) // well past the linger: the old rule wrote 10 single acks here
	if f := a.frames.Load(); f != 0 {
		t.Fatalf("%d frames written while delivery 1 was unsettled, want 0 (the acks wait for it)", f)
	}
	(acker{a: a, tag: 1}).AckDeferred()
	testenv.Eventually(t, 10*time.Second, func() bool { return a.frames.Load() > 0 },
		"the held acks to be written after delivery 1 settled (frames: %d)", a.frames.Load())
	a.flush(context.Background())
	if f := a.frames.Load(); f != 1 {
		t.Errorf("%d frames for %d acks that a multiple ack covers once delivery 1 settled, want 1", f, n)
	}
	if left := readyAfterClose(t, q, ch); left != 0 {
		t.Fatalf("%d messages back in the queue: deferred acks were lost", left)
	}
}

// TestManyAloneAcksDoNotWaitLong: once coalesce acks wait above an unsettled delivery (one held
// for its ETA, say) they go out alone after lingerFor, not after soloAfter, so they do not keep a
// large part of the prefetch window.
func TestManyAloneAcksDoNotWaitLong(t *testing.T) {
	t.Parallel()
	const coalesce = 4
	q, ch := getN(t, coalesce+2)
	a := newBatchAckerSolo(ch, nil, coalesce, time.Minute)
	defer a.stop()
	for i := 1; i <= coalesce+2; i++ {
		a.delivered(uint64(i))
	}
	for i := 2; i <= coalesce+2; i++ {
		(acker{a: a, tag: uint64(i)}).AckDeferred()
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return a.frames.Load() == coalesce+1 },
		"the %d acks above delivery 1 to be written alone without waiting a minute (frames: %d)", coalesce+1, a.frames.Load())
	if left := readyAfterClose(t, q, ch); left != 1 {
		t.Fatalf("%d messages back in the queue, want only the unsettled delivery 1", left)
	}
}
