/* moeplace/trace.h: expert-load traces (format: docs/trace-format.md).
 *
 * A trace holds, for every recorded training step and every MoE layer, the
 * number of token assignments the router sent to each logical expert. The
 * reader streams it one step at a time, so memory does not depend on the
 * trace length. Files whose name ends in ".gz" are gzip-compressed; "-" is
 * stdin (compressed or not). Include <moeplace.h>. */
#ifndef MOEPLACE_H
#error Please include <moeplace.h> instead of <moeplace/trace.h>.
#endif

#ifndef MOEPLACE_TRACE_H
#define MOEPLACE_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include <moeplace/base.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Limits the reader enforces; anything beyond them is a format error. */
#define MOEPLACE_TRACE_MAX_LINE 1048576 /* bytes in one line */
#define MOEPLACE_TRACE_MAX_EXPERTS 65536
#define MOEPLACE_TRACE_MAX_LAYERS 4096

/* One "# key: value" metadata comment. Strings owned by the trace (or,
 * for the writer, by the caller). */
typedef struct moeplace_trace_meta {
  const char *key;
  const char *value;
} moeplace_trace_meta;

/* ---- Reading ---------------------------------------------------------- */

typedef struct moeplace_trace moeplace_trace;

/* Opens a trace and reads its header and first step, so that the number of
 * layers and experts is known on return. path "-" reads stdin.
 * Returns MOEPLACE_OK and a reader in *out that the caller closes with
 * moeplace_trace_close(); MOEPLACE_ERR_IO (cannot open or read: the message
 * names the file), MOEPLACE_ERR_FORMAT ("file:line: reason"),
 * MOEPLACE_ERR_NOMEM or MOEPLACE_ERR_ARG, with *out = NULL. */
int moeplace_trace_open(moeplace_trace **out, const char *path);

/* Same, from a buffer in memory; name is used in error messages (copied).
 * The buffer is not copied: it must outlive the reader. Compressed data is
 * not accepted here. Returns as moeplace_trace_open(). */
int moeplace_trace_open_memory(moeplace_trace **out, const void *data, size_t size,
                               const char *name);

/* Frees the reader (and closes its file). Accepts NULL. */
void moeplace_trace_close(moeplace_trace *trace);

/* Shape of the trace (0 for NULL), and the name it was opened with ("" for
 * NULL; owned by the reader). */
int moeplace_trace_layers(const moeplace_trace *trace);
int moeplace_trace_experts(const moeplace_trace *trace);
const char *moeplace_trace_name(const moeplace_trace *trace);

/* Metadata comments seen so far (all of those before the header, and any
 * later ones read up to the current position). meta_get returns {NULL,
 * NULL} for an index >= the count; its strings belong to the reader. */
size_t moeplace_trace_meta_count(const moeplace_trace *trace);
moeplace_trace_meta moeplace_trace_meta_get(const moeplace_trace *trace, size_t index);

/* Reads the next step. counts has shape [layers][experts].
 * Returns 1 when a step was read, 0 at the end of the trace, or a negative
 * status (MOEPLACE_ERR_FORMAT with "file:line: reason" in
 * moeplace_last_error()). After an error the reader only returns that error. */
int moeplace_trace_read_step(moeplace_trace *trace, int64_t *step, uint64_t *counts);

/* Reads up to `window` (> 0) steps and sums them: totals has shape
 * [layers][experts]; *steps_read tells how many steps went in (less than
 * `window` only for the last, partial window) and *first_step the first one.
 * Returns 1 when at least one step was read, 0 at the end, or an error. */
int moeplace_trace_read_window(moeplace_trace *trace, int window, int64_t *first_step,
                               int *steps_read, uint64_t *totals);

/* Where the reader stands. Steps may skip (a trace sampled every k steps is
 * valid), but the reader says so: `stride` is the difference between the
 * first two steps, and `irregular` counts later differences that are not. */
typedef struct moeplace_trace_progress {
  int64_t steps_read;     /* steps read so far (open reads the first step) */
  int64_t first_step;     /* first and last step read (valid if steps_read > 0) */
  int64_t last_step;
  int64_t stride;         /* 0 until two steps were read */
  int64_t irregular;      /* number of step differences != stride */
  long first_irregular_line; /* line of the first irregular step (0 if none) */
  int64_t irregular_from; /* the steps around that first irregularity */
  int64_t irregular_to;
  int64_t reserved[4]; /* zero (ABI: see moeplace/base.h) */
} moeplace_trace_progress;

/* The reader's progress; all zero for NULL. */
moeplace_trace_progress moeplace_trace_get_progress(const moeplace_trace *trace);

/* ---- Writing ---------------------------------------------------------- */

typedef struct moeplace_trace_writer moeplace_trace_writer;

/* Creates a writer. Data goes to a temporary file beside `path` that
 * moeplace_trace_writer_commit() renames into place, so a failed or aborted
 * write never leaves a half-written trace. A ".gz" path is compressed; "-"
 * writes to stdout (not atomic). meta may be NULL when n_meta is 0; it is
 * written at once and not retained. Returns MOEPLACE_OK and *out, which the
 * caller ends with exactly one of commit or abort; MOEPLACE_ERR_ARG (bad
 * shape, a key with ':' or a line break, a value with a newline),
 * MOEPLACE_ERR_IO or
 * MOEPLACE_ERR_NOMEM with *out = NULL. */
int moeplace_trace_writer_open(moeplace_trace_writer **out, const char *path, int layers,
                               int experts, const moeplace_trace_meta *meta, size_t n_meta);

/* Writes one step: counts has shape [layers][experts]. Steps must not
 * decrease (MOEPLACE_ERR_ARG); MOEPLACE_ERR_IO on a write error, after
 * which the caller aborts the writer. */
int moeplace_trace_writer_write_step(moeplace_trace_writer *writer, int64_t step,
                                     const uint64_t *counts);

/* Flushes, syncs and renames the file into place, then frees the writer,
 * whatever the outcome. MOEPLACE_ERR_IO (the message names the file) leaves
 * no file at `path` changed. */
int moeplace_trace_writer_commit(moeplace_trace_writer *writer);

/* Removes the temporary file and frees the writer. Accepts NULL. */
void moeplace_trace_writer_abort(moeplace_trace_writer *writer);

#ifdef __cplusplus
}
#endif

#endif /* MOEPLACE_TRACE_H */
