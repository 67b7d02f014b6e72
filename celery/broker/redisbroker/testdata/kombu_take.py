"""kombu 5.2 takes one message and dies holding it, for kombu_take_test.go.

    BROKER_URL=redis://... PREFIX=p QUEUE=q python3 kombu_take.py

Takes one message from QUEUE with basic_get(no_ack=False), so that kombu's QoS.append records it
in the unacked hash and index (global_keyprefix PREFIX), prints {"tag": ..., "body": ...} as JSON
and leaves with os._exit, as a killed worker does: no ack, no restore at shutdown.
"""

import json
import os
import sys
import time

from kombu import Connection

conn = Connection(os.environ["BROKER_URL"], transport_options={"global_keyprefix": os.environ["PREFIX"]})
ch = conn.default_channel
m = None
deadline = time.monotonic() + 10
while m is None and time.monotonic() < deadline:
    m = ch.basic_get(os.environ["QUEUE"], no_ack=False)
    if m is None:
        time.sleep(0.05)
print(json.dumps({"tag": m.delivery_tag if m else None, "body": m.body.decode() if m else None}))
sys.stdout.flush()
os._exit(0)
