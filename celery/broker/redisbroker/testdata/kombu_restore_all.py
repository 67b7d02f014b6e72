"""kombu 5.2 restores every unacknowledged message, for kombu_take_test.go.

    BROKER_URL=redis://... UNACKED_PREFIX=p python3 kombu_restore_all.py

Connects with unacked_key, unacked_index_key and unacked_mutex_key named "<p>unacked" and so on
(no global_keyprefix: kombu 5.2.4 does not prefix the key its restore WATCHes), prints "ready",
waits for a line on stdin, then gives back every tag of the unacked hash with kombu's own
QoS.restore_by_tag (WATCH unacked, then MULTI), as a kombu worker does with what it held at
shutdown, and prints how many tags it went through.
"""

import os
import sys

from kombu import Connection

p = os.environ["UNACKED_PREFIX"]
conn = Connection(os.environ["BROKER_URL"], transport_options={
    "unacked_key": p + "unacked", "unacked_index_key": p + "unacked_index", "unacked_mutex_key": p + "unacked_mutex"})
ch = conn.default_channel
tags = ch.client.hkeys(ch.unacked_key)
print("ready", flush=True)
sys.stdin.readline()
for tag in tags:
    ch.qos.restore_by_tag(tag)
print(len(tags), flush=True)
os._exit(0)
