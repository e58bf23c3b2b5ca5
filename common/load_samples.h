/* Load samples for the placement (moeplace_place_options.samples): the
 * forecast plus each recent window's deviation from the recent windows'
 * mean, so that the solver sees the forecast level with the step-to-step
 * noise the experts showed together (docs/PLACEMENT.md, "Load samples").
 * One home for the formula: the replay and the runtime both call it. */
#ifndef MOEPLACE_COMMON_LOAD_SAMPLES_H
#define MOEPLACE_COMMON_LOAD_SAMPLES_H

#include <stdint.h>

/* Keeps the last `cap` windows' token counts [L][E] in a ring. */
typedef struct mp_window_ring {
  uint64_t *win; // [cap][L][E]
  int cap, n, head, L, E;
} mp_window_ring;

/* MOEPLACE_OK, or MOEPLACE_ERR_NOMEM; cap 0 keeps nothing. */
int mp_window_ring_init(mp_window_ring *ring, int cap, int L, int E);
void mp_window_ring_free(mp_window_ring *ring);
/* Copies one window's counts [L][E] in, over the oldest when full. */
void mp_window_ring_push(mp_window_ring *ring, const uint64_t *counts);

/* Writes ring->n samples into out [n][L][E], window t's sample of layer l,
 * expert e being max(0, forecast + (share - mean share) x volume): share is
 * the expert's part of the layer's tokens in that window, the mean is over
 * the ring's windows with tokens in the layer, volume is the forecast's
 * layer total (forecast [L][E]). A window without tokens in a layer gives
 * the forecast itself. MOEPLACE_OK, or MOEPLACE_ERR_NOMEM. */
int mp_load_samples(const mp_window_ring *ring, const double *forecast, double *out);

#endif
