/*
 * bench_kernels.c - kernel benchmark (`make bench-kernels`): one line per
 * measurement, minimum time of several runs.  SGEMM GFLOP/s for square sizes
 * and MobileCLIP-S0-like shapes (1x1 convs: M = cout, K = cin, N = H*W),
 * ours vs the portable scalar set vs the reference loops vs OpenBLAS (when
 * built with BLAS=openblas), and peak_ratio against the best SGEMM figure of
 * the same run; also this machine's FMA peak and a few non-GEMM kernels.
 * Usage: bench_kernels [threads...]   (default: 1 and all cores); the thread
 * count is capped for small problems exactly as mc_gemm caps it.
 */
#include "gemm.h"
#include "kernels.h"

#include <math.h>
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
    printf("sgemm %-10s ta=%d tb=%d M=%-5d N=%-5d K=%-5d threads=%d set=%s ours=%.1f scalar=%.2f ref=%.2f openblas=%.1f GFLOP/s  vs_openblas=%.2f\n",
           label, ta, tb, m, n, k, nt, g_best.name, ours, port, ref, blas, ours / blas);
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

int main(int argc, char **argv) {
    int ncores = 1;
#ifdef _OPENMP
    ncores = omp_get_max_threads();
#endif
    int tl[8], ntl = 0;
    for (int i = 1; i < argc && ntl < 8; i++) tl[ntl++] = atoi(argv[i]);
    if (!ntl) {
        tl[ntl++] = 1;
        if (ncores > 1) tl[ntl++] = ncores;
    }
    g_best = *mc_kset_get();
    mc_kset_portable(&g_port);
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
        printf("peak threads=%d best_sgemm=%.1f GFLOP/s fma_peak=%.1f best/fma_peak=%.2f\n", nt, g_peak, fp, g_peak / fp);
        /* ratios of every shape to the best */
        mc_conv2d_desc dw7 = {64, 64, 7, 7, 1, 1, 3, 3, 64}, dw3s2 = {128, 128, 3, 3, 2, 2, 1, 1, 128};
        mc_conv2d_desc pw = {64, 192, 1, 1, 1, 1, 0, 0, 1}, stem = {3, 64, 3, 3, 2, 2, 1, 1, 1};
        mc_conv2d_desc dw3 = {64, 64, 3, 3, 1, 1, 1, 1, 64}, dw7s2 = {64, 64, 7, 7, 2, 2, 3, 3, 64};
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
