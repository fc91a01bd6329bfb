/*
 * model/coca.c - OpenCLIP's CoCa (see coca.h): config, binding, the image
 * encoder with its attentional pooler, the text encoder with its class token
 * and the multimodal decoder, both decoders run position by position over a
 * key/value cache.
 *
 * The reference (open_clip transformer.py): VisionTransformer with
 * attentional_pool=True pools the tokens with 256 learned queries, applies
 * ln_post, and takes query 0 as the image feature (@ proj) and the others as
 * the decoder's image tokens.  TextTransformer with embed_cls appends cls_emb
 * after the tokens; its attention is causal plus a key mask (key 0 always
 * valid, key k valid when token k-1 is not pad_id, or token k with
 * correct_cls_mask), and its tokens go to the decoder without ln_final.
 * MultimodalTransformer alternates causal self-attention blocks with
 * cross-attention blocks (ln_1_kv on the image tokens), then ln_final and
 * text_projection [width, vocab].
 */
#include "model/coca.h"

#include "core/arena.h"
#include "core/json.h"
#include "io/checkpoint.h"
#include "kernels/kernels.h"
#include "kernels/lowp.h"
#include "model/binder.h"
#include "model/tblock.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LN_EPS 1e-5f

/* nn.MultiheadAttention with kdim = vdim = ctx (the attentional pooler). */
typedef struct coca_pool {
    int d, ctx, heads, nq;
    const float *query;                      /* [nq, d] */
    const float *lnq_w, *lnq_b, *lnk_w, *lnk_b;
    const float *wq, *wk, *wv;               /* [d, d], [d, ctx], [d, ctx] */
    const float *bias;                       /* [3d] */
    const float *wo, *bo;                    /* [d, d], [d] */
} coca_pool;

struct mc_coca {
    mc_arena arena;
    char path[1024];
    mc_preprocess_params pre;
    int embed_dim, pad_id, correct_cls_mask;
    mc_act act;
    int64_t n_params;

    /* image encoder */
    int image_size, patch, grid, v_width, v_layers, v_heads, v_tokens;
    const float *conv_w;                     /* [W, 3, p, p] */
    mc_conv2d_desc conv;
    const float *cls, *pos, *pre_w, *pre_b;  /* [W], [T, W], ln_pre (optional) */
    mc_tblock *vblocks;
    int has_pool;
    coca_pool pool;
    int pool_dim, img_tokens;
    const float *post_w, *post_b;            /* ln_post [pool_dim] */
    float *proj_t;                           /* [E, pool_dim] (proj transposed) */

    /* text encoder */
    int t_width, t_layers, t_heads, t_pos, vocab_in;
    int ctx;                                 /* longest caption: min(text, multimodal context) */
    const float *tok_emb, *t_posemb, *cls_emb;   /* [V, W], [t_pos, W], [W] */
    mc_tblock *tblocks;
    const float *t_lnf_w, *t_lnf_b;
    float *t_proj_t;                         /* [E, W] */

    /* multimodal decoder */
    int m_width, m_layers, m_heads, vocab;
    mc_tblock *mblocks, *xblocks;
    const float **lnkv_w, **lnkv_b;
    const float *m_lnf_w, *m_lnf_b;
    float *m_proj_t;                         /* [vocab, W] */
};

struct mc_coca_cache {
    int nseq, max_len, nimg;
    size_t t_seq, m_seq;                     /* floats per sequence in tk and mk */
    float *tk, *tv;                          /* [nseq][t_layers][max_len][t_width] */
    float *mk, *mv;                          /* [nseq][m_layers][max_len][m_width] */
    float *xk, *xv;                          /* [nimg][m_layers][img_tokens][m_width] */
    int32_t *tokens;                         /* [nseq][max_len] */
    uint8_t *valid;                          /* [nseq][max_len + 1]: the text encoder's key mask */
    int *img;                                /* [nseq] */
};

/* ------------------------------------------------------------------------ */
/* Config                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct coca_cfg {
    int embed_dim, quick_gelu;
    int image_size, v_layers, v_width, patch, head_width, attn_pool, pooler_heads;
    int t_ctx, t_vocab, t_width, t_heads, t_layers, pad_id, correct_cls_mask;
    int m_ctx, m_width, m_heads, m_layers;
} coca_cfg;

static mc_status refuse(mc_error *err, const char *src, const char *what) {
    return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: CoCa option %s is not supported", src, what);
}

/* Options the loader does not implement: refused by name unless absent or at
 * the reference's default. */
static mc_status check_unsupported(const mc_json *j, const char *sect, const char *const *names, const char *src,
                                   mc_error *err) {
    for (int i = 0; names[i]; i++) {
        const mc_json *v = mc_json_get(j, names[i]);
        if (!v || v->type == MC_JSON_NULL) continue;
        if (v->type == MC_JSON_BOOL && !v->boolean) continue;
        if (v->type == MC_JSON_NUMBER && v->number == 0) continue;
        char what[128];
        snprintf(what, sizeof what, "%s.%s", sect, names[i]);
        return refuse(err, src, what);
    }
    return MC_OK;
}

static int jint(const mc_json *o, const char *k, int d, int *ok) {
    const mc_json *v = mc_json_get(o, k);
    if (!v || v->type == MC_JSON_NULL) return d;
    if (v->type != MC_JSON_NUMBER || v->number != floor(v->number) || fabs(v->number) > 1e8) { *ok = 0; return d; }
    return (int)v->number;
}

static mc_status parse_config(const char *text, size_t len, const char *src, coca_cfg *c, mc_preprocess_params *p,
                              mc_error *err) {
    mc_json *root = NULL;
    mc_status st = mc_json_parse(text, len, &root, err);
    if (st != MC_OK) { mc_error_prefix(err, "%s: ", src); return st; }
    const mc_json *mc = mc_json_get(root, "model_cfg");
    if (!mc) mc = root;
    const mc_json *vc = mc_json_get(mc, "vision_cfg"), *tc = mc_json_get(mc, "text_cfg"),
                  *mm = mc_json_get(mc, "multimodal_cfg"), *pc = mc_json_get(root, "preprocess_cfg");
    int ok = 1;
    memset(c, 0, sizeof *c);
    if (!vc || !tc || !mm) {
        st = mc_fail(err, MC_ERR_CONFIG, "%s: not a CoCa config (model_cfg needs vision_cfg, text_cfg and multimodal_cfg)",
                     src);
        goto done;
    }
    static const char *const v_no[] = {"timm_model_name", "ls_init_value", "no_ln_pre", "final_ln_after_pool",
                                       "qk_norm", "scaled_cosine_attn", "scale_heads", "scale_attn_inner",
                                       "scale_attn", "scale_fc", "block_type", "act_kwargs", "norm_kwargs",
                                       "hf_model_name", NULL};
    static const char *const t_no[] = {"hf_model_name", "ls_init_value", "no_causal_mask", "proj_bias",
                                       "qk_norm", "scaled_cosine_attn", "scale_heads", "scale_attn_inner",
                                       "scale_attn", "scale_fc", "block_type", "act_kwargs", "norm_kwargs", NULL};
    static const char *const m_no[] = {"ls_init_value", "act_kwargs", "norm_kwargs", "block_type", NULL};
    static const char *const top_no[] = {"cast_dtype", NULL};
    if ((st = check_unsupported(vc, "vision_cfg", v_no, src, err)) != MC_OK) goto done;
    if ((st = check_unsupported(tc, "text_cfg", t_no, src, err)) != MC_OK) goto done;
    if ((st = check_unsupported(mm, "multimodal_cfg", m_no, src, err)) != MC_OK) goto done;
    if ((st = check_unsupported(mc, "model_cfg", top_no, src, err)) != MC_OK) goto done;
    const char *pet = mc_json_str(mc_json_get(vc, "pos_embed_type"), "learnable");
    if (strcmp(pet, "learnable")) { st = refuse(err, src, "vision_cfg.pos_embed_type (only 'learnable')"); goto done; }
    const char *vpool = mc_json_str(mc_json_get(vc, "pool_type"), "tok");
    if (strcmp(vpool, "tok")) { st = refuse(err, src, "vision_cfg.pool_type (only 'tok')"); goto done; }
    const mc_json *ap = mc_json_get(vc, "attentional_pool");
    if (ap && ap->type == MC_JSON_STRING) {
        st = refuse(err, src, "vision_cfg.attentional_pool 'parallel'/'cascade' (two poolers)");
        goto done;
    }
    const char *ptype = mc_json_str(mc_json_get(tc, "proj_type"), "linear");
    if (strcmp(ptype, "linear")) { st = refuse(err, src, "text_cfg.proj_type (only 'linear')"); goto done; }
    if (!mc_json_bool(mc_json_get(tc, "embed_cls"), false)) {
        st = refuse(err, src, "text_cfg.embed_cls false (CoCa appends a class token)");
        goto done;
    }
    const mc_json *mr = mc_json_get(vc, "mlp_ratio");
    (void)mr;   /* MLP widths come from the tensors */
    c->embed_dim = jint(mc, "embed_dim", 0, &ok);
    c->quick_gelu = mc_json_bool(mc_json_get(mc, "quick_gelu"), false);
    const mc_json *isz = mc_json_get(vc, "image_size");
    if (isz && isz->type == MC_JSON_ARRAY) {
        if (isz->len != 2 || isz->items[0].number != isz->items[1].number) {
            st = refuse(err, src, "vision_cfg.image_size (non-square)");
            goto done;
        }
        c->image_size = (int)isz->items[0].number;
    } else {
        c->image_size = jint(vc, "image_size", 224, &ok);
    }
    c->v_layers = jint(vc, "layers", 12, &ok);
    c->v_width = jint(vc, "width", 768, &ok);
    c->patch = jint(vc, "patch_size", 16, &ok);
    c->head_width = jint(vc, "head_width", 64, &ok);
    c->attn_pool = mc_json_bool(ap, false);
    c->pooler_heads = jint(vc, "attn_pooler_heads", 8, &ok);
    c->t_ctx = jint(tc, "context_length", 77, &ok);
    c->t_vocab = jint(tc, "vocab_size", 49408, &ok);
    c->t_width = jint(tc, "width", 512, &ok);
    c->t_heads = jint(tc, "heads", 8, &ok);
    c->t_layers = jint(tc, "layers", 12, &ok);
    c->pad_id = jint(tc, "pad_id", 0, &ok);
    c->correct_cls_mask = mc_json_bool(mc_json_get(tc, "correct_cls_mask"), false);
    c->m_ctx = jint(mm, "context_length", 77, &ok);
    c->m_width = jint(mm, "width", 512, &ok);
    c->m_heads = jint(mm, "heads", 8, &ok);
    c->m_layers = jint(mm, "layers", 12, &ok);
    /* vision heads = width // head_width, as the reference builds them */
    if (!ok || c->embed_dim <= 0 || c->image_size < 1 || c->image_size > 8192 || c->patch < 1 ||
        c->patch > c->image_size || c->head_width < 1 || c->v_width < c->head_width || c->pooler_heads < 1 ||
        c->t_heads < 1 || c->m_heads < 1 || c->t_ctx < 1 || c->t_ctx > 16384 || c->m_ctx < 1) {
        st = mc_fail(err, MC_ERR_CONFIG, "%s: invalid CoCa sizes in model_cfg", src);
        goto done;
    }
    /* preprocessing: OpenCLIP's defaults are OpenAI mean/std, bicubic, shortest */
    static const float mean0[3] = {0.48145466f, 0.4578275f, 0.40821073f}, std0[3] = {0.26862954f, 0.26130258f,
                                                                                      0.27577711f};
    *p = mc_preprocess_default_params();
    p->size = c->image_size;
    p->interp = MC_INTERP_BICUBIC;
    p->resize_mode = MC_RESIZE_SHORTEST;
    for (int i = 0; i < 3; i++) { p->mean[i] = mean0[i]; p->std[i] = std0[i]; }
    for (int k = 0; k < 2; k++) {
        const mc_json *a = mc_json_get(pc, k ? "std" : "mean");
        float *dst = k ? p->std : p->mean;
        if (!a || a->type == MC_JSON_NULL) continue;
        if (a->type != MC_JSON_ARRAY || a->len != 3) {
            st = mc_fail(err, MC_ERR_CONFIG, "%s: preprocess_cfg.%s must hold 3 numbers", src, k ? "std" : "mean");
            goto done;
        }
        for (int i = 0; i < 3; i++) dst[i] = (float)mc_json_number(&a->items[i], 0);
    }
    const char *interp = mc_json_str(mc_json_get(pc, "interpolation"), "bicubic");
    if (!strcmp(interp, "bilinear")) p->interp = MC_INTERP_BILINEAR;
    else if (strcmp(interp, "bicubic")) { st = refuse(err, src, "preprocess_cfg.interpolation"); goto done; }
    const char *rm = mc_json_str(mc_json_get(pc, "resize_mode"), "shortest");
    if (!strcmp(rm, "squash")) p->resize_mode = MC_RESIZE_SQUASH;
    else if (strcmp(rm, "shortest")) { st = refuse(err, src, "preprocess_cfg.resize_mode"); goto done; }
done:
    mc_json_free(root);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                   */
/* ------------------------------------------------------------------------ */

static mc_status find_files(const char *path, char *cfg, char *wts, size_t cap, mc_error *err) {
    char dir[1024];
    size_t n = strlen(path);
    if (n + 40 > cap || n + 1 > sizeof dir) return mc_fail(err, MC_ERR_INVALID_ARG, "%.200s...: path too long", path);
    if (mc_path_is_dir(path)) {
        snprintf(dir, sizeof dir, "%s", path);
    } else if (mc_path_is_file(path)) {
        const char *sl = strrchr(path, '/');
        snprintf(dir, sizeof dir, "%.*s", sl ? (int)(sl - path) : 1, sl ? path : ".");
        if (n > 5 && !strcmp(path + n - 5, ".json")) snprintf(cfg, cap, "%s", path);
        else snprintf(wts, cap, "%s", path);
    } else {
        return mc_fail(err, MC_ERR_NOT_FOUND, "%s: no such captioner file or folder", path);
    }
    size_t dl = strlen(dir);
    if (!cfg[0]) { memcpy(cfg, dir, dl); memcpy(cfg + dl, "/open_clip_config.json", 23); }
    if (!wts[0]) {
        memcpy(wts, dir, dl);
        memcpy(wts + dl, "/open_clip_model.safetensors", 29);
        if (!mc_path_is_file(wts)) memcpy(wts + dl, "/open_clip_pytorch_model.bin", 29);
    }
    if (!mc_path_is_file(cfg)) return mc_fail(err, MC_ERR_NOT_FOUND, "%s: no open_clip_config.json for %s", cfg, path);
    if (!mc_path_is_file(wts))
        return mc_fail(err, MC_ERR_NOT_FOUND,
                       "%s: no weights (open_clip_model.safetensors or open_clip_pytorch_model.bin) for %s", dir, path);
    return MC_OK;
}

/* [r, c] -> [c, r] into the arena. */
static float *transposed(mc_binder *b, const float *src, int r, int c) {
    if (!src) return NULL;
    float *t = mc_arena_floats(b->arena, (size_t)r * c);
    if (!t) { b->status = mc_fail(b->err, MC_ERR_NOMEM, "%s: out of memory", b->path); return NULL; }
    for (int i = 0; i < r; i++)
        for (int j = 0; j < c; j++) t[(size_t)j * r + i] = src[(size_t)i * c + j];
    return t;
}

static int count_blocks(mc_binder *b, const char *fmt) {
    int n = 0;
    char name[256];
    for (;; n++) {
        snprintf(name, sizeof name, fmt, n);
        if (!mc_binder_peek(b, "%sln_1.weight", name)) return n;
    }
}

static int dim0(mc_binder *b, const char *name) {
    const mc_tensor_info *t = mc_binder_peek(b, "%s", name);
    return t && t->ndim >= 1 ? (int)t->shape[0] : 0;
}

static mc_tblock *bind_blocks(mc_binder *b, mc_arena *a, const char *fmt, int n, int dim, int heads, mc_act act) {
    mc_tblock *blk = mc_arena_alloc(a, sizeof *blk * (size_t)(n > 0 ? n : 1));
    if (!blk) { b->status = mc_fail(b->err, MC_ERR_NOMEM, "%s: out of memory", b->path); return NULL; }
    char name[256];
    for (int l = 0; l < n; l++) {
        snprintf(name, sizeof name, fmt, l);
        mc_tblock_bind(b, name, &mc_tblock_names_openclip, dim, heads, LN_EPS, act, &blk[l]);
    }
    return blk;
}

static mc_status bind_model(mc_coca *m, mc_binder *b, const coca_cfg *c) {
    mc_act act = m->act;
    /* image encoder */
    const mc_tensor_info *cw = mc_binder_peek(b, "visual.conv1.weight");
    if (!cw || cw->ndim != 4) return mc_bind4(b, c->v_width, 3, c->patch, c->patch, "visual.conv1.weight"), b->status;
    int W = m->v_width = (int)cw->shape[0];
    m->patch = (int)cw->shape[2];
    if (W != c->v_width || m->patch != c->patch)
        return b->status = mc_fail(b->err, MC_ERR_SHAPE, "%s: visual.conv1.weight is [%d, 3, %d, %d] but the config "
                                   "says width %d, patch %d", b->path, W, m->patch, m->patch, c->v_width, c->patch);
    m->image_size = c->image_size;
    m->grid = c->image_size / m->patch;
    m->v_tokens = m->grid * m->grid + 1;
    m->v_heads = W / c->head_width;
    m->conv_w = mc_bind4(b, W, 3, m->patch, m->patch, "visual.conv1.weight");
    m->conv = (mc_conv2d_desc){.cin = 3, .cout = W, .kh = m->patch, .kw = m->patch, .sh = m->patch, .sw = m->patch,
                               .groups = 1};
    m->cls = mc_bind1(b, W, "visual.class_embedding");
    m->pos = mc_bind2(b, m->v_tokens, W, "visual.positional_embedding");
    m->pre_w = mc_bind1(b, W, "visual.ln_pre.weight");
    m->pre_b = mc_bind1(b, W, "visual.ln_pre.bias");
    m->v_layers = count_blocks(b, "visual.transformer.resblocks.%d.");
    if (m->v_layers != c->v_layers)
        return b->status = mc_fail(b->err, MC_ERR_SHAPE, "%s: %d visual blocks but the config says %d layers", b->path,
                                   m->v_layers, c->v_layers);
    m->vblocks = bind_blocks(b, &m->arena, "visual.transformer.resblocks.%d.", m->v_layers, W, m->v_heads, act);
    m->has_pool = c->attn_pool;
    if (m->has_pool) {
        coca_pool *p = &m->pool;
        const mc_tensor_info *q = mc_binder_peek(b, "visual.attn_pool.query");
        if (!q || q->ndim != 2) return mc_bind2(b, 0, 0, "visual.attn_pool.query"), b->status;
        p->nq = (int)q->shape[0];
        p->d = (int)q->shape[1];
        p->ctx = W;
        p->heads = c->pooler_heads;
        if (p->d % p->heads || p->nq < 2)
            return b->status = mc_fail(b->err, MC_ERR_SHAPE, "%s: attentional pooler of width %d, %d queries, %d heads",
                                       b->path, p->d, p->nq, p->heads);
        p->query = mc_bind2(b, p->nq, p->d, "visual.attn_pool.query");
        if (mc_binder_peek(b, "visual.attn_pool.attn.in_proj_weight")) {
            /* nn.MultiheadAttention packs q, k, v when kdim = vdim = embed_dim */
            const float *w = mc_bind2(b, 3 * p->d, W, "visual.attn_pool.attn.in_proj_weight");
            if (w && W != p->d)
                return b->status = mc_fail(b->err, MC_ERR_SHAPE, "%s: a packed attn_pool in_proj_weight needs the "
                                           "vision width %d to equal the pooler width %d", b->path, W, p->d);
            if (!w) return b->status;
            p->wq = w;
            p->wk = w + (size_t)p->d * W;
            p->wv = w + (size_t)2 * p->d * W;
        } else {
            p->wq = mc_bind2(b, p->d, p->d, "visual.attn_pool.attn.q_proj_weight");
            p->wk = mc_bind2(b, p->d, W, "visual.attn_pool.attn.k_proj_weight");
            p->wv = mc_bind2(b, p->d, W, "visual.attn_pool.attn.v_proj_weight");
        }
        p->bias = mc_bind1(b, 3 * p->d, "visual.attn_pool.attn.in_proj_bias");
        p->wo = mc_bind2(b, p->d, p->d, "visual.attn_pool.attn.out_proj.weight");
        p->bo = mc_bind1(b, p->d, "visual.attn_pool.attn.out_proj.bias");
        p->lnq_w = mc_bind1(b, p->d, "visual.attn_pool.ln_q.weight");
        p->lnq_b = mc_bind1(b, p->d, "visual.attn_pool.ln_q.bias");
        p->lnk_w = mc_bind1(b, W, "visual.attn_pool.ln_k.weight");
        p->lnk_b = mc_bind1(b, W, "visual.attn_pool.ln_k.bias");
        m->pool_dim = p->d;
        m->img_tokens = p->nq - 1;
    } else {
        m->pool_dim = W;
        m->img_tokens = m->v_tokens - 1;
    }
    m->post_w = mc_bind1(b, m->pool_dim, "visual.ln_post.weight");
    m->post_b = mc_bind1(b, m->pool_dim, "visual.ln_post.bias");
    m->embed_dim = c->embed_dim;
    m->proj_t = transposed(b, mc_bind2(b, m->pool_dim, c->embed_dim, "visual.proj"), m->pool_dim, c->embed_dim);

    /* text encoder */
    int TW = m->t_width = dim0(b, "text.ln_final.weight");
    if (TW != c->t_width)
        return b->status = mc_fail(b->err, MC_ERR_SHAPE, "%s: text.ln_final.weight has width %d, the config says %d",
                                   b->path, TW, c->t_width);
    m->t_heads = c->t_heads;
    m->vocab_in = c->t_vocab;
    m->t_pos = c->t_ctx + 1;
    m->ctx = c->t_ctx < c->m_ctx ? c->t_ctx : c->m_ctx;
    m->tok_emb = mc_bind2(b, m->vocab_in, TW, "text.token_embedding.weight");
    m->t_posemb = mc_bind2(b, m->t_pos, TW, "text.positional_embedding");
    m->cls_emb = mc_bind1(b, TW, "text.cls_emb");
    m->t_layers = count_blocks(b, "text.transformer.resblocks.%d.");
    if (m->t_layers != c->t_layers)
        return b->status = mc_fail(b->err, MC_ERR_SHAPE, "%s: %d text blocks but the config says %d layers", b->path,
                                   m->t_layers, c->t_layers);
    m->tblocks = bind_blocks(b, &m->arena, "text.transformer.resblocks.%d.", m->t_layers, TW, m->t_heads, act);
    m->t_lnf_w = mc_bind1(b, TW, "text.ln_final.weight");
    m->t_lnf_b = mc_bind1(b, TW, "text.ln_final.bias");
    m->t_proj_t = transposed(b, mc_bind2(b, TW, c->embed_dim, "text.text_projection"), TW, c->embed_dim);

    /* multimodal decoder */
    int MW = m->m_width = dim0(b, "text_decoder.ln_final.weight");
    if (MW != c->m_width || MW != TW || MW != m->pool_dim)
        return b->status = mc_fail(b->err, MC_ERR_SHAPE,
                                   "%s: decoder width %d (config %d) must equal the text width %d and the image "
                                   "token width %d", b->path, MW, c->m_width, TW, m->pool_dim);
    m->m_heads = c->m_heads;
    m->m_layers = count_blocks(b, "text_decoder.resblocks.%d.");
    if (m->m_layers != c->m_layers || count_blocks(b, "text_decoder.cross_attn.%d.") != m->m_layers)
        return b->status = mc_fail(b->err, MC_ERR_SHAPE,
                                   "%s: %d decoder blocks and %d cross-attention blocks, the config says %d", b->path,
                                   m->m_layers, count_blocks(b, "text_decoder.cross_attn.%d."), c->m_layers);
    m->mblocks = bind_blocks(b, &m->arena, "text_decoder.resblocks.%d.", m->m_layers, MW, m->m_heads, act);
    m->xblocks = bind_blocks(b, &m->arena, "text_decoder.cross_attn.%d.", m->m_layers, MW, m->m_heads, act);
    m->lnkv_w = mc_arena_alloc(&m->arena, sizeof *m->lnkv_w * (size_t)(m->m_layers + 1));
    m->lnkv_b = mc_arena_alloc(&m->arena, sizeof *m->lnkv_b * (size_t)(m->m_layers + 1));
    if (!m->lnkv_w || !m->lnkv_b) return b->status = mc_fail(b->err, MC_ERR_NOMEM, "%s: out of memory", b->path);
    for (int l = 0; l < m->m_layers; l++) {
        m->lnkv_w[l] = mc_bind1(b, MW, "text_decoder.cross_attn.%d.ln_1_kv.weight", l);
        m->lnkv_b[l] = mc_bind1(b, MW, "text_decoder.cross_attn.%d.ln_1_kv.bias", l);
    }
    m->m_lnf_w = mc_bind1(b, MW, "text_decoder.ln_final.weight");
    m->m_lnf_b = mc_bind1(b, MW, "text_decoder.ln_final.bias");
    const mc_tensor_info *op = mc_binder_peek(b, "text_decoder.text_projection");
    m->vocab = op && op->ndim == 2 ? (int)op->shape[1] : 0;
    m->m_proj_t = transposed(b, mc_bind2(b, MW, m->vocab, "text_decoder.text_projection"), MW, m->vocab);
    /* logit_scale / logit_bias are for contrastive training only */
    mc_binder_skip(b, "logit_scale");
    mc_binder_skip(b, "logit_bias");
    return b->status;
}

/* The image encoder's GEMM weights pre-packed for the kernel set in use (as
 * model.c does for the CLIP towers): it runs 257 tokens an image.  The
 * decoders stay plain: a decoding step has a few rows, which the dot-product
 * path reads straight from the plain weights.  MC_PREPACK=0 in the
 * environment turns this off. */
static mc_status prepack(mc_coca *m, mc_error *err) {
    const char *env = getenv("MC_PREPACK");
    if (env && !strcmp(env, "0")) return MC_OK;
    mc_lower L = {.arena = &m->arena, .type = MC_WT_F32, .pack = 1, .err = err, .status = MC_OK};
    for (int l = 0; l < m->v_layers; l++) mc_tblock_lower(&m->vblocks[l], &L);
    return L.status;
}

mc_status mc_coca_load(const char *path, mc_coca **out, mc_error *err) {
    *out = NULL;
    if (!path) return mc_fail(err, MC_ERR_INVALID_ARG, "captioner path is NULL");
    char cfg_path[1024] = "", wts[1024] = "";
    mc_status st = find_files(path, cfg_path, wts, sizeof cfg_path, err);
    if (st != MC_OK) return st;
    char *text = NULL;
    size_t len = 0;
    st = mc_file_read_all(cfg_path, 1u << 20, &text, &len, err);
    if (st != MC_OK) return st;
    coca_cfg c;
    mc_coca *m = calloc(1, sizeof *m);
    if (!m) { free(text); return mc_fail(err, MC_ERR_NOMEM, "out of memory"); }
    st = parse_config(text, len, cfg_path, &c, &m->pre, err);
    free(text);
    if (st != MC_OK) { free(m); return st; }
    snprintf(m->path, sizeof m->path, "%s", wts);
    m->act = c.quick_gelu ? MC_ACT_QUICK_GELU : MC_ACT_GELU;
    m->pad_id = c.pad_id;
    m->correct_cls_mask = c.correct_cls_mask;
    mc_checkpoint *ck = NULL;
    st = mc_checkpoint_open(wts, &ck, err);
    if (st != MC_OK) { free(m); return st; }
    mc_binder b;
    st = mc_binder_init(&b, ck, m->path, &m->arena, err);
    if (st == MC_OK) st = bind_model(m, &b, &c);
    if (st == MC_OK) st = mc_binder_finish(&b, NULL);
    m->n_params = b.n_params;
    mc_binder_free(&b);
    mc_checkpoint_close(ck);
    if (st == MC_OK && (m->vocab < 2 || m->vocab_in < MC_TOKEN_EOT + 1 || m->vocab < MC_TOKEN_EOT + 1))
        st = mc_fail(err, MC_ERR_SHAPE, "%s: vocabularies of %d (text) and %d (decoder) tokens cannot hold the CLIP "
                     "special tokens", m->path, m->vocab_in, m->vocab);
    if (st == MC_OK) st = prepack(m, err);
    if (st != MC_OK) { mc_coca_free(m); return st; }
    *out = m;
    return MC_OK;
}

void mc_coca_free(mc_coca *m) {
    if (!m) return;
    mc_arena_free(&m->arena);
    free(m);
}

void mc_coca_get_dims(const mc_coca *m, mc_coca_dims *o) {
    memset(o, 0, sizeof *o);
    o->image_size = m->image_size;
    o->embed_dim = m->embed_dim;
    o->img_tokens = m->img_tokens;
    o->img_dim = m->pool_dim;
    o->context_length = m->ctx;
    o->vocab_size = m->vocab;
    o->text_width = m->t_width;
    o->text_layers = m->t_layers;
    o->dec_width = m->m_width;
    o->dec_layers = m->m_layers;
    o->n_params = m->n_params;
}

void mc_coca_get_preprocess(const mc_coca *m, mc_preprocess_params *out) { *out = m->pre; }
int mc_coca_pad_id(const mc_coca *m) { return m->pad_id; }

/* ------------------------------------------------------------------------ */
/* Attention                                                                 */
/* ------------------------------------------------------------------------ */

/* out[nq, heads*hd] (row stride ldo) = softmax(q k^T / sqrt(hd) + mask) v per
 * head; q rows stride ldq, k and v rows stride ldk.  Query i may see key j
 * when j <= causal_off + i (causal_off < 0: all keys) and valid[j] (NULL: all).
 * s: nq * nk floats. */
static void attend(const float *q, int ldq, int nq, const float *k, const float *v, int ldk, int nk, int heads,
                   int hd, int causal_off, const uint8_t *valid, float *out, int ldo, float *s) {
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < heads; h++) {
        mc_gemm(0, 1, nq, nk, hd, scale, q + h * hd, ldq, k + h * hd, ldk, 0.0f, s, nk);
        for (int i = 0; i < nq; i++) {
            float *r = s + (size_t)i * nk;
            int lim = causal_off < 0 ? nk : causal_off + i + 1;
            if (lim > nk) lim = nk;
            float mx = -INFINITY;
            for (int j = 0; j < nk; j++) {
                if (j >= lim || (valid && !valid[j])) r[j] = -INFINITY;
                else if (r[j] > mx) mx = r[j];
            }
            double sum = 0;
            for (int j = 0; j < nk; j++) {
                float e = r[j] == -INFINITY ? 0.0f : expf(r[j] - mx);
                r[j] = e;
                sum += e;
            }
            float inv = sum > 0 ? (float)(1.0 / sum) : 0.0f;
            for (int j = 0; j < nk; j++) r[j] *= inv;
        }
        mc_gemm(0, 0, nq, hd, nk, 1.0f, s, nk, v + h * hd, ldk, 0.0f, out + h * hd, ldo);
    }
}

/* ------------------------------------------------------------------------ */
/* Image encoder                                                             */
/* ------------------------------------------------------------------------ */

mc_status mc_coca_encode_image(const mc_coca *m, const float *pixels, int n, float *features, float *embs,
                               mc_error *err) {
    int W = m->v_width, T = m->v_tokens, G = m->grid * m->grid, S = m->image_size;
    size_t nt = (size_t)n * T;
    size_t ws_blk = 0;
    for (int l = 0; l < m->v_layers; l++) {
        size_t w = mc_tblock_workspace(&m->vblocks[l], n, T);
        if (w > ws_blk) ws_blk = w;
    }
    int nq = m->has_pool ? m->pool.nq : T, pd = m->pool_dim;
    size_t need = nt * W * 2 + (size_t)n * W * G + ws_blk;
    size_t pool_need = m->has_pool ? (size_t)nq * pd + nt * 2 * pd + (size_t)n * nq * pd * 2 + (size_t)nq * T : 0;
    float *buf = mc_malloc_array(need + pool_need + (size_t)n * nq * pd, sizeof(float));
    if (!buf) return mc_fail(err, MC_ERR_NOMEM, "CoCa image encoder: out of memory for %d images", n);
    float *x = buf, *h = x + nt * W, *conv = h + nt * W, *ws = conv + (size_t)n * W * G;
    float *pooled = ws + ws_blk;   /* [n, nq, pd] after ln_post */
    float *pw = pooled + (size_t)n * nq * pd;
    mc_conv2d(&m->conv, m->conv_w, NULL, pixels, n, S, S, conv, MC_ACT_NONE);
    for (int i = 0; i < n; i++) {
        float *xi = x + (size_t)i * T * W;
        const float *ci = conv + (size_t)i * W * G;
        for (int c = 0; c < W; c++) xi[c] = m->cls[c] + m->pos[c];
        for (int t = 0; t < G; t++)
            for (int c = 0; c < W; c++) xi[(size_t)(t + 1) * W + c] = ci[(size_t)c * G + t] + m->pos[(size_t)(t + 1) * W + c];
    }
    mc_layernorm(x, (int)nt, W, m->pre_w, m->pre_b, LN_EPS, x);
    for (int l = 0; l < m->v_layers; l++) mc_tblock_forward(&m->vblocks[l], x, n, T, 0, ws);
    if (m->has_pool) {
        const coca_pool *p = &m->pool;
        float *q = pw, *kx = q + (size_t)nq * pd, *vx = kx + nt * pd, *ctx = vx + nt * pd, *s = ctx + (size_t)n * nq * pd;
        float *qn = ctx;   /* ln_q(query) staging, before ctx is written */
        mc_layernorm(p->query, nq, pd, p->lnq_w, p->lnq_b, LN_EPS, qn);
        mc_linear(qn, p->wq, p->bias, nq, pd, pd, q, MC_ACT_NONE);
        mc_layernorm(x, (int)nt, W, p->lnk_w, p->lnk_b, LN_EPS, h);
        mc_linear(h, p->wk, p->bias + pd, (int)nt, W, pd, kx, MC_ACT_NONE);
        mc_linear(h, p->wv, p->bias + 2 * pd, (int)nt, W, pd, vx, MC_ACT_NONE);
        for (int i = 0; i < n; i++)
            attend(q, pd, nq, kx + (size_t)i * T * pd, vx + (size_t)i * T * pd, pd, T, p->heads, pd / p->heads, -1,
                   NULL, ctx + (size_t)i * nq * pd, pd, s);
        mc_linear(ctx, p->wo, p->bo, n * nq, pd, pd, pooled, MC_ACT_NONE);
        mc_layernorm(pooled, n * nq, pd, m->post_w, m->post_b, LN_EPS, pooled);
    } else {
        mc_layernorm(x, (int)nt, W, m->post_w, m->post_b, LN_EPS, pooled);
    }
    for (int i = 0; i < n; i++) {
        const float *pi = pooled + (size_t)i * nq * pd;
        if (features) mc_linear(pi, m->proj_t, NULL, 1, pd, m->embed_dim, features + (size_t)i * m->embed_dim, MC_ACT_NONE);
        if (embs) memcpy(embs + (size_t)i * m->img_tokens * pd, pi + pd, sizeof(float) * (size_t)m->img_tokens * pd);
    }
    free(buf);
    return MC_OK;
}

/* ------------------------------------------------------------------------ */
/* Caches                                                                    */
/* ------------------------------------------------------------------------ */

mc_status mc_coca_cache_new(const mc_coca *m, int nseq, int max_len, int nimg, mc_coca_cache **out, mc_error *err) {
    *out = NULL;
    if (nseq < 1 || nimg < 1 || max_len < 1 || max_len > m->t_pos)
        return mc_fail(err, MC_ERR_INVALID_ARG, "CoCa cache: %d sequences of %d positions (at most %d), %d images",
                       nseq, max_len, m->t_pos, nimg);
    mc_coca_cache *c = calloc(1, sizeof *c);
    if (!c) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    c->nseq = nseq;
    c->max_len = max_len;
    c->nimg = nimg;
    c->t_seq = (size_t)m->t_layers * max_len * m->t_width;
    c->m_seq = (size_t)m->m_layers * max_len * m->m_width;
    size_t x_img = (size_t)m->m_layers * m->img_tokens * m->m_width;
    c->tk = mc_malloc_array((size_t)nseq * (c->t_seq ? c->t_seq : 1), sizeof(float));
    c->tv = mc_malloc_array((size_t)nseq * (c->t_seq ? c->t_seq : 1), sizeof(float));
    c->mk = mc_malloc_array((size_t)nseq * (c->m_seq ? c->m_seq : 1), sizeof(float));
    c->mv = mc_malloc_array((size_t)nseq * (c->m_seq ? c->m_seq : 1), sizeof(float));
    c->xk = mc_malloc_array((size_t)nimg * (x_img ? x_img : 1), sizeof(float));
    c->xv = mc_malloc_array((size_t)nimg * (x_img ? x_img : 1), sizeof(float));
    c->tokens = mc_calloc_array((size_t)nseq * max_len, sizeof(int32_t));
    c->valid = mc_calloc_array((size_t)nseq * (max_len + 1), 1);
    c->img = mc_calloc_array((size_t)nseq, sizeof(int));
    if (!c->tk || !c->tv || !c->mk || !c->mv || !c->xk || !c->xv || !c->tokens || !c->valid || !c->img) {
        mc_coca_cache_free(c);
        return mc_fail(err, MC_ERR_NOMEM, "CoCa cache: out of memory for %d sequences of %d positions", nseq, max_len);
    }
    *out = c;
    return MC_OK;
}

void mc_coca_cache_free(mc_coca_cache *c) {
    if (!c) return;
    free(c->tk);
    free(c->tv);
    free(c->mk);
    free(c->mv);
    free(c->xk);
    free(c->xv);
    free(c->tokens);
    free(c->valid);
    free(c->img);
    free(c);
}

mc_status mc_coca_cache_set_image(const mc_coca *m, mc_coca_cache *c, int img, const float *embs, mc_error *err) {
    int D = m->m_width, N = m->img_tokens;
    size_t per = (size_t)N * D;
    if (img < 0 || img >= c->nimg) return mc_fail(err, MC_ERR_INVALID_ARG, "CoCa cache: image %d of %d", img, c->nimg);
    float *h = malloc(sizeof(float) * (per ? per : 1));
    if (!h) return mc_fail(err, MC_ERR_NOMEM, "CoCa cache: out of memory");
    for (int l = 0; l < m->m_layers; l++) {
        const mc_tblock *xb = &m->xblocks[l];
        mc_layernorm(embs, N, D, m->lnkv_w[l], m->lnkv_b[l], LN_EPS, h);
        float *xk = c->xk + ((size_t)img * m->m_layers + l) * per, *xv = c->xv + ((size_t)img * m->m_layers + l) * per;
        mc_linear(h, xb->qkv_w + (size_t)D * D, xb->qkv_b + D, N, D, D, xk, MC_ACT_NONE);
        mc_linear(h, xb->qkv_w + (size_t)2 * D * D, xb->qkv_b + 2 * D, N, D, D, xv, MC_ACT_NONE);
    }
    free(h);
    return MC_OK;
}

void mc_coca_cache_attach(mc_coca_cache *c, int seq, int img) { c->img[seq] = img; }

mc_status mc_coca_cache_reorder(mc_coca_cache *c, const int *src, int n, mc_error *err) {
    size_t per_t = c->t_seq, per_m = c->m_seq, ml = (size_t)c->max_len;
    float *tk = mc_malloc_array((size_t)n * (per_t ? per_t : 1), sizeof(float) * 2);
    float *mk = mc_malloc_array((size_t)n * (per_m ? per_m : 1), sizeof(float) * 2);
    int32_t *tok = mc_malloc_array((size_t)n * ml, sizeof(int32_t));
    uint8_t *va = mc_malloc_array((size_t)n, ml + 1);
    int *im = mc_malloc_array((size_t)n, sizeof(int));
    if (!tk || !mk || !tok || !va || !im) {
        free(tk); free(mk); free(tok); free(va); free(im);
        return mc_fail(err, MC_ERR_NOMEM, "CoCa cache: out of memory reordering %d beams", n);
    }
    for (int i = 0; i < n; i++) {
        int s = src[i];
        memcpy(tk + (size_t)i * 2 * per_t, c->tk + (size_t)s * per_t, sizeof(float) * per_t);
        memcpy(tk + ((size_t)i * 2 + 1) * per_t, c->tv + (size_t)s * per_t, sizeof(float) * per_t);
        memcpy(mk + (size_t)i * 2 * per_m, c->mk + (size_t)s * per_m, sizeof(float) * per_m);
        memcpy(mk + ((size_t)i * 2 + 1) * per_m, c->mv + (size_t)s * per_m, sizeof(float) * per_m);
        memcpy(tok + (size_t)i * ml, c->tokens + (size_t)s * ml, sizeof(int32_t) * ml);
        memcpy(va + (size_t)i * (ml + 1), c->valid + (size_t)s * (ml + 1), ml + 1);
        im[i] = c->img[s];
    }
    for (int i = 0; i < n; i++) {
        memcpy(c->tk + (size_t)i * per_t, tk + (size_t)i * 2 * per_t, sizeof(float) * per_t);
        memcpy(c->tv + (size_t)i * per_t, tk + ((size_t)i * 2 + 1) * per_t, sizeof(float) * per_t);
        memcpy(c->mk + (size_t)i * per_m, mk + (size_t)i * 2 * per_m, sizeof(float) * per_m);
        memcpy(c->mv + (size_t)i * per_m, mk + ((size_t)i * 2 + 1) * per_m, sizeof(float) * per_m);
        memcpy(c->tokens + (size_t)i * ml, tok + (size_t)i * ml, sizeof(int32_t) * ml);
        memcpy(c->valid + (size_t)i * (ml + 1), va + (size_t)i * (ml + 1), ml + 1);
        c->img[i] = im[i];
    }
    free(tk); free(mk); free(tok); free(va); free(im);
    return MC_OK;
}

/* ------------------------------------------------------------------------ */
/* Decoders                                                                  */
/* ------------------------------------------------------------------------ */

/* One pre-norm block over the new rows x [ns * nt, D] of sequences seqs at
 * positions [t0, t0 + nt): self-attention (causal, with the key mask of each
 * sequence when valid is non-NULL) over the cached keys, or cross-attention
 * to the image keys (xk/xv non-NULL); then the MLP. */
typedef struct step_ws {
    float *h, *qkv, *ctx, *mid, *s;
} step_ws;

/* y[rows, n] += x W^T + b.  A few rows (a decoding step) take mc_linear's
 * dot-product path into tmp [rows, n] and add, instead of a GEMM that
 * would pack the whole weight matrix for them. */
static void linear_add(const float *x, const float *wt, const float *b, int rows, int k, int n, float *y, float *tmp) {
    if (rows > 4) {
        mc_linear_add(x, wt, b, rows, k, n, y);
        return;
    }
    mc_linear(x, wt, b, rows, k, n, tmp, MC_ACT_NONE);
    for (size_t i = 0; i < (size_t)rows * n; i++) y[i] += tmp[i];
}

static void block_step(const mc_tblock *blk, float *x, int ns, int nt, int t0, const int *seqs, float *kc, float *vc,
                       size_t seq_stride, int max_len, const uint8_t *valid, size_t valid_stride, const float *xk,
                       const float *xv, size_t ximg_stride, const int *img, int nimg_tok, step_ws *w) {
    int D = blk->dim, rows = ns * nt, hd = D / blk->heads;
    mc_layernorm(x, rows, D, blk->ln1_w, blk->ln1_b, blk->eps, w->h);
    if (!xk) {
        mc_linear(w->h, blk->qkv_w, blk->qkv_b, rows, D, 3 * D, w->qkv, MC_ACT_NONE);
        for (int i = 0; i < ns; i++) {
            float *K = kc + (size_t)seqs[i] * seq_stride, *V = vc + (size_t)seqs[i] * seq_stride;
            for (int j = 0; j < nt; j++) {
                const float *r = w->qkv + ((size_t)i * nt + j) * 3 * D;
                memcpy(K + (size_t)(t0 + j) * D, r + D, sizeof(float) * D);
                memcpy(V + (size_t)(t0 + j) * D, r + 2 * D, sizeof(float) * D);
            }
            attend(w->qkv + (size_t)i * nt * 3 * D, 3 * D, nt, K, V, D, t0 + nt, blk->heads, hd, t0,
                   valid ? valid + (size_t)seqs[i] * valid_stride : NULL, w->ctx + (size_t)i * nt * D, D, w->s);
        }
        (void)max_len;
    } else {
        mc_linear(w->h, blk->qkv_w, blk->qkv_b, rows, D, D, w->qkv, MC_ACT_NONE);   /* queries only */
        for (int i = 0; i < ns; i++) {
            const float *K = xk + (size_t)img[seqs[i]] * ximg_stride, *V = xv + (size_t)img[seqs[i]] * ximg_stride;
            attend(w->qkv + (size_t)i * nt * D, D, nt, K, V, D, nimg_tok, blk->heads, hd, -1, NULL,
                   w->ctx + (size_t)i * nt * D, D, w->s);
        }
    }
    linear_add(w->ctx, blk->out_w, blk->out_b, rows, D, D, x, w->qkv);
    mc_layernorm(x, rows, D, blk->ln2_w, blk->ln2_b, blk->eps, w->h);
    mc_linear(w->h, blk->fc1_w, blk->fc1_b, rows, D, blk->hidden, w->mid, blk->act);
    linear_add(w->mid, blk->fc2_w, blk->fc2_b, rows, blk->hidden, D, x, w->qkv);
}

static size_t max_hidden(const mc_tblock *b, int n, size_t cur) {
    for (int l = 0; l < n; l++)
        if ((size_t)b[l].hidden > cur) cur = (size_t)b[l].hidden;
    return cur;
}

/* The text encoder over rows x [ns * nt, W] already embedded (token or class
 * embedding plus position). */
static mc_status text_run(const mc_coca *m, mc_coca_cache *c, const int *seqs, int ns, int t0, int nt, float *x,
                          mc_error *err) {
    int W = m->t_width, rows = ns * nt, nk = t0 + nt;
    size_t hid = max_hidden(m->tblocks, m->t_layers, (size_t)W);
    step_ws w;
    float *buf = mc_malloc_array((size_t)rows * (W + 3 * W + W + hid) + (size_t)nt * nk, sizeof(float));
    if (!buf) return mc_fail(err, MC_ERR_NOMEM, "CoCa text encoder: out of memory");
    w.h = buf;
    w.qkv = w.h + (size_t)rows * W;
    w.ctx = w.qkv + (size_t)rows * 3 * W;
    w.mid = w.ctx + (size_t)rows * W;
    w.s = w.mid + (size_t)rows * hid;
    size_t per_layer = (size_t)c->max_len * W;
    for (int l = 0; l < m->t_layers; l++)
        block_step(&m->tblocks[l], x, ns, nt, t0, seqs, c->tk + l * per_layer, c->tv + l * per_layer, c->t_seq,
                   c->max_len, c->valid, (size_t)c->max_len + 1, NULL, NULL, 0, NULL, 0, &w);
    free(buf);
    return MC_OK;
}

/* Key validity of position p of sequence s (the reference's additive mask). */
static void set_valid(const mc_coca *m, mc_coca_cache *c, int s, int p, int is_cls) {
    const int32_t *t = c->tokens + (size_t)s * c->max_len;
    uint8_t *v = c->valid + (size_t)s * (c->max_len + 1);
    if (m->correct_cls_mask) v[p] = is_cls ? 1 : t[p] != m->pad_id;
    else v[p] = p == 0 ? 1 : t[p - 1] != m->pad_id;
}

static void embed_tokens(const mc_coca *m, mc_coca_cache *c, const int *seqs, int ns, int t0, int nt,
                         const int32_t *tok, float *x) {
    int W = m->t_width;
    for (int i = 0; i < ns; i++)
        for (int j = 0; j < nt; j++) {
            int32_t id = tok[(size_t)i * nt + j];
            int p = t0 + j;
            c->tokens[(size_t)seqs[i] * c->max_len + p] = id;
            set_valid(m, c, seqs[i], p, 0);
            const float *e = m->tok_emb + (size_t)id * W, *pe = m->t_posemb + (size_t)p * W;
            float *xr = x + ((size_t)i * nt + j) * W;
            for (int k = 0; k < W; k++) xr[k] = e[k] + pe[k];
        }
}

static mc_status check_tokens(const mc_coca *m, const int32_t *tok, size_t n, mc_error *err) {
    for (size_t i = 0; i < n; i++)
        if (tok[i] < 0 || tok[i] >= m->vocab_in)
            return mc_fail(err, MC_ERR_INVALID_ARG, "token id %d outside the vocabulary of %d", (int)tok[i], m->vocab_in);
    return MC_OK;
}

mc_status mc_coca_decode(const mc_coca *m, mc_coca_cache *c, const int *seqs, int ns, int t0, int nt,
                         const int32_t *tok, int all, float *logits, mc_error *err) {
    if (ns < 1 || nt < 1 || t0 < 0 || t0 + nt > c->max_len || t0 + nt > m->ctx)
        return mc_fail(err, MC_ERR_INVALID_ARG, "CoCa decode: positions %d..%d outside the context of %d", t0,
                       t0 + nt - 1, c->max_len < m->ctx ? c->max_len : m->ctx);
    mc_status st = check_tokens(m, tok, (size_t)ns * nt, err);
    if (st != MC_OK) return st;
    int W = m->t_width, rows = ns * nt, nk = t0 + nt;
    int nimg_tok = m->img_tokens;
    size_t hid = max_hidden(m->mblocks, m->m_layers, max_hidden(m->xblocks, m->m_layers, (size_t)W));
    int out_rows = all ? rows : ns;
    size_t s_need = (size_t)nt * (nk > nimg_tok ? nk : nimg_tok);
    float *buf = mc_malloc_array((size_t)rows * (W + W + 3 * W + W + hid) + s_need + (size_t)out_rows * W,
                                 sizeof(float));
    if (!buf) return mc_fail(err, MC_ERR_NOMEM, "CoCa decoder: out of memory");
    float *x = buf;
    step_ws w;
    w.h = x + (size_t)rows * W;
    w.qkv = w.h + (size_t)rows * W;
    w.ctx = w.qkv + (size_t)rows * 3 * W;
    w.mid = w.ctx + (size_t)rows * W;
    w.s = w.mid + (size_t)rows * hid;
    float *fin = w.s + s_need;
    embed_tokens(m, c, seqs, ns, t0, nt, tok, x);
    st = text_run(m, c, seqs, ns, t0, nt, x, err);
    if (st != MC_OK) { free(buf); return st; }
    size_t per_layer = (size_t)c->max_len * W, ximg = (size_t)nimg_tok * W;
    for (int l = 0; l < m->m_layers; l++) {
        block_step(&m->mblocks[l], x, ns, nt, t0, seqs, c->mk + l * per_layer, c->mv + l * per_layer, c->m_seq,
                   c->max_len, NULL, 0, NULL, NULL, 0, NULL, 0, &w);
        block_step(&m->xblocks[l], x, ns, nt, t0, seqs, NULL, NULL, 0, c->max_len, NULL, 0,
                   c->xk + l * ximg, c->xv + l * ximg, (size_t)m->m_layers * ximg, c->img, nimg_tok, &w);
    }
    if (all) {
        mc_layernorm(x, rows, W, m->m_lnf_w, m->m_lnf_b, LN_EPS, fin);
    } else {
        for (int i = 0; i < ns; i++)
            mc_layernorm(x + ((size_t)i * nt + nt - 1) * W, 1, W, m->m_lnf_w, m->m_lnf_b, LN_EPS, fin + (size_t)i * W);
    }
    mc_linear(fin, m->m_proj_t, NULL, out_rows, W, m->vocab, logits, MC_ACT_NONE);
    free(buf);
    return MC_OK;
}

mc_status mc_coca_encode_text(const mc_coca *m, const int32_t *tokens, int n, int len, float *out, mc_error *err) {
    if (n < 1 || len < 1 || len > m->t_pos - 1)
        return mc_fail(err, MC_ERR_INVALID_ARG, "CoCa text: %d tokens per text (1..%d)", len, m->t_pos - 1);
    mc_status st = check_tokens(m, tokens, (size_t)n * len, err);
    if (st != MC_OK) return st;
    mc_coca_cache *c = NULL;
    st = mc_coca_cache_new(m, n, len + 1, 1, &c, err);
    if (st != MC_OK) return st;
    int W = m->t_width, T = len + 1;
    float *x = mc_malloc_array((size_t)n * T * W + W, sizeof(float));
    int *seqs = mc_malloc_array((size_t)n, sizeof(int));
    if (!x || !seqs) {
        free(x); free(seqs); mc_coca_cache_free(c);
        return mc_fail(err, MC_ERR_NOMEM, "CoCa text: out of memory");
    }
    for (int i = 0; i < n; i++) seqs[i] = i;
    /* tokens one sequence at a time into rows of T, then the class token last */
    float *tmp = mc_malloc_array((size_t)len * W, sizeof(float));
    if (!tmp) { free(x); free(seqs); mc_coca_cache_free(c); return mc_fail(err, MC_ERR_NOMEM, "out of memory"); }
    for (int i = 0; i < n; i++) {
        embed_tokens(m, c, &seqs[i], 1, 0, len, tokens + (size_t)i * len, tmp);
        memcpy(x + (size_t)i * T * W, tmp, sizeof(float) * (size_t)len * W);
        float *xr = x + ((size_t)i * T + len) * W;
        const float *pe = m->t_posemb + (size_t)len * W;
        for (int k = 0; k < W; k++) xr[k] = m->cls_emb[k] + pe[k];
        set_valid(m, c, i, len, 1);
    }
    free(tmp);
    st = text_run(m, c, seqs, n, 0, T, x, err);
    if (st == MC_OK) {
        float *h = x + (size_t)n * T * W;
        for (int i = 0; i < n; i++) {
            mc_layernorm(x + ((size_t)i * T + len) * W, 1, W, m->t_lnf_w, m->t_lnf_b, LN_EPS, h);
            mc_linear(h, m->t_proj_t, NULL, 1, W, m->embed_dim, out + (size_t)i * m->embed_dim, MC_ACT_NONE);
        }
    }
    free(x);
    free(seqs);
    mc_coca_cache_free(c);
    return st;
}
