#include "tools/cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <moeplace.h>

int cli_parse_int(const char *prog, const char *option, const char *text, long long min,
                  long long max, long long *out) {
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (errno || end == text || *end) {
    fprintf(stderr, "%s: %s: '%s' is not an integer\n", prog, option, text);
    return -1;
  }
  if (v < min || v > max) {
    fprintf(stderr, "%s: %s: %lld is out of range [%lld, %lld]\n", prog, option, v, min, max);
    return -1;
  }
  *out = v;
  return 0;
}

int cli_parse_double(const char *prog, const char *option, const char *text, double min,
                     double max, double *out) {
  char *end;
  errno = 0;
  double v = strtod(text, &end);
  if (errno || end == text || *end || !isfinite(v)) {
    fprintf(stderr, "%s: %s: '%s' is not a finite number\n", prog, option, text);
    return -1;
  }
  if (v < min || v > max) {
    fprintf(stderr, "%s: %s: %g is out of range [%g, %g]\n", prog, option, v, min, max);
    return -1;
  }
  *out = v;
  return 0;
}

int cli_no_operands(const char *prog, int argc, char **argv, int first) {
  if (first >= argc) return 0;
  fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", prog, argv[first]);
  return CLI_EXIT_USAGE;
}

int cli_report(const char *prog, int status) {
  const char *msg = moeplace_last_error();
  fprintf(stderr, "%s: %s\n", prog, *msg ? msg : moeplace_strerror(status));
  return status == MOEPLACE_ERR_ARG || status == MOEPLACE_ERR_FORMAT ? CLI_EXIT_USAGE
                                                                      : CLI_EXIT_FAILURE;
}
