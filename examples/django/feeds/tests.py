"""Tests of the feeds app: the post_save hooks, reading the progress, the views and the command.

They run on Celery's in-memory transport (memory://) and result backend (cache+memory://): messages
are really serialized, routed by task_routes and published, then read back from the queue the
configuration names, so no RabbitMQ or Redis is needed (the Go end-to-end test, django_test.go,
runs the same code against the real ones and the Go worker).
"""
import contextlib
import fnmatch
import io
import json
import os
import tempfile

import yaml
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.test import TestCase, TransactionTestCase
from kombu import pools as kombu_pools
from kombu.transport import memory

from forumads_site import celeryconfig
from forumads_site.celery import app

from .models import FeedImport, FeedSource
from .progress import task_status

_saved_env = {}


def _reset_pools():
    """Drop the app's broker connections so the next send connects to the current broker_url."""
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    if "amqp" in app.__dict__:
        app.amqp._producer_pool = None
    # Celery takes its producer pool from kombu's process-wide registry, keyed by the broker URL:
    # without this, the pool closed above is found again when a test returns to memory://.
    kombu_pools.reset()


def setUpModule():
    # Celery reads these before its settings, at every connection.
    for k, v in (("CELERY_BROKER_URL", "memory://"), ("CELERY_RESULT_BACKEND", "cache+memory://")):
        _saved_env[k] = os.environ.get(k)
        os.environ[k] = v
    _reset_pools()
    if hasattr(app._local, "backend"):
        del app._local.backend


def tearDownModule():
    for k, v in _saved_env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    _reset_pools()


@contextlib.contextmanager
def broker(url):
    """Send through another broker (without publish retries) for the block."""
    old, retry = os.environ["CELERY_BROKER_URL"], app.conf.task_publish_retry
    _reset_pools()
    os.environ["CELERY_BROKER_URL"], app.conf.task_publish_retry = url, False
    try:
        yield
    finally:
        _reset_pools()
        os.environ["CELERY_BROKER_URL"], app.conf.task_publish_retry = old, retry


def configured_queue(task):
    """The queue the configuration file routes task to, read with plain YAML and fnmatch (not with
    the code under test): the first matching task_routes entry in file order."""
    with open(celeryconfig.config_path()) as f:
        routes = yaml.safe_load(f)["task_routes"]
    for entry in routes if isinstance(routes, list) else [routes]:
        for pattern, dest in entry.items():
            if pattern == task or ("*" in pattern and fnmatch.fnmatchcase(task, pattern)):
                return dest if isinstance(dest, str) else dest["queue"]
    raise AssertionError(f"{task} is not routed by {celeryconfig.config_path()}")


def drain(queue):
    """Every message waiting in the in-memory queue: [(headers, (args, kwargs, embed), delivery_info)]."""
    out = []
    with app.connection_for_read() as conn:
        ch = conn.default_channel
        while True:
            m = ch.basic_get(queue, no_ack=True)
            if m is None:
                return out
            out.append((m.headers, m.decode(), m.delivery_info))


class MemoryBrokerMixin:
    """Empties the in-memory queues and result store before each test."""

    def setUp(self):
        super().setUp()
        for q in list(memory.Channel.queues.values()):
            q.queue.clear()
        self.import_queue = configured_queue("ads.import_feed")
        self.ads_queue = configured_queue("ads.score")

    def store(self, task_id, state, result):
        app.backend.store_result(task_id, result, state)

    def new_source(self, path="/srv/feeds/a.csv", name="feed A"):
        with self.captureOnCommitCallbacks(execute=True):
            return FeedSource.objects.create(name=name, url_or_path=path)


class ImportOnSaveTests(MemoryBrokerMixin, TestCase):
    def test_import_is_sent_after_commit_to_the_configured_queue(self):
        with self.captureOnCommitCallbacks(execute=False) as hooks:
            src = FeedSource.objects.create(name="feed A", url_or_path="/srv/feeds/a.csv")
        self.assertEqual(drain(self.import_queue), [], "nothing may be sent before the row commits")
        self.assertEqual(src.last_task_id, "")
        self.assertEqual(len(hooks), 1)

        hooks[0]()  # the commit
        msgs = drain(self.import_queue)
        self.assertEqual(len(msgs), 1)
        headers, (args, kwargs, _embed), delivery = msgs[0]
        self.assertEqual(headers["task"], "ads.import_feed")
        self.assertEqual(args, ["/srv/feeds/a.csv"])
        self.assertEqual(kwargs, {"score": False})
        self.assertEqual(delivery["routing_key"], self.import_queue)
        src.refresh_from_db()
        self.assertEqual(src.last_task_id, headers["id"])
        self.assertEqual(src.enqueue_error, "")
        imp = FeedImport.objects.get(task_id=headers["id"])
        self.assertEqual((imp.source_id, imp.state, imp.finished), (src.pk, "PENDING", None))
        self.assertEqual(drain(self.ads_queue), [], "ads.score is only sent after a successful import")

    def test_saving_again_without_changing_the_source_sends_nothing(self):
        src = self.new_source()
        first = drain(self.import_queue)
        self.assertEqual(len(first), 1)
        for obj in (src, FeedSource.objects.get(pk=src.pk)):
            obj.name = "renamed"
            with self.captureOnCommitCallbacks(execute=True) as hooks:
                obj.save()
            self.assertEqual(hooks, [])
        self.assertEqual(drain(self.import_queue), [])

    def test_changing_the_source_imports_it_again(self):
        src = self.new_source()
        drain(self.import_queue)
        src = FeedSource.objects.get(pk=src.pk)
        src.url_or_path = "https://feeds.example.com/b.csv"
        with self.captureOnCommitCallbacks(execute=True):
            src.save()
        msgs = drain(self.import_queue)
        self.assertEqual([m[1][0] for m in msgs], [["https://feeds.example.com/b.csv"]])
        src.refresh_from_db()
        self.assertEqual(src.last_task_id, msgs[0][0]["id"])
        self.assertEqual(src.imports.count(), 2)

    def test_an_unreachable_broker_is_recorded_not_swallowed(self):
        with broker("amqp://guest:guest@127.0.0.1:1//"), self.assertLogs("feeds.sending", "ERROR"):
            src = self.new_source()
        src.refresh_from_db()
        self.assertEqual(src.last_task_id, "")
        self.assertIn("cannot send ads.import_feed", src.enqueue_error)
        self.assertEqual(FeedImport.objects.count(), 0)


class RollbackTests(MemoryBrokerMixin, TransactionTestCase):
    def test_a_rolled_back_save_sends_nothing(self):
        with self.assertRaises(RuntimeError):
            with transaction.atomic():
                FeedSource.objects.create(name="feed A", url_or_path="/srv/feeds/a.csv")
                raise RuntimeError("rollback")
        self.assertEqual(FeedSource.objects.count(), 0)
        self.assertEqual(drain(self.import_queue), [])

    def test_wait_follows_the_import_to_its_end(self):
        # The import finished before the command polls: --wait records it and sends ads.score.
        summary = {"run_id": 3, "rows_total": 4, "rows_ok": 4, "rows_failed": 0}
        real_send = app.send_task

        def send_and_finish(name, *args, **kwargs):
            r = real_send(name, *args, **kwargs)
            if name == "ads.import_feed":
                self.store(r.id, "SUCCESS", summary)
            return r

        with tempfile.NamedTemporaryFile(suffix=".csv") as f, \
                contextlib.ExitStack() as stack:
            app.send_task = send_and_finish
            stack.callback(setattr, app, "send_task", real_send)
            err = io.StringIO()
            call_command("enqueue_import", f.name, "--wait", stdout=io.StringIO(), stderr=err)
        self.assertIn(json.dumps(summary, sort_keys=True), err.getvalue())
        self.assertEqual(len(drain(self.ads_queue)), 1)
        self.assertEqual(FeedImport.objects.get().state, "SUCCESS")

    def test_autocommit_save_sends_at_once(self):
        src = FeedSource.objects.create(name="feed A", url_or_path="/srv/feeds/a.csv")
        msgs = drain(self.import_queue)
        self.assertEqual(len(msgs), 1)
        self.assertEqual(FeedSource.objects.get(pk=src.pk).last_task_id, msgs[0][0]["id"])


class ScoreAfterImportTests(MemoryBrokerMixin, TestCase):
    def import_for(self, src):
        return FeedImport.objects.get(task_id=src.last_task_id)

    def test_a_successful_import_that_changed_rows_sends_score_once(self):
        src = self.new_source()
        drain(self.import_queue)
        summary = {"run_id": 7, "rows_total": 20, "rows_ok": 19, "rows_failed": 1}
        self.store(src.last_task_id, "SUCCESS", summary)
        for _ in range(2):  # the second poll finds the import recorded already
            with self.captureOnCommitCallbacks(execute=True):
                resp = self.client.get(f"/imports/{src.last_task_id}.json")
            self.assertEqual(resp.status_code, 200)
        doc = resp.json()
        self.assertEqual((doc["state"], doc["current"], doc["total"], doc["result"]), ("SUCCESS", 20, 20, summary))
        msgs = drain(self.ads_queue)
        self.assertEqual(len(msgs), 1)
        headers, (args, kwargs, _), delivery = msgs[0]
        self.assertEqual((headers["task"], args, kwargs), ("ads.score", [], {}))
        self.assertEqual(delivery["routing_key"], self.ads_queue)
        imp = self.import_for(src)
        self.assertEqual((imp.state, imp.rows_total, imp.rows_ok, imp.rows_failed), ("SUCCESS", 20, 19, 1))
        self.assertEqual(imp.score_task_id, headers["id"])
        self.assertEqual(doc["score"], {"task_id": headers["id"], "state": "PENDING"})
        self.assertFalse(doc["done"], "done waits for ads.score")
        self.store(headers["id"], "SUCCESS", {"ads": 3})
        self.assertTrue(self.client.get(f"/imports/{src.last_task_id}.json").json()["done"])

    def test_no_score_without_changed_rows_or_after_a_failure(self):
        cases = [("SUCCESS", {"run_id": 1, "rows_total": 3, "rows_ok": 0, "rows_failed": 3}),
                 ("FAILURE", ValueError("feed: line 2: bad header"))]
        for state, result in cases:
            with self.subTest(state=state):
                src = self.new_source()
                drain(self.import_queue)
                self.store(src.last_task_id, state, result)
                with self.captureOnCommitCallbacks(execute=True) as hooks:
                    doc = self.client.get(f"/imports/{src.last_task_id}.json").json()
                self.assertEqual(hooks, [])
                self.assertEqual(drain(self.ads_queue), [])
                self.assertTrue(doc["done"])
                self.assertIsNone(doc["score"])
                self.assertEqual(self.import_for(src).state, state)


class ProgressTests(MemoryBrokerMixin, TestCase):
    def test_states_as_the_json_view_shows_them(self):
        cases = [
            ("pending", None, None, {"state": "PENDING", "ready": False, "current": None, "total": None}),
            ("progress", "PROGRESS", {"current": 5, "total": 20},
             {"state": "PROGRESS", "ready": False, "current": 5, "total": 20}),
            ("started", "STARTED", {"pid": 1, "hostname": "w@h"}, {"state": "STARTED", "ready": False}),
            ("success", "SUCCESS", {"run_id": 1, "rows_total": 2, "rows_ok": 2, "rows_failed": 0},
             {"state": "SUCCESS", "ready": True, "current": 2, "total": 2}),
            ("failure", "FAILURE", KeyError("boom"), {"state": "FAILURE", "ready": True, "error": "KeyError: 'boom'"}),
            ("bad progress", "PROGRESS", {"current": "5", "total": -1},
             {"state": "PROGRESS", "current": None,
              "error": "malformed progress (want {current, total} counts): {'current': '5', 'total': -1}"}),
            ("progress not a dict", "PROGRESS", [1, 2], {"state": "PROGRESS", "current": None}),
            ("success without summary", "SUCCESS", 42, {"state": "SUCCESS", "ready": True, "result": 42}),
        ]
        for label, state, result, want in cases:
            with self.subTest(label):
                src = self.new_source()
                if state:
                    self.store(src.last_task_id, state, result)
                resp = self.client.get(f"/imports/{src.last_task_id}.json")
                self.assertEqual(resp.status_code, 200)
                doc = resp.json()
                for k, v in want.items():
                    self.assertEqual(doc[k], v, k)
                self.assertEqual(doc["source"]["url_or_path"], "/srv/feeds/a.csv")
                if label in ("bad progress", "progress not a dict", "success without summary"):
                    self.assertIn("error", doc)

    def test_html_page_draws_a_celery_progress_bar(self):
        src = self.new_source()
        self.store(src.last_task_id, "PROGRESS", GO_PROGRESS)
        resp = self.client.get(f"/imports/{src.last_task_id}/")
        self.assertEqual(resp.status_code, 200)
        html = resp.content.decode()
        # celery-progress's markup, its script, and its view's URL for this task.
        self.assertIn('id="progress-bar" class="progress-bar"', html)
        self.assertIn('aria-valuenow="35"', html)
        self.assertIn("width: 35%;", html)
        self.assertIn('<div id="progress-bar-message">7 of 20 processed.</div>', html)
        self.assertIn('<script src="/static/celery_progress/celery_progress.js"></script>', html)
        self.assertIn(f'const progressUrl = "/celery-progress/{src.last_task_id}/";', html)
        self.assertIn("CeleryProgressBar.initProgressBar(progressUrl", html)
        self.assertIn("PROGRESS", html)
        self.assertIn('<meta http-equiv="refresh"', html, "without JavaScript the page refreshes itself")
        self.assertIn(f"/imports/{src.last_task_id}.json", html)
        self.store(src.last_task_id, "FAILURE", RuntimeError("line 3: bid must be positive"))
        html = self.client.get(f"/imports/{src.last_task_id}/").content.decode()
        self.assertIn("RuntimeError: line 3: bid must be positive", html)
        self.assertIn("Uh-Oh, something went wrong!", html)
        self.assertNotIn('<meta http-equiv="refresh"', html, "a finished import's page stops refreshing")

    def test_initial_bar(self):
        from .views import BAR_COLORS, initial_bar
        cases = [
            ("pending", {"state": "PENDING", "ready": False, "current": None, "total": None}, "0", "progress",
             "Waiting for task to start..."),
            ("started", {"state": "STARTED", "ready": False, "current": None, "total": None}, "0", "progress", "Task started..."),
            ("progress", {"state": "PROGRESS", "ready": False, "current": 2, "total": 3}, "66.67", "progress", "2 of 3 processed."),
            ("success", {"state": "SUCCESS", "ready": True, "current": 3, "total": 3, "result": {}}, "100", "success", "Success!"),
            ("failure", {"state": "FAILURE", "ready": True, "current": None, "total": None, "error": "FeedImportError: x"},
             "100", "error", "Uh-Oh, something went wrong! FeedImportError: x"),
            ("success without summary", {"state": "SUCCESS", "ready": True, "current": None, "total": None, "error": "not a summary"},
             "100", "error", "Uh-Oh, something went wrong! not a summary"),
        ]
        for label, doc, percent, color, message in cases:
            with self.subTest(label):
                self.assertEqual(initial_bar(doc), {"percent": percent, "color": BAR_COLORS[color], "message": message})

    def test_unknown_and_invalid_task_ids(self):
        cases = [("unknown", "6f1c0000-0000-0000-0000-000000000000", 404, "no import was sent"),
                 ("invalid", "-bad id!", 400, "invalid task id")]
        for label, task_id, code, msg in cases:
            with self.subTest(label):
                resp = self.client.get(f"/imports/{task_id}.json")
                self.assertEqual(resp.status_code, code)
                self.assertIn(msg, resp.json()["error"])
                resp = self.client.get(f"/imports/{task_id}/")
                self.assertEqual(resp.status_code, code)
                self.assertIn(msg, resp.content.decode())

    def test_an_unreadable_result_is_reported(self):
        # A stored FAILURE whose exception type is not an exception class: Celery refuses to build it.
        app.backend.set(app.backend.get_key_for_task("t-bad"),
                        json.dumps({"status": "FAILURE", "task_id": "t-bad",
                                    "result": {"exc_type": "int", "exc_module": "builtins", "exc_message": []}}))
        st = task_status("t-bad")
        self.assertEqual(st["state"], "UNKNOWN")
        self.assertIn("the stored result cannot be read", st["error"])

    def test_index_lists_sources(self):
        src = self.new_source()
        html = self.client.get("/").content.decode()
        self.assertIn(f"/imports/{src.last_task_id}/", html)


#: The PROGRESS meta the Go worker's ads.import_feed stores (tasks/ads.Progress): celery-progress's.
GO_PROGRESS = {"pending": False, "current": 7, "total": 20, "percent": 35, "description": "feed rows checked and applied"}


class CeleryProgressViewTests(MemoryBrokerMixin, TestCase):
    """celery-progress's own view (celery_progress.urls at /celery-progress/) on what the Go worker
    stores: the PROGRESS meta, the import's summary, a FeedImportError."""

    def get(self, task_id):
        resp = self.client.get(f"/celery-progress/{task_id}/")
        self.assertEqual(resp.status_code, 200)
        self.assertEqual(resp["Content-Type"], "application/json")
        self.assertIn("no-cache", resp["Cache-Control"])
        return resp.json()

    def test_states_as_celery_progress_reads_them(self):
        summary = {"run_id": 1, "source": "/srv/feeds/a.csv", "status": "succeeded", "rows_total": 20, "rows_ok": 19,
                   "rows_failed": 1, "created": 19, "updated": 0, "unchanged": 0, "notices": 0, "kinds": {}}
        done = {"pending": False, "current": 100, "total": 100, "percent": 100}
        cases = [
            ("pending", None, None, {"state": "PENDING", "complete": False, "success": None,
                                     "progress": {"pending": True, "current": 0, "total": 100, "percent": 0}}),
            ("progress", "PROGRESS", GO_PROGRESS, {"state": "PROGRESS", "complete": False, "success": None, "progress": GO_PROGRESS}),
            ("success", "SUCCESS", summary, {"state": "SUCCESS", "complete": True, "success": True, "progress": done,
                                             "result": summary}),
            ("failure", "FAILURE", RuntimeError("line 3: bid must be positive"),
             {"state": "FAILURE", "complete": True, "success": False, "progress": done, "result": "line 3: bid must be positive"}),
        ]
        for label, state, result, want in cases:
            with self.subTest(label):
                src = self.new_source()
                if state:
                    self.store(src.last_task_id, state, result)
                self.assertEqual(self.get(src.last_task_id), want)

    def test_unknown_and_invalid_task_ids(self):
        # Celery cannot tell an unknown id from a task still queued: celery-progress answers PENDING
        # ("Waiting for task to start..."), as for any id. The import page itself is a 404 for an id
        # no import was sent with (ProgressTests.test_unknown_and_invalid_task_ids), so it never
        # shows a bar that waits forever.
        self.assertEqual(self.get("6f1c0000-0000-0000-0000-000000000000")["progress"]["pending"], True)
        for bad in ("bad%20id", "a.b", "..", "x/y"):
            with self.subTest(bad):
                self.assertEqual(self.client.get(f"/celery-progress/{bad}/").status_code, 404)

    def test_a_task_id_celery_progress_cannot_take_is_followed_without_its_bar(self):
        src = self.new_source()
        FeedImport.objects.filter(task_id=src.last_task_id).update(task_id="job.1:2")
        resp = self.client.get("/imports/job.1:2/")
        self.assertEqual(resp.status_code, 200)
        html = resp.content.decode()
        self.assertIn("const progressUrl = null;", html)
        self.assertIn("celery-progress cannot follow this task id", html)


class EnqueueImportCommandTests(MemoryBrokerMixin, TransactionTestCase):
    """The command commits its own transaction, so these run outside TestCase's."""

    def test_prints_the_task_id_of_the_import_it_sent(self):
        with tempfile.NamedTemporaryFile(suffix=".csv") as f:
            out = io.StringIO()
            call_command("enqueue_import", f.name, stdout=out, stderr=io.StringIO())
            task_id = out.getvalue().strip()
            msgs = drain(self.import_queue)
            self.assertEqual([(m[0]["id"], m[1][0]) for m in msgs], [(task_id, [f.name])])
            self.assertEqual(FeedSource.objects.get().last_task_id, task_id)

    def test_bad_sources_are_refused(self):
        cases = [("missing file", "/nonexistent/feed.csv", "no such file"),
                 ("ftp", "ftp://example.com/f.csv", "Only http:// and https://"),
                 ("no host", "https:///f.csv", "has no host")]
        for label, source, msg in cases:
            with self.subTest(label):
                with self.assertRaisesMessage(CommandError, msg):
                    call_command("enqueue_import", source, stdout=io.StringIO())
        self.assertEqual(FeedSource.objects.count(), 0)
        self.assertEqual(drain(self.import_queue), [])

    def test_wait_follows_the_import_to_its_end(self):
        # The import finished before the command polls: --wait records it and sends ads.score.
        summary = {"run_id": 3, "rows_total": 4, "rows_ok": 4, "rows_failed": 0}
        real_send = app.send_task

        def send_and_finish(name, *args, **kwargs):
            r = real_send(name, *args, **kwargs)
            if name == "ads.import_feed":
                self.store(r.id, "SUCCESS", summary)
            return r

        with tempfile.NamedTemporaryFile(suffix=".csv") as f, \
                contextlib.ExitStack() as stack:
            app.send_task = send_and_finish
            stack.callback(setattr, app, "send_task", real_send)
            err = io.StringIO()
            call_command("enqueue_import", f.name, "--wait", stdout=io.StringIO(), stderr=err)
        self.assertIn(json.dumps(summary, sort_keys=True), err.getvalue())
        self.assertEqual(len(drain(self.ads_queue)), 1)
        self.assertEqual(FeedImport.objects.get().state, "SUCCESS")
