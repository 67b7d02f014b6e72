"""A Celery app with no tasks, for driving `celery inspect` / `celery control` against a Go
mailbox in the control package's interop test.

Run (PYTHONPATH = this directory; BROKER_URL in the environment):

    python3 -m celery -A ctlapp inspect ping -d celery@gotest-xxxx --timeout 5
"""

import os

from celery import Celery

app = Celery("ctlapp", broker=os.environ["BROKER_URL"])
app.conf.update(
    broker_connection_max_retries=3,
)
