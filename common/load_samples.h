/* Load samples for the placement (moeplace_place_options.samples): the
 * forecast plus each recent window's deviation from the recent windows'
 * mean, so that the solver sees the forecast level with the step-to-step
 * noise the experts showed together (docs/PLACEMENT.md, "Load samples").
 * One home for the formula and for the ring of recent windows it reads:
 * the replay keeps one, the runtime's history (runtime/history.h) another. */
#ifndef MOEPLACE_COMMON_LOAD_SAMPLES_H
#define MOEPLACE_COMMON_LOAD_SAMPLES_H

#include <stdint.h>

/* The runtime in libmoeplace-mpi calls the ring from libmoeplace, which
 * exports only moeplace_* names (Makefile.am). */
#define mp_window_ring_init moeplace_private_window_ring_init
#define mp_window_ring_free moeplace_private_window_ring_free
#define mp_window_ring_push moeplace_private_window_ring_push
#define mp_window_ring_get moeplace_private_window_ring_get
#define mp_window_ring_slot moeplace_private_window_ring_slot
#define mp_window_ring_samples moeplace_private_window_ring_samples

/* The default number of recent windows taken as samples, by the replay
 * (--samples), the runtime (load_samples) and the demo: one default
 * rebalance interval of the replay (docs/RESULTS.md, "Load samples"). */
#define MP_LOAD_SAMPLES_DEFAULT 50

/* Keeps the last `cap` windows' token counts [L][E] in a ring: memory is
 * fixed at init and does not grow with the length of training. */
typedef struct mp_window_ring {
  uint64_t *win;       // [cap][L][E]
  const uint64_t **ptr; // [cap] scratch: the windows for mp_load_samples
  int cap, n, head, L, E; // n windows held; head: the slot the next push takes
} mp_window_ring;

/* MOEPLACE_OK, or MOEPLACE_ERR_NOMEM (then free it all the same); cap 0
 * keeps nothing. */
int mp_window_ring_init(mp_window_ring *ring, int cap, int L, int E);
void mp_window_ring_free(mp_window_ring *ring);
/* Copies one window's counts [L][E] in, over the oldest when full. */
void mp_window_ring_push(mp_window_ring *ring, const uint64_t *counts);
/* The slot [0, cap) of the window `age` pushes back (0: the newest;
 * 0 <= age < ring->n); it is also the age of slot `age` (the map is its own
 * inverse). A caller keeping more per window (runtime/history.c) indexes
 * its own [cap] arrays by it. */
int mp_window_ring_slot(const mp_window_ring *ring, int age);
/* The counts [L][E] of the window `age` pushes back (0: the newest;
 * 0 <= age < ring->n), owned by the ring until the push that overwrites it. */
const uint64_t *mp_window_ring_get(const mp_window_ring *ring, int age);

/* mp_load_samples of the newest min(k, ring->n) windows into
 * out [min(k, n)][L][E], in the ring's storage order (the samples' order
 * means nothing, but the sums over them round by it: a fixed order keeps
 * decisions repeatable bit for bit). */
int mp_window_ring_samples(const mp_window_ring *ring, int k, const double *forecast,
                           double *out);

/* Writes n samples into out [n][L][E] from n windows' token counts
 * windows[t] [L][E]: window t's sample of layer l, expert e is
 * max(0, forecast + (share - mean share) x volume), where share is the
 * expert's part of the layer's tokens in that window, the mean is over the
 * windows with tokens in the layer, and volume is the forecast's layer
 * total (forecast [L][E]). A window without tokens in a layer gives the
 * forecast itself. MOEPLACE_OK, or MOEPLACE_ERR_NOMEM. */
int mp_load_samples(const uint64_t *const *windows, int n, int L, int E, const double *forecast,
                    double *out);

#endif
