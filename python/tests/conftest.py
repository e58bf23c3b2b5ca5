"""pytest setup: the package from this source tree, the library from the
build tree. tests/python.sh (make check) sets MOEPLACE_LIBDIR,
MOEPLACE_ABI_PROG and MOEPLACE_INCLUDEDIR; by hand, MOEPLACE_LIBDIR
defaults to ./build/.libs of the source tree when it exists."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))

if "MOEPLACE_LIBDIR" not in os.environ:
    guess = os.path.join(SRC, "build", ".libs")
    if os.path.isdir(guess):
        os.environ["MOEPLACE_LIBDIR"] = guess
os.environ.setdefault("MOEPLACE_INCLUDEDIR", os.path.join(SRC, "include"))


import pytest  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Keeps each phase's report on the item (rep_setup, rep_call,
    # rep_teardown), for fixtures that look at the outcome
    # (mpi_lockstep below).
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def mpi_lockstep(request):
    """For the tests run under mpirun (pytestmark in their module): every
    rank fails a test that failed on one, so that no rank goes on to the
    next test's collectives alone."""
    yield
    from mpi4py import MPI
    rep = getattr(request.node, "rep_call", None)
    failed = int(bool(rep is not None and rep.failed))
    if MPI.COMM_WORLD.allreduce(failed) and not failed:
        pytest.fail("the test failed on another rank")
