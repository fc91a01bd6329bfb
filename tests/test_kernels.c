/*
 * test_kernels.c - every fast kernel against its scalar _ref oracle on odd
 * sizes, transposes, alpha/beta, conv strides/paddings/groups, for each
 * kernel set this CPU can run (the portable "scalar" set, the SIMD sets,
 * and the AVX-512 source over emulated intrinsics: kernel_sets.h) and for 1
 * and 2 threads; weights pre-packed, and held only packed
 * (unpacking is exact, results equal those on the plain matrix).
 */
#include "test.h"

#include "kernels/gemm.h"
#include "kernels/lowp.h"
#include "kernels/qmat.h"
#include "kernels/set_avx2.h"
#include "kernels/set_neon.h"
#include "kernels/set_portable.h"
#include "kernels/kernels.h"
#include "kernel_sets.h"

#include <stdint.h>



static const char *g_set;
static int g_nt;
#define TOL 1e-5

static void test_gemm_one(int ta, int tb, int m, int n, int k, float alpha, float beta, int pad) {
    int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
    size_t asz = (size_t)(ta ? k : m) * lda, bsz = (size_t)(tb ? n : k) * ldb, csz = (size_t)m * ldc;
    float *a = test_rand_buf(asz, 1), *b = test_rand_buf(bsz, 1), *c0 = test_rand_buf(csz, 1);
    float *c1 = malloc(csz * sizeof(float)), *c2 = malloc(csz * sizeof(float));
    memcpy(c1, c0, csz * sizeof(float));
    memcpy(c2, c0, csz * sizeof(float));
    mc_gemm_ref(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c1, ldc);
    mc_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c2, ldc);
    double e = test_rel_err(c2, c1, csz);
    CHECK(e <= TOL, "[%s t%d] gemm ta=%d tb=%d m=%d n=%d k=%d alpha=%g beta=%g pad=%d: err %g", g_set,
          g_nt, ta, tb, m, n, k, alpha, beta, pad, e);
    free(a), free(b), free(c0), free(c1), free(c2);
}

static void test_gemm(void) {
    static const int sz[][3] = {{1, 1, 1},    {7, 13, 37},  {13, 7, 65},   {37, 65, 13}, {65, 129, 7},
                                {129, 37, 129}, {1, 129, 65}, {129, 1, 37}, {6, 16, 256}, {12, 32, 257},
                                {121, 33, 300}, {29, 2100, 17}, {37, 37, 0}};
    for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                test_gemm_one(ta, tb, sz[i][0], sz[i][1], sz[i][2], 1.0f, 0.0f, 0);
                test_gemm_one(ta, tb, sz[i][0], sz[i][1], sz[i][2], -0.7f, 0.5f, 3);
            }
    test_gemm_one(0, 0, 200, 150, 600, 1.0f, 1.0f, 1);
}

static void test_linear(void) {
    static const int sz[][3] = {{1, 7, 13}, {7, 37, 65}, {77, 64, 129}, {13, 129, 1}, {65, 13, 37},
                                {2, 515, 77}, {4, 64, 300}, {3, 9, 1}, {5, 33, 40}, {1, 512, 700}};
    for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++)
        for (int act = MC_ACT_NONE; act <= MC_ACT_SIGMOID; act++)
            for (int hb = 0; hb < 2; hb++) {
                int m = sz[i][0], k = sz[i][1], n = sz[i][2];
                float *x = test_rand_buf((size_t)m * k, 1), *w = test_rand_buf((size_t)n * k, 0.5f), *b = test_rand_buf(n, 1);
                float *y1 = malloc((size_t)m * n * sizeof(float)), *y2 = malloc((size_t)m * n * sizeof(float));
                mc_linear_ref(x, w, hb ? b : NULL, m, k, n, y1, (mc_act)act);
                mc_linear(x, w, hb ? b : NULL, m, k, n, y2, (mc_act)act);
                double e = test_rel_err(y2, y1, (size_t)m * n);
                CHECK(e <= TOL, "[%s t%d] linear m=%d k=%d n=%d act=%d bias=%d: err %g", g_set, g_nt, m, k, n,
                      act, hb, e);
                free(x), free(w), free(b), free(y1), free(y2);
            }
}

static void test_conv_one(int n, int cin, int cout, int groups, int kh, int kw, int sh, int sw, int ph,
                          int pw, int h, int w, mc_act act, int hb) {
    mc_conv2d_desc d = {cin, cout, kh, kw, sh, sw, ph, pw, groups};
    int oh = mc_conv_out(h, kh, sh, ph), ow = mc_conv_out(w, kw, sw, pw);
    size_t xs = (size_t)n * cin * h * w, ws = (size_t)cout * (cin / groups) * kh * kw,
           ys = (size_t)n * cout * oh * ow;
    float *x = test_rand_buf(xs, 1), *wt = test_rand_buf(ws, 0.5f), *b = test_rand_buf(cout, 1);
    float *y1 = malloc(ys * sizeof(float)), *y2 = malloc(ys * sizeof(float));
    mc_conv2d_ref(&d, wt, hb ? b : NULL, x, n, h, w, y1, act);
    for (size_t i = 0; i < ys; i++) y2[i] = NAN;
    mc_conv2d(&d, wt, hb ? b : NULL, x, n, h, w, y2, act);
    double e = test_rel_err(y2, y1, ys);
    CHECK(e <= TOL, "[%s t%d] conv n=%d cin=%d cout=%d g=%d k=%dx%d s=%dx%d p=%dx%d in=%dx%d act=%d: err %g",
          g_set, g_nt, n, cin, cout, groups, kh, kw, sh, sw, ph, pw, h, w, act, e);
    free(x), free(wt), free(b), free(y1), free(y2);
}

static void test_conv(void) {
    /* depthwise */
    static const int dw[][6] = {{3, 3, 1, 1, 1, 1}, {3, 3, 2, 2, 1, 1}, {7, 7, 1, 1, 3, 3},
                                {7, 7, 2, 2, 3, 3}, {1, 11, 1, 1, 0, 5}, {11, 1, 1, 1, 5, 0}, {1, 1, 2, 2, 0, 0},
                                {3, 3, 1, 1, 0, 0}, {5, 5, 3, 3, 2, 2}, {3, 3, 2, 1, 1, 0}};
    static const int hw[][2] = {{13, 17}, {9, 8}, {33, 40}, {1, 1}, {64, 5}, {16, 16}, {8, 8}};
    for (size_t i = 0; i < sizeof dw / sizeof dw[0]; i++)
        for (size_t j = 0; j < sizeof hw / sizeof hw[0]; j++) {
            const int *q = dw[i];
            if (mc_conv_out(hw[j][0], q[0], q[2], q[4]) <= 0 || mc_conv_out(hw[j][1], q[1], q[3], q[5]) <= 0) continue;
            test_conv_one(2, 5, 5, 5, q[0], q[1], q[2], q[3], q[4], q[5], hw[j][0], hw[j][1],
                          (j & 1) ? MC_ACT_GELU : MC_ACT_NONE, (int)(i & 1) || j == 0);
        }
    /* the AVX2 plane kernel's paths: wide planes (in-place interior column
     * blocks, copied border blocks, overlapping last row / column blocks),
     * narrow ones (one padded copy, blocks of 8, 4 and 1 rows), stride 2
     * (phase split), kernels 3 / 7 specialised, 1 x 11 / 11 x 1 / 5 x 5 generic,
     * asymmetric and zero padding */
    static const int dw2[][6] = {{3, 3, 1, 1, 1, 1}, {7, 7, 1, 1, 3, 3}, {3, 3, 2, 2, 1, 1}, {7, 7, 2, 2, 3, 3},
                                 {1, 11, 1, 1, 0, 5}, {11, 1, 1, 1, 5, 0}, {7, 7, 1, 1, 0, 0}, {3, 3, 1, 1, 0, 1},
                                 {7, 7, 1, 2, 3, 2}, {5, 5, 1, 1, 2, 2}};
    static const int hw2[][2] = {{37, 45}, {7, 70}, {12, 33}, {70, 7}, {3, 64}, {5, 31}, {19, 9}};
    for (size_t i = 0; i < sizeof dw2 / sizeof dw2[0]; i++)
        for (size_t j = 0; j < sizeof hw2 / sizeof hw2[0]; j++) {
            const int *q = dw2[i];
            if (mc_conv_out(hw2[j][0], q[0], q[2], q[4]) <= 0 || mc_conv_out(hw2[j][1], q[1], q[3], q[5]) <= 0) continue;
            test_conv_one(1, 3, 3, 3, q[0], q[1], q[2], q[3], q[4], q[5], hw2[j][0], hw2[j][1],
                          (i + j) % 3 == 0 ? MC_ACT_GELU : MC_ACT_NONE, (int)((i + j) & 1));
        }
    test_conv_one(1, 4, 8, 4, 7, 7, 2, 2, 3, 3, 64, 64, MC_ACT_GELU, 1);   /* S0 patch embedding, x2 */
    test_conv_one(1, 2, 2, 2, 3, 3, 2, 2, 1, 1, 128, 128, MC_ACT_GELU, 1); /* S0 stem depthwise */
    /* 1x1 (GEMM on NCHW), strided 1x1, dense stem-like, grouped */
    test_conv_one(2, 37, 13, 1, 1, 1, 1, 1, 0, 0, 9, 11, MC_ACT_GELU, 1);
    test_conv_one(1, 64, 96, 1, 1, 1, 1, 1, 0, 0, 16, 16, MC_ACT_RELU, 1);
    test_conv_one(1, 16, 24, 1, 1, 1, 2, 2, 0, 0, 15, 15, MC_ACT_NONE, 0);
    test_conv_one(1, 3, 16, 1, 3, 3, 2, 2, 1, 1, 33, 31, MC_ACT_GELU, 1);
    test_conv_one(2, 8, 12, 4, 3, 3, 1, 1, 1, 1, 13, 7, MC_ACT_SIGMOID, 1);
    test_conv_one(1, 6, 6, 2, 1, 1, 1, 1, 0, 0, 7, 7, MC_ACT_NONE, 1);
    test_conv_one(1, 4, 8, 4, 3, 3, 1, 1, 1, 1, 11, 11, MC_ACT_NONE, 1);   /* channel multiplier 2 */
    test_conv_one(2, 6, 12, 6, 7, 7, 2, 2, 3, 3, 17, 20, MC_ACT_GELU, 1);  /* patch-embed-like: 7x7 s2, x2 */
    test_conv_one(1, 3, 9, 3, 3, 3, 1, 1, 1, 1, 9, 9, MC_ACT_NONE, 0);     /* multiplier 3 */
    test_conv_one(2, 6, 12, 6, 7, 7, 2, 2, 3, 3, 17, 16, MC_ACT_GELU, 1);  /* MCi downsample shape */
    test_conv_one(2, 3, 9, 3, 3, 3, 2, 2, 1, 1, 9, 10, MC_ACT_NONE, 0);   /* channel multiplier 3 */
    test_conv_one(1, 5, 7, 1, 7, 7, 2, 2, 3, 3, 19, 23, MC_ACT_QUICK_GELU, 1);
    /* dense 3x3 stride 2 padding 1 with cin <= 4 (the stem's direct kernel): odd sizes, rows
     * narrower than a vector, cout not a multiple of the channel block */
    static const int st[][6] = {{1, 3, 64, 33, 31, MC_ACT_GELU}, {2, 1, 5, 1, 1, MC_ACT_NONE},
                                {1, 2, 7, 2, 15, MC_ACT_RELU}, {2, 4, 9, 17, 16, MC_ACT_GELU},
                                {1, 3, 6, 9, 67, MC_ACT_NONE}, {1, 4, 13, 5, 49, MC_ACT_SIGMOID},
                                {1, 3, 4, 64, 64, MC_ACT_GELU}, {1, 1, 1, 3, 3, MC_ACT_GELU_TANH}};
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++)
        for (int hb = 0; hb < 2; hb++)
            test_conv_one(st[i][0], st[i][1], st[i][2], 1, 3, 3, 2, 2, 1, 1, st[i][3], st[i][4], (mc_act)st[i][5], hb);
    {   /* the same conv with the weights held only as a pre-packed copy (as the models keep them) */
        mc_conv2d_desc d = {3, 11, 3, 3, 2, 2, 1, 1, 1};
        int h = 19, w = 37, oh = mc_conv_out(h, 3, 2, 1), ow = mc_conv_out(w, 3, 2, 1);
        size_t ys = (size_t)2 * d.cout * oh * ow;
        float *x = test_rand_buf((size_t)2 * 3 * h * w, 1), *wt = test_rand_buf((size_t)d.cout * 27, 0.5f);
        float *b = test_rand_buf(d.cout, 1), *y1 = malloc(ys * sizeof(float)), *y2 = malloc(ys * sizeof(float));
        float *pk = malloc(mc_qmat_packed_floats(mc_kset_get(), 0, d.cout, 27) * sizeof(float));
        mc_qmat q;
        mc_qmat_pack(mc_kset_get(), 0, wt, d.cout, 27, pk, &q);
        q.data = NULL;
        mc_conv2d_ref(&d, wt, b, x, 2, h, w, y1, MC_ACT_GELU);
        mc_conv2d_q(&d, NULL, &q, b, x, 2, h, w, y2, MC_ACT_GELU);
        double e = test_rel_err(y2, y1, ys);
        CHECK(e <= TOL, "[%s t%d] conv 3x3 s2 cin=3 packed-only weights: err %g", g_set, g_nt, e);
        free(x), free(wt), free(b), free(y1), free(y2), free(pk);
    }
}

static void test_norms(void) {
    static const int dims[] = {1, 7, 64, 65, 129, 512};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        for (int aff = 0; aff < 2; aff++) {
            int rows = 5, dim = dims[i];
            float *x = test_rand_buf((size_t)rows * dim, 3), *g = test_rand_buf(dim, 1), *b = test_rand_buf(dim, 1);
            for (int j = 0; j < rows * dim; j++) x[j] += 2.0f;
            float *y1 = malloc((size_t)rows * dim * sizeof(float)), *y2 = malloc((size_t)rows * dim * sizeof(float));
            mc_layernorm_ref(x, rows, dim, aff ? g : NULL, aff ? b : NULL, 1e-5f, y1);
            mc_layernorm(x, rows, dim, aff ? g : NULL, aff ? b : NULL, 1e-5f, y2);
            double e = test_rel_err(y2, y1, (size_t)rows * dim);
            CHECK(e <= TOL, "[%s t%d] layernorm dim=%d aff=%d: err %g", g_set, g_nt, dim, aff, e);
            free(x), free(g), free(b), free(y1), free(y2);
        }
    static const int chw[][2] = {{3, 1}, {3, 13}, {64, 67}, {17, 64}, {128, 200}};
    for (size_t i = 0; i < sizeof chw / sizeof chw[0]; i++)
        for (int aff = 0; aff < 2; aff++) {
            int n = 2, c = chw[i][0], hw = chw[i][1];
            size_t sz = (size_t)n * c * hw;
            float *x = test_rand_buf(sz, 2), *g = test_rand_buf(c, 1), *b = test_rand_buf(c, 1);
            float *y1 = malloc(sz * sizeof(float)), *y2 = malloc(sz * sizeof(float));
            mc_layernorm_nchw_ref(x, n, c, hw, aff ? g : NULL, aff ? b : NULL, 1e-6f, y1);
            mc_layernorm_nchw(x, n, c, hw, aff ? g : NULL, aff ? b : NULL, 1e-6f, y2);
            double e = test_rel_err(y2, y1, sz);
            CHECK(e <= TOL, "[%s t%d] layernorm_nchw c=%d hw=%d aff=%d: err %g", g_set, g_nt, c, hw, aff, e);
            free(x), free(g), free(b), free(y1), free(y2);
        }
    static const int cols[] = {1, 7, 64, 77, 129};
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        int rows = 9, n = cols[i];
        float *x1 = test_rand_buf((size_t)rows * n, 8), *x2 = malloc((size_t)rows * n * sizeof(float));
        x1[0] = -INFINITY;   /* a masked entry */
        if (n == 1) x1[0] = 3;
        memcpy(x2, x1, (size_t)rows * n * sizeof(float));
        mc_softmax_rows_ref(x1, rows, n);
        mc_softmax_rows(x2, rows, n);
        double e = test_rel_err(x2, x1, (size_t)rows * n);
        CHECK(e <= TOL, "[%s t%d] softmax cols=%d: err %g", g_set, g_nt, n, e);
        free(x1), free(x2);
    }
}

static void test_act(void) {
    int n = 1031;
    float *x = test_rand_buf(n, 12);
    x[0] = 0, x[1] = -0.0f, x[2] = 100, x[3] = -100, x[4] = 1e-7f, x[5] = -30, x[6] = 88, x[7] = -88;
    float *y1 = malloc(n * sizeof(float)), *y2 = malloc(n * sizeof(float));
    for (int act = MC_ACT_NONE; act <= MC_ACT_SIGMOID; act++) {
        for (int len = 0; len <= n; len += (len < 20 ? 1 : 337)) {
            memcpy(y1, x, n * sizeof(float));
            memcpy(y2, x, n * sizeof(float));
            mc_act_apply_ref(y1, (size_t)len, (mc_act)act);
            mc_act_apply(y2, (size_t)len, (mc_act)act);
            int bad = 0;
            for (int i = 0; i < n; i++) {
                double d = fabs((double)y2[i] - y1[i]);
                if (!(d <= 1e-6 + 2e-6 * fabs(y1[i]))) bad++;
            }
            CHECK(bad == 0, "[%s t%d] act %d len %d: %d elements off", g_set, g_nt, act, len, bad);
        }
    }
    /* large arrays take the threaded path */
    size_t big = 300007;
    float *bx = test_rand_buf(big, 6), *b1 = malloc(big * sizeof(float)), *b2 = malloc(big * sizeof(float));
    memcpy(b1, bx, big * sizeof(float));
    memcpy(b2, bx, big * sizeof(float));
    mc_act_apply_ref(b1, big, MC_ACT_GELU);
    mc_act_apply(b2, big, MC_ACT_GELU);
    CHECK(test_rel_err(b2, b1, big) <= TOL, "[%s t%d] act gelu big", g_set, g_nt);
    free(bx), free(b1), free(b2);
    float g[3] = {INFINITY, NAN, 1e30f};
    mc_act_apply(g, 3, MC_ACT_GELU);
    CHECK(g[0] == INFINITY && g[1] != g[1] && g[2] == 1e30f, "[%s] gelu(inf, nan, 1e30) = %g %g %g", g_set, g[0], g[1], g[2]);
    float nanv = NAN;
    mc_act_apply(&nanv, 1, MC_ACT_SIGMOID);
    CHECK(nanv != nanv, "[%s] sigmoid(NaN) stays NaN", g_set);
    free(x), free(y1), free(y2);
}

/* Exact GELU of the SIMD sets against x/2 erfc(-x/sqrt 2) in double, on
 * every 1021st float with |x| <= 10 (about 2.1M inputs): at most GELU_ULP
 * units in the last place where |gelu(x)| >= 1e-3 or |x| < 1 (normal
 * results), absolute error at most 1e-9 in the negative tail below that
 * (an exhaustive run over all 2.2e9 floats in [-10, 10] is quoted in
 * docs/performance.md).  The scalar set is the erff-based oracle itself. */
#define GELU_ULP 5.0
static void test_gelu_accuracy(void) {
    if (!strcmp(g_set, "scalar")) return;
    enum { CH = 4096, STRIDE = 1021 };
    float xs[CH], ys[CH];
    const uint32_t lim = 0x41200000u;   /* 10.0f */
    double max_ulp = 0, max_abs = 0, ulp_x = 0, abs_x = 0;
    int n = 0;
    for (int sg = 0; sg < 2; sg++)
        for (uint64_t u = 0; u <= lim + (uint64_t)STRIDE; u += STRIDE) {
            int last = u > lim;
            if (!last) {
                uint32_t b = (uint32_t)u | (sg ? 0x80000000u : 0);
                memcpy(&xs[n++], &b, 4);
            }
            if (n == CH || (last && n)) {
                memcpy(ys, xs, sizeof xs);
                mc_act_apply(ys, (size_t)n, MC_ACT_GELU);
                for (int i = 0; i < n; i++) {
                    double x = xs[i], tr = 0.5 * x * erfc(-x / sqrt(2.0)), e = fabs(ys[i] - tr);
                    if (fabs(tr) >= 1e-3 || (fabs(x) < 1 && fabs(tr) >= 1.17549435e-38)) {
                        int ex;
                        frexp(tr, &ex);
                        double ul = e / ldexp(1.0, ex - 24);
                        if (!(ul <= max_ulp)) max_ulp = ul, ulp_x = x;
                    } else if (!(e <= max_abs)) {
                        max_abs = e, abs_x = x;
                    }
                }
                n = 0;
            }
        }
    CHECK(max_ulp <= GELU_ULP, "[%s] gelu: %.2f ulp at x = %.9g (bound %g)", g_set, max_ulp, ulp_x, GELU_ULP);
    CHECK(max_abs <= 1e-9, "[%s] gelu tail: abs error %.3g at x = %.9g", g_set, max_abs, abs_x);
    float sp[6] = {-INFINITY, -1e30f, -20.0f, 20.0f, -0.0f, -NAN};
    mc_act_apply(sp, 6, MC_ACT_GELU);
    CHECK(sp[0] == -INFINITY && fabsf(sp[1]) < 1e-5f && fabsf(sp[2]) < 1e-30f && sp[3] == 20.0f && sp[4] == 0 &&
              sp[5] != sp[5],
          "[%s] gelu(-inf, -1e30, -20, 20, -0, -nan) = %g %g %g %g %g %g", g_set, sp[0], sp[1], sp[2], sp[3],
          sp[4], sp[5]);
}

static void test_attention(void) {
    static const int cfg[][3] = {{1, 1, 8}, {7, 3, 8}, {64, 4, 32}, {77, 3, 64}, {13, 2, 5}};
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++)
        for (int causal = 0; causal < 2; causal++) {
            int t = cfg[i][0], heads = cfg[i][1], hd = cfg[i][2], od = heads * hd, ld = 3 * od + 1;
            float *qkv = test_rand_buf((size_t)t * ld, 1.5f);
            float *o1 = malloc((size_t)t * od * sizeof(float)), *o2 = malloc((size_t)t * od * sizeof(float));
            float *s = malloc((size_t)t * t * sizeof(float));
            mc_attention_ref(qkv, qkv + od, qkv + 2 * od, ld, t, heads, hd, causal, o1, s);
            mc_attention(qkv, qkv + od, qkv + 2 * od, ld, t, heads, hd, causal, o2, s);
            double e = test_rel_err(o2, o1, (size_t)t * od);
            CHECK(e <= TOL, "[%s t%d] attention t=%d heads=%d hd=%d causal=%d: err %g", g_set, g_nt, t, heads,
                  hd, causal, e);
            free(qkv), free(o1), free(o2), free(s);
        }
}

static void test_fused_add(void) {
    static const int sz[][3] = {{1, 7, 13}, {77, 64, 129}, {200, 300, 70}, {13, 129, 1}};
    for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++)
        for (int hb = 0; hb < 2; hb++) {
            int m = sz[i][0], k = sz[i][1], n = sz[i][2];
            float *x = test_rand_buf((size_t)m * k, 1), *w = test_rand_buf((size_t)n * k, 0.5f), *b = test_rand_buf(n, 1);
            float *y1 = test_rand_buf((size_t)m * n, 1), *y2 = malloc((size_t)m * n * sizeof(float));
            memcpy(y2, y1, (size_t)m * n * sizeof(float));
            mc_linear_add_ref(x, w, hb ? b : NULL, m, k, n, y1);
            mc_linear_add(x, w, hb ? b : NULL, m, k, n, y2);
            double e = test_rel_err(y2, y1, (size_t)m * n);
            CHECK(e <= TOL, "[%s t%d] linear_add m=%d k=%d n=%d: err %g", g_set, g_nt, m, k, n, e);
            /* as a pointwise conv: 2 images, cin = k, cout = n, hw = m */
            float *px = test_rand_buf((size_t)2 * k * m, 1), *p1 = test_rand_buf((size_t)2 * n * m, 1);
            float *p2 = malloc((size_t)2 * n * m * sizeof(float));
            memcpy(p2, p1, (size_t)2 * n * m * sizeof(float));
            mc_pointwise_add_ref(w, hb ? b : NULL, px, 2, k, n, m, p1);
            mc_pointwise_add(w, hb ? b : NULL, px, 2, k, n, m, p2);
            e = test_rel_err(p2, p1, (size_t)2 * n * m);
            CHECK(e <= TOL, "[%s t%d] pointwise_add hw=%d cin=%d cout=%d: err %g", g_set, g_nt, m, k, n, e);
            free(x), free(w), free(b), free(y1), free(y2), free(px), free(p1), free(p2);
        }
}

static void test_attention_batch(void) {
    static const int cfg[][4] = {{3, 7, 3, 8}, {2, 64, 4, 32}, {4, 77, 8, 64}, {1, 13, 2, 5}};
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++)
        for (int causal = 0; causal < 2; causal++) {
            int ns = cfg[i][0], t = cfg[i][1], heads = cfg[i][2], hd = cfg[i][3], od = heads * hd, ld = 3 * od;
            size_t rows = (size_t)ns * t;
            float *qkv = test_rand_buf(rows * ld, 1.5f);
            float *o1 = malloc(rows * od * sizeof(float)), *o2 = malloc(rows * od * sizeof(float));
            float *s = malloc((size_t)t * t * sizeof(float));
            for (int q = 0; q < ns; q++) {
                const float *b = qkv + (size_t)q * t * ld;
                mc_attention_ref(b, b + od, b + 2 * od, ld, t, heads, hd, causal, o1 + (size_t)q * t * od, s);
            }
            mc_attention_batch(qkv, qkv + od, qkv + 2 * od, ld, ns, t, heads, hd, causal, o2);
            double e = test_rel_err(o2, o1, rows * od);
            CHECK(e <= TOL, "[%s t%d] attention_batch n=%d t=%d heads=%d hd=%d causal=%d: err %g", g_set, g_nt,
                  ns, t, heads, hd, causal, e);
            free(qkv), free(o1), free(o2), free(s);
        }
}

/* The AVX-512 set's geometry (14 x 32 tiles, its cache blocks, the AVX2 A
 * packer) cannot run here without AVX-512; drive the same blocked driver
 * with a plain C micro-kernel of that shape instead. */
static void ukr_c_14x32(int kc, const float *a, const float *b, float *c, size_t ldc, float alpha,
                        float beta) {
    float acc[14][32] = {{0}};
    for (int p = 0; p < kc; p++, a += 14, b += 32)
        for (int i = 0; i < 14; i++)
            for (int j = 0; j < 32; j++) acc[i][j] += a[i] * b[j];
    for (int i = 0; i < 14; i++)
        for (int j = 0; j < 32; j++) {
            float *cv = c + i * ldc + j;
            *cv = beta == 0 ? alpha * acc[i][j] : alpha * acc[i][j] + beta * *cv;
        }
}

static void test_geometry_14x32(void) {
    mc_kset ks;
    mc_kset_portable(&ks);
    ks.mr = 14, ks.nr = 32, ks.mc = 14 * 12, ks.kc = 256, ks.nc = 32 * 64;
    ks.ukr = ukr_c_14x32;
    mc_kset best = *mc_kset_get();
    if (best.pack_a_rows) ks.pack_a_rows = best.pack_a_rows;
    static const int sz[][3] = {{1, 1, 1}, {14, 32, 8}, {15, 33, 9}, {37, 65, 129}, {200, 70, 300}, {13, 2100, 20}};
    for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int nt = 1; nt <= 2; nt++) {
                    int m = sz[i][0], n = sz[i][1], k = sz[i][2];
                    int lda = ta ? m : k, ldb = tb ? k : n;
                    float *a = test_rand_buf((size_t)m * k, 1), *b = test_rand_buf((size_t)k * n, 1), *c1 = test_rand_buf((size_t)m * n, 1);
                    float *c2 = malloc((size_t)m * n * sizeof(float)), *bias = test_rand_buf(m, 1);
                    memcpy(c2, c1, (size_t)m * n * sizeof(float));
                    mc_gemm_ref(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 0.25f, c1, n);
                    for (int r = 0; r < m; r++)
                        for (int j = 0; j < n; j++) c1[(size_t)r * n + j] += bias[r];
                    mc_act_apply_ref(c1, (size_t)m * n, MC_ACT_GELU);
                    mc_gemm_ex(&ks, nt, ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 0.25f, c2, n, bias, NULL, MC_ACT_GELU);
                    double e = test_rel_err(c2, c1, (size_t)m * n);
                    CHECK(e <= TOL, "[14x32 geometry t%d] ta=%d tb=%d m=%d n=%d k=%d: err %g", nt, ta, tb, m, n, k, e);
                    free(a), free(b), free(c1), free(c2), free(bias);
                }
}

/* Weights pre-packed at load (mc_qmat_pack) for the set in use, and packed
 * for another set (then ignored: the kernels pack per call): linear (B),
 * linear_add, pointwise_add and dense convs (A), over several K blocks and
 * partial panels. */
static void test_prepacked(void) {
    static const int sz[][3] = {{1, 7, 13}, {5, 300, 37}, {77, 600, 70}, {200, 513, 33}, {64, 64, 129}};
    mc_kset other;
    mc_kset_portable(&other);
    other.kc = 200;   /* never the set in use: the packed copy must be ignored */
    for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++)
        for (int which = 0; which < 2; which++) {
            const mc_kset *ks = which ? &other : mc_kset_get();
            int m = sz[i][0], k = sz[i][1], n = sz[i][2];
            float *x = test_rand_buf((size_t)m * k, 1), *w = test_rand_buf((size_t)n * k, 0.5f), *b = test_rand_buf(n, 1);
            float *y1 = test_rand_buf((size_t)m * n, 1), *y2 = malloc((size_t)m * n * sizeof(float));
            mc_qmat ql, qc;
            float *pl = malloc(mc_qmat_packed_floats(ks, 1, n, k) * sizeof(float));
            float *pc = malloc(mc_qmat_packed_floats(ks, 0, n, k) * sizeof(float));
            mc_qmat_pack(ks, 1, w, n, k, pl, &ql);
            mc_qmat_pack(ks, 0, w, n, k, pc, &qc);
            mc_linear_ref(x, w, b, m, k, n, y1, MC_ACT_GELU);
            mc_linear_q(x, w, &ql, b, m, k, n, y2, MC_ACT_GELU);
            double e = test_rel_err(y2, y1, (size_t)m * n);
            CHECK(e <= TOL, "[%s t%d] packed(%d) linear m=%d k=%d n=%d: err %g", g_set, g_nt, which, m, k, n, e);
            memcpy(y2, y1, (size_t)m * n * sizeof(float));
            mc_linear_add_ref(x, w, b, m, k, n, y1);
            mc_linear_add_q(x, w, &ql, b, m, k, n, y2);
            e = test_rel_err(y2, y1, (size_t)m * n);
            CHECK(e <= TOL, "[%s t%d] packed(%d) linear_add m=%d k=%d n=%d: err %g", g_set, g_nt, which, m, k, n, e);
            /* as a pointwise conv: 2 images, cin = k, cout = n, hw = m */
            float *px = test_rand_buf((size_t)2 * k * m, 1), *p1 = test_rand_buf((size_t)2 * n * m, 1);
            float *p2 = malloc((size_t)2 * n * m * sizeof(float));
            memcpy(p2, p1, (size_t)2 * n * m * sizeof(float));
            mc_pointwise_add_ref(w, b, px, 2, k, n, m, p1);
            mc_pointwise_add_q(w, &qc, b, px, 2, k, n, m, p2);
            e = test_rel_err(p2, p1, (size_t)2 * n * m);
            CHECK(e <= TOL, "[%s t%d] packed(%d) pointwise_add hw=%d cin=%d cout=%d: err %g", g_set, g_nt, which, m, k,
                  n, e);
            mc_conv2d_desc d = {.cin = k, .cout = n, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .groups = 1};
            mc_conv2d_ref(&d, w, b, px, 2, 1, m, p1, MC_ACT_GELU);
            mc_conv2d_q(&d, w, &qc, b, px, 2, 1, m, p2, MC_ACT_GELU);
            e = test_rel_err(p2, p1, (size_t)2 * n * m);
            CHECK(e <= TOL, "[%s t%d] packed(%d) conv1x1 hw=%d cin=%d cout=%d: err %g", g_set, g_nt, which, m, k, n, e);
            if (k % 9 == 0) {   /* the same weights as a 3x3 conv over k / 9 channels, stride 2, padding 1 */
                int cin = k / 9, hh = 9, ww = 11;
                mc_conv2d_desc d3 = {.cin = cin, .cout = n, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .ph = 1, .pw = 1, .groups = 1};
                int oh = mc_conv_out(hh, 3, 2, 1), ow = mc_conv_out(ww, 3, 2, 1);
                float *cx = test_rand_buf((size_t)cin * hh * ww, 1), *c1 = malloc((size_t)n * oh * ow * sizeof(float));
                float *c2 = malloc((size_t)n * oh * ow * sizeof(float));
                mc_conv2d_ref(&d3, w, b, cx, 1, hh, ww, c1, MC_ACT_NONE);
                mc_conv2d_q(&d3, w, &qc, b, cx, 1, hh, ww, c2, MC_ACT_NONE);
                e = test_rel_err(c2, c1, (size_t)n * oh * ow);
                CHECK(e <= TOL, "[%s t%d] packed(%d) conv3x3 cin=%d cout=%d: err %g", g_set, g_nt, which, cin, n, e);
                free(cx), free(c1), free(c2);
            }
            free(x), free(w), free(b), free(y1), free(y2), free(px), free(p1), free(p2), free(pl), free(pc);
        }
}

/* Kernel-set geometries a copy may be packed for: every set compiled in
 * (whether or not this CPU runs it), the 14 x 32 shape, and odd cache blocks. */
static int pack_geometries(mc_kset *g, int max) {
    int n = 0;
    mc_kset_portable(&g[n++]);
    if (n < max && mc_kset_avx2(&g[n])) n++;
    if (n < max && mc_kset_avx512(&g[n])) n++;
    if (n < max && mc_kset_neon(&g[n])) n++;
    if (n < max) { mc_kset_portable(&g[n]); g[n].mr = 14, g[n].nr = 32, g[n].kc = 256, n++; }
    if (n < max) { mc_kset_portable(&g[n]); g[n].mr = 5, g[n].nr = 3, g[n].kc = 7, n++; }
    if (n < max) { mc_kset_portable(&g[n]); g[n].kc = 200, n++; }
    return n;
}

/* mc_qmat_unpack inverts mc_qmat_pack exactly (whole matrix and windows
 * crossing panel and K-block edges), for A and B panels of every geometry. */
static void test_pack_unpack(void) {
    static const int sz[][2] = {{1, 1}, {7, 13}, {13, 7}, {33, 257}, {65, 513}, {17, 1031}, {100, 3}};
    mc_kset g[8];
    int ng = pack_geometries(g, 8);
    for (int gi = 0; gi < ng; gi++)
        for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++)
            for (int b = 0; b < 2; b++) {
                int rows = sz[i][0], cols = sz[i][1];
                float *w = test_rand_buf((size_t)rows * cols, 1), *u = test_rand_buf((size_t)rows * cols, 1);
                size_t nf = mc_qmat_packed_floats(&g[gi], b, rows, cols);
                float *pk = malloc(nf * sizeof(float));
                mc_qmat q;
                mc_qmat_pack(&g[gi], b, w, rows, cols, pk, &q);
                q.data = NULL;
                mc_qmat_unpack(&q, 0, rows, 0, cols, u, (size_t)cols);
                CHECK(!memcmp(u, w, (size_t)rows * cols * sizeof(float)), "unpack %dx%d (mr %d nr %d kc %d, b=%d)",
                      rows, cols, g[gi].mr, g[gi].nr, g[gi].kc, b);
                /* a window [r0, r0 + nr) x [c0, c0 + nc) */
                int r0 = rows / 3, c0 = cols / 3, nr = rows - r0 - rows / 5, nc = cols - c0 - cols / 4;
                if (nr > 0 && nc > 0) {
                    memset(u, 0, (size_t)nr * nc * sizeof(float));
                    mc_qmat_unpack(&q, r0, nr, c0, nc, u, (size_t)nc);
                    int ok = 1;
                    for (int r = 0; r < nr; r++)
                        ok &= !memcmp(u + (size_t)r * nc, w + (size_t)(r0 + r) * cols + c0, (size_t)nc * sizeof(float));
                    CHECK(ok, "unpack window %dx%d at (%d, %d) of %dx%d (kc %d, b=%d)", nr, nc, r0, c0, rows, cols,
                          g[gi].kc, b);
                }
                float v;   /* rows read back one element at a time */
                mc_qmat_row_ref(&q, rows - 1, cols - 1, 1, &v);
                CHECK(v == w[(size_t)rows * cols - 1], "row_ref of a packed-only matrix");
                free(w), free(u), free(pk);
            }
}

/* Bitwise equality of two buffers (NaN-free data). */
static int same(const float *a, const float *b, size_t n) { return !memcmp(a, b, n * sizeof(float)); }

/* Weights held only as a packed copy (q.data and w NULL, as a float32 model
 * holds them after load): for a copy packed for the set in use and for one
 * packed for another set, every kernel gives exactly what it gives on the
 * plain matrix (exact: checked bit for bit; without scratch: against the
 * reference). */
static void test_packed_only(int exact) {
    static const int sz[][3] = {{1, 7, 13}, {3, 300, 37}, {4, 64, 70}, {5, 300, 37}, {77, 600, 70}, {64, 64, 129}};
    mc_kset other;
    mc_kset_portable(&other);
    other.kc = 200;
    for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++)
        for (int which = 0; which < 2; which++) {
            const mc_kset *ks = which ? &other : mc_kset_get();
            int m = sz[i][0], k = sz[i][1], n = sz[i][2];
            float *x = test_rand_buf((size_t)m * k, 1), *w = test_rand_buf((size_t)n * k, 0.5f), *b = test_rand_buf(n, 1);
            float *y1 = test_rand_buf((size_t)m * n, 1), *y2 = malloc((size_t)m * n * sizeof(float));
            mc_qmat ql, qc, ql0, qc0;   /* ql0 / qc0: packed only */
            float *pl = malloc(mc_qmat_packed_floats(ks, 1, n, k) * sizeof(float));
            float *pc = malloc(mc_qmat_packed_floats(ks, 0, n, k) * sizeof(float));
            mc_qmat_pack(ks, 1, w, n, k, pl, &ql);
            mc_qmat_pack(ks, 0, w, n, k, pc, &qc);
            ql0 = ql, qc0 = qc;
            ql0.data = qc0.data = NULL;
            double e;
#define CMP(y, ref, cnt, what)                                                                                 \
    do {                                                                                                       \
        if (exact) {                                                                                           \
            CHECK(same(y, ref, cnt), "[%s t%d] packed-only(%d) %s m=%d k=%d n=%d differs", g_set, g_nt, which, \
                  what, m, k, n);                                                                              \
        } else {                                                                                               \
            e = test_rel_err(y, ref, cnt);                                                                          \
            CHECK(e <= TOL, "[%s t%d] packed-only(%d) %s m=%d k=%d n=%d: err %g", g_set, g_nt, which, what, m, \
                  k, n, e);                                                                                    \
        }                                                                                                      \
    } while (0)
            if (exact) mc_linear_q(x, w, &ql, b, m, k, n, y1, MC_ACT_GELU);
            else mc_linear_ref(x, w, b, m, k, n, y1, MC_ACT_GELU);
            mc_linear_q(x, NULL, &ql0, b, m, k, n, y2, MC_ACT_GELU);
            CMP(y2, y1, (size_t)m * n, "linear");
            memcpy(y2, y1, (size_t)m * n * sizeof(float));
            if (exact) mc_linear_add_q(x, w, &ql, b, m, k, n, y1);
            else mc_linear_add_ref(x, w, b, m, k, n, y1);
            mc_linear_add_q(x, NULL, &ql0, b, m, k, n, y2);
            CMP(y2, y1, (size_t)m * n, "linear_add");
            float *px = test_rand_buf((size_t)2 * k * m, 1), *p1 = test_rand_buf((size_t)2 * n * m, 1);
            float *p2 = malloc((size_t)2 * n * m * sizeof(float));
            memcpy(p2, p1, (size_t)2 * n * m * sizeof(float));
            if (exact) mc_pointwise_add_q(w, &qc, b, px, 2, k, n, m, p1);
            else mc_pointwise_add_ref(w, b, px, 2, k, n, m, p1);
            mc_pointwise_add_q(NULL, &qc0, b, px, 2, k, n, m, p2);
            CMP(p2, p1, (size_t)2 * n * m, "pointwise_add");
            mc_conv2d_desc d = {.cin = k, .cout = n, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .groups = 1};
            if (exact) mc_conv2d_q(&d, w, &qc, b, px, 2, 1, m, p1, MC_ACT_GELU);
            else mc_conv2d_ref(&d, w, b, px, 2, 1, m, p1, MC_ACT_GELU);
            mc_conv2d_q(&d, NULL, &qc0, b, px, 2, 1, m, p2, MC_ACT_GELU);
            CMP(p2, p1, (size_t)2 * n * m, "conv1x1");
            if (k % 3 == 0) {   /* the same weights as a 3x3 conv over k / 3 channels, kernel 1x3, stride 2, padding 1 */
                int cin = k / 3, hh = 5, ww = 11;
                mc_conv2d_desc d3 = {.cin = cin, .cout = n, .kh = 1, .kw = 3, .sh = 2, .sw = 2, .ph = 0, .pw = 1, .groups = 1};
                int oh = mc_conv_out(hh, 1, 2, 0), ow = mc_conv_out(ww, 3, 2, 1);
                float *cx = test_rand_buf((size_t)cin * hh * ww, 1), *c1 = malloc((size_t)n * oh * ow * sizeof(float));
                float *c2 = malloc((size_t)n * oh * ow * sizeof(float));
                if (exact) mc_conv2d_q(&d3, w, &qc, b, cx, 1, hh, ww, c1, MC_ACT_NONE);
                else mc_conv2d_ref(&d3, w, b, cx, 1, hh, ww, c1, MC_ACT_NONE);
                mc_conv2d_q(&d3, NULL, &qc0, b, cx, 1, hh, ww, c2, MC_ACT_NONE);
                CMP(c2, c1, (size_t)n * oh * ow, "conv1x3");
                free(cx), free(c1), free(c2);
            }
#undef CMP
            free(x), free(w), free(b), free(y1), free(y2), free(px), free(p1), free(p2), free(pl), free(pc);
        }
}

int main(void) {
    test_seed(12345);
    const char *best = mc_kernels_name();
    int lvl = mc_cpu_level();
#if defined(__aarch64__)
    const char *want = lvl == 1 ? "neon" : "scalar";
#else
    const char *want = lvl == 2 ? "avx512" : lvl == 1 ? "avx2" : "scalar";
#endif
    CHECK(!strcmp(best, want) || getenv("MC_KERNELS"),
          "kernel set %s for cpu level %d", best, lvl);
    printf("best kernel set: %s (cpu level %d)\n", best, lvl);
    for (int s = 0; s < TEST_NSETS; s++) {
        if (!test_use_set(s)) continue;
        g_set = test_set_names[s];
        CHECK(!strcmp(mc_kernels_name(), g_set), "forced %s", g_set);
        for (g_nt = 1; g_nt <= 2; g_nt++) {
            mc_kernels_set_threads(g_nt);
            CHECK(mc_kernels_get_threads() == g_nt, "threads");
            test_gemm();
            test_linear();
            test_conv();
            test_norms();
            test_act();
            if (g_nt == 1) test_gelu_accuracy();
            test_attention();
            test_attention_batch();
            test_fused_add();
            test_prepacked();
            test_packed_only(1);
        }
    }
    test_use_set(-1);
    CHECK(strcmp(mc_kernels_name(), "avx512-emulated") != 0, "emulated set left in use");
    /* without scratch memory every kernel takes its no-scratch path and must
     * still agree with the reference */
    g_set = "no-scratch";
    mc_scratch_set_limit(0);
    for (g_nt = 1; g_nt <= 2; g_nt++) {
        mc_kernels_set_threads(g_nt);
        test_gemm();
        test_linear();
        test_conv();
        test_attention();
        test_packed_only(0);
    }
    mc_scratch_set_limit((size_t)-1);
    test_pack_unpack();
    test_geometry_14x32();
    mc_kernels_set_threads(0);
    CHECK(mc_kernels_get_threads() == 0, "threads 0 = all cores");
    /* a per-thread override (what contexts set around a forward) */
    mc_kernels_set_threads(2);
    int prev = mc_kernels_set_local_threads(1);
    CHECK(prev == -1 && mc_kernels_get_threads() == 1, "local thread override");
    mc_kernels_set_local_threads(prev);
    CHECK(mc_kernels_get_threads() == 2, "local override cleared");
    mc_kernels_set_threads(0);
    return test_summary("test_kernels");
}
