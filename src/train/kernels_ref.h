/*
 * train/kernels_ref.h - the plain scalar train-mode kernels (kernels_ref.c):
 * the oracles of the fast ones in kernels.h.
 */
#ifndef MC_TRAIN_KERNELS_REF_H
#define MC_TRAIN_KERNELS_REF_H

#include "kernels/types.h"

/* The plain scalar versions of the kernels above: the
 * oracles of the fast ones, which run on the blocked SGEMM and the fast
 * convolution of kernels.h / gemm.h.  The fast kernels give the same results
 * for any thread count (every output element is reduced in a fixed order);
 * they differ from the _ref versions by float rounding only (the _ref
 * reductions run in double, the GEMM ones in float). */
void mc_train_conv2d_forward_ref(const mc_conv2d_desc *d, const float *x, int n, int h, int wd,
                                 const float *w, const float *b, float *y);
void mc_train_conv2d_backward_ref(const mc_conv2d_desc *d, const float *x, int n, int h, int wd,
                                  const float *w, const float *dy, float *dx, float *dw, float *db);
void mc_train_bn_forward_ref(const float *x, int n, int c, int hw, const float *g, const float *b,
                             float eps, float momentum, float *running_mean, float *running_var,
                             float *y, float *mean, float *rstd);
void mc_train_bn_backward_ref(const float *x, int n, int c, int hw, const float *g, const float *mean,
                              const float *rstd, const float *dy, float *dx, float *dg, float *db);
void mc_train_linear_forward_ref(const float *x, const float *w, const float *b, int m, int k, int n,
                                 float *y);
void mc_train_linear_backward_ref(const float *x, const float *w, int m, int k, int n, const float *dy,
                                  float *dx, float *dw, float *db);
void mc_train_matmul_forward_ref(const float *x, const float *p, int m, int k, int n, float *y);
void mc_train_matmul_backward_ref(const float *x, const float *p, int m, int k, int n, const float *dy,
                                  float *dx, float *dp);
void mc_train_layernorm_forward_ref(const float *x, int rows, int dim, const float *g, const float *b,
                                    float eps, float *y, float *mean, float *rstd);
void mc_train_layernorm_backward_ref(const float *x, int rows, int dim, const float *g,
                                     const float *mean, const float *rstd, const float *dy, float *dx,
                                     float *dg, float *db);
void mc_train_act_forward_ref(const float *x, size_t n, mc_act act, float *y);
void mc_train_act_backward_ref(const float *x, size_t n, mc_act act, const float *dy, float *dx);
void mc_train_attention_forward_ref(const float *qkv, int b, int t, int heads, int hd, int causal,
                                    float *out, float *probs);
void mc_train_attention_backward_ref(const float *qkv, int b, int t, int heads, int hd,
                                     const float *probs, const float *dout, float *dqkv);
void mc_train_l2norm_forward_ref(const float *x, int n, int d, float *y);
void mc_train_l2norm_backward_ref(const float *x, int n, int d, const float *dy, float *dx);

#endif /* MC_TRAIN_KERNELS_REF_H */
