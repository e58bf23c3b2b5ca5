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
#define MOEPLACE_VERSION_MINOR 1
#define MOEPLACE_VERSION_PATCH 0

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

/* Short fixed description of a status code ("invalid argument", ...). */
const char *moeplace_strerror(int status);

/* The detailed reason for the last error raised in the calling thread, for
 * example "trace.csv:12: expected 16 expert counts, found 15". Valid until the
 * next failing moeplace call in this thread; "" when there was none. */
const char *moeplace_last_error(void);

/* Version of the library actually linked, as "MAJOR.MINOR.PATCH". */
const char *moeplace_version(void);

#ifdef __cplusplus
}
#endif

#endif /* MOEPLACE_BASE_H */
