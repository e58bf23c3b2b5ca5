#include "common/json_file.h"

#include <string.h>
#include <unistd.h>

#include "common/atomic_file.h"
#include "common/error.h"

int mp_json_write_file(const json_t *root, const char *path) {
  mp_atomic_file f;
  int rc = mp_atomic_open(&f, path);
  if (rc) return rc;
  /* JSON_REAL_PRECISION(17) keeps doubles round-trippable. */
  if (json_dumpfd(root, f.fd, JSON_INDENT(2) | JSON_REAL_PRECISION(17)) != 0 ||
      write(f.fd, "\n", 1) != 1) {
    mp_atomic_abort(&f, 0);
    return mp_fail(MOEPLACE_ERR_IO, "%s: cannot write JSON", path);
  }
  return mp_atomic_commit(&f, 0);
}

int mp_json_read_file(const char *path, json_t **out) {
  json_error_t err;
  *out = strcmp(path, "-") == 0 ? json_loadf(stdin, 0, &err) : json_load_file(path, 0, &err);
  if (!*out)
    return mp_fail(MOEPLACE_ERR_FORMAT, "%s:%d:%d: invalid JSON: %s", path, err.line, err.column,
                   err.text);
  return MOEPLACE_OK;
}
