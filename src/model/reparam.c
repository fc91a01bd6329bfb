/*
 * model/reparam.c - folding of train-time branches and BatchNorm into single
 * convolutions with bias (see reparam.h and docs/reparameterization.md).
 */
#include "model/reparam.h"

#include <math.h>

void mc_reparam_bn_affine(const mc_bn_params *bn, int c, float *scale, float *shift) {
    for (int i = 0; i < c; i++) {
        /* as PyTorch: std = sqrt(var + eps) in float, t = gamma / std */
        float std = sqrtf(bn->var[i] + bn->eps);
        float s = bn->weight[i] / std;
        scale[i] = s;
        shift[i] = bn->bias[i] - bn->mean[i] * bn->weight[i] / std;
    }
}

void mc_reparam_add_conv_bn(float *dst_w, float *dst_b, int cout, int cin_g, int K, const float *w,
                            int k, const mc_bn_params *bn) {
    int off = (K - k) / 2;
    for (int o = 0; o < cout; o++) {
        float std = sqrtf(bn->var[o] + bn->eps);
        float s = bn->weight[o] / std;
        for (int i = 0; i < cin_g; i++) {
            const float *src = w + ((size_t)o * cin_g + i) * k * k;        /* [k, k] */
            float *dst = dst_w + ((size_t)o * cin_g + i) * K * K;         /* [K, K] */
            for (int y = 0; y < k; y++)
                for (int x = 0; x < k; x++) dst[(y + off) * K + x + off] += src[y * k + x] * s;
        }
        dst_b[o] += bn->bias[o] - bn->mean[o] * bn->weight[o] / std;
    }
}

void mc_reparam_add_identity_bn(float *dst_w, float *dst_b, int c, int cin_g, int K,
                                const mc_bn_params *bn) {
    int mid = K / 2;
    for (int o = 0; o < c; o++) {
        float std = sqrtf(bn->var[o] + bn->eps);
        float s = bn->weight[o] / std;
        dst_w[((size_t)o * cin_g + o % cin_g) * K * K + mid * K + mid] += s;
        dst_b[o] += bn->bias[o] - bn->mean[o] * bn->weight[o] / std;
    }
}

void mc_reparam_add_identity(float *dst_w, int c, int cin_g, int K, float alpha) {
    int mid = K / 2;
    for (int o = 0; o < c; o++) dst_w[((size_t)o * cin_g + o % cin_g) * K * K + mid * K + mid] += alpha;
}

void mc_reparam_repmixer(float *w, float *b, int c, int k, const float *wm, const float *bm,
                         const float *wn, const float *bn, const float *ls) {
    size_t kk = (size_t)k * k;
    for (int o = 0; o < c; o++) {
        float s = ls ? ls[o] : 1.0f;
        for (size_t j = 0; j < kk; j++) w[o * kk + j] = s * (wm[o * kk + j] - wn[o * kk + j]);
        b[o] = s * (bm[o] - bn[o]);
    }
    mc_reparam_add_identity(w, c, 1, k, 1.0f);
}

void mc_reparam_scale_out(float *w, float *b, int cout, size_t per, const float *s) {
    for (int o = 0; o < cout; o++) {
        for (size_t j = 0; j < per; j++) w[o * per + j] *= s[o];
        if (b) b[o] *= s[o];
    }
}

void mc_reparam_affine_into_linear(float *w, float *b, int out, int in, const float *scale,
                                   const float *shift) {
    for (int o = 0; o < out; o++) {
        float *wo = w + (size_t)o * in;
        double acc = b[o];
        for (int i = 0; i < in; i++) acc += (double)wo[i] * shift[i];
        b[o] = (float)acc;
        for (int i = 0; i < in; i++) wo[i] *= scale[i];
    }
}
