/* Agreement across ranks: detecting that ranks passed different values
 * without ever leaving one rank waiting in a collective the others skipped.
 * Every check is a single MPI_Allreduce that all ranks enter whatever their
 * local outcome, and the result is the same on every rank. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

#include "common/error.h"
#include "common/timer.h"
#include "runtime/internal.h"

int64_t mp_rt_hash62(const void *data, size_t size, int64_t seed) {
  return (int64_t)(XXH3_64bits_withSeed(data, size, (XXH64_hash_t)seed) >> 2);
}

/* Buffers of collectives that timed out: MPI may still write into them (a
 * late rank can complete the collective, even during MPI_Finalize), so they
 * are never freed; the list keeps them reachable (no leak report). One or
 * two per runtime that timed out. */
static struct orphan {
  struct orphan *next;
  void *p;
} *orphans;

void mp_rt_orphan(void *p) {
  if (!p) return;
  struct orphan *o = malloc(sizeof *o);
  if (!o) return; // lost to leak reports only
  o->p = p;
  o->next = __atomic_load_n(&orphans, __ATOMIC_RELAXED); // runtimes of several threads
  while (!__atomic_compare_exchange_n(&orphans, &o->next, o, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED))
    ;
}

int mp_rt_wait(moeplace_runtime *rt, MPI_Request *req, const char *what) {
  double limit = rt->cfg.collective_timeout_s, t0 = mp_now_s();
  long sleep_ns = 0;
  for (;;) {
    int done = 0;
    if (MPI_Test(req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
      rt->broken = 2; // the request may still be pending
      return mp_fail(MOEPLACE_ERR_MPI, "%s failed at step %lld", what, (long long)rt->step);
    }
    if (done) return MOEPLACE_OK;
    double waited = mp_now_s() - t0;
    if (limit >= 0 && waited >= limit) {
      rt->broken = 2; // the request stays pending
      return mp_fail(MOEPLACE_ERR_MPI,
                     "timed out after %g s in %s at step %lld: some rank did not reach it "
                     "(stopped, dead, or a step call apart); the runtime is now unusable",
                     limit, what, (long long)rt->step);
    }
    // 2 ms: a rebalance has about six short waits, and sleeping from the
    // 64th poll cost 0.4 ms per rebalance (docs/RUNTIME.md)
    mp_rt_backoff(waited, 2e-3, &sleep_ns);
  }
}

void mp_rt_backoff(double waited_s, double spin_s, long *sleep_ns) {
  if (waited_s < spin_s) return;
  *sleep_ns = *sleep_ns ? (*sleep_ns < 1000000 ? 2 * *sleep_ns : 1000000) : 1000;
  struct timespec ts = {0, *sleep_ns};
  nanosleep(&ts, NULL);
}

/* One MIN reduction of [v, -v] yields min(v) and -max(v); rt NULL: a
 * blocking MPI_Allreduce on comm, else bounded on rt->comm. */
static int agree(MPI_Comm comm, moeplace_runtime *rt, const char *what, const int64_t *v, int n,
                 int *same, int64_t *min, int64_t *max) {
  int64_t *buf = calloc((size_t)4 * (size_t)(n > 0 ? n : 1), sizeof *buf);
  if (!buf) return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory in agreement of %d values", n);
  int64_t *in = buf, *res = buf + 2 * n;
  for (int i = 0; i < n; i++) {
    in[i] = v[i];
    in[n + i] = -v[i];
  }
  int status = MOEPLACE_OK;
  if (!rt) {
    if (MPI_Allreduce(in, res, 2 * n, MPI_INT64_T, MPI_MIN, comm) != MPI_SUCCESS)
      status = mp_fail(MOEPLACE_ERR_MPI, "MPI_Allreduce failed in an agreement check");
  } else {
    MPI_Request req;
    if (MPI_Iallreduce(in, res, 2 * n, MPI_INT64_T, MPI_MIN, rt->comm, &req) != MPI_SUCCESS)
      status = mp_fail(MOEPLACE_ERR_MPI, "MPI_Iallreduce failed in %s", what);
    else
      status = mp_rt_wait(rt, &req, what);
    if (status != MOEPLACE_OK && rt->broken) {
      mp_rt_orphan(buf); // the request may still complete into it
      return status;
    }
  }
  if (status != MOEPLACE_OK) {
    free(buf);
    return status;
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

int mp_rt_agree_i64(MPI_Comm comm, const int64_t *v, int n, int *same, int64_t *min,
                    int64_t *max) {
  return agree(comm, NULL, NULL, v, n, same, min, max);
}

int mp_rt_agree_rt(moeplace_runtime *rt, const int64_t *v, int n, int *same, int64_t *min,
                   int64_t *max, const char *what) {
  return agree(rt->comm, rt, what, v, n, same, min, max);
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
    size_t *sizes = malloc((size_t)(first->nbuf + 1) * sizeof *sizes); // [1 + nbuf]
    if (!sizes) { // a local failure still takes part in the agreement below
      v[0] = 0;
      snprintf(reason, sizeof reason, "rank %d: out of memory in the registration check", rt->rank);
      continue;
    }
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
    free(sizes);
    size_t total = 0;
    for (int b = 0; b < first->nbuf; b++) total += first->buf[b].bytes;
    rt->expert_bytes[l] = total;
  }
  int same;
  int status = mp_rt_agree_rt(rt, v, L + 1, &same, mn, NULL, "the registration agreement");
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
  return mp_rt_spare_reserve(rt); // the same on every rank: a collective, once
}

int mp_rt_agree_ok(moeplace_runtime *rt, int local_ok, const char *what) {
  int64_t v = local_ok != 0, all = 0;
  int same;
  int st = mp_rt_agree_rt(rt, &v, 1, &same, &all, NULL, what);
  if (st != MOEPLACE_OK) return st;
  return all ? MOEPLACE_OK : mp_fail(MOEPLACE_ERR_NOMEM, "%s: out of memory on some rank", what);
}
