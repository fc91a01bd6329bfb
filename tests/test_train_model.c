/*
 * test_train_model.c - the train-mode (unfused, taped) model in eval mode
 * against the PyTorch reference outputs of the inference fixtures
 * (v1_mci_mct, v1_mci_base, v1_vit_causal): image/text features and
 * embeddings within 1e-4 max-abs.  This checks the train-mode forward of the
 * MCi and vit_b16 image towers and the mct, base and causal base text towers
 * independently of the folded inference path.  Then the backward of a tiny
 * random vit_b16 image tower (train-mode BatchNorm in the stem) and base text
 * tower (causal and bidirectional) against central finite differences.
 */
#include "test.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"
#include "train/ckpt.h"
#include "train/kernels.h"
#include "train/trainer.h"

#include <stdint.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void l2rows(float *x, int n, int d) {
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < d; k++) s += (double)x[i * d + k] * x[i * d + k];
        double r = 1.0 / fmax(sqrt(s), 1e-12);
        for (int k = 0; k < d; k++) x[i * d + k] = (float)(x[i * d + k] * r);
    }
}

static void cmp(const char *model, const char *what, const mc_checkpoint *ex, const float *got,
                size_t n) {
    const mc_tensor_info *r = mc_checkpoint_find(ex, what);
    CHECK(r && r->dtype == MC_DTYPE_F32 && (size_t)r->numel == n, "%s: reference '%s' missing or of another size",
          model, what);
    if (!r || (size_t)r->numel != n) return;
    float e = max_abs_diff(got, r->data, n);
    CHECK(e <= 1e-4f, "%s %s: max-abs %.3g > 1e-4", model, what, e);
    printf("  %-18s %-17s max-abs %.2e\n", model, what, e);
}

static void test_eval(const char *name) {
    char dir[4096], p[4200];
    snprintf(dir, sizeof dir, "%s", fixture(name));
    mc_error err;
    mc_error_clear(&err);
    mc_train_config cfg;
    /* the folder: config.json (mobileclip repo) or open_clip_config.json */
    if (mc_train_config_load(dir, &cfg, &err) != MC_OK) { CHECK(0, "%s: config: %s", name, err.message); return; }
    mc_checkpoint *ex = NULL, *ck = NULL;
    snprintf(p, sizeof p, "%s/expected.safetensors", dir);
    if (mc_checkpoint_open(p, &ex, &err) != MC_OK) { CHECK(0, "%s: %s", name, err.message); return; }
    snprintf(p, sizeof p, "%s/%s", dir, cfg.layout == MC_TRAIN_LAYOUT_OPENCLIP ? "open_clip_model.safetensors" : "model.pt");
    if (mc_checkpoint_open(p, &ck, &err) != MC_OK) { CHECK(0, "%s: %s", name, err.message); mc_checkpoint_close(ex); return; }
    const mc_tensor_info *px = mc_checkpoint_find(ex, "pixels"), *tk = mc_checkpoint_find(ex, "tokens");
    CHECK(px && tk && px->ndim == 4 && tk->ndim == 2 && tk->dtype == MC_DTYPE_I64, "%s: inputs", name);
    mc_dr_loss_params lp = {0};
    mc_adamw_params op = mc_adamw_default_params();
    mc_trainer *t = NULL;
    if (px && tk && mc_trainer_new(&cfg, ck, p, &lp, &op, &t, &err) == MC_OK) {
        int ni = (int)px->shape[0], nt = (int)tk->shape[0], L = (int)tk->shape[1];
        cfg.image_size = (int)px->shape[2];
        CHECK(cfg.image_size == (int)px->shape[3] && L == cfg.context_length, "%s: input sizes", name);
        int E = mc_trainer_embed_dim(t);
        CHECK(E > 0, "%s: embed dim", name);
        int32_t *tok = malloc(sizeof *tok * tk->numel);
        for (int64_t i = 0; i < tk->numel; i++) tok[i] = (int32_t)((const int64_t *)tk->data)[i];
        float *fi = calloc((size_t)ni * E + 1, 4), *ft = calloc((size_t)nt * E + 1, 4);
        mc_trainer_set_eval(t, 1);
        mc_tparam *rm = NULL;
        for (size_t i = 0; i < mc_trainer_count(t) && !rm; i++)
            if (strstr(mc_trainer_param(t, i)->name, "running_mean")) rm = mc_trainer_param(t, i);
        float rm0 = rm ? rm->w[0] : 0;
        mc_status st = mc_trainer_features(t, px->data, ni, tok, nt, fi, ft, NULL, NULL, &err);
        CHECK(st == MC_OK, "%s: forward: %s", name, err.message);
        if (st == MC_OK) {
            CHECK(!rm || rm->w[0] == rm0, "%s: eval forward changed a running mean", name);
            cmp(name, "image_features", ex, fi, (size_t)ni * E);
            cmp(name, "text_features", ex, ft, (size_t)nt * E);
            l2rows(fi, ni, E);
            l2rows(ft, nt, E);
            cmp(name, "image_embeddings", ex, fi, (size_t)ni * E);
            cmp(name, "text_embeddings", ex, ft, (size_t)nt * E);
        }
        free(fi); free(ft); free(tok);
    } else {
        CHECK(0, "%s: trainer: %s", name, err.message);
    }
    mc_trainer_free(t);
    mc_checkpoint_close(ck);
    mc_checkpoint_close(ex);
}


/* ------------------------------------------------ finite differences */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) {   /* uniform in [-1, 1) */
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

typedef struct tw {
    char name[128];
    int ndim;
    int64_t shape[4];
    float *d;
} tw;

/* A tensor of the tiny model; kind: 0 weight ~ 1/sqrt(fan_in), 1 norm gain
 * near 1, 2 small offset, 3 positive variance. */
static int add_t(tw *v, int n, const char *name, int ndim, const int64_t *shape, int kind) {
    tw *x = &v[n];
    snprintf(x->name, sizeof x->name, "%s", name);
    x->ndim = ndim;
    size_t cnt = 1;
    for (int i = 0; i < ndim; i++) { x->shape[i] = shape[i]; cnt *= (size_t)shape[i]; }
    size_t fan = ndim >= 2 ? cnt / (size_t)shape[0] : 1;
    if (kind == 4) fan = (size_t)shape[0];   /* [in, out] projections */
    x->d = malloc(cnt * sizeof(float) + 4);
    for (size_t i = 0; i < cnt; i++) {
        float r = frand();
        x->d[i] = kind == 1 ? 1.0f + 0.3f * r : kind == 2 ? 0.2f * r : kind == 3 ? 1.0f + 0.5f * fabsf(r)
                : r * sqrtf(3.0f / (float)fan);
    }
    return n + 1;
}

static int add_ln(tw *v, int n, const char *pf, int64_t d) {
    char b[160];
    snprintf(b, sizeof b, "%s.weight", pf); n = add_t(v, n, b, 1, &d, 1);
    snprintf(b, sizeof b, "%s.bias", pf);   return add_t(v, n, b, 1, &d, 2);
}

static int add_layer(tw *v, int n, const char *pf, int64_t d) {
    char b[200];
    snprintf(b, sizeof b, "%s.pre_norm_mha.0", pf); n = add_ln(v, n, b, d);
    snprintf(b, sizeof b, "%s.pre_norm_mha.1.qkv_proj.weight", pf); n = add_t(v, n, b, 2, (int64_t[]){3 * d, d}, 0);
    snprintf(b, sizeof b, "%s.pre_norm_mha.1.qkv_proj.bias", pf);   n = add_t(v, n, b, 1, (int64_t[]){3 * d}, 2);
    snprintf(b, sizeof b, "%s.pre_norm_mha.1.out_proj.weight", pf); n = add_t(v, n, b, 2, (int64_t[]){d, d}, 0);
    snprintf(b, sizeof b, "%s.pre_norm_mha.1.out_proj.bias", pf);   n = add_t(v, n, b, 1, &d, 2);
    snprintf(b, sizeof b, "%s.pre_norm_ffn.0", pf); n = add_ln(v, n, b, d);
    snprintf(b, sizeof b, "%s.pre_norm_ffn.1.weight", pf); n = add_t(v, n, b, 2, (int64_t[]){4 * d, d}, 0);
    snprintf(b, sizeof b, "%s.pre_norm_ffn.1.bias", pf);   n = add_t(v, n, b, 1, (int64_t[]){4 * d}, 2);
    snprintf(b, sizeof b, "%s.pre_norm_ffn.4.weight", pf); n = add_t(v, n, b, 2, (int64_t[]){d, 4 * d}, 0);
    snprintf(b, sizeof b, "%s.pre_norm_ffn.4.bias", pf);   return add_t(v, n, b, 1, &d, 2);
}

/* Tiny MobileCLIP-B layout: vit_b16 tower at 64 px (4-2-2 stem, widths 32 and
 * 64, 16 patches, 2 layers, one 64-channel head), base text tower (vocabulary
 * 100, context 16, width 32, 1 layer), embedding 16.  Written to path. */
static int write_tiny_vit(const char *path) {
    tw v[80];
    int n = 0;
    const char *P = "image_encoder.model";
    char b[200];
    int64_t c32 = 32;
    snprintf(b, sizeof b, "%s.patch_emb.0.block.conv.weight", P); n = add_t(v, n, b, 4, (int64_t[]){32, 3, 4, 4}, 0);
    snprintf(b, sizeof b, "%s.patch_emb.1.block.conv.weight", P); n = add_t(v, n, b, 4, (int64_t[]){32, 32, 2, 2}, 0);
    for (int i = 0; i < 2; i++) {
        snprintf(b, sizeof b, "%s.patch_emb.%d.block.norm.weight", P, i);       n = add_t(v, n, b, 1, &c32, 1);
        snprintf(b, sizeof b, "%s.patch_emb.%d.block.norm.bias", P, i);         n = add_t(v, n, b, 1, &c32, 2);
        snprintf(b, sizeof b, "%s.patch_emb.%d.block.norm.running_mean", P, i); n = add_t(v, n, b, 1, &c32, 2);
        snprintf(b, sizeof b, "%s.patch_emb.%d.block.norm.running_var", P, i);  n = add_t(v, n, b, 1, &c32, 3);
    }
    snprintf(b, sizeof b, "%s.patch_emb.2.block.conv.weight", P); n = add_t(v, n, b, 4, (int64_t[]){64, 32, 2, 2}, 0);
    snprintf(b, sizeof b, "%s.patch_emb.2.block.conv.bias", P);   n = add_t(v, n, b, 1, (int64_t[]){64}, 2);
    snprintf(b, sizeof b, "%s.cls_token", P); n = add_t(v, n, b, 3, (int64_t[]){1, 1, 64}, 2);
    snprintf(b, sizeof b, "%s.pos_embed.pos_embed.pos_embed", P); n = add_t(v, n, b, 4, (int64_t[]){1, 1, 16, 64}, 2);
    for (int l = 0; l < 2; l++) {
        snprintf(b, sizeof b, "%s.transformer.%d", P, l);
        n = add_layer(v, n, b, 64);
    }
    snprintf(b, sizeof b, "%s.post_transformer_norm", P); n = add_ln(v, n, b, 64);
    snprintf(b, sizeof b, "%s.classifier.proj", P); n = add_t(v, n, b, 2, (int64_t[]){64, 16}, 4);
    n = add_t(v, n, "text_encoder.embedding_layer.weight", 2, (int64_t[]){100, 32}, 2);
    n = add_t(v, n, "text_encoder.positional_embedding.pos_embed.pos_embed", 4, (int64_t[]){1, 1, 16, 32}, 2);
    n = add_layer(v, n, "text_encoder.transformer.0", 32);
    n = add_ln(v, n, "text_encoder.final_layer_norm", 32);
    n = add_t(v, n, "text_encoder.projection_layer", 2, (int64_t[]){32, 16}, 4);
    n = add_t(v, n, "logit_scale", 0, NULL, 2);
    mc_st_entry e[80];
    for (int i = 0; i < n; i++) {
        e[i].name = v[i].name;
        e[i].dtype = MC_DTYPE_F32;
        e[i].ndim = v[i].ndim;
        memcpy(e[i].shape, v[i].shape, sizeof v[i].shape);
        e[i].data = v[i].d;
    }
    mc_error err;
    mc_error_clear(&err);
    mc_status st = mc_safetensors_write(path, e, (size_t)n, NULL, 0, &err);
    CHECK(st == MC_OK, "tiny vit: write: %s", err.message);
    for (int i = 0; i < n; i++) free(v[i].d);
    return st == MC_OK;
}

typedef struct fdctx {
    mc_trainer *t;
    const float *px;
    const int32_t *tok;
    int ni, nt, E;
    const float *ri, *rt;   /* L = sum(ri * img) + sum(rt * txt) */
    float *fi, *ft;
} fdctx;

static double fd_loss(fdctx *c) {
    mc_error err;
    mc_error_clear(&err);
    if (mc_trainer_features(c->t, c->px, c->ni, c->tok, c->nt, c->fi, c->ft, NULL, NULL, &err) != MC_OK)
        return NAN;
    double s = 0;
    for (int i = 0; i < c->ni * c->E; i++) s += (double)c->ri[i] * c->fi[i];
    for (int i = 0; i < c->nt * c->E; i++) s += (double)c->rt[i] * c->ft[i];
    return s;
}

/* For every parameter of the towers in use (prefix), the element of largest
 * gradient and 3 random ones: central differences with step h against the
 * analytic gradient; per tensor, max error / (max |numeric| + 1e-3) < tol. */
static void fd_check(const char *what, fdctx *c, const char *prefix, float h, double tol) {
    mc_error err;
    mc_error_clear(&err);
    mc_trainer_zero_grad(c->t);
    CHECK(mc_trainer_features(c->t, c->px, c->ni, c->tok, c->nt, c->fi, c->ft, c->ri, c->rt, &err) == MC_OK,
          "%s: backward: %s", what, err.message);
    double worst = 0;
    int ntensors = 0, nel = 0;
    const char *wname = "";
    for (size_t i = 0; i < mc_trainer_count(c->t); i++) {
        mc_tparam *p = mc_trainer_param(c->t, i);
        if (!p->g || strncmp(p->name, prefix, strlen(prefix))) continue;
        size_t idx[4], best = 0;
        for (size_t k = 1; k < p->n; k++) if (fabsf(p->g[k]) > fabsf(p->g[best])) best = k;
        idx[0] = best;
        for (int j = 1; j < 4; j++) idx[j] = (size_t)((frand() * 0.5f + 0.5f) * (float)p->n) % p->n;
        double maxn = 0, maxe = 0;
        for (int j = 0; j < 4; j++) {
            size_t k = idx[j];
            float w0 = p->w[k];
            p->w[k] = w0 + h;
            double lp = fd_loss(c);
            p->w[k] = w0 - h;
            double lm = fd_loss(c);
            p->w[k] = w0;
            double num = (lp - lm) / (2.0 * h);
            if (fabs(num) > maxn) maxn = fabs(num);
            double e = fabs(num - p->g[k]);
            if (!(e <= maxe)) maxe = e;
            nel++;
        }
        double rel = maxe / (maxn + 1e-3);
        CHECK(rel < tol, "%s: %s: max error %.3g of max %.3g (rel %.3g)", what, p->name, maxe, maxn, rel);
        if (!(rel <= worst)) { worst = rel; wname = p->name; }
        ntensors++;
    }
    CHECK(ntensors > 0, "%s: no parameters under %s", what, prefix);
    printf("  %-30s %d tensors, %d elements: worst rel err %.2e (%s)\n", what, ntensors, nel, worst, wname);
}

static void test_tiny_vit_grad(void) {
    char path[256];
    snprintf(path, sizeof path, "/tmp/mc_tiny_vit_%d.safetensors", (int)getpid());
    if (!write_tiny_vit(path)) return;
    mc_error err;
    mc_error_clear(&err);
    mc_checkpoint *ck = NULL;
    if (mc_checkpoint_open(path, &ck, &err) != MC_OK) { CHECK(0, "tiny vit: %s", err.message); unlink(path); return; }
    mc_train_config cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.image_arch, sizeof cfg.image_arch, "vit_b16");
    snprintf(cfg.text_arch, sizeof cfg.text_arch, "base");
    cfg.image_size = 64;
    cfg.context_length = 16;
    cfg.text_heads[0] = 2;
    cfg.n_text_heads = 1;
    cfg.causal = 1;
    cfg.bn_momentum = 0.1f;
    mc_dr_loss_params lp = {0};
    mc_adamw_params op = mc_adamw_default_params();
    mc_trainer *t = NULL;
    if (mc_trainer_new(&cfg, ck, path, &lp, &op, &t, &err) != MC_OK) {
        CHECK(0, "tiny vit: trainer: %s", err.message);
    } else {
        enum { NI = 3, NT = 3, L = 16, E = 16 };
        float px[NI * 3 * 64 * 64], ri[NI * E], rt[NT * E], fi[NI * E], ft[NT * E];
        int32_t tok[NT * L] = {0};
        for (size_t i = 0; i < sizeof px / sizeof *px; i++) px[i] = frand();
        for (int i = 0; i < NI * E; i++) ri[i] = frand();
        for (int i = 0; i < NT * E; i++) rt[i] = frand();
        for (int i = 0; i < NT; i++) {   /* SOT, words, EOT (the largest id: pooling position) */
            int len = 5 + 4 * i;
            tok[i * L] = 98;
            for (int j = 1; j < len; j++) tok[i * L + j] = 1 + (int)((frand() * 0.5f + 0.5f) * 96);
            tok[i * L + len] = 99;
        }
        fdctx c = {t, px, tok, NI, 0, E, ri, rt, fi, ft};
        /* image tower alone: the stem's batch statistics couple the images */
        fd_check("vit_b16 train mode", &c, "image_encoder.", 1e-2f, 2e-3);
        c.ni = 0;
        c.nt = NT;
        fd_check("base text causal", &c, "text_encoder.", 1e-2f, 2e-3);
        mc_trainer_free(t);
        cfg.causal = 0;
        t = NULL;
        CHECK(mc_trainer_new(&cfg, ck, path, &lp, &op, &t, &err) == MC_OK, "tiny vit: %s", err.message);
        c.t = t;
        if (t) fd_check("base text bidirectional", &c, "text_encoder.", 1e-2f, 2e-3);
        /* eval-mode backward of the stem BatchNorm (running statistics) */
        if (t) {
            mc_trainer_set_eval(t, 1);
            c.ni = NI;
            c.nt = 0;
            fd_check("vit_b16 eval mode", &c, "image_encoder.", 1e-2f, 2e-3);
        }
    }
    mc_trainer_free(t);
    mc_checkpoint_close(ck);
    unlink(path);
}

/* OpenCLIP-layout fixture models (their own weights, made by the official
 * code) at a small image size: central differences of sum(r * features) for
 * the parameters under each prefix (the parts new to the OpenCLIP layout:
 * LayerNorm2d attention stages and the timm head of fastvit_mci3, the
 * no-padding ConvStem and timm blocks of vit_base_mci_224, patch_embed.proj
 * + norm_pre + class-token positions of the CLIP ViT, the OpenCLIP text
 * transformer with its packed in_proj, causal or not, GELU or QuickGELU). */
static void test_oc_grad(const char *name, const char *label, int image_size, int eval, int quick_gelu,
                         int n_img, int n_txt, float h, double tol, const char *const *prefixes) {
    char dir[4096], p[4200];
    snprintf(dir, sizeof dir, "%s", fixture(name));
    mc_error err;
    mc_error_clear(&err);
    mc_train_config cfg;
    if (mc_train_config_load(dir, &cfg, &err) != MC_OK) { CHECK(0, "%s: config: %s", name, err.message); return; }
    cfg.image_size = image_size;
    cfg.quick_gelu = quick_gelu;
    mc_checkpoint *ck = NULL;
    snprintf(p, sizeof p, "%s/open_clip_model.safetensors", dir);
    if (mc_checkpoint_open(p, &ck, &err) != MC_OK) { CHECK(0, "%s: %s", name, err.message); return; }
    mc_dr_loss_params lp = {0};
    mc_adamw_params op = mc_adamw_default_params();
    mc_trainer *t = NULL;
    if (mc_trainer_new(&cfg, ck, p, &lp, &op, &t, &err) != MC_OK) {
        CHECK(0, "%s: trainer: %s", name, err.message);
        mc_checkpoint_close(ck);
        return;
    }
    mc_trainer_set_eval(t, eval);
    int E = mc_trainer_embed_dim(t), L = cfg.context_length;
    float *px = malloc(sizeof(float) * (size_t)n_img * 3 * image_size * image_size + 4);
    float *ri = malloc(sizeof(float) * (size_t)(n_img * E + 1)), *rt = malloc(sizeof(float) * (size_t)(n_txt * E + 1));
    float *fi = malloc(sizeof(float) * (size_t)(n_img * E + 1)), *ft = malloc(sizeof(float) * (size_t)(n_txt * E + 1));
    int32_t *tok = calloc((size_t)n_txt * L + 1, sizeof *tok);
    for (size_t i = 0; i < (size_t)n_img * 3 * image_size * image_size; i++) px[i] = frand();
    for (int i = 0; i < n_img * E; i++) ri[i] = frand();
    for (int i = 0; i < n_txt * E; i++) rt[i] = frand();
    for (int i = 0; i < n_txt; i++) {   /* SOT, words, EOT (the largest id: the pooled position) */
        int len = 5 + 6 * i;
        tok[i * L] = 49406;
        for (int j = 1; j < len; j++) tok[i * L + j] = 1 + (int)((frand() * 0.5f + 0.5f) * 49000);
        tok[i * L + len] = 49407;
    }
    fdctx c = {t, px, tok, n_img, n_txt, E, ri, rt, fi, ft};
    double t0 = now_s();
    for (const char *const *pf = prefixes; *pf; pf++) {
        char what[160];
        snprintf(what, sizeof what, "%s %s", label, *pf);
        fd_check(what, &c, *pf, h, tol);
    }
    printf("  (%s: %.1f s)\n", label, now_s() - t0);
    free(px); free(ri); free(rt); free(fi); free(ft); free(tok);
    mc_trainer_free(t);
    mc_checkpoint_close(ck);
}

/* ------------------------------------------------ what is refused */

static mc_status load_cfg_text(const char *json, mc_train_config *cfg, mc_error *err) {
    char path[128];
    snprintf(path, sizeof path, "/tmp/mc_occfg_%d.json", (int)getpid());
    FILE *f = fopen(path, "w");
    if (!f) return MC_ERR_IO;
    fputs(json, f);
    fclose(f);
    mc_status st = mc_train_config_load(path, cfg, err);
    unlink(path);
    return st;
}

#define OC_CFG(vision, text, extra)                                                                       \
    "{\"model_cfg\": {\"embed_dim\": 32, \"vision_cfg\": {" vision "}, \"text_cfg\": {\"context_length\": 77, " \
    "\"width\": 32, \"heads\": 2, \"layers\": 2" text "}" extra "}}"
#define MCI0 "\"timm_model_name\": \"fastvit_mci0\", \"timm_pool\": \"avg\", \"timm_proj\": null, \"image_size\": 256"

/* A copy of checkpoint ck with one more tensor (name, [n]) written to path. */
static int write_with_extra(const mc_checkpoint *ck, const char *path, const char *name, int64_t n) {
    size_t cnt = mc_checkpoint_count(ck);
    mc_st_entry *e = calloc(cnt + 1, sizeof *e);
    float *extra = calloc((size_t)n + 1, sizeof(float));
    for (size_t i = 0; i < cnt; i++) {
        const mc_tensor_info *ti = mc_checkpoint_tensor(ck, i);
        e[i].name = ti->name;
        e[i].dtype = ti->dtype;
        e[i].ndim = ti->ndim;
        memcpy(e[i].shape, ti->shape, sizeof e[i].shape);
        e[i].data = ti->data;
    }
    e[cnt] = (mc_st_entry){name, MC_DTYPE_F32, 1, {n}, extra};
    mc_error err;
    mc_error_clear(&err);
    mc_status st = mc_safetensors_write(path, e, cnt + 1, NULL, 0, &err);
    free(e);
    free(extra);
    return st == MC_OK;
}

static void test_oc_refusals(void) {
    mc_error err;
    mc_error_clear(&err);
    mc_train_config cfg;
    /* configs */
    CHECK(load_cfg_text(OC_CFG(MCI0, ", \"no_causal_mask\": true", ", \"custom_text\": true"), &cfg, &err) == MC_OK &&
          cfg.layout == MC_TRAIN_LAYOUT_OPENCLIP && !strcmp(cfg.image_arch, "fastvit_mci0") &&
          !strcmp(cfg.text_arch, "open_clip") && cfg.image_size == 256 && cfg.text_heads[0] == 2 && !cfg.causal &&
          !cfg.quick_gelu, "OpenCLIP config: %s", err.message);
    CHECK(load_cfg_text(OC_CFG("\"timm_model_name\": \"vit_base_mci_224\", \"timm_pool\": \"token\", \"image_size\": [224, 224]",
                               "", ", \"quick_gelu\": true"), &cfg, &err) == MC_OK &&
          cfg.causal && cfg.quick_gelu && cfg.image_size == 224, "vit_base_mci_224 config: %s", err.message);
    static const struct { const char *json, *what; } bad[] = {
        {OC_CFG("\"timm_model_name\": \"fastvit_mci0\", \"timm_proj\": \"linear\"", "", ""), "timm_proj linear"},
        {OC_CFG("\"timm_model_name\": \"fastvit_mci0\", \"timm_pool\": \"token\"", "", ""), "fastvit with token pooling"},
        {OC_CFG(MCI0, ", \"pool_type\": \"last\"", ""), "text pool_type last"},
        {OC_CFG(MCI0, ", \"embed_cls\": true", ""), "text embed_cls"},
        {OC_CFG(MCI0, ", \"hf_model_name\": \"roberta-base\"", ""), "HF text tower"},
        {OC_CFG(MCI0, "", ", \"init_logit_bias\": -10"), "SigLIP logit bias"},
        {OC_CFG("\"width\": 768, \"layers\": 12, \"patch_size\": 16", "", ""), "OpenCLIP's own ViT"},
        {OC_CFG("\"timm_model_name\": \"resnet50\"", "", ""), "another timm tower"},
        {OC_CFG("\"timm_model_name\": \"fastvit_mci5\"", "", ""), "fastvit_mci5"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mc_error_clear(&err);
        CHECK(load_cfg_text(bad[i].json, &cfg, &err) == MC_ERR_UNSUPPORTED, "config with %s was not refused (%s)",
              bad[i].what, err.message);
    }
    CHECK(load_cfg_text(OC_CFG("\"timm_model_name\": \"fastvit_mci0\", \"image_size\": [256, 224]", "", ""), &cfg, &err)
              == MC_ERR_CONFIG, "non-square image size accepted");
    char empty[] = "/tmp/mc_occfg_XXXXXX";
    if (mkdtemp(empty)) {
        CHECK(mc_train_config_load(empty, &cfg, &err) == MC_ERR_IO, "a folder without a config accepted");
        rmdir(empty);
    }

    /* checkpoints */
    char dir[4096], p[4200], tmp[128];
    snprintf(dir, sizeof dir, "%s", fixture("models/oc_mobileclip2_s0"));
    snprintf(p, sizeof p, "%s/open_clip_model.safetensors", dir);
    snprintf(tmp, sizeof tmp, "/tmp/mc_occk_%d.safetensors", (int)getpid());
    mc_checkpoint *ck = NULL, *ck2 = NULL;
    mc_trainer *t = NULL;
    mc_dr_loss_params lp = {0};
    mc_adamw_params op = mc_adamw_default_params();
    if (mc_train_config_load(dir, &cfg, &err) != MC_OK || mc_checkpoint_open(p, &ck, &err) != MC_OK) {
        CHECK(0, "oc_mobileclip2_s0: %s", err.message);
        return;
    }
    mc_train_config v1;
    char v1dir[4096];
    snprintf(v1dir, sizeof v1dir, "%s", fixture("models/train_s0_tiny"));
    CHECK(mc_train_config_load(v1dir, &v1, &err) == MC_OK, "train_s0_tiny config: %s", err.message);
    CHECK(mc_trainer_new(&v1, ck, p, &lp, &op, &t, &err) == MC_ERR_CONFIG && !t,
          "an OpenCLIP checkpoint with a mobileclip-repo config was not refused");
    if (write_with_extra(ck, tmp, "logit_bias", 1) && mc_checkpoint_open(tmp, &ck2, &err) == MC_OK) {
        CHECK(mc_trainer_new(&cfg, ck2, tmp, &lp, &op, &t, &err) == MC_ERR_UNSUPPORTED && !t,
              "a checkpoint with logit_bias was not refused");
        mc_checkpoint_close(ck2);
        ck2 = NULL;
    }
    /* an unknown tensor (OpenCLIP text layer scale): refused at the first forward through both towers */
    if (write_with_extra(ck, tmp, "text.transformer.resblocks.0.ls_1.gamma", 32) &&
        mc_checkpoint_open(tmp, &ck2, &err) == MC_OK) {
        CHECK(mc_trainer_new(&cfg, ck2, tmp, &lp, &op, &t, &err) == MC_OK, "trainer: %s", err.message);
        if (t) {
            enum { NI = 2 };
            float *px = calloc((size_t)NI * 3 * 256 * 256, sizeof(float)), f[NI * 32];
            int32_t tok[NI * 77] = {0};
            for (int i = 0; i < NI; i++) { tok[i * 77] = 49406; tok[i * 77 + 1] = 320; tok[i * 77 + 2] = 49407; }
            mc_trainer_set_eval(t, 1);
            CHECK(mc_trainer_features(t, px, NI, NULL, 0, f, NULL, NULL, NULL, &err) == MC_OK, "image only: %s", err.message);
            mc_error_clear(&err);
            CHECK(mc_trainer_features(t, px, NI, tok, NI, f, f, NULL, NULL, &err) == MC_ERR_UNEXPECTED_TENSOR &&
                      strstr(err.message, "ls_1.gamma"),
                  "an unused tensor was not reported (%s)", err.message);
            free(px);
        }
        mc_trainer_free(t);
        t = NULL;
        mc_checkpoint_close(ck2);
    }
    unlink(tmp);
    mc_checkpoint_close(ck);

    /* drop path (the MobileCLIP2-L-14 config: timm_drop_path 0.1): eval mode only */
    snprintf(dir, sizeof dir, "%s", fixture("models/oc_mobileclip2_l14"));
    snprintf(p, sizeof p, "%s/open_clip_model.safetensors", dir);
    if (mc_train_config_load(dir, &cfg, &err) == MC_OK && mc_checkpoint_open(p, &ck, &err) == MC_OK) {
        CHECK(cfg.drop_path_rate > 0.09f, "L-14 drop path %g", cfg.drop_path_rate);
        CHECK(mc_trainer_new(&cfg, ck, p, &lp, &op, &t, &err) == MC_OK, "trainer: %s", err.message);
        if (t) {
            float *px = calloc((size_t)3 * 224 * 224, sizeof(float)), f[32], tt[32];
            int32_t tok[77] = {49406, 320, 49407};
            mc_train_batch b = {1, px, tok, tok, tt, tt, tt};
            CHECK(mc_trainer_features(t, px, 1, NULL, 0, f, NULL, NULL, NULL, &err) == MC_ERR_UNSUPPORTED,
                  "train-mode features with drop path were not refused");
            CHECK(mc_trainer_forward_backward(t, &b, NULL, &err) == MC_ERR_UNSUPPORTED,
                  "a training step with drop path was not refused");
            mc_trainer_set_eval(t, 1);
            CHECK(mc_trainer_features(t, px, 1, NULL, 0, f, NULL, NULL, NULL, &err) == MC_OK, "eval: %s", err.message);
            free(px);
        }
        mc_trainer_free(t);
        mc_checkpoint_close(ck);
    } else {
        CHECK(0, "oc_mobileclip2_l14: %s", err.message);
    }
    printf("  OpenCLIP configs and checkpoints the trainer does not implement are refused\n");
}

int main(void) {
    test_eval("models/v1_mci_mct");
    test_eval("models/v1_mci_base");
    test_eval("models/v1_vit_causal");
    test_eval("models/oc_mobileclip_s1");
    test_eval("models/oc_mobileclip2_s0");
    test_eval("models/oc_mobileclip2_s3");
    test_eval("models/oc_mobileclip2_s4");
    test_eval("models/oc_mobileclip_b");
    test_eval("models/oc_mobileclip2_b");
    test_eval("models/oc_mobileclip2_l14");
    test_oc_refusals();
#ifdef _OPENMP
    omp_set_num_threads(1);   /* tiny shapes: threads would only add start-up and spinning */
#endif
    test_tiny_vit_grad();
    /* fastvit_mci3 at batch 1: the stage-4 BatchNorms see 16 values per channel,
     * which makes the central difference's truncation error larger (measured
     * 1.96e-3 of the largest gradient, hence 3e-3 there) */
    test_oc_grad("models/oc_mobileclip2_s3", "fastvit_mci3 train", 256, 0, 0, 1, 0, 1e-2f, 3e-3,
                 (const char *const[]){"visual.trunk.stages.4.blocks.", "visual.trunk.stages.3.blocks.0.",
                                       "visual.trunk.stages.3.pos_emb.", "visual.trunk.head.", NULL});
    test_oc_grad("models/oc_mobileclip_b", "vit_base_mci_224 train", 224, 0, 0, 1, 0, 1e-2f, 2e-3,
                 (const char *const[]){"visual.trunk.", NULL});
    test_oc_grad("models/oc_mobileclip2_l14", "vit_large_patch14_clip eval", 224, 1, 0, 1, 0, 1e-2f, 2e-3,
                 (const char *const[]){"visual.trunk.", NULL});
    test_oc_grad("models/oc_mobileclip_b", "OpenCLIP text causal", 224, 0, 0, 0, 3, 1e-2f, 2e-3,
                 (const char *const[]){"text.", NULL});
    test_oc_grad("models/oc_mobileclip2_s0", "OpenCLIP text bidir.", 256, 0, 0, 0, 3, 1e-2f, 2e-3,
                 (const char *const[]){"text.", NULL});
    test_oc_grad("models/oc_mobileclip2_s0", "OpenCLIP text QuickGELU", 256, 0, 1, 0, 3, 1e-2f, 2e-3,
                 (const char *const[]){"text.", NULL});
    return test_summary("test_train_model");
}
