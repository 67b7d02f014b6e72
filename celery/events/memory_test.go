package events

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/broker/fanout/memfanout"
)

// TestDispatchAndReceiveInMemory sends events through the in-memory transport to a Receiver: the
// dispatcher declares the exchange, the receiver's queue gets every event, batched as task.multi.
func TestDispatchAndReceiveInMemory(t *testing.T) {
	t.Parallel()
	tr := memfanout.New()
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The receiver declares the exchange first here, as `celery events` started before a worker does.
	rcv, err := NewReceiver(ctx, tr, ReceiverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	d, err := NewDispatcher(tr, Options{Hostname: "mem@events", Enabled: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	id := newUUID()
	d.Send(NewWorkerOnline(WorkerState{Freq: 2 * time.Second, Software: DefaultSoftware()}))
	d.Send(NewTaskStarted(id))
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := receive(t, rcv, 2)
	if got[0].Event.Type != TypeWorkerOnline || got[0].RoutingKey != "worker.online" || got[0].Hostname != "mem@events" ||
		got[1].Event.Type != TypeTaskStarted || !got[1].Multi || got[1].RoutingKey != "task.multi" || got[1].Event.UUID() != id {
		t.Fatalf("received %+v", got)
	}
	rcv.Close()
	for range rcv.C() {
	}
	if err := rcv.Err(); err != nil {
		t.Errorf("Err after Close: %v", err)
	}
}
