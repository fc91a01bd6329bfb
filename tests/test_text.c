/*
 * test_text.c - text towers against the reference outputs: the OpenCLIP
 * text transformer of every oc_* case, and the mobileclip repo's "mct"
 * (v1_mci_mct, unfused and reparameterised checkpoints), "base"
 * (v1_mci_base) and causal "base" (v1_vit_causal), fed the stored tokens.
 * Heads and masking come from each case's config.
 */
#include "core/json.h"
#include "test.h"
#include "model/text.h"
#include "tower_check.h"

static float *load_f32(const mc_checkpoint *ck, const char *name, int64_t *numel) {
    const mc_tensor_info *t = mc_checkpoint_find(ck, name);
    if (!t) return NULL;
    float *d = malloc((size_t)t->numel * sizeof(float));
    if (mc_convert_to_f32(t->dtype, t->data, (size_t)t->numel, d) != MC_OK) { free(d); return NULL; }
    if (numel) *numel = t->numel;
    return d;
}

static void run_case(const char *dir, const char *file, int v1) {
    char mpath[512], epath[512], cpath[512];
    snprintf(mpath, sizeof mpath, "models/%s/%s", dir, file);
    snprintf(epath, sizeof epath, "models/%s/expected.safetensors", dir);
    snprintf(cpath, sizeof cpath, "models/%s/%s", dir, v1 ? "config.json" : "open_clip_config.json");
    mc_error err;
    mc_error_clear(&err);
    mc_checkpoint *ck = NULL, *ex = NULL;
    mc_json *cfg = NULL;
    char *text = NULL;
    size_t len = 0;
    mc_status st = mc_file_read_all(fixture(cpath), 1 << 20, &text, &len, &err);
    CHECK(st == MC_OK, "%s: config: %s", dir, err.message);
    if (st == MC_OK) {
        st = mc_json_parse(text, len, &cfg, &err);
        CHECK(st == MC_OK, "%s: config: %s", dir, err.message);
    }
    free(text);
    st = mc_checkpoint_open(fixture(mpath), &ck, &err);
    CHECK(st == MC_OK, "%s/%s: open: %s", dir, file, err.message);
    st = mc_checkpoint_open(fixture(epath), &ex, &err);
    CHECK(st == MC_OK, "%s: open expected: %s", dir, err.message);
    if (!ck || !ex || !cfg) goto done;

    mc_text_params p = mc_text_default_params();
    if (v1) {
        const mc_json *tc = mc_json_get(cfg, "text_cfg");
        p.layout = MC_TEXT_LAYOUT_MOBILECLIP;
        p.prefix = "text_encoder.";
        p.arch = mc_json_str(mc_json_get(tc, "model_name"), "base");
        p.heads = mc_json_int(mc_json_get(tc, "n_heads_per_layer"), 0);
        p.causal = mc_json_bool(mc_json_get(tc, "causal_masking"), false);
    } else {
        const mc_json *tc = mc_json_path(cfg, "model_cfg.text_cfg");
        p.heads = mc_json_int(mc_json_get(tc, "heads"), 0);
        p.causal = !mc_json_bool(mc_json_get(tc, "no_causal_mask"), false);
    }
    mc_arena arena = {0};
    mc_binder b;
    mc_binder_init(&b, ck, mpath, &arena, &err);
    mc_text_tower *t = NULL;
    st = mc_text_tower_load(&b, &p, &t);
    CHECK(st == MC_OK && t, "%s: load: %s", dir, err.message);
    const char *pre[] = {p.prefix, NULL};
    if (st == MC_OK) {
        st = mc_binder_finish(&b, pre);
        CHECK(st == MC_OK, "%s: unused tensors: %s", dir, err.message);
    }
    if (t) {
        const mc_tensor_info *tk = mc_checkpoint_find(ex, "tokens");
        int64_t nf = 0;
        float *feat = load_f32(ex, "text_features", &nf);
        float *emb = load_f32(ex, "text_embeddings", NULL);
        CHECK(tk && tk->dtype == MC_DTYPE_I64 && tk->ndim == 2 && tk->shape[1] == t->context_length && feat &&
                  emb && nf == tk->shape[0] * t->out_dim,
              "%s: expected tensors missing or of another size", dir);
        if (tk && tk->dtype == MC_DTYPE_I64 && tk->ndim == 2 && feat && emb && nf == tk->shape[0] * t->out_dim) {
            int n = (int)tk->shape[0];
            int32_t *ids = malloc((size_t)tk->numel * sizeof(int32_t));
            for (int64_t i = 0; i < tk->numel; i++) ids[i] = (int32_t)((const int64_t *)tk->data)[i];
            float *ws = malloc(t->workspace_floats(t, n) * sizeof(float));
            float *out = malloc((size_t)n * t->out_dim * sizeof(float));
            st = t->forward(t, ws, ids, n, out, &err);
            CHECK(st == MC_OK, "%s: forward: %s", dir, err.message);
            char label[256];
            snprintf(label, sizeof label, "%-20s %-28s %-10s", dir, file, t->arch);
            check_tower_output(label, out, feat, emb, n, t->out_dim);
            free(ids);
            free(ws);
            free(out);
        }
        free(feat);
        free(emb);
        t->destroy(t);
        free(t);
    }
    mc_binder_free(&b);
    mc_arena_free(&arena);
done:
    mc_json_free(cfg);
    mc_checkpoint_close(ck);
    mc_checkpoint_close(ex);
}

int main(void) {
    const char *oc[] = {"oc_mobileclip_s1", "oc_mobileclip_b", "oc_mobileclip2_s0", "oc_mobileclip2_s3",
                        "oc_mobileclip2_s4", "oc_mobileclip2_b", "oc_mobileclip2_l14"};
    for (size_t i = 0; i < sizeof oc / sizeof *oc; i++) run_case(oc[i], "open_clip_model.safetensors", 0);
    run_case("v1_mci_mct", "model.pt", 1);
    run_case("v1_mci_mct", "model_reparameterized.pt", 1);
    run_case("v1_mci_base", "model.pt", 1);
    run_case("v1_vit_causal", "model.pt", 1);
    return test_summary("test_text");
}
