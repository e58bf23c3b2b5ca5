/* Internal: the per-layer placement solver (solver.c and the solver_*.c
 * files it lists), as place.c uses it. */
#ifndef MOEPLACE_PLACEMENT_SOLVER_H
#define MOEPLACE_PLACEMENT_SOLVER_H

#include <stdint.h>

#include <moeplace.h>

/* Working state of one layer. Slot i belongs to rank i / S. slot_x is the
 * number of tokens (load units) routed to the slot. The replicas of an
 * expert form a linked list head[e] -> next[i] -> ... -> -1. */
typedef struct mp_place_layer {
  int E, R, S, RS;
  int even;           // 1: MOEPLACE_SHARES_EVEN (every replica w_e / c_e), 0: weighted
  double spread;      // noise-aware mode (moeplace_place_options.spread): mu of the
                      // water-filling, 0 = exact; > 0 also fills slots, keeps idle replicas
  const double *w;    // [E] expert loads
  const moeplace_topology *topo;
  int *slot_e;        // [RS] expert of each slot, -1 empty
  double *slot_x;     // [RS] tokens of each slot
  double *load;       // [R] rank loads
  int *head;          // [E]
  int *next;          // [RS]
  int *cnt;           // [E] replicas per expert
  int *nfree;         // [R] empty slots per rank
  // current placement (migration reference), NULL when there is none
  const int *cur;     // [RS]
  int *cur_head;      // [E]
  int *cur_next;      // [RS]
  double expert_bytes;
  // scratch
  int *iscratch;      // [max(E, RS, R) * 2]
  double *dscratch;   // [max(E, RS, R) * 2]
  // snapshot for undo
  int *sv_slot_e, *sv_head, *sv_next, *sv_cnt, *sv_nfree;
  double *sv_slot_x, *sv_load;
  // constructive scratch
  int *c_counts, *c_eheap;    // [E]
  int *c_reps, *c_ord;        // [RS]
  double *c_key;              // [RS]
  int *c_rh, *c_skip;         // [R]
  int *c_rtmp;                // [max(E, RS, R)] radix sort scratch
  uint64_t *c_rk0, *c_rk1;    // [max(E, RS, R)]
  int *t_int;                 // [16 R] transfer components and trees
  double *t_dbl;              // [R]
  unsigned char *ev_mark;     // [R] zero between uses: mp_even_eval marks
  int hcap;                   // lazy heaps of the transfers: 2 x hcap entries
  double *h_key;
  int *h_val, *h_stamp;
} mp_place_layer;

int mp_place_layer_init(mp_place_layer *st, int E, int R, int S, const moeplace_topology *topo);
void mp_place_layer_free(mp_place_layer *st);

/* Lower bound on the max rank load for loads w: max(total / R, min over
 * replica counts (>= 1, <= R, sum <= R*S) of max w_e / c_e). */
double mp_place_layer_bound(mp_place_layer *st, const double *w);

/* Search parameters of one layer. */
typedef struct mp_place_search {
  double lambda;      // load units per unit of migration cost
  double min_gain;    // absolute: a change must gain more than this
  int max_iter;
  double *budget;     // remaining bytes (shared across layers); NULL: unlimited
  double deadline;    // mp_now_s() time to stop at, 0: none
  double target;      // fresh even placement: a max rank load that is good enough
                      // (another part of the layer is busier anyway), 0: none
  int flat_stop;      // fresh even search: stop after this many changes in a row that
                      // leave the max rank load unchanged, 0: never
  int max_starts;     // fresh even multistart: at most this many replica totals, 0: all
} mp_place_search;

/* Fresh placement of weights w: replication by marginal gain, LPT packing
 * with the no-duplicate rule, water-filled shares, then local search. */
void mp_place_layer_fresh(mp_place_layer *st, const double *w, const mp_place_search *sp);

/* Fresh placement for even shares (st->even = 1): counts by marginal gain,
 * LPT packing, then the even local search (solver_even.c). */
void mp_place_layer_fresh_even(mp_place_layer *st, const double *w, const mp_place_search *sp);

/* Even shares from the current slots (set with mp_place_layer_set_current
 * first): the current assignment with equal shares, then the even local
 * search with migration in the objective (max_iter 0: the assignment as
 * it is). */
void mp_place_layer_from_current_even(mp_place_layer *st, const double *w,
                                      const mp_place_search *sp);

/* Starts from the current slots cur [RS] (set with mp_place_layer_set_current
 * first), re-optimises shares, then improves with migration cost in the
 * objective. */
void mp_place_layer_from_current(mp_place_layer *st, const double *w, const mp_place_search *sp);

/* Repair of the current placement; st must hold it with water-filled shares
 * (mp_place_layer_from_current with max_iter 0, or a copy of that state):
 * idle spare replicas are dropped, then the component transfers run from
 * there: each split is one move, at most R - 1 per layer. */
void mp_place_layer_repair(mp_place_layer *st, const double *w);

/* A fresh placement built around the current one: every expert starts on
 * one of its current ranks (heaviest first, least loaded), then the
 * component transfers balance, preferring ranks that hold the expert now. */
void mp_place_layer_home(mp_place_layer *st, const double *w);

void mp_place_layer_set_current(mp_place_layer *st, const int *cur, double expert_bytes);

/* Max rank load of the state. */
double mp_place_layer_max(const mp_place_layer *st);
/* The k most loaded ranks, in decreasing load (ties: lower rank first),
 * into top [k]; returns how many (min(k, R)). */
int mp_place_top_loaded(const mp_place_layer *st, int k, int *top);
/* Migration of the state relative to the current placement. */
void mp_place_layer_moves(const mp_place_layer *st, int64_t *moves, double *bytes,
                          double *cross_bytes, double *cost);
/* Permutes the ranks of a fresh placement (same loads: the fresh solver
 * sees no topology) to the labels of least migration cost against the
 * current placement (mp_move_cost summed per rank, an exact assignment,
 * solver_relabel.c). Nothing without a current placement, or when the
 * labels it has cost least already. */
void mp_place_layer_relabel(mp_place_layer *st);
/* st holding the current assignment (mp_place_layer_copy of the kept one):
 * walks slot by slot toward target [RS] (a fresh placement, relabelled and
 * aligned), each step the change of least max rank load under even shares,
 * and ends on the prefix of least max load + migration price (sp->lambda,
 * sp->min_gain), with the policy's shares; at most sp->max_iter steps
 * (solver_partial.c). */
void mp_place_layer_toward(mp_place_layer *st, const int *target, const mp_place_search *sp);
/* Puts replicas that stayed on a rank back into their current slot index. */
void mp_place_layer_align(mp_place_layer *st);
/* Even shares: gives every empty slot a replica (moeplace_place_options.
 * fill_slots, solver_fill.c); transfers 0: only replicas the current
 * placement has on the slot's rank. */
void mp_place_layer_fill(mp_place_layer *st, int transfers);
/* Writes phy2log [RS] and share [RS] (exactly 1 / count with even shares). */
void mp_place_layer_export(const mp_place_layer *st, int *phy2log, double *share);
/* Load samples of one layer and the scratch their refinement uses
 * (solver_samples.c; moeplace_place_options.samples). */
typedef struct mp_samples {
  const double *x;    // x[t * stride + e]: sample t's load of expert e
  size_t stride;
  int n;              // samples (the refinement needs >= 2)
  double *v;          // [RS][n] load of each slot in each sample
  double *y;          // [R][n] load of each rank in each sample
  double *ymax;       // [n] max rank load of each sample
  int *top;           // [n][3] the three busiest ranks of each sample, -1 past R
  double *ex1, *ex2;  // [n] each: the max load of the ranks but one, and but two
  int *ex1r;          // [n] the rank of ex1
  double *refund;     // [2][RS] price and bytes of each slot's present content
  unsigned char *hot; // [R] bit 1: a rank a swap takes from, bit 2: one it gives to
} mp_samples;
/* Sets sm up for n >= 2 samples x [n][stride] on R ranks x S slots (the
 * caller points sm->x at each layer's first expert in turn), allocating
 * its scratch: 0, or -1 on out-of-memory (mp_samples_free either way). */
int mp_samples_init(mp_samples *sm, const double *x, int n, size_t stride, int R, int S);
void mp_samples_free(mp_samples *sm);
/* Mean over the samples of the layer's max rank load under st. */
double mp_samples_max(const mp_place_layer *st, mp_samples *sm);
/* Swaps the contents of two slots of different ranks, the best swap each
 * time, while one lowers mp_samples_max by more than its migration price
 * (sp->lambda, sp->min_gain); at most sp->max_iter swaps, until
 * sp->deadline. bytes_left (NULL or < 0: unlimited) caps the bytes the
 * swaps add and is decreased by them. Slots keep their token fractions:
 * the mean loads' shares are not re-optimised. Returns mp_samples_max of
 * the result. */
double mp_samples_refine(mp_place_layer *st, mp_samples *sm, const mp_place_search *sp,
                         double *bytes_left);
/* Copies the layer's slot content from another state of the same shape. */
void mp_place_layer_copy(mp_place_layer *dst, const mp_place_layer *src);

#endif
