#include "common/json_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/input_name.h"

/* A 64 KiB buffer in front of the descriptor: jansson hands its dump
 * callback one token at a time, and json_dumpfd made a write() of each
 * (a 49 MB placement took 36 s). */
typedef struct out_buf {
  int fd;
  size_t len;
  char data[1 << 16];
} out_buf;

static int flush_buf(out_buf *b) {
  for (size_t off = 0; off < b->len;) {
    ssize_t w = write(b->fd, b->data + off, b->len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    off += (size_t)w;
  }
  b->len = 0;
  return 0;
}

static int buffered(const char *buffer, size_t size, void *data) {
  out_buf *b = data;
  while (size > 0) {
    if (b->len == sizeof b->data && flush_buf(b)) return -1;
    size_t n = sizeof b->data - b->len < size ? sizeof b->data - b->len : size;
    memcpy(b->data + b->len, buffer, n);
    b->len += n;
    buffer += n;
    size -= n;
  }
  return 0;
}

int mp_json_write_file(const json_t *root, const char *path) {
  mp_atomic_file f;
  int rc = mp_atomic_open(&f, path);
  if (rc) return rc;
  out_buf *b = malloc(sizeof *b);
  if (!b) {
    mp_atomic_abort(&f, 0);
    return mp_fail(MOEPLACE_ERR_NOMEM, "%s: out of memory writing JSON", path);
  }
  b->fd = f.fd;
  b->len = 0;
  /* JSON_REAL_PRECISION(17) keeps doubles round-trippable. */
  errno = 0;
  int failed = json_dump_callback(root, buffered, b, JSON_INDENT(2) | JSON_REAL_PRECISION(17)) != 0 ||
               buffered("\n", 1, b) != 0 || flush_buf(b) != 0;
  free(b);
  if (failed) {
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
  const int from_stdin = strcmp(path, "-") == 0;
  path = mp_input_name(path);
  if (!from_stdin) {
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
  /* RFC 8259 lets a parser ignore a UTF-8 byte-order mark; jansson refuses
   * one, so it is skipped here. A first byte 0xEF is invalid JSON anyway. */
  int c = getc(in);
  if (c == 0xef && (getc(in) != 0xbb || getc(in) != 0xbf)) {
    if (in != stdin) fclose(in);
    return mp_fail(MOEPLACE_ERR_FORMAT, "%s:1:1: invalid JSON: byte 0xef starts no UTF-8 "
                   "byte-order mark", path);
  }
  if (c != 0xef && c != EOF) ungetc(c, in);
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
