"""The Python side of the django-db tests, through the real Django ORM and Celery 5.2 (see djapp.py
for the environment). Every command prints one JSON document:

    send QUEUE                 send the djr tasks to QUEUE: {"add": id, "add_kwargs": id, "fail": id, ...}
    chord QUEUE N              send chord(djr.add(i, i) for i < N)(djr.sum) to QUEUE: {"body": id, "group": id}
    counter GROUP              the group's ChordCounter row ({} when there is none)
    restore GROUP              GroupResult.restore(GROUP): {"ids": [...]} or {"ids": null}
    rows ID...                 the TaskResult rows of the ids, as the ORM reads them (field: value)
    get TIMEOUT ID...          AsyncResult(id).get() with result_backend='django-db': value or exception
    admin ID...                log a superuser into the Django admin and list TaskResult: which ids show
"""
import json
import sys

from djapp import app  # sets Django up

from celery.result import AsyncResult  # noqa: E402


def send(queue):
    ids = {}
    for key, name, args, kwargs in [
        ("add", "djr.add", [2, 3], {}),
        ("add_kwargs", "djr.add", [], {"x": 20, "y": 22}),
        ("fail", "djr.fail", ["boom"], {}),
        ("retry", "djr.retry", ["again"], {}),
        ("ignore", "djr.ignore", [], {}),
    ]:
        ids[key] = app.send_task(name, args=args, kwargs=kwargs, queue=queue).id
    return ids


def chord(queue, n):
    from celery import chord as make_chord

    header = [app.signature("djr.add", args=(i, i), queue=queue) for i in range(n)]
    res = make_chord(header)(app.signature("djr.sum", queue=queue))
    return {"body": res.id, "group": res.parent.id}


def counter(group_id):
    from django_celery_results.models import ChordCounter

    c = ChordCounter.objects.filter(group_id=group_id).first()
    return {} if c is None else {"count": c.count, "sub_tasks": c.sub_tasks}


def restore(group_id):
    g = app.GroupResult.restore(group_id)
    return {"ids": None if g is None else [r.id for r in g.results]}


def rows(ids):
    from django_celery_results.models import TaskResult

    out = {}
    for r in TaskResult.objects.filter(task_id__in=ids).values():
        r = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
        out[r["task_id"]] = r
    return out


def get(timeout, ids):
    out = {}
    for task_id in ids:
        res = AsyncResult(task_id, app=app)
        try:
            out[task_id] = {"state": res.state, "value": res.get(timeout=timeout, interval=0.1)}
        except Exception as e:  # the Go failure, rebuilt by Celery
            out[task_id] = {"state": res.state, "exc_type": type(e).__name__, "exc_module": type(e).__module__,
                            "args": list(e.args), "traceback": res.traceback}
    return out


def admin(ids):
    from django.contrib.auth.models import User
    from django.test import Client

    user, _ = User.objects.get_or_create(username="djr-admin", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(user)
    resp = client.get("/admin/django_celery_results/taskresult/")
    page = resp.content.decode()
    shown = {task_id: task_id in page for task_id in ids}
    detail = {}
    from django_celery_results.models import TaskResult

    for r in TaskResult.objects.filter(task_id__in=ids):
        d = client.get(f"/admin/django_celery_results/taskresult/{r.pk}/change/")
        detail[r.task_id] = d.status_code
    return {"status": resp.status_code, "shown": shown, "detail": detail}


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "send":
        out = send(args[0])
    elif cmd == "chord":
        out = chord(args[0], int(args[1]))
    elif cmd == "counter":
        out = counter(args[0])
    elif cmd == "restore":
        out = restore(args[0])
    elif cmd == "rows":
        out = rows(args)
    elif cmd == "get":
        out = get(float(args[0]), args[1:])
    elif cmd == "admin":
        out = admin(args)
    else:
        raise SystemExit(f"unknown command {cmd!r}")
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv)
