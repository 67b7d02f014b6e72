package celery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/internal/testenv"
)

// TestCountdownTasksThroughNativeDelayedDelivery (a CI-sized version of bench-style 1,000 tasks
// over 10 minutes): 60 countdown tasks spread over 1-12 s and 3 tasks 2-4 hours out, sent by the
// Go client to a quorum queue on a topic exchange, go through native delayed delivery: none runs
// before its ETA, each runs within 3 s after it (the levels expire whole seconds; the worker then
// waits out the fraction), the far ones never reach the task queue (nothing unacknowledged is held
// for them: the queue has no unacknowledged message once the near ones ran), and they wait in the
// celery_delayed_* queues instead.
func TestCountdownTasksThroughNativeDelayedDelivery(t *testing.T) {
	const bound = 3 * time.Second
	var mu sync.Mutex
	ranAt := map[string]time.Time{}
	far := map[string]bool{}
	b := setup(t, func(reg *celery.Registry) {
		celery.Register(reg, "t.when", func(_ context.Context, task *celery.Task[struct {
			N int `celery:"n"`
		}]) (int, error) {
			mu.Lock()
			ranAt[task.ID] = time.Now()
			mu.Unlock()
			return task.Args.N, nil
		})
	}, func(cfg *celery.Config) {
		cfg.TaskDefaultQueueType = "quorum"
		cfg.TaskDefaultExchangeType = "topic"
	})
	ctx := ctxT(t, 2*time.Minute)
	// The client computes the ETA inside SendRaw: between before+cd and after+cd.
	type sent struct {
		id               string
		earliest, latest time.Time
	}
	var near []sent
	for i := range 60 {
		cd := time.Second + time.Duration(i)*11*time.Second/60 // 1 s … 12 s
		before := time.Now()
		r, err := b.client.SendRaw(ctx, "t.when", []json.RawMessage{json.RawMessage(fmt.Sprint(i))}, nil, celery.WithCountdown(cd))
		if err != nil {
			t.Fatal(err)
		}
		near = append(near, sent{r.ID, before.Add(cd), time.Now().Add(cd)})
	}
	for h := 2; h <= 4; h++ {
		r, err := b.client.SendRaw(ctx, "t.when", []json.RawMessage{json.RawMessage("-1")}, nil, celery.WithCountdown(time.Duration(h)*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		far[r.ID] = true
	}
	for _, s := range near {
		meta, err := b.backend.Wait(ctx, s.id)
		if err != nil || meta.Status != "SUCCESS" {
			t.Fatalf("task %s: %s %v", s.id, meta.Status, err)
		}
	}
	mu.Lock()
	var worst time.Duration
	for _, s := range near {
		at := ranAt[s.id]
		if at.Before(s.earliest) {
			t.Errorf("task %s ran %v before its ETA", s.id, s.earliest.Sub(at))
		}
		if late := at.Sub(s.latest); late > bound {
			t.Errorf("task %s ran %v after its ETA (bound %v)", s.id, late, bound)
		} else {
			worst = max(worst, late)
		}
	}
	for id := range far {
		if _, ran := ranAt[id]; ran {
			t.Errorf("task %s, hours out, ran", id)
		}
	}
	mu.Unlock()
	t.Logf("60 countdown tasks: none early, latest %v after its ETA (bound %v)", worst.Round(time.Millisecond), bound)

	conn := testenv.AMQP(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(b.queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"})
	if err != nil {
		t.Fatal(err)
	}
	if q.Messages != 0 {
		t.Errorf("queue %s holds %d messages (ready): the far tasks reached it", b.queue, q.Messages)
	}
	// Unacknowledged messages are not in QueueDeclarePassive's count: the management API has
	// them (its numbers lag a few seconds, hence the wait; held far tasks would keep it above 0).
	testenv.Eventually(t, 20*time.Second, func() bool { return unacked(t, b.queue) == 0 },
		"queue %s keeps unacknowledged messages: the worker holds tasks", b.queue)
	waiting := 0
	for level := range broker.DelayedDeliveryLevels {
		lq, err := ch.QueueDeclarePassive(broker.DelayedLevel(level), true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		waiting += lq.Messages
	}
	if waiting < len(far) {
		t.Errorf("%d messages wait in the delayed levels, want at least the %d far tasks", waiting, len(far))
	}
	purgeFar(t, ch, b.queue)
}

// unacked is the queue's messages_unacknowledged from the RabbitMQ management API.
func unacked(t *testing.T, queue string) int {
	t.Helper()
	req, err := http.NewRequest("GET", "http://127.0.0.1:15672/api/queues/%2F/"+url.PathEscape(queue), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("guest", "guest")
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("the RabbitMQ management API is required: %v", err)
	}
	defer resp.Body.Close()
	var info struct {
		Unacked *int `json:"messages_unacknowledged"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		t.Fatal(err)
	}
	if info.Unacked == nil {
		return -1 // no statistics yet
	}
	return *info.Unacked
}

// purgeFar removes this test's far-future messages from the shared delayed levels, so nothing is
// left behind: each level is drained and messages for other routing keys are published back.
func purgeFar(t *testing.T, ch *amqp.Channel, queue string) {
	t.Helper()
	for level := range broker.DelayedDeliveryLevels {
		name := broker.DelayedLevel(level)
		for {
			d, ok, err := ch.Get(name, false)
			if err != nil || !ok {
				break
			}
			if _, rk, isDelayed := broker.SplitDelayedRoutingKey(d.RoutingKey); isDelayed && rk == queue {
				_ = d.Ack(false)
				continue
			}
			_ = d.Reject(true)
			break // someone else's: leave the rest of this level alone
		}
	}
}
