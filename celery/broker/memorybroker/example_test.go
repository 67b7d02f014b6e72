package memorybroker_test

import (
	"context"
	"fmt"

	"github.com/forumads/forumads/celery/broker"
	"github.com/forumads/forumads/celery/broker/memorybroker"
	"github.com/forumads/forumads/celery/protocol"
)

// A message published to a queue is delivered to its consumer; one rejected with requeue comes
// back marked redelivered.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := memorybroker.New()
	defer b.Close()
	q := broker.Queue{Name: "celery"}
	_ = b.Publish(ctx, broker.Publishing{RoutingKey: "celery", Declare: &q, Envelope: protocol.Envelope{Body: []byte("hello")}})
	deliveries, err := b.Consume(ctx, []broker.Queue{q}, 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	d := <-deliveries
	fmt.Println(string(d.Body), d.Redelivered)
	_ = d.Reject(true)
	d = <-deliveries
	fmt.Println(string(d.Body), d.Redelivered)
	_ = d.Ack()
	fmt.Println(b.Capabilities())
	// Output:
	// hello false
	// hello true
	// {true true true true}
}
