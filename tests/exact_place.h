/* Exact references for small placement instances (tests only). */
#ifndef MOEPLACE_TESTS_EXACT_PLACE_H
#define MOEPLACE_TESTS_EXACT_PLACE_H

/* Exact optimum for small instances: min over all placements of the max
 * rank load with optimal shares. Returns < 0 if the instance is too big
 * (R > 4 or E > 8). */
double mp_place_exact(const double *w, int E, int R, int S);
/* The same with even shares (every replica w_e / its count): min over all
 * placements of the max rank load. < 0 if too big (R > 4 or E > 8). */
double mp_place_exact_even(const double *w, int E, int R, int S);
/* Optimal max rank load of a fixed assignment phy2log [R*S] (shares free),
 * exactly, by Hall's condition over rank subsets (R <= 16, E <= 64);
 * < 0 beyond that. */
double mp_place_assignment_optimum(const double *w, int E, int R, int S, const int *phy2log);

#endif
