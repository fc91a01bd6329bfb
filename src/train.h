/*
 * train.h - multi-modal reinforced training (MobileCLIP "DR" training):
 * train-mode forward/backward kernels on raw float arrays, the DR loss,
 * AdamW with the reference's parameter groups, a tape that records the
 * unfused train-mode model (mobileclip-repo layout: MCi or vit_b16 image
 * tower, mct/base text tower) for the backward pass, and training-state checkpoints.
 *
 * Kernel conventions (llm.c style): every forward has a backward that
 * accumulates (+=) into the gradients it is given (NULL = not wanted).
 * Feature maps are NCHW; sequences are [rows, dim].
 */
#ifndef MC_TRAIN_H
#define MC_TRAIN_H

#include "kernels.h"
#include "mc_internal.h"
#include "weights.h"

/* ---------------------------------------------------------------- kernels */

/* y[n,cout,oh,ow] = conv(x[n,cin,h,w], w[cout,cin/g,kh,kw]) + b[cout] (b may be NULL) */
void mc_train_conv2d_forward(const mc_conv2d_desc *d, const float *x, int n, int h, int wd,
                             const float *w, const float *b, float *y);
/* dx[n,cin,h,w] += ..., dw += ..., db += ... from dy[n,cout,oh,ow] */
void mc_train_conv2d_backward(const mc_conv2d_desc *d, const float *x, int n, int h, int wd,
                              const float *w, const float *dy, float *dx, float *dw, float *db);

/* BatchNorm2d in train mode over x[n,c,hw]: batch mean / biased variance;
 * saves mean[c], rstd[c]; updates running_mean/var (unbiased var) with
 * momentum when they are non-NULL. */
void mc_train_bn_forward(const float *x, int n, int c, int hw, const float *g, const float *b,
                         float eps, float momentum, float *running_mean, float *running_var,
                         float *y, float *mean, float *rstd);
void mc_train_bn_backward(const float *x, int n, int c, int hw, const float *g, const float *mean,
                          const float *rstd, const float *dy, float *dx, float *dg, float *db);

/* y[m,n] = x[m,k] . w[n,k]^T + b[n] */
void mc_train_linear_forward(const float *x, const float *w, const float *b, int m, int k, int n,
                             float *y);
void mc_train_linear_backward(const float *x, const float *w, int m, int k, int n, const float *dy,
                              float *dx, float *dw, float *db);
/* y[m,n] = x[m,k] . p[k,n] (projection parameters stored [in, out]) */
void mc_train_matmul_forward(const float *x, const float *p, int m, int k, int n, float *y);
void mc_train_matmul_backward(const float *x, const float *p, int m, int k, int n, const float *dy,
                              float *dx, float *dp);

/* LayerNorm over the last dim; saves mean[rows], rstd[rows]. */
void mc_train_layernorm_forward(const float *x, int rows, int dim, const float *g, const float *b,
                                float eps, float *y, float *mean, float *rstd);
void mc_train_layernorm_backward(const float *x, int rows, int dim, const float *g,
                                 const float *mean, const float *rstd, const float *dy, float *dx,
                                 float *dg, float *db);

/* Elementwise activations (MC_ACT_RELU, MC_ACT_GELU exact, MC_ACT_SIGMOID). */
void mc_train_act_forward(const float *x, size_t n, mc_act act, float *y);
void mc_train_act_backward(const float *x, size_t n, mc_act act, const float *dy, float *dx);

/* Multi-head self-attention for b sequences: qkv[b,t,3*heads*hd] (q | k | v,
 * heads contiguous) -> out[b,t,heads*hd]; probs[b,heads,t,t] saved. */
void mc_train_attention_forward(const float *qkv, int b, int t, int heads, int hd, int causal,
                                float *out, float *probs);
void mc_train_attention_backward(const float *qkv, int b, int t, int heads, int hd,
                                 const float *probs, const float *dout, float *dqkv);

/* Rows of x[n,d] divided by max(||x||, 1e-12). */
void mc_train_l2norm_forward(const float *x, int n, int d, float *y);
void mc_train_l2norm_backward(const float *x, int n, int d, const float *dy, float *dx);

/* The plain scalar versions of the kernels above (train_kernels_ref.c): the
 * oracles of the fast ones, which run on the blocked SGEMM and the fast
 * convolution of kernels.h / gemm.h.  The fast kernels give the same results
 * for any thread count (every output element is reduced in a fixed order);
 * they differ from the _ref versions by float rounding only (the _ref
 * reductions run in double, the GEMM ones in float). */
void mc_train_conv2d_forward_ref(const mc_conv2d_desc *d, const float *x, int n, int h, int wd,
                                 const float *w, const float *b, float *y);
void mc_train_conv2d_backward_ref(const mc_conv2d_desc *d, const float *x, int n, int h, int wd,
                                  const float *w, const float *dy, float *dx, float *dw, float *db);
void mc_train_bn_forward_ref(const float *x, int n, int c, int hw, const float *g, const float *b,
                             float eps, float momentum, float *running_mean, float *running_var,
                             float *y, float *mean, float *rstd);
void mc_train_bn_backward_ref(const float *x, int n, int c, int hw, const float *g, const float *mean,
                              const float *rstd, const float *dy, float *dx, float *dg, float *db);
void mc_train_linear_forward_ref(const float *x, const float *w, const float *b, int m, int k, int n,
                                 float *y);
void mc_train_linear_backward_ref(const float *x, const float *w, int m, int k, int n, const float *dy,
                                  float *dx, float *dw, float *db);
void mc_train_matmul_forward_ref(const float *x, const float *p, int m, int k, int n, float *y);
void mc_train_matmul_backward_ref(const float *x, const float *p, int m, int k, int n, const float *dy,
                                  float *dx, float *dp);
void mc_train_layernorm_forward_ref(const float *x, int rows, int dim, const float *g, const float *b,
                                    float eps, float *y, float *mean, float *rstd);
void mc_train_layernorm_backward_ref(const float *x, int rows, int dim, const float *g,
                                     const float *mean, const float *rstd, const float *dy, float *dx,
                                     float *dg, float *db);
void mc_train_act_forward_ref(const float *x, size_t n, mc_act act, float *y);
void mc_train_act_backward_ref(const float *x, size_t n, mc_act act, const float *dy, float *dx);
void mc_train_attention_forward_ref(const float *qkv, int b, int t, int heads, int hd, int causal,
                                    float *out, float *probs);
void mc_train_attention_backward_ref(const float *qkv, int b, int t, int heads, int hd,
                                     const float *probs, const float *dout, float *dqkv);
void mc_train_l2norm_forward_ref(const float *x, int n, int d, float *y);
void mc_train_l2norm_backward_ref(const float *x, int n, int d, const float *dy, float *dx);

/* ------------------------------------------------------------------- loss */

typedef struct mc_dr_loss_params {
    int n_teachers;
    int teacher_dims[8];
    float teacher_scales[8];  /* softmax temperature per teacher (e.g. 100) */
    float lambda;             /* distillation weight; contrastive gets 1 - lambda */
    float w_contrastive;      /* explicit weights (default 1-lambda, lambda) */
    float w_distill;
} mc_dr_loss_params;

/* One caption batch: img, txt [b, e] L2-normalised student embeddings;
 * t_img, t_txt [b, sum(teacher_dims)] teacher embeddings; logit_scale_raw is
 * the parameter (before exp).  terms[0] = weighted contrastive loss,
 * terms[1] = weighted distillation loss.  Gradients accumulate (+=) into
 * d_img, d_txt [b, e] and *d_scale (any may be NULL). */
void mc_train_dr_loss(const mc_dr_loss_params *p, const float *img, const float *txt, int b, int e,
                      const float *t_img, const float *t_txt, float logit_scale_raw,
                      float terms[2], float *d_img, float *d_txt, float *d_scale);

/* -------------------------------------------------------------- optimizer */

typedef struct mc_adamw_params {
    float lr, beta1, beta2, eps, weight_decay;
    float logit_scale_max;    /* clamp of logit_scale after each step (ln 100) */
    float grad_clip;          /* global-norm clipping; 0 = off */
    int warmup_steps;         /* linear warm-up, then cosine to 0 over total_steps */
    int total_steps;          /* 0: constant lr after warm-up */
    int accum_steps;          /* gradient accumulation (micro-batches per step) */
} mc_adamw_params;

mc_adamw_params mc_adamw_default_params(void);
/* The learning rate of 0-based step `step` (warm-up + cosine as open_clip). */
float mc_train_lr_at(const mc_adamw_params *p, int step);
/* The reference's rule: no decay for ndim < 2 or names containing bn, ln, bias, logit_scale. */
int mc_train_param_decays(const char *name, int ndim);
/* One AdamW update of n elements at step t (1-based). */
void mc_adamw_update(float *w, const float *g, float *m, float *v, size_t n, float lr, float beta1,
                     float beta2, float eps, float wd, int t);

/* ------------------------------------------------------------------ model */

typedef struct mc_tparam {
    char *name;               /* mobileclip-repo tensor name */
    int ndim;
    int64_t shape[MC_MAX_DIMS];
    size_t n;
    float *w, *g, *m, *v;     /* value, gradient, AdamW moments */
    int decay;
    int is_buffer;            /* BatchNorm running statistics: no gradient */
    int64_t count;            /* num_batches_tracked (buffers named *.num_batches_tracked) */
    int is_counter;
    /* Only while the trainer tracks gradient magnitudes (mc_trainer_track_grad_terms):
     * gabs[k] = sum of |terms| of the final sums that produced g[k] (e.g. a
     * conv weight: sum |dy| |x|), gterms = terms per element (summed over uses). */
    float *gabs;
    int64_t gterms;
} mc_tparam;

typedef struct mc_trainer mc_trainer;

typedef struct mc_train_config {
    char image_arch[32];      /* "mci0" ... (MCi family) or "vit_b16" */
    char text_arch[32];       /* "mct" or "base" */
    int image_size;
    int context_length;
    int text_heads[64];       /* per transformer layer */
    int n_text_heads;
    int causal;
    float bn_momentum;
} mc_train_config;

/* Reads a mobileclip-repo config.json (image_cfg / text_cfg). */
mc_status mc_train_config_load(const char *path, mc_train_config *cfg, mc_error *err);

/* Creates a trainer from a checkpoint (e.g. init.pt) holding image_encoder.*,
 * text_encoder.* and logit_scale. */
mc_status mc_trainer_new(const mc_train_config *cfg, const mc_checkpoint *ckpt, const char *path,
                         const mc_dr_loss_params *loss, const mc_adamw_params *opt,
                         mc_trainer **out, mc_error *err);
void mc_trainer_free(mc_trainer *t);

typedef struct mc_train_batch {
    int n;
    const float *pixels;      /* [n,3,S,S] */
    const int32_t *tokens_real, *tokens_syn;  /* [n, context_length] */
    const float *teacher_image, *teacher_text_real, *teacher_text_syn; /* [n, sum(dims)] */
} mc_train_batch;

typedef struct mc_train_result {
    float loss;
    float terms[4];           /* contrastive real, distill real, contrastive syn, distill syn */
    float lr;
    float grad_norm;
} mc_train_result;

/* Forward + backward of one micro-batch: gradients accumulate. */
mc_status mc_trainer_forward_backward(mc_trainer *t, const mc_train_batch *b, mc_train_result *res,
                                      mc_error *err);
/* Optimizer step over the accumulated gradients (divided by accum_steps),
 * clipping, logit_scale clamp; zeroes the gradients. */
mc_status mc_trainer_step(mc_trainer *t, mc_train_result *res, mc_error *err);
/* forward_backward on each micro-batch, then step. */
mc_status mc_trainer_train_step(mc_trainer *t, const mc_train_batch *b, mc_train_result *res,
                                mc_error *err);
void mc_trainer_zero_grad(mc_trainer *t);
/* Also record, for every parameter gradient, the sum of the absolute values of
 * the terms of its final summation (mc_tparam.gabs, .gterms): the scale of the
 * float rounding error of a gradient whose terms cancel.  Costs about one more
 * weight-gradient pass; off by default.  Fails only for lack of memory. */
mc_status mc_trainer_track_grad_terms(mc_trainer *t, int on, mc_error *err);

/* Eval mode (model.eval()): BatchNorm normalises with the running statistics
 * and leaves them alone.  Off by default (train mode: batch statistics). */
void mc_trainer_set_eval(mc_trainer *t, int on);
/* The towers alone, without the loss or a step: image features [n_img, E] of
 * pixels [n_img,3,S,S] and text features [n_txt, E] of tokens
 * [n_txt, context_length], before L2 normalisation (n_img or n_txt may be 0).
 * When d_img / d_txt are given, the backward of sum(d_img * img) +
 * sum(d_txt * txt) accumulates (+=) into the parameter gradients.  In train
 * mode the BatchNorm running statistics update as in a training forward. */
mc_status mc_trainer_features(mc_trainer *t, const float *pixels, int n_img, const int32_t *tokens,
                              int n_txt, float *img, float *txt, const float *d_img,
                              const float *d_txt, mc_error *err);
/* E: the width of the text projection (0 when absent). */
int mc_trainer_embed_dim(mc_trainer *t);

size_t mc_trainer_count(const mc_trainer *t);
mc_tparam *mc_trainer_param(mc_trainer *t, size_t i);
mc_tparam *mc_trainer_find(mc_trainer *t, const char *name);
int mc_trainer_steps_done(const mc_trainer *t);
void mc_trainer_set_step(mc_trainer *t, int step);

/* Training state: weights and BatchNorm buffers under their own names,
 * AdamW moments under "optim.exp_avg.<name>" / "optim.exp_avg_sq.<name>",
 * the step count in the metadata ("step"). */
mc_status mc_trainer_save(const mc_trainer *t, const char *path, mc_error *err);
mc_status mc_trainer_resume(mc_trainer *t, const char *path, mc_error *err);

#endif /* MC_TRAIN_H */
