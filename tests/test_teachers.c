/*
 * test_teachers.c - the CLIP teachers of dataset reinforcement and the
 * augmentation sampler (src/reinforce/sampler.h).
 *
 * Teachers: the two OpenCLIP-layout ViT CLIPs of the DataCompDR fixture
 * (../shared/fixtures/datacompdr/teachers: the first with QuickGELU, the
 * second with GELU) load through mc_model_load; every stored augmentation of
 * the fixture shard, re-applied (data/augment.h) and normalised as the
 * reference does, embeds within 1e-4 of the shard's image_emb slice of that
 * teacher, and the caption and the five synthetic captions within 1e-4 of
 * text_emb.  The same teacher read with GELU instead of QuickGELU misses
 * (the activation is honoured).  The built-in teacher configurations and
 * the registry names.
 *
 * Sampler: magnitudes equal torchvision's float32 _augmentation_space values
 * (those the fixture stores), crop boxes inside the image with the scale and
 * ratio bounds, every op drawn, the same stream for the same (seed, shard,
 * key), Python's repr of floats, the compressed JSON parsed back by
 * data/augment.c into the same parameters.
 */
#include "test.h"

#include "core/core.h"
#include "data/shard.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "io/registry.h"
#include "io/safetensors.h"
#include "reinforce/sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static mc_model *load_teacher(const char *dir, const char *config) {
    mc_model_params p = mc_model_default_params();
    p.vocab_path = fixture("tokenizer/bpe_simple_vocab_16e6.txt.gz");
    p.config_path = config;
    mc_model *m = NULL;
    mc_error err;
    mc_error_clear(&err);
    if (mc_model_load(dir, &p, &m, &err) != MC_OK) {
        CHECK(0, "load %s: %s", dir, err.message);
        return NULL;
    }
    return m;
}

/* Max |ours - stored| over every augmentation and caption of the shard for
 * one teacher whose slice starts at column off. */
static void shard_errors(mc_model *m, int off, double *img_err, double *txt_err, int *n_img, int *n_txt) {
    *img_err = *txt_err = 0;
    *n_img = *n_txt = 0;
    mc_model_info info;
    mc_model_get_info(m, &info);
    int D = info.embed_dim, S = info.image_size;
    mc_context_params cp = mc_context_default_params();
    cp.max_batch = 8;
    mc_context *ctx = NULL;
    mc_error err;
    mc_error_clear(&err);
    CHECK(mc_context_new(m, &cp, &ctx, &err) == MC_OK, "context: %s", err.message);
    mc_shard_reader *r = NULL;
    CHECK(mc_shard_open(fixture("datacompdr/shards/00000000.tar"), NULL, &r, &err) == MC_OK, "open: %s", err.message);
    if (!ctx || !r) return;
    enum { MAX_AUG = 64 };
    float *px = malloc((size_t)MAX_AUG * 3 * S * S * sizeof(float)), *emb = malloc((size_t)MAX_AUG * D * sizeof(float));
    int32_t ids[77];
    for (;;) {
        mc_dr_record *rec = NULL;
        if (mc_shard_next(r, &rec, &err) != MC_OK || !rec) break;
        mc_image img = {0};
        CHECK(mc_image_load_memory(rec->image, rec->image_size, 0, &img, &err) == MC_OK, "decode %s", rec->key);
        int64_t W = rec->dim;
        CHECK(rec->n_aug <= MAX_AUG, "%zu augmentations", rec->n_aug);
        size_t plane = (size_t)S * S, n_aug = rec->n_aug <= MAX_AUG ? rec->n_aug : MAX_AUG;
        for (size_t a = 0; a < n_aug; a++) {
            mc_aug_params ap;
            mc_image aug = {0};
            if (mc_aug_parse(&rec->aug[a], NULL, &ap, &err) != MC_OK ||
                mc_aug_reapply(&img, &ap, S, MC_INTERP_BICUBIC, &aug, &err) != MC_OK) {
                CHECK(0, "%s aug %zu: %s", rec->key, a, err.message);
                continue;
            }
            float *dst = px + a * 3 * plane;
            for (int c = 0; c < 3; c++)
                for (size_t i = 0; i < plane; i++)
                    dst[c * plane + i] = ((float)aug.rgb[i * 3 + c] / 255.0f - info.preprocess.mean[c]) / info.preprocess.std[c];
            mc_image_free(&aug);
        }
        CHECK(mc_encode_image(ctx, px, (int)n_aug, 1, emb) == MC_OK, "encode images");
        for (size_t a = 0; a < n_aug; a++) {
            double e = max_abs_diff(emb + a * D, rec->image_emb->data + a * W + off, (size_t)D);
            if (e > *img_err) *img_err = e;
            (*n_img)++;
        }
        mc_image_free(&img);
        size_t n_caps = rec->n_syn ? rec->syn[0].n : 0;
        for (size_t t = 0; t <= n_caps; t++) {
            const char *text = t == 0 ? rec->caption : rec->syn[0].captions[t - 1];
            CHECK(mc_tokenizer_encode(mc_model_tokenizer(m), text, 77, ids, &err) == MC_OK, "tokenize");
            CHECK(mc_encode_text(ctx, ids, 1, 1, emb) == MC_OK, "encode text");
            double e = max_abs_diff(emb, rec->text_emb->data + t * W + off, (size_t)D);
            if (e > *txt_err) *txt_err = e;
            (*n_txt)++;
        }
        mc_dr_record_free(rec);
    }
    mc_shard_close(r);
    mc_context_free(ctx);
    free(px);
    free(emb);
}

static void test_teacher_parity(void) {
    const char *names[2] = {"datacompdr/teachers/teacher_openai_like", "datacompdr/teachers/teacher_datacomp_like"};
    int off = 0;
    for (int k = 0; k < 2; k++) {
        mc_model *m = load_teacher(fixture(names[k]), NULL);
        if (!m) return;
        mc_model_info info;
        mc_model_get_info(m, &info);
        CHECK(!strcmp(info.image_arch, "vit") && info.image_size == 224, "%s: arch %s size %d", names[k],
              info.image_arch, info.image_size);
        double ei, et;
        int ni, nt;
        shard_errors(m, off, &ei, &et, &ni, &nt);
        printf("teacher %s (cols %d..%d): %d augmentations max err %.3g, %d captions max err %.3g\n", names[k], off,
               off + info.embed_dim, ni, ei, nt, et);
        CHECK(ni == 90 && nt == 18, "%s: %d images, %d texts compared", names[k], ni, nt);
        CHECK(ei <= 1e-4, "%s: image embeddings differ by %g", names[k], ei);
        CHECK(et <= 1e-4, "%s: text embeddings differ by %g", names[k], et);
        off += info.embed_dim;
        mc_model_free(m);
    }
    CHECK(off == 40, "teacher widths sum to %d (the shard's 40)", off);

    /* the QuickGELU teacher read as GELU: its config without quick_gelu */
    char *text = NULL;
    size_t len = 0;
    mc_error err;
    mc_error_clear(&err);
    char cfg_path[256];
    snprintf(cfg_path, sizeof cfg_path, "/tmp/mc_teacher_gelu_%d.json", (int)getpid());
    if (mc_file_read_all(fixture("datacompdr/teachers/teacher_openai_like/open_clip_config.json"), 1 << 20, &text, &len,
                         &err) == MC_OK) {
        char *q = strstr(text, "\"quick_gelu\": true");
        CHECK(q != NULL, "the openai-like config says quick_gelu");
        if (q) memcpy(q, "\"quick_gelu\":false", 18);
        FILE *f = fopen(cfg_path, "wb");
        fwrite(text, 1, len, f);
        fclose(f);
        mc_model *m = load_teacher(fixture(names[0]), cfg_path);
        if (m) {
            double ei, et;
            int ni, nt;
            shard_errors(m, 0, &ei, &et, &ni, &nt);
            CHECK(ei > 1e-3 && et > 1e-3, "GELU instead of QuickGELU still matches (%g, %g)", ei, et);
            mc_model_free(m);
        }
        unlink(cfg_path);
    }
    free(text);
}

static void test_builtin_teachers(void) {
    static const struct { const char *name; int quick; } t[] = {
        {"ViT-L-14-openai", 1}, {"ViT-L-14-datacomp_xl_s13b_b90k", 0}, {"DFN2B-CLIP-ViT-L-14", 1},
        {"DFN2B-CLIP-ViT-L-14-39B", 0}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        mc_config c;
        mc_error err;
        mc_error_clear(&err);
        CHECK(mc_config_builtin(t[i].name, &c, &err) == MC_OK, "%s: %s", t[i].name, err.message);
        CHECK(c.quick_gelu == t[i].quick && !strcmp(c.image_arch, "vit") && c.vision_layers == 24 &&
                  c.vision_width == 1024 && c.vision_patch_size == 14 && c.vision_head_width == 64 &&
                  c.embed_dim == 768 && c.text_width == 768 && c.text_heads == 12 && c.text_layers == 12 &&
                  c.preprocess.interp == MC_INTERP_BICUBIC && fabsf(c.preprocess.mean[0] - 0.48145466f) < 1e-7f,
              "%s: built-in configuration", t[i].name);
        const mc_registry_entry *e = mc_registry_find(t[i].name);
        CHECK(e && e->source == MC_SOURCE_HF && !strcmp(e->image_arch, "vit"), "%s: registry entry", t[i].name);
    }
    /* options of OpenCLIP's ViT that change the computation are refused by name */
    static const char *bad[] = {"\"attentional_pool\": true", "\"pool_type\": \"avg\"", "\"ls_init_value\": 0.1",
                                "\"qk_norm\": true"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char json[512];
        snprintf(json, sizeof json,
                 "{\"model_cfg\": {\"embed_dim\": 16, \"vision_cfg\": {\"layers\": 2, \"width\": 128, %s}, "
                 "\"text_cfg\": {\"width\": 32, \"heads\": 1, \"layers\": 2}}}",
                 bad[i]);
        mc_config c;
        mc_error err;
        mc_error_clear(&err);
        CHECK(mc_config_parse(json, strlen(json), "cfg", &c, &err) == MC_ERR_UNSUPPORTED, "%s accepted", bad[i]);
    }
}

/* One tower alone: the CLIP keeps its text tower at the top level, so a
 * text-only load must not take visual.* for leftovers (and the reverse). */
static void test_one_tower(void) {
    const char *dir = fixture("datacompdr/teachers/teacher_openai_like");
    mc_model_params p = mc_model_default_params();
    p.vocab_path = fixture("tokenizer/bpe_simple_vocab_16e6.txt.gz");
    mc_model *full = NULL, *text = NULL, *image = NULL;
    mc_error err;
    mc_error_clear(&err);
    CHECK(mc_model_load(dir, &p, &full, &err) == MC_OK, "full: %s", err.message);
    p.load_image_tower = 0;
    CHECK(mc_model_load(dir, &p, &text, &err) == MC_OK, "text tower alone: %s", err.message);
    p.load_image_tower = 1;
    p.load_text_tower = 0;
    CHECK(mc_model_load(dir, &p, &image, &err) == MC_OK, "image tower alone: %s", err.message);
    if (full && text && image) {
        mc_context *cf = NULL, *ct = NULL, *ci = NULL;
        mc_context_new(full, NULL, &cf, &err);
        mc_context_new(text, NULL, &ct, &err);
        mc_context_new(image, NULL, &ci, &err);
        int32_t ids[77];
        float a[24], b[24];
        mc_tokenizer_encode(mc_model_tokenizer(full), "a photo of a cat", 77, ids, &err);
        CHECK(mc_encode_text(cf, ids, 1, 1, a) == MC_OK && mc_encode_text(ct, ids, 1, 1, b) == MC_OK &&
                  !memcmp(a, b, sizeof a),
              "text-only model embeds differently");
        float *px = calloc(3 * 224 * 224, sizeof(float));
        for (int i = 0; i < 3 * 224 * 224; i++) px[i] = (float)((i * 7919) % 255) / 128.0f - 1.0f;
        CHECK(mc_encode_image(cf, px, 1, 1, a) == MC_OK && mc_encode_image(ci, px, 1, 1, b) == MC_OK &&
                  !memcmp(a, b, sizeof a),
              "image-only model embeds differently");
        free(px);
        mc_context_free(cf);
        mc_context_free(ct);
        mc_context_free(ci);
    }
    mc_model_free(full);
    mc_model_free(text);
    mc_model_free(image);
}

/* A checkpoint carrying OpenCLIP's attn_mask buffer: the causal mask loads
 * (and embeds as without it), another mask is refused naming the tensor. */
static void test_attn_mask(void) {
    const char *dir = fixture("datacompdr/teachers/teacher_datacomp_like");
    char path[512], tmpdir[256], cmd[1024];
    snprintf(path, sizeof path, "%s/open_clip_model.safetensors", dir);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mc_attn_mask_%d", (int)getpid());
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s/open_clip_config.json %s/", tmpdir, dir, tmpdir);
    CHECK(system(cmd) == 0, "cannot make %s", tmpdir);
    mc_checkpoint *ck = NULL;
    mc_error err;
    mc_error_clear(&err);
    if (mc_checkpoint_open(path, &ck, &err) != MC_OK) {
        CHECK(0, "open %s: %s", path, err.message);
        return;
    }
    size_t n = mc_checkpoint_count(ck);
    mc_st_entry *e = calloc(n + 1, sizeof *e);
    for (size_t i = 0; i < n; i++) {
        const mc_tensor_info *t = mc_checkpoint_tensor(ck, i);
        e[i].name = t->name;
        e[i].dtype = t->dtype;
        e[i].ndim = t->ndim;
        memcpy(e[i].shape, t->shape, sizeof e[i].shape);
        e[i].data = t->data;
    }
    float *mask = malloc(77 * 77 * sizeof(float));
    for (int i = 0; i < 77; i++)
        for (int j = 0; j < 77; j++) mask[i * 77 + j] = j <= i ? 0.0f : -INFINITY;
    e[n] = (mc_st_entry){"attn_mask", MC_DTYPE_F32, 2, {77, 77}, mask};
    char out[512];
    snprintf(out, sizeof out, "%s/open_clip_model.safetensors", tmpdir);
    for (int bad = 0; bad < 2; bad++) {
        if (bad) mask[5 * 77 + 40] = 0.0f;   /* position 5 would see position 40 */
        CHECK(mc_safetensors_write(out, e, n + 1, NULL, 0, &err) == MC_OK, "write: %s", err.message);
        mc_model_params p = mc_model_default_params();
        p.vocab_path = fixture("tokenizer/bpe_simple_vocab_16e6.txt.gz");
        mc_model *m = NULL, *ref = NULL;
        mc_status st = mc_model_load(tmpdir, &p, &m, &err);
        if (bad) {
            CHECK(st == MC_ERR_UNSUPPORTED && strstr(err.message, "attn_mask"), "a wrong attn_mask loads: %s", err.message);
        } else {
            CHECK(st == MC_OK, "the causal attn_mask is refused: %s", err.message);
            if (st == MC_OK && mc_model_load(dir, &p, &ref, &err) == MC_OK) {
                int32_t ids[77];
                float a[16], b[16];
                mc_context *ca = NULL, *cb = NULL;
                mc_tokenizer_encode(mc_model_tokenizer(m), "a cat on a mat", 77, ids, &err);
                mc_context_new(m, NULL, &ca, &err);
                mc_context_new(ref, NULL, &cb, &err);
                CHECK(ca && cb && mc_encode_text(ca, ids, 1, 1, a) == MC_OK && mc_encode_text(cb, ids, 1, 1, b) == MC_OK &&
                          !memcmp(a, b, sizeof a),
                      "the model with attn_mask embeds differently");
                mc_context_free(ca);
                mc_context_free(cb);
            }
        }
        mc_model_free(m);
        mc_model_free(ref);
    }
    free(mask);
    free(e);
    mc_checkpoint_close(ck);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    CHECK(system(cmd) == 0, "cleanup");
}

/* ------------------------------------------------------------- sampler */

static mc_rf_aug_config dr_config(void) {
    static const char cfg[] =
        "{\"reinforce\": {\"image_augmentation\": {\"normalize\": {\"mean\": [0.48145466, 0.4578275, 0.40821073], "
        "\"std\": [0.26862954, 0.26130258, 0.27577711]}, \"rand_augment\": {\"enable\": true, \"p\": 1.0}, "
        "\"random_resized_crop\": {\"interpolation\": \"bicubic\", \"size\": 224}, \"to_rgb\": {\"enable\": true}, "
        "\"to_tensor\": {\"enable\": true}}}}";
    mc_rf_aug_config c;
    mc_error err;
    mc_error_clear(&err);
    CHECK(mc_rf_aug_config_parse(cfg, strlen(cfg), "datacompdr12m.json", &c, &err) == MC_OK, "config: %s", err.message);
    return c;
}

static void test_sampler(void) {
    mc_rf_aug_config c = dr_config();
    CHECK(c.size == 224 && c.interp == MC_INTERP_BICUBIC && c.ra_num_ops == 2 && c.ra_magnitude == 9 &&
              c.ra_bins == 31 && c.ra_p == 1.0 && c.scale[0] == 0.08 && fabs(c.ratio[1] - 4.0 / 3.0) < 1e-15,
          "DataCompDR-12M sampler settings");
    /* every magnitude the fixture stores is torchvision's value of its op (with its sign) */
    mc_shard_reader *r = NULL;
    mc_error err;
    mc_error_clear(&err);
    int seen = 0, bad = 0;
    if (mc_shard_open(fixture("datacompdr/shards/00000000.tar"), NULL, &r, &err) == MC_OK) {
        for (;;) {
            mc_dr_record *rec = NULL;
            if (mc_shard_next(r, &rec, &err) != MC_OK || !rec) break;
            for (size_t a = 0; a < rec->n_aug; a++) {
                mc_aug_params p;
                if (mc_aug_parse(&rec->aug[a], NULL, &p, &err) != MC_OK) continue;
                for (int i = 0; i < p.n_ops; i++) {
                    int sgn;
                    double m = mc_rf_magnitude(&c, p.op[i], &sgn);
                    if (!(p.mag[i] == m || (sgn && p.mag[i] == -m))) bad++;
                    seen++;
                }
                /* and its compressed form reads back the same */
                char json[512];
                mc_rf_compress_json(&c, &p, json, sizeof json);
                mc_json *j = NULL;
                mc_aug_params q;
                int same = mc_json_parse(json, strlen(json), &j, &err) == MC_OK &&
                           mc_aug_parse(j, NULL, &q, &err) == MC_OK && q.crop_top == p.crop_top &&
                           q.crop_left == p.crop_left && q.crop_h == p.crop_h && q.crop_w == p.crop_w &&
                           q.n_ops == p.n_ops && !memcmp(q.op, p.op, sizeof q.op) && !memcmp(q.mag, p.mag, sizeof q.mag);
                mc_json_free(j);
                CHECK(same, "%s aug %zu: compressed form %s does not read back", rec->key, a, json);
            }
            mc_dr_record_free(rec);
        }
        mc_shard_close(r);
    }
    CHECK(seen == 180 && bad == 0, "fixture magnitudes: %d of %d are not torchvision's", bad, seen);
    int sgn;
    CHECK(mc_rf_magnitude(&c, MC_AUG_POSTERIZE, &sgn) == 7.0 && !sgn, "posterize 7 bits");
    CHECK(mc_rf_magnitude(&c, MC_AUG_SOLARIZE, &sgn) == 178.5 && !sgn, "solarize 178.5");
    CHECK(mc_rf_magnitude(&c, MC_AUG_ROTATE, &sgn) == 9.0 && sgn, "rotate 9");

    /* draws: boxes inside, area and ratio in bounds (or the central fallback), ops all seen */
    int op_count[MC_AUG_OP_COUNT] = {0}, neg = 0, pos_ = 0, out_of_bounds = 0, fallback = 0;
    const int sizes[][2] = {{451, 300}, {300, 451}, {64, 64}, {1000, 40}, {7, 5}};
    for (int t = 0; t < 4000; t++) {
        int w = sizes[t % 5][0], h = sizes[t % 5][1];
        mc_rf_rng rng;
        char key[32];
        snprintf(key, sizeof key, "%09d", t);
        mc_rf_rng_seed(&rng, 0, "00000000.tar", key);
        mc_aug_params p;
        mc_rf_sample(&c, w, h, &rng, &p);
        if (!p.has_crop || p.crop_top < 0 || p.crop_left < 0 || p.crop_h < 1 || p.crop_w < 1 ||
            p.crop_top + p.crop_h > h || p.crop_left + p.crop_w > w)
            out_of_bounds++;
        double frac = (double)p.crop_w * p.crop_h / ((double)w * h), ratio = (double)p.crop_w / p.crop_h;
        int in_bounds = frac > 0.05 && frac <= 1.0 + 1e-9 && ratio > 0.7 && ratio < 1.45;
        if (!in_bounds) fallback++;
        CHECK(p.has_randaug && p.n_ops == 2, "two ops");
        for (int i = 0; i < p.n_ops; i++) {
            op_count[p.op[i]]++;
            if (p.mag[i] < 0) neg++;
            if (p.mag[i] > 0) pos_++;
        }
    }
    CHECK(out_of_bounds == 0, "%d boxes outside their image", out_of_bounds);
    /* only the 1000 x 40 and 7 x 5 images may need the central fallback or rounding outside the bounds */
    CHECK(fallback <= 1600, "%d draws out of the scale / ratio bounds", fallback);
    for (int o = 0; o < MC_AUG_OP_COUNT; o++)
        CHECK(op_count[o] > 8000 / 14 * 0.8 && op_count[o] < 8000 / 14 * 1.2, "op %d drawn %d times of 8000", o,
              op_count[o]);
    CHECK(neg > 1000 && pos_ > 1000, "signs: %d negative, %d positive", neg, pos_);
    /* the same (seed, shard, key) gives the same stream; another key another */
    mc_rf_rng a, b, d;
    mc_rf_rng_seed(&a, 5, "x.tar", "k");
    mc_rf_rng_seed(&b, 5, "x.tar", "k");
    mc_rf_rng_seed(&d, 5, "x.tar", "k2");
    mc_aug_params pa, pb, pd;
    mc_rf_sample(&c, 320, 240, &a, &pa);
    mc_rf_sample(&c, 320, 240, &b, &pb);
    mc_rf_sample(&c, 320, 240, &d, &pd);
    CHECK(!memcmp(&pa, &pb, sizeof pa), "same seed, same draw");
    CHECK(memcmp(&pa, &pd, sizeof pa) != 0, "another key, another draw");

    /* Python's repr */
    static const struct { double v; const char *s; } reprs[] = {
        {0.26999998092651367, "0.26999998092651367"}, {7.0, "7.0"}, {-30.45317268371582, "-30.45317268371582"},
        {178.5, "178.5"}, {0.0, "0.0"}, {-0.0, "-0.0"}, {1e-05, "1e-05"}, {0.0001, "0.0001"}, {1e16, "1e+16"},
        {123456789012345.0, "123456789012345.0"}, {0.1, "0.1"}, {-9.0, "-9.0"}, {2.5e-7, "2.5e-07"}};
    for (size_t i = 0; i < sizeof reprs / sizeof reprs[0]; i++) {
        char buf[64];
        mc_rf_format_double(reprs[i].v, buf, sizeof buf);
        CHECK(!strcmp(buf, reprs[i].s), "repr(%.17g) = %s, want %s", reprs[i].v, buf, reprs[i].s);
    }
    /* configs the sampler cannot draw are refused by name */
    static const char *refused[] = {"{\"rand_augment\": {\"enable\": true}}",
                                    "{\"random_resized_crop\": {\"size\": 224}, \"random_erase\": {\"p\": 0.25}}",
                                    "{\"random_resized_crop\": {\"size\": 224, \"interpolation\": \"lanczos\"}}"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        mc_rf_aug_config x;
        CHECK(mc_rf_aug_config_parse(refused[i], strlen(refused[i]), "cfg", &x, &err) == MC_ERR_UNSUPPORTED,
              "config %s accepted", refused[i]);
    }
}

int main(void) {
    test_builtin_teachers();
    test_attn_mask();
    test_one_tower();
    test_sampler();
    test_teacher_parity();
    return test_summary("test_teachers");
}
