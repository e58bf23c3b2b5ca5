/* The migration engine: moves expert state along a plan with non-blocking
 * point-to-point MPI and commits it all-or-nothing.
 *
 * Protocol (docs/RUNTIME.md has the full argument):
 *  - Every rank holds the same plan. An expert's state is the concatenation
 *    of its slot's buffers (same sizes everywhere, checked at registration);
 *    it travels as chunks of at most chunk_bytes, each buffer cut
 *    separately, followed by an 8-byte XXH3-64 digest of the whole state.
 *  - Every rank lists its operations (sends, receives, local copies) in
 *    plan order and posts them in that order, keeping at most
 *    max_outstanding requests in flight. All messages of a pair use one tag,
 *    so MPI's non-overtaking rule matches the k-th send to the k-th receive.
 *    Posting in one global order is what makes the bounded window deadlock
 *    free: the smallest unfinished operation is always posted on both of its
 *    ranks (everything before it is complete), so it can always complete.
 *  - Receives land in staging buffers, never in the registered ones (for
 *    buffers the runtime owns, in spare buffers that commit swaps in, with
 *    no copy). Sources are read in place while sends are in flight and only
 *    overwritten at commit, after every send has completed: a slot that is
 *    both a source and a destination is read before it is overwritten.
 *  - The receiver hashes chunks in order as they arrive and compares with
 *    the sender's digest. One MPI_Allreduce(MIN) of "I verified everything"
 *    decides: commit (copy staging into the destination slots, or swap the
 *    spares in) on every rank, or drop the staging on every rank. */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>
/* libxxhash's runtime-dispatched XXH3 (AVX2/AVX-512 when the CPU has them)
 * hashes about twice as fast as the SSE2 default: checksums share the cores
 * that copy the data, so this shows directly in migration bandwidth. */
#if defined(__x86_64__) && defined(__has_include)
#if __has_include(<xxh_x86dispatch.h>)
#include <xxh_x86dispatch.h>
#endif
#endif

#include "common/error.h"
#include "common/timer.h"
#include "runtime/internal.h"

enum { TAG_MIGRATE = 0x6d70 };

enum op_kind { OP_SEND, OP_RECV, OP_SEND_DIGEST, OP_RECV_DIGEST, OP_LOCAL_COPY };

typedef struct op {
  int kind;
  int tr;    /* index into this rank's transfer table */
  int peer;
  char *ptr; /* chunk address (source buffer, staging or spare) */
  int bytes;
  int done;
} op;

/* A transfer this rank takes part in. */
typedef struct xfer {
  const mp_rt_transfer *t;
  int incoming;        /* this rank is the destination */
  char *dest[MOEPLACE_RUNTIME_MAX_BUFFERS]; /* incoming: where each buffer lands (pool
                                              staging, or a spare for owned buffers) */
  int first_chunk_op;  /* index of its first chunk op in the op list */
  int nchunks;
  int hashed;          /* incoming: chunks hashed so far, in order */
  int digest_arrived;
  XXH3_state_t *hash;
  uint64_t digest;     /* sender: computed; receiver: received */
  int verified;
} xfer;

static size_t chunks_of(const mp_rt_slot *sl, size_t chunk) {
  size_t n = 0;
  for (int b = 0; b < sl->nbuf; b++) n += (sl->buf[b].bytes + chunk - 1) / chunk;
  return n;
}

void mp_rt_test_corrupt_next(moeplace_runtime *rt) { rt->test_corrupt_next = 1; }

/* Spare buffers for runtime-owned slot buffers: an incoming expert lands in
 * a spare, and commit swaps it with the slot's buffer, whose old memory
 * becomes a spare for the next migration (already faulted in). */
static char *spare_take(moeplace_runtime *rt, size_t size) {
  for (int i = 0; i < rt->nspare; i++)
    if (rt->spare_size[i] == size) {
      char *p = rt->spare_ptr[i];
      rt->nspare--;
      rt->spare_ptr[i] = rt->spare_ptr[rt->nspare];
      rt->spare_size[i] = rt->spare_size[rt->nspare];
      return p;
    }
  char *p = malloc(size);
  if (p) memset(p, 0, size); // fault the pages in before the transfer
  return p;
}

void mp_rt_spare_give(moeplace_runtime *rt, void *p, size_t size) {
  if (!p) return;
  if (rt->nspare == rt->spare_cap) {
    int cap = rt->spare_cap ? 2 * rt->spare_cap : 16;
    void **np = realloc(rt->spare_ptr, (size_t)cap * sizeof *np);
    if (np) rt->spare_ptr = np;
    size_t *ns = realloc(rt->spare_size, (size_t)cap * sizeof *ns);
    if (ns) rt->spare_size = ns;
    if (!np || !ns) {
      free(p);
      return;
    }
    rt->spare_cap = cap;
  }
  rt->spare_ptr[rt->nspare] = p;
  rt->spare_size[rt->nspare++] = size;
}

/* Hashes the in-order prefix of arrived chunks of an incoming transfer and
 * verifies once everything is there. */
static void advance_incoming(moeplace_runtime *rt, xfer *x, op *ops) {
  while (x->hashed < x->nchunks && ops[x->first_chunk_op + x->hashed].done) {
    op *o = &ops[x->first_chunk_op + x->hashed];
    if (rt->test_corrupt_next && o->bytes > 0) {
      o->ptr[o->bytes / 2] ^= 0x5a; // test hook: damage after arrival, before checking
      rt->test_corrupt_next = 0;
    }
    XXH3_64bits_update(x->hash, o->ptr, (size_t)o->bytes);
    x->hashed++;
  }
  if (x->hashed == x->nchunks && x->digest_arrived)
    x->verified = XXH3_64bits_digest(x->hash) == x->digest;
}

int mp_rt_migrate(moeplace_runtime *rt, const mp_rt_transfer *plan, int n,
                  mp_rt_migration_result *res) {
  double t0 = mp_now_s();
  memset(res, 0, sizeof *res);
  res->moves = n;
  const size_t chunk = rt->cfg.chunk_bytes;
  const int me = rt->rank, S = rt->S;

  // ---- prepare: my transfers, staging, operations -----------------------
  int nx = 0;
  size_t nops = 0;
  for (int i = 0; i < n; i++) {
    const mp_rt_transfer *t = &plan[i];
    if (t->src_rank != t->dst_rank) res->bytes_moved += rt->expert_bytes[t->layer];
    if (t->src_rank != me && t->dst_rank != me) continue;
    nx++;
    const mp_rt_slot *sl = &rt->slots[(size_t)t->layer * S + (t->src_rank == me ? t->src_slot : t->dst_slot)];
    nops += t->src_rank == t->dst_rank ? 1 : chunks_of(sl, chunk) + 1;
  }
  xfer *xs = calloc((size_t)(nx ? nx : 1), sizeof *xs);
  op *ops = calloc(nops ? nops : 1, sizeof *ops);
  int maxout = rt->cfg.max_outstanding;
  MPI_Request *reqs = malloc((size_t)maxout * sizeof *reqs);
  int *req_op = malloc((size_t)maxout * sizeof *req_op);
  int *free_idx = malloc((size_t)maxout * sizeof *free_idx);
  int *indices = malloc((size_t)maxout * sizeof *indices);
  int ok = xs && ops && reqs && req_op && free_idx && indices;
  char reason[512] = "";
  if (!ok) snprintf(reason, sizeof reason, "rank %d: out of memory preparing a migration", me);
  // Staging comes from a pool kept between migrations: first-touch page
  // faults of fresh memory would otherwise cost more than the transfer.
  size_t incoming = 0;
  for (int i = 0; i < n; i++) {
    if (plan[i].dst_rank != me) continue;
    const mp_rt_slot *sl = &rt->slots[(size_t)plan[i].layer * S + plan[i].dst_slot];
    for (int b = 0; b < sl->nbuf; b++)
      if (!sl->buf[b].owned) incoming += sl->buf[b].bytes;
  }
  if (ok && incoming > rt->staging_cap) {
    free(rt->staging);
    rt->staging = malloc(incoming);
    rt->staging_cap = rt->staging ? incoming : 0;
    if (rt->staging) memset(rt->staging, 0, incoming);
    else {
      ok = 0;
      snprintf(reason, sizeof reason, "rank %d: no memory for %zu bytes of staging", me, incoming);
    }
  }
  size_t k = 0, staged = 0;
  for (int i = 0, j = 0; ok && i < n; i++) {
    const mp_rt_transfer *t = &plan[i];
    if (t->src_rank != me && t->dst_rank != me) continue;
    xfer *x = &xs[j];
    x->t = t;
    x->incoming = t->dst_rank == me;
    if (x->incoming) {
      const mp_rt_slot *dsl = &rt->slots[(size_t)t->layer * S + t->dst_slot];
      for (int b = 0; b < dsl->nbuf; b++) {
        if (dsl->buf[b].owned) {
          x->dest[b] = spare_take(rt, dsl->buf[b].bytes);
        } else {
          x->dest[b] = rt->staging + staged;
          staged += dsl->buf[b].bytes;
        }
        if (!x->dest[b]) ok = 0;
      }
      if (!ok) {
        snprintf(reason, sizeof reason, "rank %d: no memory for a spare buffer", me);
        j++; // so that cleanup returns what was taken
        nx = j;
        break;
      }
    }
    const mp_rt_slot *src = &rt->slots[(size_t)t->layer * S + t->src_slot];
    if (t->src_rank == t->dst_rank) {
      ops[k++] = (op){OP_LOCAL_COPY, j, me, NULL, 0, 0};
      j++;
      continue;
    }
    x->hash = XXH3_createState();
    if (!x->hash || XXH3_64bits_reset(x->hash) != XXH_OK) {
      ok = 0;
      snprintf(reason, sizeof reason, "rank %d: could not create a hash state", me);
      break;
    }
    x->first_chunk_op = (int)k;
    const mp_rt_slot *sl = x->incoming ? &rt->slots[(size_t)t->layer * S + t->dst_slot] : src;
    for (int b = 0; b < sl->nbuf; b++) {
      for (size_t o = 0; o < sl->buf[b].bytes; o += chunk) {
        size_t len = sl->buf[b].bytes - o < chunk ? sl->buf[b].bytes - o : chunk;
        char *p = x->incoming ? x->dest[b] + o : (char *)src->buf[b].ptr + o;
        ops[k++] = (op){x->incoming ? OP_RECV : OP_SEND, j, x->incoming ? t->src_rank : t->dst_rank,
                        p, (int)len, 0};
        x->nchunks++;
      }
    }
    ops[k++] = (op){x->incoming ? OP_RECV_DIGEST : OP_SEND_DIGEST, j,
                    x->incoming ? t->src_rank : t->dst_rank, (char *)&x->digest,
                    (int)sizeof x->digest, 0};
    j++;
  }

  // Nobody communicates unless everybody could prepare.
  int all_ok = 0;
  if (MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, rt->comm) != MPI_SUCCESS) {
    ok = 0;
    all_ok = 0;
    snprintf(reason, sizeof reason, "MPI_Allreduce failed before migration");
  }
  int status = MOEPLACE_OK;
  if (!all_ok) {
    status = ok ? mp_fail(MOEPLACE_ERR_NOMEM, "migration not started: another rank could not prepare it")
                : mp_fail(MOEPLACE_ERR_NOMEM, "%s", reason);
    goto cleanup;
  }

  // ---- communicate: post in plan order, bounded window ---------------------
  for (int i = 0; i < maxout; i++) {
    reqs[i] = MPI_REQUEST_NULL;
    free_idx[i] = maxout - 1 - i;
  }
  int nfree = maxout, comm_ok = 1;
  size_t next = 0;
  while (next < nops || nfree < maxout) {
    while (comm_ok && next < nops && nfree > 0) {
      op *o = &ops[next];
      xfer *x = &xs[o->tr];
      if (o->kind == OP_LOCAL_COPY) {
        const mp_rt_transfer *t = x->t;
        const mp_rt_slot *src = &rt->slots[(size_t)t->layer * S + t->src_slot];
        for (int b = 0; b < src->nbuf; b++) memcpy(x->dest[b], src->buf[b].ptr, src->buf[b].bytes);
        x->verified = 1;
        o->done = 1;
        next++;
        continue;
      }
      if (o->kind == OP_SEND_DIGEST) x->digest = XXH3_64bits_digest(x->hash);
      int slot = free_idx[--nfree], rc;
      if (o->kind == OP_SEND || o->kind == OP_SEND_DIGEST)
        rc = MPI_Isend(o->ptr, o->bytes, MPI_BYTE, o->peer, TAG_MIGRATE, rt->comm, &reqs[slot]);
      else
        rc = MPI_Irecv(o->ptr, o->bytes, MPI_BYTE, o->peer, TAG_MIGRATE, rt->comm, &reqs[slot]);
      if (rc != MPI_SUCCESS) {
        comm_ok = 0;
        free_idx[nfree++] = slot;
        snprintf(reason, sizeof reason, "rank %d: posting a migration message failed", me);
        break;
      }
      req_op[slot] = (int)next;
      // The sender hashes a chunk while it is on the wire (reading a send
      // buffer during a send is allowed), overlapping hashing and transfer.
      if (o->kind == OP_SEND) XXH3_64bits_update(x->hash, o->ptr, (size_t)o->bytes);
      next++;
    }
    if (nfree == maxout) {
      if (!comm_ok) break;
      continue;
    }
    int outcount = 0;
    if (MPI_Waitsome(maxout, reqs, &outcount, indices, MPI_STATUSES_IGNORE) != MPI_SUCCESS) {
      comm_ok = 0;
      snprintf(reason, sizeof reason, "rank %d: a migration message failed", me);
      break;
    }
    if (outcount == MPI_UNDEFINED) continue;
    for (int i = 0; i < outcount; i++) {
      int slot = indices[i];
      op *o = &ops[req_op[slot]];
      o->done = 1;
      free_idx[nfree++] = slot;
      xfer *x = &xs[o->tr];
      if (o->kind == OP_RECV_DIGEST) x->digest_arrived = 1;
      if (o->kind == OP_RECV || o->kind == OP_RECV_DIGEST) advance_incoming(rt, x, ops);
    }
  }

  // ---- agree ----------------------------------------------------------
  int verified = comm_ok;
  int failed_tr = -1;
  for (int j = 0; verified && j < nx; j++)
    if (xs[j].incoming && !xs[j].verified) {
      verified = 0;
      failed_tr = j;
    }
  if (comm_ok && failed_tr >= 0) {
    const mp_rt_transfer *t = xs[failed_tr].t;
    snprintf(reason, sizeof reason,
             "rank %d: checksum mismatch for expert %d of layer %d from rank %d", me, t->expert,
             t->layer, t->src_rank);
  }
  int all_verified = 0;
  if (MPI_Allreduce(&verified, &all_verified, 1, MPI_INT, MPI_MIN, rt->comm) != MPI_SUCCESS) {
    status = mp_fail(MOEPLACE_ERR_MPI, "MPI_Allreduce of the migration outcome failed");
    goto cleanup;
  }
  if (!all_verified) {
    if (!verified)
      status = mp_fail(comm_ok ? MOEPLACE_ERR_VERIFY : MOEPLACE_ERR_MPI,
                       "migration rolled back: %s", reason);
    else
      status = mp_fail(MOEPLACE_ERR_VERIFY,
                       "migration rolled back: another rank could not verify what it received");
    goto cleanup;
  }

  // ---- commit: every send is complete, so overwriting sources is safe ----
  for (int j = 0; j < nx; j++) {
    xfer *x = &xs[j];
    if (!x->incoming) continue;
    mp_rt_slot *dst = &rt->slots[(size_t)x->t->layer * S + x->t->dst_slot];
    for (int b = 0; b < dst->nbuf; b++) {
      if (dst->buf[b].owned) { // swap: the old memory becomes a spare
        mp_rt_spare_give(rt, dst->buf[b].ptr, dst->buf[b].bytes);
        dst->buf[b].ptr = x->dest[b];
        x->dest[b] = NULL;
      } else {
        memcpy(dst->buf[b].ptr, x->dest[b], dst->buf[b].bytes);
      }
    }
  }
  res->verified_ok = 1;

cleanup:
  for (int j = 0; xs && j < nx; j++) {
    XXH3_freeState(xs[j].hash);
    if (!xs[j].incoming || !xs[j].t) continue;
    // Spares not committed (rollback, failure) go back to the pool.
    const mp_rt_slot *dsl = &rt->slots[(size_t)xs[j].t->layer * S + xs[j].t->dst_slot];
    for (int b = 0; b < dsl->nbuf; b++)
      if (dsl->buf[b].owned && xs[j].dest[b]) mp_rt_spare_give(rt, xs[j].dest[b], dsl->buf[b].bytes);
  }
  free(xs);
  free(ops);
  free(reqs);
  free(req_op);
  free(free_idx);
  free(indices);
  res->seconds = mp_now_s() - t0;
  return status;
}
