/* moeplace-trace: validate, summarise and convert expert-load traces. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <moeplace.h>

#include "common/json_file.h"
#include "common/trace_stats.h"
#include "common/trace_window.h"
#include "tools/cli.h"

static const char *prog = "moeplace-trace";

static void usage(FILE *out) {
  fprintf(out,
          "Usage: moeplace-trace COMMAND [OPTIONS] FILE...\n"
          "\n"
          "Validate, summarise and convert expert-load traces (docs/trace-format.md).\n"
          "FILE may end in .gz (gzip) or be - for stdin.\n"
          "\n"
          "Commands:\n"
          "  validate FILE          check the whole file; exit 0, or print the first\n"
          "                         error as FILE:LINE: reason and exit 2\n"
          "  stats FILE             steps, layers, experts, tokens, per-layer load\n"
          "                         proportions and the state detector's window figures\n"
          "  convert IN OUT         copy a trace, optionally sampling steps or selecting\n"
          "                         layers; OUT is written atomically (.gz compresses)\n"
          "\n"
          "Run 'moeplace-trace COMMAND --help' for a command's options.\n"
          "Exit status: 0 success, 1 failure (I/O), 2 bad usage or malformed input.\n");
}

/* ---- validate --------------------------------------------------------- */

/* Reads the rest of t, adding every step to the trace's totals: a trace
 * whose sums stats or the replay would refuse is not valid either, and the
 * error names the row that made a sum overflow (common/trace_stats.h). */
static int read_checked(moeplace_trace *t, uint64_t *counts) {
  mp_trace_totals totals;
  int rc = mp_trace_totals_init(&totals, t);
  int64_t step;
  while (rc == MOEPLACE_OK && (rc = moeplace_trace_read_step(t, &step, counts)) > 0)
    rc = mp_trace_totals_add(&totals, step, counts, mp_trace_step_lines(t));
  mp_trace_totals_free(&totals);
  return rc;
}

static int cmd_validate(int argc, char **argv) {
  static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                       {"quiet", no_argument, NULL, 'q'},
                                       {NULL, 0, NULL, 0}};
  int quiet = 0, c;
  while ((c = getopt_long(argc, argv, "hq", opts, NULL)) != -1) {
    if (c == 'h') {
      printf("Usage: moeplace-trace validate [--quiet] FILE\n\n"
             "Reads the whole trace and checks every rule of docs/trace-format.md,\n"
             "its sums included: an expert's counts over the trace must fit in 64 bits\n"
             "and the token totals in 63, as stats requires.\n"
             "Prints a one-line summary (unless --quiet) and exits 0, or prints the\n"
             "first error as FILE:LINE: reason and exits 2.\n");
      return CLI_EXIT_OK;
    }
    if (c == 'q') quiet = 1;
    else return CLI_EXIT_USAGE;
  }
  if (optind + 1 != argc) {
    fprintf(stderr, "%s validate: expected one FILE (see --help)\n", prog);
    return CLI_EXIT_USAGE;
  }
  moeplace_trace *t;
  int rc = moeplace_trace_open(&t, argv[optind]);
  if (rc) return cli_report(prog, rc);
  const size_t n = (size_t)moeplace_trace_layers(t) * moeplace_trace_experts(t);
  uint64_t *counts = malloc(n * sizeof *counts);
  if (!counts) {
    moeplace_trace_close(t);
    fprintf(stderr, "%s: out of memory\n", prog);
    return CLI_EXIT_FAILURE;
  }
  rc = read_checked(t, counts);
  free(counts);
  if (rc < 0) {
    moeplace_trace_close(t);
    return cli_report(prog, rc);
  }
  moeplace_trace_progress p = moeplace_trace_get_progress(t);
  cli_report_gaps(prog, t);
  if (!quiet)
    printf("%s: valid: %" PRId64 " steps (%" PRId64 "..%" PRId64 "), %d layers, %d experts\n",
           moeplace_trace_name(t), p.steps_read, p.first_step, p.last_step,
           moeplace_trace_layers(t), moeplace_trace_experts(t));
  moeplace_trace_close(t);
  return cli_stdout_done(prog, CLI_EXIT_OK);
}

/* ---- stats ------------------------------------------------------------ */

static void print_stats(const mp_trace_stats *s, const moeplace_trace *t) {
  printf("trace      %s\n", moeplace_trace_name(t));
  printf("steps      %" PRId64 " (%" PRId64 "..%" PRId64 ", stride %" PRId64 ", %" PRId64
         " irregular gaps)\n",
         s->steps, s->first_step, s->last_step, s->progress.stride, s->progress.irregular);
  printf("layers     %d\nexperts    %d\ntokens     %" PRIu64 "\n", s->layers, s->experts,
         s->tokens);
  printf("windows    %" PRId64 " complete windows of %d steps; detector figures over the "
         "last k=%d windows\n\n",
         s->windows, s->window, s->k);
  printf("%5s %12s %9s %9s %7s | %-29s | %-29s\n", "layer", "tokens", "p_min", "p_max", "p_cv",
         "max variance: first/last/max", "max range: first/last/max");
  for (int l = 0; l < s->layers; l++) {
    const mp_layer_stats *ls = &s->layer[l];
    printf("%5d %12" PRIu64 " %9.5f %9.5f %7.4f |", l, ls->tokens, ls->prop_min, ls->prop_max,
           ls->prop_cv);
    if (s->n_series == 0) {
      printf(" %-29s | %-29s\n", "(fewer than k windows)", "");
      continue;
    }
    double vmax = 0, rmax = 0;
    for (size_t i = 0; i < s->n_series; i++) {
      if (ls->window_var_max[i] > vmax) vmax = ls->window_var_max[i];
      if (ls->window_range_max[i] > rmax) rmax = ls->window_range_max[i];
    }
    printf(" %9.2e %9.2e %9.2e | %9.4f %9.4f %9.4f\n", ls->window_var_max[0],
           ls->window_var_max[s->n_series - 1], vmax, ls->window_range_max[0],
           ls->window_range_max[s->n_series - 1], rmax);
  }
}

static int cmd_stats(int argc, char **argv) {
  static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                       {"window", required_argument, NULL, 'w'},
                                       {"k", required_argument, NULL, 'k'},
                                       {"json", required_argument, NULL, 'j'},
                                       {NULL, 0, NULL, 0}};
  long long window = 10, k = 10;
  const char *json_out = NULL;
  int c;
  while ((c = getopt_long(argc, argv, "hw:k:j:", opts, NULL)) != -1) {
    switch (c) {
    case 'h':
      printf("Usage: moeplace-trace stats [--window W] [--k K] [--json OUT] FILE\n\n"
             "Prints steps, layers, experts and tokens, and per layer: each expert's load\n"
             "proportion over the whole trace (min, max, coefficient of variation), and,\n"
             "over windows of W steps, the largest per-expert variance and range of the\n"
             "window proportions across the last K windows (the state detector's inputs).\n\n"
             "  --window W   steps per window (default 10)\n"
             "  --k K        windows the variance/range figures span (default 10)\n"
             "  --json OUT   also write all figures, including the per-window series,\n"
             "               as JSON to OUT (written atomically; - for stdout)\n");
      return CLI_EXIT_OK;
    case 'w':
      if (cli_parse_int(prog, "--window", optarg, 1, 1 << 30, &window)) return CLI_EXIT_USAGE;
      break;
    case 'k':
      if (cli_parse_int(prog, "--k", optarg, 1, 1 << 20, &k)) return CLI_EXIT_USAGE;
      break;
    case 'j': json_out = optarg; break;
    default: return CLI_EXIT_USAGE;
    }
  }
  if (optind + 1 != argc) {
    fprintf(stderr, "%s stats: expected one FILE (see --help)\n", prog);
    return CLI_EXIT_USAGE;
  }
  moeplace_trace *t;
  int rc = moeplace_trace_open(&t, argv[optind]);
  if (rc) return cli_report(prog, rc);
  mp_trace_stats s;
  rc = mp_trace_stats_compute(t, (int)window, (int)k, &s);
  if (rc) {
    moeplace_trace_close(t);
    return cli_report(prog, rc);
  }
  cli_report_gaps(prog, t);
  int exit_code = CLI_EXIT_OK;
  if (json_out) {
    json_t *doc = mp_trace_stats_to_json(&s, t);
    rc = doc ? mp_json_write_file(doc, json_out) : MOEPLACE_ERR_NOMEM;
    json_decref(doc);
    if (rc) exit_code = cli_report(prog, rc);
  }
  if (!cli_writes_stdout(&json_out, 1)) print_stats(&s, t);
  mp_trace_stats_free(&s);
  moeplace_trace_close(t);
  return cli_stdout_done(prog, exit_code);
}

/* ---- convert ---------------------------------------------------------- */

/* "0,2,3" -> selected[l] = 1. */
static int parse_layer_list(const char *text, int layers, int *selected) {
  const char *p = text;
  for (;;) {
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p || v < 0 || v >= layers || (*end && *end != ',')) {
      fprintf(stderr, "%s: --layers: '%s' is not a comma-separated list of layers in 0..%d\n",
              prog, text, layers - 1);
      return -1;
    }
    if (selected[v]) {
      fprintf(stderr, "%s: --layers: layer %ld is listed twice\n", prog, v);
      return -1;
    }
    selected[v] = 1;
    if (!*end) return 0;
    p = end + 1;
  }
}

static int cmd_convert(int argc, char **argv) {
  static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                       {"every", required_argument, NULL, 'e'},
                                       {"layers", required_argument, NULL, 'l'},
                                       {"steps", required_argument, NULL, 's'},
                                       {NULL, 0, NULL, 0}};
  long long every = 1;
  const char *layer_list = NULL, *steps = NULL;
  int c;
  while ((c = getopt_long(argc, argv, "he:l:s:", opts, NULL)) != -1) {
    switch (c) {
    case 'h':
      printf("Usage: moeplace-trace convert [--every K] [--layers LIST] [--steps A:B] IN OUT\n\n"
             "Copies trace IN to OUT (metadata comments included). OUT ending in .gz is\n"
             "compressed; - writes to stdout. OUT appears only once complete.\n\n"
             "  --every K      keep every K-th step of IN (the 1st, K+1-th, ...)\n"
             "  --layers LIST  keep these layers (e.g. 0,2); they are renumbered 0, 1, ...\n"
             "                 in increasing order\n"
             "  --steps A:B    keep steps with A <= step < B (A or B may be omitted)\n");
      return CLI_EXIT_OK;
    case 'e':
      if (cli_parse_int(prog, "--every", optarg, 1, INT32_MAX, &every)) return CLI_EXIT_USAGE;
      break;
    case 'l': layer_list = optarg; break;
    case 's': steps = optarg; break;
    default: return CLI_EXIT_USAGE;
    }
  }
  if (optind + 2 != argc) {
    fprintf(stderr, "%s convert: expected IN and OUT (see --help)\n", prog);
    return CLI_EXIT_USAGE;
  }
  int64_t from = 0, to = INT64_MAX;
  if (steps && cli_parse_step_range(prog, "--steps", steps, &from, &to)) return CLI_EXIT_USAGE;

  moeplace_trace *in;
  int rc = moeplace_trace_open(&in, argv[optind]);
  if (rc) return cli_report(prog, rc);
  const int L = moeplace_trace_layers(in), E = moeplace_trace_experts(in);
  int *selected = calloc((size_t)L, sizeof *selected);
  uint64_t *counts = malloc((size_t)L * E * sizeof *counts);
  uint64_t *kept = malloc((size_t)L * E * sizeof *kept);
  moeplace_trace_meta *meta = malloc((moeplace_trace_meta_count(in) + 1) * sizeof *meta);
  moeplace_trace_writer *out = NULL;
  int exit_code = CLI_EXIT_OK;
  if (!selected || !counts || !kept || !meta) {
    fprintf(stderr, "%s: out of memory\n", prog);
    exit_code = CLI_EXIT_FAILURE;
    goto done;
  }
  int out_layers = L;
  if (layer_list) {
    if (parse_layer_list(layer_list, L, selected)) {
      exit_code = CLI_EXIT_USAGE;
      goto done;
    }
    out_layers = 0;
    for (int l = 0; l < L; l++) out_layers += selected[l];
  } else {
    for (int l = 0; l < L; l++) selected[l] = 1;
  }
  size_t n_meta = moeplace_trace_meta_count(in);
  for (size_t i = 0; i < n_meta; i++) meta[i] = moeplace_trace_meta_get(in, i);
  rc = moeplace_trace_writer_open(&out, argv[optind + 1], out_layers, E, meta, n_meta);
  if (rc) {
    exit_code = cli_report(prog, rc);
    goto done;
  }
  int64_t index = 0, written = 0, step;
  while ((rc = moeplace_trace_read_step(in, &step, counts)) > 0) {
    if (index++ % every != 0 || step < from || step >= to) continue;
    int o = 0;
    for (int l = 0; l < L; l++)
      if (selected[l]) memcpy(kept + (size_t)(o++) * E, counts + (size_t)l * E, E * sizeof *kept);
    if ((rc = moeplace_trace_writer_write_step(out, step, kept))) break;
    written++;
  }
  if (rc == 0 && written == 0) {
    fprintf(stderr, "%s: no step of %s is selected; %s was not written\n", prog,
            moeplace_trace_name(in), argv[optind + 1]);
    exit_code = CLI_EXIT_USAGE;
  } else if (rc < 0) {
    exit_code = cli_report(prog, rc);
  }
  if (exit_code != CLI_EXIT_OK) {
    moeplace_trace_writer_abort(out);
  } else if ((rc = moeplace_trace_writer_commit(out))) {
    exit_code = cli_report(prog, rc);
  }
  if (exit_code == CLI_EXIT_OK) cli_report_gaps(prog, in);
done:
  free(selected);
  free(counts);
  free(kept);
  free(meta);
  moeplace_trace_close(in);
  return exit_code;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return CLI_EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
    usage(stdout);
    return CLI_EXIT_OK;
  }
  if (!strcmp(cmd, "--version")) {
    printf("moeplace-trace %s\n", moeplace_version());
    return CLI_EXIT_OK;
  }
  /* Subcommands parse their own options from argv[1] on. */
  argc--;
  argv++;
  cli_set_prog(prog, argv);
  if (!strcmp(cmd, "validate")) return cmd_validate(argc, argv);
  if (!strcmp(cmd, "stats")) return cmd_stats(argc, argv);
  if (!strcmp(cmd, "convert")) return cmd_convert(argc, argv);
  fprintf(stderr, "%s: unknown command '%s' (try --help)\n", prog, cmd);
  return CLI_EXIT_USAGE;
}
