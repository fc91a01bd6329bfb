/*
 * model/vit.c - ViT image towers (see vit.h): conv stem or patch embedding,
 * class token and positional embedding, optional pre-norm, pre-norm
 * transformer blocks, final norm, class-token (or mean) pooling and the
 * projection head.  BatchNorm of the conv stem is folded into its convs at load;
 * the tower's export writes the bound weights back with that fold done.
 */
#include "model/vit.h"

#include "kernels/lowp.h"
#include "model/tblock.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MC_VIT_MAX_STEM 8

typedef struct vit_stem_conv {
    mc_conv2d_desc d;
    const float *w;          /* [cout, cin, k, k] (BatchNorm folded in) */
    const float *b;          /* [cout] or NULL */
    mc_act act;
    int oh, ow;              /* output size for the tower's image size */
    mc_qmat q;               /* reduced or pre-packed copy of a dense conv's w (w is then NULL) */
} vit_stem_conv;

/* Tensor names of one layout, relative to the tower prefix. */
typedef struct vit_names {
    const char *cls;         /* class token */
    int cls_ndim;            /* 3: [1, 1, D]; 1: [D] */
    const char *pos;         /* positions */
    int pos_ndim;            /* 4: [1, 1, L, D]; 3: [1, L, D]; 2: [L, D] */
    const char *pre;         /* norm before the blocks (optional), or NULL */
    const char *block;       /* printf format of a block prefix, %d the index */
    const mc_tblock_names *tb;
    const char *norm;        /* final norm */
    const char *proj;        /* projection stored as x @ P [D, E], or NULL: Linear "head" */
} vit_names;

static const vit_names names_timm = {"cls_token", 3, "pos_embed", 3, "norm_pre", "blocks.%d.",
                                     &mc_tblock_names_timm, "norm", NULL};
static const vit_names names_mobileclip = {"cls_token", 3, "pos_embed.pos_embed.pos_embed", 4, NULL,
                                           "transformer.%d.", &mc_tblock_names_mobileclip,
                                           "post_transformer_norm", "classifier.proj"};
static const vit_names names_openclip = {"class_embedding", 1, "positional_embedding", 2, "ln_pre",
                                         "transformer.resblocks.%d.", &mc_tblock_names_openclip, "ln_post",
                                         "proj"};

static const vit_names *layout_names(mc_vit_layout layout) {
    return layout == MC_VIT_LAYOUT_MOBILECLIP ? &names_mobileclip
           : layout == MC_VIT_LAYOUT_OPENCLIP ? &names_openclip
                                               : &names_timm;
}

typedef struct vit_impl {
    char arch[64];
    char pfx[64];            /* tensor-name prefix */
    int mob;                 /* mobileclip repo layout */
    const vit_names *nm;
    int patch_proj;          /* timm single patch_embed.proj stem */
    int conv1;               /* OpenCLIP single conv1 stem (no bias) */
    int dim, depth, heads, out_dim;
    int grid_h, grid_w, n_patches, n_tokens;
    int n_stem;
    vit_stem_conv stem[MC_VIT_MAX_STEM];
    const float *cls;        /* [dim] */
    const float *pos;        /* [pos_len, dim] */
    int pos_has_cls;         /* pos covers the class token too */
    const float *pre_w, *pre_b;    /* norm_pre [dim] or NULL */
    const float *norm_w, *norm_b;  /* final norm [dim] */
    const float *head_w, *head_b;  /* [out_dim, dim], [out_dim] or NULL */
    mc_qmat head_q;          /* reduced copy of head_w (then NULL) */
    float eps;
    mc_tblock *blocks;       /* [depth] */
} vit_impl;

mc_vit_params mc_vit_default_params(const char *arch, int *known) {
    mc_vit_params p;
    memset(&p, 0, sizeof p);
    p.arch = arch;
    p.image_size = 224;
    p.head_dim = 64;
    p.bn_eps = 1e-5f;
    p.act = MC_ACT_GELU;
    int ok = 0;
    if (arch && !strcmp(arch, "vit_b16")) {
        /* mobileclip repo: nn.LayerNorm / LayerNormFP32 with eps 1e-5 */
        p.layout = MC_VIT_LAYOUT_MOBILECLIP;
        p.prefix = "image_encoder.model.";
        p.ln_eps = 1e-5f;
        ok = 1;
    } else if (arch && !strcmp(arch, "vit")) {
        /* OpenCLIP's own VisionTransformer: nn.LayerNorm (eps 1e-5); the
         * caller sets head_dim (vision_cfg.head_width) and the activation
         * (QuickGELU when the config says quick_gelu) */
        p.layout = MC_VIT_LAYOUT_OPENCLIP;
        p.prefix = "visual.";
        p.ln_eps = 1e-5f;
        ok = 1;
    } else if (arch && !strncmp(arch, "vit_", 4)) {
        /* timm: LayerNorm eps 1e-6 unless the CLIP variants set 1e-5 */
        p.layout = MC_VIT_LAYOUT_TIMM;
        p.prefix = "visual.trunk.";
        p.ln_eps = strstr(arch, "_clip_") ? 1e-5f : 1e-6f;
        const char *ps = strstr(arch, "_224");
        if (!ps) ps = strstr(arch, "_256");
        if (!ps) ps = strstr(arch, "_336");
        if (!ps) ps = strstr(arch, "_384");
        if (ps) p.image_size = atoi(ps + 1);
        ok = 1;
    }
    if (known) *known = ok;
    return p;
}

static void vit_destroy(mc_image_tower *t) {
    if (!t) return;
    vit_impl *v = t->impl;
    if (v) free(v->blocks);
    free(v);
    t->impl = NULL;
}

static size_t vit_stem_max(const vit_impl *v) {
    size_t m = 0;
    for (int i = 0; i < v->n_stem; i++) {
        size_t s = (size_t)v->stem[i].d.cout * v->stem[i].oh * v->stem[i].ow;
        if (s > m) m = s;
    }
    return m;
}

static size_t vit_workspace(const mc_image_tower *t, int n) {
    const vit_impl *v = t->impl;
    size_t T = (size_t)v->n_tokens, D = (size_t)v->dim, X = (size_t)n * T * D;
    size_t rest = 2 * vit_stem_max(v);    /* the stem runs one image at a time */
    for (int i = 0; i < v->depth; i++) {
        size_t s = mc_tblock_workspace(&v->blocks[i], n, v->n_tokens);
        if (s > rest) rest = s;
    }
    if (X + (size_t)n * D > rest) rest = X + (size_t)n * D;
    return X + rest;     /* x [n, T, D] + scratch */
}

static mc_status vit_forward(const mc_image_tower *t, float *ws, const float *pixels, int n,
                             float *out, mc_error *err) {
    const vit_impl *v = t->impl;
    int D = v->dim, T = v->n_tokens, N = v->n_patches;
    size_t S = (size_t)t->image_size, TD = (size_t)T * D;
    float *x = ws;                       /* [n, T, D] tokens */
    float *scr = x + (size_t)n * TD;     /* scratch */
    size_t stem_max = vit_stem_max(v);
    for (int img = 0; img < n; img++) {
        /* stem: [3, S, S] -> [D, gh, gw] */
        const float *in = pixels + (size_t)img * 3 * S * S;
        int h = (int)S, w = (int)S;
        float *bufs[2] = {scr, scr + stem_max};
        for (int i = 0; i < v->n_stem; i++) {
            const vit_stem_conv *c = &v->stem[i];
            float *o = bufs[i & 1];
            mc_conv2d_q(&c->d, c->w, &c->q, c->b, in, 1, h, w, o, c->act);
            in = o;
            h = c->oh;
            w = c->ow;
        }
        /* tokens: cls, then the patches transposed to [N, D], plus positions */
        float *xi = x + (size_t)img * TD;
        memcpy(xi, v->cls, (size_t)D * sizeof(float));
        for (int p = 0; p < N; p++) {
            float *row = xi + (size_t)(p + 1) * D;
            for (int c = 0; c < D; c++) row[c] = in[(size_t)c * N + p];
        }
        if (v->pos_has_cls) {
            for (size_t i = 0; i < TD; i++) xi[i] += v->pos[i];
        } else {
            for (size_t i = 0; i < (size_t)N * D; i++) xi[(size_t)D + i] += v->pos[i];
        }
    }
    /* the transformer: every linear layer is one GEMM over all n x T tokens */
    if (v->pre_w) {
        mc_layernorm(x, n * T, D, v->pre_w, v->pre_b, v->eps, scr);
        memcpy(x, scr, (size_t)n * TD * sizeof(float));
    }
    for (int l = 0; l < v->depth; l++) mc_tblock_forward(&v->blocks[l], x, n, T, 0, scr);
    /* final norm of the class token (token pooling, the only kind the configs allow) */
    float *pooled = scr + (size_t)n * TD;    /* [n, D] */
    for (int img = 0; img < n; img++)
        mc_layernorm(x + (size_t)img * TD, 1, D, v->norm_w, v->norm_b, v->eps, pooled + (size_t)img * D);
    mc_linear_q(pooled, v->head_w, &v->head_q, v->head_b, n, D, v->out_dim, out, MC_ACT_NONE);
    (void)err;
    return MC_OK;
}

/* Binds conv+BN (or conv+bias) stage i of the stem and folds the BN. */
static void vit_bind_stem_conv(mc_binder *b, const mc_vit_params *p, int i, int last, int cin,
                               const char *wname, const char *bname, const char *bnpre, int bias_optional,
                               vit_stem_conv *c) {
    const mc_tensor_info *wt = mc_binder_peek(b, "%s", wname);
    if (!wt || wt->ndim != 4) {
        mc_bind4(b, 0, cin, 0, 0, "%s", wname);  /* raises the missing/shape error */
        return;
    }
    int cout = (int)wt->shape[0], k = (int)wt->shape[2];
    float *w = mc_bind4(b, cout, cin, k, k, "%s", wname);
    float *bias = NULL;
    if (!w) return;
    c->d.cin = cin;
    c->d.cout = cout;
    c->d.kh = c->d.kw = k;
    c->d.sh = c->d.sw = k;   /* non-overlapping: stride = kernel (4/2/2 or the patch size) */
    c->d.ph = c->d.pw = p->layout == MC_VIT_LAYOUT_MOBILECLIP ? (k - 1) / 2 : 0;
    c->d.groups = 1;
    if (!last && bnpre && p->folded && !mc_binder_peek(b, "%s.weight", bnpre)) {
        bias = mc_bind1(b, cout, "%s", bname);   /* BatchNorm already folded */
        c->act = p->act;
    } else if (!last && bnpre) {
        float *g = mc_bind1(b, cout, "%s.weight", bnpre);
        float *be = mc_bind1(b, cout, "%s.bias", bnpre);
        float *mu = mc_bind1(b, cout, "%s.running_mean", bnpre);
        float *var = mc_bind1(b, cout, "%s.running_var", bnpre);
        mc_binder_skip(b, "%s.num_batches_tracked", bnpre);
        bias = mc_arena_floats(b->arena, (size_t)cout);
        if (!g || !be || !mu || !var) return;
        if (!bias) { b->status = mc_fail(b->err, MC_ERR_NOMEM, "%s: out of memory", b->path); return; }
        size_t per = (size_t)cin * k * k;
        for (int o = 0; o < cout; o++) {
            float s = g[o] / sqrtf(var[o] + p->bn_eps);
            for (size_t j = 0; j < per; j++) w[(size_t)o * per + j] *= s;
            bias[o] = be[o] - mu[o] * s;
        }
        c->act = p->act;
    } else if (bias_optional) {
        bias = mc_bind_opt(b, 1, (int64_t[]){cout}, "%s", bname);
        c->act = MC_ACT_NONE;
    } else {
        bias = mc_bind1(b, cout, "%s", bname);
        c->act = MC_ACT_NONE;
    }
    c->w = w;
    c->b = bias;
    (void)i;
}

/* The bound weights under the loader's names, stem BatchNorm folded into the
 * stage's conv weight and bias. */
static mc_status vit_export(const mc_image_tower *t, mc_export *ex) {
    const vit_impl *v = t->impl;
    const char *P = v->pfx;
    int64_t D = v->dim;
    for (int i = 0; i < v->n_stem; i++) {
        const vit_stem_conv *c = &v->stem[i];
        char base[256];
        if (v->conv1) snprintf(base, sizeof base, "%sconv1", P);
        else if (v->patch_proj) snprintf(base, sizeof base, "%spatch_embed.proj", P);
        else if (v->mob) snprintf(base, sizeof base, "%spatch_emb.%d.block.conv", P, i);
        else snprintf(base, sizeof base, "%spatch_embed.backbone.%d.conv", P, i);
        mc_export_add_w(ex, c->w, &c->q, 4, (int64_t[]){c->d.cout, c->d.cin, c->d.kh, c->d.kw}, "%s.weight", base);
        if (c->b) mc_export_add(ex, c->b, 1, (int64_t[]){c->d.cout}, "%s.bias", base);
    }
    const vit_names *nm = v->nm;
    int64_t cs[3] = {1, 1, D};
    mc_export_add(ex, v->cls, nm->cls_ndim, cs + 3 - nm->cls_ndim, "%s%s", P, nm->cls);
    int64_t pos_len = v->pos_has_cls ? v->n_tokens : v->n_patches;
    int64_t ps[4] = {1, 1, pos_len, D};
    mc_export_add(ex, v->pos, nm->pos_ndim, ps + 4 - nm->pos_ndim, "%s%s", P, nm->pos);
    if (v->pre_w) {
        mc_export_add(ex, v->pre_w, 1, &D, "%s%s.weight", P, nm->pre);
        mc_export_add(ex, v->pre_b, 1, &D, "%s%s.bias", P, nm->pre);
    }
    for (int l = 0; l < v->depth; l++) {
        char name[256], blk[64];
        snprintf(blk, sizeof blk, nm->block, l);
        snprintf(name, sizeof name, "%s%s", P, blk);
        mc_tblock_export(ex, &v->blocks[l], name, nm->tb);
    }
    mc_export_add(ex, v->norm_w, 1, &D, "%s%s.weight", P, nm->norm);
    mc_export_add(ex, v->norm_b, 1, &D, "%s%s.bias", P, nm->norm);
    int64_t E = v->out_dim;
    if (nm->proj) {   /* proj [D, E]: x @ proj */
        const float *hw = mc_export_mat(ex, v->head_w, &v->head_q);
        float *pr = mc_export_add_new(ex, 2, (int64_t[]){D, E}, "%s%s", P, nm->proj);
        if (pr && hw)
            for (int64_t i = 0; i < D; i++)
                for (int64_t j = 0; j < E; j++) pr[i * E + j] = hw[j * D + i];
    } else {
        mc_export_add_w(ex, v->head_w, &v->head_q, 2, (int64_t[]){E, D}, "%shead.weight", P);
        if (v->head_b) mc_export_add(ex, v->head_b, 1, &E, "%shead.bias", P);
    }
    return MC_OK;
}

static void vit_lower(mc_image_tower *t, mc_lower *L) {
    vit_impl *v = t->impl;
    for (int i = 0; i < v->n_stem; i++) {
        vit_stem_conv *c = &v->stem[i];
        int cpg = c->d.cin / c->d.groups;
        if (cpg > 1)
            MC_LOWER_AS(L, c->w, c->d.cout, (int64_t)cpg * c->d.kh * c->d.kw, c->q,
                        c->d.groups == 1 ? MC_USE_CONV : MC_USE_TABLE);
    }
    for (int i = 0; i < v->depth; i++) mc_tblock_lower(&v->blocks[i], L);
    MC_LOWER(L, v->head_w, v->out_dim, v->dim, v->head_q);
}

mc_status mc_vit_tower_load(mc_binder *b, const mc_vit_params *p, mc_image_tower **out) {
    *out = NULL;
    if (b->status != MC_OK) return b->status;
    const char *P = p->prefix;
    int mob = p->layout == MC_VIT_LAYOUT_MOBILECLIP;
    vit_impl *v = calloc(1, sizeof *v);
    mc_image_tower *t = calloc(1, sizeof *t);
    if (!v || !t) {
        free(v);
        free(t);
        return b->status = mc_fail(b->err, MC_ERR_NOMEM, "%s: out of memory", b->path);
    }
    t->impl = v;
    t->destroy = vit_destroy;
    t->forward = vit_forward;
    t->workspace_floats = vit_workspace;
    snprintf(v->arch, sizeof v->arch, "%s", p->arch ? p->arch : "vit");
    snprintf(v->pfx, sizeof v->pfx, "%s", P);
    v->mob = mob;
    const vit_names *nm = v->nm = layout_names(p->layout);
    int oc = p->layout == MC_VIT_LAYOUT_OPENCLIP;
    t->arch = v->arch;
    t->export_weights = vit_export;
    t->lower = vit_lower;
    t->image_size = p->image_size;
    int64_t n0 = b->n_params;
    char name[512], nb[512], bn[512];

    /* width: from the final norm */
    const mc_tensor_info *nt = mc_binder_peek(b, "%s%s.weight", P, nm->norm);
    if (!nt || nt->ndim != 1) {
        mc_bind1(b, 0, "%s%s.weight", P, nm->norm);
        goto fail;
    }
    int D = v->dim = (int)nt->shape[0];
    v->eps = p->ln_eps;
    if (p->head_dim <= 0 || D % p->head_dim != 0) {
        b->status = mc_fail(b->err, MC_ERR_SHAPE,
                            "%s: tensor '%s%s.weight' has shape [%d]: an image width of %d is not a multiple of "
                            "the head size %d", b->path, P, nm->norm, D, D, p->head_dim);
        goto fail;
    }
    v->heads = D / p->head_dim;

    /* stem */
    int cin = 3, h = p->image_size, w = p->image_size;
    if (oc) {
        snprintf(name, sizeof name, "%sconv1.weight", P);
        snprintf(nb, sizeof nb, "%sconv1.bias", P);
        vit_bind_stem_conv(b, p, 0, 1, cin, name, nb, NULL, 1, &v->stem[0]);   /* conv1: no bias */
        v->n_stem = 1;
        v->conv1 = 1;
    } else if (!mob && mc_binder_peek(b, "%spatch_embed.proj.weight", P)) {
        snprintf(name, sizeof name, "%spatch_embed.proj.weight", P);
        snprintf(nb, sizeof nb, "%spatch_embed.proj.bias", P);
        /* a CLIP-style timm ViT (pre-norm) has no patch bias */
        vit_bind_stem_conv(b, p, 0, 1, cin, name, nb, NULL, 1, &v->stem[0]);
        v->n_stem = 1;
        v->patch_proj = 1;
    } else {
        int ns = 0;
        /* stages counted by any of their tensors (conv weight, the last one's bias, the
         * others' BatchNorm), so that a missing weight is named itself */
        while (ns < MC_VIT_MAX_STEM &&
               (mc_binder_peek(b, mob ? "%spatch_emb.%d.block.conv.weight" : "%spatch_embed.backbone.%d.conv.weight", P, ns) ||
                mc_binder_peek(b, mob ? "%spatch_emb.%d.block.conv.bias" : "%spatch_embed.backbone.%d.conv.bias", P, ns) ||
                mc_binder_peek(b, mob ? "%spatch_emb.%d.block.norm.weight" : "%spatch_embed.backbone.%d.bn.weight", P, ns)))
            ns++;
        if (ns == 0) {
            mc_bind4(b, 0, 3, 0, 0, mob ? "%spatch_emb.0.block.conv.weight" : "%spatch_embed.proj.weight", P);
            goto fail;
        }
        for (int i = 0; i < ns; i++) {
            snprintf(name, sizeof name, mob ? "%spatch_emb.%d.block.conv.weight" : "%spatch_embed.backbone.%d.conv.weight", P, i);
            snprintf(nb, sizeof nb, mob ? "%spatch_emb.%d.block.conv.bias" : "%spatch_embed.backbone.%d.conv.bias", P, i);
            snprintf(bn, sizeof bn, mob ? "%spatch_emb.%d.block.norm" : "%spatch_embed.backbone.%d.bn", P, i);
            vit_bind_stem_conv(b, p, i, i == ns - 1, cin, name, nb, bn, 0, &v->stem[i]);
            if (b->status != MC_OK) goto fail;
            cin = v->stem[i].d.cout;
        }
        v->n_stem = ns;
    }
    if (b->status != MC_OK) goto fail;
    for (int i = 0; i < v->n_stem; i++) {
        vit_stem_conv *c = &v->stem[i];
        c->oh = mc_conv_out(h, c->d.kh, c->d.sh, c->d.ph);
        c->ow = mc_conv_out(w, c->d.kw, c->d.sw, c->d.pw);
        if (c->oh <= 0 || c->ow <= 0) {
            b->status = mc_fail(b->err, MC_ERR_CONFIG, "%s: image size %d is too small for the stem",
                                b->path, p->image_size);
            goto fail;
        }
        h = c->oh;
        w = c->ow;
    }
    if (v->stem[v->n_stem - 1].d.cout != D) {
        b->status = mc_fail(b->err, MC_ERR_SHAPE,
                            "%s: the stem's last conv gives %d channels but tensor '%s%s.weight' has shape [%d] "
                            "(the width)", b->path, v->stem[v->n_stem - 1].d.cout, P, nm->norm, D);
        goto fail;
    }
    v->grid_h = h;
    v->grid_w = w;
    v->n_patches = h * w;

    /* class token and positions */
    int64_t cshape[3] = {1, 1, D};
    v->cls = mc_bind(b, nm->cls_ndim, cshape + 3 - nm->cls_ndim, "%s%s", P, nm->cls);
    if (b->status != MC_OK) goto fail;
    v->n_tokens = v->n_patches + 1;
    const char *pos_name = nm->pos;
    const mc_tensor_info *pt = mc_binder_peek(b, "%s%s", P, pos_name);
    int64_t pos_len = pt && pt->ndim >= 2 ? pt->shape[pt->ndim - 2] : v->n_patches;
    if (pos_len != v->n_patches && pos_len != v->n_tokens) {
        b->status = mc_fail(b->err, MC_ERR_UNSUPPORTED,
                            "%s: tensor '%s%s' holds %lld positions but image size %d gives %d patches "
                            "(position interpolation is not supported)",
                            b->path, P, pos_name, (long long)pos_len, p->image_size, v->n_patches);
        goto fail;
    }
    v->pos_has_cls = pos_len == v->n_tokens;
    int64_t pshape[4] = {1, 1, pos_len, D};
    v->pos = mc_bind(b, nm->pos_ndim, pshape + 4 - nm->pos_ndim, "%s%s", P, pos_name);

    if (nm->pre && mc_binder_peek(b, "%s%s.weight", P, nm->pre)) {
        v->pre_w = mc_bind1(b, D, "%s%s.weight", P, nm->pre);
        v->pre_b = mc_bind1(b, D, "%s%s.bias", P, nm->pre);
    }

    /* blocks */
    int depth = 0;
    for (;; depth++) {
        char blk[64];
        snprintf(blk, sizeof blk, nm->block, depth);
        if (!mc_binder_has_prefix(b, "%s%s", P, blk)) break;
    }
    v->depth = depth;
    v->blocks = calloc(depth > 0 ? (size_t)depth : 1, sizeof *v->blocks);
    if (!v->blocks) {
        b->status = mc_fail(b->err, MC_ERR_NOMEM, "%s: out of memory", b->path);
        goto fail;
    }
    for (int l = 0; l < depth; l++) {
        char blk[64];
        snprintf(blk, sizeof blk, nm->block, l);
        snprintf(name, sizeof name, "%s%s", P, blk);
        mc_tblock_bind(b, name, nm->tb, D, v->heads, p->ln_eps, p->act, &v->blocks[l]);
    }
    v->norm_w = mc_bind1(b, D, "%s%s.weight", P, nm->norm);
    v->norm_b = mc_bind1(b, D, "%s%s.bias", P, nm->norm);

    /* head */
    if (nm->proj) {
        const mc_tensor_info *hp = mc_binder_peek(b, "%s%s", P, nm->proj);
        int E = p->embed_dim > 0 ? p->embed_dim : hp && hp->ndim == 2 ? (int)hp->shape[1] : 0;
        float *pr = mc_bind2(b, D, E, "%s%s", P, nm->proj);   /* [D, E]: x @ proj */
        float *tw = mc_arena_floats(b->arena, (size_t)D * (E > 0 ? E : 1));
        if (!pr) goto fail;
        if (!tw) {
            b->status = mc_fail(b->err, MC_ERR_NOMEM, "%s: out of memory", b->path);
            goto fail;
        }
        for (int i = 0; i < D; i++)
            for (int j = 0; j < E; j++) tw[(size_t)j * D + i] = pr[(size_t)i * E + j];
        v->head_w = tw;
        v->out_dim = E;
    } else {
        const mc_tensor_info *hw = mc_binder_peek(b, "%shead.weight", P);
        int E = p->embed_dim > 0 ? p->embed_dim : hw && hw->ndim == 2 ? (int)hw->shape[0] : 0;
        v->head_w = mc_bind2(b, E, D, "%shead.weight", P);
        v->head_b = mc_bind1(b, E, "%shead.bias", P);
        v->out_dim = E;
    }
    if (b->status != MC_OK) goto fail;
    t->out_dim = v->out_dim;
    t->n_params = b->n_params - n0;
    *out = t;
    return MC_OK;
fail:
    vit_destroy(t);
    free(t);
    return b->status != MC_OK ? b->status : MC_ERR_INTERNAL;
}
