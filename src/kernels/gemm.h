/*
 * kernels/gemm.h - the blocked, packed SGEMM driver every GEMM-shaped kernel
 * runs through (any kernel set's micro-kernel), reduced-precision operands,
 * and weights pre-packed once in the panel layout.
 */
#ifndef MC_KERNELS_GEMM_H
#define MC_KERNELS_GEMM_H

#include "kernels/kset.h"

/* Blocked SGEMM (same contract as mc_gemm) with an optional fused epilogue:
 * brow[m] added per row, bcol[n] per column, then act (after alpha/beta). */
void mc_gemm_ex(const mc_kset *ks, int nthreads, int ta, int tb, int m, int n, int k, float alpha,
                const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc,
                const float *brow, const float *bcol, mc_act act);

/* A reduced-precision GEMM operand: rows row0.. of q, all its columns. */
typedef struct mc_qop {
    const mc_qmat *q;
    int64_t row0;
} mc_qop;

/* mc_gemm_ex with op(a)[i, p] = qa row i, column p when qa is non-NULL (ta,
 * a and lda are then ignored), and op(b)[p, j] = qb row j, column p when qb
 * is non-NULL (tb, b, ldb ignored): a weight matrix [out, in] serves as the
 * A of a conv (out x pixels) or the transposed B of a linear layer.  Rows are
 * converted to float32 while the panels are packed. */
void mc_gemm_q(const mc_kset *ks, int nthreads, int ta, int tb, int m, int n, int k, float alpha,
               const float *a, int lda, const mc_qop *qa, const float *b, int ldb, const mc_qop *qb,
               float beta, float *c, int ldc, const float *brow, const float *bcol, mc_act act);

/* Floats of a pre-packed copy of a [rows, cols] weight matrix for kernel set
 * ks, as the B of a linear layer (b = 1) or the A of a conv (b = 0); 0 on
 * overflow. */
size_t mc_qmat_packed_floats(const mc_kset *ks, int b, int64_t rows, int64_t cols);
/* Packs w[rows, cols] into dst (mc_qmat_packed_floats floats) and makes *q a
 * float32 mc_qmat of w carrying the packed copy (layout in types.h).  The
 * caller may then give w back and set q->data to NULL: readers of a float32
 * q without data take its values from the packed copy (mc_qmat_unpack). */
void mc_qmat_pack(const mc_kset *ks, int b, const float *w, int64_t rows, int64_t cols, float *dst, mc_qmat *q);
/* cblas_sgemm when built with BLAS=openblas; returns 0 (does nothing) otherwise. */
int mc_gemm_blas(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc);

#endif /* MC_KERNELS_GEMM_H */
