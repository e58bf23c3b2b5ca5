#include "common/line_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
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

/* Reads more raw input into r->in when it is used up: 0, or an I/O error. */
static int fill_input(mp_line_reader *r) {
  if (r->z.avail_in > 0 || r->in_eof) return MOEPLACE_OK;
  ssize_t n;
  do n = read(r->fd, r->in, CHUNK_BYTES);
  while (n < 0 && errno == EINTR);
  if (n < 0) return mp_fail(MOEPLACE_ERR_IO, "%s: cannot read: %s", r->name, strerror(errno));
  if (n == 0) r->in_eof = 1;
  r->z.next_in = r->in;
  r->z.avail_in = (uInt)n;
  r->in_read += n;
  return MOEPLACE_OK;
}

int mp_line_reader_open_file(mp_line_reader *r, const char *path, const char *name,
                             size_t max_line) {
  memset(r, 0, sizeof *r);
  r->fd = strcmp(path, "-") == 0 ? dup(STDIN_FILENO) : open(path, O_RDONLY | O_CLOEXEC);
  if (r->fd < 0) return mp_fail(MOEPLACE_ERR_IO, "%s: cannot open: %s", name, strerror(errno));
  struct stat st;
  if (fstat(r->fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    close(r->fd);
    r->fd = -1;
    return mp_fail(MOEPLACE_ERR_IO, "%s: cannot read: %s", name, strerror(EISDIR));
  }
  int rc = init_buffers(r, name, max_line);
  if (rc) return rc;
  if (!(r->in = malloc(CHUNK_BYTES))) {
    mp_line_reader_close(r);
    return mp_fail(MOEPLACE_ERR_NOMEM, "%s: out of memory", name);
  }
  /* Look at the first two bytes (a pipe may deliver them one at a time). */
  while (r->z.avail_in < 2 && !r->in_eof) {
    ssize_t n;
    do n = read(r->fd, r->in + r->z.avail_in, CHUNK_BYTES - r->z.avail_in);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      rc = mp_fail(MOEPLACE_ERR_IO, "%s: cannot read: %s", name, strerror(errno));
      mp_line_reader_close(r);
      return rc;
    }
    if (n == 0) r->in_eof = 1;
    r->z.avail_in += (uInt)n;
    r->in_read += n;
  }
  r->z.next_in = r->in;
  r->gzip = r->z.avail_in >= 2 && r->in[0] == 0x1f && r->in[1] == 0x8b;
  if (r->gzip) {
    if (inflateInit2(&r->z, 16 + MAX_WBITS) != Z_OK) { /* gzip wrapper only */
      mp_line_reader_close(r);
      return mp_fail(MOEPLACE_ERR_NOMEM, "%s: out of memory", name);
    }
    r->z_ready = 1;
    r->members = 1;
  }
  return MOEPLACE_OK;
}

int mp_line_reader_open_memory(mp_line_reader *r, const void *data, size_t size,
                               const char *name, size_t max_line) {
  memset(r, 0, sizeof *r);
  r->fd = -1;
  r->mem = data;
  r->mem_size = size;
  return init_buffers(r, name, max_line);
}

void mp_line_reader_close(mp_line_reader *r) {
  if (r->z_ready) inflateEnd(&r->z);
  if (r->fd >= 0) close(r->fd);
  free(r->in);
  free(r->chunk);
  free(r->line);
  memset(r, 0, sizeof *r);
  r->fd = -1;
}

/* Decodes gzip members into the chunk buffer until some bytes come out or
 * the input ends after a complete member. */
static int refill_gzip(mp_line_reader *r) {
  for (;;) {
    int rc = fill_input(r);
    if (rc) return rc;
    if (r->z.avail_in == 0 && r->in_eof) {
      if (r->member_done) {
        r->at_eof = 1;
        return 0;
      }
      return mp_fail(MOEPLACE_ERR_FORMAT,
                     "%s:%ld: compressed data is truncated (gzip member %ld ends early at byte %lld)",
                     r->name, r->lineno + 1, r->members, r->in_read);
    }
    if (r->member_done) { /* more bytes: they must be a whole further member */
      inflateReset(&r->z);
      r->member_done = 0;
      r->members++;
    }
    long long at = r->in_read - r->z.avail_in;
    r->z.next_out = r->chunk;
    r->z.avail_out = CHUNK_BYTES;
    int zrc = inflate(&r->z, Z_NO_FLUSH);
    size_t produced = CHUNK_BYTES - r->z.avail_out;
    if (zrc == Z_STREAM_END) {
      r->member_done = 1;
    } else if (zrc == Z_MEM_ERROR) {
      return mp_fail(MOEPLACE_ERR_NOMEM, "%s: out of memory", r->name);
    } else if (zrc != Z_OK && zrc != Z_BUF_ERROR) {
      return mp_fail(MOEPLACE_ERR_FORMAT,
                     "%s:%ld: compressed data is damaged (gzip member %ld, near byte %lld): %s",
                     r->name, r->lineno + 1, r->members, at, r->z.msg ? r->z.msg : "bad data");
    }
    if (produced > 0) {
      r->chunk_len = produced;
      return (int)produced;
    }
  }
}

/* Refills the chunk buffer. Returns bytes available, 0 at end, <0 on error. */
static int refill(mp_line_reader *r) {
  r->chunk_pos = 0;
  r->chunk_len = 0;
  if (r->at_eof) return 0;
  if (r->gzip) return refill_gzip(r);
  if (r->fd >= 0) {
    size_t n;
    if (r->z.avail_in > 0) { /* the bytes read to look for the gzip magic */
      n = r->z.avail_in;
      memcpy(r->chunk, r->z.next_in, n);
      r->z.avail_in = 0;
    } else {
      ssize_t got;
      do got = read(r->fd, r->chunk, CHUNK_BYTES);
      while (got < 0 && errno == EINTR);
      if (got < 0)
        return mp_fail(MOEPLACE_ERR_IO, "%s: cannot read: %s", r->name, strerror(errno));
      n = (size_t)got;
    }
    if (n == 0) r->at_eof = 1;
    r->chunk_len = n;
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
  /* A UTF-8 byte-order mark (some Windows editors and spreadsheets write
   * one first) is not part of the first line: skipped, not refused. */
  if (r->lineno == 1 && r->line_len >= 3 && memcmp(r->line, "\xef\xbb\xbf", 3) == 0) {
    memmove(r->line, r->line + 3, r->line_len - 3);
    r->line_len -= 3;
  }
  if (r->line_len > 0 && r->line[r->line_len - 1] == '\r') r->line_len--;
  r->line[r->line_len] = '\0';
  return 1;
}
