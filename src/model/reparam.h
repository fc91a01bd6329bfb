/*
 * model/reparam.h - structural re-parameterisation: the algebra that folds the
 * train-time branches of MobileOne / RepMixer / RepCPE / large-kernel blocks
 * and eval-mode BatchNorm into single convolutions (or linears) with bias.
 * docs/reparameterization.md derives each formula.
 *
 * Conv weights are [cout, cin/groups, k, k] (PyTorch layout); a kernel of
 * side k is added centred into a destination of side K >= k (K - k even),
 * which is what zero-padding the small kernel by (K - k) / 2 does.
 */
#ifndef MC_REPARAM_H
#define MC_REPARAM_H

#include <stddef.h>

/* Eval-mode BatchNorm2d: y = (x - mean) / sqrt(var + eps) * weight + bias. */
typedef struct mc_bn_params {
    const float *weight, *bias;   /* [c] */
    const float *mean, *var;      /* [c] running statistics */
    float eps;
} mc_bn_params;

#define MC_BN_EPS 1e-5f

/* scale[i] = weight[i] / sqrt(var[i] + eps), shift[i] = bias[i] - mean[i] * scale[i]. */
void mc_reparam_bn_affine(const mc_bn_params *bn, int c, float *scale, float *shift);

/* Conv (no bias) followed by BN, added into (dst_w [cout, cin_g, K, K], dst_b [cout]):
 * dst_w[o] += pad(w[o]) * scale[o];  dst_b[o] += shift[o].  w: [cout, cin_g, k, k]. */
void mc_reparam_add_conv_bn(float *dst_w, float *dst_b, int cout, int cin_g, int K, const float *w,
                            int k, const mc_bn_params *bn);

/* Identity branch through BN (cout == cin, stride 1): the identity kernel has a 1 at
 * [o, o % cin_g, K/2, K/2]; dst_w gets scale[o] there, dst_b[o] += shift[o]. */
void mc_reparam_add_identity_bn(float *dst_w, float *dst_b, int c, int cin_g, int K,
                                const mc_bn_params *bn);

/* Plain identity times alpha: dst_w[o, o % cin_g, K/2, K/2] += alpha. */
void mc_reparam_add_identity(float *dst_w, int c, int cin_g, int K, float alpha);

/* RepMixer: x + ls * (mixer(x) - norm(x)) as one depthwise conv [c, 1, k, k]:
 * w = id + ls * (wm - wn), b = ls * (bm - bn).  ls [c] may be NULL (= 1). */
void mc_reparam_repmixer(float *w, float *b, int c, int k, const float *wm, const float *bm,
                         const float *wn, const float *bn, const float *ls);

/* Multiplies output channel o of w [cout, per] and b [cout] (b may be NULL) by s[o]
 * (a LayerScale after a conv/linear). */
void mc_reparam_scale_out(float *w, float *b, int cout, size_t per, const float *s);

/* A per-input-channel affine (x * scale + shift) in front of a linear w [out, in], b [out]:
 * b[o] += sum_i w[o, i] * shift[i], then w[o, i] *= scale[i]. */
void mc_reparam_affine_into_linear(float *w, float *b, int out, int in, const float *scale,
                                   const float *shift);

#endif /* MC_REPARAM_H */
