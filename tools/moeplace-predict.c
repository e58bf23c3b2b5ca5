/* moeplace-predict: backtest the load forecasters on a recorded trace.
 *
 * For every forecast origin (advancing one window at a time, each forecast
 * using only the windows up to the origin), every predictor forecasts the
 * mean load proportion of each expert over the next H steps; the forecast is
 * scored against what happened (docs/metrics.md: mape, mae_pp, split by the
 * layer's transient/stable state at the origin). The engine is the
 * library's moeplace_backtest_run (predict/backtest.c); this tool parses the
 * options, calls it and prints. With --bench it times one forecast of each
 * predictor for a large synthetic model instead. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h> // openblas_get_corename
#include <jansson.h>
#include <moeplace.h>

#include "common/atomic_file.h"
#include "common/json_file.h"
#include "common/timer.h"
#include "tools/cli.h"

static const char *prog = "moeplace-predict";

#define MAX_PRED 16

static void usage(FILE *out) {
  fprintf(out, "Usage: moeplace-predict --trace FILE [OPTIONS]\n"
               "       moeplace-predict --bench [--layers L] [--experts E] [OPTIONS]\n"
               "\n"
               "Backtests load forecasters on a trace (docs/PREDICT.md, metrics in\n"
               "docs/metrics.md): at every forecast origin, one window apart, each predictor\n"
               "forecasts the load proportions of the next H steps from the past only, and is\n"
               "scored against them. The reference `last` is always included.\n"
               "\n"
               "  --trace FILE          expert-load trace (.csv or .csv.gz, - for stdin)\n"
               "  --window W            steps per window (default 10)\n"
               "  --horizon H           steps forecast, a multiple of W (default 1000)\n"
               "  --predictor NAME|all  one of:");
  for (int i = 0; i < moeplace_predict_method_count(); i++)
    fprintf(out, " %s", moeplace_predict_method_name(i));
  fprintf(out,
          "; or all (default)\n"
          "  --json OUT            write the figures as JSON (atomically; - for stdout)\n"
          "  --series OUT.csv      write actual and predicted proportions of one layer\n"
          "                        at every origin (for scripts/plot_predictions.py)\n"
          "  --series-layer L      the layer --series writes (default 0)\n"
          "  --k K                 sw_avg: windows averaged (default 50)\n"
          "  --min-history N       first origin after N windows (default: detector k)\n"
          "  --detector-k K        state detector: windows (default 20)\n"
          "  --var-threshold V     state detector: variance threshold (default 4e-4)\n"
          "  --range-threshold R   state detector: range threshold (default 0.08)\n"
          "  --hysteresis F        state detector: stable->transient needs F x threshold\n"
          "                        (default 1.5)\n"
          "  --arima-history N     arima: windows fitted on (default 200)\n"
          "  --arima-refit N       arima: windows between refits (default 10)\n"
          "  --auto-power P        auto: weight of a method ~ (best error / its error)^P\n"
          "                        (default 4; 0 = plain average)\n"
          "  --seed S              seed of learned predictors (default 42)\n"
          "  --quiet               no table on stdout, no progress on stderr\n"
          "  --bench               time one forecast of each predictor for a synthetic\n"
          "                        model of --layers x --experts (defaults 64 x 256)\n"
          "                        after --bench-windows windows (default 200) of history\n"
          "  --bench-series OUT    with --bench: write the first --bench-count series\n"
          "                        (default 32) as CSV, for scripts/bench_arima_statsmodels.py\n"
          "  --help                this text\n"
          "\n"
          "Exit status: 0 success, 1 failure, 2 bad usage or malformed input.\n");
}

typedef struct options {
  const char *trace, *json, *series, *predictor, *bench_series;
  int series_layer, min_history, quiet, bench, bench_layers, bench_experts, bench_windows,
      bench_count;
  moeplace_predict_config cfg;
} options;

static json_t *num(double x) { return isfinite(x) ? json_real(x) : json_null(); }

/* ---- the backtest (the engine: moeplace_backtest_run) -------------------- */

/* What the callbacks need: the series file and the progress display. */
typedef struct run_ctx {
  const options *o;
  FILE *ser;
  double t_start, t_last;
  int progress_shown;
} run_ctx;

/* --series: one row per expert of the chosen layer at every origin. */
static int on_origin(void *vctx, const moeplace_backtest_origin *g) {
  run_ctx *ctx = vctx;
  if (!ctx->ser || g->layer != ctx->o->series_layer) return MOEPLACE_OK;
  for (int e = 0; e < g->experts; e++) {
    fprintf(ctx->ser, "%" PRId64 ",%" PRId64 ",%d,%.9g", g->origin_step, g->end_step, e,
            g->actual[e]);
    for (int i = 0; i < g->methods; i++)
      fprintf(ctx->ser, ",%.9g", g->forecast[(size_t)i * g->experts + e]);
    fputc('\n', ctx->ser);
  }
  return MOEPLACE_OK;
}

static void on_progress(void *vctx, int64_t done, int64_t total) {
  run_ctx *ctx = vctx;
  const double now = mp_now_s();
  if (ctx->o->quiet || now - ctx->t_last < 1.0) return;
  ctx->t_last = now;
  ctx->progress_shown = 1;
  fprintf(stderr, "%s: origin %" PRId64 "/%" PRId64 " (%.0f%%), %.0f s%s", prog, done, total,
          100.0 * done / total, now - ctx->t_start, isatty(2) ? "\r" : "\n");
}

/* The methods scored besides `last`: the requested one, or all of them. */
static int method_list(const options *o, const char **names) {
  int n = 0;
  for (int i = 0; i < moeplace_predict_method_count() && n < MAX_PRED; i++) {
    const char *m = moeplace_predict_method_name(i);
    if (strcmp(m, "last") && (!strcmp(o->predictor, "all") || !strcmp(o->predictor, m)))
      names[n++] = m;
  }
  return n;
}

/* The library rejected a parameter the trace does not allow: say it with
 * the flag the user typed (same checks, same order as the library's). */
static int history_usage(const options *o, const moeplace_backtest_result *r) {
  const int W = o->cfg.window, Hw = o->cfg.horizon / W;
  const int n0 = o->min_history > 0 ? o->min_history : o->cfg.detector.k;
  const int N = (int)r->windows;
  if (N < n0 + Hw)
    fprintf(stderr,
            "%s: %s: trace too short for one forecast origin: %d complete windows of %d steps, "
            "need %d of history (--min-history) + %d of horizon\n",
            prog, o->trace, N, W, n0, Hw);
  else if (o->cfg.detector.k > N - Hw)
    fprintf(stderr,
            "%s: --detector-k %d is larger than the history available at the last origin (%d "
            "windows)\n",
            prog, o->cfg.detector.k, N - Hw);
  else if (o->cfg.sw_avg_k > N - Hw)
    fprintf(stderr,
            "%s: --k %d is larger than the history available at the last origin (%d windows)\n",
            prog, o->cfg.sw_avg_k, N - Hw);
  else
    return cli_report(prog, MOEPLACE_ERR_ARG);
  return CLI_EXIT_USAGE;
}

static void print_notes(const options *o, const moeplace_backtest_result *r) {
  if (o->quiet) return;
  if (r->stride > 1 || r->irregular)
    fprintf(stderr,
            "%s: note: %s: steps are sampled every %" PRId64 " steps%s: a window is %d recorded "
            "steps and the horizon %d recorded steps\n",
            prog, o->trace, r->stride, r->irregular ? " (with irregular gaps)" : "", o->cfg.window,
            o->cfg.horizon);
  if (r->partial_steps)
    fprintf(stderr, "%s: note: the last %d steps do not fill a window of %d and are left out\n",
            prog, r->partial_steps, o->cfg.window);
}

static void print_table(const options *o, const moeplace_backtest_result *r) {
  const int W = o->cfg.window, H = o->cfg.horizon;
  printf("trace %s: %" PRId64 " windows of %d steps, %d layers x %d experts, horizon %d steps "
         "(%d windows), %" PRId64 " origins from step %" PRId64 "\n\n",
         o->trace, r->windows, W, r->layers, r->experts, H, H / W, r->origins,
         r->first_origin_step);
  printf("%-10s %9s %12s %11s %9s %11s %10s %8s %12s %11s\n", "predictor", "mape%", "mape_trans%",
         "mape_stab%", "mae_pp", "mae_pp_tr", "mae_pp_st", "origins", "forecast_us", "observe_us");
  for (int i = 0; i < r->n_methods; i++) {
    const moeplace_backtest_method *m = &r->method[i];
    printf("%-10s %9.3f %12.3f %11.3f %9.4f %11.4f %10.4f %8" PRId64 " %12.1f %11.1f\n", m->name,
           m->mape[MOEPLACE_BACKTEST_ALL], m->mape[MOEPLACE_STATE_TRANSIENT],
           m->mape[MOEPLACE_STATE_STABLE], m->mae_pp[MOEPLACE_BACKTEST_ALL],
           m->mae_pp[MOEPLACE_STATE_TRANSIENT], m->mae_pp[MOEPLACE_STATE_STABLE], m->origins,
           m->forecast_us, m->observe_us);
  }
  printf("\nforecast_us: mean time of one forecast of one layer (all experts); observe_us:\n"
         "of feeding one window to one layer (learning methods train there)\n");
  printf("\nstate changes (layers start transient):\n");
  for (int l = 0; l < r->layers; l++) {
    printf("  layer %d:", l);
    int any = 0;
    for (int64_t c = 0; c < r->n_changes; c++)
      if (r->change[c].layer == l) {
        printf(" %" PRId64 ":%s", r->change[c].step, moeplace_layer_state_name(r->change[c].state));
        any = 1;
      }
    printf("%s\n", any ? "" : " (none: transient throughout)");
  }
}

static json_t *method_json(const moeplace_backtest_method *m) {
  const int A = MOEPLACE_BACKTEST_ALL, T = MOEPLACE_STATE_TRANSIENT, S = MOEPLACE_STATE_STABLE;
  json_t *p = json_object();
  json_object_set_new(p, "mape", num(m->mape[A]));
  json_object_set_new(p, "mae_pp", num(m->mae_pp[A]));
  json_object_set_new(p, "mape_transient", num(m->mape[T]));
  json_object_set_new(p, "mape_stable", num(m->mape[S]));
  json_object_set_new(p, "mae_pp_transient", num(m->mae_pp[T]));
  json_object_set_new(p, "mae_pp_stable", num(m->mae_pp[S]));
  json_object_set_new(p, "mape_skipped", json_integer(m->mape_skipped));
  json_object_set_new(p, "origins", json_integer(m->origins));
  json_object_set_new(p, "layer_origins_transient", json_integer(m->layer_origins[T]));
  json_object_set_new(p, "layer_origins_stable", json_integer(m->layer_origins[S]));
  json_object_set_new(p, "forecast_us", num(m->forecast_us));
  json_object_set_new(p, "observe_us", num(m->observe_us));
  return p;
}

static int write_json(const options *o, const moeplace_backtest_result *r) {
  json_t *root = json_object(), *preds = json_object(), *states = json_array();
  json_object_set_new(root, "trace", json_string(o->trace));
  json_object_set_new(root, "steps", json_integer((json_int_t)r->windows * o->cfg.window));
  json_object_set_new(root, "layers", json_integer(r->layers));
  json_object_set_new(root, "experts", json_integer(r->experts));
  json_object_set_new(root, "window", json_integer(o->cfg.window));
  json_object_set_new(root, "horizon", json_integer(o->cfg.horizon));
  json_object_set_new(root, "first_origin_step", json_integer(r->first_origin_step));
  // ARIMA's and the LSTM's sums round by these kernels (docs/REPLAY.md, "Repeating figures")
  json_object_set_new(root, "blas_core", json_string(openblas_get_corename()));
  json_t *det_cfg =
      json_pack("{s:i,s:f,s:f,s:f}", "k", o->cfg.detector.k, "var_threshold",
                o->cfg.detector.var_threshold, "range_threshold", o->cfg.detector.range_threshold,
                "hysteresis", o->cfg.detector.hysteresis);
  json_object_set_new(root, "detector", det_cfg);
  json_object_set_new(root, "sw_avg_k", json_integer(o->cfg.sw_avg_k));
  for (int i = 0; i < r->n_methods; i++)
    json_object_set_new(preds, r->method[i].name, method_json(&r->method[i]));
  json_object_set_new(root, "predictors", preds);
  for (int l = 0; l < r->layers; l++) {
    json_t *arr = json_array();
    for (int64_t c = 0; c < r->n_changes; c++)
      if (r->change[c].layer == l)
        json_array_append_new(arr, json_pack("{s:I,s:s}", "step", (json_int_t)r->change[c].step,
                                             "state", moeplace_layer_state_name(r->change[c].state)));
    json_array_append_new(states, json_pack("{s:i,s:o}", "layer", l, "changes", arr));
  }
  json_object_set_new(root, "states", states);
  int rc = mp_json_write_file(root, o->json);
  json_decref(root);
  return rc;
}

/* A stdio stream on a duplicate of the output's descriptor, so that fclose
 * never closes stdout ("-") and the commit still fsyncs a file; NULL after
 * a message. */
static FILE *stream_open(const char *path, mp_atomic_file *af) {
  if (mp_atomic_open(af, path)) {
    fprintf(stderr, "%s: %s\n", prog, moeplace_last_error());
    return NULL;
  }
  int fd = dup(af->fd);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (!f) {
    fprintf(stderr, "%s: %s: cannot write: %s\n", prog, path, strerror(errno));
    if (fd >= 0) close(fd);
    mp_atomic_abort(af, 0);
  }
  return f;
}

/* Closes the stream and commits the output; 0, or -1 after "FILE: write
 * failed: REASON" (nothing left behind). */
static int stream_commit(const char *path, mp_atomic_file *af, FILE *f) {
  int err = ferror(f) ? (errno ? errno : EIO) : 0;
  errno = 0;
  if (fclose(f) != 0 && !err) err = errno ? errno : EIO;
  if (err) {
    mp_atomic_abort(af, 0);
    fprintf(stderr, "%s: %s: write failed: %s\n", prog, path, strerror(err));
    return -1;
  }
  if (mp_atomic_commit(af, 0)) {
    fprintf(stderr, "%s: %s\n", prog, moeplace_last_error());
    return -1;
  }
  return 0;
}

/* Closes the stream and removes the output. */
static void stream_abort(mp_atomic_file *af, FILE *f) {
  fclose(f);
  mp_atomic_abort(af, 0);
}

/* Opens the --series file and writes its header. */
static int open_series(const options *o, mp_atomic_file *af, FILE **f, const char **names, int n) {
  if (!(*f = stream_open(o->series, af))) return -1;
  fprintf(*f, "origin_step,end_step,expert,actual,last");
  for (int i = 0; i < n; i++) fprintf(*f, ",%s", names[i]);
  fprintf(*f, "\n");
  return 0;
}

static int run_backtest(const options *o) {
  const char *out_opts[] = {"--json", "--series"};
  const char *outputs[] = {o->json, o->series};
  int bad_out = cli_outputs_ok(prog, out_opts, outputs, 2);
  if (bad_out) return bad_out;
  moeplace_trace *t;
  int rc = moeplace_trace_open(&t, o->trace);
  if (rc) return cli_report(prog, rc);
  if (o->series && (o->series_layer < 0 || o->series_layer >= moeplace_trace_layers(t))) {
    fprintf(stderr, "%s: --series-layer %d: the trace has layers 0..%d\n", prog, o->series_layer,
            moeplace_trace_layers(t) - 1);
    moeplace_trace_close(t);
    return CLI_EXIT_USAGE;
  }
  const char *names[MAX_PRED];
  moeplace_backtest_config cfg;
  moeplace_backtest_config_init(&cfg);
  cfg.predict = o->cfg;
  cfg.methods = names;
  cfg.n_methods = method_list(o, names);
  cfg.min_history = o->min_history;
  run_ctx ctx = {.o = o, .t_start = mp_now_s()};
  ctx.t_last = ctx.t_start;
  cfg.on_origin = on_origin;
  cfg.on_progress = on_progress;
  cfg.ctx = &ctx;
  mp_atomic_file ser_file = {0};
  if (o->series && open_series(o, &ser_file, &ctx.ser, names, cfg.n_methods)) {
    moeplace_trace_close(t);
    return CLI_EXIT_FAILURE;
  }
  moeplace_backtest_result res;
  rc = moeplace_backtest_run(t, &cfg, &res);
  moeplace_trace_close(t);
  if (ctx.progress_shown && isatty(2)) fputc('\n', stderr);
  if (res.windows >= 0) print_notes(o, &res);
  int ret = CLI_EXIT_OK;
  if (rc == MOEPLACE_ERR_ARG && res.windows >= 0)
    ret = history_usage(o, &res);
  else if (rc)
    ret = cli_report(prog, rc);
  if (ctx.ser && rc) { // nothing half-written is left behind
    stream_abort(&ser_file, ctx.ser);
  } else if (ctx.ser && stream_commit(o->series, &ser_file, ctx.ser)) {
    ret = CLI_EXIT_FAILURE;
  }
  if (ret == CLI_EXIT_OK && !o->quiet && !cli_writes_stdout(outputs, 2)) print_table(o, &res);
  if (ret == CLI_EXIT_OK && o->json && (rc = write_json(o, &res))) ret = cli_report(prog, rc);
  moeplace_backtest_result_free(&res);
  return ret;
}

/* ---- the benchmark ------------------------------------------------------ */

/* Deterministic synthetic loads: per layer, skewed base proportions that
 * drift slowly (a random walk in log space) plus window-to-window noise,
 * like the recorded traces. props: [windows][L][E]. */
static uint64_t rng_state;
static double urand(void) {
  rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
  return (double)(rng_state >> 11) * 0x1.0p-53;
}
static double nrand(void) {
  double u = urand(), v = urand();
  return sqrt(-2.0 * log(u + 1e-300)) * cos(2 * M_PI * v);
}

static int run_bench(const options *o) {
  const int L = o->bench_layers, E = o->bench_experts, T = o->bench_windows;
  const size_t LE = (size_t)L * E;
  double *props = malloc((size_t)T * LE * sizeof *props), *logit = malloc(LE * sizeof *logit);
  double *out = malloc(LE * sizeof *out);
  if (!props || !logit || !out) {
    free(props);
    free(logit);
    free(out);
    fprintf(stderr, "%s: out of memory for %d windows of %d x %d\n", prog, T, L, E);
    return CLI_EXIT_FAILURE;
  }
  rng_state = o->cfg.seed;
  for (size_t i = 0; i < LE; i++) logit[i] = 0.7 * nrand();
  for (int t = 0; t < T; t++)
    for (int l = 0; l < L; l++) {
      double *p = props + (size_t)t * LE + (size_t)l * E, sum = 0;
      for (int e = 0; e < E; e++) {
        double *g = &logit[(size_t)l * E + e];
        *g += 0.02 * nrand();
        p[e] = exp(*g + 0.15 * nrand());
        sum += p[e];
      }
      for (int e = 0; e < E; e++) p[e] /= sum;
    }
  int ret = CLI_EXIT_OK;
  if (o->bench_series) {
    // the first bench_count series (layer-major), one column each, oldest first
    mp_atomic_file af;
    FILE *f = NULL;
    int n = o->bench_count < (int)LE ? o->bench_count : (int)LE;
    if (!(f = stream_open(o->bench_series, &af))) {
      ret = CLI_EXIT_FAILURE;
    } else {
      for (int j = 0; j < n; j++) fprintf(f, "%ss%d", j ? "," : "", j);
      fputc('\n', f);
      for (int t = 0; t < T; t++)
        for (int j = 0; j < n; j++)
          fprintf(f, "%.17g%c", props[(size_t)t * LE + j], j + 1 < n ? ',' : '\n');
      if (stream_commit(o->bench_series, &af, f)) ret = CLI_EXIT_FAILURE;
    }
  }
  if (!o->quiet)
    printf("bench: %d layers x %d experts, %d windows of history, horizon %d windows; seconds for\n"
           "one forecast of all layers: cold (first; arima fits from scratch), refit (arima\n"
           "refits warm-started), filter (no refit); and per series (layer x expert)\n"
           "%-8s %12s %12s %12s %14s %14s\n",
           L, E, T, o->cfg.horizon / o->cfg.window, "method", "cold_s", "refit_s", "filter_s",
           "cold_us/series", "refit_us/series");
  for (int i = 0; ret == CLI_EXIT_OK && i < moeplace_predict_method_count(); i++) {
    const char *m = moeplace_predict_method_name(i);
    if (strcmp(o->predictor, "all") && strcmp(o->predictor, m)) continue;
    moeplace_predict_config c = o->cfg;
    c.layers = L;
    c.experts = E;
    c.method = m;
    moeplace_forecaster *f;
    int rc = moeplace_forecaster_create(&f, &c);
    if (rc) {
      ret = cli_report(prog, rc);
      break;
    }
    // History: the first T - R windows; then three forecasts: cold (arima
    // selects and fits every order from scratch), after R more windows (a
    // refit, warm-started), after one more window (no refit: filter only).
    const int R = c.arima_refit < T / 2 ? c.arima_refit : T / 2;
    for (int t = 0; t < T - R - 1 && !rc; t++)
      rc = moeplace_forecaster_observe(f, props + (size_t)t * LE) < 0;
    double t0 = mp_now_s();
    if (!rc) rc = moeplace_forecaster_forecast(f, out);
    double cold = mp_now_s() - t0;
    for (int t = T - R - 1; t < T - 1 && !rc; t++)
      rc = moeplace_forecaster_observe(f, props + (size_t)t * LE) < 0;
    t0 = mp_now_s();
    if (!rc) rc = moeplace_forecaster_forecast(f, out);
    double warm = mp_now_s() - t0;
    if (!rc) rc = moeplace_forecaster_observe(f, props + (size_t)(T - 1) * LE) < 0;
    t0 = mp_now_s();
    if (!rc) rc = moeplace_forecaster_forecast(f, out);
    double next = mp_now_s() - t0;
    moeplace_forecaster_destroy(f);
    if (rc) {
      ret = cli_report(prog, MOEPLACE_ERR_NUMERIC);
      break;
    }
    if (!o->quiet)
      printf("%-8s %12.4f %12.4f %12.4f %14.2f %14.2f\n", m, cold, warm, next,
             1e6 * cold / (double)LE, 1e6 * warm / (double)LE);
  }
  free(props);
  free(logit);
  free(out);
  return ret;
}

int main(int argc, char **argv) {
  enum {
    O_K = 256,
    O_MINH,
    O_DK,
    O_VT,
    O_RT,
    O_HY,
    O_AH,
    O_AR,
    O_SEED,
    O_SER,
    O_SERL,
    O_BENCH,
    O_BL,
    O_BE,
    O_BW,
    O_BS,
    O_BC,
    O_AP
  };
  static const struct option opts[] = {{"trace", required_argument, NULL, 't'},
                                       {"window", required_argument, NULL, 'w'},
                                       {"horizon", required_argument, NULL, 'H'},
                                       {"predictor", required_argument, NULL, 'p'},
                                       {"json", required_argument, NULL, 'j'},
                                       {"series", required_argument, NULL, O_SER},
                                       {"series-layer", required_argument, NULL, O_SERL},
                                       {"k", required_argument, NULL, O_K},
                                       {"min-history", required_argument, NULL, O_MINH},
                                       {"detector-k", required_argument, NULL, O_DK},
                                       {"var-threshold", required_argument, NULL, O_VT},
                                       {"range-threshold", required_argument, NULL, O_RT},
                                       {"hysteresis", required_argument, NULL, O_HY},
                                       {"arima-history", required_argument, NULL, O_AH},
                                       {"arima-refit", required_argument, NULL, O_AR},
                                       {"auto-power", required_argument, NULL, O_AP},
                                       {"seed", required_argument, NULL, O_SEED},
                                       {"quiet", no_argument, NULL, 'q'},
                                       {"bench", no_argument, NULL, O_BENCH},
                                       {"layers", required_argument, NULL, O_BL},
                                       {"experts", required_argument, NULL, O_BE},
                                       {"bench-windows", required_argument, NULL, O_BW},
                                       {"bench-series", required_argument, NULL, O_BS},
                                       {"bench-count", required_argument, NULL, O_BC},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  options o;
  memset(&o, 0, sizeof o);
  moeplace_predict_config_init(&o.cfg, 1, 1);
  o.predictor = "all";
  o.bench_layers = 64;
  o.bench_experts = 256;
  o.bench_windows = 200;
  o.bench_count = 32;
  int c, series_layer_set = 0;
  long long v;
  double d;
  // the last option given that only one mode reads, named in its refusal
  const char *bench_opt = NULL, *backtest_opt = NULL;
#define INT_OPT(field, name, lo, hi)                                                               \
  do {                                                                                             \
    if (cli_parse_int(prog, name, optarg, lo, hi, &v)) return CLI_EXIT_USAGE;                      \
    field = (int)v;                                                                                \
  } while (0)
#define REAL_OPT(field, name, lo, hi)                                                              \
  do {                                                                                             \
    if (cli_parse_double(prog, name, optarg, lo, hi, &d)) return CLI_EXIT_USAGE;                   \
    field = d;                                                                                     \
  } while (0)
  cli_set_prog(prog, argv);
  while ((c = getopt_long(argc, argv, "t:w:H:p:j:qh", opts, NULL)) != -1) {
    switch (c) {
    case 't': o.trace = optarg; break;
    case 'w': INT_OPT(o.cfg.window, "--window", 1, 1000000); break;
    case 'H': INT_OPT(o.cfg.horizon, "--horizon", 1, 100000000); break;
    case 'p': o.predictor = optarg; break;
    case 'j':
      o.json = optarg;
      backtest_opt = "--json";
      break;
    case O_SER:
      o.series = optarg;
      backtest_opt = "--series";
      break;
    case O_SERL:
      INT_OPT(o.series_layer, "--series-layer", 0, MOEPLACE_TRACE_MAX_LAYERS);
      series_layer_set = 1;
      backtest_opt = "--series-layer";
      break;
    case O_K: INT_OPT(o.cfg.sw_avg_k, "--k", 1, 1000000); break;
    case O_MINH: INT_OPT(o.min_history, "--min-history", 1, 100000000); break;
    case O_DK: INT_OPT(o.cfg.detector.k, "--detector-k", 2, 1000000); break;
    case O_VT: REAL_OPT(o.cfg.detector.var_threshold, "--var-threshold", 1e-300, 1.0); break;
    case O_RT: REAL_OPT(o.cfg.detector.range_threshold, "--range-threshold", 1e-300, 1.0); break;
    case O_HY: REAL_OPT(o.cfg.detector.hysteresis, "--hysteresis", 1.0, 1e6); break;
    case O_AH: INT_OPT(o.cfg.arima_history, "--arima-history", 16, 10000); break;
    case O_AR: INT_OPT(o.cfg.arima_refit, "--arima-refit", 1, 1000000); break;
    case O_AP: REAL_OPT(o.cfg.auto_power, "--auto-power", 0.0, 1000.0); break;
    case O_SEED:
      if (cli_parse_int(prog, "--seed", optarg, 0, INT64_MAX, &v)) return CLI_EXIT_USAGE;
      o.cfg.seed = (uint64_t)v;
      break;
    case 'q': o.quiet = 1; break;
    case O_BENCH: o.bench = 1; break;
    case O_BL:
      bench_opt = "--layers";
      INT_OPT(o.bench_layers, bench_opt, 1, 4096);
      break;
    case O_BE:
      bench_opt = "--experts";
      INT_OPT(o.bench_experts, bench_opt, 1, 65536);
      break;
    case O_BW:
      bench_opt = "--bench-windows";
      INT_OPT(o.bench_windows, bench_opt, 20, 100000);
      break;
    case O_BS:
      o.bench_series = optarg;
      bench_opt = "--bench-series";
      break;
    case O_BC:
      bench_opt = "--bench-count";
      INT_OPT(o.bench_count, bench_opt, 1, 1000000);
      break;
    case 'h': usage(stdout); return CLI_EXIT_OK;
    default: usage(stderr); return CLI_EXIT_USAGE;
    }
  }
  if (cli_no_operands(prog, argc, argv, optind)) return CLI_EXIT_USAGE;
  int known = !strcmp(o.predictor, "all");
  for (int i = 0; i < moeplace_predict_method_count(); i++)
    known |= !strcmp(o.predictor, moeplace_predict_method_name(i));
  if (!known) {
    fprintf(stderr, "%s: --predictor: unknown predictor '%s'; known:", prog, o.predictor);
    for (int i = 0; i < moeplace_predict_method_count(); i++)
      fprintf(stderr, " %s", moeplace_predict_method_name(i));
    fprintf(stderr, ", all\n");
    return CLI_EXIT_USAGE;
  }
  if (o.cfg.horizon % o.cfg.window) {
    fprintf(stderr, "%s: --horizon %d is not a multiple of --window %d\n", prog, o.cfg.horizon,
            o.cfg.window);
    return CLI_EXIT_USAGE;
  }
  if (o.bench && o.trace) {
    fprintf(stderr, "%s: --bench makes its own loads; it takes no --trace\n", prog);
    return CLI_EXIT_USAGE;
  }
  // an option the chosen mode would ignore is a mistake the user should hear of
  if (o.bench && backtest_opt) {
    fprintf(stderr, "%s: --bench prints its table; it takes no %s\n", prog, backtest_opt);
    return CLI_EXIT_USAGE;
  }
  if (!o.bench && bench_opt) {
    fprintf(stderr, "%s: %s needs --bench\n", prog, bench_opt);
    return CLI_EXIT_USAGE;
  }
  if (series_layer_set && !o.series) {
    fprintf(stderr, "%s: --series-layer needs --series\n", prog);
    return CLI_EXIT_USAGE;
  }
  if (o.bench) return cli_stdout_done(prog, run_bench(&o));
  if (!o.trace) {
    fprintf(stderr, "%s: --trace FILE is required (see --help)\n", prog);
    return CLI_EXIT_USAGE;
  }
  const char *in_opt = "--trace";
  if (cli_inputs_ok(prog, &in_opt, &o.trace, 1)) return CLI_EXIT_USAGE;
  return cli_stdout_done(prog, run_backtest(&o));
}
