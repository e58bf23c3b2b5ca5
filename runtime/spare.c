/* The spare pool: memory an incoming expert buffer lands in before commit,
 * reused across migrations. Two kinds share it:
 *  - heap buffers (win = -1), for buffers the runtime owns that arrive by
 *    point-to-point messages; commit swaps them into the slot and the slot's
 *    old memory becomes a spare;
 *  - regions of this rank's segments of the shared windows (win >= 0, see
 *    shm.h), for any buffer arriving from a rank of the same node.
 * Pooled memory is already faulted in: first-touch page faults would cost
 * more than the transfer itself. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/internal.h"

char *mp_rt_spare_take(moeplace_runtime *rt, size_t size, int shared, int *win) {
  *win = -1;
  for (int i = 0; i < rt->nspare; i++)
    if (rt->spare_size[i] == size && (rt->spare_win[i] >= 0) == shared) {
      char *p = rt->spare_ptr[i];
      *win = rt->spare_win[i];
      rt->nspare--;
      rt->spare_ptr[i] = rt->spare_ptr[rt->nspare];
      rt->spare_size[i] = rt->spare_size[rt->nspare];
      rt->spare_win[i] = rt->spare_win[rt->nspare];
      return p;
    }
  if (shared) return NULL; // shared regions only come from mp_rt_shm_grow()
  char *p = malloc(size);
  if (p) memset(p, 0, size);
  return p;
}

void mp_rt_spare_give(moeplace_runtime *rt, void *p, size_t size, int win) {
  if (!p) return;
  if (win < 0 && rt->shm.whole) { // every transfer lands in shared memory: no use for it
    free(p);
    return;
  }
  if (rt->nspare == rt->spare_cap) {
    int cap = rt->spare_cap ? 2 * rt->spare_cap : 16;
    void **np = realloc(rt->spare_ptr, (size_t)cap * sizeof *np);
    if (np) rt->spare_ptr = np;
    size_t *ns = realloc(rt->spare_size, (size_t)cap * sizeof *ns);
    if (ns) rt->spare_size = ns;
    int *nw = realloc(rt->spare_win, (size_t)cap * sizeof *nw);
    if (nw) rt->spare_win = nw;
    if (!np || !ns || !nw) {
      if (win < 0) free(p); // a shared region is simply not reused
      return;
    }
    rt->spare_cap = cap;
  }
  rt->spare_ptr[rt->nspare] = p;
  rt->spare_size[rt->nspare] = size;
  rt->spare_win[rt->nspare++] = win;
}

/* Bytes of this rank's owned buffers, and calls give(region) for each when
 * seg is not NULL (regions laid out in slot order, 64-byte aligned). */
static size_t owned_regions(moeplace_runtime *rt, char *seg, int win) {
  size_t total = 0;
  for (size_t i = 0; i < (size_t)rt->L * rt->S; i++)
    for (int b = 0; b < rt->slots[i].nbuf; b++) {
      const mp_rt_buffer *bf = &rt->slots[i].buf[b];
      if (!bf->owned || bf->win >= 0) continue;
      if (seg) mp_rt_spare_give(rt, seg + total, bf->bytes, win);
      total += mp_rt_align64(bf->bytes);
    }
  return total;
}

int mp_rt_spare_reserve(moeplace_runtime *rt) {
  if (rt->spare_reserved || rt->shm.node == MPI_COMM_NULL || rt->shm.node_size < 2) return MOEPLACE_OK;
  rt->spare_reserved = 1;
  size_t bytes = owned_regions(rt, NULL, -1);
  if (bytes > MP_RT_SPARE_RESERVE_MAX) bytes = 0; // too big to double: grow on demand
  int win, full, max_windows = rt->shm.max_windows;
  char *seg;
  int st = mp_rt_shm_grow(&rt->shm, bytes, &win, &seg, &full);
  if (st != MOEPLACE_OK) return st;
  if (full) rt->shm.max_windows = max_windows; // a failed reserve leaves the on-demand path on
  if (win >= 0 && seg) owned_regions(rt, seg, win);
  return MOEPLACE_OK;
}

void mp_rt_spare_free_all(moeplace_runtime *rt) {
  for (int i = 0; i < rt->nspare; i++)
    if (rt->spare_win[i] < 0) free(rt->spare_ptr[i]);
  free(rt->spare_ptr);
  free(rt->spare_size);
  free(rt->spare_win);
  rt->spare_ptr = NULL;
  rt->spare_size = NULL;
  rt->spare_win = NULL;
  rt->nspare = rt->spare_cap = 0;
}
