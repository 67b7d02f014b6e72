"""The Python celery beat of bench/beat.sh: BEAT_N entries sending bench.noop, in BEAT_MODE burst
(crontab(minute='*')) or spread (interval of beat_bench.period(i) seconds), as beat_bench.config."""
import os

from celery import Celery
from celery.schedules import crontab

from beat_bench import period

app = Celery("beatbench", broker=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"))
app.conf.task_default_queue = os.environ["BEAT_QUEUE"]
spread = os.environ.get("BEAT_MODE", "burst") == "spread"
app.conf.beat_schedule = {
    f"e{i}": (
        {"task": "bench.noop", "schedule": round(period(i), 2), "args": (i, round(period(i), 2))}
        if spread
        else {"task": "bench.noop", "schedule": crontab(minute="*"), "args": (i,)}
    )
    for i in range(int(os.environ.get("BEAT_N", "10000")))
}
