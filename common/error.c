/* Status strings and the per-thread "last error" message. */
#ifdef HAVE_CONFIG_H
#include "config.h" /* PACKAGE_VERSION */
#endif

#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Thread-local so that forecasting on a helper thread cannot overwrite the
 * message a training thread is about to print. */
static _Thread_local char last_error[1024];

int mp_fail(int status, const char *fmt, ...) {
  // Format into a scratch buffer first: the arguments may include
  // moeplace_last_error() itself ("current placement: %s"), which must not
  // be overwritten while it is read.
  char msg[sizeof last_error];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  memcpy(last_error, msg, sizeof last_error);
  return status;
}

const char *moeplace_last_error(void) { return last_error; }

const char *moeplace_strerror(int status) {
  switch (status) {
  case MOEPLACE_OK: return "success";
  case MOEPLACE_ERR_ARG: return "invalid argument";
  case MOEPLACE_ERR_NOMEM: return "out of memory";
  case MOEPLACE_ERR_IO: return "input/output error";
  case MOEPLACE_ERR_FORMAT: return "malformed input";
  case MOEPLACE_ERR_STATE: return "invalid state for this call";
  case MOEPLACE_ERR_MPI: return "MPI error";
  case MOEPLACE_ERR_MISMATCH: return "ranks disagree";
  case MOEPLACE_ERR_VERIFY: return "verification failed";
  case MOEPLACE_ERR_NUMERIC: return "numerical failure";
  case MOEPLACE_ERR_UNSUPPORTED: return "unsupported";
  default: return "unknown status";
  }
}

const char *moeplace_version(void) { return PACKAGE_VERSION; }
