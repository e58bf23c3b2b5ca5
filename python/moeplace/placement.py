"""Topology- and migration-aware placement of experts and replicas
(docs/PLACEMENT.md), with numpy arrays in EPLB's conventions."""

import ctypes

import numpy as np

from . import _lib
from ._lib import check
from ._util import AttrDict, Owned, array, as_float, as_int, path_bytes, ptr

__all__ = ["Topology", "Placement", "PlaceStats", "place", "plan", "LINK_CLASSES",
           "TRANSFER_DTYPE"]

# moeplace_link_class values, closest first.
LINK_CLASSES = ("same_rank", "same_numa", "same_package", "same_node", "other_node")

# One row of plan(): a field per moeplace_transfer member.
TRANSFER_DTYPE = np.dtype(_lib.Transfer)  # same offsets as the C struct


def _link(cls):
    if isinstance(cls, str):
        if cls not in LINK_CLASSES:
            raise ValueError("unknown link class %r (known: %s)" % (cls, ", ".join(LINK_CLASSES)))
        return LINK_CLASSES.index(cls)
    i = as_int(cls, "link class")
    if not 0 <= i < len(LINK_CLASSES):
        raise ValueError("link class %d out of range [0, %d)" % (i, len(LINK_CLASSES)))
    return i


class Topology(Owned):
    """The cluster the placement sees: ranks grouped into nodes, packages and
    NUMA domains, with a per-byte migration cost per link class. Build one
    with Topology.shape(), Topology.table() or Topology.load()."""
    _kind = "topology"
    _destroy = "moeplace_topology_destroy"

    def __init__(self, _handle):
        """Internal: use shape(), table() or load()."""
        self._lib = _lib.core()
        self._h = _handle

    @classmethod
    def shape(cls, nodes, ranks_per_node, packages_per_node=1, numa_per_package=1):
        """A regular cluster of nodes x ranks_per_node ranks, node-major."""
        h = ctypes.c_void_p()
        check(_lib.core().moeplace_topology_create_shape(
            ctypes.byref(h), as_int(nodes, "nodes"), as_int(ranks_per_node, "ranks_per_node"),
            as_int(packages_per_node, "packages_per_node"),
            as_int(numa_per_package, "numa_per_package")))
        return cls(h)

    @classmethod
    def table(cls, node, package=None, numa=None):
        """An explicit table: rank r is on node[r], package[r], numa[r]
        (labels >= 0; package and numa default to all 0)."""
        n = np.asarray(node)
        if n.ndim != 1:
            raise ValueError("node must be a 1-D array [ranks]")
        r = n.shape[0]
        node = array(n, "int32", (r,), "node")
        package = array(np.zeros(r, np.int32) if package is None else package, "int32", (r,),
                        "package")
        numa = array(np.zeros(r, np.int32) if numa is None else numa, "int32", (r,), "numa")
        h = ctypes.c_void_p()
        check(_lib.core().moeplace_topology_create_table(ctypes.byref(h), r, ptr(node),
                                                         ptr(package), ptr(numa)))
        return cls(h)

    @classmethod
    def load(cls, path):
        """Reads a cluster-shape file (docs/PLACEMENT.md)."""
        h = ctypes.c_void_p()
        check(_lib.core().moeplace_topology_load(ctypes.byref(h), path_bytes(path)))
        return cls(h)

    @property
    def ranks(self):
        """Number of ranks."""
        return self._lib.moeplace_topology_ranks(self._handle())

    @property
    def nodes(self):
        """Number of nodes."""
        return self._lib.moeplace_topology_nodes(self._handle())

    def rank_node(self, rank):
        """Node index of a rank."""
        return check(self._lib.moeplace_topology_rank_node(self._handle(), as_int(rank, "rank")))

    def node_limited(self, groups):
        """Whether ``groups`` expert groups can each stay on one node here
        (N > 1 equal nodes, N dividing groups). Where not, ``place(...,
        groups=G)`` places as without groups, as EPLB falls back to its
        global policy, and reports split_groups."""
        return bool(self._lib.moeplace_groups_node_limited(self._handle(),
                                                           as_int(groups, "groups")))

    def link_class(self, a, b):
        """Link class of ranks a and b, as a name of LINK_CLASSES."""
        c = self._lib.moeplace_topology_class(self._handle(), as_int(a, "a"), as_int(b, "b"))
        if c < 0:
            raise _lib.Error(-1, _lib.text(self._lib.moeplace_last_error()), "invalid argument")
        return LINK_CLASSES[c]

    def cost(self, cls):
        """Per-byte cost of a link class (a name of LINK_CLASSES or its index)."""
        return self._lib.moeplace_topology_cost(self._handle(), _link(cls))

    def set_cost(self, cls, cost):
        """Sets the per-byte cost of a link class."""
        check(self._lib.moeplace_topology_set_cost(self._handle(), _link(cls),
                                                   as_float(cost, "cost")))

    def bandwidth(self, cls):
        """Bandwidth of a link class in bytes per second (the migration time
        model and the seconds-priced keep-or-move rule)."""
        return self._lib.moeplace_topology_bandwidth(self._handle(), _link(cls))

    def set_bandwidth(self, cls, bytes_per_s):
        """Sets the bandwidth of a link class in bytes per second (1 to 1e18)."""
        check(self._lib.moeplace_topology_set_bandwidth(self._handle(), _link(cls),
                                                        as_float(bytes_per_s, "bytes_per_s")))


class PlaceStats(AttrDict):
    """The solver's figures (moeplace_place_stats) as a dict whose keys are
    also attributes: imbalance, lower_bound, gap, current_imbalance,
    kept_current, moves, bytes_moved, cross_node_bytes, migration_cost,
    migration_s, saving_s, solve_ms, layers, experts, ranks, slots, groups,
    split_groups, shares ("weighted" or "even")."""


class Placement(Owned):
    """A placement of E logical experts of L layers onto R ranks x S slots.
    Arrays are copies (numpy): phy2log [L][R*S] (expert per slot, -1 empty),
    share [L][R*S], logcnt [L][E], log2phy [L][E][max_replicas] (-1 padded).
    ``stats`` holds the solver's figures when the placement came from place()."""
    _kind = "placement"
    _destroy = "moeplace_placement_destroy"

    def __init__(self, layers, experts, ranks, slots):
        """An all-empty placement (every slot -1); fill it with from_arrays()."""
        self._lib = _lib.core()
        self._h = ctypes.c_void_p()
        check(self._lib.moeplace_placement_create(
            ctypes.byref(self._h), as_int(layers, "layers"), as_int(experts, "experts"),
            as_int(ranks, "ranks"), as_int(slots, "slots")))
        self.stats = None

    @classmethod
    def _wrap(cls, handle, stats=None):
        self = cls.__new__(cls)
        self._lib = _lib.core()
        self._h = handle
        self.stats = stats
        return self

    @classmethod
    def from_arrays(cls, phy2log, share=None, *, experts, ranks, slots, repair=False):
        """A placement from phy2log [L][R*S] (or [L][R][S]) and share of the
        same shape (None: equal shares per replica); validated
        (moeplace.Error ERR_ARG names the layer and slot). repair=True first
        merges two replicas of one expert on one rank (legal in EPLB's maps;
        see repair()); the count merged is in ``repaired``."""
        p = np.asarray(phy2log)
        ranks, slots = as_int(ranks, "ranks", 1), as_int(slots, "slots", 1)
        if p.ndim not in (2, 3):
            raise ValueError("phy2log must have shape [layers][ranks*slots]")
        layers = p.shape[0]
        p = array(p.reshape(layers, -1) if p.size else p, "int32", (layers, ranks * slots),
                  "phy2log")
        if share is not None:
            s = np.asarray(share)
            s = array(s.reshape(layers, -1) if s.ndim == 3 else s, "float", p.shape, "share")
        self = cls(layers, experts, ranks, slots)
        for l in range(layers):
            ctypes.memmove(self._lib.moeplace_placement_phy2log(self._h, l), ptr(p[l]),
                           p[l].nbytes)
            if share is not None:
                ctypes.memmove(self._lib.moeplace_placement_share(self._h, l), ptr(s[l]),
                               s[l].nbytes)
        if share is None:
            check(self._lib.moeplace_placement_equal_shares(self._h))
        self.repaired = self.repair() if repair else 0
        check(self._lib.moeplace_placement_validate(self._h))
        return self

    @classmethod
    def read_json(cls, path, repair=False):
        """Reads (and validates) a placement JSON file (docs/PLACEMENT.md), or
        an EPLB map {"ranks", "slots", "phy2log": [L][R*S]} (equal shares).
        repair=True merges two replicas of one expert on one rank (as EPLB
        allows) instead of refusing them; the count removed is then in the
        result's ``repaired`` attribute."""
        h = ctypes.c_void_p()
        if not repair:
            check(_lib.core().moeplace_placement_read_json(ctypes.byref(h), path_bytes(path)))
            return cls._wrap(h)
        n = ctypes.c_int()
        check(_lib.core().moeplace_placement_read_json_repair(ctypes.byref(h), path_bytes(path),
                                                              ctypes.byref(n)))
        self = cls._wrap(h)
        self.repaired = n.value
        return self

    def repair(self):
        """Merges replicas of one expert held twice by one rank (the lowest
        slot keeps it with their shares); returns how many were removed."""
        n = ctypes.c_int()
        check(self._lib.moeplace_placement_repair(self._handle(), ctypes.byref(n)))
        return n.value

    def split_groups(self, topology, groups):
        """Groups (of E / groups contiguous experts) whose replicas are on
        more than one node, per layer: int32 [L] (0 everywhere when the
        placement is node-limited)."""
        out = np.empty(self.layers, dtype=np.int32)
        check(self._lib.moeplace_placement_split_groups(
            self._handle(), _topo_handle(topology), as_int(groups, "groups"), ptr(out)))
        return out

    def write_json(self, path):
        """Writes the placement (with its stats, when it has them) atomically."""
        st = None
        if self.stats is not None:
            st = _lib.PlaceStats(**{k: as_shares(v) if k == "shares" else v
                                    for k, v in self.stats.items()})
        check(self._lib.moeplace_placement_write_json(self._handle(),
                                                      ctypes.byref(st) if st else None,
                                                      path_bytes(path)))

    @property
    def layers(self):
        """L."""
        return self._lib.moeplace_placement_layers(self._handle())

    @property
    def experts(self):
        """E."""
        return self._lib.moeplace_placement_experts(self._handle())

    @property
    def ranks(self):
        """R."""
        return self._lib.moeplace_placement_ranks(self._handle())

    @property
    def slots(self):
        """S, slots per rank."""
        return self._lib.moeplace_placement_slots(self._handle())

    @property
    def phy2log(self):
        """Logical expert of every slot, int32 [L][R*S]; -1 for an empty slot.
        Slot p belongs to rank p // S."""
        h, n = self._handle(), self.ranks * self.slots
        out = np.empty((self.layers, n), dtype=np.int32)
        for l in range(self.layers):
            out[l] = np.ctypeslib.as_array(self._lib.moeplace_placement_phy2log(h, l), (n,))
        return out

    @property
    def share(self):
        """Routing share of every slot, float64 [L][R*S] (0 for empty slots;
        an expert's shares sum to 1)."""
        h, n = self._handle(), self.ranks * self.slots
        out = np.empty((self.layers, n), dtype=np.float64)
        for l in range(self.layers):
            out[l] = np.ctypeslib.as_array(self._lib.moeplace_placement_share(h, l), (n,))
        return out

    @property
    def logcnt(self):
        """Replica count of every expert, int32 [L][E]."""
        h = self._handle()
        out = np.empty((self.layers, self.experts), dtype=np.int32)
        for l in range(self.layers):
            check(self._lib.moeplace_placement_logcnt(h, l, ptr(out[l])))
        return out

    @property
    def max_replicas(self):
        """Largest replica count over all layers and experts."""
        return check(self._lib.moeplace_placement_max_replicas(self._handle()))

    @property
    def log2phy(self):
        """Slots of every expert, int32 [L][E][max_replicas], padded with -1."""
        h, m = self._handle(), max(1, self.max_replicas)
        out = np.empty((self.layers, self.experts, m), dtype=np.int32)
        for l in range(self.layers):
            check(self._lib.moeplace_placement_log2phy(h, l, m, ptr(out[l])))
        return out

    def validate(self):
        """Raises moeplace.Error if an invariant does not hold."""
        check(self._lib.moeplace_placement_validate(self._handle()))

    def rank_loads(self, loads):
        """Load of every rank, float64 [L][R], for expert loads [L][E]."""
        lo = array(loads, "float", (self.layers, self.experts), "loads")
        out = np.empty((self.layers, self.ranks), dtype=np.float64)
        for l in range(self.layers):
            check(self._lib.moeplace_placement_rank_loads(self._handle(), l, ptr(lo[l]),
                                                          ptr(out[l])))
        return out

    def imbalance(self, loads):
        """metrics.md's imbalance of expert loads [L][E] under this placement
        (sum over layers of the max rank load / of the mean rank load)."""
        lo = array(loads, "float", (self.layers, self.experts), "loads")
        v = ctypes.c_double()
        check(self._lib.moeplace_placement_imbalance(self._handle(), ptr(lo), ctypes.byref(v)))
        return v.value

    def diff(self, other, topology=None, expert_bytes=1.0):
        """Replica moves from self to other: dict moves, bytes_moved,
        cross_node_bytes, cost."""
        st = _lib.MoveStats()
        check(self._lib.moeplace_placement_diff(
            self._handle(), _placement_handle(other, "other"), _topo_handle(topology),
            as_float(expert_bytes, "expert_bytes"), ctypes.byref(st)))
        return _lib.struct_dict(st)

    def copy(self):
        """An independent copy."""
        h = ctypes.c_void_p()
        check(self._lib.moeplace_placement_clone(ctypes.byref(h), self._handle()))
        return Placement._wrap(h, self.stats)

    def __repr__(self):
        if not self._h:
            return "<moeplace.Placement (destroyed)>"
        return "<moeplace.Placement layers=%d experts=%d ranks=%d slots=%d>" % (
            self.layers, self.experts, self.ranks, self.slots)


def _placement_handle(p, name):
    if not isinstance(p, Placement):
        raise TypeError("%s must be a moeplace.Placement, not %s" % (name, type(p).__name__))
    return p._handle()


def _topo_handle(t):
    if t is None:
        return None
    if not isinstance(t, Topology):
        raise TypeError("topology must be a moeplace.Topology, not %s" % type(t).__name__)
    return t._handle()


def as_shares(value, name="shares"):
    """A share policy name ("weighted" or "even") as moeplace_share_policy."""
    if not isinstance(value, str):
        raise TypeError("%s must be 'weighted' or 'even', not %s" % (name, type(value).__name__))
    out = ctypes.c_int()
    check(_lib.core().moeplace_share_policy_parse(value.encode(), ctypes.byref(out)))
    return out.value


_OPTIONS = {"migration_weight": as_float, "byte_budget": as_float, "expert_bytes": as_float,
            "min_gain": as_float, "max_iterations": as_int, "time_limit_ms": as_float,
            "step_time_s": as_float, "horizon_steps": as_float, "time_budget_s": as_float,
            "groups": as_int, "shares": as_shares, "spread": as_float,
            "fill_slots": lambda v, name: int(bool(v))}


def place(loads, ranks=None, *, slots, topology=None, current=None, samples=None, **options):
    """Places the experts of every layer for loads [L][E] (non-negative).

    Give either ``ranks`` (R ranks, one node) or ``topology`` (a Topology);
    ``slots`` is S, slots per rank (R*S >= E). ``current``: the Placement in
    force, which the result stays close to (moves count against it).
    options (moeplace_place_options; None = no limit): migration_weight,
    byte_budget, expert_bytes, min_gain, max_iterations, time_limit_ms,
    step_time_s, horizon_steps, time_budget_s (the seconds-priced rule).
    groups (G contiguous expert groups; with a topology of N > 1 nodes,
    N dividing G, each group's replicas stay on one node).
    shares ("weighted", the default, or "even": every replica 1/n of its
    expert's tokens, as vLLM/SGLang/EPLB routers split).
    spread (>= 0, default 0: noise-aware placement, docs/PLACEMENT.md).
    fill_slots (with shares="even": every slot holds a replica, as EPLB's
    maps; docs/PLACEMENT.md, "Filling every slot").
    ``samples``: load samples [n][L][E] (non-negative, the units of loads;
    e.g. the forecast plus recent windows' deviations): the placement is
    refined for the mean over them of each layer's max rank load, and the
    keep-or-move rule weighs that (docs/PLACEMENT.md, "Load samples").
    Returns a Placement whose ``stats`` holds imbalance, lower_bound, gap,
    moves, bytes_moved, groups, split_groups, ...; its phy2log, log2phy,
    logcnt and share are numpy arrays in EPLB's conventions."""
    lib = _lib.core()
    lo = np.asarray(loads)
    if lo.ndim != 2:
        raise ValueError("loads must have shape [layers][experts], got %d dimensions" % lo.ndim)
    layers, experts = lo.shape
    lo = array(lo, "float", lo.shape, "loads")
    if (lo < 0).any():
        raise ValueError("loads must be non-negative")
    slots = as_int(slots, "slots", 1)
    if (ranks is None) == (topology is None):
        raise TypeError("place() needs exactly one of ranks= and topology=")
    own_topo = None
    if topology is None:
        own_topo = topology = Topology.shape(1, as_int(ranks, "ranks", 1))
    th = _topo_handle(topology)
    opt = _lib.PlaceOptions()
    lib.moeplace_place_options_init(ctypes.byref(opt))
    for key, value in options.items():
        if key not in _OPTIONS:
            raise TypeError("place(): unknown option %r (known: %s)" % (key, ", ".join(_OPTIONS)))
        if value is None and key in ("byte_budget", "time_limit_ms", "time_budget_s"):
            value = -1.0  # MOEPLACE_NO_LIMIT
        setattr(opt, key, _OPTIONS[key](value, key))
    if samples is not None:  # kept referenced (sm) until the call returns
        sm = np.asarray(samples)
        if sm.ndim != 3:
            raise ValueError("samples must have shape [n][layers][experts], got %d dimensions"
                             % sm.ndim)
        sm = array(sm, "float", (sm.shape[0], layers, experts), "samples")
        if (sm < 0).any():
            raise ValueError("samples must be non-negative")
        opt.n_samples, opt.samples = sm.shape[0], ptr(sm)
    ch = None if current is None else _placement_handle(current, "current")
    out = ctypes.c_void_p()
    st = _lib.PlaceStats()
    try:
        check(lib.moeplace_place(th, layers, experts, slots, ptr(lo), ch, ctypes.byref(opt),
                                 ctypes.byref(out), ctypes.byref(st)))
    finally:
        if own_topo is not None:
            own_topo.close()
    stats = _lib.struct_dict(st)
    stats["shares"] = lib.moeplace_share_policy_name(stats["shares"]).decode()
    return Placement._wrap(out, PlaceStats(stats))


def plan(current, new, topology=None, expert_bytes=1.0):
    """The transfers that turn placement ``current`` into ``new``: a numpy
    structured array of TRANSFER_DTYPE (layer, expert, src_rank, src_slot,
    dst_rank, dst_slot, link, bytes); ``link`` indexes LINK_CLASSES."""
    lib = _lib.core()
    out = ctypes.POINTER(_lib.Transfer)()
    n = ctypes.c_size_t()
    check(lib.moeplace_migration_plan(_placement_handle(current, "current"),
                                      _placement_handle(new, "new"), _topo_handle(topology),
                                      as_float(expert_bytes, "expert_bytes"), ctypes.byref(out),
                                      ctypes.byref(n)))
    try:
        res = np.zeros(n.value, dtype=TRANSFER_DTYPE)
        if n.value:
            ctypes.memmove(res.ctypes.data, out, n.value * ctypes.sizeof(_lib.Transfer))
        return res
    finally:
        lib.moeplace_transfers_free(out)


def migration_seconds(transfers, topology):
    """The modelled wall time in seconds of a migration plan (an array of
    TRANSFER_DTYPE, as plan() returns) on ``topology``: each transfer takes
    bytes / its link class's bandwidth, every rank sends and receives its
    transfers one after the other, ranks in parallel
    (moeplace_migration_seconds)."""
    t = np.ascontiguousarray(transfers)
    if t.dtype != TRANSFER_DTYPE or t.ndim != 1:
        raise TypeError("transfers must be a 1-d array of moeplace.TRANSFER_DTYPE (from plan())")
    th = _topo_handle(topology)
    if th is None:
        raise TypeError("migration_seconds() needs a moeplace.Topology")
    out = ctypes.c_double()
    check(_lib.core().moeplace_migration_seconds(
        th, ctypes.cast(t.ctypes.data, ctypes.POINTER(_lib.Transfer)), len(t), ctypes.byref(out)))
    return out.value
