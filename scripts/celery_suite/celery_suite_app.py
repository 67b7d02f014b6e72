"""The Celery app of the reference run (SUITE_WORKER=python): Celery's own worker with the suite's
tasks, configured as the suite's conftest.py configures its session app."""
import os

from celery import Celery
from celery.signals import worker_init

app = Celery("celery_suite")
app.conf.update(
    broker_url=os.environ.get("TEST_BROKER", "pyamqp://"),
    result_backend=os.environ.get("TEST_BACKEND", "redis://"),
    imports=("t.integration.tasks", "celery.contrib.testing.tasks"),
)


@worker_init.connect
def _register_class_tasks(sender, **_):
    # The suite's celery_class_tasks fixture, as Celery's session worker registers it (before the
    # prefork pool forks its children).
    from t.integration.tasks import ClassBasedAutoRetryTask
    sender.app.register_task(ClassBasedAutoRetryTask())
