"""The project's Celery app. It only sends: every task runs in the Go worker.

The settings come from the repository's celeryconfig.yaml (FORUMADS_CONFIG names another file), the
file the Go worker and beat read, so task_routes sends ads.import_feed to the import queue and the
other ads.* tasks to the ads queue without any Python task being defined here.
"""
import os

from celery import Celery

from . import celeryconfig

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "forumads_site.settings")

app = Celery("forumads_site")
app.conf.update(celeryconfig.load())
