/* Places the experts of a small model on a cluster, from a loads file:
 *
 *     place_from_loads LOADS NODES RANKS_PER_NODE SLOTS_PER_RANK
 *
 * LOADS is plain text, one line per MoE layer, E non-negative numbers each
 * (the expert loads, e.g. tokens). Prints every rank's experts per layer
 * with their routing shares, and the imbalance of the placement.
 * Core library only: build with `pkg-config --cflags --libs moeplace`. */
#include <moeplace.h>

#include <stdio.h>
#include <stdlib.h>

#define MAX_LAYERS 64
#define MAX_EXPERTS 256

/* Reads at most MAX_LAYERS rows of the same length; 0 on success. */
static int read_loads(const char *path, double *loads, int *layers, int *experts) {
  FILE *f = fopen(path, "r");
  if (!f) { perror(path); return -1; }
  int l = 0, e = 0, c;
  double v;
  *experts = 0;
  while (fscanf(f, "%lf", &v) == 1) {
    if (l >= MAX_LAYERS || e >= MAX_EXPERTS) break;
    loads[l * MAX_EXPERTS + e++] = v;
    while ((c = getc(f)) == ' ' || c == '\t') {}
    if (c == '\n' || c == EOF) {
      if (*experts == 0) *experts = e;
      if (e != *experts) { fprintf(stderr, "%s: row %d has %d loads, not %d\n", path, l + 1, e, *experts); break; }
      l++, e = 0;
    } else ungetc(c, f);
  }
  int ok = !ferror(f) && feof(f) && l > 0 && e == 0;
  fclose(f);
  if (!ok) { fprintf(stderr, "%s: expected rows of numbers\n", path); return -1; }
  *layers = l;
  for (int i = 0; i < l; i++) /* pack the rows: loads [L][E] */
    for (int j = 0; j < *experts; j++) loads[i * *experts + j] = loads[i * MAX_EXPERTS + j];
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s LOADS NODES RANKS_PER_NODE SLOTS_PER_RANK\n", argv[0]);
    return 2;
  }
  static double loads[MAX_LAYERS * MAX_EXPERTS];
  int layers, experts;
  if (read_loads(argv[1], loads, &layers, &experts) != 0) return 1;
  int nodes = atoi(argv[2]), per_node = atoi(argv[3]), slots = atoi(argv[4]);

  moeplace_topology *topo = NULL;
  moeplace_placement *placement = NULL;
  moeplace_place_stats stats;
  int rc = moeplace_topology_create_shape(&topo, nodes, per_node, 1, 1);
  if (rc == MOEPLACE_OK)
    rc = moeplace_place(topo, layers, experts, slots, loads, NULL, NULL, &placement, &stats);
  if (rc != MOEPLACE_OK) {
    fprintf(stderr, "place_from_loads: %s: %s\n", moeplace_strerror(rc), moeplace_last_error());
    moeplace_topology_destroy(topo);
    return 1;
  }

  int ranks = moeplace_topology_ranks(topo);
  for (int l = 0; l < layers; l++) {
    const int *phy2log = moeplace_placement_phy2log_const(placement, l);
    const double *share = moeplace_placement_share_const(placement, l);
    printf("layer %d\n", l);
    for (int r = 0; r < ranks; r++) {
      printf("  rank %d:", r);
      for (int s = r * slots; s < (r + 1) * slots; s++)
        if (phy2log[s] >= 0) printf(" e%d(%.2f)", phy2log[s], share[s]);
      printf("\n");
    }
  }
  /* Imbalance: max rank load / mean rank load, summed over layers (1 is perfect). */
  printf("imbalance %.4f (lower bound %.4f), %d layers x %d experts on %d ranks x %d slots\n",
         stats.imbalance, stats.lower_bound, layers, experts, ranks, slots);
  moeplace_placement_destroy(placement);
  moeplace_topology_destroy(topo);
  return 0;
}
