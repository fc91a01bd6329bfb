/*
 * kernels/set_portable.c - the portable C kernel set (set_portable.h): a
 * 4x8 micro-kernel, epilogue and depthwise loops in plain C (the compiler
 * vectorizes what it can), the rest from the scalar references.
 */
#include "kernels/set_portable.h"
#include "kernels/qmat.h"
#include "kernels/ref.h"

#include <math.h>

#define P_MR 4
#define P_NR 8

static void ukr_portable(int kc, const float *a, const float *b, float *c, size_t ldc, float alpha,
                         float beta) {
    float acc[P_MR][P_NR] = {{0}};
    for (int p = 0; p < kc; p++) {
        for (int i = 0; i < P_MR; i++)
            for (int j = 0; j < P_NR; j++) acc[i][j] += a[i] * b[j];
        a += P_MR;
        b += P_NR;
    }
    for (int i = 0; i < P_MR; i++)
        for (int j = 0; j < P_NR; j++) {
            float *cv = c + (size_t)i * ldc + j;
            *cv = beta == 0 ? alpha * acc[i][j] : alpha * acc[i][j] + beta * *cv;
        }
}

static void epi_portable(float *c, size_t ldc, int mr, int nr, const float *brow, const float *bcol,
                         mc_act act) {
    for (int i = 0; i < mr; i++) {
        float *ci = c + (size_t)i * ldc;
        float br = brow ? brow[i] : 0;
        for (int j = 0; j < nr; j++) ci[j] += br + (bcol ? bcol[j] : 0);
        mc_act_apply_ref(ci, (size_t)nr, act);
    }
}

static void dw_portable(const float *x, int h, int w, const float *k, const mc_conv2d_desc *d,
                        float bias, mc_act act, float *y, float *scratch) {
    (void)scratch;
    int oh = mc_conv_out(h, d->kh, d->sh, d->ph), ow = mc_conv_out(w, d->kw, d->sw, d->pw);
    for (int oy = 0; oy < oh; oy++) {
        float *yr = y + (size_t)oy * ow;
        for (int ox = 0; ox < ow; ox++) {
            float s = 0;
            for (int ky = 0; ky < d->kh; ky++) {
                int iy = oy * d->sh - d->ph + ky;
                if (iy < 0 || iy >= h) continue;
                for (int kx = 0; kx < d->kw; kx++) {
                    int ix = ox * d->sw - d->pw + kx;
                    if (ix < 0 || ix >= w) continue;
                    s += x[(size_t)iy * w + ix] * k[ky * d->kw + kx];
                }
            }
            yr[ox] = s + bias;
        }
        mc_act_apply_ref(yr, (size_t)ow, act);
    }
}

static void softmax_row_portable(float *x, int n) { mc_softmax_rows_ref(x, 1, n); }

static void layernorm_row_portable(const float *x, int dim, const float *g, const float *b,
                                   float eps, float *y) {
    mc_layernorm_ref(x, 1, dim, g, b, eps, y);
}

static void layernorm_nchw_portable(const float *x, int c, int hw, int p0, int p1, const float *g,
                                    const float *b, float eps, float *y) {
    for (int p = p0; p < p1; p++) {
        double mean = 0, var = 0;
        for (int ch = 0; ch < c; ch++) mean += x[(size_t)ch * hw + p];
        mean /= c;
        for (int ch = 0; ch < c; ch++) { double dd = x[(size_t)ch * hw + p] - mean; var += dd * dd; }
        var /= c;
        float rstd = (float)(1.0 / sqrt(var + eps)), fm = (float)mean;
        for (int ch = 0; ch < c; ch++) {
            float v = (x[(size_t)ch * hw + p] - fm) * rstd;
            if (g) v *= g[ch];
            if (b) v += b[ch];
            y[(size_t)ch * hw + p] = v;
        }
    }
}

void mc_kset_portable(mc_kset *ks) {
    ks->name = "scalar";
    ks->mr = P_MR, ks->nr = P_NR;
    ks->mc = 64, ks->kc = 256, ks->nc = 1024;
    ks->ukr = ukr_portable;
    ks->pack_a_rows = NULL;
    ks->pack_b_cols = NULL;
    ks->gemv = NULL;
    ks->epi = epi_portable;
    ks->dw = dw_portable;
    ks->act = mc_act_apply_ref;
    ks->softmax_row = softmax_row_portable;
    ks->layernorm_row = layernorm_row_portable;
    ks->layernorm_nchw = layernorm_nchw_portable;
    ks->cvt = mc_cvt_ref;
    ks->conv3s2 = NULL;
}
