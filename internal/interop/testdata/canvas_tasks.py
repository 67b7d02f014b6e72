"""Tasks of the real Celery 5.2 worker that runs the canvases the Go canvas package sends.

Run (PYTHONPATH = this directory; BROKER_URL and BACKEND_URL in the environment):

    python3 -m celery -A canvas_tasks worker -Q QUEUE -P solo -c 1 --without-mingle --without-gossip -l info
"""

import os

from celery import Celery

app = Celery("canvas_tasks", broker=os.environ["BROKER_URL"], backend=os.environ["BACKEND_URL"])
app.conf.update(
    worker_hijack_root_logger=True,
    worker_redirect_stdouts=False,
    broker_connection_max_retries=3,
)


@app.task(name="cv.add")
def add(x, y):
    """x + y."""
    return x + y


@app.task(name="cv.xsum")
def xsum(numbers):
    """The sum of a list (a chord body)."""
    return sum(numbers)


@app.task(name="cv.fail")
def fail(message):
    """Raises ValueError(message)."""
    raise ValueError(message)


@app.task(name="cv.record", bind=True)
def record(self, *args):
    """Its args and the workflow ids it saw (link callbacks and errbacks)."""
    r = self.request
    return {"args": list(args), "parent_id": r.parent_id, "root_id": r.root_id, "group": r.group}
