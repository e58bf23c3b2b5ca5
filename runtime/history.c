/* Ring buffer of window proportions: see history.h. */
#include "config.h"

#include "runtime/history.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/metrics.h"

int mp_rt_history_create(mp_rt_history **out, int L, int E, int capacity) {
  *out = NULL;
  if (L <= 0 || E <= 0 || capacity <= 0)
    return mp_fail(MOEPLACE_ERR_ARG, "history shape must be positive (L=%d E=%d capacity=%d)",
                   L, E, capacity);
  mp_rt_history *h = calloc(1, sizeof *h);
  MP_CHECK_ALLOC(h);
  h->L = L;
  h->E = E;
  h->prop = calloc((size_t)capacity * (size_t)L * (size_t)E, sizeof *h->prop);
  if (!h->prop || mp_window_ring_init(&h->counts, capacity, L, E)) {
    mp_rt_history_destroy(h);
    return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory for %d windows of history", capacity);
  }
  *out = h;
  return MOEPLACE_OK;
}

void mp_rt_history_destroy(mp_rt_history *h) {
  if (!h) return;
  free(h->prop);
  mp_window_ring_free(&h->counts);
  free(h);
}

void mp_rt_history_push(mp_rt_history *h, const uint64_t *totals) {
  // p: [L][E], in the slot the push takes
  double *p = h->prop + (size_t)h->counts.head * h->L * h->E;
  mp_window_ring_push(&h->counts, totals);
  for (int l = 0; l < h->L; l++) {
    mp_proportions_from_counts(totals + (size_t)l * h->E, h->E, p + (size_t)l * h->E);
  }
}

int mp_rt_history_count(const mp_rt_history *h) {
  return h->counts.n;
}

const double *mp_rt_history_get(const mp_rt_history *h, int age) {
  return h->prop + (size_t)mp_window_ring_slot(&h->counts, age) * h->L * h->E;
}

const uint64_t *mp_rt_history_counts(const mp_rt_history *h, int age) {
  return mp_window_ring_get(&h->counts, age);
}

void mp_rt_history_mean(const mp_rt_history *h, int k, double *out) {
  size_t n = (size_t)h->L * h->E;
  int have = mp_rt_history_count(h);
  if (k > have) k = have;
  if (k <= 0) {
    for (size_t i = 0; i < n; i++) out[i] = 1.0 / h->E;
    return;
  }
  memset(out, 0, n * sizeof *out);
  for (int a = 0; a < k; a++) {
    const double *p = mp_rt_history_get(h, a);
    for (size_t i = 0; i < n; i++) out[i] += p[i];
  }
  for (size_t i = 0; i < n; i++) out[i] /= k;
}
