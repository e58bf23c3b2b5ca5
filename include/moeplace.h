/*
 * moeplace: expert load prediction, placement and migration for
 * Mixture-of-Experts training on MPI clusters.
 *
 * This header (libmoeplace, pkg-config moeplace) needs no MPI. It gathers the
 * parts of the core API; include it, not the parts:
 *
 *   moeplace/base.h       status codes, error messages, version
 *   moeplace/trace.h      expert-load traces: streaming reader, writer, windows
 *   moeplace/predict.h    state detection and load forecasting
 *   moeplace/placement.h  topology- and migration-aware placement
 *
 * The MPI runtime a trainer links is opt-in: include <moeplace/runtime.h>
 * (libmoeplace-mpi, pkg-config moeplace-mpi), which includes <mpi.h> and
 * this header.
 *
 * Conventions, everywhere:
 *   - every name starts with moeplace_ (types, functions) or MOEPLACE_ (constants);
 *   - objects are opaque handles created by a *_create/_open call and released
 *     by the matching *_destroy/_close call, which accepts NULL;
 *   - functions that can fail return an int status: MOEPLACE_OK (0) or a
 *     negative MOEPLACE_ERR_* code, and leave a human-readable reason in
 *     moeplace_last_error(). The library never aborts or exits the process.
 *   - arrays are passed flat, row-major, with their shape in the comment,
 *     e.g. counts[layers][experts].
 */
#ifndef MOEPLACE_H
#define MOEPLACE_H

#include <moeplace/base.h>
#include <moeplace/trace.h>
#include <moeplace/predict.h>
#include <moeplace/placement.h>

#endif /* MOEPLACE_H */
