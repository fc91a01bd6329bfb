/*
 * kernels/gemm_ukr.h - the SGEMM register-blocked micro-kernel, written once over a
 * vector type and included by kernels/set_avx2.c (6 x 16, ymm),
 * kernels/set_avx512.c (14 x 32, zmm) and kernels/set_neon.c (8 x 12, q registers),
 * so all paths are the same code.
 * The includer defines: VF, VW (lanes), UKR_MR, UKR_NAME, and VLOAD, VSTORE,
 * VBCAST (broadcast from a float pointer), VFMA(a, b, c) = a * b + c, VMUL,
 * VZERO, VSET1; optionally UKR_NV3 (three vectors per row instead of two) and
 * UKR_ALANE(v, l) (broadcast of lane l of v: the A values of a k step are then
 * loaded VW at a time, UKR_MR a multiple of VW, and row i takes lane i % VW,
 * for ISAs with by-element FMAs).  The tile is UKR_MR rows x 2 (or 3) vectors.
 */
#ifdef UKR_NV3
#define UKR_THIRD(...) __VA_ARGS__
#define UKR_NV 3
#else
#define UKR_THIRD(...)
#define UKR_NV 2
#endif
static void UKR_NAME(int kc, const float *restrict a, const float *restrict b, float *restrict c,
                     size_t ldc, float alpha, float beta) {
    VF acc0[UKR_MR], acc1[UKR_MR];
    UKR_THIRD(VF acc2[UKR_MR];)
#pragma GCC unroll 16
    for (int i = 0; i < UKR_MR; i++) acc0[i] = VZERO(), acc1[i] = VZERO() UKR_THIRD(, acc2[i] = VZERO());
    for (int p = 0; p < kc; p++) {
        VF b0 = VLOAD(b), b1 = VLOAD(b + VW) UKR_THIRD(, b2 = VLOAD(b + 2 * VW));
        __builtin_prefetch(b + 8 * UKR_NV * VW);
#ifdef UKR_ALANE
        VF arow[UKR_MR / VW];
#pragma GCC unroll 16
        for (int q = 0; q < UKR_MR / VW; q++) arow[q] = VLOAD(a + q * VW);
#endif
#pragma GCC unroll 16
        for (int i = 0; i < UKR_MR; i++) {
#ifdef UKR_ALANE
            VF av = UKR_ALANE(arow[i / VW], i % VW);
#else
            VF av = VBCAST(a + i);
#endif
            acc0[i] = VFMA(av, b0, acc0[i]);
            acc1[i] = VFMA(av, b1, acc1[i]);
            UKR_THIRD(acc2[i] = VFMA(av, b2, acc2[i]);)
        }
        a += UKR_MR;
        b += UKR_NV * VW;
    }
    VF va = VSET1(alpha);
    if (beta == 0) {
#pragma GCC unroll 16
        for (int i = 0; i < UKR_MR; i++) {
            VSTORE(c + i * ldc, VMUL(acc0[i], va));
            VSTORE(c + i * ldc + VW, VMUL(acc1[i], va));
            UKR_THIRD(VSTORE(c + i * ldc + 2 * VW, VMUL(acc2[i], va));)
        }
    } else {
        VF vb = VSET1(beta);
#pragma GCC unroll 16
        for (int i = 0; i < UKR_MR; i++) {
            float *ci = c + i * ldc;
            VSTORE(ci, VFMA(acc0[i], va, VMUL(VLOAD(ci), vb)));
            VSTORE(ci + VW, VFMA(acc1[i], va, VMUL(VLOAD(ci + VW), vb)));
            UKR_THIRD(VSTORE(ci + 2 * VW, VFMA(acc2[i], va, VMUL(VLOAD(ci + 2 * VW), vb)));)
        }
    }
}
#undef UKR_THIRD
#undef UKR_NV
