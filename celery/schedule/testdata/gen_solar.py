#!/usr/bin/python3
"""Generate solar.json with the real Celery 5.2 and PyEphem 4.1.4 (Debian's python3-celery, python3-ephem).

Run from the repository root:  /usr/bin/python3 celery/schedule/testdata/gen_solar.py

For every case Celery's own solar(event, lat, lon) builds the ephem Observer (its horizon, pressure 0,
use_center), and the next event after the start instant is what remaining_estimate asks ephem for
(next_rising / next_setting / next_transit from that instant). Where ephem raises CircumpolarError (the
sun does not cross the horizon during that circuit), Celery checks again a minute after the next
antitransit: the search does the same, circuit by circuit, for up to 400 days; "next" is null when there
is no event in that span. Near the poles ephem's rising/setting search can loop for ever (at 89.5 degrees it
does for some events and dates; Celery's beat would hang there too): a case ephem has not answered within 5
seconds is left out and counted. For the cases that are not circumpolar at the start, the result is also checked
against remaining_estimate itself.
"""
import datetime as dt
import json
import os
import signal

import ephem
from celery.schedules import solar

UTC = dt.timezone.utc
EVENTS = sorted(solar._all_events)
LATS = [-66, -50.5, -35, -20, 0, 15, 35.7, 52.52, 60, 66]
POLAR = [70, 78.2, -75, -82]
LONS = [-122.42, 0, 13.4, 139.69, 180, -180, -58.4, 77.2]
DATES = [dt.datetime(2026, 1, 5, 3, 17, tzinfo=UTC), dt.datetime(2026, 3, 20, 14, 2, 5, tzinfo=UTC),
         dt.datetime(2026, 6, 21, 22, 40, tzinfo=UTC), dt.datetime(2026, 9, 23, 8, 0, tzinfo=UTC),
         dt.datetime(2026, 12, 21, 11, 59, 30, tzinfo=UTC), dt.datetime(2030, 5, 1, 0, 0, tzinfo=UTC)]
POLAR_DATES = [DATES[0], DATES[2], DATES[3]]


def next_event(s, after):
    start = after
    limit = after + dt.timedelta(days=400)
    circuits = 0
    while start < limit:
        s.cal.date = start
        try:
            if s.use_center:
                r = getattr(s.cal, s.method)(ephem.Sun(), start=start, use_center=True)
            else:
                r = getattr(s.cal, s.method)(ephem.Sun(), start=start)
            return r.datetime().replace(tzinfo=UTC), circuits
        except ephem.CircumpolarError:
            s.cal.date = start
            start = (s.cal.next_antitransit(ephem.Sun()).datetime() + dt.timedelta(minutes=1)).replace(tzinfo=UTC)
            circuits += 1
    return None, circuits


def main():
    cases = []
    hung = []
    i = 0
    signal.signal(signal.SIGALRM, on_alarm)
    for lats, dates in ((LATS, DATES), (POLAR, POLAR_DATES)):
        for lat in lats:
            for d in dates:
                for ev in EVENTS:
                    lon = LONS[i % len(LONS)]
                    i += 1
                    s = solar(ev, lat, lon, nowfun=lambda: d)
                    signal.alarm(5)
                    try:
                        n, circuits = next_event(s, d)
                    except TimeoutError:
                        hung.append((ev, lat, lon, d.isoformat()))
                        continue
                    finally:
                        signal.alarm(0)
                    if n is not None and circuits == 0:
                        est = d + s.remaining_estimate(d)
                        assert abs((est - n).total_seconds()) < 1e-3, (ev, lat, lon, d, est, n)
                    if n is not None and n >= limit_of(d):
                        n = None
                    cases.append({"event": ev, "lat": lat, "lon": lon,
                                  "after": d.isoformat().replace("+00:00", "Z"),
                                  "next": None if n is None else n.isoformat().replace("+00:00", "Z")})
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "solar.json")
    with open(out, "w") as f:
        json.dump({"generator": "celery %s, ephem %s" % (__import__("celery").__version__, ephem.__version__),
                   "cases": cases}, f, indent=1)
        f.write("\n")
    print(len(cases), "cases,", sum(c["next"] is None for c in cases), "without an event;",
          len(hung), "left out as ephem did not answer:", hung)


def on_alarm(*_):
    raise TimeoutError()


def limit_of(d):
    return d + dt.timedelta(days=400)


if __name__ == "__main__":
    main()
