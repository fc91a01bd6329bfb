/*
 * train/trainer.h - multi-modal reinforced training (MobileCLIP "DR"
 * training) of a model: a tape that records the unfused train-mode model
 * for the backward pass, the DR loss (loss.h) and AdamW (optim.h).  Two
 * checkpoint layouts, each trained under its own tensor names:
 *   mobileclip repo: image_encoder.model.* (MCi or vit_b16), text_encoder.*
 *                    (mct or base), logit_scale;
 *   OpenCLIP:        visual.trunk.* (timm fastvit_mci0..4, vit_base_mci_224,
 *                    vit_*_clip_*), text.* (or the top-level names of CLIP
 *                    without custom_text: the OpenCLIP text transformer),
 *                    logit_scale.
 */
#ifndef MC_TRAIN_TRAINER_H
#define MC_TRAIN_TRAINER_H

#include "train/loss.h"
#include "train/optim.h"

typedef struct mc_tparam {
    char *name;               /* the checkpoint's own tensor name */
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

enum {
    MC_TRAIN_LAYOUT_AUTO = 0,       /* from the checkpoint's tensor names */
    MC_TRAIN_LAYOUT_MOBILECLIP,     /* image_encoder.*, text_encoder.* */
    MC_TRAIN_LAYOUT_OPENCLIP        /* visual.trunk.*, text.* */
};

typedef struct mc_train_config {
    char image_arch[32];      /* "mci0" ... (MCi family) or "vit_b16"; OpenCLIP: the timm
                                 name ("fastvit_mci0".."fastvit_mci4", "vit_base_mci_224") */
    char text_arch[32];       /* "mct" or "base"; OpenCLIP: "open_clip" */
    int image_size;
    int context_length;
    int text_heads[64];       /* per transformer layer */
    int n_text_heads;
    int causal;
    float bn_momentum;
    /* Additions for the OpenCLIP layout; zero means the default. */
    int layout;               /* MC_TRAIN_LAYOUT_*; AUTO: from the tensor names */
    int quick_gelu;           /* OpenCLIP quick_gelu: the text MLP uses x sigmoid(1.702 x), not GELU */
    float drop_rate;          /* OpenCLIP timm_drop (head dropout) and timm_drop_path (stochastic */
    float drop_path_rate;     /* depth): not implemented, so a model with either > 0 runs in eval
                                 mode only (training steps and train-mode features are refused) */
} mc_train_config;

/* Reads a model configuration: the mobileclip repo's config.json (image_cfg /
 * text_cfg) or OpenCLIP's open_clip_config.json (model_cfg: embed_dim,
 * vision_cfg.timm_model_name / image_size / timm_pool / timm_proj / timm_drop /
 * timm_drop_path, text_cfg.context_length / heads / no_causal_mask,
 * quick_gelu), told apart by content.  path may also be a folder holding
 * open_clip_config.json or config.json (in that order).  Settings the trainer
 * does not implement (other timm towers, timm_proj heads, other text pooling,
 * embed_cls, layer scale in the text tower, SigLIP's init_logit_bias, an HF
 * text tower) fail with MC_ERR_UNSUPPORTED. */
mc_status mc_train_config_load(const char *path, mc_train_config *cfg, mc_error *err);

/* Creates a trainer from a checkpoint (e.g. init.pt) in either layout:
 * image_encoder.*, text_encoder.* and logit_scale (mobileclip repo) or
 * visual.trunk.*, text.* and logit_scale (OpenCLIP).  A checkpoint with
 * logit_bias (SigLIP) or a timm_proj head (visual.head.*) is refused. */
mc_status mc_trainer_new(const mc_train_config *cfg, const mc_checkpoint *ckpt, const char *path,
                         const mc_dr_loss_params *loss, const mc_adamw_params *opt,
                         mc_trainer **out, mc_error *err);
void mc_trainer_free(mc_trainer *t);

typedef struct mc_train_batch {
    int n;
    const float *pixels;      /* [n,3,S,S] */
    const int32_t *tokens_real, *tokens_syn;  /* [n, context_length]; tokens_syn NULL: one caption
                                                 batch (plain CLIP, mix-synthetic mode) */
    const float *teacher_image, *teacher_text_real, *teacher_text_syn; /* [n, sum(dims)]; only
                                                 needed when the loss distills (n_teachers > 0
                                                 and w_distill != 0) */
} mc_train_batch;

typedef struct mc_train_result {
    float loss;
    float terms[4];           /* contrastive real, distill real, contrastive syn, distill syn */
    float lr;
    float grad_norm;
    /* Seconds spent, added to (zero the struct before a step): the towers'
     * forward, the loss, the backward pass, the optimizer step. */
    double t_forward, t_loss, t_backward, t_optim;
    double t_comm;            /* of those, waiting in collectives (data parallelism, train/accum.h) */
} mc_train_result;

/* Forward + backward of one micro-batch: gradients accumulate. */
mc_status mc_trainer_forward_backward(mc_trainer *t, const mc_train_batch *b, mc_train_result *res,
                                      mc_error *err);
/* The loss of one batch from its L2-normalised embeddings img, real, syn
 * [n, e] (syn NULL without synthetic captions) and the batch's teacher rows:
 * fills terms[4] (contrastive and distillation, real then synthetic
 * captions), adds dL/d embedding into g_img, g_real, g_syn and dL/d
 * logit_scale (the parameter, before exp) into *d_scale. */
typedef mc_status (*mc_train_loss_fn)(void *ud, const mc_train_batch *b, const float *img, const float *real,
                                      const float *syn, int n, int e, float logit_scale_raw, float terms[4],
                                      float *g_img, float *g_real, float *g_syn, float *d_scale, mc_error *err);
/* mc_trainer_forward_backward with another loss between the forward and the
 * backward pass (the data-parallel loss of train/accum.h); NULL: the DR loss
 * of the batch alone. */
mc_status mc_trainer_forward_backward_loss(mc_trainer *t, const mc_train_batch *b, mc_train_loss_fn loss,
                                           void *loss_ud, mc_train_result *res, mc_error *err);
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

/* Gradient checkpointing (open_clip --grad-checkpointing): every block
 * (MCi RepMixer and attention blocks, the text tower's RepMixer blocks,
 * transformer layers) keeps only its input through the forward pass and is
 * run again, from that input, when the backward pass reaches it.  The same
 * kernels on the same data: losses, gradients and weights are bit for bit
 * those without it, and BatchNorm running statistics are updated once.
 * Less activation memory for about one more forward pass of the blocks.
 * Off by default. */
void mc_trainer_set_grad_checkpointing(mc_trainer *t, int on);

/* Activation memory (bytes) of the micro-batches so far: the most held at
 * once by the buffers of one (activations saved for the backward pass,
 * gradients of activations, attention probabilities); the memory the
 * trainer keeps for them (what the buffers have touched: about what is
 * resident; more than the peak by what lay between buffers); and the most
 * that one micro-batch made in all, which it would hold if nothing were
 * freed before its end.  The model's weights, gradients and AdamW moments
 * are not counted. */
typedef struct mc_train_memory {
    size_t peak_bytes;
    size_t held_bytes;
    size_t made_bytes;
} mc_train_memory;
void mc_trainer_memory(const mc_trainer *t, mc_train_memory *m);

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
/* The loss settings the trainer was made with. */
const mc_dr_loss_params *mc_trainer_loss_params(const mc_trainer *t);
/* Declares the gradients accumulated so far as n micro-batches' (what
 * mc_trainer_step divides by); for accumulation driven through
 * mc_trainer_features (train/accum.h). */
void mc_trainer_set_accumulated(mc_trainer *t, int n);
/* E: the width of the text projection (0 when absent). */
int mc_trainer_embed_dim(mc_trainer *t);
/* The layout of the trainer's checkpoint (MC_TRAIN_LAYOUT_MOBILECLIP or _OPENCLIP). */
int mc_trainer_layout(const mc_trainer *t);

size_t mc_trainer_count(const mc_trainer *t);
mc_tparam *mc_trainer_param(mc_trainer *t, size_t i);
mc_tparam *mc_trainer_find(mc_trainer *t, const char *name);
int mc_trainer_steps_done(const mc_trainer *t);
void mc_trainer_set_step(mc_trainer *t, int step);

#endif /* MC_TRAIN_TRAINER_H */
