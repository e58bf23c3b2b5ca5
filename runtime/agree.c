/* Agreement across ranks: detecting that ranks passed different values
 * without ever leaving one rank waiting in a collective the others skipped.
 * Every check is a single MPI_Allreduce that all ranks enter whatever their
 * local outcome, and the result is the same on every rank. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "common/error.h"
#include "runtime/internal.h"

int64_t mp_rt_hash62(const void *data, size_t size, int64_t seed) {
  return (int64_t)(XXH3_64bits_withSeed(data, size, (XXH64_hash_t)seed) >> 2);
}

int mp_rt_agree_i64(MPI_Comm comm, const int64_t *v, int n, int *same, int64_t *min,
                    int64_t *max) {
  // One MIN reduction of [v, -v] yields min(v) and -max(v).
  int64_t *buf = calloc((size_t)4 * (size_t)(n > 0 ? n : 1), sizeof *buf);
  if (!buf) return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory in agreement of %d values", n);
  int64_t *in = buf, *res = buf + 2 * n;
  for (int i = 0; i < n; i++) {
    in[i] = v[i];
    in[n + i] = -v[i];
  }
  int rc = MPI_Allreduce(in, res, 2 * n, MPI_INT64_T, MPI_MIN, comm);
  if (rc != MPI_SUCCESS) {
    free(buf);
    return mp_fail(MOEPLACE_ERR_MPI, "MPI_Allreduce failed in an agreement check");
  }
  *same = 1;
  for (int i = 0; i < n; i++) {
    int64_t lo = res[i], hi = -res[n + i];
    if (lo != hi) *same = 0;
    if (min) min[i] = lo;
    if (max) max[i] = hi;
  }
  free(buf);
  return MOEPLACE_OK;
}

int mp_rt_check_registration(moeplace_runtime *rt) {
  // Per layer: local consistency (every slot the same buffer sizes), then a
  // hash of the size list agreed across ranks. v = [ok, hash[L]].
  int L = rt->L, S = rt->S;
  int64_t *v = malloc((size_t)(L + 1) * sizeof *v);
  int64_t *mn = malloc((size_t)(L + 1) * sizeof *mn);
  if (!v || !mn) {
    free(v);
    free(mn);
    return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory in the registration check");
  }
  char reason[512] = "";
  v[0] = 1;
  for (int l = 0; l < L; l++) {
    const mp_rt_slot *first = &rt->slots[(size_t)l * S];
    size_t sizes[MOEPLACE_RUNTIME_MAX_BUFFERS + 1];
    sizes[0] = (size_t)first->nbuf;
    for (int b = 0; b < first->nbuf; b++) sizes[b + 1] = first->buf[b].bytes;
    for (int s = 1; s < S && v[0]; s++) {
      const mp_rt_slot *sl = &rt->slots[(size_t)l * S + s];
      int same = sl->nbuf == first->nbuf;
      for (int b = 0; same && b < sl->nbuf; b++) same = sl->buf[b].bytes == first->buf[b].bytes;
      if (!same) {
        v[0] = 0;
        snprintf(reason, sizeof reason,
                 "rank %d: layer %d slot %d registered different buffers than slot 0", rt->rank,
                 l, s);
      }
    }
    v[l + 1] = mp_rt_hash62(sizes, sizeof(size_t) * (size_t)(first->nbuf + 1), l);
    size_t total = 0;
    for (int b = 0; b < first->nbuf; b++) total += first->buf[b].bytes;
    rt->expert_bytes[l] = total;
  }
  int same;
  int status = mp_rt_agree_i64(rt->comm, v, L + 1, &same, mn, NULL);
  int local_ok = (int)v[0];
  free(v);
  if (status != MOEPLACE_OK) {
    free(mn);
    return status;
  }
  if (mn[0] == 0) {
    free(mn);
    if (!local_ok) return mp_fail(MOEPLACE_ERR_MISMATCH, "%s", reason);
    return mp_fail(MOEPLACE_ERR_MISMATCH, "some rank registered inconsistent slot buffers");
  }
  free(mn);
  if (!same)
    return mp_fail(MOEPLACE_ERR_MISMATCH,
                   "ranks registered different expert buffer sizes for some layer");
  rt->registration_dirty = 0;
  return MOEPLACE_OK;
}
