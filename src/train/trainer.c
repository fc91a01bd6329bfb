/*
 * train/trainer.c - the train-mode (unfused) MobileCLIP model on a tape: every
 * forward op records what its backward needs; the backward pass replays the
 * tape in reverse.  Image tower MCi (MobileOne blocks with every branch,
 * RepMixer, ConvFFN, ReparamLargeKernelConv, SE, RepCPE, attention stages
 * with BatchNorm or LayerNorm2d, pooling and projection) or ViT (conv stem or
 * patch embedding, class token, positions, pre-norm blocks); text tower mct /
 * base (RepMixer blocks, pre-norm transformer layers, optional causal mask)
 * or the OpenCLIP text transformer.  Structure comes from the tensor names
 * of either checkpoint layout (mobileclip repo or OpenCLIP/timm, each read
 * under its own names: struct tnames); shapes from the tensors.
 * Also the trainer: parameters, one training step, AdamW, config.
 */
#include "kernels/threads.h"
#include "train/trainer.h"
#include "train/kernels.h"
#include "train/pool.h"
#include "model/tblock.h"

#include "core/json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An activation: data and (lazily allocated) gradient, each a buffer of the
 * trainer's pool (bd, bg); numel = n*c*h*w.  d is NULL once no backward
 * needs it (freed in the forward, or after the backward of its producer). */
typedef struct tt {
    float *d, *g;
    mc_pool_blk *bd, *bg;
    int n, c, h, w;
    unsigned char saved;      /* the backward of a consumer reads d */
    unsigned char nograd;     /* an input: no gradient wanted */
} tt;

enum {
    OP_CONV, OP_BN, OP_ADD, OP_CHSCALE, OP_ACT, OP_GAP, OP_GATE, OP_TRANSPOSE, OP_LINEAR,
    OP_MATMUL, OP_LAYERNORM, OP_ATTENTION, OP_EMBED, OP_ADDPOS, OP_GATHER, OP_L2NORM, OP_BN_EVAL,
    OP_PREPEND, OP_BLOCK
};

struct blockcall;

typedef struct top {
    int kind;
    tt *x, *x2, *y;
    mc_tparam *w, *b;
    mc_conv2d_desc cd;
    float *s1, *s2;
    mc_pool_blk *bs1;         /* s1's pool buffer (attention probabilities), or NULL */
    int i0, i1, i2, i3;
    float alpha;
    mc_act act;
    const int32_t *idx;
    const struct blockcall *call;   /* OP_BLOCK: the block to recompute */
    int qkv;                  /* OP_LINEAR whose output is an attention's packed q|k|v */
} top;

/* Small things of the tape (the tensor records, BatchNorm and LayerNorm
 * statistics, pooling positions): chunks that are kept when a micro-batch
 * ends (tape_reset) and handed out again, zeroed, to the next one;
 * released by tape_release.  Tensor data lives in the pool (train/pool.h). */
typedef struct tape_chunk {
    struct tape_chunk *next;
    size_t size, used;
    unsigned char *mem;
} tape_chunk;

typedef struct tape_mem {
    tape_chunk *head, *cur;   /* chunks in allocation order; the one being filled */
} tape_mem;

#define TAPE_CHUNK ((size_t)1 << 20)

static void *tape_alloc(tape_mem *a, size_t bytes) {
    size_t need;
    if (!mc_size_add(bytes, 63, &need)) return NULL;
    need &= ~(size_t)63;
    if (need == 0) need = 64;
    tape_chunk *c = a->cur, *last = NULL;
    while (c && c->size - c->used < need) { last = c; c = c->next; }
    if (!c) {
        size_t sz = need > TAPE_CHUNK ? need : TAPE_CHUNK;
        c = calloc(1, sizeof *c);
        if (!c) return NULL;
        c->mem = aligned_alloc(64, sz);
        if (!c->mem) { free(c); return NULL; }
        c->size = sz;
        if (!last) for (last = a->head; last && last->next; last = last->next) {}
        if (last) last->next = c; else a->head = c;
    }
    a->cur = c;
    void *p = c->mem + c->used;
    c->used += need;
    memset(p, 0, need);
    return p;
}

static float *tape_floats(tape_mem *a, size_t n) {
    size_t bytes;
    if (!mc_size_mul(n, sizeof(float), &bytes)) return NULL;
    return tape_alloc(a, bytes);
}

static void tape_reset(tape_mem *a) {
    for (tape_chunk *c = a->head; c; c = c->next) c->used = 0;
    a->cur = a->head;
}

static void tape_release(tape_mem *a) {
    tape_chunk *c = a->head;
    while (c) {
        tape_chunk *n = c->next;
        free(c->mem);
        free(c);
        c = n;
    }
    a->head = a->cur = NULL;
}

/* Tensor names of the image towers in the two layouts (MobileOne branches,
 * large-kernel convs, ConvFFN, layer scales, stem and final conv). */
typedef struct tnames {
    const char *img;                    /* image tower prefix */
    const char *mo_kxk, *mo_scale, *mo_skip;
    const char *lk_large;               /* ReparamLargeKernelConv's large branch */
    const char *ffn;                    /* ConvFFN / ConvMlp */
    const char *ls;                     /* suffix of a layer-scale tensor */
    const char *stem, *final;
} tnames;

static const tnames names_mobileclip = {"image_encoder.model", "rbr_conv", "rbr_scale", "rbr_skip",
                                        "lkb_origin", "convffn", "", "patch_embed", "conv_exp"};
static const tnames names_timm = {"visual.trunk", "conv_kxk", "conv_scale", "identity",
                                  "large_conv", "mlp", ".gamma", "stem", "final_conv"};

struct mc_trainer {
    mc_train_config cfg;
    int oc;             /* OpenCLIP layout (visual.trunk.*, text.*) */
    const tnames *nm;   /* image tower names of the layout */
    char tp[8];         /* OpenCLIP text prefix: "text." (custom_text) or "" */
    mc_dr_loss_params loss;
    mc_adamw_params opt;
    mc_tparam *p;
    size_t np;
    mc_tparam *logit_scale;
    int step;           /* optimizer steps done */
    int micro;          /* micro-batches accumulated since the last step */
    tape_mem mem;       /* small things of the current micro-batch (kept between batches) */
    mc_pool pool;       /* tensor data and gradients (kept between batches) */
    int ckpt;           /* gradient checkpointing: blocks keep only their input */
    int recompute;      /* re-running a block in the backward pass: running statistics stay */
    top *tape;
    size_t ntape, captape;
    int failed;         /* allocation failure during a forward */
    int track_terms;    /* fill mc_tparam.gabs / gterms during backward */
    int eval;           /* BatchNorm on running statistics (model.eval()) */
    char missing[512];  /* first missing tensor */
    unsigned char *used;/* [np]: the tensor took part in a forward (set by mark) */
    int structure_ok;   /* a forward through both towers used every tensor */
};

/* ------------------------------------------------------------ utilities */

static mc_tparam *findp(mc_trainer *t, const char *fmt, ...) MC_PRINTF(2, 3);
static mc_tparam *findp(mc_trainer *t, const char *fmt, ...) {
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < t->np; i++)
        if (!strcmp(t->p[i].name, name)) return &t->p[i];
    return NULL;
}

/* Required parameter: records the first missing name and fails the forward. */
static mc_tparam *needp(mc_trainer *t, const char *fmt, ...) MC_PRINTF(2, 3);
static mc_tparam *needp(mc_trainer *t, const char *fmt, ...) {
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    mc_tparam *p = findp(t, "%s", name);
    if (!p && !t->failed) {
        t->failed = 2;
        snprintf(t->missing, sizeof t->missing, "%s", name);
    }
    return p;
}

static int has_prefix(const mc_trainer *t, const char *prefix) {
    size_t l = strlen(prefix);
    for (size_t i = 0; i < t->np; i++)
        if (!strncmp(t->p[i].name, prefix, l)) return 1;
    return 0;
}

static size_t numel(const tt *x) { return (size_t)x->n * x->c * x->h * x->w; }

static tt *new_tt(mc_trainer *t, int n, int c, int h, int w) {
    tt *x = tape_alloc(&t->mem, sizeof *x);
    if (!x) { t->failed = 1; return NULL; }
    x->n = n; x->c = c; x->h = h; x->w = w;
    x->d = mc_pool_get(&t->pool, numel(x), 0, &x->bd);   /* every op writes all of y */
    if (!x->d) { t->failed = 1; return NULL; }
    return x;
}

static float *gradof(mc_trainer *t, tt *x) {
    if (!x->g) {
        x->g = mc_pool_get(&t->pool, numel(x), 1, &x->bg);
        if (!x->g) t->failed = 1;
    }
    return x->g;
}

/* The gradient of x, or NULL when none is wanted (for kernels that skip a NULL dx). */
static float *gradof_opt(mc_trainer *t, tt *x) { return x->nograd ? NULL : gradof(t, x); }

static void drop_data(mc_trainer *t, tt *x) {
    if (!x) return;
    mc_pool_put(&t->pool, x->bd);
    x->bd = NULL;
    x->d = NULL;
}

static void drop_grad(mc_trainer *t, tt *x) {
    if (!x) return;
    mc_pool_put(&t->pool, x->bg);
    x->bg = NULL;
    x->g = NULL;
}

/* Whether the backward of an op of this kind reads its input x's data (x2:
 * only OP_GATE's); the others need shapes alone. */
static int reads_x(int kind) {
    switch (kind) {
    case OP_CONV: case OP_BN: case OP_BN_EVAL: case OP_CHSCALE: case OP_ACT: case OP_GATE: case OP_LINEAR:
    case OP_MATMUL: case OP_LAYERNORM: case OP_ATTENTION: case OP_L2NORM: case OP_BLOCK:
        return 1;
    default:
        return 0;
    }
}

/* The end of a module whose ops are tape[s0..]: the data of every tensor
 * made inside it that no backward reads is freed (only the module's result
 * y leaves it, so nothing later can read the others).  Returns y. */
static tt *scope_end(mc_trainer *t, size_t s0, tt *y) {
    if (t->failed || !y) return NULL;
    for (size_t k = s0; k < t->ntape; k++) {
        top *o = &t->tape[k];
        if (reads_x(o->kind) && o->x) o->x->saved = 1;
        if (o->kind == OP_GATE) o->x2->saved = 1;
    }
    for (size_t k = s0; k < t->ntape; k++) {
        tt *z = t->tape[k].y;
        if (z != y && !z->saved) drop_data(t, z);
    }
    return y;
}

/* After the backward of op o: its result, the gradient of that and its pooled
 * statistics are dead (every consumer of y comes later on the tape). */
static void release_op(mc_trainer *t, top *o) {
    drop_data(t, o->y);
    drop_grad(t, o->y);
    mc_pool_put(&t->pool, o->bs1);
    o->bs1 = NULL;
}

static top *push(mc_trainer *t, int kind) {
    if (t->ntape == t->captape) {
        size_t nc = t->captape ? t->captape * 2 : 256;
        top *n = realloc(t->tape, nc * sizeof *n);
        if (!n) { t->failed = 1; return NULL; }
        t->tape = n;
        t->captape = nc;
    }
    top *o = &t->tape[t->ntape++];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    return o;
}

#define BAIL(t) do { if ((t)->failed) return NULL; } while (0)

/* ------------------------------------------------------------------ ops */

/* y = conv(x, w) + b; stride s, padding pad (< 0: kernel//2) per dim, groups from shapes */
static tt *op_conv_pad(mc_trainer *t, tt *x, mc_tparam *w, mc_tparam *b, int s, int pad) {
    if (!x || !w || t->failed) { if (!t->failed) t->failed = 2; return NULL; }
    if (w->ndim != 4 || w->shape[1] <= 0 || x->c % w->shape[1] || w->shape[0] % (x->c / w->shape[1]) ||
        (b && (int64_t)b->n != w->shape[0])) {
        t->failed = 3;
        return NULL;
    }
    mc_conv2d_desc d;
    d.cout = (int)w->shape[0];
    d.cin = x->c;
    d.kh = (int)w->shape[2];
    d.kw = (int)w->shape[3];
    d.sh = d.sw = s;
    d.ph = pad < 0 ? d.kh / 2 : pad;
    d.pw = pad < 0 ? d.kw / 2 : pad;
    d.groups = x->c / (int)w->shape[1];
    int oh = mc_conv_out(x->h, d.kh, s, d.ph), ow = mc_conv_out(x->w, d.kw, s, d.pw);
    tt *y = new_tt(t, x->n, d.cout, oh, ow);
    BAIL(t);
    mc_train_conv2d_forward(&d, x->d, x->n, x->h, x->w, w->w, b ? b->w : NULL, y->d);
    top *o = push(t, OP_CONV);
    BAIL(t);
    o->x = x; o->y = y; o->w = w; o->b = b; o->cd = d;
    return y;
}

static tt *op_conv(mc_trainer *t, tt *x, mc_tparam *w, mc_tparam *b, int s) {
    return op_conv_pad(t, x, w, b, s, -1);
}

/* BatchNorm2d in eval mode: y = (x - running_mean) / sqrt(running_var + eps) * g + b */
static tt *op_bn_eval(mc_trainer *t, tt *x, mc_tparam *g, mc_tparam *b, mc_tparam *rm, mc_tparam *rv) {
    tt *y = new_tt(t, x->n, x->c, x->h, x->w);
    float *mean = tape_floats(&t->mem, x->c), *rstd = tape_floats(&t->mem, x->c);
    if (!mean || !rstd) t->failed = 1;
    BAIL(t);
    size_t hw = (size_t)x->h * x->w;
    for (int c = 0; c < x->c; c++) {
        mean[c] = rm->w[c];
        rstd[c] = 1.0f / sqrtf(rv->w[c] + 1e-5f);
    }
    for (int i = 0; i < x->n; i++)
        for (int c = 0; c < x->c; c++) {
            size_t o = ((size_t)i * x->c + c) * hw;
            for (size_t p = 0; p < hw; p++) y->d[o + p] = (x->d[o + p] - mean[c]) * rstd[c] * g->w[c] + b->w[c];
        }
    top *o = push(t, OP_BN_EVAL);
    BAIL(t);
    o->x = x; o->y = y; o->w = g; o->b = b; o->s1 = mean; o->s2 = rstd;
    return y;
}

static void mark(mc_trainer *t, const mc_tparam *p) {
    if (p && t->used) t->used[p - t->p] = 1;
}

/* BatchNorm2d (train mode, or eval mode when the trainer is in eval) with the module at prefix. */
static tt *op_bn(mc_trainer *t, tt *x, const char *prefix) {
    if (!x || t->failed) return NULL;
    mc_tparam *g = needp(t, "%s.weight", prefix), *b = needp(t, "%s.bias", prefix);
    mc_tparam *rm = needp(t, "%s.running_mean", prefix), *rv = needp(t, "%s.running_var", prefix);
    mc_tparam *nb = findp(t, "%s.num_batches_tracked", prefix);
    BAIL(t);
    if ((int)g->n != x->c || (int)b->n != x->c || (int)rm->n != x->c || (int)rv->n != x->c) {
        t->failed = 3;
        return NULL;
    }
    mark(t, rm); mark(t, rv); mark(t, nb);
    if (t->eval) return op_bn_eval(t, x, g, b, rm, rv);
    tt *y = new_tt(t, x->n, x->c, x->h, x->w);
    float *mean = tape_floats(&t->mem, x->c), *rstd = tape_floats(&t->mem, x->c);
    if (!mean || !rstd) t->failed = 1;
    BAIL(t);
    /* a block re-run by gradient checkpointing leaves the running statistics
     * alone: they were updated once, by the forward pass */
    mc_train_bn_forward(x->d, x->n, x->c, x->h * x->w, g->w, b->w, 1e-5f, t->cfg.bn_momentum,
                        t->recompute ? NULL : rm->w, t->recompute ? NULL : rv->w, y->d, mean, rstd);
    if (nb && !t->recompute) nb->count++;
    top *o = push(t, OP_BN);
    BAIL(t);
    o->x = x; o->y = y; o->w = g; o->b = b; o->s1 = mean; o->s2 = rstd;
    return y;
}

/* y = a + alpha * b */
static tt *op_add(mc_trainer *t, tt *a, tt *b, float alpha) {
    if (!a || !b || t->failed) return NULL;
    tt *y = new_tt(t, a->n, a->c, a->h, a->w);
    BAIL(t);
    size_t n = numel(a);
    int nt = mc_threads_for(4.0 * (double)n);
    #pragma omp parallel for simd num_threads(nt) schedule(static) if (nt > 1)
    for (size_t i = 0; i < n; i++) y->d[i] = a->d[i] + alpha * b->d[i];
    top *o = push(t, OP_ADD);
    BAIL(t);
    o->x = a; o->x2 = b; o->y = y; o->alpha = alpha;
    return y;
}

/* y[n,c,hw] = x * s[c]  (layer scale [C,1,1]) */
static tt *op_chscale(mc_trainer *t, tt *x, mc_tparam *s) {
    if (!x || !s || t->failed) { if (!t->failed) t->failed = 2; return NULL; }
    if ((int)s->n != x->c) { t->failed = 3; return NULL; }
    tt *y = new_tt(t, x->n, x->c, x->h, x->w);
    BAIL(t);
    size_t hw = (size_t)x->h * x->w;
    int planes = x->n * x->c, nt = mc_threads_for(4.0 * (double)planes * hw);
    #pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int ic = 0; ic < planes; ic++) {
        float sc = s->w[ic % x->c];
        const float *xp = x->d + (size_t)ic * hw;
        float *yp = y->d + (size_t)ic * hw;
        #pragma omp simd
        for (size_t p = 0; p < hw; p++) yp[p] = sc * xp[p];
    }
    top *o = push(t, OP_CHSCALE);
    BAIL(t);
    o->x = x; o->y = y; o->w = s;
    return y;
}

static tt *op_act(mc_trainer *t, tt *x, mc_act act) {
    if (!x || t->failed) return NULL;
    tt *y = new_tt(t, x->n, x->c, x->h, x->w);
    BAIL(t);
    mc_train_act_forward(x->d, numel(x), act, y->d);
    top *o = push(t, OP_ACT);
    BAIL(t);
    o->x = x; o->y = y; o->act = act;
    return y;
}

/* global average pool: [n,c,h,w] -> [n,c,1,1] */
static tt *op_gap(mc_trainer *t, tt *x) {
    if (!x || t->failed) return NULL;
    tt *y = new_tt(t, x->n, x->c, 1, 1);
    BAIL(t);
    size_t hw = (size_t)x->h * x->w;
    for (size_t k = 0; k < (size_t)x->n * x->c; k++) {
        double s = 0;
        for (size_t p = 0; p < hw; p++) s += x->d[k * hw + p];
        y->d[k] = (float)(s / hw);
    }
    top *o = push(t, OP_GAP);
    BAIL(t);
    o->x = x; o->y = y;
    return y;
}

/* y[n,c,hw] = x[n,c,hw] * s[n,c] */
static tt *op_gate(mc_trainer *t, tt *x, tt *s) {
    if (!x || !s || t->failed) return NULL;
    tt *y = new_tt(t, x->n, x->c, x->h, x->w);
    BAIL(t);
    size_t hw = (size_t)x->h * x->w;
    long planes = (long)x->n * x->c;
    int nt = mc_threads_for(4.0 * (double)planes * hw);
    #pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (long k = 0; k < planes; k++)
        for (size_t p = 0; p < hw; p++) y->d[k * hw + p] = x->d[k * hw + p] * s->d[k];
    top *o = push(t, OP_GATE);
    BAIL(t);
    o->x = x; o->x2 = s; o->y = y;
    return y;
}

/* x viewed [B][R][C] -> y [B][C][R] with the given output dims */
static tt *op_transpose(mc_trainer *t, tt *x, int B, int R, int C, int n, int c, int h, int w) {
    if (!x || t->failed) return NULL;
    tt *y = new_tt(t, n, c, h, w);
    BAIL(t);
    for (int b = 0; b < B; b++)
        for (int r = 0; r < R; r++)
            for (int q = 0; q < C; q++)
                y->d[((size_t)b * C + q) * R + r] = x->d[((size_t)b * R + r) * C + q];
    top *o = push(t, OP_TRANSPOSE);
    BAIL(t);
    o->x = x; o->y = y; o->i0 = B; o->i1 = R; o->i2 = C;
    return y;
}

/* over the last dim k = w->shape[1]: x [rows, k] -> y [rows, out]; dims (n, c=rows/n, out, 1) */
static tt *op_linear(mc_trainer *t, tt *x, mc_tparam *w, mc_tparam *b) {
    if (!x || !w || t->failed) { if (!t->failed) t->failed = 2; return NULL; }
    if (w->ndim != 2 || (b && (int64_t)b->n != w->shape[0])) { t->failed = 3; return NULL; }
    int k = (int)w->shape[1], out = (int)w->shape[0];
    int rows = (int)(numel(x) / k);
    if ((size_t)rows * k != numel(x) || rows % x->n) { t->failed = 3; return NULL; }
    tt *y = new_tt(t, x->n, rows / x->n, out, 1);
    BAIL(t);
    mc_train_linear_forward(x->d, w->w, b ? b->w : NULL, rows, k, out, y->d);
    top *o = push(t, OP_LINEAR);
    BAIL(t);
    o->x = x; o->y = y; o->w = w; o->b = b; o->i0 = rows; o->i1 = k; o->i2 = out;
    return y;
}

/* x [rows, k] @ p [k, out] */
static tt *op_matmul(mc_trainer *t, tt *x, mc_tparam *p) {
    if (!x || !p || t->failed) { if (!t->failed) t->failed = 2; return NULL; }
    if (p->ndim != 2) { t->failed = 3; return NULL; }
    int k = (int)p->shape[0], out = (int)p->shape[1];
    int rows = (int)(numel(x) / k);
    if ((size_t)rows * k != numel(x)) { t->failed = 3; return NULL; }
    tt *y = new_tt(t, rows, out, 1, 1);
    BAIL(t);
    mc_train_matmul_forward(x->d, p->w, rows, k, out, y->d);
    top *o = push(t, OP_MATMUL);
    BAIL(t);
    o->x = x; o->y = y; o->w = p; o->i0 = rows; o->i1 = k; o->i2 = out;
    return y;
}

/* LayerNorm over the last dim with gain g and bias b [dim] */
static tt *op_ln(mc_trainer *t, tt *x, mc_tparam *g, mc_tparam *b, float eps) {
    if (!x || !g || !b || t->failed) { if (!t->failed) t->failed = 2; return NULL; }
    int dim = (int)g->n, rows = (int)(numel(x) / dim);
    if (b->n != g->n || (size_t)rows * dim != numel(x)) { t->failed = 3; return NULL; }
    tt *y = new_tt(t, x->n, x->c, x->h, x->w);
    float *mean = tape_floats(&t->mem, rows), *rstd = tape_floats(&t->mem, rows);
    if (!mean || !rstd) t->failed = 1;
    BAIL(t);
    mc_train_layernorm_forward(x->d, rows, dim, g->w, b->w, eps, y->d, mean, rstd);
    top *o = push(t, OP_LAYERNORM);
    BAIL(t);
    o->x = x; o->y = y; o->w = g; o->b = b; o->s1 = mean; o->s2 = rstd; o->i0 = rows; o->i1 = dim;
    return y;
}

/* LayerNorm with the module at prefix (prefix.weight, prefix.bias) */
static tt *op_layernorm(mc_trainer *t, tt *x, const char *prefix, float eps) {
    if (!x || t->failed) return NULL;
    mc_tparam *g = needp(t, "%s.weight", prefix), *b = needp(t, "%s.bias", prefix);
    return op_ln(t, x, g, b, eps);
}

/* qkv [B, T, 3D] -> [B, T, D] */
static tt *op_attention(mc_trainer *t, tt *qkv, int B, int T, int heads, int causal) {
    if (!qkv || t->failed) return NULL;
    int D = (int)(numel(qkv) / ((size_t)B * T * 3));
    if (heads <= 0 || D % heads) { t->failed = 3; return NULL; }
    tt *y = new_tt(t, B, T, D, 1);
    mc_pool_blk *pb = NULL;
    float *probs = y ? mc_pool_get(&t->pool, (size_t)B * heads * T * T, 1, &pb) : NULL;
    if (!probs) t->failed = 1;
    BAIL(t);
    mc_train_attention_forward(qkv->d, B, T, heads, D / heads, causal, y->d, probs);
    top *prev = t->ntape ? &t->tape[t->ntape - 1] : NULL;
    if (prev && prev->kind == OP_LINEAR && prev->y == qkv) prev->qkv = 1;
    top *o = push(t, OP_ATTENTION);
    if (!o) mc_pool_put(&t->pool, pb);
    BAIL(t);
    o->x = qkv; o->y = y; o->s1 = probs; o->bs1 = pb; o->i0 = B; o->i1 = T; o->i2 = heads; o->i3 = D / heads;
    return y;
}

static tt *op_embed(mc_trainer *t, const int32_t *tok, int B, int L, mc_tparam *table) {
    if (!table || t->failed) { if (!t->failed) t->failed = 2; return NULL; }
    int D = (int)table->shape[1], V = (int)table->shape[0];
    tt *y = new_tt(t, B, L, D, 1);
    BAIL(t);
    for (int i = 0; i < B * L; i++) {
        int id = tok[i];
        if (id < 0 || id >= V) { t->failed = 4; return NULL; }
        memcpy(y->d + (size_t)i * D, table->w + (size_t)id * D, D * sizeof(float));
    }
    top *o = push(t, OP_EMBED);
    BAIL(t);
    o->y = y; o->w = table; o->idx = tok; o->i0 = B * L; o->i1 = D;
    return y;
}

/* y = x + p broadcast over the batch (p numel = per-sample numel) */
static tt *op_addpos(mc_trainer *t, tt *x, mc_tparam *p) {
    if (!x || !p || t->failed) { if (!t->failed) t->failed = 2; return NULL; }
    size_t per = numel(x) / x->n;
    if (p->n != per) { t->failed = 3; return NULL; }
    tt *y = new_tt(t, x->n, x->c, x->h, x->w);
    BAIL(t);
    for (int i = 0; i < x->n; i++)
        for (size_t k = 0; k < per; k++) y->d[i * per + k] = x->d[i * per + k] + p->w[k];
    top *o = push(t, OP_ADDPOS);
    BAIL(t);
    o->x = x; o->y = y; o->w = p;
    return y;
}

/* x [B, L, D] -> y [B, D]: row idx[b] of each sequence */
static tt *op_gather(mc_trainer *t, tt *x, int B, int L, int D, const int32_t *idx) {
    if (!x || t->failed) return NULL;
    tt *y = new_tt(t, B, D, 1, 1);
    BAIL(t);
    for (int b = 0; b < B; b++)
        memcpy(y->d + (size_t)b * D, x->d + ((size_t)b * L + idx[b]) * D, D * sizeof(float));
    top *o = push(t, OP_GATHER);
    BAIL(t);
    o->x = x; o->y = y; o->idx = idx; o->i0 = B; o->i1 = L; o->i2 = D;
    return y;
}

/* x [B, T, D] -> y [B, 1 + T, D] with the token p [D] first in every sequence */
static tt *op_prepend(mc_trainer *t, tt *x, int B, int T, int D, mc_tparam *p) {
    if (!x || !p || t->failed) { if (!t->failed) t->failed = 2; return NULL; }
    if ((int)p->n != D) { t->failed = 3; return NULL; }
    tt *y = new_tt(t, B, T + 1, D, 1);
    BAIL(t);
    for (int b = 0; b < B; b++) {
        float *yb = y->d + (size_t)b * (T + 1) * D;
        memcpy(yb, p->w, D * sizeof(float));
        memcpy(yb + D, x->d + (size_t)b * T * D, (size_t)T * D * sizeof(float));
    }
    top *o = push(t, OP_PREPEND);
    BAIL(t);
    o->x = x; o->y = y; o->w = p; o->i0 = B; o->i1 = T; o->i2 = D;
    return y;
}

static tt *op_l2norm(mc_trainer *t, tt *x) {
    if (!x || t->failed) return NULL;
    tt *y = new_tt(t, x->n, x->c, x->h, x->w);
    BAIL(t);
    int d = (int)(numel(x) / x->n);
    mc_train_l2norm_forward(x->d, x->n, d, y->d);
    top *o = push(t, OP_L2NORM);
    BAIL(t);
    o->x = x; o->y = y; o->i0 = x->n; o->i1 = d;
    return y;
}

/* ---------------------------------------------------------------- backward */

static float *abs_copy(const float *a, size_t n) {
    float *o = malloc(n * sizeof *o + 4);
    if (o) for (size_t i = 0; i < n; i++) o[i] = fabsf(a[i]);
    return o;
}

/* The magnitude of the terms of the parameter-gradient sums of op o (see
 * mc_tparam.gabs): the same reductions on absolute values.  Kernels whose
 * gradient is a plain product sum reuse the backward kernel on |x|, |dy|. */
static void backward_terms(mc_trainer *t, top *o) {
    tt *x = o->x, *y = o->y;
    const float *dy = y->g;
    if (!o->w || !o->w->gabs) return;
    size_t ny = numel(y);
    float *ady = abs_copy(dy, ny), *ax = NULL;
    if (!ady) { t->failed = 1; return; }
    if (x && (o->kind == OP_CONV || o->kind == OP_LINEAR || o->kind == OP_MATMUL)) {
        ax = abs_copy(x->d, numel(x));
        if (!ax) { free(ady); t->failed = 1; return; }
    }
    mc_tparam *w = o->w, *b = o->b && o->b->gabs ? o->b : NULL;
    switch (o->kind) {
    case OP_CONV: {
        int oh = y->h, ow = y->w;
        mc_train_conv2d_backward(&o->cd, ax, x->n, x->h, x->w, w->w, ady, NULL, w->gabs, b ? b->gabs : NULL);
        w->gterms += (int64_t)x->n * oh * ow;
        if (b) b->gterms += (int64_t)x->n * oh * ow;
        break;
    }
    case OP_LINEAR:
        mc_train_linear_backward(ax, w->w, o->i0, o->i1, o->i2, ady, NULL, w->gabs, b ? b->gabs : NULL);
        w->gterms += o->i0;
        if (b) b->gterms += o->i0;
        break;
    case OP_MATMUL:
        mc_train_matmul_backward(ax, w->w, o->i0, o->i1, o->i2, ady, NULL, w->gabs);
        w->gterms += o->i0;
        break;
    case OP_BN:
    case OP_BN_EVAL: {
        int C = x->c;
        size_t hw = (size_t)x->h * x->w;
        for (int c = 0; c < C; c++) {
            double sg = 0, sb = 0;
            for (int i = 0; i < x->n; i++)
                for (size_t p = 0; p < hw; p++) {
                    size_t k = ((size_t)i * C + c) * hw + p;
                    sg += (double)ady[k] * fabsf((x->d[k] - o->s1[c]) * o->s2[c]);
                    sb += ady[k];
                }
            w->gabs[c] += (float)sg;
            if (b) b->gabs[c] += (float)sb;
        }
        w->gterms += (int64_t)x->n * hw;
        if (b) b->gterms += (int64_t)x->n * hw;
        break;
    }
    case OP_CHSCALE: {
        size_t hw = (size_t)x->h * x->w;
        for (int c = 0; c < x->c; c++) {
            double s = 0;
            for (int i = 0; i < x->n; i++)
                for (size_t p = 0; p < hw; p++) {
                    size_t k = ((size_t)i * x->c + c) * hw + p;
                    s += (double)ady[k] * fabsf(x->d[k]);
                }
            w->gabs[c] += (float)s;
        }
        w->gterms += (int64_t)x->n * hw;
        break;
    }
    case OP_LAYERNORM: {
        int rows = o->i0, dim = o->i1;
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < dim; i++) {
                size_t k = (size_t)r * dim + i;
                w->gabs[i] += ady[k] * fabsf((x->d[k] - o->s1[r]) * o->s2[r]);
                if (b) b->gabs[i] += ady[k];
            }
        w->gterms += rows;
        if (b) b->gterms += rows;
        break;
    }
    case OP_EMBED: {
        int D = o->i1;
        for (int i = 0; i < o->i0; i++)
            for (int k = 0; k < D; k++) w->gabs[(size_t)o->idx[i] * D + k] += ady[(size_t)i * D + k];
        w->gterms += o->i0;
        break;
    }
    case OP_ADDPOS: {
        size_t per = numel(x) / x->n;
        for (size_t k = 0; k < per; k++)
            for (int i = 0; i < x->n; i++) w->gabs[k] += ady[i * per + k];
        w->gterms += x->n;
        break;
    }
    case OP_PREPEND: {
        int T = o->i1, D = o->i2;
        for (int q = 0; q < o->i0; q++)
            for (int k = 0; k < D; k++) w->gabs[k] += ady[(size_t)q * (T + 1) * D + k];
        w->gterms += o->i0;
        break;
    }
    default:
        break;
    }
    free(ax);
    free(ady);
}

static tt *run_block(mc_trainer *t, tt *x, const struct blockcall *c);
static void backward_range(mc_trainer *t, size_t n0);

/* OP_BLOCK: re-run the block on its kept input (BatchNorm running statistics
 * untouched), hand it the gradient of its result, and go back through it. */
static void backward_block(mc_trainer *t, top *o) {
    tt *x = o->x, *y = o->y;
    const struct blockcall *c = o->call;   /* o moves if the tape grows */
    size_t n0 = t->ntape;
    drop_data(t, y);   /* its consumers are done; the re-run makes it again */
    t->recompute = 1;
    tt *y2 = run_block(t, x, c);
    t->recompute = 0;
    if (!y2) { if (!t->failed) t->failed = 1; return; }
    y2->g = y->g; y2->bg = y->bg;
    y->g = NULL; y->bg = NULL;
    backward_range(t, n0);
    t->ntape = n0;
}

/* The bias gradient of an attention's packed q|k|v projection, dy [m, n =
 * 3D]: the column sums of the q and v parts (in double, row after row, as
 * mc_train_linear_backward sums them).  The key part is left as it is: a key
 * bias adds q.b_k to every logit of a query's row, which the softmax over the
 * keys cancels, so its gradient is exactly zero; the column sums would only
 * be rounding noise, which AdamW turns into steps of about lr (and which
 * another summation order, such as another split of the batch over ranks,
 * makes different). */
static void qkv_bias_backward(const float *dy, int m, int n, float *db) {
    const int D = n / 3;
    for (int j = 0; j < n; j++) {
        if (j == D) j = 2 * D;
        double s = 0;
        for (int i = 0; i < m; i++) s += dy[(size_t)i * n + j];
        db[j] += (float)s;
    }
}

static void backward_op(mc_trainer *t, top *o) {
    tt *x = o->x, *y = o->y;
    float *dy = y->g;
    if (!dy) return;   /* nothing flows here */
    if (o->kind == OP_BLOCK) { backward_block(t, o); return; }
    if (t->track_terms) backward_terms(t, o);
    switch (o->kind) {
    case OP_CONV:
        mc_train_conv2d_backward(&o->cd, x->d, x->n, x->h, x->w, o->w->w, dy, gradof_opt(t, x), o->w->g,
                                 o->b ? o->b->g : NULL);
        break;
    case OP_BN:
        mc_train_bn_backward(x->d, x->n, x->c, x->h * x->w, o->w->w, o->s1, o->s2, dy, gradof(t, x),
                             o->w->g, o->b->g);
        break;
    case OP_BN_EVAL: {
        float *gx = gradof(t, x);
        if (!gx) return;
        size_t hw = (size_t)x->h * x->w;
        for (int c = 0; c < x->c; c++) {
            double sg = 0, sb = 0;
            float k = o->w->w[c] * o->s2[c];
            for (int i = 0; i < x->n; i++) {
                size_t off = ((size_t)i * x->c + c) * hw;
                for (size_t p = 0; p < hw; p++) {
                    sg += (double)dy[off + p] * ((x->d[off + p] - o->s1[c]) * o->s2[c]);
                    sb += dy[off + p];
                    gx[off + p] += dy[off + p] * k;
                }
            }
            o->w->g[c] += (float)sg;
            o->b->g[c] += (float)sb;
        }
        break;
    }
    case OP_PREPEND: {
        float *gx = gradof(t, x);
        if (!gx) return;
        int T = o->i1, D = o->i2;
        for (int b = 0; b < o->i0; b++) {
            const float *db = dy + (size_t)b * (T + 1) * D;
            for (int k = 0; k < D; k++) o->w->g[k] += db[k];
            float *gb = gx + (size_t)b * T * D;
            for (size_t k = 0; k < (size_t)T * D; k++) gb[k] += db[D + k];
        }
        break;
    }
    case OP_ADD: {
        float *ga = gradof(t, x), *gb = gradof(t, o->x2);
        if (!ga || !gb) return;
        size_t n = numel(y);
        int nt = mc_threads_for(6.0 * (double)n);
        #pragma omp parallel for simd num_threads(nt) schedule(static) if (nt > 1)
        for (size_t i = 0; i < n; i++) { ga[i] += dy[i]; gb[i] += o->alpha * dy[i]; }
        break;
    }
    case OP_CHSCALE: {
        float *gx = gradof(t, x);
        if (!gx) return;
        size_t hw = (size_t)x->h * x->w;
        int nt = mc_threads_for(6.0 * (double)numel(x));
        /* one thread per channel: the same sums in the same order */
        #pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
        for (int c = 0; c < x->c; c++) {
            double s = 0;
            for (int i = 0; i < x->n; i++)
                for (size_t p = 0; p < hw; p++) {
                    size_t k = ((size_t)i * x->c + c) * hw + p;
                    s += (double)dy[k] * x->d[k];
                    gx[k] += dy[k] * o->w->w[c];
                }
            o->w->g[c] += (float)s;
        }
        break;
    }
    case OP_ACT: {
        float *gx = gradof(t, x);
        if (gx) mc_train_act_backward(x->d, numel(x), o->act, dy, gx);
        break;
    }
    case OP_GAP: {
        float *gx = gradof(t, x);
        if (!gx) return;
        size_t hw = (size_t)x->h * x->w;
        for (size_t k = 0; k < (size_t)x->n * x->c; k++)
            for (size_t p = 0; p < hw; p++) gx[k * hw + p] += dy[k] / (float)hw;
        break;
    }
    case OP_GATE: {
        float *gx = gradof(t, x), *gs = gradof(t, o->x2);
        if (!gx || !gs) return;
        size_t hw = (size_t)x->h * x->w;
        long planes = (long)x->n * x->c;
        int nt = mc_threads_for(6.0 * (double)planes * hw);
        #pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
        for (long k = 0; k < planes; k++) {
            double s = 0;
            for (size_t p = 0; p < hw; p++) {
                s += (double)dy[k * hw + p] * x->d[k * hw + p];
                gx[k * hw + p] += dy[k * hw + p] * o->x2->d[k];
            }
            gs[k] += (float)s;
        }
        break;
    }
    case OP_TRANSPOSE: {
        float *gx = gradof(t, x);
        if (!gx) return;
        int B = o->i0, R = o->i1, C = o->i2;
        for (int b = 0; b < B; b++)
            for (int r = 0; r < R; r++)
                for (int q = 0; q < C; q++)
                    gx[((size_t)b * R + r) * C + q] += dy[((size_t)b * C + q) * R + r];
        break;
    }
    case OP_LINEAR:
        mc_train_linear_backward(x->d, o->w->w, o->i0, o->i1, o->i2, dy, gradof(t, x), o->w->g,
                                 o->b && !o->qkv ? o->b->g : NULL);
        if (o->b && o->qkv) qkv_bias_backward(dy, o->i0, o->i2, o->b->g);
        break;
    case OP_MATMUL:
        mc_train_matmul_backward(x->d, o->w->w, o->i0, o->i1, o->i2, dy, gradof(t, x), o->w->g);
        break;
    case OP_LAYERNORM:
        mc_train_layernorm_backward(x->d, o->i0, o->i1, o->w->w, o->s1, o->s2, dy, gradof(t, x),
                                    o->w->g, o->b->g);
        break;
    case OP_ATTENTION: {
        float *gx = gradof(t, x);
        if (gx) mc_train_attention_backward(x->d, o->i0, o->i1, o->i2, o->i3, o->s1, dy, gx);
        break;
    }
    case OP_EMBED: {
        int D = o->i1;
        for (int i = 0; i < o->i0; i++) {
            float *gr = o->w->g + (size_t)o->idx[i] * D;
            for (int k = 0; k < D; k++) gr[k] += dy[(size_t)i * D + k];
        }
        break;
    }
    case OP_ADDPOS: {
        float *gx = gradof(t, x);
        if (!gx) return;
        size_t per = numel(x) / x->n;
        for (size_t k = 0; k < per; k++) {
            double s = 0;
            for (int i = 0; i < x->n; i++) { s += dy[i * per + k]; gx[i * per + k] += dy[i * per + k]; }
            o->w->g[k] += (float)s;
        }
        break;
    }
    case OP_GATHER: {
        float *gx = gradof(t, x);
        if (!gx) return;
        int L = o->i1, D = o->i2;
        for (int b = 0; b < o->i0; b++)
            for (int k = 0; k < D; k++) gx[((size_t)b * L + o->idx[b]) * D + k] += dy[(size_t)b * D + k];
        break;
    }
    case OP_L2NORM: {
        float *gx = gradof(t, x);
        if (gx) mc_train_l2norm_backward(x->d, o->i0, o->i1, dy, gx);
        break;
    }
    }
}

/* The backward pass through tape[n0..] in reverse; every op's result and its
 * gradient are freed once the op is done. */
static void backward_range(mc_trainer *t, size_t n0) {
    for (size_t k = t->ntape; k-- > n0;) {
        backward_op(t, &t->tape[k]);
        release_op(t, &t->tape[k]);
        if (t->failed) return;
    }
}

/* --------------------------------------------------------------- modules */

/* A layer scale <pf>.<leaf> ([C,1,1]; timm: <pf>.<leaf>.gamma), or NULL. */
static mc_tparam *layer_scale(mc_trainer *t, const char *pf, const char *leaf) {
    return findp(t, "%s.%s%s", pf, leaf, t->nm->ls);
}

/* Squeeze-excite at <pf>.se (timm fc1/fc2, or MobileOne's reduce/expand): x * sigmoid(fc2(relu(fc1(gap(x))))) */
static tt *squeeze_excite(mc_trainer *t, tt *x, const char *pf) {
    const char *a = "fc1", *b = "fc2";
    if (!findp(t, "%s.se.fc1.weight", pf)) {
        if (!findp(t, "%s.se.reduce.weight", pf)) return x;
        a = "reduce", b = "expand";
    }
    tt *s = op_gap(t, x);
    s = op_act(t, op_conv(t, s, needp(t, "%s.se.%s.weight", pf, a), needp(t, "%s.se.%s.bias", pf, a), 1), MC_ACT_RELU);
    s = op_act(t, op_conv(t, s, needp(t, "%s.se.%s.weight", pf, b), needp(t, "%s.se.%s.bias", pf, b), 1), MC_ACT_SIGMOID);
    return op_gate(t, x, s);
}

/* MobileOneBlock: act(se(scale + skip + sum(conv branches))) */
static tt *mobileone(mc_trainer *t, tt *x, const char *pf, int stride, int act) {
    const tnames *nm = t->nm;
    const size_t s0 = t->ntape;
    char b[512];
    tt *out = NULL;
    tt *skip = NULL, *scale = NULL;
    if (findp(t, "%s.%s.weight", pf, nm->mo_skip)) {
        snprintf(b, sizeof b, "%.400s.%s", pf, nm->mo_skip);
        skip = op_bn(t, x, b);
    }
    if (findp(t, "%s.%s.conv.weight", pf, nm->mo_scale)) {
        snprintf(b, sizeof b, "%.400s.%s.bn", pf, nm->mo_scale);
        scale = op_bn(t, op_conv(t, x, needp(t, "%s.%s.conv.weight", pf, nm->mo_scale), NULL, stride), b);
    }
    if (scale && skip) out = op_add(t, scale, skip, 1.0f);
    else out = scale ? scale : skip;
    for (int k = 0; findp(t, "%s.%s.%d.conv.weight", pf, nm->mo_kxk, k); k++) {
        snprintf(b, sizeof b, "%.400s.%s.%d.bn", pf, nm->mo_kxk, k);
        tt *c = op_bn(t, op_conv(t, x, needp(t, "%s.%s.%d.conv.weight", pf, nm->mo_kxk, k), NULL, stride), b);
        out = out ? op_add(t, out, c, 1.0f) : c;
    }
    if (!out) { if (!t->failed) { t->failed = 2; snprintf(t->missing, sizeof t->missing, "%s.*", pf); } return NULL; }
    out = squeeze_excite(t, out, pf);
    if (act) out = op_act(t, out, MC_ACT_GELU);
    return scope_end(t, s0, out);
}

/* ReparamLargeKernelConv: act(se(bn(conv_k(x)) + bn(conv_small(x)))) */
static tt *replk(mc_trainer *t, tt *x, const char *pf, int stride) {
    const char *lk = t->nm->lk_large;
    const size_t s0 = t->ntape;
    char b[512];
    snprintf(b, sizeof b, "%.440s.%s.bn", pf, lk);
    tt *out = op_bn(t, op_conv(t, x, needp(t, "%s.%s.conv.weight", pf, lk), NULL, stride), b);
    if (findp(t, "%s.small_conv.conv.weight", pf)) {
        snprintf(b, sizeof b, "%.480s.small_conv.bn", pf);
        tt *s = op_bn(t, op_conv(t, x, needp(t, "%s.small_conv.conv.weight", pf), NULL, stride), b);
        out = op_add(t, out, s, 1.0f);
    }
    out = squeeze_excite(t, out, pf);   /* timm SqueezeExcite */
    return scope_end(t, s0, op_act(t, out, MC_ACT_GELU));
}

/* ConvFFN (timm ConvMlp) at <pf>: fc2(GELU(fc1(bn(dwconv(x))))) */
static tt *convffn(mc_trainer *t, tt *x, const char *pf) {
    const size_t s0 = t->ntape;
    char b[512];
    snprintf(b, sizeof b, "%s.conv.bn", pf);
    tt *y = op_bn(t, op_conv(t, x, needp(t, "%s.conv.conv.weight", pf), NULL, 1), b);
    y = op_act(t, op_conv(t, y, needp(t, "%s.fc1.weight", pf), findp(t, "%s.fc1.bias", pf), 1), MC_ACT_GELU);
    return scope_end(t, s0, op_conv(t, y, needp(t, "%s.fc2.weight", pf), findp(t, "%s.fc2.bias", pf), 1));
}

static int is_repmixer_block(mc_trainer *t, const char *pf) {
    return findp(t, "%s.token_mixer.mixer.%s.weight", pf, t->nm->mo_skip) ||
           findp(t, "%s.token_mixer.mixer.%s.0.conv.weight", pf, t->nm->mo_kxk);
}

/* RepMixerBlock on NCHW: x + ls_mixer * (mixer(x) - norm(x)); x + ls * ffn(x) */
static tt *repmixer_block(mc_trainer *t, tt *x, const char *pf) {
    const size_t s0 = t->ntape;
    char b[512], b2[512];
    snprintf(b, sizeof b, "%s.token_mixer.mixer", pf);
    snprintf(b2, sizeof b2, "%s.token_mixer.norm", pf);
    tt *m = mobileone(t, x, b, 1, 0);
    tt *n = mobileone(t, x, b2, 1, 0);
    tt *d = op_add(t, m, n, -1.0f);
    mc_tparam *ls = layer_scale(t, pf, "token_mixer.layer_scale");
    x = op_add(t, x, ls ? op_chscale(t, d, ls) : d, 1.0f);
    snprintf(b, sizeof b, "%s.%s", pf, t->nm->ffn);
    tt *f = convffn(t, x, b);
    ls = layer_scale(t, pf, "layer_scale");
    return scope_end(t, s0, op_add(t, x, ls ? op_chscale(t, f, ls) : f, 1.0f));
}

/* MCi AttentionBlock: x + ls1 * MHSA(norm(x)); x + ls2 * ConvFFN(x).  norm is
 * BatchNorm2d (MCi0-2) or, without running statistics, LayerNorm2d over the
 * channels (timm fastvit_mci3/4, eps 1e-5). */
static tt *attention_block(mc_trainer *t, tt *x, const char *pf) {
    if (!x || t->failed) return NULL;
    const size_t s0 = t->ntape;
    char b[512];
    int B = x->n, C = x->c, HW = x->h * x->w, H = x->h, W = x->w;
    snprintf(b, sizeof b, "%.480s.norm", pf);
    tt *s;
    if (findp(t, "%s.norm.running_mean", pf)) {
        s = op_transpose(t, op_bn(t, x, b), B, C, HW, B, HW, C, 1);
    } else {
        s = op_layernorm(t, op_transpose(t, x, B, C, HW, B, HW, C, 1), b, 1e-5f);
    }
    tt *qkv = op_linear(t, s, needp(t, "%s.token_mixer.qkv.weight", pf), findp(t, "%s.token_mixer.qkv.bias", pf));
    tt *a = op_attention(t, qkv, B, HW, C / 32, 0);
    tt *pr = op_linear(t, a, needp(t, "%s.token_mixer.proj.weight", pf), findp(t, "%s.token_mixer.proj.bias", pf));
    tt *back = op_transpose(t, pr, B, HW, C, B, C, H, W);
    mc_tparam *l1 = layer_scale(t, pf, "layer_scale_1"), *l2 = layer_scale(t, pf, "layer_scale_2");
    x = op_add(t, x, l1 ? op_chscale(t, back, l1) : back, 1.0f);
    snprintf(b, sizeof b, "%.480s.%s", pf, t->nm->ffn);
    tt *f = convffn(t, x, b);
    return scope_end(t, s0, op_add(t, x, l2 ? op_chscale(t, f, l2) : f, 1.0f));
}

/* Pre-norm transformer block on x [B, L, D] under the names of nm (relative to
 * the block prefix b): x + out_proj(MHSA(LN(x))), then x + fc2(act(fc1(LN(x)))).
 * The attention input projection is packed [3D, D] (q | k | v, heads
 * contiguous) in every layout: mobileclip qkv_proj, timm attn.qkv, OpenCLIP
 * nn.MultiheadAttention in_proj_weight. */
static tt *transformer_layer(mc_trainer *t, tt *x, const char *b, const mc_tblock_names *nm, int B,
                             int L, int heads, int causal, float eps, mc_act act) {
    const size_t s0 = t->ntape;
    tt *h = op_ln(t, x, needp(t, "%s.%s", b, nm->ln1_w), needp(t, "%s.%s", b, nm->ln1_b), eps);
    h = op_linear(t, h, needp(t, "%s.%s", b, nm->qkv_w), findp(t, "%s.%s", b, nm->qkv_b));
    h = op_attention(t, h, B, L, heads, causal);
    h = op_linear(t, h, needp(t, "%s.%s", b, nm->out_w), findp(t, "%s.%s", b, nm->out_b));
    x = op_add(t, h, x, 1.0f);
    h = op_ln(t, x, needp(t, "%s.%s", b, nm->ln2_w), needp(t, "%s.%s", b, nm->ln2_b), eps);
    h = op_act(t, op_linear(t, h, needp(t, "%s.%s", b, nm->fc1_w), findp(t, "%s.%s", b, nm->fc1_b)), act);
    h = op_linear(t, h, needp(t, "%s.%s", b, nm->fc2_w), findp(t, "%s.%s", b, nm->fc2_b));
    return scope_end(t, s0, op_add(t, x, h, 1.0f));
}

/* A block that gradient checkpointing may re-run in the backward pass: a
 * RepMixer or attention block of an MCi tower (or of the mct text tower), or
 * a pre-norm transformer layer. */
enum { BLK_REPMIXER, BLK_ATTENTION, BLK_TRANSFORMER };

typedef struct blockcall {
    int kind;
    char pf[512];                 /* the block's tensor prefix */
    const mc_tblock_names *nm;    /* BLK_TRANSFORMER: names, shape, options */
    int B, L, heads, causal;
    float eps;
    mc_act act;
} blockcall;

static tt *run_block(mc_trainer *t, tt *x, const blockcall *c) {
    switch (c->kind) {
    case BLK_REPMIXER: return repmixer_block(t, x, c->pf);
    case BLK_ATTENTION: return attention_block(t, x, c->pf);
    default: return transformer_layer(t, x, c->pf, c->nm, c->B, c->L, c->heads, c->causal, c->eps, c->act);
    }
}

/* A block.  With gradient checkpointing it keeps only its input: its ops
 * leave the tape for one OP_BLOCK, and the backward pass re-runs them (the
 * same kernels on the same input: the same numbers) to go back through them. */
static tt *block(mc_trainer *t, tt *x, const blockcall *c) {
    if (!t->ckpt || t->recompute || !x || t->failed) return run_block(t, x, c);
    const size_t s0 = t->ntape;
    tt *y = run_block(t, x, c);
    blockcall *keep = y ? tape_alloc(&t->mem, sizeof *keep) : NULL;
    if (y && !keep) t->failed = 1;
    BAIL(t);
    *keep = *c;
    for (size_t k = s0; k < t->ntape; k++) {
        top *o = &t->tape[k];
        mark(t, o->w); mark(t, o->b);
        if (o->y != y) drop_data(t, o->y);
        mc_pool_put(&t->pool, o->bs1);
    }
    t->ntape = s0;
    top *o = push(t, OP_BLOCK);
    BAIL(t);
    o->x = x; o->y = y; o->call = keep;
    x->saved = 1;
    return y;
}

static tt *transformer_block(mc_trainer *t, tt *x, const char *b, const mc_tblock_names *nm, int B,
                             int L, int heads, int causal, float eps, mc_act act) {
    blockcall c = {BLK_TRANSFORMER, "", nm, B, L, heads, causal, eps, act};
    snprintf(c.pf, sizeof c.pf, "%s", b);
    return block(t, x, &c);
}

static tt *mci_block(mc_trainer *t, tt *x, const char *b, int kind) {
    blockcall c = {kind, "", NULL, 0, 0, 0, 0, 0, MC_ACT_NONE};
    snprintf(c.pf, sizeof c.pf, "%s", b);
    return block(t, x, &c);
}

/* ViT image towers (64-channel heads).
 * vit_b16 (mobileclip/models/vit.py): conv stem patch_emb.K (conv with
 * stride = kernel, padding (k-1)/2; BatchNorm + GELU on all but the last,
 * which has a bias), positions on the patches, class token first (no
 * position), pre-norm layers (LayerNorm eps 1e-5), post_transformer_norm,
 * class token (or the mean of the tokens without one), classifier.proj [D, E].
 * timm (vit_base_mci_224: ConvStem patch_embed.backbone.K, padding 0,
 * no_embed_class; vit_*_clip_*: patch_embed.proj, positions covering the
 * class token, norm_pre): blocks.N (LayerNorm eps 1e-6, 1e-5 for the CLIP
 * variants), norm, class token, head [E, D] + bias. */
static tt *vit_forward(mc_trainer *t, tt *x, int n) {
    const int oc = t->oc;
    const char *P = t->nm->img;
    const float eps = !oc || strstr(t->cfg.image_arch, "_clip_") ? 1e-5f : 1e-6f;
    char b[512];
    int ns = 0;
    if (oc && findp(t, "%s.patch_embed.proj.weight", P)) {
        mc_tparam *w = needp(t, "%s.patch_embed.proj.weight", P);
        if (!w || w->ndim != 4) { if (!t->failed) t->failed = 3; return NULL; }
        x = op_conv_pad(t, x, w, findp(t, "%s.patch_embed.proj.bias", P), (int)w->shape[2], 0);
    } else {
        const char *conv = oc ? "%s.patch_embed.backbone.%d.conv.%s" : "%s.patch_emb.%d.block.conv.%s";
        const char *norm = oc ? "%s.patch_embed.backbone.%d.bn" : "%s.patch_emb.%d.block.norm";
        while (findp(t, conv, P, ns, "weight")) ns++;
        if (ns == 0) { needp(t, conv, P, 0, "weight"); return NULL; }
        for (int i = 0; i < ns; i++) {
            mc_tparam *w = needp(t, conv, P, i, "weight");
            if (!w || w->ndim != 4) { if (!t->failed) t->failed = 3; return NULL; }
            int k = (int)w->shape[2];
            x = op_conv_pad(t, x, w, findp(t, conv, P, i, "bias"), k, oc ? 0 : (k - 1) / 2);
            snprintf(b, sizeof b, norm, P, i);
            if (findp(t, "%s.weight", b)) {
                x = op_bn(t, x, b);
                x = op_act(t, x, MC_ACT_GELU);
            }
        }
    }
    if (!x) return NULL;
    int D = x->c, N = x->h * x->w;
    x = op_transpose(t, x, n, D, N, n, N, D, 1);
    mc_tparam *pos = needp(t, oc ? "%s.pos_embed" : "%s.pos_embed.pos_embed.pos_embed", P);
    mc_tparam *cls = findp(t, "%s.cls_token", P);
    int T = N;
    if (cls && pos && pos->n == (size_t)(N + 1) * D) {   /* positions cover the class token */
        x = op_addpos(t, op_prepend(t, x, n, N, D, cls), pos);
        T = N + 1;
    } else {
        x = op_addpos(t, x, pos);
        if (cls) { x = op_prepend(t, x, n, N, D, cls); T = N + 1; }
    }
    if (oc && findp(t, "%s.norm_pre.weight", P)) {
        snprintf(b, sizeof b, "%s.norm_pre", P);
        x = op_layernorm(t, x, b, eps);
    }
    if (!x || D % 64) { if (!t->failed) t->failed = 3; return NULL; }
    const mc_tblock_names *bn = oc ? &mc_tblock_names_timm : &mc_tblock_names_mobileclip;
    for (int l = 0;; l++) {
        snprintf(b, sizeof b, oc ? "%s.blocks.%d" : "%s.transformer.%d", P, l);
        if (!findp(t, "%s.%s", b, bn->ln1_w)) break;
        x = transformer_block(t, x, b, bn, n, T, D / 64, 0, eps, MC_ACT_GELU);
        if (t->failed) return NULL;
    }
    snprintf(b, sizeof b, oc ? "%s.norm" : "%s.post_transformer_norm", P);
    x = op_layernorm(t, x, b, eps);
    if (cls) {
        int32_t *zero = tape_alloc(&t->mem, sizeof(int32_t) * n);
        if (!zero) { t->failed = 1; return NULL; }
        memset(zero, 0, sizeof(int32_t) * n);
        x = op_gather(t, x, n, T, D, zero);
    } else {
        /* mean over the tokens: [B, T, D] -> [B, D, T] -> average pool */
        x = op_gap(t, op_transpose(t, x, n, T, D, n, D, T, 1));
    }
    if (oc) return op_linear(t, x, needp(t, "%s.head.weight", P), findp(t, "%s.head.bias", P));
    return op_matmul(t, x, needp(t, "%s.classifier.proj", P));
}

/* The MCi blocks <base>.0, <base>.1, ... (RepMixer or attention) */
static tt *mci_blocks(mc_trainer *t, tt *x, const char *base) {
    char b[512];
    for (int j = 0;; j++) {
        snprintf(b, sizeof b, "%.480s.%d", base, j);
        if (is_repmixer_block(t, b)) x = mci_block(t, x, b, BLK_REPMIXER);
        else if (findp(t, "%s.token_mixer.qkv.weight", b)) x = mci_block(t, x, b, BLK_ATTENTION);
        else break;
        if (t->failed) return NULL;
    }
    return x;
}

/* A patch embedding (large-kernel conv, stride 2, then MobileOne 1x1) at <pf> (.0, .1) */
static tt *mci_downsample(mc_trainer *t, tt *x, const char *pf) {
    char b[512];
    snprintf(b, sizeof b, "%.480s.0", pf);
    x = replk(t, x, b, 2);
    snprintf(b, sizeof b, "%.480s.1", pf);
    return mobileone(t, x, b, 1, 1);
}

/* MCi / FastViT-MCi: stem (3 MobileOne blocks), stages, final MobileOne conv
 * with SE, global average pool, projection.  mobileclip repo: network.K is a
 * block list, a patch embedding (proj) or a RepCPE (pe); head.proj [C, E].
 * timm: stages.S.{downsample.proj, pos_emb.pos_enc, blocks.K}; head.fc [E, C] + bias. */
static tt *image_tower(mc_trainer *t, tt *x, int n);

static tt *image_forward(mc_trainer *t, const float *pixels, int n) {
    int S = t->cfg.image_size;
    const size_t s0 = t->ntape;
    tt *x = new_tt(t, n, 3, S, S);
    if (!x) return NULL;
    x->nograd = 1;
    memcpy(x->d, pixels, numel(x) * sizeof(float));
    return scope_end(t, s0, !strncmp(t->cfg.image_arch, "vit", 3) ? vit_forward(t, x, n) : image_tower(t, x, n));
}

static tt *image_tower(mc_trainer *t, tt *x, int n) {
    const char *P = t->nm->img;
    char b[512];
    for (int i = 0; i < 3; i++) {
        snprintf(b, sizeof b, "%s.%s.%d", P, t->nm->stem, i);
        x = mobileone(t, x, b, i < 2 ? 2 : 1, 1);
    }
    for (int i = 0; !t->oc; i++) {
        snprintf(b, sizeof b, "%s.network.%d.", P, i);
        if (!has_prefix(t, b)) break;
        if (findp(t, "%s.network.%d.proj.0.lkb_origin.conv.weight", P, i)) {
            snprintf(b, sizeof b, "%s.network.%d.proj", P, i);
            x = mci_downsample(t, x, b);
        } else if (findp(t, "%s.network.%d.pe.weight", P, i)) {
            x = op_add(t, op_conv(t, x, needp(t, "%s.network.%d.pe.weight", P, i),
                                  findp(t, "%s.network.%d.pe.bias", P, i), 1), x, 1.0f);
        } else {
            snprintf(b, sizeof b, "%s.network.%d", P, i);
            x = mci_blocks(t, x, b);
        }
        if (t->failed) return NULL;
    }
    for (int s = 0; t->oc; s++) {
        snprintf(b, sizeof b, "%s.stages.%d.", P, s);
        if (!has_prefix(t, b)) break;
        if (findp(t, "%s.stages.%d.downsample.proj.0.%s.conv.weight", P, s, t->nm->lk_large)) {
            snprintf(b, sizeof b, "%s.stages.%d.downsample.proj", P, s);
            x = mci_downsample(t, x, b);
        }
        if (findp(t, "%s.stages.%d.pos_emb.pos_enc.weight", P, s))
            x = op_add(t, op_conv(t, x, needp(t, "%s.stages.%d.pos_emb.pos_enc.weight", P, s),
                                  findp(t, "%s.stages.%d.pos_emb.pos_enc.bias", P, s), 1), x, 1.0f);
        snprintf(b, sizeof b, "%s.stages.%d.blocks", P, s);
        x = mci_blocks(t, x, b);
        if (t->failed) return NULL;
    }
    snprintf(b, sizeof b, "%s.%s", P, t->nm->final);
    x = mobileone(t, x, b, 1, 1);
    x = op_gap(t, x);
    if (t->oc) return op_linear(t, x, needp(t, "%s.head.fc.weight", P), findp(t, "%s.head.fc.bias", P));
    return op_matmul(t, x, needp(t, "%s.head.proj", P));
}

/* EOT pooling positions: argmax of the token ids, first occurrence */
static void eot_positions(const int32_t *tok, int n, int L, int32_t *eot) {
    for (int i = 0; i < n; i++) {
        int best = 0;
        for (int j = 1; j < L; j++)
            if (tok[(size_t)i * L + j] > tok[(size_t)i * L + best]) best = j;
        eot[i] = best;
    }
}

/* OpenCLIP TextTransformer: token_embedding, + positional_embedding [L, W],
 * transformer.resblocks.N (LayerNorm eps 1e-5, GELU or QuickGELU, causal
 * unless no_causal_mask), ln_final, the EOT (argmax) token, text_projection
 * ([W, E], or an nn.Linear text_projection.weight [E, W] + bias). */
static tt *text_forward_openclip(mc_trainer *t, const int32_t *tok, int n, int32_t *eot) {
    int L = t->cfg.context_length;
    const char *P = t->tp;
    const mc_act act = t->cfg.quick_gelu ? MC_ACT_QUICK_GELU : MC_ACT_GELU;
    char b[512];
    tt *x = op_embed(t, tok, n, L, needp(t, "%stoken_embedding.weight", P));
    x = op_addpos(t, x, needp(t, "%spositional_embedding", P));
    if (!x) return NULL;
    int D = x->h, heads = t->cfg.n_text_heads > 0 ? t->cfg.text_heads[0] : 8;
    for (int i = 0;; i++) {
        snprintf(b, sizeof b, "%stransformer.resblocks.%d", P, i);
        if (!findp(t, "%s.%s", b, mc_tblock_names_openclip.ln1_w)) break;
        x = transformer_block(t, x, b, &mc_tblock_names_openclip, n, L, heads, t->cfg.causal, 1e-5f, act);
        if (t->failed) return NULL;
    }
    snprintf(b, sizeof b, "%sln_final", P);
    x = op_layernorm(t, x, b, 1e-5f);
    eot_positions(tok, n, L, eot);
    x = op_gather(t, x, n, L, D, eot);
    mc_tparam *pj = findp(t, "%stext_projection", P);
    if (pj) return op_matmul(t, x, pj);
    return op_linear(t, x, needp(t, "%stext_projection.weight", P), findp(t, "%stext_projection.bias", P));
}

static tt *text_tower(mc_trainer *t, const int32_t *tok, int n, int32_t *eot);

static tt *text_forward(mc_trainer *t, const int32_t *tok, int n, int32_t *eot) {
    const size_t s0 = t->ntape;
    return scope_end(t, s0, t->oc ? text_forward_openclip(t, tok, n, eot) : text_tower(t, tok, n, eot));
}

static tt *text_tower(mc_trainer *t, const int32_t *tok, int n, int32_t *eot) {
    int L = t->cfg.context_length;
    const char *P = "text_encoder";
    char b[512];
    tt *x = op_embed(t, tok, n, L, needp(t, "%s.embedding_layer.weight", P));
    mc_tparam *pos = findp(t, "%s.positional_embedding.pos_embed.pos_embed", P);
    if (pos) x = op_addpos(t, x, pos);
    if (!x) return NULL;
    int D = x->h;
    int layer = 0;
    for (int i = 0;; i++) {
        snprintf(b, sizeof b, "%s.transformer.%d", P, i);
        if (is_repmixer_block(t, b)) {
            tt *c = op_transpose(t, x, n, L, D, n, D, 1, L);
            c = mci_block(t, c, b, BLK_REPMIXER);
            x = op_transpose(t, c, n, D, L, n, L, D, 1);
        } else if (findp(t, "%s.pre_norm_mha.0.weight", b)) {
            int heads = layer < t->cfg.n_text_heads ? t->cfg.text_heads[layer]
                                                     : t->cfg.text_heads[t->cfg.n_text_heads - 1];
            layer++;
            x = transformer_block(t, x, b, &mc_tblock_names_mobileclip, n, L, heads, t->cfg.causal, 1e-5f,
                                  MC_ACT_GELU);
        } else {
            break;
        }
        if (t->failed) return NULL;
    }
    snprintf(b, sizeof b, "%s.final_layer_norm", P);
    x = op_layernorm(t, x, b, 1e-5f);
    eot_positions(tok, n, L, eot);
    x = op_gather(t, x, n, L, D, eot);
    return op_matmul(t, x, needp(t, "%s.projection_layer", P));
}

/* --------------------------------------------------------------- trainer */

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int starts_with(const char *s, const char *pre) { return !strncmp(s, pre, strlen(pre)); }

/* OpenCLIP text tower names of a CLIP without custom_text (top level) */
static int openclip_toplevel_text(const char *nm) {
    return !strcmp(nm, "token_embedding.weight") || !strcmp(nm, "positional_embedding") ||
           starts_with(nm, "transformer.") || starts_with(nm, "ln_final.") || starts_with(nm, "text_projection");
}

/* The tensors a trainer of the layout keeps (the rest of a checkpoint, e.g. a
 * teacher or an optimizer state, is left alone). */
static int train_keeps(int oc, const char *nm) {
    if (!strcmp(nm, "logit_scale")) return 1;
    if (!oc) return starts_with(nm, "image_encoder.") || starts_with(nm, "text_encoder.");
    return starts_with(nm, "visual.") || starts_with(nm, "text.") || openclip_toplevel_text(nm);
}

mc_status mc_trainer_new(const mc_train_config *cfg, const mc_checkpoint *ckpt, const char *path,
                         const mc_dr_loss_params *loss, const mc_adamw_params *opt,
                         mc_trainer **out, mc_error *err) {
    *out = NULL;
    size_t n = mc_checkpoint_count(ckpt);
    /* the layout, from the names */
    int v1 = 0, oc = 0;
    for (size_t i = 0; i < n; i++) {
        const char *nm = mc_checkpoint_tensor(ckpt, i)->name;
        if (starts_with(nm, "image_encoder.")) v1 = 1;
        if (starts_with(nm, "visual.")) oc = 1;
        if (!strcmp(nm, "logit_bias"))
            return mc_fail(err, MC_ERR_UNSUPPORTED,
                           "%s: 'logit_bias' (a SigLIP model) is not supported: the DR loss is the softmax CLIP loss", path);
        if (starts_with(nm, "visual.") && !starts_with(nm, "visual.trunk."))
            return mc_fail(err, MC_ERR_UNSUPPORTED,
                           "%s: tensor '%s': only timm trunks without an OpenCLIP head (timm_proj null) are supported",
                           path, nm);
    }
    if (v1 == oc)
        return mc_fail(err, MC_ERR_UNSUPPORTED,
                       "%s: neither a mobileclip-repo checkpoint (image_encoder.*, text_encoder.*) nor an OpenCLIP one "
                       "(visual.trunk.*, text.*)", path);
    if (cfg->layout != MC_TRAIN_LAYOUT_AUTO && cfg->layout != (oc ? MC_TRAIN_LAYOUT_OPENCLIP : MC_TRAIN_LAYOUT_MOBILECLIP))
        return mc_fail(err, MC_ERR_CONFIG, "%s: a %s checkpoint, but the configuration is for the %s layout", path,
                       oc ? "OpenCLIP" : "mobileclip-repo", oc ? "mobileclip-repo" : "OpenCLIP");
    if (oc && strncmp(cfg->image_arch, "fastvit_mci", 11) && strncmp(cfg->image_arch, "vit_", 4))
        return mc_fail(err, MC_ERR_CONFIG, "%s: an OpenCLIP checkpoint needs a timm image tower name "
                       "(fastvit_mci0..4, vit_base_mci_224), not '%s'", path, cfg->image_arch);
    mc_trainer *t = calloc(1, sizeof *t);
    if (!t) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    t->cfg = *cfg;
    t->cfg.layout = oc ? MC_TRAIN_LAYOUT_OPENCLIP : MC_TRAIN_LAYOUT_MOBILECLIP;
    t->oc = oc;
    t->nm = oc ? &names_timm : &names_mobileclip;
    t->loss = *loss;
    t->opt = *opt;
    if (t->opt.accum_steps < 1) t->opt.accum_steps = 1;
    t->p = calloc(n + 1, sizeof *t->p);
    if (!t->p) { mc_trainer_free(t); return mc_fail(err, MC_ERR_NOMEM, "out of memory"); }
    for (size_t i = 0; i < n; i++) {
        const mc_tensor_info *ti = mc_checkpoint_tensor(ckpt, i);
        if (!train_keeps(oc, ti->name)) continue;
        mc_tparam *p = &t->p[t->np];
        p->name = strdup(ti->name);
        if (!p->name) { mc_trainer_free(t); return mc_fail(err, MC_ERR_NOMEM, "out of memory"); }
        t->np++;
        p->ndim = ti->ndim;
        memcpy(p->shape, ti->shape, sizeof p->shape);
        p->n = (size_t)ti->numel;
        if (ends_with(ti->name, ".num_batches_tracked")) {
            p->is_counter = 1;
            p->is_buffer = 1;
            if (ti->dtype == MC_DTYPE_I64 && ti->numel == 1) memcpy(&p->count, ti->data, 8);
            continue;
        }
        p->is_buffer = ends_with(ti->name, ".running_mean") || ends_with(ti->name, ".running_var");
        p->w = malloc(p->n * sizeof(float) + 4);
        if (!p->is_buffer) {
            p->g = calloc(p->n + 1, sizeof(float));
            p->m = calloc(p->n + 1, sizeof(float));
            p->v = calloc(p->n + 1, sizeof(float));
        }
        if (!p->w || (!p->is_buffer && (!p->g || !p->m || !p->v))) {
            mc_trainer_free(t);
            return mc_fail(err, MC_ERR_NOMEM, "out of memory");
        }
        if (mc_convert_to_f32(ti->dtype, ti->data, p->n, p->w) != MC_OK) {
            mc_trainer_free(t);
            return mc_fail(err, MC_ERR_SHAPE, "%s: tensor '%s' has dtype %s, expected a float type",
                           path, ti->name, mc_dtype_name(ti->dtype));
        }
        p->decay = !p->is_buffer && mc_train_param_decays(p->name, p->ndim);
    }
    t->logit_scale = findp(t, "logit_scale");
    if (!t->logit_scale || t->logit_scale->n != 1 || !t->logit_scale->g)
        { mc_trainer_free(t); return mc_fail(err, MC_ERR_MISSING_TENSOR, "%s: no float tensor 'logit_scale'", path); }
    if (oc) snprintf(t->tp, sizeof t->tp, "%s", findp(t, "token_embedding.weight") ? "" : "text.");
    if (!oc && (!has_prefix(t, "image_encoder.model.") || !has_prefix(t, "text_encoder.")))
        { mc_trainer_free(t); return mc_fail(err, MC_ERR_UNSUPPORTED,
                                             "%s: not a mobileclip-repo MCi checkpoint (image_encoder.model.*, text_encoder.*)", path); }
    if (oc && (!has_prefix(t, "visual.trunk.") || !findp(t, "%stoken_embedding.weight", t->tp)))
        { mc_trainer_free(t); return mc_fail(err, MC_ERR_UNSUPPORTED,
                                             "%s: not an OpenCLIP checkpoint with a timm trunk and a text transformer "
                                             "(visual.trunk.*, text.token_embedding.weight)", path); }
    *out = t;
    return MC_OK;
}

void mc_trainer_free(mc_trainer *t) {
    if (!t) return;
    for (size_t i = 0; i < t->np; i++) {
        free(t->p[i].name);
        free(t->p[i].w); free(t->p[i].g); free(t->p[i].m); free(t->p[i].v); free(t->p[i].gabs);
    }
    free(t->p);
    free(t->used);
    free(t->tape);
    tape_release(&t->mem);
    mc_pool_release(&t->pool);
    free(t);
}

size_t mc_trainer_count(const mc_trainer *t) { return t->np; }
mc_tparam *mc_trainer_param(mc_trainer *t, size_t i) { return i < t->np ? &t->p[i] : NULL; }
mc_tparam *mc_trainer_find(mc_trainer *t, const char *name) { return findp(t, "%s", name); }
int mc_trainer_steps_done(const mc_trainer *t) { return t->step; }
void mc_trainer_set_step(mc_trainer *t, int step) { t->step = step > 0 ? step : 0; }

void mc_trainer_zero_grad(mc_trainer *t) {
    for (size_t i = 0; i < t->np; i++) {
        if (t->p[i].g) memset(t->p[i].g, 0, t->p[i].n * sizeof(float));
        if (t->p[i].gabs) memset(t->p[i].gabs, 0, t->p[i].n * sizeof(float));
        t->p[i].gterms = 0;
    }
    t->micro = 0;
}

mc_status mc_trainer_track_grad_terms(mc_trainer *t, int on, mc_error *err) {
    for (size_t i = 0; i < t->np; i++) {
        mc_tparam *p = &t->p[i];
        if (!on || !p->g) { free(p->gabs); p->gabs = NULL; p->gterms = 0; continue; }
        if (!p->gabs && !(p->gabs = calloc(p->n + 1, sizeof(float)))) {
            mc_trainer_track_grad_terms(t, 0, NULL);
            return mc_fail(err, MC_ERR_NOMEM, "out of memory");
        }
    }
    t->track_terms = on;
    return MC_OK;
}

/* The end of a micro-batch: the tape and every buffer of it free for the next. */
static void tape_clear(mc_trainer *t) {
    t->ntape = 0;
    tape_reset(&t->mem);
    mc_pool_put_all(&t->pool);
}

static mc_status forward_fail(mc_trainer *t, mc_error *err) {
    mc_status st;
    if (t->failed == 2)
        st = mc_fail(err, MC_ERR_MISSING_TENSOR, "training model: missing tensor '%s'", t->missing);
    else if (t->failed == 3)
        st = mc_fail(err, MC_ERR_SHAPE, "training model: inconsistent shapes (heads or positions)");
    else if (t->failed == 4)
        st = mc_fail(err, MC_ERR_INVALID_ARG, "training model: token id out of the vocabulary");
    else
        st = mc_fail(err, MC_ERR_NOMEM, "training model: out of memory");
    t->ntape = 0;
    t->failed = 0;
    t->recompute = 0;
    tape_release(&t->mem);
    mc_pool_release(&t->pool);
    return st;
}

/* After a forward through both towers: every tensor the trainer kept must
 * have taken part (the parameters of the taped ops, the BatchNorm buffers),
 * else the checkpoint holds structure the train-mode model does not know
 * (an unsupported variant) and training would silently ignore it. */
static mc_status check_structure(mc_trainer *t, mc_error *err) {
    if (t->structure_ok || !t->used) return MC_OK;
    for (size_t k = 0; k < t->ntape; k++) { mark(t, t->tape[k].w); mark(t, t->tape[k].b); }
    mark(t, t->logit_scale);
    for (size_t i = 0; i < t->np; i++)
        if (!t->used[i])
            return mc_fail(err, MC_ERR_UNEXPECTED_TENSOR,
                           "training model: tensor '%s' is not used by the train-mode %s model (an unsupported variant)",
                           t->p[i].name, t->oc ? "OpenCLIP" : "mobileclip-repo");
    t->structure_ok = 1;
    free(t->used);
    t->used = NULL;
    return MC_OK;
}

/* Dropout and stochastic depth are not implemented: such a model runs in eval mode only. */
static mc_status refuse_dropout(const mc_trainer *t, mc_error *err) {
    if (t->cfg.drop_rate > 0 || t->cfg.drop_path_rate > 0)
        return mc_fail(err, MC_ERR_UNSUPPORTED,
                       "training model: dropout %g / drop path %g (timm_drop / timm_drop_path) are not implemented; "
                       "such a model runs in eval mode only", t->cfg.drop_rate, t->cfg.drop_path_rate);
    return MC_OK;
}

/* The DR loss of the batch alone (the default of forward_backward_loss). */
static mc_status batch_loss(void *ud, const mc_train_batch *b, const float *img, const float *real, const float *syn,
                            int n, int e, float logit_scale_raw, float terms[4], float *g_img, float *g_real,
                            float *g_syn, float *d_scale, mc_error *err) {
    const mc_trainer *t = ud;
    mc_dr_loss_params lp = t->loss;
    if (!(t->loss.n_teachers > 0 && t->loss.w_distill != 0.0f)) lp.n_teachers = 0, lp.w_distill = 0;
    mc_train_dr_loss(&lp, img, real, n, e, b->teacher_image, b->teacher_text_real, logit_scale_raw, terms, g_img,
                     g_real, d_scale);
    if (syn)
        mc_train_dr_loss(&lp, img, syn, n, e, b->teacher_image, b->teacher_text_syn, logit_scale_raw, terms + 2, g_img,
                         g_syn, d_scale);
    return MC_OK;
}

mc_status mc_trainer_forward_backward(mc_trainer *t, const mc_train_batch *b, mc_train_result *res,
                                      mc_error *err) {
    return mc_trainer_forward_backward_loss(t, b, NULL, NULL, res, err);
}

mc_status mc_trainer_forward_backward_loss(mc_trainer *t, const mc_train_batch *b, mc_train_loss_fn loss,
                                           void *loss_ud, mc_train_result *res, mc_error *err) {
    if (!loss) loss = batch_loss, loss_ud = t;
    int distill = t->loss.n_teachers > 0 && t->loss.w_distill != 0.0f;
    if (!b || b->n < 1 || !b->pixels || !b->tokens_real)
        return mc_fail(err, MC_ERR_INVALID_ARG, "training batch: missing images or captions");
    if (distill && (!b->teacher_image || !b->teacher_text_real || (b->tokens_syn && !b->teacher_text_syn)))
        return mc_fail(err, MC_ERR_INVALID_ARG, "training batch: the distillation loss needs teacher embeddings");
    const int syn = b->tokens_syn != NULL;
    mc_status rs = refuse_dropout(t, err);
    if (rs != MC_OK) return rs;
    if (!t->structure_ok && !t->used && !(t->used = calloc(t->np + 1, 1)))
        return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    int n = b->n;
    double c0 = mc_now_s();
    t->ntape = 0;
    t->failed = 0;
    int32_t *eot = tape_alloc(&t->mem, sizeof(int32_t) * 2 * n);
    if (!eot) t->failed = 1;
    tt *fi = t->failed ? NULL : image_forward(t, b->pixels, n);
    tt *fr = t->failed ? NULL : text_forward(t, b->tokens_real, n, eot);
    tt *fs = t->failed || !syn ? NULL : text_forward(t, b->tokens_syn, n, eot + n);
    tt *ei = op_l2norm(t, fi), *er = op_l2norm(t, fr), *es = syn ? op_l2norm(t, fs) : NULL;
    if (t->failed || !ei || !er || (syn && !es)) return forward_fail(t, err);
    if ((rs = check_structure(t, err)) != MC_OK) { tape_clear(t); return rs; }
    double c1 = mc_now_s();
    int e = (int)(numel(ei) / n);
    if ((int)(numel(er) / n) != e) {
        tape_clear(t);
        return mc_fail(err, MC_ERR_SHAPE, "training model: image embedding dim %d, text %d", e, (int)(numel(er) / n));
    }
    float *gi = gradof(t, ei), *gr = gradof(t, er), *gs = syn ? gradof(t, es) : NULL;
    if (!gi || !gr || (syn && !gs)) return forward_fail(t, err);
    float dscale = 0, terms[4] = {0, 0, 0, 0};
    rs = loss(loss_ud, b, ei->d, er->d, syn ? es->d : NULL, n, e, t->logit_scale->w[0], terms, gi, gr, gs, &dscale,
              err);
    if (rs != MC_OK) { tape_clear(t); return rs; }
    t->logit_scale->g[0] += dscale;
    double c2 = mc_now_s();
    backward_range(t, 0);
    if (t->failed) return forward_fail(t, err);
    if (res) {
        memcpy(res->terms, terms, sizeof terms);
        res->loss = terms[0] + terms[1] + terms[2] + terms[3];
        res->t_forward += c1 - c0;
        res->t_loss += c2 - c1;
        res->t_backward += mc_now_s() - c2;
    }
    t->micro++;
    tape_clear(t);
    return MC_OK;
}

void mc_trainer_set_eval(mc_trainer *t, int on) { t->eval = on != 0; }
void mc_trainer_set_grad_checkpointing(mc_trainer *t, int on) { t->ckpt = on != 0; }

void mc_trainer_memory(const mc_trainer *t, mc_train_memory *m) {
    m->peak_bytes = t->pool.peak_live;
    m->held_bytes = t->pool.touched;
    m->made_bytes = t->pool.peak_made;
}

mc_status mc_trainer_features(mc_trainer *t, const float *pixels, int n_img, const int32_t *tokens,
                              int n_txt, float *img, float *txt, const float *d_img,
                              const float *d_txt, mc_error *err) {
    if (n_img < 0 || n_txt < 0 || (n_img > 0 && (!pixels || !img)) || (n_txt > 0 && (!tokens || !txt)))
        return mc_fail(err, MC_ERR_INVALID_ARG, "trainer features: missing inputs or outputs");
    if (!t->eval) {
        mc_status rs = refuse_dropout(t, err);
        if (rs != MC_OK) return rs;
    }
    if (!t->structure_ok && !t->used && !(t->used = calloc(t->np + 1, 1)))
        return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    t->ntape = 0;
    t->failed = 0;
    int32_t *eot = tape_alloc(&t->mem, sizeof(int32_t) * (n_txt + 1));
    if (!eot) t->failed = 1;
    tt *fi = !t->failed && n_img > 0 ? image_forward(t, pixels, n_img) : NULL;
    tt *ft = !t->failed && n_txt > 0 ? text_forward(t, tokens, n_txt, eot) : NULL;
    if (t->failed || (n_img > 0 && !fi) || (n_txt > 0 && !ft)) return forward_fail(t, err);
    if (fi && ft) {   /* both towers ran: every tensor must have been used */
        mc_status rs = check_structure(t, err);
        if (rs != MC_OK) { tape_clear(t); return rs; }
    } else {
        for (size_t k = 0; t->used && k < t->ntape; k++) { mark(t, t->tape[k].w); mark(t, t->tape[k].b); }
    }
    if (fi) memcpy(img, fi->d, numel(fi) * sizeof(float));
    if (ft) memcpy(txt, ft->d, numel(ft) * sizeof(float));
    if (fi && d_img) {
        float *g = gradof(t, fi);
        if (!g) return forward_fail(t, err);
        memcpy(g, d_img, numel(fi) * sizeof(float));
    }
    if (ft && d_txt) {
        float *g = gradof(t, ft);
        if (!g) return forward_fail(t, err);
        memcpy(g, d_txt, numel(ft) * sizeof(float));
    }
    if ((fi && d_img) || (ft && d_txt)) {
        backward_range(t, 0);
        if (t->failed) return forward_fail(t, err);
    }
    tape_clear(t);
    return MC_OK;
}

const mc_dr_loss_params *mc_trainer_loss_params(const mc_trainer *t) { return &t->loss; }
void mc_trainer_set_accumulated(mc_trainer *t, int n) { t->micro = n > 0 ? n : 0; }

int mc_trainer_embed_dim(mc_trainer *t) {
    mc_tparam *p = t->oc ? findp(t, "%stext_projection", t->tp) : findp(t, "text_encoder.projection_layer");
    if (p) return p->ndim == 2 ? (int)p->shape[1] : 0;
    p = t->oc ? findp(t, "%stext_projection.weight", t->tp) : NULL;   /* nn.Linear [E, W] */
    return p && p->ndim == 2 ? (int)p->shape[0] : 0;
}

int mc_trainer_layout(const mc_trainer *t) { return t->cfg.layout; }


mc_status mc_trainer_step(mc_trainer *t, mc_train_result *res, mc_error *err) {
    if (t->micro < 1) return mc_fail(err, MC_ERR_INVALID_ARG, "trainer step: no gradients accumulated");
    double c0 = mc_now_s();
    float inv = 1.0f / (float)t->micro;
    double sq = 0;
    for (size_t i = 0; i < t->np; i++) {
        mc_tparam *p = &t->p[i];
        if (!p->g) continue;
        if (t->micro > 1) for (size_t k = 0; k < p->n; k++) p->g[k] *= inv;
        if (t->micro > 1 && p->gabs) for (size_t k = 0; k < p->n; k++) p->gabs[k] *= inv;
        for (size_t k = 0; k < p->n; k++) sq += (double)p->g[k] * p->g[k];
    }
    float norm = (float)sqrt(sq);
    if (t->opt.grad_clip > 0) {
        float coef = t->opt.grad_clip / (norm + 1e-6f);
        if (coef < 1.0f)
            for (size_t i = 0; i < t->np; i++)
                if (t->p[i].g) for (size_t k = 0; k < t->p[i].n; k++) t->p[i].g[k] *= coef;
    }
    float lr = mc_train_lr_at(&t->opt, t->step);
    t->step++;
    for (size_t i = 0; i < t->np; i++) {
        mc_tparam *p = &t->p[i];
        if (!p->g) continue;
        mc_adamw_update(p->w, p->g, p->m, p->v, p->n, lr, t->opt.beta1, t->opt.beta2, t->opt.eps,
                        p->decay ? t->opt.weight_decay : 0.0f, t->step);
    }
    float *ls = t->logit_scale->w;
    if (ls[0] < 0) ls[0] = 0;
    if (ls[0] > t->opt.logit_scale_max) ls[0] = t->opt.logit_scale_max;
    mc_trainer_zero_grad(t);
    if (res) { res->lr = lr; res->grad_norm = norm; res->t_optim += mc_now_s() - c0; }
    return MC_OK;
}

mc_status mc_trainer_train_step(mc_trainer *t, const mc_train_batch *b, mc_train_result *res,
                                mc_error *err) {
    mc_status st = mc_trainer_forward_backward(t, b, res, err);
    if (st != MC_OK) return st;
    return mc_trainer_step(t, res, err);
}

/* ---------------------------------------------------------------- config */

/* image_size: a number, or [h, w] with h == w; -1 when invalid */
static int json_image_size(const mc_json *v, int dflt) {
    if (!v || v->type == MC_JSON_NULL) return dflt;
    if (v->type == MC_JSON_ARRAY) {
        if (v->len != 2 || v->items[0].type != MC_JSON_NUMBER || v->items[0].number != v->items[1].number) return -1;
        v = &v->items[0];
    }
    if (v->type != MC_JSON_NUMBER || v->number < 16 || v->number > 8192 || v->number != (int)v->number) return -1;
    return (int)v->number;
}

static int json_is_set(const mc_json *v) {
    return v && v->type != MC_JSON_NULL && !(v->type == MC_JSON_BOOL && !v->boolean);
}

/* The mobileclip repo's config.json: image_cfg / text_cfg */
static mc_status config_mobileclip(const mc_json *root, const char *path, mc_train_config *cfg, mc_error *err) {
    const mc_json *ic = mc_json_get(root, "image_cfg"), *tc = mc_json_get(root, "text_cfg");
    cfg->layout = MC_TRAIN_LAYOUT_MOBILECLIP;
    snprintf(cfg->image_arch, sizeof cfg->image_arch, "%s", mc_json_str(mc_json_get(ic, "model_name"), ""));
    snprintf(cfg->text_arch, sizeof cfg->text_arch, "%s", mc_json_str(mc_json_get(tc, "model_name"), ""));
    cfg->image_size = mc_json_int(mc_json_get(ic, "image_size"), 256);
    cfg->context_length = mc_json_int(mc_json_get(tc, "context_length"), 77);
    cfg->causal = mc_json_bool(mc_json_get(tc, "causal_masking"), false);
    const mc_json *h = mc_json_get(tc, "n_heads_per_layer");
    int nl = mc_json_int(mc_json_get(tc, "n_transformer_layers"), 1);
    if (h && h->type == MC_JSON_ARRAY) {
        for (size_t i = 0; i < h->len && i < 64; i++) cfg->text_heads[cfg->n_text_heads++] = mc_json_int(&h->items[i], 8);
    } else {
        int hv = mc_json_int(h, 8);
        for (int i = 0; i < nl && i < 64; i++) cfg->text_heads[cfg->n_text_heads++] = hv;
    }
    if (cfg->n_text_heads == 0) cfg->text_heads[cfg->n_text_heads++] = 8;
    if (strncmp(cfg->image_arch, "mci", 3) && strcmp(cfg->image_arch, "vit_b16"))
        return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: training supports the MCi and vit_b16 image towers, not '%s'",
                       path, cfg->image_arch);
    if (strcmp(cfg->text_arch, "mct") && strcmp(cfg->text_arch, "base"))
        return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: unknown text tower '%s'", path, cfg->text_arch);
    return MC_OK;
}

/* OpenCLIP's model config (model_cfg of open_clip_config.json, or a bare one) */
static mc_status config_openclip(const mc_json *mc, const char *path, mc_train_config *cfg, mc_error *err) {
    const mc_json *vc = mc_json_get(mc, "vision_cfg"), *tc = mc_json_get(mc, "text_cfg");
    cfg->layout = MC_TRAIN_LAYOUT_OPENCLIP;
    const char *timm = mc_json_str(mc_json_get(vc, "timm_model_name"), NULL);
    if (!timm)
        return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: training supports timm image towers (vision_cfg.timm_model_name), "
                       "not OpenCLIP's own vision transformer", path);
    int mci = !strncmp(timm, "fastvit_mci", 11) && timm[11] >= '0' && timm[11] <= '4' && !timm[12];
    int vit = !strcmp(timm, "vit_base_mci_224") || (!strncmp(timm, "vit_", 4) && strstr(timm, "_clip_") &&
                                                   !strstr(timm, "quickgelu"));
    if (!mci && !vit)
        return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: training supports the timm towers fastvit_mci0..4, "
                       "vit_base_mci_224 and vit_*_clip_*, not '%s'", path, timm);
    snprintf(cfg->image_arch, sizeof cfg->image_arch, "%.31s", timm);
    snprintf(cfg->text_arch, sizeof cfg->text_arch, "open_clip");
    cfg->image_size = json_image_size(mc_json_get(vc, "image_size"), 224);
    if (cfg->image_size < 0) return mc_fail(err, MC_ERR_CONFIG, "%s: vision_cfg.image_size is invalid", path);
    const char *pool = mc_json_str(mc_json_get(vc, "timm_pool"), "avg");
    if (strcmp(pool, mci ? "avg" : "token"))
        return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: timm_pool '%s' is not supported for %s (only '%s')", path, pool,
                       timm, mci ? "avg" : "token");
    const char *proj = mc_json_str(mc_json_get(vc, "timm_proj"), "");
    if (proj[0] && strcmp(proj, "none"))
        return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: timm_proj '%s' is not supported (the trunk's head is the projection)",
                       path, proj);
    cfg->drop_rate = (float)mc_json_number(mc_json_get(vc, "timm_drop"), 0);
    cfg->drop_path_rate = (float)mc_json_number(mc_json_get(vc, "timm_drop_path"), 0);
    if (!(cfg->drop_rate >= 0 && cfg->drop_rate < 1 && cfg->drop_path_rate >= 0 && cfg->drop_path_rate < 1))
        return mc_fail(err, MC_ERR_CONFIG, "%s: timm_drop / timm_drop_path must be in [0, 1)", path);
    cfg->quick_gelu = mc_json_bool(mc_json_get(mc, "quick_gelu"), false);
    if (json_is_set(mc_json_get(mc, "init_logit_bias")))
        return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: init_logit_bias (a SigLIP model) is not supported", path);
    if (json_is_set(mc_json_get(tc, "hf_model_name")))
        return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: Hugging Face text towers are not supported", path);
    if (json_is_set(mc_json_get(tc, "embed_cls")) || json_is_set(mc_json_get(tc, "ls_init_value")))
        return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: text_cfg embed_cls / ls_init_value are not supported", path);
    const char *tpool = mc_json_str(mc_json_get(tc, "pool_type"), "argmax");
    if (strcmp(tpool, "argmax"))
        return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: text pool_type '%s' is not supported (only argmax)", path, tpool);
    cfg->context_length = mc_json_int(mc_json_get(tc, "context_length"), 77);
    cfg->text_heads[0] = mc_json_int(mc_json_get(tc, "heads"), 8);
    cfg->n_text_heads = 1;
    cfg->causal = !mc_json_bool(mc_json_get(tc, "no_causal_mask"), false);
    if (cfg->context_length < 1 || cfg->context_length > 16384 || cfg->text_heads[0] < 1)
        return mc_fail(err, MC_ERR_CONFIG, "%s: text_cfg context_length / heads are invalid", path);
    return MC_OK;
}

mc_status mc_train_config_load(const char *path, mc_train_config *cfg, mc_error *err) {
    memset(cfg, 0, sizeof *cfg);
    cfg->bn_momentum = 0.1f;
    char file[4096];
    snprintf(file, sizeof file, "%s", path);
    if (mc_path_is_dir(path)) {
        snprintf(file, sizeof file, "%s/open_clip_config.json", path);
        if (!mc_path_is_file(file)) snprintf(file, sizeof file, "%s/config.json", path);
        if (!mc_path_is_file(file))
            return mc_fail(err, MC_ERR_IO, "%s: no open_clip_config.json or config.json in the folder", path);
    }
    char *text = NULL;
    size_t len = 0;
    mc_status st = mc_file_read_all(file, 1 << 20, &text, &len, err);
    if (st != MC_OK) return st;
    mc_json *root = NULL;
    st = mc_json_parse(text, len, &root, err);
    free(text);
    if (st != MC_OK) { mc_error_prefix(err, "%s", file); return st; }
    if (mc_json_get(root, "model_cfg"))
        st = config_openclip(mc_json_get(root, "model_cfg"), file, cfg, err);
    else if (mc_json_get(root, "vision_cfg") && mc_json_get(root, "text_cfg"))
        st = config_openclip(root, file, cfg, err);
    else if (mc_json_get(root, "image_cfg") && mc_json_get(root, "text_cfg"))
        st = config_mobileclip(root, file, cfg, err);
    else
        st = mc_fail(err, MC_ERR_CONFIG, "%s: needs image_cfg and text_cfg (mobileclip repo config) or model_cfg "
                     "(OpenCLIP config)", file);
    mc_json_free(root);
    return st;
}
