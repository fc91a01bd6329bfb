/*
 * kernels/kernels.h - the numeric kernels every model block is built from.
 *
 * Each kernel has a plain scalar reference version (ref.h, suffix _ref) that
 * is the oracle for its fast versions (SIMD, threaded).  The unsuffixed entry
 * points here dispatch to the fastest version the CPU supports (dispatch.h);
 * tests compare the two on odd sizes.  Types and layouts: types.h.
 */
#ifndef MC_KERNELS_H
#define MC_KERNELS_H

#include "kernels/ref.h"
#include "kernels/threads.h"
#include "kernels/types.h"

/* Applies act to x[0..n) in place. */
void mc_act_apply(float *x, size_t n, mc_act act);

/* y[m, n] = act(x[m, k] . w[n, k]^T + b[n]);  b may be NULL. */
void mc_linear(const float *x, const float *w, const float *b, int m, int k, int n, float *y, mc_act act);

/* y[m, n] += x[m, k] . w[n, k]^T + b[n] (a residual add fused into the GEMM);  b may be NULL. */
void mc_linear_add(const float *x, const float *w, const float *b, int m, int k, int n, float *y);

/* 1x1 convolution added to a residual, per image of NCHW maps:
 * y[i, cout, hw] += w[cout, cin] . x[i, cin, hw] + b[cout];  b may be NULL. */
void mc_pointwise_add(const float *w, const float *b, const float *x, int n, int cin, int cout,
                      int hw, float *y);

/* c[m, n] = alpha * op(a) . op(b) + beta * c, row-major with leading dimensions;
 * op(a) = a[m, k] (ta = 0) or a[k, m]^T (ta = 1); op(b) = b[k, n] or b[n, k]^T. */
void mc_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc);

/* y[n, cout, oh, ow] = act(conv(x[n, cin, h, w], w) + b);  b may be NULL. */
void mc_conv2d(const mc_conv2d_desc *d, const float *w, const float *b, const float *x, int n,
               int h, int wd, float *y, mc_act act);

/* LayerNorm over the last dim of x[rows, dim]; g, b may be NULL (no affine). */
void mc_layernorm(const float *x, int rows, int dim, const float *g, const float *b, float eps,
                  float *y);

/* LayerNorm over channels of NCHW x (timm LayerNorm2d): per (n, h, w). */
void mc_layernorm_nchw(const float *x, int n, int c, int hw, const float *g, const float *b,
                       float eps, float *y);

/* Softmax over each row of x[rows, cols] in place. */
void mc_softmax_rows(float *x, int rows, int cols);

/* Multi-head scaled dot-product attention for one sequence.
 * q, k, v: [t, heads * hd] with row stride ld (elements); out: [t, heads * hd]
 * (row stride heads * hd).  causal: position i attends to j <= i.
 * scratch: at least t * t floats. */
void mc_attention(const float *q, const float *k, const float *v, int ld, int t, int heads, int hd,
                  int causal, float *out, float *scratch);

/* mc_attention over nseq sequences stored one after another: sequence s
 * reads q, k, v + s t ld and writes out + s t heads hd.  The (sequence, head)
 * pairs run on separate threads; score scratch is thread-local. */
void mc_attention_batch(const float *q, const float *k, const float *v, int ld, int nseq, int t,
                        int heads, int hd, int causal, float *out);

/* The kernels above with the weights taken from q when q is non-NULL and its
 * type is not MC_WT_F32 (w is then ignored and may be NULL); otherwise exactly
 * the float32 kernels on w.  A float32 q with a packed copy stands for w:
 * its panels are read in place when they fit the kernel set in use, and when
 * w is NULL (the weights held only packed) values come from the copy for any
 * kernel set, with the same results as on w.  For mc_conv2d_q, q holds w as
 * [cout, cin/groups kh kw] and is used only by dense or grouped convs
 * (cin/groups > 1). */
void mc_linear_q(const float *x, const float *w, const mc_qmat *q, const float *b, int m, int k, int n,
                 float *y, mc_act act);
void mc_linear_add_q(const float *x, const float *w, const mc_qmat *q, const float *b, int m, int k,
                     int n, float *y);
void mc_pointwise_add_q(const float *w, const mc_qmat *q, const float *b, const float *x, int n, int cin,
                        int cout, int hw, float *y);
void mc_conv2d_q(const mc_conv2d_desc *d, const float *w, const mc_qmat *q, const float *b,
                 const float *x, int n, int h, int wd, float *y, mc_act act);

#endif /* MC_KERNELS_H */
