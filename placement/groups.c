/* Expert groups and node-limited placement (moeplace_place with
 * options.groups > 1, docs/PLACEMENT.md "Expert groups"). The experts of a
 * layer form G contiguous groups of E / G, as EPLB's num_groups. On N > 1
 * nodes (N dividing G, nodes of equal rank counts:
 * moeplace_groups_node_limited) every replica of a group's experts stays on
 * one node, so a router limited to a few nodes per token (DeepSeek-V3's
 * group-limited routing) can use the placement (on other topologies the
 * groups are only counted, as EPLB falls back to its global policy):
 *
 *  1. per layer, the groups go onto the nodes, G / N each, balancing the
 *     node loads; with a current placement a group stays on the node that
 *     holds its experts unless moving it pays (group_assign);
 *  2. per node, the experts of its groups are placed on its ranks and slots
 *     by moeplace_place itself (same options, groups off), so every solver
 *     option, the share policy included, applies unchanged. The current
 *     placement seen by a node is the real one restricted to its ranks and
 *     groups, completed where a group arrives (node_current);
 *  3. fresh placements only: layers where EPLB's packing (step 1 before its
 *     swaps) could give a lower max are solved again on it, the better kept
 *     (second_start).
 * The figures (imbalance, moves, bytes) are recomputed on the whole result. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
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

int moeplace_placement_split_groups(const moeplace_placement *p, const moeplace_topology *topo,
                                    int groups, int *split) {
  if (!p || !topo || !split) return mp_fail(MOEPLACE_ERR_ARG, "split groups: NULL argument");
  if (topo->ranks != p->ranks)
    return mp_fail(MOEPLACE_ERR_ARG, "split groups: topology has %d ranks, placement %d",
                   topo->ranks, p->ranks);
  if (groups < 0)
    return mp_fail(MOEPLACE_ERR_ARG, "split groups: groups must be >= 0 (0 or 1: one), got %d",
                   groups);
  const int G = groups > 1 ? groups : 1, E = p->experts, S = p->slots;
  if (E % G)
    return mp_fail(MOEPLACE_ERR_ARG, "groups (%d) must divide the experts (%d)", groups, E);
  int *home = malloc((size_t)G * sizeof *home); // [G] first node seen, -2 split
  MP_CHECK_ALLOC(home);
  for (int l = 0; l < p->layers; l++) {
    const int *ph = moeplace_placement_phy2log_const(p, l);
    for (int g = 0; g < G; g++) home[g] = -1;
    for (int i = 0; i < p->ranks * S; i++) {
      if (ph[i] < 0 || ph[i] >= E) continue;
      int g = ph[i] / (E / G), n = topo->node[i / S];
      if (home[g] == -1) home[g] = n;
      else if (home[g] != n) home[g] = -2;
    }
    split[l] = 0;
    for (int g = 0; g < G; g++) split[l] += home[g] == -2;
  }
  free(home);
  return MOEPLACE_OK;
}

int moeplace_groups_node_limited(const moeplace_topology *topo, int groups) {
  if (!topo || groups <= 1 || topo->nodes <= 1 || groups % topo->nodes) return 0;
  const int N = topo->nodes, Rn = topo->ranks / N;
  if (topo->ranks % N) return 0;
  int *fill = calloc((size_t)N, sizeof *fill);
  int equal = fill != NULL; // without memory: not node-limited (the caller's solve still runs)
  for (int r = 0; r < topo->ranks && equal; r++) equal = ++fill[topo->node[r]] <= Rn;
  free(fill);
  return equal;
}

/* *total = the sum over layers of moeplace_placement_split_groups. */
static int split_total(const moeplace_placement *p, const moeplace_topology *topo, int groups,
                       int *total) {
  int *split = malloc((size_t)p->layers * sizeof *split);
  MP_CHECK_ALLOC(split);
  int rc = moeplace_placement_split_groups(p, topo, groups, split);
  *total = 0;
  for (int l = 0; l < p->layers && !rc; l++) *total += split[l];
  free(split);
  return rc;
}

/* The problem of one call with groups. */
typedef struct grp_ctx {
  const moeplace_topology *topo;
  int L, E, S, G, N;
  int Rn, Eg, Gn, En; // ranks per node, experts per group, groups per node, experts per node
  const double *loads; // [L][E]
  const moeplace_placement *current;
  moeplace_place_options opt; // groups off: what every node's moeplace_place gets
  int *node_ranks;  // [N][Rn] the global ranks of each node, in order
  int *gnode;       // [L][G] node of each group
  int *alt;         // [L][G] EPLB's packing before the swaps (fresh placements only, else NULL)
  double *target;   // [L] the busiest node's mean rank load (fresh placements only, else NULL)
  double forced;    // bytes the group moves force (replicas a node must receive)
} grp_ctx;

/* Fills the sizes and node_ranks of a node-limited shape
 * (moeplace_groups_node_limited holds). */
static int grp_shape(grp_ctx *c) {
  const moeplace_topology *t = c->topo;
  c->Rn = t->ranks / c->N;
  c->node_ranks = malloc((size_t)t->ranks * sizeof *c->node_ranks);
  int *fill = calloc((size_t)c->N, sizeof *fill);
  if (!c->node_ranks || !fill) {
    free(fill);
    return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory for the groups");
  }
  for (int r = 0; r < t->ranks; r++) {
    int n = t->node[r];
    c->node_ranks[(size_t)n * c->Rn + fill[n]++] = r;
  }
  free(fill);
  c->Eg = c->E / c->G;
  c->Gn = c->G / c->N;
  c->En = c->E / c->N;
  // equal nodes: Rn x S >= E / N follows from R x S >= E (checked)
  return MOEPLACE_OK;
}

/* have [G][N]: experts of each group with a replica on each node in the
 * current layer cur [R*S]. */
static void group_presence(const grp_ctx *c, const int *cur, int *have, char *seen) {
  memset(have, 0, (size_t)c->G * c->N * sizeof *have);
  memset(seen, 0, (size_t)c->E * c->N);
  for (int i = 0; i < c->topo->ranks * c->S; i++) {
    int e = cur[i];
    if (e < 0) continue;
    int n = c->topo->node[i / c->S];
    if (!seen[(size_t)e * c->N + n]) {
      seen[(size_t)e * c->N + n] = 1;
      have[(e / c->Eg) * c->N + n]++;
    }
  }
}

/* Score of an assignment: the busiest node's mean rank load plus the group
 * moves' price (move [G][N], load units), and the sum of squared node
 * loads as the tie-break that keeps the search moving. */
static void group_score(const grp_ctx *c, const int *gn, const double *nload,
                        const double *move, double *score, double *sq) {
  double mx = 0, s2 = 0, mv = 0;
  for (int n = 0; n < c->N; n++) {
    mx = nload[n] > mx ? nload[n] : mx;
    s2 += nload[n] * nload[n];
  }
  for (int g = 0; g < c->G; g++) mv += move[g * c->N + gn[g]];
  *score = mx / c->Rn + mv;
  *sq = s2;
}

/* Pairwise swaps of groups between nodes while one lowers (score, sum of
 * squares, forced replicas) lexicographically; a swap whose forced bytes exceed `room` (< 0: unlimited) is
 * not taken. */
static void group_swaps(const grp_ctx *c, int *gn, double *nload, const double *gl,
                        const double *move, const int *miss, double room) {
  const int G = c->G;
  double score, sq;
  group_score(c, gn, nload, move, &score, &sq);
  long forced = 0;
  for (int g = 0; g < G; g++) forced += miss[g * c->N + gn[g]];
  for (int it = 0; it < G * G; it++) {
    int ba = -1, bb = -1;
    double bs = score, bq = sq;
    long bf = forced;
    for (int a = 0; a < G; a++)
      for (int b = a + 1; b < G; b++) {
        int na = gn[a], nb = gn[b];
        if (na == nb) continue;
        long f = forced - miss[a * c->N + na] - miss[b * c->N + nb] + miss[a * c->N + nb] +
                 miss[b * c->N + na];
        if (room >= 0 && f * c->opt.expert_bytes > room) continue;
        nload[na] += gl[b] - gl[a];
        nload[nb] += gl[a] - gl[b];
        gn[a] = nb;
        gn[b] = na;
        double s, q;
        group_score(c, gn, nload, move, &s, &q);
        gn[a] = na;
        gn[b] = nb;
        nload[na] -= gl[b] - gl[a];
        nload[nb] -= gl[a] - gl[b];
        const double tol = 1e-12 * (bs > 0 ? bs : 1);
        const int same_q = fabs(q - bq) <= 1e-12 * bq;
        if (s < bs - tol || (s <= bs + tol && !same_q && q < bq) ||
            (s <= bs + tol && same_q && f < bf)) {
          bs = s;
          bq = q;
          bf = f;
          ba = a;
          bb = b;
        }
      }
    if (ba < 0) break;
    int na = gn[ba], nb = gn[bb];
    forced += miss[ba * c->N + nb] + miss[bb * c->N + na] - miss[ba * c->N + na] -
              miss[bb * c->N + nb];
    nload[na] += gl[bb] - gl[ba];
    nload[nb] += gl[ba] - gl[bb];
    gn[ba] = nb;
    gn[bb] = na;
    score = bs;
    sq = bq;
  }
}

/* Scratch of group_assign, [G] and [G][N] arrays. */
typedef struct grp_scratch {
  double *gl, *nload, *move; // [G], [N], [G][N]
  int *have, *miss, *order, *cnt; // [G][N], [G][N], [G], [N]
  char *seen;                // [E][N]
} grp_scratch;

/* Layer l: the node of every group into c->gnode. Fresh: groups in
 * decreasing load to the lightest node with room (EPLB's packing), then
 * swaps. With a current placement, each group starts on the node holding
 * most of its experts (the heaviest groups choose first), and a swap must
 * pay for the replicas it forces across nodes (migration_weight x bytes x
 * the other-node cost, plus min_gain x the layer's mean rank load each). */
static double group_assign(grp_ctx *c, int l, grp_scratch *x, double room) {
  const int G = c->G, N = c->N;
  const double *w = c->loads + (size_t)l * c->E;
  int *gn = c->gnode + (size_t)l * G;
  double tot = 0;
  for (int g = 0; g < G; g++) {
    x->gl[g] = 0;
    for (int i = 0; i < c->Eg; i++) x->gl[g] += w[g * c->Eg + i];
    tot += x->gl[g];
    x->order[g] = g;
  }
  const double mean = tot / c->topo->ranks;
  const double per_move = c->opt.migration_weight * c->opt.expert_bytes *
                              c->topo->cost[MOEPLACE_LINK_OTHER_NODE] +
                          c->opt.min_gain * mean;
  if (c->current)
    group_presence(c, moeplace_placement_phy2log_const(c->current, l), x->have, x->seen);
  for (int k = 0; k < G * N; k++) {
    x->miss[k] = c->current ? c->Eg - x->have[k] : 0;
    x->move[k] = x->miss[k] * per_move;
  }
  // heaviest first (insertion sort: G is small); with a current placement
  // the groups with the most experts in one place choose first
  for (int i = 1; i < G; i++) {
    int v = x->order[i], j = i;
    while (j > 0 && x->gl[x->order[j - 1]] < x->gl[v]) {
      x->order[j] = x->order[j - 1];
      j--;
    }
    x->order[j] = v;
  }
  for (int n = 0; n < N; n++) {
    x->nload[n] = 0;
    x->cnt[n] = 0;
  }
  for (int t = 0; t < G; t++) {
    int g = x->order[t], b = -1;
    for (int n = 0; n < N; n++) {
      if (x->cnt[n] == c->Gn) continue;
      // cheapest move, then fewest replicas to bring (free migration still
      // prefers staying), then the lightest node
      const int kn = g * N + n, kb = g * N + b;
      if (b < 0 || x->move[kn] < x->move[kb] ||
          (x->move[kn] == x->move[kb] &&
           (x->miss[kn] < x->miss[kb] || (x->miss[kn] == x->miss[kb] && x->nload[n] < x->nload[b]))))
        b = n;
    }
    gn[g] = b;
    x->cnt[b]++;
    x->nload[b] += x->gl[g];
  }
  if (c->alt) memcpy(c->alt + (size_t)l * G, gn, (size_t)G * sizeof *gn);
  group_swaps(c, gn, x->nload, x->gl, x->move, x->miss, room);
  double forced = 0;
  for (int g = 0; g < G; g++) forced += x->miss[g * N + gn[g]] * c->opt.expert_bytes;
  return forced;
}

/* Node n's share of the problem: its ranks (a topology of one node with
 * their packages, NUMA domains and costs), the loads of its groups' experts
 * [L][En] (local expert j of layer l is global expert map [L][En]). */
static int node_problem(const grp_ctx *c, int n, moeplace_topology **sub, double *loads,
                        int *map) {
  const moeplace_topology *t = c->topo;
  const int *rk = c->node_ranks + (size_t)n * c->Rn;
  int *lab = malloc((size_t)c->Rn * 3 * sizeof *lab);
  MP_CHECK_ALLOC(lab);
  for (int k = 0; k < c->Rn; k++) {
    lab[k] = 0;
    lab[c->Rn + k] = t->package[rk[k]];
    lab[2 * c->Rn + k] = t->numa[rk[k]];
  }
  int rc = moeplace_topology_create_table(sub, c->Rn, lab, lab + c->Rn, lab + 2 * c->Rn);
  free(lab);
  if (rc) return rc;
  memcpy((*sub)->cost, t->cost, sizeof t->cost);
  for (int l = 0; l < c->L; l++) {
    const int *gn = c->gnode + (size_t)l * c->G;
    int j = 0;
    for (int g = 0; g < c->G; g++) {
      if (gn[g] != n) continue;
      for (int i = 0; i < c->Eg; i++, j++) {
        map[(size_t)l * c->En + j] = g * c->Eg + i;
        loads[(size_t)l * c->En + j] = c->loads[(size_t)l * c->E + g * c->Eg + i];
      }
    }
  }
  return MOEPLACE_OK;
}

/* The current placement as node n sees it: its ranks' slots holding
 * experts of its groups (by local index), every other slot empty; an
 * expert of its groups with no replica there (its group arrives) gets one,
 * forced: in a free slot of the rank with the most free slots, else in
 * place of a spare replica. Equal shares (moeplace_place re-optimises
 * them). inv [E] is scratch. */
static void node_current(const grp_ctx *c, int n, const int *map, moeplace_placement *sub,
                         int *inv) {
  const int S = c->S, Rn = c->Rn;
  const int *rk = c->node_ranks + (size_t)n * Rn;
  int *cnt = inv + c->E; // [En]
  for (int l = 0; l < c->L; l++) {
    const int *cur = moeplace_placement_phy2log_const(c->current, l);
    int *ph = moeplace_placement_phy2log(sub, l);
    for (int e = 0; e < c->E; e++) inv[e] = -1;
    for (int j = 0; j < c->En; j++) {
      inv[map[(size_t)l * c->En + j]] = j;
      cnt[j] = 0;
    }
    for (int k = 0; k < Rn; k++)
      for (int s = 0; s < S; s++) {
        int e = cur[rk[k] * S + s], j = e >= 0 ? inv[e] : -1;
        ph[k * S + s] = j;
        if (j >= 0) cnt[j]++;
      }
    for (int j = 0; j < c->En; j++) {
      if (cnt[j]) continue;
      int best = -1, bfree = 0;
      for (int k = 0; k < Rn; k++) {
        int fr = 0, first = -1;
        for (int s = 0; s < S; s++)
          if (ph[k * S + s] < 0 && fr++ == 0) first = k * S + s;
        if (fr > bfree) bfree = fr, best = first;
      }
      for (int i = 0; best < 0 && i < Rn * S; i++) // full node: a spare replica
        if (ph[i] >= 0 && cnt[ph[i]] > 1) best = i;
      if (ph[best] >= 0) cnt[ph[best]]--;
      ph[best] = j;
      cnt[j] = 1;
    }
  }
  moeplace_placement_equal_shares(sub);
}

/* Solves node n through moeplace_place and writes its slots into res. */
static int solve_node(grp_ctx *c, int n, double *budget, moeplace_placement *res, int *map,
                      double *loads, int *inv) {
  moeplace_topology *sub = NULL;
  moeplace_placement *cur = NULL, *out = NULL;
  int rc = node_problem(c, n, &sub, loads, map);
  if (!rc && c->current && !(rc = moeplace_placement_create(&cur, c->L, c->En, c->Rn, c->S)))
    node_current(c, n, map, cur, inv);
  moeplace_place_options o = c->opt;
  o.byte_budget = *budget;
  o.n_samples = 0; // a node's problem has other experts: samples are ignored in groups
  o.samples = NULL;
  moeplace_place_stats st = {0}; // only its bytes are used, under a budget: else not computed
  if (!rc)
    rc = mp_place_targeted(sub, c->L, c->En, c->S, loads, cur, &o, c->target, &out,
                           *budget >= 0 ? &st : NULL);
  if (!rc) {
    if (*budget >= 0) *budget -= st.bytes_moved;
    const int *rk = c->node_ranks + (size_t)n * c->Rn;
    for (int l = 0; l < c->L; l++) {
      const int *ph = moeplace_placement_phy2log_const(out, l);
      const double *sh = moeplace_placement_share_const(out, l);
      int *rph = moeplace_placement_phy2log(res, l);
      double *rsh = moeplace_placement_share(res, l);
      for (int k = 0; k < c->Rn; k++)
        for (int s = 0; s < c->S; s++) {
          int j = ph[k * c->S + s];
          rph[rk[k] * c->S + s] = j >= 0 ? map[(size_t)l * c->En + j] : -1;
          rsh[rk[k] * c->S + s] = sh[k * c->S + s];
        }
    }
  }
  moeplace_placement_destroy(out);
  moeplace_placement_destroy(cur);
  moeplace_topology_destroy(sub);
  return rc;
}

/* Step 1 for every layer; fails if the byte budget cannot pay the replicas
 * the groups force across nodes. */
static int assign_all(grp_ctx *c) {
  const int G = c->G, N = c->N;
  grp_scratch x = {0};
  x.gl = malloc((size_t)G * sizeof *x.gl);
  x.nload = malloc((size_t)N * sizeof *x.nload);
  x.move = malloc((size_t)G * N * sizeof *x.move);
  x.have = malloc((size_t)G * N * sizeof *x.have);
  x.miss = malloc((size_t)G * N * sizeof *x.miss);
  x.order = malloc((size_t)G * sizeof *x.order);
  x.cnt = malloc((size_t)N * sizeof *x.cnt);
  x.seen = malloc((size_t)c->E * N);
  int rc = MOEPLACE_OK;
  if (!x.gl || !x.nload || !x.move || !x.have || !x.miss || !x.order || !x.cnt || !x.seen)
    rc = mp_fail(MOEPLACE_ERR_NOMEM, "out of memory for the groups");
  double room = c->opt.byte_budget;
  for (int l = 0; l < c->L && !rc; l++) {
    double f = group_assign(c, l, &x, room);
    c->forced += f;
    if (room >= 0) room -= f;
  }
  if (!rc && c->opt.byte_budget >= 0 && c->forced > c->opt.byte_budget)
    rc = mp_fail(MOEPLACE_ERR_ARG,
                 "byte_budget %g cannot make the groups node-limited: the current placement "
                 "spreads groups over nodes and gathering them moves at least %g bytes",
                 c->opt.byte_budget, c->forced);
  free(x.gl);
  free(x.nload);
  free(x.move);
  free(x.have);
  free(x.miss);
  free(x.order);
  free(x.cnt);
  free(x.seen);
  return rc;
}

/* Sum over layers of the unconstrained lower bound and, with a current
 * placement, of its max rank load with the policy's shares, re-optimised
 * or equal (no move), as place.c's keep_current. */
static int whole_figures(const grp_ctx *c, double *lb, double *keep) {
  mp_place_layer st;
  if (mp_place_layer_init(&st, c->E, c->topo->ranks, c->S, c->topo))
    return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory for the placement solver");
  *lb = *keep = 0;
  for (int l = 0; l < c->L; l++) {
    const double *w = c->loads + (size_t)l * c->E;
    *lb += mp_place_layer_bound(&st, w);
    if (!c->current) continue;
    mp_place_layer_set_current(&st, moeplace_placement_phy2log_const(c->current, l),
                               c->opt.expert_bytes);
    mp_place_search none = {.max_iter = 0};
    st.even = c->opt.shares == MOEPLACE_SHARES_EVEN;
    if (st.even)
      mp_place_layer_from_current_even(&st, w, &none);
    else
      mp_place_layer_from_current(&st, w, &none);
    *keep += mp_place_layer_max(&st);
  }
  mp_place_layer_free(&st);
  return MOEPLACE_OK;
}

/* The figures of the assembled result (kept_current: no replica moved). */
static int grp_stats(const grp_ctx *c, const moeplace_placement *res, moeplace_place_stats *s) {
  memset(s, 0, sizeof *s);
  int rc = moeplace_placement_imbalance(res, c->loads, &s->imbalance);
  double lb = 0, keep = 0, den = 0;
  if (!rc) rc = whole_figures(c, &lb, &keep);
  if (rc) return rc;
  for (size_t i = 0; i < (size_t)c->L * c->E; i++) den += c->loads[i];
  den /= c->topo->ranks;
  if (c->current) s->current_imbalance = mp_imbalance_ratio(keep, den);
  rc = mp_place_stats_fill(c->current, res, c->topo, &c->opt, lb, den, s);
  if (rc) return rc;
  s->groups = c->G;
  return split_total(res, c->topo, c->G, &s->split_groups);
}

/* The busiest node's mean rank load of layer l with the groups on gn [G]:
 * no placement of that assignment has a lower max. */
static double assign_bound(const grp_ctx *c, int l, const int *gn, double *nload) {
  const double *w = c->loads + (size_t)l * c->E;
  for (int n = 0; n < c->N; n++) nload[n] = 0;
  for (int e = 0; e < c->E; e++) nload[gn[e / c->Eg]] += w[e];
  double m = 0;
  for (int n = 0; n < c->N; n++) m = nload[n] > m ? nload[n] : m;
  return m / c->Rn;
}

/* Per layer, assign_bound() of c->gnode into c->target [L]: a lighter
 * node whose max stays below it is balanced enough (its even search stops
 * there). nload [N] is scratch. */
static void node_targets(grp_ctx *c, double *nload) {
  for (int l = 0; l < c->L; l++)
    c->target[l] = assign_bound(c, l, c->gnode + (size_t)l * c->G, nload);
}

/* Step 2, every node, for the groups' nodes in c->gnode, into res. A fresh
 * placement first gets c->target: lighter nodes stop at the busiest one's
 * mean. */
static int solve_nodes(grp_ctx *c, moeplace_placement *res) {
  int *map = malloc((size_t)c->L * c->En * sizeof *map);
  double *loads = malloc((size_t)c->L * c->En * sizeof *loads);
  int *inv = malloc(((size_t)c->E + c->En) * sizeof *inv);
  double *nload = malloc((size_t)c->N * sizeof *nload);
  if (!c->current) c->target = malloc((size_t)c->L * sizeof *c->target);
  int rc = MOEPLACE_OK;
  if (!map || !loads || !inv || !nload || (!c->current && !c->target))
    rc = mp_fail(MOEPLACE_ERR_NOMEM, "out of memory for the groups");
  if (!rc && !c->current) node_targets(c, nload);
  double budget = c->opt.byte_budget >= 0 ? c->opt.byte_budget - c->forced : -1;
  for (int n = 0; n < c->N && !rc; n++) rc = solve_node(c, n, &budget, res, map, loads, inv);
  free(map);
  free(loads);
  free(inv);
  free(nload);
  return rc;
}

/* Layer l's max rank load in p (rank loads into rl [R]). */
static double layer_max(const grp_ctx *c, const moeplace_placement *p, int l, const double *w,
                        double *rl) {
  moeplace_placement_rank_loads(p, l, w, rl);
  double m = 0;
  for (int r = 0; r < c->topo->ranks; r++) m = rl[r] > m ? rl[r] : m;
  return m;
}

/* The layers worth a second start into sel [L], their count returned: the
 * swaps changed EPLB's packing, and the packing's bound is below the
 * layer's max rank load in res. rl [R + N] is scratch. */
static int second_layers(const grp_ctx *c, const moeplace_placement *res, int *sel, double *rl) {
  int k = 0;
  for (int l = 0; l < c->L; l++) {
    const int *a = c->alt + (size_t)l * c->G;
    if (!memcmp(a, c->gnode + (size_t)l * c->G, (size_t)c->G * sizeof *a)) continue;
    const double m = layer_max(c, res, l, c->loads + (size_t)l * c->E, rl);
    if (assign_bound(c, l, a, rl + c->topo->ranks) < m * (1 - 1e-12)) sel[k++] = l;
  }
  return k;
}

/* The k layers sel [k] solved again on EPLB's packing; each replaces its
 * layer of res where its max rank load is lower. */
static int solve_again(const grp_ctx *c, moeplace_placement *res, const int *sel, int k,
                       double *rl) {
  const int G = c->G, R = c->topo->ranks;
  grp_ctx s = *c; // the sub-problem of those layers
  s.L = k;
  s.target = NULL;
  s.gnode = malloc((size_t)k * G * sizeof *s.gnode);
  double *loads = malloc((size_t)k * c->E * sizeof *loads);
  moeplace_placement *alt = NULL;
  int rc = !s.gnode || !loads ? mp_fail(MOEPLACE_ERR_NOMEM, "out of memory for the groups")
                              : moeplace_placement_create(&alt, k, c->E, R, c->S);
  for (int i = 0; i < k && !rc; i++) {
    memcpy(s.gnode + (size_t)i * G, c->alt + (size_t)sel[i] * G, (size_t)G * sizeof *s.gnode);
    memcpy(loads + (size_t)i * c->E, c->loads + (size_t)sel[i] * c->E,
           (size_t)c->E * sizeof *loads);
  }
  s.loads = loads;
  if (!rc) rc = solve_nodes(&s, alt);
  for (int i = 0; i < k && !rc; i++) {
    const double *w = loads + (size_t)i * c->E;
    if (layer_max(c, alt, i, w, rl) >= layer_max(c, res, sel[i], w, rl) * (1 - 1e-12)) continue;
    memcpy(moeplace_placement_phy2log(res, sel[i]), moeplace_placement_phy2log_const(alt, i),
           (size_t)R * c->S * sizeof(int));
    memcpy(moeplace_placement_share(res, sel[i]), moeplace_placement_share_const(alt, i),
           (size_t)R * c->S * sizeof(double));
  }
  moeplace_placement_destroy(alt);
  free(s.gnode);
  free(s.target);
  free(loads);
  return rc;
}

/* A fresh placement's second start: the swaps balance the node totals, but
 * a node's experts may pack onto its ranks worse than under another
 * assignment (measured: eplb_compare.py random-groups). The layers of
 * second_layers() are solved again on EPLB's packing, and the better of the
 * two kept per layer. Only without a time limit: the limit is shared by the
 * nodes' first solves. */
static int second_start(grp_ctx *c, moeplace_placement *res) {
  int *sel = malloc((size_t)c->L * sizeof *sel);
  double *rl = malloc((size_t)(c->topo->ranks + c->N) * sizeof *rl);
  int rc = !sel || !rl ? mp_fail(MOEPLACE_ERR_NOMEM, "out of memory for the groups") : MOEPLACE_OK;
  const int k = rc ? 0 : second_layers(c, res, sel, rl);
  if (k) rc = solve_again(c, res, sel, k, rl);
  free(sel);
  free(rl);
  return rc;
}

/* Steps 1 and 2 into res (created by the caller, all empty). */
static int grp_solve(grp_ctx *c, moeplace_placement *res) {
  c->gnode = malloc((size_t)c->L * c->G * sizeof *c->gnode);
  if (!c->current) c->alt = malloc((size_t)c->L * c->G * sizeof *c->alt);
  if (!c->gnode || (!c->current && !c->alt))
    return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory for the groups");
  int rc = assign_all(c);
  if (c->opt.time_limit_ms > 0) c->opt.time_limit_ms /= c->N;
  if (!rc) rc = solve_nodes(c, res);
  if (!rc && c->alt && c->opt.time_limit_ms < 0) rc = second_start(c, res); // no time to respect
  return rc;
}

int mp_place_grouped(const moeplace_topology *topo, int layers, int experts, int slots,
                     const double *loads, const moeplace_placement *current,
                     const moeplace_place_options *opt, moeplace_placement **out,
                     moeplace_place_stats *stats, double t0) {
  grp_ctx c = {.topo = topo, .L = layers, .E = experts, .S = slots, .G = opt->groups,
               .N = topo->nodes, .loads = loads, .current = current, .opt = *opt};
  c.opt.groups = 0;
  int rc = mp_place_check_shape(layers, experts, topo->ranks, slots);
  if (rc) return rc;
  if (experts % c.G)
    return mp_fail(MOEPLACE_ERR_ARG, "groups (%d) must divide the experts (%d)", c.G, experts);
  moeplace_placement *res = NULL;
  moeplace_place_stats s;
  if (!moeplace_groups_node_limited(topo, c.G)) {
    // One node: nothing to limit. N not dividing G or unequal nodes: EPLB
    // falls back to its global policy, and so does this. Only reported.
    rc = moeplace_place(topo, layers, experts, slots, loads, current, &c.opt, &res, &s);
    if (rc) return rc;
    s.groups = c.G;
    rc = split_total(res, topo, c.G, &s.split_groups);
  } else {
    if ((rc = mp_place_check_loads(layers, experts, loads))) return rc;
    if (current && (current->layers != layers || current->experts != experts ||
                    current->ranks != topo->ranks || current->slots != slots))
      return mp_fail(MOEPLACE_ERR_ARG, "current placement has shape %d layers x %d experts x "
                     "%d ranks x %d slots, the problem %d x %d x %d x %d", current->layers,
                     current->experts, current->ranks, current->slots, layers, experts,
                     topo->ranks, slots);
    if (current && (rc = moeplace_placement_validate(current)))
      return mp_fail(rc, "current placement: %s", moeplace_last_error());
    rc = grp_shape(&c);
    if (!rc) rc = moeplace_placement_create(&res, layers, experts, topo->ranks, slots);
    if (!rc) rc = grp_solve(&c, res);
    if (!rc) rc = grp_stats(&c, res, &s);
    free(c.node_ranks);
    free(c.gnode);
    free(c.alt);
    free(c.target);
  }
  if (!rc) rc = mp_placement_set_groups(res, topo, c.G);
  if (rc) {
    moeplace_placement_destroy(res);
    return rc;
  }
  s.solve_ms = (mp_now_s() - t0) * 1e3;
  if (stats) *stats = s;
  *out = res;
  return MOEPLACE_OK;
}
