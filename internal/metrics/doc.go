// Package metrics holds the Prometheus metrics of the worker, beat and the web programs, and the
// small HTTP server that exposes them.
//
// Each program makes one registry with [NewRegistry] (which adds the Go runtime and process
// collectors), creates its metrics on it ([NewWorker], [NewBeat], [NewHTTP]) and serves it with
// [Serve], which answers GET /metrics and GET /healthz until its context ends.
//
// # Worker metrics
//
//	celery_tasks_received_total{task}            counter    task messages received
//	celery_tasks_total{task,outcome}             counter    tasks finished; outcome is success, failure,
//	                                                        retry, revoked, rejected, ignored or expired
//	celery_task_runtime_seconds{task}            histogram  how long tasks ran (1ms .. 1h)
//	celery_task_queue_wait_seconds{task}         histogram  from due (sent, or ETA) to started (1ms .. 1h)
//	celery_worker_active_tasks                   gauge      tasks running now
//	celery_worker_reserved_tasks                 gauge      messages received, waiting to run
//	celery_worker_eta_held_tasks                 gauge      messages held until their ETA
//	celery_worker_prefetch_count                 gauge      the consumer's prefetch count
//	celery_worker_broker_reconnects_total        counter    broker reconnections since start
//	celery_worker_processed_tasks_total          counter    tasks finished since start (any outcome)
//	celery_worker_dead_lettered_total{reason}    counter    messages moved to the dead-letter queue
//
// The gauges and the two "since start" counters are read at scrape time from the function given
// to [Worker.SetStateFunc].
//
// # Beat metrics
//
//	beat_publishes_total{entry,task}             counter    slots this beat published
//	beat_publish_failures_total{entry,task}      counter    slots it failed to publish
//	beat_publish_lateness_seconds                histogram  publish time minus due time (1ms .. 10s, fine)
//	beat_entries                                 gauge      entries in the schedule
//
// # Web metrics
//
//	http_request_duration_seconds{route,method,code}  histogram  route is the handler's pattern,
//	                                                             code the class: 2xx, 4xx, 5xx...
//
// # Label cardinality
//
// Every label is bounded, so a bad message can never create series without limit:
//   - task: the registry bounds task names, but a worker also receives messages for tasks it does
//     not have. After [Worker.SetKnownTasks] (the registered names) any other name is counted as
//     "unknown"; without it the first [MaxTaskLabels] distinct names are kept and later ones are
//     "other". An empty, invalid UTF-8 or over-long (> 200 bytes) name is "unknown" either way.
//   - outcome: one of [Outcomes], else "unknown".
//   - reason: the kind of the x-dead-letter-reason text, one of [DeadLetterReasons], else "other".
//   - entry, task (beat): the first [MaxEntryLabels] names, then "other".
//   - route is fixed by the program; method is a standard method or "OTHER"; code is a class.
package metrics
