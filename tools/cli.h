/* Shared command-line helpers of the moeplace tools: number parsing that
 * names the offending option, and the exit codes every tool uses. */
#ifndef MOEPLACE_TOOLS_CLI_H
#define MOEPLACE_TOOLS_CLI_H

#include <stdint.h>

#include <moeplace.h>

enum {
  CLI_EXIT_OK = 0,
  CLI_EXIT_FAILURE = 1, /* the work failed (I/O, numerical, MPI) */
  CLI_EXIT_USAGE = 2    /* bad options or malformed input */
};

/* getopt_long prints its own errors (an unknown option, a missing
 * argument) after argv[0]: the path the tool was started by
 * ("build/moeplace-place") or a subcommand's name. Makes argv[0] PROG, so
 * that they name the tool as its own messages do; call before getopt_long. */
void cli_set_prog(const char *prog, char **argv);

/* Parse an integer/real option value in [min, max]; on failure print
 * "PROG: --option: reason" to stderr and return -1. */
int cli_parse_int(const char *prog, const char *option, const char *text, long long min,
                  long long max, long long *out);
int cli_parse_double(const char *prog, const char *option, const char *text, double min,
                     double max, double *out);
/* A byte count (--expert-bytes, --budget): as cli_parse_double (so 1e9 and
 * 64e6 are accepted), and also refused unless a whole number, naming the
 * option: "PROG: --option: 1.5 is not a whole number of bytes". */
int cli_parse_bytes(const char *prog, const char *option, const char *text, double min,
                    double max, double *out);
/* --shares: "weighted" or "even" into *out; a message and -1 otherwise. */
int cli_parse_shares(const char *prog, const char *text, moeplace_share_policy *out);

/* Largest step a --steps range may name: 2^53, so that every step is exact
 * as a double in the JSON outputs and far beyond any real training run. */
#define CLI_STEP_MAX 9007199254740992LL

/* Parses a half-open step range "A:B" (A <= step < B; "A:" and ":B" leave a
 * side open) with 0 <= A < B <= CLI_STEP_MAX + 1. An open B gives INT64_MAX.
 * On failure prints "PROG: OPTION: reason" and returns -1. */
int cli_parse_step_range(const char *prog, const char *option, const char *text, int64_t *from,
                         int64_t *to);

/* For tools that take options only: if argv[first..argc) is not empty,
 * prints "PROG: unexpected argument 'X' (see --help)" and returns
 * CLI_EXIT_USAGE; else 0. */
int cli_no_operands(const char *prog, int argc, char **argv, int first);

/* The cluster-shape options every placing tool takes: INPUT_OPT (the
 * input, e.g. "--loads"), --slots, and either --ranks [--nodes] or
 * --topology. Prints "PROG: need ..." or "PROG: --nodes goes with --ranks
 * ..." and returns CLI_EXIT_USAGE on a missing or clashing option; else
 * sets *nodes to 1 when --nodes was not given (0) and returns 0. */
int cli_shape_ok(const char *prog, const char *input_opt, const char *input, long long slots,
                 long long ranks, const char *topo_path, long long *nodes);

/* For tools that read several inputs (paths[n] given by options[n], NULL
 * for an input not asked for): an empty path is refused ("PROG: OPT: the
 * path is empty"), and stdin ("-") can feed only one of them ("PROG: OPT1
 * and OPT2 both read stdin ('-'); at most one input can"). Returns
 * CLI_EXIT_USAGE after the message; else 0. */
int cli_inputs_ok(const char *prog, const char *const *options, const char *const *paths, int n);

/* For tools that write several outputs (paths[n] given by options[n], NULL
 * for an output not asked for; "-" is stdout): before any work, refuses an
 * empty path, two outputs on stdout (their documents would run together),
 * two outputs that are the same file (the second would replace the first;
 * compared as files, so "a" and "./a" are one), and an output that cannot
 * be opened (a missing directory: each absent or regular one is opened and
 * dropped at once, as common/atomic_file.h opens it; FIFOs and devices are
 * left alone), so that a failed run leaves none of them written. Prints
 * "PROG: OPT: ..." or "PROG: FILE: ..." and returns CLI_EXIT_USAGE or
 * CLI_EXIT_FAILURE; 0 when all can be written. A write that fails later
 * (a full disk) can still leave the outputs committed before it. */
int cli_outputs_ok(const char *prog, const char *const *options, const char *const *paths, int n);

/* 1 if one of paths[n] is stdout ("-"): the tool's human report then stays
 * off stdout, so that the output can be parsed. */
int cli_writes_stdout(const char *const *paths, int n);

/* The end of a tool that printed its report on stdout: exit_code unless it
 * is CLI_EXIT_OK; then flushes stdout and, if a write to it failed (a full
 * disk, a closed pipe), prints "PROG: stdout: write failed: REASON" and
 * returns CLI_EXIT_FAILURE. */
int cli_stdout_done(const char *prog, int exit_code);

/* Notes on stderr the step gaps the trace reader met so far, as the trace
 * format asks of every reader: "PROG: note: FILE: steps are sampled every K
 * steps" and "PROG: note: FILE:LINE: steps jump from A to B (N irregular
 * step gaps in all)". Nothing for consecutive steps. */
void cli_report_gaps(const char *prog, const moeplace_trace *trace);

/* Warns on stderr when --groups G > 1 asks for node-limited placement on
 * N > 1 nodes that cannot have it (N not dividing G, unequal nodes;
 * moeplace_groups_node_limited): the placements are then made as without
 * groups, as EPLB falls back to its global policy, and split_groups counts
 * the groups that span nodes. Silent when G does not divide the experts:
 * the placement refuses that with its own error. */
void cli_warn_groups(const char *prog, const moeplace_topology *topo, int groups, int experts);

/* Prints "PROG: <moeplace_last_error()>" and returns the exit code for the
 * status (CLI_EXIT_USAGE for argument and format errors). */
int cli_report(const char *prog, int status);

#endif
