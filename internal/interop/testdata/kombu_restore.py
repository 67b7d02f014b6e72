"""kombu 5.2's own restore of visible messages, for redis_kombu_test.go.

    BROKER_URL=redis://... QUEUE=q python3 kombu_restore.py

Runs kombu's QoS.restore_visible with visibility_timeout 1 s on the unacked hash and index (which
a Go worker wrote), then takes one message from QUEUE with basic_get and prints
{"restored_body": ..., "redelivered": ...} as JSON.
"""

import json
import os
import time

from kombu import Connection

with Connection(os.environ["BROKER_URL"], transport_options={"visibility_timeout": 1}) as conn:
    ch = conn.default_channel
    ch.qos.restore_visible(num=None)
    m = None
    deadline = time.monotonic() + 10
    while m is None and time.monotonic() < deadline:
        m = ch.basic_get(os.environ["QUEUE"], no_ack=True)
        if m is None:
            time.sleep(0.05)
    print(json.dumps({"restored_body": m.body.decode() if m else None,
                      "redelivered": bool(m and m.delivery_info.get("redelivered"))}))
