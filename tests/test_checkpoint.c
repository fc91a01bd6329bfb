/*
 * test_checkpoint.c - checkpoint readers and configs on the real fixtures:
 * every torch.save .pt and every .safetensors opens with the right tensors,
 * the bf16 torch.save dicts inside the DataCompDR shard read from memory, the
 * fixture configs and the built-in configs carry the right fields, and a
 * model's checkpoint and config are found on disk.
 */
#include "test.h"

#include "io/config.h"
#include "core/core.h"
#include "io/ckpt_open.h"

#include <stdint.h>
#include <unistd.h>
#include <zlib.h>

static const mc_tensor_info *expect_tensor(const mc_checkpoint *ck, const char *name, mc_dtype dtype,
                                           int ndim, const int64_t *shape) {
    const mc_tensor_info *t = mc_checkpoint_find(ck, name);
    CHECK(t != NULL, "tensor %s missing", name);
    if (!t) return NULL;
    CHECK(t->dtype == dtype, "%s: dtype %s", name, mc_dtype_name(t->dtype));
    CHECK(t->ndim == ndim, "%s: ndim %d, want %d", name, t->ndim, ndim);
    int same = t->ndim == ndim;
    for (int k = 0; same && k < ndim; k++) same = t->shape[k] == shape[k];
    CHECK(same, "%s: wrong shape", name);
    CHECK(t->data != NULL || t->nbytes == 0, "%s: no data", name);
    return t;
}

static mc_checkpoint *open_ok(const char *path) {
    mc_checkpoint *ck = NULL;
    mc_error err;
    mc_error_clear(&err);
    mc_status st = mc_checkpoint_open(path, &ck, &err);
    CHECK(st == MC_OK, "%s: %s", path, err.message);
    return ck;
}

static void test_pt_files(void) {
    static const struct { const char *rel; size_t count; } pts[] = {
        {"models/v1_mci_mct/model.pt", 407},
        {"models/v1_mci_mct/model_reparameterized.pt", 176},
        {"models/v1_mci_base/model.pt", 351},
        {"models/v1_vit_causal/model.pt", 73},
        {"models/train_s0_tiny/init.pt", 407},
    };
    for (size_t i = 0; i < sizeof pts / sizeof pts[0]; i++) {
        mc_checkpoint *ck = open_ok(fixture(pts[i].rel));
        if (!ck) continue;
        CHECK(mc_checkpoint_format(ck) == MC_FORMAT_TORCH_ZIP, "%s: format", pts[i].rel);
        CHECK(mc_checkpoint_count(ck) == pts[i].count, "%s: %zu tensors, want %zu", pts[i].rel,
              mc_checkpoint_count(ck), pts[i].count);
        const mc_tensor_info *ls = expect_tensor(ck, "logit_scale", MC_DTYPE_F32, 0, NULL);
        if (ls) {
            float v;
            memcpy(&v, ls->data, 4);
            CHECK(ls->numel == 1 && isfinite(v), "%s: logit_scale", pts[i].rel);
        }
        /* every tensor's data lies in the file or in a copy, and sizes agree */
        size_t bad = 0;
        for (size_t k = 0; k < mc_checkpoint_count(ck); k++) {
            const mc_tensor_info *t = mc_checkpoint_tensor(ck, k);
            if (t->nbytes != (size_t)t->numel * mc_dtype_size(t->dtype)) bad++;
            if (t->nbytes && ((uintptr_t)t->data % mc_dtype_size(t->dtype))) bad++;
        }
        CHECK(bad == 0, "%s: %zu tensors with bad sizes or misaligned data", pts[i].rel, bad);
        mc_checkpoint_close(ck);
    }

    mc_checkpoint *ck = open_ok(fixture("models/v1_mci_mct/model.pt"));
    mc_checkpoint *rp = open_ok(fixture("models/v1_mci_mct/model_reparameterized.pt"));
    if (ck && rp) {
        expect_tensor(ck, "image_encoder.model.patch_embed.0.rbr_conv.0.conv.weight", MC_DTYPE_F32, 4,
                      (int64_t[]){16, 3, 3, 3});
        expect_tensor(ck, "image_encoder.model.patch_embed.0.rbr_conv.0.bn.num_batches_tracked",
                      MC_DTYPE_I64, 0, NULL);
        expect_tensor(rp, "image_encoder.model.patch_embed.0.reparam_conv.weight", MC_DTYPE_F32, 4,
                      (int64_t[]){16, 3, 3, 3});
        CHECK(mc_checkpoint_find(rp, "image_encoder.model.patch_embed.0.rbr_conv.0.conv.weight") == NULL,
              "reparameterized checkpoint still has the train-time branch");
        /* tensors that reparameterization leaves alone are byte-identical */
        size_t same = 0, compared = 0;
        for (size_t k = 0; k < mc_checkpoint_count(rp); k++) {
            const mc_tensor_info *a = mc_checkpoint_tensor(rp, k);
            const mc_tensor_info *b = mc_checkpoint_find(ck, a->name);
            if (!b || strncmp(a->name, "text_encoder.", 13)) continue;
            compared++;
            if (a->nbytes == b->nbytes && a->dtype == b->dtype && !memcmp(a->data, b->data, a->nbytes))
                same++;
        }
        CHECK(compared > 10 && same == compared, "model.pt vs reparameterized: %zu of %zu text tensors equal",
              same, compared);
        const mc_tensor_info *x = mc_checkpoint_find(ck, "logit_scale");
        const mc_tensor_info *y = mc_checkpoint_find(rp, "logit_scale");
        CHECK(x && y && !memcmp(x->data, y->data, 4), "logit_scale differs between the two files");
    }
    mc_checkpoint_close(ck);
    mc_checkpoint_close(rp);

    ck = open_ok(fixture("models/v1_vit_causal/model.pt"));
    if (ck) {
        expect_tensor(ck, "image_encoder.model.cls_token", MC_DTYPE_F32, 3, (int64_t[]){1, 1, 128});
        const mc_tensor_info *t = mc_checkpoint_find(ck, "text_encoder.embedding_layer.weight");
        CHECK(t && t->ndim == 2 && t->shape[0] == 49408 && t->shape[1] == 32, "text embedding shape");
    }
    mc_checkpoint_close(ck);
}

static void test_safetensors_files(void) {
    static const char *const cases[] = {"oc_mobileclip_s1", "oc_mobileclip_b", "oc_mobileclip2_s0",
                                        "oc_mobileclip2_s3", "oc_mobileclip2_s4", "oc_mobileclip2_b",
                                        "oc_mobileclip2_l14", "v1_mci_mct", "v1_mci_base",
                                        "v1_vit_causal", "train_s0_tiny"};
    char rel[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (!strncmp(cases[i], "oc_", 3)) {
            snprintf(rel, sizeof rel, "models/%s/open_clip_model.safetensors", cases[i]);
            mc_checkpoint *ck = open_ok(fixture(rel));
            if (ck) {
                CHECK(mc_checkpoint_format(ck) == MC_FORMAT_SAFETENSORS, "%s: format", rel);
                CHECK(mc_checkpoint_count(ck) > 50, "%s: only %zu tensors", rel, mc_checkpoint_count(ck));
                const mc_tensor_info *t = mc_checkpoint_find(ck, "token_embedding.weight");
                if (!t) t = mc_checkpoint_find(ck, "text.token_embedding.weight");
                CHECK(t && t->ndim == 2 && t->shape[0] == 49408 && t->shape[1] == 32,
                      "%s: token embedding", rel);
                CHECK(mc_checkpoint_find(ck, "logit_scale") != NULL, "%s: logit_scale", rel);
            }
            mc_checkpoint_close(ck);
        }
        snprintf(rel, sizeof rel, "models/%s/expected.safetensors", cases[i]);
        mc_checkpoint *ck = open_ok(fixture(rel));
        if (ck) CHECK(mc_checkpoint_count(ck) > 3, "%s: only %zu tensors", rel, mc_checkpoint_count(ck));
        if (ck && strcmp(cases[i], "train_s0_tiny") != 0) {
            const mc_tensor_info *t = mc_checkpoint_find(ck, "tokens");
            CHECK(t && t->dtype == MC_DTYPE_I64 && t->ndim == 2 && t->shape[1] == 77, "%s: tokens", rel);
        }
        mc_checkpoint_close(ck);
    }
}

/* ---- the bf16 torch.save dicts of the DataCompDR-12M-bf16 shard ---- */

static int gunzip(const uint8_t *in, size_t n, uint8_t **out, size_t *out_len) {
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (!buf || inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) { free(buf); return -1; }
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)n;
    int rc;
    do {
        if (len == cap) {
            uint8_t *nb = realloc(buf, cap *= 2);
            if (!nb) { rc = Z_MEM_ERROR; break; }
            buf = nb;
        }
        zs.next_out = buf + len;
        zs.avail_out = (uInt)(cap - len);
        rc = inflate(&zs, Z_NO_FLUSH);
        len = cap - zs.avail_out;
    } while (rc == Z_OK);
    inflateEnd(&zs);
    if (rc != Z_STREAM_END) { free(buf); return -1; }
    *out = buf;
    *out_len = len;
    return 0;
}

static void test_bf16_shard(void) {
    mc_file_map tar;
    mc_error err;
    if (mc_file_map_open(fixture("datacompdr/shards/00000000_bf16.tar"), &tar, &err) != MC_OK) {
        CHECK(0, "%s", err.message);
        return;
    }
    mc_checkpoint *ref = open_ok(fixture("datacompdr/expected_reinforcements.safetensors"));
    int found = 0;
    for (size_t off = 0; off + 512 <= tar.size && tar.data[off];) {
        const uint8_t *h = tar.data + off;
        char name[101];
        memcpy(name, h, 100);
        name[100] = 0;
        size_t size = (size_t)strtoull((const char *)h + 124, NULL, 8);
        const uint8_t *body = h + 512;
        if (off + 512 + size > tar.size) break;
        size_t nl = strlen(name);
        if (nl > 7 && !strcmp(name + nl - 7, ".pth.gz")) {
            uint8_t *raw = NULL;
            size_t raw_len = 0;
            CHECK(gunzip(body, size, &raw, &raw_len) == 0, "%s: gunzip", name);
            mc_checkpoint *ck = NULL;
            mc_status st = raw ? mc_checkpoint_open_memory(raw, raw_len, name, &ck, &err) : MC_ERR_IO;
            free(raw); /* the checkpoint keeps its own copy */
            CHECK(st == MC_OK, "%s: %s", name, err.message);
            if (ck) {
                found++;
                const mc_tensor_info *ie = expect_tensor(ck, "image_emb", MC_DTYPE_BF16, 2, (int64_t[]){30, 40});
                const mc_tensor_info *te = expect_tensor(ck, "text_emb", MC_DTYPE_BF16, 2, (int64_t[]){6, 40});
                char key[128];
                memcpy(key, name, nl - 7);
                key[nl - 7] = 0;
                for (int w = 0; w < 2 && ref; w++) {
                    const mc_tensor_info *t = w ? te : ie;
                    char rn[160];
                    snprintf(rn, sizeof rn, "%s/%s", key, w ? "text_emb" : "image_emb");
                    const mc_tensor_info *r = mc_checkpoint_find(ref, rn);
                    CHECK(r && t && r->numel == t->numel, "%s: reference %s", name, rn);
                    if (!r || !t || r->numel != t->numel) continue;
                    float *a = malloc((size_t)t->numel * 4);
                    mc_convert_to_f32(t->dtype, t->data, (size_t)t->numel, a);
                    float d = max_abs_diff(a, r->data, (size_t)t->numel);
                    CHECK(d < 4e-3f, "%s: bf16 %s differs from the reference by %g", name, rn, d);
                    free(a);
                }
                mc_checkpoint_close(ck);
            }
        }
        off += 512 + ((size + 511) / 512) * 512;
    }
    CHECK(found == 3, "found %d .pth.gz samples in the bf16 shard", found);
    mc_checkpoint_close(ref);
    mc_file_map_close(&tar);
}

/* ---- configs ---- */

static void test_configs(void) {
    static const struct {
        const char *dir; mc_config_family fam; const char *image; int size; const char *text;
        int causal; int interp; float mean0;
    } cases[] = {
        {"v1_mci_mct", MC_CONFIG_FAMILY_MOBILECLIP, "mci0", 256, "mct", 0, MC_INTERP_BILINEAR, 0},
        {"v1_mci_base", MC_CONFIG_FAMILY_MOBILECLIP, "mci2", 256, "base", 0, MC_INTERP_BILINEAR, 0},
        {"v1_vit_causal", MC_CONFIG_FAMILY_MOBILECLIP, "vit_b16", 224, "base", 1, MC_INTERP_BILINEAR, 0},
        {"train_s0_tiny", MC_CONFIG_FAMILY_MOBILECLIP, "mci0", 256, "mct", 0, MC_INTERP_BILINEAR, 0},
        {"oc_mobileclip_s1", MC_CONFIG_FAMILY_OPENCLIP, "fastvit_mci1", 256, "open_clip", 0, MC_INTERP_BILINEAR, 0},
        {"oc_mobileclip_b", MC_CONFIG_FAMILY_OPENCLIP, "vit_base_mci_224", 224, "open_clip", 1, MC_INTERP_BILINEAR, 0},
        {"oc_mobileclip2_s0", MC_CONFIG_FAMILY_OPENCLIP, "fastvit_mci0", 256, "open_clip", 0, MC_INTERP_BILINEAR, 0},
        {"oc_mobileclip2_s3", MC_CONFIG_FAMILY_OPENCLIP, "fastvit_mci3", 256, "open_clip", 0, MC_INTERP_BILINEAR, 0.48145466f},
        {"oc_mobileclip2_s4", MC_CONFIG_FAMILY_OPENCLIP, "fastvit_mci4", 256, "open_clip", 0, MC_INTERP_BILINEAR, 0.48145466f},
        {"oc_mobileclip2_b", MC_CONFIG_FAMILY_OPENCLIP, "vit_base_mci_224", 224, "open_clip", 1, MC_INTERP_BILINEAR, 0},
        {"oc_mobileclip2_l14", MC_CONFIG_FAMILY_OPENCLIP, "vit_large_patch14_clip_224", 224, "open_clip", 0, MC_INTERP_BICUBIC, 0.48145466f},
    };
    char rel[256], ckpt[4096];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(rel, sizeof rel, "models/%s", cases[i].dir);
        mc_config c;
        mc_error err;
        mc_status st = mc_config_resolve(fixture(rel), NULL, NULL, &c, ckpt, sizeof ckpt, &err);
        CHECK(st == MC_OK, "%s: %s", rel, err.message);
        if (st != MC_OK) continue;
        CHECK(c.family == cases[i].fam, "%s: family", rel);
        CHECK(!strcmp(c.image_arch, cases[i].image), "%s: image arch %s", rel, c.image_arch);
        CHECK(c.image_size == cases[i].size && c.preprocess.size == cases[i].size, "%s: image size", rel);
        CHECK(!strcmp(c.text_arch, cases[i].text), "%s: text arch %s", rel, c.text_arch);
        CHECK(c.causal == cases[i].causal, "%s: causal %d", rel, c.causal);
        CHECK((int)c.preprocess.interp == cases[i].interp, "%s: interpolation", rel);
        CHECK(fabsf(c.preprocess.mean[0] - cases[i].mean0) < 1e-7f, "%s: mean", rel);
        CHECK(c.preprocess.std[0] > 0 && c.preprocess.resize_mode == MC_RESIZE_SHORTEST, "%s: std/resize", rel);
        CHECK(c.embed_dim == 32 && c.text_width == 32 && c.text_heads == 2 && c.text_layers == 2 &&
              c.context_length == 77 && c.vocab_size == 49408 && c.text_mlp_ratio == 4.0f,
              "%s: text fields", rel);
        const char *want = cases[i].fam == MC_CONFIG_FAMILY_OPENCLIP ? "open_clip_model.safetensors"
                           : !strcmp(cases[i].dir, "train_s0_tiny") ? "init.pt" : "model.pt";
        size_t cl = strlen(ckpt), wl = strlen(want);
        CHECK(cl > wl && !strcmp(ckpt + cl - wl, want), "%s: checkpoint found: %s", rel, ckpt);
    }
    mc_config c;
    mc_error err;
    /* built-ins, as in apple/ml-mobileclip mobileclip/configs */
    CHECK(mc_config_builtin("mobileclip_s0", &c, &err) == MC_OK, "s0: %s", err.message);
    CHECK(c.family == MC_CONFIG_FAMILY_MOBILECLIP && !strcmp(c.image_arch, "mci0") && c.image_size == 256 &&
          !strcmp(c.text_arch, "mct") && c.text_width == 512 && c.text_heads == 8 && c.text_layers == 4 &&
          !c.causal && c.embed_dim == 512 && c.text_mlp_ratio == 4.0f &&
          !strcmp(c.norm_layer, "layer_norm_fp32") && c.preprocess.interp == MC_INTERP_BILINEAR &&
          c.preprocess.mean[0] == 0 && c.preprocess.std[0] == 1, "mobileclip_s0 fields");
    CHECK(mc_config_builtin("mobileclip_s1", &c, &err) == MC_OK && !strcmp(c.image_arch, "mci1") &&
          !strcmp(c.text_arch, "base") && c.text_layers == 12 && !c.causal, "mobileclip_s1");
    CHECK(mc_config_builtin("mobileclip_s2", &c, &err) == MC_OK && !strcmp(c.image_arch, "mci2") &&
          c.text_layers == 12 && c.image_size == 256, "mobileclip_s2");
    CHECK(mc_config_builtin("mobileclip_b", &c, &err) == MC_OK && !strcmp(c.image_arch, "vit_b16") &&
          c.image_size == 224 && c.causal && c.text_layers == 12, "mobileclip_b");
    CHECK(mc_config_builtin("MOBILECLIP_BLT", &c, &err) == MC_OK && !strcmp(c.image_arch, "vit_b16") &&
          !strcmp(c.name, "mobileclip_blt"), "mobileclip_blt");
    CHECK(mc_config_builtin("mobileclip2_s4", &c, &err) == MC_OK && !strcmp(c.image_arch, "fastvit_mci4") &&
          c.text_width == 768 && c.text_heads == 12 && c.embed_dim == 768 && !c.causal, "MobileCLIP2-S4");
    CHECK(mc_config_builtin("mobileclip_s9", &c, &err) == MC_ERR_NOT_FOUND, "unknown built-in");
    size_t nb = 0;
    for (const char *const *n = mc_config_builtin_names(); *n; n++, nb++)
        CHECK(mc_config_builtin(*n, &c, &err) == MC_OK, "built-in %s: %s", *n, err.message);
    CHECK(nb >= 5, "built-in names");

    /* a bare official checkpoint name picks the built-in config */
    char dir[] = "/tmp/mc_test_ckptXXXXXX";
    if (mkdtemp(dir)) {
        char link[sizeof dir + 32], model_pt[4096];
        snprintf(link, sizeof link, "%s/mobileclip_s0.pt", dir);
        snprintf(model_pt, sizeof model_pt, "%s", fixture("models/v1_mci_mct/model.pt"));
        char cwd[2048], abs[4096 + 2048 + 2];
        if (model_pt[0] != '/' && getcwd(cwd, sizeof cwd))
            snprintf(abs, sizeof abs, "%s/%s", cwd, model_pt);
        else
            snprintf(abs, sizeof abs, "%s", model_pt);
        CHECK(symlink(abs, link) == 0, "symlink");
        CHECK(mc_config_resolve(link, NULL, NULL, &c, ckpt, sizeof ckpt, &err) == MC_OK && !strcmp(c.name, "mobileclip_s0"),
              "stem lookup: %s", err.message);
        CHECK(mc_config_resolve(dir, NULL, NULL, &c, ckpt, sizeof ckpt, &err) == MC_OK && !strcmp(ckpt, link) &&
              !strcmp(c.name, "mobileclip_s0"), "folder lookup: %s", err.message);
        CHECK(mc_config_resolve(link, NULL, "mobileclip_b", &c, NULL, 0, &err) == MC_OK && c.image_size == 224,
              "name hint");
        CHECK(mc_config_resolve(link, fixture("models/v1_vit_causal/config.json"), NULL, &c, NULL, 0, &err) ==
              MC_OK && c.causal && c.text_width == 32, "explicit config");
        char other[sizeof dir + 32];
        snprintf(other, sizeof other, "%s/weights.pt", dir);
        CHECK(rename(link, other) == 0, "rename");
        CHECK(mc_config_resolve(other, NULL, NULL, &c, NULL, 0, &err) == MC_ERR_CONFIG, "no config found");
        remove(other);
        rmdir(dir);
    }
    /* hand-written configs */
    const char *v1 = "{\"embed_dim\":64,\"image_cfg\":{\"image_size\":[224,224],\"model_name\":\"mci1\"},"
                     "\"text_cfg\":{\"dim\":64,\"n_heads_per_layer\":[4,4],\"n_transformer_layers\":2,"
                     "\"ffn_multiplier_per_layer\":[2.0,2.0],\"model_name\":\"base\"}}";
    CHECK(mc_config_parse(v1, strlen(v1), "t", &c, &err) == MC_OK && c.image_size == 224 && c.text_heads == 4 &&
          c.text_mlp_ratio == 2.0f && c.context_length == 77, "per-layer lists: %s", err.message);
    const char *bad_heads = "{\"embed_dim\":64,\"image_cfg\":{\"image_size\":224,\"model_name\":\"mci1\"},"
                            "\"text_cfg\":{\"dim\":64,\"n_heads_per_layer\":5,\"n_transformer_layers\":2,"
                            "\"model_name\":\"base\"}}";
    CHECK(mc_config_parse(bad_heads, strlen(bad_heads), "t", &c, &err) == MC_ERR_CONFIG, "heads not dividing width");
    const char *bad_json[] = {"", "[]", "{}", "{\"model_cfg\":{\"embed_dim\":\"x\"}}", "{\"embed_dim\":1",
                              "{\"model_cfg\":{\"embed_dim\":8},\"preprocess_cfg\":{\"resize_mode\":\"longest\"}}",
                              "{\"model_cfg\":{\"embed_dim\":8},\"preprocess_cfg\":{\"mean\":[1,2]}}"};
    for (size_t i = 0; i < sizeof bad_json / sizeof bad_json[0]; i++)
        CHECK(mc_config_parse(bad_json[i], strlen(bad_json[i]), "t", &c, &err) != MC_OK, "bad config %zu accepted", i);
    const char *bare = "{\"embed_dim\":768,\"vision_cfg\":{\"timm_model_name\":\"fastvit_mci3\",\"image_size\":256},"
                       "\"text_cfg\":{\"width\":768,\"heads\":12,\"layers\":12,\"no_causal_mask\":true}}";
    CHECK(mc_config_parse(bare, strlen(bare), "t", &c, &err) == MC_OK && c.family == MC_CONFIG_FAMILY_OPENCLIP &&
          c.preprocess.interp == MC_INTERP_BICUBIC && !c.causal, "bare OpenCLIP model config");
}

int main(void) {
    test_pt_files();
    test_safetensors_files();
    test_bf16_shard();
    test_configs();
    return test_summary("test_checkpoint");
}
