/* Placement files: the JSON moeplace-place writes and accepts back as
 * --current (docs/PLACEMENT.md). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <moeplace.h>

#include "common/error.h"
#include "common/json_file.h"
#include "placement/placement_impl.h"

static int set_new(json_t *obj, const char *key, json_t *val) {
  return val && json_object_set_new(obj, key, val) == 0 ? 0 : -1;
}

int moeplace_placement_write_json(const moeplace_placement *p, const moeplace_place_stats *st,
                                  const char *path) {
  if (!p || !path) return mp_fail(MOEPLACE_ERR_ARG, "placement write: NULL argument");
  const int R = p->ranks, S = p->slots, E = p->experts, L = p->layers;
  json_t *root = json_object();
  int bad = !root;
  bad |= set_new(root, "ranks", json_integer(R));
  bad |= set_new(root, "slots", json_integer(S));
  bad |= set_new(root, "layers", json_integer(L));
  bad |= set_new(root, "experts", json_integer(E));
  if (st) {
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
    const char *pol = moeplace_share_policy_name(st->shares);
    bad |= set_new(root, "shares", json_string(pol ? pol : "weighted"));
  }
  json_t *arr = json_array();
  bad |= set_new(root, "placement", arr);
  int *cnt = malloc((size_t)E * sizeof *cnt);
  bad |= !cnt;
  for (int l = 0; l < L && !bad; l++) {
    json_t *o = json_object(), *ph = json_array(), *sh = json_array(), *lc = json_array();
    bad |= set_new(o, "layer", json_integer(l));
    bad |= set_new(o, "phy2log", ph);
    bad |= set_new(o, "share", sh);
    bad |= set_new(o, "logcnt", lc);
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

/* "placement" must be an array of L layer objects whose "phy2log" and
 * "share" are arrays of RS entries each. */
static int check_holds_shape(const json_t *arr, const char *path, int L, size_t RS) {
  if (!json_is_array(arr) || json_array_size(arr) != (size_t)L)
    return mp_fail(MOEPLACE_ERR_FORMAT, "%s: \"placement\" must be an array of %d layers", path, L);
  for (size_t k = 0; k < (size_t)L; k++) {
    const json_t *o = json_array_get(arr, k);
    const json_t *ph = json_object_get(o, "phy2log"), *sh = json_object_get(o, "share");
    if (!json_is_array(ph) || json_array_size(ph) != RS || !json_is_array(sh) ||
        json_array_size(sh) != RS)
      return mp_fail(MOEPLACE_ERR_FORMAT,
                     "%s: placement[%zu]: \"phy2log\" and \"share\" must be arrays of ranks x "
                     "slots = %zu",
                     path, k, RS);
  }
  return MOEPLACE_OK;
}

int moeplace_placement_read_json(moeplace_placement **out, const char *path) {
  if (!out || !path) return mp_fail(MOEPLACE_ERR_ARG, "placement read: NULL argument");
  *out = NULL;
  json_t *root;
  int rc = mp_json_read_file(path, &root);
  if (rc) return rc;
  int R, S, L, E;
  moeplace_placement *p = NULL;
  if (!json_is_object(root)) {
    rc = mp_fail(MOEPLACE_ERR_FORMAT, "%s: expected a JSON object", path);
    goto done;
  }
  if ((rc = get_dim(root, path, "ranks", &R)) || (rc = get_dim(root, path, "slots", &S)) ||
      (rc = get_dim(root, path, "layers", &L)) || (rc = get_dim(root, path, "experts", &E)))
    goto done;
  // The declared shape is checked against what the file holds before any
  // allocation, so memory is bounded by the file's size (RELIABILITY.md).
  json_t *arr = json_object_get(root, "placement");
  if ((rc = mp_place_check_shape(L, E, R, S))) {
    rc = mp_fail(MOEPLACE_ERR_FORMAT, "%s: %s", path, moeplace_last_error());
    goto done;
  }
  if ((rc = check_holds_shape(arr, path, L, (size_t)R * S))) goto done;
  if ((rc = moeplace_placement_create(&p, L, E, R, S))) {
    rc = mp_fail(MOEPLACE_ERR_FORMAT, "%s: %s", path, moeplace_last_error());
    goto done;
  }
  char *seen = calloc((size_t)L, 1);
  if (!seen) {
    rc = mp_fail(MOEPLACE_ERR_NOMEM, "out of memory");
    goto done;
  }
  for (size_t k = 0; k < (size_t)L && !rc; k++) {
    json_t *o = json_array_get(arr, k), *lj = json_object_get(o, "layer");
    json_t *ph = json_object_get(o, "phy2log"), *sh = json_object_get(o, "share");
    if (!json_is_integer(lj) || json_integer_value(lj) < 0 || json_integer_value(lj) >= L ||
        seen[json_integer_value(lj)]) {
      rc = mp_fail(MOEPLACE_ERR_FORMAT,
                   "%s: placement[%zu]: \"layer\" must be a distinct integer in [0, %d)", path, k,
                   L);
      break;
    }
    int l = (int)json_integer_value(lj);
    seen[l] = 1;
    int *a = moeplace_placement_phy2log(p, l);
    double *b = moeplace_placement_share(p, l);
    for (size_t i = 0; i < (size_t)R * S; i++) {
      json_t *x = json_array_get(ph, i), *y = json_array_get(sh, i);
      if (!json_is_integer(x) || json_integer_value(x) < -1 || json_integer_value(x) >= E) {
        rc = mp_fail(MOEPLACE_ERR_FORMAT, "%s: layer %d: phy2log[%zu] must be an integer in "
                     "[-1, %d)", path, l, i, E);
        break;
      }
      if (!json_is_number(y) || !isfinite(json_number_value(y))) {
        rc = mp_fail(MOEPLACE_ERR_FORMAT, "%s: layer %d: share[%zu] must be a number", path, l,
                     i);
        break;
      }
      a[i] = (int)json_integer_value(x);
      b[i] = json_number_value(y);
    }
  }
  free(seen);
  if (!rc && (rc = moeplace_placement_validate(p))) {
    rc = mp_fail(MOEPLACE_ERR_FORMAT, "%s: invalid placement: %s", path, moeplace_last_error());
  }
done:
  json_decref(root);
  if (rc) {
    moeplace_placement_destroy(p);
    return rc;
  }
  *out = p;
  return MOEPLACE_OK;
}
