/*
 * test_e2e.c - every fixture model end to end through the public API: load
 * from its folder, then (a) the stored pixels and tokens and (b) the image
 * files and texts named in the fixture's metadata, through this library's
 * own preprocessing and tokenizer, must give the reference embeddings within
 * 1e-4 max-abs (after L2 normalisation).
 */
#include "test.h"

#include "core/json.h"
#include "mobileclip.h"

#include <stdint.h>

static const char *const cases[] = {
    "v1_mci_mct", "v1_mci_base", "v1_vit_causal", "oc_mobileclip_s1", "oc_mobileclip_b",
    "oc_mobileclip2_s0", "oc_mobileclip2_s3", "oc_mobileclip2_s4", "oc_mobileclip2_b",
    "oc_mobileclip2_l14",
};

#define TOL 1e-4f

static const mc_tensor_info *need(const mc_checkpoint *ck, const char *name, const char *cs) {
    const mc_tensor_info *t = mc_checkpoint_find(ck, name);
    CHECK(t != NULL, "%s: expected.safetensors lacks '%s'", cs, name);
    return t;
}

static void run_case(const char *cs) {
    char dir[1024], exp_path[1024];
    snprintf(dir, sizeof dir, "%s", fixture("models/"));
    strncat(dir, cs, sizeof dir - strlen(dir) - 1);
    snprintf(exp_path, sizeof exp_path, "%s/expected.safetensors", dir);
    mc_error err;
    mc_error_clear(&err);
    mc_checkpoint *ex = NULL;
    if (mc_checkpoint_open(exp_path, &ex, &err) != MC_OK) {
        CHECK(0, "%s: %s", cs, err.message);
        return;
    }
    mc_model_params mp = mc_model_default_params();
    mp.vocab_path = fixture("tokenizer/bpe_simple_vocab_16e6.txt.gz");
    mc_model *m = NULL;
    if (mc_model_load(dir, &mp, &m, &err) != MC_OK) {
        CHECK(0, "%s: load: %s", cs, err.message);
        mc_checkpoint_close(ex);
        return;
    }
    mc_model_info info;
    mc_model_get_info(m, &info);
    mc_context *ctx = NULL;
    mc_context_params cp = mc_context_default_params();
    CHECK(mc_context_new(m, &cp, &ctx, &err) == MC_OK, "%s: context: %s", cs, err.message);
    const mc_tensor_info *px = need(ex, "pixels", cs), *tk = need(ex, "tokens", cs);
    const mc_tensor_info *ie = need(ex, "image_embeddings", cs), *te = need(ex, "text_embeddings", cs);
    const mc_tensor_info *ls = need(ex, "logit_scale", cs);
    const char *images = mc_checkpoint_metadata(ex, "images");
    const char *texts = mc_checkpoint_metadata(ex, "texts");
    CHECK(images && texts, "%s: metadata lacks images/texts", cs);
    if (!ctx || !px || !tk || !ie || !te || !ls || !images || !texts) goto out;
    int n_img = (int)px->shape[0], S = (int)px->shape[2], n_txt = (int)tk->shape[0];
    int D = info.embed_dim, L = (int)tk->shape[1];
    CHECK(info.image_size == S, "%s: image size %d, fixture %d", cs, info.image_size, S);
    CHECK(ie->shape[1] == D, "%s: embed dim %d, fixture %lld", cs, D, (long long)ie->shape[1]);
    CHECK(fabsf(info.logit_scale - expf(*(const float *)ls->data)) <= 1e-5f * info.logit_scale,
          "%s: logit scale %g vs exp(%g)", cs, info.logit_scale, *(const float *)ls->data);
    float *out = malloc(sizeof(float) * (size_t)(n_img > n_txt ? n_img : n_txt) * D);
    float *pix = malloc(sizeof(float) * (size_t)n_img * 3 * S * S);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n_txt * L);

    /* (a) stored inputs */
    CHECK(mc_encode_image(ctx, px->data, n_img, 1, out) == MC_OK, "%s: encode_image", cs);
    float d = max_abs_diff(out, ie->data, (size_t)n_img * D);
    CHECK(d <= TOL, "%s: image embeddings from stored pixels: max-abs %.3g", cs, d);
    printf("%-20s image (stored pixels) max-abs %.2e\n", cs, d);
    const int64_t *t64 = tk->data;
    for (int i = 0; i < n_txt * L; i++) ids[i] = (int32_t)t64[i];
    CHECK(mc_encode_text(ctx, ids, n_txt, 1, out) == MC_OK, "%s: encode_text", cs);
    d = max_abs_diff(out, te->data, (size_t)n_txt * D);
    CHECK(d <= TOL, "%s: text embeddings from stored tokens: max-abs %.3g", cs, d);
    printf("%-20s text  (stored tokens) max-abs %.2e\n", cs, d);

    /* (b) end to end from files and texts */
    char names[1024];
    snprintf(names, sizeof names, "%s", images);
    int i = 0;
    for (char *save = NULL, *nm = strtok_r(names, ",", &save); nm && i < n_img;
         nm = strtok_r(NULL, ",", &save), i++) {
        char rel[512];
        snprintf(rel, sizeof rel, "images/%s", nm);
        CHECK(mc_image_preprocess_file(fixture(rel), &info.preprocess, pix + (size_t)i * 3 * S * S,
                                       &err) == MC_OK, "%s: preprocess %s: %s", cs, nm, err.message);
    }
    CHECK(i == n_img, "%s: %d image names for %d images", cs, i, n_img);
    d = max_abs_diff(pix, px->data, (size_t)n_img * 3 * S * S);
    CHECK(d <= 1e-6f, "%s: own preprocessing vs reference pixels: max-abs %.3g", cs, d);
    CHECK(mc_encode_image(ctx, pix, n_img, 1, out) == MC_OK, "%s: encode_image (files)", cs);
    d = max_abs_diff(out, ie->data, (size_t)n_img * D);
    CHECK(d <= TOL, "%s: image embeddings from files: max-abs %.3g", cs, d);
    printf("%-20s image (from files)    max-abs %.2e\n", cs, d);

    mc_json *js = NULL;
    CHECK(mc_json_parse(texts, strlen(texts), &js, &err) == MC_OK && js->type == MC_JSON_ARRAY &&
              (int)js->len == n_txt, "%s: texts metadata", cs);
    if (js && js->type == MC_JSON_ARRAY && (int)js->len == n_txt) {
        const mc_tokenizer *tok = mc_model_tokenizer(m);
        int same = 1;
        for (int k = 0; k < n_txt; k++) {
            CHECK(mc_tokenizer_encode_n(tok, js->items[k].string, js->items[k].len, L,
                                        ids + (size_t)k * L, &err) == MC_OK, "%s: tokenize", cs);
            for (int j = 0; j < L; j++) same &= ids[(size_t)k * L + j] == (int32_t)t64[(size_t)k * L + j];
        }
        CHECK(same, "%s: own tokens differ from the reference tokens", cs);
        CHECK(mc_encode_text(ctx, ids, n_txt, 1, out) == MC_OK, "%s: encode_text (texts)", cs);
        d = max_abs_diff(out, te->data, (size_t)n_txt * D);
        CHECK(d <= TOL, "%s: text embeddings from texts: max-abs %.3g", cs, d);
        printf("%-20s text  (from texts)    max-abs %.2e\n", cs, d);
    }
    mc_json_free(js);
    free(out);
    free(pix);
    free(ids);
out:
    mc_context_free(ctx);
    mc_model_free(m);
    mc_checkpoint_close(ex);
}

int main(void) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(cases[i]);
    return test_summary("test_e2e");
}
