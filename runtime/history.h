/* Bounded per-layer history of window load proportions (coordinator side):
 * the fallback forecast (the mean of the last rebalance interval) when the
 * forecaster, which keeps its own history, fails. A ring buffer of
 * `capacity` windows: memory is fixed at creation and does not grow with the
 * length of training. */
#ifndef MOEPLACE_RUNTIME_HISTORY_H
#define MOEPLACE_RUNTIME_HISTORY_H

#include <stdint.h>

#include "common/load_samples.h"

typedef struct mp_rt_history {
  int L, E;
  mp_window_ring counts; /* the windows' raw totals (the load samples read them;
                            checkpoint.c saves them to replay the forecaster on
                            restart); its slots index prop too */
  double *prop;          /* [capacity][L][E] proportions, slot for slot with counts */
} mp_rt_history;

int mp_rt_history_create(mp_rt_history **out, int L, int E, int capacity);
void mp_rt_history_destroy(mp_rt_history *h);

/* Appends one window: totals [L][E] tokens per logical expert. A layer with
 * no tokens gets uniform proportions. */
void mp_rt_history_push(mp_rt_history *h, const uint64_t *totals);

/* Windows available (min(windows pushed, capacity)). */
int mp_rt_history_count(const mp_rt_history *h);

/* Proportions [L][E] of the window `age` windows back (0 = newest). */
const double *mp_rt_history_get(const mp_rt_history *h, int age);

/* Raw totals [L][E] of the window `age` windows back (0 = newest). */
const uint64_t *mp_rt_history_counts(const mp_rt_history *h, int age);

/* Mean of the proportions of the newest k windows (k clamped to what is
 * available; uniform if nothing is): out [L][E]. */
void mp_rt_history_mean(const mp_rt_history *h, int k, double *out);

#endif
