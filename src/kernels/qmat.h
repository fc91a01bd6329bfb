/*
 * kernels/qmat.h - scalar readers of a weight matrix held as an mc_qmat
 * (types.h): element conversion, rows, and the pre-packed copy read back.
 * These are the references for the kernel sets' conversions.
 */
#ifndef MC_KERNELS_QMAT_H
#define MC_KERNELS_QMAT_H

#include "kernels/types.h"

/* The scalar conversion (every kernel set's reference; the portable set's cvt):
 * dst[j] = float32 of the j-th element of src (bf16 / f16 bits, or int8 times
 * scale), j < n; for MC_WT_F32 a copy. */
void mc_cvt_ref(mc_wtype t, const void *src, int n, float scale, float *dst);

/* Elements of one row of q converted to float32: dst[j] = q[r, c0 + j], j < n
 * (the fast version, through the kernel set in use, is mc_qmat_row in lowp.h). */
void mc_qmat_row_ref(const mc_qmat *q, int64_t r, int64_t c0, int n, float *dst);

/* Rows [r0, r0 + nr), columns [c0, c0 + n) of q's packed copy (q->packed
 * non-NULL) into dst, row stride ldd: the inverse of mc_qmat_pack (gemm.h;
 * packing only moves values and pads with zeros, so this is exact).  Scalar,
 * for any kernel set's geometry. */
void mc_qmat_unpack(const mc_qmat *q, int64_t r0, int nr, int64_t c0, int n, float *dst, size_t ldd);

#endif /* MC_KERNELS_QMAT_H */
