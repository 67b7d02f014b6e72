#!/usr/bin/python3
"""Generate crontab_golden.json with the real Celery (Debian's python3-celery 5.2).

Run from the repository root:  /usr/bin/python3 celery/schedule/testdata/gen_crontab_golden.py

For every spec, Celery's own crontab() parses the fields (or raises: the case is recorded as
invalid); for valid specs, the next run after each start instant is the first whole UTC minute
strictly after it whose minute, hour, day_of_week, day_of_month and month_of_year are all in
crontab's parsed sets (Celery's AND semantics), found by stepping minute by minute.
"""
import datetime as dt
import json
import os

from celery.schedules import crontab

SPECS = [
    {},
    {"minute": "*/15"},
    {"minute": "0", "hour": "*/2", "day_of_week": "mon-fri"},
    {"minute": "30", "hour": "2"},
    {"minute": "0", "hour": "0", "day_of_week": "fri-mon"},
    {"minute": "5", "hour": "3", "day_of_month": "13", "day_of_week": "fri"},
    {"minute": "0", "hour": "12", "day_of_month": "29", "month_of_year": "2"},
    {"minute": "10-50/20", "hour": "22-2"},
    {"minute": "0", "hour": "9", "day_of_week": "Monday,wed,SAT"},
    {"minute": "1,2,3", "hour": "4-6", "day_of_month": "1-7", "day_of_week": "sun"},
    {"minute": "0", "hour": "0", "day_of_month": "31"},
    {"minute": "59", "hour": "23", "month_of_year": "12", "day_of_month": "31"},
    {"minute": "*/7", "hour": "*/5", "month_of_year": "*/3"},
    {"minute": "0", "hour": "0", "day_of_week": "sat-sun", "month_of_year": "1-3"},
    {"minute": "15", "day_of_month": "*/10"},
    {"minute": "0", "hour": "8", "day_of_week": "6-1/2"},
    # invalid in Celery
    {"day_of_week": "7"},
    {"minute": "5/2"},
    {"minute": "60"},
    {"hour": "24"},
    {"day_of_month": "0"},
    {"month_of_year": "13"},
    {"minute": "*/0"},
    {"minute": "-1"},
    {"minute": "1,,2"},
    {"day_of_week": "funday"},
    {"minute": "1-5/"},
]

STARTS = [
    "2026-01-01T00:00:00Z", "2026-02-27T23:59:30Z", "2026-03-29T00:30:00Z", "2026-06-15T12:07:00Z",
    "2026-10-25T01:00:00Z", "2026-12-31T23:59:00Z", "2027-02-28T12:00:00Z", "2028-02-28T12:00:00Z",
]


def parse(s):
    return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


def nxt(c, after):
    t = after.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    for _ in range(60 * 24 * 366 * 9):
        if (t.month in c.month_of_year and t.day in c.day_of_month
                and t.isoweekday() % 7 in c.day_of_week
                and t.hour in c.hour and t.minute in c.minute):
            return t
        t += dt.timedelta(minutes=1)
    return None


def main():
    cases = []
    for spec in SPECS:
        case = {"spec": spec}
        try:
            c = crontab(**spec)
        except Exception as e:  # Celery raises ValueError or ParseException
            case["error"] = type(e).__name__ + ": " + str(e)
            cases.append(case)
            continue
        case["next"] = []
        for s in STARTS:
            n = nxt(c, parse(s))
            case["next"].append({"after": s, "next": n.strftime("%Y-%m-%dT%H:%M:%SZ") if n else None})
        cases.append(case)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crontab_golden.json")
    with open(out, "w") as f:
        json.dump({"generator": "gen_crontab_golden.py", "celery": __import__("celery").__version__,
                   "cases": cases}, f, indent=1, sort_keys=True)
        f.write("\n")


main()
