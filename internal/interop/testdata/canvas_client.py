"""Builds canvases with Celery 5.2 and publishes them to a queue no worker reads.

    python3 canvas_client.py QUEUE

Prints one JSON object: case name -> the frozen ids Go must find in the messages.
Messages are published in the order: chain, group, chord, link.
"""

import json
import os
import sys

from celery import Celery, chain, chord, group

app = Celery("canvas_client", broker=os.environ["BROKER_URL"], backend=os.environ["BACKEND_URL"])
queue = sys.argv[1]
app.conf.task_default_queue = queue
add = app.signature("cv.add")
xsum = app.signature("cv.xsum")
record = app.signature("cv.record")


def s(sig, *args):
    return sig.clone(args=args)


out = {}
c = chain(s(add, 1, 2), s(add, 3), s(add, 4))
r = c.apply_async()
out["chain"] = {"last": r.id, "middle": r.parent.id, "first": r.parent.parent.id}

g = group(s(add, i, i) for i in range(3))
r = g.apply_async()
out["group"] = {"id": r.id, "members": [x.id for x in r.results]}

ch = chord([s(add, 1, 1), s(add, 2, 2)], s(xsum))
r = ch.apply_async()
out["chord"] = {"body": r.id, "group": r.parent.id, "members": [x.id for x in r.parent.results]}

r = s(add, 1, 2).apply_async(link=s(record, "ok"), link_error=s(record, "err").set(immutable=True))
out["link"] = {"id": r.id}
print(json.dumps(out))
