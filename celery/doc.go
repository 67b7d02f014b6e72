// Package celery is a Celery-compatible task system: Go workers that consume Celery protocol 2 (and
// protocol 1) task messages and store results exactly as Python Celery 5.2 does, a client that sends
// messages Python workers run, and beat, canvas, remote control and events beside them. A Django
// project keeps calling send_task(...) and AsyncResult(id).get() unchanged.
//
// This package is what a user writes against; the broker and result backend are adapters behind
// interfaces, chosen by URL (amqp://, redis://, memory://) in the programs' wiring.
//
// # Tasks
//
// A task is a Go function of a typed argument struct, registered under its Celery name:
//
//	type AddArgs struct {
//		X int `celery:"x"` // args[0] or kwargs["x"]
//		Y int `celery:"y"`
//	}
//	celery.Register(reg, "tasks.add", func(ctx context.Context, t *celery.Task[AddArgs]) (int, error) {
//		return t.Args.X + t.Args.Y, nil
//	}, celery.MaxRetries(5), celery.AcksLate(true))
//
// Arguments follow Python's calling rules ([Task], [ArgsError]); the result is JSON-encoded. A task
// controls its outcome with the returned error: [Retry], [Reject], [ErrIgnore], any other error
// (FAILURE, with the exception type from an ExcType method), or a panic (recovered as
// [PanicError]). [TaskDef] declares a task once for both sides: its Register binds the function and
// its Send encodes the same argument type and returns a typed [Result].
//
// # Sending
//
// [Client] publishes byte-for-byte what Celery 5.2's send_task publishes, routed by task_routes,
// task_queues and the call's options through the one router of the library ([Router]); [AsyncResult]
// reads the result. Chains, groups and chords are built with package canvas.
//
// # Running a worker
//
// [NewWorker] takes a [Config] (Celery's setting names), a [Registry], a broker (package broker;
// adapters amqpbroker and memorybroker) and optionally a result backend (package backend; adapters
// redisbackend and memorybackend), a revoke store, an event dispatcher and a canvas. [Worker.Run]
// consumes until [Worker.Shutdown]: the first call is a warm shutdown (stop consuming, give back
// what is held, let running tasks finish), a second call or its context ending is cold
// (worker_soft_shutdown_timeout, then the running tasks' contexts are cancelled with
// [ErrWorkerShutdown] and their unacknowledged messages go back). Run then returns [ErrWorkerClosed],
// as http.Server's Serve returns http.ErrServerClosed. The worker never closes a broker it was
// handed.
//
// # Seams
//
// [Worker] is a thin type over the engine in celery/internal/engine (consume loop and intake,
// execution, finishing and acks, revokes, canvas hooks, events, the pool, shutdown) and
// celery/internal/workerctl (remote control and inspect). The engine never imports this package:
// NewWorker hands it resolved settings, the [Registry] as its tasks (each run turns the message
// into the [Request] and [Task] a function sees and reports how it ended, reading [Retry],
// [Reject] and [ErrIgnore]) and the errors it reports with; the types a user writes against all
// stay here.
//
// The engine asks its broker what it can do (broker.Capabilities) instead of assuming RabbitMQ: a
// broker that keeps dead letters or parks far-future ETA messages implements broker.DeadLetterer or
// broker.Parker, and without them the worker rejects or holds the message. Every adapter passes one
// conformance suite: brokertest.Run for brokers, backendtest.Run for result backends,
// backendtest.RunRevokeStore, beatstoretest.Run and fanouttest.Run for the other stores.
//
// # Testing
//
// Package celerytest starts a worker on a private in-memory broker and backend for a test, and
// asserts results and sent messages; see its examples.
package celery
