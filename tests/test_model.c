/*
 * test_model.c - whole-model loading and encoding through the public API
 * against the reference embeddings and logit scale; contexts growing with
 * the batch; text-only loads; errors that name the missing, mis-shaped or
 * unexpected tensor (modified copies of a fixture checkpoint in a temp dir).
 * A ViT model and a text tower also run on the AVX-512 source over emulated
 * intrinsics (kernel_sets.h).
 */
#include "kernel_sets.h"
#include "model/model.h"
#include "test.h"

#include <unistd.h>

static float *load_f32(const mc_checkpoint *ck, const char *name, int64_t *numel) {
    const mc_tensor_info *t = mc_checkpoint_find(ck, name);
    if (!t) return NULL;
    float *d = malloc((size_t)t->numel * sizeof(float));
    if (mc_convert_to_f32(t->dtype, t->data, (size_t)t->numel, d) != MC_OK) { free(d); return NULL; }
    if (numel) *numel = t->numel;
    return d;
}

/* Loads models/<dir> (the folder, or the file when file != NULL) and checks
 * the embeddings of the towers loaded, the logit scale and the info. */
static void run_case(const char *dir, const char *file, int with_image) {
    char rel[512], epath[512];
    if (file) snprintf(rel, sizeof rel, "models/%s/%s", dir, file);
    else snprintf(rel, sizeof rel, "models/%s", dir);
    snprintf(epath, sizeof epath, "models/%s/expected.safetensors", dir);
    mc_error err;
    mc_error_clear(&err);
    mc_model_params mp = mc_model_default_params();
    mp.vocab_path = fixture("tokenizer/bpe_simple_vocab_16e6.txt.gz");
    mp.load_image_tower = with_image;
    mc_model *m = NULL;
    mc_status st = mc_model_load(fixture(rel), &mp, &m, &err);
    CHECK(st == MC_OK && m, "%s: load: %s", rel, err.message);
    mc_checkpoint *ex = NULL;
    st = mc_checkpoint_open(fixture(epath), &ex, &err);
    CHECK(st == MC_OK, "%s: expected: %s", dir, err.message);
    if (!m || !ex) { mc_model_free(m); mc_checkpoint_close(ex); return; }

    mc_model_info info;
    mc_model_get_info(m, &info);
    CHECK(mc_model_tokenizer(m) != NULL, "%s: no tokenizer", dir);
    CHECK(info.context_length == 77, "%s: context %d", dir, info.context_length);
    CHECK(info.n_params > 0 && info.n_params_text > 0, "%s: parameter counts", dir);
    CHECK(!strcmp(info.family, strncmp(dir, "oc_", 3) ? "mobileclip" : "open_clip"), "%s: family %s", dir, info.family);

    float *ls = load_f32(ex, "logit_scale", NULL);
    CHECK(ls && fabsf(info.logit_scale - expf(ls[0])) <= 1e-5f * expf(ls[0]), "%s: logit scale %g vs %g", dir,
          info.logit_scale, ls ? expf(ls[0]) : 0.0f);
    free(ls);

    mc_context *ctx = NULL;
    st = mc_context_new(m, NULL, &ctx, &err);   /* planned for 1, grows */
    CHECK(st == MC_OK && ctx, "%s: context: %s", dir, err.message);
    if (!ctx) { mc_model_free(m); mc_checkpoint_close(ex); return; }
    int E = info.embed_dim;

    /* text */
    const mc_tensor_info *tk = mc_checkpoint_find(ex, "tokens");
    int64_t ne = 0;
    float *temb = load_f32(ex, "text_embeddings", &ne);
    CHECK(tk && tk->ndim == 2 && tk->shape[1] == 77 && temb && ne == tk->shape[0] * E, "%s: text reference", dir);
    if (tk && tk->ndim == 2 && temb && ne == tk->shape[0] * E) {
        int n = (int)tk->shape[0];
        int32_t *ids = malloc((size_t)tk->numel * sizeof(int32_t));
        for (int64_t i = 0; i < tk->numel; i++) ids[i] = (int32_t)((const int64_t *)tk->data)[i];
        float *out = malloc((size_t)n * E * sizeof(float));
        st = mc_encode_text(ctx, ids, n, 1, out);
        CHECK(st == MC_OK, "%s: encode_text: %s", dir, mc_context_last_error(ctx)->message);
        float d = max_abs_diff(out, temb, (size_t)ne);
        printf("%-20s %-9s text  embeddings max|d| %.3g (%s kernels)\n", dir, file ? "(file)" : "(folder)", d,
               mc_kernels_name());
        CHECK(d <= 1e-4f, "%s: text embeddings differ by %g (%s kernels)", dir, d, mc_kernels_name());
        free(ids);
        free(out);
    }
    free(temb);

    /* image */
    int64_t npix = 0;
    float *pix = load_f32(ex, "pixels", &npix);
    float *iemb = load_f32(ex, "image_embeddings", &ne);
    if (with_image) {
        int S = info.image_size, n = 3;
        CHECK(pix && iemb && npix == (int64_t)n * 3 * S * S && ne == (int64_t)n * E, "%s: image reference", dir);
        if (pix && iemb && npix == (int64_t)n * 3 * S * S && ne == (int64_t)n * E) {
            float *out = malloc((size_t)n * E * sizeof(float));
            st = mc_encode_image(ctx, pix, n, 1, out);
            CHECK(st == MC_OK, "%s: encode_image: %s", dir, mc_context_last_error(ctx)->message);
            float d = max_abs_diff(out, iemb, (size_t)ne);
            printf("%-20s %-9s image embeddings max|d| %.3g (%s kernels)\n", dir, file ? "(file)" : "(folder)", d,
                   mc_kernels_name());
            CHECK(d <= 1e-4f, "%s: image embeddings differ by %g (%s kernels)", dir, d, mc_kernels_name());
            /* one image at a time gives the same rows; unnormalised rows have the reference norm */
            float one[4096];
            if (E <= 4096) {
                st = mc_encode_image(ctx, pix + (size_t)2 * 3 * S * S, 1, 1, one);
                CHECK(st == MC_OK && max_abs_diff(one, out + (size_t)2 * E, (size_t)E) <= 1e-6f,
                      "%s: single-image encode differs from the batch", dir);
            }
            free(out);
        }
    } else {
        float dummy[8];
        st = mc_encode_image(ctx, pix ? pix : dummy, 1, 1, dummy);
        CHECK(st == MC_ERR_INVALID_ARG && strstr(mc_context_last_error(ctx)->message, "image tower"),
              "%s: encode_image without an image tower: %d", dir, st);
    }
    free(pix);
    free(iemb);
    mc_context_free(ctx);
    mc_model_free(m);
    mc_checkpoint_close(ex);
}

/* Writes a copy of src with tensor `drop` removed, `reshape` given shape [3],
 * `swap` (2-d) given its two dimensions the other way round, `extra` added
 * and `poison` (as float32) holding a NaN; returns the status of loading it. */
static mc_status load_modified(const char *src, const char *cfg, const char *tmpdir, const char *drop,
                               const char *reshape, const char *swap, const char *extra, const char *poison,
                               mc_error *err) {
    mc_checkpoint *ck = NULL;
    mc_status st = mc_checkpoint_open(src, &ck, err);
    if (st != MC_OK) return st;
    size_t n = mc_checkpoint_count(ck);
    mc_st_entry *e = calloc(n + 1, sizeof *e);
    size_t k = 0;
    static const float extra_data[2] = {1, 2};
    float *poisoned = NULL;
    for (size_t i = 0; i < n; i++) {
        const mc_tensor_info *t = mc_checkpoint_tensor(ck, i);
        if (drop && !strcmp(t->name, drop)) continue;
        e[k].name = t->name;
        e[k].dtype = t->dtype;
        e[k].ndim = t->ndim;
        memcpy(e[k].shape, t->shape, sizeof e[k].shape);
        e[k].data = t->data;
        if (reshape && !strcmp(t->name, reshape)) {
            e[k].ndim = 1;
            e[k].shape[0] = 3;
        }
        if (swap && !strcmp(t->name, swap) && t->ndim == 2) {
            e[k].shape[0] = t->shape[1];
            e[k].shape[1] = t->shape[0];
        }
        if (poison && !strcmp(t->name, poison) && t->numel > 1 && (poisoned = malloc(sizeof(float) * t->numel))) {
            mc_convert_to_f32(t->dtype, t->data, (size_t)t->numel, poisoned);
            poisoned[t->numel / 2] = NAN;
            e[k].dtype = MC_DTYPE_F32;
            e[k].data = poisoned;
        }
        k++;
    }
    if (extra) {
        e[k].name = extra;
        e[k].dtype = MC_DTYPE_F32;
        e[k].ndim = 1;
        e[k].shape[0] = 2;
        e[k].data = extra_data;
        k++;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/open_clip_model.safetensors", tmpdir);
    st = mc_safetensors_write(path, e, k, NULL, 0, err);
    free(e);
    free(poisoned);
    mc_checkpoint_close(ck);
    if (st != MC_OK) return st;
    mc_model_params mp = mc_model_default_params();
    mp.config_path = cfg;
    mp.vocab_path = fixture("tokenizer/bpe_simple_vocab_16e6.txt.gz");
    mc_model *m = NULL;
    st = mc_model_load(path, &mp, &m, err);
    mc_model_free(m);
    unlink(path);
    return st;
}

static void test_errors(void) {
    char tmpl[] = "/tmp/mc_test_model_XXXXXX";
    char *dir = mkdtemp(tmpl);
    CHECK(dir != NULL, "mkdtemp failed");
    if (!dir) return;
    char src[4096], cfg[4096];   /* own copies: fixture() reuses its buffers */
    snprintf(src, sizeof src, "%s", fixture("models/oc_mobileclip2_b/open_clip_model.safetensors"));
    snprintf(cfg, sizeof cfg, "%s", fixture("models/oc_mobileclip2_b/open_clip_config.json"));
    mc_error err;

    mc_error_clear(&err);
    mc_status st = load_modified(src, cfg, dir, NULL, NULL, NULL, NULL, NULL, &err);
    CHECK(st == MC_OK, "unmodified copy: %s", err.message);

    const char *names[] = {"visual.trunk.blocks.1.attn.proj.weight", "visual.trunk.patch_embed.backbone.0.bn.running_var",
                           "text.transformer.resblocks.1.mlp.c_fc.bias", "text.text_projection", "logit_scale"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        mc_error_clear(&err);
        st = load_modified(src, cfg, dir, names[i], NULL, NULL, NULL, NULL, &err);
        if (!strcmp(names[i], "logit_scale")) {
            CHECK(st == MC_OK, "without logit_scale: %s", err.message);
            continue;
        }
        CHECK(st == MC_ERR_MISSING_TENSOR && strstr(err.message, names[i]), "drop %s: status %d '%s'", names[i], st,
              err.message);
        mc_error_clear(&err);
        st = load_modified(src, cfg, dir, NULL, names[i], NULL, NULL, NULL, &err);
        CHECK(st == MC_ERR_SHAPE && strstr(err.message, names[i]) && strstr(err.message, "[3]"),
              "reshape %s: status %d '%s'", names[i], st, err.message);
    }
    mc_error_clear(&err);
    st = load_modified(src, cfg, dir, NULL, NULL, NULL, "visual.trunk.blocks.0.attn.extra", NULL, &err);
    CHECK(st == MC_ERR_UNEXPECTED_TENSOR && strstr(err.message, "visual.trunk.blocks.0.attn.extra"),
          "extra tensor: status %d '%s'", st, err.message);
    mc_error_clear(&err);
    st = load_modified(src, cfg, dir, NULL, NULL, NULL, "text.transformer.resblocks.9.ln_1.weight", NULL, &err);
    CHECK(st != MC_OK && strstr(err.message, "text.transformer.resblocks.9"), "stray layer: status %d '%s'", st,
          err.message);
    /* A token embedding with its dimensions swapped is reported as itself,
     * against the config's [vocab, width] (not as a positional-embedding mismatch). */
    mc_error_clear(&err);
    st = load_modified(src, cfg, dir, NULL, NULL, "text.token_embedding.weight", NULL, NULL, &err);
    CHECK(st == MC_ERR_SHAPE && strstr(err.message, "text.token_embedding.weight") &&
              strstr(err.message, "[32, 49408]") && strstr(err.message, "expected [49408, 32]"),
          "swapped token embedding: status %d '%s'", st, err.message);
    mc_error_clear(&err);
    st = load_modified(src, cfg, dir, NULL, NULL, "text.positional_embedding", NULL, NULL, &err);
    CHECK(st == MC_ERR_SHAPE && strstr(err.message, "text.positional_embedding") &&
              strstr(err.message, "expected [77, 32]"),
          "swapped positional embedding: status %d '%s'", st, err.message);
    /* a weight holding a NaN would only ever give NaN embeddings */
    mc_error_clear(&err);
    st = load_modified(src, cfg, dir, NULL, NULL, NULL, NULL, "visual.trunk.blocks.1.mlp.fc2.weight", &err);
    CHECK(st == MC_ERR_FORMAT && strstr(err.message, "visual.trunk.blocks.1.mlp.fc2.weight") &&
              strstr(err.message, "NaN"),
          "NaN weight: status %d '%s'", st, err.message);
    /* a dropped LayerNorm weight: its bias is unused, and the message says what is missing */
    mc_error_clear(&err);
    st = load_modified(src, cfg, dir, "text.transformer.resblocks.0.ln_2.weight", NULL, NULL, NULL, NULL, &err);
    CHECK(st != MC_OK && strstr(err.message, "text.transformer.resblocks.0.ln_2.weight"),
          "dropped LayerNorm weight: status %d '%s'", st, err.message);
    rmdir(dir);
}

/* Every tensor of a fixture checkpoint (every stride-th one) dropped, given
 * shape [3], and (2-d) given its dimensions the other way round: each copy
 * must be refused with a message that names that tensor.  A dropped tensor
 * may instead be reported through the tensor the loader then looked for in
 * its place, one of the same block (the message names the dropped tensor's
 * grandparent module: "...norm.identity.weight" missing gives "missing
 * '...norm.reparam_conv.weight' (or '...norm.conv_kxk.0.conv.weight')").
 * Two kinds of tensor are not checked: BatchNorm's num_batches_tracked
 * counters, which inference never reads, and the optional logit_scale. */
static void test_every_tensor(const char *dir, const char *file, const char *cfgname, int stride) {
    /* hundreds of 8 MB copies, each written with fsync: in memory where there is /dev/shm */
    char tmpl[] = "/dev/shm/mc_test_model_XXXXXX", tmpl2[] = "/tmp/mc_test_model_XXXXXX";
    char *tmp = mkdtemp(tmpl);
    if (!tmp) tmp = mkdtemp(tmpl2);
    CHECK(tmp != NULL, "mkdtemp failed");
    if (!tmp) return;
    char src[4096], cfg[4096], rel[512];
    snprintf(rel, sizeof rel, "models/%s/%s", dir, file);
    snprintf(src, sizeof src, "%s", fixture(rel));
    snprintf(rel, sizeof rel, "models/%s/%s", dir, cfgname);
    snprintf(cfg, sizeof cfg, "%s", fixture(rel));
    mc_checkpoint *ck = NULL;
    mc_error err;
    CHECK(mc_checkpoint_open(src, &ck, &err) == MC_OK, "%s: %s", src, err.message);
    if (!ck) return;
    size_t n = mc_checkpoint_count(ck), tried = 0, bad = 0;
    for (size_t i = 0; i < n; i += (size_t)stride) {
        const mc_tensor_info *t = mc_checkpoint_tensor(ck, i);
        const char *name = t->name;
        size_t ln = strlen(name);
        if (!strcmp(name, "logit_scale") || (ln > 20 && !strcmp(name + ln - 20, ".num_batches_tracked"))) continue;
        char gp[512];   /* the grandparent module: name up to its second-last '.' */
        snprintf(gp, sizeof gp, "%s", name);
        for (int dots = 0, j = (int)strlen(gp); j-- > 0;)
            if (gp[j] == '.' && ++dots == 2) {
                gp[j + 1] = 0;
                break;
            }
        for (int mode = 0; mode < 3; mode++) {
            if (mode == 1 && t->ndim == 1 && t->shape[0] == 3) continue;
            if (mode == 2 && (t->ndim != 2 || t->shape[0] == t->shape[1])) continue;
            mc_error_clear(&err);
            mc_status st = load_modified(src, cfg, tmp, mode == 0 ? name : NULL, mode == 1 ? name : NULL,
                                         mode == 2 ? name : NULL, NULL, NULL, &err);
            int named = strstr(err.message, name) || (mode == 0 && strstr(err.message, gp));
            tried++;
            if (st == MC_OK || !named) {
                if (++bad <= 5)
                    CHECK(0, "%s: %s '%s' not refused by name: status %d '%s'", dir,
                          mode == 0 ? "dropping" : mode == 1 ? "reshaping" : "transposing", name, st, err.message);
            }
        }
    }
    CHECK(bad == 0 && tried > 0, "%s: %zu of %zu modified copies not refused by name", dir, bad, tried);
    printf("%-18s %-28s %4zu modified copies, %zu not refused by name\n", dir, file, tried, bad);
    mc_checkpoint_close(ck);
    rmdir(tmp);
}

static void test_bad_args(void) {
    mc_error err;
    mc_error_clear(&err);
    mc_model *m = NULL;
    CHECK(mc_model_load(NULL, NULL, &m, &err) == MC_ERR_INVALID_ARG, "NULL path accepted");
    mc_error_clear(&err);
    mc_status st = mc_model_load(fixture("models/no_such_model"), NULL, &m, &err);
    CHECK(st != MC_OK && m == NULL && err.message[0], "missing model folder: status %d", st);
    CHECK(mc_context_new(NULL, NULL, NULL, &err) == MC_ERR_INVALID_ARG, "NULL model accepted");
    float x[4] = {3, 4, 0, 0};
    mc_l2_normalize_rows(x, 2, 2);
    CHECK(fabsf(x[0] - 0.6f) < 1e-7f && fabsf(x[1] - 0.8f) < 1e-7f && x[2] == 0 && x[3] == 0,
          "l2 normalise: %g %g %g %g", x[0], x[1], x[2], x[3]);
}

/* Causal text towers run only up to the last pooled position of the batch:
 * the embeddings must be the same as over the full context (the same terms
 * enter every sum, the cut ones being exact zeros: bit for bit on this
 * machine's AVX2 set; checked to 1e-6), whatever follows the end token, and
 * a non-causal tower (RepMixer / MCT) must not be cut. */
static void test_text_cut(const char *dir, int causal) {
    mc_error err;
    mc_model_params mp = mc_model_default_params();
    mp.vocab_path = fixture("tokenizer/bpe_simple_vocab_16e6.txt.gz");
    mp.load_image_tower = 0;
    mc_model *m = NULL;
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s", dir);
    mc_status st = mc_model_load(fixture(rel), &mp, &m, &err);
    CHECK(st == MC_OK, "%s: %s", dir, err.message);
    if (st != MC_OK) return;
    mc_context_params cp = mc_context_default_params();
    cp.n_threads = 2;
    mc_context *ctx = NULL;
    CHECK(mc_context_new(m, &cp, &ctx, &err) == MC_OK, "%s: context: %s", dir, err.message);
    mc_model_info info;
    mc_model_get_info(m, &info);
    int T = info.context_length, D = info.embed_dim, n = 5;
    int32_t *tok = calloc((size_t)n * T, sizeof *tok), *junk = calloc((size_t)n * T, sizeof *junk);
    float *cut = malloc(sizeof(float) * n * D), *full = malloc(sizeof(float) * n * D);
    float *cut1 = malloc(sizeof(float) * D), *jk = malloc(sizeof(float) * n * D);
    static const int eot_at[5] = {1, 7, 30, 76, 12};   /* the batch runs to 77 only for text 3 */
    for (int s = 0; s < n; s++) {
        int32_t *t = tok + (size_t)s * T;
        t[0] = MC_TOKEN_SOT;
        for (int i = 1; i < eot_at[s]; i++) t[i] = 1 + (int32_t)((unsigned)(s * 7919 + i * 104729) % 49000u);
        t[eot_at[s]] = MC_TOKEN_EOT;
        memcpy(junk + (size_t)s * T, t, sizeof(int32_t) * T);
        for (int i = eot_at[s] + 1; i < T; i++) junk[(size_t)s * T + i] = 1 + (int32_t)((unsigned)(i * 31) % 400u);
    }
    unsetenv("MC_TEXT_FULL_CONTEXT");
    /* positions run: up to the batch's last end token for a causal stack, all of them otherwise */
    int pos_batch = mc_model_text_positions(m, tok, n), pos_one = mc_model_text_positions(m, tok + 4 * T, 1);
    CHECK(pos_batch == (causal ? eot_at[3] + 1 : T) && pos_one == (causal ? eot_at[4] + 1 : T),
          "%s: %d and %d positions run", dir, pos_batch, pos_one);
    CHECK(mc_encode_text(ctx, tok, n, 1, cut) == MC_OK, "%s: encode", dir);
    CHECK(mc_encode_text(ctx, tok + 4 * T, 1, 1, cut1) == MC_OK, "%s: encode one", dir);
    CHECK(mc_encode_text(ctx, junk, n, 1, jk) == MC_OK, "%s: encode junk", dir);
    setenv("MC_TEXT_FULL_CONTEXT", "1", 1);
    CHECK(mc_encode_text(ctx, tok, n, 1, full) == MC_OK, "%s: encode full", dir);
    unsetenv("MC_TEXT_FULL_CONTEXT");
    CHECK(max_abs_diff(cut, full, (size_t)n * D) <= 1e-6, "%s: cut and full context differ by %g", dir,
          max_abs_diff(cut, full, (size_t)n * D));
    /* text 4 alone runs 13 positions instead of 77 */
    CHECK(max_abs_diff(cut1, cut + 4 * D, (size_t)D) <= 1e-6, "%s: alone vs in a batch: %g", dir,
          max_abs_diff(cut1, cut + 4 * D, (size_t)D));
    /* tokens after the end token: no effect on a causal tower, an effect on a non-causal one */
    double dj = max_abs_diff(jk, cut, (size_t)n * D);
    if (causal) CHECK(dj <= 1e-6, "%s: tokens after the end changed a causal embedding by %g", dir, dj);
    else CHECK(dj > 1e-4, "%s: tokens after the end did not change a non-causal embedding (%g)", dir, dj);
    free(tok), free(junk), free(cut), free(full), free(cut1), free(jk);
    mc_context_free(ctx);
    mc_model_free(m);
}

int main(void) {
    /* whole models (ViT image towers) */
    run_case("oc_mobileclip_b", NULL, 1);
    run_case("oc_mobileclip2_b", "open_clip_model.safetensors", 1);
    run_case("oc_mobileclip2_l14", NULL, 1);
    run_case("v1_vit_causal", NULL, 1);
    run_case("v1_vit_causal", "model.pt", 1);
    /* text-only loads of the MCi cases */
    const char *mci[] = {"oc_mobileclip_s1", "oc_mobileclip2_s0", "oc_mobileclip2_s3", "oc_mobileclip2_s4",
                         "v1_mci_mct", "v1_mci_base"};
    for (size_t i = 0; i < sizeof mci / sizeof *mci; i++) run_case(mci[i], NULL, 0);
    /* a ViT model and an MCT text tower through the AVX-512 source over emulated intrinsics */
    if (test_use_set(3)) {
        run_case("oc_mobileclip_b", NULL, 1);
        run_case("v1_mci_mct", NULL, 0);
        test_use_set(-1);
    }
    test_text_cut("oc_mobileclip2_b", 1);
    test_text_cut("v1_vit_causal", 1);
    test_text_cut("v1_mci_mct", 0);
    test_text_cut("oc_mobileclip2_s0", 0);   /* OpenCLIP layout without the causal mask */
    test_errors();
    if (getenv("MC_TEST_EVERY_TENSOR")) {   /* every tensor of every fixture checkpoint (minutes) */
        static const char *const oc[] = {"oc_mobileclip_b", "oc_mobileclip_s1", "oc_mobileclip2_b", "oc_mobileclip2_l14",
                                         "oc_mobileclip2_s0", "oc_mobileclip2_s3", "oc_mobileclip2_s4"};
        for (size_t i = 0; i < sizeof oc / sizeof *oc; i++)
            test_every_tensor(oc[i], "open_clip_model.safetensors", "open_clip_config.json", 1);
        test_every_tensor("train_s0_tiny", "init.pt", "config.json", 1);
        test_every_tensor("v1_mci_base", "model.pt", "config.json", 1);
        test_every_tensor("v1_mci_mct", "model.pt", "config.json", 1);
        test_every_tensor("v1_mci_mct", "model_reparameterized.pt", "config.json", 1);
        test_every_tensor("v1_vit_causal", "model.pt", "config.json", 1);
    } else {
        /* every tensor of a ViT + transformer model; every 11th (13th) of an MCi one, so
         * that each kind of block is hit and make test stays short */
        test_every_tensor("oc_mobileclip2_b", "open_clip_model.safetensors", "open_clip_config.json", 1);
        test_every_tensor("v1_vit_causal", "model.pt", "config.json", 1);
        test_every_tensor("oc_mobileclip2_s0", "open_clip_model.safetensors", "open_clip_config.json", 11);
        test_every_tensor("v1_mci_mct", "model.pt", "config.json", 13);
    }
    test_bad_args();
    return test_summary("test_model");
}
