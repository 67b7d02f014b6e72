"""Result writes per second to django-db from Python Celery 5.2 with django-celery-results 2.4:
N SUCCESS results (a new task id each, with result_extended, as a worker stores them) written
through app.backend.store_result, the call the Python worker makes, in one process (a worker
process stores its own results one at a time). DJANGO_DATABASE_URL points the example project
(examples/django, on PYTHONPATH) at the schema. Prints one line:

    python: N writes in S s = R writes/s
"""
import os
import sys
import time
import uuid

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "forumads_site.settings")
django.setup()

from celery import Celery  # noqa: E402
from celery.app.task import Context  # noqa: E402

n = int(sys.argv[1])
app = Celery("bench", broker="memory://")
app.conf.update(result_backend="django-db", result_extended=True)
backend = app.backend
run = uuid.uuid4().hex[:8]
start = time.monotonic()
for i in range(n):
    tid = f"bench-py-{run}-{i}"
    req = Context(id=tid, task="bench.add", args=[2, 3], kwargs={}, argsrepr="[2, 3]", kwargsrepr="{}",
                  hostname="celery@bench", delivery_info={}, properties={})
    backend.store_result(tid, 5, "SUCCESS", request=req)
elapsed = time.monotonic() - start
print(f"python: {n} writes in {elapsed:.2f} s = {n / elapsed:.0f} writes/s")
