"""Runs pytest for make check (tests/python.sh): exit 5 (no test
collected) is a failure, not a silent pass; no cache or bytecode is written
into the (possibly read-only) source tree."""

import sys

import pytest

rc = int(pytest.main(["-q", "-p", "no:cacheprovider"] + sys.argv[1:]))
if rc == 5:
    print("run_pytest.py: pytest collected no tests from %s" % sys.argv[1:], file=sys.stderr)
    rc = 1
sys.exit(rc)
