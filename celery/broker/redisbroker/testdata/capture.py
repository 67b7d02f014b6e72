"""Captures what Python Celery 5.2 / kombu 5.2.4 write to a Redis broker, for golden_test.go.

    /usr/bin/python3 capture.py > kombu_redis.json      (Redis at 127.0.0.1:6379, database 13)

Database 13 is flushed first: it belongs to the Redis broker tests. Every entry records the Redis
key (list, set, hash, zset or PUBLISH channel) and the raw bytes kombu wrote there.
"""

import json
import threading
import time
from datetime import datetime, timedelta, timezone

import redis
from celery import Celery
from kombu import Exchange, Queue

URL = "redis://127.0.0.1:6379/13"
r = redis.Redis(db=13)
r.flushdb()
app = Celery("capture", broker=URL)
out = []


def take_list(name, key):
    for raw in r.lrange(key, 0, -1):
        out.append({"name": name, "kind": "list", "key": key.decode() if isinstance(key, bytes) else key,
                    "raw": raw.decode()})
    r.delete(key)


app.send_task("diag.add", args=[2, 3], task_id="id-plain")
take_list("v2_plain", "celery")
app.send_task("diag.add", args=[2, 3], task_id="id-prio", priority=5)
take_list("v2_priority_5", "celery\x06\x163")
app.send_task("diag.add", args=[2, 3], task_id="id-prio9", priority=9)
take_list("v2_priority_9", "celery\x06\x169")
app.send_task("diag.add", kwargs={"x": "naïve café 日本語 🎉"}, task_id="id-unicode", countdown=10,
              expires=datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
take_list("v2_unicode_countdown_expires", "celery")
app1 = Celery("capture-v1", broker=URL)
app1.conf.task_protocol = 1
app1.send_task("diag.add", args=[1, 1], task_id="id-v1", eta=datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
take_list("v1_eta", "celery")
app.conf.task_queues = [Queue("topicq", Exchange("tx", type="topic"), routing_key="a.*.c")]
app.send_task("diag.add", args=[1, 2], task_id="id-topic", queue="topicq")
for m in sorted(r.smembers("_kombu.binding.tx")) + sorted(r.smembers("_kombu.binding.celery")):
    out.append({"name": "binding", "kind": "set", "key": "_kombu.binding.", "raw": m.decode()})
take_list("v2_topic_queue", "topicq")

# What a kombu consumer records while it holds a message (QoS.append).
app.send_task("diag.add", args=[4, 4], task_id="id-held")
with app.connection() as conn:
    ch = conn.default_channel
    m = ch.basic_get("celery")
    for tag, raw in r.hgetall("unacked").items():
        out.append({"name": "unacked_entry", "kind": "hash", "key": "unacked", "field": tag.decode(), "raw": raw.decode()})
    for tag, score in r.zrange("unacked_index", 0, -1, withscores=True):
        out.append({"name": "unacked_index", "kind": "zset", "key": "unacked_index", "raw": tag.decode(), "score": score})
    ch.basic_reject(m.delivery_tag, requeue=True)
take_list("v2_rejected_requeued", "celery")

# Broadcasts: pidbox requests and an event, as PUBLISHed.
p = r.pubsub()
p.psubscribe("*")
got = []


def listen():
    for msg in p.listen():
        if msg["type"] == "pmessage":
            got.append(msg)


threading.Thread(target=listen, daemon=True).start()
time.sleep(0.3)
app.control.inspect(timeout=0.3).ping()
app.control.revoke("id-revoked")
with app.connection() as conn:
    app.events.Dispatcher(conn, hostname="capture@host", enabled=True).send("worker-heartbeat", freq=2.0)
time.sleep(0.5)
for msg in got:
    if msg["channel"].startswith(b"/13."):
        out.append({"name": "broadcast", "kind": "publish", "key": msg["channel"].decode(), "raw": msg["data"].decode()})
r.flushdb()
print(json.dumps(out, indent=1, ensure_ascii=False))
