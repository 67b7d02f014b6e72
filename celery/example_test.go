package celery_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/forumads/forumads/celery"
)

// ImportArgs binds Python's call ads.import_feed("feed.csv", limit=10): positional args fill the
// fields in order, keyword args by name.
type ImportArgs struct {
	Source string `celery:"source"`
	Limit  int    `celery:"limit,optional"`
}

func Example_register() {
	reg := celery.NewRegistry()
	celery.Register(reg, "ads.import_feed", func(ctx context.Context, t *celery.Task[ImportArgs]) (map[string]any, error) {
		return map[string]any{"source": t.Args.Source, "limit": t.Args.Limit}, nil
	}, celery.MaxRetries(5), celery.AcksLate(true))

	// Apply runs it once, as a worker would for the message
	// send_task("ads.import_feed", args=["feed.csv"], kwargs={"limit": 10}).
	res, err := reg.Apply(context.Background(), "ads.import_feed",
		[]json.RawMessage{json.RawMessage(`"feed.csv"`)}, map[string]json.RawMessage{"limit": json.RawMessage(`10`)})
	fmt.Println(string(res), err)

	// Arguments that do not fit fail like a Python TypeError.
	_, err = reg.Apply(context.Background(), "ads.import_feed", nil, map[string]json.RawMessage{"lmit": json.RawMessage(`1`)})
	fmt.Println(err)
	// Output:
	// {"limit":10,"source":"feed.csv"} <nil>
	// ads.import_feed(): got an unexpected keyword argument 'lmit'
}

func ExampleRetry() {
	reg := celery.NewRegistry()
	celery.Register(reg, "ads.fetch", func(ctx context.Context, t *celery.Task[struct{}]) (string, error) {
		// Returning a retry republishes the task with retries+1 and an eta 30s later.
		return "", t.Retry(errors.New("feed server busy"), celery.Countdown(30*time.Second))
	})
	_, err := reg.Apply(context.Background(), "ads.fetch", nil, nil)
	var retry *celery.RetryError
	fmt.Println(errors.As(err, &retry), *retry.Countdown, retry.Err)
	// Output: true 30s feed server busy
}

func ExampleExceptionOf() {
	// What Python's AsyncResult.get() raises for a Go error.
	fmt.Println(celery.ExceptionOf(errors.New("boom")))
	fmt.Println(celery.ExceptionOf(&celery.ArgsError{Task: "t", Param: "x", Err: errors.New("not an int")}))
	// Output:
	// Exception builtins boom
	// TypeError builtins t(): argument "x": not an int
}

func ExampleClient_SendTask() {
	// A worker and a client need a broker (and a result backend to read results):
	//
	//	br, _ := amqpbroker.New("amqp://guest:guest@127.0.0.1:5672//", amqpbroker.Options{})
	//	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	//	backend := redisbackend.New(rc, redisbackend.Options{Expires: 24 * time.Hour})
	//	client, _ := celery.NewClient(celery.ClientOptions{Broker: br, Backend: backend})
	//	r, _ := client.SendTask(ctx, "diag.add", []any{2, 3}, nil, celery.WithCountdown(10*time.Second))
	//	var sum int
	//	_ = r.GetInto(ctx, &sum) // 5, once a worker ran it
	fmt.Println(len(celery.NewID()))
	// Output: 36
}
