/* moeplace-replay: what each rebalancing policy would have achieved on a
 * recorded load trace, on a cluster of a given shape (replay/replay.h). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h> // openblas_get_corename
#include <moeplace.h>

#include "common/atomic_file.h"
#include "common/json_file.h"
#include "common/warmup.h"
#include "replay/replay.h"
#include "tools/cli.h"

static const char *prog = "moeplace-replay";

static void usage(FILE *out) {
  fprintf(out,
          "Usage: moeplace-replay --trace FILE (--ranks R --slots S [--nodes N] | --topology FILE --slots S)\n"
          "                       [options]\n"
          "\n"
          "Replays moeplace's decision loop (windows, state detection, forecast,\n"
          "placement, migration plan) on a load trace as if the job ran on the given\n"
          "cluster, and scores each policy: static, moving_average, moeplace, oracle,\n"
          "eplb (docs/REPLAY.md). Figures follow metrics.md.\n"
          "\n"
          "Cluster:\n"
          "  --ranks R            ranks (with --nodes: R/N ranks per node)\n"
          "  --nodes N            nodes (default 1)\n"
          "  --topology FILE      cluster-shape file instead (docs/PLACEMENT.md)\n"
          "  --slots S            expert slots per rank and layer (R*S >= experts)\n"
          "Loop:\n"
          "  --interval STEPS     steps between rebalances (default 500)\n"
          "  --window W           steps per forecasting window (default 10)\n"
          "  --horizon H          steps the forecast covers (default: the interval)\n"
          "  --predictor NAME     auto (default), sw_avg, arima, lstm, last\n"
          "  --policies LIST      comma-separated subset to report (default all)\n"
          "  --seed N             seed of learned predictors (default 1)\n"
          "  --warmup STEPS|auto  moeplace also decides at this step of the first\n"
          "                       interval and each time the steps seen double (K,\n"
          "                       2K, 4K, ... below the interval), from the windows\n"
          "                       seen (K a multiple of the window below the interval;\n"
          "                       0: off; default auto: two windows, 20 by default)\n"
          "  --samples N          moeplace's placements see the last N windows' loads\n"
          "                       as samples of the steps' noise (0: off; default 50;\n"
          "                       docs/PLACEMENT.md \"Load samples\")\n"
          "  --groups G           experts form G groups; with N > 1 nodes every policy\n"
          "                       keeps each group on one node (docs/PLACEMENT.md;\n"
          "                       eplb: its hierarchical policy)\n"
          "Migration:\n"
          "  --expert-bytes B     bytes of one expert replica (default 67108864)\n"
          "  --migration-weight X tokens one unit of migration cost is worth (default 0)\n"
          "  --budget B           bytes moeplace may move per rebalance (default none)\n"
          "  --min-gain G         moeplace changes a placement only to gain more than\n"
          "                       G x the mean rank load per layer (default 0.002)\n"
          "  --step-ms T          price rebalances in seconds: the experts' part of a\n"
          "                       step takes T ms at perfect balance; moeplace moves\n"
          "                       only if the time saved over the interval exceeds the\n"
          "                       modelled migration time (docs/PLACEMENT.md; 0: off,\n"
          "                       the min-gain rule; default 1)\n"
          "  --time-budget S      modelled migration seconds per rebalance (default none)\n"
          "  --shares POLICY      weighted (default) or even: how routers split an expert's\n"
          "                       tokens among its replicas; every policy (static,\n"
          "                       moving_average, moeplace, oracle) places and is scored\n"
          "                       with it\n"
          "  --spread MU          noise-aware placements (docs/PLACEMENT.md): every slot\n"
          "                       filled, shares pulled toward equal splits by MU; 0: the\n"
          "                       exact balance of the forecast means (default 1)\n"
          "  --bw-numa G --bw-package G --bw-node G --bw-network G\n"
          "                       bandwidth in GB/s per link class (defaults: the\n"
          "                       cluster file's, else 100, 50, 25, 12.5)\n"
          "Output:\n"
          "  --json OUT           figures as JSON (atomic write; - for stdout)\n"
          "  --timeline OUT.csv   per-step imbalance of every reported policy\n"
          "  --quiet              no progress on stderr\n"
          "\n"
          "Exit status: 0 success, 1 failure, 2 bad usage or malformed input.\n");
}

typedef struct tool_ctx {
  FILE *timeline;
  int report[MP_POLICY_COUNT];
  int64_t total_steps; /* for the progress bar; 0 if unknown */
  int quiet, tty;
  int last_percent;
  int write_errno; /* the first write error of the timeline, 0 if none */
} tool_ctx;

static int on_step(void *vctx, int64_t step, const double *imbalance) {
  tool_ctx *ctx = vctx;
  errno = 0;
  fprintf(ctx->timeline, "%" PRId64, step);
  for (int p = 0; p < MP_POLICY_COUNT; p++)
    if (ctx->report[p]) fprintf(ctx->timeline, ",%.6f", imbalance[p]);
  if (fputc('\n', ctx->timeline) != EOF && !ferror(ctx->timeline)) return MOEPLACE_OK;
  if (!ctx->write_errno) ctx->write_errno = errno ? errno : EIO;
  return MOEPLACE_ERR_IO;
}

static void on_progress(void *vctx, int64_t done) {
  tool_ctx *ctx = vctx;
  if (ctx->quiet) return;
  if (ctx->total_steps > 0) {
    int percent = (int)(100 * done / ctx->total_steps);
    /* On a terminal a redrawn bar; in a log one line every 10%. */
    if (ctx->tty) {
      int filled = percent / 4;
      fprintf(stderr, "\r%s: [%-25.*s] %3d%% (%" PRId64 "/%" PRId64 " steps)", prog, filled,
              "#########################", percent, done, ctx->total_steps);
    } else if (percent / 10 > ctx->last_percent / 10 || done == ctx->total_steps) {
      fprintf(stderr, "%s: %d%% (%" PRId64 " steps)\n", prog, percent, done);
    }
    ctx->last_percent = percent;
  }
}

/* Steps in the trace, for the progress bar: a quick pass over the file
 * (about 20 ms for 8000 steps), skipped for stdin. */
static int64_t count_steps(const char *path) {
  if (strcmp(path, "-") == 0) return 0;
  moeplace_trace *t;
  if (moeplace_trace_open(&t, path)) return 0;
  size_t n = (size_t)moeplace_trace_layers(t) * moeplace_trace_experts(t);
  uint64_t *c = malloc(n * sizeof *c);
  int64_t step, steps = 0;
  while (c && moeplace_trace_read_step(t, &step, c) > 0) steps++;
  free(c);
  moeplace_trace_close(t);
  return steps;
}

static int parse_policies(const char *list, int *report) {
  char buf[256];
  size_t len = strlen(list);
  if (len >= sizeof buf || list[0] == ',' || (len && list[len - 1] == ',') || strstr(list, ",,")) {
    fprintf(stderr, "%s: --policies: '%s' is not a comma-separated list of names\n", prog, list);
    return -1;
  }
  snprintf(buf, sizeof buf, "%s", list);
  memset(report, 0, MP_POLICY_COUNT * sizeof *report);
  for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    int p = mp_policy_from_name(tok);
    if (p < 0) {
      fprintf(stderr, "%s: --policies: unknown policy '%s' (static, moving_average, moeplace, oracle, eplb)\n",
              prog, tok);
      return -1;
    }
    if (report[p]) {
      fprintf(stderr, "%s: --policies: '%s' named twice\n", prog, tok);
      return -1;
    }
    report[p] = 1;
  }
  for (int p = 0; p < MP_POLICY_COUNT; p++)
    if (report[p]) return 0;
  fprintf(stderr, "%s: --policies: empty list (give one or more of static, moving_average, moeplace, oracle, eplb)\n",
          prog);
  return -1;
}

static json_t *results_json(const mp_replay_result *res, const mp_replay_config *cfg,
                            const tool_ctx *ctx, const char *trace, int nodes) {
  json_t *policies = json_object();
  for (int p = 0; p < MP_POLICY_COUNT; p++) {
    if (!ctx->report[p]) continue;
    const mp_policy_result *r = &res->policy[p];
    json_t *o = json_pack("{s:f, s:I, s:I, s:f, s:f, s:f, s:f, s:I}", "imbalance", r->imbalance,
                          "moves", (json_int_t)r->moves, "rebalances", (json_int_t)r->rebalances,
                          "bytes_moved", r->bytes_moved, "cross_node_bytes", r->cross_node_bytes,
                          "migration_s", r->migration_s, "decision_ms", r->decision_ms,
                          "decisions", (json_int_t)r->decisions);
    /* metrics.md defines the gap for the non-static policies. */
    if (p != MP_POLICY_STATIC)
      json_object_set_new(o, "gap_to_oracle",
                          isnan(r->gap_to_oracle) ? json_null() : json_real(r->gap_to_oracle));
    json_t *log = json_array();
    for (int64_t i = 0; i < r->decisions; i++) {
      const mp_decision_record *d = &r->log[i];
      json_array_append_new(log, json_pack("{s:I, s:I, s:f, s:f, s:f, s:f}", "step",
                                           (json_int_t)d->step, "moves", (json_int_t)d->moves,
                                           "bytes_moved", d->bytes_moved, "cross_node_bytes",
                                           d->cross_node_bytes, "migration_s", d->migration_s,
                                           "decision_ms", d->decision_ms));
    }
    json_object_set_new(o, "decision_log", log);
    json_object_set_new(policies, mp_policy_name(p), o);
  }
  return json_pack("{s:s, s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:s, s:f, s:f, s:f, s:f, "
                   "s:f, s:f, s:i, s:s, s:f, s:i, s:i, s:s, s:o}",
                   "trace", trace, "steps", (json_int_t)res->steps, "layers", res->layers,
                   "experts", res->experts, "ranks", res->ranks, "slots", res->slots, "nodes",
                   nodes, "interval", cfg->interval, "window", cfg->window, "horizon",
                   cfg->horizon ? cfg->horizon : cfg->interval, "predictor", cfg->predictor,
                   "expert_bytes", cfg->expert_bytes, "migration_weight", cfg->migration_weight,
                   "budget", cfg->byte_budget, "min_gain", cfg->min_gain, "step_ms",
                   cfg->step_time_s * 1e3, "time_budget_s", cfg->time_budget_s, "groups",
                   cfg->groups, "shares", moeplace_share_policy_name(cfg->shares), "spread",
                   cfg->spread, "warmup", cfg->warmup, "samples", cfg->samples,
                   // the forecasters' sums round by these kernels (docs/REPLAY.md)
                   "blas_core", openblas_get_corename(), "policies", policies);
}

static void print_table(const mp_replay_result *res, const tool_ctx *ctx) {
  printf("%-15s %9s %8s %6s %8s %12s %12s %11s %11s\n", "policy", "imbalance", "gap", "rebal",
         "moves", "bytes_moved", "cross_node", "migration_s", "decision_ms");
  for (int p = 0; p < MP_POLICY_COUNT; p++) {
    if (!ctx->report[p]) continue;
    const mp_policy_result *r = &res->policy[p];
    char gap[16] = "-";
    if (p != MP_POLICY_STATIC && !isnan(r->gap_to_oracle))
      snprintf(gap, sizeof gap, "%.4f", r->gap_to_oracle);
    printf("%-15s %9.4f %8s %6" PRId64 " %8" PRId64 " %12.4g %12.4g %11.4f %11.3f\n",
           mp_policy_name(p), r->imbalance, gap, r->rebalances, r->moves, r->bytes_moved,
           r->cross_node_bytes, r->migration_s, r->decision_ms);
  }
}

int main(int argc, char **argv) {
  enum { O_TRACE = 256, O_RANKS, O_SLOTS, O_NODES, O_TOPOLOGY, O_INTERVAL, O_WINDOW, O_HORIZON,
         O_PREDICTOR, O_POLICIES, O_SEED, O_BYTES, O_WEIGHT, O_BUDGET, O_BW_NUMA, O_BW_PACKAGE,
         O_BW_NODE, O_BW_NETWORK, O_JSON, O_TIMELINE, O_QUIET, O_MIN_GAIN, O_STEP_MS,
         O_TIME_BUDGET, O_GROUPS, O_SHARES, O_SPREAD, O_WARMUP, O_SAMPLES };
  static const struct option opts[] = {
      {"help", no_argument, NULL, 'h'},        {"trace", required_argument, NULL, O_TRACE},
      {"ranks", required_argument, NULL, O_RANKS}, {"slots", required_argument, NULL, O_SLOTS},
      {"nodes", required_argument, NULL, O_NODES}, {"topology", required_argument, NULL, O_TOPOLOGY},
      {"interval", required_argument, NULL, O_INTERVAL}, {"window", required_argument, NULL, O_WINDOW},
      {"horizon", required_argument, NULL, O_HORIZON}, {"predictor", required_argument, NULL, O_PREDICTOR},
      {"policies", required_argument, NULL, O_POLICIES}, {"seed", required_argument, NULL, O_SEED},
      {"expert-bytes", required_argument, NULL, O_BYTES},
      {"migration-weight", required_argument, NULL, O_WEIGHT},
      {"budget", required_argument, NULL, O_BUDGET},
      {"min-gain", required_argument, NULL, O_MIN_GAIN}, {"bw-numa", required_argument, NULL, O_BW_NUMA},
      {"bw-package", required_argument, NULL, O_BW_PACKAGE},
      {"bw-node", required_argument, NULL, O_BW_NODE},
      {"bw-network", required_argument, NULL, O_BW_NETWORK},
      {"step-ms", required_argument, NULL, O_STEP_MS},
      {"time-budget", required_argument, NULL, O_TIME_BUDGET},
      {"groups", required_argument, NULL, O_GROUPS},
      {"json", required_argument, NULL, O_JSON}, {"timeline", required_argument, NULL, O_TIMELINE},
      {"quiet", no_argument, NULL, O_QUIET},   {"shares", required_argument, NULL, O_SHARES},
      {"spread", required_argument, NULL, O_SPREAD}, {"warmup", required_argument, NULL, O_WARMUP},
      {"samples", required_argument, NULL, O_SAMPLES}, {NULL, 0, NULL, 0}};
  mp_replay_config cfg;
  mp_replay_config_init(&cfg);
  tool_ctx ctx = {.report = {1, 1, 1, 1, 1}, .tty = isatty(STDERR_FILENO)};
  const char *trace_path = NULL, *topo_path = NULL, *json_out = NULL, *timeline_out = NULL;
  long long ranks = 0, nodes = 0, v; // nodes 0: --nodes not given
  double d, bw[MOEPLACE_LINK_CLASSES] = {0}; // GB/s given on the command line (0: not given)
  int c;
#define INT_OPT(name, lo, hi, dst) \
  if (cli_parse_int(prog, name, optarg, lo, hi, &v)) return CLI_EXIT_USAGE; \
  dst = v;
#define BYTES_OPT(name, lo, hi, dst) \
  if (cli_parse_bytes(prog, name, optarg, lo, hi, &d)) return CLI_EXIT_USAGE; \
  dst = d;
#define REAL_OPT(name, lo, hi, dst) \
  if (cli_parse_double(prog, name, optarg, lo, hi, &d)) return CLI_EXIT_USAGE; \
  dst = d;
  cli_set_prog(prog, argv);
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'h': usage(stdout); return CLI_EXIT_OK;
    case O_TRACE: trace_path = optarg; break;
    case O_TOPOLOGY: topo_path = optarg; break;
    case O_RANKS: INT_OPT("--ranks", 1, 1 << 20, ranks) break;
    case O_NODES: INT_OPT("--nodes", 1, 1 << 20, nodes) break;
    case O_SLOTS: INT_OPT("--slots", 1, 1 << 16, cfg.slots) break;
    case O_INTERVAL: INT_OPT("--interval", 1, 1 << 30, cfg.interval) break;
    case O_WINDOW: INT_OPT("--window", 1, 1 << 30, cfg.window) break;
    case O_HORIZON: INT_OPT("--horizon", 1, 1 << 30, cfg.horizon) break;
    case O_SEED: INT_OPT("--seed", 0, INT64_MAX, cfg.seed) break;
    case O_GROUPS: INT_OPT("--groups", 1, 1 << 20, cfg.groups) break;
    case O_WARMUP:
      if (strcmp(optarg, "auto") == 0) {
        cfg.warmup = MP_REPLAY_WARMUP_AUTO;
        break;
      }
      INT_OPT("--warmup", 0, 1 << 30, cfg.warmup) break;
    case O_SAMPLES: INT_OPT("--samples", 0, 1 << 16, cfg.samples) break;
    case O_PREDICTOR: cfg.predictor = optarg; break;
    case O_POLICIES:
      if (parse_policies(optarg, ctx.report)) return CLI_EXIT_USAGE;
      break;
    case O_BYTES: BYTES_OPT("--expert-bytes", 0, 1e15, cfg.expert_bytes) break;
    case O_WEIGHT: REAL_OPT("--migration-weight", 0, 1e30, cfg.migration_weight) break;
    case O_BUDGET: BYTES_OPT("--budget", 0, 1e18, cfg.byte_budget) break;
    case O_MIN_GAIN: REAL_OPT("--min-gain", 0, 1e6, cfg.min_gain) break;
    case O_BW_NUMA: REAL_OPT("--bw-numa", 1e-9, 1e9, bw[MOEPLACE_LINK_SAME_NUMA]) break;
    case O_BW_PACKAGE: REAL_OPT("--bw-package", 1e-9, 1e9, bw[MOEPLACE_LINK_SAME_PACKAGE]) break;
    case O_BW_NODE: REAL_OPT("--bw-node", 1e-9, 1e9, bw[MOEPLACE_LINK_SAME_NODE]) break;
    case O_BW_NETWORK: REAL_OPT("--bw-network", 1e-9, 1e9, bw[MOEPLACE_LINK_OTHER_NODE]) break;
    case O_STEP_MS: REAL_OPT("--step-ms", 0, 1e9, cfg.step_time_s) cfg.step_time_s *= 1e-3; break;
    case O_TIME_BUDGET: REAL_OPT("--time-budget", 0, 1e9, cfg.time_budget_s) break;
    case O_SPREAD: REAL_OPT("--spread", 0, 1e6, cfg.spread) break;
    case O_SHARES:
      if (cli_parse_shares(prog, optarg, &cfg.shares)) return CLI_EXIT_USAGE;
      break;
    case O_JSON: json_out = optarg; break;
    case O_TIMELINE: timeline_out = optarg; break;
    case O_QUIET: ctx.quiet = 1; break;
    default: return CLI_EXIT_USAGE;
    }
  }
  if (cli_no_operands(prog, argc, argv, optind)) return CLI_EXIT_USAGE;
  if (cli_shape_ok(prog, "--trace", trace_path, cfg.slots, ranks, topo_path, &nodes))
    return CLI_EXIT_USAGE;
  const char *in_opts[] = {"--trace", "--topology"};
  const char *inputs[] = {trace_path, topo_path};
  if (cli_inputs_ok(prog, in_opts, inputs, 2)) return CLI_EXIT_USAGE;
  // The library checks these too, naming the config fields; the user typed flags.
  if (cfg.interval % cfg.window) {
    fprintf(stderr, "%s: --interval (%d) must be a positive multiple of --window (%d)\n", prog,
            cfg.interval, cfg.window);
    return CLI_EXIT_USAGE;
  }
  if (cfg.horizon % cfg.window) {
    fprintf(stderr, "%s: --horizon (%d) must be a positive multiple of --window (%d)\n", prog,
            cfg.horizon, cfg.window);
    return CLI_EXIT_USAGE;
  }
  if (ranks && ranks % nodes) {
    fprintf(stderr, "%s: --ranks (%lld) must be a multiple of --nodes (%lld)\n", prog, ranks, nodes);
    return CLI_EXIT_USAGE;
  }
  if (cfg.warmup == MP_REPLAY_WARMUP_AUTO) // the JSON states the step it used
    cfg.warmup = (int)mp_warmup_auto(cfg.interval, cfg.window, 0);

  moeplace_topology *topo = NULL;
  int rc = topo_path ? moeplace_topology_load(&topo, topo_path)
                     : moeplace_topology_create_shape(&topo, (int)nodes, (int)(ranks / nodes), 1, 1);
  for (int k = MOEPLACE_LINK_SAME_NUMA; rc == MOEPLACE_OK && k < MOEPLACE_LINK_CLASSES; k++)
    if (bw[k] > 0) rc = moeplace_topology_set_bandwidth(topo, (moeplace_link_class)k, bw[k] * 1e9);
  if (rc) {
    moeplace_topology_destroy(topo);
    return cli_report(prog, rc);
  }
  moeplace_trace *trace = NULL;
  mp_replay_result res = {0};
  mp_atomic_file timeline_file = {.fd = -1};
  int exit_code = CLI_EXIT_OK;
  const char *out_opts[] = {"--json", "--timeline"};
  const char *outputs[] = {json_out, timeline_out};
  if ((exit_code = cli_outputs_ok(prog, out_opts, outputs, 2))) goto done;
  if ((rc = moeplace_trace_open(&trace, trace_path))) {
    exit_code = cli_report(prog, rc);
    goto done;
  }
  cli_warn_groups(prog, topo, cfg.groups, moeplace_trace_experts(trace));
  ctx.total_steps = ctx.quiet ? 0 : count_steps(trace_path);
  if (timeline_out) {
    if ((rc = mp_atomic_open(&timeline_file, timeline_out))) {
      exit_code = cli_report(prog, rc);
      goto done;
    }
    int fd = dup(timeline_file.fd);
    ctx.timeline = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!ctx.timeline) {
      fprintf(stderr, "%s: %s: cannot write: %s\n", prog, timeline_out, strerror(errno));
      if (fd >= 0) close(fd);
      exit_code = CLI_EXIT_FAILURE;
      goto done;
    }
    fprintf(ctx.timeline, "step");
    for (int p = 0; p < MP_POLICY_COUNT; p++)
      if (ctx.report[p]) fprintf(ctx.timeline, ",%s", mp_policy_name(p));
    fputc('\n', ctx.timeline);
    cfg.on_step = on_step;
  }
  cfg.on_progress = on_progress;
  cfg.ctx = &ctx;
  rc = mp_replay_run(trace, topo, &cfg, &res);
  if (ctx.tty && !ctx.quiet && ctx.total_steps) fputc('\n', stderr);
  if (!rc) cli_report_gaps(prog, trace); // intervals and windows count recorded steps
  if (ctx.timeline) {
    errno = 0;
    if ((ferror(ctx.timeline) | fclose(ctx.timeline)) && !ctx.write_errno)
      ctx.write_errno = errno ? errno : EIO;
    ctx.timeline = NULL;
  }
  if (ctx.write_errno) { // before rc: the replay stops with MOEPLACE_ERR_IO and no message
    fprintf(stderr, "%s: %s: write failed: %s\n", prog, timeline_out, strerror(ctx.write_errno));
    exit_code = CLI_EXIT_FAILURE;
    goto done;
  }
  if (rc) {
    exit_code = cli_report(prog, rc);
    goto done;
  }
  if (timeline_out && (rc = mp_atomic_commit(&timeline_file, 0))) {
    exit_code = cli_report(prog, rc);
    goto done;
  }
  if (json_out) {
    json_t *doc = results_json(&res, &cfg, &ctx, trace_path, (int)moeplace_topology_nodes(topo));
    rc = doc ? mp_json_write_file(doc, json_out) : MOEPLACE_ERR_NOMEM;
    json_decref(doc);
    if (rc) exit_code = cli_report(prog, rc);
  }
  if (exit_code == CLI_EXIT_OK && !cli_writes_stdout(outputs, 2)) {
    printf("%s: %" PRId64 " steps, %d layers x %d experts on %d ranks x %d slots (%d nodes), "
           "interval %d, predictor %s\n",
           trace_path, res.steps, res.layers, res.experts, res.ranks, res.slots,
           moeplace_topology_nodes(topo), cfg.interval, cfg.predictor);
    print_table(&res, &ctx);
  }
done:
  mp_replay_result_free(&res);
  if (timeline_out && timeline_file.tmp_path) mp_atomic_abort(&timeline_file, 0);
  moeplace_trace_close(trace);
  moeplace_topology_destroy(topo);
  return cli_stdout_done(prog, exit_code);
}
