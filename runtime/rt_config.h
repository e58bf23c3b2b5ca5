/* Runtime configuration helpers (config.c). */
#ifndef MOEPLACE_RUNTIME_RT_CONFIG_H
#define MOEPLACE_RUNTIME_RT_CONFIG_H

#include <mpi.h>

#include <moeplace/runtime.h>

/* 1 if the predict engine knows this method name (or "auto", or
 * MOEPLACE_RUNTIME_PREDICTOR_DEFAULT). */
int mp_rt_predictor_known(const char *name);

/* Local validation for a communicator of `ranks` ranks. */
int mp_rt_config_validate(const moeplace_runtime_config *c, int ranks);

/* Collective: one MPI_Allreduce over every field (and this rank's
 * validation outcome). Returns the same class of status on every rank:
 * MOEPLACE_ERR_ARG if any rank's config was invalid, MOEPLACE_ERR_MISMATCH
 * naming the first differing field, or MOEPLACE_OK. c may be NULL when
 * local_status is an error. */
int mp_rt_config_agree(MPI_Comm comm, const moeplace_runtime_config *c, int local_status);

#endif
