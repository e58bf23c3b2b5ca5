/* libFuzzer target for the cluster-shape file reader (moeplace-place
 * --topology, moeplace_topology_load): any byte string must give a topology
 * or an error status with a message; never a crash, a leak or undefined
 * behaviour. Built and run by scripts/fuzz.sh. */
#include "input_file.h" /* first: it defines _GNU_SOURCE */

#include <moeplace.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_file(data, size);
  moeplace_topology *t = NULL;
  int rc = moeplace_topology_load(&t, path);
  if (rc == MOEPLACE_OK) {
    if (!t) abort();
    moeplace_topology_destroy(t);
  } else if (t || !*moeplace_last_error()) {
    abort();
  }
  return 0;
}
