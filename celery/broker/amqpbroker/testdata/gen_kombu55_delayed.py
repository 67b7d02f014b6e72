# Records what kombu 5.5's declare_native_delayed_delivery_exchanges_and_queues asks of a channel,
# as golden files for delayed_test.go. Run from the repository root with Debian's Python (kombu 5.2
# provides Exchange/Queue; the module itself is kombu 5.5's source, fetched from celery/kombu):
#   git -C KOMBU show HEAD:kombu/transport/native_delayed_delivery.py > /tmp/ndd_kombu55.py
#   /usr/bin/python3 celery/broker/amqpbroker/testdata/gen_kombu55_delayed.py /tmp/ndd_kombu55.py
import importlib.util
import json
import sys

spec = importlib.util.spec_from_file_location("ndd", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
calls = []


class Recorder:
    def prepare_queue_arguments(self, arguments, **kw):
        return arguments

    def __getattr__(self, name):
        def record(*a, **kw):
            calls.append((name, kw))
            if name == "queue_declare":
                return (kw.get("queue"), 0, 0)
        return record


class Conn:
    def channel(self):
        return Recorder()


keep = {
    "exchange_declare": ("exchange", "type", "durable", "auto_delete"),
    "queue_declare": ("queue", "durable", "auto_delete", "arguments"),
    "queue_bind": ("queue", "exchange", "routing_key"),
    "exchange_bind": ("destination", "source", "routing_key"),
}
for qt in ("quorum", "classic"):
    calls.clear()
    m.declare_native_delayed_delivery_exchanges_and_queues(Conn(), qt)
    out = [dict({"op": name}, **{k: kw.get(k) for k in keep.get(name, ())}) for name, kw in calls]
    with open(f"celery/broker/amqpbroker/testdata/kombu55_delayed_{qt}.json", "w") as f:
        f.write(json.dumps(out, indent=0, sort_keys=True) + "\n")
