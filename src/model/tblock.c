/*
 * model/tblock.c - the pre-norm transformer block (see tblock.h): binding by
 * layout, export under those names and the forward pass on one sequence.
 * layout and the forward pass on a batch of sequences
 * (every linear layer is one GEMM over the tokens of a chunk of sequences).
 */
#include "model/tblock.h"
#include "kernels/lowp.h"

#include "model/export.h"

#include <stdio.h>
#include <string.h>

const mc_tblock_names mc_tblock_names_timm = {
    "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
    "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
    "mlp.fc2.weight", "mlp.fc2.bias"};
const mc_tblock_names mc_tblock_names_openclip = {
    "ln_1.weight", "ln_1.bias", "attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight",
    "attn.out_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
    "mlp.c_proj.weight", "mlp.c_proj.bias"};
const mc_tblock_names mc_tblock_names_mobileclip = {
    "pre_norm_mha.0.weight", "pre_norm_mha.0.bias", "pre_norm_mha.1.qkv_proj.weight",
    "pre_norm_mha.1.qkv_proj.bias", "pre_norm_mha.1.out_proj.weight", "pre_norm_mha.1.out_proj.bias",
    "pre_norm_ffn.0.weight", "pre_norm_ffn.0.bias", "pre_norm_ffn.1.weight", "pre_norm_ffn.1.bias",
    "pre_norm_ffn.4.weight", "pre_norm_ffn.4.bias"};

mc_status mc_tblock_bind(mc_binder *b, const char *prefix, const mc_tblock_names *nm, int dim,
                         int heads, float eps, mc_act act, mc_tblock *out) {
    memset(out, 0, sizeof *out);
    if (b->status != MC_OK) return b->status;
    if (heads <= 0 || dim % heads != 0)
        return b->status = mc_fail(b->err, MC_ERR_CONFIG, "%s: %d attention heads do not divide width %d",
                                   b->path, heads, dim);
    const mc_tensor_info *fc1 = mc_binder_peek(b, "%s%s", prefix, nm->fc1_w);
    int hidden = (fc1 && fc1->ndim == 2) ? (int)fc1->shape[0] : 4 * dim;
    out->dim = dim;
    out->hidden = hidden;
    out->heads = heads;
    out->eps = eps;
    out->act = act;
    out->ln1_w = mc_bind1(b, dim, "%s%s", prefix, nm->ln1_w);
    out->ln1_b = mc_bind1(b, dim, "%s%s", prefix, nm->ln1_b);
    out->qkv_w = mc_bind2(b, 3 * dim, dim, "%s%s", prefix, nm->qkv_w);
    out->qkv_b = mc_bind1(b, 3 * dim, "%s%s", prefix, nm->qkv_b);
    out->out_w = mc_bind2(b, dim, dim, "%s%s", prefix, nm->out_w);
    out->out_b = mc_bind1(b, dim, "%s%s", prefix, nm->out_b);
    out->ln2_w = mc_bind1(b, dim, "%s%s", prefix, nm->ln2_w);
    out->ln2_b = mc_bind1(b, dim, "%s%s", prefix, nm->ln2_b);
    out->fc1_w = mc_bind2(b, hidden, dim, "%s%s", prefix, nm->fc1_w);
    out->fc1_b = mc_bind1(b, hidden, "%s%s", prefix, nm->fc1_b);
    out->fc2_w = mc_bind2(b, dim, hidden, "%s%s", prefix, nm->fc2_w);
    out->fc2_b = mc_bind1(b, dim, "%s%s", prefix, nm->fc2_b);
    return b->status;
}

void mc_tblock_export(mc_export *ex, const mc_tblock *blk, const char *prefix, const mc_tblock_names *nm) {
    int64_t d = blk->dim, h = blk->hidden, d3 = 3 * d;
    mc_export_add(ex, blk->ln1_w, 1, &d, "%s%s", prefix, nm->ln1_w);
    mc_export_add(ex, blk->ln1_b, 1, &d, "%s%s", prefix, nm->ln1_b);
    mc_export_add_w(ex, blk->qkv_w, &blk->qkv_q, 2, (int64_t[]){d3, d}, "%s%s", prefix, nm->qkv_w);
    mc_export_add(ex, blk->qkv_b, 1, &d3, "%s%s", prefix, nm->qkv_b);
    mc_export_add_w(ex, blk->out_w, &blk->out_q, 2, (int64_t[]){d, d}, "%s%s", prefix, nm->out_w);
    mc_export_add(ex, blk->out_b, 1, &d, "%s%s", prefix, nm->out_b);
    mc_export_add(ex, blk->ln2_w, 1, &d, "%s%s", prefix, nm->ln2_w);
    mc_export_add(ex, blk->ln2_b, 1, &d, "%s%s", prefix, nm->ln2_b);
    mc_export_add_w(ex, blk->fc1_w, &blk->fc1_q, 2, (int64_t[]){h, d}, "%s%s", prefix, nm->fc1_w);
    mc_export_add(ex, blk->fc1_b, 1, &h, "%s%s", prefix, nm->fc1_b);
    mc_export_add_w(ex, blk->fc2_w, &blk->fc2_q, 2, (int64_t[]){d, h}, "%s%s", prefix, nm->fc2_w);
    mc_export_add(ex, blk->fc2_b, 1, &d, "%s%s", prefix, nm->fc2_b);
}

void mc_tblock_lower(mc_tblock *blk, mc_lower *L) {
    int64_t d = blk->dim, h = blk->hidden;
    MC_LOWER(L, blk->qkv_w, 3 * d, d, blk->qkv_q);
    MC_LOWER(L, blk->out_w, d, d, blk->out_q);
    MC_LOWER(L, blk->fc1_w, h, d, blk->fc1_q);
    MC_LOWER(L, blk->fc2_w, d, h, blk->fc2_q);
}

int mc_tblock_chunk(int nseq, int t) {
    int c = MC_TBLOCK_ROWS / (t > 0 ? t : 1);
    if (c < 1) c = 1;
    return c < nseq ? c : nseq;
}

size_t mc_tblock_workspace(const mc_tblock *blk, int nseq, int t) {
    size_t R = (size_t)mc_tblock_chunk(nseq, t) * t, d = (size_t)blk->dim;
    size_t mlp = R * (size_t)blk->hidden;
    size_t attn = R * 4 * d;   /* qkv, context */
    return R * d + (mlp > attn ? mlp : attn);
}

size_t mc_tblock_workspace_upto(const mc_tblock *blk, int nseq, int tmax) {
    size_t m = 0;
    for (int t = 1; t <= tmax; t++) {   /* chunk x t is not monotonic in t */
        size_t s = mc_tblock_workspace(blk, nseq, t);
        if (s > m) m = s;
    }
    return m;
}

/* One chunk of nseq sequences. */
static void tblock_rows(const mc_tblock *blk, float *x, int nseq, int t, int causal, float *ws) {
    int d = blk->dim, rows = nseq * t;
    size_t R = (size_t)rows;
    float *h = ws;                            /* [R, d] normed input */
    float *qkv = h + R * d;                   /* [R, 3d] */
    float *ctx = qkv + R * 3 * d;             /* [R, d] */
    float *mid = h + R * d;                   /* [R, hidden] (reuses qkv) */

    mc_layernorm(x, rows, d, blk->ln1_w, blk->ln1_b, blk->eps, h);
    mc_linear_q(h, blk->qkv_w, &blk->qkv_q, blk->qkv_b, rows, d, 3 * d, qkv, MC_ACT_NONE);
    mc_attention_batch(qkv, qkv + d, qkv + 2 * d, 3 * d, nseq, t, blk->heads, d / blk->heads, causal, ctx);
    mc_linear_add_q(ctx, blk->out_w, &blk->out_q, blk->out_b, rows, d, d, x);

    mc_layernorm(x, rows, d, blk->ln2_w, blk->ln2_b, blk->eps, h);
    mc_linear_q(h, blk->fc1_w, &blk->fc1_q, blk->fc1_b, rows, d, blk->hidden, mid, blk->act);
    mc_linear_add_q(mid, blk->fc2_w, &blk->fc2_q, blk->fc2_b, rows, blk->hidden, d, x);
}

void mc_tblock_forward(const mc_tblock *blk, float *x, int nseq, int t, int causal, float *ws) {
    int c = mc_tblock_chunk(nseq, t);
    for (int s = 0; s < nseq; s += c)
        tblock_rows(blk, x + (size_t)s * t * blk->dim, nseq - s < c ? nseq - s : c, t, causal, ws);
}
