/* Bounded history of one layer's window proportions: a ring buffer of the
 * last `cap` windows, so memory never grows with the training length. */
#ifndef MOEPLACE_PREDICT_HISTORY_H
#define MOEPLACE_PREDICT_HISTORY_H

#include <stdint.h>

typedef struct mp_predict_history {
  int cap;        /* windows kept */
  int experts;
  int64_t count;  /* windows pushed so far (may exceed cap) */
  double *ring;   /* [cap][experts], window w at slot w % cap */
} mp_predict_history;

int mp_predict_history_init(mp_predict_history *h, int cap, int experts);
void mp_predict_history_free(mp_predict_history *h);
void mp_predict_history_push(mp_predict_history *h, const double *proportions);
/* Windows available (min(count, cap)). */
int mp_predict_history_len(const mp_predict_history *h);
/* The window `back` windows before the newest (back 0 = newest): [experts]. */
const double *mp_predict_history_get(const mp_predict_history *h, int back);

#endif
