"""moeplace: expert load prediction, placement and migration for
Mixture-of-Experts training, over the C library (libmoeplace and, for the
MPI runtime, libmoeplace-mpi). See docs/PYTHON.md.

  read_trace / write_trace / Trace / TraceWriter   expert-load traces
  Forecaster / StateDetector                       forecasting, state detection
  place / plan / Placement / Topology              placement and migration plans
  moeplace.eplb.rebalance_experts                  DeepSeek EPLB's interface, answered by moeplace
  Runtime                                          the MPI runtime (mpi4py)
  ReplicaGroups                                    gradient sums across an expert's replicas
  split_tokens / dispatch_counts                   whole-token split by routing shares
  optimizer_state                                  a torch optimizer's tensors for a parameter
  Error, ERR_*                                     a failed C call (status, message), status codes
"""

from .errors import (Error, OK, ERR_ARG, ERR_NOMEM, ERR_IO, ERR_FORMAT, ERR_STATE, ERR_MPI,
                     ERR_MISMATCH, ERR_VERIFY, ERR_NUMERIC, ERR_UNSUPPORTED)
from .trace import Trace, TraceWriter, read_trace, write_trace
from .predict import Forecaster, StateDetector, methods, state_name, TRANSIENT, STABLE
from .placement import (Topology, Placement, PlaceStats, place, plan, migration_seconds,
                        LINK_CLASSES, TRANSFER_DTYPE)
from .routing import split_tokens, dispatch_counts
from .torch_state import optimizer_state
from . import _lib


def version():
    """The version of the C library actually loaded ("MAJOR.MINOR.PATCH")."""
    return _lib.text(_lib.core().moeplace_version())


def __getattr__(name):
    # The runtime needs libmoeplace-mpi (and mpi4py): loaded on first use, so
    # that `import moeplace` works in a build without MPI.
    if name in ("Runtime", "StepInfo", "comm_handle"):
        from . import runtime
        return getattr(runtime, name)
    if name == "ReplicaGroups":
        from .replicas import ReplicaGroups
        return ReplicaGroups
    raise AttributeError("module 'moeplace' has no attribute %r" % name)


__all__ = ["Error", "OK", "ERR_ARG", "ERR_NOMEM", "ERR_IO", "ERR_FORMAT", "ERR_STATE",
           "ERR_MPI", "ERR_MISMATCH", "ERR_VERIFY", "ERR_NUMERIC", "ERR_UNSUPPORTED", "Trace", "TraceWriter", "read_trace", "write_trace", "Forecaster",
           "StateDetector", "methods", "state_name", "TRANSIENT", "STABLE", "Topology",
           "Placement", "PlaceStats", "place", "plan", "migration_seconds", "LINK_CLASSES",
           "TRANSFER_DTYPE", "split_tokens", "dispatch_counts", "optimizer_state", "ReplicaGroups",
           "Runtime", "StepInfo", "comm_handle", "version"]
