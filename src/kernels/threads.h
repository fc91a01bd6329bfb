/*
 * kernels/threads.h - how many threads the kernels use (OpenMP), and the
 * thread-local scratch buffers they pack and stage into.
 */
#ifndef MC_KERNELS_THREADS_H
#define MC_KERNELS_THREADS_H

#include <stddef.h>

/* Thread count used by the kernels (0 = one per core). */
void mc_kernels_set_threads(int n);
int mc_kernels_get_threads(void);
/* Thread count for kernels called from the calling thread only, overriding
 * the process-wide one (0 = one per core, -1 = no override); returns the
 * previous override.  Contexts set it around each forward pass. */
int mc_kernels_set_local_threads(int n);
/* Threads a kernel called here would use at most (1 inside a parallel region). */
int mc_kernels_threads_avail(void);

/* Scratch owned by the calling thread, grown on demand, never shrunk (no
 * allocation per call in steady state).  Slots keep callers' uses apart. */
enum { MC_SCRATCH_PACK_A, MC_SCRATCH_PACK_B, MC_SCRATCH_CONV, MC_SCRATCH_ATTN, MC_SCRATCH_PACK_Q, MC_SCRATCH_N };
/* NULL when the memory cannot be had (or exceeds the test limit); every caller
 * then takes a path that needs no scratch, since the kernels cannot fail. */
float *mc_scratch(int slot, size_t floats);
/* Test hook: scratch requests above this many floats fail ((size_t)-1: none). */
void mc_scratch_set_limit(size_t floats);

/* Threads for a kernel call: the set count (0 = all cores), 1 inside a
 * parallel region or when work (flops) is too small to share. */
int mc_threads_for(double flops);

#endif /* MC_KERNELS_THREADS_H */
