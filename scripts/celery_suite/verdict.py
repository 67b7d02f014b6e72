"""verdict.py JUNIT_XML EXPECTED_FAILURES WORKER: the exit status of scripts/celery-suite.sh.

Counts pytest's junit report, prints passed/failed/errors/skipped, and fails (exit 1) when a test
failed or errored that EXPECTED_FAILURES does not list for WORKER (go or python). Entries are
lines "WORKER NODEID REASON"; '#' starts a comment. Listed tests that passed are reported too, so
the list is kept short.
"""
import sys
import xml.etree.ElementTree as ET


def nodeid(case):
    parts = case.get("classname", "").split(".")
    for i, p in enumerate(parts):
        if p.startswith("test_"):
            return "/".join(parts[: i + 1]) + ".py" + "".join("::" + c for c in parts[i + 1:]) + "::" + case.get("name", "")
    return ".".join(parts) + "::" + case.get("name", "")


def expected(path, worker):
    out = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip() if line.lstrip().startswith("#") else line.strip()
            if not line:
                continue
            fields = line.split(None, 2)
            if len(fields) < 3:
                sys.exit("%s:%d: want 'WORKER NODEID REASON', got %r" % (path, n, line))
            if fields[0] not in ("go", "python"):
                sys.exit("%s:%d: worker must be go or python, got %r" % (path, n, fields[0]))
            if fields[0] == worker:
                out[fields[1]] = fields[2]
    return out


def main():
    report, listfile, worker = sys.argv[1:4]
    allowed = expected(listfile, worker)
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    bad, known, seen_ok = [], [], set()
    for case in ET.parse(report).getroot().iter("testcase"):
        nid = nodeid(case)
        if case.find("failure") is not None:
            counts["failed"] += 1
            (known if nid in allowed else bad).append(nid)
        elif case.find("error") is not None:
            counts["errors"] += 1
            (known if nid in allowed else bad).append(nid)
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
            seen_ok.add(nid)
    print("celery-suite (%s worker): %d passed, %d failed, %d errors, %d skipped"
          % (worker, counts["passed"], counts["failed"], counts["errors"], counts["skipped"]))
    for nid in sorted(set(known)):
        print("  expected failure: %s (%s)" % (nid, allowed[nid]))
    for nid in sorted(set(allowed) & seen_ok):
        print("  listed as expected to fail but passed: %s" % nid)
    for nid in sorted(set(bad)):
        print("  UNEXPECTED FAILURE: %s" % nid)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
