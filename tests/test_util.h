/* Small helpers shared by the Check unit tests. */
#ifndef MOEPLACE_TESTS_TEST_UTIL_H
#define MOEPLACE_TESTS_TEST_UTIL_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TEST_TOP_SRCDIR
#define TEST_TOP_SRCDIR "."
#endif

/* Absolute path of a file in the source tree. `make check` exports
 * top_srcdir; running a test binary by hand from the build tree falls back
 * to the compile-time source directory. */
static inline const char *test_src_path(const char *relative) {
  static char buf[4096];
  const char *top = getenv("top_srcdir");
  snprintf(buf, sizeof buf, "%s/%s", top && *top ? top : TEST_TOP_SRCDIR, relative);
  return buf;
}

/* The real traces recorded for the project live beside the repository
 * (../shared/traces); tests that use them skip the check when absent. */
static inline const char *test_shared_trace(const char *name) {
  static char buf[4096];
  snprintf(buf, sizeof buf, "%s/../shared/traces/%s", getenv("top_srcdir") ? getenv("top_srcdir") : TEST_TOP_SRCDIR, name);
  FILE *f = fopen(buf, "rb");
  if (!f) return NULL;
  fclose(f);
  return buf;
}

/* Runs a suite and returns the process exit status. */
static inline int test_run_suite(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
