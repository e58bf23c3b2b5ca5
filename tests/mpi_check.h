/* The checks of the MPI test programs (tests/test_runtime_mpi.c,
 * tests/test_rtapi_mpi.c): every rank counts its own failed checks, each
 * printed with the rank and the library's last error; main() sums them
 * over the ranks. One test program per translation unit includes this. */
#ifndef MOEPLACE_TESTS_MPI_CHECK_H
#define MOEPLACE_TESTS_MPI_CHECK_H

#include <stdio.h>

#include <moeplace.h>

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

#endif
