/* Shared command-line helpers of the moeplace tools: number parsing that
 * names the offending option, and the exit codes every tool uses. */
#ifndef MOEPLACE_TOOLS_CLI_H
#define MOEPLACE_TOOLS_CLI_H

#include <stdint.h>

enum {
  CLI_EXIT_OK = 0,
  CLI_EXIT_FAILURE = 1, /* the work failed (I/O, numerical, MPI) */
  CLI_EXIT_USAGE = 2    /* bad options or malformed input */
};

/* Parse an integer/real option value in [min, max]; on failure print
 * "PROG: --option: reason" to stderr and return -1. */
int cli_parse_int(const char *prog, const char *option, const char *text, long long min,
                  long long max, long long *out);
int cli_parse_double(const char *prog, const char *option, const char *text, double min,
                     double max, double *out);

/* For tools that take options only: if argv[first..argc) is not empty,
 * prints "PROG: unexpected argument 'X' (see --help)" and returns
 * CLI_EXIT_USAGE; else 0. */
int cli_no_operands(const char *prog, int argc, char **argv, int first);

/* Prints "PROG: <moeplace_last_error()>" and returns the exit code for the
 * status (CLI_EXIT_USAGE for argument and format errors). */
int cli_report(const char *prog, int status);

#endif
