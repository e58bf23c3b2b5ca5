#include "predict/history.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

int mp_predict_history_init(mp_predict_history *h, int cap, int experts) {
  memset(h, 0, sizeof *h);
  if (cap <= 0 || experts <= 0)
    return mp_fail(MOEPLACE_ERR_ARG, "history: cap (%d) and experts (%d) must be > 0", cap,
                   experts);
  h->ring = calloc((size_t)cap * experts, sizeof *h->ring);
  MP_CHECK_ALLOC(h->ring);
  h->cap = cap;
  h->experts = experts;
  return MOEPLACE_OK;
}

void mp_predict_history_free(mp_predict_history *h) {
  free(h->ring);
  h->ring = NULL;
}

void mp_predict_history_push(mp_predict_history *h, const double *proportions) {
  memcpy(h->ring + (size_t)(h->count % h->cap) * h->experts, proportions,
         (size_t)h->experts * sizeof *proportions);
  h->count++;
}

int mp_predict_history_len(const mp_predict_history *h) {
  return h->count < h->cap ? (int)h->count : h->cap;
}

const double *mp_predict_history_get(const mp_predict_history *h, int back) {
  int64_t w = h->count - 1 - back;
  return h->ring + (size_t)(w % h->cap) * h->experts;
}
