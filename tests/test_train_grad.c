/*
 * test_train_grad.c - every training backward kernel against central finite
 * differences of L = sum(y * r) (r random) on small random shapes; the DR loss
 * gradient; AdamW against a hand-computed step; the lr schedule; the
 * parameter-group rule; the cancelling gradient of a 1x1 depthwise conv before
 * a batch-statistics BatchNorm against its closed form.
 */
#include "test.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"
#include "train/ckpt.h"
#include "train/kernels.h"
#include "train/trainer.h"

#include <stdint.h>

static uint64_t rng = 88172645463325252ull;
static float frand(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}
static float *rnd(size_t n, float s) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = frand() * s;
    return p;
}
static float *zeros(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

/* The function under test: writes y from the current inputs. */
typedef void (*fwd_fn)(void *ctx, float *y);

static double loss_of(fwd_fn f, void *ctx, float *y, const float *r, size_t ny) {
    f(ctx, y);
    double s = 0;
    for (size_t i = 0; i < ny; i++) s += (double)y[i] * r[i];
    return s;
}

/* Compares analytic gradient g of input x[0..n) with central differences. */
static void check_grad(const char *what, fwd_fn f, void *ctx, float *x, size_t n, const float *g,
                       float *y, const float *r, size_t ny, float h, float tol) {
    double maxn = 0, maxe = 0;
    size_t step = n > 64 ? n / 64 : 1, worst = 0;
    for (size_t i = 0; i < n; i += step) {
        float x0 = x[i];
        x[i] = x0 + h;
        double lp = loss_of(f, ctx, y, r, ny);
        x[i] = x0 - h;
        double lm = loss_of(f, ctx, y, r, ny);
        x[i] = x0;
        double num = (lp - lm) / (2.0 * h);
        double e = fabs(num - g[i]);
        if (fabs(num) > maxn) maxn = fabs(num);
        if (e > maxe) { maxe = e; worst = i; }
    }
    f(ctx, y);
    double rel = maxe / (maxn + 1e-3);
    CHECK(rel < tol, "%s: max error %.3g of max %.3g (rel %.3g at %zu)", what, maxe, maxn, rel, worst);
    printf("  %-28s rel err %.2e\n", what, rel);
}

/* ------------------------------------------------------------------ conv */
typedef struct { mc_conv2d_desc d; int n, h, w; float *x, *wt, *b; } conv_ctx;
static void conv_f(void *c, float *y) {
    conv_ctx *k = c;
    mc_train_conv2d_forward(&k->d, k->x, k->n, k->h, k->w, k->wt, k->b, y);
}
static void test_conv(const char *name, mc_conv2d_desc d, int n, int h, int w) {
    conv_ctx k = {d, n, h, w, NULL, NULL, NULL};
    int oh = mc_conv_out(h, d.kh, d.sh, d.ph), ow = mc_conv_out(w, d.kw, d.sw, d.pw);
    size_t nx = (size_t)n * d.cin * h * w, nw = (size_t)d.cout * (d.cin / d.groups) * d.kh * d.kw;
    size_t ny = (size_t)n * d.cout * oh * ow;
    k.x = rnd(nx, 1); k.wt = rnd(nw, 0.5f); k.b = rnd(d.cout, 0.5f);
    float *y = zeros(ny), *r = rnd(ny, 1), *dx = zeros(nx), *dw = zeros(nw), *db = zeros(d.cout);
    conv_f(&k, y);
    mc_train_conv2d_backward(&d, k.x, n, h, w, k.wt, r, dx, dw, db);
    char s[96];
    snprintf(s, sizeof s, "%s dx", name); check_grad(s, conv_f, &k, k.x, nx, dx, y, r, ny, 1e-2f, 2e-3f);
    snprintf(s, sizeof s, "%s dw", name); check_grad(s, conv_f, &k, k.wt, nw, dw, y, r, ny, 1e-2f, 2e-3f);
    snprintf(s, sizeof s, "%s db", name); check_grad(s, conv_f, &k, k.b, d.cout, db, y, r, ny, 1e-2f, 2e-3f);
    free(k.x); free(k.wt); free(k.b); free(y); free(r); free(dx); free(dw); free(db);
}

/* -------------------------------------------------------------------- bn */
typedef struct { int n, c, hw; float *x, *g, *b, *mean, *rstd; } bn_ctx;
static void bn_f(void *c, float *y) {
    bn_ctx *k = c;
    mc_train_bn_forward(k->x, k->n, k->c, k->hw, k->g, k->b, 1e-5f, 0.1f, NULL, NULL, y, k->mean, k->rstd);
}
static void test_bn(void) {
    bn_ctx k = {3, 4, 5, NULL, NULL, NULL, NULL, NULL};
    size_t nx = 60;
    k.x = rnd(nx, 2); k.g = rnd(4, 1); k.b = rnd(4, 1); k.mean = zeros(4); k.rstd = zeros(4);
    float *y = zeros(nx), *r = rnd(nx, 1), *dx = zeros(nx), *dg = zeros(4), *db = zeros(4);
    bn_f(&k, y);
    mc_train_bn_backward(k.x, 3, 4, 5, k.g, k.mean, k.rstd, r, dx, dg, db);
    check_grad("batchnorm dx", bn_f, &k, k.x, nx, dx, y, r, nx, 1e-2f, 2e-3f);
    check_grad("batchnorm dgamma", bn_f, &k, k.g, 4, dg, y, r, nx, 1e-2f, 2e-3f);
    check_grad("batchnorm dbeta", bn_f, &k, k.b, 4, db, y, r, nx, 1e-2f, 2e-3f);
    /* running statistics: momentum 0.1, unbiased variance */
    float rm[4] = {1, 1, 1, 1}, rv[4] = {2, 2, 2, 2};
    mc_train_bn_forward(k.x, 3, 4, 5, k.g, k.b, 1e-5f, 0.1f, rm, rv, y, k.mean, k.rstd);
    double s = 0, ss = 0;
    for (int i = 0; i < 3; i++) for (int p = 0; p < 5; p++) s += k.x[i * 20 + p];
    double mu = s / 15;
    for (int i = 0; i < 3; i++) for (int p = 0; p < 5; p++) ss += pow(k.x[i * 20 + p] - mu, 2);
    CHECK(fabs(rm[0] - (0.9 + 0.1 * mu)) < 1e-6, "running mean %g", rm[0]);
    CHECK(fabs(rv[0] - (1.8 + 0.1 * ss / 14)) < 1e-5, "running var %g vs %g", rv[0], 1.8 + 0.1 * ss / 14);
    free(k.x); free(k.g); free(k.b); free(k.mean); free(k.rstd); free(y); free(r); free(dx); free(dg); free(db);
}

/* A 1x1 depthwise conv z = w x before a batch-statistics BatchNorm: the output
 * depends on w only through w / sqrt(w^2 var(x) + eps), so exactly
 * dL/dw = gamma eps / (w^2 var(x) + eps)^(3/2) sum dy (x - mean(x)), a ~eps/var
 * remainder of the chain-rule terms sum dz x.  The chain rule through our
 * kernels must land within the float32 summation bound sqrt(n) u sum|dz x|
 * of it (the rule train-step-check applies to every gradient). */
static void test_scale_bn(void) {
    int n = 4, c = 8, hw = 1024;
    size_t nx = (size_t)n * c * hw;
    mc_conv2d_desc d = {c, c, 1, 1, 1, 1, 0, 0, c};
    float *x = rnd(nx, 1), *w = rnd(c, 1), *g = rnd(c, 1), *b = rnd(c, 1), *dy = rnd(nx, 1);
    for (size_t i = 0; i < nx; i++) x[i] += 1.5f;   /* a channel mean well away from 0 */
    for (int ch = 0; ch < c; ch++) if (fabsf(w[ch]) < 0.2f) w[ch] = 0.2f;
    float *z = zeros(nx), *y = zeros(nx), *mean = zeros(c), *rstd = zeros(c), *dz = zeros(nx);
    float *dw = zeros(c), *dg = zeros(c), *db = zeros(c), *ax = zeros(nx), *adz = zeros(nx), *sw = zeros(c);
    mc_train_conv2d_forward(&d, x, n, hw, 1, w, NULL, z);
    mc_train_bn_forward(z, n, c, hw, g, b, 1e-5f, 0.1f, NULL, NULL, y, mean, rstd);
    mc_train_bn_backward(z, n, c, hw, g, mean, rstd, dy, dz, dg, db);
    mc_train_conv2d_backward(&d, x, n, hw, 1, w, dz, NULL, dw, NULL);
    for (size_t i = 0; i < nx; i++) { ax[i] = fabsf(x[i]); adz[i] = fabsf(dz[i]); }
    mc_train_conv2d_backward(&d, ax, n, hw, 1, w, adz, NULL, sw, NULL);
    double N = (double)n * hw, worst = 0, wmax = 0;
    for (int ch = 0; ch < c; ch++) {
        double s = 0, v = 0, a = 0;
        for (int i = 0; i < n; i++) for (int p = 0; p < hw; p++) s += x[((size_t)i * c + ch) * hw + p];
        double mu = s / N;
        for (int i = 0; i < n; i++)
            for (int p = 0; p < hw; p++) {
                size_t k = ((size_t)i * c + ch) * hw + p;
                v += (x[k] - mu) * (x[k] - mu);
                a += (double)dy[k] * (x[k] - mu);
            }
        v /= N;
        double q = (double)w[ch] * w[ch] * v + 1e-5;
        double exact = g[ch] * 1e-5 / (q * sqrt(q)) * a;
        double tol = sqrt(N) * ldexp(1.0, -24) * sw[ch];
        double e = fabs(dw[ch] - exact);
        CHECK(e <= tol, "scale conv + BN channel %d: dw %.6e, closed form %.6e, tol %.3e", ch, dw[ch], exact, tol);
        CHECK(fabs(exact) < 1e-3 * sw[ch], "channel %d: the terms should cancel (%.3e of %.3e)", ch, exact, sw[ch]);
        if (e / (ldexp(1.0, -24) * sw[ch]) > worst) worst = e / (ldexp(1.0, -24) * sw[ch]);
        if (fabs(exact) > wmax) wmax = fabs(exact);
    }
    printf("  %-28s err <= %.2f u sum|terms| (bound %.0f)\n", "1x1 dw conv + batch-stat BN", worst, sqrt(N));
    free(x); free(w); free(g); free(b); free(dy); free(z); free(y); free(mean); free(rstd); free(dz);
    free(dw); free(dg); free(db); free(ax); free(adz); free(sw);
}

/* ---------------------------------------------------------------- linear */
typedef struct { int m, k, n; float *x, *w, *b; int proj; } lin_ctx;
static void lin_f(void *c, float *y) {
    lin_ctx *k = c;
    if (k->proj) mc_train_matmul_forward(k->x, k->w, k->m, k->k, k->n, y);
    else mc_train_linear_forward(k->x, k->w, k->b, k->m, k->k, k->n, y);
}
static void test_linear(int proj) {
    lin_ctx k = {5, 7, 6, NULL, NULL, NULL, proj};
    size_t nx = 35, nw = 42, ny = 30;
    k.x = rnd(nx, 1); k.w = rnd(nw, 1); k.b = rnd(6, 1);
    float *y = zeros(ny), *r = rnd(ny, 1), *dx = zeros(nx), *dw = zeros(nw), *db = zeros(6);
    lin_f(&k, y);
    if (proj) mc_train_matmul_backward(k.x, k.w, 5, 7, 6, r, dx, dw);
    else mc_train_linear_backward(k.x, k.w, 5, 7, 6, r, dx, dw, db);
    check_grad(proj ? "projection dx" : "linear dx", lin_f, &k, k.x, nx, dx, y, r, ny, 1e-2f, 2e-3f);
    check_grad(proj ? "projection dp" : "linear dw", lin_f, &k, k.w, nw, dw, y, r, ny, 1e-2f, 2e-3f);
    if (!proj) check_grad("linear db", lin_f, &k, k.b, 6, db, y, r, ny, 1e-2f, 2e-3f);
    free(k.x); free(k.w); free(k.b); free(y); free(r); free(dx); free(dw); free(db);
}

/* ------------------------------------------------------------- layernorm */
typedef struct { int rows, dim; float *x, *g, *b, *mean, *rstd; } ln_ctx;
static void ln_f(void *c, float *y) {
    ln_ctx *k = c;
    mc_train_layernorm_forward(k->x, k->rows, k->dim, k->g, k->b, 1e-5f, y, k->mean, k->rstd);
}
static void test_layernorm(void) {
    ln_ctx k = {4, 9, NULL, NULL, NULL, NULL, NULL};
    size_t nx = 36;
    k.x = rnd(nx, 2); k.g = rnd(9, 1); k.b = rnd(9, 1); k.mean = zeros(4); k.rstd = zeros(4);
    float *y = zeros(nx), *r = rnd(nx, 1), *dx = zeros(nx), *dg = zeros(9), *db = zeros(9);
    ln_f(&k, y);
    mc_train_layernorm_backward(k.x, 4, 9, k.g, k.mean, k.rstd, r, dx, dg, db);
    check_grad("layernorm dx", ln_f, &k, k.x, nx, dx, y, r, nx, 1e-2f, 2e-3f);
    check_grad("layernorm dgamma", ln_f, &k, k.g, 9, dg, y, r, nx, 1e-2f, 2e-3f);
    check_grad("layernorm dbeta", ln_f, &k, k.b, 9, db, y, r, nx, 1e-2f, 2e-3f);
    free(k.x); free(k.g); free(k.b); free(k.mean); free(k.rstd); free(y); free(r); free(dx); free(dg); free(db);
}

/* ----------------------------------------------------------- activations */
typedef struct { size_t n; mc_act act; float *x; } act_ctx;
static void act_f(void *c, float *y) { act_ctx *k = c; mc_train_act_forward(k->x, k->n, k->act, y); }
static void test_act(const char *name, mc_act act) {
    act_ctx k = {40, act, rnd(40, 3)};
    for (size_t i = 0; i < k.n; i++) if (fabsf(k.x[i]) < 0.05f) k.x[i] = 0.3f;  /* away from kinks */
    float *y = zeros(40), *r = rnd(40, 1), *dx = zeros(40);
    act_f(&k, y);
    mc_train_act_backward(k.x, 40, act, r, dx);
    check_grad(name, act_f, &k, k.x, 40, dx, y, r, 40, 1e-2f, 2e-3f);
    free(k.x); free(y); free(r); free(dx);
}

/* ------------------------------------------------------------- attention */
typedef struct { int b, t, heads, hd, causal; float *qkv, *probs; } att_ctx;
static void att_f(void *c, float *y) {
    att_ctx *k = c;
    mc_train_attention_forward(k->qkv, k->b, k->t, k->heads, k->hd, k->causal, y, k->probs);
}
static void test_attention(int causal) {
    att_ctx k = {2, 5, 2, 3, causal, NULL, NULL};
    size_t nq = 2 * 5 * 18, ny = 2 * 5 * 6;
    k.qkv = rnd(nq, 1); k.probs = zeros(2 * 2 * 25);
    float *y = zeros(ny), *r = rnd(ny, 1), *dq = zeros(nq);
    att_f(&k, y);
    mc_train_attention_backward(k.qkv, 2, 5, 2, 3, k.probs, r, dq);
    check_grad(causal ? "attention causal dqkv" : "attention dqkv", att_f, &k, k.qkv, nq, dq, y, r, ny,
               1e-2f, 2e-3f);
    free(k.qkv); free(k.probs); free(y); free(r); free(dq);
}

/* ---------------------------------------------------------------- l2norm */
typedef struct { int n, d; float *x; } l2_ctx;
static void l2_f(void *c, float *y) { l2_ctx *k = c; mc_train_l2norm_forward(k->x, k->n, k->d, y); }
static void test_l2(void) {
    l2_ctx k = {3, 6, rnd(18, 1)};
    float *y = zeros(18), *r = rnd(18, 1), *dx = zeros(18);
    l2_f(&k, y);
    mc_train_l2norm_backward(k.x, 3, 6, r, dx);
    check_grad("l2 normalise dx", l2_f, &k, k.x, 18, dx, y, r, 18, 1e-2f, 2e-3f);
    free(k.x); free(y); free(r); free(dx);
}

/* ---------------------------------------------------------------- DR loss */
typedef struct { mc_dr_loss_params p; int b, e; float *img, *txt, *ti, *tt, *scale; } dr_ctx;
static void dr_f(void *c, float *y) {
    dr_ctx *k = c;
    float terms[2];
    mc_train_dr_loss(&k->p, k->img, k->txt, k->b, k->e, k->ti, k->tt, k->scale[0], terms, NULL, NULL, NULL);
    y[0] = terms[0];
    y[1] = terms[1];
}
static void test_dr_loss(void) {
    dr_ctx k;
    memset(&k, 0, sizeof k);
    k.p.n_teachers = 2; k.p.teacher_dims[0] = 3; k.p.teacher_dims[1] = 5;
    k.p.teacher_scales[0] = 10; k.p.teacher_scales[1] = 7;
    k.p.lambda = 0.75f; k.p.w_contrastive = 0.25f; k.p.w_distill = 0.75f;
    k.b = 4; k.e = 6;
    k.img = rnd(24, 1); k.txt = rnd(24, 1); k.ti = rnd(32, 1); k.tt = rnd(32, 1);
    float sc = 1.3f; k.scale = &sc;
    float r[2] = {1, 1}, y[2];
    float *di = zeros(24), *dt = zeros(24), ds = 0, terms[2];
    mc_train_dr_loss(&k.p, k.img, k.txt, 4, 6, k.ti, k.tt, sc, terms, di, dt, &ds);
    check_grad("DR loss d image", dr_f, &k, k.img, 24, di, y, r, 2, 1e-3f, 2e-3f);
    check_grad("DR loss d text", dr_f, &k, k.txt, 24, dt, y, r, 2, 1e-3f, 2e-3f);
    check_grad("DR loss d logit_scale", dr_f, &k, k.scale, 1, &ds, y, r, 2, 1e-3f, 2e-3f);
    /* contrastive term by hand for b = 1: always 0; distillation with one sample: 0 */
    float one_i[2] = {1, 0}, one_t[2] = {0.6f, 0.8f}, tch[8] = {1, 0, 0, 1, 0, 0, 0, 0};
    mc_dr_loss_params p1 = k.p;
    p1.n_teachers = 1; p1.teacher_dims[0] = 2;
    mc_train_dr_loss(&p1, one_i, one_t, 1, 2, tch, tch, 2.0f, terms, NULL, NULL, NULL);
    CHECK(fabsf(terms[0]) < 1e-7f && fabsf(terms[1]) < 1e-7f, "b=1 loss %g %g", terms[0], terms[1]);
    free(k.img); free(k.txt); free(k.ti); free(k.tt); free(di); free(dt);
}

/* The loss of a block of rows (--local-loss): the blocks of a partition of
 * the batch add up to the whole batch's terms and gradients, and a block's
 * own gradient matches finite differences of its terms. */
typedef struct { dr_ctx *k; int r0, n; } dr_rows_ctx;
static void dr_rows_f(void *c, float *y) {
    dr_rows_ctx *q = c;
    dr_ctx *k = q->k;
    mc_train_dr_loss_rows(&k->p, k->img, k->txt, k->b, k->e, q->r0, q->n, k->ti, k->tt, k->scale[0], y, NULL, NULL,
                          NULL);
}
static void test_dr_loss_rows(void) {
    dr_ctx k;
    memset(&k, 0, sizeof k);
    k.p.n_teachers = 2; k.p.teacher_dims[0] = 3; k.p.teacher_dims[1] = 5;
    k.p.teacher_scales[0] = 10; k.p.teacher_scales[1] = 7;
    k.p.w_contrastive = 0.25f; k.p.w_distill = 0.75f;
    k.b = 6; k.e = 5;
    k.img = rnd(30, 1); k.txt = rnd(30, 1); k.ti = rnd(48, 1); k.tt = rnd(48, 1);
    float sc = 1.1f; k.scale = &sc;
    float whole[2], *wi = zeros(30), *wt = zeros(30), wds = 0;
    mc_train_dr_loss(&k.p, k.img, k.txt, 6, 5, k.ti, k.tt, sc, whole, wi, wt, &wds);
    /* blocks [0, 2), [2, 3), [3, 6) */
    const int starts[4] = {0, 2, 3, 6};
    float sum[2] = {0, 0}, *si = zeros(30), *st = zeros(30), sds = 0;
    for (int q = 0; q < 3; q++) {
        float terms[2];
        mc_train_dr_loss_rows(&k.p, k.img, k.txt, 6, 5, starts[q], starts[q + 1] - starts[q], k.ti, k.tt, sc, terms,
                              si, st, &sds);
        sum[0] += terms[0];
        sum[1] += terms[1];
    }
    CHECK(fabsf(sum[0] - whole[0]) <= 1e-6f * fabsf(whole[0]) && fabsf(sum[1] - whole[1]) <= 1e-6f * fabsf(whole[1]),
          "blocks' terms %g %g, whole batch %g %g", sum[0], sum[1], whole[0], whole[1]);
    float worst = 0;
    for (int i = 0; i < 30; i++) {
        worst = fmaxf(worst, fabsf(si[i] - wi[i]));
        worst = fmaxf(worst, fabsf(st[i] - wt[i]));
    }
    CHECK(worst <= 1e-6f && fabsf(sds - wds) <= 1e-6f, "blocks' gradients off by %g (logit scale %g vs %g)", worst,
          sds, wds);
    /* one block's gradient (rows 2..4) against finite differences */
    dr_rows_ctx q = {&k, 2, 3};
    float *bi = zeros(30), *bt = zeros(30), bds = 0, terms[2], r[2] = {1, 1}, y[2];
    mc_train_dr_loss_rows(&k.p, k.img, k.txt, 6, 5, 2, 3, k.ti, k.tt, sc, terms, bi, bt, &bds);
    check_grad("DR loss rows d image", dr_rows_f, &q, k.img, 30, bi, y, r, 2, 1e-3f, 2e-3f);
    check_grad("DR loss rows d text", dr_rows_f, &q, k.txt, 30, bt, y, r, 2, 1e-3f, 2e-3f);
    check_grad("DR loss rows d logit_scale", dr_rows_f, &q, k.scale, 1, &bds, y, r, 2, 1e-3f, 2e-3f);
    free(k.img); free(k.txt); free(k.ti); free(k.tt);
    free(wi); free(wt); free(si); free(st); free(bi); free(bt);
}

static void test_adamw(void) {
    float w[2] = {1.0f, -2.0f}, g[2] = {0.5f, -0.25f}, m[2] = {0, 0}, v[2] = {0, 0};
    mc_adamw_update(w, g, m, v, 2, 1e-3f, 0.9f, 0.95f, 1e-6f, 0.2f, 1);
    /* step 1: m_hat = g, v_hat = g^2: w = w (1 - lr wd) - lr g / (|g| + eps) */
    double e0 = 1.0 * (1 - 2e-4) - 1e-3 * 0.5 / (0.5 + 1e-6);
    double e1 = -2.0 * (1 - 2e-4) + 1e-3 * 0.25 / (0.25 + 1e-6);
    CHECK(fabs(w[0] - e0) < 1e-6 && fabs(w[1] - e1) < 1e-6, "adamw step 1: %g %g vs %g %g", w[0], w[1], e0, e1);
    mc_adamw_update(w, g, m, v, 2, 1e-3f, 0.9f, 0.95f, 1e-6f, 0.0f, 2);
    CHECK(fabs(w[0] - (e0 - 1e-3 * 0.5 / (0.5 + 1e-6))) < 1e-6, "adamw step 2: %g", w[0]);
    CHECK(mc_train_param_decays("a.conv.weight", 4) == 1, "conv weight decays");
    CHECK(mc_train_param_decays("a.bn.weight", 1) == 0, "bn weight");
    CHECK(mc_train_param_decays("text_encoder.x.fc1.bias", 2) == 0, "bias");
    CHECK(mc_train_param_decays("logit_scale", 2) == 0, "logit_scale");
    CHECK(mc_train_param_decays("layer_scale", 3) == 1, "layer_scale decays");
    /* OpenCLIP / timm names under open_clip's rule (open_clip_train/main.py: exclude ndim < 2 or
     * "bn" / "ln" / "bias" / "logit_scale" in the name): timm "norm" gains are 1-d, so excluded by ndim */
    static const struct { const char *name; int ndim, decays; } oc[] = {
        {"visual.trunk.stem.0.conv_kxk.0.conv.weight", 4, 1},
        {"visual.trunk.stem.0.conv_kxk.0.bn.weight", 1, 0},
        {"visual.trunk.stages.0.blocks.0.token_mixer.norm.identity.weight", 1, 0},
        {"visual.trunk.stages.0.blocks.0.token_mixer.layer_scale.gamma", 3, 1},
        {"visual.trunk.stages.3.blocks.0.norm.weight", 1, 0},
        {"visual.trunk.stages.3.blocks.0.token_mixer.qkv.weight", 2, 1},
        {"visual.trunk.head.fc.weight", 2, 1},
        {"visual.trunk.head.fc.bias", 1, 0},
        {"visual.trunk.pos_embed", 3, 1},
        {"visual.trunk.cls_token", 3, 1},
        {"visual.trunk.blocks.0.norm1.weight", 1, 0},
        {"text.token_embedding.weight", 2, 1},
        {"text.positional_embedding", 2, 1},
        {"text.transformer.resblocks.0.ln_1.weight", 1, 0},
        {"text.transformer.resblocks.0.attn.in_proj_weight", 2, 1},
        {"text.transformer.resblocks.0.attn.in_proj_bias", 1, 0},
        {"text.transformer.resblocks.0.mlp.c_fc.weight", 2, 1},
        {"text.text_projection", 2, 1},
        {"logit_scale", 0, 0},
    };
    for (size_t i = 0; i < sizeof oc / sizeof oc[0]; i++)
        CHECK(mc_train_param_decays(oc[i].name, oc[i].ndim) == oc[i].decays, "decay of %s", oc[i].name);
    mc_adamw_params p = mc_adamw_default_params();
    p.warmup_steps = 4; p.total_steps = 14; p.lr = 1.0f;
    CHECK(fabsf(mc_train_lr_at(&p, 0) - 0.25f) < 1e-7f, "warmup lr %g", mc_train_lr_at(&p, 0));
    CHECK(fabsf(mc_train_lr_at(&p, 4) - 1.0f) < 1e-7f, "peak lr");
    CHECK(fabsf(mc_train_lr_at(&p, 9) - 0.5f) < 1e-6f, "half-way cosine %g", mc_train_lr_at(&p, 9));
}

int main(void) {
    test_conv("conv 3x3 s1", (mc_conv2d_desc){3, 4, 3, 3, 1, 1, 1, 1, 1}, 2, 5, 6);
    test_conv("conv 3x3 s2", (mc_conv2d_desc){2, 3, 3, 3, 2, 2, 1, 1, 1}, 2, 7, 6);
    test_conv("conv depthwise 7x7", (mc_conv2d_desc){4, 4, 7, 7, 1, 1, 3, 3, 4}, 1, 6, 5);
    test_conv("conv grouped 3x3 s2 x2", (mc_conv2d_desc){4, 8, 3, 3, 2, 2, 1, 1, 4}, 2, 6, 6);
    test_conv("conv 1x11 depthwise", (mc_conv2d_desc){3, 3, 1, 11, 1, 1, 0, 5, 3}, 2, 1, 9);
    test_conv("conv 1x1", (mc_conv2d_desc){5, 3, 1, 1, 1, 1, 0, 0, 1}, 2, 3, 4);
    test_bn();
    test_scale_bn();
    test_linear(0);
    test_linear(1);
    test_layernorm();
    test_act("relu", MC_ACT_RELU);
    test_act("gelu (erf)", MC_ACT_GELU);
    test_act("sigmoid", MC_ACT_SIGMOID);
    test_attention(0);
    test_attention(1);
    test_l2();
    test_dr_loss();
    test_dr_loss_rows();
    test_adamw();
    return test_summary("test_train_grad");
}
