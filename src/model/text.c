/*
 * model/text.c - text towers (see text.h): token and position embeddings,
 * transformer layers (and RepMixer blocks for "mct"), final LayerNorm,
 * pooling at the EOT token and the projection.  Includes the few
 * conv+BatchNorm folds the text RepMixer needs.
 */
#include "model/text.h"

#include "kernels/lowp.h"
#include "model/tblock.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct text_repmixer {
    int dim, k, hidden;
    float *mix_w;            /* [dim, k] folded token mixer (identity included) */
    float *mix_b;            /* [dim] */
    float *ffn_w;            /* [dim, k] depthwise conv of the ConvFFN, BN folded */
    float *ffn_b;            /* [dim] */
    const float *fc1_w, *fc1_b;   /* [hidden, dim], [hidden] */
    const float *fc2_w, *fc2_b;   /* [dim, hidden], [dim] */
    const float *ls;         /* [dim] block layer scale, or NULL */
    mc_act act;
    mc_qmat fc1_q, fc2_q;    /* reduced copies (the _w are then NULL) */
} text_repmixer;

typedef struct text_layer {
    int is_repmixer;
    mc_tblock tb;
    text_repmixer rm;
} text_layer;

typedef struct text_impl {
    char arch[32];
    char pfx[32];            /* tensor-name prefix */
    int mob;                 /* mobileclip repo layout */
    int proj_param;          /* projection stored as x @ P [width, out_dim] */
    int width, ctx, vocab, out_dim, n_layers, causal;
    int any_repmixer;   /* a RepMixer layer mixes along the whole sequence */
    mc_text_pool pool;
    int eos_id;
    float eps;
    const float *tok_emb;    /* [vocab, width] */
    const float *pos_emb;    /* [ctx, width] */
    text_layer *layers;
    const float *ln_w, *ln_b;     /* [width] */
    const float *proj_w;     /* [out_dim, width] (transposed from x @ P when needed) */
    const float *proj_b;     /* [out_dim] or NULL */
    mc_qmat tok_q, proj_q;   /* reduced copies (tok_emb, proj_w are then NULL) */
} text_impl;

mc_text_params mc_text_default_params(void) {
    mc_text_params p;
    memset(&p, 0, sizeof p);
    p.arch = "open_clip";
    p.prefix = "text.";
    p.layout = MC_TEXT_LAYOUT_OPENCLIP;
    p.heads = 8;
    p.causal = 1;
    p.act = MC_ACT_GELU;
    p.ln_eps = 1e-5f;
    p.bn_eps = 1e-5f;
    p.pool = MC_TEXT_POOL_ARGMAX;
    p.eos_id = MC_TOKEN_EOT;
    return p;
}

/* ---- forward ---- */

/* y[t, c] = b[c] + sum_j w[c, j] x[t + j - k/2, c] (zero padding), x and y [t, dim]. */
static void dwconv_seq(const float *x, int t, int dim, int k, const float *w, const float *b,
                       float *y) {
    int half = k / 2;
    for (int i = 0; i < t; i++) {
        float *yi = y + (size_t)i * dim;
        for (int c = 0; c < dim; c++) yi[c] = b ? b[c] : 0.0f;
        for (int j = 0; j < k; j++) {
            int s = i + j - half;
            if (s < 0 || s >= t) continue;
            const float *xs = x + (size_t)s * dim;
            for (int c = 0; c < dim; c++) yi[c] += w[(size_t)c * k + j] * xs[c];
        }
    }
}

static size_t repmixer_ws(const text_repmixer *r, int nseq, int t) {
    size_t R = (size_t)mc_tblock_chunk(nseq, t) * t;
    return R * r->dim * 2 + R * r->hidden;
}

/* x[nseq, t, dim] in place; the token convs stay within each sequence, the
 * MLP is one GEMM pair over all nseq x t tokens (of one chunk). */
static void repmixer_rows(const text_repmixer *r, float *x, int nseq, int t, float *ws) {
    int d = r->dim, rows = nseq * t;
    size_t R = (size_t)rows, TD = (size_t)t * d;
    float *a = ws, *z = a + R * d, *m = z + R * d;
    for (int s = 0; s < nseq; s++) {
        dwconv_seq(x + s * TD, t, d, r->k, r->mix_w, r->mix_b, a + s * TD);   /* token mixer */
        dwconv_seq(a + s * TD, t, d, r->k, r->ffn_w, r->ffn_b, z + s * TD);   /* ConvFFN */
    }
    memcpy(x, a, R * d * sizeof(float));
    mc_linear_q(z, r->fc1_w, &r->fc1_q, r->fc1_b, rows, d, r->hidden, m, r->act);
    if (!r->ls) {
        mc_linear_add_q(m, r->fc2_w, &r->fc2_q, r->fc2_b, rows, r->hidden, d, x);
        return;
    }
    mc_linear_q(m, r->fc2_w, &r->fc2_q, r->fc2_b, rows, r->hidden, d, a, MC_ACT_NONE);
    for (size_t i = 0; i < R; i++) {
        float *xi = x + i * d;
        const float *ai = a + i * d;
        for (int c = 0; c < d; c++) xi[c] += r->ls[c] * ai[c];
    }
}

/* In chunks of sequences, as the transformer blocks. */
static void repmixer_forward(const text_repmixer *r, float *x, int nseq, int t, float *ws) {
    int c = mc_tblock_chunk(nseq, t);
    for (int s = 0; s < nseq; s += c)
        repmixer_rows(r, x + (size_t)s * t * r->dim, nseq - s < c ? nseq - s : c, t, ws);
}

static size_t text_workspace(const mc_text_tower *tw, int n) {
    const text_impl *v = tw->impl;
    size_t X = (size_t)n * v->ctx * v->width, W = (size_t)v->width;
    size_t m = (size_t)n * W;
    for (int l = 0; l < v->n_layers; l++) {
        const text_layer *L = &v->layers[l];
        size_t s = L->is_repmixer ? repmixer_ws(&L->rm, n, v->ctx) : mc_tblock_workspace_upto(&L->tb, n, v->ctx);
        if (s > m) m = s;
    }
    return X + m;
}

static int text_pool_index(const text_impl *v, const int32_t *tok) {
    int T = v->ctx, idx = 0;
    switch (v->pool) {
    case MC_TEXT_POOL_FIRST: return 0;
    case MC_TEXT_POOL_LAST: return T - 1;
    case MC_TEXT_POOL_EOS:
        for (int i = 0; i < T; i++)
            if (tok[i] == v->eos_id) return i;
        return 0;
    case MC_TEXT_POOL_ARGMAX:
    default:
        for (int i = 1; i < T; i++)
            if (tok[i] > tok[idx]) idx = i;
        return idx;
    }
}

/* Positions the forward must run.  In a causal stack (attention masked to
 * earlier positions, no RepMixer convolution along the sequence) position i
 * depends only on positions <= i, so nothing after the last pooled position
 * of the batch can change an embedding: the sequences are cut there (the
 * pooled outputs are the same as over the full context; a typical caption
 * needs 10-30 of the 77 positions).  MC_TEXT_FULL_CONTEXT=1 in the
 * environment turns the cut off (tests compare the two). */
static int text_positions(const mc_text_tower *tw, const int32_t *tokens, int n) {
    const text_impl *v = tw->impl;
    int T = v->ctx;
    if (!v->causal || v->any_repmixer) return T;
    const char *env = getenv("MC_TEXT_FULL_CONTEXT");
    if (env && *env && strcmp(env, "0")) return T;
    int need = 1;
    for (int s = 0; s < n; s++) {
        int at = text_pool_index(v, tokens + (size_t)s * T) + 1;
        if (at > need) need = at;
    }
    return need;
}

static mc_status text_forward(const mc_text_tower *tw, float *ws, const int32_t *tokens, int n,
                              float *out, mc_error *err) {
    const text_impl *v = tw->impl;
    int T0 = v->ctx, W = v->width;
    for (int s = 0; s < n; s++) {
        const int32_t *tok = tokens + (size_t)s * T0;
        for (int i = 0; i < T0; i++)
            if (tok[i] < 0 || tok[i] >= v->vocab)
                return mc_fail(err, MC_ERR_INVALID_ARG, "token %d at position %d of text %d is outside the vocabulary (%d)",
                               tok[i], i, s, v->vocab);
    }
    int T = text_positions(tw, tokens, n);   /* positions run: x is [n, T, W] */
    size_t TW = (size_t)T * W;
    float *x = ws, *scr = x + (size_t)n * T0 * W;
    for (int s = 0; s < n; s++) {
        const int32_t *tok = tokens + (size_t)s * T0;
        for (int i = 0; i < T; i++) {
            const float *p = v->pos_emb + (size_t)i * W;
            float *xi = x + s * TW + (size_t)i * W;
            if (v->tok_q.type != MC_WT_F32) {
                mc_qmat_row(&v->tok_q, tok[i], 0, W, xi);
                for (int c = 0; c < W; c++) xi[c] += p[c];
            } else {
                const float *e = v->tok_emb + (size_t)tok[i] * W;
                for (int c = 0; c < W; c++) xi[c] = e[c] + p[c];
            }
        }
    }
    /* every linear layer is one GEMM over all n x T tokens */
    for (int l = 0; l < v->n_layers; l++) {
        const text_layer *L = &v->layers[l];
        if (L->is_repmixer) repmixer_forward(&L->rm, x, n, T, scr);
        else mc_tblock_forward(&L->tb, x, n, T, v->causal, scr);
    }
    float *pooled = scr;   /* [n, W] */
    for (int s = 0; s < n; s++) {
        int at = text_pool_index(v, tokens + (size_t)s * T0);
        mc_layernorm(x + s * TW + (size_t)at * W, 1, W, v->ln_w, v->ln_b, v->eps, pooled + (size_t)s * W);
    }
    mc_linear_q(pooled, v->proj_w, &v->proj_q, v->proj_b, n, W, v->out_dim, out, MC_ACT_NONE);
    return MC_OK;
}

static void text_lower(mc_text_tower *tw, mc_lower *L) {
    text_impl *v = tw->impl;
    MC_LOWER_AS(L, v->tok_emb, v->vocab, v->width, v->tok_q, MC_USE_TABLE);
    for (int l = 0; l < v->n_layers; l++) {
        text_layer *ly = &v->layers[l];
        if (!ly->is_repmixer) {
            mc_tblock_lower(&ly->tb, L);
            continue;
        }
        text_repmixer *r = &ly->rm;
        MC_LOWER(L, r->fc1_w, r->hidden, r->dim, r->fc1_q);
        MC_LOWER(L, r->fc2_w, r->dim, r->hidden, r->fc2_q);
    }
    MC_LOWER(L, v->proj_w, v->out_dim, v->width, v->proj_q);
}

static void text_destroy(mc_text_tower *tw) {
    if (!tw) return;
    text_impl *v = tw->impl;
    if (v) free(v->layers);
    free(v);
    tw->impl = NULL;
}

/* ---- loading ---- */

/* Folds a BatchNorm into per-channel scale s and shift h: bn(x) = s x + h. */
static int bind_bn(mc_binder *b, const char *pre, int C, float eps, float *s, float *h) {
    float *g = mc_bind1(b, C, "%s.weight", pre);
    float *be = mc_bind1(b, C, "%s.bias", pre);
    float *mu = mc_bind1(b, C, "%s.running_mean", pre);
    float *var = mc_bind1(b, C, "%s.running_var", pre);
    mc_binder_skip(b, "%s.num_batches_tracked", pre);
    if (!g || !be || !mu || !var) return 0;
    for (int c = 0; c < C; c++) {
        s[c] = g[c] / sqrtf(var[c] + eps);
        h[c] = be[c] - mu[c] * s[c];
    }
    return 1;
}

/* Adds depthwise conv `pre`.conv.weight [C,1,1,kc] + `pre`.bn, centred in a k-tap kernel, to w, b. */
static int add_conv_bn(mc_binder *b, const char *pre, int C, int k, int kc, float eps, float *w,
                       float *bias, float *s, float *h) {
    float *cw = mc_bind4(b, C, 1, 1, kc, "%s.conv.weight", pre);
    char bn[512];
    snprintf(bn, sizeof bn, "%s.bn", pre);
    if (!cw || !bind_bn(b, bn, C, eps, s, h)) return 0;
    int off = k / 2 - kc / 2;
    for (int c = 0; c < C; c++) {
        for (int j = 0; j < kc; j++) w[(size_t)c * k + off + j] += cw[(size_t)c * kc + j] * s[c];
        bias[c] += h[c];
    }
    return 1;
}

/* MobileOneBlock (depthwise, kernel (1, k)) at `pre` folded into w [C, k], b [C]
 * (zeroed by the caller): reparam_conv, or the sum of rbr_skip, rbr_conv.N and rbr_scale. */
static int fold_mobileone(mc_binder *b, const char *pre, int C, int k, float eps, float *w, float *bias,
                          float *s, float *h) {
    if (mc_binder_peek(b, "%s.reparam_conv.weight", pre)) {
        float *rw = mc_bind4(b, C, 1, 1, k, "%s.reparam_conv.weight", pre);
        float *rb = mc_bind1(b, C, "%s.reparam_conv.bias", pre);
        if (!rw || !rb) return 0;
        for (size_t i = 0; i < (size_t)C * k; i++) w[i] += rw[i];
        for (int c = 0; c < C; c++) bias[c] += rb[c];
        return 1;
    }
    char sub[512];
    int any = 0;
    if (mc_binder_peek(b, "%s.rbr_skip.weight", pre)) {
        snprintf(sub, sizeof sub, "%s.rbr_skip", pre);
        if (!bind_bn(b, sub, C, eps, s, h)) return 0;
        for (int c = 0; c < C; c++) {
            w[(size_t)c * k + k / 2] += s[c];
            bias[c] += h[c];
        }
        any = 1;
    }
    for (int i = 0; mc_binder_peek(b, "%s.rbr_conv.%d.conv.weight", pre, i); i++) {
        snprintf(sub, sizeof sub, "%s.rbr_conv.%d", pre, i);
        if (!add_conv_bn(b, sub, C, k, k, eps, w, bias, s, h)) return 0;
        any = 1;
    }
    if (mc_binder_peek(b, "%s.rbr_scale.conv.weight", pre)) {
        snprintf(sub, sizeof sub, "%s.rbr_scale", pre);
        if (!add_conv_bn(b, sub, C, k, 1, eps, w, bias, s, h)) return 0;
        any = 1;
    }
    if (!any) {
        b->status = mc_fail(b->err, MC_ERR_MISSING_TENSOR, "%s: missing tensor '%s.rbr_skip.weight'",
                            b->path, pre);
        return 0;
    }
    return 1;
}

static int bind_repmixer(mc_binder *b, const char *pre, int C, const mc_text_params *p,
                         text_repmixer *r) {
    char name[640];
    /* the ConvFFN's conv + BN, or (a 'convert' file) its fold "convffn.conv.reparam_conv" */
    int ffn_folded = mc_binder_peek(b, "%sconvffn.conv.reparam_conv.weight", pre) != NULL;
    const mc_tensor_info *cw = mc_binder_peek(b, ffn_folded ? "%sconvffn.conv.reparam_conv.weight" : "%sconvffn.conv.conv.weight", pre);
    int k = (cw && cw->ndim == 4) ? (int)cw->shape[3] : 0;
    const mc_tensor_info *f1 = mc_binder_peek(b, "%sconvffn.fc1.weight", pre);
    int hidden = (f1 && f1->ndim == 4) ? (int)f1->shape[0] : 0;
    if (k <= 0 || hidden <= 0) {
        mc_bind4(b, C, 1, 1, k, "%sconvffn.conv.conv.weight", pre);
        mc_bind4(b, hidden, C, 1, 1, "%sconvffn.fc1.weight", pre);
        if (b->status == MC_OK)
            b->status = mc_fail(b->err, MC_ERR_SHAPE, "%s: bad RepMixer block '%s'", b->path, pre);
        return 0;
    }
    r->dim = C;
    r->k = k;
    r->hidden = hidden;
    r->act = p->act;
    r->mix_w = mc_arena_floats(b->arena, (size_t)C * k);
    r->mix_b = mc_arena_floats(b->arena, (size_t)C);
    r->ffn_w = mc_arena_floats(b->arena, (size_t)C * k);
    r->ffn_b = mc_arena_floats(b->arena, (size_t)C);
    float *s = mc_arena_floats(b->arena, (size_t)C), *h = mc_arena_floats(b->arena, (size_t)C);
    float *nw = mc_arena_floats(b->arena, (size_t)C * k), *nb = mc_arena_floats(b->arena, (size_t)C);
    if (!r->mix_w || !r->mix_b || !r->ffn_w || !r->ffn_b || !s || !h || !nw || !nb) {
        b->status = mc_fail(b->err, MC_ERR_NOMEM, "%s: out of memory", b->path);
        return 0;
    }
    /* token mixer: x + ls (mixer(x) - norm(x)), or its reparam_conv */
    if (mc_binder_peek(b, "%stoken_mixer.reparam_conv.weight", pre)) {
        snprintf(name, sizeof name, "%stoken_mixer", pre);
        if (!fold_mobileone(b, name, C, k, p->bn_eps, r->mix_w, r->mix_b, s, h)) return 0;
    } else {
        float *mw = r->mix_w, *mb = r->mix_b;
        snprintf(name, sizeof name, "%stoken_mixer.mixer", pre);
        if (!fold_mobileone(b, name, C, k, p->bn_eps, mw, mb, s, h)) return 0;
        snprintf(name, sizeof name, "%stoken_mixer.norm", pre);
        if (!fold_mobileone(b, name, C, k, p->bn_eps, nw, nb, s, h)) return 0;
        const float *ls = mc_bind(b, 3, (int64_t[]){C, 1, 1}, "%stoken_mixer.layer_scale", pre);
        if (!ls) return 0;
        for (int c = 0; c < C; c++) {
            float l = ls[c];
            for (int j = 0; j < k; j++) {
                size_t i = (size_t)c * k + j;
                mw[i] = (j == k / 2 ? 1.0f : 0.0f) + l * (mw[i] - nw[i]);
            }
            mb[c] = l * (mb[c] - nb[c]);
        }
    }
    snprintf(name, sizeof name, "%sconvffn.conv", pre);
    if (ffn_folded) {
        if (!fold_mobileone(b, name, C, k, p->bn_eps, r->ffn_w, r->ffn_b, s, h)) return 0;
    } else if (!add_conv_bn(b, name, C, k, k, p->bn_eps, r->ffn_w, r->ffn_b, s, h)) {
        return 0;
    }
    r->fc1_w = mc_bind4(b, hidden, C, 1, 1, "%sconvffn.fc1.weight", pre);
    r->fc1_b = mc_bind1(b, hidden, "%sconvffn.fc1.bias", pre);
    r->fc2_w = mc_bind4(b, C, hidden, 1, 1, "%sconvffn.fc2.weight", pre);
    r->fc2_b = mc_bind1(b, C, "%sconvffn.fc2.bias", pre);
    r->ls = mc_bind(b, 3, (int64_t[]){C, 1, 1}, "%slayer_scale", pre);
    return b->status == MC_OK;
}

/* The bound weights under the loader's names; a RepMixer block's token mixer
 * and ConvFFN conv as their folds (reparam_conv, [C, 1, 1, k] + bias). */
static mc_status text_export(const mc_text_tower *tw, mc_export *ex) {
    const text_impl *v = tw->impl;
    const char *P = v->pfx;
    int64_t W = v->width, E = v->out_dim;
    mc_export_add(ex, v->tok_emb, 2, (int64_t[]){v->vocab, W}, "%s%s", P,
                  v->mob ? "embedding_layer.weight" : "token_embedding.weight");
    if (v->mob) mc_export_add(ex, v->pos_emb, 4, (int64_t[]){1, 1, v->ctx, W}, "%spositional_embedding.pos_embed.pos_embed", P);
    else mc_export_add(ex, v->pos_emb, 2, (int64_t[]){v->ctx, W}, "%spositional_embedding", P);
    for (int l = 0; l < v->n_layers; l++) {
        const text_layer *L = &v->layers[l];
        char name[256];
        if (!v->mob) {
            snprintf(name, sizeof name, "%stransformer.resblocks.%d.", P, l);
            mc_tblock_export(ex, &L->tb, name, &mc_tblock_names_openclip);
            continue;
        }
        snprintf(name, sizeof name, "%stransformer.%d.", P, l);
        if (!L->is_repmixer) {
            mc_tblock_export(ex, &L->tb, name, &mc_tblock_names_mobileclip);
            continue;
        }
        const text_repmixer *r = &L->rm;
        int64_t C = r->dim, H = r->hidden, dw[4] = {C, 1, 1, r->k};
        mc_export_add(ex, r->mix_w, 4, dw, "%stoken_mixer.reparam_conv.weight", name);
        mc_export_add(ex, r->mix_b, 1, &C, "%stoken_mixer.reparam_conv.bias", name);
        mc_export_add(ex, r->ffn_w, 4, dw, "%sconvffn.conv.reparam_conv.weight", name);
        mc_export_add(ex, r->ffn_b, 1, &C, "%sconvffn.conv.reparam_conv.bias", name);
        mc_export_add_w(ex, r->fc1_w, &r->fc1_q, 4, (int64_t[]){H, C, 1, 1}, "%sconvffn.fc1.weight", name);
        mc_export_add(ex, r->fc1_b, 1, &H, "%sconvffn.fc1.bias", name);
        mc_export_add_w(ex, r->fc2_w, &r->fc2_q, 4, (int64_t[]){C, H, 1, 1}, "%sconvffn.fc2.weight", name);
        mc_export_add(ex, r->fc2_b, 1, &C, "%sconvffn.fc2.bias", name);
        if (r->ls) mc_export_add(ex, r->ls, 3, (int64_t[]){C, 1, 1}, "%slayer_scale", name);
    }
    const char *ln = v->mob ? "final_layer_norm" : "ln_final";
    mc_export_add(ex, v->ln_w, 1, &W, "%s%s.weight", P, ln);
    mc_export_add(ex, v->ln_b, 1, &W, "%s%s.bias", P, ln);
    if (v->proj_param) {   /* x @ P [W, E] */
        const float *pw = mc_export_mat(ex, v->proj_w, &v->proj_q);
        float *pr = mc_export_add_new(ex, 2, (int64_t[]){W, E}, "%s%s", P, v->mob ? "projection_layer" : "text_projection");
        if (pr && pw)
            for (int64_t i = 0; i < W; i++)
                for (int64_t j = 0; j < E; j++) pr[i * E + j] = pw[j * W + i];
    } else {
        mc_export_add_w(ex, v->proj_w, &v->proj_q, 2, (int64_t[]){E, W}, "%stext_projection.weight", P);
        if (v->proj_b) mc_export_add(ex, v->proj_b, 1, &E, "%stext_projection.bias", P);
    }
    return MC_OK;
}

mc_status mc_text_tower_load(mc_binder *b, const mc_text_params *p, mc_text_tower **out) {
    *out = NULL;
    if (b->status != MC_OK) return b->status;
    const char *P = p->prefix ? p->prefix : "";
    int mob = p->layout == MC_TEXT_LAYOUT_MOBILECLIP;
    text_impl *v = calloc(1, sizeof *v);
    mc_text_tower *tw = calloc(1, sizeof *tw);
    if (!v || !tw) {
        free(v);
        free(tw);
        return b->status = mc_fail(b->err, MC_ERR_NOMEM, "%s: out of memory", b->path);
    }
    tw->impl = v;
    tw->forward = text_forward;
    tw->workspace_floats = text_workspace;
    tw->positions = text_positions;
    tw->destroy = text_destroy;
    snprintf(v->arch, sizeof v->arch, "%s", p->arch ? p->arch : (mob ? "base" : "open_clip"));
    snprintf(v->pfx, sizeof v->pfx, "%s", P);
    v->mob = mob;
    tw->arch = v->arch;
    tw->export_weights = text_export;
    tw->lower = text_lower;
    v->causal = p->causal;
    v->pool = p->pool;
    v->eos_id = p->eos_id;
    v->eps = p->ln_eps;
    int64_t n0 = b->n_params;
    char name[512];

    const char *emb_name = mob ? "embedding_layer.weight" : "token_embedding.weight";
    /* Width, vocabulary and context from the config (read off the tensors
     * only when it gives none): the embedding is bound against them, so a
     * mis-shaped one is reported as itself. */
    const mc_tensor_info *et = mc_binder_peek(b, "%s%s", P, emb_name);
    if ((!et || et->ndim != 2) && (p->width <= 0 || p->vocab <= 0)) {
        mc_bind2(b, p->vocab > 0 ? p->vocab : 0, p->width > 0 ? p->width : 0, "%s%s", P, emb_name);
        goto fail;
    }
    int W = v->width = p->width > 0 ? p->width : (int)et->shape[1];
    v->vocab = p->vocab > 0 ? p->vocab : (int)et->shape[0];
    v->tok_emb = mc_bind2(b, v->vocab, W, "%s%s", P, emb_name);
    if (b->status != MC_OK) goto fail;
    const char *pos_name = mob ? "positional_embedding.pos_embed.pos_embed" : "positional_embedding";
    const mc_tensor_info *pt = mc_binder_peek(b, "%s%s", P, pos_name);
    v->ctx = p->context > 0 ? p->context
                            : (pt && pt->ndim >= 2) ? (int)pt->shape[pt->ndim - 2] : MC_CONTEXT_LENGTH;
    if (mob) v->pos_emb = mc_bind(b, 4, (int64_t[]){1, 1, v->ctx, W}, "%s%s", P, pos_name);
    else v->pos_emb = mc_bind2(b, v->ctx, W, "%s%s", P, pos_name);
    if (b->status != MC_OK) goto fail;

    int n = 0;
    for (;; n++) {
        if (!mc_binder_has_prefix(b, mob ? "%stransformer.%d." : "%stransformer.resblocks.%d.", P, n)) break;
    }
    v->n_layers = n;
    v->layers = calloc(n > 0 ? (size_t)n : 1, sizeof *v->layers);
    if (!v->layers) {
        b->status = mc_fail(b->err, MC_ERR_NOMEM, "%s: out of memory", b->path);
        goto fail;
    }
    for (int l = 0; l < n; l++) {
        text_layer *L = &v->layers[l];
        if (mob) {
            snprintf(name, sizeof name, "%stransformer.%d.", P, l);
            if (mc_binder_has_prefix(b, "%spre_norm_mha.", name)) {
                mc_tblock_bind(b, name, &mc_tblock_names_mobileclip, W, p->heads, p->ln_eps, p->act, &L->tb);
            } else {
                L->is_repmixer = 1;
                v->any_repmixer = 1;
                bind_repmixer(b, name, W, p, &L->rm);
            }
        } else {
            snprintf(name, sizeof name, "%stransformer.resblocks.%d.", P, l);
            mc_tblock_bind(b, name, &mc_tblock_names_openclip, W, p->heads, p->ln_eps, p->act, &L->tb);
        }
        if (b->status != MC_OK) goto fail;
    }
    const char *ln = mob ? "final_layer_norm" : "ln_final";
    v->ln_w = mc_bind1(b, W, "%s%s.weight", P, ln);
    v->ln_b = mc_bind1(b, W, "%s%s.bias", P, ln);

    /* projection: x @ P [W, E] (Parameter) or Linear weight [E, W] (+ bias) */
    const char *pj = mob ? "projection_layer" : "text_projection";
    const mc_tensor_info *pp = mc_binder_peek(b, "%s%s", P, pj);
    if (pp) {
        int E = p->embed_dim > 0 ? p->embed_dim : pp->ndim == 2 ? (int)pp->shape[1] : 0;
        float *pr = mc_bind2(b, W, E, "%s%s", P, pj);
        float *tr = mc_arena_floats(b->arena, (size_t)W * (E > 0 ? E : 1));
        if (!pr) goto fail;
        if (!tr) {
            b->status = mc_fail(b->err, MC_ERR_NOMEM, "%s: out of memory", b->path);
            goto fail;
        }
        for (int i = 0; i < W; i++)
            for (int j = 0; j < E; j++) tr[(size_t)j * W + i] = pr[(size_t)i * E + j];
        v->proj_w = tr;
        v->out_dim = E;
        v->proj_param = 1;
    } else if (!mob && mc_binder_peek(b, "%stext_projection.weight", P)) {
        const mc_tensor_info *pw = mc_binder_peek(b, "%stext_projection.weight", P);
        int E = p->embed_dim > 0 ? p->embed_dim : pw->ndim == 2 ? (int)pw->shape[0] : 0;
        v->proj_w = mc_bind2(b, E, W, "%stext_projection.weight", P);
        v->proj_b = mc_bind_opt(b, 1, (int64_t[]){E}, "%stext_projection.bias", P);
        v->out_dim = E;
    } else {
        mc_bind2(b, W, 0, "%s%s", P, pj);   /* raises the missing-tensor error */
    }
    if (b->status != MC_OK) goto fail;
    tw->context_length = v->ctx;
    tw->vocab_size = v->vocab;
    tw->out_dim = v->out_dim;
    tw->n_params = b->n_params - n0;
    *out = tw;
    return MC_OK;
fail:
    text_destroy(tw);
    free(tw);
    return b->status != MC_OK ? b->status : MC_ERR_INTERNAL;
}
