/* Writer for the wide-CSV trace format, plain or gzip, committed atomically. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <moeplace.h>

#include "common/atomic_file.h"
#include "common/error.h"

struct moeplace_trace_writer {
  mp_atomic_file file;
  gzFile gz; /* writes through a dup of file.fd, so file.fd can be fsync'ed after gzclose */
  int layers, experts;
  int64_t last_step;
  int wrote_step;
  char *name;
};

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Names the file and the reason: errno when zlib reports a system error. */
static int write_failed(moeplace_trace_writer *w) {
  int err = errno, zerr = Z_OK;
  const char *msg = w->gz ? gzerror(w->gz, &zerr) : NULL;
  if (zerr != Z_OK && zerr != Z_ERRNO && msg && *msg)
    return mp_fail(MOEPLACE_ERR_IO, "%s: write failed: %s", w->name, msg);
  return mp_fail(MOEPLACE_ERR_IO, "%s: write failed: %s", w->name,
                 err ? strerror(err) : "unknown error");
}

int moeplace_trace_writer_open(moeplace_trace_writer **out, const char *path, int layers,
                               int experts, const moeplace_trace_meta *meta, size_t n_meta) {
  if (!out || !path || (n_meta && !meta))
    return mp_fail(MOEPLACE_ERR_ARG, "moeplace_trace_writer_open: NULL argument");
  *out = NULL;
  if (layers <= 0 || layers > MOEPLACE_TRACE_MAX_LAYERS || experts <= 0 ||
      experts > MOEPLACE_TRACE_MAX_EXPERTS)
    return mp_fail(MOEPLACE_ERR_ARG, "trace shape %d layers x %d experts is out of range", layers,
                   experts);
  moeplace_trace_writer *w = calloc(1, sizeof *w);
  if (!w || !(w->name = strdup(path))) {
    free(w);
    return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory");
  }
  w->layers = layers;
  w->experts = experts;
  int rc = mp_atomic_open(&w->file, path);
  if (rc) {
    free(w->name);
    free(w);
    return rc;
  }
  int fd = dup(w->file.fd);
  w->gz = fd >= 0 ? gzdopen(fd, ends_with(path, ".gz") ? "wb6" : "wT") : NULL;
  if (!w->gz) {
    if (fd >= 0) close(fd);
    moeplace_trace_writer_abort(w);
    return mp_fail(MOEPLACE_ERR_IO, "%s: cannot open for writing", path);
  }
  for (size_t i = 0; i < n_meta; i++) {
    if (!meta[i].key || !meta[i].value || strpbrk(meta[i].key, ":\n\r") || strchr(meta[i].value, '\n')) {
      moeplace_trace_writer_abort(w);
      return mp_fail(MOEPLACE_ERR_ARG, "metadata entry %zu is not a valid 'key: value' pair", i);
    }
    if (gzprintf(w->gz, "# %s: %s\n", meta[i].key, meta[i].value) <= 0) {
      rc = write_failed(w);
      moeplace_trace_writer_abort(w);
      return rc;
    }
  }
  int ok = gzputs(w->gz, "step,layer") >= 0;
  for (int e = 0; ok && e < experts; e++) ok = gzprintf(w->gz, ",e%d", e) > 0;
  ok = ok && gzputc(w->gz, '\n') >= 0;
  if (!ok) {
    rc = write_failed(w);
    moeplace_trace_writer_abort(w);
    return rc;
  }
  *out = w;
  return MOEPLACE_OK;
}

int moeplace_trace_writer_write_step(moeplace_trace_writer *w, int64_t step,
                                     const uint64_t *counts) {
  if (!w || !counts) return mp_fail(MOEPLACE_ERR_ARG, "moeplace_trace_writer_write_step: NULL argument");
  if (step < 0 || (w->wrote_step && step <= w->last_step))
    return mp_fail(MOEPLACE_ERR_ARG, "%s: step %" PRId64 " must be >= 0 and after step %" PRId64,
                   w->name, step, w->last_step);
  /* Format each row into one buffer: one gzwrite per row instead of E+2. */
  char buf[32];
  for (int l = 0; l < w->layers; l++) {
    int n = snprintf(buf, sizeof buf, "%" PRId64 ",%d", step, l);
    if (gzwrite(w->gz, buf, (unsigned)n) != n) return write_failed(w);
    const uint64_t *row = counts + (size_t)l * w->experts;
    for (int e = 0; e < w->experts; e++) {
      n = snprintf(buf, sizeof buf, ",%" PRIu64, row[e]);
      if (gzwrite(w->gz, buf, (unsigned)n) != n) return write_failed(w);
    }
    if (gzputc(w->gz, '\n') < 0) return write_failed(w);
  }
  w->last_step = step;
  w->wrote_step = 1;
  return MOEPLACE_OK;
}

int moeplace_trace_writer_commit(moeplace_trace_writer *w) {
  if (!w) return mp_fail(MOEPLACE_ERR_ARG, "moeplace_trace_writer_commit: NULL writer");
  errno = 0;
  int zrc = gzclose(w->gz);
  w->gz = NULL;
  int rc;
  if (zrc != Z_OK) {
    rc = write_failed(w);
    mp_atomic_abort(&w->file, 0);
  } else if (w->file.path) {
    rc = mp_atomic_commit(&w->file, 0);
  } else {
    rc = MOEPLACE_OK; /* stdout: gzclose flushed our dup; leave stdout itself open */
  }
  free(w->name);
  free(w);
  return rc;
}

void moeplace_trace_writer_abort(moeplace_trace_writer *w) {
  if (!w) return;
  if (w->gz) gzclose(w->gz);
  if (w->file.path) mp_atomic_abort(&w->file, 0);
  free(w->name);
  free(w);
}
