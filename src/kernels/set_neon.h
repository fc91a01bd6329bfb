/*
 * kernels/set_neon.h - the AArch64 NEON kernel set.
 */
#ifndef MC_KERNELS_SET_NEON_H
#define MC_KERNELS_SET_NEON_H

#include "kernels/kset.h"

/* Fills *ks and returns 1 (0 off AArch64: dispatch.c has the stand-in). */
int mc_kset_neon(mc_kset *ks);

#endif /* MC_KERNELS_SET_NEON_H */
