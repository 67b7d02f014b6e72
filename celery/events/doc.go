// Package events sends and receives Celery events exactly as Celery 5.2 does, so that `celery
// events`, Flower and anything built on celery.events.state.State see Go workers and clients like
// Python ones.
//
// # Wire format
//
// Events go to the topic exchange "celeryev" (durable, not auto-delete, as kombu declares it) with
// routing key = type with '-' replaced by '.', delivery_mode 1, content type application/json and the
// header {"hostname": <node name>}. The body is one JSON object, or a JSON list of events with routing
// key "<group>.multi". Every event has hostname, utcoffset (whole hours WEST of UTC), pid, clock
// (Lamport), then its own fields, then timestamp (float seconds) and type, in that order, written as
// Python's json.dumps writes them. Event.MarshalJSON reproduces Celery's bytes exactly (the golden
// tests compare with captured messages).
//
// # Types
//
// NewTaskSent, NewTaskReceived, NewTaskStarted, NewTaskSucceeded, NewTaskFailed, NewTaskRetried,
// NewTaskRevoked, NewTaskRejected, NewWorkerOnline, NewWorkerHeartbeat and NewWorkerOffline build
// the eleven events Celery 5.2 sends with its field names, JSON types and order; Event.Validate checks
// a received event of a known type against the same list.
//
// Worker events carry sw_ident, sw_ver and sw_sys. Nothing in Celery or Flower compares them (Flower
// only shows them on the worker page, and State only stores them), so this package reports
// sw_ident "go-celery" (SoftwareIdent), its module version and the OS name as Python's
// platform.system() spells it; HeartbeatOptions.Software overrides them.
//
// # Dispatcher
//
// A Dispatcher never blocks its caller: Send stamps the event (hostname, utcoffset, pid, the next
// Lamport clock value, timestamp) and queues it in a bounded buffer; when the buffer is full the
// oldest waiting event is dropped and counted (Stats.Dropped). One goroutine publishes. Task events
// are batched like the prefork worker batches them: consecutive task events waiting in the buffer
// (at most Options.BatchLimit) go out as one "task.multi" message; with BatchLimit 1 every event goes
// alone under its own routing key. Worker and custom events always go alone. A publish waits for the
// broker's confirm, so batching is what lets events keep up with a busy worker.
//
// Task events (group "task") are sent only while enabled (Options.Enabled, EnableTaskEvents,
// DisableTaskEvents: the -E flag and the enable_events/disable_events control commands); worker
// events always are. Close flushes.
//
// A Dispatcher publishes through a Publisher: a fanout.Transport (amqpbroker.Fanout for
// RabbitMQ) or any broker.Broker. The exchange is declared before the first publish (and after a
// failed one) through ExchangeDeclarer, which every fanout.Transport implements. This package
// never talks to a broker directly.
//
// # Heartbeat
//
// StartHeartbeat sends worker-online at once and worker-heartbeat every 2 s with the active and
// processed counts from a callback and the load average from /proc/loadavg; Stop sends
// worker-offline. Monitors mark a worker offline after 2 × freq without a heartbeat.
//
// # Receiver
//
// NewReceiver consumes, through a fanout.Transport, from a private queue as Celery's
// EventReceiver does ("celeryev.<uuid>", auto-delete, x-message-ttl 5000, x-expires 60000, bound
// with "#") and decodes single and .multi messages; undecodable messages are reported, never
// skipped. It stops when the transport loses its connection. It is for tests and tools.
package events
