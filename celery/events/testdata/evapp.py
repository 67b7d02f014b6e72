"""The tiny Celery app of the events interop tests (Debian's python3-celery 5.2).

    PYTHONPATH=. python3 -m celery -A evapp events --dump
    PYTHONPATH=. python3 state_check.py NODENAME TIMEOUT

The broker is CELERY_BROKER_URL (Celery reads it before the app's own setting).
"""

import os

from celery import Celery

app = Celery("evapp", broker=os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"))
