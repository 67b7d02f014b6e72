"""Tasks of the real Celery 5.2 worker the Go client talks to in the interop tests.

Run (PYTHONPATH = this directory; BROKER_URL and BACKEND_URL in the environment):

    python3 -m celery -A pytasks worker -Q QUEUE -P solo -c 1 --without-mingle --without-gossip -l info
"""

import os

from celery import Celery

app = Celery("pytasks", broker=os.environ["BROKER_URL"], backend=os.environ["BACKEND_URL"])
app.conf.update(
    result_extended=True,
    worker_hijack_root_logger=True,
    worker_redirect_stdouts=False,
    broker_connection_max_retries=3,
)


@app.task(name="py.mul")
def mul(x, y):
    """x * y."""
    return x * y


@app.task(name="py.echo")
def echo(*args, **kwargs):
    """Its arguments, as diag.echo returns them."""
    return {"args": list(args), "kwargs": kwargs}


@app.task(name="py.fail")
def fail(message):
    """Raises ValueError(message)."""
    raise ValueError(message)


@app.task(name="py.request", bind=True)
def request(self, *args, **kwargs):
    """What the worker read from the message's headers and properties."""
    r = self.request
    info = r.delivery_info or {}
    return {
        "id": r.id, "task": r.task, "args": list(args), "kwargs": kwargs,
        "retries": r.retries, "eta": r.eta, "expires": r.expires,
        "root_id": r.root_id, "parent_id": r.parent_id, "group": r.group,
        "origin": r.origin, "ignore_result": r.ignore_result, "timelimit": r.timelimit,
        "argsrepr": r.argsrepr, "kwargsrepr": r.kwargsrepr,
        "correlation_id": r.correlation_id, "reply_to": r.reply_to,
        "x_headers": {k: v for k, v in vars(r).items() if k.startswith("x-")},
        "delivery": {"exchange": info.get("exchange"), "routing_key": info.get("routing_key"),
                     "priority": info.get("priority"), "redelivered": info.get("redelivered")},
    }
