/* MPI tests of the runtime API a trainer needs (issue 12), run under mpirun
 * by tests/runtime_mpi.sh with 2 and 4 ranks: `test_rtapi_mpi CASE`. Every
 * rank checks its own outcome; failures are summed over ranks.
 *
 * Cases: checkpoint (a run saved mid-window, destroyed and restarted from
 * the file makes exactly the decisions of an uninterrupted run, from the
 * saved placement on), checkpoint_bad (damaged, truncated, foreign,
 * missing, other-shape and other-window files are the same clear error on
 * every rank; a save into a directory fails everywhere), dispatch (the
 * whole-token split per slot against an independent reference),
 * sync (replicas made different are found and made identical to their
 * primary; check mode changes nothing). */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <moeplace/runtime.h>

#include "tests/mpi_check.h"

enum { L = 2, E = 6, S = 4, STEPS = 100, SAVE_AT = 33 };

static void config(moeplace_runtime_config *cfg, int experts, int window) {
  moeplace_runtime_config_init(cfg);
  cfg->layers = L;
  cfg->experts = experts;
  cfg->slots_per_rank = S;
  cfg->window = window;
  cfg->rebalance_interval = 20;
  cfg->horizon = 20;
  cfg->history_windows = 64;
  cfg->min_gain = 0.0;
  // a restart replays the saved windows into a fresh forecaster: decisions
  // after it match an uninterrupted run's for the stateless forecasters
  // (sw_avg, last); the default auto refits ARIMA from the replayed windows
  cfg->predictor = "sw_avg";
  // and take each decision at the same step, however loaded the machine
  cfg->decision_wait = 1;
}

/* This rank's router counts at a step: a skew that moves from expert to
 * expert over time, so that later rebalances change the placement. */
static void router(int step, int layer, uint64_t *counts) {
  int hot = (step / 30 + layer) % E;
  for (int e = 0; e < E; e++)
    counts[e] = (uint64_t)(10 + (e == hot ? 200 : 0) + (e == (hot + 1) % E ? 60 : 0) +
                           (step * 7 + e * 3 + my_rank) % 11);
}

/* A 64-bit fingerprint of the placement in force (phy2log and shares). */
static uint64_t fingerprint(moeplace_runtime *rt, int R) {
  size_t n = (size_t)L * R * S;
  int *se = malloc(n * sizeof *se);
  double *sh = malloc(n * sizeof *sh);
  moeplace_runtime_get_placement(rt, se, sh);
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) {
    uint64_t bits;
    memcpy(&bits, &sh[i], sizeof bits);
    h = (h ^ (uint64_t)(se[i] + 1)) * 1099511628211ull;
    h = (h ^ bits) * 1099511628211ull;
  }
  free(se);
  free(sh);
  return h;
}

/* Steps from+1 .. to, recording per expert; fp[step] = the placement after it. */
static int run(moeplace_runtime *rt, int R, int from, int to, uint64_t *fp, int *rebalances) {
  uint64_t counts[E];
  for (int step = from + 1; step <= to; step++) {
    for (int l = 0; l < L; l++) {
      router(step, l, counts);
      int rc = moeplace_runtime_record_experts(rt, l, counts);
      if (rc) return rc;
    }
    moeplace_step_info info;
    int rc = moeplace_runtime_step_at(rt, step, &info);
    if (rc) return rc;
    if (info.rebalanced) ++*rebalances;
    fp[step] = fingerprint(rt, R);
  }
  return MOEPLACE_OK;
}

/* A directory for this run's files, made by rank 0 and shared. */
static void scratch_dir(char *dir, size_t n) {
  if (my_rank == 0) {
    snprintf(dir, n, "%s/moeplace-rtapi-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) dir[0] = '\0';
  }
  MPI_Bcast(dir, (int)n, MPI_CHAR, 0, MPI_COMM_WORLD);
}

/* Saves at step `at`, restarts, and continues: the same placements as an
 * uninterrupted run at every later step. */
static void checkpoint_at(int R, int at) {
  char dir[256], path[320];
  scratch_dir(dir, sizeof dir);
  CHECK(dir[0], "no scratch directory");
  snprintf(path, sizeof path, "%s/rt.ckpt", dir);
  moeplace_runtime_config cfg;
  config(&cfg, E, 5);
  uint64_t ref[STEPS + 1] = {0}, got[STEPS + 1] = {0};
  int reb_ref = 0, reb = 0;
  moeplace_runtime *rt = NULL;
  CHECK(moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg) == MOEPLACE_OK, "create");
  CHECK(run(rt, R, 0, STEPS, ref, &reb_ref) == MOEPLACE_OK, "uninterrupted run");
  moeplace_runtime_destroy(rt);
  CHECK(reb_ref >= 2 && ref[at] != ref[STEPS], "the load should rebalance after the save "
        "(%d rebalances)", reb_ref);

  CHECK(moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg) == MOEPLACE_OK, "create");
  CHECK(run(rt, R, 0, at, got, &reb) == MOEPLACE_OK, "run to the save");
  // 33 is mid-window: the open window's records must survive the restart;
  // at 22 the decision requested at step 20 is in flight (due at 25)
  CHECK(moeplace_runtime_save(rt, my_rank == 0 ? path : NULL) == MOEPLACE_OK, "save");
  CHECK(access(path, F_OK) == 0 || my_rank != 0, "the file exists");
  moeplace_runtime_stats before;
  moeplace_runtime_get_stats(rt, &before);
  moeplace_runtime_destroy(rt);

  rt = NULL;
  CHECK(moeplace_runtime_create_from_checkpoint(&rt, MPI_COMM_WORLD, &cfg,
                                                my_rank == 0 ? path : NULL) == MOEPLACE_OK,
        "restart");
  if (!rt) return;
  CHECK(fingerprint(rt, R) == ref[at], "the placement after restart is the saved one");
  moeplace_runtime_stats after;
  moeplace_runtime_get_stats(rt, &after);
  CHECK(after.steps == at && after.rebalances == before.rebalances &&
        after.windows == before.windows, "counters restored (steps %lld)", (long long)after.steps);
  CHECK(run(rt, R, at, STEPS, got, &reb) == MOEPLACE_OK, "run after the restart");
  int same = 1;
  for (int s = at + 1; s <= STEPS; s++)
    if (got[s] != ref[s]) {
      CHECK(0, "step %d: placement differs from the uninterrupted run", s);
      same = 0;
      break;
    }
  CHECK(same && reb == reb_ref, "same decisions: %d rebalances, %d uninterrupted", reb, reb_ref);
  moeplace_runtime_destroy(rt);
  if (my_rank == 0) {
    unlink(path);
    rmdir(dir);
  }
}

static void case_checkpoint(int R) {
  checkpoint_at(R, SAVE_AT);
  checkpoint_at(R, 22);
}

/* Coordinator: a copy of src with byte `at` flipped (at < 0: cut to -at bytes). */
static void damaged_copy(const char *src, const char *dst, long at) {
  if (my_rank != 0) return;
  FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
  long i = 0;
  for (int c; in && out && (c = fgetc(in)) != EOF; i++) {
    if (at < 0 && i >= -at) break;
    fputc(i == at ? c ^ 0x10 : c, out);
  }
  if (in) fclose(in);
  if (out) fclose(out);
}

/* create_from_checkpoint must fail with `want` on every rank, out NULL. */
static void refused(const char *path, int experts, int window, int want, const char *what) {
  moeplace_runtime_config cfg;
  config(&cfg, experts, window);
  moeplace_runtime *rt = (moeplace_runtime *)&cfg; // must be reset to NULL
  int rc = moeplace_runtime_create_from_checkpoint(&rt, MPI_COMM_WORLD, &cfg,
                                                   my_rank == 0 ? path : NULL);
  CHECK(rc == want && (rt == NULL) == (want != MOEPLACE_OK), "%s: rc %d, want %d", what, rc, want);
  CHECK(rc == MOEPLACE_OK || strlen(moeplace_last_error()) > 10, "%s: a message", what);
  if (rc == MOEPLACE_OK && rt) moeplace_runtime_destroy(rt);
}

static void case_checkpoint_bad(int R) {
  char dir[256], good[320], bad[320];
  scratch_dir(dir, sizeof dir);
  snprintf(good, sizeof good, "%s/good.ckpt", dir);
  snprintf(bad, sizeof bad, "%s/bad.ckpt", dir);
  moeplace_runtime_config cfg;
  config(&cfg, E, 5);
  moeplace_runtime *rt = NULL;
  uint64_t fp[STEPS + 1];
  int reb = 0;
  CHECK(moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg) == MOEPLACE_OK, "create");
  CHECK(run(rt, R, 0, 47, fp, &reb) == MOEPLACE_OK, "run");
  CHECK(moeplace_runtime_save(rt, my_rank == 0 ? good : NULL) == MOEPLACE_OK, "save");
  int rc = moeplace_runtime_save(rt, my_rank == 0 ? dir : NULL);
  CHECK(rc == MOEPLACE_ERR_IO && strstr(moeplace_last_error(), dir), "save into a directory: %d", rc);
  rc = moeplace_runtime_save(rt, NULL);
  CHECK(rc == MOEPLACE_ERR_ARG, "no path on the coordinator: %d", rc);
  moeplace_runtime_destroy(rt);

  refused(good, E, 5, MOEPLACE_OK, "the good file");
  long size = 0;
  if (my_rank == 0) {
    FILE *f = fopen(good, "rb");
    if (f && fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (f) fclose(f);
  }
  MPI_Bcast(&size, 1, MPI_LONG, 0, MPI_COMM_WORLD);
  CHECK(size > 1000, "the checkpoint has %ld bytes", size);
  for (long at = 0; at < size; at += at < 200 ? 13 : 151) { // header, arrays, history
    damaged_copy(good, bad, at);
    refused(bad, E, 5, MOEPLACE_ERR_FORMAT, "one flipped bit");
  }
  for (long at = size - 8; at < size; at++) { // the checksum itself
    damaged_copy(good, bad, at);
    refused(bad, E, 5, MOEPLACE_ERR_FORMAT, "one flipped bit");
  }
  damaged_copy(good, bad, -100);
  refused(bad, E, 5, MOEPLACE_ERR_FORMAT, "truncated");
  damaged_copy(good, bad, -3);
  refused(bad, E, 5, MOEPLACE_ERR_FORMAT, "3 bytes");
  refused(TEST_TOP_SRCDIR "/NEWS.md", E, 5, MOEPLACE_ERR_FORMAT, "not a checkpoint");
  refused(dir, E, 5, MOEPLACE_ERR_IO, "a directory");
  if (my_rank == 0) unlink(bad);
  refused(bad, E, 5, MOEPLACE_ERR_IO, "a missing file");
  refused(good, E - 1, 5, MOEPLACE_ERR_MISMATCH, "another shape");
  refused(good, E, 10, MOEPLACE_ERR_MISMATCH, "another window");
  refused(NULL, E, 5, MOEPLACE_ERR_ARG, "no path");
  CHECK(my_rank != 0 || strstr(moeplace_last_error(), "path"), "names the path");
  if (my_rank == 0) {
    unlink(good);
    rmdir(dir);
  }
}

/* Plan-only: apply_placement and the closed loop hold their plan; nothing
 * registered moves (sizes only); confirm commits on every rank or on none. */
static void case_plan_only(int R) {
  moeplace_runtime_config cfg;
  config(&cfg, E, 5);
  cfg.plan_only = 1;
  moeplace_runtime *rt = NULL;
  CHECK(moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg) == MOEPLACE_OK, "create");
  if (!rt) return;
  for (int l = 0; l < L; l++)
    for (int s = 0; s < S; s++)
      CHECK(moeplace_runtime_register_buffer(rt, l, s, NULL, 4096) == MOEPLACE_OK, "size only");
  int G = R * S;
  size_t n_all = (size_t)L * G;
  int *cur = malloc(n_all * sizeof *cur), *rot = malloc(n_all * sizeof *rot);
  int *got = malloc(n_all * sizeof *got);
  moeplace_runtime_get_placement(rt, cur, NULL);
  for (int l = 0; l < L; l++) // every slot's expert moves to the next rank
    for (int g = 0; g < G; g++) rot[(size_t)l * G + (g + S) % G] = cur[(size_t)l * G + g];
  moeplace_step_info info;
  CHECK(moeplace_runtime_apply_placement(rt, rot, NULL, &info) == MOEPLACE_OK && info.plan_pending &&
        !info.rebalanced, "apply holds the plan");
  const moeplace_transfer *plan = NULL;
  size_t n = 0;
  CHECK(moeplace_runtime_pending_plan(rt, &plan, &n) == MOEPLACE_OK && n > 0 && (int)n == info.moves,
        "the plan: %zu transfers", n);
  int wrong = 0;
  for (size_t i = 0; i < n; i++) // from a slot holding the expert now, to one holding it next
    wrong += cur[(size_t)plan[i].layer * G + plan[i].src_slot] != plan[i].expert ||
             rot[(size_t)plan[i].layer * G + plan[i].dst_slot] != plan[i].expert ||
             plan[i].src_slot / S != plan[i].src_rank || plan[i].dst_slot / S != plan[i].dst_rank;
  CHECK(wrong == 0, "%d transfers do not lead from the placement in force to the new one", wrong);
  moeplace_runtime_get_placement(rt, got, NULL);
  CHECK(!memcmp(got, cur, n_all * sizeof *got), "old placement in force until confirm");
  moeplace_runtime_pending_placement(rt, got, NULL);
  CHECK(!memcmp(got, rot, n_all * sizeof *got), "pending placement");
  CHECK(moeplace_runtime_step(rt, NULL) == MOEPLACE_ERR_STATE, "no step while a plan is pending");
  CHECK(moeplace_runtime_save(rt, NULL) == MOEPLACE_ERR_STATE, "no save while a plan is pending");
  CHECK(moeplace_runtime_confirm(rt, 1) == MOEPLACE_OK, "confirm");
  moeplace_runtime_get_placement(rt, got, NULL);
  CHECK(!memcmp(got, rot, n_all * sizeof *got), "committed on confirm");
  CHECK(moeplace_runtime_confirm(rt, 1) == MOEPLACE_ERR_STATE, "nothing to confirm");
  // One rank fails its transfers: nobody commits.
  CHECK(moeplace_runtime_apply_placement(rt, cur, NULL, &info) == MOEPLACE_OK && info.plan_pending, "again");
  int rc = moeplace_runtime_confirm(rt, my_rank != R - 1);
  CHECK(rc == MOEPLACE_ERR_VERIFY, "a failed rank: %d on every rank", rc);
  moeplace_runtime_get_placement(rt, got, NULL);
  CHECK(!memcmp(got, rot, n_all * sizeof *got), "old placement kept");
  // The closed loop holds its rebalances too, and steps continue after confirm.
  int pending = 0;
  uint64_t counts[E];
  for (int step = 1; step <= 60; step++) {
    for (int l = 0; l < L; l++) {
      router(step, l, counts);
      moeplace_runtime_record_experts(rt, l, counts);
    }
    CHECK(moeplace_runtime_step(rt, &info) == MOEPLACE_OK, "step %d", step);
    if (info.plan_pending) {
      pending++;
      CHECK(moeplace_runtime_confirm(rt, 1) == MOEPLACE_OK, "confirm at step %d", step);
    }
  }
  moeplace_runtime_stats st;
  moeplace_runtime_get_stats(rt, &st);
  CHECK(pending > 0 && st.rebalances == 1 + pending && st.migrations_failed == 1,
        "%d plans in the loop, %d rebalances", pending, st.rebalances);
  moeplace_runtime_destroy(rt);
  free(cur);
  free(rot);
  free(got);
}

/* Byte i of buffer b of a slot holding expert e of layer l, as seeded by `seed`. */
static uint8_t byte_of(int seed, int l, int e, int b, size_t i) {
  uint64_t x = (uint64_t)i * 0x9E3779B97F4A7C15ull + (uint64_t)(seed * 131 + l * 31 + e * 7 + b);
  x ^= x >> 29;
  return (uint8_t)(x * 0xBF58476D1CE4E5B9ull >> 56);
}

static int shm_transfers = 1;

static void case_sync(int R) {
  enum { SL = 2, SE = 3, SS = 2, NB = 3 };
  moeplace_runtime_config cfg;
  moeplace_runtime_config_init(&cfg);
  cfg.layers = SL;
  cfg.experts = SE;
  cfg.slots_per_rank = SS;
  cfg.shm_transfers = shm_transfers;
  cfg.chunk_bytes = 512;
  moeplace_runtime *rt = NULL;
  CHECK(moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg) == MOEPLACE_OK, "create");
  if (!rt) return;
  const size_t sizes[NB] = {1000, 24, 4096};
  uint8_t *buf[SL][SS][NB];
  int replicas[SL][SE] = {{0}};
  int G = R * SS, *se = malloc((size_t)SL * G * sizeof *se);
  moeplace_runtime_get_placement(rt, se, NULL);
  for (int l = 0; l < SL; l++)
    for (int g = 0; g < G; g++) replicas[l][se[(size_t)l * G + g]]++;
  for (int l = 0; l < SL; l++)
    for (int s = 0; s < SS; s++) {
      int e;
      moeplace_runtime_local_expert(rt, l, s, &e, NULL);
      for (int b = 0; b < NB; b++) {
        buf[l][s][b] = malloc(sizes[b]);
        for (size_t i = 0; i < sizes[b]; i++) buf[l][s][b][i] = byte_of(my_rank, l, e, b, i);
        CHECK(moeplace_runtime_register_buffer(rt, l, s, buf[l][s][b], sizes[b]) == MOEPLACE_OK, "reg");
      }
    }
  // Seeded per rank: every expert with two replicas or more differs.
  int differ[SL][SE], count = -1, want = 0;
  for (int l = 0; l < SL; l++)
    for (int e = 0; e < SE; e++) want += replicas[l][e] > 1;
  CHECK(want > 0, "the initial placement has replicas");
  CHECK(moeplace_runtime_sync_replicas(rt, MOEPLACE_SYNC_CHECK, &differ[0][0], &count) == MOEPLACE_OK,
        "check");
  CHECK(count == want, "%d experts differ, want %d", count, want);
  for (int l = 0; l < SL; l++)
    for (int e = 0; e < SE; e++)
      CHECK(differ[l][e] == (replicas[l][e] > 1), "layer %d expert %d flag %d", l, e, differ[l][e]);
  CHECK(buf[0][0][0][5] == byte_of(my_rank, 0, se[(size_t)my_rank * SS], 0, 5), "check changes nothing");
  CHECK(moeplace_runtime_sync_replicas(rt, 7, NULL, NULL) == MOEPLACE_ERR_ARG, "bad mode");
  CHECK(moeplace_runtime_sync_replicas(rt, MOEPLACE_SYNC_COPY, NULL, &count) == MOEPLACE_OK &&
        count == want, "copy: %d", count);
  // Every replica now holds its primary's bytes (the primary's rank's seed).
  for (int l = 0; l < SL; l++)
    for (int s = 0; s < SS; s++) {
      int e, p = 0;
      moeplace_runtime_local_expert(rt, l, s, &e, NULL);
      while (se[(size_t)l * G + p] != e) p++;
      int bad = 0;
      for (int b = 0; b < NB; b++)
        for (size_t i = 0; i < sizes[b]; i++) bad += buf[l][s][b][i] != byte_of(p / SS, l, e, b, i);
      CHECK(bad == 0, "layer %d slot %d (expert %d): %d bytes differ from the primary on rank %d", l,
            s, e, bad, p / SS);
    }
  CHECK(moeplace_runtime_sync_replicas(rt, MOEPLACE_SYNC_CHECK, &differ[0][0], &count) == MOEPLACE_OK &&
        count == 0, "after the copy nothing differs: %d", count);
  moeplace_runtime_destroy(rt);
  for (int l = 0; l < SL; l++)
    for (int s = 0; s < SS; s++)
      for (int b = 0; b < NB; b++) free(buf[l][s][b]);
  free(se);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int R;
  MPI_Comm_rank(MPI_COMM_WORLD, &my_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &R);
  char c[64];
  int p2p = 0;
  mpi_case_name(argc, argv, c, sizeof c, &p2p);
  shm_transfers = !p2p;
  if (R < 2) {
    if (my_rank == 0) fprintf(stderr, "run with >= 2 ranks\n");
    MPI_Finalize();
    return 2;
  }
  if (!strcmp(c, "checkpoint")) case_checkpoint(R);
  else if (!strcmp(c, "checkpoint_bad")) case_checkpoint_bad(R);
  else if (!strcmp(c, "sync")) case_sync(R);
  else if (!strcmp(c, "plan_only")) case_plan_only(R);
  else {
    if (my_rank == 0) fprintf(stderr, "unknown case \"%s\"\n", c);
    MPI_Finalize();
    return 2;
  }
  return mpi_case_end(c, "", R);
}
