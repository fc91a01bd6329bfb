/*
 * test_lowp.c - reduced-precision weights: the SIMD bf16 / f16 / int8
 * conversions against the scalar ones (bit for bit), quantization error
 * bounds, the _q kernels against the float32 reference kernels on the
 * dequantized weights (odd sizes, each kernel set, 1 and 2 threads, and the
 * no-scratch paths), and whole models: the cosine between reduced-precision
 * and float32 embeddings on every fixture model and on full-size random
 * MobileCLIP-S0 (S2 and B too with MC_LOWP_FULL=1) against the bounds stated
 * in docs/performance.md ("Reduced precision").
 */
#include "test.h"

#include "kernels/gemm.h"
#include "kernels/qmat.h"
#include "kernels/kernels.h"
#include "kernel_sets.h"
#include "kernels/lowp.h"
#include "model/model.h"
#include "model/synth.h"

#include <stdint.h>

/* The stated bounds: min cosine to the float32 embedding. */
#define COS_BF16 0.9995
#define COS_F16 0.99999
#define COS_I8 0.995


static const mc_wtype k_types[3] = {MC_WT_BF16, MC_WT_F16, MC_WT_I8};
static const char *g_set;
static int g_nt;

/* Every bf16 and f16 bit pattern, and int8 rows of odd lengths, through the
 * kernel set's conversion and the scalar one. */
static void test_cvt(void) {
    const mc_kset *ks = mc_kset_get();
    uint16_t *all = malloc(65536 * sizeof(uint16_t));
    float *a = malloc(65536 * sizeof(float)), *b = malloc(65536 * sizeof(float));
    for (int i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    for (int t = 0; t < 2; t++) {
        mc_wtype wt = t ? MC_WT_F16 : MC_WT_BF16;
        for (int off = 0; off < 3; off++) {   /* unaligned starts and odd tails */
            int n = 65536 - off - 5;
            ks->cvt(wt, all + off, n, 1.0f, a);
            mc_cvt_ref(wt, all + off, n, 1.0f, b);
            int bad = 0;
            for (int i = 0; i < n; i++) {
                uint32_t ua, ub;
                memcpy(&ua, &a[i], 4), memcpy(&ub, &b[i], 4);
                if (a[i] != a[i] ? b[i] == b[i] : ua != ub) bad++;   /* NaNs: NaN both (quieting may differ) */
            }
            CHECK(bad == 0, "[%s] cvt %s off %d: %d of %d values differ", g_set, mc_wtype_name(wt), off, bad, n);
        }
    }
    int8_t q[300];
    for (int i = 0; i < 300; i++) q[i] = (int8_t)(i * 37 - 128);
    for (int n = 0; n <= 67; n += 1) {
        ks->cvt(MC_WT_I8, q + (n % 5), n, 0.0123f, a);
        mc_cvt_ref(MC_WT_I8, q + (n % 5), n, 0.0123f, b);
        CHECK(!memcmp(a, b, (size_t)n * sizeof(float)), "[%s] cvt int8 n=%d differs", g_set, n);
    }
    free(all), free(a), free(b);
}

/* Quantization error per element: bf16 2^-8 relative, f16 2^-11 relative
 * (normal range), int8 half a step of its row's scale. */
static void test_quantize(void) {
    mc_arena ar = {0};
    int rows = 13, cols = 37;
    float *w = test_rand_buf((size_t)rows * cols, 3.0f);
    w[5] = 1e-30f, w[6] = 70000.0f, w[7] = -1e6f;   /* f16 underflow and saturation */
    for (int c = 0; c < cols; c++) w[2 * cols + c] = 0;   /* a zero row */
    for (int t = 0; t < 3; t++) {
        mc_qmat q;
        CHECK(mc_qmat_make(&ar, k_types[t], w, rows, cols, &q), "qmat_make %s", mc_wtype_name(k_types[t]));
        int bad = 0;
        float row[64];
        for (int r = 0; r < rows; r++) {
            mc_qmat_row_ref(&q, r, 0, cols, row);
            for (int c = 0; c < cols; c++) {
                float x = w[r * cols + c], y = row[c], tol;
                if (k_types[t] == MC_WT_BF16) tol = fabsf(x) * (1.0f / 256);
                else if (k_types[t] == MC_WT_F16) tol = fabsf(x) > 65504 ? fabsf(x) - 65504 : fmaxf(fabsf(x) * (1.0f / 2048), 3e-8f);
                else tol = q.scale[r] * 0.5001f;
                if (!(fabsf(x - y) <= tol)) bad++;
            }
        }
        CHECK(bad == 0, "%s: %d elements beyond the rounding bound", mc_wtype_name(k_types[t]), bad);
        if (k_types[t] == MC_WT_I8) CHECK(q.scale[2] == 0, "int8: zero row scale %g", q.scale[2]);
    }
    free(w);
    mc_arena_free(&ar);
}

/* Dequantized copy of q (for the float32 reference kernels). */
static float *deq(const mc_qmat *q) {
    float *d = malloc((size_t)(q->rows * q->cols + 1) * sizeof(float));
    for (int64_t r = 0; r < q->rows; r++) mc_qmat_row_ref(q, r, 0, (int)q->cols, d + r * q->cols);
    return d;
}

#define TOL 1e-5

static void test_kernels_q(void) {
    static const int sz[][3] = {{1, 1, 1}, {7, 13, 37}, {13, 7, 65}, {65, 129, 7}, {4, 33, 300}, {29, 130, 17}, {121, 33, 300}};
    mc_arena ar = {0};
    for (int t = 0; t < 3; t++)
        for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
            int m = sz[i][0], n = sz[i][1], k = sz[i][2];
            float *w = test_rand_buf((size_t)n * k, 1), *x = test_rand_buf((size_t)m * k, 1), *b = test_rand_buf((size_t)n, 1);
            mc_qmat q;
            mc_qmat_make(&ar, k_types[t], w, n, k, &q);
            float *wd = deq(&q);
            float *y0 = test_rand_buf((size_t)m * n, 1), *y1 = malloc((size_t)m * n * sizeof(float));
            memcpy(y1, y0, (size_t)m * n * sizeof(float));
            mc_linear_ref(x, wd, b, m, k, n, y0, MC_ACT_GELU);
            mc_linear_q(x, NULL, &q, b, m, k, n, y1, MC_ACT_GELU);
            CHECK(test_rel_err(y1, y0, (size_t)m * n) <= TOL, "[%s t%d] linear_q %s m=%d n=%d k=%d: err %g", g_set, g_nt,
                  mc_wtype_name(k_types[t]), m, n, k, test_rel_err(y1, y0, (size_t)m * n));
            mc_linear_add_ref(x, wd, b, m, k, n, y0);
            mc_linear_add_q(x, NULL, &q, b, m, k, n, y1);
            CHECK(test_rel_err(y1, y0, (size_t)m * n) <= TOL, "[%s t%d] linear_add_q %s m=%d n=%d k=%d", g_set, g_nt,
                  mc_wtype_name(k_types[t]), m, n, k);
            /* 1x1 conv: w [cout = n, cin = k] over hw = m pixels, 2 images */
            float *px = test_rand_buf((size_t)2 * k * m, 1), *p0 = test_rand_buf((size_t)2 * n * m, 1);
            float *p1 = malloc((size_t)2 * n * m * sizeof(float));
            memcpy(p1, p0, (size_t)2 * n * m * sizeof(float));
            mc_pointwise_add_ref(wd, b, px, 2, k, n, m, p0);
            mc_pointwise_add_q(NULL, &q, b, px, 2, k, n, m, p1);
            CHECK(test_rel_err(p1, p0, (size_t)2 * n * m) <= TOL, "[%s t%d] pointwise_add_q %s cin=%d cout=%d hw=%d", g_set,
                  g_nt, mc_wtype_name(k_types[t]), k, n, m);
            free(w), free(x), free(b), free(wd), free(y0), free(y1), free(px), free(p0), free(p1);
        }
    /* dense and grouped convs (stride, padding); depthwise falls back to the plain path */
    static const mc_conv2d_desc cd[] = {{3, 8, 3, 3, 2, 2, 1, 1, 1}, {6, 9, 3, 3, 1, 1, 1, 1, 3},
                                        {10, 10, 1, 1, 1, 1, 0, 0, 1}, {5, 5, 3, 3, 1, 1, 1, 1, 5}};
    for (int t = 0; t < 3; t++)
        for (size_t i = 0; i < sizeof cd / sizeof cd[0]; i++) {
            const mc_conv2d_desc *d = &cd[i];
            int h = 11, wd = 13, n = 2, cpg = d->cin / d->groups, kk = cpg * d->kh * d->kw;
            int oh = mc_conv_out(h, d->kh, d->sh, d->ph), ow = mc_conv_out(wd, d->kw, d->sw, d->pw);
            float *w = test_rand_buf((size_t)d->cout * kk, 1), *b = test_rand_buf((size_t)d->cout, 1);
            float *x = test_rand_buf((size_t)n * d->cin * h * wd, 1);
            size_t ny = (size_t)n * d->cout * oh * ow;
            float *y0 = malloc(ny * sizeof(float)), *y1 = malloc(ny * sizeof(float));
            mc_qmat q;
            mc_qmat_make(&ar, k_types[t], w, d->cout, kk, &q);
            float *wq = deq(&q);
            mc_conv2d_ref(d, wq, b, x, n, h, wd, y0, MC_ACT_RELU);
            mc_conv2d_q(d, NULL, &q, b, x, n, h, wd, y1, MC_ACT_RELU);
            CHECK(test_rel_err(y1, y0, ny) <= TOL, "[%s t%d] conv2d_q %s case %zu: err %g", g_set, g_nt,
                  mc_wtype_name(k_types[t]), i, test_rel_err(y1, y0, ny));
            free(w), free(b), free(x), free(y0), free(y1), free(wq);
        }
    mc_arena_free(&ar);
}

/* ---- whole models ---- */

static double min_cos(const float *a, const float *b, int n, int d) {
    double mn = 1;
    for (int i = 0; i < n; i++) {
        double ab = 0, aa = 0, bb = 0;
        for (int j = 0; j < d; j++) {
            ab += (double)a[(size_t)i * d + j] * b[(size_t)i * d + j];
            aa += (double)a[(size_t)i * d + j] * a[(size_t)i * d + j];
            bb += (double)b[(size_t)i * d + j] * b[(size_t)i * d + j];
        }
        double c = ab / sqrt(aa * bb + 1e-30);
        if (!(c >= mn)) mn = c;
    }
    return mn;
}

static const double k_bounds[3] = {COS_BF16, COS_F16, COS_I8};

/* Encodes pix [n_img] and ids [n_txt] with m; out: [n_img + n_txt, E]. */
static int encode_all(const mc_model *m, const float *pix, int n_img, const int32_t *ids, int n_txt, float *out) {
    mc_model_info info;
    mc_model_get_info(m, &info);
    mc_context *ctx = NULL;
    mc_context_params cp = mc_context_default_params();
    cp.n_threads = 1;
    if (mc_context_new(m, &cp, &ctx, NULL) != MC_OK) return 0;
    int ok = 1;
    if (n_img) ok &= mc_encode_image(ctx, pix, n_img, 1, out) == MC_OK;
    if (n_txt) ok &= mc_encode_text(ctx, ids, n_txt, 1, out + (size_t)n_img * info.embed_dim) == MC_OK;
    mc_context_free(ctx);
    return ok;
}

/* Loads the model four times (f32 and each reduced type) through load(),
 * encodes the same inputs, checks and prints the min cosine per tower. */
typedef mc_status (*load_fn)(void *user, int dtype, mc_model **out, mc_error *err);

static void compare_model(const char *label, load_fn load, void *user, const float *pix, int n_img,
                          const int32_t *ids, int n_txt) {
    mc_error err;
    mc_model *m = NULL;
    if (load(user, MC_WEIGHTS_F32, &m, &err) != MC_OK) {
        CHECK(0, "%s: load f32: %s", label, err.message);
        return;
    }
    mc_model_info info;
    mc_model_get_info(m, &info);
    int E = info.embed_dim, N = n_img + n_txt;
    float *ref = malloc((size_t)N * E * sizeof(float)), *got = malloc((size_t)N * E * sizeof(float));
    CHECK(encode_all(m, pix, n_img, ids, n_txt, ref), "%s: f32 encode", label);
    mc_model_free(m);
    for (int t = 0; t < 3; t++) {
        m = NULL;
        mc_status st = load(user, MC_WEIGHTS_BF16 + t, &m, &err);
        CHECK(st == MC_OK, "%s: load %s: %s", label, mc_wtype_name(k_types[t]), err.message);
        if (st != MC_OK) continue;
        CHECK(encode_all(m, pix, n_img, ids, n_txt, got), "%s: %s encode", label, mc_wtype_name(k_types[t]));
        double ci = n_img ? min_cos(got, ref, n_img, E) : 1, ct = n_txt ? min_cos(got + (size_t)n_img * E, ref + (size_t)n_img * E, n_txt, E) : 1;
        printf("%-22s %-5s min cosine image %.6f text %.6f\n", label, mc_wtype_name(k_types[t]), ci, ct);
        CHECK(ci >= k_bounds[t] && ct >= k_bounds[t], "%s: %s cosine image %.6f text %.6f below %g", label,
              mc_wtype_name(k_types[t]), ci, ct, k_bounds[t]);
        /* a reduced model refuses export (its float32 weights are gone) */
        if (t == 0 && n_img && n_txt) {
            mc_st_entry *en = NULL;
            mc_meta_kv *meta = NULL;
            size_t ne = 0, nm = 0;
            CHECK(mc_model_export(m, &en, &ne, &meta, &nm, &err) == MC_ERR_UNSUPPORTED, "%s: reduced export", label);
            free(en), free(meta);
        }
        mc_model_free(m);
    }
    free(ref), free(got);
}

static mc_status load_fixture(void *user, int dtype, mc_model **out, mc_error *err) {
    mc_model_params mp = mc_model_default_params();
    mp.vocab_path = fixture("tokenizer/bpe_simple_vocab_16e6.txt.gz");
    mp.weight_dtype = dtype;
    return mc_model_load((const char *)user, &mp, out, err);
}

static float *load_f32(const mc_checkpoint *ck, const char *name, int64_t *numel) {
    const mc_tensor_info *t = mc_checkpoint_find(ck, name);
    if (!t) return NULL;
    float *d = malloc((size_t)t->numel * sizeof(float));
    if (mc_convert_to_f32(t->dtype, t->data, (size_t)t->numel, d) != MC_OK) { free(d); return NULL; }
    if (numel) *numel = t->numel;
    return d;
}

static void test_fixtures(void) {
    static const char *dirs[] = {"v1_mci_base", "v1_mci_mct", "v1_vit_causal", "oc_mobileclip_s1", "oc_mobileclip_b",
                                 "oc_mobileclip2_s0", "oc_mobileclip2_s3", "oc_mobileclip2_s4", "oc_mobileclip2_b",
                                 "oc_mobileclip2_l14"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char rel[256], erel[256];
        snprintf(rel, sizeof rel, "models/%s", dirs[i]);
        snprintf(erel, sizeof erel, "models/%s/expected.safetensors", dirs[i]);
        mc_checkpoint *ex = NULL;
        CHECK(mc_checkpoint_open(fixture(erel), &ex, NULL) == MC_OK, "%s: expected", dirs[i]);
        if (!ex) continue;
        int64_t npix = 0;
        float *pix = load_f32(ex, "pixels", &npix);
        const mc_tensor_info *tk = mc_checkpoint_find(ex, "tokens");
        CHECK(pix && tk && tk->ndim == 2, "%s: inputs", dirs[i]);
        if (pix && tk && tk->ndim == 2) {
            int n_txt = (int)tk->shape[0];
            int32_t *ids = malloc((size_t)tk->numel * sizeof(int32_t));
            for (int64_t j = 0; j < tk->numel; j++) ids[j] = (int32_t)((const int64_t *)tk->data)[j];
            compare_model(dirs[i], load_fixture, (void *)fixture(rel), pix, 3, ids, n_txt);
            free(ids);
        }
        free(pix);
        mc_checkpoint_close(ex);
    }
}

typedef struct synth_user {
    const mc_checkpoint *ck;
    const mc_config *cfg;
} synth_user;

static mc_status load_synth(void *user, int dtype, mc_model **out, mc_error *err) {
    synth_user *u = user;
    mc_model_params mp = mc_model_default_params();
    mp.weight_dtype = dtype;
    return mc_model_load_checkpoint(u->ck, u->cfg, &mp, out, err);
}

/* Full-size random models (src/model/synth.c): 2 images, 3 texts. */
static void test_synth(const char *name) {
    mc_arch_spec spec;
    mc_config cfg;
    mc_checkpoint *ck = NULL;
    mc_error err;
    mc_status st = mc_arch_spec_builtin(name, &spec, &cfg, &err);
    if (st == MC_OK) st = mc_synth_checkpoint(&spec, 1, 1, 1, &ck, &err);
    CHECK(st == MC_OK, "%s: synth: %s", name, err.message);
    if (st != MC_OK) return;
    synth_user u = {ck, &cfg};
    int S = 0;
    {
        mc_model *m = NULL;
        if (load_synth(&u, MC_WEIGHTS_F32, &m, &err) == MC_OK) {
            mc_model_info info;
            mc_model_get_info(m, &info);
            S = info.image_size;
        }
        mc_model_free(m);
    }
    CHECK(S > 0, "%s: image size", name);
    if (S > 0) {
        int n_img = 2, n_txt = 3;
        float *pix = test_rand_buf((size_t)n_img * 3 * S * S, 1);
        int32_t ids[3 * 77] = {0};
        for (int s = 0; s < n_txt; s++) {
            int len = 6 + 9 * s;
            ids[s * 77] = MC_TOKEN_SOT;
            for (int i = 1; i < len; i++) ids[s * 77 + i] = 1 + (int32_t)((test_frand() + 1) * 24000);
            ids[s * 77 + len] = MC_TOKEN_EOT;
        }
        char label[64];
        snprintf(label, sizeof label, "random %s", name);
        compare_model(label, load_synth, &u, pix, n_img, ids, n_txt);
        free(pix);
    }
    mc_checkpoint_close(ck);
}

int main(void) {
    test_seed(777);
    for (int s = 0; s < TEST_NSETS; s++) {
        if (!test_use_set(s)) continue;
        g_set = test_set_names[s];
        test_cvt();
        for (g_nt = 1; g_nt <= 2; g_nt++) {
            mc_kernels_set_threads(g_nt);
            test_kernels_q();
        }
        /* no scratch memory: the plain paths */
        mc_scratch_set_limit(16);
        g_nt = 1;
        mc_kernels_set_threads(1);
        test_kernels_q();
        mc_scratch_set_limit((size_t)-1);
    }
    test_use_set(-1);
    mc_kernels_set_threads(0);
    test_quantize();
    test_fixtures();
    test_synth("mobileclip_s0");
    const char *full = getenv("MC_LOWP_FULL");
    if (full && *full && strcmp(full, "0")) {
        test_synth("mobileclip_s2");
        test_synth("mobileclip_b");
    }
    return test_summary("test_lowp");
}
