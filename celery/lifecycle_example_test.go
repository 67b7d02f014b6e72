package celery_test

import (
	"context"
	"errors"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/broker"
)

// ExampleWorker_Shutdown wires signals to a worker as the worker program does: the first SIGTERM
// is a warm shutdown, the second a cold one, bounded so that a task ignoring its context cannot
// keep the process alive. The caller closes the broker it created; Run does not.
func ExampleWorker_Shutdown() {
	var br broker.Broker // amqpbroker.New(...), created and closed here
	w, err := celery.NewWorker(celery.WorkerOptions{Registry: celery.NewRegistry(), Broker: br})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = br.Close() }()

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		go func() { _ = w.Shutdown(context.Background()) }() // warm: waits for running tasks
		<-sigs
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Shutdown(ctx) // second call: cold
	}()
	if err := w.Run(context.Background()); err != nil && !errors.Is(err, celery.ErrWorkerClosed) {
		log.Fatal(err)
	}
}
