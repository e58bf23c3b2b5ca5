/* Monotonic wall-clock time for benchmarks and reported solve times, and
 * a thread's CPU time. */
#ifndef MOEPLACE_COMMON_TIMER_H
#define MOEPLACE_COMMON_TIMER_H

#include <time.h>

static inline double mp_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of the calling thread in seconds (0 where the OS has no
 * per-thread CPU clock): what a background thread takes from the cores the
 * training shares with it, which its wall time does not tell. */
static inline double mp_thread_cpu_s(void) {
#ifdef CLOCK_THREAD_CPUTIME_ID
  struct timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#endif
  return 0.0;
}

#endif
