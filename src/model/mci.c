/*
 * model/mci.c - the MCi image towers (FastViT-based MobileCLIP encoders): loading
 * from both tensor layouts (mobileclip repo v1 and timm/OpenCLIP), folding
 * every train-time branch into single convolutions at load (src/model/reparam.h),
 * and the folded forward pass.
 *
 * Network (both layouts):
 *   stem: 3 MobileOne blocks (3x3 s2, depthwise 3x3 s2, 1x1), GELU each
 *   per stage: [downsample: large-kernel conv (+small kernel) s2, SE?, GELU,
 *               MobileOne 1x1, GELU] [RepCPE?] blocks (RepMixer or attention)
 *   final: MobileOne kxk (grouped, expanding) + SE + GELU, global average pool,
 *   projection (v1 head.proj [C, D] without bias; timm head.fc [D, C] + bias).
 * A RepMixer block is x = dwconv(x) (folded mixer); x += ls * ffn(x).
 * An attention block is x += ls1 * proj(mhsa(norm(x))); x += ls2 * ffn(x).
 * ffn(x) = fc2(GELU(fc1(dwconv7(x)))) with BN folded into dwconv7 and the
 * layer scale folded into fc2 (and ls1 into proj; a BatchNorm norm into qkv).
 */
#include "model/mci.h"
#include "kernels/kernels.h"
#include "kernels/lowp.h"
#include "model/reparam.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#else
#pragma GCC diagnostic ignored "-Wunknown-pragmas"
#endif

#define MCI_DOWN_STRIDE 2
#define MCI_DEFAULT_HEAD_DIM 32
#define MCI_LN_EPS 1e-5f

typedef struct mci_conv {
    mc_conv2d_desc d;
    float *w;   /* [cout, cin/groups, kh, kw] */
    float *b;   /* [cout] */
    mc_qmat q;  /* reduced or pre-packed copy of a dense conv's w (w is then NULL) */
} mci_conv;

typedef struct mci_se {
    int c, rd;
    const char *n1, *n2;  /* tensor leaves: "fc1"/"fc2" or "reduce"/"expand" */
    float *w1, *b1;   /* [rd, c], [rd] */
    float *w2, *b2;   /* [c, rd], [c] */
} mci_se;

typedef struct mci_ffn {
    mci_conv dw;    /* depthwise 7x7, BN folded */
    mci_conv fc1;   /* 1x1 c -> hidden, GELU */
    mci_conv fc2;   /* 1x1 hidden -> c, layer scale folded */
} mci_ffn;

typedef enum mci_kind { MCI_UNIT_DOWN, MCI_UNIT_CPE, MCI_UNIT_REPMIXER, MCI_UNIT_ATTN } mci_kind;

typedef struct mci_unit {
    mci_kind kind;
    int cin, c;               /* channels in / out */
    char tag[32];             /* module path that ends with this unit, or "" */
    char path[200];           /* module path below the prefix (for export) */
    mci_conv conv;            /* DOWN: large kernel; CPE: positional conv; REPMIXER: mixer */
    mci_conv pw;              /* DOWN: MobileOne 1x1 */
    int has_se;
    mci_se se;                /* DOWN */
    int heads, head_dim;      /* ATTN */
    float *ln_g, *ln_b;       /* ATTN LayerNorm2d [c]; NULL when the BatchNorm is folded into qkv */
    float *qkv_w, *qkv_b;     /* [3c, c], [3c] */
    float *proj_w, *proj_b;   /* [c, c], [c] */
    mc_qmat qkv_q, proj_q;    /* reduced copies (the _w are then NULL) */
    mci_ffn ffn;              /* REPMIXER, ATTN */
} mci_unit;

typedef struct mci_net {
    mc_layout layout;
    char arch[48];
    char pfx[64];             /* tensor-name prefix */
    char stem_tag[16], final_tag[16];
    mci_conv stem[3];
    mci_unit *units;
    int n_units;
    mci_conv final;
    int has_final_se;
    mci_se final_se;
    int feat;                 /* channels after the final conv */
    float *head_w, *head_b;   /* [out_dim, feat], [out_dim] (bias may be NULL); NULL = identity */
    int has_head;             /* head_w was bound (it is NULL once reduced into head_q) */
    mc_qmat head_q;
    int out_dim;
    size_t max_map;           /* largest per-image activation, floats */
    size_t max_scores;        /* largest attention score matrix, floats */
    size_t max_se;            /* SE scratch, floats */
} mci_net;

static void mci_lower(mc_image_tower *t, mc_lower *L);

/* ---------------------------------------------------------------- loading */

typedef struct mci_loader {
    mc_binder *b;
    mc_arena *keep;       /* the tower's arena (folded weights) */
    mc_arena scratch;     /* unfolded tensors, freed after load */
    const char *pfx;
    mc_layout layout;
    int folded;               /* reading a 'convert' file (layout "folded") */
    char names[8][640];
    int k;
} mci_loader;

static int failed(const mci_loader *L) { return L->b->status != MC_OK; }

static int lfail(mci_loader *L, mc_status st, const char *fmt, ...) MC_PRINTF(3, 4);
static int lfail(mci_loader *L, mc_status st, const char *fmt, ...) {
    if (L->b->status != MC_OK) return 0;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    L->b->status = mc_fail(L->b->err, st, "%s: %s", L->b->path, msg);
    return 0;
}

/* Full tensor name: prefix + formatted rest (rotating buffers). */
static const char *nm(mci_loader *L, const char *fmt, ...) MC_PRINTF(2, 3);
static const char *nm(mci_loader *L, const char *fmt, ...) {
    char *buf = L->names[L->k++ & 7];
    size_t lp = strlen(L->pfx);
    if (lp >= sizeof L->names[0]) lp = sizeof L->names[0] - 1;
    memcpy(buf, L->pfx, lp);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + lp, sizeof L->names[0] - lp, fmt, ap);
    va_end(ap);
    return buf;
}

/* dst = base + formatted rest (truncated to cap). */
static void pjoin(char *dst, size_t cap, const char *base, const char *fmt, ...) MC_PRINTF(4, 5);
static void pjoin(char *dst, size_t cap, const char *base, const char *fmt, ...) {
    size_t lb = strlen(base);
    if (lb >= cap) lb = cap - 1;
    memcpy(dst, base, lb);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst + lb, cap - lb, fmt, ap);
    va_end(ap);
}

static const mc_tensor_info *peek(mci_loader *L, const char *full) {
    return mc_binder_peek(L->b, "%s", full);
}

static int has_prefix(mci_loader *L, const char *full) {
    return mc_binder_has_prefix(L->b, "%s", full);
}

static float *kalloc(mci_loader *L, size_t n) {
    if (failed(L)) return NULL;
    float *p = mc_arena_floats(L->keep, n ? n : 1);
    if (!p) lfail(L, MC_ERR_NOMEM, "out of memory");
    return p;
}

/* Binds a tensor into the scratch arena (unfolded) or the tower's arena (kept). */
static float *bind_in(mci_loader *L, mc_arena *a, int ndim, const int64_t *shape, const char *full) {
    mc_arena *saved = L->b->arena;
    L->b->arena = a;
    float *p = mc_bind(L->b, ndim, shape, "%s", full);
    L->b->arena = saved;
    return p;
}
static float *braw(mci_loader *L, int ndim, const int64_t *shape, const char *full) {
    return bind_in(L, &L->scratch, ndim, shape, full);
}
static float *bkeep(mci_loader *L, int ndim, const int64_t *shape, const char *full) {
    return bind_in(L, L->keep, ndim, shape, full);
}
static float *braw1(mci_loader *L, int64_t d0, const char *full) {
    int64_t s[1] = {d0};
    return braw(L, 1, s, full);
}

/* LayerScale [c, 1, 1] (v1: "<path>", timm: "<path>.gamma").  Every MCi
 * block has its layer scales; only a 'convert' file, which folded them into
 * the weights, may lack them (then NULL). */
static float *bind_layer_scale(mci_loader *L, const char *full, int c) {
    char name[1024];
    pjoin(name, sizeof name, full, "%s", L->layout == MC_LAYOUT_TIMM ? ".gamma" : "");
    if (L->folded && !peek(L, name)) return NULL;
    int64_t s[3] = {c, 1, 1};
    return braw(L, 3, s, name);
}

static int bind_bn(mci_loader *L, const char *full, int c, mc_bn_params *bn) {
    char n[1024];
    pjoin(n, sizeof n, full, ".weight");
    bn->weight = braw1(L, c, n);
    pjoin(n, sizeof n, full, ".bias");
    bn->bias = braw1(L, c, n);
    pjoin(n, sizeof n, full, ".running_mean");
    bn->mean = braw1(L, c, n);
    pjoin(n, sizeof n, full, ".running_var");
    bn->var = braw1(L, c, n);
    mc_binder_skip(L->b, "%s.num_batches_tracked", full);
    bn->eps = MC_BN_EPS;
    return !failed(L);
}

/* Reads [cout, cin_g, k, k] of a conv weight, checking it is a square 4-d kernel. */
static int conv_shape(mci_loader *L, const mc_tensor_info *t, int *cout, int *cin_g, int *k) {
    if (t->ndim != 4 || t->shape[2] != t->shape[3] || t->shape[0] <= 0 || t->shape[1] <= 0 ||
        t->shape[2] <= 0 || t->shape[2] % 2 == 0 || t->shape[0] > (1 << 20) || t->shape[1] > (1 << 20) ||
        t->shape[2] > 63)
        return lfail(L, MC_ERR_SHAPE, "tensor '%s' is not an odd square conv kernel", t->name);
    *cout = (int)t->shape[0];
    *cin_g = (int)t->shape[1];
    *k = (int)t->shape[2];
    return 1;
}

static int set_desc(mci_loader *L, mci_conv *cv, const char *what, int cin, int cout, int cin_g, int k,
                    int stride) {
    if (cin % cin_g || cout % (cin / cin_g))
        return lfail(L, MC_ERR_SHAPE, "'%s': kernel [%d, %d, %d, %d] does not fit %d input channels",
                     what, cout, cin_g, k, k, cin);
    mc_conv2d_desc d = {.cin = cin, .cout = cout, .kh = k, .kw = k, .sh = stride, .sw = stride,
                        .ph = k / 2, .pw = k / 2, .groups = cin / cin_g};
    cv->d = d;
    return 1;
}

/* An already folded conv: <path>.<leaf>.weight / .bias, kept as is. */
static int load_folded(mci_loader *L, mci_conv *cv, const char *wname, const char *bname, int cin,
                       int stride) {
    const mc_tensor_info *t = peek(L, wname);
    int cout, cin_g, k;
    if (!t || !conv_shape(L, t, &cout, &cin_g, &k)) return 0;
    if (!set_desc(L, cv, wname, cin, cout, cin_g, k, stride)) return 0;
    int64_t ws[4] = {cout, cin_g, k, k}, bs[1] = {cout};
    cv->w = bkeep(L, 4, ws, wname);
    cv->b = bkeep(L, 1, bs, bname);
    return !failed(L);
}

/* MobileOne block at full path P: conv+BN branches, a 1x1 scale branch and an
 * identity BN branch, folded into one conv (or its reparam_conv as is).
 * khint: kernel side when the block has only the identity branch (RepMixer's norm,
 * which is depthwise).  Weights go to arena a. */
static int load_mobileone(mci_loader *L, mc_arena *a, mci_conv *cv, const char *P, int cin,
                          int stride, int khint) {
    const int v1 = L->layout == MC_LAYOUT_V1;
    const char *kxk = v1 ? "rbr_conv" : "conv_kxk";
    const char *scale = v1 ? "rbr_scale" : "conv_scale";
    const char *skip = v1 ? "rbr_skip" : "identity";
    char n1[1024], n2[1024];
    pjoin(n1, sizeof n1, P, ".reparam_conv.weight");
    if (peek(L, n1)) {
        pjoin(n2, sizeof n2, P, ".reparam_conv.bias");
        if (a == L->keep) return load_folded(L, cv, n1, n2, cin, stride);
        const mc_tensor_info *t = peek(L, n1);
        int cout, cin_g, k;
        if (!conv_shape(L, t, &cout, &cin_g, &k) || !set_desc(L, cv, n1, cin, cout, cin_g, k, stride))
            return 0;
        int64_t ws[4] = {cout, cin_g, k, k}, bs[1] = {cout};
        cv->w = bind_in(L, a, 4, ws, n1);
        cv->b = bind_in(L, a, 1, bs, n2);
        return !failed(L);
    }
    int nb = 0;
    for (;; nb++) {
        pjoin(n1, sizeof n1, P, ".%s.%d.conv.weight", kxk, nb);
        if (!peek(L, n1)) break;
    }
    pjoin(n2, sizeof n2, P, ".%s.weight", skip);
    int has_id = peek(L, n2) != NULL;
    int cout, cin_g, k;
    if (nb > 0) {
        pjoin(n1, sizeof n1, P, ".%s.0.conv.weight", kxk);
        if (!conv_shape(L, peek(L, n1), &cout, &cin_g, &k)) return 0;
    } else if (has_id) {
        cout = cin, cin_g = 1, k = khint;
    } else {
        return lfail(L, MC_ERR_MISSING_TENSOR, "missing tensor '%s.reparam_conv.weight' (or '%s.%s.0.conv.weight')",
                     P, P, kxk);
    }
    if (!set_desc(L, cv, P, cin, cout, cin_g, k, stride)) return 0;
    size_t nw = (size_t)cout * cin_g * k * k;
    cv->w = mc_arena_floats(a, nw);
    cv->b = mc_arena_floats(a, (size_t)cout);
    if (!cv->w || !cv->b) return lfail(L, MC_ERR_NOMEM, "out of memory");
    mc_bn_params bn;
    for (int i = 0; i < nb; i++) {
        int64_t ws[4] = {cout, cin_g, k, k};
        pjoin(n1, sizeof n1, P, ".%s.%d.conv.weight", kxk, i);
        const float *w = braw(L, 4, ws, n1);
        pjoin(n1, sizeof n1, P, ".%s.%d.bn", kxk, i);
        if (!w || !bind_bn(L, n1, cout, &bn)) return 0;
        mc_reparam_add_conv_bn(cv->w, cv->b, cout, cin_g, k, w, k, &bn);
    }
    pjoin(n1, sizeof n1, P, ".%s.conv.weight", scale);
    if (peek(L, n1)) {
        int64_t ws[4] = {cout, cin_g, 1, 1};
        const float *w = braw(L, 4, ws, n1);
        pjoin(n1, sizeof n1, P, ".%s.bn", scale);
        if (!w || !bind_bn(L, n1, cout, &bn)) return 0;
        mc_reparam_add_conv_bn(cv->w, cv->b, cout, cin_g, k, w, 1, &bn);
    }
    if (has_id) {
        if (cout != cin || stride != 1)
            return lfail(L, MC_ERR_SHAPE, "'%s.%s': identity branch needs equal channels and stride 1", P, skip);
        pjoin(n1, sizeof n1, P, ".%s", skip);
        if (!bind_bn(L, n1, cout, &bn)) return 0;
        mc_reparam_add_identity_bn(cv->w, cv->b, cout, cin_g, k, &bn);
    }
    return !failed(L);
}

/* Squeeze-excite at full path P ("<block>.se"): fc1/fc2 (timm) or reduce/expand (v1 MobileOne). */
static int load_se(mci_loader *L, mci_se *se, const char *P, int c) {
    const char *a = "fc1", *bn = "fc2";
    char n[1024];
    pjoin(n, sizeof n, P, ".fc1.weight");
    const mc_tensor_info *t = peek(L, n);
    if (!t) {
        a = "reduce", bn = "expand";
        pjoin(n, sizeof n, P, ".reduce.weight");
        if (!(t = peek(L, n))) return 0;
    }
    if (t->ndim != 4 || t->shape[0] <= 0 || t->shape[0] > (1 << 20))
        return lfail(L, MC_ERR_SHAPE, "tensor '%s' is not a 1x1 conv", n);
    se->c = c;
    se->rd = (int)t->shape[0];
    se->n1 = a;
    se->n2 = bn;
    int64_t s1[4] = {se->rd, c, 1, 1}, s2[4] = {c, se->rd, 1, 1}, b1[1] = {se->rd}, b2[1] = {c};
    pjoin(n, sizeof n, P, ".%s.weight", a);
    se->w1 = bkeep(L, 4, s1, n);
    pjoin(n, sizeof n, P, ".%s.bias", a);
    se->b1 = bkeep(L, 1, b1, n);
    pjoin(n, sizeof n, P, ".%s.weight", bn);
    se->w2 = bkeep(L, 4, s2, n);
    pjoin(n, sizeof n, P, ".%s.bias", bn);
    se->b2 = bkeep(L, 1, b2, n);
    return !failed(L);
}

/* ReparamLargeKernelConv at full path P: large conv+BN plus small conv+BN, stride 2. */
static int load_large_kernel(mci_loader *L, mci_conv *cv, const char *P, int cin) {
    const int v1 = L->layout == MC_LAYOUT_V1;
    char n1[1024], n2[1024];
    pjoin(n1, sizeof n1, P, ".%s.weight", v1 ? "lkb_reparam" : "reparam_conv");
    if (peek(L, n1)) {
        pjoin(n2, sizeof n2, P, ".%s.bias", v1 ? "lkb_reparam" : "reparam_conv");
        return load_folded(L, cv, n1, n2, cin, MCI_DOWN_STRIDE);
    }
    const char *large = v1 ? "lkb_origin" : "large_conv";
    pjoin(n1, sizeof n1, P, ".%s.conv.weight", large);
    const mc_tensor_info *t = peek(L, n1);
    if (!t) return lfail(L, MC_ERR_MISSING_TENSOR, "missing tensor '%s'", n1);
    int cout, cin_g, k;
    if (!conv_shape(L, t, &cout, &cin_g, &k) || !set_desc(L, cv, n1, cin, cout, cin_g, k, MCI_DOWN_STRIDE))
        return 0;
    cv->w = kalloc(L, (size_t)cout * cin_g * k * k);
    cv->b = kalloc(L, (size_t)cout);
    if (failed(L)) return 0;
    mc_bn_params bn;
    int64_t ws[4] = {cout, cin_g, k, k};
    const float *w = braw(L, 4, ws, n1);
    pjoin(n1, sizeof n1, P, ".%s.bn", large);
    if (!w || !bind_bn(L, n1, cout, &bn)) return 0;
    mc_reparam_add_conv_bn(cv->w, cv->b, cout, cin_g, k, w, k, &bn);
    pjoin(n1, sizeof n1, P, ".small_conv.conv.weight");
    if ((t = peek(L, n1))) {
        int sk;
        if (t->ndim != 4 || t->shape[2] != t->shape[3] || t->shape[2] > k || (k - t->shape[2]) % 2)
            return lfail(L, MC_ERR_SHAPE, "tensor '%s' does not fit the %dx%d kernel", n1, k, k);
        sk = (int)t->shape[2];
        int64_t ss[4] = {cout, cin_g, sk, sk};
        w = braw(L, 4, ss, n1);
        pjoin(n1, sizeof n1, P, ".small_conv.bn");
        if (!w || !bind_bn(L, n1, cout, &bn)) return 0;
        mc_reparam_add_conv_bn(cv->w, cv->b, cout, cin_g, k, w, sk, &bn);
    }
    return !failed(L);
}

/* ConvFFN at full path P (v1 "<block>.convffn", timm "<block>.mlp"); ls [c] or NULL. */
static int load_ffn(mci_loader *L, mci_ffn *f, const char *P, int c, const float *ls) {
    char n[1024], n2[1024];
    const mc_tensor_info *t;
    pjoin(n, sizeof n, P, ".conv.reparam_conv.weight");
    if (peek(L, n)) {   /* conv + BN already folded (a 'convert' file) */
        pjoin(n2, sizeof n2, P, ".conv.reparam_conv.bias");
        if (!load_folded(L, &f->dw, n, n2, c, 1)) return 0;
        if (f->dw.d.cout != c)
            return lfail(L, MC_ERR_SHAPE, "tensor '%s' has %d output channels, expected %d", n, f->dw.d.cout, c);
    } else {
        pjoin(n, sizeof n, P, ".conv.conv.weight");
        t = peek(L, n);
        if (!t) return lfail(L, MC_ERR_MISSING_TENSOR, "missing tensor '%s'", n);
        int cout, cin_g, k;
        if (!conv_shape(L, t, &cout, &cin_g, &k) || !set_desc(L, &f->dw, n, c, cout, cin_g, k, 1)) return 0;
        if (cout != c) return lfail(L, MC_ERR_SHAPE, "tensor '%s' has %d output channels, expected %d", n, cout, c);
        f->dw.w = kalloc(L, (size_t)cout * cin_g * k * k);
        f->dw.b = kalloc(L, (size_t)cout);
        int64_t ws[4] = {cout, cin_g, k, k};
        const float *w = braw(L, 4, ws, n);
        mc_bn_params bn;
        pjoin(n, sizeof n, P, ".conv.bn");
        if (!w || !f->dw.w || !f->dw.b || !bind_bn(L, n, cout, &bn)) return 0;
        mc_reparam_add_conv_bn(f->dw.w, f->dw.b, cout, cin_g, k, w, k, &bn);
    }

    pjoin(n, sizeof n, P, ".fc1.weight");
    if (!(t = peek(L, n))) return lfail(L, MC_ERR_MISSING_TENSOR, "missing tensor '%s'", n);
    if (t->ndim != 4 || t->shape[0] <= 0 || t->shape[0] > (1 << 22))
        return lfail(L, MC_ERR_SHAPE, "tensor '%s' is not a 1x1 conv", n);
    int hid = (int)t->shape[0];
    int64_t s1[4] = {hid, c, 1, 1}, s2[4] = {c, hid, 1, 1}, b1[1] = {hid}, b2[1] = {c};
    f->fc1.w = bkeep(L, 4, s1, n);
    pjoin(n, sizeof n, P, ".fc1.bias");
    f->fc1.b = bkeep(L, 1, b1, n);
    pjoin(n, sizeof n, P, ".fc2.weight");
    f->fc2.w = bkeep(L, 4, s2, n);
    pjoin(n, sizeof n, P, ".fc2.bias");
    f->fc2.b = bkeep(L, 1, b2, n);
    if (failed(L)) return 0;
    set_desc(L, &f->fc1, "fc1", c, hid, c, 1, 1);
    set_desc(L, &f->fc2, "fc2", hid, c, hid, 1, 1);
    if (ls) mc_reparam_scale_out(f->fc2.w, f->fc2.b, c, (size_t)hid, ls);
    return !failed(L);
}

static int load_repmixer_block(mci_loader *L, mci_unit *u, const char *P, int c) {
    char n[1024], n2[640];
    u->kind = MCI_UNIT_REPMIXER;
    u->cin = u->c = c;
    pjoin(n, sizeof n, P, ".token_mixer.reparam_conv.weight");
    if (peek(L, n)) {
        pjoin(n2, sizeof n2, P, ".token_mixer.reparam_conv.bias");
        if (!load_folded(L, &u->conv, n, n2, c, 1)) return 0;
    } else {
        mci_conv mix, norm;
        pjoin(n, sizeof n, P, ".token_mixer.mixer");
        if (!load_mobileone(L, &L->scratch, &mix, n, c, 1, 3)) return 0;
        pjoin(n, sizeof n, P, ".token_mixer.norm");
        if (!load_mobileone(L, &L->scratch, &norm, n, c, 1, mix.d.kh)) return 0;
        if (mix.d.cout != c || mix.d.groups != c || norm.d.cout != c || norm.d.groups != c ||
            norm.d.kh != mix.d.kh)
            return lfail(L, MC_ERR_SHAPE, "'%s.token_mixer': mixer and norm must be depthwise %d-channel convs of one size",
                         P, c);
        pjoin(n, sizeof n, P, ".token_mixer.layer_scale");
        const float *ls = bind_layer_scale(L, n, c);
        u->conv.d = mix.d;
        u->conv.w = kalloc(L, (size_t)c * mix.d.kh * mix.d.kw);
        u->conv.b = kalloc(L, (size_t)c);
        if (failed(L)) return 0;
        mc_reparam_repmixer(u->conv.w, u->conv.b, c, mix.d.kh, mix.w, mix.b, norm.w, norm.b, ls);
    }
    if (u->conv.d.cout != c || u->conv.d.groups != c)
        return lfail(L, MC_ERR_SHAPE, "'%s.token_mixer' must be a depthwise %d-channel conv", P, c);
    pjoin(n, sizeof n, P, ".layer_scale");
    const float *ls = bind_layer_scale(L, n, c);
    pjoin(n, sizeof n, P, ".%s", L->layout == MC_LAYOUT_V1 ? "convffn" : "mlp");
    return load_ffn(L, &u->ffn, n, c, ls);
}

static int load_attention_block(mci_loader *L, mci_unit *u, const char *P, int c, int head_dim) {
    char n[1024];
    u->kind = MCI_UNIT_ATTN;
    u->cin = u->c = c;
    if (c % head_dim)
        return lfail(L, MC_ERR_SHAPE, "'%s': width %d is not a multiple of the head size %d", P, c, head_dim);
    u->head_dim = head_dim;
    u->heads = c / head_dim;
    int64_t qs[2] = {3 * (int64_t)c, c}, ps[2] = {c, c}, qb[1] = {3 * (int64_t)c}, pb[1] = {c}, cs[1] = {c};
    pjoin(n, sizeof n, P, ".token_mixer.qkv.weight");
    u->qkv_w = bkeep(L, 2, qs, n);
    pjoin(n, sizeof n, P, ".token_mixer.qkv.bias");
    if (peek(L, n)) u->qkv_b = bkeep(L, 1, qb, n);
    else u->qkv_b = kalloc(L, 3 * (size_t)c);
    pjoin(n, sizeof n, P, ".token_mixer.proj.weight");
    u->proj_w = bkeep(L, 2, ps, n);
    pjoin(n, sizeof n, P, ".token_mixer.proj.bias");
    u->proj_b = bkeep(L, 1, pb, n);
    if (failed(L)) return 0;
    char nw[1024];
    pjoin(nw, sizeof nw, P, ".norm.weight");
    pjoin(n, sizeof n, P, ".norm.running_mean");
    if (peek(L, n)) {   /* BatchNorm2d: a per-channel affine, folded into qkv */
        mc_bn_params bn;
        pjoin(n, sizeof n, P, ".norm");
        if (!bind_bn(L, n, c, &bn)) return 0;
        float *sc = mc_arena_floats(&L->scratch, (size_t)c), *sh = mc_arena_floats(&L->scratch, (size_t)c);
        if (!sc || !sh) return lfail(L, MC_ERR_NOMEM, "out of memory");
        mc_reparam_bn_affine(&bn, c, sc, sh);
        mc_reparam_affine_into_linear(u->qkv_w, u->qkv_b, 3 * c, c, sc, sh);
    } else if (L->folded && !peek(L, nw)) {
        /* a 'convert' file: the BatchNorm is already in qkv */
    } else {            /* LayerNorm2d over channels */
        pjoin(n, sizeof n, P, ".norm.weight");
        u->ln_g = bkeep(L, 1, cs, n);
        pjoin(n, sizeof n, P, ".norm.bias");
        u->ln_b = bkeep(L, 1, cs, n);
        if (failed(L)) return 0;
    }
    pjoin(n, sizeof n, P, ".layer_scale_1");
    const float *ls1 = bind_layer_scale(L, n, c);
    if (ls1) mc_reparam_scale_out(u->proj_w, u->proj_b, c, (size_t)c, ls1);
    pjoin(n, sizeof n, P, ".layer_scale_2");
    const float *ls2 = bind_layer_scale(L, n, c);
    pjoin(n, sizeof n, P, ".%s", L->layout == MC_LAYOUT_V1 ? "convffn" : "mlp");
    return load_ffn(L, &u->ffn, n, c, ls2);
}

/* PatchEmbed at full path P ("...proj"): P.0 large kernel (+SE), P.1 MobileOne 1x1. */
static int load_downsample(mci_loader *L, mci_unit *u, const char *P, int cin) {
    char n[1024];
    u->kind = MCI_UNIT_DOWN;
    u->cin = cin;
    pjoin(n, sizeof n, P, ".0");
    if (!load_large_kernel(L, &u->conv, n, cin)) return 0;
    int c = u->conv.d.cout;
    pjoin(n, sizeof n, P, ".0.se");
    u->has_se = load_se(L, &u->se, n, c);
    pjoin(n, sizeof n, P, ".1");
    if (!load_mobileone(L, L->keep, &u->pw, n, c, 1, 1)) return 0;
    u->c = u->pw.d.cout;
    return !failed(L);
}

/* RepCPE: fused at "<P>.reparam_conv", else conv "<pe>" plus identity. */
static int load_cpe(mci_loader *L, mci_unit *u, const char *P, const char *pe, int c) {
    char n1[1024], n2[1024];
    u->kind = MCI_UNIT_CPE;
    u->cin = u->c = c;
    pjoin(n1, sizeof n1, P, ".reparam_conv.weight");
    pjoin(n2, sizeof n2, P, ".reparam_conv.bias");
    if (peek(L, n1)) {
        if (!load_folded(L, &u->conv, n1, n2, c, 1)) return 0;
    } else {
        snprintf(n1, sizeof n1, "%s.weight", pe);
        snprintf(n2, sizeof n2, "%s.bias", pe);
        if (!load_folded(L, &u->conv, n1, n2, c, 1)) {
            if (!failed(L)) lfail(L, MC_ERR_MISSING_TENSOR, "missing tensor '%s'", n1);
            return 0;
        }
        mc_reparam_add_identity(u->conv.w, c, c / u->conv.d.groups, u->conv.d.kh, 1.0f);
    }
    if (u->conv.d.cout != c)
        return lfail(L, MC_ERR_SHAPE, "'%s': positional encoding must keep %d channels", P, c);
    return 1;
}

/* One entry of the network plan: what to load from where. */
typedef struct mci_plan {
    mci_kind kind;   /* REPMIXER/ATTN resolved at load */
    char path[200];  /* below the prefix */
    char pe[200];    /* CPE: unfolded conv path */
    char tag[32];
} mci_plan;

typedef struct mci_plans {
    mci_plan *v;
    int n, cap;
} mci_plans;

static mci_plan *plan_add(mci_loader *L, mci_plans *ps, mci_kind kind) {
    if (ps->n == ps->cap) {
        int cap = ps->cap ? ps->cap * 2 : 32;
        mci_plan *v = realloc(ps->v, (size_t)cap * sizeof *v);
        if (!v) { lfail(L, MC_ERR_NOMEM, "out of memory"); return NULL; }
        ps->v = v, ps->cap = cap;
    }
    mci_plan *p = &ps->v[ps->n++];
    memset(p, 0, sizeof *p);
    p->kind = kind;
    return p;
}

static void plan_blocks(mci_loader *L, mci_plans *ps, const char *base) {
    for (int j = 0;; j++) {
        if (!has_prefix(L, nm(L, "%s.%d.", base, j))) break;
        int attn = peek(L, nm(L, "%s.%d.token_mixer.qkv.weight", base, j)) != NULL;
        mci_plan *p = plan_add(L, ps, attn ? MCI_UNIT_ATTN : MCI_UNIT_REPMIXER);
        if (!p) return;
        snprintf(p->path, sizeof p->path, "%s.%d", base, j);
    }
}

/* Walks the tensor names to list the network's units in order; returns the stage count. */
static int plan_network(mci_loader *L, mci_plans *ps) {
    int stages = 0;
    if (L->layout == MC_LAYOUT_TIMM) {
        for (int s = 0;; s++) {
            if (!has_prefix(L, nm(L, "stages.%d.", s))) break;
            stages++;
            mci_plan *p;
            if (has_prefix(L, nm(L, "stages.%d.downsample.", s))) {
                if (!(p = plan_add(L, ps, MCI_UNIT_DOWN))) return 0;
                snprintf(p->path, sizeof p->path, "stages.%d.downsample.proj", s);
            }
            if (has_prefix(L, nm(L, "stages.%d.pos_emb.", s))) {
                if (!(p = plan_add(L, ps, MCI_UNIT_CPE))) return 0;
                snprintf(p->path, sizeof p->path, "stages.%d.pos_emb", s);
                snprintf(p->pe, sizeof p->pe, "stages.%d.pos_emb.pos_enc", s);
            }
            char base[64];
            snprintf(base, sizeof base, "stages.%d.blocks", s);
            plan_blocks(L, ps, base);
            if (failed(L)) return 0;
            if (ps->n) snprintf(ps->v[ps->n - 1].tag, sizeof ps->v[0].tag, "stages.%d", s);
        }
    } else {
        int prev_blocks = 0;
        for (int k = 0;; k++) {
            if (!has_prefix(L, nm(L, "network.%d.", k))) break;
            mci_plan *p;
            if (has_prefix(L, nm(L, "network.%d.proj.", k))) {
                if (!(p = plan_add(L, ps, MCI_UNIT_DOWN))) return 0;
                snprintf(p->path, sizeof p->path, "network.%d.proj", k);
                prev_blocks = 0;
            } else if (has_prefix(L, nm(L, "network.%d.pe.", k)) ||
                       has_prefix(L, nm(L, "network.%d.reparam_conv.", k))) {
                if (!(p = plan_add(L, ps, MCI_UNIT_CPE))) return 0;
                snprintf(p->path, sizeof p->path, "network.%d", k);
                snprintf(p->pe, sizeof p->pe, "network.%d.pe", k);
            } else {
                char base[64];
                snprintf(base, sizeof base, "network.%d", k);
                int before = ps->n;
                plan_blocks(L, ps, base);
                if (failed(L)) return 0;
                if (ps->n == before)
                    return lfail(L, MC_ERR_UNEXPECTED_TENSOR, "'%snetwork.%d' is neither a block list, a patch embedding nor a positional encoding",
                                 L->pfx, k);
                if (!prev_blocks) stages++;
                prev_blocks = 1;
            }
            if (ps->n) snprintf(ps->v[ps->n - 1].tag, sizeof ps->v[0].tag, "network.%d", k);
        }
    }
    return stages;
}

static size_t zmax(size_t a, size_t b) { return a > b ? a : b; }

/* Stage count an arch name implies (0 = no expectation). */
static int arch_stages(const char *arch) {
    const char *m = strstr(arch, "mci");
    if (!m || !m[3] || m[4]) return 0;
    if (m[3] >= '0' && m[3] <= '2') return 4;
    if (m[3] == '3' || m[3] == '4') return 5;
    return 0;
}

int mc_mci_is_arch(const char *arch) {
    return arch && (!strncmp(arch, "mci", 3) || !strncmp(arch, "fastvit_mci", 11));
}

static mc_status mci_forward(const mc_image_tower *t, float *ws, const float *pixels, int n, float *out,
                             mc_error *err) {
    return mc_mci_forward_trace(t, ws, pixels, n, out, NULL, NULL, err);
}

static size_t mci_workspace(const mc_image_tower *t, int n) {
    const mci_net *net = t->impl;
    size_t nn = n > 0 ? (size_t)n : 1;
    return 3 * nn * net->max_map + net->max_scores + net->max_se + nn * (size_t)net->feat + 64;
}

/* ---------------------------------------------------------------- export */

/* A folded conv as "<pfx><path>.<leaf>.weight" / ".bias". */
static void export_conv(mc_export *ex, const mci_net *net, const mci_conv *cv, const char *path,
                        const char *leaf) {
    int64_t ws[4] = {cv->d.cout, cv->d.cin / cv->d.groups, cv->d.kh, cv->d.kw}, bs[1] = {cv->d.cout};
    mc_export_add_w(ex, cv->w, &cv->q, 4, ws, "%s%s.%s.weight", net->pfx, path, leaf);
    mc_export_add(ex, cv->b, 1, bs, "%s%s.%s.bias", net->pfx, path, leaf);
}

static void export_se(mc_export *ex, const mci_net *net, const mci_se *se, const char *path) {
    int64_t s1[4] = {se->rd, se->c, 1, 1}, s2[4] = {se->c, se->rd, 1, 1}, b1[1] = {se->rd}, b2[1] = {se->c};
    mc_export_add(ex, se->w1, 4, s1, "%s%s.se.%s.weight", net->pfx, path, se->n1);
    mc_export_add(ex, se->b1, 1, b1, "%s%s.se.%s.bias", net->pfx, path, se->n1);
    mc_export_add(ex, se->w2, 4, s2, "%s%s.se.%s.weight", net->pfx, path, se->n2);
    mc_export_add(ex, se->b2, 1, b2, "%s%s.se.%s.bias", net->pfx, path, se->n2);
}

static void export_ffn(mc_export *ex, const mci_net *net, const mci_ffn *f, const char *block) {
    char P[256];
    snprintf(P, sizeof P, "%s.%s", block, net->layout == MC_LAYOUT_V1 ? "convffn" : "mlp");
    export_conv(ex, net, &f->dw, P, "conv.reparam_conv");
    int64_t s1[4] = {f->fc1.d.cout, f->fc1.d.cin, 1, 1}, s2[4] = {f->fc2.d.cout, f->fc2.d.cin, 1, 1};
    int64_t b1[1] = {f->fc1.d.cout}, b2[1] = {f->fc2.d.cout};
    mc_export_add_w(ex, f->fc1.w, &f->fc1.q, 4, s1, "%s%s.fc1.weight", net->pfx, P);
    mc_export_add(ex, f->fc1.b, 1, b1, "%s%s.fc1.bias", net->pfx, P);
    mc_export_add_w(ex, f->fc2.w, &f->fc2.q, 4, s2, "%s%s.fc2.weight", net->pfx, P);
    mc_export_add(ex, f->fc2.b, 1, b2, "%s%s.fc2.bias", net->pfx, P);
}

/* The folded network under the names the loader accepts as already folded:
 * MobileOne blocks, RepCPE and RepMixer token mixers as "reparam_conv", large
 * kernels as "lkb_reparam" (v1) / "reparam_conv" (timm), the ConvFFN conv+BN as
 * "conv.reparam_conv"; layer scales are inside fc2 / proj (so absent), and an
 * attention BatchNorm is inside qkv (so no norm tensors). */
static mc_status mci_export(const mc_image_tower *t, mc_export *ex) {
    const mci_net *net = t->impl;
    const int v1 = net->layout == MC_LAYOUT_V1;
    char P[256];
    for (int i = 0; i < 3; i++) {
        snprintf(P, sizeof P, "%s.%d", net->stem_tag, i);
        export_conv(ex, net, &net->stem[i], P, "reparam_conv");
    }
    for (int k = 0; k < net->n_units; k++) {
        const mci_unit *u = &net->units[k];
        int c = u->c;
        switch (u->kind) {
        case MCI_UNIT_DOWN:
            snprintf(P, sizeof P, "%s.0", u->path);
            export_conv(ex, net, &u->conv, P, v1 ? "lkb_reparam" : "reparam_conv");
            if (u->has_se) export_se(ex, net, &u->se, P);
            snprintf(P, sizeof P, "%s.1", u->path);
            export_conv(ex, net, &u->pw, P, "reparam_conv");
            break;
        case MCI_UNIT_CPE:
            export_conv(ex, net, &u->conv, u->path, "reparam_conv");
            break;
        case MCI_UNIT_REPMIXER:
            export_conv(ex, net, &u->conv, u->path, "token_mixer.reparam_conv");
            export_ffn(ex, net, &u->ffn, u->path);
            break;
        case MCI_UNIT_ATTN: {
            int64_t qs[2] = {3 * (int64_t)c, c}, ps[2] = {c, c}, qb[1] = {3 * (int64_t)c}, cs[1] = {c};
            if (u->ln_g) {
                mc_export_add(ex, u->ln_g, 1, cs, "%s%s.norm.weight", net->pfx, u->path);
                mc_export_add(ex, u->ln_b, 1, cs, "%s%s.norm.bias", net->pfx, u->path);
            }
            mc_export_add_w(ex, u->qkv_w, &u->qkv_q, 2, qs, "%s%s.token_mixer.qkv.weight", net->pfx, u->path);
            mc_export_add(ex, u->qkv_b, 1, qb, "%s%s.token_mixer.qkv.bias", net->pfx, u->path);
            mc_export_add_w(ex, u->proj_w, &u->proj_q, 2, ps, "%s%s.token_mixer.proj.weight", net->pfx, u->path);
            mc_export_add(ex, u->proj_b, 1, cs, "%s%s.token_mixer.proj.bias", net->pfx, u->path);
            export_ffn(ex, net, &u->ffn, u->path);
            break;
        }
        }
    }
    export_conv(ex, net, &net->final, net->final_tag, "reparam_conv");
    if (net->has_final_se) export_se(ex, net, &net->final_se, net->final_tag);
    if (net->has_head && v1) {   /* head.proj [feat, D]: x @ proj */
        const float *hw = mc_export_mat(ex, net->head_w, &net->head_q);
        float *pj = mc_export_add_new(ex, 2, (int64_t[]){net->feat, net->out_dim}, "%shead.proj", net->pfx);
        if (pj && hw)
            for (int i = 0; i < net->feat; i++)
                for (int j = 0; j < net->out_dim; j++)
                    pj[(size_t)i * net->out_dim + j] = hw[(size_t)j * net->feat + i];
    } else if (net->has_head) {
        mc_export_add_w(ex, net->head_w, &net->head_q, 2, (int64_t[]){net->out_dim, net->feat}, "%shead.fc.weight", net->pfx);
        if (net->head_b) mc_export_add(ex, net->head_b, 1, (int64_t[]){net->out_dim}, "%shead.fc.bias", net->pfx);
    }
    return MC_OK;
}

mc_status mc_mci_tower_load(mc_binder *b, const mc_mci_params *p, mc_image_tower **out) {
    *out = NULL;
    if (b->status != MC_OK) return b->status;
    if (!p || !p->prefix || (p->layout != MC_LAYOUT_V1 && p->layout != MC_LAYOUT_TIMM) ||
        p->image_size <= 0 || p->image_size > 8192 || p->head_dim < 0)
        return b->status = mc_fail(b->err, MC_ERR_INVALID_ARG, "MCi tower: invalid parameters");
    mci_loader L;
    memset(&L, 0, sizeof L);
    L.b = b;
    L.keep = b->arena;
    L.pfx = p->prefix;
    L.layout = p->layout;
    L.folded = p->folded;
    int64_t params0 = b->n_params;
    const int v1 = p->layout == MC_LAYOUT_V1;
    int head_dim = p->head_dim ? p->head_dim : MCI_DEFAULT_HEAD_DIM;

    mci_net *net = mc_arena_alloc(L.keep, sizeof *net);
    if (!net) return b->status = mc_fail(b->err, MC_ERR_NOMEM, "out of memory");
    net->layout = p->layout;
    snprintf(net->pfx, sizeof net->pfx, "%s", p->prefix);
    snprintf(net->arch, sizeof net->arch, "%s", p->arch ? p->arch : (v1 ? "mci" : "fastvit_mci"));
    snprintf(net->stem_tag, sizeof net->stem_tag, "%s", v1 ? "patch_embed" : "stem");
    snprintf(net->final_tag, sizeof net->final_tag, "%s", v1 ? "conv_exp" : "final_conv");

    /* stem */
    int c = 3, h = p->image_size, w = p->image_size;
    size_t max_map = 0, max_scores = 0, max_se = 0;
    static const int stem_stride[3] = {2, 2, 1};
    for (int i = 0; i < 3 && !failed(&L); i++) {
        if (!load_mobileone(&L, L.keep, &net->stem[i], nm(&L, "%s.%d", net->stem_tag, i), c, stem_stride[i], 3))
            break;
        c = net->stem[i].d.cout;
        h = mc_conv_out(h, net->stem[i].d.kh, stem_stride[i], net->stem[i].d.ph);
        w = mc_conv_out(w, net->stem[i].d.kw, stem_stride[i], net->stem[i].d.pw);
        max_map = zmax(max_map, (size_t)c * h * w);
    }

    /* stages */
    mci_plans ps = {0};
    int stages = failed(&L) ? 0 : plan_network(&L, &ps);
    int want = p->arch ? arch_stages(p->arch) : 0;
    if (!failed(&L) && stages == 0)
        lfail(&L, MC_ERR_MISSING_TENSOR, "no MCi stages under '%s'", p->prefix);
    if (!failed(&L) && want && stages != want)
        lfail(&L, MC_ERR_SHAPE, "arch %s has %d stages, the checkpoint has %d under '%s'", net->arch, want,
              stages, p->prefix);
    if (!failed(&L)) {
        net->units = mc_arena_alloc(L.keep, (size_t)ps.n * sizeof *net->units);
        if (!net->units) lfail(&L, MC_ERR_NOMEM, "out of memory");
        net->n_units = ps.n;
    }
    for (int i = 0; i < ps.n && !failed(&L); i++) {
        mci_unit *u = &net->units[i];
        const mci_plan *pl = &ps.v[i];
        const char *path = nm(&L, "%s", pl->path);
        int ok = 0;
        switch (pl->kind) {
        case MCI_UNIT_DOWN: ok = load_downsample(&L, u, path, c); break;
        case MCI_UNIT_CPE: ok = load_cpe(&L, u, path, nm(&L, "%s", pl->pe), c); break;
        case MCI_UNIT_REPMIXER: ok = load_repmixer_block(&L, u, path, c); break;
        case MCI_UNIT_ATTN: ok = load_attention_block(&L, u, path, c, head_dim); break;
        }
        if (!ok) break;
        snprintf(u->tag, sizeof u->tag, "%s", pl->tag);
        snprintf(u->path, sizeof u->path, "%s", pl->path);
        if (u->kind == MCI_UNIT_DOWN) {
            h = mc_conv_out(h, u->conv.d.kh, u->conv.d.sh, u->conv.d.ph);
            w = mc_conv_out(w, u->conv.d.kw, u->conv.d.sw, u->conv.d.pw);
            if (h <= 0 || w <= 0) { lfail(&L, MC_ERR_INVALID_ARG, "image size %d is too small", p->image_size); break; }
            max_se = zmax(max_se, u->has_se ? (size_t)u->se.c + u->se.rd : 0);
        }
        c = u->c;
        size_t hw = (size_t)h * w;
        max_map = zmax(max_map, (size_t)zmax((size_t)u->cin, (size_t)c) * hw);
        if (u->kind == MCI_UNIT_DOWN)   /* large-kernel output at the reduced size */
            max_map = zmax(max_map, (size_t)u->conv.d.cout * hw);
        if (u->kind == MCI_UNIT_REPMIXER || u->kind == MCI_UNIT_ATTN)
            max_map = zmax(max_map, (size_t)u->ffn.fc1.d.cout * hw);
        if (u->kind == MCI_UNIT_ATTN) {
            max_map = zmax(max_map, 3 * (size_t)c * hw);
            max_scores = zmax(max_scores, hw * hw);
        }
    }
    free(ps.v);

    /* final conv, pooling, projection */
    if (!failed(&L) && load_mobileone(&L, L.keep, &net->final, nm(&L, "%s", net->final_tag), c, 1, 3)) {
        net->feat = net->final.d.cout;
        net->has_final_se = load_se(&L, &net->final_se, nm(&L, "%s.se", net->final_tag), net->feat);
        if (net->has_final_se) max_se = zmax(max_se, (size_t)net->final_se.c + net->final_se.rd);
        h = mc_conv_out(h, net->final.d.kh, 1, net->final.d.ph);
        w = mc_conv_out(w, net->final.d.kw, 1, net->final.d.pw);
        max_map = zmax(max_map, (size_t)net->feat * h * w);
    }
    if (!failed(&L)) {
        const mc_tensor_info *hd;
        /* the embedding width E comes from the config when it has one, so a
         * mis-shaped projection is named with the shape it should have */
        int E = p->embed_dim;
        if (v1 && (hd = peek(&L, nm(&L, "head.proj")))) {
            int d = E > 0 ? E : hd->ndim == 2 ? (int)hd->shape[1] : 0;
            if (d <= 0 || d > (1 << 20))
                lfail(&L, MC_ERR_SHAPE, "tensor '%s' must be [%d, D]", hd->name, net->feat);
            else {
                int64_t s[2] = {net->feat, d};
                const float *pj = braw(&L, 2, s, hd->name);
                net->head_w = kalloc(&L, (size_t)d * net->feat);
                if (pj && net->head_w)   /* [feat, d] -> [d, feat] */
                    for (int i = 0; i < net->feat; i++)
                        for (int j = 0; j < d; j++) net->head_w[(size_t)j * net->feat + i] = pj[(size_t)i * d + j];
                net->out_dim = d;
            }
        } else if (!v1 && (hd = peek(&L, nm(&L, "head.fc.weight")))) {
            int d = E > 0 ? E : hd->ndim == 2 ? (int)hd->shape[0] : 0;
            if (d <= 0 || d > (1 << 20))
                lfail(&L, MC_ERR_SHAPE, "tensor '%s' must be [D, %d]", hd->name, net->feat);
            else {
                int64_t s[2] = {d, net->feat}, sb[1] = {d};
                net->head_w = bkeep(&L, 2, s, hd->name);
                net->head_b = bkeep(&L, 1, sb, nm(&L, "head.fc.bias"));
                net->out_dim = d;
            }
        } else if (E > 0 && E != net->feat) {   /* the config's width needs a projection */
            int64_t s[2] = {v1 ? net->feat : E, v1 ? E : net->feat};
            braw(&L, 2, s, nm(&L, v1 ? "head.proj" : "head.fc.weight"));   /* raises the missing-tensor error */
        } else {
            net->out_dim = net->feat;   /* no projection in the trunk */
        }
    }
    mc_arena_free(&L.scratch);
    if (failed(&L)) return b->status;
    mc_image_tower *t = calloc(1, sizeof *t);
    if (!t) return b->status = mc_fail(b->err, MC_ERR_NOMEM, "out of memory");

    net->max_map = max_map;
    net->max_scores = max_scores;
    net->max_se = max_se;
    t->arch = net->arch;
    t->image_size = p->image_size;
    t->out_dim = net->out_dim;
    t->n_params = b->n_params - params0;
    t->impl = net;
    t->forward = mci_forward;
    t->workspace_floats = mci_workspace;
    t->export_weights = mci_export;
    t->lower = mci_lower;
    net->has_head = net->head_w != NULL;
    t->destroy = NULL;   /* impl and weights live in the arena; the caller frees t */
    *out = t;
    return MC_OK;
}

/* ---------------------------------------------------------------- lowering */

/* Dense and grouped convs (not depthwise: those are no GEMM) go reduced. */
static void conv_lower(mci_conv *cv, mc_lower *L) {
    if (!cv->w || cv->d.groups <= 0) return;
    int cpg = cv->d.cin / cv->d.groups;
    if (cpg > 1)   /* grouped: its GEMMs start at rows g cout/groups, not pre-packed */
        MC_LOWER_AS(L, cv->w, cv->d.cout, (int64_t)cpg * cv->d.kh * cv->d.kw, cv->q,
                    cv->d.groups == 1 ? MC_USE_CONV : MC_USE_TABLE);
}

static void mci_lower(mc_image_tower *t, mc_lower *L) {
    mci_net *net = t->impl;
    for (int i = 0; i < 3; i++) conv_lower(&net->stem[i], L);
    for (int i = 0; i < net->n_units; i++) {
        mci_unit *u = &net->units[i];
        conv_lower(&u->conv, L);
        conv_lower(&u->pw, L);
        conv_lower(&u->ffn.dw, L);
        conv_lower(&u->ffn.fc1, L);
        conv_lower(&u->ffn.fc2, L);
        MC_LOWER(L, u->qkv_w, 3 * (int64_t)u->c, u->c, u->qkv_q);
        MC_LOWER(L, u->proj_w, u->c, u->c, u->proj_q);
    }
    conv_lower(&net->final, L);
    MC_LOWER(L, net->head_w, net->out_dim, net->feat, net->head_q);
}

/* ---------------------------------------------------------------- forward */

static void conv_run(const mci_conv *cv, const float *x, int n, int h, int w, float *y, mc_act act) {
    mc_conv2d_q(&cv->d, cv->w, &cv->q, cv->b, x, n, h, w, y, act);
}

/* y[n, c, hw] *= sigmoid(fc2(relu(fc1(mean_hw(y))))) per image. scratch: c + rd floats. */
static void se_run(const mci_se *se, float *y, int n, size_t hw, float *scratch) {
    float *pool = scratch, *hid = scratch + se->c;
    for (int i = 0; i < n; i++) {
        float *yi = y + (size_t)i * se->c * hw;
        for (int ch = 0; ch < se->c; ch++) {
            const float *p = yi + (size_t)ch * hw;
            double s = 0;
            for (size_t j = 0; j < hw; j++) s += p[j];
            pool[ch] = (float)(s / (double)hw);
        }
        mc_linear(pool, se->w1, se->b1, 1, se->c, se->rd, hid, MC_ACT_RELU);
        mc_linear(hid, se->w2, se->b2, 1, se->rd, se->c, pool, MC_ACT_SIGMOID);
        for (int ch = 0; ch < se->c; ch++) {
            float g = pool[ch], *p = yi + (size_t)ch * hw;
            for (size_t j = 0; j < hw; j++) p[j] *= g;
        }
    }
}

static int conv_is_pointwise(const mc_conv2d_desc *d) {
    return d->kh == 1 && d->kw == 1 && d->sh == 1 && d->sw == 1 && d->ph == 0 && d->pw == 0 && d->groups == 1;
}

/* x[n, c, h, w] += ffn(x); t, hbuf: scratch maps.  The residual add is fused
 * into fc2's GEMM. */
static void ffn_run(const mci_ffn *f, float *x, int n, int h, int w, float *t, float *hbuf) {
    conv_run(&f->dw, x, n, h, w, t, MC_ACT_NONE);
    conv_run(&f->fc1, t, n, h, w, hbuf, MC_ACT_GELU);
    if (conv_is_pointwise(&f->fc2.d)) {
        mc_pointwise_add_q(f->fc2.w, &f->fc2.q, f->fc2.b, hbuf, n, f->fc2.d.cin, f->fc2.d.cout, h * w, x);
        return;
    }
    conv_run(&f->fc2, hbuf, n, h, w, t, MC_ACT_NONE);
    size_t len = (size_t)n * f->fc2.d.cout * h * w;
    for (size_t i = 0; i < len; i++) x[i] += t[i];
}

/* x[n, c, h, w] += proj(mhsa(norm(x))): the tokens of all n images are one
 * [n hw, c] matrix, so qkv and proj are one GEMM each; attention runs per
 * (image, head).  bb: 2 n c hw floats, cb: 3 n c hw floats. */
static void attn_run(const mci_unit *u, float *x, int n, int h, int w, float *bb, float *cb) {
    int c = u->c, hw = h * w, rows = n * hw;
    size_t map = (size_t)c * hw;
    float *tok = bb, *tmp = bb + (size_t)n * map, *qkv = cb;   /* [n hw, c], [n hw, c], [n hw, 3c] */
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * map;
        float *ti = tok + (size_t)i * map;
        for (int ch = 0; ch < c; ch++)
            for (int p = 0; p < hw; p++) ti[(size_t)p * c + ch] = xi[(size_t)ch * hw + p];
    }
    const float *qin = tok;
    if (u->ln_g) {
        mc_layernorm(tok, rows, c, u->ln_g, u->ln_b, MCI_LN_EPS, tmp);
        qin = tmp;
    }
    mc_linear_q(qin, u->qkv_w, &u->qkv_q, u->qkv_b, rows, c, 3 * c, qkv, MC_ACT_NONE);
    mc_attention_batch(qkv, qkv + c, qkv + 2 * c, 3 * c, n, hw, u->heads, u->head_dim, 0, tmp);
    mc_linear_q(tmp, u->proj_w, &u->proj_q, u->proj_b, rows, c, c, tok, MC_ACT_NONE);
    for (int i = 0; i < n; i++) {
        float *xi = x + (size_t)i * map;
        const float *ti = tok + (size_t)i * map;
        for (int ch = 0; ch < c; ch++)
            for (int p = 0; p < hw; p++) xi[(size_t)ch * hw + p] += ti[(size_t)p * c + ch];
    }
}

/* Activation buffers of one forward: x lives in a or b (units alternate),
 * c is scratch; each holds a batch's largest map. */
typedef struct mci_bufs {
    float *a, *b, *c;
} mci_bufs;

/* Stem: pixels [n, 3, S, S] -> bufs->a; sets *c, *h, *w. */
static float *run_stem(const mci_net *net, const mci_bufs *bf, const float *pixels, int n, int *c, int *h,
                       int *w) {
    const float *in = pixels;
    float *dst[3] = {bf->b, bf->c, bf->a};
    for (int i = 0; i < 3; i++) {
        const mci_conv *cv = &net->stem[i];
        int oh = mc_conv_out(*h, cv->d.kh, cv->d.sh, cv->d.ph), ow = mc_conv_out(*w, cv->d.kw, cv->d.sw, cv->d.pw);
        conv_run(cv, in, n, *h, *w, dst[i], MC_ACT_GELU);
        in = dst[i], *c = cv->d.cout, *h = oh, *w = ow;
    }
    return bf->a;
}

/* Units [k0, k1) on x (bufs->a or bufs->b); returns the buffer holding the output. */
static float *run_units(const mci_net *net, const mci_bufs *bf, int k0, int k1, float *x, int n, int *c,
                        int *h, int *w, float *sescr, mc_mci_trace_fn fn, void *ctx) {
    float *A = bf->a, *B = bf->b, *C = bf->c;
    for (int k = k0; k < k1; k++) {
        const mci_unit *u = &net->units[k];
        switch (u->kind) {
        case MCI_UNIT_DOWN: {
            int oh = mc_conv_out(*h, u->conv.d.kh, u->conv.d.sh, u->conv.d.ph);
            int ow = mc_conv_out(*w, u->conv.d.kw, u->conv.d.sw, u->conv.d.pw);
            float *y = x == A ? B : A;
            conv_run(&u->conv, x, n, *h, *w, y, u->has_se ? MC_ACT_NONE : MC_ACT_GELU);
            *h = oh, *w = ow;
            if (u->has_se) {
                se_run(&u->se, y, n, (size_t)*h * *w, sescr);
                mc_act_apply(y, (size_t)n * u->conv.d.cout * *h * *w, MC_ACT_GELU);
            }
            conv_run(&u->pw, y, n, *h, *w, x, MC_ACT_GELU);
            break;
        }
        case MCI_UNIT_CPE:
        case MCI_UNIT_REPMIXER: {
            float *y = x == A ? B : A;
            conv_run(&u->conv, x, n, *h, *w, y, MC_ACT_NONE);
            x = y;
            if (u->kind == MCI_UNIT_REPMIXER) ffn_run(&u->ffn, x, n, *h, *w, x == A ? B : A, C);
            break;
        }
        case MCI_UNIT_ATTN:
            attn_run(u, x, n, *h, *w, x == A ? B : A, C);
            ffn_run(&u->ffn, x, n, *h, *w, x == A ? B : A, C);
            break;
        }
        *c = u->c;
        if (fn && u->tag[0]) fn(ctx, u->tag, x, n, *c, *h, *w);
    }
    return x;
}

/* Per-image maps at or below this many floats run as a batch; larger (early)
 * stages run one image at a time so that each image's maps stay in cache. */
#define MCI_BATCH_MAP_FLOATS 32768

mc_status mc_mci_forward_trace(const mc_image_tower *t, float *ws, const float *pixels, int n,
                               float *out, mc_mci_trace_fn fn, void *ctx, mc_error *err) {
    const mci_net *net = t->impl;
    if (n <= 0) return MC_OK;
    if (!ws || !pixels || !out) return mc_fail(err, MC_ERR_INVALID_ARG, "MCi forward: NULL argument");
    size_t M = (size_t)n * net->max_map;
    float *A = ws, *B = A + M, *C = B + M, *scores = C + M, *sescr = scores + net->max_scores,
          *pooled = sescr + net->max_se;
    mci_bufs bf = {A, B, C};
    int c = 3, h = t->image_size, w = t->image_size, k0 = 0;
    float *x;

    if (fn || n == 1) {
        x = run_stem(net, &bf, pixels, n, &c, &h, &w);
        if (fn) fn(ctx, net->stem_tag, x, n, c, h, w);
    } else {
        /* early stages image by image, each output gathered into A.  With
         * several threads, whole images go to separate threads (kernels inside
         * run single-threaded: no fork/join per op); each worker's buffers of
         * one image's maps (3 maps + SE scratch) are carved from B and C, which
         * hold 2 n maps. */
        size_t mm = net->max_map, S = (size_t)t->image_size, per = 3 * mm + net->max_se + 16;
        int nw = mc_kernels_threads_avail();
        int fit = (int)(2 * (size_t)n * mm / per);
        if (nw > fit) nw = fit;
        if (nw > n) nw = n;
        if (nw < 1) nw = 1;
        int kk = 0, cc = 0, hh = 0, ww = 0;
#pragma omp parallel for num_threads(nw) schedule(dynamic, 1) if (nw > 1)
        for (int i = 0; i < n; i++) {
            int wid = 0;
#ifdef _OPENMP
            wid = omp_get_thread_num();
#endif
            float *base = B + (size_t)wid * per;
            mci_bufs one = {base, base + mm, base + 2 * mm};
            float *se1 = nw > 1 ? base + 3 * mm : sescr;
            int ci = 3, hi = t->image_size, wi = t->image_size, k = 0;
            float *xi = run_stem(net, &one, pixels + (size_t)i * 3 * S * S, 1, &ci, &hi, &wi);
            while (k < net->n_units && (size_t)ci * hi * wi > MCI_BATCH_MAP_FLOATS) {
                xi = run_units(net, &one, k, k + 1, xi, 1, &ci, &hi, &wi, se1, NULL, NULL);
                k++;
            }
            size_t map = (size_t)ci * hi * wi;
            memcpy(A + (size_t)i * map, xi, map * sizeof(float));
            if (i == 0) kk = k, cc = ci, hh = hi, ww = wi;   /* the same for every image */
        }
        c = cc, h = hh, w = ww, k0 = kk;
        x = A;
    }
    x = run_units(net, &bf, k0, net->n_units, x, n, &c, &h, &w, sescr, fn, ctx);

    /* final conv + SE + GELU, pool, projection */
    float *y = x == A ? B : A;
    conv_run(&net->final, x, n, h, w, y, MC_ACT_NONE);
    c = net->feat;
    size_t hw = (size_t)h * w;
    if (net->has_final_se) se_run(&net->final_se, y, n, hw, sescr);
    mc_act_apply(y, (size_t)n * c * hw, MC_ACT_GELU);
    if (fn) fn(ctx, net->final_tag, y, n, c, h, w);
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            const float *p = y + ((size_t)i * c + ch) * hw;
            double s = 0;
            for (size_t j = 0; j < hw; j++) s += p[j];
            pooled[(size_t)i * c + ch] = (float)(s / (double)hw);
        }
    if (net->has_head) mc_linear_q(pooled, net->head_w, &net->head_q, net->head_b, n, c, net->out_dim, out, MC_ACT_NONE);
    else memcpy(out, pooled, (size_t)n * c * sizeof *out);
    return MC_OK;
}
