/* moeplace_place: validates the problem, runs the per-layer solver on every
 * layer and fills the stats. Without a current placement each layer gets a
 * fresh placement. With one, each layer keeps its current assignment (shares
 * re-optimised) unless one of five candidates scores better within the byte
 * budget: the repair of the current placement by component transfers, a
 * fresh placement built around the current one, the fresh placement
 * relabelled and aligned to the current slots, the partial walk toward it,
 * and the local search from the current placement (even shares: the fresh
 * one, the walk and the even search).
 * With load samples (options.samples) the candidates are scored by the
 * samples' mean max rank load, and the chosen one (or the fresh placement)
 * is refined over the samples (placement/solver_samples.c).
 * Then one rule, keep_or_move(), decides for the whole placement whether the
 * change pays for its migration. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <moeplace.h>

#include "common/error.h"
#include "common/metrics.h"
#include "common/timer.h"
#include "placement/groups.h"
#include "placement/placement_impl.h"
#include "placement/solver.h"
#include "placement/topology.h"

void moeplace_place_options_init(moeplace_place_options *opt) {
  if (!opt) return;
  memset(opt, 0, sizeof *opt);
  opt->migration_weight = 0.0;
  opt->byte_budget = MOEPLACE_NO_LIMIT;
  opt->expert_bytes = 1.0;
  opt->min_gain = 2e-3;
  opt->max_iterations = 64;
  opt->time_limit_ms = MOEPLACE_NO_LIMIT;
  opt->step_time_s = 0;
  opt->horizon_steps = 500;
  opt->time_budget_s = MOEPLACE_NO_LIMIT;
  opt->shares = MOEPLACE_SHARES_WEIGHTED;
}

const char *moeplace_share_policy_name(moeplace_share_policy policy) {
  return policy == MOEPLACE_SHARES_WEIGHTED ? "weighted"
         : policy == MOEPLACE_SHARES_EVEN   ? "even"
                                            : NULL;
}

int moeplace_share_policy_parse(const char *name, moeplace_share_policy *out) {
  if (!name || !out) return mp_fail(MOEPLACE_ERR_ARG, "share policy: NULL argument");
  if (!strcmp(name, "weighted")) *out = MOEPLACE_SHARES_WEIGHTED;
  else if (!strcmp(name, "even")) *out = MOEPLACE_SHARES_EVEN;
  else return mp_fail(MOEPLACE_ERR_ARG, "unknown share policy '%s' (weighted or even)", name);
  return MOEPLACE_OK;
}

static int check_options(const moeplace_place_options *o) {
  if (!isfinite(o->migration_weight) || o->migration_weight < 0)
    return mp_fail(MOEPLACE_ERR_ARG, "migration_weight must be finite and >= 0, got %g",
                   o->migration_weight);
  if (!isfinite(o->byte_budget) && !isnan(o->byte_budget) && o->byte_budget > 0)
    return mp_fail(MOEPLACE_ERR_ARG, "byte_budget must be finite (< 0 for unlimited)");
  if (isnan(o->byte_budget)) return mp_fail(MOEPLACE_ERR_ARG, "byte_budget is NaN");
  if (!isfinite(o->expert_bytes) || o->expert_bytes < 0)
    return mp_fail(MOEPLACE_ERR_ARG, "expert_bytes must be finite and >= 0, got %g",
                   o->expert_bytes);
  if (!isfinite(o->min_gain) || o->min_gain < 0)
    return mp_fail(MOEPLACE_ERR_ARG, "min_gain must be finite and >= 0, got %g", o->min_gain);
  if (o->groups < 0)
    return mp_fail(MOEPLACE_ERR_ARG, "groups must be >= 0 (0 or 1: none), got %d", o->groups);
  if (o->shares != MOEPLACE_SHARES_WEIGHTED && o->shares != MOEPLACE_SHARES_EVEN)
    return mp_fail(MOEPLACE_ERR_ARG, "shares must be MOEPLACE_SHARES_WEIGHTED (0) or "
                   "MOEPLACE_SHARES_EVEN (1), got %d", (int)o->shares);
  if (!isfinite(o->spread) || o->spread < 0)
    return mp_fail(MOEPLACE_ERR_ARG, "spread must be finite and >= 0, got %g", o->spread);
  if (o->fill_slots != 0 && o->fill_slots != 1)
    return mp_fail(MOEPLACE_ERR_ARG, "fill_slots must be 0 or 1, got %d", o->fill_slots);
  if (o->fill_slots && o->shares != MOEPLACE_SHARES_EVEN)
    return mp_fail(MOEPLACE_ERR_ARG, "fill_slots needs shares = even (weighted placements "
                   "fill every slot with spread > 0)");
  if (o->max_iterations < 0)
    return mp_fail(MOEPLACE_ERR_ARG, "max_iterations must be >= 0, got %d", o->max_iterations);
  if (!isfinite(o->step_time_s) || o->step_time_s < 0)
    return mp_fail(MOEPLACE_ERR_ARG, "step_time_s must be finite and >= 0, got %g",
                   o->step_time_s);
  if (o->step_time_s > 0 && (!isfinite(o->horizon_steps) || !(o->horizon_steps > 0)))
    return mp_fail(MOEPLACE_ERR_ARG, "horizon_steps must be finite and > 0, got %g",
                   o->horizon_steps);
  if (isnan(o->time_limit_ms))
    return mp_fail(MOEPLACE_ERR_ARG, "time_limit_ms is NaN (< 0 for no limit)");
  if (isnan(o->time_budget_s) || isinf(o->time_budget_s))
    return mp_fail(MOEPLACE_ERR_ARG, "time_budget_s must be finite (< 0 for unlimited)");
  if (o->n_samples < 0 || (o->n_samples > 0 && !o->samples))
    return mp_fail(MOEPLACE_ERR_ARG, "n_samples must be >= 0 with samples non-NULL, got %d%s",
                   o->n_samples, o->samples ? "" : " and NULL");
  return MOEPLACE_OK;
}

/* Every sample's loads as mp_place_check_loads checks the loads. */
static int check_samples(const moeplace_place_options *o, int L, int E) {
  for (int t = 0; t < o->n_samples; t++) {
    int rc = mp_place_check_loads(L, E, o->samples + (size_t)t * L * E);
    if (rc) return mp_fail(rc, "sample %d: %s", t, moeplace_last_error());
  }
  return MOEPLACE_OK;
}

/* One call: the problem, the options, the solver states (alt and bst only
 * with a current placement) and the sums over layers. */
typedef struct place_ctx {
  const moeplace_topology *topo;
  moeplace_topology *priced; // topo with costs in seconds per byte (seconds model), or NULL
  const moeplace_topology *solver_topo; // the one the solver prices moves with
  int L, E, R, S;
  const double *loads; // [L][E]
  const moeplace_placement *current;
  moeplace_place_options opt;
  mp_place_layer st, alt, bst; // the layer's result, a candidate, the best candidate
  int *fresh_slots;            // [R * S] the fresh candidate's experts (the partial walk's target)
  mp_place_search sp;
  double budget;       // remaining bytes (< 0: unlimited); sp.budget points here
  double den;          // sum over layers of the mean rank load
  double lb;           // sum over layers of the lower bound
  double num_keep;     // sum over layers of the max load keeping the current assignment
  double gain_total;   // sum over layers of the max load the change removes
  double cost_total;   // lambda x the migration cost of the change
  double per_imbalance_s; // seconds model: step_time_s x horizon_steps (seconds one
                          // imbalance unit costs over the horizon), else 0
  const double *target;   // [L] max rank load good enough per layer (groups), or NULL
  mp_samples sm;          // the load samples of the layer being solved (sm.n >= 2), or sm.n 0
} place_ctx;

/* Sum over layers of the mean rank load: the denominator of the imbalance. */
static double mean_load_sum(const double *loads, int L, int E, int R) {
  double tot = 0;
  for (size_t i = 0; i < (size_t)L * E; i++) tot += loads[i];
  return tot / R;
}

/* The seconds model: moves are priced at their transfer time, and one second
 * is worth den / per_imbalance_s load units (an imbalance unit over the
 * horizon costs per_imbalance_s seconds); a time budget becomes a byte
 * budget at the slowest link's bandwidth, so that even sent one after the
 * other the bytes fit in it. */
static int price_in_seconds(place_ctx *c) {
  const moeplace_topology *t = c->topo;
  int rc = mp_topology_priced_in_seconds(t, &c->priced);
  if (rc) return rc;
  c->solver_topo = c->priced;
  c->per_imbalance_s = c->opt.step_time_s * c->opt.horizon_steps;
  c->sp.lambda = c->den > 0 ? c->den / c->per_imbalance_s : 0;
  if (c->opt.time_budget_s >= 0) {
    const int slowest = t->nodes > 1 ? MOEPLACE_LINK_OTHER_NODE : MOEPLACE_LINK_SAME_NODE;
    double bw = t->bandwidth[slowest];
    for (int k = MOEPLACE_LINK_SAME_NUMA; k <= slowest; k++)
      if (t->bandwidth[k] < bw) bw = t->bandwidth[k];
    const double bytes = c->opt.time_budget_s * bw;
    if (c->budget < 0 || bytes < c->budget) c->budget = bytes;
  }
  return MOEPLACE_OK;
}

/* Checks the arguments and sets up c (without the solver states). */
static int place_ctx_init(place_ctx *c, const moeplace_topology *topo, int layers, int experts,
                          int slots, const double *loads, const moeplace_placement *current,
                          const moeplace_place_options *opt_in, double t0) {
  memset(c, 0, sizeof *c);
  if (opt_in)
    c->opt = *opt_in;
  else
    moeplace_place_options_init(&c->opt);
  int rc = check_options(&c->opt);
  if (rc) return rc;
  const int R = topo->ranks, E = experts, S = slots, L = layers;
  rc = mp_place_check_shape(L, E, R, S);
  if (rc) return rc;
  if ((rc = mp_place_check_loads(L, E, loads))) return rc;
  if ((rc = check_samples(&c->opt, L, E))) return rc;
  if (current) {
    if (current->layers != L || current->experts != E || current->ranks != R ||
        current->slots != S)
      return mp_fail(MOEPLACE_ERR_ARG,
                     "current placement has shape %d layers x %d experts x %d ranks x %d slots, "
                     "the problem %d x %d x %d x %d",
                     current->layers, current->experts, current->ranks, current->slots, L, E, R, S);
    rc = moeplace_placement_validate(current);
    if (rc) return mp_fail(rc, "current placement: %s", moeplace_last_error());
  }
  c->topo = topo;
  c->solver_topo = topo;
  c->L = L;
  c->E = E;
  c->R = R;
  c->S = S;
  c->loads = loads;
  c->current = current;
  c->budget = c->opt.byte_budget;
  c->sp = (mp_place_search){.lambda = c->opt.migration_weight,
                            .min_gain = 0,
                            .max_iter = c->opt.max_iterations,
                            .budget = &c->budget,
                            .deadline = c->opt.time_limit_ms >= 0
                                            ? t0 + c->opt.time_limit_ms * 1e-3
                                            : 0};
  c->den = mean_load_sum(loads, L, E, R);
  if (c->opt.step_time_s > 0 && current) return price_in_seconds(c);
  return MOEPLACE_OK;
}

static void place_ctx_free(place_ctx *c) {
  moeplace_topology_destroy(c->priced);
  mp_place_layer_free(&c->st);
  if (c->current) {
    mp_place_layer_free(&c->alt);
    mp_place_layer_free(&c->bst);
  }
  free(c->fresh_slots);
  mp_samples_free(&c->sm);
}

/* The solver states; on failure the caller frees c with place_ctx_free()
 * (freeing a state that failed, or never ran, its init is harmless). */
static int place_ctx_alloc(place_ctx *c) {
  const int E = c->E, R = c->R, S = c->S;
  if (mp_place_layer_init(&c->st, E, R, S, c->solver_topo) ||
      (c->current && (mp_place_layer_init(&c->alt, E, R, S, c->solver_topo) ||
                      mp_place_layer_init(&c->bst, E, R, S, c->solver_topo) ||
                      !(c->fresh_slots = malloc((size_t)R * S * sizeof *c->fresh_slots)))))
    return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory for the placement solver");
  if (c->opt.n_samples >= 2 &&
      mp_samples_init(&c->sm, c->opt.samples, c->opt.n_samples, (size_t)c->L * E, R, S))
    return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory for %d load samples", c->opt.n_samples);
  c->st.even = c->alt.even = c->bst.even = c->opt.shares == MOEPLACE_SHARES_EVEN;
  c->st.spread = c->alt.spread = c->bst.spread = c->opt.spread;
  return MOEPLACE_OK;
}

/* The best candidate of a layer so far: its score, bytes and moves. */
typedef struct layer_best {
  double score, bytes;
  int64_t moves;
  int have;
} layer_best;

/* Scores the candidate in c->alt: max load (with samples, their mean max
 * load) + lambda x cost + min_gain x mean per move (lambda:
 * migration_weight, or the seconds model's price); it replaces the best
 * (in c->bst) if it scores lower and fits in budget_before (< 0:
 * unlimited). */
static void consider(place_ctx *c, layer_best *b, double budget_before) {
  int64_t mv;
  double by, cb, cost;
  mp_place_layer_moves(&c->alt, &mv, &by, &cb, &cost);
  const double m = c->sm.n ? mp_samples_max(&c->alt, &c->sm) : mp_place_layer_max(&c->alt);
  const double score = m + c->sp.lambda * cost + c->sp.min_gain * (double)mv;
  if (score < b->score && (budget_before < 0 || by <= budget_before)) {
    b->score = score;
    b->bytes = by;
    b->moves = mv;
    b->have = 1;
    mp_place_layer_copy(&c->bst, &c->alt);
  }
}

/* The partial walk from the current assignment (c->st) toward the fresh
 * candidate in c->alt (relabelled and aligned), as a candidate. */
static void walk_candidate(place_ctx *c, layer_best *b, double budget_before) {
  memcpy(c->fresh_slots, c->alt.slot_e, (size_t)c->R * c->S * sizeof *c->fresh_slots);
  mp_place_layer_copy(&c->alt, &c->st);
  mp_place_layer_toward(&c->alt, c->fresh_slots, &c->sp);
  consider(c, b, budget_before);
}

/* Runs the five candidates of a layer against the default b (keeping the
 * current assignment, held in c->st with re-optimised shares). */
static void run_candidates(place_ctx *c, const double *w, layer_best *b, double budget_before) {
  mp_place_layer_copy(&c->alt, &c->st); // the repair of the current placement
  mp_place_layer_repair(&c->alt, w);
  consider(c, b, budget_before);
  mp_place_layer_home(&c->alt, w); // a fresh placement built around the current one
  consider(c, b, budget_before);
  mp_place_layer_fresh(&c->alt, w, &c->sp); // the fresh one, relabelled and aligned
  mp_place_layer_relabel(&c->alt);
  mp_place_layer_align(&c->alt);
  consider(c, b, budget_before);
  if (c->sp.max_iter > 0) walk_candidate(c, b, budget_before);
  // the local search moves one or two replicas per step: it can only win
  // with fewer moves than the best candidate so far
  mp_place_search ls = c->sp;
  double ls_budget = budget_before;
  ls.budget = budget_before >= 0 ? &ls_budget : NULL;
  if (b->have && ls.max_iter > b->moves - 1) ls.max_iter = (int)(b->moves - 1);
  if (ls.max_iter <= 0) return;
  mp_place_layer_from_current(&c->alt, w, &ls);
  consider(c, b, budget_before);
}

/* The candidates with even shares: the fresh placement relabelled and
 * aligned to the current slots, the partial walk toward it, and the even
 * local search from the current placement (migration priced in). */
static void run_candidates_even(place_ctx *c, const double *w, layer_best *b,
                                double budget_before) {
  mp_place_layer_fresh_even(&c->alt, w, &c->sp);
  mp_place_layer_relabel(&c->alt);
  mp_place_layer_align(&c->alt);
  consider(c, b, budget_before);
  mp_place_search ls = c->sp;
  double ls_budget = budget_before;
  ls.budget = budget_before >= 0 ? &ls_budget : NULL;
  if (ls.max_iter <= 0) return;
  walk_candidate(c, b, budget_before);
  mp_place_layer_from_current_even(&c->alt, w, &ls);
  consider(c, b, budget_before);
}

/* The current assignment with the policy's shares (re-optimised, or
 * equal), no move, into c->st. */
static void keep_current(place_ctx *c, const double *w) {
  mp_place_search keep = c->sp;
  keep.max_iter = 0;
  keep.budget = NULL;
  if (c->st.even)
    mp_place_layer_from_current_even(&c->st, w, &keep);
  else
    mp_place_layer_from_current(&c->st, w, &keep);
}

/* Layer l with a current placement: c->st ends with the best candidate, or
 * the current assignment with re-optimised shares if none beats it within
 * the remaining budget, refined over the load samples if there are any; the
 * budget and the sums of keep_or_move() follow. */
static void place_layer_from_current(place_ctx *c, int l, const double *w) {
  const int *cur = moeplace_placement_phy2log_const(c->current, l);
  const double xb = c->opt.expert_bytes;
  mp_place_layer_set_current(&c->st, cur, xb);
  mp_place_layer_set_current(&c->alt, cur, xb);
  mp_place_layer_set_current(&c->bst, cur, xb);
  keep_current(c, w);
  const double m_keep = mp_place_layer_max(&c->st);
  c->num_keep += m_keep;
  // with samples, the rule weighs their mean max (the steps' imbalance)
  const double f_keep = c->sm.n ? mp_samples_max(&c->st, &c->sm) : m_keep;
  // A byte budget is shared fairly: this layer may spend the remaining
  // bytes over the layers left (what it leaves unspent goes to the next
  // ones), so that the first layers cannot spend it all on small gains.
  const double budget_before = c->budget;
  const double allowance = budget_before >= 0 ? budget_before / (c->L - l) : budget_before;
  layer_best b = {.score = f_keep};
  if (c->st.even)
    run_candidates_even(c, w, &b, allowance);
  else
    run_candidates(c, w, &b, allowance);
  if (b.have) mp_place_layer_copy(&c->st, &c->bst);
  double f_new = mp_place_layer_max(&c->st);
  if (c->sm.n) {
    double left = allowance >= 0 ? allowance - b.bytes : -1;
    f_new = mp_samples_refine(&c->st, &c->sm, &c->sp, &left);
  }
  int64_t mv;
  double by, cb, cost;
  mp_place_layer_moves(&c->st, &mv, &by, &cb, &cost);
  if (budget_before >= 0) c->budget = budget_before - by;
  c->gain_total += f_keep - f_new;
  c->cost_total += c->sp.lambda * cost;
}

/* The effort of a node's fresh even solve under node-limited groups (the
 * layer's max is the max over its nodes, and only the busiest node has to
 * search hard): its even search stops after MP_GROUP_FLAT_STOP changes in a
 * row that leave the node's max rank load where it was (the changes after
 * such a plateau only rarely lower the max again: about 0.05% of
 * imbalance on the DeepSeek-V3 shapes for 40% of the solve), and the
 * multistart over replica totals runs only on nodes of at most
 * MP_GROUP_MULTISTART_SLOTS slots, above that the start with every slot
 * (the other totals gain 0.03-0.35% there for 5-9 times the search).
 * docs/PLACEMENT.md "Expert groups". */
#define MP_GROUP_FLAT_STOP 2
#define MP_GROUP_MULTISTART_SLOTS 32

/* Writes c->st into layer l of res, its empty slots filled first with
 * fill_slots: by transfers too unless a budget caps them (with a current
 * placement; a fresh placement has nothing to transfer from). The fill
 * takes slots in order, so a replica it gives back to a rank that holds it
 * now is then aligned to its current slot: a slot-to-slot copy on one rank
 * would be a transfer the budget did not price. */
static void fill_and_export(place_ctx *c, moeplace_placement *res, int l) {
  if (c->opt.fill_slots) {
    mp_place_layer_fill(&c->st, !c->current || (c->opt.byte_budget < 0 && c->opt.time_budget_s < 0));
    mp_place_layer_align(&c->st);
  }
  mp_place_layer_export(&c->st, moeplace_placement_phy2log(res, l),
                        moeplace_placement_share(res, l));
}

/* Solves layer l into res. */
static void place_layer(place_ctx *c, int l, moeplace_placement *res) {
  const double *w = c->loads + (size_t)l * c->E;
  double tot = 0;
  for (int e = 0; e < c->E; e++) tot += w[e];
  const double mean = tot / c->R;
  // min_gain prices moves (a fresh placement moves nothing); the seconds
  // model prices each move at its transfer time instead
  c->sp.min_gain = c->current && c->per_imbalance_s == 0 ? c->opt.min_gain * mean : 0;
  c->sp.target = c->target ? c->target[l] : 0;
  c->sp.flat_stop = c->target ? MP_GROUP_FLAT_STOP : 0;
  c->sp.max_starts = c->target && c->st.RS > MP_GROUP_MULTISTART_SLOTS ? 1 : 0;
  c->lb += mp_place_layer_bound(&c->st, w);
  if (c->sm.n) c->sm.x = c->opt.samples + (size_t)l * c->E;
  if (!c->current) {
    mp_place_layer_set_current(&c->st, NULL, c->opt.expert_bytes);
    if (c->st.even)
      mp_place_layer_fresh_even(&c->st, w, &c->sp);
    else
      mp_place_layer_fresh(&c->st, w, &c->sp);
    if (c->sm.n) mp_samples_refine(&c->st, &c->sm, &c->sp, NULL);
  } else {
    place_layer_from_current(c, l, w);
    mp_place_layer_align(&c->st);
  }
  fill_and_export(c, res, l);
}

/* THE keep-or-move rule: the single decision moeplace_place makes, for the
 * whole placement, whether a change from the current placement is worth its
 * migration; moeplace-place --current, moeplace-replay and the MPI runtime
 * all decide through moeplace_place, so through this rule. gain_total is the
 * predicted gain (sum over layers of the max rank load removed; with load
 * samples, of the samples' mean max rank load), den the sum
 * over layers of the mean rank load, so gain_total / den is the imbalance
 * removed.
 *  - Seconds model (step_time_s > 0): move only if the time saved over the
 *    horizon, gain_total / den x step_time_s x horizon_steps (*saving_s),
 *    exceeds the migration's modelled time (migration_s) plus min_gain x
 *    step_time_s x horizon_steps, and the migration fits the time budget.
 *  - Otherwise: move only if gain_total exceeds the weighted migration cost
 *    (migration_weight x cost) plus min_gain x den.
 * (The per-layer candidate scores also charge each move: at its transfer
 * time, or min_gain x mean; that only ranks candidates.) */
static int keep_or_move(const place_ctx *c, double migration_s, double *saving_s) {
  *saving_s = 0;
  if (c->per_imbalance_s > 0) {
    if (!(c->den > 0)) return 0;
    if (c->opt.time_budget_s >= 0 && migration_s > c->opt.time_budget_s) return 0;
    *saving_s = c->gain_total / c->den * c->per_imbalance_s;
    return *saving_s > migration_s + c->opt.min_gain * c->per_imbalance_s;
  }
  return c->gain_total > c->cost_total + c->opt.min_gain * c->den;
}

/* The modelled time of the migration from the current placement to res. */
static int change_seconds(const place_ctx *c, const moeplace_placement *res, double *seconds) {
  moeplace_transfer *plan;
  size_t n;
  int rc = moeplace_migration_plan(c->current, res, c->topo, c->opt.expert_bytes, &plan, &n);
  if (rc) return rc;
  rc = moeplace_migration_seconds(c->topo, plan, n, seconds);
  moeplace_transfers_free(plan);
  return rc;
}

/* The current assignment with the policy's shares, into every layer of res
 * (fill_slots may still have to transfer: e.g. into the slot of a merged
 * duplicate of an EPLB map). */
static void write_current(place_ctx *c, moeplace_placement *res) {
  for (int l = 0; l < c->L; l++) {
    const double *w = c->loads + (size_t)l * c->E;
    mp_place_layer_set_current(&c->st, moeplace_placement_phy2log_const(c->current, l),
                               c->opt.expert_bytes);
    keep_current(c, w);
    fill_and_export(c, res, l);
  }
}

int mp_place_stats_fill(const moeplace_placement *current, const moeplace_placement *res,
                        const moeplace_topology *topo, const moeplace_place_options *opt,
                        double lb, double den, moeplace_place_stats *s) {
  if (current) {
    moeplace_move_stats ms;
    int rc = moeplace_placement_diff(current, res, topo, opt->expert_bytes, &ms);
    if (rc) return rc;
    s->moves = ms.moves;
    s->bytes_moved = ms.bytes_moved;
    s->cross_node_bytes = ms.cross_node_bytes;
    s->migration_cost = ms.cost;
    if (opt->byte_budget >= 0 && ms.bytes_moved > opt->byte_budget) {
      // cannot happen by construction; the cap is hard, so never return more
      return mp_fail(MOEPLACE_ERR_NUMERIC, "placement moved %g bytes over the budget of %g",
                     ms.bytes_moved, opt->byte_budget);
    }
    if (s->moves == 0) s->kept_current = 1;
  }
  s->shares = opt->shares;
  s->layers = moeplace_placement_layers(res);
  s->experts = moeplace_placement_experts(res);
  s->ranks = moeplace_placement_ranks(res);
  s->slots = moeplace_placement_slots(res);
  s->lower_bound = mp_imbalance_ratio(lb, den); // the bound on the same scale
  s->gap = s->lower_bound > 0 ? (s->imbalance - s->lower_bound) / s->lower_bound : 0;
  return MOEPLACE_OK;
}

/* The stats of the placement res (kept_current: no replica moved). */
static int place_stats(const place_ctx *c, const moeplace_placement *res,
                       moeplace_place_stats *s) {
  int rc = moeplace_placement_imbalance(res, c->loads, &s->imbalance);
  if (rc) return rc;
  if (c->current) s->current_imbalance = mp_imbalance_ratio(c->num_keep, c->den);
  return mp_place_stats_fill(c->current, res, c->topo, &c->opt, c->lb, c->den, s);
}

int moeplace_place(const moeplace_topology *topo, int layers, int experts, int slots,
                   const double *loads, const moeplace_placement *current,
                   const moeplace_place_options *opt, moeplace_placement **out,
                   moeplace_place_stats *stats) {
  const double t0 = mp_now_s();
  if (!topo || !loads || !out) return mp_fail(MOEPLACE_ERR_ARG, "place: NULL argument");
  *out = NULL;
  if (opt && opt->groups > 1) { // node-limited groups: placement/groups.c
    int rc = check_options(opt);
    return rc ? rc
              : mp_place_grouped(topo, layers, experts, slots, loads, current, opt, out, stats,
                                 t0);
  }
  return mp_place_targeted(topo, layers, experts, slots, loads, current, opt, NULL, out, stats);
}

int mp_place_targeted(const moeplace_topology *topo, int layers, int experts, int slots,
                      const double *loads, const moeplace_placement *current,
                      const moeplace_place_options *opt, const double *target,
                      moeplace_placement **out, moeplace_place_stats *stats) {
  const double t0 = mp_now_s();
  *out = NULL;
  place_ctx c;
  int rc = place_ctx_init(&c, topo, layers, experts, slots, loads, current, opt, t0);
  if (rc) return rc;
  c.target = target;
  moeplace_placement *res;
  rc = moeplace_placement_create(&res, c.L, c.E, c.R, c.S);
  if (rc) {
    place_ctx_free(&c);
    return rc;
  }
  rc = place_ctx_alloc(&c);
  if (rc) {
    place_ctx_free(&c);
    moeplace_placement_destroy(res);
    return rc;
  }
  for (int l = 0; l < c.L; l++) place_layer(&c, l, res);
  moeplace_place_stats s;
  memset(&s, 0, sizeof s);
  if (current) {
    rc = change_seconds(&c, res, &s.migration_s);
    if (rc == MOEPLACE_OK && !keep_or_move(&c, s.migration_s, &s.saving_s)) {
      write_current(&c, res);
      s.saving_s = 0;
      // the fill's transfers, if any, are the migration (kept_current is
      // set from the moves by place_stats)
      if (c.opt.fill_slots)
        rc = change_seconds(&c, res, &s.migration_s);
      else
        s.migration_s = 0;
    }
  }
  if (rc == MOEPLACE_OK && stats) rc = place_stats(&c, res, &s); // nobody asked: not computed
  place_ctx_free(&c);
  if (rc) {
    moeplace_placement_destroy(res);
    return rc;
  }
  s.solve_ms = (mp_now_s() - t0) * 1e3;
  s.groups = c.opt.groups;
  if (stats) *stats = s;
  *out = res;
  return MOEPLACE_OK;
}
