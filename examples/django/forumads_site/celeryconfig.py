"""Celery settings for the Django side, read from the repository's celeryconfig.yaml.

The Go worker and beat read the same file, so Django routes every task exactly where they expect it.
Only the settings a *sending* app needs are taken; the rest of the file (worker, beat and ads
settings) is ignored. ``task_routes`` keeps Celery's own format and meaning, which the Go programs
share: each mapping is a router (an exact task name first, then the first glob in file order that
matches, globs as fnmatch), and a list of mappings is tried in order.

Environment:
    FORUMADS_CONFIG        the file to read (default: celeryconfig.yaml at the repository root)
    CELERY_BROKER_URL      overrides broker_url
    CELERY_RESULT_BACKEND  overrides result_backend

Every mistake raises ConfigError naming the file and the setting.
"""
import os
import pathlib
import re

import yaml
from kombu import Exchange, Queue

__all__ = ["ConfigError", "DEFAULT_PATH", "config_path", "load", "parse", "translate_routes"]

#: The repository's celeryconfig.yaml (examples/django/forumads_site/ is three levels below it).
DEFAULT_PATH = pathlib.Path(__file__).resolve().parents[3] / "celeryconfig.yaml"

#: The keys a route mapping may have (the ones the Go programs read).
ROUTE_KEYS = ("queue", "exchange", "routing_key", "priority")

# Settings copied as they are, with the YAML types they must have.
_STR, _BOOL, _NUM, _STRLIST = "a string", "true or false", "a number", "a list of strings"
_SETTINGS = {
    "broker_url": (_STR, False),
    "result_backend": (_STR, True),
    "task_serializer": (_STR, False),
    "result_serializer": (_STR, False),
    "accept_content": (_STRLIST, False),
    "result_accept_content": (_STRLIST, True),
    "result_expires": (_NUM, True),
    "task_default_queue": (_STR, False),
    "task_default_exchange": (_STR, False),
    "task_default_exchange_type": (_STR, False),
    "task_default_routing_key": (_STR, False),
    "task_create_missing_queues": (_BOOL, False),
    "task_queue_max_priority": (_NUM, True),
    "timezone": (_STR, False),
    "enable_utc": (_BOOL, False),
}


class ConfigError(ValueError):
    """A configuration file that cannot be used, with the reason."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a mapping naming the same key twice (PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                dup = key in seen
            except TypeError:  # an unhashable key: construct_mapping reports it
                dup = False
            if dup:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def config_path(environ=None):
    """The file to read: FORUMADS_CONFIG, else DEFAULT_PATH."""
    environ = os.environ if environ is None else environ
    return environ.get("FORUMADS_CONFIG") or str(DEFAULT_PATH)


def load(path=None, environ=None):
    """Read the Celery settings of a sending app from path (default config_path()).

    Returns a dict for ``app.conf.update``; raises ConfigError.
    """
    environ = os.environ if environ is None else environ
    path = path or config_path(environ)
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the configuration: {e.strerror or e}") from e
    conf = parse(text, source=str(path))
    for env, name in (("CELERY_BROKER_URL", "broker_url"), ("CELERY_RESULT_BACKEND", "result_backend")):
        if environ.get(env):
            conf[name] = environ[env]
    return conf


def parse(text, source="<config>"):
    """Parse a configuration document (bytes or str) into Celery settings; raises ConfigError."""
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML: {e}") from e
    except (ValueError, TypeError, RecursionError) as e:  # e.g. undecodable bytes, deep nesting
        raise ConfigError(f"{source}: not valid YAML: {e}") from e
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: the configuration must be a mapping of setting names to values")
    conf = {}
    for name, (kind, nullable) in _SETTINGS.items():
        if name not in doc:
            continue
        value = doc[name]
        if value is None and nullable:
            conf[name] = None
            continue
        if not _is(kind, value):
            raise ConfigError(f"{source}: {name} must be {kind}, not {_describe(value)}")
        conf[name] = value
    if "task_routes" in doc:
        try:
            conf["task_routes"] = translate_routes(doc["task_routes"])
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
    if doc.get("task_queues") is not None:
        try:
            conf["task_queues"] = _queues(doc["task_queues"])
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
    return conf


def translate_routes(value):
    """Translate task_routes as the YAML file has it into Celery's task_routes.

    value is a mapping (in file order) or a list of mappings, from a task name or glob to a queue
    name or to {queue, exchange, routing_key, priority}. The result is a list of dicts, one per
    mapping in file order, each of which Celery makes a MapRoute, as the Go programs read them.
    """
    if value is None:
        return []
    if isinstance(value, dict):
        maps = [value]
    elif isinstance(value, list):
        maps = value
    else:
        raise ConfigError(f"task_routes must be a mapping of task name patterns to queues, not {_describe(value)}")
    routes = []
    for i, m in enumerate(maps):
        if not isinstance(m, dict):
            raise ConfigError(f"task_routes[{i}] must be a mapping, not {_describe(m)}")
        router = {}
        for pattern, dest in m.items():
            if not isinstance(pattern, str) or not pattern:
                raise ConfigError(f"task_routes: the pattern {pattern!r} must be a non-empty string")
            router[_pattern(pattern)] = _route(pattern, dest)
        if router:
            routes.append(router)
    return routes


def _pattern(pattern):
    """A task_routes key: "re:<regex>" becomes a compiled regex (Celery's MapRoute matches it with
    re.match, as the Go router does); any other key is a task name or a glob, as Celery reads it."""
    if pattern.startswith("re:"):
        try:
            return re.compile(pattern[3:])
        except re.error as e:
            raise ConfigError(f"task_routes[{pattern!r}]: not a regular expression: {e}") from None
    return pattern


def _route(pattern, dest):
    where = f"task_routes[{pattern!r}]"
    if isinstance(dest, str):
        if not dest:
            raise ConfigError(f"{where}: the queue name is empty")
        return {"queue": dest}
    if not isinstance(dest, dict):
        raise ConfigError(f"{where} must be a queue name or a mapping, not {_describe(dest)}")
    unknown = sorted(str(k) for k in dest if k not in ROUTE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(ROUTE_KEYS)})")
    route = {}
    for key in ("queue", "exchange", "routing_key"):
        v = dest.get(key)
        if v is None:
            continue
        if not isinstance(v, str):
            raise ConfigError(f"{where}.{key} must be a string, not {_describe(v)}")
        if v:
            route[key] = v
    if dest.get("priority") is not None:
        p = dest["priority"]
        if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= 255:
            raise ConfigError(f"{where}.priority must be an integer from 0 to 255, not {_describe(p)}")
        route["priority"] = p
    if "queue" not in route and "exchange" not in route:
        raise ConfigError(f"{where}: a route needs a queue (or an exchange)")
    return route


def _queues(value):
    """task_queues: a list of {name, exchange, exchange_type, routing_key, queue_arguments, max_priority}."""
    if not isinstance(value, list):
        raise ConfigError(f"task_queues must be a list of queues, not {_describe(value)}")
    known = ("name", "exchange", "exchange_type", "routing_key", "queue_arguments", "max_priority")
    queues = []
    for i, q in enumerate(value):
        where = f"task_queues[{i}]"
        if not isinstance(q, dict):
            raise ConfigError(f"{where} must be a mapping, not {_describe(q)}")
        unknown = sorted(str(k) for k in q if k not in known)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(known)})")
        for key in ("name", "exchange", "exchange_type", "routing_key"):
            if q.get(key) is not None and not isinstance(q[key], str):
                raise ConfigError(f"{where}.{key} must be a string, not {_describe(q[key])}")
        name = q.get("name")
        if not name:
            raise ConfigError(f"{where}: a queue needs a name")
        args = q.get("queue_arguments")
        if args is not None and not isinstance(args, dict):
            raise ConfigError(f"{where}.queue_arguments must be a mapping, not {_describe(args)}")
        prio = q.get("max_priority")
        if prio is not None and (isinstance(prio, bool) or not isinstance(prio, int) or not 0 <= prio <= 255):
            raise ConfigError(f"{where}.max_priority must be an integer from 0 to 255, not {_describe(prio)}")
        exchange = q.get("exchange") or name
        queues.append(Queue(name, Exchange(exchange, type=q.get("exchange_type") or "direct"),
                            routing_key=q.get("routing_key") or name,
                            queue_arguments=args or None, max_priority=prio))
    return queues


def _is(kind, v):
    if kind == _STR:
        return isinstance(v, str)
    if kind == _BOOL:
        return isinstance(v, bool)
    if kind == _NUM:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _describe(v):
    text = repr(v)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(v).__name__} {text}"
