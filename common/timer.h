/* Monotonic wall-clock time for benchmarks and reported solve times. */
#ifndef MOEPLACE_COMMON_TIMER_H
#define MOEPLACE_COMMON_TIMER_H

#include <time.h>

static inline double mp_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
