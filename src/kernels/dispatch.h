/*
 * kernels/dispatch.h - choosing the kernel set: the best one the CPU
 * supports (core/cpu.h), or MC_KERNELS=scalar|avx2|avx512 (AArch64:
 * scalar|neon) in the environment, chosen once at first use.
 */
#ifndef MC_KERNELS_DISPATCH_H
#define MC_KERNELS_DISPATCH_H

#include "kernels/kset.h"

/* The kernel set in use (chosen once), and a switch for tests and benchmarks:
 * mc_kernels_force("scalar" | "avx2" | "avx512" | "neon" | NULL = best); returns
 * 0 when that set is not available on this CPU. */
const mc_kset *mc_kset_get(void);
int mc_kernels_force(const char *name);
/* Test hook: makes *ks (kept alive by the caller) the set in use, NULL the
 * best one; for sets built outside the library, such as the AVX-512 source
 * compiled over emu512.h, mc_kset_avx512_emu (linked into the tests only;
 * it needs mc_cpu_level() >= 1). */
void mc_kernels_force_set(const mc_kset *ks);
int mc_kset_avx512_emu(mc_kset *ks);

/* Kernel set in use ("scalar", "avx2", "avx512", "neon"). */
const char *mc_kernels_name(void);

#endif /* MC_KERNELS_DISPATCH_H */
