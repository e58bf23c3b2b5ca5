/* Internal error reporting: a failing function records a detailed message
 * for moeplace_last_error() and returns the status in one expression:
 *
 *     if (w <= 0) return mp_fail(MOEPLACE_ERR_ARG, "window must be > 0, got %d", w);
 */
#ifndef MOEPLACE_COMMON_ERROR_H
#define MOEPLACE_COMMON_ERROR_H

#include <moeplace/base.h>

int mp_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Frees-on-failure helper for allocation results. */
#define MP_CHECK_ALLOC(ptr) \
  do { \
    if (!(ptr)) return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory in %s", __func__); \
  } while (0)

#endif
