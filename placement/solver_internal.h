/* Internal to the solver files (placement/solver*.c): the steps they share.
 * place.c uses only solver.h. Grouped by the file that defines them. */
#ifndef MOEPLACE_PLACEMENT_SOLVER_INTERNAL_H
#define MOEPLACE_PLACEMENT_SOLVER_INTERNAL_H

#include <stdint.h>

#include "placement/solver.h"

#define WF_MAX_PASSES 30
#define WF_TOL 1e-7 // relative to the mean rank load
/* Gap to the bound at which a layer is good enough: searching further costs
 * more time than it gains (0.1% of the layer time). */
#define MP_PLACE_GOOD_GAP 1e-3

/* solver_state.c: elementary operations; they keep the replica lists, rank
 * loads and free-slot counts consistent. */
void mp_st_clear(mp_place_layer *st);
/* Puts expert e with x tokens into empty slot i. */
void mp_st_put(mp_place_layer *st, int i, int e, double x);
/* Empties slot i; returns the tokens it carried. */
double mp_st_take(mp_place_layer *st, int i);
/* 1 if rank r holds a replica of expert e. Inline: the even search calls
 * it per candidate pair, where a call cost as much as its S compares. */
static inline int mp_st_rank_holds(const mp_place_layer *st, int r, int e) {
  const int *s = st->slot_e + (size_t)r * st->S;
  for (int k = 0; k < st->S; k++)
    if (s[k] == e) return 1;
  return 0;
}
/* First empty slot of rank r, -1 if none. */
int mp_st_free_slot(const mp_place_layer *st, int r);
/* Snapshot and undo (one level). */
void mp_st_save(mp_place_layer *st);
void mp_st_restore(mp_place_layer *st);

/* solver_shares.c: water-filling. */
/* Re-splits expert e's tokens over its replicas; returns the largest change
 * of a slot. */
double mp_waterfill_expert(mp_place_layer *st, int e);
/* Sweeps every replicated expert until no slot changes by more than tol. */
void mp_waterfill_all(mp_place_layer *st, double tol, int max_passes);
/* Sweeps the replicated experts of ranks ra and rb (-1: none). */
void mp_waterfill_ranks(mp_place_layer *st, int ra, int rb, int passes);

/* solver_construct.c: starts from scratch. */
/* Sorts idx [n] by key[idx] descending (ties: smaller index first), keys
 * >= 0; tmp_idx, k0, k1 [n] are scratch. */
void mp_radix_sort_desc(int *idx, int n, const double *key, int *tmp_idx, uint64_t *k0,
                        uint64_t *k1);
/* Greedy replica counts, then LPT packing with the no-duplicate rule. */
void mp_construct_lpt(mp_place_layer *st);
/* The same with `total` replicas (E <= total <= R x S). */
void mp_construct_lpt_n(mp_place_layer *st, long total);
/* The LPT starts of decreasing replica totals (the even multistart), the
 * same placements as mp_construct_lpt_n without recounting and re-sorting
 * each: mp_lpt_totals_init takes the greedy's order of extra replicas for
 * R x S (in c_reps, the counts in c_counts, the experts in packing order in
 * c_eheap); mp_construct_lpt_total then packs `total` replicas, totals
 * non-increasing from one call to the next. Uses the c_ scratch: no other
 * construction in between. */
typedef struct mp_lpt_totals {
  int nseq;   // extra replicas the greedy hands out for R x S
  long total; // the replicas the counts hold now
} mp_lpt_totals;
void mp_lpt_totals_init(mp_place_layer *st, mp_lpt_totals *lt);
void mp_construct_lpt_total(mp_place_layer *st, mp_lpt_totals *lt, long total);
/* One replica per expert in snake order, then the component transfers. */
void mp_construct_transfer(mp_place_layer *st);

/* solver_transfer.c: balances the ranks towards the mean T by splitting
 * replicas into free slots between components. */
void mp_transfer_components(mp_place_layer *st, double T);

/* solver_migration.c: costs relative to st->cur (all 0 without one). */
int mp_cur_rank_holds(const mp_place_layer *st, int r, int e);
/* Cost of e arriving at rank r: 0 if r held it, else bytes x cheapest
 * class (written to *cls). */
double mp_move_cost(const mp_place_layer *st, int e, int r, int *cls);
/* Bytes of slot i's replica if it is a move. */
double mp_slot_bytes(const mp_place_layer *st, int i);
/* Price (load units) of expert e arriving on rank r: sp->lambda x its
 * migration cost + sp->min_gain if it is a move, else 0; a move adds the
 * expert's bytes to *bytes (NULL: not counted). */
double mp_move_price(const mp_place_layer *st, const mp_place_search *sp, int e, int r,
                     double *bytes);
double mp_slot_cost(const mp_place_layer *st, int i);

/* solver_even.c: the search of the even-share objective: up to
 * MP_EVEN_ITER_FACTOR x max_iter changes (one replica moves, swaps, appears
 * or goes per change). */
#define MP_EVEN_ITER_FACTOR 1
/* A change under evaluation with equal splits: the rank-load deltas it
 * makes (dl [R], zero outside the touched ranks, listed in touched [nt]). */
typedef struct mp_even_eval {
  double *dl;          // [R]
  int *touched;        // [R]
  int nt;
  unsigned char *mark; // [R] 1 where listed in touched: O(1) "listed once"
} mp_even_eval;
/* Adds d to rank r's load change, listing r once (marked). Whoever clears
 * dl of the touched ranks clears their marks too. */
void mp_ev_add(mp_even_eval *v, int r, double d);
/* Load change of re-counting e from its count to c2 replicas on its present
 * ranks (skip: a slot not counted, -1 for none). */
void mp_ev_recount(mp_even_eval *v, const mp_place_layer *st, int e, int c2, int skip);
void mp_even_search(mp_place_layer *st, const mp_place_search *sp, double bound,
                    double *bytes_used);
/* Every slot's tokens w_e / c_e and the rank loads, recomputed. */
void mp_even_reset_loads(mp_place_layer *st);
/* Sets e's replicas to w_e / c_e (after its count changed). */
void mp_even_resplit(mp_place_layer *st, int e);

/* solver_search.c: up to sp->max_iter improving changes (stops early near
 * the bound or at the deadline), then water-fills; *bytes_used grows by the
 * bytes of the kept changes. */
void mp_local_search(mp_place_layer *st, const mp_place_search *sp, double bound,
                     double *bytes_used);

#endif
