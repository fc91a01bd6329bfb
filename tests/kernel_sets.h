/*
 * kernel_sets.h - the kernel sets the kernel tests run in turn: the library's
 * scalar, avx2 and avx512 sets (neon on AArch64) where this CPU runs them, then
 * "avx512-emulated": the AVX-512 source built over src/kernels/emu512.h (linked into
 * the tests only), which runs wherever the avx2 set does.  A set that cannot
 * run is skipped, the emulated one with a NOT RUN line (never counted as
 * passed).
 */
#ifndef MC_KERNEL_SETS_H
#define MC_KERNEL_SETS_H

#include "core/cpu.h"
#include "kernels/dispatch.h"
#include "kernels/set_avx512.h"

#include <stdio.h>

#if defined(__x86_64__) || defined(__i386__)
#define TEST_HAVE_EMU512 1
enum { TEST_NSETS = 4 };
static const char *const test_set_names[TEST_NSETS] = {"scalar", "avx2", "avx512", "avx512-emulated"};
#else
enum { TEST_NSETS = 2 };   /* AArch64: the NEON set (no emulated x86 set there) */
static const char *const test_set_names[TEST_NSETS] = {"scalar", "neon"};
#endif

/* Makes set s (0 .. TEST_NSETS - 1) the one in use; 0 when this CPU cannot
 * run it.  test_use_set(-1) goes back to the best set. */
static inline int test_use_set(int s) {
    if (s < 0) {
        mc_kernels_force_set(NULL);
        return 1;
    }
#ifdef TEST_HAVE_EMU512
    if (s == 3) {
        static mc_kset emu;
        if (mc_cpu_level() < 1) {
            printf("kernel set avx512-emulated: NOT RUN (needs AVX2+FMA for the kernels it shares with avx2)\n");
            return 0;
        }
        mc_kset_avx512_emu(&emu);
        mc_kernels_force_set(&emu);
        printf("kernel set avx512-emulated: the AVX-512 source over emulated intrinsics\n");
        return 1;
    }
#endif
    return mc_kernels_force(test_set_names[s]);
}

#endif /* MC_KERNEL_SETS_H */
