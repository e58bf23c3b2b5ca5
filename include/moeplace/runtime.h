/* moeplace/runtime.h: the MPI runtime an MoE trainer links (libmoeplace-mpi,
 * pkg-config moeplace-mpi). Include this header: it includes <mpi.h> and
 * <moeplace.h>.
 *
 * A training job creates one runtime per MPI communicator (collective),
 * registers the memory that holds each local expert slot's state (weights,
 * optimizer moments: any number of buffers, the same sizes for every slot of
 * a layer), and then, once per training step:
 *
 *     for each layer: moeplace_runtime_record(rt, layer, tokens_per_local_slot);
 *     moeplace_runtime_step(rt, &info);       // collective, at a step boundary
 *     if (info.rebalanced) re-read the routing table for the dispatcher
 *
 * (or moeplace_runtime_record_experts(rt, layer, tokens_per_logical_expert),
 * the router's counts). record is local and cheap (a few additions). step
 * is collective but only communicates at window boundaries (one MPI_Gather
 * of the window's [layers][slots] totals to the coordinator, and one
 * MPI_Ireduce of the per-expert records when some rank made any) and at
 * rebalance boundaries, where the coordinator hands the forecast of the load
 * and the new placement (the placement engine decides whether moving
 * replicas pays) to its decision thread and returns; decision_lag_windows
 * windows later the coordinator broadcasts the result, and every rank builds
 * the same migration plan and moves the affected expert
 * state into staging memory, verifying an xxHash checksum of every expert it
 * receives (non-blocking point-to-point MPI; between ranks of one node, a
 * copy into the receiver's MPI-3 shared window, see shm_transfers). The new placement is
 * committed on every rank only if every rank verified every expert; if not,
 * every rank keeps the old placement, no registered byte has changed, and
 * step returns MOEPLACE_ERR_VERIFY on every rank. See docs/RUNTIME.md.
 *
 * Slots. Each rank has `slots_per_rank` slots per layer; global slot g of a
 * layer is local slot g % slots_per_rank of rank g / slots_per_rank. A slot
 * holds one replica of one logical expert (or nothing: -1). The initial
 * placement puts expert g % experts in global slot g (so with
 * ranks * slots_per_rank == experts: the usual contiguous expert parallelism).
 *
 * Errors: every call returns MOEPLACE_OK or a negative MOEPLACE_ERR_*, with
 * the reason in moeplace_last_error(); nothing aborts the job (the runtime's
 * communicator uses MPI_ERRORS_RETURN). Collective calls return the same
 * status on every rank. Thread safety: one runtime is used by one thread at a
 * time. With decision_lag_windows > 0 (the default) the coordinator runs a
 * background thread that never calls MPI: MPI must be initialised with
 * MPI_Init_thread() at MPI_THREAD_FUNNELED or higher (create checks).
 *
 * C++: the declarations are wrapped in extern "C"; include this header from
 * C++ code as is. This header includes <mpi.h>.
 */
#ifndef MOEPLACE_RUNTIME_H
#define MOEPLACE_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

/* The MPI C++ bindings (removed from MPI-3) do not compile cleanly with modern
 * compilers; moeplace only needs the C API, also from C++. */
#if defined(__cplusplus) && !defined(OMPI_SKIP_MPICXX)
#define OMPI_SKIP_MPICXX 1
#endif
#if defined(__cplusplus) && !defined(MPICH_SKIP_MPICXX)
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <moeplace.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The default predictor: "auto" when the coordinator's decision thread has
 * CPUs of its own (the PUs of its host that no rank there is bound to; the
 * thread is bound to them), else "sw_avg", whose decisions cost ~0.1 ms: on
 * a core that trains, auto's ARIMA fits cost more step time than its better
 * forecast saves. moeplace_runtime_predictor() says which one runs. */
#define MOEPLACE_RUNTIME_PREDICTOR_DEFAULT "default"

/* Configuration. Fill it with moeplace_runtime_config_init(), then set
 * at least layers, experts and slots_per_rank. Every rank must pass the same
 * values (checked: MOEPLACE_ERR_MISMATCH on every rank otherwise). */
/* moeplace_runtime_config.warmup_steps: the first warm-up step chosen from
 * the interval and window at create (the default). */
#define MOEPLACE_RUNTIME_WARMUP_AUTO (-1)

typedef struct moeplace_runtime_config {
  int layers;              /* MoE layers (> 0) */
  int experts;             /* logical experts per layer (> 0) */
  int slots_per_rank;      /* expert slots per rank per layer; ranks*slots >= experts,
                              slots <= experts */
  int window;              /* steps per aggregation window (default 10) */
  int horizon;             /* steps the forecast covers (default 1000) */
  int rebalance_interval;  /* steps between rebalances, a multiple of window
                              (default 500); 0 disables rebalancing */
  int history_windows;     /* windows of load proportions the coordinator keeps
                              (default 256) for the fallback forecast, the mean
                              of the last rebalance interval (at most this many
                              windows), used when the forecaster fails; the
                              forecaster keeps its own bounded history */
  const char *predictor;   /* forecasting method of the predict engine: "auto"
                              (picks among the methods by their recent
                              errors), "sw_avg" (cheap), "arima", "last",
                              "lstm" (when built in); see
                              moeplace_predict_method_name(); or
                              MOEPLACE_RUNTIME_PREDICTOR_DEFAULT (the
                              default). The forecaster runs on the
                              coordinator's decision thread
                              (decision_lag_windows); with rebalancing off
                              (rebalance_interval 0) there is none */
  double migration_tradeoff; /* price of migration in predicted imbalance per
                                fraction of all expert state moved, times the
                                link class cost of each move (1 same NUMA, 1.5
                                same package, 2 same node, 8 other node, or the
                                cluster file's costs) (default 0.05). The
                                placement engine (moeplace_place) decides: it
                                moves replicas only if the predicted imbalance
                                gain over the placement in force (with
                                re-optimised shares) exceeds min_gain + this
                                price */
  int64_t migration_budget_bytes; /* max bytes moved per rebalance, a hard cap of
                                     moeplace_place: MOEPLACE_NO_LIMIT (< 0, the
                                     default) none; 0: no replica moves, only
                                     routing shares change */
  double min_gain;         /* predicted imbalance gain a change must bring, in
                              imbalance units (the same units as
                              moeplace_place_options.min_gain, to which it is
                              passed): replica moves must gain more than
                              min_gain + their price (above); a change of
                              routing shares alone (no byte moved) is committed
                              when it gains at least min_gain over the shares
                              in force. moeplace_place also charges min_gain x
                              the layer's mean rank load per moved replica
                              when it compares candidates (default 0.02) */
  int coordinator;         /* rank that aggregates and decides (default 0) */
  int ranks_per_node;      /* > 0: emulate nodes of this many consecutive ranks
                              instead of MPI_COMM_TYPE_SHARED (default 0) */
  const char *cluster_file; /* cluster-shape file of the placement engine
                               (docs/PLACEMENT.md) that replaces the discovered
                               topology, to emulate a cluster on one host; it must
                               describe exactly the communicator's ranks (NULL) */
  const char *hwloc_synthetic; /* hwloc synthetic description used instead of the
                                  machine ("pack:2 numa:1 core:4 pu:1"); NULL =
                                  the machine (or $HWLOC_XMLFILE / $HWLOC_SYNTHETIC) */
  size_t chunk_bytes;      /* migration message size (default 1 MiB) */
  int max_outstanding;     /* non-blocking requests in flight per rank (default 64) */
  int shm_transfers;       /* 1 (default): an expert moving between two ranks of
                              one node is copied by the sender straight into
                              the receiver's memory (MPI-3 shared windows),
                              with messages only to notify; 0: every transfer
                              uses point-to-point messages */
  double collective_timeout_s; /* deadline of each bounded collective (window
                                  aggregation, rebalance decision, migration
                                  agreements; docs/RUNTIME.md), in seconds:
                                  a rank missing past it is MOEPLACE_ERR_MPI
                                  and the runtime is then unusable (later
                                  calls MOEPLACE_ERR_STATE). MOEPLACE_NO_LIMIT
                                  (< 0, the default): wait for ever (polling
                                  for the first 2 ms, then sleeping between
                                  polls); 0 is refused */
  int groups;              /* expert groups (moeplace_place_options.groups): 0 or 1
                              none (default); G > 1 must divide experts, and on
                              N > 1 nodes every rebalance keeps each group's
                              replicas on one node (N must divide G, nodes of
                              equal size, or the rebalance fails). The initial
                              placement is not grouped: the first rebalance
                              gathers the groups (docs/RUNTIME.md) */
  moeplace_share_policy shares; /* how routing splits an expert's tokens among its
                                   replicas (docs/PLACEMENT.md): WEIGHTED (default)
                                   the placement engine's optimised shares; EVEN
                                   exactly 1/n each, the placements optimised for
                                   that; the routing table has those shares */
  int decision_lag_windows; /* where the rebalance decision (forecast and
                               placement) runs. K >= 1 (default 1): on a
                               background thread of the coordinator, which
                               only computes (with MPI initialised at
                               MPI_THREAD_FUNNELED or more; under plain
                               MPI_Init, MPI_THREAD_SINGLE, the decision is
                               computed inline at the boundary instead and
                               applied at the same step); the step at a
                               rebalance boundary returns at once and the
                               decision is applied at the window boundary K
                               windows later, on every rank, or at the first
                               window boundary after that where it has
                               finished (decision_wait); the result does not
                               depend on timing. K * window must not exceed
                               rebalance_interval. 0: inside the rebalancing
                               step, every rank waiting for it (no thread) */
  int migration_layers_per_step; /* 0 (default): a committed placement migrates
                                    every layer at once, in the step that
                                    applies it. N > 0: N layers per step (at
                                    most N layers' transfers pause each step),
                                    each group committed all-or-nothing on
                                    every rank before the next starts */
  double step_time_s;      /* prices each rebalance in seconds (docs/PLACEMENT.md,
                              "Pricing a rebalance in seconds"): a change is made
                              only if the expert time it saves until the next
                              interval boundary exceeds its modelled
                              migration time (the topology's link bandwidths,
                              e.g. a cluster file's `bandwidth` lines) plus
                              min_gain x that horizon; migration_tradeoff is then
                              not used. > 0: the time of the experts' part of one
                              step at perfect balance, as configured. 0:
                              measured, the median wall time between the
                              trainer's step calls over the last window divided
                              by the imbalance of the placement in force on that
                              window's loads (which counts the whole step as
                              expert time: an upper bound); decisions then
                              depend on timing, so two runs of one job may
                              rebalance differently. < 0 (MOEPLACE_NO_LIMIT, the
                              default): off, the rule of min_gain and
                              migration_tradeoff: decisions depend on the loads
                              only (reproducible, also across a restart) */
  int plan_only;           /* 1: a rebalance (or apply_placement) decides and
                              builds the migration plan but moves no byte:
                              the step returns with info.plan_pending, the
                              trainer moves the experts itself
                              (moeplace_runtime_pending_plan()) and calls
                              moeplace_runtime_confirm(); registered buffers
                              only price the moves (register sizes with a
                              NULL pointer). 0 (default): the runtime migrates */
  int decision_wait;       /* a threaded decision (decision_lag_windows >= 1)
                              still running when it is due: 0 (default) the
                              ranks go on training and it is applied at the
                              next window boundary where it has finished (the
                              placement is the same, only the step it takes
                              effect at depends on the machine); 1: the
                              coordinator waits for it, so that the step of
                              every change is reproducible */
  double spread;           /* noise-aware placement, >= 0 (moeplace_place_options
                              .spread, docs/PLACEMENT.md "Spreading for
                              per-step noise"): 0 (default) balances the
                              forecast mean exactly; mu > 0 keeps replicas in
                              place when idle and splits weighted shares more
                              evenly, absorbing per-step token noise
                              (moeplace-replay uses 1) */
  int64_t warmup_steps;    /* > 0: more rebalances in the first interval, at
                              this step and each time the steps seen double
                              (k, 2k, 4k, ... below rebalance_interval), from
                              the windows seen so far (the initial placement
                              knew no load); a multiple of window below
                              rebalance_interval. 0: the first rebalance is
                              at rebalance_interval.
                              MOEPLACE_RUNTIME_WARMUP_AUTO (default): two
                              windows, or decision_lag_windows windows if
                              longer (0 unless below rebalance_interval):
                              20, 40, 80, 160, 320 for the defaults */
  int load_samples;        /* decisions see the last load_samples windows (the
                              history keeps history_windows; >= 2 to count) as samples
                              of the steps' noise around the forecast
                              (moeplace_place_options.samples, docs/PLACEMENT.md
                              "Load samples"); 0: none. Default 50, as
                              moeplace-replay --samples */
  uint32_t reserved32;  /* zeroed by moeplace_runtime_config_init() (ABI: moeplace/base.h) */
} moeplace_runtime_config;

/* Sets every field to its documented default (layers/experts/slots to 0,
 * reserved zeroed); the strings point at static storage. Accepts NULL. */
void moeplace_runtime_config_init(moeplace_runtime_config *cfg);

typedef struct moeplace_runtime moeplace_runtime;

/* Collective over comm. Validates cfg, checks that every rank passed the same
 * configuration, discovers the topology and sets the initial placement. The
 * runtime works on a duplicate of comm and copies cfg (its strings too).
 * Returns, on every rank alike: MOEPLACE_OK and *out (destroy it with
 * moeplace_runtime_destroy(), collectively); MOEPLACE_ERR_ARG (an invalid
 * field, on any rank: named in the message), MOEPLACE_ERR_MISMATCH (ranks
 * passed different configurations: the field is named),
 * MOEPLACE_ERR_STATE (MPI not initialised), MOEPLACE_ERR_MPI or
 * MOEPLACE_ERR_NOMEM; *out = NULL on failure. */
int moeplace_runtime_create(moeplace_runtime **out, MPI_Comm comm,
                            const moeplace_runtime_config *cfg);

/* Collective, like moeplace_runtime_create(), then resumes the state a
 * moeplace_runtime_save() wrote to `path`: the placement and shares in
 * force (so per-slot expert state saved by the trainer at the same step
 * matches its slots), the step counters (windows and rebalances fall on the
 * same steps), the open window's records, the totals (stats), and the
 * coordinator's history of window loads, replayed into its forecaster (the
 * decisions continue as without the restart for methods whose state is a
 * function of the saved windows: sw_avg with its k <= history_windows, last;
 * docs/RUNTIME.md). Only the coordinator reads `path` (other ranks may pass
 * NULL). cfg must give the same layers, experts, slots_per_rank and window
 * on a communicator of the same size (other fields may change). Returns, on
 * every rank alike: MOEPLACE_OK and *out; what moeplace_runtime_create()
 * returns; MOEPLACE_ERR_IO (the file cannot be read), MOEPLACE_ERR_FORMAT
 * (not a checkpoint, another version or byte order, a checksum mismatch:
 * damaged or truncated, an invalid placement), MOEPLACE_ERR_MISMATCH (saved
 * for another shape or window: both named); never a silent fresh start.
 * *out = NULL on failure. */
int moeplace_runtime_create_from_checkpoint(moeplace_runtime **out, MPI_Comm comm,
                                            const moeplace_runtime_config *cfg,
                                            const char *path);

/* Collective, at a step boundary (between two moeplace_runtime_step()
 * calls, like the trainer's own checkpoint): writes the runtime's state to
 * `path` for moeplace_runtime_create_from_checkpoint(). The open window's
 * records of every rank are summed onto the coordinator (one MPI_Ireduce),
 * which writes the file: atomically (a temporary file beside it, fsync'ed
 * and renamed over it: a crash leaves the previous checkpoint), with a
 * versioned header and an XXH3-64 checksum. Only the coordinator's `path`
 * is used (other ranks may pass NULL). Changes nothing in the runtime.
 * Returns the coordinator's outcome on every rank: MOEPLACE_OK,
 * MOEPLACE_ERR_IO (named file), MOEPLACE_ERR_ARG (no path on the
 * coordinator), MOEPLACE_ERR_NOMEM, MOEPLACE_ERR_MPI, MOEPLACE_ERR_STATE
 * (the runtime is unusable). */
int moeplace_runtime_save(moeplace_runtime *rt, const char *path);

/* Collective (frees the duplicated communicator and the runtime-owned
 * buffers). Accepts NULL. Registered buffers are not freed: they belong to
 * the caller. */
void moeplace_runtime_destroy(moeplace_runtime *rt);

/* Registers one buffer of local slot `slot` of `layer` (call once per
 * buffer: weights, biases, then every optimizer moment of each, ...; the
 * order is the buffer index). A slot takes any number of buffers (there is
 * no fixed cap; the runtime keeps a growable array per slot). Every slot of
 * a layer, on every rank, must register the same number of buffers with the
 * same sizes: an expert's state is the concatenation of its buffers. Local;
 * the consistency check happens in the next moeplace_runtime_step(). The
 * memory must stay valid until destroy.
 * MOEPLACE_ERR_ARG for a bad layer, slot or pointer; MOEPLACE_ERR_NOMEM. */
int moeplace_runtime_register_buffer(moeplace_runtime *rt, int layer, int slot, void *ptr,
                                     size_t bytes);
/* (With config.plan_only, ptr may be NULL: the buffer's size alone is
 * registered, to price moves; the runtime never touches it.) */

/* Like moeplace_runtime_register_buffer(), but the runtime allocates the
 * buffer (zeroed) and owns it. A migration then commits into such a buffer
 * by swapping in the memory the expert arrived in instead of copying it, so
 * after a step that rebalanced (info.rebalanced) the slot's buffer may be at
 * a new address: fetch it again with moeplace_runtime_buffer(). Freed by
 * moeplace_runtime_destroy(). */
int moeplace_runtime_alloc_buffer(moeplace_runtime *rt, int layer, int slot, size_t bytes,
                                  void **ptr);

/* Current address (and size: bytes may be NULL) of buffer `index` of a local
 * slot. MOEPLACE_ERR_ARG for NULL rt or ptr, a bad layer, slot or index. */
int moeplace_runtime_buffer(const moeplace_runtime *rt, int layer, int slot, int index,
                            void **ptr, size_t *bytes);

/* Adds the tokens each local slot of `layer` processed in the current step:
 * tokens has shape [slots_per_rank]. Local, O(slots_per_rank).
 * MOEPLACE_ERR_ARG for NULL, a bad layer, or a slot whose sum over the
 * window would pass 2^64 - 1 (then nothing is added). */
int moeplace_runtime_record(moeplace_runtime *rt, int layer, const uint64_t *tokens);

/* Adds the tokens this rank's router sent to each logical expert of `layer`
 * in the current step: counts has shape [experts] (the [layers][experts]
 * counts vLLM and Megatron keep, one layer's row). With top-k routing a
 * token counts once per selected expert: k per token, as the per-slot
 * record counts it (each slot processes each token routed to it). At the
 * next window boundary the counts of all ranks are summed (one
 * MPI_Ireduce to the coordinator, in moeplace_runtime_step()) and added to
 * what moeplace_runtime_record() recorded per slot: record each token with
 * one of the two, not both. Local, O(experts). MOEPLACE_ERR_ARG for NULL, a
 * bad layer, or an expert whose sum over the window would pass 2^64 - 1
 * (then nothing is added); MOEPLACE_ERR_STATE after a timeout made the
 * runtime unusable. */
int moeplace_runtime_record_experts(moeplace_runtime *rt, int layer, const uint64_t *counts);

/* The dispatch helper: how many of `layer`'s tokens this rank sends to
 * each global slot, given tokens[experts] the router sent to each logical
 * expert: send[ranks * slots_per_rank] (global slot g = rank *
 * slots_per_rank + local slot; its row for rank r sums to what r receives
 * from this rank). Each expert's tokens are split among its replicas by
 * moeplace_split_tokens() with their shares in slot order: whole tokens,
 * deterministic, identical on every rank for the same placement. Empty
 * slots get 0. Local, O(experts + ranks * slots_per_rank); the caller's
 * arrays. MOEPLACE_ERR_ARG for NULL or a bad layer; MOEPLACE_ERR_NOMEM. */
int moeplace_runtime_dispatch(const moeplace_runtime *rt, int layer, const uint64_t *tokens,
                              uint64_t *send);

/* Modes of moeplace_runtime_sync_replicas(). */
#define MOEPLACE_SYNC_CHECK 0 /* report replicas that differ from their primary */
#define MOEPLACE_SYNC_COPY 1  /* and make them identical to it */

/* Collective: compares every replica's registered state (the concatenation
 * of its slot's buffers, bit for bit, by XXH3-64 hashes shared in one
 * MPI_Iallgather) with its expert's primary replica, the first in slot
 * order (moeplace_runtime_routing()'s first entry). MOEPLACE_SYNC_CHECK
 * changes nothing; MOEPLACE_SYNC_COPY overwrites each differing replica with
 * the primary's state through the migration engine (chunked, checksummed,
 * all-or-nothing: MOEPLACE_ERR_VERIFY on every rank with nothing changed if
 * a transfer fails). Call it once after registering (replicas seeded per
 * rank start different) and whenever replicas may have drifted. differ
 * (NULL allowed): [layers][experts] set to 1 where some replica differed
 * before the call, else 0; *count (NULL allowed): how many experts
 * differed. Both identical on every rank; the caller's arrays, written on
 * success only. Returns the same status on every rank: MOEPLACE_OK,
 * MOEPLACE_ERR_ARG (bad mode), MOEPLACE_ERR_MISMATCH (inconsistent
 * registration, as in moeplace_runtime_step()), MOEPLACE_ERR_VERIFY,
 * MOEPLACE_ERR_NOMEM, MOEPLACE_ERR_MPI, MOEPLACE_ERR_STATE (unusable). */
int moeplace_runtime_sync_replicas(moeplace_runtime *rt, int mode, int *differ, int *count);

/* What the last moeplace_runtime_step() did. */
typedef struct moeplace_step_info {
  int64_t step;          /* steps completed, including this one */
  int window_closed;     /* 1 if this step closed a window (aggregation ran) */
  int rebalance_checked; /* 1 if a rebalance decision was applied at this step (with
                            decision_lag_windows K, K windows after the
                            rebalance boundary that requested it) */
  int rebalanced;        /* 1 if a new placement was committed */
  int moves;             /* transfers of the committed migration */
  uint64_t bytes_moved;  /* bytes sent between ranks (local copies excluded) */
  double migration_s;    /* this rank's wall time from migration start to commit */
  double decision_s;     /* coordinator only: time to forecast and place (on the
                            decision thread when decision_lag_windows > 0) */
  double predicted_imbalance_old, predicted_imbalance_new; /* coordinator only: the
                            placement in force and the one decided, on the forecast */
  double decision_wait_s; /* coordinator only, at the step applying a decision made
                             on the thread: how long this step waited for it to
                             finish (0 when it was ready) */
  int plan_pending;      /* plan_only: 1 if a migration plan waits for
                            moeplace_runtime_confirm() (moves = its transfers) */
  uint64_t reserved[2]; /* zeroed by the library (ABI: moeplace/base.h) */
} moeplace_step_info;

/* Collective, once per training step after the step's records. Closes
 * windows, rebalances and migrates as configured. info may be NULL.
 * A failed migration returns MOEPLACE_ERR_VERIFY (or _MPI) on every rank
 * with the old placement still in force and all state intact. */
int moeplace_runtime_step(moeplace_runtime *rt, moeplace_step_info *info);

/* moeplace_runtime_step() with the caller's own number of the step being
 * completed (its loop index + 1, say; any origin, the same on every rank).
 * At every window boundary the ranks compare these numbers: if they differ
 * (a rank called step once more or once less than the others),
 * MOEPLACE_ERR_MISMATCH on every rank, naming the ranks and their steps, and
 * the runtime is unusable (later calls MOEPLACE_ERR_STATE).
 * moeplace_runtime_step() numbers steps by its calls, which every rank
 * agrees on by construction: only collective_timeout_s catches a missed call. */
int moeplace_runtime_step_at(moeplace_runtime *rt, int64_t step, moeplace_step_info *info);

/* Collective: migrates to the given placement now (every rank passes the
 * same arrays; checked). phy2log: [layers][ranks * slots_per_rank] logical
 * expert per global slot (rank * slots_per_rank + local slot) or -1, as in
 * moeplace_placement_phy2log(); share: same shape, the fraction of the
 * expert's tokens routed to that replica (NULL = equal shares,
 * moeplace_placement_equal_shares()). Returns as moeplace_runtime_step():
 * MOEPLACE_ERR_MISMATCH when ranks passed different arrays. The placement must pass
 * moeplace_placement_validate(): every expert keeps at least one replica, no
 * rank holds two replicas of the same expert of a layer, an expert's shares
 * sum to 1, an empty slot has share 0 (MOEPLACE_ERR_ARG on every rank
 * otherwise, nothing changed). A rank may also move a replica it keeps to
 * another of its slots (a local copy). */
int moeplace_runtime_apply_placement(moeplace_runtime *rt, const int *phy2log,
                                     const double *share, moeplace_step_info *info);

/* Plan-only mode (config.plan_only): the plan a step (or apply_placement)
 * returned with info.plan_pending, identical on every rank: *plan points at
 * *n transfers (global slots, as moeplace_migration_plan() gives them: the
 * expert in src_slot of src_rank goes to dst_slot of dst_rank; a transfer
 * with src_rank == dst_rank is a copy within the rank), owned by the
 * runtime and valid until moeplace_runtime_confirm(). The trainer moves
 * every expert's state (reading every source before overwriting any
 * destination) and confirms. Local. MOEPLACE_ERR_ARG for NULL,
 * MOEPLACE_ERR_STATE when no plan is pending. */
int moeplace_runtime_pending_plan(const moeplace_runtime *rt, const moeplace_transfer **plan,
                                  size_t *n);

/* Plan-only mode: the placement the pending plan leads to (the shapes of
 * moeplace_runtime_get_placement(); either array may be NULL). Local.
 * MOEPLACE_ERR_STATE when no plan is pending. */
int moeplace_runtime_pending_placement(const moeplace_runtime *rt, int *phy2log, double *share);

/* Plan-only mode, collective: ok != 0 says this rank completed its part of
 * the pending plan. If every rank says so, the pending placement is
 * committed on every rank (MOEPLACE_OK; counted in the stats as a
 * rebalance); otherwise none commits and every rank returns
 * MOEPLACE_ERR_VERIFY with the old placement in force (the trainer restores
 * what it overwrote). Either way the plan is released. While a plan is
 * pending, step, step_at, apply_placement, save and sync_replicas return
 * MOEPLACE_ERR_STATE. MOEPLACE_ERR_STATE (no plan pending, or unusable),
 * MOEPLACE_ERR_MPI. */
int moeplace_runtime_confirm(moeplace_runtime *rt, int ok);

/* Shape of the job: this rank and the number of ranks (-1 for NULL). */
int moeplace_runtime_rank(const moeplace_runtime *rt);
int moeplace_runtime_size(const moeplace_runtime *rt);

/* The placement in force, identical on every rank: phy2log
 * [layers][ranks * slots_per_rank] and share of the same shape (either may
 * be NULL; the caller's arrays). Local. MOEPLACE_ERR_ARG for NULL rt. */
int moeplace_runtime_get_placement(const moeplace_runtime *rt, int *phy2log, double *share);

/* Logical expert held by a local slot (-1 = empty) and its routing share;
 * either out pointer may be NULL. MOEPLACE_ERR_ARG for a bad layer or slot. */
int moeplace_runtime_local_expert(const moeplace_runtime *rt, int layer, int slot,
                                  int *expert, double *share);

/* One replica in the routing table (an array element: its layout is fixed
 * within a major version). */
typedef struct moeplace_replica {
  int rank;
  int slot;     /* local slot on that rank */
  double share; /* fraction of the expert's tokens to send there; sums to 1 */
} moeplace_replica;

/* Routing table entry of (layer, expert): up to `max` replicas written to
 * out[max], in slot order, their number in *n (at most the number of
 * ranks). MOEPLACE_ERR_ARG for a bad layer or expert, or when the expert has
 * more than `max` replicas (*n then says how many: call again with room). */
int moeplace_runtime_routing(const moeplace_runtime *rt, int layer, int expert,
                             moeplace_replica *out, int max, int *n);

/* The predictor the coordinator's decider runs (config.predictor, or what
 * MOEPLACE_RUNTIME_PREDICTOR_DEFAULT chose; with rebalancing off, the one
 * it would run: none is fed), the same on every rank; static
 * storage or owned by rt (valid until destroy); NULL for a NULL rt. Local. */
const char *moeplace_runtime_predictor(const moeplace_runtime *rt);

/* Topology as discovered (or emulated): for `rank`, its node index, package
 * and NUMA node within that node (-1 if unknown); out pointers may be NULL.
 * MOEPLACE_ERR_ARG for a rank outside [0, size). */
int moeplace_runtime_topology(const moeplace_runtime *rt, int rank, int *node, int *package,
                              int *numa);

/* Totals since create. */
typedef struct moeplace_runtime_stats {
  int64_t steps;
  int64_t windows;
  int rebalances;        /* committed */
  int rebalances_skipped; /* decided not worth it */
  int migrations_failed; /* rolled back */
  int64_t moves;
  uint64_t bytes_moved;
  double migration_s;    /* sum over committed migrations */
  double decision_s;     /* sum of coordinator decision times */
  double aggregate_s;    /* sum of time spent in window aggregation */
  uint64_t shm_bytes_received; /* bytes this rank received through shared-memory
                                  windows (shm_transfers), committed or not */
  int64_t decisions_deferred; /* window boundaries where a due decision was still
                                 running and training went on (decision_wait 0) */
  double decider_cpu_s; /* CPU time the coordinator spent feeding the forecaster
                          and deciding (on its decision thread, or inline), 0
                          on other ranks: taken from the cores training shares
                          with that thread, which decision_s (wall) does not tell */
  uint64_t reserved[1]; /* zeroed by the library (ABI: moeplace/base.h) */
} moeplace_runtime_stats;

/* Copies the totals into *out. Local. MOEPLACE_ERR_ARG for NULL. */
int moeplace_runtime_get_stats(const moeplace_runtime *rt, moeplace_runtime_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* MOEPLACE_RUNTIME_H */
