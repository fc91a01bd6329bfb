/*
 * kernels/ref.c - plain scalar reference kernels (ref.h): the oracle
 * for every fast version.  Written for clarity, accumulating in float as
 * PyTorch's CPU kernels do, except reductions in LayerNorm (double).
 */
#include "kernels/ref.h"

#include <math.h>
#include <string.h>

static float act_one(float x, mc_act act) {
    switch (act) {
    case MC_ACT_RELU: return x > 0 ? x : 0;
    case MC_ACT_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case MC_ACT_GELU_TANH: {
        float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
        return 0.5f * x * (1.0f + tanhf(u));
    }
    case MC_ACT_QUICK_GELU: return x / (1.0f + expf(-1.702f * x));
    case MC_ACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
    default: return x;
    }
}

void mc_act_apply_ref(float *x, size_t n, mc_act act) {
    if (act == MC_ACT_NONE) return;
    for (size_t i = 0; i < n; i++) x[i] = act_one(x[i], act);
}

void mc_linear_ref(const float *x, const float *w, const float *b, int m, int k, int n, float *y,
                   mc_act act) {
    for (int i = 0; i < m; i++) {
        const float *xi = x + (size_t)i * k;
        for (int j = 0; j < n; j++) {
            const float *wj = w + (size_t)j * k;
            float s = 0;
            for (int p = 0; p < k; p++) s += xi[p] * wj[p];
            if (b) s += b[j];
            y[(size_t)i * n + j] = act_one(s, act);
        }
    }
}

void mc_gemm_ref(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float s = 0;
            for (int p = 0; p < k; p++) {
                float av = ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                float bv = tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                s += av * bv;
            }
            float *cv = &c[(size_t)i * ldc + j];
            *cv = alpha * s + (beta == 0 ? 0 : beta * *cv);
        }
}

void mc_conv2d_ref(const mc_conv2d_desc *d, const float *w, const float *b, const float *x, int n,
                   int h, int wd, float *y, mc_act act) {
    int oh = mc_conv_out(h, d->kh, d->sh, d->ph), ow = mc_conv_out(wd, d->kw, d->sw, d->pw);
    int cpg_in = d->cin / d->groups, cpg_out = d->cout / d->groups;
    for (int in = 0; in < n; in++)
        for (int oc = 0; oc < d->cout; oc++) {
            int g = oc / cpg_out;
            const float *wo = w + (size_t)oc * cpg_in * d->kh * d->kw;
            float *yo = y + ((size_t)in * d->cout + oc) * oh * ow;
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    float s = 0;
                    for (int ic = 0; ic < cpg_in; ic++) {
                        const float *xc = x + ((size_t)in * d->cin + (size_t)g * cpg_in + ic) * h * wd;
                        const float *wc = wo + (size_t)ic * d->kh * d->kw;
                        for (int ky = 0; ky < d->kh; ky++) {
                            int iy = oy * d->sh - d->ph + ky;
                            if (iy < 0 || iy >= h) continue;
                            for (int kx = 0; kx < d->kw; kx++) {
                                int ix = ox * d->sw - d->pw + kx;
                                if (ix < 0 || ix >= wd) continue;
                                s += xc[(size_t)iy * wd + ix] * wc[ky * d->kw + kx];
                            }
                        }
                    }
                    if (b) s += b[oc];
                    yo[(size_t)oy * ow + ox] = act_one(s, act);
                }
        }
}

void mc_layernorm_ref(const float *x, int rows, int dim, const float *g, const float *b, float eps,
                      float *y) {
    mc_layernorm_stats_ref(x, rows, dim, g, b, eps, y, NULL, NULL);
}

void mc_layernorm_stats_ref(const float *x, int rows, int dim, const float *g, const float *b, float eps,
                            float *y, float *mean_out, float *rstd_out) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * dim;
        float *yr = y + (size_t)r * dim;
        double mean = 0, var = 0;
        for (int i = 0; i < dim; i++) mean += xr[i];
        mean /= dim;
        for (int i = 0; i < dim; i++) { double d = xr[i] - mean; var += d * d; }
        var /= dim;
        float rstd = (float)(1.0 / sqrt(var + eps));
        float fm = (float)mean;
        if (mean_out) mean_out[r] = fm;
        if (rstd_out) rstd_out[r] = rstd;
        for (int i = 0; i < dim; i++) {
            float v = (xr[i] - fm) * rstd;
            if (g) v *= g[i];
            if (b) v += b[i];
            yr[i] = v;
        }
    }
}

void mc_layernorm_nchw_ref(const float *x, int n, int c, int hw, const float *g, const float *b,
                           float eps, float *y) {
    for (int in = 0; in < n; in++)
        for (int p = 0; p < hw; p++) {
            const float *xp = x + (size_t)in * c * hw + p;
            float *yp = y + (size_t)in * c * hw + p;
            double mean = 0, var = 0;
            for (int ch = 0; ch < c; ch++) mean += xp[(size_t)ch * hw];
            mean /= c;
            for (int ch = 0; ch < c; ch++) { double d = xp[(size_t)ch * hw] - mean; var += d * d; }
            var /= c;
            float rstd = (float)(1.0 / sqrt(var + eps)), fm = (float)mean;
            for (int ch = 0; ch < c; ch++) {
                float v = (xp[(size_t)ch * hw] - fm) * rstd;
                if (g) v *= g[ch];
                if (b) v += b[ch];
                yp[(size_t)ch * hw] = v;
            }
        }
}

void mc_softmax_rows_ref(float *x, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * cols;
        float mx = -INFINITY;
        for (int i = 0; i < cols; i++) mx = xr[i] > mx ? xr[i] : mx;
        float s = 0;
        for (int i = 0; i < cols; i++) { xr[i] = expf(xr[i] - mx); s += xr[i]; }
        float inv = 1.0f / s;
        for (int i = 0; i < cols; i++) xr[i] *= inv;
    }
}

void mc_attention_ref(const float *q, const float *k, const float *v, int ld, int t, int heads,
                      int hd, int causal, float *out, float *scratch) {
    float scale = 1.0f / sqrtf((float)hd);
    int od = heads * hd;
    for (int h = 0; h < heads; h++) {
        for (int i = 0; i < t; i++) {
            float *srow = scratch + (size_t)i * t;
            const float *qi = q + (size_t)i * ld + h * hd;
            for (int j = 0; j < t; j++) {
                if (causal && j > i) { srow[j] = -INFINITY; continue; }
                const float *kj = k + (size_t)j * ld + h * hd;
                float s = 0;
                for (int d = 0; d < hd; d++) s += qi[d] * kj[d];
                srow[j] = s * scale;
            }
        }
        mc_softmax_rows_ref(scratch, t, t);
        for (int i = 0; i < t; i++) {
            float *oi = out + (size_t)i * od + h * hd;
            for (int d = 0; d < hd; d++) oi[d] = 0;
            for (int j = 0; j < t; j++) {
                float p = scratch[(size_t)i * t + j];
                if (p == 0) continue;
                const float *vj = v + (size_t)j * ld + h * hd;
                for (int d = 0; d < hd; d++) oi[d] += p * vj[d];
            }
        }
    }
}

void mc_linear_add_ref(const float *x, const float *w, const float *b, int m, int k, int n, float *y) {
    for (int i = 0; i < m; i++) {
        const float *xi = x + (size_t)i * k;
        for (int j = 0; j < n; j++) {
            const float *wj = w + (size_t)j * k;
            float s = 0;
            for (int p = 0; p < k; p++) s += xi[p] * wj[p];
            if (b) s += b[j];
            y[(size_t)i * n + j] += s;
        }
    }
}

void mc_pointwise_add_ref(const float *w, const float *b, const float *x, int n, int cin, int cout,
                          int hw, float *y) {
    for (int i = 0; i < n; i++)
        for (int o = 0; o < cout; o++)
            for (int p = 0; p < hw; p++) {
                float s = 0;
                for (int c = 0; c < cin; c++) s += w[(size_t)o * cin + c] * x[((size_t)i * cin + c) * hw + p];
                if (b) s += b[o];
                y[((size_t)i * cout + o) * hw + p] += s;
            }
}
