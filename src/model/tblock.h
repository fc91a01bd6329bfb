/*
 * model/tblock.h - the pre-norm transformer block shared by the ViT image towers
 * and the text towers: x += attn(ln1(x)); x += mlp(ln2(x)), with the tensor
 * names of each checkpoint layout (timm, OpenCLIP, mobileclip repo).
 */
#ifndef MC_TBLOCK_H
#define MC_TBLOCK_H

#include "kernels/kernels.h"
#include "model/binder.h"

/* Tensor names of one block, relative to the block prefix ("...blocks.3."). */
typedef struct mc_tblock_names {
    const char *ln1_w, *ln1_b;
    const char *qkv_w, *qkv_b;
    const char *out_w, *out_b;
    const char *ln2_w, *ln2_b;
    const char *fc1_w, *fc1_b;
    const char *fc2_w, *fc2_b;
} mc_tblock_names;

extern const mc_tblock_names mc_tblock_names_timm;      /* norm1, attn.qkv, mlp.fc1 ... */
extern const mc_tblock_names mc_tblock_names_openclip;  /* ln_1, attn.in_proj_weight, mlp.c_fc ... */
extern const mc_tblock_names mc_tblock_names_mobileclip;/* pre_norm_mha.0, pre_norm_ffn.1 ... */

typedef struct mc_tblock {
    int dim, hidden, heads;
    float eps;
    mc_act act;
    const float *ln1_w, *ln1_b;   /* [dim] */
    const float *qkv_w, *qkv_b;   /* [3 dim, dim], [3 dim] */
    const float *out_w, *out_b;   /* [dim, dim], [dim] */
    const float *ln2_w, *ln2_b;   /* [dim] */
    const float *fc1_w, *fc1_b;   /* [hidden, dim], [hidden] */
    const float *fc2_w, *fc2_b;   /* [dim, hidden], [dim] */
    mc_qmat qkv_q, out_q, fc1_q, fc2_q;   /* reduced copies (the _w are then NULL); type F32: none */
} mc_tblock;

/* Binds block `prefix` (e.g. "visual.trunk.blocks.0."): dim is known; the
 * MLP width comes from the checkpoint.  heads must divide dim. */
mc_status mc_tblock_bind(mc_binder *b, const char *prefix, const mc_tblock_names *names, int dim,
                         int heads, float eps, mc_act act, mc_tblock *out);

/* Replaces the four matrices by reduced copies (src/kernels/lowp.h). */
struct mc_lower;
void mc_tblock_lower(mc_tblock *blk, struct mc_lower *L);

/* Adds the block's weights to an export under prefix + the layout's names. */
struct mc_export;
void mc_tblock_export(struct mc_export *ex, const mc_tblock *blk, const char *prefix,
                      const mc_tblock_names *names);

/* Sequences are processed in chunks of about MC_TBLOCK_ROWS tokens (at least
 * one sequence): GEMMs stay large, while the MLP's hidden activations of a
 * chunk stay in cache and the scratch does not grow with the batch. */
#define MC_TBLOCK_ROWS 768
int mc_tblock_chunk(int nseq, int t);

/* Floats of scratch one call needs for nseq sequences of t tokens. */
size_t mc_tblock_workspace(const mc_tblock *blk, int nseq, int t);
/* The most mc_tblock_workspace(blk, nseq, t) needs over t = 1 .. tmax (text
 * towers run causal stacks on shortened sequences). */
size_t mc_tblock_workspace_upto(const mc_tblock *blk, int nseq, int tmax);

/* x[nseq, t, dim] updated in place (sequences one after another; attention
 * stays within each); ws: mc_tblock_workspace(blk, nseq, t) floats. */
void mc_tblock_forward(const mc_tblock *blk, float *x, int nseq, int t, int causal, float *ws);

#endif /* MC_TBLOCK_H */
