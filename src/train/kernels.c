/*
 * train/kernels.c - the fast forward/backward kernel pairs for training (see
 * train.h): convolution on im2col + the blocked SGEMM (depthwise with direct
 * vectorizable loops), linear / projection matmul / attention on SGEMM,
 * BatchNorm, LayerNorm and activations threaded over independent outputs.
 * Every output element is reduced by one thread in a fixed order, so results
 * do not depend on the thread count.  The scalar oracles are in
 * train/kernels_ref.c.  Backward passes accumulate (+=).
 */
#include "kernels/dispatch.h"
#include "kernels/gemm.h"
#include "kernels/kernels.h"
#include "train/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* ------------------------------------------------------------- scratch */

/* Thread-local buffers of the training kernels, grown on demand and kept
 * (no allocation per call in steady state).  NULL when memory is short: the
 * callers then take the scalar path. */
enum { TS_COL, TS_DCOL, TS_ATTN, TS_SUM, TS_N };
static __thread float *ts_buf[TS_N];
static __thread size_t ts_cap[TS_N];

static float *train_scratch(int slot, size_t floats) {
    if (floats > ts_cap[slot]) {
        if (floats > ((size_t)-1) / sizeof(float) / 2) return NULL;
        size_t cap = (floats + floats / 4 + 64 + 15) & ~(size_t)15;
        float *p = aligned_alloc(64, cap * sizeof(float));
        if (!p) return NULL;
        free(ts_buf[slot]);
        ts_buf[slot] = p;
        ts_cap[slot] = cap;
    }
    return ts_buf[slot];
}

/* ---------------------------------------------------------------- conv2d */

/* Output columns ox whose input column ox sw - pw + kx lies in [0, w): [*lo, *hi). */
static void valid_cols(int ow, int w, int sw, int pw, int kx, int *lo, int *hi) {
    int a = 0, b = ow;
    while (a < ow && a * sw - pw + kx < 0) a++;
    while (b > a && (b - 1) * sw - pw + kx >= w) b--;
    *lo = a, *hi = b;
}

/* col[(ic kh + ky) kw + kx][oy ow + ox] = x[ic][oy sh - ph + ky][ox sw - pw + kx] (0 outside). */
static void train_im2col(const float *x, int cin, int h, int w, const mc_conv2d_desc *d, int oh,
                         int ow, float *col, int nt) {
    int khw = d->kh * d->kw, rows = cin * khw;
    size_t ohw = (size_t)oh * ow;
    #pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int r = 0; r < rows; r++) {
        int ic = r / khw, ky = (r % khw) / d->kw, kx = r % d->kw;
        const float *xc = x + (size_t)ic * h * w;
        float *dst = col + (size_t)r * ohw;
        int lo, hi;
        valid_cols(ow, w, d->sw, d->pw, kx, &lo, &hi);
        for (int oy = 0; oy < oh; oy++) {
            float *dr = dst + (size_t)oy * ow;
            int iy = oy * d->sh - d->ph + ky;
            if (iy < 0 || iy >= h) { memset(dr, 0, (size_t)ow * sizeof(float)); continue; }
            const float *sr = xc + (size_t)iy * w - d->pw + kx;
            for (int ox = 0; ox < lo; ox++) dr[ox] = 0;
            if (d->sw == 1) memcpy(dr + lo, sr + lo, (size_t)(hi - lo) * sizeof(float));
            else for (int ox = lo; ox < hi; ox++) dr[ox] = sr[(size_t)ox * d->sw];
            for (int ox = hi; ox < ow; ox++) dr[ox] = 0;
        }
    }
}

/* dx[ic][iy][ix] += col[(ic kh + ky) kw + kx][oy ow + ox] over the taps that read it:
 * one thread per input channel, taps in a fixed order. */
static void train_col2im_add(const float *col, int cin, int h, int w, const mc_conv2d_desc *d,
                             int oh, int ow, float *dx, int nt) {
    int khw = d->kh * d->kw;
    size_t ohw = (size_t)oh * ow;
    #pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int ic = 0; ic < cin; ic++) {
        float *dxc = dx + (size_t)ic * h * w;
        for (int ky = 0; ky < d->kh; ky++)
            for (int kx = 0; kx < d->kw; kx++) {
                const float *src = col + ((size_t)ic * khw + (size_t)ky * d->kw + kx) * ohw;
                int lo, hi;
                valid_cols(ow, w, d->sw, d->pw, kx, &lo, &hi);
                for (int oy = 0; oy < oh; oy++) {
                    int iy = oy * d->sh - d->ph + ky;
                    if (iy < 0 || iy >= h) continue;
                    float *xr = dxc + (size_t)iy * w - d->pw + kx;
                    const float *sr = src + (size_t)oy * ow;
                    if (d->sw == 1) {
                        #pragma omp simd
                        for (int ox = lo; ox < hi; ox++) xr[ox] += sr[ox];
                    } else {
                        for (int ox = lo; ox < hi; ox++) xr[(size_t)ox * d->sw] += sr[ox];
                    }
                }
            }
    }
}

void mc_train_conv2d_forward(const mc_conv2d_desc *d, const float *x, int n, int h, int wd,
                             const float *w, const float *b, float *y) {
    /* im2col + SGEMM (1x1: SGEMM on the NCHW image) with the bias fused;
     * depthwise planes on the direct SIMD kernel. */
    mc_conv2d(d, w, b, x, n, h, wd, y, MC_ACT_NONE);
}

/* Depthwise (one input channel per group, cout = multiplier * cin) weight
 * gradient: one thread per output channel, images and rows in order. */
static void dw_weight_grad(const mc_conv2d_desc *d, const float *x, int n, int h, int wd, int oh,
                           int ow, const float *dy, float *dw) {
    int cog = d->cout / d->groups, khw = d->kh * d->kw;
    size_t ohw = (size_t)oh * ow, hw = (size_t)h * wd;
    int nt = mc_threads_for(2.0 * n * d->cout * ohw * khw);
    #pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int oc = 0; oc < d->cout; oc++) {
        int ic = oc / cog;
        for (int ky = 0; ky < d->kh; ky++)
            for (int kx = 0; kx < d->kw; kx++) {
                int lo, hi;
                valid_cols(ow, wd, d->sw, d->pw, kx, &lo, &hi);
                double s = 0;
                for (int in = 0; in < n; in++) {
                    const float *xc = x + ((size_t)in * d->cin + ic) * hw;
                    const float *go = dy + ((size_t)in * d->cout + oc) * ohw;
                    for (int oy = 0; oy < oh; oy++) {
                        int iy = oy * d->sh - d->ph + ky;
                        if (iy < 0 || iy >= h) continue;
                        const float *xr = xc + (size_t)iy * wd - d->pw + kx;
                        const float *gr = go + (size_t)oy * ow;
                        float acc = 0;
                        if (d->sw == 1) {
                            #pragma omp simd reduction(+:acc)
                            for (int ox = lo; ox < hi; ox++) acc += gr[ox] * xr[ox];
                        } else {
                            for (int ox = lo; ox < hi; ox++) acc += gr[ox] * xr[(size_t)ox * d->sw];
                        }
                        s += acc;
                    }
                }
                dw[(size_t)oc * khw + (size_t)ky * d->kw + kx] += (float)s;
            }
    }
}

/* Depthwise input gradient: one thread per (image, input channel) plane. */
static void dw_input_grad(const mc_conv2d_desc *d, int n, int h, int wd, int oh, int ow,
                          const float *w, const float *dy, float *dx) {
    int cog = d->cout / d->groups, khw = d->kh * d->kw;
    size_t ohw = (size_t)oh * ow, hw = (size_t)h * wd;
    int total = n * d->cin;
    int nt = mc_threads_for(2.0 * n * d->cout * ohw * khw);
    #pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int i = 0; i < total; i++) {
        int in = i / d->cin, ic = i % d->cin;
        float *dxc = dx + (size_t)i * hw;
        for (int j = 0; j < cog; j++) {
            int oc = ic * cog + j;
            const float *go = dy + ((size_t)in * d->cout + oc) * ohw;
            const float *wc = w + (size_t)oc * khw;
            for (int ky = 0; ky < d->kh; ky++)
                for (int kx = 0; kx < d->kw; kx++) {
                    float wv = wc[ky * d->kw + kx];
                    int lo, hi;
                    valid_cols(ow, wd, d->sw, d->pw, kx, &lo, &hi);
                    for (int oy = 0; oy < oh; oy++) {
                        int iy = oy * d->sh - d->ph + ky;
                        if (iy < 0 || iy >= h) continue;
                        float *xr = dxc + (size_t)iy * wd - d->pw + kx;
                        const float *gr = go + (size_t)oy * ow;
                        if (d->sw == 1) {
                            #pragma omp simd
                            for (int ox = lo; ox < hi; ox++) xr[ox] += wv * gr[ox];
                        } else {
                            for (int ox = lo; ox < hi; ox++) xr[(size_t)ox * d->sw] += wv * gr[ox];
                        }
                    }
                }
        }
    }
}

void mc_train_conv2d_backward(const mc_conv2d_desc *d, const float *x, int n, int h, int wd,
                              const float *w, const float *dy, float *dx, float *dw, float *db) {
    int oh = mc_conv_out(h, d->kh, d->sh, d->ph), ow = mc_conv_out(wd, d->kw, d->sw, d->pw);
    if (n <= 0 || oh <= 0 || ow <= 0) return;
    int cig = d->cin / d->groups, cog = d->cout / d->groups, khw = d->kh * d->kw;
    size_t ohw = (size_t)oh * ow, hw = (size_t)h * wd;
    if (db) {
        int nt = mc_threads_for(2.0 * n * d->cout * ohw);
        #pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
        for (int oc = 0; oc < d->cout; oc++) {
            double s = 0;
            for (int in = 0; in < n; in++) {
                const float *g = dy + ((size_t)in * d->cout + oc) * ohw;
                #pragma omp simd reduction(+:s)
                for (size_t p = 0; p < ohw; p++) s += g[p];
            }
            db[oc] += (float)s;
        }
    }
    if (cig == 1) {
        if (dw) dw_weight_grad(d, x, n, h, wd, oh, ow, dy, dw);
        if (dx) dw_input_grad(d, n, h, wd, oh, ow, w, dy, dx);
        return;
    }
    int kk = cig * khw;
    int direct = khw == 1 && d->sh == 1 && d->sw == 1 && d->ph == 0 && d->pw == 0;
    float *col = NULL, *dcol = NULL;
    if (!direct) {
        if (dw) col = train_scratch(TS_COL, (size_t)kk * ohw);
        if (dx) dcol = train_scratch(TS_DCOL, (size_t)kk * ohw);
        if ((dw && !col) || (dx && !dcol)) {   /* no memory for im2col: the scalar path */
            mc_train_conv2d_backward_ref(d, x, n, h, wd, w, dy, dx, dw, NULL);
            return;
        }
    }
    int nt = mc_threads_for(2.0 * cog * ohw * kk);
    for (int in = 0; in < n; in++)
        for (int g = 0; g < d->groups; g++) {
            const float *xg = x + ((size_t)in * d->cin + (size_t)g * cig) * hw;
            const float *dyg = dy + ((size_t)in * d->cout + (size_t)g * cog) * ohw;
            const float *wg = w + (size_t)g * cog * kk;
            if (dw) {   /* dW_g[cog, kk] += dY_g[cog, ohw] . col[kk, ohw]^T */
                const float *cb = xg;
                if (!direct) {
                    train_im2col(xg, cig, h, wd, d, oh, ow, col, nt);
                    cb = col;
                }
                mc_gemm(0, 1, cog, kk, (int)ohw, 1.0f, dyg, (int)ohw, cb, (int)ohw, 1.0f,
                        dw + (size_t)g * cog * kk, kk);
            }
            if (dx) {   /* dcol[kk, ohw] = W_g[cog, kk]^T . dY_g[cog, ohw], then col2im */
                float *dxg = dx + ((size_t)in * d->cin + (size_t)g * cig) * hw;
                if (direct) {
                    mc_gemm(1, 0, kk, (int)ohw, cog, 1.0f, wg, kk, dyg, (int)ohw, 1.0f, dxg, (int)ohw);
                } else {
                    mc_gemm(1, 0, kk, (int)ohw, cog, 1.0f, wg, kk, dyg, (int)ohw, 0.0f, dcol, (int)ohw);
                    train_col2im_add(dcol, cig, h, wd, d, oh, ow, dxg, nt);
                }
            }
        }
}

/* ------------------------------------------------------------- batchnorm */

void mc_train_bn_forward(const float *x, int n, int c, int hw, const float *g, const float *b,
                         float eps, float momentum, float *running_mean, float *running_var,
                         float *y, float *mean, float *rstd) {
    double cnt = (double)n * hw;
    int nt = mc_threads_for(6.0 * n * c * hw);
    #pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int ch = 0; ch < c; ch++) {
        double s = 0;
        for (int in = 0; in < n; in++) {
            const float *xp = x + ((size_t)in * c + ch) * hw;
            #pragma omp simd reduction(+:s)
            for (int p = 0; p < hw; p++) s += xp[p];
        }
        double mu = s / cnt, v = 0;
        for (int in = 0; in < n; in++) {
            const float *xp = x + ((size_t)in * c + ch) * hw;
            #pragma omp simd reduction(+:v)
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
            #pragma omp simd
            for (int p = 0; p < hw; p++) yp[p] = (xp[p] - fm) * r * gg + bb;
        }
        if (running_mean) running_mean[ch] = (1 - momentum) * running_mean[ch] + momentum * fm;
        if (running_var) {
            double unb = cnt > 1 ? v / (cnt - 1) : var;
            running_var[ch] = (1 - momentum) * running_var[ch] + momentum * (float)unb;
        }
    }
}

void mc_train_bn_backward(const float *x, int n, int c, int hw, const float *g, const float *mean,
                          const float *rstd, const float *dy, float *dx, float *dg, float *db) {
    double cnt = (double)n * hw;
    int nt = mc_threads_for(8.0 * n * c * hw);
    #pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int ch = 0; ch < c; ch++) {
        double sdy = 0, sdyx = 0;
        float mu = mean[ch], r = rstd[ch];
        for (int in = 0; in < n; in++) {
            const float *xp = x + ((size_t)in * c + ch) * hw;
            const float *gp = dy + ((size_t)in * c + ch) * hw;
            #pragma omp simd reduction(+:sdy, sdyx)
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
            #pragma omp simd
            for (int p = 0; p < hw; p++) {
                double xh = ((double)xp[p] - mu) * r;
                dp[p] += (float)(gg * r * ((double)gp[p] - a - xh * bq));
            }
        }
    }
}

/* ---------------------------------------------------------------- linear */

/* db[j] += sum over rows i of dy[i, j] (double sums, rows in order). */
static void col_sums_add(const float *dy, int m, int n, float *db) {
    double *s = (double *)train_scratch(TS_SUM, 2 * (size_t)n);
    if (!s) {
        for (int j = 0; j < n; j++) {
            double t = 0;
            for (int i = 0; i < m; i++) t += dy[(size_t)i * n + j];
            db[j] += (float)t;
        }
        return;
    }
    for (int j = 0; j < n; j++) s[j] = 0;
    for (int i = 0; i < m; i++) {
        const float *r = dy + (size_t)i * n;
        #pragma omp simd
        for (int j = 0; j < n; j++) s[j] += r[j];
    }
    for (int j = 0; j < n; j++) db[j] += (float)s[j];
}

void mc_train_linear_forward(const float *x, const float *w, const float *b, int m, int k, int n,
                             float *y) {
    mc_gemm_ex(mc_kset_get(), mc_threads_for(2.0 * m * n * k), 0, 1, m, n, k, 1.0f, x, k, w, k, 0.0f,
               y, n, NULL, b, MC_ACT_NONE);
}

void mc_train_linear_backward(const float *x, const float *w, int m, int k, int n, const float *dy,
                              float *dx, float *dw, float *db) {
    if (dx) mc_gemm(0, 0, m, k, n, 1.0f, dy, n, w, k, 1.0f, dx, k);    /* dx += dy . w */
    if (dw) mc_gemm(1, 0, n, k, m, 1.0f, dy, n, x, k, 1.0f, dw, k);    /* dw += dy^T . x */
    if (db) col_sums_add(dy, m, n, db);
}

void mc_train_matmul_forward(const float *x, const float *p, int m, int k, int n, float *y) {
    mc_gemm(0, 0, m, n, k, 1.0f, x, k, p, n, 0.0f, y, n);
}

void mc_train_matmul_backward(const float *x, const float *p, int m, int k, int n, const float *dy,
                              float *dx, float *dp) {
    if (dx) mc_gemm(0, 1, m, k, n, 1.0f, dy, n, p, n, 1.0f, dx, k);    /* dx += dy . p^T */
    if (dp) mc_gemm(1, 0, k, n, m, 1.0f, x, k, dy, n, 1.0f, dp, n);    /* dp += x^T . dy */
}

/* ------------------------------------------------------------- layernorm */

void mc_train_layernorm_forward(const float *x, int rows, int dim, const float *g, const float *b,
                                float eps, float *y, float *mean, float *rstd) {
    int nt = mc_threads_for(8.0 * rows * dim);
    #pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * dim;
        float *yr = y + (size_t)r * dim;
        double mu = 0, var = 0;
        #pragma omp simd reduction(+:mu)
        for (int i = 0; i < dim; i++) mu += xr[i];
        mu /= dim;
        #pragma omp simd reduction(+:var)
        for (int i = 0; i < dim; i++) { double d = xr[i] - mu; var += d * d; }
        var /= dim;
        float rs = (float)(1.0 / sqrt(var + eps)), fm = (float)mu;
        mean[r] = fm;
        rstd[r] = rs;
        #pragma omp simd
        for (int i = 0; i < dim; i++) {
            float v = (xr[i] - fm) * rs;
            yr[i] = v * (g ? g[i] : 1.0f) + (b ? b[i] : 0.0f);
        }
    }
}

void mc_train_layernorm_backward(const float *x, int rows, int dim, const float *g,
                                 const float *mean, const float *rstd, const float *dy, float *dx,
                                 float *dg, float *db) {
    /* parameter gradients: rows in order (as the scalar version), columns vectorized */
    if (dg || db)
        for (int r = 0; r < rows; r++) {
            const float *xr = x + (size_t)r * dim, *gr = dy + (size_t)r * dim;
            float mu = mean[r], rs = rstd[r];
            if (dg) {
                #pragma omp simd
                for (int i = 0; i < dim; i++) dg[i] += gr[i] * ((xr[i] - mu) * rs);
            }
            if (db) {
                #pragma omp simd
                for (int i = 0; i < dim; i++) db[i] += gr[i];
            }
        }
    if (!dx) return;
    int nt = mc_threads_for(10.0 * rows * dim);
    #pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * dim, *gr = dy + (size_t)r * dim;
        float mu = mean[r], rs = rstd[r];
        double s1 = 0, s2 = 0;
        #pragma omp simd reduction(+:s1, s2)
        for (int i = 0; i < dim; i++) {
            float xh = (xr[i] - mu) * rs;
            float gg = gr[i] * (g ? g[i] : 1.0f);
            s1 += gg;
            s2 += (double)gg * xh;
        }
        float a = (float)(s1 / dim), bq = (float)(s2 / dim);
        float *dr = dx + (size_t)r * dim;
        #pragma omp simd
        for (int i = 0; i < dim; i++) {
            float xh = (xr[i] - mu) * rs;
            float gg = gr[i] * (g ? g[i] : 1.0f);
            dr[i] += rs * (gg - a - xh * bq);
        }
    }
}

/* ----------------------------------------------------------- activations */

/* Elementwise: chunks of the array on the scalar kernels, one per thread. */
#define ACT_CHUNK 16384

void mc_train_act_forward(const float *x, size_t n, mc_act act, float *y) {
    long chunks = (long)((n + ACT_CHUNK - 1) / ACT_CHUNK);
    int nt = mc_threads_for(20.0 * (double)n);
    #pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (long c = 0; c < chunks; c++) {
        size_t i0 = (size_t)c * ACT_CHUNK, len = n - i0 < ACT_CHUNK ? n - i0 : ACT_CHUNK;
        if (act == MC_ACT_RELU) {
            const float *xs = x + i0;
            float *ys = y + i0;
            #pragma omp simd
            for (size_t i = 0; i < len; i++) ys[i] = xs[i] > 0 ? xs[i] : 0;
        } else {
            mc_train_act_forward_ref(x + i0, len, act, y + i0);
        }
    }
}

void mc_train_act_backward(const float *x, size_t n, mc_act act, const float *dy, float *dx) {
    long chunks = (long)((n + ACT_CHUNK - 1) / ACT_CHUNK);
    int nt = mc_threads_for(20.0 * (double)n);
    #pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (long c = 0; c < chunks; c++) {
        size_t i0 = (size_t)c * ACT_CHUNK, len = n - i0 < ACT_CHUNK ? n - i0 : ACT_CHUNK;
        if (act == MC_ACT_RELU) {
            const float *xs = x + i0, *gs = dy + i0;
            float *ds = dx + i0;
            #pragma omp simd
            for (size_t i = 0; i < len; i++) ds[i] += gs[i] * (xs[i] > 0 ? 1.0f : 0.0f);
        } else {
            mc_train_act_backward_ref(x + i0, len, act, dy + i0, dx + i0);
        }
    }
}

/* ------------------------------------------------------------- attention */

/* Per (sequence, head): S = scale Q K^T, masked row softmax into P, O = P V. */
void mc_train_attention_forward(const float *qkv, int b, int t, int heads, int hd, int causal,
                                float *out, float *probs) {
    int D = heads * hd, ld = 3 * D;
    float scale = 1.0f / sqrtf((float)hd);
    int nt = mc_threads_for(4.0 * b * heads * t * t * hd);
    #pragma omp parallel for collapse(2) num_threads(nt) schedule(static) if (nt > 1)
    for (int ib = 0; ib < b; ib++)
        for (int h = 0; h < heads; h++) {
            const float *base = qkv + (size_t)ib * t * ld;
            const float *q = base + h * hd, *k = base + D + h * hd, *v = base + 2 * D + h * hd;
            float *P = probs + ((size_t)ib * heads + h) * t * t;
            mc_gemm(0, 1, t, t, hd, scale, q, ld, k, ld, 0.0f, P, t);
            for (int i = 0; i < t; i++) {
                float *pr = P + (size_t)i * t;
                int jn = causal ? i + 1 : t;
                float mx = -INFINITY;
                for (int j = 0; j < jn; j++) if (pr[j] > mx) mx = pr[j];
                float sum = 0;
                for (int j = 0; j < jn; j++) { pr[j] = expf(pr[j] - mx); sum += pr[j]; }
                for (int j = jn; j < t; j++) pr[j] = 0.0f;
                for (int j = 0; j < jn; j++) pr[j] /= sum;
            }
            mc_gemm(0, 0, t, hd, t, 1.0f, P, t, v, ld, 0.0f, out + (size_t)ib * t * D + h * hd, D);
        }
}

/* Per (sequence, head): dP = dO V^T, dS = scale P (dP - rowsum(P dP)),
 * dQ += dS K, dK += dS^T Q, dV += P^T dO. */
void mc_train_attention_backward(const float *qkv, int b, int t, int heads, int hd,
                                 const float *probs, const float *dout, float *dqkv) {
    int D = heads * hd, ld = 3 * D;
    float scale = 1.0f / sqrtf((float)hd);
    int nt = mc_threads_for(8.0 * b * heads * t * t * hd);
    /* one t x t dS buffer per thread, taken on the calling thread */
    float *scr = train_scratch(TS_ATTN, (size_t)(nt > 1 ? nt : 1) * t * t);
    if (!scr) {   /* no scratch memory: the scalar path */
        mc_train_attention_backward_ref(qkv, b, t, heads, hd, probs, dout, dqkv);
        return;
    }
    #pragma omp parallel for collapse(2) num_threads(nt) schedule(static) if (nt > 1)
    for (int ib = 0; ib < b; ib++)
        for (int h = 0; h < heads; h++) {
            float *dS = scr + (size_t)thread_id() * t * t;
            const float *base = qkv + (size_t)ib * t * ld;
            float *dbase = dqkv + (size_t)ib * t * ld;
            const float *q = base + h * hd, *k = base + D + h * hd, *v = base + 2 * D + h * hd;
            const float *doh = dout + (size_t)ib * t * D + h * hd;
            const float *P = probs + ((size_t)ib * heads + h) * t * t;
            mc_gemm(0, 1, t, t, hd, 1.0f, doh, D, v, ld, 0.0f, dS, t);
            for (int i = 0; i < t; i++) {
                const float *pr = P + (size_t)i * t;
                float *sr = dS + (size_t)i * t;
                double acc = 0;
                for (int j = 0; j < t; j++) acc += (double)sr[j] * pr[j];
                float fa = (float)acc;
                for (int j = 0; j < t; j++) sr[j] = pr[j] * (sr[j] - fa) * scale;
            }
            mc_gemm(0, 0, t, hd, t, 1.0f, dS, t, k, ld, 1.0f, dbase + h * hd, ld);
            mc_gemm(1, 0, t, hd, t, 1.0f, dS, t, q, ld, 1.0f, dbase + D + h * hd, ld);
            mc_gemm(1, 0, t, hd, t, 1.0f, P, t, doh, D, 1.0f, dbase + 2 * D + h * hd, ld);
        }
}

/* ------------------------------------------------------------------ l2norm */

void mc_train_l2norm_forward(const float *x, int n, int d, float *y) {
    mc_train_l2norm_forward_ref(x, n, d, y);
}

void mc_train_l2norm_backward(const float *x, int n, int d, const float *dy, float *dx) {
    mc_train_l2norm_backward_ref(x, n, d, dy, dx);
}
