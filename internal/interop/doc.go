// Package interop holds the interoperability tests between real Python Celery 5.2 (Debian's
// python3-celery, /usr/bin/python3) and this repository's Go worker and client. It has no code of
// its own: everything is in the tests and in the Python scripts under testdata/.
//
//   - Python client → Go worker: testdata/client.py sends tasks with app.send_task / apply_async
//     (protocol 2 and protocol 1) to the ./worker program started as a subprocess, and reports
//     what AsyncResult shows; the Go tests assert on it.
//   - Go client → Python worker: a real `celery worker` runs the tasks of testdata/pytasks.py,
//     and the Go client (celery.NewClient, SendTask, AsyncResult.Get) sends and reads.
//
// The tests need RabbitMQ (AMQP_URL), Redis (REDIS_URL) and /usr/bin/python3 with Celery 5.2
// (PYTHON overrides the interpreter); they fail, never skip, when one is missing.
package interop
