/* libFuzzer target for the trace reader: any byte string must yield either
 * a complete read or a MOEPLACE_ERR_FORMAT with a "name:line:" message;
 * never a crash, a hang, a leak or undefined behaviour (the build adds
 * ASan and UBSan). Built and run by scripts/fuzz.sh. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <moeplace.h> /* the core header: no MPI in the fuzz build */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  moeplace_trace *t;
  int rc = moeplace_trace_open_memory(&t, data, size, "fuzz.csv");
  if (rc) {
    if (rc != MOEPLACE_ERR_FORMAT || strncmp(moeplace_last_error(), "fuzz.csv:", 9) != 0) abort();
    return 0;
  }
  const size_t n = (size_t)moeplace_trace_layers(t) * moeplace_trace_experts(t);
  uint64_t *totals = malloc(n * sizeof *totals);
  int64_t first;
  int steps;
  while ((rc = moeplace_trace_read_window(t, 3, &first, &steps, totals)) > 0) {}
  if (rc < 0 && (rc != MOEPLACE_ERR_FORMAT || strncmp(moeplace_last_error(), "fuzz.csv:", 9) != 0))
    abort();
  free(totals);
  moeplace_trace_close(t);
  return 0;
}
