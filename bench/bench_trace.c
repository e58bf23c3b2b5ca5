/* Benchmark of trace reading: moeplace's streaming reader against plain
 * zlib decompression of the same file to nowhere (the floor any reader of a
 * .gz trace pays), measured in the same run.
 *
 *   bench/bench_trace [TRACE] [REPEATS]
 *
 * Also reports the reader's peak resident memory on a synthetic trace of
 * 200,000 steps, to show that memory does not grow with trace length. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include <moeplace.h>

#include "common/timer.h"

static double read_with_moeplace(const char *path, int64_t *steps) {
  double t0 = mp_now_s();
  moeplace_trace *t;
  if (moeplace_trace_open(&t, path)) {
    fprintf(stderr, "bench_trace: %s\n", moeplace_last_error());
    exit(1);
  }
  size_t n = (size_t)moeplace_trace_layers(t) * moeplace_trace_experts(t);
  uint64_t *c = malloc(n * sizeof *c);
  int64_t step;
  int rc;
  *steps = 0;
  while ((rc = moeplace_trace_read_step(t, &step, c)) > 0) (*steps)++;
  if (rc < 0) {
    fprintf(stderr, "bench_trace: %s\n", moeplace_last_error());
    exit(1);
  }
  free(c);
  moeplace_trace_close(t);
  return mp_now_s() - t0;
}

static double read_with_zlib(const char *path, size_t *bytes) {
  double t0 = mp_now_s();
  gzFile gz = gzopen(path, "rb");
  static char buf[1 << 16];
  int n;
  *bytes = 0;
  while ((n = gzread(gz, buf, sizeof buf)) > 0) *bytes += (size_t)n;
  gzclose(gz);
  return mp_now_s() - t0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static long peak_rss_kb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "../shared/traces/pycode-L4-E16-top2.csv.gz";
  int repeats = argc > 2 ? atoi(argv[2]) : 11;
  if (repeats < 1) repeats = 1;
  double *tm = malloc(repeats * sizeof *tm), *tz = malloc(repeats * sizeof *tz);
  int64_t steps = 0;
  size_t bytes = 0;
  for (int i = 0; i < repeats; i++) {
    tz[i] = read_with_zlib(path, &bytes);
    tm[i] = read_with_moeplace(path, &steps);
  }
  qsort(tm, repeats, sizeof *tm, cmp_double);
  qsort(tz, repeats, sizeof *tz, cmp_double);
  double m = tm[repeats / 2], z = tz[repeats / 2];
  printf("trace            %s\n", path);
  printf("steps            %" PRId64 " (%zu bytes uncompressed)\n", steps, bytes);
  printf("moeplace reader  %8.2f ms  (median of %d; %.1f MB/s, %.0f steps/s)\n", 1e3 * m, repeats,
         bytes / m / 1e6, steps / m);
  printf("zlib only        %8.2f ms  (decompression floor, same file, same run)\n", 1e3 * z);
  printf("ratio            %8.2f x  (reader time / decompression time)\n", m / z);

  /* Memory: a long synthetic plain-text trace, 200,000 steps x 4 x 16. */
  char tmp[] = "/tmp/bench-trace-XXXXXX";
  int fd = mkstemp(tmp);
  FILE *f = fdopen(fd, "w");
  fputs("step,layer", f);
  for (int e = 0; e < 16; e++) fprintf(f, ",e%d", e);
  fputc('\n', f);
  for (int s = 0; s < 200000; s++)
    for (int l = 0; l < 4; l++) {
      fprintf(f, "%d,%d", s, l);
      for (int e = 0; e < 16; e++) fprintf(f, ",%d", (s * 7 + l * 3 + e * 11) % 257);
      fputc('\n', f);
    }
  fclose(f);
  long before = peak_rss_kb();
  double tl = read_with_moeplace(tmp, &steps);
  long after = peak_rss_kb();
  printf("long trace       %" PRId64 " steps in %.0f ms (%.0f steps/s); peak RSS %ld KiB before, %ld KiB after\n",
         steps, 1e3 * tl, steps / tl, before, after);
  unlink(tmp);
  free(tm);
  free(tz);
  return 0;
}
