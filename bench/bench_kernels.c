/*
 * bench_kernels.c - kernel benchmark (`make bench-kernels`): one line per
 * measurement, minimum time of several runs.  SGEMM GFLOP/s for square sizes
 * and MobileCLIP-S0-like shapes (1x1 convs: M = cout, K = cin, N = H*W),
 * ours vs the portable scalar set vs the reference loops vs OpenBLAS (when
 * built with BLAS=openblas), peak_ratio against the best SGEMM figure of the
 * same run and fma_ratio against this machine's FMA peak (a register-only
 * loop, measured in the same run); also a few non-GEMM kernels.
 * Usage: bench_kernels [threads...]   (default: 1 and all cores); the thread
 * count is capped for small problems exactly as mc_gemm caps it.
 * `bench_kernels dw [threads...]` (default 1 thread): only the depthwise convs
 * of one MobileCLIP-S0 image forward and its stem conv.
 * `bench_kernels act`: only the activation timings (ns per element).
 */
#include "kernels/dispatch.h"
#include "kernels/gemm.h"
#include "kernels/set_portable.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <immintrin.h>

#ifdef _OPENMP
#include <omp.h>
#else
#pragma GCC diagnostic ignored "-Wunknown-pragmas"
#endif
#ifdef MC_USE_OPENBLAS
#include <cblas.h>
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *buf(size_t n) {
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    return p;
}

typedef void (*run_fn)(void *ctx);

/* Minimum seconds over runs: at least 3, until 0.3 s spent or 25 runs. */
static double time_min(run_fn f, void *ctx) {
    f(ctx);   /* warm-up (scratch growth, page faults) */
    double best = 1e30, spent = 0;
    for (int r = 0; r < 25 && (r < 3 || spent < 0.3); r++) {
        double t0 = now();
        f(ctx);
        double dt = now() - t0;
        spent += dt;
        if (dt < best) best = dt;
    }
    return best;
}

typedef struct {
    int ta, tb, m, n, k, nt, which;   /* which: 0 ours (best set), 1 portable set, 2 ref, 3 openblas */
    const mc_kset *ks;
    float *a, *b, *c;
} gemm_ctx;

static void run_gemm(void *p) {
    gemm_ctx *g = p;
    int lda = g->ta ? g->m : g->k, ldb = g->tb ? g->k : g->n;
    if (g->which == 2) {
        mc_gemm_ref(g->ta, g->tb, g->m, g->n, g->k, 1.0f, g->a, lda, g->b, ldb, 0.0f, g->c, g->n);
    } else if (g->which == 3) {
        mc_gemm_blas(g->ta, g->tb, g->m, g->n, g->k, 1.0f, g->a, lda, g->b, ldb, 0.0f, g->c, g->n);
    } else {
        mc_gemm_ex(g->ks, g->nt, g->ta, g->tb, g->m, g->n, g->k, 1.0f, g->a, lda, g->b, ldb, 0.0f, g->c,
                   g->n, NULL, NULL, MC_ACT_NONE);
    }
}

static mc_kset g_best, g_port;
static double g_peak;

static double gemm_gflops(int which, int ta, int tb, int m, int n, int k, int nt) {
    mc_kernels_set_threads(nt);
    nt = mc_threads_for(2.0 * m * n * k);   /* what mc_gemm would use (small sizes: 1) */
    gemm_ctx g = {ta, tb, m, n, k, nt, which, which == 1 ? &g_port : &g_best, NULL, NULL, NULL};
    g.a = buf((size_t)m * k), g.b = buf((size_t)k * n), g.c = buf((size_t)m * n);
#ifdef MC_USE_OPENBLAS
    openblas_set_num_threads(nt);
#endif
    double t = time_min(run_gemm, &g);
    free(g.a), free(g.b), free(g.c);
    return 2.0 * m * n * k / t * 1e-9;
}

/* SGEMM lines are buffered and printed once the run's best figure is known. */
static char g_lines[64][320];
static double g_ours[64];
static int g_nlines;

static void bench_gemm(const char *label, int ta, int tb, int m, int n, int k, int nt) {
    double flops = 2.0 * m * n * k;
    double ours = gemm_gflops(0, ta, tb, m, n, k, nt);
    double port = flops <= 3e9 ? gemm_gflops(1, ta, tb, m, n, k, nt) : NAN;
    double ref = flops <= 1e8 ? gemm_gflops(2, ta, tb, m, n, k, 1) : NAN;
    double blas = NAN;
#ifdef MC_USE_OPENBLAS
    blas = gemm_gflops(3, ta, tb, m, n, k, nt);
#endif
    if (ours > g_peak) g_peak = ours;
    if (g_nlines < 64) {
        g_ours[g_nlines] = ours;
        snprintf(g_lines[g_nlines++], sizeof g_lines[0],
                 "sgemm %-10s ta=%d tb=%d M=%-5d N=%-5d K=%-5d threads=%d set=%s ours=%.1f scalar=%.2f ref=%.2f openblas=%.1f GFLOP/s vs_openblas=%.2f",
                 label, ta, tb, m, n, k, nt, g_best.name, ours, port, ref, blas, ours / blas);
    }
}

static void flush_gemm_lines(double fma_peak) {
    for (int i = 0; i < g_nlines; i++)
        printf("%s peak_ratio=%.2f fma_ratio=%.2f\n", g_lines[i], g_ours[i] / g_peak, g_ours[i] / fma_peak);
    g_nlines = 0;
    fflush(stdout);
}

/* A register-only FMA loop: the per-core (times threads) arithmetic peak. */
__attribute__((target("avx2,fma"))) static double fma_peak_avx2(int nt) {
    double best = 0;
    for (int rep = 0; rep < 30; rep++) {
        double t0 = now();
        long iters = 5000000;
#pragma omp parallel num_threads(nt)
        {
            __m256 acc[12];
            for (int i = 0; i < 12; i++) acc[i] = _mm256_set1_ps((float)i * 1e-3f);
            __m256 m = _mm256_set1_ps(0.9999f), a = _mm256_set1_ps(1e-6f);
            for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
                for (int i = 0; i < 12; i++) acc[i] = _mm256_fmadd_ps(m, a, acc[i]);
            }
            float s = 0;
            for (int i = 0; i < 12; i++) s += _mm256_cvtss_f32(acc[i]);
            if (s == 12345.f) printf("#\n");
        }
        double dt = now() - t0;
        double gf = (double)nt * iters * 12 * 16 / dt * 1e-9;
        if (gf > best) best = gf;
    }
    return best;
}

typedef struct {
    mc_conv2d_desc d;
    int h, w;
    float *x, *wt, *b, *y;
    mc_act act;
} conv_ctx;

static void run_conv(void *p) {
    conv_ctx *c = p;
    mc_conv2d(&c->d, c->wt, c->b, c->x, 1, c->h, c->w, c->y, c->act);
}

static void bench_conv(const char *label, mc_conv2d_desc d, int h, int w, mc_act act, int nt) {
    conv_ctx c = {d, h, w, NULL, NULL, NULL, NULL, act};
    int oh = mc_conv_out(h, d.kh, d.sh, d.ph), ow = mc_conv_out(w, d.kw, d.sw, d.pw);
    c.x = buf((size_t)d.cin * h * w), c.wt = buf((size_t)d.cout * (d.cin / d.groups) * d.kh * d.kw);
    c.b = buf(d.cout), c.y = buf((size_t)d.cout * oh * ow);
    double flops = 2.0 * d.cout * (d.cin / d.groups) * d.kh * d.kw * oh * ow;
    mc_kernels_set_threads(nt);
    double t = time_min(run_conv, &c);
    printf("conv  %-22s cin=%-4d cout=%-4d k=%dx%d s=%d g=%-4d in=%dx%d threads=%d set=%s time=%.3f ms %.1f GFLOP/s peak_ratio=%.2f\n",
           label, d.cin, d.cout, d.kh, d.kw, d.sh, d.groups, h, w, nt, mc_kernels_name(), t * 1e3,
           flops / t * 1e-9, flops / t * 1e-9 / g_peak);
    free(c.x), free(c.wt), free(c.b), free(c.y);
}

typedef struct {
    int m, k, n;
    float *x, *w, *b, *y;
} lin_ctx;

static void run_linear(void *p) {
    lin_ctx *l = p;
    mc_linear(l->x, l->w, l->b, l->m, l->k, l->n, l->y, MC_ACT_NONE);
}

static void bench_linear(int m, int k, int n, int nt) {
    lin_ctx l = {m, k, n, buf((size_t)m * k), buf((size_t)n * k), buf(n), buf((size_t)m * n)};
    mc_kernels_set_threads(nt);
    double t = time_min(run_linear, &l);
    printf("linear m=%d k=%d n=%d threads=%d set=%s time=%.4f ms %.1f GFLOP/s peak_ratio=%.2f\n", m, k, n, nt,
           mc_kernels_name(), t * 1e3, 2.0 * m * k * n / t * 1e-9, 2.0 * m * k * n / t * 1e-9 / g_peak);
    free(l.x), free(l.w), free(l.b), free(l.y);
}

typedef struct {
    int kind, a, b, c, d;   /* 0 attention (t, heads, hd, causal), 1 layernorm rows (rows, dim), 2 layernorm nchw (c, hw), 3 softmax (rows, cols) */
    float *x, *y, *s, *g;
    int ref;
} misc_ctx;

static void run_misc(void *p) {
    misc_ctx *m = p;
    switch (m->kind) {
    case 0: {
        int od = m->b * m->c, ld = 3 * od;
        (m->ref ? mc_attention_ref : mc_attention)(m->x, m->x + od, m->x + 2 * od, ld, m->a, m->b, m->c, m->d, m->y, m->s);
        break;
    }
    case 1: (m->ref ? mc_layernorm_ref : mc_layernorm)(m->x, m->a, m->b, m->g, m->g, 1e-5f, m->y); break;
    case 2: (m->ref ? mc_layernorm_nchw_ref : mc_layernorm_nchw)(m->x, 1, m->a, m->b, m->g, m->g, 1e-5f, m->y); break;
    default: (m->ref ? mc_softmax_rows_ref : mc_softmax_rows)(m->x, m->a, m->b); break;
    }
}

static void bench_misc(const char *label, int kind, int a, int b, int c, int d, int nt) {
    size_t n = kind == 0 ? (size_t)a * 3 * b * c : (size_t)a * b;
    misc_ctx m = {kind, a, b, c, d, buf(n), buf(n), buf(kind == 0 ? (size_t)a * a : 1), buf(4096), 0};
    mc_kernels_set_threads(nt);
    double t = time_min(run_misc, &m);
    m.ref = 1;
    double tr = time_min(run_misc, &m);
    printf("misc  %-24s threads=%d set=%s time=%.4f ms ref=%.4f ms speedup=%.1f\n", label, nt, mc_kernels_name(),
           t * 1e3, tr * 1e3, tr / t);
    free(m.x), free(m.y), free(m.s), free(m.g);
}

/* `bench_kernels dw [threads]`: the depthwise convs of one MobileCLIP-S0
 * image forward (256x256) and its dense stem conv, each with its count per
 * forward, and the count-weighted total. */
static void bench_s0_depthwise(int nt) {
    static const struct { const char *label; int c, mult, k, s, hw, act, count; } sh[] = {
        {"stem_dw3_s2_gelu", 64, 1, 3, 2, 128, 1, 1},
        {"s1_dw3", 64, 1, 3, 1, 64, 0, 2},        {"s1_dw7", 64, 1, 7, 1, 64, 0, 2},
        {"pe1_dw7_s2_x2_gelu", 64, 2, 7, 2, 64, 1, 1},
        {"s2_dw3", 128, 1, 3, 1, 32, 0, 6},       {"s2_dw7", 128, 1, 7, 1, 32, 0, 6},
        {"pe2_dw7_s2_x2", 128, 2, 7, 2, 32, 0, 1},
        {"s3_dw3", 256, 1, 3, 1, 16, 0, 10},      {"s3_dw7", 256, 1, 7, 1, 16, 0, 10},
        {"pe3_dw7_s2_x2", 256, 2, 7, 2, 16, 0, 1},
        {"s4_dw7", 512, 1, 7, 1, 8, 0, 3},        {"final_dw3_x2", 512, 2, 3, 1, 8, 0, 1},
    };
    double total = 0;
    for (size_t i = 0; i < sizeof sh / sizeof sh[0]; i++) {
        int c = sh[i].c, k = sh[i].k;
        mc_conv2d_desc d = {c, c * sh[i].mult, k, k, sh[i].s, sh[i].s, k / 2, k / 2, c};
        conv_ctx cc = {d, sh[i].hw, sh[i].hw, NULL, NULL, NULL, NULL, sh[i].act ? MC_ACT_GELU : MC_ACT_NONE};
        int o = mc_conv_out(sh[i].hw, k, sh[i].s, k / 2);
        cc.x = buf((size_t)c * sh[i].hw * sh[i].hw), cc.wt = buf((size_t)d.cout * k * k);
        cc.b = buf(d.cout), cc.y = buf((size_t)d.cout * o * o);
        mc_kernels_set_threads(nt);
        double t = time_min(run_conv, &cc);
        cc.act = MC_ACT_NONE;
        double tn = sh[i].act ? time_min(run_conv, &cc) : t;
        total += sh[i].count * tn;
        printf("dw  %-20s c=%-4d cout=%-4d k=%d s=%d in=%dx%d x%-2d threads=%d time=%.4f ms no_act=%.4f ms\n",
               sh[i].label, c, d.cout, k, sh[i].s, sh[i].hw, sh[i].hw, sh[i].count, nt, t * 1e3, tn * 1e3);
        free(cc.x), free(cc.wt), free(cc.b), free(cc.y);
    }
    printf("dw  total_per_forward (no act) threads=%d %.3f ms\n", nt, total * 1e3);
    mc_conv2d_desc stem = {3, 64, 3, 3, 2, 2, 1, 1, 1};
    bench_conv("stem_3x3_s2_im2col", stem, 256, 256, MC_ACT_GELU, nt);
    bench_conv("stem_3x3_s2_im2col", stem, 256, 256, MC_ACT_NONE, nt);
}

/* Activations on 4096 floats (L1-resident), one thread, the kernel set's
 * act() called directly: ns per element, minimum over 300 runs, the input
 * restored before each (uniform in [-6, 6), outside the timing). */
static void bench_act(void) {
    enum { N = 4096 };
    static const struct { const char *name; mc_act act; } acts[] = {
        {"relu", MC_ACT_RELU}, {"gelu", MC_ACT_GELU}, {"gelu_tanh", MC_ACT_GELU_TANH},
        {"quick_gelu", MC_ACT_QUICK_GELU}, {"sigmoid", MC_ACT_SIGMOID}};
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    uint32_t st = 1;
    for (int i = 0; i < N; i++) st = st * 1664525u + 1013904223u, x[i] = (float)(st >> 8) * (12.0f / 16777216.0f) - 6.0f;
    for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
        double best = 1e30;
        for (int r = 0; r < 300; r++) {
            memcpy(y, x, N * sizeof(float));
            double t0 = now();
            g_best.act(y, N, acts[a].act);
            double t = now() - t0;
            if (t < best) best = t;
        }
        printf("act   %-12s set=%s n=%d %.3f ns/element\n", acts[a].name, g_best.name, N, best * 1e9 / N);
    }
    free(x), free(y);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "dw")) {
        g_best = *mc_kset_get();
        g_peak = 1;
        for (int i = 2; i < argc || i == 2; i++) bench_s0_depthwise(i < argc ? atoi(argv[i]) : 1);
        return 0;
    }
    int ncores = 1;
#ifdef _OPENMP
    ncores = omp_get_max_threads();
#endif
    int tl[8], ntl = 0;
    int act_only = argc > 1 && !strcmp(argv[1], "act");
    for (int i = 1 + act_only; i < argc && ntl < 8; i++) tl[ntl++] = atoi(argv[i]);
    if (!ntl) {
        tl[ntl++] = 1;
        if (ncores > 1) tl[ntl++] = ncores;
    }
    g_best = *mc_kset_get();
    mc_kset_portable(&g_port);
    bench_act();
    if (act_only) return 0;
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("# kernel set %s, cores %d, OPENBLAS_CORETYPE=%s, openblas %s\n", g_best.name, ncores,
           ct ? ct : "(unset)",
#ifdef MC_USE_OPENBLAS
           "linked"
#else
           "not built (make BLAS=openblas)"
#endif
    );
    for (int ti = 0; ti < ntl; ti++) {
        int nt = tl[ti];
        g_peak = 0;
        double fp = fma_peak_avx2(nt);
        printf("fma_peak threads=%d %.1f GFLOP/s (register-only AVX2 FMA loop)\n", nt, fp);
        static const int sq[] = {64, 128, 256, 512, 1024};
        for (size_t i = 0; i < sizeof sq / sizeof sq[0]; i++) bench_gemm("square", 0, 0, sq[i], sq[i], sq[i], nt);
        bench_gemm("square_tb", 0, 1, 512, 512, 512, nt);
        /* S0-like 1x1 convs (M = cout, N = H*W, K = cin), ConvFFN expand / project per stage */
        static const int s0[][3] = {{192, 4096, 64}, {64, 4096, 192}, {384, 1024, 128}, {128, 1024, 384},
                                    {768, 256, 256}, {256, 256, 768}, {1536, 64, 512}, {512, 64, 1536}};
        for (size_t i = 0; i < sizeof s0 / sizeof s0[0]; i++) bench_gemm("s0_1x1", 0, 0, s0[i][0], s0[i][1], s0[i][2], nt);
        bench_gemm("text_lin", 0, 1, 77, 2048, 512, nt);
        flush_gemm_lines(fp);
        printf("peak threads=%d best_sgemm=%.1f GFLOP/s fma_peak=%.1f best/fma_peak=%.2f\n", nt, g_peak, fp, g_peak / fp);
        /* ratios of every shape to the best */
        mc_conv2d_desc dw7 = {64, 64, 7, 7, 1, 1, 3, 3, 64}, dw3s2 = {128, 128, 3, 3, 2, 2, 1, 1, 128};
        mc_conv2d_desc pw = {64, 192, 1, 1, 1, 1, 0, 0, 1}, stem = {3, 64, 3, 3, 2, 2, 1, 1, 1};
        mc_conv2d_desc dw3 = {64, 64, 3, 3, 1, 1, 1, 1, 64}, dw7s2 = {64, 64, 7, 7, 2, 2, 3, 3, 64};
        bench_misc("attention_t64_h16_d32", 0, 64, 16, 32, 0, nt);
        bench_misc("attention_t77_h8_d64_causal", 0, 77, 8, 64, 1, nt);
        bench_misc("layernorm_77x512", 1, 77, 512, 0, 0, nt);
        bench_misc("layernorm_nchw_64x4096", 2, 64, 4096, 0, 0, nt);
        bench_misc("softmax_1024x64", 3, 1024, 64, 0, 0, nt);
        bench_linear(1, 512, 512, nt);
        bench_linear(1, 1024, 512, nt);
        bench_linear(77, 512, 2048, nt);
        bench_conv("depthwise_7x7", dw7, 64, 64, MC_ACT_NONE, nt);
        bench_conv("depthwise_3x3", dw3, 64, 64, MC_ACT_NONE, nt);
        bench_conv("depthwise_7x7_s2", dw7s2, 64, 64, MC_ACT_NONE, nt);
        bench_conv("depthwise_3x3_s2", dw3s2, 64, 64, MC_ACT_NONE, nt);
        bench_conv("depthwise_3x3_s2", dw3s2, 64, 64, MC_ACT_GELU, nt);
        bench_conv("1x1_bias_gelu", pw, 64, 64, MC_ACT_GELU, nt);
        bench_conv("stem_3x3_s2_im2col", stem, 256, 256, MC_ACT_GELU, nt);
    }
    return 0;
}
