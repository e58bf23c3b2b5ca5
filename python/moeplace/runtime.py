"""The MPI runtime (libmoeplace-mpi, docs/RUNTIME.md) from Python, over an
mpi4py communicator."""

import ctypes
import warnings

import numpy as np

from . import _lib
from ._lib import check
from ._util import AttrDict, NoCopy, array, as_float, as_int, as_str, path_bytes
from .placement import as_shares

__all__ = ["Runtime", "StepInfo", "comm_handle"]


def comm_handle(comm):
    """The C MPI_Comm of an mpi4py communicator, portably: comm.py2f() (the
    Fortran handle) through MPI_Comm_f2c of the MPI libmoeplace-mpi links."""
    lib = _lib.mpi()
    if not hasattr(comm, "py2f"):
        raise TypeError("comm must be an mpi4py communicator (with py2f()), not %s"
                        % type(comm).__name__)
    try:
        from mpi4py import MPI
    except ImportError:
        MPI = None
    if MPI is not None:
        # Groups, windows, files... have py2f() too: their handle is no MPI_Comm.
        if not isinstance(comm, MPI.Comm):
            raise TypeError("comm must be an mpi4py communicator (MPI.Comm), not %s"
                            % type(comm).__name__)
        if comm == MPI.COMM_NULL:
            raise ValueError("comm is MPI.COMM_NULL")
        if comm.Is_inter():
            raise ValueError("comm is an intercommunicator; the runtime needs an "
                             "intracommunicator")
    return lib.moeplace_mpi_comm_f2c(comm.py2f())


class StepInfo(AttrDict):
    """What a step did (moeplace_step_info), as a dict whose keys are also
    attributes: step, window_closed, rebalance_checked, rebalanced, moves,
    bytes_moved, migration_s, decision_s, predicted_imbalance_old,
    predicted_imbalance_new, decision_wait_s (the last four: coordinator
    only), plan_pending (plan-only mode: a plan waits for confirm())."""


_CONFIG = {"window": as_int, "horizon": as_int, "rebalance_interval": as_int,
           "history_windows": as_int, "predictor": as_str, "migration_tradeoff": as_float,
           "migration_budget_bytes": as_int, "min_gain": as_float, "coordinator": as_int,
           "ranks_per_node": as_int, "cluster_file": as_str, "hwloc_synthetic": as_str,
           "chunk_bytes": as_int, "max_outstanding": as_int, "shm_transfers": as_int,
           "collective_timeout_s": as_float, "groups": as_int, "shares": as_shares,
           "decision_lag_windows": as_int, "migration_layers_per_step": as_int,
           "step_time_s": as_float, "plan_only": as_int, "decision_wait": as_int,
           "spread": as_float, "warmup_steps": as_int, "load_samples": as_int}


def _writable_buffer(obj):
    """(objects to keep alive, address, nbytes) of a writable C-contiguous buffer."""
    orig = obj
    if not isinstance(obj, (memoryview, bytearray, np.ndarray)) and hasattr(obj, "numpy"):
        # A CPU torch tensor (or nn.Parameter): its numpy view shares the
        # memory; detach() first, since numpy() refuses tensors with grad.
        try:
            obj = (obj.detach() if hasattr(obj, "detach") else obj).numpy()
        except Exception as e:  # a CUDA tensor, ...
            raise TypeError("cannot take a host buffer of %s: %s" % (type(obj).__name__, e))
    try:
        mv = memoryview(obj)
    except TypeError:
        raise TypeError("buffer must support the buffer protocol (numpy array, bytearray, "
                        "CPU torch tensor), not %s" % type(obj).__name__) from None
    if mv.readonly:
        raise ValueError("buffer is read-only")
    if not mv.c_contiguous:
        raise ValueError("buffer must be C-contiguous")
    if mv.nbytes == 0:
        raise ValueError("buffer is empty")
    # The export held by `head` (and mv) also stops a bytearray or numpy
    # array from being resized (moved) while the runtime points at it.
    head = ctypes.c_char.from_buffer(mv)
    return (orig, obj, mv, head), ctypes.addressof(head), mv.nbytes


class Runtime(NoCopy):
    """One moeplace runtime over an MPI communicator (collective create).

    ``Runtime(comm, layers, experts, slots_per_rank, **config)`` with an
    mpi4py communicator and the moeplace_runtime_config fields as keyword
    arguments: window, horizon, rebalance_interval, history_windows,
    predictor, migration_tradeoff, migration_budget_bytes, min_gain,
    coordinator, ranks_per_node, cluster_file, hwloc_synthetic, chunk_bytes,
    max_outstanding, shm_transfers, collective_timeout_s, groups, shares
    ("weighted" or "even"), decision_lag_windows (decisions on the
    coordinator's thread: MPI at MPI_THREAD_FUNNELED or more, which mpi4py
    gives by default), migration_layers_per_step, step_time_s (rebalances
    priced in seconds: > 0 configured, 0 measured, < 0 off), plan_only,
    decision_wait (1: wait for a late decision instead of deferring it),
    spread (noise-aware placement, >= 0),
    warmup_steps (more rebalances in the first interval, at that step and
    each time the steps seen double; default -1: two windows, or the
    decision lag if longer; 0: none), load_samples (the last windows that
    decisions see as samples of the steps' noise; default 50, 0: none).
    Every rank must pass the same values.

    Per training step: record(layer, tokens) for every layer, then step()
    (collective). After a step whose ``rebalanced`` is true, re-read
    routing() and re-fetch runtime-owned buffers with buffer().

    destroy() is collective: call it on every rank (or use ``with``); it is
    never called by the garbage collector, which may run at different times
    on different ranks or after MPI_Finalize."""
    _kind = "runtime"

    def __init__(self, comm, layers, experts, slots_per_rank, resume=None, **config):
        """Creates the runtime (collective over comm); moeplace.Error on every
        rank if the ranks disagree (ERR_MISMATCH) or a value is invalid.

        ``resume``: a file written by save(): the runtime continues from it
        (placement, step counters, the open window, the coordinator's load
        history; moeplace_runtime_create_from_checkpoint). Only the
        coordinator's path is read. A damaged file (ERR_FORMAT), a missing
        one (ERR_IO) or one saved for another shape or window
        (ERR_MISMATCH) raises moeplace.Error on every rank."""
        lib = _lib.mpi()
        self._lib = lib
        self._h = ctypes.c_void_p()
        self._keep = {}  # (layer, slot) -> registered objects, kept alive until destroy
        cfg = _lib.RuntimeConfig()
        lib.moeplace_runtime_config_init(ctypes.byref(cfg))
        cfg.layers = as_int(layers, "layers", 1)
        cfg.experts = as_int(experts, "experts", 1)
        cfg.slots_per_rank = as_int(slots_per_rank, "slots_per_rank", 1)
        self._strings = []
        for key, value in config.items():
            if key not in _CONFIG:
                raise TypeError("Runtime: unknown option %r (known: %s)"
                                % (key, ", ".join(_CONFIG)))
            if key in ("cluster_file", "hwloc_synthetic", "predictor"):
                value = as_str(value, key, allow_none=True)
                if value is not None:
                    value = value.encode()
                    self._strings.append(value)
                setattr(cfg, key, value)
            elif key == "migration_budget_bytes":
                if value is None:
                    value = -1  # MOEPLACE_NO_LIMIT
                if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                    raise TypeError("%s must be an integer or None (no limit)" % key)
                setattr(cfg, key, max(int(value), -1))
            elif key == "chunk_bytes":
                if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                        or value < 0:
                    raise TypeError("%s must be a non-negative integer" % key)
                setattr(cfg, key, int(value))
            else:
                setattr(cfg, key, _CONFIG[key](value, key))
        self.config = _lib.struct_dict(cfg)
        self.layers, self.experts, self.slots_per_rank = cfg.layers, cfg.experts, \
            cfg.slots_per_rank
        if resume is None:
            check(lib.moeplace_runtime_create(ctypes.byref(self._h), comm_handle(comm),
                                              ctypes.byref(cfg)))
        else:
            check(lib.moeplace_runtime_create_from_checkpoint(
                ctypes.byref(self._h), comm_handle(comm), ctypes.byref(cfg),
                path_bytes(resume, "resume")))
        self.rank = lib.moeplace_runtime_rank(self._h)
        self.size = lib.moeplace_runtime_size(self._h)

    def _handle(self):
        if not self._h:
            raise ValueError("the runtime is destroyed")
        return self._h

    def _layer_slot(self, layer, slot):
        layer, slot = as_int(layer, "layer"), as_int(slot, "slot")
        if not 0 <= layer < self.layers:
            raise ValueError("layer %d is outside [0, %d)" % (layer, self.layers))
        if not 0 <= slot < self.slots_per_rank:
            raise ValueError("slot %d is outside [0, %d)" % (slot, self.slots_per_rank))
        return layer, slot

    # ---- buffers ----

    def register_buffer(self, layer, slot, obj):
        """Registers the memory of one buffer of local slot ``slot`` of
        ``layer`` (call once per buffer: weights, then optimizer state...;
        the order is the buffer index). ``obj`` is any writable C-contiguous
        object with the buffer protocol (numpy array, bytearray, a CPU torch
        tensor or its .numpy() view); the Runtime keeps it alive until
        destroy(). Every slot of a layer on every rank must register the
        same sizes; a migration overwrites the bytes in place."""
        layer, slot = self._layer_slot(layer, slot)
        keep, addr, nbytes = _writable_buffer(obj)
        check(self._lib.moeplace_runtime_register_buffer(self._handle(), layer, slot,
                                                         ctypes.c_void_p(addr), nbytes))
        self._keep.setdefault((layer, slot), []).append(keep)

    def register_parameter(self, layer, slot, param, optimizer=None):
        """Registers a CPU torch parameter of local slot ``slot`` of
        ``layer`` and, with ``optimizer``, every tensor the optimizer keeps
        for it (moeplace.optimizer_state(): Adam's step, exp_avg and
        exp_avg_sq, SGD's momentum buffer; created now, with torch's
        initial values, if the optimizer has not stepped yet), so that they
        migrate together. Buffers are registered in the order parameter,
        then state by sorted key; call it in the same order for every slot.
        Returns the list of registered tensors."""
        from .torch_state import optimizer_state
        tensors = [param] + (optimizer_state(optimizer, param) if optimizer is not None else [])
        for t in tensors:
            self.register_buffer(layer, slot, t)
        return tensors

    def register_size(self, layer, slot, nbytes):
        """Plan-only mode: declares a buffer of ``nbytes`` of a local slot
        without memory (the trainer keeps the expert, e.g. on a GPU); the
        runtime prices moves by these sizes and never touches them. Same
        rules as register_buffer (same sizes for every slot of a layer)."""
        layer, slot = self._layer_slot(layer, slot)
        if isinstance(nbytes, bool) or not isinstance(nbytes, (int, np.integer)):
            raise TypeError("nbytes must be an integer")
        nbytes = int(nbytes)
        if nbytes <= 0:
            raise ValueError("nbytes must be positive")
        check(self._lib.moeplace_runtime_register_buffer(self._handle(), layer, slot, None,
                                                         nbytes))

    def pending_plan(self):
        """Plan-only mode, after a step (or apply_placement) with
        ``plan_pending``: the transfers the trainer must make, a structured
        array of moeplace.TRANSFER_DTYPE (layer, expert, src_rank, src_slot,
        dst_rank, dst_slot, link, bytes; slots are global: rank * S + local
        slot), the same on every rank. Move each expert's state (weights and
        optimizer state) from (src_rank, src_slot % S) to (dst_rank,
        dst_slot % S), reading every source before overwriting any
        destination, then call confirm()."""
        from .placement import TRANSFER_DTYPE
        p = ctypes.POINTER(_lib.Transfer)()
        n = ctypes.c_size_t()
        check(self._lib.moeplace_runtime_pending_plan(self._handle(), ctypes.byref(p),
                                                      ctypes.byref(n)))
        out = np.zeros(n.value, dtype=TRANSFER_DTYPE)
        if n.value:
            ctypes.memmove(out.ctypes.data, p, n.value * ctypes.sizeof(_lib.Transfer))
        return out

    def pending_placement(self):
        """Plan-only mode: the placement the pending plan leads to,
        ``(phy2log int32, share float64)`` [layers][ranks][slots_per_rank];
        it takes effect at confirm()."""
        shape = (self.layers, self.size, self.slots_per_rank)
        se = np.empty(shape, dtype=np.int32)
        sh = np.empty(shape, dtype=np.float64)
        check(self._lib.moeplace_runtime_pending_placement(
            self._handle(), se.ctypes.data_as(ctypes.c_void_p),
            sh.ctypes.data_as(ctypes.c_void_p)))
        return se, sh

    def confirm(self, ok=True):
        """Plan-only mode, collective: ``ok`` says whether this rank's
        transfers of the pending plan succeeded. If every rank says so the
        new placement takes effect everywhere (re-read routing()); else
        moeplace.Error (ERR_VERIFY) on every rank and the old placement
        stays (the trainer restores the experts it overwrote)."""
        check(self._lib.moeplace_runtime_confirm(self._handle(), 1 if ok else 0))

    def alloc_buffer(self, layer, slot, nbytes, dtype=np.uint8):
        """Lets the runtime allocate (zeroed) and own a buffer of ``nbytes``
        for a local slot; returns a numpy view of it with ``dtype``. A
        migration may swap such a buffer for new memory: after a step with
        ``rebalanced`` the view may be stale; fetch it again with buffer().
        Views must not be used after destroy()."""
        layer, slot = self._layer_slot(layer, slot)
        nbytes = int(nbytes) if isinstance(nbytes, (int, np.integer)) and \
            not isinstance(nbytes, bool) else None
        if nbytes is None:
            raise TypeError("nbytes must be an integer")
        dt = np.dtype(dtype)
        if nbytes <= 0 or nbytes % dt.itemsize:
            raise ValueError("nbytes must be positive and a multiple of the dtype's size")
        p = ctypes.c_void_p()
        check(self._lib.moeplace_runtime_alloc_buffer(self._handle(), layer, slot, nbytes,
                                                      ctypes.byref(p)))
        return self._view(p.value, nbytes, dt)

    def buffer(self, layer, slot, index=0, dtype=np.uint8):
        """A numpy view (``dtype``) of buffer ``index`` of a local slot, at
        its current address. For a runtime-owned buffer it is valid until
        the next step that rebalances (or destroy)."""
        layer, slot = self._layer_slot(layer, slot)
        p, n = ctypes.c_void_p(), ctypes.c_size_t()
        check(self._lib.moeplace_runtime_buffer(self._handle(), layer, slot,
                                                as_int(index, "index"), ctypes.byref(p),
                                                ctypes.byref(n)))
        return self._view(p.value, n.value, np.dtype(dtype))

    @staticmethod
    def _view(addr, nbytes, dt):
        if nbytes % dt.itemsize:
            raise ValueError("buffer of %d bytes is not a whole number of %s" % (nbytes, dt))
        raw = (ctypes.c_char * nbytes).from_address(addr)
        return np.frombuffer(raw, dtype=dt)

    # ---- per step ----

    def record(self, layer, tokens):
        """Adds the tokens each local slot of ``layer`` processed in this
        step: ``tokens`` non-negative integers [slots_per_rank]. Local."""
        layer = as_int(layer, "layer")
        t = array(tokens, "uint64", (self.slots_per_rank,), "tokens")
        check(self._lib.moeplace_runtime_record(self._handle(), layer,
                                                t.ctypes.data_as(ctypes.c_void_p)))

    def record_experts(self, layer, counts):
        """Adds the tokens this rank's router sent to each logical expert of
        ``layer`` in this step: ``counts`` non-negative integers [experts]
        (one layer of the [layers][experts] counts a router keeps). With
        top-k routing a token counts once per selected expert (k per token).
        Summed over ranks at the next window and added to what record()
        recorded per slot: record each token with one of the two. Local."""
        layer = as_int(layer, "layer")
        c = array(counts, "uint64", (self.experts,), "counts")
        check(self._lib.moeplace_runtime_record_experts(self._handle(), layer,
                                                        c.ctypes.data_as(ctypes.c_void_p)))

    def dispatch(self, layer, tokens):
        """How many of ``layer``'s tokens this rank sends to each (rank,
        local slot): ``tokens`` non-negative integers [experts] (what the
        router sent to each logical expert); returns uint64
        [size][slots_per_rank]. Each expert's tokens are split among its
        replicas by split_tokens() (largest remainder, ties in slot order):
        deterministic and the same on every rank. Row r is what this rank
        sends to rank r; what a rank receives per local slot is what
        record() wants. Local (the C library's moeplace_runtime_dispatch)."""
        layer = as_int(layer, "layer")
        t = array(tokens, "uint64", (self.experts,), "tokens")
        out = np.empty((self.size, self.slots_per_rank), dtype=np.uint64)
        check(self._lib.moeplace_runtime_dispatch(self._handle(), layer,
                                                  t.ctypes.data_as(ctypes.c_void_p),
                                                  out.ctypes.data_as(ctypes.c_void_p)))
        return out

    def step(self):
        """Collective, once per training step after its records: closes
        windows, rebalances and migrates as configured. Returns a StepInfo.
        A failed migration raises moeplace.Error (ERR_VERIFY or ERR_MPI) on
        every rank with the old placement and all state intact."""
        info = _lib.StepInfo()
        check(self._lib.moeplace_runtime_step(self._handle(), ctypes.byref(info)))
        return StepInfo(_lib.struct_dict(info))

    def step_at(self, step):
        """Like step(), with the caller's own step number (counted from 1),
        so that a rank that called step once too often or too rarely is an
        error on every rank at the next window instead of a silent
        divergence. Returns a StepInfo."""
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
            raise TypeError("step must be an integer")
        info = _lib.StepInfo()
        check(self._lib.moeplace_runtime_step_at(self._handle(), int(step), ctypes.byref(info)))
        return StepInfo(_lib.struct_dict(info))

    def apply_placement(self, phy2log, share=None):
        """Collective: migrates to the given placement now. phy2log: int
        [layers][ranks][slots_per_rank] (expert per slot, -1 empty; the C
        API's phy2log with the global slot split into rank and local slot);
        share: float of the same shape (None: equal shares). Every rank passes the
        same arrays. Returns a StepInfo."""
        shape = (self.layers, self.size, self.slots_per_rank)
        se = array(phy2log, "int32", shape, "phy2log")
        sh = None if share is None else array(share, "float", shape, "share")
        info = _lib.StepInfo()
        check(self._lib.moeplace_runtime_apply_placement(
            self._handle(), se.ctypes.data_as(ctypes.c_void_p),
            None if sh is None else sh.ctypes.data_as(ctypes.c_void_p), ctypes.byref(info)))
        return StepInfo(_lib.struct_dict(info))

    def sync_replicas(self, copy=True):
        """Collective: compares every replica's registered state with its
        expert's primary replica (the first in slot order) and, with
        ``copy`` (the default), overwrites the replicas that differ with the
        primary's state (all-or-nothing, checksummed). Returns ``(count,
        differ)``: how many experts had a differing replica before the call,
        and bool [layers][experts]; the same on every rank. Call it once
        after registering, so that replicas seeded per rank start equal;
        ``copy=False`` only checks."""
        differ = np.zeros((self.layers, self.experts), dtype=np.intc)
        n = ctypes.c_int()
        check(self._lib.moeplace_runtime_sync_replicas(
            self._handle(), 1 if copy else 0, differ.ctypes.data_as(ctypes.c_void_p),
            ctypes.byref(n)))
        return n.value, differ.astype(bool)

    def save(self, path):
        """Collective, between two steps (with the trainer's own checkpoint):
        writes the runtime's state to ``path`` (the coordinator writes it,
        atomically, versioned, with a checksum) for Runtime(...,
        resume=path). Changes nothing. moeplace.Error on every rank if the
        coordinator cannot write it."""
        check(self._lib.moeplace_runtime_save(self._handle(), path_bytes(path)))

    # ---- what is in force ----

    def get_placement(self):
        """The placement in force: ``(phy2log int32, share float64)``,
        both [layers][ranks][slots_per_rank]."""
        shape = (self.layers, self.size, self.slots_per_rank)
        se = np.empty(shape, dtype=np.int32)
        sh = np.empty(shape, dtype=np.float64)
        check(self._lib.moeplace_runtime_get_placement(self._handle(),
                                                       se.ctypes.data_as(ctypes.c_void_p),
                                                       sh.ctypes.data_as(ctypes.c_void_p)))
        return se, sh

    def local_expert(self, layer, slot):
        """``(expert, share)`` of a local slot (expert -1: empty)."""
        layer, slot = self._layer_slot(layer, slot)
        e, s = ctypes.c_int(), ctypes.c_double()
        check(self._lib.moeplace_runtime_local_expert(self._handle(), layer, slot,
                                                      ctypes.byref(e), ctypes.byref(s)))
        return e.value, s.value

    def routing(self):
        """The routing table as numpy arrays: ``(count [L][E], rank
        [L][E][size], slot [L][E][size], share [L][E][size])``; replica i <
        count[l][e] of expert e lives on rank[l][e][i], local slot
        slot[l][e][i], and gets share[l][e][i] of its tokens; padding is -1
        (rank, slot) and 0 (share)."""
        L, E, R = self.layers, self.experts, self.size
        count = np.zeros((L, E), dtype=np.int32)
        rank = np.full((L, E, R), -1, dtype=np.int32)
        slot = np.full((L, E, R), -1, dtype=np.int32)
        share = np.zeros((L, E, R), dtype=np.float64)
        reps = (_lib.Replica * R)()
        n = ctypes.c_int()
        h = self._handle()
        for l in range(L):
            for e in range(E):
                check(self._lib.moeplace_runtime_routing(h, l, e, reps, R, ctypes.byref(n)))
                count[l, e] = n.value
                for i in range(n.value):
                    rank[l, e, i] = reps[i].rank
                    slot[l, e, i] = reps[i].slot
                    share[l, e, i] = reps[i].share
        return count, rank, slot, share

    def topology(self, rank):
        """``(node, package, numa)`` of a rank as discovered (-1: unknown)."""
        a, b, c = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        check(self._lib.moeplace_runtime_topology(self._handle(), as_int(rank, "rank"),
                                                  ctypes.byref(a), ctypes.byref(b),
                                                  ctypes.byref(c)))
        return a.value, b.value, c.value

    def predictor(self):
        """The predictor the coordinator runs (the configured one, or what
        the default chose: "auto" with CPUs of its own, else "sw_avg")."""
        return self._lib.moeplace_runtime_predictor(self._handle()).decode()

    def stats(self):
        """Totals since create (moeplace_runtime_stats) as a dict."""
        st = _lib.RuntimeStats()
        check(self._lib.moeplace_runtime_get_stats(self._handle(), ctypes.byref(st)))
        return _lib.struct_dict(st)

    # ---- end ----

    def destroy(self):
        """Collective: frees the runtime (and the buffers it allocated) and
        releases the registered objects. Idempotent."""
        if getattr(self, "_h", None):
            h, self._h = self._h, ctypes.c_void_p()
            self._lib.moeplace_runtime_destroy(h)
            self._keep.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.destroy()

    def __del__(self):
        if getattr(self, "_h", None):
            # Not destroyed here: destroy is collective. The registered
            # objects are leaked on purpose (the runtime still points at them).
            warnings.warn("moeplace.Runtime was not destroyed (call destroy() on every rank)",
                          ResourceWarning)
            _LEAKED.append(self._keep)


_LEAKED = []
