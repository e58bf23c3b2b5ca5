/* moeplace/placement.h: topology- and migration-aware expert placement with
 * replicas and uneven routing shares (docs/PLACEMENT.md). Pure computation:
 * no MPI, no I/O except the explicit file readers/writers. Include <moeplace.h>.
 *
 * Model, per MoE layer: E logical experts with predicted loads, R ranks with
 * S slots each (R*S >= E). Physical slot p belongs to rank p / S. A placement
 * gives every slot a logical expert (or -1: empty) and a routing share; every
 * expert has at least one replica, no rank holds two replicas of the same
 * expert of a layer, and the shares of an expert's replicas sum to 1. The
 * output arrays follow DeepSeek EPLB's conventions (phy2log, logcnt, log2phy),
 * plus the shares EPLB lacks. */
#ifndef MOEPLACE_H
#error Please include <moeplace.h> instead of <moeplace/placement.h>.
#endif

#ifndef MOEPLACE_PLACEMENT_H
#define MOEPLACE_PLACEMENT_H

#include <stddef.h>
#include <stdint.h>

#include <moeplace/base.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Topology ----------------------------------------------------------- */

/* Class of a pair of ranks, from closest to farthest. Moving a byte between
 * two ranks costs the per-byte cost of their class. */
typedef enum moeplace_link_class {
  MOEPLACE_LINK_INVALID = -1,   /* no class: a rank outside the topology */
  MOEPLACE_LINK_SAME_RANK = 0,  /* a rank with itself: free */
  MOEPLACE_LINK_SAME_NUMA = 1,  /* same node, package and NUMA domain */
  MOEPLACE_LINK_SAME_PACKAGE = 2,
  MOEPLACE_LINK_SAME_NODE = 3,
  MOEPLACE_LINK_OTHER_NODE = 4
} moeplace_link_class;
#define MOEPLACE_LINK_CLASSES 5

typedef struct moeplace_topology moeplace_topology;

/* A regular cluster: `nodes` x `ranks_per_node` ranks, numbered node-major;
 * inside a node the ranks are spread in order over packages_per_node x
 * numa_per_package NUMA domains (pass 1 and 1 if unknown). Default costs per
 * byte: same NUMA 1, same package 1.5, same node 2, other node 8.
 * Returns MOEPLACE_OK and *out (the caller destroys it with
 * moeplace_topology_destroy()), or MOEPLACE_ERR_ARG (a count < 1 or too many
 * ranks) / MOEPLACE_ERR_NOMEM. */
int moeplace_topology_create_shape(moeplace_topology **out, int nodes, int ranks_per_node,
                                   int packages_per_node, int numa_per_package);

/* An explicit table: rank r is on node[r], package[r] (a label inside its
 * node) and numa[r] (a label inside its package), arrays [ranks] read during
 * the call only. Labels are >= 0. Returns as moeplace_topology_create_shape(). */
int moeplace_topology_create_table(moeplace_topology **out, int ranks, const int *node,
                                   const int *package, const int *numa);

/* Reads a cluster-shape file (format: docs/PLACEMENT.md); path "-" reads
 * stdin (named "<stdin>" in messages), as moeplace_trace_open. Returns
 * MOEPLACE_OK and *out (destroy it), MOEPLACE_ERR_IO (cannot open or read:
 * the message names the file) or MOEPLACE_ERR_FORMAT ("file:line: reason"). */
int moeplace_topology_load(moeplace_topology **out, const char *path);

/* Accepts NULL. */
void moeplace_topology_destroy(moeplace_topology *topo);

/* Ranks and nodes (0 for NULL). */
int moeplace_topology_ranks(const moeplace_topology *topo);
int moeplace_topology_nodes(const moeplace_topology *topo);
/* Node index of a rank (0..nodes-1, renumbered in order of first
 * appearance), or MOEPLACE_ERR_ARG for NULL or a rank out of range. */
int moeplace_topology_rank_node(const moeplace_topology *topo, int rank);

/* Per-byte cost of a class (any finite non-negative unit: the migration
 * weight of the options converts cost into load units). set_cost returns
 * MOEPLACE_ERR_ARG for NULL, an unknown class or a bad cost; cost returns 0
 * for NULL or an unknown class. */
int moeplace_topology_set_cost(moeplace_topology *topo, moeplace_link_class cls, double cost);
double moeplace_topology_cost(const moeplace_topology *topo, moeplace_link_class cls);
/* Bandwidth of a class in bytes per second, for the migration time model
 * (moeplace_migration_seconds) and the seconds-priced keep-or-move rule
 * (moeplace_place_options.step_time_s). Defaults: same NUMA 100e9, same
 * package 50e9, same node 25e9, other node 12.5e9 (an NVLink-class node and
 * a 100 Gb/s network); a rank with itself is free (infinite, not settable).
 * set_bandwidth returns MOEPLACE_ERR_ARG for NULL, SAME_RANK or an unknown
 * class, or a bandwidth outside [1, 1e18] bytes/s (1 byte/s to 1 EB/s: a
 * NaN, an infinity, a tiny or subnormal one would make every modelled
 * migration time meaningless); bandwidth returns 0 for NULL or an unknown
 * class. */
int moeplace_topology_set_bandwidth(moeplace_topology *topo, moeplace_link_class cls,
                                    double bytes_per_s);
double moeplace_topology_bandwidth(const moeplace_topology *topo, moeplace_link_class cls);
/* Class of ranks a and b; MOEPLACE_LINK_INVALID, with moeplace_last_error()
 * set, if topo is NULL or a or b is not in [0, ranks). */
moeplace_link_class moeplace_topology_class(const moeplace_topology *topo, int a, int b);

/* ---- Placement ---------------------------------------------------------- */

typedef struct moeplace_placement moeplace_placement;

/* An all-empty placement (every slot -1, share 0) of layers x (ranks x
 * slots) slots for `experts` experts. Returns MOEPLACE_OK and *out (the
 * caller destroys it with moeplace_placement_destroy()), or MOEPLACE_ERR_ARG
 * (a count < 1, more experts than ranks x slots, or a shape too large) /
 * MOEPLACE_ERR_NOMEM, with *out = NULL. */
int moeplace_placement_create(moeplace_placement **out, int layers, int experts, int ranks,
                              int slots);
/* A deep copy of src, returned as create does. */
int moeplace_placement_clone(moeplace_placement **out, const moeplace_placement *src);
/* Accepts NULL. */
void moeplace_placement_destroy(moeplace_placement *p);

/* Shape (0 for NULL). */
int moeplace_placement_layers(const moeplace_placement *p);
int moeplace_placement_experts(const moeplace_placement *p);
int moeplace_placement_ranks(const moeplace_placement *p);
int moeplace_placement_slots(const moeplace_placement *p);

/* The slot arrays of one layer, [R*S] each, indexed by the global physical
 * slot g = rank * S + local slot: logical expert of each slot (-1 for empty)
 * and its share. They point into the placement (owned by it, valid until it
 * is destroyed). Writable, so that a caller can build a placement; check it
 * with moeplace_placement_validate(). NULL for NULL or a bad layer. */
int *moeplace_placement_phy2log(moeplace_placement *p, int layer);
double *moeplace_placement_share(moeplace_placement *p, int layer);
const int *moeplace_placement_phy2log_const(const moeplace_placement *p, int layer);
const double *moeplace_placement_share_const(const moeplace_placement *p, int layer);

/* Replica count of each expert of a layer: logcnt [E] (EPLB's logcnt).
 * MOEPLACE_ERR_ARG for NULL or a bad layer. */
int moeplace_placement_logcnt(const moeplace_placement *p, int layer, int *logcnt);
/* Largest replica count over all layers and experts (>= 0; 0 for NULL), or
 * MOEPLACE_ERR_NOMEM. */
int moeplace_placement_max_replicas(const moeplace_placement *p);
/* Global physical slots of each expert, EPLB's log2phy: [E][max_rep],
 * unused entries -1, replicas in slot order. MOEPLACE_ERR_ARG for NULL, a bad
 * layer or max_rep < moeplace_placement_max_replicas(). */
int moeplace_placement_log2phy(const moeplace_placement *p, int layer, int max_rep,
                               int *log2phy);

/* Checks every invariant: experts in range, every expert present, no rank
 * holding an expert twice in a layer, shares in [0,1] summing to 1 (within
 * 1e-6) per expert, empty slots with share 0. MOEPLACE_OK, or
 * MOEPLACE_ERR_ARG with a message naming the layer and slot. */
int moeplace_placement_validate(const moeplace_placement *p);

/* Repairs what EPLB allows but a moeplace placement does not: a rank
 * holding two or more replicas of one expert in a layer. In each such rank
 * the lowest slot keeps the replica and receives the shares of the others,
 * whose slots become empty (-1, share 0); the expert keeps its other ranks.
 * *removed (may be NULL) gets the number of replicas removed (0: nothing
 * was wrong). Other defects are left for moeplace_placement_validate().
 * MOEPLACE_ERR_ARG for NULL. */
int moeplace_placement_repair(moeplace_placement *p, int *removed);

/* Groups of each layer whose experts' replicas are on more than one node:
 * split [L] (per layer, 0..groups). groups must divide the expert count
 * (0 or 1: one group, the whole layer); the topology must have the
 * placement's rank count. MOEPLACE_ERR_ARG otherwise (named). */
int moeplace_placement_split_groups(const moeplace_placement *p, const moeplace_topology *topo,
                                    int groups, int *split);

/* Whether G = groups keeps every group on one node on this topology
 * (node-limited placement, moeplace_place_options.groups): 1 when the
 * topology has N > 1 nodes of equal rank counts and N divides G, else 0
 * (G <= 1, one node, N not dividing G, unequal nodes). Where it is 0,
 * moeplace_place with groups places as without them, as EPLB falls back
 * to its global policy, and reports split_groups. 0 for a NULL topology. */
int moeplace_groups_node_limited(const moeplace_topology *topo, int groups);

/* Sets every replica's share to 1 / the replica count of its expert in its
 * layer, and every empty slot's share (and that of a slot whose expert is
 * out of range) to 0: the routing of "every replica gets the same part".
 * Does not validate; call moeplace_placement_validate() afterwards. */
int moeplace_placement_equal_shares(moeplace_placement *p);

/* Loads each rank gets: rank_load [R] for one layer's expert loads [E]
 * (each slot gets its expert's load x its share). MOEPLACE_ERR_ARG for NULL
 * or a bad layer. */
int moeplace_placement_rank_loads(const moeplace_placement *p, int layer, const double *loads,
                                  double *rank_load);

/* docs/metrics.md's imbalance of `loads` [L][E] under this placement, into
 * *imbalance: sum over layers of the max rank load / sum over layers of the
 * mean rank load (1.0 when there is no load). MOEPLACE_ERR_ARG for NULL
 * or a load that moeplace_place() would refuse (negative, NaN, > 1e150),
 * MOEPLACE_ERR_NOMEM. */
int moeplace_placement_imbalance(const moeplace_placement *p, const double *loads,
                                 double *imbalance);

/* Replica moves from `from` to `to`: a move is a (layer, expert, rank) that
 * `to` has and `from` has not (a replica changing slots within its rank is
 * not one). Bytes use expert_bytes per replica; the cost
 * of a move is expert_bytes times the cost of the closest class from a rank
 * that held the expert in `from`. topo may be NULL (then cross_node_bytes
 * is 0 and cost counts every byte once). */
typedef struct moeplace_move_stats {
  int64_t moves;
  double bytes_moved;
  double cross_node_bytes;
  double cost; /* sum of bytes x class cost */
  uint64_t reserved[4]; /* zeroed by the library (ABI: moeplace/base.h) */
} moeplace_move_stats;
/* Fills *stats; MOEPLACE_ERR_ARG for NULL placements or stats, or shapes
 * that differ (or a topology with another rank count). */
int moeplace_placement_diff(const moeplace_placement *from, const moeplace_placement *to,
                            const moeplace_topology *topo, double expert_bytes,
                            moeplace_move_stats *stats);

/* JSON form (docs/PLACEMENT.md): {"ranks","slots","layers","experts",
 * "phy2log" [L][R*S], "log2phy" [L][E][max_rep], "logcnt" [L][E] (EPLB's
 * three maps, global slot = rank * slots + local slot, log2phy padded with
 * -1), "placement":[{"layer","phy2log","share","logcnt"}], ...}. The writer
 * adds the stats if given (may be NULL) and writes atomically (a failed
 * write leaves `path` as it was; "-" is stdout); MOEPLACE_ERR_IO names the
 * file. The reader accepts what the writer wrote (other keys are ignored),
 * or a map with only "ranks", "slots" and the top-level "phy2log" (layers
 * and experts then optional: experts defaults to the largest id + 1); a
 * layer without "share" gets equal shares. It checks the declared shape
 * against the entries before allocating, and validates the result:
 * MOEPLACE_OK and *out (destroy it), MOEPLACE_ERR_IO (cannot open or read)
 * or MOEPLACE_ERR_FORMAT ("file: reason"), *out = NULL. */
struct moeplace_place_stats;
int moeplace_placement_write_json(const moeplace_placement *p,
                                  const struct moeplace_place_stats *stats, const char *path);
int moeplace_placement_read_json(moeplace_placement **out, const char *path);
/* As moeplace_placement_read_json, but a rank holding one expert twice (as
 * an EPLB map may) is repaired by moeplace_placement_repair() before the
 * validation instead of refused; *repaired (may be NULL) gets the number of
 * replicas removed, so that the caller can warn. */
int moeplace_placement_read_json_repair(moeplace_placement **out, const char *path,
                                        int *repaired);

/* ---- Solving ------------------------------------------------------------ */

/* How an expert's tokens are split among its replicas (docs/PLACEMENT.md). */
typedef enum moeplace_share_policy {
  /* Each replica gets its own share, optimised with the positions (the
   * router must honour moeplace's shares). */
  MOEPLACE_SHARES_WEIGHTED = 0,
  /* Every replica of an expert gets exactly 1 / its replica count, as the
   * routers of vLLM, SGLang and DeepSeek's EPLB maps split tokens; counts
   * and positions are optimised for that objective. */
  MOEPLACE_SHARES_EVEN = 1
} moeplace_share_policy;

/* "weighted" or "even"; NULL for a value that is none. Static storage. */
const char *moeplace_share_policy_name(moeplace_share_policy policy);
/* The policy named `name` ("weighted" or "even") into *out: MOEPLACE_OK, or
 * MOEPLACE_ERR_ARG (NULL or an unknown name, quoted in the message). */
int moeplace_share_policy_parse(const char *name, moeplace_share_policy *out);

typedef struct moeplace_place_options {
  /* Load units (tokens) one unit of migration cost (bytes x class cost) is
   * worth: a change is made only if it lowers the sum over layers of the
   * max rank load by more than migration_weight x its cost. 0: migration is
   * free (but unchanged replicas are still preferred on ties). */
  double migration_weight;
  /* Hard cap on bytes moved per call; MOEPLACE_NO_LIMIT (< 0, the default):
   * none; 0: nothing moves (only the shares are re-optimised). */
  double byte_budget;
  /* Bytes of one expert replica's state (weights, optimizer state...). */
  double expert_bytes;
  /* Keep-or-move threshold in imbalance units (default 2e-3): replicas move
   * only if the predicted imbalance gain over the current placement (with
   * re-optimised shares) exceeds min_gain + the migration's weighted cost
   * divided by the sum of the layers' mean rank loads; each moved replica
   * is also charged min_gain x its layer's mean rank load when candidates
   * are compared. Only applies against a current placement. */
  double min_gain;
  /* Local-search effort: improvement iterations per layer (default 64). */
  int max_iterations;
  /* Soft wall-clock limit in ms for the local search; MOEPLACE_NO_LIMIT
   * (< 0, the default): none; 0: no local search; NaN: MOEPLACE_ERR_ARG.
   * The constructive steps always run to the end. */
  double time_limit_ms;
  /* Keep-or-move priced in seconds (docs/PLACEMENT.md): > 0 turns it on.
   * The time the experts' part of one training step takes at imbalance 1.0
   * (perfect balance); a step's expert time grows with the imbalance. A
   * change is made only if the time it saves over horizon_steps steps,
   * (imbalance kept - imbalance new) x step_time_s x horizon_steps, exceeds
   * its modelled migration time (moeplace_migration_seconds with topo's
   * bandwidths) plus min_gain x step_time_s x horizon_steps; candidates are
   * ranked with each move priced at its transfer time (migration_weight and
   * the per-byte costs are then not used). 0 (the default): the rule of
   * migration_weight and min_gain above. */
  double step_time_s;
  /* Steps the new placement stays in force (the rebalance interval), > 0
   * when step_time_s > 0 (default 500). */
  double horizon_steps;
  /* Hard cap on the modelled migration time per call, in seconds, with
   * step_time_s > 0; MOEPLACE_NO_LIMIT (< 0, the default): none. */
  double time_budget_s;
  /* Expert groups (EPLB's num_groups): 0 or 1, none; G > 1, the experts
   * form G contiguous groups of E / G (E must be a multiple of G). With a
   * topology of N > 1 nodes of equal rank counts and G a multiple of N
   * (moeplace_groups_node_limited), the placement is node-limited: every
   * replica of a group's experts is on one node, G / N groups per node
   * (docs/PLACEMENT.md, "Expert groups"). Otherwise (one node, N not
   * dividing G, unequal nodes) groups constrain nothing, as EPLB then uses
   * its global policy: only split_groups is reported. */
  int groups;
  /* Share policy (default MOEPLACE_SHARES_WEIGHTED). With EVEN, the result's
   * shares are exactly 1 / replica count, imbalance and lower_bound are those
   * of equal splits, and the current placement is scored with equal shares. */
  moeplace_share_policy shares;
  /* Noise-aware placement (docs/PLACEMENT.md, "Spreading for per-step
   * noise"), >= 0. 0 (the default): the forecast mean loads are balanced
   * exactly (weighted shares reach the lower bound where slots allow) and a
   * fresh placement leaves the slots of idle replicas empty. mu > 0: every
   * slot of a fresh placement holds a replica (as EPLB's maps do; with even
   * shares, every slot an expert with load can take: idle experts get no
   * second replica, so their slots may stay empty: fill_slots fills them), replicas
   * already in place are never dropped for being idle, and weighted shares
   * minimise sum of squared rank loads + mu x sum of squared slot loads
   * (each expert's tokens split more evenly over its replicas, which
   * absorbs the per-step token noise a mean-optimal split concentrates). */
  double spread;
  /* 1: every slot of the result holds a replica, as in EPLB's maps, whose
   * consumers index expert weights by phy2log (docs/PLACEMENT.md, "Filling
   * every slot"); shares must be MOEPLACE_SHARES_EVEN. Each slot the
   * solver leaves empty gets a replica of the expert its rank does not
   * hold whose equal split then leaves the lowest max rank load (ties: one
   * the current placement has on that rank, then the lowest sum of squared
   * rank loads, then the lowest index). A slot stays empty only where its
   * rank holds every expert it may hold (node-limited groups), or, under a
   * byte_budget or time_budget_s, where only a transfer could fill it. The
   * replicas it adds count in the stats (moves, bytes, migration_s), also
   * where the current assignment is kept (kept_current is then 0 if the
   * fill transferred). 0 (the default):
   * the solver's slots as they are. */
  int fill_slots;
  /* Load samples for the step-to-step noise (docs/PLACEMENT.md, "Load
   * samples"): n_samples >= 0 (default 0: none) arrays of loads
   * [n_samples][layers][experts], in the units of `loads` (e.g. the
   * forecast plus each recent window's deviation from the recent mean),
   * finite and >= 0. With n_samples >= 2 the placement chosen on the mean
   * loads is then refined by swapping the contents of two slots of
   * different ranks while that lowers the mean over the samples of the
   * layer's max rank load by more than the swap's migration price, and the
   * keep-or-move rule weighs that sample mean: experts whose loads rise
   * together are kept apart. The caller keeps ownership; not read after
   * the call. Ignored inside node-limited groups. */
  int n_samples;
  const double *samples;
  uint64_t reserved[1]; /* zeroed by moeplace_place_options_init() (ABI: moeplace/base.h) */
} moeplace_place_options;

/* Writes every default (and zeroes reserved). Accepts NULL (does nothing). */
void moeplace_place_options_init(moeplace_place_options *opt);

typedef struct moeplace_place_stats {
  int layers, experts, ranks, slots;
  double imbalance;         /* predicted, metrics.md's formula on the given loads */
  double lower_bound;       /* see docs/PLACEMENT.md: per layer
                               max(total/R, min over replica counts of max w/c),
                               valid for both share policies */
  double gap;               /* (imbalance - lower_bound) / lower_bound */
  double current_imbalance; /* of the current placement with the policy's
                               shares: re-optimised (weighted) or equal (even);
                               0 when there is no current placement */
  int kept_current;         /* 1: no replica moved (gain did not pay, or nothing to gain) */
  int64_t moves;
  double bytes_moved;
  double cross_node_bytes;
  double migration_cost;
  double solve_ms;
  double migration_s; /* modelled time of the migration (0 without a current placement) */
  double saving_s;    /* with step_time_s > 0: time the change saves over horizon_steps
                         (predicted; 0 when kept or when the seconds model is off) */
  int groups;               /* the groups option in force (0: none) */
  int split_groups;         /* sum over layers of the groups whose replicas are on
                               more than one node (0 when node-limited) */
  moeplace_share_policy shares; /* the policy the figures are computed with */
  /* (4 bytes of padding; the tail was used up in 0.2.0 and grown by 4 slots,
   * before the release of soname 1) */
  uint64_t reserved[4]; /* zeroed by the library (ABI: moeplace/base.h) */
} moeplace_place_stats;

/* Computes a placement for loads [layers][experts] (non-negative, at most
 * 1e150: the solver squares them; scale larger ones down).
 * topo gives R; slots is S. current may be NULL (a fresh placement);
 * otherwise it must have the same shape, and the result stays close to it
 * (moves are counted relative to it, the byte budget applies, and the
 * keep-or-move rule of min_gain decides). opt may be NULL for defaults,
 * stats may be NULL. Deterministic: the same inputs give the same result.
 * Returns MOEPLACE_OK and *out, a new valid placement the caller destroys;
 * MOEPLACE_ERR_ARG (a bad option, load, shape or current placement, named
 * in the message) or MOEPLACE_ERR_NOMEM with *out = NULL. */
int moeplace_place(const moeplace_topology *topo, int layers, int experts, int slots,
                   const double *loads, const moeplace_placement *current,
                   const moeplace_place_options *opt, moeplace_placement **out,
                   moeplace_place_stats *stats);

/* ---- Migration plan ----------------------------------------------------- */

/* One transfer of a migration plan (an array element: its layout is fixed
 * within a major version). */
typedef struct moeplace_transfer {
  int layer, expert;
  int src_rank, src_slot; /* a slot holding the expert in the old placement */
  int dst_rank, dst_slot; /* the slot that holds it in the new placement */
  moeplace_link_class link;
  double bytes;
} moeplace_transfer;

/* The transfers that turn `from` into `to`, in order of layer and then of
 * destination slot (src_slot and dst_slot are global slot indices, rank x S
 * + local slot):
 *  - one per move (see moeplace_placement_diff): the source is the closest
 *    old replica by link class; ties go to the sender with the fewest
 *    transfers to other ranks so far;
 *  - one local copy (link MOEPLACE_LINK_SAME_RANK, src_rank == dst_rank) per
 *    slot that gets an expert its rank held in another slot of `from`: a
 *    rank keeping a replica but in another slot (a runtime's per-slot
 *    buffers must follow it). Not a move: moeplace_placement_diff skips
 *    these, and moeplace_place's results never contain them (a kept replica
 *    stays in its slot).
 * Every transfer has bytes = expert_bytes. *out is malloc'd (free with
 * moeplace_transfers_free); *count may be 0. */
int moeplace_migration_plan(const moeplace_placement *from, const moeplace_placement *to,
                            const moeplace_topology *topo, double expert_bytes,
                            moeplace_transfer **out, size_t *count);
/* Accepts NULL. */
void moeplace_transfers_free(moeplace_transfer *transfers);

/* The modelled wall time of a migration plan, into *seconds: each transfer
 * takes bytes / the bandwidth of its link class (topo's bandwidths; local
 * copies are free); every rank sends its transfers one after the other and
 * receives its transfers one after the other, ranks work in parallel, so the
 * migration lasts as long as the busiest rank's sending or receiving
 * (docs/PLACEMENT.md, "Pricing a rebalance in seconds"). MOEPLACE_ERR_ARG for
 * NULL topo or seconds, transfers NULL with count > 0, or a transfer whose
 * ranks are outside topo; MOEPLACE_ERR_NOMEM. */
int moeplace_migration_seconds(const moeplace_topology *topo, const moeplace_transfer *transfers,
                               size_t count, double *seconds);

/* Splits `tokens` of one expert among its n replicas by their routing
 * shares[n] (non-negative, finite; normalised by their sum) into whole
 * tokens out[n] summing to `tokens`: each replica gets
 * floor(tokens * share / sum), and the tokens left (fewer than n) go one
 * each to the largest remainders, ties to the lower index (slot order, as
 * moeplace_runtime_routing() lists replicas). Deterministic: the same
 * inputs give the same split on every rank. Exact for tokens < 2^53. Local;
 * the caller's arrays. MOEPLACE_ERR_ARG for NULL arrays, n <= 0, a
 * negative or non-finite share, or shares summing to 0 with tokens > 0
 * (with 0 tokens: all zeros). */
int moeplace_split_tokens(uint64_t tokens, const double *shares, int n, uint64_t *out);

#ifdef __cplusplus
}
#endif

#endif /* MOEPLACE_PLACEMENT_H */
