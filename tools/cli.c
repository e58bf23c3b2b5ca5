#include "tools/cli.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <moeplace.h>

#include "common/atomic_file.h"

/* Every tool links this file: at start-up, make SIGINT/SIGTERM/... remove
 * the temporary files of outputs being written (common/atomic_file.h). A
 * constructor, so that no tool can forget it. */
__attribute__((constructor)) static void cli_install_cleanup(void) {
  mp_atomic_install_signal_cleanup();
}

void cli_set_prog(const char *prog, char **argv) { argv[0] = (char *)prog; }

int cli_parse_int(const char *prog, const char *option, const char *text, long long min,
                  long long max, long long *out) {
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if ((errno && errno != ERANGE) || end == text || *end) {
    fprintf(stderr, "%s: %s: '%s' is not an integer\n", prog, option, text);
    return -1;
  }
  if (errno == ERANGE || v < min || v > max) {
    if (errno == ERANGE) {
      fprintf(stderr, "%s: %s: %s is out of range [%lld, %lld]\n", prog, option, text, min, max);
      return -1;
    }
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

int cli_parse_bytes(const char *prog, const char *option, const char *text, double min,
                    double max, double *out) {
  double v;
  if (cli_parse_double(prog, option, text, min, max, &v)) return -1;
  if (v != floor(v)) {
    fprintf(stderr, "%s: %s: %s is not a whole number of bytes\n", prog, option, text);
    return -1;
  }
  *out = v;
  return 0;
}

int cli_parse_shares(const char *prog, const char *text, moeplace_share_policy *out) {
  if (moeplace_share_policy_parse(text, out) == MOEPLACE_OK) return 0;
  fprintf(stderr, "%s: --shares: '%s' is not a share policy (weighted or even)\n", prog, text);
  return -1;
}

int cli_no_operands(const char *prog, int argc, char **argv, int first) {
  if (first >= argc) return 0;
  fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", prog, argv[first]);
  return CLI_EXIT_USAGE;
}

int cli_shape_ok(const char *prog, const char *input_opt, const char *input, long long slots,
                 long long ranks, const char *topo_path, long long *nodes) {
  if (!input || !slots || !ranks == !topo_path) {
    fprintf(stderr, "%s: need %s, --slots, and either --ranks or --topology%s (see --help)\n",
            prog, input_opt, ranks && topo_path ? ", not both" : "");
    return CLI_EXIT_USAGE;
  }
  if (topo_path && *nodes) {
    fprintf(stderr, "%s: --nodes goes with --ranks; with --topology the file gives the nodes\n",
            prog);
    return CLI_EXIT_USAGE;
  }
  if (!*nodes) *nodes = 1;
  return 0;
}

static int path_empty(const char *prog, const char *option, const char *path) {
  if (!path || *path) return 0;
  fprintf(stderr, "%s: %s: the path is empty\n", prog, option);
  return CLI_EXIT_USAGE;
}

int cli_inputs_ok(const char *prog, const char *const *options, const char *const *paths, int n) {
  int first = -1;
  for (int i = 0; i < n; i++) {
    if (path_empty(prog, options[i], paths[i])) return CLI_EXIT_USAGE;
    if (!paths[i] || strcmp(paths[i], "-") != 0) continue;
    if (first >= 0) {
      fprintf(stderr, "%s: %s and %s both read stdin ('-'); at most one input can\n", prog,
              options[first], options[i]);
      return CLI_EXIT_USAGE;
    }
    first = i;
  }
  return 0;
}

int cli_report(const char *prog, int status) {
  const char *msg = moeplace_last_error();
  fprintf(stderr, "%s: %s\n", prog, *msg ? msg : moeplace_strerror(status));
  return status == MOEPLACE_ERR_ARG || status == MOEPLACE_ERR_FORMAT ? CLI_EXIT_USAGE
                                                                      : CLI_EXIT_FAILURE;
}

int cli_parse_step_range(const char *prog, const char *option, const char *text, int64_t *from,
                         int64_t *to) {
  long long a = 0, b = CLI_STEP_MAX + 1;
  const char *colon = strchr(text, ':');
  char left[32];
  if (colon && (size_t)(colon - text) < sizeof left) {
    memcpy(left, text, (size_t)(colon - text));
    left[colon - text] = '\0';
    if ((*left && cli_parse_int(prog, option, left, 0, CLI_STEP_MAX, &a)) ||
        (colon[1] && cli_parse_int(prog, option, colon + 1, 0, CLI_STEP_MAX + 1, &b)))
      return -1;
    if (a < b) {
      *from = a;
      *to = b == CLI_STEP_MAX + 1 ? INT64_MAX : b;
      return 0;
    }
  }
  fprintf(stderr, "%s: %s: expected A:B with 0 <= A < B <= %lld (either may be left out), got '%s'\n",
          prog, option, (long long)CLI_STEP_MAX + 1, text);
  return -1;
}

/* Whether two output paths name one file: the same file if both exist,
 * else the same name in the same directory (realpath of the directory). */
static int same_file(const char *a, const char *b) {
  struct stat sa, sb;
  if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  char da[PATH_MAX], db[PATH_MAX], ra[PATH_MAX], rb[PATH_MAX];
  snprintf(da, sizeof da, "%s", a);
  snprintf(db, sizeof db, "%s", b);
  if (!realpath(dirname(da), ra) || !realpath(dirname(db), rb)) return !strcmp(a, b);
  snprintf(da, sizeof da, "%s", a);
  snprintf(db, sizeof db, "%s", b);
  return !strcmp(ra, rb) && !strcmp(basename(da), basename(db));
}

/* The checks of cli_outputs_ok() between output i and the ones before it. */
static int output_pair_ok(const char *prog, const char *const *options, const char *const *paths,
                          int i) {
  for (int j = 0; j < i; j++) {
    if (!paths[j]) continue;
    const int out_i = !strcmp(paths[i], "-"), out_j = !strcmp(paths[j], "-");
    if (out_i && out_j) {
      fprintf(stderr, "%s: %s and %s both write stdout ('-'); at most one output can\n", prog,
              options[j], options[i]);
      return CLI_EXIT_USAGE;
    }
    if (!out_i && !out_j && same_file(paths[i], paths[j])) {
      fprintf(stderr, "%s: %s and %s name one file (%s, %s): the second would replace the first\n",
              prog, options[j], options[i], paths[j], paths[i]);
      return CLI_EXIT_USAGE;
    }
  }
  return 0;
}

int cli_outputs_ok(const char *prog, const char *const *options, const char *const *paths, int n) {
  for (int i = 0; i < n; i++) {
    if (path_empty(prog, options[i], paths[i])) return CLI_EXIT_USAGE;
    if (!paths[i]) continue;
    int rc = output_pair_ok(prog, options, paths, i);
    if (rc) return rc;
    if (!strcmp(paths[i], "-")) continue;
    struct stat sb; // a FIFO or device is left alone: opening one could block or end a reader
    if (stat(paths[i], &sb) == 0 && !S_ISREG(sb.st_mode)) continue;
    mp_atomic_file f;
    rc = mp_atomic_open(&f, paths[i]);
    if (rc != MOEPLACE_OK) return cli_report(prog, rc);
    mp_atomic_abort(&f, 0);
  }
  return 0;
}

int cli_writes_stdout(const char *const *paths, int n) {
  for (int i = 0; i < n; i++)
    if (paths[i] && !strcmp(paths[i], "-")) return 1;
  return 0;
}

int cli_stdout_done(const char *prog, int exit_code) {
  if (exit_code != CLI_EXIT_OK) return exit_code;
  errno = 0;
  if (fflush(stdout) == 0 && !ferror(stdout)) return CLI_EXIT_OK;
  fprintf(stderr, "%s: stdout: write failed: %s\n", prog, strerror(errno ? errno : EIO));
  return CLI_EXIT_FAILURE;
}

void cli_warn_groups(const char *prog, const moeplace_topology *topo, int groups, int experts) {
  const int nodes = moeplace_topology_nodes(topo);
  if (groups <= 1 || nodes <= 1 || experts % groups || moeplace_groups_node_limited(topo, groups))
    return;
  fprintf(stderr,
          "%s: warning: %d groups on %d nodes cannot be node-limited (the nodes must be equal "
          "and divide the groups): placed as without groups, as EPLB's global policy; "
          "split_groups counts the groups that span nodes\n",
          prog, groups, nodes);
}

void cli_report_gaps(const char *prog, const moeplace_trace *trace) {
  moeplace_trace_progress p = moeplace_trace_get_progress(trace);
  if (p.stride > 1)
    fprintf(stderr, "%s: note: %s: steps are sampled every %" PRId64 " steps\n", prog,
            moeplace_trace_name(trace), p.stride);
  if (p.irregular > 0)
    fprintf(stderr,
            "%s: note: %s:%ld: steps jump from %" PRId64 " to %" PRId64
            " (%" PRId64 " irregular step gap%s in all)\n",
            prog, moeplace_trace_name(trace), p.first_irregular_line, p.irregular_from,
            p.irregular_to, p.irregular, p.irregular == 1 ? "" : "s");
}
