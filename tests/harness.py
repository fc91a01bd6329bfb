"""The Python tests' harness, as tests/test.h is the C tests': check()
counts passes and failures, summary() prints "name: N passed, N failed" and
gives the exit status; ROOT, CLI and FIXTURES locate the build and the
fixtures ($MC_FIXTURES or ../shared/fixtures).  A test script imports it from
its own folder (Python puts the script's folder first on sys.path)."""
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
CLI = os.path.join(ROOT, "build", "mobileclip")
FIXTURES = os.path.abspath(os.environ.get("MC_FIXTURES") or os.path.join(ROOT, "..", "shared", "fixtures"))

counts = {"passed": 0, "failed": 0}


def check(cond, what):
    if cond:
        counts["passed"] += 1
    else:
        counts["failed"] += 1
        print("FAIL: " + what, file=sys.stderr)


def summary(name):
    """Prints the summary line; returns the exit status (1 on any failure)."""
    print("%s: %d passed, %d failed" % (name, counts["passed"], counts["failed"]))
    return 1 if counts["failed"] else 0


def missing(name, exc, packages):
    """An oracle library is missing: that fails the test (never a skip)."""
    check(False, "a library the test needs is missing (%s): install %s (tools/install-deps.sh)" % (exc, packages))
    sys.exit(summary(name))
