/*
 * test_train_kernels.c - every fast training kernel (train/kernels.c) against
 * its scalar _ref oracle (train/kernels_ref.c) on odd shapes: convolutions
 * (1x1, strided, padded, grouped, depthwise with multiplier), BatchNorm,
 * linear, projection matmul, LayerNorm, activations, attention (causal and
 * not), forward and backward with gradients accumulating onto non-zero
 * buffers; for each kernel set this CPU can run and for 1 and 2 threads, and
 * the 2-thread results bit for bit equal to the 1-thread ones (each kernel
 * has a shape above the 4 Mflop at which the kernels start sharing work).
 */
#include "test.h"

#include "kernels/gemm.h"
#include "kernel_sets.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"
#include "train/ckpt.h"
#include "train/kernels.h"
#include "train/trainer.h"

#include <stdint.h>

static float *copy_buf(const float *a, size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    memcpy(p, a, n * sizeof(float));
    return p;
}


static const char *g_set;
#define TOL 1e-5

/* Runs the fast version at 1 and 2 threads: outputs out[0..nout) (sizes sz)
 * compared with the reference outputs and between the thread counts. */
typedef struct outs {
    int n;
    const char *name[6];
    float *ref[6], *init[6];
    size_t sz[6];
} outs;

static void outs_add(outs *o, const char *name, size_t sz, float *ref_result, const float *init) {
    o->name[o->n] = name;
    o->sz[o->n] = sz;
    o->ref[o->n] = ref_result;
    o->init[o->n] = copy_buf(init, sz);
    o->n++;
}

/* got[nt - 1][i]: fresh copies of the initial buffers for the fast runs. */
static void outs_fresh(const outs *o, float *got[6]) {
    for (int i = 0; i < o->n; i++) got[i] = copy_buf(o->init[i], o->sz[i]);
}

static void outs_check(const outs *o, float *got1[6], float *got2[6], const char *what) {
    for (int i = 0; i < o->n; i++) {
        double e = test_rel_err(got1[i], o->ref[i], o->sz[i]);
        CHECK(e <= TOL, "[%s] %s %s: err %g", g_set, what, o->name[i], e);
        CHECK(memcmp(got1[i], got2[i], o->sz[i] * sizeof(float)) == 0, "[%s] %s %s: 1 vs 2 threads differ",
              g_set, what, o->name[i]);
        free(got1[i]), free(got2[i]), free(o->ref[i]), free(o->init[i]);
    }
}

/* ---------------------------------------------------------------- conv2d */

static void test_conv_one(int n, int cin, int cout, int groups, int kh, int kw, int sh, int sw, int ph,
                          int pw, int h, int w, int bias) {
    mc_conv2d_desc d = {cin, cout, kh, kw, sh, sw, ph, pw, groups};
    int oh = mc_conv_out(h, kh, sh, ph), ow = mc_conv_out(w, kw, sw, pw);
    size_t nx = (size_t)n * cin * h * w, ny = (size_t)n * cout * oh * ow;
    size_t nw = (size_t)cout * (cin / groups) * kh * kw;
    char what[160];
    snprintf(what, sizeof what, "conv n=%d cin=%d cout=%d g=%d k=%dx%d s=%d,%d p=%d,%d in=%dx%d b=%d", n, cin, cout,
             groups, kh, kw, sh, sw, ph, pw, h, w, bias);
    float *x = test_rand_buf(nx, 1), *wt = test_rand_buf(nw, 0.5f), *b = bias ? test_rand_buf(cout, 1) : NULL;
    float *dy = test_rand_buf(ny, 1), *dx0 = test_rand_buf(nx, 1), *dw0 = test_rand_buf(nw, 1), *db0 = test_rand_buf(cout, 1);

    float *yr = malloc(ny * sizeof(float));
    mc_train_conv2d_forward_ref(&d, x, n, h, w, wt, b, yr);
    float *dxr = copy_buf(dx0, nx), *dwr = copy_buf(dw0, nw), *dbr = copy_buf(db0, cout);
    mc_train_conv2d_backward_ref(&d, x, n, h, w, wt, dy, dxr, dwr, dbr);

    float *zero = calloc(ny, sizeof(float));
    outs o = {0};
    outs_add(&o, "y", ny, yr, zero);
    outs_add(&o, "dx", nx, dxr, dx0);
    outs_add(&o, "dw", nw, dwr, dw0);
    outs_add(&o, "db", cout, dbr, db0);
    float *got[2][6];
    for (int nt = 1; nt <= 2; nt++) {
        mc_kernels_set_threads(nt);
        float **g = got[nt - 1];
        outs_fresh(&o, g);
        mc_train_conv2d_forward(&d, x, n, h, w, wt, b, g[0]);
        mc_train_conv2d_backward(&d, x, n, h, w, wt, dy, g[1], g[2], g[3]);
    }
    outs_check(&o, got[0], got[1], what);

    /* only some gradients wanted */
    float *dwr2 = copy_buf(dw0, nw), *dw2 = copy_buf(dw0, nw);
    mc_train_conv2d_backward_ref(&d, x, n, h, w, wt, dy, NULL, dwr2, NULL);
    mc_train_conv2d_backward(&d, x, n, h, w, wt, dy, NULL, dw2, NULL);
    CHECK(test_rel_err(dw2, dwr2, nw) <= TOL, "[%s] %s dw alone", g_set, what);
    free(dwr2), free(dw2), free(zero);
    free(x), free(wt), free(b), free(dy), free(dx0), free(dw0), free(db0);
}

static void test_conv(void) {
    static const int c[][13] = {
        /* n cin cout g kh kw sh sw ph pw h w bias */
        {2, 5, 7, 1, 1, 1, 1, 1, 0, 0, 9, 7, 1},     /* 1x1: GEMM on the image */
        {3, 6, 4, 1, 1, 1, 2, 2, 0, 0, 9, 8, 0},     /* 1x1 strided */
        {2, 3, 8, 1, 3, 3, 2, 2, 1, 1, 17, 13, 1},   /* stem-like */
        {2, 8, 6, 2, 3, 3, 1, 1, 1, 1, 7, 9, 1},     /* grouped */
        {1, 9, 12, 3, 2, 3, 1, 2, 0, 1, 8, 11, 0},   /* asymmetric kernel */
        {2, 6, 6, 6, 3, 3, 1, 1, 1, 1, 11, 10, 1},   /* depthwise */
        {2, 5, 5, 5, 7, 7, 2, 2, 3, 3, 13, 15, 0},   /* depthwise 7x7 strided */
        {2, 4, 8, 4, 3, 3, 2, 1, 1, 0, 9, 12, 1},    /* depthwise with multiplier */
        {1, 7, 7, 7, 1, 11, 1, 1, 0, 5, 5, 23, 1},   /* depthwise 1 x 11 */
        {2, 16, 24, 1, 3, 3, 1, 1, 1, 1, 12, 12, 1}, /* dense 3x3 */
        {1, 3, 5, 1, 5, 5, 1, 1, 0, 0, 4, 4, 0},     /* kernel larger than the image after padding: 0 x 0 */
        /* large enough (> 4 Mflop) for the kernels to use 2 threads */
        {2, 32, 48, 1, 3, 3, 1, 1, 1, 1, 24, 23, 1}, /* dense 3x3 */
        {2, 64, 96, 1, 1, 1, 1, 1, 0, 0, 32, 31, 1}, /* 1x1 */
        {2, 32, 32, 32, 7, 7, 1, 1, 3, 3, 33, 32, 1}, /* depthwise 7x7 */
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        const int *p = c[i];
        if (mc_conv_out(p[10], p[4], p[6], p[8]) <= 0 || mc_conv_out(p[11], p[5], p[7], p[9]) <= 0) {
            /* an empty output leaves everything alone */
            mc_conv2d_desc d = {p[1], p[2], p[4], p[5], p[6], p[7], p[8], p[9], p[3]};
            float dw[1] = {3}, db[5] = {1, 2, 3, 4, 5};
            mc_train_conv2d_backward(&d, NULL, p[0], p[10], p[11], NULL, NULL, NULL, NULL, db);
            CHECK(db[4] == 5 && dw[0] == 3, "[%s] empty conv", g_set);
            continue;
        }
        test_conv_one(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12]);
    }
}

/* ------------------------------------------------------------- batchnorm */

static void test_bn(void) {
    static const int s[][3] = {{2, 3, 1}, {3, 5, 7}, {4, 17, 33}, {2, 9, 300}, {4, 33, 8191}};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        int n = s[i][0], c = s[i][1], hw = s[i][2];
        size_t nx = (size_t)n * c * hw;
        char what[96];
        snprintf(what, sizeof what, "bn n=%d c=%d hw=%d", n, c, hw);
        float *x = test_rand_buf(nx, 2), *g = test_rand_buf(c, 1), *b = test_rand_buf(c, 1), *dy = test_rand_buf(nx, 1);
        for (size_t k = 0; k < nx; k++) x[k] += 0.5f;
        float *rm0 = test_rand_buf(c, 1), *rv0 = test_rand_buf(c, 1), *dx0 = test_rand_buf(nx, 1), *dg0 = test_rand_buf(c, 1),
              *db0 = test_rand_buf(c, 1);
        float *yr = malloc(nx * sizeof(float)), *mr = malloc(c * sizeof(float)), *sr = malloc(c * sizeof(float));
        float *rmr = copy_buf(rm0, c), *rvr = copy_buf(rv0, c);
        mc_train_bn_forward_ref(x, n, c, hw, g, b, 1e-5f, 0.1f, rmr, rvr, yr, mr, sr);
        float *dxr = copy_buf(dx0, nx), *dgr = copy_buf(dg0, c), *dbr = copy_buf(db0, c);
        mc_train_bn_backward_ref(x, n, c, hw, g, mr, sr, dy, dxr, dgr, dbr);

        float *zero = calloc(nx, sizeof(float));
        outs fo = {0}, bo = {0};
        outs_add(&fo, "y", nx, yr, zero);
        outs_add(&fo, "mean", c, mr, zero);
        outs_add(&fo, "rstd", c, sr, zero);
        outs_add(&fo, "running_mean", c, rmr, rm0);
        outs_add(&fo, "running_var", c, rvr, rv0);
        outs_add(&bo, "dx", nx, dxr, dx0);
        outs_add(&bo, "dg", c, dgr, dg0);
        outs_add(&bo, "db", c, dbr, db0);
        float *fg[2][6], *bg[2][6];
        for (int nt = 1; nt <= 2; nt++) {
            mc_kernels_set_threads(nt);
            float **f = fg[nt - 1], **bb = bg[nt - 1];
            outs_fresh(&fo, f);
            outs_fresh(&bo, bb);
            mc_train_bn_forward(x, n, c, hw, g, b, 1e-5f, 0.1f, f[3], f[4], f[0], f[1], f[2]);
            mc_train_bn_backward(x, n, c, hw, g, f[1], f[2], dy, bb[0], bb[1], bb[2]);
        }
        outs_check(&fo, fg[0], fg[1], what);
        outs_check(&bo, bg[0], bg[1], what);
        free(zero), free(x), free(g), free(b), free(dy), free(rm0), free(rv0), free(dx0), free(dg0), free(db0);
    }
}

/* ------------------------------------------------------- linear / matmul */

static void test_linear(void) {
    static const int s[][3] = {{1, 1, 1}, {7, 13, 5}, {33, 65, 17}, {130, 37, 70}, {5, 300, 9}, {130, 257, 131}};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        int m = s[i][0], k = s[i][1], n = s[i][2];
        size_t nx = (size_t)m * k, nw = (size_t)n * k, ny = (size_t)m * n;
        char what[96];
        float *x = test_rand_buf(nx, 1), *w = test_rand_buf(nw, 1), *b = test_rand_buf(n, 1), *dy = test_rand_buf(ny, 1);
        float *dx0 = test_rand_buf(nx, 1), *dw0 = test_rand_buf(nw, 1), *db0 = test_rand_buf(n, 1);
        float *zero = calloc(ny, sizeof(float));
        for (int bias = 0; bias <= 1; bias++) {
            snprintf(what, sizeof what, "linear m=%d k=%d n=%d bias=%d", m, k, n, bias);
            float *yr = malloc(ny * sizeof(float)), *dxr = copy_buf(dx0, nx), *dwr = copy_buf(dw0, nw),
                  *dbr = copy_buf(db0, n);
            mc_train_linear_forward_ref(x, w, bias ? b : NULL, m, k, n, yr);
            mc_train_linear_backward_ref(x, w, m, k, n, dy, dxr, dwr, bias ? dbr : NULL);
            outs o = {0};
            outs_add(&o, "y", ny, yr, zero);
            outs_add(&o, "dx", nx, dxr, dx0);
            outs_add(&o, "dw", nw, dwr, dw0);
            outs_add(&o, "db", n, dbr, db0);
            float *got[2][6];
            for (int nt = 1; nt <= 2; nt++) {
                mc_kernels_set_threads(nt);
                float **g = got[nt - 1];
                outs_fresh(&o, g);
                mc_train_linear_forward(x, w, bias ? b : NULL, m, k, n, g[0]);
                mc_train_linear_backward(x, w, m, k, n, dy, g[1], g[2], bias ? g[3] : NULL);
            }
            outs_check(&o, got[0], got[1], what);
        }
        /* projection matmul: p[k, n] */
        snprintf(what, sizeof what, "matmul m=%d k=%d n=%d", m, k, n);
        float *yr = malloc(ny * sizeof(float)), *dxr = copy_buf(dx0, nx), *dpr = copy_buf(dw0, nw);
        mc_train_matmul_forward_ref(x, w, m, k, n, yr);
        mc_train_matmul_backward_ref(x, w, m, k, n, dy, dxr, dpr);
        outs o = {0};
        outs_add(&o, "y", ny, yr, zero);
        outs_add(&o, "dx", nx, dxr, dx0);
        outs_add(&o, "dp", nw, dpr, dw0);
        float *got[2][6];
        for (int nt = 1; nt <= 2; nt++) {
            mc_kernels_set_threads(nt);
            float **g = got[nt - 1];
            outs_fresh(&o, g);
            mc_train_matmul_forward(x, w, m, k, n, g[0]);
            mc_train_matmul_backward(x, w, m, k, n, dy, g[1], g[2]);
        }
        outs_check(&o, got[0], got[1], what);
        free(zero), free(x), free(w), free(b), free(dy), free(dx0), free(dw0), free(db0);
    }
}

/* ------------------------------------------------------------- layernorm */

static void test_layernorm(void) {
    static const int s[][2] = {{1, 1}, {3, 7}, {77, 65}, {200, 33}, {1001, 513}};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        for (int aff = 0; aff <= 1; aff++) {
            int rows = s[i][0], dim = s[i][1];
            size_t nx = (size_t)rows * dim;
            char what[96];
            snprintf(what, sizeof what, "layernorm rows=%d dim=%d affine=%d", rows, dim, aff);
            float *x = test_rand_buf(nx, 3), *g = test_rand_buf(dim, 1), *b = test_rand_buf(dim, 1), *dy = test_rand_buf(nx, 1);
            float *dx0 = test_rand_buf(nx, 1), *dg0 = test_rand_buf(dim, 1), *db0 = test_rand_buf(dim, 1);
            float *yr = malloc(nx * sizeof(float)), *mr = malloc(rows * sizeof(float)),
                  *sr = malloc(rows * sizeof(float));
            mc_train_layernorm_forward_ref(x, rows, dim, aff ? g : NULL, aff ? b : NULL, 1e-5f, yr, mr, sr);
            float *dxr = copy_buf(dx0, nx), *dgr = copy_buf(dg0, dim), *dbr = copy_buf(db0, dim);
            mc_train_layernorm_backward_ref(x, rows, dim, aff ? g : NULL, mr, sr, dy, dxr, aff ? dgr : NULL,
                                            aff ? dbr : NULL);
            float *zero = calloc(nx, sizeof(float));
            outs o = {0};
            outs_add(&o, "y", nx, yr, zero);
            outs_add(&o, "mean", rows, mr, zero);
            outs_add(&o, "rstd", rows, sr, zero);
            outs_add(&o, "dx", nx, dxr, dx0);
            outs_add(&o, "dg", dim, dgr, dg0);
            outs_add(&o, "db", dim, dbr, db0);
            float *got[2][6];
            for (int nt = 1; nt <= 2; nt++) {
                mc_kernels_set_threads(nt);
                float **q = got[nt - 1];
                outs_fresh(&o, q);
                mc_train_layernorm_forward(x, rows, dim, aff ? g : NULL, aff ? b : NULL, 1e-5f, q[0], q[1], q[2]);
                mc_train_layernorm_backward(x, rows, dim, aff ? g : NULL, q[1], q[2], dy, q[3], aff ? q[4] : NULL,
                                            aff ? q[5] : NULL);
            }
            outs_check(&o, got[0], got[1], what);
            free(zero), free(x), free(g), free(b), free(dy), free(dx0), free(dg0), free(db0);
        }
}

/* ----------------------------------------------------------- activations */

static void test_act(void) {
    static const mc_act acts[] = {MC_ACT_RELU, MC_ACT_GELU, MC_ACT_QUICK_GELU, MC_ACT_SIGMOID, MC_ACT_NONE};
    /* the scalar derivatives against central differences of the scalar forwards (in double steps) */
    static const mc_act smooth[] = {MC_ACT_GELU, MC_ACT_QUICK_GELU, MC_ACT_SIGMOID};
    for (size_t a = 0; a < sizeof smooth / sizeof smooth[0]; a++) {
        double worst = 0;
        for (int i = 0; i <= 160; i++) {
            float x = -8.0f + 0.1f * (float)i, h = 1e-2f, xp[2] = {x + h, x - h}, yp[2], one = 1.0f, d = 0.0f;
            mc_train_act_forward_ref(xp, 2, smooth[a], yp);
            mc_train_act_backward_ref(&x, 1, smooth[a], &one, &d);
            double num = ((double)yp[0] - yp[1]) / ((double)xp[0] - xp[1]);
            double e = fabs(num - d);
            if (e > worst) worst = e;
        }
        CHECK(worst < 2e-3, "act %d: derivative off its central difference by %.3g", (int)smooth[a], worst);
    }
    static const size_t lens[] = {1, 31, 16385, 250007};
    for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++)
        for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
            size_t n = lens[l];
            char what[64];
            snprintf(what, sizeof what, "act %d n=%zu", (int)acts[a], n);
            float *x = test_rand_buf(n, 4), *dy = test_rand_buf(n, 1), *dx0 = test_rand_buf(n, 1), *zero = calloc(n, sizeof(float));
            x[0] = 0.0f;
            float *yr = malloc(n * sizeof(float)), *dxr = copy_buf(dx0, n);
            mc_train_act_forward_ref(x, n, acts[a], yr);
            mc_train_act_backward_ref(x, n, acts[a], dy, dxr);
            outs o = {0};
            outs_add(&o, "y", n, yr, zero);
            outs_add(&o, "dx", n, dxr, dx0);
            float *got[2][6];
            for (int nt = 1; nt <= 2; nt++) {
                mc_kernels_set_threads(nt);
                float **q = got[nt - 1];
                outs_fresh(&o, q);
                mc_train_act_forward(x, n, acts[a], q[0]);
                mc_train_act_backward(x, n, acts[a], dy, q[1]);
            }
            /* elementwise: the same operations, so exactly the same values */
            CHECK(memcmp(got[0][0], yr, n * sizeof(float)) == 0, "[%s] %s y not exact", g_set, what);
            CHECK(memcmp(got[0][1], dxr, n * sizeof(float)) == 0, "[%s] %s dx not exact", g_set, what);
            outs_check(&o, got[0], got[1], what);
            free(x), free(dy), free(dx0), free(zero);
        }
}

/* ------------------------------------------------------------- attention */

static void test_attention(void) {
    static const int s[][4] = {{1, 1, 1, 4}, {2, 7, 3, 5}, {3, 17, 2, 16}, {2, 77, 4, 8}, {1, 50, 1, 33}, {2, 77, 4, 32}};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        for (int causal = 0; causal <= 1; causal++) {
            int b = s[i][0], t = s[i][1], heads = s[i][2], hd = s[i][3], D = heads * hd;
            size_t nq = (size_t)b * t * 3 * D, no = (size_t)b * t * D, np = (size_t)b * heads * t * t;
            char what[96];
            snprintf(what, sizeof what, "attention b=%d t=%d heads=%d hd=%d causal=%d", b, t, heads, hd, causal);
            float *qkv = test_rand_buf(nq, 2), *dout = test_rand_buf(no, 1), *dq0 = test_rand_buf(nq, 1);
            float *zero = calloc(np > nq ? np : nq, sizeof(float));
            float *outr = malloc(no * sizeof(float)), *pr = malloc(np * sizeof(float)), *dqr = copy_buf(dq0, nq);
            mc_train_attention_forward_ref(qkv, b, t, heads, hd, causal, outr, pr);
            mc_train_attention_backward_ref(qkv, b, t, heads, hd, pr, dout, dqr);
            outs o = {0};
            outs_add(&o, "out", no, outr, zero);
            outs_add(&o, "probs", np, pr, zero);
            outs_add(&o, "dqkv", nq, dqr, dq0);
            float *got[2][6];
            for (int nt = 1; nt <= 2; nt++) {
                mc_kernels_set_threads(nt);
                float **q = got[nt - 1];
                outs_fresh(&o, q);
                mc_train_attention_forward(qkv, b, t, heads, hd, causal, q[0], q[1]);
                mc_train_attention_backward(qkv, b, t, heads, hd, q[1], dout, q[2]);
            }
            outs_check(&o, got[0], got[1], what);
            free(qkv), free(dout), free(dq0), free(zero);
        }
}

int main(void) {
    test_seed(987654321u);
    for (int s = 0; s < TEST_NSETS; s++) {
        if (!test_use_set(s)) continue;
        g_set = test_set_names[s];
        test_conv();
        test_bn();
        test_linear();
        test_layernorm();
        test_act();
        test_attention();
    }
    test_use_set(-1);
    mc_kernels_set_threads(0);
    return test_summary("test_train_kernels");
}
