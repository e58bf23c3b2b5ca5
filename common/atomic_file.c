#include "common/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"

int mp_atomic_open(mp_atomic_file *f, const char *path) {
  memset(f, 0, sizeof *f);
  f->fd = -1;
  if (!path || !*path) return mp_fail(MOEPLACE_ERR_ARG, "output path is empty");
  if (strcmp(path, "-") == 0) {
    f->fd = STDOUT_FILENO;
    return MOEPLACE_OK;
  }
  size_t n = strlen(path);
  f->path = strdup(path);
  f->tmp_path = malloc(n + sizeof ".tmp.XXXXXX");
  if (!f->path || !f->tmp_path) {
    mp_atomic_abort(f, 1);
    return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory opening %s", path);
  }
  memcpy(f->tmp_path, path, n);
  memcpy(f->tmp_path + n, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
  f->fd = mkstemp(f->tmp_path);
  if (f->fd < 0) {
    int err = errno;
    free(f->tmp_path);
    f->tmp_path = NULL; /* nothing to remove */
    mp_atomic_abort(f, 1);
    return mp_fail(MOEPLACE_ERR_IO, "%s: cannot create output file: %s", path, strerror(err));
  }
  /* mkstemp creates 0600; a result file should get the usual umask'ed mode. */
  mode_t mask = umask(0);
  umask(mask);
  fchmod(f->fd, 0666 & ~mask);
  return MOEPLACE_OK;
}

int mp_atomic_commit(mp_atomic_file *f, int closed) {
  if (!f->path) return MOEPLACE_OK; /* stdout */
  if (!closed) {
    if (fsync(f->fd) != 0 || close(f->fd) != 0) {
      int err = errno;
      f->fd = -1;
      mp_atomic_abort(f, 1);
      return mp_fail(MOEPLACE_ERR_IO, "%s: write failed: %s", f->path ? f->path : "-", strerror(err));
    }
    f->fd = -1;
  }
  if (rename(f->tmp_path, f->path) != 0) {
    int err = errno;
    char *path = f->path;
    f->path = NULL;
    mp_atomic_abort(f, 1);
    int rc = mp_fail(MOEPLACE_ERR_IO, "%s: cannot rename temporary file into place: %s", path,
                     strerror(err));
    free(path);
    return rc;
  }
  free(f->path);
  free(f->tmp_path);
  f->path = f->tmp_path = NULL;
  return MOEPLACE_OK;
}

void mp_atomic_abort(mp_atomic_file *f, int closed) {
  if (!closed && f->fd >= 0 && f->fd != STDOUT_FILENO) close(f->fd);
  f->fd = -1;
  if (f->tmp_path) unlink(f->tmp_path);
  free(f->tmp_path);
  free(f->path);
  f->path = f->tmp_path = NULL;
}
