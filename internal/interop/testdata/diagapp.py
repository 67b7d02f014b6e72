"""Python twins of the Go worker's diagnostic tasks, so one queue can be shared by Go and Python workers.

diag.add and diag.sum have the names, arguments and results of tasks/diag in Go. Run (PYTHONPATH = this
directory; BROKER_URL and BACKEND_URL in the environment):

    python3 -m celery -A diagapp worker -Q QUEUE -P solo -c 1 --without-mingle --without-gossip -l info
"""

import os

from celery import Celery

app = Celery("diagapp", broker=os.environ["BROKER_URL"], backend=os.environ["BACKEND_URL"])
app.conf.update(
    worker_hijack_root_logger=True,
    worker_redirect_stdouts=False,
    broker_connection_max_retries=3,
)


@app.task(name="diag.add")
def add(x, y):
    """x + y, as the Go worker's diag.add."""
    return x + y


@app.task(name="diag.sum")
def xsum(numbers):
    """The sum of a list, as the Go worker's diag.sum (a chord body)."""
    return sum(numbers)
