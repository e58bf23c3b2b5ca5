/* A toy training loop on the moeplace runtime: 2 MoE layers of 4 experts,
 * 2 expert slots per rank, a skewed router (experts 0 and 1 get most
 * tokens), and each slot's "weights" filled with its expert's number. The
 * runtime sees the imbalance of the initial placement, rebalances, and moves
 * the weights with the experts; after each rebalance every rank checks that
 * its slots hold the weights of the experts the new routing table names.
 *
 *     mpirun -np 2 ./trainer_loop [STEPS]      (default 300)
 *
 * Build: cc trainer_loop.c $(pkg-config --cflags --libs moeplace-mpi) */
#include <moeplace/runtime.h>

#include <stdio.h>
#include <stdlib.h>

#define LAYERS 2
#define EXPERTS 4
#define SLOTS 2
#define WEIGHTS 1024 /* floats per expert */

/* Every call is checked; the runtime reports collective failures on every
 * rank, so one rank giving up does not leave the others waiting. */
#define CHECK(call) \
  do { \
    int rc_ = (call); \
    if (rc_ != MOEPLACE_OK) { \
      fprintf(stderr, "trainer_loop: %s: %s: %s\n", #call, moeplace_strerror(rc_), \
              moeplace_last_error()); \
      MPI_Abort(MPI_COMM_WORLD, 1); \
    } \
  } while (0)

int main(int argc, char **argv) {
  // The runtime's decision thread never calls MPI: MPI_THREAD_FUNNELED is
  // enough (moeplace_runtime_create checks what MPI provided).
  int provided = MPI_THREAD_SINGLE;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  int steps = argc > 1 ? atoi(argv[1]) : 300;
  static const double router[EXPERTS] = {0.5, 0.3, 0.1, 0.1}; /* token fractions */

  moeplace_runtime_config cfg;
  moeplace_runtime_config_init(&cfg);
  cfg.layers = LAYERS;
  cfg.experts = EXPERTS;
  cfg.slots_per_rank = SLOTS;
  cfg.window = 10;
  cfg.rebalance_interval = 100;
  cfg.horizon = 100;
  moeplace_runtime *rt = NULL;
  CHECK(moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg));
  int rank = moeplace_runtime_rank(rt);

  /* The runtime owns the weights, so a migration can swap buffers in. */
  for (int l = 0; l < LAYERS; l++)
    for (int s = 0; s < SLOTS; s++) {
      void *ptr;
      int e;
      CHECK(moeplace_runtime_alloc_buffer(rt, l, s, WEIGHTS * sizeof(float), &ptr));
      CHECK(moeplace_runtime_local_expert(rt, l, s, &e, NULL));
      for (int i = 0; i < WEIGHTS; i++) ((float *)ptr)[i] = (float)e;
    }

  for (int step = 0; step < steps; step++) {
    for (int l = 0; l < LAYERS; l++) {
      uint64_t tokens[SLOTS];
      for (int s = 0; s < SLOTS; s++) { /* this slot's part of its expert's tokens */
        int e;
        double share;
        CHECK(moeplace_runtime_local_expert(rt, l, s, &e, &share));
        tokens[s] = e < 0 ? 0 : (uint64_t)(4096 * router[e] * share);
      }
      CHECK(moeplace_runtime_record(rt, l, tokens));
    }
    moeplace_step_info info;
    CHECK(moeplace_runtime_step(rt, &info));
    if (!info.rebalanced) continue;

    /* A dispatcher would re-read its routing table here. */
    for (int l = 0; l < LAYERS; l++)
      for (int e = 0; e < EXPERTS; e++) {
        moeplace_replica rep[8];
        int n;
        CHECK(moeplace_runtime_routing(rt, l, e, rep, 8, &n));
        for (int i = 0; i < n; i++) {
          if (rep[i].rank != rank) continue;
          void *ptr;
          CHECK(moeplace_runtime_buffer(rt, l, rep[i].slot, 0, &ptr, NULL));
          if (((float *)ptr)[WEIGHTS - 1] != (float)e) {
            fprintf(stderr, "trainer_loop: rank %d layer %d slot %d: not expert %d's weights\n",
                    rank, l, rep[i].slot, e);
            MPI_Abort(MPI_COMM_WORLD, 1);
          }
        }
      }
    if (rank == 0)
      printf("step %lld: rebalanced, %d moves, %llu bytes, predicted imbalance %.3f -> %.3f\n",
             (long long)info.step, info.moves, (unsigned long long)info.bytes_moved,
             info.predicted_imbalance_old, info.predicted_imbalance_new);
  }

  moeplace_runtime_stats st;
  CHECK(moeplace_runtime_get_stats(rt, &st));
  if (rank == 0) printf("%lld steps, %d rebalances\n", (long long)st.steps, st.rebalances);
  int ok = st.rebalances > 0; /* the skew must have been corrected */
  moeplace_runtime_destroy(rt);
  MPI_Finalize();
  return ok ? 0 : 1;
}
