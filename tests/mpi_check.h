/* The checks of the MPI test programs (tests/test_runtime_mpi.c,
 * tests/test_rtapi_mpi.c): every rank counts its own failed checks, each
 * printed with the rank and the library's last error; main() sums them
 * over the ranks. One test program per translation unit includes this. */
#ifndef MOEPLACE_TESTS_MPI_CHECK_H
#define MOEPLACE_TESTS_MPI_CHECK_H

#include <stdio.h>
#include <string.h>

#include <moeplace.h>
#include <mpi.h>

static int failures;
static int my_rank;

#define CHECK(cond, ...)                                                            \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      failures++;                                                                   \
      fprintf(stderr, "rank %d: %s:%d: check failed: %s: ", my_rank, __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                                 \
      fprintf(stderr, " [last error: %s]\n", moeplace_last_error());              \
    }                                                                               \
  } while (0)

/* The case named by argv[1], into c[n]. A name ending in _p2p is the case
 * with messages only: the suffix is dropped and *p2p set to 1. */
static void mpi_case_name(int argc, char **argv, char *c, size_t n, int *p2p) {
  snprintf(c, n, "%s", argc > 1 ? argv[1] : "");
  size_t cl = strlen(c);
  if (cl > 4 && !strcmp(c + cl - 4, "_p2p")) {
    c[cl - 4] = '\0';
    *p2p = 1;
  }
}

/* Sums the failed checks of every rank, prints the verdict on rank 0
 * ("CASE[VARIANT] on R ranks: ok|FAIL (N failed checks)"), finalizes MPI
 * and returns the program's exit status. */
static int mpi_case_end(const char *c, const char *variant, int R) {
  int total = 0;
  MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (my_rank == 0)
    printf("%s%s on %d ranks: %s (%d failed checks)\n", c, variant, R, total ? "FAIL" : "ok", total);
  MPI_Finalize();
  return total ? 1 : 0;
}

#endif
