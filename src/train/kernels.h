/*
 * train/kernels.h - train-mode forward/backward kernels on raw float arrays
 * (kernels.c), each beside its scalar oracle (kernels_ref.h).
 *
 * Conventions (llm.c style): every forward has a backward that accumulates
 * (+=) into the gradients it is given (NULL = not wanted).  Feature maps are
 * NCHW; sequences are [rows, dim].
 */
#ifndef MC_TRAIN_KERNELS_H
#define MC_TRAIN_KERNELS_H

#include "train/kernels_ref.h"

/* y[n,cout,oh,ow] = conv(x[n,cin,h,w], w[cout,cin/g,kh,kw]) + b[cout] (b may be NULL) */
void mc_train_conv2d_forward(const mc_conv2d_desc *d, const float *x, int n, int h, int wd,
                             const float *w, const float *b, float *y);
/* dx[n,cin,h,w] += ..., dw += ..., db += ... from dy[n,cout,oh,ow] */
void mc_train_conv2d_backward(const mc_conv2d_desc *d, const float *x, int n, int h, int wd,
                              const float *w, const float *dy, float *dx, float *dw, float *db);

/* BatchNorm2d in train mode over x[n,c,hw]: batch mean / biased variance;
 * saves mean[c], rstd[c]; updates running_mean/var (unbiased var) with
 * momentum when they are non-NULL. */
void mc_train_bn_forward(const float *x, int n, int c, int hw, const float *g, const float *b,
                         float eps, float momentum, float *running_mean, float *running_var,
                         float *y, float *mean, float *rstd);
void mc_train_bn_backward(const float *x, int n, int c, int hw, const float *g, const float *mean,
                          const float *rstd, const float *dy, float *dx, float *dg, float *db);

/* y[m,n] = x[m,k] . w[n,k]^T + b[n] */
void mc_train_linear_forward(const float *x, const float *w, const float *b, int m, int k, int n,
                             float *y);
void mc_train_linear_backward(const float *x, const float *w, int m, int k, int n, const float *dy,
                              float *dx, float *dw, float *db);
/* y[m,n] = x[m,k] . p[k,n] (projection parameters stored [in, out]) */
void mc_train_matmul_forward(const float *x, const float *p, int m, int k, int n, float *y);
void mc_train_matmul_backward(const float *x, const float *p, int m, int k, int n, const float *dy,
                              float *dx, float *dp);

/* LayerNorm over the last dim; saves mean[rows], rstd[rows]. */
void mc_train_layernorm_forward(const float *x, int rows, int dim, const float *g, const float *b,
                                float eps, float *y, float *mean, float *rstd);
void mc_train_layernorm_backward(const float *x, int rows, int dim, const float *g,
                                 const float *mean, const float *rstd, const float *dy, float *dx,
                                 float *dg, float *db);

/* Elementwise activations (MC_ACT_RELU, MC_ACT_GELU exact, MC_ACT_QUICK_GELU x sigmoid(1.702 x),
 * MC_ACT_SIGMOID). */
void mc_train_act_forward(const float *x, size_t n, mc_act act, float *y);
void mc_train_act_backward(const float *x, size_t n, mc_act act, const float *dy, float *dx);

/* Multi-head self-attention for b sequences: qkv[b,t,3*heads*hd] (q | k | v,
 * heads contiguous) -> out[b,t,heads*hd]; probs[b,heads,t,t] saved. */
void mc_train_attention_forward(const float *qkv, int b, int t, int heads, int hd, int causal,
                                float *out, float *probs);
void mc_train_attention_backward(const float *qkv, int b, int t, int heads, int hd,
                                 const float *probs, const float *dout, float *dqkv);

/* Rows of x[n,d] divided by max(||x||, 1e-12). */
void mc_train_l2norm_forward(const float *x, int n, int d, float *y);
void mc_train_l2norm_backward(const float *x, int n, int d, const float *dy, float *dx);

#endif /* MC_TRAIN_KERNELS_H */
