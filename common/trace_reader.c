/* Streaming reader for the wide-CSV expert-load trace (docs/trace-format.md).
 *
 * The reader holds one parsed row of look-ahead: a step ends when a row of a
 * later step arrives, and that row is kept for the next call. The first step
 * is read at open time because it defines the number of layers. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <moeplace.h>

#include "common/error.h"
#include "common/input_name.h"
#include "common/line_reader.h"
#include "common/trace_window.h"

typedef struct parsed_row {
  int64_t step;
  int layer;
  long line;
  uint64_t *counts; /* [experts] */
} parsed_row;

struct moeplace_trace {
  char *name;
  mp_line_reader in;
  int layers, experts;

  char **meta_keys, **meta_values;
  size_t n_meta, meta_cap;

  parsed_row ahead; /* look-ahead row (valid when has_ahead) */
  int has_ahead;

  uint64_t *first_counts; /* [layers][experts]: the first step, read at open */
  int64_t first_step;
  int first_pending;

  long *layer_line; /* [layers]: line where each layer of the current step was seen, 0 if not */
  moeplace_trace_progress progress;

  int sticky_status; /* first error; repeated on every later call */
  char *sticky_message;
};

/* ---- Small parsers ---------------------------------------------------- */

/* Parses a non-negative decimal integer that fits in uint64. Returns 0 and
 * the value, or -1 (not a number) / -2 (negative) / -3 (overflow). */
static int parse_u64(const char *s, size_t n, uint64_t *out) {
  if (n == 0) return -1;
  if (s[0] == '-') return n > 1 ? -2 : -1;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned d = (unsigned)(s[i] - '0');
    if (d > 9) return -1;
    if (v > (UINT64_MAX - d) / 10) return -3;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

static int fail_at(moeplace_trace *t, long line, const char *fmt, const char *field, size_t n) {
  /* Show at most 40 bytes of the offending text, with anything unprintable
   * escaped so that binary garbage cannot mangle the terminal. */
  char shown[40 * 4 + 4];
  size_t k = 0;
  for (size_t i = 0; i < n && i < 40; i++) {
    unsigned char c = (unsigned char)field[i];
    if (c >= 0x20 && c < 0x7f && c != '\\') shown[k++] = (char)c;
    else k += (size_t)snprintf(shown + k, sizeof shown - k, "\\x%02x", c);
  }
  strcpy(shown + k, n > 40 ? "..." : "");
  return mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: %s '%s'", t->name, line, fmt, shown);
}

static int number_error(moeplace_trace *t, long line, int why, const char *what, const char *s,
                        size_t n) {
  char msg[96];
  const char *reason = why == -2 ? "is negative" : why == -3 ? "overflows 64 bits" :
                       "is not a non-negative integer";
  snprintf(msg, sizeof msg, "%s %s:", what, reason);
  return fail_at(t, line, msg, s, n);
}

/* ---- Metadata --------------------------------------------------------- */

/* "# key: value" with key made of letters, digits, '_', '-', '.'. */
static int maybe_metadata(moeplace_trace *t, const char *line) {
  const char *p = line + 1;
  while (*p == ' ' || *p == '\t') p++;
  const char *key = p;
  while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
         *p == '_' || *p == '-' || *p == '.')
    p++;
  if (p == key || *p != ':') return MOEPLACE_OK; /* a plain comment */
  size_t key_len = (size_t)(p - key);
  p++;
  while (*p == ' ' || *p == '\t') p++;
  if (t->n_meta == t->meta_cap) {
    size_t cap = t->meta_cap ? 2 * t->meta_cap : 8;
    char **k = realloc(t->meta_keys, cap * sizeof *k);
    if (k) t->meta_keys = k;
    char **v = realloc(t->meta_values, cap * sizeof *v);
    if (v) t->meta_values = v;
    if (!k || !v) return mp_fail(MOEPLACE_ERR_NOMEM, "%s: out of memory", t->name);
    t->meta_cap = cap;
  }
  char *k = strndup(key, key_len), *v = strdup(p);
  if (!k || !v) {
    free(k);
    free(v);
    return mp_fail(MOEPLACE_ERR_NOMEM, "%s: out of memory", t->name);
  }
  t->meta_keys[t->n_meta] = k;
  t->meta_values[t->n_meta] = v;
  t->n_meta++;
  return MOEPLACE_OK;
}

/* Next line that is neither blank nor a comment: 1, 0 at end, or error. */
static int next_content_line(moeplace_trace *t) {
  for (;;) {
    int rc = mp_line_reader_next(&t->in);
    if (rc <= 0) return rc;
    const char *line = t->in.line;
    if (t->in.line_len == 0) continue;
    if (line[0] == '#') {
      rc = maybe_metadata(t, line);
      if (rc) return rc;
      continue;
    }
    return 1;
  }
}

/* ---- Header and rows -------------------------------------------------- */

static int parse_header(moeplace_trace *t) {
  int rc = next_content_line(t);
  if (rc < 0) return rc;
  if (rc == 0)
    return mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: empty trace: no header line", t->name,
                   t->in.lineno);
  const char *line = t->in.line;
  long lineno = t->in.lineno;
  static const char prefix[] = "step,layer,";
  if (strncmp(line, prefix, sizeof prefix - 1) != 0)
    return fail_at(t, lineno, "header must start with 'step,layer,e0', found", line,
                   strlen(line));
  const char *p = line + sizeof prefix - 1;
  int e = 0;
  for (;;) {
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    char expected[24];
    snprintf(expected, sizeof expected, "e%d", e);
    if (n != strlen(expected) || memcmp(p, expected, n) != 0) {
      char msg[80];
      snprintf(msg, sizeof msg, "header column %d should be '%s', found", e + 3, expected);
      return fail_at(t, lineno, msg, p, n);
    }
    if (++e > MOEPLACE_TRACE_MAX_EXPERTS)
      return mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: more than %d experts", t->name, lineno,
                     MOEPLACE_TRACE_MAX_EXPERTS);
    if (!end) break;
    p = end + 1;
  }
  t->experts = e;
  return MOEPLACE_OK;
}

/* Reads the next data row into *row: 1, 0 at end, or error. */
static int read_row(moeplace_trace *t, parsed_row *row) {
  int rc = next_content_line(t);
  if (rc <= 0) return rc;
  const char *line = t->in.line;
  long lineno = t->in.lineno;
  size_t fields = 1;
  for (const char *c = line; (c = strchr(c, ',')) != NULL; c++) fields++;
  if (fields != (size_t)t->experts + 2) {
    if (fields < 2)
      return fail_at(t, lineno, "expected 'step,layer,counts...', found", line, strlen(line));
    return mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: expected %d expert counts, found %zu", t->name,
                   lineno, t->experts, fields - 2);
  }
  const char *p = line;
  for (size_t f = 0; f < fields; f++) {
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    uint64_t v = 0;
    int why = parse_u64(p, n, &v);
    if (f == 0) {
      if (why == 0 && v > (uint64_t)INT64_MAX) why = -3;
      if (why) return number_error(t, lineno, why, "step", p, n);
      row->step = (int64_t)v;
    } else if (f == 1) {
      if (why == 0 && v >= MOEPLACE_TRACE_MAX_LAYERS) {
        return mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: layer %" PRIu64 " exceeds the limit of %d layers",
                       t->name, lineno, v, MOEPLACE_TRACE_MAX_LAYERS);
      }
      if (why) return number_error(t, lineno, why, "layer", p, n);
      row->layer = (int)v;
    } else {
      if (why) {
        char what[40];
        snprintf(what, sizeof what, "count for e%zu", f - 2);
        return number_error(t, lineno, why, what, p, n);
      }
      row->counts[f - 2] = v;
    }
    p = end ? end + 1 : p + n;
  }
  row->line = lineno;
  return 1;
}

static int fetch_row(moeplace_trace *t, parsed_row *row) {
  if (t->has_ahead) {
    t->has_ahead = 0;
    row->step = t->ahead.step;
    row->layer = t->ahead.layer;
    row->line = t->ahead.line;
    if (row->counts != t->ahead.counts)
      memcpy(row->counts, t->ahead.counts, (size_t)t->experts * sizeof *row->counts);
    return 1;
  }
  return read_row(t, row);
}

static void note_step(moeplace_trace *t, int64_t step, long line) {
  moeplace_trace_progress *p = &t->progress;
  if (p->steps_read == 0) {
    p->first_step = step;
  } else if (p->steps_read == 1) {
    p->stride = step - p->last_step;
  } else if (step - p->last_step != p->stride) {
    if (p->irregular++ == 0) {
      p->first_irregular_line = line;
      p->irregular_from = p->last_step;
      p->irregular_to = step;
    }
  }
  p->last_step = step;
  p->steps_read++;
}

/* The first step defines the number of layers: its rows must carry the
 * distinct layers 0..L-1. Rows are collected until the step changes. */
static int read_first_step(moeplace_trace *t) {
  size_t cap = 8, n = 0;
  uint64_t *rows = malloc(cap * (size_t)t->experts * sizeof *rows);
  int *layer_of = malloc(cap * sizeof *layer_of);
  long *line_of = malloc(cap * sizeof *line_of);
  parsed_row row = {.counts = malloc((size_t)t->experts * sizeof(uint64_t))};
  int rc = MOEPLACE_OK;
  if (!rows || !layer_of || !line_of || !row.counts) {
    rc = mp_fail(MOEPLACE_ERR_NOMEM, "%s: out of memory", t->name);
    goto out;
  }
  for (;;) {
    int got = read_row(t, &row);
    if (got < 0) {
      rc = got;
      goto out;
    }
    if (got == 0) {
      if (n == 0) {
        rc = mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: trace has a header but no data rows", t->name,
                     t->in.lineno);
        goto out;
      }
      break;
    }
    if (n > 0 && row.step != t->first_step) {
      if (row.step < t->first_step) {
        rc = mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: step %" PRId64 " goes backwards after step %" PRId64,
                     t->name, row.line, row.step, t->first_step);
        goto out;
      }
      t->ahead.step = row.step;
      t->ahead.layer = row.layer;
      t->ahead.line = row.line;
      memcpy(t->ahead.counts, row.counts, (size_t)t->experts * sizeof *row.counts);
      t->has_ahead = 1;
      break;
    }
    if (n == 0) t->first_step = row.step;
    for (size_t i = 0; i < n; i++) {
      if (layer_of[i] == row.layer) {
        rc = mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: layer %d appears twice in step %" PRId64 " (first at line %ld)",
                     t->name, row.line, row.layer, row.step, line_of[i]);
        goto out;
      }
    }
    if (n == cap) {
      cap *= 2;
      uint64_t *r2 = realloc(rows, cap * (size_t)t->experts * sizeof *rows);
      if (r2) rows = r2;
      int *l2 = realloc(layer_of, cap * sizeof *layer_of);
      if (l2) layer_of = l2;
      long *n2 = realloc(line_of, cap * sizeof *line_of);
      if (n2) line_of = n2;
      if (!r2 || !l2 || !n2) {
        rc = mp_fail(MOEPLACE_ERR_NOMEM, "%s: out of memory", t->name);
        goto out;
      }
    }
    memcpy(rows + n * (size_t)t->experts, row.counts, (size_t)t->experts * sizeof *rows);
    layer_of[n] = row.layer;
    line_of[n] = row.line;
    n++;
  }
  t->layers = (int)n;
  for (size_t i = 0; i < n; i++) {
    if (layer_of[i] >= t->layers) {
      rc = mp_fail(MOEPLACE_ERR_FORMAT,
                   "%s:%ld: layer %d out of range: step %" PRId64 " has %d layer rows, so layers must be 0..%d",
                   t->name, line_of[i], layer_of[i], t->first_step, t->layers, t->layers - 1);
      goto out;
    }
  }
  t->first_counts = malloc(n * (size_t)t->experts * sizeof *t->first_counts);
  t->layer_line = calloc(n, sizeof *t->layer_line);
  if (!t->first_counts || !t->layer_line) {
    rc = mp_fail(MOEPLACE_ERR_NOMEM, "%s: out of memory", t->name);
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    memcpy(t->first_counts + (size_t)layer_of[i] * t->experts, rows + i * (size_t)t->experts,
           (size_t)t->experts * sizeof *rows);
    t->layer_line[layer_of[i]] = line_of[i]; /* for mp_trace_step_lines() */
  }
  t->first_pending = 1;
  note_step(t, t->first_step, line_of[0]);
out:
  free(rows);
  free(layer_of);
  free(line_of);
  free(row.counts);
  return rc;
}

/* ---- Public API ------------------------------------------------------- */

static int finish_open(moeplace_trace *t, moeplace_trace **out) {
  int rc = parse_header(t);
  if (rc == MOEPLACE_OK) {
    t->ahead.counts = malloc((size_t)t->experts * sizeof(uint64_t));
    rc = t->ahead.counts ? read_first_step(t) : mp_fail(MOEPLACE_ERR_NOMEM, "out of memory");
  }
  if (rc) {
    moeplace_trace_close(t);
    return rc;
  }
  *out = t;
  return MOEPLACE_OK;
}

int moeplace_trace_open(moeplace_trace **out, const char *path) {
  if (!out || !path) return mp_fail(MOEPLACE_ERR_ARG, "moeplace_trace_open: NULL argument");
  *out = NULL;
  moeplace_trace *t = calloc(1, sizeof *t);
  if (!t || !(t->name = strdup(mp_input_name(path)))) {
    free(t);
    return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory");
  }
  int rc = mp_line_reader_open_file(&t->in, path, t->name, MOEPLACE_TRACE_MAX_LINE);
  if (rc) {
    moeplace_trace_close(t);
    return rc;
  }
  return finish_open(t, out);
}

int moeplace_trace_open_memory(moeplace_trace **out, const void *data, size_t size,
                               const char *name) {
  if (!out || (!data && size)) return mp_fail(MOEPLACE_ERR_ARG, "moeplace_trace_open_memory: NULL argument");
  *out = NULL;
  moeplace_trace *t = calloc(1, sizeof *t);
  if (!t || !(t->name = strdup(name ? name : "<memory>"))) {
    free(t);
    return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory");
  }
  int rc = mp_line_reader_open_memory(&t->in, data, size, t->name, MOEPLACE_TRACE_MAX_LINE);
  if (rc) {
    moeplace_trace_close(t);
    return rc;
  }
  return finish_open(t, out);
}

void moeplace_trace_close(moeplace_trace *t) {
  if (!t) return;
  mp_line_reader_close(&t->in);
  for (size_t i = 0; i < t->n_meta; i++) {
    free(t->meta_keys[i]);
    free(t->meta_values[i]);
  }
  free(t->meta_keys);
  free(t->meta_values);
  free(t->ahead.counts);
  free(t->first_counts);
  free(t->layer_line);
  free(t->sticky_message);
  free(t->name);
  free(t);
}

int moeplace_trace_layers(const moeplace_trace *t) { return t ? t->layers : 0; }
int moeplace_trace_experts(const moeplace_trace *t) { return t ? t->experts : 0; }
const char *moeplace_trace_name(const moeplace_trace *t) { return t ? t->name : ""; }
size_t moeplace_trace_meta_count(const moeplace_trace *t) { return t ? t->n_meta : 0; }
const long *mp_trace_step_lines(const moeplace_trace *t) { return t ? t->layer_line : NULL; }
moeplace_trace_progress moeplace_trace_get_progress(const moeplace_trace *t) {
  moeplace_trace_progress none = {0};
  return t ? t->progress : none;
}

moeplace_trace_meta moeplace_trace_meta_get(const moeplace_trace *t, size_t i) {
  moeplace_trace_meta m = {NULL, NULL};
  if (t && i < t->n_meta) {
    m.key = t->meta_keys[i];
    m.value = t->meta_values[i];
  }
  return m;
}

static int make_sticky(moeplace_trace *t, int rc) {
  t->sticky_status = rc;
  free(t->sticky_message);
  t->sticky_message = strdup(moeplace_last_error());
  return rc;
}

static int read_step_rows(moeplace_trace *t, int64_t *step, uint64_t *counts) {
  const size_t E = (size_t)t->experts;
  /* A row's layer is known only once it is parsed, so rows are parsed into
   * the look-ahead buffer and copied to their place in counts. */
  parsed_row row = {.counts = t->ahead.counts};
  int got = fetch_row(t, &row);
  if (got <= 0) return got;
  const int64_t cur = row.step;
  if (cur <= t->progress.last_step)
    return mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: step %" PRId64 " goes backwards after step %" PRId64,
                   t->name, row.line, cur, t->progress.last_step);
  memset(t->layer_line, 0, (size_t)t->layers * sizeof *t->layer_line);
  int seen = 0;
  long last_line = row.line;
  for (;;) {
    if (row.layer >= t->layers)
      return mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: layer %d out of range: the trace has %d layers (0..%d)",
                     t->name, row.line, row.layer, t->layers, t->layers - 1);
    if (t->layer_line[row.layer])
      return mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: layer %d appears twice in step %" PRId64 " (first at line %ld)",
                     t->name, row.line, row.layer, cur, t->layer_line[row.layer]);
    t->layer_line[row.layer] = row.line;
    memcpy(counts + (size_t)row.layer * E, row.counts, E * sizeof *counts);
    seen++;
    last_line = row.line;
    got = read_row(t, &row);
    if (got < 0) return got;
    if (got == 0) break;
    if (row.step != cur) {
      if (row.step < cur)
        return mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: step %" PRId64 " goes backwards after step %" PRId64,
                       t->name, row.line, row.step, cur);
      t->ahead.step = row.step;
      t->ahead.layer = row.layer;
      t->ahead.line = row.line;
      t->has_ahead = 1; /* counts are already in t->ahead.counts */
      break;
    }
  }
  if (seen != t->layers) {
    int missing = 0;
    while (t->layer_line[missing]) missing++;
    return mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: step %" PRId64 " has %d of %d layers (layer %d missing)",
                   t->name, last_line, cur, seen, t->layers, missing);
  }
  *step = cur;
  note_step(t, cur, t->layer_line[0]);
  return 1;
}

int moeplace_trace_read_step(moeplace_trace *t, int64_t *step, uint64_t *counts) {
  if (!t || !step || !counts) return mp_fail(MOEPLACE_ERR_ARG, "moeplace_trace_read_step: NULL argument");
  if (t->sticky_status) return mp_fail(t->sticky_status, "%s", t->sticky_message ? t->sticky_message : "");
  if (t->first_pending) {
    t->first_pending = 0;
    *step = t->first_step;
    memcpy(counts, t->first_counts, (size_t)t->layers * t->experts * sizeof *counts);
    return 1;
  }
  int rc = read_step_rows(t, step, counts);
  return rc < 0 ? make_sticky(t, rc) : rc;
}
