/* libFuzzer target for the placement JSON reader (moeplace-place --current):
 * any byte string must give a placement or an error status with a message;
 * never a crash, a leak, undefined behaviour, or an allocation beyond the
 * fuzzer's limit (a small file declaring a huge shape is such a finding).
 * Built and run by scripts/fuzz.sh. */
#include "input_file.h" /* first: it defines _GNU_SOURCE */

#include <string.h>

#include <moeplace.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_file(data, size);
  moeplace_placement *p = NULL;
  int rc = moeplace_placement_read_json(&p, path);
  if (rc == MOEPLACE_OK) {
    if (!p) abort();
    moeplace_placement_destroy(p);
  } else if (p || !*moeplace_last_error()) {
    abort();
  }
  return 0;
}
