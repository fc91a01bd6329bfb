/*
 * kernels/set_avx512.h - the AVX-512 (F/BW/VL/DQ) kernel set (x86-64).
 */
#ifndef MC_KERNELS_SET_AVX512_H
#define MC_KERNELS_SET_AVX512_H

#include "kernels/kset.h"

/* Fills *ks and returns 1 (0 when not compiled in: off x86; dispatch.c has the stand-in). */
int mc_kset_avx512(mc_kset *ks);

/* The same source compiled over the portable emulation of its intrinsics
 * (emu512.h), linked into the tests only, so that it runs against the scalar
 * oracle on machines without AVX-512 (needs mc_cpu_level() >= 1). */
int mc_kset_avx512_emu(mc_kset *ks);

#endif /* MC_KERNELS_SET_AVX512_H */
