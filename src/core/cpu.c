/*
 * core/cpu.c - run-time CPU feature detection (cpuid + xgetbv) for choosing the
 * kernel set: AVX2+FMA, or AVX-512 F/BW/VL/DQ, only when the OS saves the
 * matching register state; on AArch64 NEON, always present.
 */
#include "core/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long cpu_xgetbv0(void) {
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

int mc_cpu_level(void) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx || !fma || !f16c) return 0;
    unsigned long long xcr0 = cpu_xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return 0;                 /* XMM + YMM state */
    if (__get_cpuid_max(0, 0) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    int avx2 = (b >> 5) & 1;
    if (!avx2) return 0;
    int avx512 = ((b >> 16) & 1) && ((b >> 17) & 1) && ((b >> 30) & 1) && ((b >> 31) & 1);
    if (avx512 && (xcr0 & 0xe6) == 0xe6) return 2;     /* + opmask, ZMM hi256, hi16 ZMM */
    return 1;
}

#else
#if defined(__aarch64__)
int mc_cpu_level(void) { return 1; }   /* NEON: part of the AArch64 base ISA */
#else
int mc_cpu_level(void) { return 0; }
#endif
#endif
