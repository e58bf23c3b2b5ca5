/* The coordinator's decider (decider.h): forecast and placement on a
 * background thread that never calls MPI, fed by a FIFO of jobs. */
#define _GNU_SOURCE /* SCHED_BATCH in <sched.h> */
#include "config.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/load_samples.h"
#include "common/timer.h"
#include "placement/placement_impl.h"
#include "placement/topology.h"
#include "runtime/decider.h"

enum job_kind { JOB_OBSERVE, JOB_DECIDE };

typedef struct job {
  struct job *next;
  int kind;
  uint64_t *totals; /* observe: [L][E] */
} job;

struct mp_rt_decider {
  mp_rt_decider_setup set;
  /* Owned by the thread once it runs (by the caller when inline). */
  mp_rt_history *history;
  moeplace_forecaster *forecaster;
  int pending_error;  /* an observe failed: reported by the next decision */
  size_t *expert_bytes;        /* [L] snapshot of the request */
  double step_s;               /* the request's step time (<= 0: not priced in seconds) */
  int64_t horizon_steps;       /* the request's steps to the next interval boundary */
  int step_measured;           /* ... measured at the imbalance in force */
  double link_bw[MOEPLACE_LINK_CLASSES]; /* the request's measured bandwidths (0: none) */
  moeplace_placement *in_force; /* snapshot of the request */
  moeplace_placement *decided;  /* the result */
  mp_rt_decision result;

  /* Shared between the caller and the thread, under mu. */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  job *head, *tail;
  int outstanding; /* a decision was requested and not yet collected */
  int finished;    /* ... and it has finished */
  int stop, hold, fail_next;
  int64_t done;
  int running;     /* the thread was started */
  int busy;        /* the thread is running a job */
  int64_t cpu_ns;  /* CPU time of every job so far (atomic: read by get_stats) */
  pthread_t thread;
  int idle_policy; /* the caller has set the thread to SCHED_IDLE (caller only) */
};

/* The load forecast [L][E] for a decision. A forecaster that cannot
 * forecast (a numerical failure) must not stop training: the fallback is
 * the mean of the last rebalance interval's windows in the history. */
static void forecast(mp_rt_decider *d, double *p) {
  if (d->forecaster && moeplace_forecaster_forecast(d->forecaster, p) == MOEPLACE_OK) return;
  int k = d->set.rebalance_interval / d->set.window;
  mp_rt_history_mean(d->history, k > 0 ? k : 1, p);
}

/* The runtime's configuration as placement options (loads are forecast
 * proportions, so the sum over layers of the mean rank load is L/R):
 *  - min_gain is in imbalance units on both sides: moeplace_place keeps the
 *    current placement unless its gain in max rank load exceeds the
 *    migration price plus min_gain x (sum of mean rank loads), i.e. unless
 *    the imbalance gain exceeds min_gain plus the price in imbalance units;
 *  - the price of a move is migration_weight x bytes x class cost, which is
 *    tradeoff x (bytes / bytes of all expert state) x class cost in
 *    imbalance units with migration_weight = tradeoff x L / (R x all bytes);
 *  - the byte budget is moeplace_place's hard cap. */
static void place_options(const mp_rt_decider *d, moeplace_place_options *opt) {
  int L = d->set.L, E = d->set.E, R = d->set.R;
  uint64_t all_bytes = 0;
  for (int l = 0; l < L; l++) all_bytes += (uint64_t)E * d->expert_bytes[l];
  moeplace_place_options_init(opt);
  opt->expert_bytes = (double)all_bytes / ((double)L * E);
  opt->migration_weight =
      all_bytes ? d->set.migration_tradeoff * L / ((double)R * (double)all_bytes) : 0.0;
  opt->byte_budget = (double)d->set.migration_budget_bytes; // MOEPLACE_NO_LIMIT carries over
  opt->min_gain = d->set.min_gain;
  opt->groups = d->set.groups;
  opt->shares = d->set.shares;
  opt->spread = d->set.spread;
  if (d->step_s > 0) {
    opt->step_time_s = d->step_s;
    opt->horizon_steps = d->horizon_steps;
    if (d->step_measured) { // measured at the imbalance in force: back to perfect balance
      double *last = malloc((size_t)L * E * sizeof *last), imb = 1;
      if (last) {
        mp_rt_history_mean(d->history, 1, last);
        if (moeplace_placement_imbalance(d->in_force, last, &imb) != MOEPLACE_OK || !(imb >= 1))
          imb = 1;
      }
      free(last);
      opt->step_time_s /= imb;
    }
  }
}

/* The topology a decision places on: the runtime's, or, for a decision
 * priced in seconds with measured link bandwidths (linkbw.c), a copy with
 * those bandwidths (*own, destroyed by the caller; on out-of-memory the
 * configured ones are used). */
static const moeplace_topology *decision_topology(const mp_rt_decider *d, moeplace_topology **own) {
  const moeplace_topology *t = d->set.shape;
  int measured = 0;
  for (int c = 0; c < MOEPLACE_LINK_CLASSES; c++) measured |= d->link_bw[c] > 0;
  *own = NULL;
  if (d->step_s <= 0 || !measured ||
      moeplace_topology_create_table(own, t->ranks, t->node, t->package, t->numa) != MOEPLACE_OK)
    return t;
  memcpy((*own)->cost, t->cost, sizeof t->cost);
  for (int c = 0; c < MOEPLACE_LINK_CLASSES; c++)
    (*own)->bandwidth[c] = d->link_bw[c] > 0 ? d->link_bw[c] : t->bandwidth[c];
  return *own;
}

/* The load samples of a decision around the forecast p [L][E]: the newest
 * min(set.samples, windows seen) windows of the history (common/
 * load_samples.h), into *out [n][L][E] (malloc'd; NULL and *n = 0 when
 * there are fewer than two, or on out-of-memory: the decision then goes
 * without, as it does with samples off). */
static void decision_samples(const mp_rt_decider *d, const double *p, double **out, int *n) {
  const int k = d->set.samples < mp_rt_history_count(d->history) ? d->set.samples
                                                                  : mp_rt_history_count(d->history);
  *out = k >= 2 ? malloc((size_t)k * d->set.L * d->set.E * sizeof **out) : NULL;
  *n = *out && mp_window_ring_samples(&d->history->counts, k, p, *out) == MOEPLACE_OK ? k : 0;
  if (!*n) {
    free(*out);
    *out = NULL;
  }
}

/* One decision: forecast (predict engine), then moeplace_place from the
 * placement in force, which also decides whether moving replicas pays.
 * commit when moeplace_place moved replicas, or when it kept them but its
 * re-optimised routing shares gain at least min_gain of predicted imbalance
 * over the shares in force (a change of routing alone moves no byte; below
 * that gain it is not worth a collective commit). */
static void decide(mp_rt_decider *d, int fail) {
  double t0 = mp_now_s();
  mp_rt_decision *res = &d->result;
  memset(res, 0, sizeof *res);
  res->old_imb = res->new_imb = 1.0;
  res->status = d->pending_error;
  d->pending_error = MOEPLACE_OK;
  if (res->status == MOEPLACE_OK && fail)
    res->status = mp_fail(MOEPLACE_ERR_NUMERIC, "injected decision failure (test hook)");
  double *p = res->status == MOEPLACE_OK ? malloc((size_t)d->set.L * d->set.E * sizeof *p) : NULL;
  if (res->status == MOEPLACE_OK && !p) res->status = mp_fail(MOEPLACE_ERR_NOMEM, "out of memory forecasting");
  if (res->status == MOEPLACE_OK) { // p: [L][E] forecast proportions
    forecast(d, p);
    moeplace_place_options opt;
    place_options(d, &opt);
    double *samples;
    decision_samples(d, p, &samples, &opt.n_samples);
    opt.samples = samples;
    moeplace_placement *next = NULL;
    moeplace_place_stats ps;
    moeplace_topology *own;
    int st = moeplace_place(decision_topology(d, &own), d->set.L, d->set.E, d->set.S, p,
                            d->in_force, &opt, &next, &ps);
    moeplace_topology_destroy(own);
    if (st == MOEPLACE_OK) st = moeplace_placement_imbalance(d->in_force, p, &res->old_imb);
    if (st == MOEPLACE_OK) {
      size_t LG = (size_t)d->set.L * d->set.R * d->set.S;
      memcpy(d->decided->phy2log, next->phy2log, LG * sizeof *next->phy2log);
      memcpy(d->decided->share, next->share, LG * sizeof *next->share);
      int moves = !ps.kept_current && ps.moves > 0;
      int reroutes = memcmp(next->share, d->in_force->share, LG * sizeof *next->share) != 0;
      res->commit = moves || (reroutes && res->old_imb - ps.imbalance >= d->set.min_gain);
      res->new_imb = res->commit ? ps.imbalance : res->old_imb;
    }
    moeplace_placement_destroy(next);
    free(samples);
    res->status = st;
  }
  free(p);
  if (res->status != MOEPLACE_OK) snprintf(res->error, sizeof res->error, "%s", moeplace_last_error());
  res->seconds = mp_now_s() - t0;
}

static void observe(mp_rt_decider *d, const uint64_t *totals) {
  mp_rt_history_push(d->history, totals);
  if (!d->forecaster) return; // rebalancing off
  int st = moeplace_forecaster_observe_counts(d->forecaster, totals);
  if (st < 0 && !d->pending_error) d->pending_error = st;
}

/* Runs one job (on the thread, or inline) and marks a decision finished. */
static void run_job(mp_rt_decider *d, job *j) {
  const double c0 = mp_thread_cpu_s();
  if (j->kind == JOB_OBSERVE) {
    observe(d, j->totals);
  } else {
    pthread_mutex_lock(&d->mu);
    while (d->hold && !d->stop && d->running) pthread_cond_wait(&d->cv, &d->mu); // test hook
    int fail = d->fail_next, stop = d->stop;
    d->fail_next = 0;
    pthread_mutex_unlock(&d->mu);
    if (!stop) decide(d, fail);
    pthread_mutex_lock(&d->mu);
    d->finished = 1;
    d->done++;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
  }
  __atomic_add_fetch(&d->cpu_ns, (int64_t)((mp_thread_cpu_s() - c0) * 1e9), __ATOMIC_RELAXED);
  free(j->totals);
  free(j);
}

/* Sets thread t's policy, where the OS has them: idle = 0, Linux's
 * SCHED_BATCH (same share of the CPU as nice 0, but a job queued inside the
 * collective step() waits for the next scheduler tick or a free core
 * instead of preempting the training thread that queued it, which every
 * other rank would wait for); idle = 1, SCHED_IDLE (runs only on a core
 * nobody else wants). Returns 1 if set. Best effort: without it the thread
 * still runs, only with the default wake-up preemption. */
static int set_policy(pthread_t t, int idle) {
#if defined(SCHED_IDLE) && defined(SCHED_BATCH)
  struct sched_param sp = {0};
  return pthread_setschedparam(t, idle ? SCHED_IDLE : SCHED_BATCH, &sp) == 0;
#else
  (void)t;
  (void)idle;
  return 0;
#endif
}

void mp_rt_decider_quiet(mp_rt_decider *d, int quiet) {
  if (!d || !d->running || quiet == d->idle_policy) return;
  // An unlocked peek: a job queued by this very step() cannot preempt the
  // caller anyway (SCHED_BATCH), so missing it costs nothing, and an idle
  // thread costs no system call per step.
  if (quiet && !__atomic_load_n(&d->busy, __ATOMIC_RELAXED)) return;
  if (set_policy(d->thread, quiet)) d->idle_policy = quiet;
}

static void *thread_main(void *arg) {
  mp_rt_decider *d = arg;
  (void)set_policy(pthread_self(), 0);
  pthread_mutex_lock(&d->mu);
  for (;;) {
    while (!d->head && !d->stop) pthread_cond_wait(&d->cv, &d->mu);
    if (d->stop) break;
    job *j = d->head;
    d->head = j->next;
    if (!d->head) d->tail = NULL;
    __atomic_store_n(&d->busy, 1, __ATOMIC_RELAXED); // peeked at by mp_rt_decider_quiet
    pthread_mutex_unlock(&d->mu);
    run_job(d, j);
    pthread_mutex_lock(&d->mu);
    __atomic_store_n(&d->busy, 0, __ATOMIC_RELAXED);
    pthread_cond_broadcast(&d->cv); // mp_rt_decider_history waits for an idle thread
  }
  pthread_mutex_unlock(&d->mu);
  return NULL;
}

/* Queues a job for the thread, or runs it now when inline. */
static void submit(mp_rt_decider *d, job *j) {
  if (!d->running) {
    run_job(d, j);
    return;
  }
  pthread_mutex_lock(&d->mu);
  if (d->tail) d->tail->next = j;
  else d->head = j;
  d->tail = j;
  pthread_cond_broadcast(&d->cv);
  pthread_mutex_unlock(&d->mu);
}

int mp_rt_decider_create(mp_rt_decider **out, const mp_rt_decider_setup *setup) {
  *out = NULL;
  mp_rt_decider *d = calloc(1, sizeof *d);
  MP_CHECK_ALLOC(d);
  d->set = *setup;
  pthread_mutex_init(&d->mu, NULL);
  pthread_cond_init(&d->cv, NULL);
  const int L = setup->L, E = setup->E, R = setup->R, S = setup->S;
  int st = mp_rt_history_create(&d->history, L, E, setup->history_windows);
  // The predict engine forecasts whole windows: the horizon is rounded up
  // to a multiple of the window.
  moeplace_predict_config pc;
  moeplace_predict_config_init(&pc, L, E);
  pc.window = setup->window;
  pc.horizon = (setup->horizon + setup->window - 1) / setup->window * setup->window;
  pc.method = setup->predictor;
  // With rebalancing off nothing ever asks for a forecast: a static job
  // must not pay for feeding one (the LSTM trains on every window). The
  // history is kept, for checkpoints; a restart replays it into a fresh
  // forecaster anyway.
  if (st == MOEPLACE_OK && setup->rebalance_interval > 0)
    st = moeplace_forecaster_create(&d->forecaster, &pc);
  if (st == MOEPLACE_OK) st = moeplace_placement_create(&d->in_force, L, E, R, S);
  if (st == MOEPLACE_OK) st = moeplace_placement_create(&d->decided, L, E, R, S);
  if (st == MOEPLACE_OK && !(d->expert_bytes = calloc((size_t)L, sizeof *d->expert_bytes)))
    st = mp_fail(MOEPLACE_ERR_NOMEM, "out of memory creating the decider");
  if (st == MOEPLACE_OK && setup->threaded) {
    int rc = pthread_create(&d->thread, NULL, thread_main, d);
    if (rc == 0) {
      d->running = 1;
#ifdef __GLIBC__
      (void)pthread_setname_np(d->thread, "moeplace-decide"); // top -H; tests find it
#endif
    } else {
      st = mp_fail(MOEPLACE_ERR_NOMEM, "could not start the decision thread: %s", strerror(rc));
    }
  }
  if (st != MOEPLACE_OK) {
    mp_rt_decider_destroy(d);
    return st;
  }
  *out = d;
  return MOEPLACE_OK;
}

void mp_rt_decider_destroy(mp_rt_decider *d) {
  if (!d) return;
  if (d->running) {
    pthread_mutex_lock(&d->mu);
    d->stop = 1;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
  }
  for (job *j = d->head, *n; j; j = n) {
    n = j->next;
    free(j->totals);
    free(j);
  }
  pthread_cond_destroy(&d->cv);
  pthread_mutex_destroy(&d->mu);
  mp_rt_history_destroy(d->history);
  moeplace_forecaster_destroy(d->forecaster);
  moeplace_placement_destroy(d->in_force);
  moeplace_placement_destroy(d->decided);
  free(d->expert_bytes);
  free(d);
}

int64_t mp_rt_decider_test_fed(mp_rt_decider *d) {
  (void)mp_rt_decider_history(d); // waits for the thread's queue
  return d->forecaster ? moeplace_forecaster_windows(d->forecaster) : -1;
}

const mp_rt_history *mp_rt_decider_history(mp_rt_decider *d) {
  pthread_mutex_lock(&d->mu);
  while (d->running && (d->head || d->busy)) pthread_cond_wait(&d->cv, &d->mu);
  pthread_mutex_unlock(&d->mu);
  return d->history;
}

int mp_rt_decider_observe(mp_rt_decider *d, const uint64_t *totals) {
  size_t n = (size_t)d->set.L * d->set.E;
  job *j = calloc(1, sizeof *j);
  uint64_t *t = malloc(n * sizeof *t);
  if (!j || !t) {
    free(j);
    free(t);
    return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory queueing a window for the forecaster");
  }
  memcpy(t, totals, n * sizeof *t);
  j->kind = JOB_OBSERVE;
  j->totals = t;
  submit(d, j);
  return MOEPLACE_OK;
}

int mp_rt_decider_request(mp_rt_decider *d, const moeplace_placement *in_force,
                          const size_t *expert_bytes, const double *link_bw, double step_s,
                          int measured, int64_t horizon_steps) {
  if (d->outstanding) return mp_fail(MOEPLACE_ERR_STATE, "a rebalance decision is already in flight");
  job *j = calloc(1, sizeof *j);
  if (!j) return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory requesting a decision");
  // The thread reads the snapshot only after taking the job from the queue
  // (under the mutex), and no other request can overwrite it before this
  // one is collected.
  size_t LG = (size_t)d->set.L * d->set.R * d->set.S;
  memcpy(d->in_force->phy2log, in_force->phy2log, LG * sizeof *in_force->phy2log);
  memcpy(d->in_force->share, in_force->share, LG * sizeof *in_force->share);
  memcpy(d->expert_bytes, expert_bytes, (size_t)d->set.L * sizeof *expert_bytes);
  memcpy(d->link_bw, link_bw, sizeof d->link_bw);
  d->step_s = step_s;
  d->step_measured = measured;
  d->horizon_steps = horizon_steps;
  pthread_mutex_lock(&d->mu);
  d->outstanding = 1;
  d->finished = 0;
  pthread_mutex_unlock(&d->mu);
  j->kind = JOB_DECIDE;
  submit(d, j);
  return MOEPLACE_OK;
}

int mp_rt_decider_collect(mp_rt_decider *d, mp_rt_decision *out, moeplace_placement *next,
                          double *waited_s) {
  *waited_s = 0.0;
  if (!d->outstanding) return mp_fail(MOEPLACE_ERR_STATE, "no rebalance decision in flight");
  double t0 = mp_now_s();
  pthread_mutex_lock(&d->mu);
  while (!d->finished) pthread_cond_wait(&d->cv, &d->mu);
  d->outstanding = 0;
  pthread_mutex_unlock(&d->mu);
  *waited_s = mp_now_s() - t0;
  *out = d->result;
  if (out->status == MOEPLACE_OK && out->commit) {
    size_t LG = (size_t)d->set.L * d->set.R * d->set.S;
    memcpy(next->phy2log, d->decided->phy2log, LG * sizeof *next->phy2log);
    memcpy(next->share, d->decided->share, LG * sizeof *next->share);
  }
  return MOEPLACE_OK;
}

pthread_t *mp_rt_decider_thread(mp_rt_decider *d) { return d && d->running ? &d->thread : NULL; }

double mp_rt_decider_cpu_s(const mp_rt_decider *d) {
  return d ? 1e-9 * (double)__atomic_load_n(&d->cpu_ns, __ATOMIC_RELAXED) : 0.0;
}

int mp_rt_decider_outstanding(const mp_rt_decider *d) { return d && d->outstanding; }

int mp_rt_decider_ready(mp_rt_decider *d) {
  if (!d || !d->outstanding) return 0;
  pthread_mutex_lock(&d->mu);
  int ready = d->finished;
  pthread_mutex_unlock(&d->mu);
  return ready;
}

void mp_rt_decider_test_hold(mp_rt_decider *d, int hold) {
  pthread_mutex_lock(&d->mu);
  d->hold = hold;
  pthread_cond_broadcast(&d->cv);
  pthread_mutex_unlock(&d->mu);
}

int64_t mp_rt_decider_test_done(mp_rt_decider *d) {
  pthread_mutex_lock(&d->mu);
  int64_t n = d->done;
  pthread_mutex_unlock(&d->mu);
  return n;
}

void mp_rt_decider_test_fail_next(mp_rt_decider *d) {
  pthread_mutex_lock(&d->mu);
  d->fail_next = 1;
  pthread_mutex_unlock(&d->mu);
}
