/* Checkpoint and restart of the runtime (moeplace_runtime_save,
 * moeplace_runtime_create_from_checkpoint; docs/RUNTIME.md, "Checkpoint and
 * restart"). The coordinator writes and reads the file; every rank learns
 * the outcome from one bounded broadcast, so a damaged or foreign file is
 * the same error everywhere, never a silent fresh start.
 *
 * File (native byte order, checked by a marker):
 *   ckpt_header
 *   int32  phy2log[L][G]     the placement in force
 *   double share[L][G]
 *   uint64 carry[L][E]       the open window's records so far, summed over
 *                            ranks and mapped to experts
 *   uint64 hist[nhist][L][E] the last nhist windows' totals, oldest first:
 *                            replayed into the coordinator's decider (history
 *                            ring and a fresh forecaster) on restart; a
 *                            decision in flight (decision_due) is requested
 *                            again from them, so the restarted job decides as
 *                            the uninterrupted one would
 *   uint64 XXH3-64 of every byte before it */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "common/atomic_file.h"
#include "common/error.h"
#include "runtime/internal.h"

#define CKPT_MAGIC "MPRTCKPT"
#define CKPT_VERSION 2u
#define CKPT_BYTE_ORDER 0x01020304u

typedef struct ckpt_header {
  char magic[8];
  uint32_t version, byte_order;
  int32_t layers, experts, ranks, slots_per_rank;
  int32_t window, nhist, steps_in_window, pad;
  int64_t step, caller_step;
  int64_t decision_due; /* a decision requested and not yet applied is due at this step
                           (decision_lag_windows): requested again on restart; -1 none */
  moeplace_runtime_stats stats;
} ckpt_header;

/* The outcome every rank returns: status and the message of the rank that
 * failed (the coordinator), broadcast together. */
typedef struct outcome {
  int status;
  char msg[500];
} outcome;

/* Bounded broadcast of n bytes from the coordinator; on a timeout buf is
 * left to MPI (mp_rt_orphan) and must not be freed by the caller. */
static int bcast_bytes(moeplace_runtime *rt, void *buf, size_t n, const char *what) {
  MPI_Request req;
  if (n > (size_t)INT32_MAX) return mp_fail(MOEPLACE_ERR_ARG, "%s: %zu bytes is too large", what, n);
  if (MPI_Ibcast(buf, (int)n, MPI_BYTE, rt->cfg.coordinator, rt->comm, &req) != MPI_SUCCESS)
    return mp_fail(MOEPLACE_ERR_MPI, "MPI_Ibcast of %s failed", what);
  int st = mp_rt_wait(rt, &req, what);
  if (st != MOEPLACE_OK && rt->broken) mp_rt_orphan(buf);
  return st;
}

/* Every rank returns the coordinator's status, with its message. */
static int share_outcome(moeplace_runtime *rt, int status, const char *what) {
  outcome *o = calloc(1, sizeof *o);
  if (!o) return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory sharing the %s outcome", what);
  o->status = status;
  if (status != MOEPLACE_OK) snprintf(o->msg, sizeof o->msg, "%s", moeplace_last_error());
  int st = bcast_bytes(rt, o, sizeof *o, what);
  if (st != MOEPLACE_OK) return st; // o is orphaned on a timeout
  st = o->status;
  if (st != MOEPLACE_OK && rt->rank != rt->cfg.coordinator)
    st = mp_fail(st, "%s (on the coordinator, rank %d)", o->msg, rt->cfg.coordinator);
  free(o);
  return st;
}

/* Collective: the open window's records of every rank, per expert, summed
 * onto the coordinator: carry [L][E] (coordinator only; NULL elsewhere).
 * Slot records map through the placement in force, as aggregate() would
 * map them at the window's end. */
static int carry_counts(moeplace_runtime *rt, uint64_t **carry) {
  size_t LE = (size_t)rt->L * rt->E;
  uint64_t *mine = malloc(2 * LE * sizeof *mine); // mine [L][E], then the sum [L][E]
  int st = mp_rt_agree_ok(rt, mine != NULL, "save (MPI_Iallreduce)");
  if (st != MOEPLACE_OK) {
    free(mine);
    return st;
  }
  memcpy(mine, rt->expert_window, LE * sizeof *mine);
  for (int l = 0; l < rt->L; l++)
    for (int s = 0; s < rt->S; s++) {
      int e = rt->placement->phy2log[(size_t)l * rt->G + (size_t)rt->rank * rt->S + s];
      if (e >= 0) mine[(size_t)l * rt->E + e] += rt->window_counts[(size_t)l * rt->S + s];
    }
  MPI_Request req;
  if (MPI_Ireduce(mine, mine + LE, (int)LE, MPI_UINT64_T, MPI_SUM, rt->cfg.coordinator, rt->comm,
                  &req) != MPI_SUCCESS)
    st = mp_fail(MOEPLACE_ERR_MPI, "MPI_Ireduce of the open window's records failed");
  else
    st = mp_rt_wait(rt, &req, "the checkpoint's window records (MPI_Ireduce)");
  if (st != MOEPLACE_OK) {
    if (rt->broken) mp_rt_orphan(mine);
    else free(mine);
    return st;
  }
  if (rt->rank != rt->cfg.coordinator) {
    free(mine);
    *carry = NULL;
    return MOEPLACE_OK;
  }
  memmove(mine, mine + LE, LE * sizeof *mine);
  *carry = mine;
  return MOEPLACE_OK;
}

/* Coordinator: the file image (header, arrays, checksum) in one block. */
static char *image(const moeplace_runtime *rt, const uint64_t *carry, size_t *size) {
  size_t LG = (size_t)rt->L * rt->G, LE = (size_t)rt->L * rt->E;
  const mp_rt_history *hist = mp_rt_decider_history(rt->decider); // waits for its thread
  int nhist = mp_rt_history_count(hist);
  size_t n = sizeof(ckpt_header) + LG * (sizeof(int32_t) + sizeof(double)) +
             (1 + (size_t)nhist) * LE * sizeof(uint64_t) + sizeof(uint64_t);
  char *img = calloc(1, n);
  if (!img) return NULL;
  ckpt_header *h = (ckpt_header *)img;
  memcpy(h->magic, CKPT_MAGIC, 8);
  h->version = CKPT_VERSION;
  h->byte_order = CKPT_BYTE_ORDER;
  h->layers = rt->L;
  h->experts = rt->E;
  h->ranks = rt->R;
  h->slots_per_rank = rt->S;
  h->window = rt->cfg.window;
  h->nhist = nhist;
  h->steps_in_window = rt->steps_in_window;
  h->step = rt->step;
  h->caller_step = rt->caller_step;
  h->decision_due = rt->decision_due;
  h->stats = rt->stats;
  char *p = img + sizeof *h;
  for (size_t i = 0; i < LG; i++, p += sizeof(int32_t)) {
    int32_t v = rt->placement->phy2log[i];
    memcpy(p, &v, sizeof v);
  }
  memcpy(p, rt->placement->share, LG * sizeof(double));
  p += LG * sizeof(double);
  memcpy(p, carry, LE * sizeof(uint64_t));
  p += LE * sizeof(uint64_t);
  for (int a = nhist - 1; a >= 0; a--, p += LE * sizeof(uint64_t)) // oldest first
    memcpy(p, mp_rt_history_counts(hist, a), LE * sizeof(uint64_t));
  uint64_t sum = XXH3_64bits(img, n - sizeof sum);
  memcpy(p, &sum, sizeof sum);
  *size = n;
  return img;
}

/* Coordinator: writes the image atomically (a temporary file renamed over
 * path: a crash leaves the previous checkpoint intact). */
static int write_file(const moeplace_runtime *rt, const char *path, const uint64_t *carry) {
  if (!path || !*path || !strcmp(path, "-"))
    return mp_fail(MOEPLACE_ERR_ARG, "save: the coordinator needs a file path");
  size_t n = 0;
  char *img = image(rt, carry, &n);
  if (!img) return mp_fail(MOEPLACE_ERR_NOMEM, "save: out of memory for %s", path);
  mp_atomic_file f;
  int st = mp_atomic_open(&f, path);
  for (size_t off = 0; st == MOEPLACE_OK && off < n;) {
    ssize_t w = write(f.fd, img + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      st = mp_fail(MOEPLACE_ERR_IO, "%s: write failed: %s", path, strerror(errno));
      mp_atomic_abort(&f, 0);
    }
    else off += (size_t)w;
  }
  if (st == MOEPLACE_OK) st = mp_atomic_commit(&f, 0);
  free(img);
  return st;
}

int moeplace_runtime_save(moeplace_runtime *rt, const char *path) {
  if (!rt) return mp_fail(MOEPLACE_ERR_ARG, "save: runtime is NULL");
  if (rt->plan_pending)
    return mp_fail(MOEPLACE_ERR_STATE, "save: a migration plan is pending: confirm it first");
  if (rt->broken || !rt->expert_window)
    return mp_fail(MOEPLACE_ERR_STATE, "save: the runtime is unusable after a collective timed "
                   "out or the ranks disagreed on the step");
  if (rt->chunk_layer >= 0) // every rank agrees on it: the same error everywhere
    return mp_fail(MOEPLACE_ERR_STATE, "save: a migration in layer groups "
                   "(migration_layers_per_step) is in progress; save after its last group");
  uint64_t *carry = NULL;
  int st = carry_counts(rt, &carry);
  if (st != MOEPLACE_OK) return st;
  if (rt->rank == rt->cfg.coordinator) st = write_file(rt, path, carry);
  free(carry);
  return share_outcome(rt, st, "the checkpoint save");
}

/* ---- restart ------------------------------------------------------------ */

/* Coordinator: reads the whole file and checks it, most basic first
 * (checksum before any field is trusted). On success *img holds it. */
static int read_file(const moeplace_runtime *rt, const char *path, char **img, size_t *size) {
  *img = NULL;
  if (!path || !*path) return mp_fail(MOEPLACE_ERR_ARG, "restart: the coordinator needs a file path");
  FILE *fp = fopen(path, "rb");
  if (!fp) return mp_fail(MOEPLACE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
    fclose(fp);
    return mp_fail(MOEPLACE_ERR_IO, "%s: not a regular file", path);
  }
  long n = -1;
  if (fseek(fp, 0, SEEK_END) == 0) n = ftell(fp);
  char *buf = n > 0 ? malloc((size_t)n) : NULL;
  int ok = n >= 0 && fseek(fp, 0, SEEK_SET) == 0 && (n == 0 || (buf && fread(buf, 1, (size_t)n, fp) == (size_t)n));
  fclose(fp);
  if (!ok) {
    free(buf);
    return n > 0 && !buf ? mp_fail(MOEPLACE_ERR_NOMEM, "%s: out of memory reading it", path)
                         : mp_fail(MOEPLACE_ERR_IO, "%s: read failed", path);
  }
  const ckpt_header *h = (const ckpt_header *)buf;
  uint64_t sum = 0;
  int st = MOEPLACE_OK;
  if ((size_t)n < sizeof *h + sizeof sum || memcmp(h->magic, CKPT_MAGIC, 8) != 0)
    st = mp_fail(MOEPLACE_ERR_FORMAT, "%s: not a moeplace runtime checkpoint", path);
  else if (h->version != CKPT_VERSION || h->byte_order != CKPT_BYTE_ORDER)
    st = mp_fail(MOEPLACE_ERR_FORMAT, "%s: checkpoint version %u (byte order %#x); this library "
                 "reads version %u written on a machine of its byte order", path, h->version,
                 h->byte_order, CKPT_VERSION);
  else if (memcpy(&sum, buf + n - sizeof sum, sizeof sum), sum != XXH3_64bits(buf, (size_t)n - sizeof sum))
    st = mp_fail(MOEPLACE_ERR_FORMAT, "%s: checksum mismatch: the checkpoint is damaged or truncated", path);
  else if (h->layers != rt->L || h->experts != rt->E || h->ranks != rt->R || h->slots_per_rank != rt->S)
    st = mp_fail(MOEPLACE_ERR_MISMATCH, "%s: saved by a runtime of %d layers, %d experts, %d ranks x "
                 "%d slots; this one has %d layers, %d experts, %d ranks x %d slots", path,
                 h->layers, h->experts, h->ranks, h->slots_per_rank, rt->L, rt->E, rt->R, rt->S);
  else if (h->window != rt->cfg.window)
    st = mp_fail(MOEPLACE_ERR_MISMATCH, "%s: saved with window %d; this runtime has window %d", path,
                 h->window, rt->cfg.window);
  else if (h->nhist < 0 || h->steps_in_window < 0 || h->steps_in_window >= h->window || h->step < 0 ||
           (size_t)n != sizeof *h + (size_t)rt->L * rt->G * (sizeof(int32_t) + sizeof(double)) +
                            (1 + (size_t)h->nhist) * (size_t)rt->L * rt->E * sizeof(uint64_t) + sizeof sum)
    st = mp_fail(MOEPLACE_ERR_FORMAT, "%s: inconsistent checkpoint header", path);
  if (st != MOEPLACE_OK) {
    free(buf);
    return st;
  }
  *img = buf;
  *size = (size_t)n;
  return MOEPLACE_OK;
}

/* Every rank: the placement and counters from the broadcast part of the
 * image (header, phy2log, share), validated (a placement the checksum let
 * through but that breaks an invariant is refused). */
static int apply_common(moeplace_runtime *rt, const char *part, const char *path) {
  const ckpt_header *h = (const ckpt_header *)part;
  size_t LG = (size_t)rt->L * rt->G;
  const char *p = part + sizeof *h;
  for (size_t i = 0; i < LG; i++, p += sizeof(int32_t)) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    rt->next->phy2log[i] = v;
  }
  memcpy(rt->next->share, p, LG * sizeof(double));
  if (moeplace_placement_validate(rt->next) != MOEPLACE_OK)
    return mp_fail(MOEPLACE_ERR_FORMAT, "%s: the saved placement is invalid: %s", path ? path : "checkpoint",
                   moeplace_last_error());
  moeplace_placement *old = rt->placement;
  rt->placement = rt->next;
  rt->next = old;
  rt->step = h->step;
  rt->caller_step = h->caller_step;
  rt->steps_in_window = h->steps_in_window;
  rt->decision_due = h->decision_due > h->step ? h->decision_due : -1;
  rt->rerequest = rt->decision_due >= 0; // the coordinator asks again at the next step
  rt->stats = h->stats;
  return MOEPLACE_OK;
}

/* Coordinator: the open window's records and the replay of the saved
 * windows into the decider (history ring and the fresh forecaster). */
static int apply_coordinator(moeplace_runtime *rt, const char *img) {
  const ckpt_header *h = (const ckpt_header *)img;
  size_t LG = (size_t)rt->L * rt->G, LE = (size_t)rt->L * rt->E;
  const char *p = img + sizeof *h + LG * (sizeof(int32_t) + sizeof(double));
  uint64_t *w = malloc(LE * sizeof *w); // one window [L][E], aligned
  if (!w) return mp_fail(MOEPLACE_ERR_NOMEM, "restart: out of memory replaying the history");
  memcpy(w, p, LE * sizeof *w);
  for (size_t i = 0; i < LE; i++) rt->expert_window[i] += w[i];
  rt->experts_recorded = 1; // the window's reduction must carry them to the totals
  p += LE * sizeof *w;
  int st = MOEPLACE_OK;
  for (int k = 0; k < h->nhist && st == MOEPLACE_OK; k++, p += LE * sizeof *w) {
    memcpy(w, p, LE * sizeof *w);
    st = mp_rt_decider_observe(rt->decider, w); // queued, in order; copies w
  }
  free(w);
  return st;
}

int moeplace_runtime_create_from_checkpoint(moeplace_runtime **out, MPI_Comm comm,
                                            const moeplace_runtime_config *cfg, const char *path) {
  moeplace_runtime *rt = NULL;
  if (out) *out = NULL;
  int st = moeplace_runtime_create(out ? &rt : NULL, comm, cfg);
  if (st != MOEPLACE_OK) return st;
  char *img = NULL;
  size_t n = 0;
  if (rt->rank == rt->cfg.coordinator) st = read_file(rt, path, &img, &n);
  st = share_outcome(rt, st, "the checkpoint read");
  size_t part = sizeof(ckpt_header) + (size_t)rt->L * rt->G * (sizeof(int32_t) + sizeof(double));
  char *buf = NULL;
  if (st == MOEPLACE_OK) {
    buf = rt->rank == rt->cfg.coordinator ? img : malloc(part);
    st = mp_rt_agree_ok(rt, buf != NULL, "restart (MPI_Iallreduce)");
  }
  if (st == MOEPLACE_OK) st = bcast_bytes(rt, buf, part, "the checkpoint's placement (MPI_Ibcast)");
  if (st == MOEPLACE_OK) { // the image passed its checksum: only an invalid placement can fail
    st = apply_common(rt, buf, path);
    if (st == MOEPLACE_OK && rt->rank == rt->cfg.coordinator) st = apply_coordinator(rt, img);
    st = share_outcome(rt, st, "the checkpoint restart");
  }
  if (!rt->broken) { // else a broadcast that timed out keeps buf (mp_rt_orphan)
    if (buf != img) free(buf);
    free(img);
  } else if (buf != img) {
    free(img);
  }
  if (st != MOEPLACE_OK) {
    moeplace_runtime_destroy(rt);
    return st;
  }
  *out = rt;
  return MOEPLACE_OK;
}
