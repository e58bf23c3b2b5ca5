#include "common/json_file.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/atomic_file.h"
#include "common/error.h"

int mp_json_write_file(const json_t *root, const char *path) {
  mp_atomic_file f;
  int rc = mp_atomic_open(&f, path);
  if (rc) return rc;
  /* JSON_REAL_PRECISION(17) keeps doubles round-trippable. */
  errno = 0;
  if (json_dumpfd(root, f.fd, JSON_INDENT(2) | JSON_REAL_PRECISION(17)) != 0 ||
      write(f.fd, "\n", 1) != 1) {
    int err = errno;
    mp_atomic_abort(&f, 0);
    return mp_fail(MOEPLACE_ERR_IO, "%s: write failed: %s", path,
                   err ? strerror(err) : "cannot encode JSON");
  }
  return mp_atomic_commit(&f, 0);
}

int mp_json_read_file(const char *path, json_t **out) {
  json_error_t err;
  *out = NULL;
  FILE *in = stdin;
  if (strcmp(path, "-") != 0) {
    /* Open first: a file that cannot be read is an I/O failure naming the
     * file, not a "-1:-1:" parse error. */
    if (!(in = fopen(path, "rb")))
      return mp_fail(MOEPLACE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(in), &st) == 0 && S_ISDIR(st.st_mode)) {
      fclose(in);
      return mp_fail(MOEPLACE_ERR_IO, "%s: cannot read: %s", path, strerror(EISDIR));
    }
  }
  *out = json_loadf(in, 0, &err);
  int read_error = ferror(in);
  int saved = errno;
  if (in != stdin) fclose(in);
  if (!*out && read_error)
    return mp_fail(MOEPLACE_ERR_IO, "%s: cannot read: %s", path, strerror(saved));
  if (!*out)
    return mp_fail(MOEPLACE_ERR_FORMAT, "%s:%d:%d: invalid JSON: %s", path, err.line, err.column,
                   err.text);
  return MOEPLACE_OK;
}
