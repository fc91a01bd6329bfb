/*
 * kernels/ref.h - the plain scalar reference kernels (ref.c): the oracle
 * for every fast version in kernels.h, which tests compare with them on odd
 * sizes.  Written for clarity, not speed.
 */
#ifndef MC_KERNELS_REF_H
#define MC_KERNELS_REF_H

#include "kernels/types.h"

/* Applies act to x[0..n) in place. */
void mc_act_apply_ref(float *x, size_t n, mc_act act);

/* y[m, n] = act(x[m, k] . w[n, k]^T + b[n]);  b may be NULL. */
void mc_linear_ref(const float *x, const float *w, const float *b, int m, int k, int n, float *y, mc_act act);

/* y[m, n] += x[m, k] . w[n, k]^T + b[n] (a residual add fused into the GEMM);  b may be NULL. */
void mc_linear_add_ref(const float *x, const float *w, const float *b, int m, int k, int n, float *y);

/* 1x1 convolution added to a residual, per image of NCHW maps:
 * y[i, cout, hw] += w[cout, cin] . x[i, cin, hw] + b[cout];  b may be NULL. */
void mc_pointwise_add_ref(const float *w, const float *b, const float *x, int n, int cin, int cout,
                          int hw, float *y);

/* c[m, n] = alpha * op(a) . op(b) + beta * c, row-major with leading dimensions;
 * op(a) = a[m, k] (ta = 0) or a[k, m]^T (ta = 1); op(b) = b[k, n] or b[n, k]^T. */
void mc_gemm_ref(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc);

/* y[n, cout, oh, ow] = act(conv(x[n, cin, h, w], w) + b);  b may be NULL. */
void mc_conv2d_ref(const mc_conv2d_desc *d, const float *w, const float *b, const float *x, int n,
                   int h, int wd, float *y, mc_act act);

/* LayerNorm over the last dim of x[rows, dim]; g, b may be NULL (no affine). */
void mc_layernorm_ref(const float *x, int rows, int dim, const float *g, const float *b, float eps,
                      float *y);
/* The same, also giving each row's mean and 1/std (mean_out, rstd_out: [rows] or NULL);
 * the training forward's oracle saves them for the backward. */
void mc_layernorm_stats_ref(const float *x, int rows, int dim, const float *g, const float *b, float eps,
                            float *y, float *mean_out, float *rstd_out);

/* LayerNorm over channels of NCHW x (timm LayerNorm2d): per (n, h, w). */
void mc_layernorm_nchw_ref(const float *x, int n, int c, int hw, const float *g, const float *b,
                           float eps, float *y);

/* Softmax over each row of x[rows, cols] in place. */
void mc_softmax_rows_ref(float *x, int rows, int cols);

/* Multi-head scaled dot-product attention for one sequence.
 * q, k, v: [t, heads * hd] with row stride ld (elements); out: [t, heads * hd]
 * (row stride heads * hd).  causal: position i attends to j <= i.
 * scratch: at least t * t floats. */
void mc_attention_ref(const float *q, const float *k, const float *v, int ld, int t, int heads,
                      int hd, int causal, float *out, float *scratch);

#endif /* MC_KERNELS_REF_H */
