/* moeplace-place: compute a placement of expert replicas from a load trace. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <moeplace.h>

#include "common/atomic_file.h"
#include "common/input_name.h"
#include "tools/cli.h"

static const char *prog = "moeplace-place";

static void usage(FILE *out) {
  fprintf(out,
          "Usage: moeplace-place --loads TRACE (--ranks R [--nodes N] | --topology FILE)\n"
          "                      --slots S [OPTIONS]\n"
          "\n"
          "Places the replicas of every layer's experts on R ranks x S slots so that the\n"
          "busiest rank's load is as close as possible to the mean, staying close to a\n"
          "current placement when one is given (docs/PLACEMENT.md).\n"
          "\n"
          "Input:\n"
          "  --loads FILE            load trace (docs/trace-format.md); its steps are summed\n"
          "  --steps A:B             only steps A <= step < B (A: or :B leave a side open)\n"
          "  --ranks R               number of ranks (with --nodes: R / N ranks per node)\n"
          "  --nodes N               nodes of equal size (default 1)\n"
          "  --topology FILE         cluster-shape file instead of --ranks/--nodes\n"
          "  --slots S               expert slots per rank per layer (R x S >= experts)\n"
          "  --current FILE          placement in force: a JSON this tool wrote, or an EPLB\n"
          "                          map ({\"ranks\", \"slots\", \"phy2log\": [layers][R*S]}:\n"
          "                          equal shares; two replicas of one expert on a rank are\n"
          "                          merged, with a warning, and the plan repairs them);\n"
          "                          its logcnt/log2phy, and a written JSON's top-level maps,\n"
          "                          must agree with the map read (docs/PLACEMENT.md)\n"
          "  --groups G              experts form G contiguous groups (EPLB's num_groups);\n"
          "                          with N > 1 equal nodes dividing G every group's replicas\n"
          "                          stay on one node (node-limited routing; otherwise placed\n"
          "                          as without groups, as EPLB, with a warning)\n"
          "Objective:\n"
          "  --expert-bytes B        bytes of one expert replica (default 1)\n"
          "  --migration-weight W    load units one unit of migration cost is worth\n"
          "                          (cost = bytes x link-class cost; default 0)\n"
          "  --budget B              hard cap on bytes moved (default unlimited)\n"
          "  --min-gain G            a change must gain more than G x mean rank load\n"
          "                          (default 0.002)\n"
          "  --step-ms T             price the change in seconds: the experts' part of a\n"
          "                          step takes T ms at perfect balance; move only if the\n"
          "                          time saved over --horizon steps exceeds the modelled\n"
          "                          migration time (docs/PLACEMENT.md; default 0: off)\n"
          "  --horizon N             steps the placement stays in force (default 500)\n"
          "  --time-budget S         modelled migration seconds allowed (default unlimited)\n"
          "  --iterations N          local-search iterations per layer (default 64)\n"
          "  --time-limit-ms T       soft time limit of the local search; 0 skips it (default: no limit)\n"
          "  --shares POLICY         weighted: each replica its own optimised share (default);\n"
          "                          even: every replica of an expert gets 1/n of its tokens,\n"
          "                          as vLLM/SGLang/EPLB routers split (counts and positions\n"
          "                          are optimised for that)\n"
          "  --fill                  every slot holds a replica, as in EPLB's maps (with\n"
          "                          --shares even; docs/PLACEMENT.md \"Filling every slot\")\n"
          "Output:\n"
          "  --json FILE             placement and stats as JSON (written atomically;\n"
          "                          accepted back as --current)\n"
          "  --plan FILE             migration plan from --current as JSON transfers (slots\n"
          "                          global, rank x S + local slot, and local)\n"
          "  --help                  this text\n"
          "\n"
          "Prints the figures (imbalance, lower bound, moves...) on stdout.\n"
          "Exit status: 0 success, 1 failure, 2 bad usage or malformed input.\n");
}

/* Written like every output (common/atomic_file.h): never half-written,
 * and a write error names the file. */
static int write_plan(const moeplace_transfer *tr, size_t n, int S, const char *path) {
  mp_atomic_file af;
  int rc = mp_atomic_open(&af, path);
  if (rc) return cli_report(prog, rc);
  int fd = dup(af.fd);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (!f) {
    int err = errno;
    if (fd >= 0) close(fd);
    mp_atomic_abort(&af, 0);
    fprintf(stderr, "%s: %s: cannot write: %s\n", prog, path, strerror(err));
    return CLI_EXIT_FAILURE;
  }
  // src_slot / dst_slot are global physical slots (rank x S + local slot,
  // the index of phy2log); the *_local_slot fields are the slot in the rank
  fprintf(f, "{\"slots\": %d, \"transfers\": [", S);
  for (size_t i = 0; i < n; i++)
    fprintf(f,
            "%s\n  {\"layer\": %d, \"expert\": %d, \"src_rank\": %d, \"src_slot\": %d, "
            "\"src_local_slot\": %d, \"dst_rank\": %d, \"dst_slot\": %d, "
            "\"dst_local_slot\": %d, \"link\": %d, \"bytes\": %.17g}",
            i ? "," : "", tr[i].layer, tr[i].expert, tr[i].src_rank, tr[i].src_slot,
            tr[i].src_slot % S, tr[i].dst_rank, tr[i].dst_slot, tr[i].dst_slot % S,
            (int)tr[i].link, tr[i].bytes);
  fprintf(f, "\n]}\n");
  int bad = ferror(f);
  int err = bad ? errno : 0;
  if (fclose(f) != 0 && !bad) bad = 1, err = errno;
  if (bad) {
    mp_atomic_abort(&af, 0);
    fprintf(stderr, "%s: %s: write failed: %s\n", prog, path, err ? strerror(err) : "I/O error");
    return CLI_EXIT_FAILURE;
  }
  if ((rc = mp_atomic_commit(&af, 0))) return cli_report(prog, rc);
  return CLI_EXIT_OK;
}

/* The human report on stdout: the figures of moeplace-place's result. */
static void print_report(const moeplace_place_stats *st, const moeplace_place_options *opt,
                         const moeplace_topology *topo, int64_t used, int L, int E, long long slots,
                         int with_current) {
  printf("steps %" PRId64 "  layers %d  experts %d  ranks %d  slots %lld\n", used, L, E,
         moeplace_topology_ranks(topo), slots);
  printf("imbalance %.6f  lower_bound %.6f  gap %.4f%%  solve_ms %.3f\n", st->imbalance,
         st->lower_bound, 100 * st->gap, st->solve_ms);
  if (st->groups > 1) printf("groups %d  nodes %d  split_groups %d\n", st->groups,
                            moeplace_topology_nodes(topo), st->split_groups);
  printf("shares %s  imbalance %.6f  lower_bound %.6f  gap %.4f%%  solve_ms %.3f\n",
         opt->shares == MOEPLACE_SHARES_EVEN ? "even" : "weighted", st->imbalance, st->lower_bound,
         100 * st->gap, st->solve_ms);
  if (!with_current) return;
  printf("current_imbalance %.6f  kept_current %s  moves %" PRId64
         "  bytes_moved %.0f  cross_node_bytes %.0f\n",
         st->current_imbalance, st->kept_current ? "yes" : "no", st->moves, st->bytes_moved,
         st->cross_node_bytes);
  printf("migration_s %.6f  saving_s %.6f\n", st->migration_s, st->saving_s);
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"loads", required_argument, NULL, 'l'},     {"steps", required_argument, NULL, 'p'},
      {"ranks", required_argument, NULL, 'r'},     {"nodes", required_argument, NULL, 'n'},
      {"topology", required_argument, NULL, 't'},  {"slots", required_argument, NULL, 's'},
      {"current", required_argument, NULL, 'c'},   {"expert-bytes", required_argument, NULL, 'b'},
      {"migration-weight", required_argument, NULL, 'w'},
      {"budget", required_argument, NULL, 'B'},    {"min-gain", required_argument, NULL, 'g'},
      {"iterations", required_argument, NULL, 'i'},
      {"time-limit-ms", required_argument, NULL, 'T'},
      {"step-ms", required_argument, NULL, 'S'},  {"horizon", required_argument, NULL, 'H'},
      {"time-budget", required_argument, NULL, 'D'},
      {"json", required_argument, NULL, 'j'},      {"plan", required_argument, NULL, 'P'},
      {"groups", required_argument, NULL, 'G'},
      {"shares", required_argument, NULL, 'x'},   {"fill", no_argument, NULL, 'f'},
      {"help", no_argument, NULL, 'h'},            {NULL, 0, NULL, 0}};
  const char *loads_path = NULL, *topo_path = NULL, *cur_path = NULL, *json_path = NULL,
             *plan_path = NULL;
  // nodes 0: --nodes not given
  long long ranks = 0, nodes = 0, slots = 0, iters = -1, groups = 0, horizon = -1;
  int64_t step_a = 0, step_b = INT64_MAX;
  moeplace_place_options opt;
  moeplace_place_options_init(&opt);
  int c;
  cli_set_prog(prog, argv);
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    int bad = 0;
    switch (c) {
    case 'h': usage(stdout); return CLI_EXIT_OK;
    case 'l': loads_path = optarg; break;
    case 'p':
      if (cli_parse_step_range(prog, "--steps", optarg, &step_a, &step_b)) return CLI_EXIT_USAGE;
      break;
    case 'r': bad = cli_parse_int(prog, "--ranks", optarg, 1, 1 << 20, &ranks); break;
    case 'n': bad = cli_parse_int(prog, "--nodes", optarg, 1, 1 << 20, &nodes); break;
    case 't': topo_path = optarg; break;
    case 's': bad = cli_parse_int(prog, "--slots", optarg, 1, 1 << 20, &slots); break;
    case 'c': cur_path = optarg; break;
    case 'b':
      bad = cli_parse_bytes(prog, "--expert-bytes", optarg, 0, 1e18, &opt.expert_bytes);
      break;
    case 'w':
      bad = cli_parse_double(prog, "--migration-weight", optarg, 0, 1e18, &opt.migration_weight);
      break;
    case 'B': bad = cli_parse_bytes(prog, "--budget", optarg, 0, 1e18, &opt.byte_budget); break;
    case 'g': bad = cli_parse_double(prog, "--min-gain", optarg, 0, 1e6, &opt.min_gain); break;
    case 'i': bad = cli_parse_int(prog, "--iterations", optarg, 0, 1 << 20, &iters); break;
    case 'T':
      bad = cli_parse_double(prog, "--time-limit-ms", optarg, 0, 1e9, &opt.time_limit_ms);
      break;
    case 'S':
      bad = cli_parse_double(prog, "--step-ms", optarg, 0, 1e9, &opt.step_time_s);
      opt.step_time_s *= 1e-3;
      break;
    case 'H': bad = cli_parse_int(prog, "--horizon", optarg, 1, 1000000000000LL, &horizon); break;
    case 'D': bad = cli_parse_double(prog, "--time-budget", optarg, 0, 1e9, &opt.time_budget_s); break;
    case 'G': bad = cli_parse_int(prog, "--groups", optarg, 1, 1 << 20, &groups); break;
    case 'x': bad = cli_parse_shares(prog, optarg, &opt.shares); break;
    case 'f': opt.fill_slots = 1; break;
    case 'j': json_path = optarg; break;
    case 'P': plan_path = optarg; break;
    default: fprintf(stderr, "%s: see --help\n", prog); return CLI_EXIT_USAGE;
    }
    if (bad) return CLI_EXIT_USAGE;
  }
  if (iters >= 0) opt.max_iterations = (int)iters;
  if (horizon > 0) opt.horizon_steps = (double)horizon;
  opt.groups = (int)groups;
  if (cli_no_operands(prog, argc, argv, optind)) return CLI_EXIT_USAGE;
  if (cli_shape_ok(prog, "--loads", loads_path, slots, ranks, topo_path, &nodes))
    return CLI_EXIT_USAGE;
  if (opt.fill_slots && opt.shares != MOEPLACE_SHARES_EVEN) {
    fprintf(stderr, "%s: --fill needs --shares even (weighted placements keep their shares)\n",
            prog);
    return CLI_EXIT_USAGE;
  }
  const char *in_opts[] = {"--loads", "--topology", "--current"};
  const char *inputs[] = {loads_path, topo_path, cur_path};
  if (cli_inputs_ok(prog, in_opts, inputs, 3)) return CLI_EXIT_USAGE;
  if (plan_path && !cur_path) {
    fprintf(stderr, "%s: --plan needs --current\n", prog);
    return CLI_EXIT_USAGE;
  }
  const char *out_opts[] = {"--json", "--plan"};
  const char *outputs[] = {json_path, plan_path};
  int bad_out = cli_outputs_ok(prog, out_opts, outputs, 2);
  if (bad_out) return bad_out;
  moeplace_topology *topo = NULL;
  moeplace_placement *cur = NULL, *res = NULL;
  moeplace_trace *tr = NULL;
  uint64_t *counts = NULL;
  double *loads = NULL;
  int rc, exit_code = CLI_EXIT_OK;
  if (topo_path) {
    rc = moeplace_topology_load(&topo, topo_path);
  } else {
    if (ranks % nodes) {
      fprintf(stderr, "%s: --ranks %lld is not a multiple of --nodes %lld\n", prog, ranks, nodes);
      return CLI_EXIT_USAGE;
    }
    rc = moeplace_topology_create_shape(&topo, (int)nodes, (int)(ranks / nodes), 1, 1);
  }
  if (rc) return cli_report(prog, rc);
  if ((rc = moeplace_trace_open(&tr, loads_path))) goto fail;
  const int L = moeplace_trace_layers(tr), E = moeplace_trace_experts(tr);
  cli_warn_groups(prog, topo, opt.groups, E);
  counts = malloc((size_t)L * E * sizeof *counts);
  loads = calloc((size_t)L * E, sizeof *loads);
  if (!counts || !loads) {
    fprintf(stderr, "%s: out of memory\n", prog);
    exit_code = CLI_EXIT_FAILURE;
    goto out;
  }
  int64_t step, used = 0;
  while ((rc = moeplace_trace_read_step(tr, &step, counts)) == 1) {
    if (step < step_a || step >= step_b) continue; // read to the end: a bad line is an error
    for (size_t i = 0; i < (size_t)L * E; i++) loads[i] += (double)counts[i];
    used++;
  }
  if (rc < 0) goto fail;
  cli_report_gaps(prog, tr);
  if (used == 0) {
    fprintf(stderr, "%s: %s: no steps in the requested range\n", prog, moeplace_trace_name(tr));
    exit_code = CLI_EXIT_USAGE;
    goto out;
  }
  if (cur_path) {
    const char *cur_name = mp_input_name(cur_path); // as the reader names it
    int dups = 0;
    if ((rc = moeplace_placement_read_json_repair(&cur, cur_path, &dups))) goto fail;
    if (dups)
      fprintf(stderr,
              "%s: warning: %s: %d replica(s) duplicated on a rank (as EPLB allows) merged "
              "into one slot per rank; the result and the plan hold none\n",
              prog, cur_name, dups);
    if (moeplace_placement_layers(cur) != L || moeplace_placement_experts(cur) != E ||
        moeplace_placement_ranks(cur) != moeplace_topology_ranks(topo) ||
        moeplace_placement_slots(cur) != slots) {
      fprintf(stderr,
              "%s: %s: current placement is %d layers x %d experts on %d ranks x %d slots, "
              "but the problem is %d x %d on %d x %lld\n",
              prog, cur_name, moeplace_placement_layers(cur), moeplace_placement_experts(cur),
              moeplace_placement_ranks(cur), moeplace_placement_slots(cur), L, E,
              moeplace_topology_ranks(topo), slots);
      if (moeplace_placement_experts(cur) < E) // a map without "experts" counts its largest id
        fprintf(stderr, "%s: %s: expert %d has no replica in it\n", prog, cur_name, E - 1);
      exit_code = CLI_EXIT_USAGE;
      goto out;
    }
  }
  moeplace_place_stats st;
  if ((rc = moeplace_place(topo, L, E, (int)slots, loads, cur, &opt, &res, &st))) goto fail;
  if (!cli_writes_stdout(outputs, 2)) print_report(&st, &opt, topo, used, L, E, slots, cur != NULL);
  if (json_path && (rc = moeplace_placement_write_json(res, &st, json_path))) goto fail;
  if (plan_path) {
    moeplace_transfer *t;
    size_t n;
    if ((rc = moeplace_migration_plan(cur, res, topo, opt.expert_bytes, &t, &n))) goto fail;
    int w = write_plan(t, n, (int)slots, plan_path);
    moeplace_transfers_free(t);
    if (w) exit_code = w;
  }
  goto out;
fail:
  exit_code = cli_report(prog, rc);
out:
  moeplace_trace_close(tr);
  moeplace_topology_destroy(topo);
  moeplace_placement_destroy(cur);
  moeplace_placement_destroy(res);
  free(counts);
  free(loads);
  return cli_stdout_done(prog, exit_code);
}
