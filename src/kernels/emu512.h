/*
 * kernels/emu512.h - the subset of AVX-512 intrinsics that set_avx512.c uses,
 * in plain C over GCC vector types, lane by lane, for the test build of that
 * file (-DMC_EMULATE_AVX512, no AVX-512 flags): the AVX-512 kernel source
 * then runs on machines without AVX-512 against the scalar oracle.  Each
 * operation follows the instruction's documented lane semantics: fused
 * multiply-adds rounded once (fmaf), max/min returning the second operand
 * when either is NaN (and for +0 / -0), compares by predicate including
 * unordered lanes, masked loads and stores touching only the lanes in the
 * mask, reduce_add in the same pairwise order as GCC's _mm512_reduce_add_ps.
 * Also renames the set's entry point to mc_kset_avx512_emu and its name to
 * "avx512-emulated" (the set must never be mistaken for the real one).
 * Speed and instruction encoding are not what this tests.
 */
#ifndef MC_EMU512_H
#define MC_EMU512_H

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef float emu512_ps __attribute__((vector_size(64)));
typedef int32_t emu512_si __attribute__((vector_size(64)));
typedef uint16_t emu512_mask;

#define __m512 emu512_ps
#define __m512i emu512_si
#define __mmask16 emu512_mask

#ifndef _CMP_EQ_OQ   /* the predicate numbers of vcmpps (as in <immintrin.h>) */
#define _CMP_EQ_OQ 0x00
#define _CMP_LT_OS 0x01
#define _CMP_LE_OS 0x02
#define _CMP_UNORD_Q 0x03
#define _CMP_NEQ_UQ 0x04
#define _CMP_NLT_US 0x05
#define _CMP_NLE_US 0x06
#define _CMP_ORD_Q 0x07
#define _CMP_EQ_UQ 0x08
#define _CMP_NGE_US 0x09
#define _CMP_NGT_US 0x0a
#define _CMP_FALSE_OQ 0x0b
#define _CMP_NEQ_OQ 0x0c
#define _CMP_GE_OS 0x0d
#define _CMP_GT_OS 0x0e
#define _CMP_TRUE_UQ 0x0f
#define _CMP_EQ_OS 0x10
#define _CMP_LT_OQ 0x11
#define _CMP_LE_OQ 0x12
#define _CMP_UNORD_S 0x13
#define _CMP_NEQ_US 0x14
#define _CMP_NLT_UQ 0x15
#define _CMP_NLE_UQ 0x16
#define _CMP_ORD_S 0x17
#define _CMP_EQ_US 0x18
#define _CMP_NGE_UQ 0x19
#define _CMP_NGT_UQ 0x1a
#define _CMP_FALSE_OS 0x1b
#define _CMP_NEQ_OS 0x1c
#define _CMP_GE_OQ 0x1d
#define _CMP_GT_OQ 0x1e
#define _CMP_TRUE_US 0x1f
#endif

#define EMU512_LANES(i) for (int i = 0; i < 16; i++)

static inline emu512_ps emu512_setzero_ps(void) { return (emu512_ps){0}; }

static inline emu512_ps emu512_set1_ps(float a) {
    emu512_ps r;
    EMU512_LANES(i) r[i] = a;
    return r;
}

static inline emu512_ps emu512_loadu_ps(const void *p) {
    emu512_ps r;
    memcpy(&r, p, sizeof r);
    return r;
}

static inline void emu512_storeu_ps(void *p, emu512_ps a) { memcpy(p, &a, sizeof a); }

/* Lanes outside the mask are zero and their memory is not read. */
static inline emu512_ps emu512_maskz_loadu_ps(emu512_mask m, const void *p) {
    emu512_ps r = {0};
    EMU512_LANES(i) if (m >> i & 1) memcpy((char *)&r + 4 * i, (const char *)p + 4 * i, 4);
    return r;
}

/* Only the lanes in the mask are written. */
static inline void emu512_mask_storeu_ps(void *p, emu512_mask m, emu512_ps a) {
    EMU512_LANES(i) if (m >> i & 1) memcpy((char *)p + 4 * i, (const char *)&a + 4 * i, 4);
}

static inline emu512_ps emu512_add_ps(emu512_ps a, emu512_ps b) { return a + b; }
static inline emu512_ps emu512_sub_ps(emu512_ps a, emu512_ps b) { return a - b; }
static inline emu512_ps emu512_mul_ps(emu512_ps a, emu512_ps b) { return a * b; }
static inline emu512_ps emu512_div_ps(emu512_ps a, emu512_ps b) { return a / b; }

/* a * b + c, one rounding. */
static inline emu512_ps emu512_fmadd_ps(emu512_ps a, emu512_ps b, emu512_ps c) {
    emu512_ps r;
    EMU512_LANES(i) r[i] = fmaf(a[i], b[i], c[i]);
    return r;
}

/* -(a * b) + c, one rounding. */
static inline emu512_ps emu512_fnmadd_ps(emu512_ps a, emu512_ps b, emu512_ps c) {
    emu512_ps r;
    EMU512_LANES(i) r[i] = fmaf(-a[i], b[i], c[i]);
    return r;
}

/* vmaxps / vminps: a > b ? a : b (a < b ? a : b), so b when either is NaN
 * and when both are zeros of any sign. */
static inline emu512_ps emu512_max_ps(emu512_ps a, emu512_ps b) {
    emu512_ps r;
    EMU512_LANES(i) r[i] = a[i] > b[i] ? a[i] : b[i];
    return r;
}

static inline emu512_ps emu512_min_ps(emu512_ps a, emu512_ps b) {
    emu512_ps r;
    EMU512_LANES(i) r[i] = a[i] < b[i] ? a[i] : b[i];
    return r;
}

static inline emu512_si emu512_castps_si512(emu512_ps a) {
    emu512_si r;
    memcpy(&r, &a, sizeof r);
    return r;
}

static inline emu512_ps emu512_castsi512_ps(emu512_si a) {
    emu512_ps r;
    memcpy(&r, &a, sizeof r);
    return r;
}

/* Sign bit cleared (NaN payloads kept), as the AND with 0x7fffffff. */
static inline emu512_ps emu512_abs_ps(emu512_ps a) {
    emu512_si u = emu512_castps_si512(a);
    EMU512_LANES(i) u[i] &= 0x7fffffff;
    return emu512_castsi512_ps(u);
}

/* Logical left shift of each 32-bit lane; counts above 31 give 0. */
static inline emu512_si emu512_slli_epi32(emu512_si a, unsigned int n) {
    emu512_si r;
    EMU512_LANES(i) r[i] = n > 31 ? 0 : (int32_t)((uint32_t)a[i] << n);
    return r;
}

/* Lane-wise signed / unsigned 32-bit min and max, wrapping 32-bit add. */
static inline emu512_si emu512_min_epi32(emu512_si a, emu512_si b) {
    emu512_si r;
    EMU512_LANES(i) r[i] = a[i] < b[i] ? a[i] : b[i];
    return r;
}

static inline emu512_si emu512_max_epi32(emu512_si a, emu512_si b) {
    emu512_si r;
    EMU512_LANES(i) r[i] = a[i] > b[i] ? a[i] : b[i];
    return r;
}

static inline emu512_si emu512_min_epu32(emu512_si a, emu512_si b) {
    emu512_si r;
    EMU512_LANES(i) r[i] = (uint32_t)a[i] < (uint32_t)b[i] ? a[i] : b[i];
    return r;
}

static inline emu512_si emu512_add_epi32(emu512_si a, emu512_si b) {
    emu512_si r;
    EMU512_LANES(i) r[i] = (int32_t)((uint32_t)a[i] + (uint32_t)b[i]);
    return r;
}

/* The 32 vcmpps predicates; bit 4 only selects signalling, which does not
 * change the result. */
static inline int emu512_cmp1(float a, float b, int pred) {
    int un = isunordered(a, b);
    switch (pred & 15) {
    case 0x0: return !un && a == b;
    case 0x1: return a < b;
    case 0x2: return a <= b;
    case 0x3: return un;
    case 0x4: return un || a != b;
    case 0x5: return !(a < b);
    case 0x6: return !(a <= b);
    case 0x7: return !un;
    case 0x8: return un || a == b;
    case 0x9: return !(a >= b);
    case 0xa: return !(a > b);
    case 0xb: return 0;
    case 0xc: return !un && a != b;
    case 0xd: return a >= b;
    case 0xe: return a > b;
    default: return 1;
    }
}

static inline emu512_mask emu512_cmp_ps_mask(emu512_ps a, emu512_ps b, int pred) {
    unsigned m = 0;
    EMU512_LANES(i) m |= (unsigned)emu512_cmp1(a[i], b[i], pred) << i;
    return (emu512_mask)m;
}

/* Lane i: mask bit i ? b : a. */
static inline emu512_ps emu512_mask_blend_ps(emu512_mask m, emu512_ps a, emu512_ps b) {
    emu512_ps r;
    EMU512_LANES(i) r[i] = (m >> i & 1) ? b[i] : a[i];
    return r;
}

/* Halves added (lane i + lane i + 8), then quarters, then pairs {0, 2} and
 * {1, 3}, then the last two: the order of GCC's _mm512_reduce_add_ps. */
static inline float emu512_reduce_add_ps(emu512_ps a) {
    float h[8], q[4];
    for (int i = 0; i < 8; i++) h[i] = a[i + 8] + a[i];
    for (int i = 0; i < 4; i++) q[i] = h[i + 4] + h[i];
    float p0 = q[0] + q[2], p1 = q[1] + q[3];
    return p0 + p1;
}

#define _mm512_setzero_ps emu512_setzero_ps
#define _mm512_set1_ps emu512_set1_ps
#define _mm512_loadu_ps emu512_loadu_ps
#define _mm512_storeu_ps emu512_storeu_ps
#define _mm512_maskz_loadu_ps emu512_maskz_loadu_ps
#define _mm512_mask_storeu_ps emu512_mask_storeu_ps
#define _mm512_add_ps emu512_add_ps
#define _mm512_sub_ps emu512_sub_ps
#define _mm512_mul_ps emu512_mul_ps
#define _mm512_div_ps emu512_div_ps
#define _mm512_fmadd_ps emu512_fmadd_ps
#define _mm512_fnmadd_ps emu512_fnmadd_ps
#define _mm512_max_ps emu512_max_ps
#define _mm512_min_ps emu512_min_ps
#define _mm512_abs_ps emu512_abs_ps
#define _mm512_castps_si512 emu512_castps_si512
#define _mm512_castsi512_ps emu512_castsi512_ps
#define _mm512_slli_epi32 emu512_slli_epi32
#define _mm512_min_epi32 emu512_min_epi32
#define _mm512_max_epi32 emu512_max_epi32
#define _mm512_min_epu32 emu512_min_epu32
#define _mm512_add_epi32 emu512_add_epi32
#define _mm512_cmp_ps_mask emu512_cmp_ps_mask
#define _mm512_mask_blend_ps emu512_mask_blend_ps
#define _mm512_reduce_add_ps emu512_reduce_add_ps

#ifndef EMU512_NO_ENTRY   /* defined by tests of the operations alone */
/* The entry point: kernels/set_avx512.c's mc_kset_avx512 is compiled as the
 * file-local emu512_kset (declared static here, so its definition there is
 * too), and the public mc_kset_avx512_emu wraps it under its own name.  The
 * set also takes every kernel it does not replace from the AVX2 set, so it
 * runs only where mc_cpu_level() >= 1. */
#define mc_kset_avx512 emu512_kset
static int emu512_kset(mc_kset *ks);
int mc_kset_avx512_emu(mc_kset *ks) {
    emu512_kset(ks);
    ks->name = "avx512-emulated";
    return 1;
}
#endif

#endif /* MC_EMU512_H */
