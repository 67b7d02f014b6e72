"""Route oracle for the Go fuzz test FuzzCeleryRoutes: reads one JSON request per line,
{"yaml": configuration text, "tasks": [task names]}, and answers one JSON line:

    {"ok": true, "routes": {task: route or null}}   the route Celery's own router picks for each
                                                    task from the translated task_routes
    {"ok": false, "error": "..."}                   forumads_site.celeryconfig refused the file
    {"crash": "traceback"}                          anything else (a bug)
"""
import json
import pathlib
import sys
import traceback

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from celery.app.routes import Router, prepare  # noqa: E402

from forumads_site.celeryconfig import ConfigError, parse  # noqa: E402


def answer(req):
    try:
        conf = parse(req["yaml"], source="fuzz.yaml")
    except ConfigError as e:
        return {"ok": False, "error": str(e)}
    router = Router(routes=prepare(conf.get("task_routes", [])))
    return {"ok": True, "routes": {t: router.lookup_route(t) for t in req["tasks"]}}


def main():
    for line in sys.stdin:
        try:
            out = answer(json.loads(line))
        except Exception:
            out = {"crash": traceback.format_exc()}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
