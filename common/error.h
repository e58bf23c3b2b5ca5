/* Internal error reporting: a failing function records a detailed message
 * for moeplace_last_error() and returns the status in one expression:
 *
 *     if (w <= 0) return mp_fail(MOEPLACE_ERR_ARG, "window must be > 0, got %d", w);
 */
#ifndef MOEPLACE_COMMON_ERROR_H
#define MOEPLACE_COMMON_ERROR_H

#include <moeplace.h>

/* Records the message and returns status. The arguments may include
 * moeplace_last_error() itself, to prefix context to a callee's message:
 *
 *     if (rc) return mp_fail(rc, "current placement: %s", moeplace_last_error());
 */
/* Exported under a moeplace_ name because libmoeplace-mpi reports its errors
 * into libmoeplace's per-thread message; not part of the public API. */
#define mp_fail moeplace_private_fail
int mp_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Returns MOEPLACE_ERR_NOMEM ("out of memory in <function>") from the calling
 * function when ptr is NULL. It frees nothing: use it only before the caller
 * owns anything else, and free by hand (goto cleanup) after that. */
#define MP_CHECK_ALLOC(ptr) \
  do { \
    if (!(ptr)) return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory in %s", __func__); \
  } while (0)

#endif
