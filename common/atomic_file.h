/* Writing an output file so that it is never destroyed or left half-written
 * (docs/RELIABILITY.md):
 *  - absent or a regular file: data goes to a temporary file beside it,
 *    ".NAME.moeplace-tmp.PID.XXXXXX", fsync'ed and renamed over it on commit;
 *  - a symbolic link to a regular file: the same, beside the link's resolved
 *    target (the link stays a link); a link to nothing is refused;
 *  - a FIFO or a character device (/dev/null, a terminal): written in place,
 *    never replaced, never truncated;
 *  - a directory, block device or socket: refused with "FILE: ..." ;
 *  - "-": standard output.
 * Temporary files are registered while open: mp_atomic_install_signal_cleanup
 * makes SIGINT/SIGTERM/SIGHUP/SIGPIPE/SIGXFSZ remove them before the process
 * dies, and opening an output removes the stale temporary files of the same
 * target left by processes that no longer exist. */
#ifndef MOEPLACE_COMMON_ATOMIC_FILE_H
#define MOEPLACE_COMMON_ATOMIC_FILE_H

#include <stdio.h>

typedef struct mp_atomic_file {
  char *path;     /* name as given (for messages); NULL when writing to stdout ("-") */
  char *tmp_path; /* temporary name while writing; NULL when writing in place */
  int fd;         /* open descriptor of the temporary file, the in-place target or stdout */
  int in_place;   /* path is a FIFO or character device written directly */
  char *target;   /* what the temporary file is renamed to: path, or a symlink's target */
} mp_atomic_file;

/* Exported under moeplace_ names because libmoeplace-mpi (the runtime's
 * checkpoints) writes through them; not part of the public API. */
#define mp_atomic_open moeplace_private_atomic_open
#define mp_atomic_commit moeplace_private_atomic_commit
#define mp_atomic_abort moeplace_private_atomic_abort

/* Opens the output for `path` ("-" means stdout). Errors name the file. */
int mp_atomic_open(mp_atomic_file *f, const char *path);
/* fsyncs, closes and renames into place (closes only, in place). The
 * descriptor must be closed by the caller first when it wrapped it in
 * another stream (pass closed=1). */
int mp_atomic_commit(mp_atomic_file *f, int closed);
/* Removes the temporary file. Safe after a failed open or commit. */
void mp_atomic_abort(mp_atomic_file *f, int closed);

/* Installs, for each of SIGINT, SIGTERM, SIGHUP, SIGPIPE and SIGXFSZ whose
 * disposition is the default, a handler that unlinks the registered
 * temporary files and re-raises the signal with the default action. For
 * programs, not libraries: the tools call it at start-up (tools/cli.c). */
void mp_atomic_install_signal_cleanup(void);

#endif
