"""A Python Celery 5.2 app on the django-db result backend (django-celery-results), the peer of the
Go worker in the django-db tests: the same task names, arguments and outcomes as the Go tasks the
tests register.

The example Django project (examples/django) provides the settings: PYTHONPATH holds it and this
directory; DJANGO_DATABASE_URL points Django at the test's PostgreSQL schema, CELERY_BROKER_URL at
RabbitMQ. Run:

    python3 -m celery -A djapp worker -Q QUEUE -n celery@djr-py -P solo -c 1 --without-mingle --without-gossip
"""
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "forumads_site.settings")
django.setup()

from celery import Celery  # noqa: E402  (after django.setup: the backend uses the ORM)
from celery.exceptions import Ignore  # noqa: E402

app = Celery("djapp", broker=os.environ["CELERY_BROKER_URL"])
app.conf.update(
    result_backend="django-db",
    result_extended=os.environ.get("DJR_RESULT_EXTENDED", "1") == "1",
    worker_hijack_root_logger=True,
    worker_redirect_stdouts=False,
    broker_connection_max_retries=3,
)


@app.task(name="djr.add")
def add(x, y):
    """x + y, as the Go djr.add."""
    return x + y


@app.task(name="djr.sum")
def xsum(numbers):
    """The sum of a list (a chord body), as the Go djr.sum."""
    return sum(numbers)


@app.task(name="djr.fail")
def fail(message):
    """Fails with ValueError(message), as the Go djr.fail."""
    raise ValueError(message)


@app.task(name="djr.retry", bind=True, max_retries=3)
def retry(self, message):
    """Asks for a retry in 60 s because of ValueError(message), as the Go djr.retry."""
    raise self.retry(exc=ValueError(message), countdown=60)


@app.task(name="djr.ignore")
def ignore():
    """Ends with Ignore (no state is stored), as the Go djr.ignore."""
    raise Ignore()
