"""Loading libmoeplace (and libmoeplace-mpi) with ctypes, and the C
declarations the binding uses.

Where the libraries come from, first match wins:
  1. $MOEPLACE_LIBDIR: a directory holding libmoeplace.so (the build tree's
     .libs/ in `make check`);
  2. the libdir the package was installed with (moeplace/_config.py, written
     by `make install`);
  3. the dynamic linker's search path (ctypes.util.find_library).

Every declared function is listed in FUNCTIONS / MPI_FUNCTIONS with its
restype and argtypes; python/tests/test_abi.py checks them against the
headers and the libraries' exported symbols, and the ctypes structures
against the C compiler's sizeof/offsetof."""

import ctypes
import ctypes.util
import os

from .errors import ERR_UNSUPPORTED, Error

c_int = ctypes.c_int
c_double = ctypes.c_double
c_size_t = ctypes.c_size_t
c_int64 = ctypes.c_int64
c_uint64 = ctypes.c_uint64
c_uint32 = ctypes.c_uint32
c_char_p = ctypes.c_char_p
c_void_p = ctypes.c_void_p
P = ctypes.POINTER


# ---- Structures mirrored from the headers (order and types as in C) ------

class TraceMeta(ctypes.Structure):
    _fields_ = [("key", c_char_p), ("value", c_char_p)]


class TraceProgress(ctypes.Structure):
    _fields_ = [("steps_read", c_int64), ("first_step", c_int64), ("last_step", c_int64),
                ("stride", c_int64), ("irregular", c_int64),
                ("first_irregular_line", ctypes.c_long), ("irregular_from", c_int64),
                ("irregular_to", c_int64), ("reserved", c_int64 * 4)]


class DetectorConfig(ctypes.Structure):
    _fields_ = [("k", c_int), ("var_threshold", c_double), ("range_threshold", c_double),
                ("hysteresis", c_double), ("reserved", c_uint64 * 4)]


class PredictConfig(ctypes.Structure):
    _fields_ = [("layers", c_int), ("experts", c_int), ("window", c_int), ("horizon", c_int),
                ("method", c_char_p), ("sw_avg_k", c_int), ("arima_history", c_int),
                ("arima_refit", c_int), ("auto_power", c_double),
                ("detector", DetectorConfig), ("seed", c_uint64), ("reserved", c_uint64 * 8)]


class MoveStats(ctypes.Structure):
    _fields_ = [("moves", c_int64), ("bytes_moved", c_double), ("cross_node_bytes", c_double),
                ("cost", c_double), ("reserved", c_uint64 * 4)]


class PlaceOptions(ctypes.Structure):
    _fields_ = [("migration_weight", c_double), ("byte_budget", c_double),
                ("expert_bytes", c_double), ("min_gain", c_double), ("max_iterations", c_int),
                ("time_limit_ms", c_double), ("step_time_s", c_double),
                ("horizon_steps", c_double), ("time_budget_s", c_double), ("groups", c_int),
                ("shares", c_int), ("spread", c_double), ("fill_slots", c_int),
                ("n_samples", c_int), ("samples", ctypes.c_void_p), ("reserved", c_uint64 * 1)]


class PlaceStats(ctypes.Structure):
    _fields_ = [("layers", c_int), ("experts", c_int), ("ranks", c_int), ("slots", c_int),
                ("imbalance", c_double), ("lower_bound", c_double), ("gap", c_double),
                ("current_imbalance", c_double), ("kept_current", c_int), ("moves", c_int64),
                ("bytes_moved", c_double), ("cross_node_bytes", c_double),
                ("migration_cost", c_double), ("solve_ms", c_double),
                ("migration_s", c_double), ("saving_s", c_double), ("groups", c_int),
                ("split_groups", c_int), ("shares", c_int), ("reserved", c_uint64 * 4)]


class Transfer(ctypes.Structure):
    _fields_ = [("layer", c_int), ("expert", c_int), ("src_rank", c_int), ("src_slot", c_int),
                ("dst_rank", c_int), ("dst_slot", c_int), ("link", c_int), ("bytes", c_double)]


class RuntimeConfig(ctypes.Structure):
    _fields_ = [("layers", c_int), ("experts", c_int), ("slots_per_rank", c_int),
                ("window", c_int), ("horizon", c_int), ("rebalance_interval", c_int),
                ("history_windows", c_int), ("predictor", c_char_p),
                ("migration_tradeoff", c_double), ("migration_budget_bytes", c_int64),
                ("min_gain", c_double), ("coordinator", c_int), ("ranks_per_node", c_int),
                ("cluster_file", c_char_p), ("hwloc_synthetic", c_char_p),
                ("chunk_bytes", c_size_t), ("max_outstanding", c_int),
                ("shm_transfers", c_int), ("collective_timeout_s", c_double),
                ("groups", c_int), ("shares", c_int),
                ("decision_lag_windows", c_int), ("migration_layers_per_step", c_int),
                ("step_time_s", c_double), ("plan_only", c_int), ("decision_wait", c_int),
                ("spread", c_double), ("warmup_steps", c_int64), ("load_samples", c_int),
                ("reserved32", c_uint32)]


class StepInfo(ctypes.Structure):
    _fields_ = [("step", c_int64), ("window_closed", c_int), ("rebalance_checked", c_int),
                ("rebalanced", c_int), ("moves", c_int), ("bytes_moved", c_uint64),
                ("migration_s", c_double), ("decision_s", c_double),
                ("predicted_imbalance_old", c_double), ("predicted_imbalance_new", c_double),
                ("decision_wait_s", c_double), ("plan_pending", c_int),
                ("reserved", c_uint64 * 2)]


class Replica(ctypes.Structure):
    _fields_ = [("rank", c_int), ("slot", c_int), ("share", c_double)]


class RuntimeStats(ctypes.Structure):
    _fields_ = [("steps", c_int64), ("windows", c_int64), ("rebalances", c_int),
                ("rebalances_skipped", c_int), ("migrations_failed", c_int), ("moves", c_int64),
                ("bytes_moved", c_uint64), ("migration_s", c_double), ("decision_s", c_double),
                ("aggregate_s", c_double), ("shm_bytes_received", c_uint64),
                ("decisions_deferred", c_int64), ("decider_cpu_s", c_double),
                ("reserved", c_uint64 * 1)]


# C struct name -> ctypes class; what test_abi.py compares with the compiler.
STRUCTS = {
    "moeplace_trace_meta": TraceMeta,
    "moeplace_trace_progress": TraceProgress,
    "moeplace_detector_config": DetectorConfig,
    "moeplace_predict_config": PredictConfig,
    "moeplace_move_stats": MoveStats,
    "moeplace_place_options": PlaceOptions,
    "moeplace_place_stats": PlaceStats,
    "moeplace_transfer": Transfer,
}
MPI_STRUCTS = {
    "moeplace_runtime_config": RuntimeConfig,
    "moeplace_step_info": StepInfo,
    "moeplace_replica": Replica,
    "moeplace_runtime_stats": RuntimeStats,
}

# ---- Functions: name -> (restype, argtypes) --------------------------------

vp = c_void_p
FUNCTIONS = {
    "moeplace_strerror": (c_char_p, [c_int]),
    "moeplace_last_error": (c_char_p, []),
    "moeplace_version": (c_char_p, []),
    # trace.h
    "moeplace_trace_open": (c_int, [P(vp), c_char_p]),
    "moeplace_trace_open_memory": (c_int, [P(vp), vp, c_size_t, c_char_p]),
    "moeplace_trace_close": (None, [vp]),
    "moeplace_trace_layers": (c_int, [vp]),
    "moeplace_trace_experts": (c_int, [vp]),
    "moeplace_trace_name": (c_char_p, [vp]),
    "moeplace_trace_meta_count": (c_size_t, [vp]),
    "moeplace_trace_meta_get": (TraceMeta, [vp, c_size_t]),
    "moeplace_trace_read_step": (c_int, [vp, P(c_int64), vp]),
    "moeplace_trace_read_window": (c_int, [vp, c_int, P(c_int64), P(c_int), vp]),
    "moeplace_trace_get_progress": (TraceProgress, [vp]),
    "moeplace_trace_writer_open": (c_int, [P(vp), c_char_p, c_int, c_int, P(TraceMeta),
                                           c_size_t]),
    "moeplace_trace_writer_write_step": (c_int, [vp, c_int64, vp]),
    "moeplace_trace_writer_commit": (c_int, [vp]),
    "moeplace_trace_writer_abort": (None, [vp]),
    # predict.h
    "moeplace_layer_state_name": (c_char_p, [c_int]),
    "moeplace_detector_config_init": (None, [P(DetectorConfig)]),
    "moeplace_state_detector_create": (c_int, [P(vp), c_int, c_int, P(DetectorConfig)]),
    "moeplace_state_detector_destroy": (None, [vp]),
    "moeplace_state_detector_observe": (c_int, [vp, vp, vp]),
    "moeplace_state_detector_state": (c_int, [vp, c_int]),
    "moeplace_state_detector_figures": (c_int, [vp, c_int, P(c_double), P(c_double)]),
    "moeplace_predict_method_count": (c_int, []),
    "moeplace_predict_method_name": (c_char_p, [c_int]),
    "moeplace_predict_config_init": (None, [P(PredictConfig), c_int, c_int]),
    "moeplace_forecaster_create": (c_int, [P(vp), P(PredictConfig)]),
    "moeplace_forecaster_destroy": (None, [vp]),
    "moeplace_forecaster_observe_counts": (c_int, [vp, vp]),
    "moeplace_forecaster_observe": (c_int, [vp, vp]),
    "moeplace_forecaster_forecast": (c_int, [vp, vp]),
    "moeplace_forecaster_forecast_layer": (c_int, [vp, c_int, vp]),
    "moeplace_forecaster_state": (c_int, [vp, c_int]),
    "moeplace_forecaster_last_change": (c_int, [vp, c_int, P(c_int64)]),
    "moeplace_forecaster_windows": (c_int64, [vp]),
    # placement.h
    "moeplace_topology_create_shape": (c_int, [P(vp), c_int, c_int, c_int, c_int]),
    "moeplace_topology_create_table": (c_int, [P(vp), c_int, vp, vp, vp]),
    "moeplace_topology_load": (c_int, [P(vp), c_char_p]),
    "moeplace_topology_destroy": (None, [vp]),
    "moeplace_topology_ranks": (c_int, [vp]),
    "moeplace_topology_nodes": (c_int, [vp]),
    "moeplace_topology_rank_node": (c_int, [vp, c_int]),
    "moeplace_topology_set_cost": (c_int, [vp, c_int, c_double]),
    "moeplace_topology_cost": (c_double, [vp, c_int]),
    "moeplace_topology_set_bandwidth": (c_int, [vp, c_int, c_double]),
    "moeplace_topology_bandwidth": (c_double, [vp, c_int]),
    "moeplace_topology_class": (c_int, [vp, c_int, c_int]),
    "moeplace_placement_create": (c_int, [P(vp), c_int, c_int, c_int, c_int]),
    "moeplace_placement_clone": (c_int, [P(vp), vp]),
    "moeplace_placement_destroy": (None, [vp]),
    "moeplace_placement_layers": (c_int, [vp]),
    "moeplace_placement_experts": (c_int, [vp]),
    "moeplace_placement_ranks": (c_int, [vp]),
    "moeplace_placement_slots": (c_int, [vp]),
    "moeplace_placement_phy2log": (P(c_int), [vp, c_int]),
    "moeplace_placement_share": (P(c_double), [vp, c_int]),
    "moeplace_placement_logcnt": (c_int, [vp, c_int, vp]),
    "moeplace_placement_max_replicas": (c_int, [vp]),
    "moeplace_placement_log2phy": (c_int, [vp, c_int, c_int, vp]),
    "moeplace_placement_validate": (c_int, [vp]),
    "moeplace_placement_equal_shares": (c_int, [vp]),
    "moeplace_placement_rank_loads": (c_int, [vp, c_int, vp, vp]),
    "moeplace_placement_imbalance": (c_int, [vp, vp, P(c_double)]),
    "moeplace_placement_diff": (c_int, [vp, vp, vp, c_double, P(MoveStats)]),
    "moeplace_placement_write_json": (c_int, [vp, P(PlaceStats), c_char_p]),
    "moeplace_placement_read_json": (c_int, [P(vp), c_char_p]),
    "moeplace_placement_read_json_repair": (c_int, [P(vp), c_char_p, P(c_int)]),
    "moeplace_placement_repair": (c_int, [vp, P(c_int)]),
    "moeplace_placement_split_groups": (c_int, [vp, vp, c_int, vp]),
    "moeplace_groups_node_limited": (c_int, [vp, c_int]),
    "moeplace_place_options_init": (None, [P(PlaceOptions)]),
    "moeplace_share_policy_name": (c_char_p, [c_int]),
    "moeplace_share_policy_parse": (c_int, [c_char_p, P(c_int)]),
    "moeplace_place": (c_int, [vp, c_int, c_int, c_int, vp, vp, P(PlaceOptions), P(vp),
                               P(PlaceStats)]),
    "moeplace_migration_plan": (c_int, [vp, vp, vp, c_double, P(P(Transfer)), P(c_size_t)]),
    "moeplace_transfers_free": (None, [P(Transfer)]),
    "moeplace_migration_seconds": (c_int, [vp, P(Transfer), c_size_t, P(c_double)]),
    "moeplace_split_tokens": (c_int, [c_uint64, vp, c_int, vp]),
}

# runtime.h. MPI_Comm is a pointer in Open MPI and an int in MPICH: its
# ctypes type is decided when the library is loaded (comm_type()).
MPI_COMM = object()  # placeholder in the table below
MPI_FUNCTIONS = {
    "moeplace_runtime_config_init": (None, [P(RuntimeConfig)]),
    "moeplace_runtime_create": (c_int, [P(vp), MPI_COMM, P(RuntimeConfig)]),
    "moeplace_runtime_create_from_checkpoint": (c_int, [P(vp), MPI_COMM, P(RuntimeConfig),
                                                        c_char_p]),
    "moeplace_runtime_save": (c_int, [vp, c_char_p]),
    "moeplace_runtime_destroy": (None, [vp]),
    "moeplace_runtime_register_buffer": (c_int, [vp, c_int, c_int, vp, c_size_t]),
    "moeplace_runtime_alloc_buffer": (c_int, [vp, c_int, c_int, c_size_t, P(vp)]),
    "moeplace_runtime_buffer": (c_int, [vp, c_int, c_int, c_int, P(vp), P(c_size_t)]),
    "moeplace_runtime_record": (c_int, [vp, c_int, vp]),
    "moeplace_runtime_record_experts": (c_int, [vp, c_int, vp]),
    "moeplace_runtime_dispatch": (c_int, [vp, c_int, vp, vp]),
    "moeplace_runtime_sync_replicas": (c_int, [vp, c_int, vp, P(c_int)]),
    "moeplace_runtime_pending_plan": (c_int, [vp, P(P(Transfer)), P(c_size_t)]),
    "moeplace_runtime_pending_placement": (c_int, [vp, vp, vp]),
    "moeplace_runtime_confirm": (c_int, [vp, c_int]),
    "moeplace_runtime_step": (c_int, [vp, P(StepInfo)]),
    "moeplace_runtime_step_at": (c_int, [vp, c_int64, P(StepInfo)]),
    "moeplace_runtime_apply_placement": (c_int, [vp, vp, vp, P(StepInfo)]),
    "moeplace_runtime_rank": (c_int, [vp]),
    "moeplace_runtime_size": (c_int, [vp]),
    "moeplace_runtime_get_placement": (c_int, [vp, vp, vp]),
    "moeplace_runtime_local_expert": (c_int, [vp, c_int, c_int, P(c_int), P(c_double)]),
    "moeplace_runtime_routing": (c_int, [vp, c_int, c_int, P(Replica), c_int, P(c_int)]),
    "moeplace_runtime_topology": (c_int, [vp, c_int, P(c_int), P(c_int), P(c_int)]),
    "moeplace_runtime_get_stats": (c_int, [vp, P(RuntimeStats)]),
    "moeplace_runtime_predictor": (c_char_p, [vp]),
}


# MOEPLACE_VERSION_MAJOR the declarations above follow (test_abi.py checks it).
ABI_MAJOR = 0

# ---- Loading --------------------------------------------------------------

def _soname_candidates(directory, name):
    for suffix in (".so.0", ".so"):
        path = os.path.join(directory, "lib%s%s" % (name, suffix))
        if os.path.exists(path):
            yield path


def _find(name):
    """Path (or bare soname) of lib<name>, and where it was looked for."""
    tried = []
    env = os.environ.get("MOEPLACE_LIBDIR")
    if env:
        for path in _soname_candidates(env, name):
            return path, tried
        tried.append("$MOEPLACE_LIBDIR=" + env)
        # An explicit directory that lacks the library is not silently ignored.
        return None, tried
    try:
        from . import _config  # written by make install
        for path in _soname_candidates(_config.libdir, name):
            return path, tried
        tried.append(_config.libdir)
    except ImportError:
        pass
    found = ctypes.util.find_library(name)
    tried.append("the dynamic linker's search path")
    return found, tried


def _declare(lib, table, comm_t=None):
    for fname, (restype, argtypes) in table.items():
        fn = getattr(lib, fname)
        fn.restype = restype
        fn.argtypes = [comm_t if a is MPI_COMM else a for a in argtypes]


_core = None
_mpi = None
_comm_t = None


def core():
    """The loaded libmoeplace (ctypes.CDLL), declared; loaded once."""
    global _core
    if _core is None:
        path, tried = _find("moeplace")
        if path is None:
            raise ImportError("libmoeplace not found (looked in: %s); set MOEPLACE_LIBDIR to "
                              "the directory holding libmoeplace.so" % ", ".join(tried))
        lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        _declare(lib, FUNCTIONS)
        # The layouts above hold within one major version (moeplace/base.h).
        version = text(lib.moeplace_version())
        if int(version.split(".")[0]) != ABI_MAJOR:
            raise ImportError("%s is version %s; this package binds major version %d"
                              % (path, version, ABI_MAJOR))
        _core = lib
    return _core


def comm_type():
    """The ctypes type of MPI_Comm for the MPI that mpi4py uses."""
    try:
        from mpi4py import MPI
        size = MPI._sizeof(MPI.Comm)
    except (ImportError, AttributeError):
        size = ctypes.sizeof(c_void_p)
    if size == ctypes.sizeof(c_void_p):
        return c_void_p
    if size == ctypes.sizeof(c_int):
        return c_int
    raise Error(ERR_UNSUPPORTED, "MPI_Comm of %d bytes is not supported" % size)


def mpi():
    """The loaded libmoeplace-mpi (ctypes.CDLL), declared; loaded once.
    Raises ImportError when the library was not built (configure
    --without-mpi) or cannot be found."""
    global _mpi, _comm_t
    if _mpi is None:
        core()  # libmoeplace-mpi needs libmoeplace's soname already loaded
        path, tried = _find("moeplace-mpi")
        if path is None:
            raise ImportError("libmoeplace-mpi not found (looked in: %s); it is built only "
                              "with MPI (configure without --without-mpi)" % ", ".join(tried))
        lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        _comm_t = comm_type()
        _declare(lib, MPI_FUNCTIONS, _comm_t)
        # MPI_Comm_f2c of the MPI libmoeplace-mpi links (dlsym on the handle
        # searches its dependencies too).
        for sym in ("MPI_Comm_f2c", "PMPI_Comm_f2c"):
            try:
                f2c = getattr(lib, sym)
                break
            except AttributeError:
                f2c = None
        if f2c is None:
            raise ImportError("MPI_Comm_f2c not found in the MPI library libmoeplace-mpi links")
        f2c.restype = _comm_t
        f2c.argtypes = [c_int]
        lib.moeplace_mpi_comm_f2c = f2c
        _mpi = lib
    return _mpi


# ---- Helpers ---------------------------------------------------------------

def text(b):
    return b.decode("utf-8", "replace") if b is not None else None


def check(status):
    """Raises moeplace.Error for a negative status; returns it otherwise."""
    if status < 0:
        lib = core()
        raise Error(status, text(lib.moeplace_last_error()), text(lib.moeplace_strerror(status)))
    return status


def struct_dict(s):
    """The fields of a ctypes structure as a dict (no reserved tail)."""
    out = {}
    for name, _t in s._fields_:
        if name == "reserved":
            continue
        v = getattr(s, name)
        if isinstance(v, bytes):
            v = text(v)
        elif isinstance(v, ctypes.Structure):
            v = struct_dict(v)
        out[name] = v
    return out
