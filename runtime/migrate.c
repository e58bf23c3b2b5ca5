/* The migration engine: moves expert state along a plan with non-blocking
 * point-to-point MPI (and copies into shared memory within a node) and
 * commits it all-or-nothing.
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
 *  - Between two ranks of one node (shm.h), the receiver lends regions of
 *    its shared-window segment (it sends their addresses first); the
 *    sender copies each chunk into them and, block by block while both
 *    are in its cache, hashes what it read and what landed; a zero-byte
 *    message per chunk tells the receiver it has landed, and the digest
 *    message carries both hashes. Other pairs send the chunks as messages.
 *  - Either way, receives land in staging memory, never in the registered
 *    buffers (for buffers the runtime owns, in spares that commit swaps in,
 *    with no copy). Sources are read in place while transfers are in flight
 *    and only overwritten at commit, after every send has completed: a slot
 *    that is both a source and a destination is read before it is
 *    overwritten.
 *  - A message receiver hashes chunks in order as they arrive and compares
 *    with the sender's digest; a shared-memory receiver compares the two
 *    hashes the sender took (re-reading the landed bytes on the receiver
 *    would be a pass over memory another core just wrote: it made the
 *    migration 2-4x slower on the benchmark). One MPI_Allreduce(MIN) of
 *    "I verified everything" decides: commit (copy staging into the
 *    destination slots, or swap the spares in) on every rank, or drop the
 *    staging on every rank. */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

enum { TAG_MIGRATE = 0x6d70, TAG_ADDRESS = 0x6d71 };

enum op_kind { OP_SEND, OP_RECV, OP_SEND_DIGEST, OP_RECV_DIGEST, OP_LOCAL_COPY };

typedef struct op {
  int kind;
  int tr;    /* index into this rank's transfer table */
  int peer;
  int buf;   /* chunk: buffer index within the slot */
  size_t off; /* chunk: offset within that buffer */
  char *ptr; /* chunk address (source buffer, staging or spare) */
  int bytes;
  int done;
} op;

/* A transfer this rank takes part in. */
typedef struct xfer {
  const moeplace_transfer *t; /* global slots */
  int incoming;        /* this rank is the destination */
  int shm;             /* the peer shares memory: the sender copies, messages notify */
  /* Per buffer of the slot, [nbuf] each (in the migration's xmem block): */
  char **dest;         /* incoming: where each buffer lands */
  int *dest_win;       /* its shared window, -1 = heap/staging */
  char **remote;       /* outgoing shm: landing in the peer */
  int *remote_win;
  int first_chunk_op;  /* index of its first chunk op in the op list */
  int nchunks;
  int hashed;          /* incoming: chunks hashed so far, in order */
  int digest_arrived;
  XXH3_state_t *hash;  /* the bytes sent (read from the source) or received */
  XXH3_state_t *landed; /* outgoing shm: the bytes as they landed in the peer */
  uint64_t digest[2];  /* sender: computed; receiver: received. [0] the sent
                          bytes, [1] (shm) the landed ones */
  int verified;
} xfer;

/* The registered slot of this rank behind a global slot of the plan
 * (global slot g is local slot g % S of rank g / S). */
static mp_rt_slot *local_slot(const moeplace_runtime *rt, int layer, int global_slot) {
  return &rt->slots[(size_t)layer * rt->S + global_slot % rt->S];
}

static size_t chunks_of(const mp_rt_slot *sl, size_t chunk) {
  size_t n = 0;
  for (int b = 0; b < sl->nbuf; b++) n += (sl->buf[b].bytes + chunk - 1) / chunk;
  return n;
}


void mp_rt_test_corrupt_next(moeplace_runtime *rt) { rt->test_corrupt_next = 1; }

/* The test hook's damage: one byte in the middle of p [n], once. */
static void test_corrupt(moeplace_runtime *rt, char *p, size_t n) {
  if (!rt->test_corrupt_next || n == 0) return;
  p[n / 2] ^= 0x5a;
  rt->test_corrupt_next = 0;
}

/* Copies n bytes into a peer's landing memory and feeds the source to
 * `sent` and the copy to `landed`, block by block while both are still in
 * L1/L2: checking the copy then costs little beyond the copy itself. */
static void copy_hashing(moeplace_runtime *rt, char *dst, const char *src, size_t n,
                         XXH3_state_t *sent, XXH3_state_t *landed) {
  enum { BLOCK = 64 << 10 };
  for (size_t o = 0; o < n; o += BLOCK) {
    size_t len = n - o < BLOCK ? n - o : BLOCK;
    memcpy(dst + o, src + o, len);
    test_corrupt(rt, dst + o, len); // test hook: a copy that went wrong
    XXH3_64bits_update(sent, src + o, len);
    XXH3_64bits_update(landed, dst + o, len);
  }
}

/* Hashes the in-order prefix of arrived chunks of an incoming transfer
 * (messages; shared-memory chunks were hashed by their sender) and
 * verifies once everything is there. */
static void advance_incoming(moeplace_runtime *rt, xfer *x, op *ops) {
  while (x->hashed < x->nchunks && ops[x->first_chunk_op + x->hashed].done) {
    op *o = &ops[x->first_chunk_op + x->hashed];
    if (x->shm) {
      x->hashed++;
      continue;
    }
    test_corrupt(rt, o->ptr, (size_t)o->bytes); // test hook: damage after arrival, before checking
    XXH3_64bits_update(x->hash, o->ptr, (size_t)o->bytes);
    x->hashed++;
  }
  if (x->hashed == x->nchunks && x->digest_arrived)
    x->verified = x->shm ? x->digest[1] == x->digest[0]
                         : XXH3_64bits_digest(x->hash) == x->digest[0];
}

/* Shared-memory landing regions for this rank's incoming shm transfers:
 * from the pool, and from a new window (collective over the node) for what
 * the pool lacks. If the node has no room for another window, every rank of
 * the node falls back to messages for this migration. Called by every rank
 * of a node with shm transfers, even one that failed to prepare (xs = NULL),
 * so that the node's collective matches. */
static int land_shared(moeplace_runtime *rt, xfer *xs, int nx) {
  size_t lack = 0;
  for (int j = 0; xs && j < nx; j++) {
    xfer *x = &xs[j];
    if (!x->incoming || !x->shm) continue;
    const mp_rt_slot *sl = local_slot(rt, x->t->layer, x->t->dst_slot);
    for (int b = 0; b < sl->nbuf; b++) {
      x->dest[b] = mp_rt_spare_take(rt, sl->buf[b].bytes, 1, &x->dest_win[b]);
      if (!x->dest[b]) lack += mp_rt_align64(sl->buf[b].bytes);
    }
  }
  int win, full;
  char *seg;
  int st = mp_rt_shm_grow(&rt->shm, lack, &win, &seg, &full);
  if (st != MOEPLACE_OK) return st;
  for (int j = 0; xs && j < nx; j++) {
    xfer *x = &xs[j];
    if (!x->incoming || !x->shm) continue;
    const mp_rt_slot *sl = local_slot(rt, x->t->layer, x->t->dst_slot);
    for (int b = 0; b < sl->nbuf; b++) {
      if (full) { // back to the pool; the transfer goes by messages
        mp_rt_spare_give(rt, x->dest[b], sl->buf[b].bytes, x->dest_win[b]);
        x->dest[b] = NULL;
        x->dest_win[b] = -1;
      } else if (!x->dest[b]) {
        x->dest[b] = seg;
        x->dest_win[b] = win;
        seg += mp_rt_align64(sl->buf[b].bytes);
      }
    }
  }
  if (full)
    for (int j = 0; xs && j < nx; j++) xs[j].shm = 0;
  return MOEPLACE_OK;
}

/* Like MPI_Waitsome (returns once some request completed, or all are
 * null: *outcount = MPI_UNDEFINED), but with collective_timeout_s set it
 * polls with MPI_Testsome (spinning for the first millisecond, then
 * sleeping 1 us doubling up to 1 ms) and gives up when none of the
 * requests completes for that long: MOEPLACE_ERR_MPI naming this rank, the
 * peers of the pending requests (peer_of[i] of reqs[i]) and the stage, and
 * rt->broken = 2 (the requests stay pending: their buffers must never be
 * freed). */
static int bounded_some(moeplace_runtime *rt, int n, MPI_Request *reqs, const int *peer_of,
                        int *outcount, int *indices, const char *stage) {
  double limit = rt->cfg.collective_timeout_s, t0 = mp_now_s();
  if (limit < 0) {
    if (MPI_Waitsome(n, reqs, outcount, indices, MPI_STATUSES_IGNORE) == MPI_SUCCESS) return MOEPLACE_OK;
    return mp_fail(MOEPLACE_ERR_MPI, "rank %d: a message of %s failed", rt->rank, stage);
  }
  long sleep_ns = 0;
  for (;;) {
    if (MPI_Testsome(n, reqs, outcount, indices, MPI_STATUSES_IGNORE) != MPI_SUCCESS)
      return mp_fail(MOEPLACE_ERR_MPI, "rank %d: a message of %s failed", rt->rank, stage);
    if (*outcount != 0) return MOEPLACE_OK; // some completed, or none pending (MPI_UNDEFINED)
    double waited = mp_now_s() - t0;
    if (waited >= limit) {
      char peers[160] = "";
      size_t len = 0;
      int listed = 0, more = 0;
      for (int i = 0; i < n; i++) {
        if (reqs[i] == MPI_REQUEST_NULL) continue;
        int dup = 0;
        for (int k = 0; k < i && !dup; k++) dup = reqs[k] != MPI_REQUEST_NULL && peer_of[k] == peer_of[i];
        if (dup) continue;
        if (listed++ >= 8) {
          more = 1;
          continue;
        }
        len += (size_t)snprintf(peers + len, sizeof peers - len, "%s%d", listed > 1 ? ", " : "", peer_of[i]);
        if (len >= sizeof peers) len = sizeof peers - 1;
      }
      rt->broken = 2;
      return mp_fail(MOEPLACE_ERR_MPI,
                     "rank %d: timed out after %g s in %s at step %lld: no message to or from "
                     "rank%s %s%s completed (stopped, dead or unreachable); the runtime is now unusable",
                     rt->rank, limit, stage, (long long)rt->step, listed > 1 ? "s" : "", peers,
                     more ? " and more" : "");
    }
    mp_rt_backoff(waited, 1e-3, &sleep_ns); // transfers complete fast: spin first
  }
}

/* Receivers tell senders where each incoming shm buffer lands: per peer, in
 * plan order, (window, offset) of every buffer. Prepared (allocated and
 * filled) before the migration's go/no-go agreement, so that once it is
 * agreed nothing can fail locally while a peer waits for this rank. */
typedef struct landing_msgs {
  size_t *tell, *learn; /* [R+1] start of each peer's entries: to send, to receive */
  int64_t *out, *in;
  size_t *cur;          /* [R] */
  MPI_Request *req;     /* [2R] */
  int *peer;            /* [2R] peer of each request, then [2R] scratch indices */
} landing_msgs;

static void landing_free(landing_msgs *m) {
  free(m->tell);
  free(m->out);
  free(m->cur);
  free(m->req);
  free(m->peer);
  memset(m, 0, sizeof *m);
}

static int landing_prepare(moeplace_runtime *rt, const xfer *xs, int nx, landing_msgs *m) {
  const int R = rt->size, S = rt->S;
  memset(m, 0, sizeof *m);
  m->tell = calloc((size_t)2 * (R + 1), sizeof *m->tell);
  m->cur = malloc((size_t)R * sizeof *m->cur);
  m->req = malloc((size_t)2 * R * sizeof *m->req);
  m->peer = malloc((size_t)4 * R * sizeof *m->peer);
  if (!m->tell || !m->cur || !m->req || !m->peer) return 0;
  m->learn = m->tell + R + 1;
  for (int j = 0; j < nx; j++) {
    if (!xs[j].shm) continue;
    size_t nb = (size_t)rt->slots[(size_t)xs[j].t->layer * S].nbuf;
    if (xs[j].incoming) m->tell[xs[j].t->src_rank + 1] += 2 * nb;
    else m->learn[xs[j].t->dst_rank + 1] += 2 * nb;
  }
  for (int r = 0; r < R; r++) { // counts -> start offsets
    m->tell[r + 1] += m->tell[r];
    m->learn[r + 1] += m->learn[r];
  }
  m->out = malloc((m->tell[R] + m->learn[R] + 1) * sizeof *m->out);
  if (!m->out) return 0;
  m->in = m->out + m->tell[R];
  memcpy(m->cur, m->tell, (size_t)R * sizeof *m->cur);
  for (int j = 0; j < nx; j++) {
    const xfer *x = &xs[j];
    if (!x->shm || !x->incoming) continue;
    size_t *c = &m->cur[x->t->src_rank];
    for (int b = 0; b < rt->slots[(size_t)x->t->layer * S].nbuf; b++) {
      m->out[(*c)++] = x->dest_win[b];
      m->out[(*c)++] = (int64_t)mp_rt_shm_offset(&rt->shm, x->dest_win[b], rt->rank, x->dest[b]);
    }
  }
  return 1;
}

static int landing_exchange(moeplace_runtime *rt, xfer *xs, int nx, landing_msgs *m) {
  const int R = rt->size, S = rt->S;
  int nreq = 0, rc = MPI_SUCCESS;
  for (int r = 0; rc == MPI_SUCCESS && r < R; r++)
    if (m->learn[r + 1] > m->learn[r]) {
      m->peer[nreq] = r;
      rc = MPI_Irecv(m->in + m->learn[r], (int)(m->learn[r + 1] - m->learn[r]), MPI_INT64_T, r,
                     TAG_ADDRESS, rt->comm, &m->req[nreq++]);
    }
  for (int r = 0; rc == MPI_SUCCESS && r < R; r++)
    if (m->tell[r + 1] > m->tell[r]) {
      m->peer[nreq] = r;
      rc = MPI_Isend(m->out + m->tell[r], (int)(m->tell[r + 1] - m->tell[r]), MPI_INT64_T, r,
                     TAG_ADDRESS, rt->comm, &m->req[nreq++]);
    }
  if (rc != MPI_SUCCESS)
    return mp_fail(MOEPLACE_ERR_MPI, "rank %d: exchanging landing addresses failed", rt->rank);
  int *idx = m->peer + 2 * R;
  for (int outcount = 0; outcount != MPI_UNDEFINED;) {
    int st = bounded_some(rt, nreq, m->req, m->peer, &outcount, idx,
                          "the exchange of shared-memory landing addresses of a migration");
    if (st != MOEPLACE_OK) return st;
  }
  memcpy(m->cur, m->learn, (size_t)R * sizeof *m->cur);
  for (int j = 0; j < nx; j++) {
    xfer *x = &xs[j];
    if (!x->shm || x->incoming) continue;
    int d = x->t->dst_rank;
    for (int b = 0; b < rt->slots[(size_t)x->t->layer * S].nbuf; b++) {
      x->remote_win[b] = (int)m->in[m->cur[d]++];
      x->remote[b] = mp_rt_shm_addr(&rt->shm, x->remote_win[b], d, (size_t)m->in[m->cur[d]++]);
    }
  }
  return MOEPLACE_OK;
}

/* 1 if some transfer of the plan joins two ranks of this rank's node (shm.h).
 * Every rank of the node gets the same answer from the same plan, so they
 * all take part in land_shared's collective, or none does: a plan with no
 * move inside the node (none at all, or only between nodes) costs nothing
 * extra. */
static int node_has_shm_transfers(const moeplace_runtime *rt, const moeplace_transfer *plan,
                                  int n) {
  for (int i = 0; i < n; i++)
    if (mp_rt_shm_pair(&rt->shm, plan[i].src_rank, plan[i].dst_rank)) return 1;
  return 0;
}

/* One migration on this rank, from preparation to clean-up. */
typedef struct migration {
  moeplace_runtime *rt;
  const moeplace_transfer *plan;
  int n;
  int node_shm;      /* this node takes part in land_shared's collective */
  xfer *xs;          /* the transfers this rank takes part in, in plan order */
  int nx;
  op *ops;           /* this rank's operations, in plan order */
  size_t nops;
  size_t next;       /* next operation to post */
  int maxout, nfree; /* request window: size, free entries */
  MPI_Request *reqs; /* [maxout] */
  int *req_op;       /* [maxout] operation of each request */
  int *req_peer;     /* [maxout] its peer rank */
  int *free_idx;     /* [maxout] stack of free request entries */
  int *indices;      /* [maxout] MPI_Waitsome output */
  landing_msgs lm;
  void *xmem;        /* the xfers' per-buffer arrays (xfer_arrays) */
  int ok;            /* this rank prepared everything */
  int comm_ok;       /* no communication failed on this rank */
  int timed_out;     /* a wait timed out: requests stay pending (rt->broken = 2) */
  char reason[512];  /* why this rank failed: the first failure, reported after
                        the collective agreement, so it must outlive the
                        calls in between (some of which may fail too) */
} migration;

/* One block for the per-buffer arrays of every transfer of this rank (a
 * slot has any number of buffers): dest and remote NULL, windows -1. */
static int xfer_arrays(migration *m) {
  const int me = m->rt->rank;
  size_t nb = 0;
  for (int i = 0; i < m->n; i++)
    if (m->plan[i].src_rank == me || m->plan[i].dst_rank == me)
      nb += (size_t)m->rt->slots[(size_t)m->plan[i].layer * m->rt->S].nbuf;
  m->xmem = calloc(nb ? nb : 1, 2 * sizeof(char *) + 2 * sizeof(int));
  if (!m->xmem) return 0;
  char **pp = m->xmem;
  int *ip = (int *)(pp + 2 * nb);
  for (size_t k = 0; k < 2 * nb; k++) ip[k] = -1;
  for (int i = 0, j = 0; i < m->n; i++) {
    const moeplace_transfer *t = &m->plan[i];
    if (t->src_rank != me && t->dst_rank != me) continue;
    xfer *x = &m->xs[j++];
    int nbuf = m->rt->slots[(size_t)t->layer * m->rt->S].nbuf;
    x->dest = pp;
    x->remote = pp + nbuf;
    x->dest_win = ip;
    x->remote_win = ip + nbuf;
    pp += 2 * nbuf;
    ip += 2 * nbuf;
  }
  return 1;
}

/* Lists this rank's transfers and counts its operations; allocates the
 * tables. */
static void prepare_tables(migration *m, mp_rt_migration_result *res) {
  moeplace_runtime *rt = m->rt;
  const int me = rt->rank;
  const size_t chunk = rt->cfg.chunk_bytes;
  for (int i = 0; i < m->n; i++) {
    const moeplace_transfer *t = &m->plan[i];
    if (t->src_rank != t->dst_rank) res->bytes_moved += rt->expert_bytes[t->layer];
    if (t->src_rank != me && t->dst_rank != me) continue;
    m->nx++;
    const mp_rt_slot *sl = local_slot(m->rt, t->layer, t->src_rank == me ? t->src_slot : t->dst_slot);
    m->nops += t->src_rank == t->dst_rank ? 1 : chunks_of(sl, chunk) + 1;
  }
  m->xs = calloc((size_t)(m->nx ? m->nx : 1), sizeof *m->xs);
  m->ops = calloc(m->nops ? m->nops : 1, sizeof *m->ops);
  m->maxout = rt->cfg.max_outstanding;
  m->reqs = malloc((size_t)m->maxout * sizeof *m->reqs);
  m->req_op = malloc((size_t)m->maxout * sizeof *m->req_op);
  m->req_peer = malloc((size_t)m->maxout * sizeof *m->req_peer);
  m->free_idx = malloc((size_t)m->maxout * sizeof *m->free_idx);
  m->indices = malloc((size_t)m->maxout * sizeof *m->indices);
  m->ok = m->xs && m->ops && m->reqs && m->req_op && m->req_peer && m->free_idx && m->indices;
  if (m->ok) m->ok = xfer_arrays(m);
  if (!m->ok) snprintf(m->reason, sizeof m->reason, "rank %d: out of memory preparing a migration", me);
  for (int i = 0, j = 0; m->ok && i < m->n; i++) {
    const moeplace_transfer *t = &m->plan[i];
    if (t->src_rank != me && t->dst_rank != me) continue;
    xfer *x = &m->xs[j++];
    x->t = t;
    x->incoming = t->dst_rank == me;
    x->shm = mp_rt_shm_pair(&rt->shm, t->src_rank, t->dst_rank);
  }
}

/* Landing memory of incoming message transfers: a staging pool kept between
 * migrations (registered buffers) or heap spares (owned buffers): first-touch
 * page faults of fresh memory would otherwise cost more than the transfer. */
static void prepare_staging(migration *m) {
  moeplace_runtime *rt = m->rt;
  size_t incoming = 0, staged = 0;
  for (int j = 0; m->ok && j < m->nx; j++) {
    if (!m->xs[j].incoming || m->xs[j].shm) continue;
    const mp_rt_slot *sl = local_slot(m->rt, m->xs[j].t->layer, m->xs[j].t->dst_slot);
    for (int b = 0; b < sl->nbuf; b++)
      if (!sl->buf[b].owned) incoming += sl->buf[b].bytes;
  }
  if (m->ok && incoming > rt->staging_cap) {
    free(rt->staging);
    rt->staging = malloc(incoming);
    rt->staging_cap = rt->staging ? incoming : 0;
    if (rt->staging) memset(rt->staging, 0, incoming);
    else {
      m->ok = 0;
      snprintf(m->reason, sizeof m->reason, "rank %d: no memory for %zu bytes of staging", rt->rank,
               incoming);
    }
  }
  for (int j = 0; m->ok && j < m->nx; j++) {
    xfer *x = &m->xs[j];
    if (!x->incoming || x->shm) continue;
    const mp_rt_slot *dsl = local_slot(m->rt, x->t->layer, x->t->dst_slot);
    for (int b = 0; b < dsl->nbuf; b++) {
      if (dsl->buf[b].owned) {
        x->dest[b] = mp_rt_spare_take(rt, dsl->buf[b].bytes, 0, &x->dest_win[b]);
      } else {
        x->dest[b] = rt->staging + staged;
        staged += dsl->buf[b].bytes;
      }
      if (!x->dest[b]) m->ok = 0;
    }
    if (!m->ok) snprintf(m->reason, sizeof m->reason, "rank %d: no memory for a spare buffer", rt->rank);
  }
}

/* The operation list: per transfer in plan order, a local copy, or the
 * chunks (each buffer cut separately) followed by the digest. */
static void prepare_ops(migration *m) {
  moeplace_runtime *rt = m->rt;
  const size_t chunk = rt->cfg.chunk_bytes;
  size_t k = 0;
  for (int j = 0; m->ok && j < m->nx; j++) {
    xfer *x = &m->xs[j];
    const moeplace_transfer *t = x->t;
    if (t->src_rank == t->dst_rank) {
      m->ops[k++] = (op){.kind = OP_LOCAL_COPY, .tr = j, .peer = rt->rank};
      continue;
    }
    x->hash = XXH3_createState();
    int both = x->shm && !x->incoming;
    if (both) x->landed = XXH3_createState();
    if (!x->hash || XXH3_64bits_reset(x->hash) != XXH_OK ||
        (both && (!x->landed || XXH3_64bits_reset(x->landed) != XXH_OK))) {
      m->ok = 0;
      snprintf(m->reason, sizeof m->reason, "rank %d: could not create a hash state", rt->rank);
      break;
    }
    x->first_chunk_op = (int)k;
    const mp_rt_slot *src = local_slot(m->rt, t->layer, t->src_slot);
    const mp_rt_slot *sl = x->incoming ? local_slot(m->rt, t->layer, t->dst_slot) : src;
    int peer = x->incoming ? t->src_rank : t->dst_rank;
    for (int b = 0; b < sl->nbuf; b++) {
      for (size_t o = 0; o < sl->buf[b].bytes; o += chunk) {
        size_t len = sl->buf[b].bytes - o < chunk ? sl->buf[b].bytes - o : chunk;
        char *p = x->incoming ? x->dest[b] + o : (char *)src->buf[b].ptr + o;
        m->ops[k++] = (op){.kind = x->incoming ? OP_RECV : OP_SEND, .tr = j, .peer = peer,
                           .buf = b, .off = o, .ptr = p, .bytes = (int)len};
        x->nchunks++;
      }
    }
    m->ops[k++] = (op){.kind = x->incoming ? OP_RECV_DIGEST : OP_SEND_DIGEST, .tr = j,
                       .peer = peer, .ptr = (char *)x->digest, .bytes = (int)sizeof x->digest};
  }
}

/* Prepares everything local, then agrees: nobody communicates unless
 * everybody could prepare. Returns the (same on every rank) status. */
static int prepare(migration *m, mp_rt_migration_result *res) {
  moeplace_runtime *rt = m->rt;
  prepare_tables(m, res);
  if (m->node_shm) {
    int st = land_shared(rt, m->ok ? m->xs : NULL, m->nx);
    if (st != MOEPLACE_OK && m->ok) {
      m->ok = 0;
      snprintf(m->reason, sizeof m->reason, "rank %d: %s", rt->rank, moeplace_last_error());
    }
  }
  prepare_staging(m);
  prepare_ops(m);
  if (m->ok && m->node_shm && !landing_prepare(rt, m->xs, m->nx, &m->lm)) {
    m->ok = 0;
    snprintf(m->reason, sizeof m->reason, "rank %d: out of memory preparing landing addresses",
             rt->rank);
  }
  int64_t ok = m->ok, all_ok = 0;
  int same;
  int agreed = mp_rt_agree_rt(rt, &ok, 1, &same, &all_ok, NULL,
                              "the agreement before migration (MPI_Iallreduce)");
  if (agreed != MOEPLACE_OK) return agreed; // nothing sent yet: the old placement stays
  if (all_ok) return MOEPLACE_OK;
  return m->ok ? mp_fail(MOEPLACE_ERR_NOMEM, "migration not started: another rank could not prepare it")
               : mp_fail(MOEPLACE_ERR_NOMEM, "%s", m->reason);
}

/* Posts operations in plan order while the request window has room (local
 * copies complete at once). Clears comm_ok on a failed post. */
static void post(migration *m) {
  moeplace_runtime *rt = m->rt;
  while (m->comm_ok && m->next < m->nops && m->nfree > 0) {
    op *o = &m->ops[m->next];
    xfer *x = &m->xs[o->tr];
    if (o->kind == OP_LOCAL_COPY) {
      const mp_rt_slot *src = local_slot(m->rt, x->t->layer, x->t->src_slot);
      for (int b = 0; b < src->nbuf; b++) memcpy(x->dest[b], src->buf[b].ptr, src->buf[b].bytes);
      x->verified = 1;
      o->done = 1;
      m->next++;
      continue;
    }
    if (o->kind == OP_SEND_DIGEST) {
      x->digest[0] = XXH3_64bits_digest(x->hash);
      x->digest[1] = x->landed ? XXH3_64bits_digest(x->landed) : 0;
    }
    int slot = m->free_idx[--m->nfree], rc;
    // A shared-memory chunk travels by copy: its message carries no bytes.
    int count = x->shm && (o->kind == OP_SEND || o->kind == OP_RECV) ? 0 : o->bytes;
    if (o->kind == OP_SEND && x->shm) {
      copy_hashing(rt, x->remote[o->buf] + o->off, o->ptr, (size_t)o->bytes, x->hash, x->landed);
      MPI_Win_sync(rt->shm.win[x->remote_win[o->buf]]); // the copy is visible before the notice
    }
    if (o->kind == OP_SEND || o->kind == OP_SEND_DIGEST)
      rc = MPI_Isend(o->ptr, count, MPI_BYTE, o->peer, TAG_MIGRATE, rt->comm, &m->reqs[slot]);
    else
      rc = MPI_Irecv(o->ptr, count, MPI_BYTE, o->peer, TAG_MIGRATE, rt->comm, &m->reqs[slot]);
    if (rc != MPI_SUCCESS) {
      m->comm_ok = 0;
      m->free_idx[m->nfree++] = slot;
      snprintf(m->reason, sizeof m->reason, "rank %d: posting a migration message failed", rt->rank);
      break;
    }
    m->req_op[slot] = (int)m->next;
    m->req_peer[slot] = o->peer;
    // A message sender hashes a chunk while it is on the wire (reading a
    // send buffer during a send is allowed), overlapping the two.
    if (o->kind == OP_SEND && !x->shm) XXH3_64bits_update(x->hash, o->ptr, (size_t)o->bytes);
    m->next++;
  }
}

/* Waits for some posted requests and processes them: receivers hash the
 * in-order prefix of what arrived. Returns 0 (comm_ok cleared) on failure. */
static int wait_some(migration *m) {
  moeplace_runtime *rt = m->rt;
  int outcount = 0;
  if (bounded_some(rt, m->maxout, m->reqs, m->req_peer, &outcount, m->indices,
                   "the transfers of a migration (expert chunks and digests)") != MOEPLACE_OK) {
    m->comm_ok = 0;
    m->timed_out = rt->broken == 2;
    snprintf(m->reason, sizeof m->reason, "%s", moeplace_last_error());
    return 0;
  }
  if (outcount == MPI_UNDEFINED) return 1;
  for (int i = 0; i < outcount; i++) {
    int slot = m->indices[i];
    op *o = &m->ops[m->req_op[slot]];
    o->done = 1;
    m->free_idx[m->nfree++] = slot;
    xfer *x = &m->xs[o->tr];
    if (o->kind == OP_RECV && x->shm) {
      MPI_Win_sync(rt->shm.win[x->dest_win[o->buf]]);
      rt->stats.shm_bytes_received += (uint64_t)o->bytes;
    }
    if (o->kind == OP_RECV_DIGEST) x->digest_arrived = 1;
    if (o->kind == OP_RECV || o->kind == OP_RECV_DIGEST) advance_incoming(rt, x, m->ops);
  }
  return 1;
}

/* The exchange of landing addresses, then every operation posted in plan
 * order through the bounded window, until all have completed (or one
 * failed: then what is in flight is drained before returning). */
static void communicate(migration *m) {
  m->comm_ok = 1;
  if (m->node_shm && landing_exchange(m->rt, m->xs, m->nx, &m->lm) != MOEPLACE_OK) {
    m->comm_ok = 0;
    m->timed_out = m->rt->broken == 2;
    snprintf(m->reason, sizeof m->reason, "%s", moeplace_last_error());
  }
  if (m->rt->test_stall_s > 0) { // test hook: this rank stops before posting anything
    struct timespec ts = {(time_t)m->rt->test_stall_s, 0};
    m->rt->test_stall_s = 0;
    nanosleep(&ts, NULL);
  }
  for (int i = 0; i < m->maxout; i++) {
    m->reqs[i] = MPI_REQUEST_NULL;
    m->free_idx[i] = m->maxout - 1 - i;
  }
  m->nfree = m->maxout;
  m->next = m->comm_ok ? 0 : m->nops;
  while (m->next < m->nops || m->nfree < m->maxout) {
    post(m);
    if (m->nfree == m->maxout) {
      if (!m->comm_ok) break;
      continue;
    }
    if (!wait_some(m)) break;
  }
}

/* One MPI_Allreduce(MIN) of "I verified everything": MOEPLACE_OK on every
 * rank, or the same error class on every rank (the rank that failed says
 * why). */
static int agree(migration *m) {
  moeplace_runtime *rt = m->rt;
  int verified = m->comm_ok, failed_tr = -1;
  for (int j = 0; verified && j < m->nx; j++)
    if (m->xs[j].incoming && !m->xs[j].verified) {
      verified = 0;
      failed_tr = j;
    }
  if (m->comm_ok && failed_tr >= 0) {
    const moeplace_transfer *t = m->xs[failed_tr].t;
    snprintf(m->reason, sizeof m->reason,
             "rank %d: checksum mismatch for expert %d of layer %d from rank %d", rt->rank,
             t->expert, t->layer, t->src_rank);
  }
  int64_t v = verified, all_verified = 0;
  int same;
  int agreed = mp_rt_agree_rt(rt, &v, 1, &same, &all_verified, NULL,
                              "the commit agreement of the migration (MPI_Iallreduce)");
  if (agreed != MOEPLACE_OK) return agreed; // this rank rolls back
  if (all_verified) return MOEPLACE_OK;
  if (!verified)
    return mp_fail(m->comm_ok ? MOEPLACE_ERR_VERIFY : MOEPLACE_ERR_MPI,
                   "migration rolled back: %s", m->reason);
  return mp_fail(MOEPLACE_ERR_VERIFY,
                 "migration rolled back: another rank could not verify what it received");
}

/* Every send is complete, so overwriting sources is safe: copy staging into
 * registered buffers, or swap the landing memory into owned ones. */
static void commit(migration *m) {
  for (int j = 0; j < m->nx; j++) {
    xfer *x = &m->xs[j];
    if (!x->incoming) continue;
    mp_rt_slot *dst = local_slot(m->rt, x->t->layer, x->t->dst_slot);
    for (int b = 0; b < dst->nbuf; b++) {
      mp_rt_buffer *db = &dst->buf[b];
      if (db->owned) { // swap: the old memory becomes a spare
        mp_rt_spare_give(m->rt, db->ptr, db->bytes, db->win);
        db->ptr = x->dest[b];
        db->win = x->dest_win[b];
        x->dest[b] = NULL;
      } else {
        memcpy(db->ptr, x->dest[b], db->bytes);
      }
    }
  }
}

/* After a timed-out wait, MPI may still write into or read from every
 * buffer of the migration (a late peer completes a pending request): they
 * are kept for ever (mp_rt_orphan) instead of being freed or pooled. */
static void abandon(migration *m) {
  moeplace_runtime *rt = m->rt;
  for (int j = 0; m->xs && j < m->nx; j++) {
    xfer *x = &m->xs[j];
    XXH3_freeState(x->hash);
    XXH3_freeState(x->landed);
    if (!x->incoming || !x->t) continue;
    const mp_rt_slot *dsl = local_slot(rt, x->t->layer, x->t->dst_slot);
    for (int b = 0; b < dsl->nbuf; b++)
      if (x->dest[b] && dsl->buf[b].owned && x->dest_win[b] < 0) mp_rt_orphan(x->dest[b]);
  }
  mp_rt_orphan(rt->staging);
  rt->staging = NULL;
  rt->staging_cap = 0;
  mp_rt_orphan(m->lm.tell);
  mp_rt_orphan(m->lm.out);
  mp_rt_orphan(m->lm.req);
  free(m->lm.cur);
  free(m->lm.peer);
  mp_rt_orphan(m->xs); // holds the digests
  mp_rt_orphan(m->reqs);
  free(m->ops);
  free(m->req_op);
  free(m->req_peer);
  free(m->free_idx);
  free(m->indices);
}

/* Landing memory not swapped into a slot (rollback, failure, or copied into
 * a registered buffer) goes back to the pool; staging stays. */
static void cleanup(migration *m) {
  if (m->timed_out) {
    abandon(m);
    return;
  }
  for (int j = 0; m->xs && j < m->nx; j++) {
    xfer *x = &m->xs[j];
    XXH3_freeState(x->hash);
    XXH3_freeState(x->landed);
    if (!x->incoming || !x->t) continue;
    const mp_rt_slot *dsl = local_slot(m->rt, x->t->layer, x->t->dst_slot);
    for (int b = 0; b < dsl->nbuf; b++)
      if (x->dest[b] && (dsl->buf[b].owned || x->dest_win[b] >= 0))
        mp_rt_spare_give(m->rt, x->dest[b], dsl->buf[b].bytes, x->dest_win[b]);
  }
  landing_free(&m->lm);
  free(m->xmem);
  free(m->xs);
  free(m->ops);
  free(m->reqs);
  free(m->req_op);
  free(m->req_peer);
  free(m->free_idx);
  free(m->indices);
}

int mp_rt_migrate(moeplace_runtime *rt, const moeplace_transfer *plan, int n,
                  mp_rt_migration_result *res) {
  double t0 = mp_now_s();
  memset(res, 0, sizeof *res);
  res->moves = n;
  migration m = {.rt = rt, .plan = plan, .n = n, .node_shm = node_has_shm_transfers(rt, plan, n)};
  int status = prepare(&m, res);
  if (status == MOEPLACE_OK) {
    communicate(&m);
    // A timed-out wait leaves this rank out of the commit agreement: the
    // runtime is unusable, and the others time out in their waits or in
    // the agreement (bounded by the same deadline).
    status = m.timed_out ? mp_fail(MOEPLACE_ERR_MPI, "%s", m.reason) : agree(&m);
  }
  if (status == MOEPLACE_OK) {
    commit(&m);
    res->verified_ok = 1;
  }
  cleanup(&m);
  res->seconds = mp_now_s() - t0;
  return status;
}
