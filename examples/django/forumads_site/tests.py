"""Tests of celeryconfig: the repository's file, the route translation and its errors."""
import os
import random
import tempfile
import unittest

from celery import Celery

from . import celeryconfig
from .celeryconfig import ConfigError, load, parse, translate_routes


def route(routes, task):
    """(queue, priority) Celery's own router chooses for task with these task_routes."""
    app = Celery("t", set_as_current=False, broker="memory://")
    app.conf.task_routes = routes
    opts = app.amqp.router.route({}, task)
    return opts["queue"].name, opts.get("priority")


class ShippedConfigTests(unittest.TestCase):
    def test_the_repository_file_routes_the_ads_tasks(self):
        conf = load(celeryconfig.DEFAULT_PATH, environ={})
        self.assertEqual(conf["broker_url"], "amqp://guest:guest@127.0.0.1:5672//")
        self.assertEqual(conf["result_backend"], "redis://127.0.0.1:6379/0")
        self.assertEqual(conf["task_routes"], [{"ads.import_feed": {"queue": "ads.import"}, "ads.*": {"queue": "ads"},
                                                "diag.*": {"queue": "celery"}}])
        cases = [("ads.import_feed", "ads.import"), ("ads.score", "ads"), ("ads.warm_cache", "ads"),
                 ("ads.warm_timeseries", "ads"), ("diag.add", "celery"), ("other.task", "celery")]
        for task, queue in cases:
            with self.subTest(task):
                self.assertEqual(route(conf["task_routes"], task)[0], queue)

    def test_environment_overrides_the_file(self):
        env = {"CELERY_BROKER_URL": "amqp://u:p@h:1//", "CELERY_RESULT_BACKEND": "redis://h:2/3"}
        conf = load(celeryconfig.DEFAULT_PATH, environ=env)
        self.assertEqual((conf["broker_url"], conf["result_backend"]), ("amqp://u:p@h:1//", "redis://h:2/3"))

    def test_forumads_config_names_the_file(self):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write("broker_url: memory://\ntask_routes: {ads.*: q1}\n")
        self.addCleanup(os.unlink, f.name)
        conf = load(environ={"FORUMADS_CONFIG": f.name})
        self.assertEqual(conf, {"broker_url": "memory://", "task_routes": [{"ads.*": {"queue": "q1"}}]})


class TranslateRoutesTests(unittest.TestCase):
    def test_exact_name_before_globs_as_celery(self):
        # Celery's MapRoute (and the Go programs) try a mapping's exact names before its globs.
        routes = parse("task_routes:\n  ads.*: wide\n  ads.import_feed: narrow\n")["task_routes"]
        self.assertEqual(route(routes, "ads.import_feed")[0], "narrow")
        self.assertEqual(route(routes, "ads.score")[0], "wide")

    def test_forms(self):
        cases = [
            ("mapping of names", "task_routes: {a.b: q}", "a.b", ("q", None)),
            ("route mapping", "task_routes: {a.*: {queue: q, priority: 7}}", "a.x", ("q", 7)),
            ("list of mappings", "task_routes: [{a.b: q1}, {a.*: q2}]", "a.c", ("q2", None)),
            ("list keeps order", "task_routes: [{a.*: q1}, {a.b: q2}]", "a.b", ("q1", None)),
            ("no match", "task_routes: {a.b: q}", "z", ("celery", None)),
            ("null", "task_routes: null", "a.b", ("celery", None)),
        ]
        for label, text, task, want in cases:
            with self.subTest(label):
                self.assertEqual(route(parse(text)["task_routes"], task), want)

    def test_errors_name_the_setting(self):
        cases = [
            ("task_routes: [1]", "task_routes[0] must be a mapping"),
            ("task_routes: 3", "task_routes must be a mapping"),
            ("task_routes: {a: ''}", "task_routes['a']: the queue name is empty"),
            ("task_routes: {a: [q]}", "task_routes['a'] must be a queue name or a mapping"),
            ("task_routes: {a: {queue: 1}}", "task_routes['a'].queue must be a string"),
            ("task_routes: {a: {queu: q}}", "unknown key(s) queu"),
            ("task_routes: {a: {priority: 1}}", "a route needs a queue"),
            ("task_routes: {a: {queue: q, priority: 300}}", "priority must be an integer from 0 to 255"),
            ("task_routes: {a: {queue: q, priority: true}}", "priority must be an integer"),
            ("task_routes: {a: null}", "must be a queue name or a mapping"),
            ("task_routes: {1: q}", "the pattern 1 must be a non-empty string"),
            ("task_routes: {a: q, a: r}", "found duplicate key 'a'"),
            ("broker_url: [x]", "broker_url must be a string"),
            ("enable_utc: 'yes'", "enable_utc must be true or false"),
            ("accept_content: [json, 1]", "accept_content must be a list of strings"),
            ("- a\n- b", "must be a mapping of setting names"),
            ("a: [", "not valid YAML"),
            ("task_queues: [{name: q, max_priority: 300}]", "task_queues[0].max_priority"),
            ("task_queues: [{exchange: x}]", "task_queues[0]: a queue needs a name"),
            (b"broker_url: \xff\xfe", "not valid YAML"),
        ]
        for text, msg in cases:
            with self.subTest(text):
                with self.assertRaises(ConfigError) as cm:
                    parse(text, source="f.yaml")
                self.assertIn(msg, str(cm.exception))
                self.assertTrue(str(cm.exception).startswith("f.yaml: "))

    def test_a_missing_file_is_an_error(self):
        with self.assertRaisesRegex(ConfigError, "/nonexistent.yaml: cannot read the configuration"):
            load("/nonexistent.yaml", environ={})

    def test_task_queues_keep_their_arguments(self):
        conf = parse("task_queues:\n  - {name: p, max_priority: 10, queue_arguments: {x-queue-mode: lazy}}\n")
        (q,) = conf["task_queues"]
        self.assertEqual((q.name, q.exchange.name, q.routing_key, q.max_priority), ("p", "p", "p", 10))
        self.assertEqual(q.queue_arguments, {"x-queue-mode": "lazy"})  # kombu adds x-max-priority when declaring

    def test_random_structures_translate_or_fail_cleanly(self):
        # A small property test (the Go fuzz target FuzzCeleryRoutes compares with the Go parser).
        rnd = random.Random(20261125)
        atoms = [None, "", "q", "a.*", 0, 7, 300, True, 1.5, [], {}, "x" * 300]

        def value(depth):
            r = rnd.random()
            if depth > 2 or r < 0.5:
                return rnd.choice(atoms)
            if r < 0.75:
                return [value(depth + 1) for _ in range(rnd.randrange(3))]
            keys = ["queue", "exchange", "routing_key", "priority", "a.b", "a.*", "zz"]
            return {rnd.choice(keys): value(depth + 1) for _ in range(rnd.randrange(4))}

        for _ in range(3000):
            v = value(0)
            try:
                routes = translate_routes(v)
            except ConfigError as e:
                self.assertTrue(str(e).startswith("task_routes"), e)
                continue
            for r in routes:
                self.assertGreaterEqual(len(r), 1)
                for dest in r.values():
                    self.assertTrue(set(dest) <= set(celeryconfig.ROUTE_KEYS))
                    self.assertTrue(dest.get("queue") or dest.get("exchange"))
