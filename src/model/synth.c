/*
 * model/synth.c - the official architectures as data (mc_arch_spec), checkpoints
 * with seeded random weights in the exact release layouts, and per-tower
 * multiply-accumulate counts (see synth.h).  Names follow the reference
 * modules: apple/ml-mobileclip (mci.py, vit.py, text_encoder.py, repmixer.py)
 * and timm fastvit.py / vision_transformer.py with OpenCLIP's text tower.
 */
#include "model/synth.h"
#include "model/tblock.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tensor names are short (< 200 bytes) and built in 512-byte buffers. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

/* ------------------------------------------------------------------------ */
/* Specs                                                                     */
/* ------------------------------------------------------------------------ */

static void spec_mci(mc_arch_spec *s, int n, const int *depth, const int *width, int mlp, int big) {
    s->image_kind = MC_ARCH_MCI;
    s->image_size = 256;
    s->n_stages = n;
    for (int i = 0; i < n; i++) {
        s->depth[i] = depth[i];
        s->width[i] = width[i];
        s->attn[i] = i >= 3;                 /* stages 3 (and 4) are attention stages */
        s->se_down[i] = !big && i >= 2;      /* mci0..2: SE in the last two downsamples */
    }
    s->mlp_ratio = mlp;
    s->ln2d = big;
    s->stem_scale = !big;
}

static void spec_vit(mc_arch_spec *s, int width, int layers, int patch, int size) {
    s->image_kind = MC_ARCH_VIT;
    s->image_size = size;
    s->vit_width = width;
    s->vit_layers = layers;
    s->vit_patch = patch;
    s->vit_mlp = 4 * width;
}

static void spec_text(mc_arch_spec *s, int kind, int width, int layers, int causal) {
    s->text_kind = kind;
    s->text_width = width;
    s->text_layers = layers;
    s->text_mlp = 4 * width;
    s->context_length = 77;
    s->vocab_size = 49408;
    s->causal = causal;
}

mc_status mc_arch_spec_builtin(const char *name, mc_arch_spec *out, mc_config *cfg, mc_error *err) {
    mc_config c;
    mc_status st = mc_config_builtin(name, &c, err);
    if (st != MC_OK) return st;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", c.name);
    out->v1 = c.family == MC_CONFIG_FAMILY_MOBILECLIP;
    out->embed_dim = c.embed_dim;
    static const int d0[] = {2, 6, 10, 2}, d1[] = {4, 12, 20, 4}, d2[] = {4, 12, 24, 4};
    static const int d3[] = {2, 12, 24, 4, 2}, d4[] = {2, 12, 24, 4, 4};
    static const int w0[] = {64, 128, 256, 512}, w2[] = {80, 160, 320, 640};
    static const int w3[] = {96, 192, 384, 768, 1536}, w4[] = {128, 256, 512, 1024, 2048};
    const char *a = c.image_arch;
    const char *m = !strncmp(a, "fastvit_", 8) ? a + 8 : a;
    if (!strcmp(m, "mci0")) spec_mci(out, 4, d0, w0, 3, 0);
    else if (!strcmp(m, "mci1")) spec_mci(out, 4, d1, w0, 3, 0);
    else if (!strcmp(m, "mci2")) spec_mci(out, 4, d2, w2, 3, 0);
    else if (!strcmp(m, "mci3")) spec_mci(out, 5, d3, w3, 4, 1);
    else if (!strcmp(m, "mci4")) spec_mci(out, 5, d4, w4, 4, 1);
    else if (!strcmp(a, "vit_b16") || !strcmp(a, "vit_base_mci_224")) {
        spec_vit(out, 768, 12, 16, 224);
        out->vit_conv_stem = 1;
    } else if (!strcmp(a, "vit_large_patch14_clip_224")) {
        spec_vit(out, 1024, 24, 14, 224);
        out->vit_norm_pre = 1;
        out->vit_pos_cls = 1;
    } else if (!strcmp(a, "vit") && c.family == MC_CONFIG_FAMILY_OPENCLIP) {
        spec_vit(out, c.vision_width, c.vision_layers, c.vision_patch_size, c.image_size);
        out->vit_mlp = (int)(c.vision_width * c.vision_mlp_ratio);
        out->vit_norm_pre = 1;
        out->vit_pos_cls = 1;
        out->vit_openclip = 1;
    } else
        return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: no architecture description for image model '%s'", name, a);
    if (c.image_size > 0) out->image_size = c.image_size;
    int kind = out->v1 ? (!strcmp(c.text_arch, "mct") ? MC_ARCH_TEXT_MCT : MC_ARCH_TEXT_BASE) : MC_ARCH_TEXT_OPENCLIP;
    spec_text(out, kind, c.text_width, c.text_layers, c.causal);
    if (cfg) *cfg = c;
    return MC_OK;
}

/* ---- inference from a checkpoint ---- */

static const mc_tensor_info *peek(const mc_checkpoint *ck, const char *fmt, ...) MC_PRINTF(2, 3);
static const mc_tensor_info *peek(const mc_checkpoint *ck, const char *fmt, ...) {
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return mc_checkpoint_find(ck, name);
}

static int dim0(const mc_tensor_info *t) { return t && t->ndim >= 1 ? (int)t->shape[0] : 0; }

mc_status mc_arch_spec_infer(const mc_checkpoint *ck, const mc_config *c, mc_arch_spec *out, mc_error *err) {
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", c->name[0] ? c->name : c->image_arch);
    out->v1 = c->family == MC_CONFIG_FAMILY_MOBILECLIP;
    out->embed_dim = c->embed_dim;
    out->image_size = c->image_size;
    const char *a = c->image_arch;
    const mc_tensor_info *t;
    if (out->v1 && (t = peek(ck, "image_encoder.model.patch_embed.0.rbr_conv.0.conv.weight"))) {
        /* mobileclip repo MCi: network.K alternates [pe], blocks, downsample */
        out->image_kind = MC_ARCH_MCI;
        out->stem_scale = 1;
        int width = dim0(t), s = 0, k = 0;
        while (s < MC_ARCH_MAX_STAGES) {
            if (peek(ck, "image_encoder.model.network.%d.pe.weight", k)) { out->attn[s] = 1; k++; }
            int d = 0;
            while (peek(ck, "image_encoder.model.network.%d.%d.layer_scale", k, d) ||
                   peek(ck, "image_encoder.model.network.%d.%d.layer_scale_1", k, d))
                d++;
            if (!d) break;
            if (peek(ck, "image_encoder.model.network.%d.0.layer_scale_1", k)) out->attn[s] = 1;
            out->depth[s] = d;
            out->width[s] = width;
            const mc_tensor_info *f = peek(ck, "image_encoder.model.network.%d.0.convffn.fc1.weight", k);
            if (f && width) out->mlp_ratio = dim0(f) / width;
            s++;
            k++;
            const mc_tensor_info *ds = peek(ck, "image_encoder.model.network.%d.proj.0.lkb_origin.conv.weight", k);
            if (!ds) break;
            width = dim0(ds);
            if (s < MC_ARCH_MAX_STAGES) out->se_down[s] = peek(ck, "image_encoder.model.network.%d.proj.0.se.fc1.weight", k) != NULL;
            k++;
        }
        out->n_stages = s;
    } else if (!out->v1 && (t = peek(ck, "visual.trunk.stem.0.conv_kxk.0.conv.weight"))) {
        out->image_kind = MC_ARCH_MCI;
        out->stem_scale = peek(ck, "visual.trunk.stem.0.conv_scale.conv.weight") != NULL;
        int s = 0;
        for (; s < MC_ARCH_MAX_STAGES; s++) {
            int d = 0;
            while (peek(ck, "visual.trunk.stages.%d.blocks.%d.mlp.fc1.weight", s, d)) d++;
            if (!d) break;
            out->depth[s] = d;
            out->width[s] = dim0(peek(ck, "visual.trunk.stages.%d.blocks.0.mlp.fc2.weight", s));
            out->mlp_ratio = dim0(peek(ck, "visual.trunk.stages.%d.blocks.0.mlp.fc1.weight", s)) / out->width[s];
            out->attn[s] = peek(ck, "visual.trunk.stages.%d.blocks.0.token_mixer.qkv.weight", s) != NULL;
            out->se_down[s] = peek(ck, "visual.trunk.stages.%d.downsample.proj.0.se.fc1.weight", s) != NULL;
            if (out->attn[s])
                out->ln2d = !peek(ck, "visual.trunk.stages.%d.blocks.0.norm.running_var", s);
        }
        out->n_stages = s;
    } else if ((t = peek(ck, "image_encoder.model.transformer.0.pre_norm_mha.1.qkv_proj.weight")) ||
               (t = peek(ck, "visual.trunk.blocks.0.attn.qkv.weight"))) {
        out->image_kind = MC_ARCH_VIT;
        out->vit_width = (int)t->shape[1];
        int l = 0;
        while (peek(ck, out->v1 ? "image_encoder.model.transformer.%d.pre_norm_mha.1.qkv_proj.weight"
                                : "visual.trunk.blocks.%d.attn.qkv.weight", l))
            l++;
        out->vit_layers = l;
        out->vit_mlp = dim0(peek(ck, out->v1 ? "image_encoder.model.transformer.0.pre_norm_ffn.1.weight"
                                             : "visual.trunk.blocks.0.mlp.fc1.weight"));
        const mc_tensor_info *pe = peek(ck, "visual.trunk.patch_embed.proj.weight");
        out->vit_conv_stem = !pe;
        out->vit_patch = pe ? (int)pe->shape[2] : 16;
        out->vit_norm_pre = peek(ck, "visual.trunk.norm_pre.weight") != NULL;
        const mc_tensor_info *pos = peek(ck, "visual.trunk.pos_embed");
        int g = out->image_size / out->vit_patch;
        out->vit_pos_cls = pos && pos->ndim == 3 && pos->shape[1] == (int64_t)g * g + 1;
    } else if (a[0]) {
        return mc_fail(err, MC_ERR_UNSUPPORTED, "cannot infer the architecture of image model '%s' from its tensors", a);
    }
    /* text */
    if ((t = peek(ck, "text_encoder.embedding_layer.weight"))) {
        int kind = peek(ck, "text_encoder.transformer.0.pre_norm_mha.0.weight") ? MC_ARCH_TEXT_BASE : MC_ARCH_TEXT_MCT;
        int l = 0, n = 0;
        while (peek(ck, "text_encoder.transformer.%d.layer_scale", n) ||
               peek(ck, "text_encoder.transformer.%d.pre_norm_mha.0.weight", n)) {
            if (peek(ck, "text_encoder.transformer.%d.pre_norm_mha.0.weight", n)) l++;
            n++;
        }
        spec_text(out, kind, (int)t->shape[1], l, c->causal);
    } else if ((t = peek(ck, "text.token_embedding.weight")) || (t = peek(ck, "token_embedding.weight"))) {
        const char *pre = peek(ck, "text.token_embedding.weight") ? "text." : "";
        int l = 0;
        while (peek(ck, "%stransformer.resblocks.%d.ln_1.weight", pre, l)) l++;
        spec_text(out, MC_ARCH_TEXT_OPENCLIP, (int)t->shape[1], l, c->causal);
    }
    if (out->text_kind) {
        out->vocab_size = c->vocab_size > 0 ? c->vocab_size : 49408;
        out->context_length = c->context_length > 0 ? c->context_length : 77;
        out->text_mlp = 4 * out->text_width;
        const mc_tensor_info *f = peek(ck, out->v1 ? "text_encoder.transformer.1.pre_norm_ffn.1.weight"
                                                   : "text.transformer.resblocks.0.mlp.c_fc.weight");
        if (f) out->text_mlp = dim0(f);
    }
    return MC_OK;
}

/* ------------------------------------------------------------------------ */
/* Generation                                                                */
/* ------------------------------------------------------------------------ */

typedef enum { V_W, V_ONE, V_BIAS, V_MEAN, V_VAR, V_EMB, V_SCALE } vkind;

typedef struct gen {
    mc_checkpoint *ck;
    uint64_t seed;
    mc_error *err;
    mc_status st;
    int v1;
} gen;

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Adds one float tensor named pre + suf (values by kind; fan_in scales V_W). */
static void add(gen *g, vkind kind, int64_t fan_in, int ndim, const int64_t *shape, const char *pre, const char *suf) {
    if (g->st != MC_OK) return;
    char name[512];
    snprintf(name, sizeof name, "%s%s", pre, suf);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    float *d = mc_malloc_array(n ? n : 1, sizeof(float));
    if (!d) { g->st = mc_fail(g->err, MC_ERR_NOMEM, "out of memory for synthetic tensor '%s'", name); return; }
    uint64_t x = g->seed;
    for (const char *p = name; *p; p++) x = (x ^ (uint8_t)*p) * 0x100000001B3ull;   /* FNV-1a */
    float amp, base = 0;   /* values base + amp * uniform(-1, 1) */
    switch (kind) {
    case V_W: amp = (float)(sqrt(3.0) / sqrt((double)(fan_in > 0 ? fan_in : 1))); break;
    case V_ONE: amp = 0.1f; base = 1; break;
    case V_BIAS: amp = 0.02f; break;
    case V_MEAN: amp = 0.1f; break;
    case V_VAR: amp = 0.5f; base = 1; break;       /* running_var in [0.5, 1.5] */
    case V_EMB: amp = 0.035f; break;               /* std 0.02 */
    default: amp = 0.02f; base = 0.1f; break;      /* layer scales */
    }
    uint64_t s = splitmix(&x) | 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;     /* xorshift64 */
        float u = (float)(int64_t)(s >> 40) * (1.0f / 8388608.0f) - 1.0f;
        d[i] = base + amp * u;
    }
    g->st = mc_checkpoint_own(g->ck, d, g->err);
    if (g->st == MC_OK) g->st = mc_checkpoint_add(g->ck, name, MC_DTYPE_F32, ndim, shape, d, n * sizeof(float), g->err);
}

static void vec(gen *g, vkind k, int64_t n, const char *pre, const char *suf) {
    add(g, k, 0, 1, (int64_t[]){n}, pre, suf);
}
/* [r, c] matrix; PyTorch Linear weights are [out, in] with fan-in c. */
static void mat(gen *g, vkind k, int64_t fan_in, int64_t r, int64_t c, const char *pre, const char *suf) {
    add(g, k, fan_in, 2, (int64_t[]){r, c}, pre, suf);
}
static void linear(gen *g, int64_t out, int64_t in, int bias, const char *pre, const char *w, const char *b) {
    mat(g, V_W, in, out, in, pre, w);
    if (bias) vec(g, V_BIAS, out, pre, b);
}
/* Conv2d weight [co, ci/groups, kh, kw] (suffix "weight" appended to cpre), optional bias. */
static void conv(gen *g, int64_t co, int64_t cig, int64_t kh, int64_t kw, int bias, const char *pre, const char *cpre) {
    char p[512];
    snprintf(p, sizeof p, "%s%s", pre, cpre);
    add(g, V_W, cig * kh * kw, 4, (int64_t[]){co, cig, kh, kw}, p, "weight");
    if (bias) vec(g, V_BIAS, co, p, "bias");
}
/* BatchNorm2d under pre + bpre ("...bn."): weight, bias, running stats, num_batches_tracked. */
static void bn(gen *g, int64_t c, const char *pre, const char *bpre) {
    char p[512];
    snprintf(p, sizeof p, "%s%s", pre, bpre);
    vec(g, V_ONE, c, p, "weight");
    vec(g, V_BIAS, c, p, "bias");
    vec(g, V_MEAN, c, p, "running_mean");
    vec(g, V_VAR, c, p, "running_var");
    if (g->st != MC_OK) return;
    int64_t *nb = malloc(sizeof *nb);
    if (!nb) { g->st = mc_fail(g->err, MC_ERR_NOMEM, "out of memory"); return; }
    *nb = 1000;
    char name[560];
    snprintf(name, sizeof name, "%snum_batches_tracked", p);
    g->st = mc_checkpoint_own(g->ck, nb, g->err);
    if (g->st == MC_OK) g->st = mc_checkpoint_add(g->ck, name, MC_DTYPE_I64, 0, NULL, nb, sizeof *nb, g->err);
}
static void ln(gen *g, int64_t c, const char *pre, const char *lpre) {
    char p[512];
    snprintf(p, sizeof p, "%s%s", pre, lpre);
    vec(g, V_ONE, c, p, "weight");
    vec(g, V_BIAS, c, p, "bias");
}
static void layer_scale(gen *g, int64_t c, const char *pre, const char *name) {
    char p[512];
    snprintf(p, sizeof p, "%s%s%s", pre, name, g->v1 ? "" : ".gamma");
    add(g, V_SCALE, 0, 3, (int64_t[]){c, 1, 1}, p, "");
}
static void se(gen *g, int64_t c, int64_t rd, const char *pre, const char *a, const char *b) {
    char p[512];
    snprintf(p, sizeof p, "%s%s", pre, a);
    conv(g, rd, c, 1, 1, 1, p, "");
    snprintf(p, sizeof p, "%s%s", pre, b);
    conv(g, c, rd, 1, 1, 1, p, "");
}

/* MobileOne block: conv branch kxk (+ 1x1 scale branch when k > 1 and scale),
 * identity BatchNorm when skip, squeeze-excite with rd channels when rd > 0. */
static void mobileone(gen *g, const char *pre, int cin, int cout, int k, int groups, int skip, int scale, int rd) {
    int v1 = g->v1;
    if (rd) se(g, cout, rd, pre, v1 ? "se.reduce." : "se.fc1.", v1 ? "se.expand." : "se.fc2.");
    if (skip) bn(g, cout, pre, v1 ? "rbr_skip." : "identity.");
    conv(g, cout, cin / groups, k, k, 0, pre, v1 ? "rbr_conv.0.conv." : "conv_kxk.0.conv.");
    bn(g, cout, pre, v1 ? "rbr_conv.0.bn." : "conv_kxk.0.bn.");
    if (scale && k > 1) {
        conv(g, cout, cin / groups, 1, 1, 0, pre, v1 ? "rbr_scale.conv." : "conv_scale.conv.");
        bn(g, cout, pre, v1 ? "rbr_scale.bn." : "conv_scale.bn.");
    }
}

/* ConvFFN: depthwise kh x kw conv + BN, fc1, fc2 (1x1 convs). */
static void convffn(gen *g, const char *pre, int c, int hidden, int kh, int kw) {
    char p[512];
    snprintf(p, sizeof p, "%s%s", pre, g->v1 ? "convffn." : "mlp.");
    conv(g, c, 1, kh, kw, 0, p, "conv.conv.");
    bn(g, c, p, "conv.bn.");
    conv(g, hidden, c, 1, 1, 1, p, "fc1.");
    conv(g, c, hidden, 1, 1, 1, p, "fc2.");
}

static void repmixer_block(gen *g, const char *pre, int c, int hidden, int kh, int kw) {
    char p[512];
    int v1 = g->v1;
    layer_scale(g, c, pre, "layer_scale");
    snprintf(p, sizeof p, "%stoken_mixer.", pre);
    layer_scale(g, c, p, "layer_scale");
    bn(g, c, p, v1 ? "norm.rbr_skip." : "norm.identity.");
    snprintf(p, sizeof p, "%stoken_mixer.mixer.", pre);
    bn(g, c, p, v1 ? "rbr_skip." : "identity.");
    conv(g, c, 1, kh, kw, 0, p, v1 ? "rbr_conv.0.conv." : "conv_kxk.0.conv.");
    bn(g, c, p, v1 ? "rbr_conv.0.bn." : "conv_kxk.0.bn.");
    if (kh > 1) {   /* the text RepMixer (1 x 11) has no scale branch */
        conv(g, c, 1, 1, 1, 0, p, v1 ? "rbr_scale.conv." : "conv_scale.conv.");
        bn(g, c, p, v1 ? "rbr_scale.bn." : "conv_scale.bn.");
    }
    convffn(g, pre, c, hidden, kh == 1 ? 1 : 7, kh == 1 ? kw : 7);
}

static void attention_block(gen *g, const mc_arch_spec *s, const char *pre, int c, int hidden) {
    layer_scale(g, c, pre, "layer_scale_1");
    layer_scale(g, c, pre, "layer_scale_2");
    if (s->ln2d) ln(g, c, pre, "norm.");
    else bn(g, c, pre, "norm.");
    mat(g, V_W, c, 3 * c, c, pre, "token_mixer.qkv.weight");
    linear(g, c, c, 1, pre, "token_mixer.proj.weight", "token_mixer.proj.bias");
    convffn(g, pre, c, hidden, 7, 7);
}

static void gen_mci(gen *g, const mc_arch_spec *s) {
    const char *root = g->v1 ? "image_encoder.model." : "visual.trunk.";
    char p[512];
    int c0 = s->width[0];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s.%d.", root, g->v1 ? "patch_embed" : "stem", i);
        if (i == 0) mobileone(g, p, 3, c0, 3, 1, 0, s->stem_scale, 0);
        else if (i == 1) mobileone(g, p, c0, c0, 3, c0, 0, s->stem_scale, 0);
        else mobileone(g, p, c0, c0, 1, 1, 1, 0, 0);
    }
    int k = 0;   /* v1: index into network */
    for (int st = 0; st < s->n_stages; st++) {
        int c = s->width[st], hidden = c * s->mlp_ratio;
        if (st > 0) {   /* downsample from the previous width: large-kernel conv, then 1x1 MobileOne */
            int ci = s->width[st - 1];
            char q[512];
            if (g->v1) snprintf(p, sizeof p, "%snetwork.%d.proj.", root, k++);
            else snprintf(p, sizeof p, "%sstages.%d.downsample.proj.", root, st);
            snprintf(q, sizeof q, "%s0.", p);
            if (s->se_down[st]) se(g, c, c / 4, q, "se.fc1.", "se.fc2.");
            conv(g, c, 1, 7, 7, 0, q, g->v1 ? "lkb_origin.conv." : "large_conv.conv.");
            bn(g, c, q, g->v1 ? "lkb_origin.bn." : "large_conv.bn.");
            conv(g, c, 1, 3, 3, 0, q, "small_conv.conv.");
            bn(g, c, q, "small_conv.bn.");
            (void)ci;
            snprintf(q, sizeof q, "%s1.", p);
            mobileone(g, q, c, c, 1, 1, 1, 0, 0);
        }
        if (s->attn[st]) {   /* conditional positional encoding: depthwise 7x7 with bias */
            if (g->v1) snprintf(p, sizeof p, "%snetwork.%d.pe.", root, k++);
            else snprintf(p, sizeof p, "%sstages.%d.pos_emb.pos_enc.", root, st);
            conv(g, c, 1, 7, 7, 1, p, "");
        }
        for (int b = 0; b < s->depth[st]; b++) {
            if (g->v1) snprintf(p, sizeof p, "%snetwork.%d.%d.", root, k, b);
            else snprintf(p, sizeof p, "%sstages.%d.blocks.%d.", root, st, b);
            if (s->attn[st]) attention_block(g, s, p, c, hidden);
            else repmixer_block(g, p, c, hidden, 3, 3);
        }
        if (g->v1) k++;
    }
    int cl = s->width[s->n_stages - 1];
    snprintf(p, sizeof p, "%s%s", root, g->v1 ? "conv_exp." : "final_conv.");
    mobileone(g, p, cl, 2 * cl, 3, cl, 0, 1, 2 * cl / 16);
    if (g->v1) mat(g, V_W, 2 * cl, 2 * cl, s->embed_dim, root, "head.proj");
    else linear(g, s->embed_dim, 2 * cl, 1, root, "head.fc.weight", "head.fc.bias");
}

/* One pre-norm transformer layer in the mobileclip repo layout. */
/* A pre-norm transformer block of width w and MLP width hidden under the
 * names of nm (model/tblock.h: the mobileclip, timm and OpenCLIP layouts). */
static void tblock(gen *g, const char *pre, int w, int hidden, const mc_tblock_names *nm) {
    vec(g, V_ONE, w, pre, nm->ln1_w);
    vec(g, V_BIAS, w, pre, nm->ln1_b);
    linear(g, 3 * w, w, 1, pre, nm->qkv_w, nm->qkv_b);
    linear(g, w, w, 1, pre, nm->out_w, nm->out_b);
    vec(g, V_ONE, w, pre, nm->ln2_w);
    vec(g, V_BIAS, w, pre, nm->ln2_b);
    linear(g, hidden, w, 1, pre, nm->fc1_w, nm->fc1_b);
    linear(g, w, hidden, 1, pre, nm->fc2_w, nm->fc2_b);
}

static void gen_vit(gen *g, const mc_arch_spec *s) {
    int w = s->vit_width, grid = s->image_size / s->vit_patch;
    char p[512];
    if (g->v1) {
        const char *root = "image_encoder.model.";
        int cs = w / 4 > 32 ? w / 4 : 32;
        add(g, V_EMB, 0, 3, (int64_t[]){1, 1, w}, root, "cls_token");
        conv(g, cs, 3, 4, 4, 0, root, "patch_emb.0.block.conv.");
        bn(g, cs, root, "patch_emb.0.block.norm.");
        conv(g, cs, cs, 2, 2, 0, root, "patch_emb.1.block.conv.");
        bn(g, cs, root, "patch_emb.1.block.norm.");
        conv(g, w, cs, 2, 2, 1, root, "patch_emb.2.block.conv.");
        ln(g, w, root, "post_transformer_norm.");
        for (int l = 0; l < s->vit_layers; l++) {
            snprintf(p, sizeof p, "%stransformer.%d.", root, l);
            tblock(g, p, w, s->vit_mlp, &mc_tblock_names_mobileclip);
        }
        mat(g, V_W, w, w, s->embed_dim, root, "classifier.proj");
        add(g, V_EMB, 0, 4, (int64_t[]){1, 1, (int64_t)grid * grid, w}, root, "pos_embed.pos_embed.pos_embed");
        return;
    }
    if (s->vit_openclip) {
        const char *root = "visual.";
        conv(g, w, 3, s->vit_patch, s->vit_patch, 0, root, "conv1.");
        add(g, V_EMB, 0, 1, (int64_t[]){w}, root, "class_embedding");
        mat(g, V_EMB, 0, (int64_t)grid * grid + 1, w, root, "positional_embedding");
        ln(g, w, root, "ln_pre.");
        for (int l = 0; l < s->vit_layers; l++) {
            snprintf(p, sizeof p, "%stransformer.resblocks.%d.", root, l);
            tblock(g, p, w, s->vit_mlp, &mc_tblock_names_openclip);
        }
        ln(g, w, root, "ln_post.");
        mat(g, V_W, w, w, s->embed_dim, root, "proj");
        return;
    }
    const char *root = "visual.trunk.";
    add(g, V_EMB, 0, 3, (int64_t[]){1, 1, w}, root, "cls_token");
    add(g, V_EMB, 0, 3, (int64_t[]){1, (int64_t)grid * grid + (s->vit_pos_cls ? 1 : 0), w}, root, "pos_embed");
    if (s->vit_conv_stem) {
        int cs = w / 4 > 32 ? w / 4 : 32;
        conv(g, cs, 3, 4, 4, 0, root, "patch_embed.backbone.0.conv.");
        bn(g, cs, root, "patch_embed.backbone.0.bn.");
        conv(g, cs, cs, 2, 2, 0, root, "patch_embed.backbone.1.conv.");
        bn(g, cs, root, "patch_embed.backbone.1.bn.");
        conv(g, w, cs, 2, 2, 1, root, "patch_embed.backbone.2.conv.");
    } else {
        conv(g, w, 3, s->vit_patch, s->vit_patch, 0, root, "patch_embed.proj.");
    }
    if (s->vit_norm_pre) ln(g, w, root, "norm_pre.");
    for (int l = 0; l < s->vit_layers; l++) {
        snprintf(p, sizeof p, "%sblocks.%d.", root, l);
        tblock(g, p, w, s->vit_mlp, &mc_tblock_names_timm);
    }
    ln(g, w, root, "norm.");
    linear(g, s->embed_dim, w, 1, root, "head.weight", "head.bias");
}

static void gen_text(gen *g, const mc_arch_spec *s) {
    int w = s->text_width, h = s->text_mlp;
    char p[512];
    if (s->text_kind == MC_ARCH_TEXT_OPENCLIP) {
        const char *root = s->vit_openclip ? "" : "text.";   /* CLIP keeps its text tower at the root */
        mat(g, V_EMB, 0, s->context_length, w, root, "positional_embedding");
        mat(g, V_W, w, w, s->embed_dim, root, "text_projection");
        mat(g, V_EMB, 0, s->vocab_size, w, root, "token_embedding.weight");
        for (int l = 0; l < s->text_layers; l++) {
            snprintf(p, sizeof p, "%stransformer.resblocks.%d.", root, l);
            tblock(g, p, w, h, &mc_tblock_names_openclip);
        }
        ln(g, w, root, "ln_final.");
        return;
    }
    const char *root = "text_encoder.";
    mat(g, V_W, w, w, s->embed_dim, root, "projection_layer");
    mat(g, V_EMB, 0, s->vocab_size, w, root, "embedding_layer.weight");
    add(g, V_EMB, 0, 4, (int64_t[]){1, 1, s->context_length, w}, root, "positional_embedding.pos_embed.pos_embed");
    int mct = s->text_kind == MC_ARCH_TEXT_MCT;
    int n = s->text_layers + (mct ? 2 : 0);
    for (int l = 0; l < n; l++) {
        snprintf(p, sizeof p, "%stransformer.%d.", root, l);
        if (mct && (l == 0 || l == n - 1)) repmixer_block(g, p, w, h, 1, 11);
        else tblock(g, p, w, h, &mc_tblock_names_mobileclip);
    }
    ln(g, w, root, "final_layer_norm.");
}

mc_status mc_synth_checkpoint(const mc_arch_spec *s, uint64_t seed, int want_image, int want_text,
                              mc_checkpoint **out, mc_error *err) {
    if (!s || !out) return mc_fail(err, MC_ERR_INVALID_ARG, "mc_synth_checkpoint: spec and out are required");
    *out = NULL;
    mc_checkpoint *ck = calloc(1, sizeof *ck);
    if (!ck) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    char label[128];
    snprintf(label, sizeof label, "synthetic %s", s->name[0] ? s->name : "model");
    ck->path = strdup(label);
    ck->format = s->v1 ? MC_FORMAT_TORCH_ZIP : MC_FORMAT_SAFETENSORS;
    gen g = {ck, seed, err, ck->path ? MC_OK : MC_ERR_NOMEM, s->v1};
    if (g.st != MC_OK) mc_fail(err, MC_ERR_NOMEM, "out of memory");
    add(&g, V_SCALE, 0, 0, NULL, "", "logit_scale");
    if (g.st == MC_OK) ((float *)ck->tensors[ck->n_tensors - 1].data)[0] = logf(100.0f);
    if (want_image) {
        if (s->image_kind == MC_ARCH_MCI) gen_mci(&g, s);
        else if (s->image_kind == MC_ARCH_VIT) gen_vit(&g, s);
    }
    if (want_text && s->text_kind) gen_text(&g, s);
    if (g.st != MC_OK) { mc_checkpoint_close(ck); return g.st; }
    *out = ck;
    return MC_OK;
}

mc_status mc_synth_model_load(const char *name, uint64_t seed, const mc_model_params *params, mc_model **out,
                              mc_error *err) {
    mc_arch_spec s;
    mc_config cfg;
    mc_status st = mc_arch_spec_builtin(name, &s, &cfg, err);
    if (st != MC_OK) return st;
    mc_model_params p = params ? *params : mc_model_default_params();
    mc_checkpoint *ck = NULL;
    st = mc_synth_checkpoint(&s, seed, p.load_image_tower, p.load_text_tower, &ck, err);
    if (st != MC_OK) return st;
    st = mc_model_load_checkpoint(ck, &cfg, &p, out, err);
    mc_checkpoint_close(ck);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Multiply-accumulate counts                                                */
/* ------------------------------------------------------------------------ */

/* One pre-norm transformer layer over t tokens of width w (qkv, scores,
 * weighted values, output projection, MLP). */
static double macs_transformer(double t, double w, double hidden, int with_attention) {
    double m = t * w * 3 * w + t * w * w + 2 * t * w * hidden;
    if (with_attention) m += 2 * t * t * w;
    return m;
}

double mc_arch_macs_image(const mc_arch_spec *s, int with_attention) {
    double m = 0;
    if (s->image_kind == MC_ARCH_MCI) {
        /* the folded network: every MobileOne/RepMixer branch is one conv */
        int h = (s->image_size + 1) / 2;
        double c = s->width[0], hw = (double)h * h;
        m += hw * c * 3 * 9;                 /* stem 3x3 s2 */
        h = (h + 1) / 2; hw = (double)h * h;
        m += hw * c * 9 + hw * c * c;        /* stem depthwise 3x3 s2, 1x1 */
        for (int st = 0; st < s->n_stages; st++) {
            c = s->width[st];
            double hid = c * s->mlp_ratio;
            if (st > 0) {
                h = (h + 1) / 2; hw = (double)h * h;
                m += hw * c * 49 + hw * c * c;    /* large-kernel grouped conv (small folded in), 1x1 */
                if (s->se_down[st]) m += 2 * c * (c / 4);
            }
            if (s->attn[st]) m += hw * c * 49;   /* positional encoding */
            double ffn = hw * c * 49 + 2 * hw * c * hid;
            for (int b = 0; b < s->depth[st]; b++) {
                if (s->attn[st]) m += ffn + macs_transformer(hw, c, 0, with_attention);
                else m += hw * c * 9 + ffn;   /* RepMixer folds to one depthwise 3x3 */
            }
        }
        double cl = 2 * c;
        m += hw * cl * 9 + 2 * cl * (cl / 16);   /* final grouped 3x3 conv (C -> 2C) + SE */
        m += cl * s->embed_dim;                 /* pooled projection */
    } else if (s->image_kind == MC_ARCH_VIT) {
        double w = s->vit_width;
        int g = s->image_size / s->vit_patch;
        double t = (double)g * g + 1;
        if (s->vit_conv_stem) {
            double cs = w / 4 > 32 ? w / 4 : 32;
            int h = s->image_size / 4;
            m += (double)h * h * cs * 3 * 16;
            h /= 2;
            m += (double)h * h * cs * cs * 4;
            h /= 2;
            m += (double)h * h * w * cs * 4;
        } else {
            m += (double)g * g * w * 3 * s->vit_patch * s->vit_patch;
        }
        for (int l = 0; l < s->vit_layers; l++) m += macs_transformer(t, w, s->vit_mlp, with_attention);
        m += w * s->embed_dim;
    }
    return m;
}

double mc_arch_macs_text(const mc_arch_spec *s, int with_attention) {
    return mc_arch_macs_text_run(s, with_attention, s->context_length);
}

double mc_arch_macs_text_run(const mc_arch_spec *s, int with_attention, int positions) {
    if (!s->text_kind) return 0;
    double t = positions, w = s->text_width, m = 0;
    for (int l = 0; l < s->text_layers; l++) m += macs_transformer(t, w, s->text_mlp, with_attention);
    if (s->text_kind == MC_ARCH_TEXT_MCT)   /* two RepMixer blocks: 1x11 depthwise mixer and ConvFFN */
        m += 2 * (t * w * 11 + t * w * 11 + 2 * t * w * s->text_mlp);
    m += w * s->embed_dim;                  /* projection of the pooled token */
    return m;
}
