"""Makes and reads django-celery-beat schedules through its real models, for beatdb's tests.

Run from examples/django (the Django project) with DJANGO_SETTINGS_MODULE and DJANGO_DATABASE_URL
set; stdin is a JSON list of operations, stdout a JSON list of their results:

    {"op": "interval", "name", "task", "every", "period", ...PeriodicTask fields}
    {"op": "crontab", "name", "task", "minute", "hour", "day_of_week", "day_of_month",
     "month_of_year", "timezone", ...}
    {"op": "clocked", "name", "task", "clocked_time" (ISO 8601), ...}
    {"op": "solar", "name", "task", "event", "latitude", "longitude", ...}
    {"op": "update", "name", ...PeriodicTask fields}   set them and save(), as the admin does
    {"op": "disable", "name"}   PeriodicTask.save() with enabled=False, as the admin does
    {"op": "enable", "name"}
    {"op": "get", "name"}       the row's fields
    {"op": "last_update"}
"""
import json
import os
import sys

import django

sys.path.insert(0, os.getcwd())
django.setup()

from django.utils.dateparse import parse_datetime  # noqa: E402
from django_celery_beat.models import (ClockedSchedule, CrontabSchedule,  # noqa: E402
                                       IntervalSchedule, PeriodicTask, PeriodicTasks,
                                       SolarSchedule)

TASK_FIELDS = ("args", "kwargs", "queue", "exchange", "routing_key", "priority", "headers",
               "expire_seconds", "one_off", "enabled", "description")
TIME_FIELDS = ("start_time", "expires")


def task_fields(op):
    fields = {k: op[k] for k in TASK_FIELDS if k in op}
    for k in TIME_FIELDS:
        if op.get(k):
            fields[k] = parse_datetime(op[k])
    return fields


def iso(t):
    return t.isoformat() if t else None


def run(op):
    kind = op["op"]
    if kind == "interval":
        sched, _ = IntervalSchedule.objects.get_or_create(every=op["every"], period=op["period"])
        t = PeriodicTask.objects.create(name=op["name"], task=op["task"], interval=sched, **task_fields(op))
        return {"id": t.id}
    if kind == "crontab":
        sched = CrontabSchedule.objects.create(
            minute=op.get("minute", "*"), hour=op.get("hour", "*"), day_of_week=op.get("day_of_week", "*"),
            day_of_month=op.get("day_of_month", "*"), month_of_year=op.get("month_of_year", "*"),
            timezone=op.get("timezone", "UTC"))
        t = PeriodicTask.objects.create(name=op["name"], task=op["task"], crontab=sched, **task_fields(op))
        return {"id": t.id}
    if kind == "clocked":
        sched = ClockedSchedule.objects.create(clocked_time=parse_datetime(op["clocked_time"]))
        t = PeriodicTask.objects.create(name=op["name"], task=op["task"], clocked=sched, one_off=True,
                                        **task_fields(op))
        return {"id": t.id}
    if kind == "solar":
        sched = SolarSchedule.objects.create(event=op["event"], latitude=op["latitude"], longitude=op["longitude"])
        t = PeriodicTask.objects.create(name=op["name"], task=op["task"], solar=sched, **task_fields(op))
        return {"id": t.id}
    if kind == "update":
        t = PeriodicTask.objects.get(name=op["name"])
        for k, v in task_fields(op).items():
            setattr(t, k, v)
        t.save()
        return {"id": t.id}
    if kind in ("disable", "enable"):
        t = PeriodicTask.objects.get(name=op["name"])
        t.enabled = kind == "enable"
        t.save()
        return {"id": t.id}
    if kind == "get":
        t = PeriodicTask.objects.get(name=op["name"])
        return {"id": t.id, "enabled": t.enabled, "total_run_count": t.total_run_count,
                "last_run_at": iso(t.last_run_at), "one_off": t.one_off, "date_changed": iso(t.date_changed)}
    if kind == "last_update":
        return {"last_update": iso(PeriodicTasks.last_change())}
    raise ValueError(f"unknown op {kind!r}")


print(json.dumps([run(op) for op in json.load(sys.stdin)]))
