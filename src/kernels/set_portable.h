/*
 * kernels/set_portable.h - the portable C kernel set: any CPU, the
 * compiler vectorizes what it can; the SIMD sets start from it.
 */
#ifndef MC_KERNELS_SET_PORTABLE_H
#define MC_KERNELS_SET_PORTABLE_H

#include "kernels/kset.h"

/* Fills *ks with the portable set ("scalar"). */
void mc_kset_portable(mc_kset *ks);

#endif /* MC_KERNELS_SET_PORTABLE_H */
