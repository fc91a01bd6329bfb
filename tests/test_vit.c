/*
 * test_vit.c - ViT image towers against the reference outputs: the timm
 * towers of oc_mobileclip_b / oc_mobileclip2_b (vit_base_mci_224) and
 * oc_mobileclip2_l14 (vit_large_patch14_clip_224), and MobileCLIP-B's vit_b16
 * (v1_vit_causal, a torch.save checkpoint).
 */
#include "test.h"
#include "tower_check.h"
#include "model/vit.h"

static float *load_f32(const mc_checkpoint *ck, const char *name, int64_t *numel) {
    const mc_tensor_info *t = mc_checkpoint_find(ck, name);
    if (!t) return NULL;
    float *d = malloc((size_t)t->numel * sizeof(float));
    if (mc_convert_to_f32(t->dtype, t->data, (size_t)t->numel, d) != MC_OK) { free(d); return NULL; }
    if (numel) *numel = t->numel;
    return d;
}

static void run_case(const char *dir, const char *file, const char *arch) {
    char mpath[512], epath[512];
    snprintf(mpath, sizeof mpath, "models/%s/%s", dir, file);
    snprintf(epath, sizeof epath, "models/%s/expected.safetensors", dir);
    mc_error err;
    mc_error_clear(&err);
    mc_checkpoint *ck = NULL, *ex = NULL;
    mc_status st = mc_checkpoint_open(fixture(mpath), &ck, &err);
    CHECK(st == MC_OK, "%s: open: %s", dir, err.message);
    st = mc_checkpoint_open(fixture(epath), &ex, &err);
    CHECK(st == MC_OK, "%s: open expected: %s", dir, err.message);
    if (!ck || !ex) { mc_checkpoint_close(ck); mc_checkpoint_close(ex); return; }

    int known = 0;
    mc_vit_params p = mc_vit_default_params(arch, &known);
    CHECK(known, "%s: arch %s not known", dir, arch);
    mc_arena arena = {0};
    mc_binder b;
    mc_binder_init(&b, ck, mpath, &arena, &err);
    mc_image_tower *t = NULL;
    st = mc_vit_tower_load(&b, &p, &t);
    CHECK(st == MC_OK && t, "%s: load: %s", dir, err.message);
    const char *pre[] = {p.prefix, NULL};
    if (st == MC_OK) {
        st = mc_binder_finish(&b, pre);
        CHECK(st == MC_OK, "%s: unused tensors: %s", dir, err.message);
    }
    if (t) {
        int64_t np = 0, nf = 0;
        float *pix = load_f32(ex, "pixels", &np);
        float *feat = load_f32(ex, "image_features", &nf);
        float *emb = load_f32(ex, "image_embeddings", NULL);
        int n = 3;
        CHECK(pix && feat && emb && np == (int64_t)n * 3 * t->image_size * t->image_size &&
                  nf == (int64_t)n * t->out_dim,
              "%s: expected tensors missing or of another size", dir);
        if (pix && feat && emb && nf == (int64_t)n * t->out_dim) {
            float *ws = malloc(t->workspace_floats(t, n) * sizeof(float));
            float *out = malloc((size_t)n * t->out_dim * sizeof(float));
            st = t->forward(t, ws, pix, n, out, &err);
            CHECK(st == MC_OK, "%s: forward: %s", dir, err.message);
            char label[256];
            snprintf(label, sizeof label, "%-20s %-28s", dir, arch);
            check_tower_output(label, out, feat, emb, n, t->out_dim);
            free(ws);
            free(out);
        }
        free(pix);
        free(feat);
        free(emb);
        t->destroy(t);
        free(t);
    }
    mc_binder_free(&b);
    mc_arena_free(&arena);
    mc_checkpoint_close(ck);
    mc_checkpoint_close(ex);
}

int main(void) {
    run_case("oc_mobileclip_b", "open_clip_model.safetensors", "vit_base_mci_224");
    run_case("oc_mobileclip2_b", "open_clip_model.safetensors", "vit_base_mci_224");
    run_case("oc_mobileclip2_l14", "open_clip_model.safetensors", "vit_large_patch14_clip_224");
    run_case("v1_vit_causal", "model.pt", "vit_b16");
    return test_summary("test_vit");
}
