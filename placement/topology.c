/* Rank topology: which node / package / NUMA domain each rank is on, and
 * the per-byte cost of moving expert state between two ranks' classes. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <moeplace.h>

#include "common/error.h"
#include "common/input_name.h"
#include "placement/topology.h"

#define MP_PLACE_MAX_RANKS 1048576

static const double default_cost[MOEPLACE_LINK_CLASSES] = {0.0, 1.0, 1.5, 2.0, 8.0};
/* The bandwidths a topology accepts, in bytes per second: 1 byte/s to
 * 1 EB/s (1e18), as moeplace-replay's --bw-* options. Beyond them the
 * migration model's seconds (bytes / bandwidth) stop meaning anything:
 * 1e-300 B/s prices a move at 1e300 s, a subnormal one at infinity. */
#define BANDWIDTH_MIN 1.0
#define BANDWIDTH_MAX 1e18

/* Bytes per second: an NVLink-class node and a 100 Gb/s network. */
static const double default_bandwidth[MOEPLACE_LINK_CLASSES] = {INFINITY, 100e9, 50e9, 25e9,
                                                                12.5e9};

static int topo_alloc(moeplace_topology **out, int ranks) {
  if (ranks <= 0 || ranks > MP_PLACE_MAX_RANKS)
    return mp_fail(MOEPLACE_ERR_ARG, "ranks must be in [1, %d], got %d", MP_PLACE_MAX_RANKS,
                   ranks);
  moeplace_topology *t = calloc(1, sizeof *t);
  MP_CHECK_ALLOC(t);
  t->ranks = ranks;
  t->node = malloc((size_t)ranks * sizeof *t->node);
  t->package = malloc((size_t)ranks * sizeof *t->package);
  t->numa = malloc((size_t)ranks * sizeof *t->numa);
  if (!t->node || !t->package || !t->numa) {
    moeplace_topology_destroy(t);
    return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory for a topology of %d ranks", ranks);
  }
  memcpy(t->cost, default_cost, sizeof t->cost);
  memcpy(t->bandwidth, default_bandwidth, sizeof t->bandwidth);
  *out = t;
  return MOEPLACE_OK;
}

/* Renumbers node labels 0..nodes-1 in order of first appearance. */
static int topo_finish(moeplace_topology *t) {
  int *map = NULL, maxl = 0;
  for (int r = 0; r < t->ranks; r++)
    if (t->node[r] > maxl) maxl = t->node[r];
  map = malloc(((size_t)maxl + 1) * sizeof *map);
  MP_CHECK_ALLOC(map);
  for (int i = 0; i <= maxl; i++) map[i] = -1;
  int n = 0;
  for (int r = 0; r < t->ranks; r++) {
    if (map[t->node[r]] < 0) map[t->node[r]] = n++;
    t->node[r] = map[t->node[r]];
  }
  free(map);
  t->nodes = n;
  return MOEPLACE_OK;
}

int moeplace_topology_create_shape(moeplace_topology **out, int nodes, int ranks_per_node,
                                   int packages_per_node, int numa_per_package) {
  if (!out) return mp_fail(MOEPLACE_ERR_ARG, "topology: out is NULL");
  if (nodes <= 0 || ranks_per_node <= 0 || packages_per_node <= 0 || numa_per_package <= 0)
    return mp_fail(MOEPLACE_ERR_ARG,
                   "topology shape: nodes (%d), ranks_per_node (%d), packages_per_node (%d) "
                   "and numa_per_package (%d) must all be >= 1",
                   nodes, ranks_per_node, packages_per_node, numa_per_package);
  if ((long long)nodes * ranks_per_node > MP_PLACE_MAX_RANKS)
    return mp_fail(MOEPLACE_ERR_ARG, "topology shape: %d x %d ranks is too many", nodes,
                   ranks_per_node);
  if ((long long)packages_per_node * numa_per_package > MP_PLACE_MAX_RANKS)
    return mp_fail(MOEPLACE_ERR_ARG,
                   "topology shape: packages_per_node (%d) x numa_per_package (%d) exceeds the "
                   "supported maximum of %d domains per node",
                   packages_per_node, numa_per_package, MP_PLACE_MAX_RANKS);
  const int domains = packages_per_node * numa_per_package; // <= 2^20 (checked)
  moeplace_topology *t;
  int rc = topo_alloc(&t, nodes * ranks_per_node);
  if (rc) return rc;
  for (int r = 0; r < t->ranks; r++) {
    int local = r % ranks_per_node;
    // spread ranks in contiguous blocks over the node's NUMA domains
    int dom = (int)((long long)local * domains / ranks_per_node);
    t->node[r] = r / ranks_per_node;
    t->package[r] = dom / numa_per_package;
    t->numa[r] = dom % numa_per_package;
  }
  rc = topo_finish(t);
  if (rc) {
    moeplace_topology_destroy(t);
    return rc;
  }
  *out = t;
  return MOEPLACE_OK;
}

int moeplace_topology_create_table(moeplace_topology **out, int ranks, const int *node,
                                   const int *package, const int *numa) {
  if (!out || !node || !package || !numa)
    return mp_fail(MOEPLACE_ERR_ARG, "topology table: NULL argument");
  for (int r = 0; r < ranks; r++)
    if (node[r] < 0 || package[r] < 0 || numa[r] < 0 || node[r] >= MP_PLACE_MAX_RANKS)
      return mp_fail(MOEPLACE_ERR_ARG,
                     "topology table: rank %d has a negative or too large label", r);
  moeplace_topology *t;
  int rc = topo_alloc(&t, ranks);
  if (rc) return rc;
  memcpy(t->node, node, (size_t)ranks * sizeof *node);
  memcpy(t->package, package, (size_t)ranks * sizeof *package);
  memcpy(t->numa, numa, (size_t)ranks * sizeof *numa);
  rc = topo_finish(t);
  if (rc) {
    moeplace_topology_destroy(t);
    return rc;
  }
  *out = t;
  return MOEPLACE_OK;
}

int mp_topology_priced_in_seconds(const moeplace_topology *t, moeplace_topology **out) {
  int rc = moeplace_topology_create_table(out, t->ranks, t->node, t->package, t->numa);
  if (rc) return rc;
  memcpy((*out)->bandwidth, t->bandwidth, sizeof t->bandwidth);
  (*out)->cost[MOEPLACE_LINK_SAME_RANK] = 0;
  for (int c = MOEPLACE_LINK_SAME_RANK + 1; c < MOEPLACE_LINK_CLASSES; c++)
    (*out)->cost[c] = 1.0 / t->bandwidth[c];
  return MOEPLACE_OK;
}

void moeplace_topology_destroy(moeplace_topology *t) {
  if (!t) return;
  free(t->node);
  free(t->package);
  free(t->numa);
  free(t);
}

int moeplace_topology_ranks(const moeplace_topology *t) { return t ? t->ranks : 0; }
int moeplace_topology_nodes(const moeplace_topology *t) { return t ? t->nodes : 0; }
int moeplace_topology_rank_node(const moeplace_topology *t, int rank) {
  if (!t || rank < 0 || rank >= t->ranks)
    return mp_fail(MOEPLACE_ERR_ARG, "topology: rank %d out of range", rank);
  return t->node[rank];
}

int moeplace_topology_set_cost(moeplace_topology *t, moeplace_link_class cls, double cost) {
  if (!t) return mp_fail(MOEPLACE_ERR_ARG, "topology is NULL");
  if ((int)cls < 0 || (int)cls >= MOEPLACE_LINK_CLASSES)
    return mp_fail(MOEPLACE_ERR_ARG, "unknown link class %d", (int)cls);
  if (!isfinite(cost) || cost < 0)
    return mp_fail(MOEPLACE_ERR_ARG, "link cost must be finite and >= 0, got %g", cost);
  t->cost[cls] = cost;
  return MOEPLACE_OK;
}

double moeplace_topology_cost(const moeplace_topology *t, moeplace_link_class cls) {
  if (!t || (int)cls < 0 || (int)cls >= MOEPLACE_LINK_CLASSES) return 0.0;
  return t->cost[cls];
}

int moeplace_topology_set_bandwidth(moeplace_topology *t, moeplace_link_class cls,
                                    double bytes_per_s) {
  if (!t) return mp_fail(MOEPLACE_ERR_ARG, "topology is NULL");
  if ((int)cls <= MOEPLACE_LINK_SAME_RANK || (int)cls >= MOEPLACE_LINK_CLASSES)
    return mp_fail(MOEPLACE_ERR_ARG, "link class %d has no settable bandwidth", (int)cls);
  if (!(bytes_per_s >= BANDWIDTH_MIN && bytes_per_s <= BANDWIDTH_MAX)) // NaN too
    return mp_fail(MOEPLACE_ERR_ARG, "link bandwidth must be in [%g, %g] bytes/s, got %g",
                   BANDWIDTH_MIN, BANDWIDTH_MAX, bytes_per_s);
  t->bandwidth[cls] = bytes_per_s;
  return MOEPLACE_OK;
}

double moeplace_topology_bandwidth(const moeplace_topology *t, moeplace_link_class cls) {
  if (!t || (int)cls < 0 || (int)cls >= MOEPLACE_LINK_CLASSES) return 0.0;
  return t->bandwidth[cls];
}

moeplace_link_class moeplace_topology_class(const moeplace_topology *t, int a, int b) {
  if (!t) {
    mp_fail(MOEPLACE_ERR_ARG, "topology class: topology is NULL");
    return MOEPLACE_LINK_INVALID;
  }
  if (a < 0 || a >= t->ranks || b < 0 || b >= t->ranks) {
    mp_fail(MOEPLACE_ERR_ARG, "topology class: rank %d out of range [0, %d)",
            a < 0 || a >= t->ranks ? a : b, t->ranks);
    return MOEPLACE_LINK_INVALID;
  }
  return mp_place_link_class(t, a, b);
}

/* ---- Cluster-shape file ---------------------------------------------- */

static const char *class_names[MOEPLACE_LINK_CLASSES] = {"same_rank", "same_numa",
                                                         "same_package", "same_node",
                                                         "other_node"};

static int parse_int_tok(const char *tok, long *v) {
  char *end;
  errno = 0;
  *v = strtol(tok, &end, 10);
  return errno || end == tok || *end || *v < 0 || *v > MP_PLACE_MAX_RANKS ? -1 : 0;
}

/* A cluster-shape file while it is read: the shape keys, the costs set, and
 * the rank table so far. */
typedef struct topo_file {
  const char *path;
  long lineno;
  long shape[4]; // nodes, ranks_per_node, packages_per_node, numa_per_package
  long shape_line[4]; // the line that set each
  int have_shape;
  double cost[MOEPLACE_LINK_CLASSES];
  int cost_set[MOEPLACE_LINK_CLASSES];
  double bandwidth[MOEPLACE_LINK_CLASSES]; // bytes per second
  int bandwidth_set[MOEPLACE_LINK_CLASSES];
  int *node, *pkg, *numa; // [rows] of the rank table
  long cap, rows;
} topo_file;

static const char *shape_keys[4] = {"nodes", "ranks_per_node", "packages_per_node",
                                    "numa_per_package"};

/* Splits line (a comment already cut off) into at most 8 fields. strtok_r,
 * not strtok: no state shared with other threads or with the caller. */
static int split_fields(const topo_file *tf, char *line, char **tok, int *nt) {
  char *save = NULL;
  *nt = 0;
  for (char *s = strtok_r(line, " \t\r\n", &save); s; s = strtok_r(NULL, " \t\r\n", &save)) {
    if (*nt == 8) return mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: too many fields", tf->path,
                                 tf->lineno);
    tok[(*nt)++] = s;
  }
  return MOEPLACE_OK;
}

/* "KEY N" for shape key k. */
static int parse_shape_line(topo_file *tf, int k, char **tok, int nt) {
  long v;
  if (nt != 2 || parse_int_tok(tok[1], &v) || v < 1)
    return mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: '%s' needs one integer >= 1", tf->path,
                   tf->lineno, shape_keys[k]);
  if (tf->shape_line[k] && tf->shape[k] != v) // the second value would silently win
    return mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: '%s %ld' contradicts '%s %ld' on line %ld",
                   tf->path, tf->lineno, shape_keys[k], v, shape_keys[k], tf->shape[k],
                   tf->shape_line[k]);
  tf->shape[k] = v;
  tf->shape_line[k] = tf->lineno;
  tf->have_shape = 1;
  return MOEPLACE_OK;
}

/* "cost CLASS VALUE" (per byte, >= 0) or "bandwidth CLASS GBPS" (GB/s, > 0). */
static int parse_class_line(topo_file *tf, char **tok, int nt) {
  const int bw = !strcmp(tok[0], "bandwidth");
  int c;
  for (c = 1; c < MOEPLACE_LINK_CLASSES; c++)
    if (nt >= 2 && !strcmp(tok[1], class_names[c])) break;
  char *end;
  double v = nt == 3 ? strtod(tok[2], &end) : NAN;
  if (c == MOEPLACE_LINK_CLASSES || nt != 3 || *end || !isfinite(v) || v < 0 || (bw && v == 0))
    return mp_fail(MOEPLACE_ERR_FORMAT,
                   "%s:%ld: expected '%s CLASS VALUE' with CLASS one of same_numa, "
                   "same_package, same_node, other_node and VALUE %s",
                   tf->path, tf->lineno, tok[0],
                   bw ? "a finite number of GB/s > 0" : "a finite number >= 0");
  if (bw && !(v * 1e9 >= BANDWIDTH_MIN && v * 1e9 <= BANDWIDTH_MAX))
    return mp_fail(MOEPLACE_ERR_FORMAT,
                   "%s:%ld: bandwidth %s %s is out of range: a bandwidth is %g to %g GB/s "
                   "(1 byte/s to 1 EB/s)",
                   tf->path, tf->lineno, class_names[c], tok[2], BANDWIDTH_MIN / 1e9,
                   BANDWIDTH_MAX / 1e9);
  if (bw ? tf->bandwidth_set[c] && tf->bandwidth[c] != v * 1e9 : tf->cost_set[c] && tf->cost[c] != v)
    return mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: '%s %s %s' contradicts an earlier line", tf->path,
                   tf->lineno, tok[0], class_names[c], tok[2]);
  if (bw) {
    tf->bandwidth[c] = v * 1e9;
    tf->bandwidth_set[c] = 1;
  } else {
    tf->cost[c] = v;
    tf->cost_set[c] = 1;
  }
  return MOEPLACE_OK;
}

/* "rank RANK NODE PACKAGE NUMA", ranks in order from 0. */
static int parse_rank_line(topo_file *tf, char **tok, int nt) {
  long v[4];
  if (nt != 5 || parse_int_tok(tok[1], &v[0]) || parse_int_tok(tok[2], &v[1]) ||
      parse_int_tok(tok[3], &v[2]) || parse_int_tok(tok[4], &v[3]))
    return mp_fail(MOEPLACE_ERR_FORMAT,
                   "%s:%ld: expected 'rank RANK NODE PACKAGE NUMA' (integers >= 0)", tf->path,
                   tf->lineno);
  if (v[0] != tf->rows)
    return mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: expected rank %ld next, found rank %ld",
                   tf->path, tf->lineno, tf->rows, v[0]);
  if (tf->rows == tf->cap) {
    tf->cap = tf->cap ? 2 * tf->cap : 64;
    int *a = realloc(tf->node, (size_t)tf->cap * sizeof *a);
    if (a) tf->node = a;
    int *b = realloc(tf->pkg, (size_t)tf->cap * sizeof *b);
    if (b) tf->pkg = b;
    int *c = realloc(tf->numa, (size_t)tf->cap * sizeof *c);
    if (c) tf->numa = c;
    if (!a || !b || !c)
      return mp_fail(MOEPLACE_ERR_NOMEM, "%s:%ld: out of memory", tf->path, tf->lineno);
  }
  tf->node[tf->rows] = (int)v[1];
  tf->pkg[tf->rows] = (int)v[2];
  tf->numa[tf->rows] = (int)v[3];
  tf->rows++;
  return MOEPLACE_OK;
}

/* One line of the file (with its newline). */
static int parse_line(topo_file *tf, char *line) {
  char *hash = strchr(line, '#');
  if (hash) *hash = 0;
  char *tok[8];
  int nt;
  int rc = split_fields(tf, line, tok, &nt);
  if (rc || nt == 0) return rc;
  for (int k = 0; k < 4; k++)
    if (!strcmp(tok[0], shape_keys[k])) return parse_shape_line(tf, k, tok, nt);
  if (!strcmp(tok[0], "cost") || !strcmp(tok[0], "bandwidth"))
    return parse_class_line(tf, tok, nt);
  if (!strcmp(tok[0], "rank")) return parse_rank_line(tf, tok, nt);
  return mp_fail(MOEPLACE_ERR_FORMAT,
                 "%s:%ld: unknown key '%s' (expected nodes, ranks_per_node, "
                 "packages_per_node, numa_per_package, cost, bandwidth or rank)",
                 tf->path, tf->lineno, tok[0]);
}

/* The topology the whole file describes. */
static int topo_from_file(const topo_file *tf, moeplace_topology **out) {
  const char *path = tf->path;
  const long *shape = tf->shape;
  if (tf->have_shape && tf->rows)
    return mp_fail(MOEPLACE_ERR_FORMAT, "%s: give either the shape keys or a rank table, not both",
                   path);
  moeplace_topology *t = NULL;
  int rc;
  if (tf->rows) {
    rc = moeplace_topology_create_table(&t, (int)tf->rows, tf->node, tf->pkg, tf->numa);
  } else {
    if (!shape[0] || !shape[1])
      return mp_fail(MOEPLACE_ERR_FORMAT,
                     "%s: needs 'nodes' and 'ranks_per_node', or 'rank' table lines", path);
    if (shape[0] * shape[1] > MP_PLACE_MAX_RANKS)
      return mp_fail(MOEPLACE_ERR_FORMAT, "%s: %ld x %ld ranks is too many", path, shape[0],
                     shape[1]);
    if (shape[2] * shape[3] > MP_PLACE_MAX_RANKS) // each <= 2^20: no overflow in a long
      return mp_fail(MOEPLACE_ERR_FORMAT,
                     "%s:%ld: packages_per_node x numa_per_package = %ld x %ld exceeds the "
                     "supported maximum of %d domains per node",
                     path, tf->shape_line[2] > tf->shape_line[3] ? tf->shape_line[2] : tf->shape_line[3],
                     shape[2], shape[3], MP_PLACE_MAX_RANKS);
    rc = moeplace_topology_create_shape(&t, (int)shape[0], (int)shape[1], (int)shape[2],
                                        (int)shape[3]);
  }
  if (rc) return mp_fail(rc, "%s: %s", path, moeplace_last_error());
  for (int c = 1; c < MOEPLACE_LINK_CLASSES; c++) {
    if (tf->cost_set[c]) t->cost[c] = tf->cost[c];
    if (tf->bandwidth_set[c]) t->bandwidth[c] = tf->bandwidth[c];
  }
  *out = t;
  return MOEPLACE_OK;
}

/* Reads one line (with its newline, if it fits) into buf and NUL-terminates
 * it; returns the bytes stored plus one (so a NUL byte inside is seen), 0 at
 * the end of the file. */
static size_t read_line(FILE *f, char *buf, size_t cap) {
  size_t n = 0;
  int c = 0;
  while (n + 1 < cap && (c = getc(f)) != EOF) {
    buf[n++] = (char)c;
    if (c == '\n') break;
  }
  buf[n] = 0;
  return n ? n + 1 : 0;
}

int moeplace_topology_load(moeplace_topology **out, const char *path) {
  if (!out || !path) return mp_fail(MOEPLACE_ERR_ARG, "topology file: NULL argument");
  const int from_stdin = strcmp(path, "-") == 0;
  path = mp_input_name(path);
  FILE *f = from_stdin ? stdin : fopen(path, "r");
  if (!f) return mp_fail(MOEPLACE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  topo_file tf = {.path = path, .shape = {0, 0, 1, 1}};
  char line[4096];
  int rc = MOEPLACE_OK;
  errno = 0;
  for (size_t n; rc == MOEPLACE_OK && (n = read_line(f, line, sizeof line)) > 0;) {
    tf.lineno++;
    if (memchr(line, '\0', n - 1)) // fgets would have cut the line there
      rc = mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: binary data (NUL byte)", path, tf.lineno);
    else if (line[n - 2] != '\n' && n == sizeof line)
      rc = mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: line too long", path, tf.lineno);
    else // a UTF-8 byte-order mark before the first line is skipped, as in traces
      rc = parse_line(&tf, line + (tf.lineno == 1 && !strncmp(line, "\xef\xbb\xbf", 3) ? 3 : 0));
  }
  if (rc == MOEPLACE_OK && ferror(f)) // errno: why getc failed (EISDIR for a directory)
    rc = mp_fail(MOEPLACE_ERR_IO, "%s: cannot read: %s", path, strerror(errno ? errno : EIO));
  if (rc == MOEPLACE_OK) rc = topo_from_file(&tf, out);
  if (!from_stdin) fclose(f);
  free(tf.node);
  free(tf.pkg);
  free(tf.numa);
  return rc;
}
