/*
 * train/kernels_ref.c - the plain scalar training kernels (suffix _ref, see
 * train.h): the oracles the fast versions in train/kernels.c are tested
 * against.  Convolution (grouped/depthwise), BatchNorm in train mode, linear,
 * projection matmul, LayerNorm, activations, attention, L2 normalisation.
 * Reductions accumulate in double; backward passes accumulate (+=).
 */
#include "train/kernels_ref.h"
#include "kernels/ref.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- conv2d */

void mc_train_conv2d_forward_ref(const mc_conv2d_desc *d, const float *x, int n, int h, int wd,
                             const float *w, const float *b, float *y) {
    int oh = mc_conv_out(h, d->kh, d->sh, d->ph), ow = mc_conv_out(wd, d->kw, d->sw, d->pw);
    int cig = d->cin / d->groups, cog = d->cout / d->groups;
    size_t ohw = (size_t)oh * ow;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int in = 0; in < n; in++)
        for (int oc = 0; oc < d->cout; oc++) {
            int g = oc / cog;
            float *yo = y + ((size_t)in * d->cout + oc) * ohw;
            float bias = b ? b[oc] : 0.0f;
            for (size_t p = 0; p < ohw; p++) yo[p] = 0;
            for (int ic = 0; ic < cig; ic++) {
                const float *xc = x + ((size_t)in * d->cin + (size_t)g * cig + ic) * h * wd;
                const float *wc = w + ((size_t)oc * cig + ic) * d->kh * d->kw;
                for (int ky = 0; ky < d->kh; ky++)
                    for (int kx = 0; kx < d->kw; kx++) {
                        float wv = wc[ky * d->kw + kx];
                        for (int oy = 0; oy < oh; oy++) {
                            int iy = oy * d->sh - d->ph + ky;
                            if (iy < 0 || iy >= h) continue;
                            const float *xr = xc + (size_t)iy * wd;
                            float *yr = yo + (size_t)oy * ow;
                            for (int ox = 0; ox < ow; ox++) {
                                int ix = ox * d->sw - d->pw + kx;
                                if (ix < 0 || ix >= wd) continue;
                                yr[ox] += wv * xr[ix];
                            }
                        }
                    }
            }
            if (bias != 0.0f)
                for (size_t p = 0; p < ohw; p++) yo[p] += bias;
        }
}

void mc_train_conv2d_backward_ref(const mc_conv2d_desc *d, const float *x, int n, int h, int wd,
                              const float *w, const float *dy, float *dx, float *dw, float *db) {
    int oh = mc_conv_out(h, d->kh, d->sh, d->ph), ow = mc_conv_out(wd, d->kw, d->sw, d->pw);
    int cig = d->cin / d->groups, cog = d->cout / d->groups;
    size_t ohw = (size_t)oh * ow;
    if (db) {
        for (int oc = 0; oc < d->cout; oc++) {
            double s = 0;
            for (int in = 0; in < n; in++) {
                const float *g = dy + ((size_t)in * d->cout + oc) * ohw;
                for (size_t p = 0; p < ohw; p++) s += g[p];
            }
            db[oc] += (float)s;
        }
    }
    if (dw) {
        #pragma omp parallel for schedule(static)
        for (int oc = 0; oc < d->cout; oc++) {
            int g = oc / cog;
            for (int ic = 0; ic < cig; ic++)
                for (int ky = 0; ky < d->kh; ky++)
                    for (int kx = 0; kx < d->kw; kx++) {
                        double s = 0;
                        for (int in = 0; in < n; in++) {
                            const float *xc = x + ((size_t)in * d->cin + (size_t)g * cig + ic) * h * wd;
                            const float *go = dy + ((size_t)in * d->cout + oc) * ohw;
                            for (int oy = 0; oy < oh; oy++) {
                                int iy = oy * d->sh - d->ph + ky;
                                if (iy < 0 || iy >= h) continue;
                                const float *xr = xc + (size_t)iy * wd;
                                const float *gr = go + (size_t)oy * ow;
                                double acc = 0;
                                for (int ox = 0; ox < ow; ox++) {
                                    int ix = ox * d->sw - d->pw + kx;
                                    if (ix < 0 || ix >= wd) continue;
                                    acc += (double)gr[ox] * xr[ix];
                                }
                                s += acc;
                            }
                        }
                        dw[(((size_t)oc * cig + ic) * d->kh + ky) * d->kw + kx] += (float)s;
                    }
        }
    }
    if (dx) {
        /* parallel over (image, input channel): each writes its own dx plane */
        #pragma omp parallel for collapse(2) schedule(static)
        for (int in = 0; in < n; in++)
            for (int ci = 0; ci < d->cin; ci++) {
                int g = ci / cig, ic = ci % cig;
                float *dxc = dx + ((size_t)in * d->cin + ci) * h * wd;
                for (int j = 0; j < cog; j++) {
                    int oc = g * cog + j;
                    const float *go = dy + ((size_t)in * d->cout + oc) * ohw;
                    const float *wc = w + ((size_t)oc * cig + ic) * d->kh * d->kw;
                    for (int ky = 0; ky < d->kh; ky++)
                        for (int kx = 0; kx < d->kw; kx++) {
                            float wv = wc[ky * d->kw + kx];
                            for (int oy = 0; oy < oh; oy++) {
                                int iy = oy * d->sh - d->ph + ky;
                                if (iy < 0 || iy >= h) continue;
                                float *xr = dxc + (size_t)iy * wd;
                                const float *gr = go + (size_t)oy * ow;
                                for (int ox = 0; ox < ow; ox++) {
                                    int ix = ox * d->sw - d->pw + kx;
                                    if (ix < 0 || ix >= wd) continue;
                                    xr[ix] += wv * gr[ox];
                                }
                            }
                        }
                }
            }
    }
}

/* ------------------------------------------------------------- batchnorm */

void mc_train_bn_forward_ref(const float *x, int n, int c, int hw, const float *g, const float *b,
                         float eps, float momentum, float *running_mean, float *running_var,
                         float *y, float *mean, float *rstd) {
    double cnt = (double)n * hw;
    #pragma omp parallel for schedule(static)
    for (int ch = 0; ch < c; ch++) {
        double s = 0;
        for (int in = 0; in < n; in++) {
            const float *xp = x + ((size_t)in * c + ch) * hw;
            for (int p = 0; p < hw; p++) s += xp[p];
        }
        double mu = s / cnt, v = 0;
        for (int in = 0; in < n; in++) {
            const float *xp = x + ((size_t)in * c + ch) * hw;
            for (int p = 0; p < hw; p++) { double dd = xp[p] - mu; v += dd * dd; }
        }
        double var = v / cnt;
        float r = (float)(1.0 / sqrt(var + eps));
        float fm = (float)mu;
        mean[ch] = fm;
        rstd[ch] = r;
        float gg = g ? g[ch] : 1.0f, bb = b ? b[ch] : 0.0f;
        for (int in = 0; in < n; in++) {
            const float *xp = x + ((size_t)in * c + ch) * hw;
            float *yp = y + ((size_t)in * c + ch) * hw;
            for (int p = 0; p < hw; p++) yp[p] = (xp[p] - fm) * r * gg + bb;
        }
        if (running_mean) running_mean[ch] = (1 - momentum) * running_mean[ch] + momentum * fm;
        if (running_var) {
            double unb = cnt > 1 ? v / (cnt - 1) : var;
            running_var[ch] = (1 - momentum) * running_var[ch] + momentum * (float)unb;
        }
    }
}

void mc_train_bn_backward_ref(const float *x, int n, int c, int hw, const float *g, const float *mean,
                          const float *rstd, const float *dy, float *dx, float *dg, float *db) {
    double cnt = (double)n * hw;
    #pragma omp parallel for schedule(static)
    for (int ch = 0; ch < c; ch++) {
        double sdy = 0, sdyx = 0;
        float mu = mean[ch], r = rstd[ch];
        for (int in = 0; in < n; in++) {
            const float *xp = x + ((size_t)in * c + ch) * hw;
            const float *gp = dy + ((size_t)in * c + ch) * hw;
            for (int p = 0; p < hw; p++) {
                sdy += gp[p];
                sdyx += (double)gp[p] * ((xp[p] - mu) * r);
            }
        }
        if (dg) dg[ch] += (float)sdyx;
        if (db) db[ch] += (float)sdy;
        if (!dx) continue;
        float gg = g ? g[ch] : 1.0f;
        double a = sdy / cnt, bq = sdyx / cnt;
        for (int in = 0; in < n; in++) {
            const float *xp = x + ((size_t)in * c + ch) * hw;
            const float *gp = dy + ((size_t)in * c + ch) * hw;
            float *dp = dx + ((size_t)in * c + ch) * hw;
            for (int p = 0; p < hw; p++) {
                double xh = ((double)xp[p] - mu) * r;
                dp[p] += (float)(gg * r * ((double)gp[p] - a - xh * bq));
            }
        }
    }
}

/* ---------------------------------------------------------------- linear */

void mc_train_linear_forward_ref(const float *x, const float *w, const float *b, int m, int k, int n,
                             float *y) {
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < m; i++) {
        const float *xi = x + (size_t)i * k;
        for (int j = 0; j < n; j++) {
            const float *wj = w + (size_t)j * k;
            float s = 0;
            for (int p = 0; p < k; p++) s += xi[p] * wj[p];
            y[(size_t)i * n + j] = s + (b ? b[j] : 0.0f);
        }
    }
}

void mc_train_linear_backward_ref(const float *x, const float *w, int m, int k, int n, const float *dy,
                              float *dx, float *dw, float *db) {
    if (dx) {
        #pragma omp parallel for schedule(static)
        for (int i = 0; i < m; i++) {
            const float *gi = dy + (size_t)i * n;
            float *dxi = dx + (size_t)i * k;
            for (int j = 0; j < n; j++) {
                float gv = gi[j];
                if (gv == 0) continue;
                const float *wj = w + (size_t)j * k;
                for (int p = 0; p < k; p++) dxi[p] += gv * wj[p];
            }
        }
    }
    if (dw || db) {
        #pragma omp parallel for schedule(static)
        for (int j = 0; j < n; j++) {
            double sb = 0;
            for (int p = 0; p < k && dw; p++) {
                double s = 0;
                for (int i = 0; i < m; i++) s += (double)dy[(size_t)i * n + j] * x[(size_t)i * k + p];
                dw[(size_t)j * k + p] += (float)s;
            }
            if (db) {
                for (int i = 0; i < m; i++) sb += dy[(size_t)i * n + j];
                db[j] += (float)sb;
            }
        }
    }
}

void mc_train_matmul_forward_ref(const float *x, const float *p, int m, int k, int n, float *y) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float s = 0;
            for (int q = 0; q < k; q++) s += x[(size_t)i * k + q] * p[(size_t)q * n + j];
            y[(size_t)i * n + j] = s;
        }
}

void mc_train_matmul_backward_ref(const float *x, const float *p, int m, int k, int n, const float *dy,
                              float *dx, float *dp) {
    if (dx)
        for (int i = 0; i < m; i++)
            for (int q = 0; q < k; q++) {
                float s = 0;
                for (int j = 0; j < n; j++) s += dy[(size_t)i * n + j] * p[(size_t)q * n + j];
                dx[(size_t)i * k + q] += s;
            }
    if (dp)
        for (int q = 0; q < k; q++)
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int i = 0; i < m; i++) s += (double)x[(size_t)i * k + q] * dy[(size_t)i * n + j];
                dp[(size_t)q * n + j] += (float)s;
            }
}

/* ------------------------------------------------------------- layernorm */

void mc_train_layernorm_forward_ref(const float *x, int rows, int dim, const float *g, const float *b,
                                float eps, float *y, float *mean, float *rstd) {
    mc_layernorm_stats_ref(x, rows, dim, g, b, eps, y, mean, rstd);   /* the inference oracle */
}

void mc_train_layernorm_backward_ref(const float *x, int rows, int dim, const float *g,
                                 const float *mean, const float *rstd, const float *dy, float *dx,
                                 float *dg, float *db) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * dim, *gr = dy + (size_t)r * dim;
        float mu = mean[r], rs = rstd[r];
        double s1 = 0, s2 = 0;
        for (int i = 0; i < dim; i++) {
            float xh = (xr[i] - mu) * rs;
            float gg = gr[i] * (g ? g[i] : 1.0f);
            s1 += gg;
            s2 += (double)gg * xh;
            if (dg) dg[i] += gr[i] * xh;
            if (db) db[i] += gr[i];
        }
        if (!dx) continue;
        float a = (float)(s1 / dim), bq = (float)(s2 / dim);
        float *dr = dx + (size_t)r * dim;
        for (int i = 0; i < dim; i++) {
            float xh = (xr[i] - mu) * rs;
            float gg = gr[i] * (g ? g[i] : 1.0f);
            dr[i] += rs * (gg - a - xh * bq);
        }
    }
}

/* ----------------------------------------------------------- activations */

void mc_train_act_forward_ref(const float *x, size_t n, mc_act act, float *y) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        switch (act) {
        case MC_ACT_RELU: y[i] = v > 0 ? v : 0; break;
        case MC_ACT_GELU: y[i] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); break;
        case MC_ACT_SIGMOID: y[i] = 1.0f / (1.0f + expf(-v)); break;
        case MC_ACT_QUICK_GELU: y[i] = v * (1.0f / (1.0f + expf(-1.702f * v))); break;
        default: y[i] = v; break;
        }
    }
}

void mc_train_act_backward_ref(const float *x, size_t n, mc_act act, const float *dy, float *dx) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i], d;
        switch (act) {
        case MC_ACT_RELU: d = v > 0 ? 1.0f : 0.0f; break;
        case MC_ACT_GELU:
            d = 0.5f * (1.0f + erff(v * 0.70710678118654752f)) +
                v * 0.3989422804014327f * expf(-0.5f * v * v);
            break;
        case MC_ACT_SIGMOID: { float s = 1.0f / (1.0f + expf(-v)); d = s * (1 - s); break; }
        case MC_ACT_QUICK_GELU: {   /* d/dv v s(1.702 v) = s + 1.702 v s (1 - s) */
            float s = 1.0f / (1.0f + expf(-1.702f * v));
            d = s + 1.702f * v * s * (1 - s);
            break;
        }
        default: d = 1.0f; break;
        }
        dx[i] += dy[i] * d;
    }
}

/* ------------------------------------------------------------- attention */

void mc_train_attention_forward_ref(const float *qkv, int b, int t, int heads, int hd, int causal,
                                float *out, float *probs) {
    int D = heads * hd, ld = 3 * D;
    float scale = 1.0f / sqrtf((float)hd);
    #pragma omp parallel for collapse(2) schedule(static)
    for (int ib = 0; ib < b; ib++)
        for (int h = 0; h < heads; h++) {
            const float *base = qkv + (size_t)ib * t * ld;
            float *P = probs + ((size_t)ib * heads + h) * t * t;
            for (int i = 0; i < t; i++) {
                const float *qi = base + (size_t)i * ld + h * hd;
                float *pr = P + (size_t)i * t;
                float mx = -INFINITY;
                for (int j = 0; j < t; j++) {
                    if (causal && j > i) { pr[j] = -INFINITY; continue; }
                    const float *kj = base + (size_t)j * ld + D + h * hd;
                    float s = 0;
                    for (int d = 0; d < hd; d++) s += (qi[d] * scale) * kj[d];
                    pr[j] = s;
                    if (s > mx) mx = s;
                }
                float sum = 0;
                for (int j = 0; j < t; j++) {
                    pr[j] = (causal && j > i) ? 0.0f : expf(pr[j] - mx);
                    sum += pr[j];
                }
                for (int j = 0; j < t; j++) pr[j] /= sum;
                float *oi = out + ((size_t)ib * t + i) * D + h * hd;
                for (int d = 0; d < hd; d++) oi[d] = 0;
                for (int j = 0; j < t; j++) {
                    if (pr[j] == 0) continue;
                    const float *vj = base + (size_t)j * ld + 2 * D + h * hd;
                    for (int d = 0; d < hd; d++) oi[d] += pr[j] * vj[d];
                }
            }
        }
}

void mc_train_attention_backward_ref(const float *qkv, int b, int t, int heads, int hd,
                                 const float *probs, const float *dout, float *dqkv) {
    int D = heads * hd, ld = 3 * D;
    float scale = 1.0f / sqrtf((float)hd);
    #pragma omp parallel for collapse(2) schedule(static)
    for (int ib = 0; ib < b; ib++)
        for (int h = 0; h < heads; h++) {
            const float *base = qkv + (size_t)ib * t * ld;
            float *dbase = dqkv + (size_t)ib * t * ld;
            const float *P = probs + ((size_t)ib * heads + h) * t * t;
            for (int i = 0; i < t; i++) {
                const float *doi = dout + ((size_t)ib * t + i) * D + h * hd;
                const float *pr = P + (size_t)i * t;
                /* dP[j] = dO_i . V_j ; dS = P (dP - sum P dP) */
                double acc = 0;
                float dp[t > 0 ? t : 1];
                for (int j = 0; j < t; j++) {
                    const float *vj = base + (size_t)j * ld + 2 * D + h * hd;
                    float s = 0;
                    for (int d = 0; d < hd; d++) s += doi[d] * vj[d];
                    dp[j] = s;
                    acc += (double)s * pr[j];
                }
                const float *qi = base + (size_t)i * ld + h * hd;
                float *dqi = dbase + (size_t)i * ld + h * hd;
                for (int j = 0; j < t; j++) {
                    if (pr[j] == 0) continue;
                    float ds = pr[j] * (dp[j] - (float)acc) * scale;
                    const float *kj = base + (size_t)j * ld + D + h * hd;
                    float *dkj = dbase + (size_t)j * ld + D + h * hd;
                    float *dvj = dbase + (size_t)j * ld + 2 * D + h * hd;
                    for (int d = 0; d < hd; d++) {
                        dqi[d] += ds * kj[d];
                        dkj[d] += ds * qi[d];
                        dvj[d] += pr[j] * doi[d];
                    }
                }
            }
        }
}

/* ------------------------------------------------------------------ l2norm */

void mc_train_l2norm_forward_ref(const float *x, int n, int d, float *y) {
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)x[(size_t)i * d + j] * x[(size_t)i * d + j];
        float nr = (float)sqrt(s);
        if (nr < 1e-12f) nr = 1e-12f;
        for (int j = 0; j < d; j++) y[(size_t)i * d + j] = x[(size_t)i * d + j] / nr;
    }
}

void mc_train_l2norm_backward_ref(const float *x, int n, int d, const float *dy, float *dx) {
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d, *gi = dy + (size_t)i * d;
        double s = 0, dot = 0;
        for (int j = 0; j < d; j++) { s += (double)xi[j] * xi[j]; dot += (double)xi[j] * gi[j]; }
        double nr = sqrt(s);
        if (nr < 1e-12) {
            for (int j = 0; j < d; j++) dx[(size_t)i * d + j] += (float)(gi[j] / 1e-12);
            continue;
        }
        for (int j = 0; j < d; j++)
            dx[(size_t)i * d + j] += (float)(gi[j] / nr - xi[j] * dot / (nr * nr * nr));
    }
}
