"""The Python celery beat of bench/beat.sh: BEAT_N crontab(minute='*') entries sending bench.noop."""
import os

from celery import Celery
from celery.schedules import crontab

app = Celery("beatbench", broker=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"))
app.conf.task_default_queue = os.environ["BEAT_QUEUE"]
app.conf.beat_schedule = {
    f"e{i}": {"task": "bench.noop", "schedule": crontab(minute="*"), "args": (i,)}
    for i in range(int(os.environ.get("BEAT_N", "10000")))
}
