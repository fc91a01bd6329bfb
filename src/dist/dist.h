/*
 * dist/dist.h - data-parallel communication (see README.md).
 *
 * One mc_dist per process; NULL is a world of one everywhere.  Collectives must be called by every rank in the
 * same order with the same sizes (as in MPI).  Each waits at most the
 * timeout set with mc_dist_set_timeout (default 600 s); on a timeout or an
 * MPI error it returns MC_ERR_IO with a message naming this rank and the
 * operation, and the caller should end the job (mc_dist_abort) - the other
 * ranks cannot be trusted to be in step any more.
 */
#ifndef MC_DIST_DIST_H
#define MC_DIST_DIST_H

#include "core/core.h"

typedef struct mc_dist mc_dist;

/* Starts MPI when the build has it and the process was started by an MPI
 * launcher (OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK, PMI_RANK or
 * SLURM_PROCID with MPI in the environment); otherwise a world of one.
 * argc/argv may be NULL. */
mc_status mc_dist_init(int *argc, char ***argv, mc_dist **out, mc_error *err);
/* Finalises MPI (when it was started) and frees. */
void mc_dist_finish(mc_dist *d);
/* Ends every rank of the job now (MPI_Abort), with the exit status code. */
void mc_dist_abort(mc_dist *d, int code);

int mc_dist_rank(const mc_dist *d);
int mc_dist_world(const mc_dist *d);
/* 1 when built with MPI support (whether or not this process runs under a launcher). */
int mc_dist_built_with_mpi(void);
/* A short description: "single process", "MPI: rank 1 of 4 (Open MPI v4.1.4)". */
const char *mc_dist_describe(const mc_dist *d);

void mc_dist_set_timeout(mc_dist *d, double seconds);

/* global [world * n] = the n floats of every rank, in rank order. */
mc_status mc_dist_allgather_f32(mc_dist *d, const float *local, size_t n, float *global, mc_error *err);
/* buf [n] = the element-wise sum over ranks (in place). */
mc_status mc_dist_allreduce_sum_f32(mc_dist *d, float *buf, size_t n, mc_error *err);
mc_status mc_dist_allreduce_sum_f64(mc_dist *d, double *buf, size_t n, mc_error *err);
/* local [n] = the element-wise sum over ranks of their global [rank * n .. rank * n + n). */
mc_status mc_dist_reduce_scatter_sum_f32(mc_dist *d, const float *global, size_t n, float *local, mc_error *err);
/* buf [bytes] from root to every rank. */
mc_status mc_dist_broadcast(mc_dist *d, void *buf, size_t bytes, int root, mc_error *err);
/* Agreement: *all_ok = 1 when every rank passed ok = 1.  Lets the ranks
 * leave together when one of them failed (its message stays its own). */
mc_status mc_dist_all_ok(mc_dist *d, int ok, int *all_ok, mc_error *err);

#endif /* MC_DIST_DIST_H */
