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


def outcome(case):
    """One junit testcase entry's outcome (a test with subtests has several entries)."""
    if case.find("failure") is not None:
        return "failed"
    if case.find("error") is not None:
        return "errors"
    sk = case.find("skipped")
    if sk is not None:
        return "xfailed" if sk.get("type") == "pytest.xfail" else "skipped"
    return "passed"


# A test's outcome over its entries: any failure (a failed subtest included) fails it.
RANK = {"failed": 4, "errors": 3, "passed": 2, "xfailed": 1, "skipped": 0}


def main():
    report, listfile, worker = sys.argv[1:4]
    allowed = expected(listfile, worker)
    tests = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        nid, o = nodeid(case), outcome(case)
        if nid not in tests or RANK[o] > RANK[tests[nid]]:
            tests[nid] = o
    counts = {k: 0 for k in RANK}
    for o in tests.values():
        counts[o] += 1
    print("celery-suite (%s worker): %d tests: %d passed, %d failed, %d errors, %d skipped, %d xfailed"
          % (worker, len(tests), counts["passed"], counts["failed"], counts["errors"], counts["skipped"],
             counts["xfailed"]))
    failing = {nid for nid, o in tests.items() if o in ("failed", "errors")}
    for nid in sorted(failing & set(allowed)):
        print("  expected failure: %s (%s)" % (nid, allowed[nid]))
    for nid in sorted(nid for nid in allowed if tests.get(nid) == "passed"):
        print("  listed as expected to fail but passed: %s" % nid)
    bad = sorted(failing - set(allowed))
    for nid in bad:
        print("  UNEXPECTED FAILURE: %s" % nid)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
