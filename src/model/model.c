/*
 * model/model.c - model assembly: loading (config, checkpoint, image and text
 * towers, logit scale, tokenizer), export of the folded weights
 * (mc_model_export and the mc_export list the towers fill), model info,
 * contexts (planned scratch memory) and the encode entry points.
 */
#include "model/model.h"
#include "kernels/kernels.h"
#include "kernels/qmat.h"
#include "kernels/lowp.h"

#include "io/config.h"
#include "io/download.h"
#include "model/mci.h"
#include "model/text.h"
#include "model/vit.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct mc_model {
    mc_config cfg;
    char ckpt_path[4096];
    mc_file_format format;
    mc_arena arena;
    mc_image_tower *image;
    mc_text_tower *text;
    mc_tokenizer *tok;
    float logit_scale;        /* exp of the stored parameter */
    float logit_raw;          /* the stored parameter, for export */
    int logit_ndim;           /* 0 or 1; -1 when the checkpoint has none */
    int64_t n_tensors, n_params;
    char *cfg_text;           /* the config JSON text the model was built from */
    char cfg_file[256];       /* its file name when read from a file, else "" */
    int weight_dtype;         /* mc_weight_dtype the big matrices are held in */
};

struct mc_context {
    const mc_model *model;
    mc_error last;
    float *ws;                /* scratch for the planned batch */
    size_t ws_floats;
    int batch;                /* batch the scratch is planned for */
    int n_threads;            /* kernel threads for this context's calls (0: process default) */
};

void mc_l2_normalize_rows(float *x, int n, int d) {
    for (int i = 0; i < n; i++) {
        float *r = x + (size_t)i * d;
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)r[j] * r[j];
        double nrm = sqrt(s);
        float inv = (float)(1.0 / (nrm > 1e-12 ? nrm : 1e-12));
        for (int j = 0; j < d; j++) r[j] *= inv;
    }
}

mc_model_params mc_model_default_params(void) {
    mc_model_params p;
    memset(&p, 0, sizeof p);
    p.load_image_tower = 1;
    p.load_text_tower = 1;
    p.reparameterize = 1;
    p.load_tokenizer = 1;
    return p;
}

mc_context_params mc_context_default_params(void) {
    mc_context_params p;
    memset(&p, 0, sizeof p);
    p.max_batch = 1;
    return p;
}

void mc_model_free(mc_model *m) {
    if (!m) return;
    if (m->image) {
        if (m->image->destroy) m->image->destroy(m->image);
        free(m->image);
    }
    if (m->text) {
        if (m->text->destroy) m->text->destroy(m->text);
        free(m->text);
    }
    mc_tokenizer_free(m->tok);
    mc_arena_free(&m->arena);
    free(m->cfg_text);
    free(m);
}

static int is_mci_arch(const char *a) {
    return !strncmp(a, "mci", 3) || !strncmp(a, "fastvit_mci", 11);
}

/* Image tower by architecture. */
static mc_status load_image(mc_binder *b, const mc_config *c, int folded, mc_image_tower **out,
                            const char **prefix) {
    const char *arch = c->image_arch;
    int known = 0;
    mc_vit_params vp = mc_vit_default_params(arch, &known);
    if (known) {
        int v1 = c->family == MC_CONFIG_FAMILY_MOBILECLIP;
        if (v1 != (vp.layout == MC_VIT_LAYOUT_MOBILECLIP))
            return b->status = mc_fail(b->err, MC_ERR_UNSUPPORTED, "%s: image model '%s' in a %s config is not supported",
                                       b->path, arch, mc_config_family_name(c->family));
        if (!v1 && c->image_pool[0] && strcmp(c->image_pool, "token"))
            return b->status = mc_fail(b->err, MC_ERR_UNSUPPORTED, "%s: timm_pool '%s' for a ViT is not supported",
                                       b->path, c->image_pool);
        if (!v1 && c->image_proj[0] && strcmp(c->image_proj, "none"))
            return b->status = mc_fail(b->err, MC_ERR_UNSUPPORTED, "%s: timm_proj '%s' for a ViT is not supported",
                                       b->path, c->image_proj);
        if (c->image_size > 0) vp.image_size = c->image_size;
        if (vp.layout == MC_VIT_LAYOUT_OPENCLIP) {
            vp.head_dim = c->vision_head_width;
            vp.act = c->quick_gelu ? MC_ACT_QUICK_GELU : MC_ACT_GELU;
        }
        vp.folded = folded;
        vp.embed_dim = c->embed_dim;
        *prefix = vp.prefix;
        return mc_vit_tower_load(b, &vp, out);
    }
    if (is_mci_arch(arch)) {
        int v1 = c->family == MC_CONFIG_FAMILY_MOBILECLIP;
        if (!v1 && c->image_pool[0] && strcmp(c->image_pool, "avg"))
            return b->status = mc_fail(b->err, MC_ERR_UNSUPPORTED, "%s: timm_pool '%s' for an MCi tower is not supported",
                                       b->path, c->image_pool);
        if (!v1 && c->image_proj[0] && strcmp(c->image_proj, "none"))
            return b->status = mc_fail(b->err, MC_ERR_UNSUPPORTED, "%s: timm_proj '%s' for an MCi tower is not supported",
                                       b->path, c->image_proj);
        mc_mci_params mp = {.layout = v1 ? MC_LAYOUT_V1 : MC_LAYOUT_TIMM,
                            .prefix = v1 ? "image_encoder.model." : "visual.trunk.",
                            .arch = arch,
                            .image_size = c->image_size > 0 ? c->image_size : 256,
                            .embed_dim = c->embed_dim,
                            .folded = folded};
        *prefix = mp.prefix;
        return mc_mci_tower_load(b, &mp, out);
    }
    return b->status = mc_fail(b->err, MC_ERR_UNSUPPORTED, "%s: image model '%s' is not supported", b->path,
                               arch[0] ? arch : "(none)");
}

static mc_status load_text(mc_binder *b, const mc_config *c, mc_text_tower **out, const char **prefix) {
    mc_text_params tp = mc_text_default_params();
    tp.heads = c->text_heads;
    tp.causal = c->causal;
    tp.width = c->text_width;
    tp.vocab = c->vocab_size;
    tp.context = c->context_length;
    tp.embed_dim = c->embed_dim;
    if (c->family == MC_CONFIG_FAMILY_MOBILECLIP) {
        if (strcmp(c->text_arch, "mct") && strcmp(c->text_arch, "base"))
            return b->status = mc_fail(b->err, MC_ERR_UNSUPPORTED, "%s: text model '%s' is not supported", b->path,
                                       c->text_arch);
        tp.arch = c->text_arch;
        tp.layout = MC_TEXT_LAYOUT_MOBILECLIP;
        tp.prefix = "text_encoder.";
    } else {
        tp.arch = "open_clip";
        tp.layout = MC_TEXT_LAYOUT_OPENCLIP;
        /* CustomTextCLIP keeps its text tower under "text.", CLIP at the top level: any
         * "text." tensor decides, so that a missing one is named with its prefix */
        tp.prefix = mc_binder_has_prefix(b, "text.") ? "text." : "";
        tp.act = c->quick_gelu ? MC_ACT_QUICK_GELU : MC_ACT_GELU;
        if (c->text_embed_cls)
            return b->status = mc_fail(b->err, MC_ERR_UNSUPPORTED, "%s: text embed_cls is not supported", b->path);
        if (!strcmp(c->text_pool, "first")) tp.pool = MC_TEXT_POOL_FIRST;
        else if (!strcmp(c->text_pool, "last")) tp.pool = MC_TEXT_POOL_LAST;
        else if (!strcmp(c->text_pool, "eos")) tp.pool = MC_TEXT_POOL_EOS;
        else if (!c->text_pool[0] || !strcmp(c->text_pool, "argmax")) tp.pool = MC_TEXT_POOL_ARGMAX;
        else
            return b->status = mc_fail(b->err, MC_ERR_UNSUPPORTED, "%s: text pool_type '%s' is not supported",
                                       b->path, c->text_pool);
    }
    *prefix = tp.prefix;
    return mc_text_tower_load(b, &tp, out);
}

/* OpenCLIP's text attn_mask buffer, when a checkpoint carries it (it is not
 * saved by today's open_clip): it must be the causal mask the config implies
 * (0 on and below the diagonal, -inf above), since the tower builds its own. */
static mc_status check_attn_mask(mc_binder *b, const mc_model *m, const char *prefix) {
    const mc_tensor_info *t = mc_binder_peek(b, "%sattn_mask", prefix);
    if (!t) return MC_OK;
    int n = m->text->context_length;
    b->allow_inf = 1;
    const float *mask = mc_bind2(b, n, n, "%sattn_mask", prefix);
    b->allow_inf = 0;
    if (!mask) return b->status;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            float v = mask[(size_t)i * n + j];
            int ok = (j <= i || !m->cfg.causal) ? v == 0.0f : (isinf(v) && v < 0);
            if (!ok)
                return b->status = mc_fail(b->err, MC_ERR_UNSUPPORTED,
                                           "%s: tensor '%sattn_mask' is not the %s mask (element [%d, %d] = %g)",
                                           b->path, prefix, m->cfg.causal ? "causal" : "empty", i, j, (double)v);
        }
    return MC_OK;
}

static mc_status model_bind(mc_model *m, const mc_checkpoint *ck, const mc_model_params *pp, mc_error *err);
static mc_status model_load_vocab(mc_model *m, const mc_model_params *p, mc_error *err);

mc_status mc_model_load(const char *path, const mc_model_params *params, mc_model **out, mc_error *err) {
    if (!path || !out) return mc_fail(err, MC_ERR_INVALID_ARG, "mc_model_load: path and out are required");
    *out = NULL;
    mc_model_params p = params ? *params : mc_model_default_params();
    if (!p.load_image_tower && !p.load_text_tower)
        return mc_fail(err, MC_ERR_INVALID_ARG, "mc_model_load: neither tower requested");
    mc_model *m = calloc(1, sizeof *m);
    if (!m) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    mc_status st = mc_config_resolve_text(path, p.config_path, p.model_name, &m->cfg, m->ckpt_path,
                                          sizeof m->ckpt_path, &m->cfg_text, err);
    if (st != MC_OK) { mc_model_free(m); return st; }
    if (strcmp(m->cfg.source, "built-in") && !strstr(m->cfg.source, "(metadata")) {
        const char *base = strrchr(m->cfg.source, '/');
        snprintf(m->cfg_file, sizeof m->cfg_file, "%.255s", base ? base + 1 : m->cfg.source);
    }

    mc_checkpoint *ck = NULL;
    st = mc_checkpoint_open(m->ckpt_path, &ck, err);
    if (st != MC_OK) { mc_model_free(m); return st; }
    st = model_bind(m, ck, &p, err);
    mc_checkpoint_close(ck);
    if (st == MC_OK && p.load_text_tower && p.load_tokenizer) st = model_load_vocab(m, &p, err);
    if (st != MC_OK) { mc_model_free(m); return st; }
    *out = m;
    return MC_OK;
}

/* Replaces the towers' big matrices by reduced copies (src/kernels/lowp.h). */
static mc_status model_lower(mc_model *m, int dtype, mc_error *err) {
    _Static_assert((int)MC_WT_BF16 == MC_WEIGHTS_BF16 && (int)MC_WT_F16 == MC_WEIGHTS_F16 &&
                     (int)MC_WT_I8 == MC_WEIGHTS_INT8, "weight type numbering");
    mc_lower L = {.arena = &m->arena, .type = (mc_wtype)dtype, .err = err, .status = MC_OK};
    if (m->image && m->image->lower) m->image->lower(m->image, &L);
    if (m->text && m->text->lower) m->text->lower(m->text, &L);
    m->weight_dtype = dtype;
    return L.status;
}

/* Float32 models: the GEMM weights pre-packed for the kernel set in use
 * (src/kernels/gemm.h, mc_qmat_pack), so forward passes never re-pack them; the plain
 * matrices are given back, each weight is held once (export unpacks them).
 * MC_PREPACK=0 in the environment turns this off (for comparisons). */
static void model_prepack(mc_model *m, mc_error *err) {
    const char *env = getenv("MC_PREPACK");
    if (env && !strcmp(env, "0")) return;
    mc_lower L = {.arena = &m->arena, .type = MC_WT_F32, .pack = 1, .err = err, .status = MC_OK};
    if (m->image && m->image->lower) m->image->lower(m->image, &L);
    if (m->text && m->text->lower) m->text->lower(m->text, &L);
}

/* Binds both towers and the logit scale from an open checkpoint into m. */
static mc_status model_bind(mc_model *m, const mc_checkpoint *ck, const mc_model_params *pp, mc_error *err) {
    mc_model_params p = *pp;
    mc_status st;
    if (p.weight_dtype < 0 || p.weight_dtype >= MC_WEIGHTS_COUNT)
        return mc_fail(err, MC_ERR_INVALID_ARG, "weight_dtype %d is not an mc_weight_dtype", p.weight_dtype);
    /* a file written by 'convert' says whether it holds the folded weights */
    const char *layout = mc_checkpoint_metadata(ck, "mobileclip.layout");
    int folded = layout && !strcmp(layout, "folded");
    if (layout && !folded && strcmp(layout, "original")) {
        st = mc_fail(err, MC_ERR_UNSUPPORTED, "%s: tensor layout '%s' is not supported", m->ckpt_path, layout);
        return st;
    }
    m->format = mc_checkpoint_format(ck);
    m->n_tensors = (int64_t)mc_checkpoint_count(ck);
    mc_binder b;
    st = mc_binder_init(&b, ck, m->ckpt_path, &m->arena, err);
    /* the names the loaded towers own (checked for leftovers when one tower is loaded) */
    const char *prefixes[10] = {NULL};
    int np = 0;
    if (st == MC_OK && p.load_image_tower) {
        const char *pre = NULL;
        st = load_image(&b, &m->cfg, folded, &m->image, &pre);
        if (pre) prefixes[np++] = m->cfg.family == MC_CONFIG_FAMILY_MOBILECLIP ? "image_encoder." : "visual.";
    }
    if (st == MC_OK && p.load_text_tower) {
        const char *pre = NULL;
        st = load_text(&b, &m->cfg, &m->text, &pre);
        if (pre && *pre) {
            prefixes[np++] = pre;
        } else if (pre) {   /* a CLIP's text tower at the top level (OpenCLIP without custom_text) */
            static const char *const root_text[] = {"token_embedding.", "positional_embedding", "transformer.",
                                                    "ln_final.", "text_projection", "attn_mask"};
            for (size_t i = 0; i < sizeof root_text / sizeof root_text[0]; i++) prefixes[np++] = root_text[i];
        }
        if (st == MC_OK) st = check_attn_mask(&b, m, pre ? pre : "");
    }
    if (st == MC_OK) {
        /* logit_scale: a 0-d (or [1]) parameter; absent is allowed (scale 1) */
        const mc_tensor_info *lt = mc_binder_peek(&b, "logit_scale");
        float *ls = NULL;
        if (lt && lt->ndim == 1) ls = mc_bind(&b, 1, (int64_t[]){1}, "logit_scale");
        else if (lt) ls = mc_bind(&b, 0, NULL, "logit_scale");
        st = b.status;
        m->logit_scale = ls ? expf(ls[0]) : 1.0f;
        m->logit_raw = ls ? ls[0] : 0.0f;
        m->logit_ndim = ls ? lt->ndim : -1;
        prefixes[np++] = "logit_scale";
    }
    if (st == MC_OK) {
        /* every tensor is accounted for when both towers are loaded */
        st = mc_binder_finish(&b, (p.load_image_tower && p.load_text_tower) ? NULL : prefixes);
    }
    if (st == MC_OK && m->image && m->text && m->image->out_dim != m->text->out_dim)
        st = mc_fail(err, MC_ERR_SHAPE, "%s: image embeddings have %d dims but text embeddings %d", m->ckpt_path,
                     m->image->out_dim, m->text->out_dim);
    m->n_params = b.n_params;
    mc_binder_free(&b);
    if (st == MC_OK && p.weight_dtype != MC_WEIGHTS_F32) st = model_lower(m, p.weight_dtype, err);
    else if (st == MC_OK) model_prepack(m, err);
    return st;
}

static mc_status model_load_vocab(mc_model *m, const mc_model_params *p, mc_error *err) {
    char vocab[4096];
    const char *vp = p->vocab_path;
    mc_status st = MC_OK;
    if (!vp) {
        st = mc_tokenizer_find_vocab(m->ckpt_path, vocab, sizeof vocab, err);
        vp = vocab;
    }
    if (st == MC_OK) st = mc_tokenizer_load(vp, &m->tok, err);
    return st;
}

/* See model.h: the same binding as mc_model_load, from an in-memory checkpoint
 * (the benchmark's synthetic models, src/model/synth.c). */
mc_status mc_model_load_checkpoint(const mc_checkpoint *ck, const mc_config *cfg, const mc_model_params *params,
                                   mc_model **out, mc_error *err) {
    if (!ck || !cfg || !out) return mc_fail(err, MC_ERR_INVALID_ARG, "mc_model_load_checkpoint: ck, cfg and out are required");
    *out = NULL;
    mc_model_params p = params ? *params : mc_model_default_params();
    if (!p.load_image_tower && !p.load_text_tower)
        return mc_fail(err, MC_ERR_INVALID_ARG, "mc_model_load_checkpoint: neither tower requested");
    mc_model *m = calloc(1, sizeof *m);
    if (!m) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    m->cfg = *cfg;
    snprintf(m->ckpt_path, sizeof m->ckpt_path, "%s", ck->path ? ck->path : "<memory>");
    mc_status st = model_bind(m, ck, &p, err);
    if (st == MC_OK && p.load_text_tower && p.vocab_path) st = model_load_vocab(m, &p, err);
    if (st != MC_OK) { mc_model_free(m); return st; }
    *out = m;
    return MC_OK;
}

mc_status mc_model_export(const mc_model *m, mc_st_entry **entries, size_t *n, mc_meta_kv **meta,
                          size_t *n_meta, mc_error *err) {
    if (!m || !entries || !n || !meta || !n_meta)
        return mc_fail(err, MC_ERR_INVALID_ARG, "mc_model_export: NULL argument");
    *entries = NULL, *n = 0, *meta = NULL, *n_meta = 0;
    if (!m->image || !m->text)
        return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: export needs both towers loaded", m->ckpt_path);
    if (!m->image->export_weights || !m->text->export_weights)
        return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: the %s tower cannot be exported", m->ckpt_path,
                       m->image->export_weights ? "text" : "image");
    if (!m->cfg_text)
        return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: the model's config text is unknown", m->ckpt_path);
    if (m->weight_dtype != MC_WEIGHTS_F32)
        return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: a model loaded with reduced-precision weights cannot be exported",
                       m->ckpt_path);
    mc_export *ex = mc_export_new(err);
    if (!ex) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    mc_status st = m->image->export_weights(m->image, ex);
    if (st == MC_OK) st = m->text->export_weights(m->text, ex);
    if (st == MC_OK && m->logit_ndim >= 0) mc_export_add(ex, &m->logit_raw, m->logit_ndim, (int64_t[]){1}, "logit_scale");
    if (st == MC_OK) st = mc_export_pack(ex, entries, n);
    mc_export_free(ex);
    if (st != MC_OK) return st;
    mc_meta_kv *kv = calloc(4, sizeof *kv);
    if (!kv) {
        free(*entries);
        *entries = NULL, *n = 0;
        return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    }
    size_t k = 0;
    kv[k++] = (mc_meta_kv){"mobileclip.layout", "folded"};
    kv[k++] = (mc_meta_kv){"mobileclip.config", m->cfg_text};
    if (m->cfg_file[0]) kv[k++] = (mc_meta_kv){"mobileclip.config_file", (char *)m->cfg_file};
    if (m->cfg.name[0]) kv[k++] = (mc_meta_kv){"mobileclip.model_name", (char *)m->cfg.name};
    *meta = kv;
    *n_meta = k;
    return MC_OK;
}

int mc_model_text_positions(const mc_model *m, const int32_t *tokens, int n) {
    return m && m->text ? m->text->positions(m->text, tokens, n) : 0;
}

void mc_model_get_info(const mc_model *m, mc_model_info *info) {
    if (!info) return;
    memset(info, 0, sizeof *info);
    if (!m) return;
    info->family = mc_config_family_name(m->cfg.family);
    info->image_arch = m->cfg.image_arch;
    info->text_arch = m->text ? m->text->arch : m->cfg.text_arch;
    info->format = m->format;
    info->image_size = m->image ? m->image->image_size : m->cfg.image_size;
    info->embed_dim = m->image ? m->image->out_dim : m->text ? m->text->out_dim : m->cfg.embed_dim;
    info->context_length = m->text ? m->text->context_length : m->cfg.context_length;
    info->n_tensors = m->n_tensors;
    info->n_params = m->n_params;
    info->n_params_image = m->image ? m->image->n_params : 0;
    info->n_params_text = m->text ? m->text->n_params : 0;
    info->preprocess = m->cfg.preprocess;
    if (m->image) info->preprocess.size = m->image->image_size;
    info->logit_scale = m->logit_scale;
}

const mc_tokenizer *mc_model_tokenizer(const mc_model *m) { return m ? m->tok : NULL; }

/* Scratch floats for a batch of n on either tower. */
static size_t plan_floats(const mc_model *m, int n) {
    size_t need = 0;
    if (m->image) need = m->image->workspace_floats(m->image, n);
    if (m->text) {
        size_t t = m->text->workspace_floats(m->text, n);
        if (t > need) need = t;
    }
    return need ? need : 1;
}

static mc_status ctx_plan(mc_context *ctx, int n) {
    if (ctx->ws && n <= ctx->batch) return MC_OK;
    size_t need = plan_floats(ctx->model, n);
    if (need > ctx->ws_floats) {
        float *w = mc_malloc_array(need, sizeof(float));
        if (!w) return mc_fail(&ctx->last, MC_ERR_NOMEM, "out of memory planning scratch for a batch of %d", n);
        free(ctx->ws);
        ctx->ws = w;
        ctx->ws_floats = need;
    }
    ctx->batch = n;
    return MC_OK;
}

mc_status mc_context_new(const mc_model *model, const mc_context_params *params, mc_context **out,
                         mc_error *err) {
    if (!model || !out) return mc_fail(err, MC_ERR_INVALID_ARG, "mc_context_new: model and out are required");
    *out = NULL;
    mc_context_params p = params ? *params : mc_context_default_params();
    if (p.max_batch < 1) p.max_batch = 1;
    if (p.n_threads < 0) return mc_fail(err, MC_ERR_INVALID_ARG, "mc_context_new: n_threads %d", p.n_threads);
    /* The thread count is the context's own (set around each of its calls),
     * never the process-wide default: contexts made in other threads at the
     * same time keep theirs. */
    mc_context *c = calloc(1, sizeof *c);
    if (!c) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    c->model = model;
    c->n_threads = p.n_threads;
    mc_error_clear(&c->last);
    if (ctx_plan(c, p.max_batch) != MC_OK) {
        if (err) *err = c->last;
        mc_context_free(c);
        return MC_ERR_NOMEM;
    }
    *out = c;
    return MC_OK;
}

void mc_context_free(mc_context *ctx) {
    if (!ctx) return;
    free(ctx->ws);
    free(ctx);
}

const mc_error *mc_context_last_error(const mc_context *ctx) { return ctx ? &ctx->last : NULL; }

mc_status mc_encode_image(mc_context *ctx, const float *pixels, int n, int normalize, float *out) {
    if (!ctx) return MC_ERR_INVALID_ARG;
    mc_error_clear(&ctx->last);
    const mc_image_tower *t = ctx->model->image;
    if (!t) return mc_fail(&ctx->last, MC_ERR_INVALID_ARG, "mc_encode_image: the model was loaded without its image tower");
    if (!pixels || !out || n < 1) return mc_fail(&ctx->last, MC_ERR_INVALID_ARG, "mc_encode_image: bad arguments (n = %d)", n);
    mc_status st = ctx_plan(ctx, n);
    if (st != MC_OK) return st;
    int prev = mc_kernels_set_local_threads(ctx->n_threads > 0 ? ctx->n_threads : -1);
    st = t->forward(t, ctx->ws, pixels, n, out, &ctx->last);
    mc_kernels_set_local_threads(prev);
    if (st != MC_OK) return st;
    if (normalize) mc_l2_normalize_rows(out, n, t->out_dim);
    return MC_OK;
}

mc_status mc_encode_text(mc_context *ctx, const int32_t *tokens, int n, int normalize, float *out) {
    if (!ctx) return MC_ERR_INVALID_ARG;
    mc_error_clear(&ctx->last);
    const mc_text_tower *t = ctx->model->text;
    if (!t) return mc_fail(&ctx->last, MC_ERR_INVALID_ARG, "mc_encode_text: the model was loaded without its text tower");
    if (!tokens || !out || n < 1) return mc_fail(&ctx->last, MC_ERR_INVALID_ARG, "mc_encode_text: bad arguments (n = %d)", n);
    mc_status st = ctx_plan(ctx, n);
    if (st != MC_OK) return st;
    int prev = mc_kernels_set_local_threads(ctx->n_threads > 0 ? ctx->n_threads : -1);
    st = t->forward(t, ctx->ws, tokens, n, out, &ctx->last);
    mc_kernels_set_local_threads(prev);
    if (st != MC_OK) return st;
    if (normalize) mc_l2_normalize_rows(out, n, t->out_dim);
    return MC_OK;
}

/* "<memory>" (mc_model_load_checkpoint of a checkpoint built in memory) is no file */
static int has_file(const mc_model *m) { return m->ckpt_path[0] && m->ckpt_path[0] != '<'; }

const char *mc_model_path(const mc_model *m) { return m && has_file(m) ? m->ckpt_path : ""; }

/* Hashes the file's size and its first, middle and last MiB. */
static mc_status hash_file_sample(const char *path, mc_sha256 *h, mc_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return mc_fail(err, MC_ERR_IO, "%s: cannot open to identify the model", path);
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        fclose(f);
        return mc_fail(err, MC_ERR_IO, "%s: cannot stat", path);
    }
    int64_t size = (int64_t)sb.st_size, mib = 1 << 20;
    mc_sha256_update(h, &size, sizeof size);
    int64_t at[3] = {0, size / 2 - mib / 2, size - mib};
    char *buf = malloc((size_t)mib);
    if (!buf) {
        fclose(f);
        return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    }
    mc_status st = MC_OK;
    for (int i = 0; i < 3 && st == MC_OK; i++) {
        int64_t off = at[i] < 0 ? 0 : at[i], len = size - off < mib ? size - off : mib;
        if (fseeko(f, (off_t)off, SEEK_SET) != 0 || fread(buf, 1, (size_t)len, f) != (size_t)len)
            st = mc_fail(err, MC_ERR_IO, "%s: read failed", path);
        else
            mc_sha256_update(h, buf, (size_t)len);
    }
    free(buf);
    fclose(f);
    return st;
}

mc_status mc_model_id(const mc_model *m, char *buf, size_t cap, mc_error *err) {
    if (!m || !buf || !cap) return mc_fail(err, MC_ERR_INVALID_ARG, "mc_model_id: NULL argument");
    mc_sha256 h;
    mc_sha256_init(&h);
    if (has_file(m)) {
        mc_status st = hash_file_sample(m->ckpt_path, &h, err);
        if (st != MC_OK) return st;
    } else if (m->cfg_text) {
        mc_sha256_update(&h, m->cfg_text, strlen(m->cfg_text));
    }
    uint8_t d[32];
    mc_sha256_final(&h, d);
    char hex[33];
    for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    /* the name: the official one, else the checkpoint's folder and file names */
    char name[512] = "";
    if (m->cfg.name[0]) {
        snprintf(name, sizeof name, "%.200s", m->cfg.name);
    } else if (has_file(m)) {
        const char *file = strrchr(m->ckpt_path, '/'), *dir = NULL;
        for (const char *p = m->ckpt_path; file && p < file; p++)
            if (*p == '/') dir = p;
        snprintf(name, sizeof name, "%.200s", dir ? dir + 1 : file ? file + 1 : m->ckpt_path);
    } else {
        snprintf(name, sizeof name, "in-memory");
    }
    mc_model_info info;
    mc_model_get_info(m, &info);
    int n = snprintf(buf, cap, "%s dim=%d sha256=%s", name, info.embed_dim, hex);
    if (n < 0 || (size_t)n >= cap) return mc_fail(err, MC_ERR_INVALID_ARG, "mc_model_id: buffer of %zu bytes too small", cap);
    return MC_OK;
}
