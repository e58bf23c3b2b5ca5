/* moeplace/base.h: status codes, error reporting and version. Include <moeplace.h>. */
#ifndef MOEPLACE_H
#error Please include <moeplace.h> instead of <moeplace/base.h>.
#endif

#ifndef MOEPLACE_BASE_H
#define MOEPLACE_BASE_H

#ifdef __cplusplus
extern "C" {
#endif

#define MOEPLACE_VERSION_MAJOR 0
#define MOEPLACE_VERSION_MINOR 2
#define MOEPLACE_VERSION_PATCH 0

/* The contract of the whole API, stated once; a function that differs says
 * so in its own comment.
 *
 * Returns. A function returning int returns MOEPLACE_OK (0) on success or a
 * negative moeplace_status on failure, and then leaves a reason in
 * moeplace_last_error(). On failure, out-parameters are left unchanged
 * except a `**out` handle, which is set to NULL. Shape accessors
 * (moeplace_trace_layers(), moeplace_placement_slots(), ...) return the
 * value, or 0 for a NULL handle; rank accessors return -1 for it. The
 * library never aborts, exits or prints.
 *
 * Ownership. A handle made by *_create / *_open / *_clone / *_load /
 * *_read_* belongs to the caller, who releases it with the matching
 * *_destroy / *_close (which accepts NULL). Strings and arrays returned by
 * an accessor belong to the object: valid until the object is destroyed or,
 * where the comment says so, until the next call that changes it. Input
 * arrays and strings are only read during the call and not retained,
 * unless the comment says otherwise (e.g. registered buffers).
 *
 * Threads. Distinct objects may be used from distinct threads; one object
 * is used by one thread at a time. moeplace_last_error() is per thread.
 *
 * ABI. Structs that callers fill (configurations, options) are set up by
 * their *_init() function, which writes every default and zeroes the
 * `reserved` tail; structs the library fills (stats, step information) are
 * zeroed by the library before it writes them. New fields are carved out of
 * `reserved`, so the size and the offsets of existing fields never change
 * within a major version: a program compiled against an older header keeps
 * working with a newer library. Always call *_init(), never fill a
 * configuration from scratch. */

/* A limit (budget, deadline) that is negative means "no limit"; 0 means
 * that nothing is allowed. */
#define MOEPLACE_NO_LIMIT (-1)

/* Status returned by every fallible call. Negative values are errors. */
typedef enum moeplace_status {
  MOEPLACE_OK = 0,
  MOEPLACE_ERR_ARG = -1,         /* an argument or parameter is invalid */
  MOEPLACE_ERR_NOMEM = -2,       /* memory allocation failed */
  MOEPLACE_ERR_IO = -3,          /* a file could not be opened, read or written */
  MOEPLACE_ERR_FORMAT = -4,      /* an input file is malformed (message names file:line) */
  MOEPLACE_ERR_STATE = -5,       /* the call is not valid in the object's current state */
  MOEPLACE_ERR_MPI = -6,         /* an MPI call failed */
  MOEPLACE_ERR_MISMATCH = -7,    /* ranks disagree (configuration, shapes) */
  MOEPLACE_ERR_VERIFY = -8,      /* data failed verification; nothing was changed */
  MOEPLACE_ERR_NUMERIC = -9,     /* a numerical method failed to produce a valid result */
  MOEPLACE_ERR_UNSUPPORTED = -10 /* valid request this build or machine cannot serve */
} moeplace_status;

/* Short fixed description of a status code ("invalid argument", ...);
 * "unknown status" for a value that is none. Never NULL; static storage. */
const char *moeplace_strerror(int status);

/* The detailed reason for the last error raised in the calling thread, for
 * example "trace.csv:12: expected 16 expert counts, found 15". Valid until the
 * next failing moeplace call in this thread; "" when there was none. */
const char *moeplace_last_error(void);

/* Version of the library actually linked, as "MAJOR.MINOR.PATCH"; static
 * storage. Compare with MOEPLACE_VERSION_* to detect a header/library
 * mismatch. */
const char *moeplace_version(void);

#ifdef __cplusplus
}
#endif

#endif /* MOEPLACE_BASE_H */
