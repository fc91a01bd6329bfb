/*
 * kernels/kernels.c - the kernel entry points (kernels.h): with the kernel
 * set in use (dispatch.h), run GEMM-shaped work through the blocked SGEMM
 * (gemm.c) with fused epilogues,
 * depthwise convs through the direct plane kernel, small-cin 3x3 stride-2
 * convs (the image stem) through the kernel set's direct kernel, other convs
 * through im2col + SGEMM, attention as two SGEMMs per head around a softmax.
 * Scratch is thread-local and grown once (no allocation per call in steady
 * state).  Threads: OpenMP, count from mc_kernels_set_threads (0 = all).
 */
#include "kernels/kernels.h"
#include "kernels/dispatch.h"
#include "kernels/gemm.h"
#include "kernels/lowp.h"
#include "kernels/qmat.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#else
#pragma GCC diagnostic ignored "-Wunknown-pragmas"
#endif

void mc_act_apply(float *x, size_t n, mc_act act) {
    if (act == MC_ACT_NONE || n == 0) return;
    const mc_kset *ks = mc_kset_get();
    double work = (act == MC_ACT_RELU ? 1.0 : 30.0) * (double)n;
    int nt = mc_threads_for(work);
    if (nt <= 1) { ks->act(x, n, act); return; }
    size_t chunk = ((n + nt - 1) / nt + 15) & ~(size_t)15;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int t = 0; t < nt; t++) {
        size_t s = (size_t)t * chunk;
        if (s < n) ks->act(x + s, (n - s < chunk ? n - s : chunk), act);
    }
}

void mc_linear(const float *x, const float *w, const float *b, int m, int k, int n, float *y,
               mc_act act) {
    const mc_kset *ks = mc_kset_get();
    int nt = mc_threads_for(2.0 * m * n * k);
    if (m <= 4 && k > 0 && ks->gemv) {   /* few rows: dot products on the unpacked weights */
        int chunks = nt > 1 ? 4 * nt : 1;
        if (chunks > n) chunks = n;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1)
        for (int ci = 0; ci < chunks; ci++) {
            int j0 = (int)((long)n * ci / chunks), j1 = (int)((long)n * (ci + 1) / chunks);
            if (j0 >= j1) continue;
            ks->gemv(x, m, k, w + (size_t)j0 * k, j1 - j0, y + j0, (size_t)n);
            if (b || act != MC_ACT_NONE) ks->epi(y + j0, (size_t)n, m, j1 - j0, NULL, b ? b + j0 : NULL, act);
        }
        return;
    }
    mc_gemm_ex(ks, nt, 0, 1, m, n, k, 1.0f, x, k, w, k, 0.0f, y, n, NULL, b, act);
}

void mc_linear_add(const float *x, const float *w, const float *b, int m, int k, int n, float *y) {
    const mc_kset *ks = mc_kset_get();
    int nt = mc_threads_for(2.0 * m * n * k);
    mc_gemm_ex(ks, nt, 0, 1, m, n, k, 1.0f, x, k, w, k, 1.0f, y, n, NULL, b, MC_ACT_NONE);
}

void mc_pointwise_add(const float *w, const float *b, const float *x, int n, int cin, int cout,
                      int hw, float *y) {
    const mc_kset *ks = mc_kset_get();
    int nt = mc_threads_for(2.0 * cout * hw * cin);
    for (int i = 0; i < n; i++)
        mc_gemm_ex(ks, nt, 0, 0, cout, hw, cin, 1.0f, w, cin, x + (size_t)i * cin * hw, hw, 1.0f,
                   y + (size_t)i * cout * hw, hw, b, NULL, MC_ACT_NONE);
}

static int is_lowp(const mc_qmat *q) { return q && q->type != MC_WT_F32; }

/* q carries a pre-packed copy usable by the kernel set in use, as the B (b = 1) or A operand. */
static int use_packed(const mc_qmat *q, const mc_kset *ks, int b) { return mc_qmat_packed_for(q, ks, b) != NULL; }

/* The float32 weights are held only as q's packed copy (w NULL). */
static int only_packed(const float *w, const mc_qmat *q) { return !w && q && q->type == MC_WT_F32 && q->packed; }

/* mc_linear's dot-product path for weights held only packed: rows of q are
 * unpacked a block at a time into scratch and handed to the kernel set's
 * gemv, so every output is the same dot product mc_linear computes on w. */
static void linear_gemv_packed(const mc_kset *ks, const float *x, const mc_qmat *q, const float *b, int m,
                               int k, int n, float *y, mc_act act) {
    enum { ROWS = 32 };
    int nt = mc_threads_for(2.0 * m * n * k);
    int chunks = nt > 1 ? 4 * nt : 1;
    if (chunks > n) chunks = n;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1)
    for (int ci = 0; ci < chunks; ci++) {
        int j0 = (int)((long)n * ci / chunks), j1 = (int)((long)n * (ci + 1) / chunks);
        if (j0 >= j1) continue;
        float *buf = mc_scratch(MC_SCRATCH_PACK_B, (size_t)ROWS * k);
        for (int jb = j0; jb < j1; jb += ROWS) {
            int nb = j1 - jb < ROWS ? j1 - jb : ROWS;
            if (buf) {
                mc_qmat_unpack(q, jb, nb, 0, k, buf, (size_t)k);
                ks->gemv(x, m, k, buf, nb, y + jb, (size_t)n);
                continue;
            }
            for (int j = jb; j < jb + nb; j++)   /* no scratch memory: one element at a time */
                for (int i = 0; i < m; i++) {
                    float s = 0, v;
                    for (int p = 0; p < k; p++) {
                        mc_qmat_unpack(q, j, 1, p, 1, &v, 1);
                        s += x[(size_t)i * k + p] * v;
                    }
                    y[(size_t)i * n + j] = s;
                }
        }
        if (b || act != MC_ACT_NONE) ks->epi(y + j0, (size_t)n, m, j1 - j0, NULL, b ? b + j0 : NULL, act);
    }
}

void mc_linear_q(const float *x, const float *w, const mc_qmat *q, const float *b, int m, int k, int n,
                 float *y, mc_act act) {
    const mc_kset *ks = mc_kset_get();
    /* few rows take the dot-product path on the plain weights (no packing either way) */
    if (m <= 4 && k > 0 && ks->gemv && only_packed(w, q)) {
        if (n > 0) linear_gemv_packed(ks, x, q, b, m, k, n, y, act);
        return;
    }
    int packed = use_packed(q, ks, 1) && !(m <= 4 && ks->gemv && w);
    if (!is_lowp(q) && !packed && !only_packed(w, q)) { mc_linear(x, w, b, m, k, n, y, act); return; }
    mc_qop qb = {q, 0};
    mc_gemm_q(ks, mc_threads_for(2.0 * m * n * k), 0, 1, m, n, k, 1.0f, x, k, NULL, NULL, 0, &qb, 0.0f, y, n,
              NULL, b, act);
}

void mc_linear_add_q(const float *x, const float *w, const mc_qmat *q, const float *b, int m, int k,
                     int n, float *y) {
    const mc_kset *ks = mc_kset_get();
    if (!is_lowp(q) && !use_packed(q, ks, 1) && !only_packed(w, q)) { mc_linear_add(x, w, b, m, k, n, y); return; }
    mc_qop qb = {q, 0};
    mc_gemm_q(ks, mc_threads_for(2.0 * m * n * k), 0, 1, m, n, k, 1.0f, x, k, NULL, NULL, 0, &qb, 1.0f, y, n,
              NULL, b, MC_ACT_NONE);
}

void mc_pointwise_add_q(const float *w, const mc_qmat *q, const float *b, const float *x, int n, int cin,
                        int cout, int hw, float *y) {
    const mc_kset *ks = mc_kset_get();
    if (!is_lowp(q) && !use_packed(q, ks, 0) && !only_packed(w, q)) {
        mc_pointwise_add(w, b, x, n, cin, cout, hw, y);
        return;
    }
    int nt = mc_threads_for(2.0 * cout * hw * cin);
    mc_qop qa = {q, 0};
    for (int i = 0; i < n; i++)
        mc_gemm_q(ks, nt, 0, 0, cout, hw, cin, 1.0f, NULL, 0, &qa, x + (size_t)i * cin * hw, hw, NULL, 1.0f,
                  y + (size_t)i * cout * hw, hw, b, NULL, MC_ACT_NONE);
}

void mc_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc) {
    if (m <= 0 || n <= 0) return;
    if (k > 0 && mc_gemm_blas(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)) return;
    int nt = mc_threads_for(2.0 * m * n * (k > 0 ? k : 1));
    mc_gemm_ex(mc_kset_get(), nt, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, NULL, NULL,
               MC_ACT_NONE);
}

/* col[(ic * kh + ky) * kw + kx][oy * ow + ox] = x[ic][oy sh - ph + ky][ox sw - pw + kx] (0 outside). */
static void im2col(const float *x, int cin, int h, int w, const mc_conv2d_desc *d, int oh, int ow,
                   float *col, int nt) {
    int kk = cin * d->kh * d->kw;
    size_t ohw = (size_t)oh * ow;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int r = 0; r < kk; r++) {
        int kx = r % d->kw, ky = (r / d->kw) % d->kh, ic = r / (d->kw * d->kh);
        const float *xc = x + (size_t)ic * h * w;
        float *dst = col + (size_t)r * ohw;
        /* valid ox: 0 <= ox sw - pw + kx < w */
        int oxlo = 0, oxhi = ow;
        while (oxlo < ow && oxlo * d->sw - d->pw + kx < 0) oxlo++;
        while (oxhi > oxlo && (oxhi - 1) * d->sw - d->pw + kx >= w) oxhi--;
        for (int oy = 0; oy < oh; oy++) {
            float *dr = dst + (size_t)oy * ow;
            int iy = oy * d->sh - d->ph + ky;
            if (iy < 0 || iy >= h) { memset(dr, 0, (size_t)ow * sizeof(float)); continue; }
            const float *sr = xc + (size_t)iy * w - d->pw + kx;
            for (int ox = 0; ox < oxlo; ox++) dr[ox] = 0;
            if (d->sw == 1) {
                memcpy(dr + oxlo, sr + oxlo, (size_t)(oxhi - oxlo) * sizeof(float));
            } else {
                for (int ox = oxlo; ox < oxhi; ox++) dr[ox] = sr[(size_t)ox * d->sw];
            }
            for (int ox = oxhi; ox < ow; ox++) dr[ox] = 0;
        }
    }
}

/* The reference conv with the weights of q (the no-scratch path of mc_conv2d_q). */
static void conv2d_q_plain(const mc_conv2d_desc *d, const mc_qmat *q, const float *b, const float *x, int n,
                           int h, int wd, float *y, mc_act act) {
    int oh = mc_conv_out(h, d->kh, d->sh, d->ph), ow = mc_conv_out(wd, d->kw, d->sw, d->pw);
    int cpg_in = d->cin / d->groups, cpg_out = d->cout / d->groups;
    for (int img = 0; img < n; img++)
        for (int oc = 0; oc < d->cout; oc++) {
            int g = oc / cpg_out;
            float *yo = y + ((size_t)img * d->cout + oc) * oh * ow;
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    float s = b ? b[oc] : 0.0f;
                    for (int ic = 0; ic < cpg_in; ic++) {
                        const float *xc = x + ((size_t)img * d->cin + (size_t)g * cpg_in + ic) * h * wd;
                        for (int ky = 0; ky < d->kh; ky++) {
                            int iy = oy * d->sh - d->ph + ky;
                            if (iy < 0 || iy >= h) continue;
                            for (int kx = 0; kx < d->kw; kx++) {
                                int ix = ox * d->sw - d->pw + kx;
                                if (ix < 0 || ix >= wd) continue;
                                float wv;
                                mc_qmat_row_ref(q, oc, ((int64_t)ic * d->kh + ky) * d->kw + kx, 1, &wv);
                                s += wv * xc[(size_t)iy * wd + ix];
                            }
                        }
                    }
                    yo[(size_t)oy * ow + ox] = s;
                }
            mc_act_apply_ref(yo, (size_t)oh * ow, act);
        }
}

/* Output rows [oy0, oy1) of a 3x3 stride-2 padding-1 dense conv of one image,
 * computed plainly (a worker thread without scratch memory for conv3s2). */
static void conv3s2_rows_plain(const float *x, int cin, int h, int w, const float *wt, const float *b, int cout,
                               int oy0, int oy1, mc_act act, float *y) {
    int oh = mc_conv_out(h, 3, 2, 1), ow = mc_conv_out(w, 3, 2, 1);
    for (int oc = 0; oc < cout; oc++)
        for (int oy = oy0; oy < oy1; oy++) {
            float *yr = y + ((size_t)oc * oh + oy) * ow;
            for (int ox = 0; ox < ow; ox++) {
                float s = 0;
                for (int ic = 0; ic < cin; ic++)
                    for (int ky = 0; ky < 3; ky++) {
                        int iy = 2 * oy - 1 + ky;
                        if (iy < 0 || iy >= h) continue;
                        for (int kx = 0; kx < 3; kx++) {
                            int ix = 2 * ox - 1 + kx;
                            if (ix >= 0 && ix < w) s += wt[(size_t)oc * cin * 9 + ic * 9 + ky * 3 + kx] * x[((size_t)ic * h + iy) * w + ix];
                        }
                    }
                yr[ox] = s + (b ? b[oc] : 0.0f);
            }
            mc_act_apply_ref(yr, (size_t)ow, act);
        }
}

/* A dense 3x3 stride-2 padding-1 conv over at most 4 input channels (the
 * image stem) through the kernel set's direct kernel, output rows shared out
 * over threads; 0 (nothing done) when the set has none or no scratch. */
static int conv3s2(const mc_kset *ks, const mc_conv2d_desc *d, const float *w, const mc_qmat *q, const float *b,
                   const float *x, int n, int h, int wd, float *y, mc_act act) {
    if (!ks->conv3s2 || d->groups != 1 || d->cin > 4 || d->kh != 3 || d->kw != 3 || d->sh != 2 || d->sw != 2 ||
        d->ph != 1 || d->pw != 1)
        return 0;
    const int cin = d->cin, cout = d->cout, kk = cin * 9;
    const int oh = mc_conv_out(h, 3, 2, 1), ow = mc_conv_out(wd, 3, 2, 1);
    size_t sc = mc_conv3s2_scratch_floats(cin, wd);
    if (q && (is_lowp(q) || !w)) {   /* weights as float32 rows */
        float *wb = mc_scratch(MC_SCRATCH_PACK_Q, (size_t)cout * kk);
        if (!wb) return 0;
        for (int oc = 0; oc < cout; oc++) mc_qmat_row(q, oc, 0, kk, wb + (size_t)oc * kk);
        w = wb;
    }
    if (!w || !mc_scratch(MC_SCRATCH_CONV, sc)) return 0;
    int nt = mc_threads_for(2.0 * cout * oh * ow * kk);
    int chunks = nt > 1 ? (oh < 4 * nt ? oh : 4 * nt) : 1;
    for (int img = 0; img < n; img++) {
        const float *xi = x + (size_t)img * cin * h * wd;
        float *yi = y + (size_t)img * cout * oh * ow;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1)
        for (int c = 0; c < chunks; c++) {
            int oy0 = (int)((long)oh * c / chunks), oy1 = (int)((long)oh * (c + 1) / chunks);
            float *scr = mc_scratch(MC_SCRATCH_CONV, sc);
            if (scr)
                ks->conv3s2(xi, cin, h, wd, w, b, cout, oy0, oy1, act, yi, scr);
            else
                conv3s2_rows_plain(xi, cin, h, wd, w, b, cout, oy0, oy1, act, yi);
        }
    }
    return 1;
}

void mc_conv2d(const mc_conv2d_desc *d, const float *w, const float *b, const float *x, int n,
               int h, int wd, float *y, mc_act act) {
    mc_conv2d_q(d, w, NULL, b, x, n, h, wd, y, act);
}

void mc_conv2d_q(const mc_conv2d_desc *d, const float *w, const mc_qmat *q, const float *b,
                 const float *x, int n, int h, int wd, float *y, mc_act act) {
    const mc_kset *ks = mc_kset_get();
    int oh = mc_conv_out(h, d->kh, d->sh, d->ph), ow = mc_conv_out(wd, d->kw, d->sw, d->pw);
    if (n <= 0 || oh <= 0 || ow <= 0) return;
    int cpg_in = d->cin / d->groups, cpg_out = d->cout / d->groups;
    size_t hw = (size_t)h * wd, ohw = (size_t)oh * ow;
    if (cpg_in == 1 && (is_lowp(q) || only_packed(w, q))) {   /* not a GEMM: callers keep depthwise weights in float32 */
        conv2d_q_plain(d, q, b, x, n, h, wd, y, act);
        return;
    }
    if (cpg_in == 1) {   /* depthwise, or depthwise with a channel multiplier: one plane per output */
        int total = n * d->cout, khw = d->kh * d->kw;
        size_t sc = mc_dw_scratch_floats(d, h, wd);
        int nt = mc_threads_for(2.0 * total * ohw * khw);
        if (nt > total) nt = total;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 4) if (nt > 1)
        for (int i = 0; i < total; i++) {
            int img = i / d->cout, oc = i % d->cout, ic = oc / cpg_out;
            const float *xc = x + ((size_t)img * d->cin + ic) * hw;
            float *scr = mc_scratch(MC_SCRATCH_CONV, sc);
            if (scr) {
                ks->dw(xc, h, wd, w + (size_t)oc * khw, d, b ? b[oc] : 0.0f, act, y + (size_t)i * ohw, scr);
            } else {   /* no scratch memory: the reference conv of this one channel */
                mc_conv2d_desc d1 = *d;
                d1.cin = d1.cout = d1.groups = 1;
                mc_conv2d_ref(&d1, w + (size_t)oc * khw, b ? b + oc : NULL, xc, 1, h, wd, y + (size_t)i * ohw, act);
            }
        }
        return;
    }
    if (conv3s2(ks, d, w, q, b, x, n, h, wd, y, act)) return;
    int kk = cpg_in * d->kh * d->kw;
    int direct = d->kh == 1 && d->kw == 1 && d->sh == 1 && d->sw == 1 && d->ph == 0 && d->pw == 0;
    int lowp = is_lowp(q);
    int useq = lowp || (d->groups == 1 && use_packed(q, ks, 0)) || only_packed(w, q);   /* weights from q */
    int nt = mc_threads_for(2.0 * cpg_out * ohw * kk);
    for (int img = 0; img < n; img++)
        for (int g = 0; g < d->groups; g++) {
            const float *xg = x + ((size_t)img * d->cin + (size_t)g * cpg_in) * hw;
            const float *col = xg;
            if (!direct) {
                float *cb = mc_scratch(MC_SCRATCH_CONV, (size_t)kk * ohw);
                if (!cb) {   /* no memory for im2col: the reference conv */
                    if (lowp || !w)
                        conv2d_q_plain(d, q, b, x, n, h, wd, y, act);
                    else
                        mc_conv2d_ref(d, w, b, x, n, h, wd, y, act);
                    return;
                }
                im2col(xg, cpg_in, h, wd, d, oh, ow, cb, nt);
                col = cb;
            }
            mc_qop qa = {q, (int64_t)g * cpg_out};
            mc_gemm_q(ks, nt, 0, 0, cpg_out, (int)ohw, kk, 1.0f, useq ? NULL : w + (size_t)g * cpg_out * kk, kk,
                      useq ? &qa : NULL, col, (int)ohw, NULL, 0.0f,
                      y + ((size_t)img * d->cout + (size_t)g * cpg_out) * ohw, (int)ohw,
                      b ? b + (size_t)g * cpg_out : NULL, NULL, act);
        }
}

void mc_layernorm(const float *x, int rows, int dim, const float *g, const float *b, float eps,
                  float *y) {
    const mc_kset *ks = mc_kset_get();
    int nt = mc_threads_for(8.0 * rows * dim);
    if (nt > rows) nt = rows;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int r = 0; r < rows; r++) ks->layernorm_row(x + (size_t)r * dim, dim, g, b, eps, y + (size_t)r * dim);
}

void mc_layernorm_nchw(const float *x, int n, int c, int hw, const float *g, const float *b,
                       float eps, float *y) {
    const mc_kset *ks = mc_kset_get();
    int chunks = (hw + 63) / 64;
    int total = n * chunks;
    int nt = mc_threads_for(8.0 * n * c * hw);
    if (nt > total) nt = total;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int i = 0; i < total; i++) {
        int img = i / chunks, p0 = (i % chunks) * 64, p1 = p0 + 64 < hw ? p0 + 64 : hw;
        size_t off = (size_t)img * c * hw;
        ks->layernorm_nchw(x + off, c, hw, p0, p1, g, b, eps, y + off);
    }
}

void mc_softmax_rows(float *x, int rows, int cols) {
    const mc_kset *ks = mc_kset_get();
    int nt = mc_threads_for(30.0 * rows * cols);
    if (nt > rows) nt = rows;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int r = 0; r < rows; r++) ks->softmax_row(x + (size_t)r * cols, cols);
}

/* One head of attention without any scratch beyond a small stack block:
 * softmax computed online over blocks of keys (running max and sum), the
 * output row itself holding the accumulator.  The path taken when the
 * per-thread score matrix cannot be allocated. */
static void attention_head_online(const float *q, const float *k, const float *v, int ld, int t, int hd,
                                  int causal, float scale, float *out, int od) {
    enum { BLK = 64 };
    float sc[BLK];
    for (int i = 0; i < t; i++) {
        const float *qi = q + (size_t)i * ld;
        float *oi = out + (size_t)i * od;
        for (int d = 0; d < hd; d++) oi[d] = 0;
        float m = -INFINITY, l = 0;
        int tend = causal ? i + 1 : t;
        for (int j0 = 0; j0 < tend; j0 += BLK) {
            int nb = tend - j0 < BLK ? tend - j0 : BLK;
            float mb = -INFINITY;
            for (int j = 0; j < nb; j++) {
                const float *kj = k + (size_t)(j0 + j) * ld;
                float dot = 0;
                for (int d = 0; d < hd; d++) dot += qi[d] * kj[d];
                sc[j] = dot * scale;
                if (sc[j] > mb) mb = sc[j];
            }
            float mn = mb > m ? mb : m;
            float f = expf(m - mn);
            l *= f;
            for (int d = 0; d < hd; d++) oi[d] *= f;
            for (int j = 0; j < nb; j++) {
                float p = expf(sc[j] - mn);
                l += p;
                const float *vj = v + (size_t)(j0 + j) * ld;
                for (int d = 0; d < hd; d++) oi[d] += p * vj[d];
            }
            m = mn;
        }
        float inv = 1.0f / l;
        for (int d = 0; d < hd; d++) oi[d] *= inv;
    }
}

/* One head of one sequence: S = scale Q K^T, (causal mask), softmax rows, O = S V. */
static void attention_head(const mc_kset *ks, const float *q, const float *k, const float *v, int ld,
                           int t, int hd, int causal, float scale, float *out, int od, float *s) {
    if (!s) {   /* no memory for the score matrix */
        attention_head_online(q, k, v, ld, t, hd, causal, scale, out, od);
        return;
    }
    mc_gemm_ex(ks, 1, 0, 1, t, t, hd, scale, q, ld, k, ld, 0.0f, s, t, NULL, NULL, MC_ACT_NONE);
    for (int i = 0; i < t; i++) {
        float *sr = s + (size_t)i * t;
        if (causal)
            for (int j = i + 1; j < t; j++) sr[j] = -INFINITY;
        ks->softmax_row(sr, t);
    }
    mc_gemm_ex(ks, 1, 0, 0, t, hd, t, 1.0f, s, t, v, ld, 0.0f, out, od, NULL, NULL, MC_ACT_NONE);
}

void mc_attention_batch(const float *q, const float *k, const float *v, int ld, int nseq, int t,
                        int heads, int hd, int causal, float *out) {
    const mc_kset *ks = mc_kset_get();
    float scale = 1.0f / sqrtf((float)hd);
    int od = heads * hd, total = nseq * heads;
    int nt = mc_threads_for(4.0 * t * t * hd * total);
    if (nt > total) nt = total;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1)
    for (int i = 0; i < total; i++) {
        int sq = i / heads, h = i % heads;
        size_t in_off = (size_t)sq * t * ld + (size_t)h * hd;
        attention_head(ks, q + in_off, k + in_off, v + in_off, ld, t, hd, causal, scale,
                       out + (size_t)sq * t * od + (size_t)h * hd, od,
                       mc_scratch(MC_SCRATCH_ATTN, (size_t)t * t));
    }
}

void mc_attention(const float *q, const float *k, const float *v, int ld, int t, int heads, int hd,
                  int causal, float *out, float *scratch) {
    const mc_kset *ks = mc_kset_get();
    float scale = 1.0f / sqrtf((float)hd);
    int od = heads * hd;
    int nt = mc_threads_for(4.0 * t * t * hd * heads);
    if (nt > heads) nt = heads;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int h = 0; h < heads; h++)
        attention_head(ks, q + h * hd, k + h * hd, v + h * hd, ld, t, hd, causal, scale, out + h * hd, od,
                       nt > 1 ? mc_scratch(MC_SCRATCH_ATTN, (size_t)t * t) : scratch);
}
