/* Placement files: the JSON moeplace-place writes and accepts back as
 * --current (docs/PLACEMENT.md). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <moeplace.h>

#include "common/error.h"
#include "common/input_name.h"
#include "common/json_file.h"
#include "placement/placement_impl.h"

static int set_new(json_t *obj, const char *key, json_t *val) {
  return val && json_object_set_new(obj, key, val) == 0 ? 0 : -1;
}

/* EPLB's three maps, top level: phy2log [L][R*S], log2phy [L][E][max_rep]
 * (-1 padded), logcnt [L][E]. */
static int write_maps(json_t *root, const moeplace_placement *p) {
  const int E = p->experts, L = p->layers, RS = p->ranks * p->slots;
  const int mr = moeplace_placement_max_replicas(p);
  if (mr < 0) return -1;
  json_t *ph = json_array(), *l2p = json_array(), *lc = json_array();
  int bad = set_new(root, "phy2log", ph) | set_new(root, "log2phy", l2p) |
            set_new(root, "logcnt", lc);
  int *cnt = malloc((size_t)E * sizeof *cnt);
  int *map = malloc(((size_t)E * (mr > 0 ? mr : 1)) * sizeof *map);
  bad |= !cnt || !map;
  for (int l = 0; l < L && !bad; l++) {
    json_t *a = json_array(), *b = json_array(), *c = json_array();
    bad |= json_array_append_new(ph, a) | json_array_append_new(l2p, b) |
           json_array_append_new(lc, c);
    if (bad) break;
    const int *x = moeplace_placement_phy2log_const(p, l);
    for (int i = 0; i < RS; i++) bad |= json_array_append_new(a, json_integer(x[i]));
    moeplace_placement_logcnt(p, l, cnt);
    if (mr > 0) moeplace_placement_log2phy(p, l, mr, map);
    for (int e = 0; e < E && !bad; e++) {
      json_t *row = json_array();
      bad |= json_array_append_new(b, row) | json_array_append_new(c, json_integer(cnt[e]));
      for (int k = 0; k < mr && !bad; k++)
        bad |= json_array_append_new(row, json_integer(map[(size_t)e * mr + k]));
    }
  }
  free(cnt);
  free(map);
  return bad ? -1 : 0;
}

static int write_stats(json_t *root, const moeplace_place_stats *st) {
  int bad = 0;
  bad |= set_new(root, "imbalance", json_real(st->imbalance));
  bad |= set_new(root, "lower_bound", json_real(st->lower_bound));
  bad |= set_new(root, "gap", json_real(st->gap));
  bad |= set_new(root, "current_imbalance", json_real(st->current_imbalance));
  bad |= set_new(root, "kept_current", json_boolean(st->kept_current));
  bad |= set_new(root, "moves", json_integer(st->moves));
  bad |= set_new(root, "bytes_moved", json_real(st->bytes_moved));
  bad |= set_new(root, "cross_node_bytes", json_real(st->cross_node_bytes));
  bad |= set_new(root, "migration_cost", json_real(st->migration_cost));
  bad |= set_new(root, "solve_ms", json_real(st->solve_ms));
  bad |= set_new(root, "groups", json_integer(st->groups));
  bad |= set_new(root, "split_groups", json_integer(st->split_groups));
  bad |= set_new(root, "migration_s", json_real(st->migration_s));
  bad |= set_new(root, "saving_s", json_real(st->saving_s));
  const char *pol = moeplace_share_policy_name(st->shares);
  bad |= set_new(root, "shares", json_string(pol ? pol : "weighted"));
  return bad;
}

/* Groups of layer l spanning more than one node, from the nodes recorded
 * in p by moeplace_place (p->groups > 1). */
static int layer_split_groups(const moeplace_placement *p, int l, int *home) {
  const int G = p->groups, E = p->experts, S = p->slots;
  const int *ph = moeplace_placement_phy2log_const(p, l);
  for (int g = 0; g < G; g++) home[g] = -1;
  for (int i = 0; i < p->ranks * S; i++) {
    if (ph[i] < 0 || ph[i] >= E) continue;
    int g = ph[i] / (E / G), n = p->rank_node[i / S];
    home[g] = home[g] == -1 || home[g] == n ? n : -2;
  }
  int k = 0;
  for (int g = 0; g < G; g++) k += home[g] == -2;
  return k;
}

int moeplace_placement_write_json(const moeplace_placement *p, const moeplace_place_stats *st,
                                  const char *path) {
  if (!p || !path) return mp_fail(MOEPLACE_ERR_ARG, "placement write: NULL argument");
  const int R = p->ranks, S = p->slots, E = p->experts, L = p->layers;
  const int grouped = p->groups > 1 && p->rank_node && E % p->groups == 0;
  json_t *root = json_object();
  int bad = !root;
  bad |= set_new(root, "ranks", json_integer(R));
  bad |= set_new(root, "slots", json_integer(S));
  bad |= set_new(root, "layers", json_integer(L));
  bad |= set_new(root, "experts", json_integer(E));
  if (st) bad |= write_stats(root, st);
  if (!bad) bad |= write_maps(root, p);
  json_t *arr = json_array();
  bad |= set_new(root, "placement", arr);
  int *cnt = malloc((size_t)E * sizeof *cnt);
  int *home = malloc((size_t)(grouped ? p->groups : 1) * sizeof *home);
  bad |= !cnt || !home;
  for (int l = 0; l < L && !bad; l++) {
    json_t *o = json_object(), *ph = json_array(), *sh = json_array(), *lc = json_array();
    bad |= set_new(o, "layer", json_integer(l));
    bad |= set_new(o, "phy2log", ph);
    bad |= set_new(o, "share", sh);
    bad |= set_new(o, "logcnt", lc);
    if (grouped) bad |= set_new(o, "split_groups", json_integer(layer_split_groups(p, l, home)));
    bad |= !o || json_array_append_new(arr, o);
    if (bad) break;
    const int *a = moeplace_placement_phy2log_const(p, l);
    const double *b = moeplace_placement_share_const(p, l);
    for (int i = 0; i < R * S; i++) {
      bad |= json_array_append_new(ph, json_integer(a[i]));
      bad |= json_array_append_new(sh, json_real(b[i]));
    }
    moeplace_placement_logcnt(p, l, cnt);
    for (int e = 0; e < E; e++) bad |= json_array_append_new(lc, json_integer(cnt[e]));
  }
  free(cnt);
  free(home);
  int rc = bad ? mp_fail(MOEPLACE_ERR_NOMEM, "out of memory building placement JSON")
               : mp_json_write_file(root, path);
  json_decref(root);
  return rc;
}

static int get_dim(json_t *root, const char *path, const char *key, int *out) {
  json_t *v = json_object_get(root, key);
  if (!json_is_integer(v) || json_integer_value(v) < 1 ||
      json_integer_value(v) > MP_PLACE_MAX_DIM)
    return mp_fail(MOEPLACE_ERR_FORMAT, "%s: \"%s\" must be an integer in [1, %d]", path, key,
                   MP_PLACE_MAX_DIM);
  *out = (int)json_integer_value(v);
  return MOEPLACE_OK;
}

/* The phy2log rows of the file, [L] arrays of RS entries each: the layer
 * objects' "phy2log" (rows[l] in layer order; shares[l] their "share" or
 * NULL; counts[l] their "logcnt" or NULL) or, without "placement", the
 * top-level EPLB map. Checks the shape before anything is allocated (memory
 * bounded by the file's size). */
typedef struct json_rows {
  int L;
  const json_t **rows, **shares, **counts; // [L]
} json_rows;

static int rows_of_layers(const json_t *arr, const char *path, size_t RS, json_rows *x) {
  for (size_t k = 0; k < (size_t)x->L; k++) {
    const json_t *o = json_array_get(arr, k), *lj = json_object_get(o, "layer");
    const json_t *ph = json_object_get(o, "phy2log"), *sh = json_object_get(o, "share");
    if (!json_is_integer(lj) || json_integer_value(lj) < 0 || json_integer_value(lj) >= x->L ||
        x->rows[json_integer_value(lj)])
      return mp_fail(MOEPLACE_ERR_FORMAT,
                     "%s: placement[%zu]: \"layer\" must be a distinct integer in [0, %d)", path,
                     k, x->L);
    if (!json_is_array(ph) || json_array_size(ph) != RS ||
        (sh && (!json_is_array(sh) || json_array_size(sh) != RS)))
      return mp_fail(MOEPLACE_ERR_FORMAT,
                     "%s: placement[%zu]: \"phy2log\" and \"share\" (optional) must be arrays of "
                     "ranks x slots = %zu",
                     path, k, RS);
    x->rows[json_integer_value(lj)] = ph;
    x->shares[json_integer_value(lj)] = sh;
    x->counts[json_integer_value(lj)] = json_object_get(o, "logcnt");
  }
  return MOEPLACE_OK;
}

static int json_rows_get(json_t *root, const char *path, size_t RS, json_rows *x) {
  const json_t *arr = json_object_get(root, "placement"), *top = json_object_get(root, "phy2log");
  const json_t *src = arr ? arr : top;
  const char *what = arr ? "placement" : "phy2log";
  if (!json_is_array(src))
    return mp_fail(MOEPLACE_ERR_FORMAT, "%s: needs \"placement\" (an array of layers) or a "
                   "top-level \"phy2log\" [layers][ranks x slots]", path);
  json_t *lv = json_object_get(root, "layers");
  if (lv) {
    int L;
    int rc = get_dim(root, path, "layers", &L);
    if (rc) return rc;
    if (json_array_size(src) != (size_t)L)
      return mp_fail(MOEPLACE_ERR_FORMAT, "%s: \"%s\" must be an array of %d layers", path, what,
                     L);
  } else if (json_array_size(src) < 1 || json_array_size(src) > MP_PLACE_MAX_DIM) {
    return mp_fail(MOEPLACE_ERR_FORMAT, "%s: \"%s\" must be an array of 1 to %d layers", path,
                   what, MP_PLACE_MAX_DIM);
  }
  x->L = (int)json_array_size(src);
  x->rows = calloc((size_t)x->L, sizeof *x->rows);
  x->shares = calloc((size_t)x->L, sizeof *x->shares);
  x->counts = calloc((size_t)x->L, sizeof *x->counts);
  if (!x->rows || !x->shares || !x->counts) return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory");
  if (arr) return rows_of_layers(arr, path, RS, x);
  for (size_t l = 0; l < (size_t)x->L; l++) {
    x->rows[l] = json_array_get(top, l);
    if (!json_is_array(x->rows[l]) || json_array_size(x->rows[l]) != RS)
      return mp_fail(MOEPLACE_ERR_FORMAT,
                     "%s: phy2log[%zu] must be an array of ranks x slots = %zu", path, l, RS);
  }
  return MOEPLACE_OK;
}

/* Experts: the "experts" key, or without it the largest id + 1. */
static int json_experts(json_t *root, const char *path, const json_rows *x, int *E) {
  if (json_object_get(root, "experts")) return get_dim(root, path, "experts", E);
  json_int_t mx = -1;
  for (int l = 0; l < x->L; l++)
    for (size_t i = 0; i < json_array_size(x->rows[l]); i++) {
      json_t *v = json_array_get(x->rows[l], i);
      if (json_is_integer(v) && json_integer_value(v) > mx) mx = json_integer_value(v);
    }
  if (mx < 0)
    return mp_fail(MOEPLACE_ERR_FORMAT, "%s: no \"experts\" and no expert id in phy2log", path);
  if (mx >= MP_PLACE_MAX_DIM)
    return mp_fail(MOEPLACE_ERR_FORMAT, "%s: expert id %lld in phy2log is too large (at most %d)",
                   path, (long long)mx, MP_PLACE_MAX_DIM - 1);
  *E = (int)mx + 1;
  return MOEPLACE_OK;
}

/* Fills p from the rows; a layer without shares gets equal ones. */
static int json_fill(moeplace_placement *p, const char *path, const json_rows *x) {
  const int E = p->experts;
  const size_t RS = (size_t)p->ranks * p->slots;
  int *cnt = calloc((size_t)E, sizeof *cnt);
  MP_CHECK_ALLOC(cnt);
  int rc = MOEPLACE_OK;
  for (int l = 0; l < x->L && !rc; l++) {
    int *a = moeplace_placement_phy2log(p, l);
    double *b = moeplace_placement_share(p, l);
    memset(cnt, 0, (size_t)E * sizeof *cnt);
    for (size_t i = 0; i < RS && !rc; i++) {
      json_t *v = json_array_get(x->rows[l], i);
      json_t *y = x->shares[l] ? json_array_get(x->shares[l], i) : NULL;
      if (!json_is_integer(v) || json_integer_value(v) < -1 || json_integer_value(v) >= E)
        rc = mp_fail(MOEPLACE_ERR_FORMAT, "%s: layer %d: phy2log[%zu] must be an integer in "
                     "[-1, %d)", path, l, i, E);
      else if (x->shares[l] && (!json_is_number(y) || !isfinite(json_number_value(y))))
        rc = mp_fail(MOEPLACE_ERR_FORMAT, "%s: layer %d: share[%zu] must be a number", path, l,
                     i);
      else {
        a[i] = (int)json_integer_value(v);
        b[i] = y ? json_number_value(y) : 0;
        if (a[i] >= 0) cnt[a[i]]++;
      }
    }
    for (size_t i = 0; i < RS && !rc && !x->shares[l]; i++)
      b[i] = a[i] >= 0 ? 1.0 / cnt[a[i]] : 0;
  }
  free(cnt);
  return rc;
}

/* The maps beside the one the placement is read from. A user reads (and
 * may edit) the top-level EPLB maps, so a copy that is malformed or says
 * something else than the placement read is refused, never silently
 * ignored. They are checked against the map as the file holds it, before
 * any repair (EPLB's logcnt counts a duplicate on a rank too). */

/* v is an integer in [lo, hi): stored in *out. */
static int int_in(const json_t *v, json_int_t lo, json_int_t hi, int *out) {
  if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) >= hi) return 0;
  *out = (int)json_integer_value(v);
  return 1;
}

static int is_layers(const json_t *v, int L) {
  return json_is_array(v) && json_array_size(v) == (size_t)L;
}

/* Top-level phy2log with "placement": element by element the same map. */
static int check_top_phy2log(const json_t *top, const char *path, const moeplace_placement *p) {
  const int L = p->layers, E = p->experts;
  const size_t RS = (size_t)p->ranks * p->slots;
  if (!is_layers(top, L))
    return mp_fail(MOEPLACE_ERR_FORMAT, "%s: top-level \"phy2log\" must be an array of %d layers",
                   path, L);
  for (int l = 0; l < L; l++) {
    const json_t *row = json_array_get(top, (size_t)l);
    const int *a = moeplace_placement_phy2log_const(p, l);
    if (!json_is_array(row) || json_array_size(row) != RS)
      return mp_fail(MOEPLACE_ERR_FORMAT,
                     "%s: top-level \"phy2log\"[%d] must be an array of ranks x slots = %zu", path,
                     l, RS);
    for (size_t i = 0; i < RS; i++) {
      int e;
      if (!int_in(json_array_get(row, i), -1, E, &e))
        return mp_fail(MOEPLACE_ERR_FORMAT,
                       "%s: top-level \"phy2log\"[%d][%zu] must be an integer in [-1, %d)", path,
                       l, i, E);
      if (e != a[i])
        return mp_fail(MOEPLACE_ERR_FORMAT,
                       "%s: top-level \"phy2log\"[%d][%zu] is %d but \"placement\" layer %d has "
                       "%d there (the top-level maps must agree with \"placement\")",
                       path, l, i, e, l, a[i]);
    }
  }
  return MOEPLACE_OK;
}

/* One layer's logcnt (`name`, e.g. "logcnt"[3]) against cnt[E], the replica
 * counts of the layer's phy2log. */
static int check_logcnt_row(const json_t *row, const char *path, const char *name, int l,
                            const int *cnt, int E) {
  if (!json_is_array(row) || json_array_size(row) != (size_t)E)
    return mp_fail(MOEPLACE_ERR_FORMAT, "%s: %s must be an array of %d replica counts (layer %d)",
                   path, name, E, l);
  for (int e = 0; e < E; e++) {
    const json_t *v = json_array_get(row, (size_t)e);
    if (!json_is_integer(v) || json_integer_value(v) != cnt[e])
      return mp_fail(MOEPLACE_ERR_FORMAT,
                     "%s: %s[%d] must be %d: layer %d's phy2log holds expert %d %d time(s)", path,
                     name, e, cnt[e], l, e, cnt[e]);
  }
  return MOEPLACE_OK;
}

/* One layer of log2phy [E][W]: row e lists exactly the slots of phy2log
 * holding e (any order, as EPLB orders them by replica), -1 elsewhere.
 * seen[RS] marks slots listed in this layer with l + 1. */
static int check_log2phy_layer(const json_t *m, const char *path, int l, const int *ph,
                               const int *cnt, size_t RS, int *seen) {
  const size_t E = json_array_size(m), W = json_array_size(json_array_get(m, 0));
  for (size_t e = 0; e < E; e++) {
    const json_t *row = json_array_get(m, e);
    if (!json_is_array(row) || json_array_size(row) != W)
      return mp_fail(MOEPLACE_ERR_FORMAT,
                     "%s: \"log2phy\"[%d][%zu] must be an array of %zu slots, as [%d][0]", path,
                     l, e, W, l);
    int n = 0;
    for (size_t k = 0; k < W; k++) {
      const json_t *v = json_array_get(row, k);
      int i;
      if (json_is_integer(v) && json_integer_value(v) == -1) continue;
      if (!int_in(v, 0, (json_int_t)RS, &i) || ph[i] != (int)e || seen[i] == l + 1)
        return mp_fail(MOEPLACE_ERR_FORMAT,
                       "%s: \"log2phy\"[%d][%zu][%zu] must be -1 or a slot of phy2log[%d] "
                       "holding expert %zu, listed once",
                       path, l, e, k, l, e);
      seen[i] = l + 1;
      n++;
    }
    if (n != cnt[e])
      return mp_fail(MOEPLACE_ERR_FORMAT,
                     "%s: \"log2phy\"[%d][%zu] lists %d slot(s) but phy2log[%d] holds expert %zu "
                     "%d time(s)",
                     path, l, e, n, l, e, cnt[e]);
  }
  return MOEPLACE_OK;
}

/* Layer l's logcnt copies and log2phy against p's phy2log. */
static int check_layer_maps(const json_t *lc, const json_t *l2p, const char *path,
                            const moeplace_placement *p, const json_rows *x, int l, int *cnt,
                            int *seen) {
  const int E = p->experts;
  const json_t *m = l2p ? json_array_get(l2p, (size_t)l) : NULL;
  char name[64];
  int rc = moeplace_placement_logcnt(p, l, cnt);
  snprintf(name, sizeof name, "\"placement\" layer %d: \"logcnt\"", l);
  if (!rc && x->counts[l]) rc = check_logcnt_row(x->counts[l], path, name, l, cnt, E);
  snprintf(name, sizeof name, "\"logcnt\"[%d]", l);
  if (!rc && lc) rc = check_logcnt_row(json_array_get(lc, (size_t)l), path, name, l, cnt, E);
  if (!rc && m && (!json_is_array(m) || json_array_size(m) != (size_t)E))
    rc = mp_fail(MOEPLACE_ERR_FORMAT, "%s: \"log2phy\"[%d] must be an array of %d experts", path,
                 l, E);
  if (!rc && m)
    rc = check_log2phy_layer(m, path, l, moeplace_placement_phy2log_const(p, l), cnt,
                             (size_t)p->ranks * p->slots, seen);
  return rc;
}

static int check_maps(json_t *root, const char *path, const moeplace_placement *p,
                      const json_rows *x) {
  const json_t *lc = json_object_get(root, "logcnt"), *l2p = json_object_get(root, "log2phy");
  const json_t *top = json_object_get(root, "phy2log");
  const int L = p->layers;
  int rc;
  if (json_object_get(root, "placement") && top && (rc = check_top_phy2log(top, path, p)))
    return rc;
  const char *bad = lc && !is_layers(lc, L) ? "logcnt" : l2p && !is_layers(l2p, L) ? "log2phy" : 0;
  if (bad)
    return mp_fail(MOEPLACE_ERR_FORMAT, "%s: top-level \"%s\" must be an array of %d layers",
                   path, bad, L);
  int *cnt = malloc((size_t)p->experts * sizeof *cnt);
  int *seen = calloc((size_t)p->ranks * p->slots, sizeof *seen);
  rc = !cnt || !seen ? mp_fail(MOEPLACE_ERR_NOMEM, "out of memory checking %s", path) : 0;
  for (int l = 0; l < L && !rc; l++) rc = check_layer_maps(lc, l2p, path, p, x, l, cnt, seen);
  free(cnt);
  free(seen);
  return rc;
}

static int read_json(moeplace_placement **out, const char *path, int *repaired) {
  if (!out || !path) return mp_fail(MOEPLACE_ERR_ARG, "placement read: NULL argument");
  *out = NULL;
  json_t *root;
  int rc = mp_json_read_file(path, &root);
  if (rc) return rc;
  path = mp_input_name(path);
  int R, S, E;
  moeplace_placement *p = NULL;
  json_rows x = {0};
  if (!json_is_object(root)) {
    rc = mp_fail(MOEPLACE_ERR_FORMAT, "%s: expected a JSON object", path);
    goto done;
  }
  if ((rc = get_dim(root, path, "ranks", &R)) || (rc = get_dim(root, path, "slots", &S)) ||
      (rc = json_rows_get(root, path, (size_t)R * S, &x)) ||
      (rc = json_experts(root, path, &x, &E)))
    goto done;
  if ((rc = mp_place_check_shape(x.L, E, R, S)) ||
      (rc = moeplace_placement_create(&p, x.L, E, R, S))) {
    rc = mp_fail(MOEPLACE_ERR_FORMAT, "%s: %s", path, moeplace_last_error());
    goto done;
  }
  if ((rc = json_fill(p, path, &x)) || (rc = check_maps(root, path, p, &x))) goto done;
  if (repaired) moeplace_placement_repair(p, repaired);
  if ((rc = moeplace_placement_validate(p)))
    rc = mp_fail(MOEPLACE_ERR_FORMAT, "%s: invalid placement: %s", path, moeplace_last_error());
done:
  free(x.rows);
  free(x.shares);
  free(x.counts);
  json_decref(root);
  if (rc) {
    moeplace_placement_destroy(p);
    return rc;
  }
  *out = p;
  return MOEPLACE_OK;
}

int moeplace_placement_read_json(moeplace_placement **out, const char *path) {
  return read_json(out, path, NULL);
}

int moeplace_placement_read_json_repair(moeplace_placement **out, const char *path,
                                        int *repaired) {
  int n = 0;
  int rc = read_json(out, path, &n);
  if (!rc && repaired) *repaired = n;
  return rc;
}
