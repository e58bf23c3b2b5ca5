/* Writing a file so that readers see either the old file or the complete
 * new one, never a half-written one: data goes to a temporary file in the
 * same directory, which is fsync'ed and renamed over the target on commit. */
#ifndef MOEPLACE_COMMON_ATOMIC_FILE_H
#define MOEPLACE_COMMON_ATOMIC_FILE_H

#include <stdio.h>

typedef struct mp_atomic_file {
  char *path;     /* final name; NULL when writing to stdout ("-") */
  char *tmp_path; /* temporary name while writing */
  int fd;         /* open descriptor of the temporary file (or stdout) */
} mp_atomic_file;

/* Creates the temporary file for `path` ("-" means stdout). */
int mp_atomic_open(mp_atomic_file *f, const char *path);
/* fsyncs, closes and renames into place. The descriptor must be closed by
 * the caller first when it wrapped it in another stream (pass closed=1). */
int mp_atomic_commit(mp_atomic_file *f, int closed);
/* Removes the temporary file. Safe after a failed open or commit. */
void mp_atomic_abort(mp_atomic_file *f, int closed);

#endif
