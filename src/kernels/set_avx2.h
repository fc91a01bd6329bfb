/*
 * kernels/set_avx2.h - the AVX2 + FMA kernel set (x86-64).
 */
#ifndef MC_KERNELS_SET_AVX2_H
#define MC_KERNELS_SET_AVX2_H

#include "kernels/kset.h"

/* Fills *ks and returns 1 (0 when not compiled in: off x86; dispatch.c has the stand-in). */
int mc_kset_avx2(mc_kset *ks);

/* The AVX2 A-panel packer (also used by the AVX-512 set). */
void mc_pack_a_rows_avx2(const float *a, int lda, int mr, int MR, int kc, float *dst);

#endif /* MC_KERNELS_SET_AVX2_H */
