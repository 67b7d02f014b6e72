package brokertest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/protocol"
)

// The operators' dead-letter API (broker.DeadLetterQueues): cases run only against adapters that
// implement it. They are registered here, in a file of their own, so that the list in
// brokertest.go stays as it is.
func init() {
	cases = append(cases,
		subtest{name: "DeadLettersListLeavesQueueAsItWas", run: (*suite).deadLettersList, needs: hasDeadLetterQueues},
		subtest{name: "DeadLettersReplayMovesEachOnce", run: (*suite).deadLettersReplay, needs: hasDeadLetterQueues},
		subtest{name: "DeadLettersReplayLeavesWhatItCannotMove", run: (*suite).deadLettersReplayLeaves, needs: hasDeadLetterQueues},
		subtest{name: "DeadLettersPurge", run: (*suite).deadLettersPurge, needs: hasDeadLetterQueues},
	)
}

func hasDeadLetterQueues(_ broker.Capabilities, b broker.Broker) (bool, string) {
	_, ok := b.(broker.DeadLetterQueues)
	return ok, "the adapter does not implement broker.DeadLetterQueues"
}

// deadLetterAt is the time the suite's dead letters say they were dead-lettered.
var deadLetterAt = time.Date(2026, 11, 25, 18, 40, 1, 120000000, time.UTC)

// putDeadLetter publishes to dlq a dead letter of task id as the worker writes it (see
// broker.DeadLetter.Envelope), coming from orig ("" leaves the origin headers out).
func putDeadLetter(t *testing.T, b broker.Broker, dlq, id, reason, orig string) {
	t.Helper()
	h := map[string]any{"id": id, "task": "diag.add", "lang": "py", "retries": int32(2), "argsrepr": "(2, 3)"}
	if orig != "" {
		h[broker.HeaderDeadLetterReason] = reason
		h[broker.HeaderOriginalQueue] = orig
		h[broker.HeaderOriginalExchange] = orig
		h[broker.HeaderOriginalKey] = orig
		h[broker.HeaderDeadLetteredBy] = "celery@test"
		h[broker.HeaderDeadLetteredAt] = protocol.FormatTime(deadLetterAt)
	}
	publish(t, b, broker.Publishing{RoutingKey: dlq, Declare: &broker.Queue{Name: dlq},
		Envelope: protocol.Envelope{Headers: h, Body: deadLetterBody(id), ContentType: "application/json",
			ContentEncoding: "utf-8", CorrelationID: id, ReplyTo: "reply-" + id, DeliveryMode: 2}})
}

func deadLetterBody(id string) []byte {
	return []byte(`[[2, 3], {"id": "` + id + `"}, {"callbacks": null}]`)
}

// takeAll consumes every message queue holds now (n of them), acknowledging them, in order.
func takeAll(t *testing.T, b broker.Broker, queue string, n int) []*broker.Delivery {
	t.Helper()
	ctx, cancel := context.WithCancel(ctxFor(t))
	ch := consume(t, ctx, b, 0, broker.Queue{Name: queue})
	var out []*broker.Delivery
	for range n {
		d := recv(t, ch)
		ack(t, d)
		out = append(out, d)
	}
	cancel()
	for range ch { // the consumer has ended once the channel is closed
	}
	return out
}

// deliveryIDs returns the id header of each delivery, comma-separated.
func deliveryIDs(ds []*broker.Delivery) string {
	var out []string
	for _, d := range ds {
		id, _ := d.Headers["id"].(string)
		out = append(out, id)
	}
	return strings.Join(out, ",")
}

// listed returns the ids ListDeadLetters reports for dlq, comma-separated.
func listed(t *testing.T, dq broker.DeadLetterQueues, dlq string) string {
	t.Helper()
	dls, err := dq.ListDeadLetters(ctxFor(t), dlq, 0)
	if err != nil {
		t.Fatalf("listing %s: %v", dlq, err)
	}
	var out []string
	for _, d := range dls {
		out = append(out, d.ID)
	}
	return strings.Join(out, ",")
}

// deadLettersList: listing describes each dead letter from its headers, in queue order, honours
// the limit, and leaves every message in place, unchanged; a missing queue is ErrNoDeadLetterQueue.
func (s *suite) deadLettersList(t *testing.T, b broker.Broker) {
	dq := b.(broker.DeadLetterQueues)
	n := s.names(t, 3)
	dlq, orig := n[0], n[1]
	putDeadLetter(t, b, dlq, "id-a", `NotRegistered: task "x.y" is not registered`, orig)
	putDeadLetter(t, b, dlq, "id-b", "InvalidTaskError: missing header task", orig)
	putDeadLetter(t, b, dlq, "id-c", "rejected by the task", "other-queue")

	dls, err := dq.ListDeadLetters(ctxFor(t), dlq, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := broker.DeadLetterInfo{ID: "id-a", Task: "diag.add", Reason: `NotRegistered: task "x.y" is not registered`,
		OriginalQueue: orig, OriginalExchange: orig, OriginalRoutingKey: orig,
		DeadLetteredAt: protocol.FormatTime(deadLetterAt), DeadLetteredBy: "celery@test",
		ContentType: "application/json", BodyBytes: len(deadLetterBody("id-a"))}
	if len(dls) != 3 || dls[0] != want || dls[1].ID != "id-b" || dls[2].ID != "id-c" || dls[2].OriginalQueue != "other-queue" {
		t.Fatalf("ListDeadLetters = %+v, want id-a (%+v), id-b, id-c", dls, want)
	}
	if dls, err := dq.ListDeadLetters(ctxFor(t), dlq, 2); err != nil || len(dls) != 2 || dls[1].ID != "id-b" {
		t.Fatalf("ListDeadLetters limit 2 = %+v, %v; want id-a, id-b", dls, err)
	}
	if got := listed(t, dq, dlq); got != "id-a,id-b,id-c" {
		t.Fatalf("listing again gives %s, want id-a,id-b,id-c", got)
	}
	ds := takeAll(t, b, dlq, 3)
	if deliveryIDs(ds) != "id-a,id-b,id-c" {
		t.Fatalf("after listing the queue holds %s, want id-a,id-b,id-c", deliveryIDs(ds))
	}
	if ds[0].Headers[broker.HeaderDeadLetterReason] == nil || string(ds[0].Body) != string(deadLetterBody("id-a")) {
		t.Errorf("a listed message changed: %v %s", ds[0].Headers, ds[0].Body)
	}
	if _, err := dq.ListDeadLetters(ctxFor(t), n[2], 0); !errors.Is(err, broker.ErrNoDeadLetterQueue) {
		t.Errorf("listing a queue that does not exist: %v, want ErrNoDeadLetterQueue", err)
	}
}

// deadLettersReplay: a replayed message reaches its original queue (or the one asked for) with
// its body and properties and without the dead-letter headers, and leaves the dead-letter queue;
// the others stay, in order.
func (s *suite) deadLettersReplay(t *testing.T, b broker.Broker) {
	dq := b.(broker.DeadLetterQueues)
	n := s.names(t, 3)
	dlq, orig, other := n[0], n[1], n[2]
	for _, q := range []string{orig, other} {
		if err := b.Declare(ctxFor(t), broker.Queue{Name: q}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"id-a", "id-b", "id-c"} {
		putDeadLetter(t, b, dlq, id, "NotRegistered: x", orig)
	}
	if _, err := dq.ReplayDeadLetters(ctxFor(t), dlq, broker.DeadLetterSelection{All: true}, dlq); err == nil {
		t.Error("replaying to the dead-letter queue itself: no error")
	}
	if _, err := dq.ReplayDeadLetters(ctxFor(t), dlq, broker.DeadLetterSelection{All: true, IDs: []string{"id-a"}}, ""); err == nil {
		t.Error("replaying with both All and IDs: no error")
	}

	done, err := dq.ReplayDeadLetters(ctxFor(t), dlq, broker.DeadLetterSelection{IDs: []string{"id-b"}}, "")
	if err != nil || len(done) != 1 || done[0].ID != "id-b" || done[0].To != orig {
		t.Fatalf("replay id-b = %+v, %v; want id-b to %s", done, err, orig)
	}
	d := takeAll(t, b, orig, 1)[0]
	if id, _ := d.Headers["id"].(string); id != "id-b" {
		t.Fatalf("the original queue got %v, want id-b", d.Headers["id"])
	}
	for _, k := range []string{broker.HeaderDeadLetterReason, broker.HeaderOriginalQueue, broker.HeaderOriginalExchange,
		broker.HeaderOriginalKey, broker.HeaderDeadLetteredBy, broker.HeaderDeadLetteredAt} {
		if _, ok := d.Headers[k]; ok {
			t.Errorf("the replayed message still has header %s", k)
		}
	}
	if task, _ := d.Headers["task"].(string); task != "diag.add" || string(d.Body) != string(deadLetterBody("id-b")) ||
		d.ContentType != "application/json" || d.ContentEncoding != "utf-8" || d.CorrelationID != "id-b" ||
		d.ReplyTo != "reply-id-b" || d.DeliveryMode != 2 {
		t.Errorf("the replayed message differs: %+v", d)
	}
	if got := listed(t, dq, dlq); got != "id-a,id-c" {
		t.Fatalf("after replaying id-b the dead-letter queue holds %s, want id-a,id-c", got)
	}

	done, err = dq.ReplayDeadLetters(ctxFor(t), dlq, broker.DeadLetterSelection{All: true}, other)
	if err != nil || len(done) != 2 || done[0].To != other {
		t.Fatalf("replay all to %s = %+v, %v", other, done, err)
	}
	if got := deliveryIDs(takeAll(t, b, other, 2)); got != "id-a,id-c" {
		t.Errorf("the target queue holds %s, want id-a,id-c", got)
	}
	if got := listed(t, dq, dlq); got != "" {
		t.Errorf("after replaying all the dead-letter queue holds %s", got)
	}
	// Each message moved once: no second copy anywhere (listing reads any queue).
	for _, q := range []string{orig, other} {
		if got := listed(t, dq, q); got != "" {
			t.Errorf("%s holds %s besides the copies taken", q, got)
		}
	}
}

// deadLettersReplayLeaves: a message whose original queue does not exist, or that has none, stays
// in the dead-letter queue, in place, while the others are replayed; the error names each, and
// names a selected id that is not there.
func (s *suite) deadLettersReplayLeaves(t *testing.T, b broker.Broker) {
	dq := b.(broker.DeadLetterQueues)
	n := s.names(t, 3)
	dlq, orig, gone := n[0], n[1], n[2]
	if err := b.Declare(ctxFor(t), broker.Queue{Name: orig}); err != nil {
		t.Fatal(err)
	}
	putDeadLetter(t, b, dlq, "id-a", "NotRegistered: x", orig)
	putDeadLetter(t, b, dlq, "id-b", "NotRegistered: x", gone)
	putDeadLetter(t, b, dlq, "id-c", "NotRegistered: x", orig)
	putDeadLetter(t, b, dlq, "id-d", "", "") // no origin headers

	done, err := dq.ReplayDeadLetters(ctxFor(t), dlq, broker.DeadLetterSelection{All: true}, "")
	if err == nil || !strings.Contains(err.Error(), "id-b") || !strings.Contains(err.Error(), gone) || !strings.Contains(err.Error(), "id-d") {
		t.Fatalf("replay with a missing queue: %v, want an error naming id-b, %s and id-d", err, gone)
	}
	var moved []string
	for _, r := range done {
		moved = append(moved, r.ID)
	}
	if !slices.Equal(moved, []string{"id-a", "id-c"}) {
		t.Errorf("replay reports it moved %v, want id-a, id-c", moved)
	}
	if got := deliveryIDs(takeAll(t, b, orig, 2)); got != "id-a,id-c" {
		t.Errorf("the original queue holds %s, want id-a,id-c", got)
	}
	if got := listed(t, dq, dlq); got != "id-b,id-d" {
		t.Fatalf("the dead-letter queue holds %s, want id-b,id-d", got)
	}

	putDeadLetter(t, b, dlq, "id-e", "NotRegistered: x", orig)
	_, err = dq.ReplayDeadLetters(ctxFor(t), dlq, broker.DeadLetterSelection{IDs: []string{"id-e", "no-such-id"}}, "")
	if err == nil || !strings.Contains(err.Error(), "no-such-id") {
		t.Errorf("replay of an id not in the queue: %v, want an error naming it", err)
	}
	if got := deliveryIDs(takeAll(t, b, orig, 1)); got != "id-e" {
		t.Errorf("the id that was there was not replayed: %s", got)
	}
	left := takeAll(t, b, dlq, 2)
	if deliveryIDs(left) != "id-b,id-d" || left[0].Headers[broker.HeaderOriginalQueue] != gone ||
		string(left[0].Body) != string(deadLetterBody("id-b")) {
		t.Errorf("the messages left behind changed: %s %v %s", deliveryIDs(left), left[0].Headers, left[0].Body)
	}
}

// deadLettersPurge: purging by id deletes exactly those messages and names ids not found; purging
// all empties the queue and counts what it deleted.
func (s *suite) deadLettersPurge(t *testing.T, b broker.Broker) {
	dq := b.(broker.DeadLetterQueues)
	n := s.names(t, 2)
	dlq, orig := n[0], n[1]
	for _, id := range []string{"id-a", "id-b", "id-c", "id-d"} {
		putDeadLetter(t, b, dlq, id, "NotRegistered: x", orig)
	}
	done, err := dq.PurgeDeadLetters(ctxFor(t), dlq, []string{"id-d", "id-b"})
	if err != nil || len(done) != 2 || done[0].ID != "id-b" || done[1].ID != "id-d" {
		t.Fatalf("purge id-b, id-d = %+v, %v", done, err)
	}
	if got := listed(t, dq, dlq); got != "id-a,id-c" {
		t.Fatalf("after purging id-b and id-d the queue holds %s, want id-a,id-c", got)
	}
	if _, err := dq.PurgeDeadLetters(ctxFor(t), dlq, []string{"no-such-id"}); err == nil || !strings.Contains(err.Error(), "no-such-id") {
		t.Errorf("purge of an id not in the queue: %v, want an error naming it", err)
	}
	if _, err := dq.PurgeDeadLetters(ctxFor(t), dlq, nil); err == nil {
		t.Error("purge of no ids: no error")
	}
	if got, err := dq.PurgeAllDeadLetters(ctxFor(t), dlq); err != nil || got != 2 {
		t.Fatalf("purge all = %d, %v; want 2", got, err)
	}
	if got := listed(t, dq, dlq); got != "" {
		t.Errorf("after purging all the queue holds %s", got)
	}
}
