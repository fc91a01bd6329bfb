/*
 * gemm_ukr.h - the SGEMM register-blocked micro-kernel, written once over a
 * vector type and included by kernels_avx2.c (6 x 16, ymm) and
 * kernels_avx512.c (14 x 32, zmm), so both paths are the same code.
 * The includer defines: VF, VW (lanes), UKR_MR, UKR_NAME, and VLOAD, VSTORE,
 * VBCAST (broadcast from a float pointer), VFMA(a, b, c) = a * b + c, VMUL,
 * VZERO, VSET1.  The tile is UKR_MR rows x 2 vectors.
 */
static void UKR_NAME(int kc, const float *restrict a, const float *restrict b, float *restrict c,
                     size_t ldc, float alpha, float beta) {
    VF acc0[UKR_MR], acc1[UKR_MR];
#pragma GCC unroll 16
    for (int i = 0; i < UKR_MR; i++) acc0[i] = VZERO(), acc1[i] = VZERO();
    for (int p = 0; p < kc; p++) {
        VF b0 = VLOAD(b), b1 = VLOAD(b + VW);
        __builtin_prefetch(b + 8 * 2 * VW);
#pragma GCC unroll 16
        for (int i = 0; i < UKR_MR; i++) {
            VF av = VBCAST(a + i);
            acc0[i] = VFMA(av, b0, acc0[i]);
            acc1[i] = VFMA(av, b1, acc1[i]);
        }
        a += UKR_MR;
        b += 2 * VW;
    }
    VF va = VSET1(alpha);
    if (beta == 0) {
#pragma GCC unroll 16
        for (int i = 0; i < UKR_MR; i++) {
            VSTORE(c + i * ldc, VMUL(acc0[i], va));
            VSTORE(c + i * ldc + VW, VMUL(acc1[i], va));
        }
    } else {
        VF vb = VSET1(beta);
#pragma GCC unroll 16
        for (int i = 0; i < UKR_MR; i++) {
            float *ci = c + i * ldc;
            VSTORE(ci, VFMA(acc0[i], va, VMUL(VLOAD(ci), vb)));
            VSTORE(ci + VW, VFMA(acc1[i], va, VMUL(VLOAD(ci + VW), vb)));
        }
    }
}
