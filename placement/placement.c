/* The placement object: slot arrays per layer, derived EPLB views (logcnt,
 * log2phy), invariant checks, and the figures computed from a placement
 * (rank loads, imbalance, moves between two placements). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <moeplace.h>

#include "common/error.h"
#include "common/metrics.h"
#include "placement/placement_impl.h"
#include "placement/topology.h"

int mp_place_check_shape(int layers, int experts, int ranks, int slots) {
  if (layers <= 0 || layers > MP_PLACE_MAX_DIM)
    return mp_fail(MOEPLACE_ERR_ARG, "layers must be in [1, %d], got %d", MP_PLACE_MAX_DIM,
                   layers);
  if (experts <= 0 || experts > MP_PLACE_MAX_DIM)
    return mp_fail(MOEPLACE_ERR_ARG, "experts must be in [1, %d], got %d", MP_PLACE_MAX_DIM,
                   experts);
  if (ranks <= 0 || ranks > MP_PLACE_MAX_DIM)
    return mp_fail(MOEPLACE_ERR_ARG, "ranks must be in [1, %d], got %d", MP_PLACE_MAX_DIM, ranks);
  if (slots <= 0 || (long long)ranks * slots > MP_PLACE_MAX_DIM)
    return mp_fail(MOEPLACE_ERR_ARG, "slots must be >= 1 with ranks x slots <= %d, got %d x %d",
                   MP_PLACE_MAX_DIM, ranks, slots);
  if ((long long)ranks * slots < experts)
    return mp_fail(MOEPLACE_ERR_ARG,
                   "more experts (%d) than slots (%d ranks x %d slots = %lld): every expert "
                   "needs at least one slot",
                   experts, ranks, slots, (long long)ranks * slots);
  if ((long long)layers * ranks * slots > 1LL << 31)
    return mp_fail(MOEPLACE_ERR_ARG, "layers x ranks x slots is too large");
  return MOEPLACE_OK;
}

int mp_place_check_loads(int layers, int experts, const double *loads) {
  for (size_t i = 0; i < (size_t)layers * experts; i++)
    if (!(loads[i] >= 0) || !(loads[i] <= MP_PLACE_LOAD_MAX))
      return mp_fail(MOEPLACE_ERR_ARG, "load of layer %zu expert %zu is %g: loads must be finite, "
                     ">= 0 and <= %g (scale them down: a placement does not depend on their scale)",
                     i / (size_t)experts, i % (size_t)experts, loads[i], MP_PLACE_LOAD_MAX);
  return MOEPLACE_OK;
}

int moeplace_placement_create(moeplace_placement **out, int layers, int experts, int ranks,
                              int slots) {
  if (!out) return mp_fail(MOEPLACE_ERR_ARG, "placement: out is NULL");
  *out = NULL;
  int rc = mp_place_check_shape(layers, experts, ranks, slots);
  if (rc) return rc;
  moeplace_placement *p = calloc(1, sizeof *p);
  MP_CHECK_ALLOC(p);
  size_t n = (size_t)layers * ranks * slots;
  p->layers = layers;
  p->experts = experts;
  p->ranks = ranks;
  p->slots = slots;
  p->phy2log = malloc(n * sizeof *p->phy2log);
  p->share = calloc(n, sizeof *p->share);
  if (!p->phy2log || !p->share) {
    moeplace_placement_destroy(p);
    return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory for a placement of %zu slots", n);
  }
  for (size_t i = 0; i < n; i++) p->phy2log[i] = -1;
  *out = p;
  return MOEPLACE_OK;
}

int moeplace_placement_clone(moeplace_placement **out, const moeplace_placement *src) {
  if (!out || !src) return mp_fail(MOEPLACE_ERR_ARG, "placement clone: NULL argument");
  *out = NULL;
  int rc = moeplace_placement_create(out, src->layers, src->experts, src->ranks, src->slots);
  if (rc) return rc;
  size_t n = (size_t)src->layers * src->ranks * src->slots;
  memcpy((*out)->phy2log, src->phy2log, n * sizeof *src->phy2log);
  memcpy((*out)->share, src->share, n * sizeof *src->share);
  if (src->rank_node) {
    (*out)->rank_node = malloc((size_t)src->ranks * sizeof *src->rank_node);
    if (!(*out)->rank_node) {
      moeplace_placement_destroy(*out);
      *out = NULL;
      return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory");
    }
    memcpy((*out)->rank_node, src->rank_node, (size_t)src->ranks * sizeof *src->rank_node);
    (*out)->groups = src->groups;
  }
  return MOEPLACE_OK;
}

int mp_placement_set_groups(moeplace_placement *p, const moeplace_topology *topo, int groups) {
  free(p->rank_node);
  p->rank_node = NULL;
  p->groups = 0;
  if (groups <= 1) return MOEPLACE_OK;
  p->rank_node = malloc((size_t)p->ranks * sizeof *p->rank_node);
  MP_CHECK_ALLOC(p->rank_node);
  memcpy(p->rank_node, topo->node, (size_t)p->ranks * sizeof *p->rank_node);
  p->groups = groups;
  return MOEPLACE_OK;
}

void moeplace_placement_destroy(moeplace_placement *p) {
  if (!p) return;
  free(p->phy2log);
  free(p->share);
  free(p->rank_node);
  free(p);
}

int moeplace_placement_layers(const moeplace_placement *p) { return p ? p->layers : 0; }
int moeplace_placement_experts(const moeplace_placement *p) { return p ? p->experts : 0; }
int moeplace_placement_ranks(const moeplace_placement *p) { return p ? p->ranks : 0; }
int moeplace_placement_slots(const moeplace_placement *p) { return p ? p->slots : 0; }

static size_t nslots(const moeplace_placement *p) { return (size_t)p->ranks * p->slots; }

int *moeplace_placement_phy2log(moeplace_placement *p, int layer) {
  if (!p || layer < 0 || layer >= p->layers) return NULL;
  return p->phy2log + (size_t)layer * nslots(p);
}
double *moeplace_placement_share(moeplace_placement *p, int layer) {
  if (!p || layer < 0 || layer >= p->layers) return NULL;
  return p->share + (size_t)layer * nslots(p);
}
const int *moeplace_placement_phy2log_const(const moeplace_placement *p, int layer) {
  if (!p || layer < 0 || layer >= p->layers) return NULL;
  return p->phy2log + (size_t)layer * nslots(p);
}
const double *moeplace_placement_share_const(const moeplace_placement *p, int layer) {
  if (!p || layer < 0 || layer >= p->layers) return NULL;
  return p->share + (size_t)layer * nslots(p);
}

int moeplace_placement_logcnt(const moeplace_placement *p, int layer, int *logcnt) {
  if (!p || !logcnt || layer < 0 || layer >= p->layers)
    return mp_fail(MOEPLACE_ERR_ARG, "placement logcnt: bad argument (layer %d)", layer);
  memset(logcnt, 0, (size_t)p->experts * sizeof *logcnt);
  const int *ph = moeplace_placement_phy2log_const(p, layer);
  for (size_t i = 0; i < nslots(p); i++)
    if (ph[i] >= 0 && ph[i] < p->experts) logcnt[ph[i]]++;
  return MOEPLACE_OK;
}

int moeplace_placement_max_replicas(const moeplace_placement *p) {
  if (!p) return 0;
  int *cnt = calloc((size_t)p->experts, sizeof *cnt);
  if (!cnt) return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory");
  int best = 0;
  for (int l = 0; l < p->layers; l++) {
    moeplace_placement_logcnt(p, l, cnt);
    for (int e = 0; e < p->experts; e++)
      if (cnt[e] > best) best = cnt[e];
  }
  free(cnt);
  return best;
}

int moeplace_placement_log2phy(const moeplace_placement *p, int layer, int max_rep,
                               int *log2phy) {
  if (!p || !log2phy || layer < 0 || layer >= p->layers || max_rep <= 0)
    return mp_fail(MOEPLACE_ERR_ARG, "placement log2phy: bad argument");
  for (size_t i = 0; i < (size_t)p->experts * max_rep; i++) log2phy[i] = -1;
  int *cnt = calloc((size_t)p->experts, sizeof *cnt);
  MP_CHECK_ALLOC(cnt);
  const int *ph = moeplace_placement_phy2log_const(p, layer);
  for (size_t i = 0; i < nslots(p); i++) {
    int e = ph[i];
    if (e < 0 || e >= p->experts) continue;
    if (cnt[e] == max_rep) {
      free(cnt);
      return mp_fail(MOEPLACE_ERR_ARG, "placement log2phy: expert %d has more than %d replicas",
                     e, max_rep);
    }
    log2phy[(size_t)e * max_rep + cnt[e]++] = (int)i;
  }
  free(cnt);
  return MOEPLACE_OK;
}

int moeplace_placement_validate(const moeplace_placement *p) {
  if (!p) return mp_fail(MOEPLACE_ERR_ARG, "placement is NULL");
  const int E = p->experts, S = p->slots;
  double *sum = malloc((size_t)E * sizeof *sum);
  int *last_rank = malloc((size_t)E * sizeof *last_rank);
  if (!sum || !last_rank) {
    free(sum);
    free(last_rank);
    return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory");
  }
  int rc = MOEPLACE_OK;
  for (int l = 0; l < p->layers && !rc; l++) {
    const int *ph = moeplace_placement_phy2log_const(p, l);
    const double *sh = moeplace_placement_share_const(p, l);
    for (int e = 0; e < E; e++) {
      sum[e] = 0;
      last_rank[e] = -1;
    }
    for (size_t i = 0; i < nslots(p) && !rc; i++) {
      int e = ph[i], r = (int)(i / (size_t)S);
      if (e < -1 || e >= E) {
        rc = mp_fail(MOEPLACE_ERR_ARG, "layer %d slot %zu: expert %d out of range [-1, %d)", l,
                     i, e, E);
      } else if (e == -1) {
        if (sh[i] != 0)
          rc = mp_fail(MOEPLACE_ERR_ARG, "layer %d slot %zu: empty slot with share %g", l, i,
                       sh[i]);
      } else if (!(sh[i] >= 0 && sh[i] <= 1 + 1e-9)) {
        rc = mp_fail(MOEPLACE_ERR_ARG, "layer %d slot %zu: share %g not in [0, 1]", l, i, sh[i]);
      } else if (last_rank[e] == r) {
        rc = mp_fail(MOEPLACE_ERR_ARG, "layer %d: rank %d holds expert %d twice", l, r, e);
      } else {
        // slots are visited rank by rank, so one remembered rank detects duplicates
        last_rank[e] = r;
        sum[e] += sh[i];
      }
    }
    for (int e = 0; e < E && !rc; e++) {
      if (last_rank[e] < 0)
        rc = mp_fail(MOEPLACE_ERR_ARG, "layer %d: expert %d has no replica", l, e);
      else if (fabs(sum[e] - 1.0) > 1e-6)
        rc = mp_fail(MOEPLACE_ERR_ARG, "layer %d: shares of expert %d sum to %.9g, not 1", l, e,
                     sum[e]);
    }
  }
  free(sum);
  free(last_rank);
  return rc;
}

int moeplace_placement_rank_loads(const moeplace_placement *p, int layer, const double *loads,
                                  double *rank_load) {
  if (!p || !loads || !rank_load || layer < 0 || layer >= p->layers)
    return mp_fail(MOEPLACE_ERR_ARG, "placement rank loads: bad argument");
  const int *ph = moeplace_placement_phy2log_const(p, layer);
  const double *sh = moeplace_placement_share_const(p, layer);
  for (int r = 0; r < p->ranks; r++) {
    double s = 0;
    for (int k = 0; k < p->slots; k++) {
      size_t i = (size_t)r * p->slots + k;
      if (ph[i] >= 0 && ph[i] < p->experts) s += sh[i] * loads[ph[i]];
    }
    rank_load[r] = s;
  }
  return MOEPLACE_OK;
}

int moeplace_placement_imbalance(const moeplace_placement *p, const double *loads,
                                 double *imbalance) {
  if (!p || !loads || !imbalance) return mp_fail(MOEPLACE_ERR_ARG, "imbalance: bad argument");
  int rc = mp_place_check_loads(p->layers, p->experts, loads);
  if (rc) return rc;
  double *rl = malloc((size_t)p->ranks * sizeof *rl);
  MP_CHECK_ALLOC(rl);
  mp_imbalance_sums sums = {0, 0};
  for (int l = 0; l < p->layers; l++) {
    const double *w = loads + (size_t)l * p->experts; // w: [E]
    moeplace_placement_rank_loads(p, l, w, rl);
    double tot = 0;
    for (int e = 0; e < p->experts; e++) tot += w[e];
    mp_imbalance_add_layer(&sums, rl, p->ranks, tot);
  }
  free(rl);
  *imbalance = mp_imbalance_ratio(sums.max_sum, sums.mean_sum);
  return MOEPLACE_OK;
}

int moeplace_placement_repair(moeplace_placement *p, int *removed) {
  if (!p) return mp_fail(MOEPLACE_ERR_ARG, "placement repair: placement is NULL");
  const int S = p->slots;
  int n = 0;
  for (int l = 0; l < p->layers; l++) {
    int *ph = moeplace_placement_phy2log(p, l);
    double *sh = moeplace_placement_share(p, l);
    for (int r = 0; r < p->ranks; r++) // S is small: pairs within the rank
      for (int k = 1; k < S; k++) {
        int i = r * S + k;
        if (ph[i] < 0) continue;
        for (int k0 = 0; k0 < k; k0++)
          if (ph[r * S + k0] == ph[i]) { // the lowest slot keeps it
            sh[r * S + k0] += sh[i];
            ph[i] = -1;
            sh[i] = 0;
            n++;
            break;
          }
      }
  }
  if (removed) *removed = n;
  return MOEPLACE_OK;
}

int moeplace_placement_equal_shares(moeplace_placement *p) {
  if (!p) return mp_fail(MOEPLACE_ERR_ARG, "equal shares: placement is NULL");
  int *cnt = malloc((size_t)p->experts * sizeof *cnt);
  MP_CHECK_ALLOC(cnt);
  for (int l = 0; l < p->layers; l++) {
    const int *ph = moeplace_placement_phy2log_const(p, l);
    double *sh = moeplace_placement_share(p, l);
    moeplace_placement_logcnt(p, l, cnt);
    for (size_t i = 0; i < nslots(p); i++)
      sh[i] = ph[i] >= 0 && ph[i] < p->experts ? 1.0 / cnt[ph[i]] : 0.0;
  }
  free(cnt);
  return MOEPLACE_OK;
}

static int same_shape(const moeplace_placement *a, const moeplace_placement *b) {
  return a->layers == b->layers && a->experts == b->experts && a->ranks == b->ranks &&
         a->slots == b->slots;
}

/* The slot (global index) in which rank r holds expert e in layer slots ph,
 * or -1. */
int moeplace_placement_diff(const moeplace_placement *from, const moeplace_placement *to,
                            const moeplace_topology *topo, double expert_bytes,
                            moeplace_move_stats *st) {
  if (!from || !to || !st) return mp_fail(MOEPLACE_ERR_ARG, "placement diff: NULL argument");
  if (!same_shape(from, to))
    return mp_fail(MOEPLACE_ERR_ARG, "placement diff: placements have different shapes");
  if (topo && topo->ranks != from->ranks)
    return mp_fail(MOEPLACE_ERR_ARG, "placement diff: topology has %d ranks, placement %d",
                   topo->ranks, from->ranks);
  memset(st, 0, sizeof *st);
  moeplace_transfer *tr;
  size_t n;
  int rc = moeplace_migration_plan(from, to, topo, expert_bytes, &tr, &n);
  if (rc) return rc;
  for (size_t i = 0; i < n; i++) {
    if (tr[i].link == MOEPLACE_LINK_SAME_RANK) continue; // a local copy, not a move
    st->moves++;
    st->bytes_moved += tr[i].bytes;
    if (tr[i].link == MOEPLACE_LINK_OTHER_NODE) st->cross_node_bytes += tr[i].bytes;
    st->cost += tr[i].bytes * (topo ? topo->cost[tr[i].link] : 1.0);
  }
  moeplace_transfers_free(tr);
  return MOEPLACE_OK;
}

void moeplace_transfers_free(moeplace_transfer *transfers) { free(transfers); }
