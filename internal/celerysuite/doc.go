// Package celerysuite is the task set of Celery's own integration suite (t/integration/tasks.py
// of Celery 5.2.7) written in Go: test fixtures, not product tasks. Each task is registered under
// the suite's exact name, t.integration.tasks.<name> (and auto_retry_class_task, the suite's
// class-based task, plus Celery's built-in celery.ping), and behaves as its Python body does: the
// same return values, the same exceptions (type, module and arguments, so that pytest.raises on the
// Python side matches), retries, sleeps, soft time limits and request fields.
//
// The worker loads it only when asked (`worker --suite-tasks`); scripts/celery-suite.sh runs the
// suite's pytest files against such a worker.
package celerysuite
