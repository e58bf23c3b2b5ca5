#include "common/line_reader.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"

enum { CHUNK_BYTES = 1 << 16 };

static int init_buffers(mp_line_reader *r, const char *name, size_t max_line) {
  r->name = name;
  r->max_line = max_line;
  r->chunk = malloc(CHUNK_BYTES);
  r->line_cap = 4096;
  r->line = malloc(r->line_cap);
  if (!r->chunk || !r->line) {
    mp_line_reader_close(r);
    return mp_fail(MOEPLACE_ERR_NOMEM, "%s: out of memory", name);
  }
  return MOEPLACE_OK;
}

int mp_line_reader_open_file(mp_line_reader *r, const char *path, const char *name,
                             size_t max_line) {
  memset(r, 0, sizeof *r);
  if (strcmp(path, "-") == 0) {
    int fd = dup(STDIN_FILENO);
    r->gz = fd >= 0 ? gzdopen(fd, "rb") : NULL;
    if (!r->gz && fd >= 0) close(fd);
  } else {
    r->gz = gzopen(path, "rb"); /* zlib reads uncompressed files transparently */
  }
  if (!r->gz)
    return mp_fail(MOEPLACE_ERR_IO, "%s: cannot open: %s", name,
                   errno ? strerror(errno) : "out of memory");
  gzbuffer(r->gz, CHUNK_BYTES);
  return init_buffers(r, name, max_line);
}

int mp_line_reader_open_memory(mp_line_reader *r, const void *data, size_t size,
                               const char *name, size_t max_line) {
  memset(r, 0, sizeof *r);
  r->mem = data;
  r->mem_size = size;
  return init_buffers(r, name, max_line);
}

void mp_line_reader_close(mp_line_reader *r) {
  if (r->gz) gzclose(r->gz);
  free(r->chunk);
  free(r->line);
  memset(r, 0, sizeof *r);
}

/* Refills the chunk buffer. Returns bytes available, 0 at end, <0 on error. */
static int refill(mp_line_reader *r) {
  r->chunk_pos = 0;
  r->chunk_len = 0;
  if (r->at_eof) return 0;
  if (r->gz) {
    int n = gzread(r->gz, r->chunk, CHUNK_BYTES);
    if (n < 0) {
      int zerr;
      const char *msg = gzerror(r->gz, &zerr);
      return mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: cannot read: %s", r->name, r->lineno + 1,
                     zerr == Z_ERRNO ? strerror(errno) : msg);
    }
    if (n == 0) {
      /* gzread returns 0 both at a clean end and for a truncated gzip stream. */
      int zerr;
      const char *msg = gzerror(r->gz, &zerr);
      if (zerr != Z_OK && zerr != Z_BUF_ERROR)
        return mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: cannot read: %s", r->name, r->lineno + 1,
                       msg);
      if (zerr == Z_BUF_ERROR)
        return mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: compressed data is truncated", r->name,
                       r->lineno + 1);
      r->at_eof = 1;
    }
    r->chunk_len = (size_t)n;
  } else {
    size_t n = r->mem_size < CHUNK_BYTES ? r->mem_size : CHUNK_BYTES;
    memcpy(r->chunk, r->mem, n);
    r->mem += n;
    r->mem_size -= n;
    if (n == 0) r->at_eof = 1;
    r->chunk_len = n;
  }
  return (int)r->chunk_len;
}

static int append(mp_line_reader *r, const unsigned char *src, size_t n) {
  if (memchr(src, '\0', n))
    return mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: binary data (NUL byte) in a text trace", r->name,
                   r->lineno);
  if (r->line_len + n > r->max_line)
    return mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: line longer than %zu bytes", r->name, r->lineno,
                   r->max_line);
  if (r->line_len + n + 1 > r->line_cap) {
    size_t cap = r->line_cap;
    while (cap < r->line_len + n + 1) cap *= 2;
    char *grown = realloc(r->line, cap);
    if (!grown) return mp_fail(MOEPLACE_ERR_NOMEM, "%s: out of memory", r->name);
    r->line = grown;
    r->line_cap = cap;
  }
  memcpy(r->line + r->line_len, src, n);
  r->line_len += n;
  return MOEPLACE_OK;
}

int mp_line_reader_next(mp_line_reader *r) {
  r->line_len = 0;
  r->lineno++;
  int got_any = 0;
  for (;;) {
    if (r->chunk_pos == r->chunk_len) {
      int n = refill(r);
      if (n < 0) return n;
      if (n == 0) break;
    }
    const unsigned char *start = r->chunk + r->chunk_pos;
    size_t avail = r->chunk_len - r->chunk_pos;
    const unsigned char *nl = memchr(start, '\n', avail);
    size_t take = nl ? (size_t)(nl - start) : avail;
    int rc = append(r, start, take);
    if (rc) return rc;
    got_any = 1;
    r->chunk_pos += take + (nl ? 1 : 0);
    if (nl) goto done;
  }
  if (!got_any) {
    r->lineno--;
    return 0;
  }
done:
  if (r->line_len > 0 && r->line[r->line_len - 1] == '\r') r->line_len--;
  r->line[r->line_len] = '\0';
  return 1;
}
