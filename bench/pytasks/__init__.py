"""Celery app for bench/drain.sh: the Python side of the throughput comparison.

It defines ``diag.add`` under the same name as the Go worker's diagnostic task, so the messages the
bench publishes with the Go client run unchanged on either worker. The broker and the result backend
come from CELERY_BROKER_URL and CELERY_RESULT_BACKEND (the bench sets both); every other setting is
Celery's default, written out where the comparison depends on it.
"""

import os

from celery import Celery

app = Celery(
    "pytasks",
    broker=os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"),
    backend=os.environ.get("CELERY_RESULT_BACKEND", "redis://127.0.0.1:6379/0"),
)
app.conf.update(
    accept_content=["json"],
    task_serializer="json",
    result_serializer="json",
    # Celery's defaults, spelled out: prefetch = concurrency x 4, ack just before the task runs.
    worker_prefetch_multiplier=4,
    task_acks_late=False,
    result_expires=86400,
)


@app.task(name="diag.add")
def add(x, y):
    """Return x + y, like the Go worker's diag.add."""
    return x + y


@app.task(name="diag.sum")
def sum_numbers(numbers):
    """Return the sum of the list numbers, like the Go worker's diag.sum (a chord body)."""
    return sum(numbers)
