/* Load samples from the recent windows: common/load_samples.h. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdlib.h>
#include <string.h>

#include <moeplace.h>

#include "common/error.h"
#include "common/load_samples.h"

int mp_window_ring_init(mp_window_ring *ring, int cap, int L, int E) {
  memset(ring, 0, sizeof *ring);
  ring->cap = cap > 0 ? cap : 0;
  ring->L = L;
  ring->E = E;
  if (!ring->cap) return MOEPLACE_OK;
  ring->win = malloc((size_t)ring->cap * L * E * sizeof *ring->win);
  ring->ptr = malloc((size_t)ring->cap * sizeof *ring->ptr);
  if (!ring->win || !ring->ptr) return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory for %d windows", cap);
  return MOEPLACE_OK;
}

void mp_window_ring_free(mp_window_ring *ring) {
  free(ring->win);
  free(ring->ptr);
  ring->win = NULL;
  ring->ptr = NULL;
  ring->n = 0;
}

int mp_window_ring_slot(const mp_window_ring *ring, int age) {
  return ((ring->head - 1 - age) % ring->cap + ring->cap) % ring->cap;
}

const uint64_t *mp_window_ring_get(const mp_window_ring *ring, int age) {
  return ring->win + (size_t)mp_window_ring_slot(ring, age) * ring->L * ring->E;
}

int mp_window_ring_samples(const mp_window_ring *ring, int k, const double *forecast,
                           double *out) {
  int t = 0;
  for (int slot = 0; slot < ring->n; slot++) {
    if (mp_window_ring_slot(ring, slot) < k) // the slot's age
      ring->ptr[t++] = ring->win + (size_t)slot * ring->L * ring->E;
  }
  return mp_load_samples(ring->ptr, t, ring->L, ring->E, forecast, out);
}

void mp_window_ring_push(mp_window_ring *ring, const uint64_t *counts) {
  if (!ring->cap) return;
  const size_t LE = (size_t)ring->L * ring->E;
  memcpy(ring->win + (size_t)ring->head * LE, counts, LE * sizeof *counts);
  ring->head = (ring->head + 1) % ring->cap;
  if (ring->n < ring->cap) ring->n++;
}

int mp_load_samples(const uint64_t *const *windows, int n, int L, int E, const double *forecast,
                    double *out) {
  if (n <= 0) return MOEPLACE_OK;
  double *tot = malloc((size_t)n * sizeof *tot); // [n] one layer's window totals
  if (!tot) return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory for %d load samples", n);
  for (int l = 0; l < L; l++) {
    int full = 0; // windows with tokens in this layer
    for (int t = 0; t < n; t++) {
      const uint64_t *x = windows[t] + (size_t)l * E;
      tot[t] = 0;
      for (int e = 0; e < E; e++) tot[t] += (double)x[e];
      full += tot[t] > 0;
    }
    const double *f = forecast + (size_t)l * E; // [E]
    double volume = 0;
    for (int e = 0; e < E; e++) volume += f[e];
    for (int e = 0; e < E; e++) {
      double mean = 0; // mean share over the windows with tokens
      for (int t = 0; t < n; t++)
        if (tot[t] > 0) mean += (double)windows[t][(size_t)l * E + e] / tot[t];
      mean = full ? mean / full : 0;
      for (int t = 0; t < n; t++) {
        double v = f[e];
        if (tot[t] > 0) v += ((double)windows[t][(size_t)l * E + e] / tot[t] - mean) * volume;
        out[((size_t)t * L + l) * E + e] = v > 0 ? v : 0;
      }
    }
  }
  free(tot);
  return MOEPLACE_OK;
}
