/*
 * test_synth.c - synthetic models (src/model/synth.c): the architecture inferred
 * from every fixture checkpoint regenerates exactly its tensor names, shapes
 * and dtypes; full-size MobileCLIP-S0 and -B load through the model loader
 * with the official parameter counts (apple/ml-mobileclip README, "# Params
 * (M) (img + txt)": S0 11.4 + 42.4, B 86.3 + 63.4); multiply-accumulate
 * counts match the published S0 figures; a full-size text forward runs.
 */
#include "test.h"

#include "model/synth.h"
#include "model/tblock.h"

#include <string.h>

static int cmp_names(const void *a, const void *b) {
    const mc_tensor_info *x = *(const mc_tensor_info *const *)a, *y = *(const mc_tensor_info *const *)b;
    return strcmp(x->name, y->name);
}

/* Sorted pointers to a checkpoint's tensors. */
static const mc_tensor_info **sorted(const mc_checkpoint *ck, size_t *n) {
    *n = mc_checkpoint_count(ck);
    const mc_tensor_info **v = malloc((*n ? *n : 1) * sizeof *v);
    for (size_t i = 0; i < *n; i++) v[i] = mc_checkpoint_tensor(ck, i);
    qsort(v, *n, sizeof *v, cmp_names);
    return v;
}

static int same_shape(const mc_tensor_info *a, const mc_tensor_info *b) {
    if (a->ndim != b->ndim || a->dtype != b->dtype) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

/* The fixture's tensors and the synthetic ones from its inferred spec agree. */
static void check_fixture_layout(const char *dir) {
    char ckpath[4096];
    mc_config cfg;
    mc_error err;
    mc_status st = mc_config_resolve(fixture(dir), NULL, NULL, &cfg, ckpath, sizeof ckpath, &err);
    CHECK(st == MC_OK, "%s: config: %s", dir, err.message);
    if (st != MC_OK) return;
    mc_checkpoint *ref = NULL, *syn = NULL;
    st = mc_checkpoint_open(ckpath, &ref, &err);
    CHECK(st == MC_OK, "%s: %s", dir, err.message);
    if (st != MC_OK) return;
    mc_arch_spec s;
    st = mc_arch_spec_infer(ref, &cfg, &s, &err);
    CHECK(st == MC_OK, "%s: infer: %s", dir, err.message);
    if (st == MC_OK) st = mc_synth_checkpoint(&s, 7, 1, 1, &syn, &err);
    CHECK(st == MC_OK, "%s: synth: %s", dir, err.message);
    if (st == MC_OK) {
        size_t na, nb;
        const mc_tensor_info **a = sorted(ref, &na), **b = sorted(syn, &nb);
        size_t i = 0, j = 0;
        int bad = 0;
        while (i < na || j < nb) {
            int c = i >= na ? 1 : j >= nb ? -1 : strcmp(a[i]->name, b[j]->name);
            if (c < 0) { if (bad++ < 5) fprintf(stderr, "  %s: only in fixture: %s\n", dir, a[i]->name); i++; }
            else if (c > 0) { if (bad++ < 5) fprintf(stderr, "  %s: only synthetic: %s\n", dir, b[j]->name); j++; }
            else {
                if (!same_shape(a[i], b[j]) && bad++ < 5) fprintf(stderr, "  %s: shape differs: %s\n", dir, a[i]->name);
                i++, j++;
            }
        }
        CHECK(bad == 0 && na == nb, "%s: %d differences between fixture and synthetic tensors (%zu vs %zu)", dir, bad,
              na, nb);
        free(a);
        free(b);
    }
    mc_checkpoint_close(syn);
    mc_checkpoint_close(ref);
}

/* Parameters in a checkpoint under prefix, not counting BatchNorm buffers. */
static double count_params(const mc_checkpoint *ck, const char *prefix) {
    double n = 0;
    for (size_t i = 0; i < mc_checkpoint_count(ck); i++) {
        const mc_tensor_info *t = mc_checkpoint_tensor(ck, i);
        if (strncmp(t->name, prefix, strlen(prefix))) continue;
        if (strstr(t->name, "running_mean") || strstr(t->name, "running_var") || strstr(t->name, "num_batches"))
            continue;
        n += (double)t->numel;
    }
    return n;
}

static int near_m(double n, double millions) { return fabs(n / 1e6 - millions) < 0.051; }

static void check_counts(const char *name, const char *img_prefix, const char *txt_prefix, double img_m, double txt_m) {
    mc_arch_spec s;
    mc_error err;
    mc_checkpoint *ck = NULL;
    mc_status st = mc_arch_spec_builtin(name, &s, NULL, &err);
    if (st == MC_OK) st = mc_synth_checkpoint(&s, 1, 1, 1, &ck, &err);
    CHECK(st == MC_OK, "%s: %s", name, err.message);
    if (st != MC_OK) return;
    double ni = count_params(ck, img_prefix), nt = count_params(ck, txt_prefix);
    CHECK(near_m(ni, img_m), "%s: image tower has %.2fM parameters, expected %.1fM", name, ni / 1e6, img_m);
    CHECK(near_m(nt, txt_m), "%s: text tower has %.2fM parameters, expected %.1fM", name, nt / 1e6, txt_m);
    mc_checkpoint_close(ck);
}

/* Loads a tower of a full-size synthetic model through the model loader. */
static mc_model *load_tower(const char *name, int image, int text, mc_status *st_out) {
    mc_model_params p = mc_model_default_params();
    p.load_image_tower = image;
    p.load_text_tower = text;
    mc_model *m = NULL;
    mc_error err;
    mc_error_clear(&err);
    *st_out = mc_synth_model_load(name, 42, &p, &m, &err);
    if (*st_out != MC_OK) fprintf(stderr, "  %s: %s\n", name, err.message);
    return m;
}

int main(void) {
    static const char *dirs[] = {"models/v1_mci_mct",        "models/v1_mci_base",        "models/v1_vit_causal",
                                 "models/oc_mobileclip_s1",  "models/oc_mobileclip_b",    "models/oc_mobileclip2_s0",
                                 "models/oc_mobileclip2_s3", "models/oc_mobileclip2_s4",  "models/oc_mobileclip2_b",
                                 "models/oc_mobileclip2_l14"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) check_fixture_layout(dirs[i]);

    /* official parameter counts (README of apple/ml-mobileclip) */
    check_counts("mobileclip_s0", "image_encoder.", "text_encoder.", 11.4, 42.4);
    check_counts("mobileclip_b", "image_encoder.", "text_encoder.", 86.3, 63.4);
    check_counts("MobileCLIP2-S0", "visual.", "text.", 11.4, 63.4);   /* OpenCLIP text: 12 layers */
    check_counts("MobileCLIP2-B", "visual.", "text.", 86.3, 63.4);

    /* multiply-accumulates of MobileCLIP-S0: 2.38 G (image, 256 px), 1.29 G (text,
     * 77 tokens), counting layers (not attention products) as the published figures */
    mc_arch_spec s0;
    mc_error err;
    CHECK(mc_arch_spec_builtin("mobileclip_s0", &s0, NULL, &err) == MC_OK, "%s", err.message);
    double mi = mc_arch_macs_image(&s0, 0), mt = mc_arch_macs_text(&s0, 0);
    CHECK(fabs(mi / 1e9 - 2.38) < 0.01, "S0 image: %.3f GMAC, expected 2.38", mi / 1e9);
    CHECK(fabs(mt / 1e9 - 1.29) < 0.01, "S0 text: %.3f GMAC, expected 1.29", mt / 1e9);
    CHECK(mc_arch_macs_image(&s0, 1) > mi && mc_arch_macs_text(&s0, 1) > mt, "attention products add work");
    CHECK(mc_arch_macs_text_run(&s0, 1, 77) == mc_arch_macs_text(&s0, 1), "full-length count");
    CHECK(mc_arch_macs_text_run(&s0, 1, 25) < mc_arch_macs_text(&s0, 1), "fewer positions, less work");

    /* full-size loads through the model loader: no missing or unexpected tensors */
    mc_status st;
    mc_model *m = load_tower("mobileclip_s0", 0, 1, &st);
    CHECK(st == MC_OK && m, "S0 text tower loads");
    if (m) {
        mc_model_info info;
        mc_model_get_info(m, &info);
        /* the loader also counts the RepMixer blocks' BatchNorm buffers */
        CHECK(info.n_params_text >= 42.35e6 && info.n_params_text < 42.5e6, "S0 text params %lld",
              (long long)info.n_params_text);
        CHECK(info.embed_dim == 512 && info.context_length == 77, "S0 dims %d %d", info.embed_dim, info.context_length);
        mc_context *ctx = NULL;
        CHECK(mc_context_new(m, NULL, &ctx, &err) == MC_OK, "%s", err.message);
        int32_t tok[77] = {MC_TOKEN_SOT, 320, 1929, 539, 320, 2368, MC_TOKEN_EOT};
        float out[512];
        st = ctx ? mc_encode_text(ctx, tok, 1, 1, out) : MC_ERR_INTERNAL;
        CHECK(st == MC_OK, "S0 text forward: %s", ctx ? mc_context_last_error(ctx)->message : "");
        double nrm = 0;
        int finite = 1;
        for (int i = 0; i < 512; i++) { nrm += out[i] * out[i]; finite &= isfinite(out[i]) != 0; }
        CHECK(st == MC_OK && finite && fabs(nrm - 1) < 1e-3, "S0 text embedding finite and unit length");
        /* a batch larger than one chunk of sequences (mc_tblock_chunk) gives
         * the rows of single-text forwards */
        enum { NT = 11 };
        int32_t *toks = calloc((size_t)NT * 77, sizeof(int32_t));
        float *eb = malloc((size_t)NT * 512 * sizeof(float));
        for (int i = 0; i < NT; i++) {
            int32_t *tk = toks + (size_t)i * 77;
            tk[0] = MC_TOKEN_SOT;
            for (int j = 1; j <= 3 + i; j++) tk[j] = 320 + 97 * i + 13 * j;
            tk[4 + i] = MC_TOKEN_EOT;
        }
        CHECK(mc_tblock_chunk(NT, 77) < NT, "the batch spans several chunks");
        st = ctx ? mc_encode_text(ctx, toks, NT, 1, eb) : MC_ERR_INTERNAL;
        CHECK(st == MC_OK, "S0 text batch forward");
        for (int i = 0; i < NT && st == MC_OK; i++) {
            st = mc_encode_text(ctx, toks + (size_t)i * 77, 1, 1, out);
            float d = 0;
            for (int j = 0; j < 512; j++) d = fmaxf(d, fabsf(out[j] - eb[i * 512 + j]));
            CHECK(st == MC_OK && d <= 1e-5f, "S0 text %d: batch and single forwards differ by %g", i, d);
        }
        free(toks), free(eb);
        mc_context_free(ctx);
        mc_model_free(m);
    }
    m = load_tower("mobileclip_s0", 1, 0, &st);
    CHECK(st == MC_OK, "S0 image tower loads");
    if (m) {
        mc_model_info info;
        mc_model_get_info(m, &info);
        CHECK(info.image_size == 256 && info.embed_dim == 512, "S0 image dims");
        /* a batch (early stages image by image, late stages batched) gives
         * the rows of single-image forwards */
        mc_context *ctx = NULL;
        CHECK(mc_context_new(m, NULL, &ctx, &err) == MC_OK, "%s", err.message);
        enum { NI = 4, PIX = 3 * 256 * 256 };
        float *pix = malloc((size_t)NI * PIX * sizeof(float)), *eb = malloc(NI * 512 * sizeof(float)), one[512];
        uint32_t r = 7;
        for (size_t i = 0; i < (size_t)NI * PIX; i++) { r = r * 1664525u + 1013904223u; pix[i] = (float)(r >> 8) / 8388608.0f - 1.0f; }
        st = ctx ? mc_encode_image(ctx, pix, NI, 1, eb) : MC_ERR_INTERNAL;
        CHECK(st == MC_OK, "S0 image batch forward");
        for (int i = 0; i < NI && st == MC_OK; i++) {
            st = mc_encode_image(ctx, pix + (size_t)i * PIX, 1, 1, one);
            float d = 0;
            for (int j = 0; j < 512; j++) d = fmaxf(d, fabsf(one[j] - eb[i * 512 + j]));
            CHECK(st == MC_OK && d <= 1e-5f, "S0 image %d: batch and single forwards differ by %g", i, d);
        }
        free(pix), free(eb);
        mc_context_free(ctx);
        mc_model_free(m);
    }
    m = load_tower("mobileclip_b", 1, 1, &st);
    CHECK(st == MC_OK && m, "B loads");
    if (m) {
        mc_model_info info;
        mc_model_get_info(m, &info);
        CHECK(near_m((double)info.n_params_image, 86.3), "B image params %lld", (long long)info.n_params_image);
        CHECK(near_m((double)info.n_params_text, 63.4), "B text params %lld", (long long)info.n_params_text);
        mc_model_free(m);
    }
    return test_summary("test_synth");
}
